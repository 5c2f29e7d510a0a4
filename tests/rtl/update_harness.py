"""Test harness for the hidden-weight update: the block, its memory and a host port.

Shared by ``test_update.py`` (Amaranth simulator) and the cocotb module
``cocotb_update.py``; also the model-side helpers that lay out hidden weights in memory words
and turn a batch's winner masks into record beats (the sequencer's job in the full design).
"""

import numpy as np
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bitprop.rtl.memory import HiddenWeightMemory
from bitprop.rtl.update import HiddenWeightUpdate

__all__ = ["UpdateHarness", "layout_words", "unlayout_words", "record_beats"]


class UpdateHarness(wiring.Component):
    """:class:`HiddenWeightUpdate` wired to a :class:`HiddenWeightMemory`.

    While ``host_sel`` is high the host port (``host_addr``, ``host_r_en`` → ``host_r_data``
    one cycle later, ``host_w_en``/``host_w_data``) owns the memory, for loading and reading
    back; otherwise the update block does. All other ports are the update block's.
    ``mem_latency`` 2 or 3 puts registers between the update block and the memory as the
    training core does (its address, enables and data; with 3 also the word read), and builds
    the block for that latency; the host port has none.
    """

    def __init__(self, *, lanes, hidden_bits, depth, max_records=64, carry_segments=1,
                 spram=False, init=None, mem_latency=1):
        self.mem_latency = mem_latency
        self.update = HiddenWeightUpdate(lanes=lanes, hidden_bits=hidden_bits,
                                         addr_width=max(1, (depth - 1).bit_length()),
                                         max_records=max_records,
                                         carry_segments=carry_segments,
                                         mem_latency=mem_latency)
        self.memory = HiddenWeightMemory(lanes=lanes, hidden_bits=hidden_bits, depth=depth,
                                         spram=spram, model=spram, init=init)
        members = {name: member for name, member in self.update.signature.members.items()
                   if name != "mem"}
        aw = self.update.addr_width
        width = lanes * hidden_bits
        members.update({
            "host_sel": In(1), "host_addr": In(aw), "host_r_en": In(1),
            "host_r_data": Out(width), "host_w_en": In(1), "host_w_data": In(width),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.update = up = self.update
        m.submodules.memory = mem = self.memory
        for name in up.signature.members:
            if name == "mem":
                continue
            ours, theirs = getattr(self, name), getattr(up, name)
            if up.signature.members[name].is_port:
                flow = up.signature.members[name].flow
                m.d.comb += (theirs.eq(ours) if flow == In else ours.eq(theirs))
            else:
                wiring.connect(m, wiring.flipped(ours), theirs)
        host = self.host_sel
        ups = [up.mem.addr, up.mem.r_en, up.mem.w_en, up.mem.w_data]
        word = mem.port.r_data
        if self.mem_latency >= 2:
            regs = [Signal.like(v) for v in ups]
            m.d.sync += [r.eq(v) for r, v in zip(regs, ups)]
            ups = regs
        if self.mem_latency == 3:
            word = Signal.like(mem.port.r_data)
            m.d.sync += word.eq(mem.port.r_data)
        addr, r_en, w_en, w_data = ups
        m.d.comb += [
            mem.port.addr.eq(Mux(host, self.host_addr, addr)),
            mem.port.r_en.eq(Mux(host, self.host_r_en, r_en)),
            mem.port.w_en.eq(Mux(host, self.host_w_en, w_en)),
            mem.port.w_data.eq(Mux(host, self.host_w_data, w_data)),
            up.mem.r_data.eq(word),
            self.host_r_data.eq(mem.port.r_data),
        ]
        return m


def layout_words(hidden, lanes, hidden_bits, pad=1):
    """Return the memory words (Python ints) of a ``K_out × K_in`` hidden-weight matrix.

    Row ``j`` takes ``R = ceil(K_in / lanes)`` words; padding lanes hold ``pad``.
    """
    hidden = np.asarray(hidden, dtype=np.int64)
    k_out, k_in = hidden.shape
    r = -(-k_in // lanes)
    padded = np.full((k_out, r * lanes), pad, dtype=np.int64)
    padded[:, :k_in] = hidden
    mask = (1 << hidden_bits) - 1
    words = []
    for row in padded.reshape(k_out * r, lanes):
        word = 0
        for lane, v in enumerate(row):
            word |= (int(v) & mask) << (lane * hidden_bits)
        words.append(word)
    return words


def unlayout_words(words, k_out, k_in, lanes, hidden_bits):
    """Return ``(hidden, padding)``: the matrix held by ``words`` and its padding lanes."""
    r = -(-k_in // lanes)
    mask = (1 << hidden_bits) - 1
    vals = np.zeros((k_out * r, lanes), dtype=np.int64)
    for i, word in enumerate(words[:k_out * r]):
        for lane in range(lanes):
            v = (int(word) >> (lane * hidden_bits)) & mask
            vals[i, lane] = v - (1 << hidden_bits) if v >> (hidden_bits - 1) else v
    full = vals.reshape(k_out, r * lanes)
    return full[:, :k_in], full[:, k_in:]


def record_beats(mask, desired, a_prev, lanes, base=0):
    """Return the record beats (dicts for ``rec``) of a batch, row by row, word by word.

    ``mask`` (N, K_out) winners, ``desired`` (N, K_out) ±1, ``a_prev`` (N, K_in) ±1.
    """
    mask = np.asarray(mask, dtype=bool)
    a_prev = np.asarray(a_prev)
    k_in = a_prev.shape[1]
    r = -(-k_in // lanes)
    beats = []
    for j in range(mask.shape[1]):
        samples = np.flatnonzero(mask[:, j])
        if samples.size == 0:
            continue
        for c in range(r):
            cols = range(c * lanes, min(k_in, (c + 1) * lanes))
            lane_mask = (1 << len(cols)) - 1
            for t, n in enumerate(samples):
                bits = 0
                for lane, col in enumerate(cols):
                    bits |= int(a_prev[n, col] > 0) << lane
                beats.append({"addr": base + j * r + c, "a_prev": bits,
                              "desired": int(desired[n, j] > 0), "mask": lane_mask,
                              "last": int(t == samples.size - 1)})
    return beats


def odd_hidden(rng, shape, hidden_bits, p_edge=0.2):
    """Return odd hidden weights in range, a fraction ``p_edge`` of them at ±h_max."""
    from bitprop.model.ops import hidden_range
    hmax = hidden_range(hidden_bits)
    h = 2 * rng.integers(-(hmax + 1) // 2, (hmax + 1) // 2, size=shape) + 1
    edge = rng.random(shape) < p_edge
    h = np.where(edge, rng.choice([-hmax, hmax], size=shape), h)
    return np.clip(h, -hmax, hmax).astype(np.int64)


def batch_case(rng, k_out, k_in, hidden_bits, n, p_select=0.4):
    """Return ``(hidden, mask, desired, a_prev)`` of one batch (mask: the winners)."""
    hidden = odd_hidden(rng, (k_out, k_in), hidden_bits)
    mask = rng.random((n, k_out)) < p_select
    desired = rng.choice([-1, 1], size=(n, k_out))
    a_prev = rng.choice([-1, 1], size=(n, k_in))
    return hidden, mask, desired, a_prev


def row_words(k_in, lanes):
    """Return ``(R, tail)``: words per row and real lanes of a row's last word."""
    r = -(-k_in // lanes)
    return r, k_in - (r - 1) * lanes
