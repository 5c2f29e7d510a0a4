"""Back-projection of the desired activation through a binary matrix, row-streaming.

Implements BEP's ``a*_l = sign(W_{l+1}ᵀ · (g ⊙ a*_{l+1}))`` (ALGORITHMS.md section 6):
:func:`bitprop.model.bits.project_back` followed by :func:`bitprop.model.ops.sign`.
"""

from amaranth import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BackProjection"]

#: Rows per group (even, so that only the last group of an odd PE is odd-sized): the step
#: register counts a group's bits with one LUT4 per output bit.
GROUP = 4


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


class BackProjection(wiring.Component):
    """SIMD column counters accumulating ``Wᵀ·(g ⊙ a*)``, PE matrix rows per cycle.

    The rows of ``W`` (K_out × K_in, bit 1 = +1) stream in the same layout the forward pass
    reads them: each valid cycle (a beat) carries the SIMD-column slice of PE consecutive rows,
    with each row's gate bit ``g_i`` and desired-activation bit ``a*_i`` (bit 1 = +1). For a
    gated row every column counter ``c`` moves by +1 where ``W[i, c]`` agrees with ``a*_i``
    and by −1 where it does not; an ungated row leaves them unchanged, so a beat moves counter
    ``c`` by ``Σ_r g_r · (+1 if W[r, c] = a*_r else −1)`` over its PE rows. After the beat
    marked ``last`` the counters hold ``Σ_i g_i · a*_i · W[i, c]`` for the SIMD columns of the
    pass, which is ``bits.project_back`` for those columns, and ``sign`` holds ``ops.sign`` of
    it (bit 1 for a sum ≥ 0, so an all-zero gate gives all +1). A pass over K_out rows takes
    ``⌈K_out / PE⌉`` beats; rows beyond K_out in the last beat must have gate 0 (their weights
    and desired bits are then ignored). A layer wider than SIMD columns takes one pass per
    SIMD-column block; lanes beyond the real columns of the last block compute values that the
    consumer ignores.

    Parameters
    ----------
    simd : int
        Columns per pass (counters).
    max_rows : int
        Largest number of rows (K_out) of one pass; sets the counter width.
    pe : int, optional
        Matrix rows per beat (default 1).

    Attributes
    ----------
    valid : In(1)
        The beat on the inputs is consumed this cycle. No back-pressure.
    first : In(1)
        This beat starts a pass (the counters restart from this beat's contribution).
    last : In(1)
        This beat ends a pass; the sums appear ``latency`` cycles later.
    weights : In(simd) for PE = 1, else In(ArrayLayout(simd, pe))
        The beat's binary weights for the pass's columns: ``weights[r]`` is the slice of row
        ``r`` of the beat (bit ``c`` = column ``c`` of the block); for PE = 1 the port is the
        one row's slice itself.
    gate : In(pe)
        The rows' gate bits ``g`` (bit ``r`` = row ``r``; 1 = the row passes error).
    desired : In(pe)
        The rows' desired activation bits ``a*`` (bit ``r`` = row ``r``; 1 = +1).
    out_valid : Out(1)
        High for one cycle when ``sums`` and ``sign`` hold a finished pass. They keep that
        value until the next pass starts: if its ``first`` beat is consumed in cycle ``t``,
        they read 0 (the restart) in cycle ``t + latency − 1`` and that beat's contribution in
        cycle ``t + latency``.
    sums : Out(ArrayLayout(signed(bits(max_rows) + 1), simd))
        Signed column sums in ``[−K_out, K_out]``; ``sums[c]`` is column ``c`` of the block.
    sign : Out(simd)
        ``sign(sums[c])`` per column as a bit: 1 = +1 (sum ≥ 0), 0 = −1.

    ``bits(n)`` is ``n.bit_length()``.

    Timing
    ------
    Latency (the :attr:`latency` property): cycles from the ``last`` beat's valid cycle to
    ``out_valid``. ``LATENCY = 2`` for PE = 1 (an input register, then the counters, which
    drive ``sums`` and ``sign`` directly). For PE > 1 it is ``3 + ⌈log2 ⌈PE/4⌉⌉``: the input
    register, the step register, one registered adder level per halving of the ``⌈PE/4⌉``
    row groups (none for PE ≤ 4), then the counters; 3 cycles for PE = 2 … 4, 4 for PE = 8.
    Throughput: one beat per cycle within a pass. **Between passes leave at least one cycle
    with ``valid`` low** (a ``first`` beat must not directly follow a ``last`` beat), so a pass
    of ``B = ⌈K_out / PE⌉`` beats takes B + 1 cycles.

    Structure
    ---------
    The counters restart through their flip-flops' synchronous reset, asserted in the cycle
    the ``first`` beat enters the stage before the counters (so one cycle before its step
    reaches them), instead of a clear multiplexer in front of the adders; that is what the
    idle cycle between passes buys, and it halves the counters' LUTs (one LUT4 per counter
    bit on iCE40).

    For PE = 1 the input register holds each column's step: the shared gate bit as its low
    bit and, replicated above it, the column's "down" bit ``g ∧ (W[i, c] ⊕ a*_i)`` (one LUT3
    each), so the step is 0, +1 or −1 and the counters add it directly.

    For PE > 1 a beat's step ``Σ_r g_r·(1 − 2·d_r)``, ``d_r = W[r, c] ⊕ a*_r``, needs no
    per-column subtraction: each ungated row takes a phantom ``d_r`` alternating over the
    beat's ungated rows, so that their ±1 terms cancel up to the parity ``u`` of their number,
    and with ``b_r = g_r ? d_r : phantom_r`` the step is ``2·(⌊PE/2⌋ − popcount(b)) +
    (u ⊕ PE mod 2)`` in every column: a count, and one shared low bit. The input register forms
    the bits ``b_r`` (one LUT4 each) and ``u``; the step register holds, per group of up to
    four rows, ``⌊s/2⌋ − popcount`` from a table (one LUT4 per output bit, no carry chain);
    registered two-input adders sum the groups of PE > 4. A column costs PE + 3 LUT4s before
    its counter for PE = 4 (with the counter's LUT4 per bit and the ``sign`` inverter, 16 for
    ``max_rows`` = 75).
    """

    LATENCY = 2  # of the PE = 1 structure; see `latency` for any instance

    def __init__(self, *, simd, max_rows, pe=1):
        self._simd = _positive(simd, "SIMD width")
        self._max_rows = _positive(max_rows, "Maximum row count")
        self._pe = _positive(pe, "PE count")
        width = max_rows.bit_length() + 1
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "weights": In(simd) if pe == 1 else In(data.ArrayLayout(simd, pe)),
            "gate": In(pe),
            "desired": In(pe),
            "out_valid": Out(1),
            "sums": Out(data.ArrayLayout(signed(width), simd)),
            "sign": Out(simd),
        })

    simd = property(lambda self: self._simd, doc="Columns per pass (int).")
    max_rows = property(lambda self: self._max_rows, doc="Largest rows per pass (int).")
    pe = property(lambda self: self._pe, doc="Matrix rows per beat (int).")

    @property
    def latency(self):
        """Cycles from the ``last`` beat's valid cycle to ``out_valid`` (int)."""
        if self._pe == 1:
            return self.LATENCY
        return 3 + self._adder_levels(self._pe)

    @staticmethod
    def _adder_levels(pe):
        # Registered two-input adder levels summing the steps of ⌈PE/4⌉ row groups.
        return (-(-pe // GROUP) - 1).bit_length()

    @staticmethod
    def _table(m, bits, value, name):
        """Return a signal equal to ``value(pattern)`` of ``bits`` (≤ 4), built as a table."""
        values = [value(p) for p in range(1 << len(bits))]
        out = Signal(range(min(values), max(values) + 1), name=name)
        with m.Switch(Cat(*bits)):
            for pattern, v in enumerate(values):
                with m.Case(pattern):
                    m.d.comb += out.eq(v)
        return out

    def elaborate(self, platform):
        m = Module()
        simd, pe = self._simd, self._pe
        width = self._max_rows.bit_length() + 1
        valid = Signal()
        last = Signal()
        m.d.sync += [valid.eq(self.valid), last.eq(self.last)]
        if pe == 1:
            restart, steps = self._single_row(m)
        else:
            restart, valid, last, steps = self._rows(m, valid, last)

        # Counters: + the step; restarted from 0 (a synchronous reset of their flip-flops) one
        # cycle before the first beat's step reaches them.
        counters = [Signal(signed(width), name=f"count{c}", reset_less=True)
                    for c in range(simd)]
        m.d.sync += self.out_valid.eq(valid & last)
        with m.If(restart):
            m.d.sync += [count.eq(0) for count in counters]
        with m.Elif(valid):
            for c, count in enumerate(counters):
                m.d.sync += count.eq(count + steps[c])
        for c, count in enumerate(counters):
            m.d.comb += [
                self.sums[c].eq(count),
                self.sign[c].eq(~count[-1]),
            ]
        return m

    def _single_row(self, m):
        """PE = 1: the step (0, +1 or −1) comes straight from the input register."""
        simd = self._simd
        width = self._max_rows.bit_length() + 1
        # Input register: per column "this row moves the counter down" (gated, disagrees),
        # and the shared "this row moves the counters at all" (gated).
        moves = Signal(reset_less=True)
        down = Signal(simd, reset_less=True)
        m.d.sync += [
            moves.eq(self.gate),
            down.eq(Mux(self.gate, self.weights ^ self.desired.replicate(simd), 0)),
        ]
        # The step: + (−1 if down else +1 if moves else 0); the counters restart in the cycle a
        # first row enters the input register.
        restart = self.valid & self.first
        steps = [Cat(moves, down[c].replicate(width - 1)).as_signed() for c in range(simd)]
        return restart, steps

    def _rows(self, m, valid, last):
        """PE > 1: input register, step register, adder levels; return the counters' inputs."""
        simd, pe = self._simd, self._pe
        # A beat's step is Σ_r g_r·(1 − 2·d_r) with d_r = W[r, c] ⊕ a*_r. Each ungated row gets
        # a phantom d_r = f_r instead, alternating over the beat's ungated rows (1, 0, 1, … for
        # even P, 0, 1, 0, … for odd P), so that their terms 1 − 2·f_r sum to ∓u, where u is
        # the parity of the number of ungated rows. With the bits b_r = g_r ? d_r : f_r the
        # step in every column is then P ± u − 2·popcount(b) = 2·(⌊P/2⌋ − popcount(b)) + low,
        # low = u ⊕ (P mod 2): a plain count of b, and one low bit shared by all columns.
        phantom = []
        u = None  # parity of the ungated rows before row r
        for r in range(pe):
            phantom.append(Value.cast(1 - pe % 2) if u is None else u ^ (1 - pe % 2))
            u = ~self.gate[r] if u is None else u ^ ~self.gate[r]

        # Input register: the bits b_r per row and column (one LUT4 each), u, and the flags.
        first = Signal()
        parity = Signal(reset_less=True)
        b = [Signal(simd, name=f"b{r}", reset_less=True) for r in range(pe)]
        m.d.sync += [first.eq(self.valid & self.first), parity.eq(u)]
        for r in range(pe):
            disagree = self.weights[r] ^ self.desired[r].replicate(simd)
            m.d.sync += b[r].eq(Mux(self.gate[r], disagree, phantom[r].replicate(simd)))

        # Step register: per column the high part ⌊P/2⌋ − popcount(b), as the sum over groups
        # of up to four rows s of ⌊s/2⌋ − popcount(b over the group), each a table (one LUT4
        # per output bit, no carry chain); the shared low bit is one flip-flop. The counters
        # restart in the cycle a first beat enters the stage before the last step register.
        groups = [range(g, min(g + GROUP, pe)) for g in range(0, pe, GROUP)]
        low = Signal(reset_less=True)
        m.d.sync += low.eq(parity ^ (pe % 2))
        parts = []
        for c in range(simd):
            for j, rows in enumerate(groups):
                n = len(rows)
                part = self._table(m, [b[r][c] for r in rows],
                                   lambda pattern, n=n: n // 2 - bin(pattern).count("1"),
                                   f"part_c{c}_g{j}")
                q = Signal(part.shape(), name=f"step_c{c}_g{j}", reset_less=True)
                m.d.sync += q.eq(part)
                parts.append(q)
        restart = first
        flags = Signal(3, name="flags_step")
        m.d.sync += flags.eq(Cat(valid, first, last))

        # Adder levels: sum the groups' parts pairwise, one registered level at a time.
        per_column = len(groups)
        level = 0
        while per_column > 1:
            level += 1
            restart = flags[1]
            nxt = []
            for c in range(simd):
                mine = parts[c * per_column:(c + 1) * per_column]
                for i in range(0, per_column, 2):
                    pair = mine[i:i + 2]
                    total = pair[0] + pair[1] if len(pair) > 1 else pair[0]
                    q = Signal(total.shape(), name=f"step_c{c}_l{level}_{i // 2}",
                               reset_less=True)
                    m.d.sync += q.eq(total)
                    nxt.append(q)
            parts = nxt
            per_column = -(-per_column // 2)
            delayed = Signal(4, name=f"flags_l{level}")
            m.d.sync += delayed.eq(Cat(flags, low))
            flags, low = delayed[:3], delayed[3]
        steps = [Cat(low, part).as_signed() for part in parts]
        return restart, flags[0], flags[2], steps
