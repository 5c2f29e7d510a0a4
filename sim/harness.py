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

__all__ = ["ChunkedHost"]


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
