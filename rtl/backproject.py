"""Back-projection of the desired activation through a binary matrix, row-streaming.

Implements BEP's ``a*_l = sign(W_{l+1}ᵀ · (g ⊙ a*_{l+1}))`` (ALGORITHMS.md section 6):
:func:`bitprop.model.bits.project_back` followed by :func:`bitprop.model.ops.sign`.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BackProjection"]


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


class BackProjection(wiring.Component):
    """SIMD column counters accumulating ``Wᵀ·(g ⊙ a*)`` one matrix row per cycle.

    The rows of ``W`` (K_out × K_in, bit 1 = +1) stream in the same layout the forward pass
    reads them, one SIMD-column slice of one row per valid cycle, with that row's gate bit
    ``g_i`` and desired-activation bit ``a*_i`` (bit 1 = +1). For a gated row every column
    counter ``c`` moves by +1 where ``W[i, c]`` agrees with ``a*_i`` and by −1 where it does not;
    an ungated row leaves them unchanged. After the row marked ``last`` the counters hold
    ``Σ_i g_i · a*_i · W[i, c]`` for the SIMD columns of the pass, which is
    ``bits.project_back`` for those columns, and ``sign`` holds ``ops.sign`` of it (bit 1 for
    a sum ≥ 0, so an all-zero gate gives all +1). A layer wider than SIMD columns takes one
    pass per SIMD-column block; lanes beyond the real columns of the last block compute
    values that the consumer ignores.

    Parameters
    ----------
    simd : int
        Columns per pass (counters).
    max_rows : int
        Largest number of rows (K_out) of one pass; sets the counter width.

    Attributes
    ----------
    valid : In(1)
        The row slice on the inputs is consumed this cycle. No back-pressure.
    first : In(1)
        This row starts a pass (the counters restart from this row's contribution).
    last : In(1)
        This row ends a pass; the sums appear ``LATENCY`` cycles later.
    weights : In(simd)
        The row's binary weights for the pass's columns (bit ``c`` = column ``c`` of the block).
    gate : In(1)
        The row's gate bit ``g_i`` (1 = the row passes error).
    desired : In(1)
        The row's desired activation bit ``a*_i`` (1 = +1).
    out_valid : Out(1)
        High for one cycle when ``sums`` and ``sign`` hold a finished pass. They keep that
        value until the next pass's ``first`` row is consumed.
    sums : Out(ArrayLayout(signed(bits(max_rows) + 1), simd))
        Signed column sums in ``[−K_out, K_out]``; ``sums[c]`` is column ``c`` of the block.
    sign : Out(simd)
        ``sign(sums[c])`` per column as a bit: 1 = +1 (sum ≥ 0), 0 = −1.

    ``bits(n)`` is ``n.bit_length()``.

    Timing
    ------
    Latency: ``LATENCY = 2`` cycles from the ``last`` row's valid cycle to ``out_valid`` (an
    input register, then the counters, which drive ``sums`` and ``sign`` directly).
    Throughput: one row slice per cycle within a pass. **Between passes leave at least one
    cycle with ``valid`` low** (a ``first`` row must not directly follow a ``last`` row), so a
    pass over K_out rows takes K_out + 1 cycles.

    Structure
    ---------
    The counters restart through their flip-flops' synchronous reset, asserted in the cycle
    the ``first`` row is consumed (one cycle before it reaches the counters), instead of a
    clear multiplexer in front of the adders; that is what the idle cycle between passes
    buys, and it halves the counters' LUTs (one LUT4 per counter bit on iCE40). The per-column
    step ``g·(w ⊕ a*)`` (the −1 case) is formed at the input register.
    """

    LATENCY = 2

    def __init__(self, *, simd, max_rows):
        self._simd = _positive(simd, "SIMD width")
        self._max_rows = _positive(max_rows, "Maximum row count")
        width = max_rows.bit_length() + 1
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "weights": In(simd),
            "gate": In(1),
            "desired": In(1),
            "out_valid": Out(1),
            "sums": Out(data.ArrayLayout(signed(width), simd)),
            "sign": Out(simd),
        })

    simd = property(lambda self: self._simd, doc="Columns per pass (int).")
    max_rows = property(lambda self: self._max_rows, doc="Largest rows per pass (int).")
    latency = property(lambda self: self.LATENCY,
                       doc="Cycles from the ``last`` row's valid cycle to ``out_valid`` (int).")

    def elaborate(self, platform):
        m = Module()
        width = self._max_rows.bit_length() + 1

        # Input register: per column "this row moves the counter down" (gated, disagrees),
        # and the shared "this row moves the counters at all" (gated).
        valid = Signal()
        last = Signal()
        moves = Signal(reset_less=True)
        down = Signal(self._simd, reset_less=True)
        m.d.sync += [
            valid.eq(self.valid),
            last.eq(self.last),
            moves.eq(self.gate),
            down.eq(Mux(self.gate, self.weights ^ self.desired.replicate(self._simd), 0)),
        ]

        # Counters: + (−1 if down else +1 if moves else 0); restarted from 0 (a synchronous
        # reset of their flip-flops) in the cycle a first row enters the input register.
        restart = self.valid & self.first
        counters = [Signal(signed(width), name=f"count{c}", reset_less=True)
                    for c in range(self._simd)]
        m.d.sync += self.out_valid.eq(valid & last)
        with m.If(restart):
            m.d.sync += [count.eq(0) for count in counters]
        with m.Elif(valid):
            for c, count in enumerate(counters):
                step = Cat(moves, down[c].replicate(width - 1)).as_signed()
                m.d.sync += count.eq(count + step)
        for c, count in enumerate(counters):
            m.d.comb += [
                self.sums[c].eq(count),
                self.sign[c].eq(~count[-1]),
            ]
        return m
