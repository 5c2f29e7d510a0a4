"""Drive a component cycle by cycle in Amaranth's simulator from flat-integer stimulus."""

from amaranth.hdl import Value
from amaranth.sim import Simulator


def port(dut, name):
    """Return port ``name`` of ``dut`` as a plain Value (views flattened)."""
    return Value.cast(getattr(dut, name))


def simulate(dut, segments, *, outputs, strobe="out_valid", vcd=None):
    """Run ``segments`` on ``dut`` and return the sampled outputs of each segment.

    Parameters
    ----------
    segments : list of (static, cycles)
        ``static``: dict of port values set once before the segment's cycles;
        ``cycles``: list of dicts of input values, one per clock cycle. A segment should end
        with enough idle cycles to drain the pipeline.
    outputs : list of str
        Ports read (as integers) after every clock edge at which ``strobe`` is high.

    Returns
    -------
    list (per segment) of lists of (cycle index within the segment, {port: int}); the cycle
    index counts edges after the segment start, so a value seen after the edge that ended
    cycle ``i`` is reported with index ``i + 1`` (the cycle in which it is visible).
    """
    results = []

    async def bench(ctx):
        for static, cycles in segments:
            for name, value in static.items():
                ctx.set(port(dut, name), value)
            seen = []
            for i, cycle in enumerate(cycles):
                for name, value in cycle.items():
                    ctx.set(port(dut, name), value)
                await ctx.tick()
                if ctx.get(port(dut, strobe)):
                    seen.append((i + 1, {n: ctx.get(port(dut, n)) for n in outputs}))
            results.append(seen)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
