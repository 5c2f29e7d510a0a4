"""cocotb side of a simulated training run: the host driver against the simulated core.

Loaded by the simulator (see :func:`bitprop.sim.session.simulate`). The whole host program
(:func:`bitprop.sim.session.run_host`: the golden model, the :class:`~bitprop.boards.driver.
Device` driver and the comparisons) runs as ordinary blocking code in a cocotb *bridge*
thread; its port, :class:`SimPort`, hands each message to a coroutine that drives the core's
command stream and collects the reply words. So the driver code is the one a board uses.
"""

import json
import os
import time

import cocotb
from cocotb.task import bridge, resume
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

PERIOD_NS = 10


class SimPort:
    """``exchange(words, n_reply)`` on the simulated core (the driver's port interface).

    The words travel through :class:`~bitprop.sim.harness.ChunkedHost`, ``chunk`` at a time.
    """

    def __init__(self, dut, chunk, timeout_cycles=50_000_000):
        self.dut = dut
        self.chunk = chunk
        self.timeout_ns = timeout_cycles * PERIOD_NS
        #: Simulated clock cycles spent inside exchanges so far (read by the host program
        #: to time the simulator alone, without the golden model's work in between).
        self.cycles = 0.0

    async def _exchange(self, words, n_reply):
        ns0 = get_sim_time("ns")
        try:
            return await self._transfer(words, n_reply)
        finally:
            self.cycles += (get_sim_time("ns") - ns0) / PERIOD_NS

    async def _transfer(self, words, n_reply):
        dut, n = self.dut, self.chunk
        pending = [words[i:i + n] for i in range(0, len(words), n)]
        out = []
        while pending or len(out) < n_reply:
            await ReadOnly()
            load = bool(pending) and int(dut.in_empty.value)
            take = int(dut.out_ready.value)
            if take:
                count = int(dut.out_count.value)
                data = int(dut.out_data.value)
                out += [(data >> (32 * i)) & 0xFFFF_FFFF for i in range(count)]
            if not (load or take):
                waits = []
                if pending:
                    waits.append(RisingEdge(dut.in_empty))
                if len(out) < n_reply:
                    waits.append(RisingEdge(dut.out_ready))
                fired = await First(*waits, Timer(self.timeout_ns, "ns"))
                if isinstance(fired, Timer):
                    cycles = self.timeout_ns // PERIOD_NS
                    raise AssertionError(f"the core did not move for {cycles} cycles (hung?)")
                continue
            await FallingEdge(dut.clk)
            if load:
                part = pending.pop(0)
                dut.in_data.value = sum(int(w) << (32 * i) for i, w in enumerate(part))
                dut.in_count.value = len(part)
                dut.in_load.value = 1
            dut.out_take.value = int(take)
            await FallingEdge(dut.clk)
            dut.in_load.value = 0
            dut.out_take.value = 0
            await RisingEdge(dut.clk)
        if len(out) != n_reply:
            raise AssertionError(f"the core sent {len(out)} reply words, {n_reply} expected")
        return out

    def exchange(self, words, n_reply):
        return resume(self._exchange)(list(words), n_reply)


@cocotb.test()
async def host_session(dut):
    """Run the host program described by ``BITPROP_SESSION`` against the core."""
    from bitprop.sim.session import run_host

    spec = json.loads(os.environ["BITPROP_SESSION"])
    # The C++ clock: a Python clock coroutine would cap the simulation near 100k cycles/s.
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.rst.value = 1
    dut.in_load.value = 0
    dut.out_take.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    # Two edges: the core may see the reset one cycle late (harness.registered_top).
    for _ in range(2):
        await RisingEdge(dut.clk)
    port = SimPort(dut, spec["chunk"])
    t0 = time.perf_counter()
    ns0 = get_sim_time("ns")
    result = await bridge(run_host)(port, spec)
    wall = time.perf_counter() - t0
    cycles = (get_sim_time("ns") - ns0) / PERIOD_NS
    result["sim_cycles"] = int(cycles)
    result["sim_seconds"] = wall
    result["sim_cycles_per_second"] = cycles / wall if wall > 0 else 0.0
    with open(spec["result"], "w") as f:
        json.dump(result, f, indent=1)
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatching hidden weights"
    assert result["prediction_mismatches"] == 0
