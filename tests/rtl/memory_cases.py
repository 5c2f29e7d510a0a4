"""Access sequences and a reference model for the weight memories (Amaranth and cocotb).

A memory has no function in the golden model; the reference here is a dictionary: what was
last written at an address is what a later read returns. Unwritten words are unknown (SPRAM
has no initial contents; Icarus reads them as X): a read of one is not checked, and the
binary memory's sequences begin by writing every word.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bitprop.rtl.memory import BinaryWeightMemory, HiddenWeightMemory

__all__ = ["MemoryHarness", "hidden_ops", "binary_ops", "HiddenModel", "BinaryModel"]


class MemoryHarness(wiring.Component):
    """Both memories side by side, ports prefixed ``h_`` (hidden) and ``b_`` (binary)."""

    def __init__(self, *, lanes, hidden_bits, hidden_depth, spram, width, depth, granularity):
        self.hidden = HiddenWeightMemory(lanes=lanes, hidden_bits=hidden_bits,
                                         depth=hidden_depth, spram=spram, model=spram)
        self.binary = BinaryWeightMemory(width=width, depth=depth, granularity=granularity)
        # The port as the memory sees it: addr, enables and write data in, read data out.
        members = {f"h_{name}": m
                   for name, m in self.hidden.port.signature.members.items()}
        members.update({f"b_{name}": m for name, m in self.binary.signature.members.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.hidden = self.hidden
        m.submodules.binary = self.binary
        for name, member in self.hidden.port.signature.members.items():
            ours, theirs = getattr(self, f"h_{name}"), getattr(self.hidden.port, name)
            m.d.comb += theirs.eq(ours) if member.flow == In else ours.eq(theirs)
        for name, member in self.binary.signature.members.items():
            ours, theirs = getattr(self, f"b_{name}"), getattr(self.binary, name)
            m.d.comb += theirs.eq(ours) if member.flow == In else ours.eq(theirs)
        return m


def hidden_ops(rng, depth, width, n, hot=None):
    """Return ``n`` single-port operations: ("r", addr), ("w", addr, data) or ("idle",).

    Addresses come mostly from a small hot set (so reads hit written words), including the
    first and last word and, with ``hot``, given addresses (bank edges).
    """
    hot = sorted(set([0, depth - 1, *(hot or []), *rng.integers(0, depth, 6).tolist()]))
    out = []
    for _ in range(n):
        addr = int(rng.choice(hot)) if rng.random() < 0.8 else int(rng.integers(0, depth))
        r = rng.random()
        if r < 0.45:
            out.append(("w", addr, int(rng.integers(0, 1 << 62)) & ((1 << width) - 1)))
        elif r < 0.9:
            out.append(("r", addr))
        else:
            out.append(("idle",))
    return out


class HiddenModel:
    """Reference of HiddenWeightMemory: r_data holds the last read word (None: unknown)."""

    def __init__(self):
        self.mem = {}
        self.r_data = None

    def step(self, op):
        """Apply one operation; return the r_data visible in the next cycle."""
        if op[0] == "w":
            self.mem[op[1]] = op[2]
        elif op[0] == "r":
            self.r_data = self.mem.get(op[1])
        return self.r_data


def binary_ops(rng, depth, width, granules, n):
    """Return cycles of (read addr or None, write addr or None, enables, data): first a
    full write of every word, then ``n`` random cycles."""
    hot = [0, depth - 1, *rng.integers(0, depth, 4).tolist()]
    full = (1 << granules) - 1
    out = [(None, a, full, int(rng.integers(0, 1 << 62)) & ((1 << width) - 1))
           for a in range(depth)]
    for _ in range(n):
        ra = int(rng.choice(hot)) if rng.random() < 0.7 else None
        wa = int(rng.choice(hot)) if rng.random() < 0.6 else None
        en = int(rng.integers(1, 1 << granules)) if wa is not None else 0
        data = int(rng.integers(0, 1 << 62)) & ((1 << width) - 1)
        out.append((ra, wa, en, data))
    return out


class BinaryModel:
    """Reference of BinaryWeightMemory: read-before-write, per-granule write enables."""

    def __init__(self, width, granularity):
        self.mem = {}
        self.r_data = None
        self.width = width
        self.gran = granularity or width

    def step(self, ra, wa, en, data):
        if ra is not None:
            self.r_data = self.mem.get(ra, 0)
        if wa is not None:
            old = self.mem.get(wa, 0)
            for g in range(self.width // self.gran):
                if (en >> g) & 1:
                    mask = ((1 << self.gran) - 1) << (g * self.gran)
                    old = (old & ~mask) | (data & mask)
            self.mem[wa] = old
        return self.r_data
