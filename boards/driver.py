"""Host driver of the training core: one API for a board on a serial port and the simulation.

:class:`Device` turns training operations into the core's command words
(:mod:`bitprop.rtl.core` lists the messages) and decodes the replies. It talks through a
*port*, anything with ``exchange(words, n_reply) -> list of int``:

- :class:`FramePort` carries the words in frames of :mod:`bitprop.boards.link` (SLIP, CRC-16,
  sequence numbers, resends) over a :class:`~bitprop.boards.link.SerialTransport` to a board;
- ``bitprop.sim.core_bench.SimPort`` drives the simulated core's command stream directly.

The memory images (:func:`binary_image`, :func:`hidden_image`) follow the layouts of
:class:`~bitprop.rtl.plan.CorePlan`; :func:`decode_hidden` inverts :func:`hidden_image`.
"""

import numpy as np

from bitprop.model import ops
from bitprop.model.bits import unpack
from bitprop.model.errors import BitpropError, ConfigError
from bitprop.rtl.plan import (MAGIC, OP_INFER, OP_READ, OP_SET_REG, OP_STATUS, OP_TRAIN,
                              OP_WRITE, REGION_BINARY, REGION_HIDDEN, registers_for)

__all__ = ["Device", "DeviceError", "FramePort", "binary_image", "hidden_image",
           "decode_hidden", "sample_words", "header"]
MAX_COUNT = 0xFFFF
FRAME_CMD = 0x01        # frame type carrying command words (FramePort)
FRAME_READ = 0x02       # frame type asking for reply words


class DeviceError(BitpropError):
    """The device answered something the protocol does not allow."""


def header(op, arg=0, count=0):
    """Return a message header word."""
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"message count {count} out of range 0..{MAX_COUNT}")
    return (op & 0xFF) | ((arg & 0xFF) << 8) | (count << 16)


def _split(values, width):
    """Return memory words of ``width`` bits as 32-bit host words, least significant first."""
    n = -(-width // 32)
    out = []
    for v in values:
        v = int(v)
        out.extend((v >> (32 * i)) & 0xFFFF_FFFF for i in range(n))
    return out


def _join(words, width):
    n = -(-width // 32)
    if len(words) % n:
        raise DeviceError(f"reply of {len(words)} words is not a whole number of "
                          f"{n}-word memory words")
    return [sum(int(words[i + k]) << (32 * k) for k in range(n)) for i in range(0, len(words), n)]


def _rows_to_words(bits, words, simd):
    """Pack a bool matrix (rows, K) into per-row lists of ``words`` SIMD-bit integers."""
    rows, k = bits.shape
    padded = np.zeros((rows, words * simd), dtype=np.uint8)
    padded[:, :k] = bits
    weights = (1 << np.arange(simd, dtype=object))
    out = []
    for r in range(rows):
        chunks = padded[r].reshape(words, simd).astype(object)
        out.append([int((c * weights).sum()) for c in chunks])
    return out


def binary_image(plan, hidden, classifiers):
    """Return the binary-weight memory image (ints of PE·SIMD bits), all matrices."""
    image = []
    for mt in plan.matrices:
        if mt.kind == "W":
            bits = np.asarray(hidden[mt.layer]) > 0
        else:
            bits = np.asarray(classifiers[mt.layer]) > 0
        if bits.shape != (mt.rows, mt.k_in):
            raise ConfigError(f"matrix {mt.kind}{mt.layer + 1} has shape {bits.shape}; the "
                              f"core was built for {(mt.rows, mt.k_in)}")
        rows = _rows_to_words(bits, mt.words, plan.simd)
        for g in range(mt.groups):
            for c in range(mt.words):
                word = 0
                for r in range(plan.pe):
                    j = g * plan.pe + r
                    if j < mt.rows:
                        word |= rows[j][c] << (r * plan.simd)
                image.append(word)
    return image


def hidden_image(plan, hidden):
    """Return the hidden-weight memory image (ints of lanes·hidden_bits bits)."""
    b, lanes = plan.hidden_bits, plan.lanes
    mask = (1 << b) - 1
    hmax = ops.hidden_range(b)
    image = []
    for l in range(plan.n_layers):
        h = np.asarray(hidden[l], dtype=np.int64)
        want = (plan.sizes[l + 1], plan.sizes[l])
        if h.shape != want:
            raise ConfigError(f"hidden layer {l + 1} has shape {h.shape}; the core was built "
                              f"for {want}")
        if np.abs(h).max(initial=0) > hmax:
            raise ConfigError(f"hidden layer {l + 1} holds values beyond ±{hmax} "
                              f"({b}-bit hidden weights)")
        rw = plan.row_words(l)
        padded = np.zeros((h.shape[0], rw * lanes), dtype=np.int64)
        padded[:, :h.shape[1]] = h
        u = (padded & mask).reshape(h.shape[0], rw, lanes)
        for row in u:
            for word in row:
                image.append(sum(int(v) << (b * i) for i, v in enumerate(word)))
    return image


def decode_hidden(plan, image):
    """Return the hidden-weight matrices (int64) of a memory image."""
    b, lanes = plan.hidden_bits, plan.lanes
    mask = (1 << b) - 1
    out, pos = [], 0
    for l in range(plan.n_layers):
        k_out, k_in = plan.sizes[l + 1], plan.sizes[l]
        rw = plan.row_words(l)
        words = image[pos:pos + k_out * rw]
        pos += k_out * rw
        vals = np.array([[(w >> (b * i)) & mask for i in range(lanes)] for w in words],
                        dtype=np.int64).reshape(k_out, rw * lanes)[:, :k_in]
        vals = np.where(vals >= 1 << (b - 1), vals - (1 << b), vals)
        out.append(vals)
    return out


def sample_words(plan, x_packed):
    """Return the host words of packed ±1 samples (N, ⌈D/64⌉ uint64), one list per sample."""
    x_packed = np.ascontiguousarray(x_packed, dtype=np.uint64)
    d, simd = plan.sizes[0], plan.simd
    words = plan.words(0)
    # The uint64 packing is little-endian bit order; view it as bytes → SIMD-bit chunks.
    as_bytes = x_packed.view(np.uint8).reshape(x_packed.shape[0], -1)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :d]
    padded = np.zeros((bits.shape[0], words * simd), dtype=np.uint8)
    padded[:, :d] = bits
    chunk = 32 if simd >= 32 else simd
    per = padded.reshape(bits.shape[0], -1, chunk)
    packed = np.packbits(per, axis=2, bitorder="little")
    vals = packed.view(np.uint32 if chunk == 32 else (np.uint16 if chunk == 16 else np.uint8))
    vals = vals.reshape(bits.shape[0], words * (simd // chunk)).astype(np.uint64)
    return vals.tolist()


class Device:
    """The training core behind a port (see the module notes).

    Parameters
    ----------
    port : object
        ``exchange(words, n_reply)`` sends command words and returns ``n_reply`` reply words.
    plan : CorePlan
        The plan the device was built from; :meth:`check` compares its signature.
    """

    def __init__(self, port, plan):
        self.port = port
        self.plan = plan

    # -- low level -----------------------------------------------------------------------------
    def status(self):
        """Return the device's status words as a dict."""
        magic, sig, samples, batches, work, load = self.port.exchange([header(OP_STATUS)], 6)
        return {"magic": magic, "signature": sig, "samples": samples, "batches": batches,
                "work_cycles": work, "load_cycles": load}

    def check(self):
        """Raise DeviceError unless the device is a core built from this plan."""
        st = self.status()
        if st["magic"] != MAGIC:
            raise DeviceError(f"no training core answers (magic {st['magic']:#010x})")
        if st["signature"] != self.plan.signature:
            raise DeviceError(f"the device was built from another plan (signature "
                              f"{st['signature']:#010x}, expected {self.plan.signature:#010x})")
        return st

    def set_registers(self, regs):
        words = []
        for index, value in regs:
            words += [header(OP_SET_REG, index), int(value) & 0xFFFF_FFFF]
        self.port.exchange(words, 0)

    def _region(self, region):
        return (self.plan.binary_width, self.plan.binary_depth) if region == REGION_BINARY \
            else (self.plan.hidden_width, self.plan.hidden_depth)

    def write(self, region, address, values, chunk=1024):
        """Write memory words ``values`` of ``region`` from ``address``."""
        width, depth = self._region(region)
        if address < 0 or address + len(values) > depth:
            raise ValueError(f"write of {len(values)} words at {address} leaves region "
                             f"{region} (depth {depth})")
        for i in range(0, len(values), chunk):
            part = values[i:i + chunk]
            self.port.exchange([header(OP_WRITE, region, len(part)), address + i]
                               + _split(part, width), 0)

    def read(self, region, address, count, chunk=1024):
        """Return ``count`` memory words of ``region`` from ``address``."""
        width, depth = self._region(region)
        if address < 0 or address + count > depth:
            raise ValueError(f"read of {count} words at {address} leaves region {region} "
                             f"(depth {depth})")
        out = []
        for i in range(0, count, chunk):
            n = min(chunk, count - i)
            words = self.port.exchange([header(OP_READ, region, n), address + i],
                                       n * -(-width // 32))
            out += _join(words, width)
        return out

    # -- training ------------------------------------------------------------------------------
    def load(self, hidden, classifiers):
        """Load hidden weights, their binary weights and the fixed classifiers."""
        self.write(REGION_BINARY, 0, binary_image(self.plan, hidden, classifiers))
        self.write(REGION_HIDDEN, 0, hidden_image(self.plan, hidden))

    def read_hidden(self):
        """Return the device's hidden-weight matrices."""
        return decode_hidden(self.plan, self.read(REGION_HIDDEN, 0, self.plan.hidden_depth))

    def read_binary(self):
        """Return the binary-weight memory image."""
        return self.read(REGION_BINARY, 0, self.plan.binary_depth)

    def configure(self, cfg, *, step, thresholds, gammas):
        """Set the run-time registers for the next batch."""
        for l, (g, g0) in enumerate(zip(gammas, self.plan.gammas)):
            if g < g0 or self.plan.sizes[l + 1] % g:
                raise ConfigError(f"group size {g} of layer {l + 1} must divide "
                                  f"{self.plan.sizes[l + 1]} and be at least {g0}, the size "
                                  "the core's record memory was built for")
        self.set_registers(registers_for(cfg, self.plan, thresholds=thresholds,
                                         gammas=gammas, step=step))

    def train_batch(self, x_packed, labels):
        """Train one mini-batch; return ``{"n_correct", "cycles", "records"}``."""
        labels = np.asarray(labels)
        n = labels.shape[0]
        if not 1 <= n <= self.plan.batch_max:
            raise ConfigError(f"batch of {n} samples; the core buffers 1..{self.plan.batch_max}")
        if labels.min() < 0 or labels.max() >= self.plan.n_classes:
            raise ConfigError(f"labels must be in 0..{self.plan.n_classes - 1}")
        words = [header(OP_TRAIN, 0, n)]
        for y, xs in zip(labels.tolist(), sample_words(self.plan, x_packed)):
            words.append(int(y))
            words += xs
        reply = self.port.exchange(words, 2 + self.plan.n_layers)
        return {"n_correct": reply[0], "cycles": reply[1], "records": list(reply[2:])}

    def infer(self, x_packed, chunk=128):
        """Return the predicted class of every sample."""
        samples = sample_words(self.plan, x_packed)
        out = []
        for i in range(0, len(samples), chunk):
            part = samples[i:i + chunk]
            words = [header(OP_INFER, 0, len(part))]
            for xs in part:
                words += xs
            out += self.port.exchange(words, len(part))
        return np.array(out, dtype=np.int64)


class FramePort:
    """Carry command words over the framed serial link (:class:`~bitprop.boards.link.Link`).

    Each request frame of type ``FRAME_CMD`` carries up to ``max_payload / 4`` command words;
    reply words are fetched with ``FRAME_READ`` requests (payload: u16 number of words
    wanted), which the device answers with the words it has (possibly fewer).
    """

    def __init__(self, link, *, timeout=2.0, max_empty_reads=100_000):
        self.link = link
        self.timeout = timeout
        self.max_empty_reads = max_empty_reads

    def exchange(self, words, n_reply):
        import struct
        per = self.link.max_payload // 4
        for i in range(0, len(words), per):
            part = words[i:i + per]
            self.link.request(FRAME_CMD, struct.pack(f"<{len(part)}I", *part),
                              timeout=self.timeout)
        out, empty = [], 0
        while len(out) < n_reply:
            want = min(n_reply - len(out), per)
            payload = self.link.request(FRAME_READ, struct.pack("<H", want),
                                        timeout=self.timeout).payload
            if len(payload) % 4:
                raise DeviceError(f"reply payload of {len(payload)} bytes is not whole words")
            out += list(struct.unpack(f"<{len(payload) // 4}I", payload))
            empty = 0 if payload else empty + 1
            if empty > self.max_empty_reads:
                raise DeviceError(f"the device sent {len(out)} of {n_reply} reply words and "
                                  f"then nothing for {empty} reads")
        return out
