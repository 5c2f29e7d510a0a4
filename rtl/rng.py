"""The counter-based generator in hardware: Wang's mix64, step keys and reinforcement draws.

The golden model is :mod:`bitprop.model.rng`; this module computes the same bits:

- :class:`Mix64` is ``rng.mix64`` as a pipeline with a register after each of its seven steps,
  between the two additions of the steps that multiply by 265 and 21 (one carry chain per
  cycle), and, with ``carry_segments > 1``, inside each 64-bit addition, so that no carry
  chain is longer than ``64 / carry_segments`` bits.
- :class:`DrawGenerator` computes the key ``rng.step_key(seed, step, layer) =
  mix64(mix64(mix64(seed ⊕ SEED_SALT) ⊕ step) ⊕ layer)`` by sending three words through its
  one :class:`Mix64`, then streams the hashes ``x_w = mix64(key + w·WEYL)`` for
  ``w = 0, 1, 2, …`` (the Weyl sum is a running sum: ``WEYL`` is added per word, no
  multiplier) together with the four events
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



def mix64_latency(carry_segments):
    """Return the latency in cycles of a :class:`Mix64` with ``carry_segments``."""
    xors = sum(1 for s in MIX64_STEPS if s[0] == "xor")
    adds = sum(len(s[2]) for s in MIX64_STEPS if s[0] == "add")
    return 1 + xors + adds * carry_segments


class Mix64(wiring.Component):
    """Wang's multiply-free 64-bit hash ``rng.mix64`` as a stalling pipeline.

    Measured out of context (``bitprop synth --blocks rng``, which includes the generator's
    control): about 1,000 LUT4 and 1,700 flip-flops at 50 MHz on UP5K with two carry
    segments; 900 LUT4 and 1,000 flip-flops at 180 MHz on ECP5-25F with one.

    Parameters
    ----------
    carry_segments : int, 1, 2 or 4
        Pipeline each 64-bit two-operand addition over this many cycles (a
        ``64 / carry_segments``-bit slice per cycle, its carry registered into the next).
        1 suits ECP5; 2 lets the iCE40 UP5K close timing at 48 MHz.
    tag_width : int, >= 1
        Width of a side-band ``tag`` carried unchanged alongside each word.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"x": 64, "tag": tag_width})))
        Words to hash.
    o : Out(stream.Signature(StructLayout({"x": 64, "tag": tag_width})))
        ``mix64(x)`` of each input word, in order, with its tag.
    clear : In(1)
        Synchronous flush: drops every word inside the pipeline (and ``o``'s pending word).

    Latency ``4 + 6·carry_segments`` cycles: an input register, one stage per xor-shift step
    and ``carry_segments`` stages per two-operand addition (the products by 265 and 21 are
    two additions each, six in all): 10 cycles with one segment, 16 with two. Throughput one
    word per cycle. All stages advance together when ``o`` is not stalled (``i.ready =
    ~o.valid | o.ready``, a combinational path).
    """

    def __init__(self, *, carry_segments=1, tag_width=1):
        if carry_segments not in (1, 2, 4):
            raise ValueError(f"carry_segments must be 1, 2 or 4; got {carry_segments!r}")
        check_int("tag_width", tag_width, 1)
        self.carry_segments = carry_segments
        self.tag_width = tag_width
        self.latency = mix64_latency(carry_segments)
        layout = data.StructLayout({"x": 64, "tag": tag_width})
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]
        valid, x, tag = self.i.valid, self.i.payload.x, self.i.payload.tag
        n = 0

        def stage(v, nxt, t):
            nonlocal n
            rv = Signal(name=f"s{n}_valid")
            rt = Signal(self.tag_width, name=f"s{n}_tag", reset_less=True)
            rx = Signal(len(nxt), name=f"s{n}_x", reset_less=True)
            n += 1
            with m.If(self.clear):
                m.d.sync += rv.eq(0)
            with m.Elif(advance):
                m.d.sync += [rv.eq(v), rx.eq(nxt), rt.eq(t)]
            return rv, rx, rt

        # Register the input word first: whatever selects it does not share a cycle with the
        # first addition.
        valid, x, tag = stage(valid, x, tag)
        seg = 64 // self.carry_segments

        def add(a, b, keep):
            """Pipeline ``a + b`` (mod 2^64) over the carry segments; carry ``keep`` along.

            Between segments the operands' unused high bits, the result bits so far and the
            carry are held (Yosys merges held bits that duplicate ``keep``).
            """
            nonlocal valid, tag
            keep = keep if keep is not None else Const(0, 0)
            low = Const(0, 0)
            carry = Const(0, 1)
            for k in range(self.carry_segments):
                total = a[:seg] + b[:seg] + carry
                low = Cat(low, total[:seg])
                if k == self.carry_segments - 1:
                    packed = Cat(low, keep)
                else:
                    packed = Cat(low, total[seg], a[seg:], b[seg:], keep)
                valid, held, tag = stage(valid, packed, tag)
                pos = 0

                def take(width):
                    nonlocal pos
                    pos += width
                    return held[pos - width:pos]
                low = take(len(low))
                if k < self.carry_segments - 1:
                    carry = take(1)
                    a = take(len(a) - seg)
                    b = take(len(b) - seg)
                keep = take(len(keep))
            return low, keep

        for step in MIX64_STEPS:
            if step[0] == "xor":
                valid, x, tag = stage(valid, x ^ (x >> step[1]), tag)
                continue
            # x + Σ (x << s) as a chain of two-operand additions, one per pipeline step: a
            # single carry chain per cycle (three-operand sums map to two chained carry chains
            # on iCE40, which halves the clock).
            _, invert, shifts = step
            acc = ~x if invert else x
            for i, s in enumerate(shifts):
                last = i == len(shifts) - 1
                acc, kept = add(acc[:64], (x << s)[:64], None if last else x)
                if not last:
                    x = kept
            x = acc
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.x.eq(x),
            self.o.payload.tag.eq(tag),
        ]
        return m


class DrawGenerator(wiring.Component):
    """Step keys and the stream of reinforcement draws of ``model/rng.py``, bit for bit.

    On ``start`` the generator drops whatever it was streaming, computes
    ``key = rng.step_key(seed, step, layer)`` (three passes through its :class:`Mix64`, about
    ``3·(latency + 2) + carry_segments`` cycles) and then streams, for
    ``w = 0, 1, 2, …`` without end, the hash ``x_w = mix64(key + w·WEYL)`` with its four
    events ``events[lane] = draw_lane < threshold``, ``draw_lane = (x_w >> 16·lane) & 0xFFFF``
    (the draws of flat elements ``4w … 4w+3``). A consumer takes as many words as it needs
    and the next ``start`` begins a new sweep.

    Parameters
    ----------
    carry_segments : int, 1, 2 or 4
        Passed to :class:`Mix64`; the Weyl running sum uses ``min(4, 2·carry_segments)``
        slices. 2 for iCE40 UP5K, 1 for ECP5.
    step_width : int, 1..64
        Width of the ``step`` port (mini-batch counter).
    layer_width : int, 1..64
        Width of the ``layer`` port.

    Attributes
    ----------
    seed : In(64)
    step : In(step_width)
    layer : In(layer_width)
        Hold stable from ``start`` until ``key_valid`` rises.
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
        draws, per cycle; latency from an accepted word to ``o`` is ``Mix64.latency + 2``).
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
        m.submodules.mix = mix = Mix64(carry_segments=self.carry_segments, tag_width=1)
        key = Signal(64, reset_less=True)
        m.d.comb += self.key.eq(key)

        # -- output buffer: two entries, so that the pipeline's stall is a register ----------
        # The occupancy is kept as flags (`nonempty`, `full`) and `room` = ~full is its own
        # register: a word leaving the pipeline this cycle always fits, so the pipeline's
        # clock enable is one LUT away from flip-flops whatever the consumer does with
        # `o.ready`, and `o.valid` is a flip-flop.
        layout = data.StructLayout({"hash": 64, "events": 4})
        head = Signal(layout, reset_less=True)
        tail = Signal(layout, reset_less=True)
        nonempty = Signal()
        full = Signal()
        room = Signal(init=1)
        internal = mix.o.payload.tag
        result = mix.o.payload.x
        # A compare stage between the hash and the buffer: the four `draw < threshold`
        # comparisons get a cycle of their own. It advances when it is empty or the buffer
        # has room; the threshold is registered beside the comparators (it is stable during
        # a sweep, and the key takes tens of cycles before the first word).
        threshold = Signal(16, reset_less=True)
        m.d.sync += threshold.eq(self.threshold)
        cmp_valid = Signal()
        word = Signal(layout, reset_less=True)
        cmp_advance = ~cmp_valid | room
        with m.If(cmp_advance):
            m.d.sync += [
                cmp_valid.eq(mix.o.valid & ~internal),
                word.hash.eq(result),
                word.events.eq(Cat(
                    result[16 * lane:16 * (lane + 1)] < threshold for lane in range(4))),
            ]
        m.d.comb += [
            mix.o.ready.eq(internal | cmp_advance),
            self.o.valid.eq(nonempty),
            self.o.payload.eq(head),
        ]
        push = Signal()
        pop = Signal()
        m.d.comb += [
            push.eq(cmp_valid & room),
            pop.eq(self.o.valid & self.o.ready),
        ]
        # push only when not full (room); pop only when not empty.
        with m.If(pop & full):
            m.d.sync += head.eq(tail)
        with m.If(push & (~nonempty | (pop & ~full))):
            m.d.sync += head.eq(word)
        with m.If(push & nonempty & ~pop):
            m.d.sync += tail.eq(word)
        full_next = (full & ~pop) | (nonempty & ~full & push & ~pop)
        m.d.sync += [
            nonempty.eq(push | (nonempty & ~(pop & ~full))),
            full.eq(full_next),
            room.eq(~full_next),
        ]

        # -- the Weyl running sum v_w = key + w·WEYL ------------------------------------------
        # `nseg` slices of `seg` bits whose carries are registered: after t bumps slice k
        # holds slice k of v_(t-k) (it starts adding k bumps after a load), and a shift
        # register delays slice k by nseg-1-k further bumps so that all slices present the
        # same v. The nseg-1 bumps that fill this skew happen in state WARM, before the first
        # word is hashed. Twice the hash's segments (at most 4): a slice's carry out leaves
        # the chain through a LUT and travels to its flip-flop, so it needs a shorter chain.
        nseg = min(4, 2 * self.carry_segments)
        seg = 64 // nseg
        acc = [Signal(seg, name=f"weyl{k}", reset_less=True) for k in range(nseg)]
        carry = [Signal(name=f"weyl_c{k}", reset_less=True) for k in range(nseg)]
        delayed = [[acc[k]] + [Signal(seg, name=f"weyl{k}_d{d}", reset_less=True)
                               for d in range(nseg - 1 - k)] for k in range(nseg)]
        counter = Signal(64)
        m.d.comb += counter.eq(Cat(*[chain[-1] for chain in delayed]))
        bump = Signal()
        load = Signal()
        started = Signal(nseg)   # started[k]: slice k adds (k bumps since the load)
        with m.If(load):
            m.d.sync += started.eq(1)
            for k in range(nseg):
                m.d.sync += [c.eq(key[k * seg:(k + 1) * seg]) for c in delayed[k]]
                m.d.sync += carry[k].eq(0)
        with m.Elif(bump):
            m.d.sync += started.eq(Cat(1, started[:-1]) | started)
            for k in range(nseg):
                # A slice not yet started adds 0 (and its carry in is still 0): gating the
                # operand rather than the clock enable keeps one enable for all slices.
                w_k = (WEYL >> (k * seg)) & ((1 << seg) - 1)
                total = acc[k] + Mux(started[k], w_k, 0) + (carry[k - 1] if k else 0)
                m.d.sync += [acc[k].eq(total[:seg]), carry[k].eq(total[seg])]
                m.d.sync += [delayed[k][d].eq(delayed[k][d - 1])
                             for d in range(1, len(delayed[k]))]

        # -- control --------------------------------------------------------------------------
        # One-hot flags rather than a decoded state, so that `bump` and `load` (the enables of
        # the Weyl slices) are a LUT or two from flip-flops.
        salted = Signal(64)
        m.d.comb += salted.eq(self.seed ^ SEED_SALT)
        keying = Signal(3)           # one-hot: which key pass is running
        sent = Signal()              # that pass's word has entered the pipeline
        loading = Signal()
        warming = Signal()
        sweeping = Signal()
        warm = Signal(range(nseg))
        m.d.comb += [
            mix.clear.eq(self.start),
            load.eq(loading),
            bump.eq(warming | (sweeping & mix.i.ready)),
        ]
        with m.If(sweeping):
            m.d.comb += [
                mix.i.valid.eq(1),
                mix.i.payload.tag.eq(0),
                mix.i.payload.x.eq(counter),
            ]
        with m.Else():
            m.d.comb += [
                mix.i.valid.eq(keying.any() & ~sent),
                mix.i.payload.tag.eq(1),
                mix.i.payload.x.eq(Mux(keying[0], salted,
                                       key ^ Mux(keying[1], self.step, self.layer))),
            ]
        with m.If(mix.i.valid & mix.i.ready & ~sweeping):
            m.d.sync += sent.eq(1)
        with m.If(mix.o.valid & internal):
            m.d.sync += [key.eq(result), sent.eq(0), keying.eq(keying << 1),
                         loading.eq(keying[2])]
        with m.If(loading):
            m.d.sync += [loading.eq(0), warm.eq(0)]
            if nseg == 1:
                m.d.sync += [sweeping.eq(1), self.key_valid.eq(1)]
            else:
                m.d.sync += warming.eq(1)
        with m.If(warming):
            m.d.sync += warm.eq(warm + 1)
            with m.If(warm == nseg - 2):
                m.d.sync += [warming.eq(0), sweeping.eq(1), self.key_valid.eq(1)]
        with m.If(self.start):
            m.d.sync += [keying.eq(1), sent.eq(0), loading.eq(0), warming.eq(0),
                         sweeping.eq(0), self.key_valid.eq(0), nonempty.eq(0), full.eq(0),
                         room.eq(1), cmp_valid.eq(0)]
        return m
