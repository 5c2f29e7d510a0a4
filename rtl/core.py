"""The training core: whole mini-batch learning steps of a binary MLP, on-chip.

The core runs ALGORITHMS.md sections 2–6 for the schedule of a :class:`~bitprop.rtl.plan.
CorePlan` (rule ``local`` or ``bep``) with the datapath blocks of this package, and is
bit-exact with :class:`bitprop.model.mlp.BinaryMLP` (``tests/rtl/test_core.py`` and
``bitprop sim`` compare the hidden weights after every batch).

Structure
---------
One binary-matrix engine (:class:`~bitprop.rtl.xnor_popcount.XnorPopcountArray`, PE rows ×
SIMD bits per cycle) runs every matrix of the schedule: the hidden layers ``W_l`` (results go
to the layer's pre-activation memory ``z_l`` and, as sign bits, to the next layer's activation
buffer) and the fixed classifiers (results go to :class:`~bitprop.rtl.scoring.Scoring`, which
gives the margin, the trigger and the prediction). A triggered sample then

- copies the classifier row of its label into the layer's desired-activation memory ``d_l``
  (rule ``local``: every layer; BEP: the last layer), and under BEP computes the other
  ``d_l`` by :class:`~bitprop.rtl.backproject.BackProjection` through ``W_{l+1}`` (PE rows a
  cycle, gates ``|z| ≤ ⌊ν·K⌋`` formed as the engine writes ``z`` and kept in a gate
  memory, so that the back-projection runs beside the selection of the layer above);
- streams ``(z_l, d_l)`` through :class:`~bitprop.rtl.select.GroupWinnerSelect`; each
  winner becomes an update *record* ``(sample, sign)`` appended to a per-unit linked list
  (``head[j]`` → record → next), so that at the end of the batch all records of a row can
  be visited together without sorting.

At the end of a batch, for every layer with records, the rows are walked in order and each
row's records are replayed word by word into :class:`~bitprop.rtl.update.HiddenWeightUpdate`
(with the record's stored input activations; the row's list is followed once, for its first
word, into a row cache that the other words replay at one record a cycle), which read-modify-writes the hidden weights
(one saturation per batch sum, as the model) and reports the new signs, written back into the
binary-weight memory. Then, if the layer's threshold is non-zero, the same block sweeps the
layer for reinforcement with the counter-based generator. Every sample of a batch sees the
weights of the start of the batch, because nothing is written before the batch ends.

Host interface
--------------
A stream of 32-bit command words in, a stream of 32-bit reply words out (``last`` on the
final word of each reply). Messages (``header = opcode | arg << 8 | count << 16``):

==========  ==========================================  ======================================
opcode      words after the header                      reply
==========  ==========================================  ======================================
SET_REG 1   value (register ``arg``, see ``REGISTERS``)  none
WRITE 2     address, then ``count`` memory words of      none
            region ``arg``, ``⌈width/32⌉`` words each,
            least significant first
READ 3      address                                     ``count`` memory words of region
                                                        ``arg``, ``⌈width/32⌉`` words each
TRAIN 4     ``count`` samples: label, then ``words(0)``  n_correct, cycles, records per layer
            input words of ``⌈SIMD/32⌉`` words each      (after the batch's update)
INFER 5     ``count`` samples of input words             one prediction per sample
STATUS 6    none                                         MAGIC, plan signature, samples
                                                        trained, batches trained, work
                                                        cycles (training or sweeping), of
                                                        which loading samples
==========  ==========================================  ======================================

The driver (:mod:`bitprop.boards.driver`) speaks it; on a board the words travel in the frames
of :mod:`bitprop.boards.link`.
"""

import math

from amaranth import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .backproject import BackProjection
from .memory import (NO_RW_CHECK, HiddenWeightMemory, RegisteredRead, SinglePortMemory,
                     spram_tiles)
from .plan import (MAGIC, OP_INFER, OP_READ, OP_SET_REG, OP_STATUS, OP_TRAIN, OP_WRITE,
                   REGION_HIDDEN, REGISTERS, CorePlan)
from .scoring import Scoring
from .select import GroupWinnerSelect
from .update import HiddenWeightUpdate
from .xnor_popcount import XnorPopcountArray

__all__ = ["TrainingCore", "RSP_LAYOUT", "UP_SPRAM_TILES"]
RSP_LAYOUT = data.StructLayout({"data": 32, "last": 1})


def _bits(n):
    return max(1, int(n).bit_length())


#: SB_SPRAM256KA tiles of the iCE40 UP5K (the device ``spram=True`` builds for).
UP_SPRAM_TILES = 4

#: Bits of one block RAM that the activation buffers are sliced for (ECP5 ``DP16KD``).
_BLOCK_BITS = 16384


class _Port:
    """The signals of a memory port (``addr``, ``en``, ``data``), as ``Memory`` ports have."""

    def __init__(self, addr_width, en_width, data_width):
        self.addr, self.en, self.data = Signal(addr_width), Signal(en_width), Signal(data_width)


class _SlicedMemory(Elaboratable):
    """A memory of ``width``-bit words kept as slices of ``slice_width`` bits and full depth.

    One synchronous read port ``rd`` and one write port ``wr`` (one enable per
    ``granularity`` bits), which behave as those of one :class:`Memory` of the whole width.
    A memory deeper than one block RAM holds at its width is built by Yosys from several
    block RAMs behind a read-data multiplexer (the activation buffer's read through it
    limited Fmax); a slice narrow enough to hold the whole depth in one block RAM needs none.
    """

    def __init__(self, *, width, depth, granularity, slice_width):
        assert width % slice_width == 0
        self.width, self.depth = width, depth
        self.granularity, self.slice_width = granularity, slice_width
        aw = ceil_log2(depth)
        self.rd = _Port(aw, 1, width)
        self.wr = _Port(aw, width // granularity, width)

    def elaborate(self, platform):
        m = Module()
        w, g = self.slice_width, self.granularity
        for i in range(self.width // w):
            mem = Memory(shape=w, depth=self.depth, init=[], attrs=NO_RW_CHECK)
            m.submodules[f"s{i}"] = mem
            rd = RegisteredRead(m, mem)
            wr = mem.write_port(granularity=g if g < w else None)
            m.d.comb += [rd.addr.eq(self.rd.addr), rd.en.eq(self.rd.en),
                         self.rd.data[i * w:(i + 1) * w].eq(rd.data),
                         wr.addr.eq(self.wr.addr), wr.data.eq(self.wr.data[i * w:(i + 1) * w]),
                         wr.en.eq(self.wr.en[i * w // g:(i + 1) * w // g] if g < w
                                  else self.wr.en[i * w // g])]
        return m


class TrainingCore(wiring.Component):
    """Train a binary MLP on-chip, bit-exact with the golden model (see the module notes).

    Parameters
    ----------
    plan : CorePlan
        Network shape, rule and folding.
    spram : bool
        Keep the hidden weights in iCE40 ``SB_SPRAM256KA`` primitives, and the batch's input
        archive too when both fit the UP5K's four (``archive_spram``).
    spram_model : bool
        With ``spram``, simulate them with their behavioural model.
    carry_segments : int
        Of the reinforcement generator's adders (2 on iCE40 for timing).

    Attributes
    ----------
    cmd : In(stream.Signature(32))
        Command words.
    rsp : Out(stream.Signature(RSP_LAYOUT))
        Reply words, ``last`` on each reply's final word.
    busy : Out(1)
        A batch or an inference is running.
    """

    def __init__(self, *, plan, spram=False, spram_model=False, carry_segments=1):
        if not isinstance(plan, CorePlan):
            raise TypeError(f"plan must be a CorePlan, not {type(plan).__name__}")
        self.plan = plan.validate()
        self.spram, self.spram_model = bool(spram), bool(spram_model)
        # The input archive takes SPRAM tiles when the hidden weights leave enough of them.
        tiles = (math.prod(spram_tiles(plan.hidden_width, plan.hidden_depth))
                 + math.prod(spram_tiles(plan.simd, plan.batch_max * plan.words(0))))
        self.archive_spram = self.spram and tiles <= UP_SPRAM_TILES
        self.carry_segments = carry_segments
        super().__init__({
            "cmd": In(stream.Signature(32)),
            "rsp": Out(stream.Signature(RSP_LAYOUT)),
            "busy": Out(1),
        })

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        p = self.plan
        L, PE, SIMD, LANES = p.n_layers, p.pe, p.simd, p.lanes
        mats = p.matrices
        lg_pe, lg_simd = ceil_log2(PE), ceil_log2(SIMD)
        spw = SIMD // PE                       # PE-result groups per activation word
        lpw = SIMD // LANES                    # update words per activation word
        widths = p.hidden
        k_hid_max = max(widths)
        # Counter widths: units of a layer, result groups of a matrix, SIMD words of a
        # layer's output, hidden-weight words of a row (each counts up to its maximum).
        kw = _bits(k_hid_max)
        gw = _bits(max(mt.groups for mt in mats))
        dw = _bits(max(p.words(l + 1) for l in range(L)))
        rww = _bits(max(p.row_words(l) for l in range(L)))

        # -- blocks ---------------------------------------------------------------------------
        max_words = max(mt.words for mt in mats)
        m.submodules.array = arr = XnorPopcountArray(pe=PE, simd=SIMD, max_words=max_words)
        zw = len(arr.z[0])
        m.submodules.scoring = score = Scoring(n_classes=p.n_classes, max_k=arr.k_max,
                                               lanes=PE)
        m.submodules.select = sel = GroupWinnerSelect(gamma_max=k_hid_max, z_width=zw,
                                                      max_units=k_hid_max)
        haw = max(1, ceil_log2(p.hidden_depth))
        m.submodules.update = upd = HiddenWeightUpdate(
            lanes=LANES, hidden_bits=p.hidden_bits, addr_width=haw,
            max_records=p.batch_max, carry_segments=self.carry_segments,
            step_width=32, layer_width=_bits(L), mem_latency=3)
        m.submodules.hmem = hmem = HiddenWeightMemory(
            lanes=LANES, hidden_bits=p.hidden_bits, depth=p.hidden_depth,
            spram=self.spram, model=self.spram_model, slice_bits=_BLOCK_BITS)
        bep = p.rule == "bep" and L > 1
        if bep:
            m.submodules.backproject = bp = BackProjection(simd=SIMD, max_rows=k_hid_max,
                                                           pe=PE)

        # -- registers --------------------------------------------------------------------------
        seed = Signal(64)
        step = Signal(32)
        skip_empty = Signal()
        gamma = Array(Signal(kw, name=f"gamma{l}") for l in range(L))
        n_groups = Array(Signal(kw, name=f"groups{l}") for l in range(L))
        margin_thr = Array(Signal(signed(32), name=f"margin_thr{l}") for l in range(L))
        gate_thr = Array(Signal(16, name=f"gate_thr{l}") for l in range(L))
        reinf_thr = Array(Signal(16, name=f"reinf_thr{l}") for l in range(L))

        # -- memories ---------------------------------------------------------------------------
        # No memory of the core is read, in a cycle whose read data is used, at an address
        # written in the same cycle (the host loads and reads only while the core is idle; the
        # engine writes a layer's outputs, z and gates while it reads another buffer; the
        # copy and the next sample's W_l wait for the selection that reads d_l and z_l; the
        # appender and the walker touch the records and heads in different phases, and the
        # walker's row cache apart from the lists it reads): all are NO_RW_CHECK memories
        # read through RegisteredRead ports.
        m.submodules.wmem = wmem = Memory(shape=PE * SIMD, depth=p.binary_depth, init=[],
                                          attrs=NO_RW_CHECK)
        w_rd = RegisteredRead(m, wmem)
        w_wr = wmem.write_port(granularity=LANES)
        # Activation buffers: a[0] the inputs, a[l] the input of layer l (per sample of the
        # batch, for the update records), a[L] the last layer's output (one sample).
        # - a[0], the batch's inputs, is the archive `xmem`: the host writes it while the
        #   engine is idle, and the engine and the update walker read it, one at a time, so
        #   one single-port memory serves it. With `spram`, it takes SB_SPRAM256KA tiles when
        #   the hidden weights leave enough of the UP5K's four (784-75-75 at batch 100 and
        #   lanes 4: two tiles each), where it would fill twenty of the thirty EBR.
        # - a[1..L] are regions of `amem` (a[k] from word `a_region[k]` on; every base held
        #   in the sample-base registers and the records is an address of its memory), so
        #   that no multiplexer chooses among buffers behind the block RAMs.
        # Block-RAM buffers are sliced into the widest power-of-two slices whose whole depth
        # fits one block RAM, so that no read-data multiplexer chooses among depth ranges
        # (that limited Fmax: the input buffer, 2,500 words deep at batch 100, was five
        # DP16KD behind one). 784-75-75 at batch 100 on ECP5: a[0] in eight 4-bit slices.
        def slice_width(depth):
            sw = SIMD
            while sw > 1 and sw * depth > _BLOCK_BITS:
                sw //= 2
            return sw if sw * depth <= _BLOCK_BITS else SIMD   # else one memory, multiplexed

        x_depth = p.batch_max * p.words(0)
        a_depth = [(p.batch_max if k < L else 1) * p.words(k) for k in range(1, L + 1)]
        a_region = [0] + [sum(a_depth[:k]) for k in range(L)]
        a_total = sum(a_depth)
        m.submodules.amem = amem = _SlicedMemory(width=SIMD, depth=a_total, granularity=PE,
                                                 slice_width=slice_width(a_total))
        a_rd, a_wr = amem.rd, amem.wr
        if self.archive_spram:
            m.submodules.xmem = xmem = SinglePortMemory(width=SIMD, depth=x_depth, spram=True,
                                                        model=self.spram_model)
            xaw = len(xmem.port.addr)
            x_rd, x_wr = _Port(xaw, 1, SIMD), _Port(xaw, 1, SIMD)
            m.d.comb += [xmem.port.addr.eq(Mux(x_wr.en, x_wr.addr, x_rd.addr)),
                         xmem.port.r_en.eq(x_rd.en & ~x_wr.en), xmem.port.w_en.eq(x_wr.en),
                         xmem.port.w_data.eq(x_wr.data), x_rd.data.eq(xmem.port.r_data)]
        else:
            m.submodules.xmem = xmem = _SlicedMemory(width=SIMD, depth=x_depth,
                                                     granularity=SIMD,
                                                     slice_width=slice_width(x_depth))
            x_rd, x_wr = xmem.rd, xmem.wr
        abw = max(_bits(a_total), _bits(x_depth))
        # Per-layer memories that one client at a time reads or writes are regions of one
        # memory, addressed `Cat(index, layer)` (no adder, no read multiplexer): the
        # pre-activations z_l (written by the engine's W_l job, read by the selection of
        # layer l) and the record heads (below). The block RAMs are the budget on the UP5K.
        def at_layer(index, width, layer):
            """The address of entry `index` (`width` bits) in the region of `layer`."""
            return Cat(index[:width], layer) if L > 1 else index[:width]

        zgw = max(1, ceil_log2(max(p.weight_matrix(l).groups for l in range(L))))
        m.submodules.zmem = zm = Memory(shape=PE * zw, depth=L << zgw, init=[],
                                        attrs=NO_RW_CHECK)
        z_rd, z_wr = RegisteredRead(m, zm), zm.write_port()
        # The desired outputs d_l likewise (written by the copy job or the back-projection,
        # one at a time; read by the selection of layer l).
        dgw = max(1, ceil_log2(max(p.words(l + 1) for l in range(L))))
        m.submodules.dmem = dm = Memory(shape=SIMD, depth=L << dgw, init=[],
                                        attrs=NO_RW_CHECK)
        d_rd, d_wr = RegisteredRead(m, dm), dm.write_port()
        # BEP: the back-projection through W_l reads the gates of layer l (one bit per unit,
        # formed as the engine writes z_l) and d_l through ports of its own (`db_rd`), so that
        # it runs while the selection streams (z_l, d_l) through theirs.
        g_rd, g_wr = {}, {}
        for l in range(1, L if bep else 1):
            gm = Memory(shape=PE, depth=p.weight_matrix(l).groups, init=[],
                        attrs=NO_RW_CHECK)
            m.submodules[f"gmem{l}"] = gm
            g_rd[l], g_wr[l] = RegisteredRead(m, gm), gm.write_port()
        db_rd = [RegisteredRead(m, dm)] if bep else []
        m.submodules.labels = lmem = Memory(shape=_bits(p.n_classes - 1), depth=p.batch_max,
                                            init=[], attrs=NO_RW_CHECK)
        lab_rd, lab_wr = RegisteredRead(m, lmem), lmem.write_port()
        # Update records: per layer, a per-unit list head and the records (input-buffer base
        # of the sample, sign, next record). One memory holds the update walker's row cache
        # (words 0 .. batch_max − 1, see the walker) and then the records of layer l from
        # `rec_region[l]` on (pointers are addresses of it), so that the walker reads both
        # with no multiplexer behind the block RAM (one memory per layer and the cache,
        # chosen by layer and phase, limited Fmax). Selections append only while no walk
        # runs, and the walk reads one record at a time, list or cache.
        rec_bits = [_bits(r) for r in p.records_max]
        rec_region = [p.batch_max + sum(p.records_max[:l]) for l in range(L)]
        rec_depth = p.batch_max + sum(p.records_max)
        # Records start at word batch_max >= 1, so a `next` of 0 means "no record". With the
        # UP5K's memories a record has no other mark of a list's end (784-75-75 at SIMD 8: 24
        # bits, three block RAMs rather than four); elsewhere a `has_next` flag keeps the
        # comparison off the block RAM's output (it limited Fmax on ECP5).
        rec_flag = not self.spram
        rbw = _bits(rec_depth)
        hgw = max(1, ceil_log2(k_hid_max))
        m.submodules.heads = hm = Memory(shape=data.StructLayout({"valid": 1, "ptr": rbw}),
                                         depth=L << hgw, init=[], attrs=NO_RW_CHECK)
        h_rd, h_wr = RegisteredRead(m, hm), hm.write_port()
        m.submodules.records = rm = Memory(
            shape=data.StructLayout({"abase": abw, "sign": 1, "next": rbw,
                                     **({"has_next": 1} if rec_flag else {})}),
            depth=rec_depth, init=[], attrs=NO_RW_CHECK)
        r_rd, r_wr = RegisteredRead(m, rm), rm.write_port()
        rcount = Array(Signal(rec_bits[l] + 1, name=f"rcount{l}") for l in range(L))

        # Default: every read port idle-enabled, every write port off.
        for port in [w_rd, lab_rd, a_rd, r_rd, z_rd, h_rd, d_rd, *g_rd.values(), *db_rd]:
            m.d.comb += port.en.eq(1)

        # -- per-sample state ---------------------------------------------------------------------
        label = Signal(range(p.n_classes))
        # This sample's buffer bases (addresses of `amem`).
        abase = Array(Signal(abw, name=f"abase{k}") for k in range(L))
        trig = Signal(L)
        live = Signal()
        pred = Signal(range(p.n_classes))
        n_correct = Signal(16)
        sample = Signal(16)
        # `sample == hdr_last`, kept in a register as `sample` changes (the comparison in
        # the sequencer's next-state logic limited Fmax).
        s_last = Signal()
        # Cycles since the TRAIN header (its reply's count): a counter of its own, no
        # subtraction before the reply register (that path limited Fmax on UP5K).
        batch_cycles = Signal(32)
        samples_total = Signal(32)
        batches_total = Signal(32)

        # ========================================================================================
        # Engine: run matrix `mi` (sample bases `abase`); results to z/a memories or Scoring.
        # ========================================================================================
        n_mat = len(mats)
        mi = Signal(range(n_mat))
        infer = Signal()            # infer mode (every sample base stays its region's start)
        c_base = Array(Const(mt.base, _bits(p.binary_depth)) for mt in mats)
        c_depth = Array(Const(mt.depth, _bits(p.binary_depth)) for mt in mats)
        c_words = Array(Const(mt.words, _bits(max_words)) for mt in mats)
        c_groups = Array(Const(mt.groups, 16) for mt in mats)
        c_k = Array(Const(mt.k_in, len(arr.k)) for mt in mats)
        c_tail = Array(Const((1 << (mt.k_in - (mt.words - 1) * SIMD)) - 1, SIMD) for mt in mats)
        # Source buffer: W_l reads a[l]; Q_l reads a[l+1] (a[L] for the last layer).
        c_src = Array(Const(mt.layer if mt.kind == "W" else mt.layer + 1, _bits(L))
                      for mt in mats)
        c_isq = Array(Const(int(mt.kind == "Q"), 1) for mt in mats)
        c_layer = Array(Const(mt.layer, _bits(L)) for mt in mats)

        # A job is started by the sequencer's registers `e_start` (one cycle) and `e_arg`
        # (the matrix): the matrix tables and the loads below hang off flip-flops, not off
        # the sequencer's state logic (that path limited Fmax).
        e_start = Signal()
        e_arg = Signal(range(n_mat))
        m.d.sync += e_start.eq(0)
        e_run = Signal()           # issuing words
        e_pend = Signal()          # results outstanding
        e_busy = Signal()
        e_addr = Signal(_bits(p.binary_depth))
        e_left = Signal(_bits(p.binary_depth))
        e_c = Signal(_bits(max_words))
        e_res = Signal(gw)
        e_wait_score = Signal()
        src_base = Signal(abw)
        # The activation word's address `src_base + e_c`, counted in a register of its own:
        # no adder before the activation memory's address inputs (it limited Fmax).
        e_aaddr = Signal(abw)
        dst_base = Signal(abw)
        m.d.comb += e_busy.eq(e_start | e_pend | e_wait_score)
        # Issue stage.
        iss_valid = Signal()
        iss_first = Signal()
        iss_last = Signal()
        src_x = Signal()            # the job reads a[0] (`xmem`)
        e_layer = Signal(_bits(L))  # the job's layer
        with m.If(e_start):
            m.d.sync += [mi.eq(e_arg), e_run.eq(1), e_pend.eq(1), e_addr.eq(c_base[e_arg]),
                         e_left.eq(c_depth[e_arg]), e_c.eq(0), e_res.eq(0),
                         e_wait_score.eq(c_isq[e_arg])]
            k_src = c_src[e_arg]
            sb = Signal(abw)
            db = Signal(abw)
            with m.Switch(k_src):
                for k in range(L + 1):
                    with m.Case(k):
                        m.d.comb += sb.eq(abase[k] if k < L else a_region[L])
            with m.Switch(c_layer[e_arg]):
                for l in range(L):
                    with m.Case(l):
                        m.d.comb += db.eq(abase[l + 1] if l + 1 < L else a_region[L])
            m.d.sync += [src_base.eq(sb), dst_base.eq(db), e_aaddr.eq(sb),
                         src_x.eq(k_src == 0), e_layer.eq(c_layer[e_arg])]
        m.d.comb += iss_valid.eq(e_run)
        with m.If(e_run):
            m.d.comb += [iss_first.eq(e_c == 0), iss_last.eq(e_c == c_words[mi] - 1)]
            m.d.sync += [e_addr.eq(e_addr + 1), e_left.eq(e_left - 1),
                         e_c.eq(Mux(iss_last, 0, e_c + 1)),
                         e_aaddr.eq(Mux(iss_last, src_base, e_aaddr + 1))]
            with m.If(e_left == 1):
                m.d.sync += e_run.eq(0)
        # Read ports are driven below by a phase mux; the engine's addresses:
        eng_w_addr = e_addr
        eng_a_addr = e_aaddr
        # Data stage (memory latency 1).
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        m.d.sync += [d_valid.eq(iss_valid), d_first.eq(iss_first), d_last.eq(iss_last)]
        # Memory stage: the words are registered as they leave the block RAMs, before the
        # array (their clock-to-output time leaves no room for logic in the same cycle).
        q_valid, q_first, q_last = Signal(), Signal(), Signal()
        # The activation word is registered from each buffer (a[0] from the archive, the
        # others from `amem`) and chosen after the registers, where the choice shares the
        # array's first LUTs (the multiplexer between the block RAMs and one register was
        # the ECP5 critical path, 8.9 ns).
        q_act_x, q_act_a = Signal(SIMD), Signal(SIMD)
        q_mask, q_w = Signal(SIMD), Signal(PE * SIMD)
        m.d.sync += [q_valid.eq(d_valid), q_first.eq(d_first), q_last.eq(d_last),
                     q_act_x.eq(x_rd.data), q_act_a.eq(a_rd.data), q_w.eq(w_rd.data),
                     q_mask.eq(Mux(d_last, c_tail[mi], Const((1 << SIMD) - 1, SIMD)))]
        m.d.comb += [
            arr.valid.eq(q_valid), arr.first.eq(q_first), arr.last.eq(q_last),
            arr.mask.eq(q_mask),
            arr.activation.eq(Mux(src_x, q_act_x, q_act_a)),
            arr.weights.eq(q_w),
            arr.k.eq(c_k[mi]),
            arr.threshold.eq(0),
        ]
        # Results.
        res_group = e_res
        with m.If(arr.out_valid):
            m.d.sync += e_res.eq(e_res + 1)
            with m.If(e_res == c_groups[mi] - 1):
                m.d.sync += e_pend.eq(0)
        m.d.comb += [score.valid.eq(arr.out_valid & c_isq[mi]),
                     score.scores.eq(arr.z), score.label.eq(label)]
        with m.Switch(e_layer):
            for l in range(L):
                with m.Case(l):
                    m.d.comb += score.threshold.eq(margin_thr[l])
        with m.If(score.out_valid):
            m.d.sync += e_wait_score.eq(0)
        m.d.comb += [z_wr.addr.eq(at_layer(res_group, zgw, e_layer)),
                     z_wr.data.eq(arr.z.as_value()), z_wr.en.eq(arr.out_valid & ~c_isq[mi])]
        for l in range(L):
            hit = arr.out_valid & ~c_isq[mi] & (e_layer == l)
            if l in g_wr:
                # Gate of each unit of the group: |z| ≤ ⌊ν·K⌋, padding rows closed.
                gate = Signal(PE, name=f"gate{l}")
                for r in range(PE):
                    z = arr.z.as_value().word_select(r, zw).as_signed()
                    mag = Mux(z < 0, -z, z)
                    m.d.comb += gate[r].eq((mag <= gate_thr[l])
                                           & ((res_group << lg_pe) + r < widths[l]))
                m.d.comb += [g_wr[l].addr.eq(res_group), g_wr[l].data.eq(gate),
                             g_wr[l].en.eq(hit)]
        # The signs of a hidden layer's results → its output buffer a[l+1] (`dst_base`).
        m.d.comb += [
            a_wr.addr.eq(dst_base + (res_group >> ceil_log2(spw) if spw > 1 else res_group)),
            a_wr.data.eq(arr.sign.replicate(spw)),
        ]
        with m.If(arr.out_valid & ~c_isq[mi]):
            if spw > 1:
                m.d.comb += a_wr.en.eq(1 << res_group[:ceil_log2(spw)])
            else:
                m.d.comb += a_wr.en.eq(1)

        # ========================================================================================
        # Desired activation from a classifier row: d[l] ← row `label` of Q_l (c words).
        # ========================================================================================
        cp_start = Signal()
        cp_arg = Signal(_bits(L))
        cp_run = Signal()
        cp_layer = Signal(_bits(L))
        cp_c = Signal(dw)
        cp_words = Signal(dw)
        cp_addr = Signal(_bits(p.binary_depth))
        cp_valid = Signal()
        cp_col = Signal(dw)
        cp_lane = Signal(range(PE))
        cp_busy = Signal()
        cp2_valid = Signal()
        m.d.comb += cp_busy.eq(cp_start | cp_run | cp_valid | cp2_valid)
        q_base = Array(Const(p.classifier_matrix(l).base if (p.rule == "local" or l == L - 1)
                             else 0, _bits(p.binary_depth)) for l in range(L))
        # The first word of the label's row, per layer, registered from `label` (set in state
        # SAMPLE, at least one engine job before any copy) through a table of the row
        # groups' addresses: no multiplier (a DSP block) on the way to `cp_addr` (it limited
        # Fmax).
        cp_row_addr = Array(Signal(len(cp_addr), name=f"cp_row_addr{l}") for l in range(L))
        for l in range(L):
            rows = Array(Const(q_base[l].value + g * p.words(l + 1), len(cp_addr))
                         for g in range(-(-p.n_classes // PE)))
            m.d.sync += cp_row_addr[l].eq(rows[label >> lg_pe])
        with m.If(cp_start):
            qw = Array(Const(p.words(l + 1), 16) for l in range(L))[cp_arg]
            m.d.sync += [cp_layer.eq(cp_arg), cp_run.eq(1), cp_c.eq(0), cp_words.eq(qw),
                         cp_addr.eq(cp_row_addr[cp_arg]),
                         cp_lane.eq(label & (PE - 1) if PE > 1 else 0)]
        cp_issue = Signal()
        with m.If(cp_run):
            m.d.comb += cp_issue.eq(1)
            m.d.sync += [cp_addr.eq(cp_addr + 1), cp_c.eq(cp_c + 1)]
            with m.If(cp_c == cp_words - 1):
                m.d.sync += cp_run.eq(0)
        m.d.sync += [cp_valid.eq(cp_issue), cp_col.eq(cp_c)]
        # The row's lane is taken from the engine's register of the binary-weight word
        # (`q_w`, loaded every cycle), not from the block RAMs' outputs: their clock-to-output
        # time leaves no room for the lane multiplexer (that path limited Fmax).
        cp2_col = Signal(dw)
        cp_row = Signal(SIMD)
        m.d.sync += [cp2_valid.eq(cp_valid), cp2_col.eq(cp_col)]
        m.d.comb += cp_row.eq(q_w.word_select(cp_lane, SIMD))

        # ========================================================================================
        # Back-projection (BEP): d[l] ← sign(W_{l+1}ᵀ · (g ⊙ d[l+1])), one column block a pass.
        # ========================================================================================
        bp_start = Signal()
        bp_busy = Signal()
        bp_layer = Signal(_bits(L))      # the layer whose desired activation is computed
        any_gate = Signal()
        if bep:
            bp_run = Signal()
            bp_b = Signal(_bits(max_words))           # column block
            bp_g = Signal(gw)           # row group
            bp_gap = Signal()           # the idle cycle between passes
            bp_out = Signal(_bits(max_words))         # passes finished
            nb = Array(Const(p.weight_matrix(l + 1).words if l + 1 < L else 1, 16)
                       for l in range(L))[bp_layer]
            ng = Array(Const(p.weight_matrix(l + 1).groups if l + 1 < L else 1, 16)
                       for l in range(L))[bp_layer]
            wb = Array(Const(p.weight_matrix(l + 1).base if l + 1 < L else 0,
                             _bits(p.binary_depth)) for l in range(L))[bp_layer]
            m.d.comb += bp_busy.eq(bp_start | bp_run | (bp_out != nb))
            with m.If(bp_start):
                m.d.sync += [bp_run.eq(1), bp_b.eq(0), bp_g.eq(0), bp_gap.eq(0), bp_out.eq(0),
                             any_gate.eq(0)]
            bp_issue = Signal()
            bp_i_first, bp_i_last = Signal(), Signal()
            with m.If(bp_run):
                with m.If(bp_gap):
                    m.d.sync += bp_gap.eq(0)
                with m.Else():
                    m.d.comb += [bp_issue.eq(1), bp_i_first.eq(bp_g == 0),
                                 bp_i_last.eq(bp_g == ng - 1)]
                    with m.If(bp_i_last):
                        m.d.sync += [bp_g.eq(0), bp_b.eq(bp_b + 1), bp_gap.eq(1)]
                        with m.If(bp_b == nb - 1):
                            m.d.sync += bp_run.eq(0)
                    with m.Else():
                        m.d.sync += bp_g.eq(bp_g + 1)
            bp_w_addr = wb + bp_g * nb + bp_b
            bp_z_addr = bp_g
            bp_d_addr = bp_g >> ceil_log2(spw) if spw > 1 else bp_g
            # Data stage.
            bq_valid, bq_first, bq_last = Signal(), Signal(), Signal()
            bq_g = Signal(gw)
            bq_b = Signal(_bits(max_words))
            m.d.sync += [bq_valid.eq(bp_issue), bq_first.eq(bp_i_first),
                         bq_last.eq(bp_i_last), bq_g.eq(bp_g), bq_b.eq(bp_b)]
            drow = db_rd[0].data
            gates = Signal(PE)
            with m.Switch(bp_layer):
                for l in range(L - 1):
                    with m.Case(l):
                        m.d.comb += gates.eq(g_rd[l + 1].data)
            for l in range(1, L):
                m.d.comb += g_rd[l].addr.eq(bp_z_addr)
            m.d.comb += db_rd[0].addr.eq(at_layer(bp_d_addr, dgw, bp_layer + 1))
            dsl = drow.word_select(bq_g & (spw - 1), PE) if spw > 1 else drow
            m.d.comb += [
                bp.valid.eq(bq_valid), bp.first.eq(bq_first), bp.last.eq(bq_last),
                bp.weights.eq(w_rd.data), bp.gate.eq(gates), bp.desired.eq(dsl),
            ]
            with m.If(bq_valid & (gates != 0)):
                m.d.sync += any_gate.eq(1)
            with m.If(bp.out_valid):
                m.d.sync += bp_out.eq(bp_out + 1)
        else:
            m.d.comb += bp_busy.eq(0)

        # d write port: the copy job or the back-projection.
        with m.If(cp2_valid):
            m.d.comb += [d_wr.addr.eq(at_layer(cp2_col, dgw, cp_layer)), d_wr.data.eq(cp_row),
                         d_wr.en.eq(1)]
        if bep:
            with m.Elif(bp.out_valid):
                m.d.comb += [d_wr.addr.eq(at_layer(bp_out, dgw, bp_layer)),
                             d_wr.data.eq(bp.sign), d_wr.en.eq(1)]

        # ========================================================================================
        # Selection: stream (z_j, d_j) of layer `s_layer`; winners become records.
        # ========================================================================================
        s_start = Signal()
        s_layer = Signal(_bits(L))
        s_abase = Signal(abw)       # the selecting sample's input-buffer base
        s_run = Signal()
        s_j = Signal(kw)
        s_k = Array(Const(k, 16) for k in widths)[s_layer]
        s_busy = Signal()
        s_outs = Signal(kw)
        s_v = Signal()
        s_vj = Signal(kw)
        s_first = Signal()
        advance = Signal()
        m.d.comb += advance.eq(~s_v | sel.i.ready)
        s_pend = Signal()           # group words outstanding
        m.d.comb += s_busy.eq(s_run | s_v | s_pend)
        # A selection of layer l runs, registered: set two cycles after its start, which is
        # at least four cycles before any W_l job can be started (see "job" below).
        sel_busy = Signal(L)
        for l in range(L):
            m.d.sync += sel_busy[l].eq(s_busy & (s_layer == l))
        with m.If(s_start):
            m.d.sync += [s_run.eq(1), s_pend.eq(1), s_j.eq(0), s_outs.eq(0)]
        s_issue = Signal()
        with m.If(advance):
            m.d.sync += [s_v.eq(s_run), s_vj.eq(s_j), s_first.eq(s_j == 0)]
            with m.If(s_run):
                m.d.comb += s_issue.eq(1)
                m.d.sync += s_j.eq(s_j + 1)
                with m.If(s_j == s_k - 1):
                    m.d.sync += s_run.eq(0)
        s_z_addr = s_j >> lg_pe
        s_d_addr = s_j >> lg_simd
        s_zrow, s_drow = Signal(PE * zw), Signal(SIMD)
        m.d.comb += [s_zrow.eq(z_rd.data), s_drow.eq(d_rd.data)]
        m.d.comb += [
            sel.i.valid.eq(s_v),
            sel.i.payload.z.eq(s_zrow.word_select(s_vj & (PE - 1), zw) if PE > 1
                               else s_zrow.as_signed()),
            sel.i.payload.desired.eq(s_drow.bit_select(s_vj & (SIMD - 1), 1)),
            sel.i.payload.active.eq(1),
            sel.i.payload.first.eq(s_first),
            sel.gamma.eq(gamma[s_layer]),
        ]
        # A list head read, registered as it leaves the block RAM (`head_*`), before the
        # appender writes it into the new record (block RAM to block RAM, it limited Fmax) or
        # the walker decides on it (its next-state logic).
        head_valid, head_ptr = Signal(), Signal(rbw)
        m.d.sync += [head_valid.eq(h_rd.data.valid), head_ptr.eq(h_rd.data.ptr)]
        # Record appender: read the unit's list head (`ap_wait`: it leaves the block RAM),
        # then (`ap_go`) write the record and the new head.
        ap_wait, ap_go = Signal(), Signal()
        ap_unit = Signal(kw)
        ap_sign = Signal()
        with m.If(sel.o.valid & sel.o.ready):
            m.d.sync += s_outs.eq(s_outs + 1)
            with m.If(s_outs == n_groups[s_layer] - 1):
                m.d.sync += s_pend.eq(0)
        m.d.comb += sel.o.ready.eq(~sel.o.payload.found | ap_go)
        with m.If(sel.o.valid & sel.o.payload.found & ~ap_wait & ~ap_go):
            m.d.sync += [ap_wait.eq(1), ap_unit.eq(sel.o.payload.index),
                         ap_sign.eq(sel.o.payload.desired)]
        m.d.sync += ap_go.eq(ap_wait)
        with m.If(ap_wait):
            m.d.sync += ap_wait.eq(0)
        with m.If(ap_go):
            m.d.sync += rcount[s_layer].eq(rcount[s_layer] + 1)
        s_h_addr = sel.o.payload.index
        ap_ptr = Signal(rbw)        # the new record's address
        for l in range(L):
            with m.If(s_layer == l):
                m.d.comb += ap_ptr.eq(rec_region[l] + rcount[l])
        with m.If(ap_go):
            m.d.comb += [
                r_wr.addr.eq(ap_ptr),
                r_wr.data.abase.eq(s_abase),
                r_wr.data.sign.eq(ap_sign),
                r_wr.data.next.eq(Mux(head_valid, head_ptr, 0)),
                *([r_wr.data.has_next.eq(head_valid)] if rec_flag else []),
                r_wr.en.eq(1),
                h_wr.addr.eq(at_layer(ap_unit, hgw, s_layer)),
                h_wr.data.valid.eq(1),
                h_wr.data.ptr.eq(ap_ptr),
                h_wr.en.eq(1),
            ]

        # ========================================================================================
        # Batch end: replay each row's records into the update block, then reinforcement.
        # ========================================================================================
        u_start = Signal()
        u_layer = Signal(_bits(L))
        u_busy = Signal()
        # 0 idle, 1 head read, 7 head data, 2 head registered, 3 list walk, 5 cache replay,
        # 4 drain, 6 next row
        u_phase = Signal(3)
        u_j = Signal(kw)
        u_j_last = Signal()         # u_j is the layer's last row (kept with u_j: a comparison
                                    # before the walker's next-state logic limited Fmax)
        u_c = Signal(rww)
        u_ptr = Signal(rbw)
        u_hrow = Signal(haw)            # hidden address of the row's first word
        u_wrow = Signal(_bits(p.binary_depth))  # binary-weight address of the row's group
        u_rowlane = Signal(range(PE))
        rw = Array(Const(p.row_words(l), rww) for l in range(L))[u_layer]
        # The layer's row words, less one, and its words per PE row group, registered when
        # the walk starts (`u_layer` holds during it): no table lookup before the walker's
        # comparisons and adders (that path limited Fmax).
        u_rw = Signal(rww)
        u_rw1 = Signal(rww)
        u_kin = Signal(_bits(max_words))
        u_x = Signal()              # the layer's inputs are a[0] (`xmem`)
        tails = [p.sizes[l] - (p.row_words(l) - 1) * LANES for l in range(L)]
        tail = Array(Const(t, 8) for t in tails)
        kin_words = Array(Const(p.weight_matrix(l).words, _bits(max_words))
                          for l in range(L))[u_layer]
        hbase = Array(Const(b, haw) for b in p.hidden_bases)[u_layer]
        wbase = Array(Const(p.weight_matrix(l).base, _bits(p.binary_depth))
                      for l in range(L))[u_layer]
        u_k = Array(Const(k, 16) for k in widths)[u_layer]
        beat_layout = data.StructLayout({"addr": haw, "a_prev": LANES, "desired": 1,
                                         "mask": LANES, "last": 1})
        m.submodules.beats = beats = fifo.SyncFIFOBuffered(width=beat_layout.size, depth=16)
        wb_layout = data.StructLayout({"addr": _bits(p.binary_depth),
                                       "sel": ceil_log2(PE * lpw) or 1, "tail": 1})
        m.submodules.wback = wback = fifo.SyncFIFOBuffered(width=wb_layout.size, depth=16)
        m.d.comb += u_busy.eq(u_start | (u_phase != 0))
        # Stage 1: record data (issued in the previous cycle). Stage 2: activation data.
        # Stage 2b: the activation word registered. Stage 3: the beat, registered.
        w1_valid = Signal()
        wr_valid = Signal()
        w2_valid = Signal()
        w2b_valid = Signal()
        w3_valid = Signal()
        w2_sign, w2_last = Signal(), Signal()
        w2_addr = Signal(haw)
        w2_c = Signal(rww)
        w2_wb = Signal(wb_layout.size)
        w1_c = Signal(rww)
        rec_abase, rec_sign = r_rd.data.abase, r_rd.data.sign
        rec_next = r_rd.data.next
        rec_has_next = r_rd.data.has_next if rec_flag else rec_next != 0
        # Five beats may be in flight. `room` is registered from the last cycle's level with
        # one beat more of margin (the level rises by at most one a cycle): the FIFO's level
        # logic before the walker's next-state logic limited Fmax.
        room = Signal()
        m.d.sync += room.eq(beats.level < beats.depth - 7)
        # A row's records are a linked list; the walk follows it once, for the row's first
        # word, at one record per three cycles (every address from a register), and copies
        # each record into the row cache (the first words of the record memory; the copy of
        # the row's last record has no next); the row's other words replay the cache at
        # one record a cycle from a counter. No memory output feeds a memory address.
        cw = _bits(p.batch_max)
        u_n = Signal(cw + 1)        # records of the row (cached)
        u_rk = Signal(cw + 1)       # the replay's record
        # Flags kept with their counters (comparisons before the walker's next-state logic
        # limited Fmax): `u_rk_last`: u_rk == u_n − 1; `u_c_last`: u_c == u_rw − 1.
        u_rk_last, u_c_last = Signal(), Signal()
        u_go = Signal()             # the walk may read record `u_ptr`
        u_issue = Signal()          # a record is read this cycle (list or cache)
        w1_cache = Signal()         # stage 1 holds a cache record (else a list record)
        wr_list = Signal()          # stage 2 holds a list record
        wr_has_next = Signal()
        wr_next = Signal(rbw)
        # Nothing is left in the walker's stages, the FIFOs or the update block: registered
        # (the FIFOs' level logic before the walker's next-state logic limited Fmax); it is
        # one cycle old, but nothing enters once the walk issues no more records.
        drained = Signal()
        m.d.sync += drained.eq(~u_issue & ~w1_valid & ~wr_valid & ~w2_valid & ~w2b_valid
                               & ~w3_valid & (beats.level == 0) & ~upd.busy
                               & (wback.level == 0) & ~beats.r_rdy)
        with m.If(u_start):
            m.d.sync += [u_phase.eq(1), u_j.eq(0), u_j_last.eq(u_k == 1),
                         u_hrow.eq(hbase), u_wrow.eq(wbase),
                         u_rowlane.eq(0), u_rw.eq(rw), u_rw1.eq(rw - 1), u_kin.eq(kin_words),
                         u_x.eq(u_layer == 0)]
        with m.Switch(u_phase):
            with m.Case(1):        # read head[j]
                m.d.sync += u_phase.eq(7)
            with m.Case(7):        # head[j] leaves the block RAM
                m.d.sync += u_phase.eq(2)
            with m.Case(2):        # head data: walk the row or go on
                with m.If(head_valid):
                    m.d.sync += [u_phase.eq(3), u_c.eq(0), u_ptr.eq(head_ptr), u_go.eq(1),
                                 u_n.eq(0)]
                with m.Else():
                    m.d.sync += u_phase.eq(6)
            with m.Case(3):        # list walk (the row's first word), caching the records
                with m.If(u_go & room):
                    m.d.comb += u_issue.eq(1)
                    m.d.sync += u_go.eq(0)
                with m.If(wr_valid & wr_list):
                    m.d.sync += u_n.eq(u_n + 1)
                    with m.If(wr_has_next):
                        m.d.sync += [u_ptr.eq(wr_next), u_go.eq(1)]
                    with m.Elif(u_rw1 == 0):
                        m.d.sync += u_phase.eq(6)
                    with m.Else():
                        # u_n gains this record now: u_rk_last is u_n + 1 == 1.
                        m.d.sync += [u_phase.eq(5), u_c.eq(1), u_c_last.eq(u_rw1 == 1),
                                     u_rk.eq(0), u_rk_last.eq(u_n == 0)]
            with m.Case(5):        # cache replay: words 1 .. R−1, one record a cycle
                with m.If(room):
                    m.d.comb += u_issue.eq(1)
                    with m.If(u_rk_last):
                        m.d.sync += [u_rk.eq(0), u_rk_last.eq(u_n == 1),
                                     u_c.eq(u_c + 1), u_c_last.eq(u_c + 2 == u_rw)]
                        with m.If(u_c_last):
                            m.d.sync += u_phase.eq(6)
                    with m.Else():
                        m.d.sync += [u_rk.eq(u_rk + 1), u_rk_last.eq(u_rk + 2 == u_n)]
            with m.Case(6):        # next row
                with m.If(u_j_last):
                    m.d.sync += u_phase.eq(4)
                with m.Else():
                    m.d.sync += [u_phase.eq(1), u_j.eq(u_j + 1), u_j_last.eq(u_j + 2 == u_k),
                                 u_hrow.eq(u_hrow + u_rw)]
                    with m.If(u_rowlane == PE - 1):
                        m.d.sync += [u_rowlane.eq(0), u_wrow.eq(u_wrow + u_kin)]
                    with m.Else():
                        m.d.sync += u_rowlane.eq(u_rowlane + 1)
            with m.Case(4):        # drain the update block
                with m.If(drained):
                    m.d.sync += u_phase.eq(0)
        m.d.sync += [w1_valid.eq(u_issue), w1_c.eq(u_c), w1_cache.eq(u_phase == 5)]
        # Clear the head of a row once read (phase 2), ready for the next batch (the walk
        # runs when no selection appends).
        with m.If(u_phase == 2):
            m.d.comb += [h_wr.addr.eq(at_layer(u_j, hgw, u_layer)), h_wr.data.valid.eq(0),
                         h_wr.en.eq(1)]
        # Stage 2: read the record's activation word.
        # The record's fields are registered before the address arithmetic (block-RAM outputs
        # feed no logic directly: that path limited Fmax), then the activation word is read.
        wr_sign, wr_last = Signal(), Signal()
        wr_abase = Signal(abw)
        wr_addr = Signal(haw)
        wr_c = Signal(rww)
        wr_wb = Signal(wb_layout.size)
        m.d.sync += [wr_valid.eq(w1_valid), wr_list.eq(w1_valid & ~w1_cache),
                     wr_sign.eq(rec_sign), wr_last.eq(~rec_has_next), wr_abase.eq(rec_abase),
                     wr_has_next.eq(rec_has_next), wr_next.eq(rec_next),
                     wr_addr.eq(u_hrow + w1_c), wr_c.eq(w1_c)]
        with m.If(wr_valid & wr_list):
            m.d.comb += [r_wr.addr.eq(u_n), r_wr.data.abase.eq(wr_abase),
                         r_wr.data.sign.eq(wr_sign), r_wr.data.next.eq(wr_next),
                         *([r_wr.data.has_next.eq(wr_has_next)] if rec_flag else []),
                         r_wr.en.eq(1)]
        m.d.sync += [w2_valid.eq(wr_valid), w2_sign.eq(wr_sign), w2_last.eq(wr_last),
                     w2_addr.eq(wr_addr), w2_c.eq(wr_c)]
        u_a_addr = wr_abase + (wr_c >> ceil_log2(lpw) if lpw > 1 else wr_c)
        wb_word = Signal.like(w2_wb)
        wbv = data.View(wb_layout, wb_word)
        m.d.comb += [wbv.addr.eq(u_wrow + (w1_c >> ceil_log2(lpw) if lpw > 1 else w1_c)),
                     wbv.sel.eq((u_rowlane << ceil_log2(lpw)) | (w1_c & (lpw - 1))
                                if lpw > 1 else u_rowlane),
                     wbv.tail.eq(w1_c == u_rw1)]
        m.d.sync += [wr_wb.eq(wb_word), w2_wb.eq(wr_wb)]
        # Stage 2b: the activation word, registered as it leaves the block RAMs (their
        # clock-to-output time leaves no room for logic in the same cycle): the engine's
        # registers `q_act_*` load it in every cycle (the engine is idle during the walk),
        # and the buffer is chosen after them.
        a_word = Mux(u_x, q_act_x, q_act_a)
        w2b_sign, w2b_last = Signal(), Signal()
        w2b_addr = Signal(haw)
        w2b_c = Signal(rww)
        w2b_wb = Signal.like(w2_wb)
        m.d.sync += [w2b_valid.eq(w2_valid), w2b_sign.eq(w2_sign), w2b_last.eq(w2_last),
                     w2b_addr.eq(w2_addr), w2b_c.eq(w2_c), w2b_wb.eq(w2_wb)]
        beat = Signal.like(beats.w_data)
        bv = data.View(beat_layout, beat)
        w2_tail = Array(Const((1 << t) - 1, LANES) for t in tails)[u_layer]
        m.d.comb += [
            bv.addr.eq(w2b_addr),
            bv.a_prev.eq(a_word.word_select(w2b_c & (lpw - 1), LANES) if lpw > 1 else a_word),
            bv.desired.eq(w2b_sign),
            bv.mask.eq(Mux(w2b_c == u_rw1, w2_tail, Const((1 << LANES) - 1, LANES))),
            bv.last.eq(w2b_last),
        ]
        # Stage 3: the beat, registered before the FIFOs.
        w3_beat = Signal.like(beat)
        w3_wb = Signal.like(w2_wb)
        w3_last = Signal()
        m.d.sync += [w3_valid.eq(w2b_valid), w3_beat.eq(beat), w3_wb.eq(w2b_wb),
                     w3_last.eq(w2b_last)]
        m.d.comb += [
            beats.w_data.eq(w3_beat),
            beats.w_en.eq(w3_valid),
            wback.w_data.eq(w3_wb),
            wback.w_en.eq(w3_valid & w3_last),
        ]
        m.d.comb += [
            upd.rec.valid.eq(beats.r_rdy),
            upd.rec.payload.eq(beats.r_data),
            beats.r_en.eq(upd.rec.ready),
        ]
        # Reinforcement sweeps run in the background: a layer's sweep is queued when its
        # records are in (batch end) and runs while the host loads and the engine computes the
        # next batch. It never changes a sign, so the binary weights that batch reads are
        # final; the next batch end (and any host access to the hidden weights) waits for it.
        # Layers are independent, so "all record updates, then all sweeps" equals the model's
        # per-layer order.
        sw_pend = Signal(L)
        sw_next = Signal(L)         # layers to sweep once every layer's records are in
        sw_state = Signal(2)        # 0 idle, 1 layer chosen (start), 2 running
        sw_layer = Signal(_bits(L))
        sw_step = Signal(32)
        sw_seed = Signal(64)
        sw_thr = Array(Signal(16, name=f"sw_thr{l}") for l in range(L))
        sw_active = Signal()
        sweep_go = Signal()
        m.d.comb += sw_active.eq((sw_state != 0) | (sw_pend != 0))
        with m.Switch(sw_state):
            with m.Case(0):
                with m.If((sw_pend != 0) & (u_phase == 0) & ~u_start & ~upd.busy):
                    for l in reversed(range(L)):        # the lowest pending layer first
                        with m.If(sw_pend[l]):
                            m.d.sync += sw_layer.eq(l)
                    m.d.sync += sw_state.eq(1)
            with m.Case(1):
                m.d.comb += sweep_go.eq(1)
                m.d.sync += sw_state.eq(2)
            with m.Case(2):
                with m.If(~upd.busy):
                    m.d.sync += [sw_state.eq(0), sw_pend.bit_select(sw_layer, 1).eq(0)]
        m.d.comb += [
            upd.sweep_start.eq(sweep_go),
            upd.sweep_base.eq(Array(Const(b, haw) for b in p.hidden_bases)[sw_layer]),
            upd.sweep_rows.eq(Array(Const(k, 16) for k in widths)[sw_layer]),
            upd.row_words.eq(Array(Const(p.row_words(l), 16) for l in range(L))[sw_layer]),
            upd.row_tail.eq(tail[sw_layer]),
            upd.seed.eq(sw_seed), upd.step.eq(sw_step), upd.layer.eq(sw_layer),
            upd.threshold.eq(sw_thr[sw_layer]),
        ]
        # New signs of every word the record update writes → binary-weight memory.
        wbr = data.View(wb_layout, wback.r_data)
        wb_write = Signal()
        m.d.comb += [wb_write.eq(upd.written.valid & (sw_state == 0)),
                     wback.r_en.eq(wb_write)]

        # ========================================================================================
        # Host commands and the main sequencer.
        # ========================================================================================
        hdr_op = Signal(8)
        hdr_arg = Signal(8)
        hdr_count = Signal(16)
        hdr_last = Signal(16)       # count − 1, registered: keeps subtractors off the FSM
        hdr_hidden = Signal()       # arg is the hidden-weight region, registered likewise
        addr = Signal(max(_bits(p.binary_depth - 1), haw))   # a region's word address
        word_ix = Signal(8)
        wpw_w = p.host_words(PE * SIMD)
        wpw_h = p.host_words(p.hidden_width)
        wpw_x = p.host_words(SIMD)
        # Host words are shifted in at the top: a hidden-weight word or an input word is
        # assembled here (its last host word highest). A binary-weight word is not: each
        # host word is written straight into its 32-bit slice of the memory word (`w_slice`,
        # one-hot, is the slice of `word_ix`).
        asm = Signal(32 * max(wpw_h, wpw_x))
        asm_words = len(asm) // 32
        w_slice = Signal(wpw_w)
        left = Signal(16)
        x_word = Signal(_bits(p.words(0)))
        out_ix = Signal(8)
        h_host = Signal()      # the host owns the hidden-weight port
        host_h_wen = Signal()
        rec_reply = Array(Signal(rec_bits[l] + 1, name=f"rec_reply{l}") for l in range(L))

        cmd_word = self.cmd.payload
        take = self.cmd.valid & self.cmd.ready

        # Read-port address phase mux (engine / copy / bp / select / walker / host).
        # The engine reads its source buffer; the walker reads a[l] one cycle after the
        # record (from its registered fields, `u_a_addr`).
        with m.If(e_run):
            m.d.comb += a_rd.addr.eq(eng_a_addr)
        with m.If(wr_valid):
            m.d.comb += a_rd.addr.eq(u_a_addr)
        m.d.comb += [x_rd.addr.eq(Mux(wr_valid, u_a_addr, eng_a_addr)),
                     x_rd.en.eq((e_run & src_x) | (wr_valid & u_x))]
        with m.If(cp_run):
            m.d.comb += w_rd.addr.eq(cp_addr)
        with m.Elif(e_run):
            m.d.comb += w_rd.addr.eq(eng_w_addr)
        with m.Else():
            # The host's read address is `addr` in every state (the word is used only in
            # RSEND): no state decoding before the block RAMs' address inputs.
            m.d.comb += w_rd.addr.eq(addr)
        if bep:
            with m.If(bp_run):
                m.d.comb += w_rd.addr.eq(bp_w_addr)
        m.d.comb += [z_rd.addr.eq(at_layer(s_z_addr, zgw, s_layer)), z_rd.en.eq(advance),
                     h_rd.addr.eq(Mux(u_phase == 1, at_layer(u_j, hgw, u_layer),
                                      at_layer(s_h_addr, hgw, s_layer)))]
        m.d.comb += [d_rd.addr.eq(at_layer(s_d_addr, dgw, s_layer)), d_rd.en.eq(advance)]
        m.d.comb += r_rd.addr.eq(Mux(u_phase == 5, u_rk, u_ptr))
        # Hidden-weight port: the host or the update block, through registers (address,
        # enables, data) right before the memory, so that nothing but routing lies between a
        # flip-flop and the block RAMs (on ECP5 the 32 of them lie all over the device; the
        # choice of address limited Fmax); the word read is captured in `h_word` as it
        # leaves them (the update block and the host's read buffer take it from there). The
        # port's reads thus take three cycles (`update` is built with mem_latency=3; the
        # host waits in RWAIT). The choice follows `h_host` one cycle late, from a register.
        # The host reads or writes only in states entered from host states, and the update
        # block works only in training states entered from non-host ones or sweeps
        # (`sw_state`), so the late choice never takes the port from either. The host's
        # port reads `addr` in every cycle without a write of its own.
        h_host_q = Signal()
        m.d.sync += h_host_q.eq(h_host)
        hp_addr = Signal.like(hmem.port.addr)
        hp_r_en, hp_w_en = Signal(), Signal()
        hp_w_data = Signal.like(hmem.port.w_data)
        h_word = Signal.like(hmem.port.r_data)
        m.d.sync += h_word.eq(hmem.port.r_data)
        with m.If(h_host_q & (sw_state == 0)):
            m.d.sync += [hp_addr.eq(addr), hp_r_en.eq(~host_h_wen), hp_w_en.eq(host_h_wen),
                         hp_w_data.eq(asm[32 * (asm_words - wpw_h):][:p.hidden_width])]
        with m.Else():
            m.d.sync += [hp_addr.eq(upd.mem.addr), hp_r_en.eq(upd.mem.r_en),
                         hp_w_en.eq(upd.mem.w_en), hp_w_data.eq(upd.mem.w_data)]
        m.d.comb += [hmem.port.addr.eq(hp_addr), hmem.port.r_en.eq(hp_r_en),
                     hmem.port.w_en.eq(hp_w_en), hmem.port.w_data.eq(hp_w_data),
                     upd.mem.r_data.eq(h_word)]
        # Binary-weight write port: host words or written signs. A host word is written the
        # cycle after it is taken, from registers (`hw_*`): the command stream's handshake
        # and the sequencer's state do not reach the block RAMs' data inputs (that path
        # limited Fmax). `addr` moves on only after the memory word's last host word.
        host_w_wen = Signal()
        hw_wen = Signal()
        hw_data = asm[-32:]             # the host word taken last
        hw_slice = Signal.like(w_slice)
        m.d.sync += hw_wen.eq(host_w_wen)
        with m.If(host_w_wen):
            m.d.sync += hw_slice.eq(w_slice)
        with m.If(wb_write):
            # Padding lanes of a row's last word stay 0 (the update reports their sums).
            real = Mux(wbr.tail, w2_tail, Const((1 << LANES) - 1, LANES))
            m.d.comb += [w_wr.addr.eq(wbr.addr),
                         w_wr.data.eq((upd.written.signs & real).replicate(PE * lpw)),
                         w_wr.en.eq(1 << wbr.sel)]
        with m.Elif(hw_wen):
            n_en = PE * lpw             # one enable per LANES bits (LANES divides 32)
            m.d.comb += [w_wr.addr.eq(addr),
                         w_wr.data.eq(hw_data.replicate(wpw_w)[:PE * SIMD]),
                         w_wr.en.eq(Cat(hw_slice[k * LANES // 32] for k in range(n_en)))]

        # Host input word → a[0] (the archive; its addresses are the sample base's) / labels.
        # The engine is idle while the host loads samples: the write port is the host's. A
        # SIMD word is written the cycle after its last host word is taken, from registers
        # (`asm`, whose top words hold it then, and the address): the command handshake and
        # the sequencer's state do not reach the block RAMs' inputs (that path limited Fmax).
        # The engine's first read comes at least two cycles after the last word is taken.
        x_wen = Signal()
        xw_en = Signal()
        xw_addr = Signal(abw)
        m.d.sync += xw_en.eq(x_wen)
        with m.If(x_wen):
            m.d.sync += xw_addr.eq(abase[0] + x_word)
        m.d.comb += [x_wr.addr.eq(xw_addr), x_wr.data.eq(asm[32 * (asm_words - wpw_x):][:SIMD]),
                     x_wr.en.eq(xw_en)]
        lab_wen = Signal()
        m.d.comb += [lab_wr.addr.eq(sample), lab_wr.data.eq(cmd_word), lab_wr.en.eq(lab_wen),
                     lab_rd.addr.eq(sample)]

        m.d.comb += self.busy.eq(~h_host)
        m.d.sync += batch_cycles.eq(batch_cycles + 1)
        # Work: cycles in which a batch is being loaded or trained, or a sweep is pending.
        training = Signal()
        work = Signal(32)
        loading = Signal()          # cycles of `work` spent taking in the batch's samples
        load_cycles = Signal(32)
        with m.If(training | sw_active):
            m.d.sync += work.eq(work + 1)
        with m.If(training & loading):
            m.d.sync += load_cycles.eq(load_cycles + 1)
        regs = {k: v[0] for k, v in REGISTERS.items()}

        # The per-sample training schedule: steps of (kind, argument).
        steps = []
        if p.rule == "local":
            for l in range(L):
                steps += [("job", mats.index(p.weight_matrix(l))),
                          ("job", mats.index(p.classifier_matrix(l))),
                          ("copy", l), ("select", l)]
        else:
            steps += [("job", mats.index(p.weight_matrix(l))) for l in range(L)]
            steps += [("job", mats.index(p.classifier_matrix(L - 1))),
                      ("copy", L - 1), ("select", L - 1)]
            for l in range(L - 2, -1, -1):
                steps += [("bp", l), ("select", l)]
        infer_steps = [("job", mats.index(p.weight_matrix(l))) for l in range(L)]
        infer_steps += [("job", mats.index(p.classifier_matrix(L - 1)))]

        # Counters the sequencer tests against their last value keep that test in a flag,
        # updated with the counter (comparisons in the next-state logic limited Fmax):
        # `wix_w`/`wix_x`: word_ix is a memory word's / a SIMD word's last host word;
        # `x_last`: x_word is a sample's last SIMD word; `left_one`: left == 1;
        # `out_last`: out_ix is the last host word of a word read.
        wix_w, wix_x, x_last, left_one, out_last = (Signal(name=n) for n in (
            "wix_w", "wix_x", "x_last", "left_one", "out_last"))
        wpw_cur = Mux(hdr_hidden, wpw_h, wpw_w)

        def word_ix_zero():
            return [word_ix.eq(0), wix_w.eq(wpw_cur == 1), wix_x.eq(int(wpw_x == 1)),
                    w_slice.eq(1)]

        def word_ix_next():
            return [word_ix.eq(word_ix + 1), wix_w.eq(word_ix + 2 == wpw_cur),
                    wix_x.eq(word_ix + 2 == wpw_x),
                    w_slice.eq(w_slice << 1 if wpw_w > 1 else 1)]

        def x_word_zero():
            return [x_word.eq(0), x_last.eq(int(p.words(0) == 1))]

        def left_next():
            return [left.eq(left - 1), left_one.eq(left == 2)]

        def first_sample():
            return [sample.eq(0), s_last.eq(hdr_last == 0)]

        def next_sample():
            return [sample.eq(sample + 1), s_last.eq(sample + 1 == hdr_last)]

        def word_to_asm():
            m.d.sync += asm.eq(Cat(asm[32:], cmd_word) if len(asm) > 32 else cmd_word)

        # Reply words leave through one register stage (`rsp_*`, the `rsp` stream). A state
        # pushes a word (`push`) and goes on when the stage takes it (`can_push`); the word
        # and its `last` flag are chosen by registers only (`rsp_src`, set with the command;
        # `reply_ix`, `out_ix`), not by the sequencer's state, and the stage's enable is the
        # stream's handshake alone (state decoding before the reply register's enable
        # limited Fmax). STATUS replies table words 0..5, TRAIN words 6..7+L.
        rsp_valid, rsp_last, rsp_data = Signal(), Signal(), Signal(32)
        m.d.comb += [self.rsp.valid.eq(rsp_valid), self.rsp.payload.data.eq(rsp_data),
                     self.rsp.payload.last.eq(rsp_last)]
        SRC_TABLE, SRC_READ, SRC_PRED = 0, 1, 2
        rsp_src = Signal(2)
        table = [MAGIC, p.signature, samples_total, batches_total, work, load_cycles,
                 n_correct, batch_cycles, *rec_reply]
        STATUS_END, TRAIN_FIRST = 5, 6
        reply_ix = Signal(range(len(table)))
        reply_end = Signal.like(reply_ix)
        push, push_last, push_data = Signal(), Signal(), Signal(32)
        can_push = ~rsp_valid | self.rsp.ready
        with m.Switch(rsp_src):
            with m.Case(SRC_TABLE):
                m.d.comb += [push_data.eq(Array(Const(v, 32) if isinstance(v, int) else v
                                                for v in table)[reply_ix]),
                             push_last.eq(reply_ix == reply_end)]
            with m.Case(SRC_READ):
                # A word is sent from the register that captures its memory's output in
                # every cycle (`q_w`, `h_word`): both hold it while the address stays `addr`
                # (the host's hidden-weight port reads `addr` in every cycle).
                h_words = Cat(h_word, Const(0, 32 * wpw_h - len(h_word)))
                w_words = Cat(q_w, Const(0, 32 * wpw_w - len(q_w)))
                m.d.comb += [push_data.eq(Mux(hdr_hidden, h_words.word_select(out_ix, 32),
                                              w_words.word_select(out_ix, 32))),
                             push_last.eq(out_last & left_one)]
            with m.Case(SRC_PRED):
                m.d.comb += [push_data.eq(pred), push_last.eq(s_last)]
        with m.If(can_push):
            m.d.sync += [rsp_valid.eq(push), rsp_last.eq(push_last), rsp_data.eq(push_data)]

        def reply(src, first=0, end=0):
            return [rsp_src.eq(src), reply_ix.eq(first), reply_end.eq(end)]

        with m.FSM(name="seq"):
            with m.State("HDR"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1)]
                with m.If(take):
                    m.d.sync += [hdr_op.eq(cmd_word[:8]), hdr_arg.eq(cmd_word[8:16]),
                                 hdr_count.eq(cmd_word[16:]), hdr_last.eq(cmd_word[16:] - 1),
                                 hdr_hidden.eq(cmd_word[8:16] == REGION_HIDDEN),
                                 *word_ix_zero(),
                                 sample.eq(0), s_last.eq(cmd_word[16:] == 1),
                                 *x_word_zero()]
                    with m.Switch(cmd_word[:8]):
                        with m.Case(OP_SET_REG):
                            m.next = "SETREG"
                        with m.Case(OP_WRITE, OP_READ):
                            m.d.sync += reply(SRC_READ)
                            m.next = "ADDR"
                        with m.Case(OP_TRAIN):
                            m.d.sync += [n_correct.eq(0),
                                         batch_cycles.eq(1), training.eq(1)]
                            for k in range(L):
                                m.d.sync += abase[k].eq(a_region[k])
                            m.next = "LABEL"
                        with m.Case(OP_INFER):
                            for k in range(L):
                                m.d.sync += abase[k].eq(a_region[k])
                            m.d.sync += [infer.eq(1), *reply(SRC_PRED)]
                            m.next = "X"
                        with m.Case(OP_STATUS):
                            m.d.sync += reply(SRC_TABLE, 0, STATUS_END)
                            m.next = "STATUS"
            with m.State("SETREG"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1)]
                with m.If(take):
                    with m.Switch(hdr_arg):
                        with m.Case(regs["seed_lo"]):
                            m.d.sync += seed[:32].eq(cmd_word)
                        with m.Case(regs["seed_hi"]):
                            m.d.sync += seed[32:].eq(cmd_word)
                        with m.Case(regs["step"]):
                            m.d.sync += step.eq(cmd_word)
                        with m.Case(regs["empty_gate_skip"]):
                            m.d.sync += skip_empty.eq(cmd_word[0])
                        for name, arr_ in (("gamma", gamma), ("margin_threshold", margin_thr),
                                           ("gate_threshold", gate_thr),
                                           ("reinforce_threshold", reinf_thr),
                                           ("groups", n_groups)):
                            for l in range(L):
                                with m.Case(REGISTERS[name][0] + l):
                                    m.d.sync += arr_[l].eq(cmd_word)
                    m.next = "HDR"
            with m.State("ADDR"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1)]
                with m.If(take):
                    m.d.sync += [addr.eq(cmd_word), left.eq(hdr_count),
                                 left_one.eq(hdr_count == 1), *word_ix_zero()]
                    with m.If(hdr_count == 0):
                        m.next = "HDR"
                    with m.Elif(hdr_op == OP_WRITE):
                        m.next = "WDATA"
                    with m.Else():
                        m.next = "RISSUE"
            with m.State("WDATA"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1)]
                with m.If(take):
                    word_to_asm()
                    m.d.comb += host_w_wen.eq(~hdr_hidden)
                    with m.If(wix_w):
                        m.d.sync += word_ix_zero()
                        m.next = "WWRITE"
                    with m.Else():
                        m.d.sync += word_ix_next()
            with m.State("WWRITE"):
                # A hidden-weight word is written from `asm` (a binary-weight word's last
                # host word is written in this cycle, from `hw_*`).
                m.d.comb += h_host.eq(1)
                with m.If(hdr_hidden & sw_active):
                    pass                # the hidden weights are being swept: wait
                with m.Else():
                    m.d.comb += host_h_wen.eq(hdr_hidden)
                    m.d.sync += [addr.eq(addr + 1), *left_next()]
                    with m.If(left_one):
                        m.next = "HDR"
                    with m.Else():
                        m.next = "WDATA"
            with m.State("RISSUE"):
                m.d.comb += h_host.eq(1)
                with m.If(~(hdr_hidden & sw_active)):
                    m.d.sync += out_ix.eq(0)
                    m.next = "RWAIT"
            with m.State("RWAIT"):
                # The hidden-weight port's read takes three cycles (`h_word`).
                m.d.comb += h_host.eq(1)
                m.d.sync += out_ix.eq(out_ix + 1)
                with m.If(out_ix == 1):
                    m.next = "RLATCH"
            with m.State("RLATCH"):
                m.d.comb += h_host.eq(1)
                m.d.sync += [out_ix.eq(0), out_last.eq(wpw_cur == 1)]
                m.next = "RSEND"
            with m.State("RSEND"):
                m.d.comb += [h_host.eq(1), push.eq(1)]
                with m.If(can_push):
                    with m.If(out_last):
                        m.d.sync += [addr.eq(addr + 1), *left_next()]
                        with m.If(left_one):
                            m.next = "HDR"
                        with m.Else():
                            m.next = "RISSUE"
                    with m.Else():
                        m.d.sync += [out_ix.eq(out_ix + 1), out_last.eq(out_ix + 2 == wpw_cur)]
            with m.State("STATUS"):
                m.d.comb += [h_host.eq(1), push.eq(1)]
                with m.If(can_push):
                    m.d.sync += reply_ix.eq(reply_ix + 1)
                    with m.If(push_last):
                        m.next = "HDR"
            # -- training: load the batch ------------------------------------------------------
            with m.State("LABEL"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1), loading.eq(1)]
                with m.If(take):
                    m.d.comb += lab_wen.eq(1)
                    m.d.sync += [*x_word_zero(), *word_ix_zero()]
                    m.next = "X"
            with m.State("X"):
                m.d.comb += [self.cmd.ready.eq(1), h_host.eq(1), loading.eq(1)]
                with m.If(take):
                    word_to_asm()
                    with m.If(wix_x):
                        # The SIMD word is complete (written from `asm` next cycle).
                        m.d.comb += x_wen.eq(1)
                        m.d.sync += [*word_ix_zero(), x_word.eq(x_word + 1),
                                     x_last.eq(x_word + 2 == p.words(0))]
                        with m.If(x_last):
                            with m.If(infer):
                                m.next = "I0"
                            with m.Elif(s_last):
                                m.d.sync += [*first_sample(), abase[0].eq(a_region[0])]
                                m.next = "SNEXT"
                            with m.Else():
                                m.d.sync += [*next_sample(),
                                             abase[0].eq(abase[0] + p.words(0))]
                                m.next = "LABEL"
                    with m.Else():
                        m.d.sync += word_ix_next()
            # -- training: one sample -----------------------------------------------------------
            with m.State("SAMPLE"):
                # The label read was issued with `sample` last cycle.
                m.d.sync += [label.eq(lab_rd.data), trig.eq(0), live.eq(1)]
                m.next = "T0"
            for i, (kind, arg) in enumerate(steps):
                nxt = f"T{i + 1}" if i + 1 < len(steps) else "TDONE"
                with m.State(f"T{i}"):
                    if kind == "job":
                        mt = mats[arg]
                        # The selection of layer l reads z_l while later jobs run; the next
                        # sample's W_l rewrites z_l. The selection takes at most two cycles a
                        # unit (one more for each winner), the engine `words` cycles a group
                        # of PE units: with fewer than 2·PE words a row, W_l could overtake it,
                        # so it waits for it.
                        if mt.kind == "W" and mt.words < 2 * PE:
                            go = ~sel_busy[mt.layer]
                        else:
                            go = 1
                        with m.If(go):
                            m.d.sync += [e_start.eq(1), e_arg.eq(arg)]
                            m.next = f"T{i}w"
                    elif kind == "copy":
                        # Selection runs in the background (see "select"); the copy and
                        # back-projection steps share its memories, so they wait for it.
                        with m.If(s_busy):
                            pass
                        with m.Elif(trig[arg]):
                            m.d.comb += [cp_start.eq(1), cp_arg.eq(arg)]
                            m.next = f"T{i}w"
                        with m.Else():
                            m.next = nxt
                    elif kind == "select":
                        ok = trig[arg] if p.rule == "local" else (trig[L - 1] & live)
                        # Start and go on: the selection overlaps the next engine jobs.
                        with m.If(s_busy):
                            pass
                        with m.Elif(ok):
                            m.d.comb += s_start.eq(1)
                            m.d.sync += [s_layer.eq(arg), s_abase.eq(abase[arg])]
                            m.next = nxt
                        with m.Else():
                            m.next = nxt
                    elif kind == "bp":
                        # Runs beside the selection of the layer above (ports of its own).
                        with m.If(trig[L - 1] & live):
                            m.d.comb += bp_start.eq(1)
                            m.d.sync += bp_layer.eq(arg)
                            m.next = f"T{i}w"
                        with m.Else():
                            m.next = nxt
                if kind == "select":
                    continue
                with m.State(f"T{i}w"):
                    if kind == "job":
                        with m.If(~e_busy):
                            m.next = nxt
                        # The classifier's verdict arrives with Scoring's out_valid.
                        if mats[arg].kind == "Q":
                            layer = mats[arg].layer
                            with m.If(score.out_valid):
                                m.d.sync += trig[layer].eq(score.trigger)
                                if layer == L - 1:
                                    m.d.sync += pred.eq(score.prediction)
                    elif kind == "copy":
                        with m.If(~cp_busy):
                            m.next = nxt
                    elif kind == "bp":
                        with m.If(~bp_busy):
                            with m.If(skip_empty & ~any_gate):
                                m.d.sync += live.eq(0)
                            m.next = nxt
            with m.State("TDONE"):
                with m.If(pred == label):
                    m.d.sync += n_correct.eq(n_correct + 1)
                m.d.sync += [samples_total.eq(samples_total + 1)]
                for k in range(L):
                    m.d.sync += abase[k].eq(abase[k] + p.words(k))
                with m.If(s_last):
                    m.d.sync += u_layer.eq(0)
                    m.next = "UWAIT"
                with m.Else():
                    m.d.sync += next_sample()
                    m.next = "SNEXT"
            with m.State("SNEXT"):
                m.next = "SAMPLE"
            # -- batch end: updates and reinforcement, layer by layer ------------------------------
            with m.State("UWAIT"):
                # The last selection's records are in and the previous sweeps are done.
                with m.If(~s_busy & ~sw_active):
                    m.d.sync += [sw_step.eq(step), sw_seed.eq(seed)]
                    m.next = "U0"
            with m.State("U0"):
                for l in range(L):
                    with m.If(u_layer == l):
                        m.d.sync += rec_reply[l].eq(rcount[l])
                with m.If(rcount[u_layer] != 0):
                    m.d.comb += u_start.eq(1)
                    m.next = "U1"
                with m.Else():
                    m.next = "U2"
            with m.State("U1"):
                with m.If(~u_busy):
                    m.d.sync += rcount[u_layer].eq(0)
                    with m.Switch(u_layer):
                        for l in range(L):
                            with m.Case(l):
                                with m.If(reinf_thr[l] != 0):
                                    m.d.sync += [sw_next[l].eq(1), sw_thr[l].eq(reinf_thr[l])]
                    m.next = "U2"
            with m.State("U2"):
                with m.If(u_layer == L - 1):
                    m.d.sync += [sw_pend.eq(sw_next), sw_next.eq(0)]
                    m.d.sync += [batches_total.eq(batches_total + 1),
                                 *reply(SRC_TABLE, TRAIN_FIRST, len(table) - 1)]
                    m.next = "TREPLY"
                with m.Else():
                    m.d.sync += u_layer.eq(u_layer + 1)
                    m.next = "U0"
            with m.State("TREPLY"):
                m.d.comb += push.eq(1)
                with m.If(can_push):
                    m.d.sync += reply_ix.eq(reply_ix + 1)
                    with m.If(push_last):
                        m.d.sync += training.eq(0)
                        m.next = "HDR"
            # -- inference -------------------------------------------------------------------------
            for i, (kind, arg) in enumerate(infer_steps):
                nxt = f"I{i + 1}" if i + 1 < len(infer_steps) else "IREPLY"
                with m.State(f"I{i}"):
                    m.d.sync += [e_start.eq(1), e_arg.eq(arg)]
                    m.next = f"I{i}w"
                with m.State(f"I{i}w"):
                    with m.If(score.out_valid):
                        m.d.sync += pred.eq(score.prediction)
                    with m.If(~e_busy):
                        m.next = nxt
            with m.State("IREPLY"):
                m.d.comb += push.eq(1)
                with m.If(can_push):
                    with m.If(s_last):
                        m.d.sync += infer.eq(0)
                        m.next = "HDR"
                    with m.Else():
                        m.d.sync += [*next_sample(), *x_word_zero(), *word_ix_zero()]
                        m.next = "X"
        return m
