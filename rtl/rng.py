"""The counter-based generator in hardware: Wang's mix64, step keys and reinforcement draws.

The golden model is :mod:`bitprop.model.rng`; this module computes the same bits:

- :class:`Mix64` is ``rng.mix64`` as a skewed pipeline of two-operand additions (the steps
  that multiply by 265 and 21 are two each) and registered xor-shifts, one carry chain per
  cycle. With ``carry_segments > 1`` each addition is cut into slices of
  ``64 / carry_segments`` bits added in successive cycles, each slice's carry registered into
  the next, and the next step starts on the low slices of a sum while its high slices are
  still being added. Only the bits that a later cycle reads are carried in delay registers.
- :class:`DrawGenerator` computes the key ``rng.step_key(seed, step, layer) =
  mix64(mix64(mix64(seed ⊕ SEED_SALT) ⊕ step) ⊕ layer)`` by sending three words through its
  one :class:`Mix64`, then streams the hashes ``x_w = mix64(key + w·WEYL)`` for
  ``w = 0, 1, 2, …`` (the Weyl sum is a running sum: ``WEYL`` is added per word, no
  multiplier; its registers, slices skewed by their registered carries, are the hash's input
  and hold the key passes' words too) together with the four events
  ``((x_w >> 16·lane) & 0xFFFF) < threshold`` of its four 16-bit draws (``rng.draws``,
  ``rng.events``).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bitprop.model.rng import SEED_SALT, WEYL

from .params import check_int

__all__ = ["Mix64", "DrawGenerator", "MIX64_STEPS"]

#: The seven steps of ``rng.mix64``: ``("add", invert_x, shifts)`` is
#: ``x ← (~x if invert_x else x) + Σ (x << s)`` and ``("xor", s)`` is ``x ← x ⊕ (x >> s)``.
MIX64_STEPS = (
    ("add", True, (21,)),
    ("xor", 24),
    ("add", False, (3, 8)),
    ("xor", 14),
    ("add", False, (2, 4)),
    ("xor", 28),
    ("add", False, (31,)),
)


class _Pipe:
    """The registers of a stalling pipeline: every one of them loads when ``advance`` is high."""

    def __init__(self, m, advance):
        self.m, self.advance = m, advance

    def load(self, target, value):
        with self.m.If(self.advance):
            self.m.d.sync += target.eq(value)

    def reg(self, value, name):
        sig = Signal(len(value), name=name, reset_less=True)
        self.load(sig, value)
        return sig


class _Word:
    """A 64-bit value in the :class:`Mix64` pipeline; bit ``i`` is there from cycle ``ready[i]``.

    Cycles count from the one in which the pipeline takes the word from its input (cycle 0)
    and only those in which it advances.
    A bit read in a later cycle than its ``ready`` comes through delay registers (see
    :class:`_Reg`); ``ready[i]`` is None for a bit that is constant 0.
    """

    ready = ()

    def read(self, pipe, lo, hi, t):
        """Return bits ``lo:hi`` of the value as they are in cycle ``t``."""
        raise NotImplementedError


class _Reg(_Word):
    """Bits held in a register (loaded by the code that makes it), and their delayed copies.

    A bit read ``d`` cycles after it is ready comes from the ``d``-th of a chain of 64-bit
    delay registers; the bits of a delay register that nothing reads are removed by the
    synthesis tools, so only the bits a later step needs cost flip-flops.
    """

    def __init__(self, ready, name):
        self.ready = list(ready)
        self.name = name
        self.levels = []

    def read(self, pipe, lo, hi, t):
        parts = []
        i = lo
        while i < hi:
            j = i
            while j < hi and self.ready[j] == self.ready[i]:
                j += 1
            delay = t - self.ready[i]
            assert delay >= 0, "a bit is read before it is ready"
            while len(self.levels) <= delay:
                self.levels.append(pipe.reg(self.levels[-1],
                                            f"{self.name}_d{len(self.levels)}"))
            parts.append(self.levels[delay][i:j])
            i = j
        return Cat(*parts)


class _Not(_Word):
    """``~x``."""

    def __init__(self, x):
        self.x = x
        self.ready = x.ready

    def read(self, pipe, lo, hi, t):
        return ~self.x.read(pipe, lo, hi, t)


class _Shl(_Word):
    """``x << s`` (mod 2^64)."""

    def __init__(self, x, s):
        self.x, self.s = x, s
        self.ready = [None] * s + list(x.ready[:64 - s])

    def read(self, pipe, lo, hi, t):
        s = self.s
        parts = []
        if lo < s:
            parts.append(Const(0, min(hi, s) - lo))
        if hi > s:
            parts.append(self.x.read(pipe, max(lo, s) - s, hi - s, t))
        return Cat(*parts)


class _XorShr(_Word):
    """``x ⊕ (x >> s)``: LUTs in front of whatever reads it (:class:`_Held` registers it)."""

    def __init__(self, x, s):
        self.x, self.s = x, s
        self.ready = [max(x.ready[i], x.ready[i + s]) if i + s < 64 else x.ready[i]
                      for i in range(64)]

    def read(self, pipe, lo, hi, t):
        low = self.x.read(pipe, lo, hi, t)
        if lo + self.s >= 64:
            return low
        return low ^ self.x.read(pipe, lo + self.s, min(hi + self.s, 64), t)


class _Add(_Reg):
    """``a + b`` (mod 2^64) as ``nseg`` slices of ``64 / nseg`` bits, a carry chain each.

    Slice ``k`` is added in cycle ``times[k]``: the first cycle in which its operand bits
    are ready and after the cycle of slice ``k - 1``, whose carry out is registered into it.
    Each slice of the sum is registered, ready the cycle after its addition, so the sum is
    skewed like its operands and the next step starts on its low slice while this one
    finishes the high ones.
    """

    def __init__(self, a, b, nseg, name):
        seg = 64 // nseg
        times = []
        for k in range(nseg):
            need = [r for r in a.ready[k * seg:(k + 1) * seg] + b.ready[k * seg:(k + 1) * seg]
                    if r is not None]
            times.append(max(need + [times[-1] + 1]) if times else max(need))
        super().__init__([times[i // seg] + 1 for i in range(64)], name)
        self.a, self.b, self.nseg, self.seg, self.times = a, b, nseg, seg, times
        self.carry = _Reg([t + 1 for t in times[:-1]], name + "_c")

    def build(self, pipe):
        """Add the adders and the sum's registers to ``pipe``."""
        seg = self.seg
        total = Signal(64, name=self.name, reset_less=True)
        carry = Signal(self.nseg - 1, name=self.name + "_c", reset_less=True)
        self.levels, self.carry.levels = [total], [carry]
        for k, t in enumerate(self.times):
            lo, hi = k * seg, (k + 1) * seg
            cin = self.carry.read(pipe, k - 1, k, t) if k else Const(0, 1)
            s = self.a.read(pipe, lo, hi, t) + self.b.read(pipe, lo, hi, t) + cin
            pipe.load(total[lo:hi], s[:seg])
            if k < self.nseg - 1:
                pipe.load(carry[k], s[seg])


class _Held(_Reg):
    """``x`` registered, each bit in the cycle it is ready (one LUT and flip-flop per bit)."""

    def __init__(self, x, name):
        super().__init__([r + 1 for r in x.ready], name)
        self.x = x

    def build(self, pipe):
        """Add the LUTs of ``x`` and the register to ``pipe``."""
        sig = Signal(64, name=self.name, reset_less=True)
        i = 0
        while i < 64:
            j = i
            while j < 64 and self.x.ready[j] == self.x.ready[i]:
                j += 1
            pipe.load(sig[i:j], self.x.read(pipe, i, j, self.x.ready[i]))
            i = j
        self.levels = [sig]


def _mix64_graph(carry_segments, input_slices):
    """Return ``(source, nodes, result)``: mix64 of the input word ``source``.

    ``nodes`` are the registered steps to build, in order; ``result`` is the hash.
    """
    x = source = _Reg([i * input_slices // 64 for i in range(64)], "x")
    nodes = []
    for n, step in enumerate(MIX64_STEPS):
        if step[0] == "xor":
            # Registered: read straight by the next addition, ``x ⊕ (x >> s)`` would be
            # computed again (a LUT per bit) for each cycle and operand that reads it, and it
            # would put a LUT in front of the carry chains.
            x = _Held(_XorShr(x, step[1]), f"s{n}_xor")
            nodes.append(x)
            continue
        _, invert, shifts = step
        acc = _Not(x) if invert else x
        for k, s in enumerate(shifts):
            acc = _Add(acc, _Shl(x, s), carry_segments, f"s{n}_add{k}")
            nodes.append(acc)
        x = acc
    return source, nodes, x


def mix64_latency(carry_segments, input_slices=1):
    """Return the latency in cycles of a :class:`Mix64` with these parameters."""
    return max(_mix64_graph(carry_segments, input_slices)[2].ready)


class Mix64(wiring.Component):
    """Wang's multiply-free 64-bit hash ``rng.mix64`` as a stalling pipeline.

    Structure: every addition ``a + b`` of a step (``~x + (x << 21)``, ``x + (x << 3)``, then
    ``+ (x << 8)``, …) is one stage per slice of ``64 / carry_segments`` bits, skewed: slice
    ``k`` is added in the first cycle in which its operand bits are there and after slice
    ``k - 1``, whose carry out is registered into it; the slices of the sum are registered as
    they are made, so the next addition starts on the low slice one cycle later while this
    one adds its high slices. Each xor-shift ``x ⊕ (x >> s)`` is registered (a LUT and a
    flip-flop per bit): it needs the high slices before it can make the low ones, so there the
    skew starts again, and read directly by the next addition it would be recomputed for
    every cycle and operand that reads it and put a LUT in front of the carry chains. A bit
    that a stage reads in a later cycle than the one it is made in is carried in delay
    registers, and only the bits some stage reads: 64 bits for each cycle of latency plus the
    few of a shifted operand that cross a slice boundary.

    Measured out of context (``bitprop synth --blocks rng``: the whole :class:`DrawGenerator`,
    and the 256 flip-flops of the synthesis wrapper's I/O shift registers): about 770 LUT4
    and 1,280 flip-flops at 51–54 MHz on UP5K with two carry segments; 840 LUT4 and 950
    flip-flops at 176 MHz on ECP5-25F with one.

    Parameters
    ----------
    carry_segments : int, 1, 2 or 4
        Pipeline each 64-bit two-operand addition over this many cycles (a
        ``64 / carry_segments``-bit slice per cycle, its carry registered into the next).
        1 suits ECP5; 2 lets the iCE40 UP5K close timing at 48 MHz.
    tag_width : int, >= 1
        Width of a side-band ``tag`` carried unchanged alongside each word.
    input_slices : int, 1, 2 or 4
        Read the input word in this many slices of ``64 / input_slices`` bits, slice ``k``
        ``k`` cycles after the handshake (see ``i``).

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"x": 64, "tag": tag_width})))
        Words to hash. Slice ``k`` of ``x`` is read in the ``k``-th cycle after the handshake
        in which the pipeline advances (``o.ready`` high), its first addition's slices as
        soon as their bits are there; what later cycles need of it is kept in registers.
        With ``input_slices = 1`` the whole word is read at the handshake and may change
        right after it; with more, ``x`` suits a running sum whose slices carry into each
        other through registers (slice ``k`` lags ``k`` additions behind). The low slice
        goes straight into a carry chain, so ``x`` should come from flip-flops.
    o : Out(stream.Signature(StructLayout({"x": 64, "tag": tag_width})))
        ``mix64(x)`` of each input word, in order, with its tag.
    clear : In(1)
        Synchronous flush: drops every word inside the pipeline (and ``o``'s pending word).

    Latency :func:`mix64_latency`: 9 cycles with one segment, 13 with two, 17 with four (one
    input slice); 10 and 15 as :class:`DrawGenerator` uses it on ECP5 and UP5K (1 segment
    and 2 input slices, 2 segments and 4 input slices). Throughput one word per cycle. All
    stages advance together whenever ``o.ready`` is high (``i.ready = o.ready``, a wire),
    empty stages included: the pipeline does not close bubbles, so that its clock enable is
    the consumer's ``o.ready`` and not a function of ``o.valid``. A consumer must therefore
    not wait for ``o.valid`` before raising ``o.ready``.
    """

    def __init__(self, *, carry_segments=1, tag_width=1, input_slices=1):
        if carry_segments not in (1, 2, 4):
            raise ValueError(f"carry_segments must be 1, 2 or 4; got {carry_segments!r}")
        check_int("tag_width", tag_width, 1)
        if input_slices not in (1, 2, 4):
            raise ValueError(f"input_slices must be 1, 2 or 4; got {input_slices!r}")
        self.carry_segments = carry_segments
        self.tag_width = tag_width
        self.input_slices = input_slices
        self.latency = mix64_latency(carry_segments, input_slices)
        layout = data.StructLayout({"x": 64, "tag": tag_width})
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        advance = self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        pipe = _Pipe(m, advance)
        source, nodes, result = _mix64_graph(self.carry_segments, self.input_slices)
        source.levels = [self.i.payload.x]
        for node in nodes:
            node.build(pipe)
        valid, tag = self.i.valid, self.i.payload.tag
        for n in range(self.latency):
            rv = Signal(name=f"valid{n}")
            rt = Signal(self.tag_width, name=f"tag{n}", reset_less=True)
            with m.If(self.clear):
                m.d.sync += rv.eq(0)
            with m.Elif(advance):
                m.d.sync += [rv.eq(valid), rt.eq(tag)]
            valid, tag = rv, rt
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.x.eq(result.read(pipe, 0, 64, self.latency)),
            self.o.payload.tag.eq(tag),
        ]
        return m


class DrawGenerator(wiring.Component):
    """Step keys and the stream of reinforcement draws of ``model/rng.py``, bit for bit.

    On ``start`` the generator drops whatever it was streaming, computes
    ``key = rng.step_key(seed, step, layer)`` (three passes through its :class:`Mix64`,
    ``3·(latency + 1) + 1`` cycles: 34 with one carry segment, 49 with two) and then streams,
    for ``w = 0, 1, 2, …`` without end, the hash ``x_w = mix64(key + w·WEYL)`` with its four
    events ``events[lane] = draw_lane < threshold``, ``draw_lane = (x_w >> 16·lane) & 0xFFFF``
    (the draws of flat elements ``4w … 4w+3``). A consumer takes as many words as it needs
    and the next ``start`` begins a new sweep.

    Parameters
    ----------
    carry_segments : int, 1, 2 or 4
        Passed to :class:`Mix64`; the Weyl running sum uses ``min(4, 2·carry_segments)``
        slices, and the hash reads its input in as many. 2 for iCE40 UP5K, 1 for ECP5.
    step_width : int, 1..64
        Width of the ``step`` port (mini-batch counter).
    layer_width : int, 1..64
        Width of the ``layer`` port.

    Attributes
    ----------
    seed : In(64)
    step : In(step_width)
    layer : In(layer_width)
        Hold stable from the cycle of ``start`` (included) until ``key_valid`` rises.
    threshold : In(16)
        The 16-bit event threshold ``rng.threshold(p)``; compared at the output, keep it stable
        during a sweep. 0 never fires; 65535 fires for every draw but 65535.
    start : In(1)
        Strobe: begin a new key and sweep.
    key : Out(64)
        The step key; valid while ``key_valid`` is high.
    key_valid : Out(1)
    o : Out(stream.Signature(StructLayout({"hash": 64, "events": 4})))
        Hash words of the sweep in order, one per cycle at most (throughput one word, four
        draws, per cycle; latency from a word entering the hash to ``o`` is
        ``Mix64.latency + 1``). ``o`` is a register; ``o.ready`` is part of the clock enable
        of the hash and the running sum, so drive it from flip-flops (or a LUT of them).
    """

    def __init__(self, *, carry_segments=1, step_width=32, layer_width=8):
        if carry_segments not in (1, 2, 4):
            raise ValueError(f"carry_segments must be 1, 2 or 4; got {carry_segments!r}")
        check_int("step_width", step_width, 1, 64)
        check_int("layer_width", layer_width, 1, 64)
        self.carry_segments = carry_segments
        self.step_width = step_width
        self.layer_width = layer_width
        super().__init__({
            "seed": In(64),
            "step": In(step_width),
            "layer": In(layer_width),
            "threshold": In(16),
            "start": In(1),
            "key": Out(64),
            "key_valid": Out(1),
            "o": Out(stream.Signature(data.StructLayout({"hash": 64, "events": 4}))),
        })

    def elaborate(self, platform):
        m = Module()
        nseg = min(4, 2 * self.carry_segments)
        m.submodules.mix = mix = Mix64(carry_segments=self.carry_segments, input_slices=nseg)
        sweeping = Signal()
        key = Signal(64, reset_less=True)    # for the `key` port only
        m.d.comb += self.key.eq(key)

        # -- output: the compare stage --------------------------------------------------------
        # The four `draw < threshold` comparisons get a cycle of their own, in the register
        # that is `o`. The threshold is registered beside the comparators (it is stable during
        # a sweep, and the key takes tens of cycles before the first word). The pipeline only
        # holds key words while not `sweeping` (`start` flushes it) and sweep words while
        # `sweeping`, so no tag marks them. The clock enable of the hash and of the running
        # sum is `~sweeping | ~cmp_valid | o.ready`: a consumer should drive `o.ready` from
        # flip-flops (HiddenWeightUpdate does, from two).
        layout = data.StructLayout({"hash": 64, "events": 4})
        internal = ~sweeping
        result = mix.o.payload.x
        threshold = Signal(16, reset_less=True)
        m.d.sync += threshold.eq(self.threshold)
        cmp_valid = Signal()
        word = Signal(layout, reset_less=True)
        with m.If(~cmp_valid | self.o.ready):
            m.d.sync += [
                cmp_valid.eq(mix.o.valid & ~internal),
                word.hash.eq(result),
                word.events.eq(Cat(
                    result[16 * lane:16 * (lane + 1)] < threshold for lane in range(4))),
            ]
        m.d.comb += [
            mix.o.ready.eq(internal | ~cmp_valid | self.o.ready),
            self.o.valid.eq(cmp_valid),
            self.o.payload.eq(word),
        ]

        # -- the hash's input: the Weyl running sum v_w = key + w·WEYL, or a key pass's word --
        # `nseg` slices of `seg` bits whose carries are registered, so that after t bumps
        # slice k holds slice k of v_(t-k) (it starts adding k bumps after a load, adding 0
        # until then). Mix64 reads slice k of a word k cycles after it takes the word
        # (`input_slices`), so it takes these registers as they are: no register re-aligns
        # the slices, and none holds Mix64's input. A key pass's word is loaded into the same
        # registers and stays there while the pass runs. Twice the hash's segments (at most
        # 4): a slice's carry out leaves the chain through a LUT and travels to its
        # flip-flop, and a load goes through a LUT after the chain, so it needs a shorter one.
        seg = 64 // nseg
        acc = [Signal(seg, name=f"weyl{k}", reset_less=True) for k in range(nseg)]
        carry = [Signal(name=f"weyl_c{k}", reset_less=True) for k in range(nseg - 1)]
        bump = Signal()
        started = Signal(nseg)   # started[k]: slice k adds (k bumps since the load)
        with m.If(bump):
            m.d.sync += started.eq(Cat(1, started[:-1]) | started)
            for k in range(nseg):
                # A slice not yet started adds 0 (and its carry in is still 0): gating the
                # operand rather than the clock enable keeps one enable for all slices.
                w_k = (WEYL >> (k * seg)) & ((1 << seg) - 1)
                total = acc[k] + Mux(started[k], w_k, 0) + (carry[k - 1] if k else 0)
                m.d.sync += acc[k].eq(total[:seg])
                if k < nseg - 1:
                    m.d.sync += carry[k].eq(total[seg])

        # -- control --------------------------------------------------------------------------
        # `start` loads the first key pass's word; each pass's hash loads the next pass's
        # word, and the last one's, the key, starts the running sum and the sweep.
        keying = Signal(3)           # one-hot: which key pass is running
        sent = Signal()              # that pass's word has entered the pipeline
        m.d.comb += [
            mix.clear.eq(self.start),
            bump.eq(sweeping & mix.i.ready),
            mix.i.valid.eq(sweeping | (keying.any() & ~sent)),
            mix.i.payload.x.eq(Cat(*acc)),
        ]

        def load_counter(value):
            return [a.eq(value[k * seg:(k + 1) * seg]) for k, a in enumerate(acc)]
        with m.If(mix.i.valid & mix.i.ready & ~sweeping):
            m.d.sync += sent.eq(1)
        with m.If(mix.o.valid & internal):
            m.d.sync += [sent.eq(0), keying.eq(keying << 1)]
            with m.If(keying[2]):
                m.d.sync += [key.eq(result), started.eq(1), *load_counter(result),
                             sweeping.eq(1), self.key_valid.eq(1)]
                m.d.sync += [c.eq(0) for c in carry]
            with m.Else():
                m.d.sync += load_counter(result ^ Mux(keying[0], self.step, self.layer))
        with m.If(self.start):
            m.d.sync += [keying.eq(1), sent.eq(0), sweeping.eq(0),
                         self.key_valid.eq(0), cmp_valid.eq(0),
                         *load_counter(self.seed ^ SEED_SALT)]
        return m
