"""Hidden-weight update: batch records and the reinforcement sweep, read-modify-write lanes.

Golden model: :func:`bitprop.model.ops.update_delta` / :func:`~bitprop.model.ops.apply_update`
(batch) and :func:`~bitprop.model.ops.reinforce` (reinforcement, draws of
:mod:`bitprop.model.rng`).

Memory layout (shared with :mod:`bitprop.rtl.memory`): row ``j`` of a ``K_out × K_in``
hidden-weight matrix occupies ``R = ceil(K_in / lanes)`` consecutive words from
``base + j·R``; lane ``l`` of the row's word ``c`` is column ``c·lanes + l``; the padding lanes
of the last word are never changed.

Batch update: the record scheme
-------------------------------
The model applies ``H ← clamp(H + ΔH)`` once per batch, with ``ΔH[j, :] = Σ_n mask[n, j] ·
2·a*_{n,j} · a_prev[n, :]``: the clamp acts on the *sum*, so adding each record to ``H`` with
its own saturation would not be bit-exact (``h = h_max``, records +2 then −2: the model keeps
``h_max``, per-record saturation ends at ``h_max − 2``). This block therefore takes the batch's
records ``(unit j, sign s = a*_j)`` together with the stored input activations ``a_prev`` of
their samples, word by word: for each selected row ``j`` and each of its words ``c``, one beat
per record of that row carries the ``lanes`` bits of ``a_prev[n]`` at that word's columns and
``s``; the block sums ``±2`` per lane (``+2`` where ``a_prev`` agrees with ``s``) and, on the
word's ``last`` beat, reads the word once, adds the summed change with one saturation and
writes it back. So only the selected rows are read-modify-written, each word once per batch,
and the result equals the model's for any number of records. The summed change is clamped to
``±2·h_max`` first (exact: a larger change saturates anyway), so the adder is ``b + 2`` bits.

All records of one word must arrive as one run of beats ending with ``last``, once per batch
(a word seen in two runs would be clamped twice; there is also no read-after-write bypass
for a word read again within 6 cycles of its read).

Reinforcement sweep
-------------------
``sweep_start`` computes the step key with the block's :class:`~bitprop.rtl.rng.DrawGenerator`
and visits every word of the layer once: element ``i = j·K_in + col`` (flat, row-major, as in
the model) takes the ``i``-th draw of the generator's stream, so a word consumes as many
events as it has real lanes (``row_tail`` for a row's last word, else ``lanes``) from a small
gearbox fed four events per hash; the lanes whose event fired move away from zero,
``h ← h + 2·sign(h)``, saturating at ``±h_max``.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from bitprop.model.ops import hidden_range

from .memory import SinglePortSignature
from .params import check_int
from .rng import DrawGenerator

__all__ = ["HiddenWeightUpdate"]



class HiddenWeightUpdate(wiring.Component):
    """Read-modify-write lanes over the hidden-weight memory: batch records and reinforcement.

    Parameters
    ----------
    lanes : int, 1..16
        Hidden weights per memory word.
    hidden_bits : int, 2..32
        Bits ``b`` per hidden weight; values stay odd in ``[−h_max, h_max]``,
        ``h_max = 2^(b−1) − 1``.
    addr_width : int, >= 1
        Width of memory word addresses.
    max_records : int, >= 1
        Most records (beats) one word may receive in a batch (samples × time steps × 1);
        sets the width of the per-lane change counters (``bits_for(2·max_records) + 1``).
        More beats than this for one word wrap the counter.
    carry_segments : int, 1, 2 or 4
        Of the reinforcement generator (:class:`~bitprop.rtl.rng.DrawGenerator`); 2 on UP5K.
    step_width, layer_width : int
        Widths of ``step`` and ``layer`` (passed to the generator).
    mem_latency : int, 1..3
        Cycles from a read's ``r_en`` to its word on ``r_data`` (the training core registers
        the memory's inputs and its output: 3); the word is taken that many cycles after
        the read (``r_data`` need not hold it any longer).

    Attributes
    ----------
    mem : Out(SinglePortSignature(addr_width, lanes·hidden_bits))
        To :class:`~bitprop.rtl.memory.HiddenWeightMemory`; one access per cycle.
    rec : In(stream.Signature(StructLayout({...})))
        Fields ``addr``: addr_width, ``a_prev``: lanes, ``desired``: 1, ``mask``: lanes,
        ``last``: 1. Batch-update beats (see the module notes): ``a_prev`` bit ``l`` = the
        record's input activation at lane ``l`` (1 = +1), ``desired`` = its sign ``s``
        (1 = +1), ``mask`` = the lanes to update (its value on the ``last`` beat counts),
        ``last`` = the word's final beat. One beat per cycle.
    sweep_start : In(1)
        Strobe (while not ``busy``): reinforce ``sweep_rows × row_words`` words from
        ``sweep_base`` with the draws of ``(seed, step, layer)`` and ``threshold``.
    sweep_base : In(addr_width)
    sweep_rows : In(addr_width)
        ``K_out`` (>= 1).
    row_words : In(addr_width)
        ``R = ceil(K_in / lanes)`` (>= 1).
    row_tail : In(range(lanes + 1))
        Real lanes of a row's last word, ``K_in − (R − 1)·lanes`` (1..lanes).
    seed : In(64)
    step : In(step_width)
    layer : In(layer_width)
    threshold : In(16)
        Hold all sweep inputs stable until ``busy`` falls.
    written : Out(Signature({"valid": Out(1), "addr": Out(addr_width), "signs": Out(lanes)}))
        Every word written (``valid`` for one cycle, no back-pressure), with its new binary
        weights (bit ``l`` = 1 iff lane ``l`` > 0): for keeping the binary-weight memory equal
        to ``sign(H)``.
    busy : Out(1)
        A sweep or a word's update is in progress (low again once all writes are done).

    Throughput: one record beat per cycle (a batch takes ``R × records`` beats); the memory
    port reads and writes each word once, and a read cannot share a cycle with a write, so
    at most one word per two cycles. The sweep hands out a word at most every other cycle
    too: ``lanes / 2`` hidden weights per cycle (the generator supplies four draws per cycle,
    enough for ``lanes <= 8``). Latency: a word is written 6 cycles after its read; the
    sweep's first word waits for the step key (about 40 cycles with ``carry_segments=1``).
    """

    def __init__(self, *, lanes, hidden_bits, addr_width, max_records, carry_segments=1,
                 step_width=32, layer_width=8, mem_latency=1):
        check_int("lanes", lanes, 1, 16)
        check_int("hidden_bits", hidden_bits, 2, 32)
        check_int("addr_width", addr_width, 1)
        check_int("max_records", max_records, 1)
        if carry_segments not in (1, 2, 4):
            raise ValueError(f"carry_segments must be 1, 2 or 4; got {carry_segments!r}")
        check_int("step_width", step_width, 1, 64)
        check_int("layer_width", layer_width, 1, 64)
        check_int("mem_latency", mem_latency, 1, 3)
        self.mem_latency = mem_latency
        self.lanes = lanes
        self.hidden_bits = hidden_bits
        self.addr_width = addr_width
        self.max_records = max_records
        self.carry_segments = carry_segments
        self.step_width = step_width
        self.layer_width = layer_width
        self.hmax = hidden_range(hidden_bits)
        self.delta_width = bits_for(2 * max_records) + 1
        super().__init__({
            "mem": Out(SinglePortSignature(addr_width=addr_width,
                                           data_width=lanes * hidden_bits)),
            "rec": In(stream.Signature(data.StructLayout({
                "addr": addr_width, "a_prev": lanes, "desired": 1, "mask": lanes,
                "last": 1}))),
            "sweep_start": In(1),
            "sweep_base": In(addr_width),
            "sweep_rows": In(addr_width),
            "row_words": In(addr_width),
            "row_tail": In(range(lanes + 1)),
            "seed": In(64),
            "step": In(step_width),
            "layer": In(layer_width),
            "threshold": In(16),
            "written": Out(wiring.Signature({
                "valid": Out(1), "addr": Out(addr_width), "signs": Out(lanes)})),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L, b, hmax = self.lanes, self.hidden_bits, self.hmax
        dw = self.delta_width
        cw = b + 2    # clamped change: |Δ| <= 2·h_max < 2^b

        # -- batch: accumulate a word's records, then hand it to the RMW engine -------------
        acc = [Signal(signed(dw), name=f"acc{lane}") for lane in range(L)]
        slot_full = Signal()
        slot_addr = Signal(self.addr_width, reset_less=True)
        slot_delta = [Signal(signed(dw), name=f"slot_delta{lane}", reset_less=True)
                      for lane in range(L)]
        slot_mask = Signal(L, reset_less=True)
        slot_take = Signal()    # the RMW engine takes the slot this cycle
        beat = self.rec.valid & self.rec.ready
        m.d.comb += self.rec.ready.eq(~slot_full)
        p = self.rec.payload
        for lane in range(L):
            step = Mux(p.a_prev[lane] == p.desired, 2, -2)
            total = acc[lane] + step
            with m.If(beat):
                m.d.sync += acc[lane].eq(Mux(p.last, 0, total))
                with m.If(p.last):
                    m.d.sync += slot_delta[lane].eq(total)
        with m.If(slot_take):
            m.d.sync += slot_full.eq(0)
        with m.If(beat & p.last):
            m.d.sync += [slot_full.eq(1), slot_addr.eq(p.addr), slot_mask.eq(p.mask)]
        accumulating = Signal()   # beats of a word seen, its last beat not yet
        with m.If(beat):
            m.d.sync += accumulating.eq(~p.last)

        # -- sweep: the events of each word's real lanes, then the word addresses ----------
        m.submodules.gen = gen = DrawGenerator(carry_segments=self.carry_segments,
                                               step_width=self.step_width,
                                               layer_width=self.layer_width)
        m.d.comb += [
            gen.seed.eq(self.seed),
            gen.step.eq(self.step),
            gen.layer.eq(self.layer),
            gen.threshold.eq(self.threshold),
            gen.start.eq(self.sweep_start),
        ]
        # Event ring: `size` slots (a power of two >= 2·lanes + 8), four events written per
        # hash at a 4-aligned slot, a word's `need` events read from any slot by a rotation.
        # Every decision below depends on registers only (occupancy, the row position), so
        # the gearbox is a few LUT levels deep.
        size = 1 << (2 * L + 7).bit_length()
        ring = Signal(size, reset_less=True)
        wp = Signal(range(size))     # next slot to write (multiple of 4)
        rp = Signal(range(size))     # next slot to read
        occ = Signal(range(size + 1))
        g_active = Signal()          # words left to hand out
        # Loaded one cycle after `sweep_start`, before `g_active` rises: no reset needed.
        g_rows = Signal(self.addr_width, reset_less=True)   # rows left after the current one
        g_cols = Signal(self.addr_width, reset_less=True)   # words left in the row after it
        g_tail = Signal(reset_less=True)     # the current word is its row's last
        g_last = Signal(reset_less=True)     # ... and the sweep's last
        # The sweep's shape, decoded into registers every cycle (the ports are stable from
        # `sweep_start` on; the counters load from these one cycle after it).
        cfg_words_m1 = Signal(self.addr_width, reset_less=True)
        cfg_rows_m1 = Signal(self.addr_width, reset_less=True)
        cfg_words_one = Signal(reset_less=True)
        cfg_words_two = Signal(reset_less=True)
        cfg_rows_one = Signal(reset_less=True)
        cfg_rows_two = Signal(reset_less=True)
        cfg_tail = Signal(range(L + 1), reset_less=True)
        cfg_tail_mask = Signal(L, reset_less=True)
        m.d.sync += [
            cfg_words_m1.eq(self.row_words - 1),
            cfg_rows_m1.eq(self.sweep_rows - 1),
            cfg_words_one.eq(self.row_words == 1),
            cfg_words_two.eq(self.row_words == 2),
            cfg_rows_one.eq(self.sweep_rows == 1),
            cfg_rows_two.eq(self.sweep_rows == 2),
            cfg_tail.eq(self.row_tail),
            cfg_tail_mask.eq((Const(1, L + 1) << self.row_tail) - 1),
        ]
        # The current word's event count and lane mask, registered with `g_tail`.
        need = Signal(range(L + 1), reset_less=True)
        lane_mask = Signal(L, reset_less=True)
        all_lanes = Const((1 << L) - 1, L)

        def set_tail(value):
            return [g_tail.eq(value), need.eq(Mux(value, cfg_tail, L)),
                    lane_mask.eq(Mux(value, cfg_tail_mask, all_lanes))]
        # The word handed to the RMW engine.
        f_valid = Signal()
        f_fire = Signal(L, reset_less=True)
        f_mask = Signal(L, reset_less=True)
        f_last = Signal()
        sw_take = Signal()           # the RMW engine takes it this cycle

        w_valid = Signal()           # the RMW engine writes this cycle (no read then)
        # Registered, so that the generator's `o.ready` is a LUT from flip-flops: the last
        # cycle's occupancy with room for one more fill since then.
        room = Signal()
        m.d.sync += room.eq(occ <= size - 8)
        fill = Signal()
        m.d.comb += [
            gen.o.ready.eq(g_active & room),
            fill.eq(gen.o.valid & gen.o.ready),
        ]
        # Emit only with a full word's worth buffered (need <= lanes), known from registers
        # alone: `enough` says occ >= lanes now, from last cycle's occupancy: at least
        # 2·lanes if a word left then, at least lanes if none did. The loop through `emit` is
        # two LUTs, no adder; the ring is sized so this never starves a sweep (>= 2·lanes +
        # 8 slots). The generator never stops, so a sweep's last word is not held up long.
        emit = Signal()
        emitted = Signal()       # a word was emitted last cycle
        enough = Signal()
        m.d.comb += emit.eq(g_active & enough & ~emitted & (~f_valid | ~w_valid))
        m.d.sync += enough.eq((occ >= 2 * L) | (~emit & (occ >= L)))
        window = (Cat(ring, ring) >> rp)[:L]
        with m.If(fill):
            for slot in range(size // 4):
                with m.If(wp[2:] == slot):
                    m.d.sync += ring[4 * slot:4 * slot + 4].eq(gen.o.payload.events)
            m.d.sync += wp.eq(wp + 4)
        m.d.sync += occ.eq(occ + Mux(fill, 4, 0) - Mux(emit, need, 0))
        with m.If(sw_take):
            m.d.sync += f_valid.eq(0)
        # Equalities of the row/column counters, registered one step ahead so that the next
        # word's flags are a LUT or two from flip-flops.
        cols_one = Signal(reset_less=True)     # g_cols == 1
        rows_zero = Signal(reset_less=True)    # g_rows == 0
        rows_one = Signal(reset_less=True)     # g_rows == 1
        # The row/column counters advance the cycle after an emission (their clock enable is
        # then a flip-flop, not the emission logic), so emissions are at least two cycles
        # apart, as fast as the RMW engine takes words anyway.
        m.d.sync += emitted.eq(emit)
        with m.If(emit):
            m.d.sync += [
                rp.eq(rp + need),
                f_valid.eq(1),
                f_fire.eq(window & lane_mask),
                f_mask.eq(lane_mask),
                f_last.eq(g_last),
            ]
        with m.If(emitted):
            with m.If(g_tail):
                m.d.sync += [
                    g_cols.eq(cfg_words_m1),
                    cols_one.eq(cfg_words_two),
                    *set_tail(cfg_words_one),
                    g_rows.eq(g_rows - 1),
                    rows_zero.eq(rows_one),
                    rows_one.eq(g_rows == 2),
                    g_last.eq(cfg_words_one & rows_one),
                ]
            with m.Else():
                m.d.sync += [
                    g_cols.eq(g_cols - 1),
                    cols_one.eq(g_cols == 2),
                    *set_tail(cols_one),
                    g_last.eq(cols_one & rows_zero),
                ]
            with m.If(g_last):
                m.d.sync += g_active.eq(0)

        sweeping = Signal()
        sw_addr = Signal(self.addr_width, reset_less=True)
        with m.If(sw_take):
            m.d.sync += sw_addr.eq(sw_addr + 1)
            with m.If(f_last):
                m.d.sync += sweeping.eq(0)
        start_q = Signal()
        m.d.sync += start_q.eq(self.sweep_start)
        with m.If(self.sweep_start):
            m.d.sync += [
                sweeping.eq(1),
                sw_addr.eq(self.sweep_base),
                g_active.eq(0),
                f_valid.eq(0),
                wp.eq(0),
                rp.eq(0),
                occ.eq(0),
                enough.eq(0),
            ]
        with m.If(start_q):
            m.d.sync += [
                g_active.eq(1),
                g_rows.eq(cfg_rows_m1),
                g_cols.eq(cfg_words_m1),
                *set_tail(cfg_words_one),
                g_last.eq(cfg_words_one & cfg_rows_one),
                cols_one.eq(cfg_words_two),
                rows_zero.eq(cfg_rows_one),
                rows_one.eq(cfg_rows_two),
            ]

        # -- the RMW engine: R (read) → D (data) → Q, E (registered) → C (change) → S (sum)
        # → W (write).
        # A read issues only in a cycle without a write; writes never wait.
        issue = Signal()
        sweep_ready = f_valid
        m.d.comb += [
            issue.eq(~w_valid & (sweep_ready | slot_full)),
            sw_take.eq(~w_valid & sweep_ready),
            slot_take.eq(~w_valid & ~sweep_ready & slot_full),
        ]
        # Per lane change: batch Δ clamped to ±2·h_max, or a sweep's fire flag.
        d_valid = Signal()
        d_addr = Signal(self.addr_width, reset_less=True)
        d_sweep = Signal(reset_less=True)
        d_delta = [Signal(signed(cw), name=f"d_delta{lane}", reset_less=True)
                   for lane in range(L)]
        d_fire = Signal(L, reset_less=True)
        d_mask = Signal(L, reset_less=True)
        m.d.sync += d_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [
                d_addr.eq(Mux(sw_take, sw_addr, slot_addr)),
                d_sweep.eq(sw_take),
                d_fire.eq(f_fire),
                d_mask.eq(Mux(sw_take, f_mask, slot_mask)),
            ]
            for lane in range(L):
                dl = slot_delta[lane]
                m.d.sync += d_delta[lane].eq(
                    Mux(dl > 2 * hmax, 2 * hmax, Mux(dl < -2 * hmax, -2 * hmax, dl)))

        # D → Q → E: the word is registered twice as it leaves the memory. A block RAM's or
        # SPRAM's clock-to-output time leaves no room for logic in the same cycle, and on
        # ECP5 the 32 block RAMs of the hidden weights lie all over the device: Q only
        # captures the word (the placer can put each bit beside its block RAM), E carries
        # it to the change logic. Both paths limited Fmax. A memory of latency 2 or 3 holds
        # the word in Q's or E's cycle already (its own registers take their place).
        def delayed(name, signal):
            out = Signal.like(signal, name=name, reset_less=True)
            m.d.sync += out.eq(signal)
            return out

        q_valid, e_valid = Signal(), Signal()
        m.d.sync += [q_valid.eq(d_valid), e_valid.eq(q_valid)]
        e_old = self.mem.r_data
        for stage in ("e_old", "q_old")[:3 - self.mem_latency]:
            e_old = delayed(stage, e_old)
        e_addr, e_sweep, e_fire, e_mask = (
            delayed(f"e_{n}", delayed(f"q_{n}", v))
            for n, v in (("addr", d_addr), ("sweep", d_sweep), ("fire", d_fire),
                         ("mask", d_mask)))
        e_delta = [delayed(f"e_delta{lane}", delayed(f"q_delta{lane}", d_delta[lane]))
                   for lane in range(L)]

        # E → C: form each lane's change here, so that C is one addition and the
        # saturation. A lane outside the mask changes by 0 (stays as it is).
        c_valid = Signal()
        c_addr = Signal(self.addr_width, reset_less=True)
        c_old = Signal(L * b, reset_less=True)
        c_change = [Signal(signed(cw), name=f"c_change{lane}", reset_less=True)
                    for lane in range(L)]
        m.d.sync += [
            c_valid.eq(e_valid),
            c_addr.eq(e_addr),
            c_old.eq(e_old),
        ]
        for lane in range(L):
            negative = e_old[(lane + 1) * b - 1]
            away = Mux(negative, -2, 2)
            change = Mux(e_sweep, Mux(e_fire[lane], away, 0), e_delta[lane])
            m.d.sync += c_change[lane].eq(Mux(e_mask[lane], change, 0))

        # C → S: one addition per lane, registered.
        s_valid = Signal()
        s_addr = Signal(self.addr_width, reset_less=True)
        s_sum = [Signal(signed(cw + 1), name=f"s_sum{lane}", reset_less=True)
                 for lane in range(L)]
        m.d.sync += [s_valid.eq(c_valid), s_addr.eq(c_addr)]
        for lane in range(L):
            h = c_old[lane * b:(lane + 1) * b].as_signed()
            m.d.sync += s_sum[lane].eq(h + c_change[lane])

        # S → W: saturate by bit tests, not comparisons: the sum is odd, so it is above
        # h_max = 2^(b-1) - 1 iff it is non-negative with a bit >= b-1 set, and below -h_max
        # iff it is negative without all those bits set.
        w_addr = Signal(self.addr_width, reset_less=True)
        w_data = Signal(L * b, reset_less=True)
        lanes_new = []
        for lane in range(L):
            total = s_sum[lane]
            top = total[b - 1:]
            high = ~total[-1] & top.any()
            low = total[-1] & ~top.all()
            lanes_new.append(Mux(high, hmax, Mux(low, -hmax, total))[:b])
        m.d.sync += [
            w_valid.eq(s_valid),
            w_addr.eq(s_addr),
            w_data.eq(Cat(*lanes_new)),
        ]
        m.d.comb += [
            self.mem.addr.eq(Mux(w_valid, w_addr, Mux(sw_take, sw_addr, slot_addr))),
            self.mem.r_en.eq(issue),
            self.mem.w_en.eq(w_valid),
            self.mem.w_data.eq(w_data),
            self.written.valid.eq(w_valid),
            self.written.addr.eq(w_addr),
            self.written.signs.eq(Cat(
                ~w_data[(lane + 1) * b - 1] for lane in range(L))),
            self.busy.eq(sweeping | slot_full | accumulating | d_valid | q_valid | e_valid |
                         c_valid | s_valid | w_valid),
        ]
        return m
