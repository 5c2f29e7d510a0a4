"""Group-winner selection: which unit of each group of γ learns (ALGORITHMS.md section 3).

The golden model is :func:`bitprop.model.ops.select_winners`: a unit is *wrong* iff
``sign(z_j) ≠ a*_j`` (``sign(0) = +1``); in each group of ``γ`` consecutive units the wrong unit
with the smallest ``|z_j|`` is selected, the lowest index winning ties, none if the group has
no wrong unit; a sample that did not trigger selects nothing.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_int

__all__ = ["GroupWinnerSelect"]



class GroupWinnerSelect(wiring.Component):
    """Stream a layer's units, one per cycle; emit each group's winner.

    Parameters
    ----------
    gamma_max : int, >= 1
        Largest runtime group size.
    z_width : int, >= 2
        Width of the signed pre-activations ``z``.
    max_units : int, >= 1
        Largest layer width ``K``; sets the width of ``o.payload.index``.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({...})))
        Fields ``z``: signed(z_width), ``desired``: 1, ``active``: 1, ``first``: 1. The units
        of one sample in order ``j = 0, 1, …, K-1``: ``z`` = ``z_j``, ``desired`` = the
        desired activation ``a*_j`` (1 for +1, 0 for −1), ``active`` = the sample
        triggered (hold it for the whole sample), ``first`` = 1 on unit 0 of each sample
        (restarts the unit index and the group count).
    gamma : In(range(gamma_max + 1))
        The group size γ, 1..gamma_max; hold it stable while a sample streams. ``K`` must be a
        multiple of γ (as in the model): the units of an incomplete last group are dropped.
    o : Out(stream.Signature(StructLayout({...})))
        Fields ``found``: 1, ``index``: range(max_units), ``desired``: 1. One word per group,
        in order: ``found`` = the group has a wrong unit (and the sample is active); then
        ``index`` = the winner's unit index ``j`` in the layer and ``desired`` = its ``a*_j``
        (the sign of its update record). With ``found`` = 0 the other fields are
        meaningless.

    Latency: the word of a group is valid 3 cycles after its last unit was accepted.
    Throughput: one unit per cycle (one group word per γ cycles). Backpressure stalls the
    whole block (``i.ready = ~o.valid | o.ready``, combinational).
    """

    def __init__(self, *, gamma_max, z_width, max_units):
        check_int("gamma_max", gamma_max, 1)
        check_int("z_width", z_width, 2)
        check_int("max_units", max_units, 1)
        self.gamma_max = gamma_max
        self.z_width = z_width
        self.max_units = max_units
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "z": signed(z_width), "desired": 1, "active": 1, "first": 1}))),
            "gamma": In(range(gamma_max + 1)),
            "o": Out(stream.Signature(data.StructLayout({
                "found": 1, "index": range(max_units), "desired": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]
        accept = self.i.valid & advance

        # Stage A: register the unit with its index and its place in the group.
        index_w = len(self.o.payload.index)
        next_index = Signal(index_w)
        next_pos = Signal(range(self.gamma_max))
        index = Mux(self.i.payload.first, 0, next_index)
        pos = Mux(self.i.payload.first, 0, next_pos)
        end = Signal()
        m.d.comb += end.eq(pos == self.gamma - 1)

        a_valid = Signal()
        a_z = Signal(signed(self.z_width), reset_less=True)
        a_desired = Signal(reset_less=True)
        a_active = Signal()
        a_index = Signal(index_w, reset_less=True)
        a_begin = Signal()
        a_end = Signal()
        with m.If(advance):
            m.d.sync += [
                a_valid.eq(self.i.valid),
                a_z.eq(self.i.payload.z),
                a_desired.eq(self.i.payload.desired),
                a_active.eq(self.i.payload.active),
                a_index.eq(index),
                a_begin.eq(pos == 0),
                a_end.eq(end),
            ]
        with m.If(accept):
            m.d.sync += [
                next_index.eq(index + 1),
                next_pos.eq(Mux(end, 0, pos + 1)),
            ]

        # Stage B: wrong (sign(z) ≠ a*, sign(0) = +1, only in an active sample) and |z|.
        b_valid = Signal()
        b_wrong = Signal()
        b_mag = Signal(self.z_width, reset_less=True)
        b_desired = Signal(reset_less=True)
        b_index = Signal(index_w, reset_less=True)
        b_begin = Signal()
        b_end = Signal()
        negative = a_z < 0
        with m.If(advance):
            m.d.sync += [
                b_valid.eq(a_valid),
                b_wrong.eq(a_active & (negative == a_desired)),
                b_mag.eq(Mux(negative, -a_z, a_z)),
                b_desired.eq(a_desired),
                b_index.eq(a_index),
                b_begin.eq(a_begin),
                b_end.eq(a_end),
            ]

        # Stage C: the group's best so far; strictly smaller |z| replaces it (lowest index
        # wins ties), a group's first unit restarts it.
        found = Signal()
        best_mag = Signal(self.z_width, reset_less=True)
        best_index = Signal(index_w, reset_less=True)
        best_desired = Signal(reset_less=True)
        take = Signal()
        m.d.comb += take.eq(b_begin | (b_wrong & (~found | (b_mag < best_mag))))
        new_found = Mux(b_begin, b_wrong, found | b_wrong)
        new_index = Mux(take, b_index, best_index)
        new_desired = Mux(take, b_desired, best_desired)
        with m.If(advance & b_valid):
            m.d.sync += found.eq(new_found)
            with m.If(take):
                m.d.sync += [
                    best_mag.eq(b_mag),
                    best_index.eq(b_index),
                    best_desired.eq(b_desired),
                ]

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance & b_valid & b_end):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.found.eq(new_found),
                self.o.payload.index.eq(new_index),
                self.o.payload.desired.eq(new_desired),
            ]
        return m
