"""XNOR-popcount array: PE binary dot products, one SIMD-bit word per cycle.

Implements the forward pass of one binary matrix (``model/ops.py``: :func:`forward`, which is
:func:`bitprop.model.bits.xnor_dot`), followed by :func:`~bitprop.model.ops.sign` and the BEP
:func:`~bitprop.model.ops.gate` of every row.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["XnorPopcountArray"]


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


class XnorPopcountArray(wiring.Component):
    """PE × SIMD XNOR-popcount array with accumulation, sign and gate.

    Every valid cycle takes one SIMD-bit word of the packed activation vector ``a`` and the
    matching word of each of PE weight rows ``w_r`` (element ``i`` of a vector is bit ``i % SIMD``
    of word ``i // SIMD``, bit 1 = +1), with a mask of the word's real positions. A dot product
    spans consecutive valid words framed by ``first`` and ``last`` (both high for a one-word
    dot product). For every row it computes, over the masked-in (real) positions only,

    ``z_r = 2·popcount(XNOR(a, w_r) ∧ mask) − K = K − 2·popcount((a ⊕ w_r) ∧ mask)``,

    so padding bits never count whatever their value; K is the number of real positions. With
    the result it gives ``sign(z_r)`` (bit 1 for z ≥ 0, so ``sign(0) = +1``) and the BEP gate
    ``|z_r| ≤ threshold``. Bit-exact with ``bits.xnor_dot`` / ``ops.forward``, ``ops.sign``
    and ``ops.gate``. In the packed layout every word is full except the last, whose mask has
    the low ``K − SIMD·(⌈K/SIMD⌉ − 1)`` bits set; masks with holes also work (for example an
    input concatenated from two separately padded vectors).

    Parameters
    ----------
    pe : int
        Number of weight rows processed in parallel (processing elements).
    simd : int
        Bits per word (XNOR lanes per row).
    max_words : int
        Largest number of words of one dot product; sets ``K_max = max_words · simd`` and with
        it the widths below.

    Attributes
    ----------
    valid : In(1)
        The word on the inputs is consumed this cycle. No back-pressure (always ready).
    first : In(1)
        This word starts a dot product (restarts the accumulators).
    last : In(1)
        This word ends a dot product (its result appears ``LATENCY`` cycles later).
    mask : In(simd)
        Real positions of this word (bit ``i`` set: element ``i`` counts).
    activation : In(simd)
        Packed activation word.
    weights : In(ArrayLayout(simd, pe))
        One packed weight word per row; ``weights[r]`` is row ``r``.
    k : In(bits(K_max))
        K, the number of real elements of the dot product (the number of mask bits set).
    threshold : In(bits(K_max))
        Gate threshold ``⌊ν·K⌋`` (unsigned; any value ≥ K gates every row).
    out_valid : Out(1)
        High for one cycle when ``z``, ``sign`` and ``gate`` hold a new result; those outputs
        then keep their value until the next result.
    z : Out(ArrayLayout(signed(bits(K_max) + 1), pe))
        Pre-activation of each row, in ``[−K, K]``.
    sign : Out(pe)
        ``sign(z_r)`` per row as a bit: 1 = +1 (z ≥ 0), 0 = −1.
    gate : Out(pe)
        1 where ``|z_r| ≤ threshold``.

    ``bits(n)`` is ``n.bit_length()``.

    Timing
    ------
    Latency: ``LATENCY = L + 3`` cycles from the ``last`` word's valid cycle to ``out_valid``,
    with ``L = 1 + ⌈log2 ⌈SIMD/4⌉⌉`` adder-tree levels (``L = 0`` for SIMD = 1): one XOR
    register, the tree (a level of 4-input LUT counters, then two-input adders), the
    accumulator and the output register; 7 cycles for SIMD = 32. Throughput: one word per
    cycle, back to back across dot products, so one set of PE results every ``⌈K/SIMD⌉``
    cycles. ``k`` and ``threshold`` go through one register and are used in the accumulator
    and output stages: set them no later than the cycle in which a matrix's first word is
    presented and hold them until ``out_valid`` of its last dot product; so change them only
    between matrices, after the previous matrix's last result.

    Structure
    ---------
    Every adder level of the popcount tree is registered (see DESIGN.md: that roughly triples
    the UP5K clock and saves LUTs). The first level counts groups of four bits with one LUT4
    per output bit instead of carry chains. The accumulator holds ``z`` in offset form rather
    than a count: with ``z = 2·h + (K mod 2)`` it starts each dot product at
    ``h = −⌈K/2⌉`` and adds each word's agreement count, so no final ``2A − K`` subtraction is
    needed, and the gate is two carry-chain comparisons against addends precomputed once from
    K and the threshold.
    """

    def __init__(self, *, pe, simd, max_words):
        self._pe = _positive(pe, "PE count")
        self._simd = _positive(simd, "SIMD width")
        self._max_words = _positive(max_words, "Maximum word count")
        self._k_max = max_words * simd
        kw = self._k_max.bit_length()
        self._levels = self._tree_levels(simd)
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "mask": In(simd),
            "activation": In(simd),
            "weights": In(data.ArrayLayout(simd, pe)),
            "k": In(kw),
            "threshold": In(kw),
            "out_valid": Out(1),
            "z": Out(data.ArrayLayout(signed(kw + 1), pe)),
            "sign": Out(pe),
            "gate": Out(pe),
        })

    pe = property(lambda self: self._pe, doc="Number of weight rows (int).")
    simd = property(lambda self: self._simd, doc="Bits per word (int).")
    max_words = property(lambda self: self._max_words, doc="Largest words per dot product.")
    k_max = property(lambda self: self._k_max, doc="Largest K = max_words · simd (int).")

    @property
    def latency(self):
        """Cycles from the ``last`` word's valid cycle to ``out_valid`` (int)."""
        return self._levels + 3

    @staticmethod
    def _tree_levels(simd):
        # One level of 4-input LUT counters, then ⌈log2 ⌈SIMD/4⌉⌉ levels of two-input adders.
        if simd == 1:
            return 0
        return 1 + (-(-simd // 4) - 1).bit_length()

    @staticmethod
    def _popcount(m, bits, name):
        """Add a registered popcount tree of ``bits`` to ``m``; return the final count signal.

        Level 1 counts groups of up to four bits with one LUT4 per output bit: a table, not an
        adder, so that synthesis builds no carry chains for it. The table is one constant
        indexed by the group (a shift), not a ``case``: Verilator compiles a ``case`` into a
        tree of data-dependent branches, which the CPU mispredicted about half the time (most
        of the native simulation's mispredictions, a quarter of its run time). The later
        levels add pairs with carry-chain adders. Every level is registered.
        """
        if len(bits) == 1:
            return bits[0]
        level = []
        for g in range(0, len(bits), 4):
            group = bits[g:g + 4]
            count = Signal(range(len(group) + 1), name=f"{name}_c{g // 4}", reset_less=True)
            table = sum(bin(v).count("1") << (4 * v) for v in range(1 << len(group)))
            m.d.sync += count.eq(Const(table, 4 << len(group)).word_select(Cat(*group), 4))
            level.append(count)
        depth = 1
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level) - 1, 2):
                a, b = level[j], level[j + 1]
                s = Signal(max(len(a), len(b)) + 1, name=f"{name}_l{depth}_{j // 2}",
                           reset_less=True)
                m.d.sync += s.eq(a + b)
                nxt.append(s)
            if len(level) % 2:
                a = level[-1]
                s = Signal(len(a), name=f"{name}_l{depth}_{len(level) // 2}", reset_less=True)
                m.d.sync += s.eq(a)
                nxt.append(s)
            level = nxt
            depth += 1
        return level[0]

    def elaborate(self, platform):
        m = Module()
        simd, pe = self._simd, self._pe
        kw = self._k_max.bit_length()
        half = 1 << (kw - 1)

        # Stage 1: XNOR and mask per row (one 3-input LUT per bit), then the popcount tree
        # counts the agreements.
        counts = []
        for r in range(pe):
            agree = Signal(simd, name=f"agree{r}", reset_less=True)
            m.d.sync += agree.eq(~(self.activation ^ self.weights[r]) & self.mask)
            counts.append(self._popcount(m, [agree[i] for i in range(simd)], f"pop{r}"))
        flags = Signal(3)  # valid, first, last travelling with the data
        m.d.sync += flags.eq(Cat(self.valid, self.first, self.last))
        for level in range(self._levels):
            delayed = Signal(3, name=f"flags_l{level + 1}")
            m.d.sync += delayed.eq(flags)
            flags = delayed
        valid_t, first_t, last_t = flags[0], flags[1], flags[2]

        # With A agreements, z = 2A − K = 2h + K₀ where h = A − ⌈K/2⌉ and K₀ = K mod 2. The
        # accumulator holds u = h + 2^(kw−1) (unsigned kw bits), starting each dot product at
        # u₀ = 2^(kw−1) − ⌈K/2⌉ and adding each word's count: additions only, and no final
        # K − 2d subtraction. |z| ≤ t ⇔ −⌊(t + K₀)/2⌋ ≤ h ≤ ⌊(t − K₀)/2⌋; both bounds become
        # carry-outs of u plus a precomputed addend (a carry chain, no inverters):
        #   h ≥ lower ⇔ bit kw of (u + lo_add), lo_add = 2^(kw−1) + ⌊(t + K₀)/2⌋
        #   h ≤ upper ⇔ no bit kw in (u + hi_add), hi_add = 2^(kw−1) − 1 − ⌊(t − K₀)/2⌋
        # Since t < 2^kw, lo_add ≤ 2^kw and hi_add ≥ 0: no clamping is needed.
        k_odd = Signal(reset_less=True)
        u_start = Signal(kw, reset_less=True)
        lo_add = Signal(kw + 1, reset_less=True)
        hi_add = Signal(kw, reset_less=True)
        m.d.sync += [
            k_odd.eq(self.k[0]),
            u_start.eq(half - ((self.k + 1) >> 1)),
            lo_add.eq(half + ((self.threshold + self.k[0]) >> 1)),
            hi_add.eq((half - 1) - ((self.threshold - self.k[0]) >> 1)),
        ]

        u = [Signal(kw, name=f"u{r}", reset_less=True) for r in range(pe)]
        done = Signal()
        m.d.sync += done.eq(valid_t & last_t)
        with m.If(valid_t):
            for r in range(pe):
                m.d.sync += u[r].eq(Mux(first_t, u_start, u[r]) + counts[r])

        # Output stage: z = 2h + K₀ (h is u with its top bit flipped), the gate from two carry
        # chains; sign(z) (sign(0) = +1) is the inverted top bit of z.
        z = [Signal(signed(kw + 1), name=f"z{r}") for r in range(pe)]
        gate = Signal(pe)
        m.d.sync += self.out_valid.eq(done)
        with m.If(done):
            for r in range(pe):
                above = (u[r] + lo_add)[kw]
                below = ~(u[r] + hi_add)[kw]
                m.d.sync += [
                    z[r].eq(Cat(k_odd, u[r] ^ half)),
                    gate[r].eq(above & below),
                ]
        m.d.comb += self.gate.eq(gate)
        for r in range(pe):
            m.d.comb += [self.z[r].eq(z[r]), self.sign[r].eq(~z[r][-1])]
        return m
