"""Class scores to margin, trigger and prediction.

Implements :func:`bitprop.model.ops.margin`, :func:`~bitprop.model.ops.trigger` and
:func:`~bitprop.model.ops.predict` for one sample (ALGORITHMS.md section 2).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Scoring"]


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


class Scoring(wiring.Component):
    """Margin ``ŷ_y − max_{c≠y} ŷ_c``, trigger ``margin < threshold`` and ``argmax ŷ``.

    The class scores ``ŷ_c`` of one sample (the pre-activations ``z`` of the fixed classifier's
    rows, for example straight from :class:`~bitprop.rtl.xnor_popcount.XnorPopcountArray` with
    ``lanes = pe``) arrive ``lanes`` at a time in ``BEATS = ⌈n_classes / lanes⌉`` valid beats:
    beat ``b`` carries classes ``b·lanes … b·lanes + lanes − 1`` in lanes ``0 … lanes − 1``;
    lanes beyond ``n_classes`` in the last beat are ignored. The block counts beats itself
    (after reset it expects beat 0), so the array's ``out_valid`` can drive ``valid``.

    Each lane keeps its own running maximum (with its class index), the maximum over the
    classes other than the label, and the label's score; after the last beat a registered tree
    combines the lanes (the lowest class index wins ties, as ``np.argmax``). Bit-exact with
    ``ops.margin``, ``ops.trigger`` and ``ops.predict``.

    Parameters
    ----------
    n_classes : int
        Number of classes C (at least 2, so that the margin is defined).
    max_k : int
        Largest classifier input width K; scores lie in ``[−K, K]``. Use the array's ``k_max``
        so that the widths match.
    lanes : int, optional
        Scores per beat (default 1).

    Attributes
    ----------
    valid : In(1)
        A beat of scores is on ``scores`` this cycle. No back-pressure.
    scores : In(ArrayLayout(signed(bits(max_k) + 1), lanes))
        The beat's scores, lane ``j`` = class ``b·lanes + j``.
    label : In(range(n_classes))
        The sample's true class y (must be < n_classes); read at beat 0 only.
    threshold : In(signed(bits(max_k) + 2))
        Trigger threshold ``⌊r·K⌋``; read when the result is formed, so hold it constant
        while samples of one layer are in flight.
    out_valid : Out(1)
        High for one cycle when ``margin``, ``trigger`` and ``prediction`` hold a new result;
        they keep it until the next result.
    margin : Out(signed(bits(max_k) + 2))
        ``ŷ_y − max_{c≠y} ŷ_c``, in ``[−2K, 2K]``.
    trigger : Out(1)
        1 iff ``margin < threshold`` (the sample triggers learning).
    prediction : Out(range(n_classes))
        ``argmax_c ŷ_c``, the lowest index on ties.

    ``bits(n)`` is ``n.bit_length()``.

    Timing
    ------
    Latency: ``LATENCY = ⌈log2 min(lanes, n_classes)⌉ + 4`` cycles from the last beat's valid
    cycle to ``out_valid`` (input register, lane registers, one register per combining level,
    the margin register, the output register). Throughput: one beat per cycle, back to back across
    samples, so a sample every ``BEATS`` cycles.
    """

    def __init__(self, *, n_classes, max_k, lanes=1):
        _positive(n_classes, "Class count")
        if n_classes < 2:
            raise ValueError(f"Class count must be at least 2, not {n_classes}")
        self._n_classes = n_classes
        self._max_k = _positive(max_k, "Maximum K")
        self._lanes = _positive(lanes, "Lane count")
        width = max_k.bit_length() + 1
        super().__init__({
            "valid": In(1),
            "scores": In(data.ArrayLayout(signed(width), lanes)),
            "label": In(range(n_classes)),
            "threshold": In(signed(width + 1)),
            "out_valid": Out(1),
            "margin": Out(signed(width + 1)),
            "trigger": Out(1),
            "prediction": Out(range(n_classes)),
        })

    n_classes = property(lambda self: self._n_classes, doc="Number of classes (int).")
    max_k = property(lambda self: self._max_k, doc="Largest classifier input width (int).")
    lanes = property(lambda self: self._lanes, doc="Scores per beat (int).")

    @property
    def beats(self):
        """Beats per sample, ``⌈n_classes / lanes⌉`` (int)."""
        return -(-self._n_classes // self._lanes)

    @property
    def latency(self):
        """Cycles from the last beat's valid cycle to ``out_valid`` (int)."""
        return (min(self._lanes, self._n_classes) - 1).bit_length() + 4

    def elaborate(self, platform):
        m = Module()
        n_classes, lanes, beats = self._n_classes, self._lanes, self.beats
        width = self._max_k.bit_length() + 1
        # Scores are kept in offset binary (sign bit flipped: the same order as unsigned
        # numbers), so every comparison is a plain carry chain with no sign fix-up, the
        # floor below every real score is 0, and the margin own − other is unchanged.
        flip = 1 << (width - 1)
        active = min(lanes, n_classes)

        beat = Signal(range(beats))
        base = Signal(range(beats * lanes))  # class index of lane 0 in this beat
        label_held = Signal(range(n_classes))
        is_first = beat == 0
        is_last = beat == beats - 1
        label = Mux(is_first, self.label, label_held)
        with m.If(self.valid):
            with m.If(is_last):
                m.d.sync += [beat.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), base.eq(base + lanes)]
            with m.If(is_first):
                m.d.sync += label_held.eq(self.label)

        # Input register (below, per lane): the beat's scores and control bits.
        last_in = Signal()
        done = Signal()
        m.d.sync += [last_in.eq(self.valid & is_last), done.eq(last_in)]

        # Per-lane running state over the beats of a sample. The control bits are registered
        # with the scores so that each state bit's next value is one LUT4 after the carry
        # chain of its comparator (D = Mux(start | greater, score, state)), with the enables
        # and the restart of ``other`` to the floor (0) coming straight from flip-flops.
        lane_state = []
        for j in range(active):
            score = Signal(width, name=f"score{j}", reset_less=True)
            cls = Signal(range(n_classes), name=f"cls{j}", reset_less=True)
            is_own = Signal(name=f"is_own{j}", reset_less=True)
            start = Signal(name=f"start{j}", reset_less=True)  # beat 0 of a sample
            on = Signal(name=f"on{j}")                          # lane real in a valid beat
            other_on = Signal(name=f"other_on{j}")              # ... and may move ``other``
            other_floor = Signal(name=f"other_floor{j}")        # ... and restarts it
            # A lane is real in the last beat only if its class exists.
            real = self.valid & (~is_last | Const((beats - 1) * lanes + j < n_classes))
            own_now = label == base + j
            m.d.sync += [
                score.eq(self.scores[j].as_unsigned() ^ flip),
                cls.eq(base + j),
                is_own.eq(own_now),
                start.eq(is_first),
                on.eq(real),
                other_on.eq(real & ~own_now),
                other_floor.eq(real & is_first & own_now),
            ]
            best = Signal(width, name=f"best{j}", reset_less=True)
            best_idx = Signal(range(n_classes), name=f"best_idx{j}", reset_less=True)
            other = Signal(width, name=f"other{j}", reset_less=True)
            own = Signal(width, name=f"own{j}", reset_less=True)
            has_own = Signal(name=f"has_own{j}", reset_less=True)
            take_best = start | (score > best)
            with m.If(on):
                m.d.sync += [
                    best.eq(Mux(take_best, score, best)),
                    best_idx.eq(Mux(take_best, cls, best_idx)),
                ]
            with m.If(other_floor):
                m.d.sync += other.eq(0)
            with m.Elif(other_on):
                m.d.sync += other.eq(Mux(start | (score > other), score, other))
            with m.If(on & is_own):
                m.d.sync += own.eq(score)
            with m.If(on & (start | is_own)):
                m.d.sync += has_own.eq(is_own)
            lane_state.append((best, best_idx, other, own, has_own))

        # Registered tree over the lanes; the earlier operand wins exact ties only if its
        # class index is lower.
        level = lane_state
        depth = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                (b0, i0, o0, w0, h0), (b1, i1, o1, w1, h1) = level[i], level[i + 1]
                out = (Signal(width, name=f"best_l{depth}_{i // 2}", reset_less=True),
                       Signal(range(n_classes), name=f"best_idx_l{depth}_{i // 2}",
                              reset_less=True),
                       Signal(width, name=f"other_l{depth}_{i // 2}", reset_less=True),
                       Signal(width, name=f"own_l{depth}_{i // 2}", reset_less=True),
                       Signal(name=f"has_own_l{depth}_{i // 2}", reset_less=True))
                # One carry chain: compare (score, inverted class index) as a single key, so
                # an equal score with a lower index counts as larger.
                key0 = Cat(~i0, b0)
                key1 = Cat(~i1, b1)
                take1 = key1 > key0
                m.d.sync += [
                    out[0].eq(Mux(take1, b1, b0)),
                    out[1].eq(Mux(take1, i1, i0)),
                    out[2].eq(Mux(o1 > o0, o1, o0)),
                    out[3].eq(Mux(h0, w0, w1)),
                    out[4].eq(h0 | h1),
                ]
                nxt.append(out)
            if len(level) % 2:
                tail = level[-1]
                out = tuple(Signal.like(s, name=f"{s.name}_l{depth}", reset_less=True)
                            for s in tail)
                m.d.sync += [o.eq(s) for o, s in zip(out, tail)]
                nxt.append(out)
            level = nxt
            depth += 1
            delayed = Signal(name=f"done_l{depth}")
            m.d.sync += delayed.eq(done)
            done = delayed
        best, best_idx, other, own, _ = level[0]

        # Margin register, then the trigger comparison and the outputs.
        margin = Signal(signed(width + 1), reset_less=True)
        prediction = Signal(range(n_classes), reset_less=True)
        margin_done = Signal()
        m.d.sync += margin_done.eq(done)
        with m.If(done):
            m.d.sync += [margin.eq(own - other), prediction.eq(best_idx)]
        m.d.sync += self.out_valid.eq(margin_done)
        with m.If(margin_done):
            m.d.sync += [
                self.margin.eq(margin),
                self.trigger.eq(margin < self.threshold),
                self.prediction.eq(prediction),
            ]
        return m
