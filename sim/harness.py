"""Simulation harness around the training core: command and reply words in wide chunks.

A cocotb coroutine that hands the core one 32-bit word per clock edge spends most of its time
in Python (two simulator round trips per word). :class:`ChunkedHost` instead takes up to
``chunk`` command words in one wide assignment and feeds them to the core's ``cmd`` stream at
one word per cycle by itself, and collects reply words into a wide register that the test
reads once per chunk. The core, its ports and its timing are untouched: the harness is only
the simulated host's side of the stream, so what the simulation verifies is the core.
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bitprop.rtl.core import TrainingCore

__all__ = ["ChunkedHost", "registered_top"]


class ChunkedHost(wiring.Component):
    """The core behind chunked command and reply registers (simulation only).

    Attributes
    ----------
    in_data : In(32·chunk)
        Command words, word 0 lowest.
    in_count : In(range(chunk + 1))
        How many of them are valid.
    in_load : In(1)
        Strobe: take ``in_data``/``in_count`` (only while ``in_empty``).
    in_empty : Out(1)
        Every loaded word has gone into the core.
    out_data : Out(32·chunk)
        Reply words collected so far, word 0 lowest.
    out_count : Out(range(chunk + 1))
    out_last : Out(1)
        The newest collected word ended a reply.
    out_ready : Out(1)
        ``out_last`` or all ``chunk`` words collected: time for the host to read.
    out_take : In(1)
        Strobe: the host read the collected words; collection restarts.
    """

    def __init__(self, *, plan, chunk=64):
        self.core = TrainingCore(plan=plan)
        self.chunk = chunk
        super().__init__({
            "in_data": In(32 * chunk), "in_count": In(range(chunk + 1)), "in_load": In(1),
            "in_empty": Out(1),
            "out_data": Out(32 * chunk), "out_count": Out(range(chunk + 1)),
            "out_last": Out(1), "out_ready": Out(1), "out_take": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        n = self.chunk
        buf = Signal(32 * n)
        left = Signal(range(n + 1))
        m.d.comb += [self.in_empty.eq(left == 0), core.cmd.valid.eq(left != 0),
                     core.cmd.payload.eq(buf[:32])]
        with m.If(self.in_load):
            m.d.sync += [buf.eq(self.in_data), left.eq(self.in_count)]
        with m.Elif(core.cmd.valid & core.cmd.ready):
            m.d.sync += [buf.eq(buf >> 32), left.eq(left - 1)]
        full = self.out_count == n
        m.d.comb += self.out_ready.eq(full | self.out_last)
        m.d.comb += core.rsp.ready.eq(~full & ~self.out_take)
        with m.If(self.out_take):
            m.d.sync += [self.out_count.eq(0), self.out_last.eq(0)]
        with m.Elif(core.rsp.valid & core.rsp.ready):
            for i in range(n):
                with m.If(self.out_count == i):
                    m.d.sync += self.out_data.word_select(i, 32).eq(core.rsp.payload.data)
            m.d.sync += [self.out_count.eq(self.out_count + 1),
                         self.out_last.eq(core.rsp.payload.last)]
        return m


def registered_top(host):
    """Return ``host`` behind registered inputs and reset, for a faster Verilator model.

    Used by the cocotb sessions (around :class:`ChunkedHost`) and by the native harness
    (:mod:`bitprop.sim.native`, around the core itself).

    Verilator evaluates all logic in the fan-out of top-level inputs and of public writable
    signals on *every* evaluation, that is on both clock edges, besides after the rising edge.
    The Verilog computes every register's next value from ``rst``, and the harness's
    ``out_take`` and state (all public with ``--public-depth 1``) reach the core's flow
    control, so nearly the whole design ran three times per cycle. Here the top module holds
    only the ports (made public alone, ``session._public_ports``); one level down, each input
    (``rst`` included) goes through a register before it reaches ``host``, so the design's
    logic depends on state alone and runs once per cycle. :class:`~bitprop.sim.core_bench.
    SimPort` writes the inputs at the falling edge, so ``host`` sees them at the same rising
    edges as without the registers (same cycle counts); the native harness accounts for the
    one-cycle delay itself. The core enters and leaves reset one cycle later. The per-cycle
    model evaluation measured about half of what it was before.
    """
    from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
    from amaranth.hdl import DomainRenamer
    from amaranth.lib import wiring

    members = dict(host.signature.members.items())

    class Registered(wiring.Component):
        def __init__(self):
            super().__init__(members)
            self.rst = Signal()

        def elaborate(self, platform):
            m = Module()
            m.submodules.host = inner = DomainRenamer("core")(host)
            m.domains.core = ClockDomain("core", local=True)
            rst_q = Signal(init=1, reset_less=True)
            m.d.sync += rst_q.eq(self.rst)
            m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                         ResetSignal("core").eq(rst_q)]
            # Every port, streams included (flatten walks into interfaces, flows resolved).
            ports = zip(self.signature.flatten(self), host.signature.flatten(host))
            for (path, member, outer), (_, _, port) in ports:
                if member.flow == wiring.In:
                    name = "_".join(str(part) for part in path) + "_q"
                    q = Signal.like(outer, name=name, reset_less=True)
                    m.d.sync += q.eq(outer)
                    m.d.comb += port.eq(q)
                else:
                    m.d.comb += outer.eq(port)
            return m

    class SimTop(wiring.Component):
        def __init__(self):
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            m.submodules.regs = regs = Registered()
            m.d.comb += regs.rst.eq(ResetSignal("sync"))
            wiring.connect(m, wiring.flipped(self), regs)
            return m

    return SimTop()
