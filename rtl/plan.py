"""The training core's plan: a run configuration compiled into memory layouts and a schedule.

One :class:`CorePlan` is computed from a :class:`~bitprop.model.config.RunConfig` and read by
everything on the hardware side: the RTL generator (:mod:`bitprop.rtl.core`), the host driver
(:mod:`bitprop.boards.driver`), the fit check and the reports. Nothing re-derives a width or
an address by hand.

The schedule
------------
The core has one binary-matrix engine (an XNOR-popcount array of PE rows × SIMD bits). The
plan lists the matrices it runs for one training sample, in order (:attr:`CorePlan.matrices`):

- rule ``local``: ``W_1, Q_1, W_2, Q_2, …, W_L, Q_L`` (``Q_L = P``): each hidden layer's
  forward pass, then its fixed local classifier, whose scores trigger that layer;
- rule ``bep``: ``W_1, …, W_L, P``, then the backward chain through ``W_L … W_2``.

Inference runs the ``W_l`` and ``P`` only. The schedule is fixed when the core is generated
(widths are elaboration-time constants, so no instruction decoder or run-time address
arithmetic is needed); group sizes, thresholds, seed and step are run-time registers.

Memory layouts (all little-endian, bit 1 = +1)
----------------------------------------------
- **Binary weights** (``region 0``), width ``PE·SIMD``: matrix ``m`` with R rows and input
  width K occupies ``groups = ⌈R/PE⌉ · words = ⌈K/SIMD⌉`` words from ``m.base``; word
  ``g·words + c`` holds, in lane ``r`` (bits ``r·SIMD … r·SIMD + SIMD − 1``), word ``c`` of row
  ``g·PE + r``. Rows past R are zero.
- **Hidden weights** (``region 1``), width ``lanes·hidden_bits``: layer ``l`` occupies
  ``K_l · R_l`` words from ``hidden_base[l]``, ``R_l = ⌈K_{l−1}/lanes⌉``; lane ``i`` of word
  ``j·R_l + c`` is ``H_l[j, c·lanes + i]`` (two's complement). Padding lanes are 0.
"""

import dataclasses
import hashlib
import math

from bitprop.model import ops
from bitprop.model.config import RunConfig
from bitprop.model.errors import ConfigError

__all__ = ["CorePlan", "Matrix", "MAGIC", "OP_SET_REG", "OP_WRITE", "OP_READ", "OP_TRAIN",
           "OP_INFER", "OP_STATUS", "REGION_BINARY", "REGION_HIDDEN", "REGISTERS",
           "SIMD_CHOICES", "registers_for"]

MAGIC = 0xB17B_C0DE
# Command opcodes of the core's host interface (see bitprop.rtl.core).
OP_SET_REG, OP_WRITE, OP_READ, OP_TRAIN, OP_INFER, OP_STATUS = 1, 2, 3, 4, 5, 6
REGION_BINARY, REGION_HIDDEN = 0, 1
SIMD_CHOICES = (8, 16, 32, 64)
MAX_LAYERS = 8

# Run-time registers: name -> (index, width). Per-layer registers take index + layer.
REGISTERS = {
    "seed_lo": (0x00, 32), "seed_hi": (0x01, 32), "step": (0x02, 32), "empty_gate_skip": (0x03, 1),
    "gamma": (0x10, 16), "margin_threshold": (0x20, 32), "gate_threshold": (0x30, 16),
    "reinforce_threshold": (0x40, 16), "groups": (0x50, 16),
}


def _ceil(a, b):
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class Matrix:
    """One matrix of the schedule: ``kind`` "W" (hidden layer) or "Q" (fixed classifier)."""

    kind: str
    layer: int          # hidden layer index (0-based) it belongs to
    rows: int
    k_in: int
    base: int           # first word in the binary-weight memory
    groups: int         # ⌈rows / PE⌉
    words: int          # ⌈k_in / SIMD⌉

    @property
    def depth(self):
        return self.groups * self.words


@dataclasses.dataclass(frozen=True)
class CorePlan:
    """Everything the core generator and the host need to agree on.

    Build it with :meth:`from_config`; the constructor does not validate.
    """

    rule: str
    sizes: tuple          # (D, K_1, …, K_L)
    n_classes: int
    pe: int
    simd: int
    lanes: int
    hidden_bits: int
    batch_max: int
    gammas: tuple         # smallest group size per layer (sizes the record memories)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, *, batch_max=None):
        """Return the plan of ``cfg`` (a validated :class:`RunConfig`), or raise ConfigError.

        ``batch_max`` (default ``cfg.batch``) is the largest mini-batch the core buffers.
        """
        if not isinstance(cfg, RunConfig):
            raise TypeError(f"expected a RunConfig, got {type(cfg).__name__}")
        cfg.validate()
        if cfg.model != "mlp":
            raise ConfigError(f"the training core runs the MLP; model {cfg.model!r} is not "
                              "supported on it")
        if cfg.rule not in ("local", "bep"):
            raise ConfigError(f"the training core runs rules 'local' and 'bep'; got "
                              f"{cfg.rule!r}")
        plan = cls(rule=cfg.rule, sizes=tuple(cfg.sizes), n_classes=cfg.n_classes,
                   pe=cfg.pe, simd=cfg.simd, lanes=cfg.lanes, hidden_bits=cfg.hidden_bits,
                   batch_max=cfg.batch if batch_max is None else int(batch_max),
                   gammas=tuple(cfg.gammas))
        return plan.validate()

    def validate(self):
        """Raise ConfigError naming the first thing the folding cannot serve; return self."""
        if self.simd not in SIMD_CHOICES:
            raise ConfigError(f"SIMD must be one of {SIMD_CHOICES} on the core; got {self.simd}")
        if self.pe < 1 or self.simd % self.pe:
            raise ConfigError(f"PE ({self.pe}) must divide SIMD ({self.simd}): the core packs "
                              "PE activation bits per result into SIMD-bit words")
        if self.lanes < 1 or self.lanes > 16 or self.simd % self.lanes:
            raise ConfigError(f"lanes ({self.lanes}) must divide SIMD ({self.simd}) and be at "
                              "most 16: an update word takes its inputs from one "
                              "activation word")
        if not 2 <= self.hidden_bits <= 16:
            raise ConfigError(f"the core keeps hidden weights of 2..16 bits; got "
                              f"{self.hidden_bits}")
        if not 1 <= self.n_layers <= MAX_LAYERS:
            raise ConfigError(f"the core runs 1..{MAX_LAYERS} hidden layers; got "
                              f"{self.n_layers}")
        if self.n_classes < 2 or self.n_classes > 256:
            raise ConfigError(f"the core handles 2..256 classes; got {self.n_classes}")
        if not 1 <= self.batch_max <= 4096:
            raise ConfigError(f"batch_max must be in 1..4096; got {self.batch_max}")
        if len(self.gammas) != self.n_layers or any(
                g < 1 or k % g for g, k in zip(self.gammas, self.hidden)):
            raise ConfigError(f"group sizes {self.gammas} must divide the widths {self.hidden}")
        if max(self.sizes) > 65535:
            raise ConfigError(f"layer widths must be below 65536; got {max(self.sizes)}")
        return self

    # -- shape --------------------------------------------------------------------------------
    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @property
    def hidden(self):
        return self.sizes[1:]

    def words(self, l):
        """SIMD words of activation vector ``l`` (0 = input)."""
        return _ceil(self.sizes[l], self.simd)

    def host_words(self, width):
        """32-bit host words that carry one memory word of ``width`` bits."""
        return _ceil(width, 32)

    @property
    def k_max(self):
        """Largest input width of any matrix (sets the width of z)."""
        return max(self.sizes)

    @property
    def z_width(self):
        """Width of a signed pre-activation or score."""
        return self.k_max.bit_length() + 1

    @property
    def matrices(self):
        """The schedule's matrices in engine order (see the module notes)."""
        out, base = [], 0

        def add(kind, layer, rows, k_in):
            nonlocal base
            m = Matrix(kind, layer, rows, k_in, base, _ceil(rows, self.pe),
                       _ceil(k_in, self.simd))
            out.append(m)
            base += m.depth

        L = self.n_layers
        for l in range(L):
            add("W", l, self.sizes[l + 1], self.sizes[l])
            if self.rule == "local" or l == L - 1:
                add("Q", l, self.n_classes, self.sizes[l + 1])
        return tuple(out)

    def weight_matrix(self, l):
        return next(m for m in self.matrices if m.kind == "W" and m.layer == l)

    def classifier_matrix(self, l):
        """The fixed classifier of hidden layer ``l`` (only the last one under BEP)."""
        return next(m for m in self.matrices if m.kind == "Q" and m.layer == l)

    @property
    def binary_depth(self):
        return sum(m.depth for m in self.matrices)

    @property
    def binary_width(self):
        return self.pe * self.simd

    def row_words(self, l):
        """Hidden-weight words per row of layer ``l``: ``⌈K_{l−1} / lanes⌉``."""
        return _ceil(self.sizes[l], self.lanes)

    @property
    def hidden_bases(self):
        bases, base = [], 0
        for l in range(self.n_layers):
            bases.append(base)
            base += self.sizes[l + 1] * self.row_words(l)
        return tuple(bases)

    @property
    def hidden_depth(self):
        return sum(self.sizes[l + 1] * self.row_words(l) for l in range(self.n_layers))

    @property
    def hidden_width(self):
        return self.lanes * self.hidden_bits

    def groups_max(self, l):
        """Most winners one sample can select in layer ``l``: ``K_l / γ_l``."""
        return self.sizes[l + 1] // self.gammas[l]

    @property
    def records_max(self):
        """Record slots per layer: one winner per group of every sample of a batch."""
        return tuple(self.batch_max * self.groups_max(l) for l in range(self.n_layers))

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def signature(self):
        """A 32-bit digest of the plan; the core reports it so a host can check the build."""
        text = repr(sorted(self.to_dict().items())).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")

    # -- cost model -----------------------------------------------------------------------------
    def bit_operations(self, *, train=True):
        """XNOR-popcount bit-operations of one sample's forward (and BEP backward) matrices."""
        ops_ = 0
        for m in self.matrices:
            if train or m.kind == "W" or m.layer == self.n_layers - 1:
                ops_ += m.rows * m.k_in
        if train and self.rule == "bep":
            ops_ += sum(self.sizes[l + 1] * self.sizes[l + 2] for l in range(self.n_layers - 1))
        return ops_

    def ideal_cycles(self, n_samples, update_weights, reinforced_weights):
        """Return the ideal cycle count of ``n_samples`` training samples.

        Bit-operations / (PE·SIMD) for every sample, plus the hidden weights changed by the
        batch updates and swept by reinforcement, ``lanes`` per cycle.
        """
        return (n_samples * self.bit_operations() / (self.pe * self.simd)
                + (update_weights + reinforced_weights) / self.lanes)


def registers_for(cfg, plan, *, thresholds=None, gammas=None, step=0):
    """Return ``[(index, value), …]``: the run-time registers of ``cfg`` for one batch.

    ``thresholds`` are the 16-bit reinforcement thresholds per layer (default 0 = off) and
    ``gammas`` the current group sizes (default the configuration's).
    """
    L = plan.n_layers
    thresholds = [0] * L if thresholds is None else list(thresholds)
    gammas = list(cfg.gammas if gammas is None else gammas)
    regs = [(REGISTERS["seed_lo"][0], cfg.seed & 0xFFFF_FFFF),
            (REGISTERS["seed_hi"][0], (cfg.seed >> 32) & 0xFFFF_FFFF),
            (REGISTERS["step"][0], int(step) & 0xFFFF_FFFF),
            (REGISTERS["empty_gate_skip"][0], int(cfg.empty_gate == "skip"))]
    for l in range(L):
        regs.append((REGISTERS["gamma"][0] + l, int(gammas[l])))
        regs.append((REGISTERS["margin_threshold"][0] + l,
                     ops.margin_threshold(cfg.robustness, plan.sizes[l + 1]) & 0xFFFF_FFFF))
        regs.append((REGISTERS["gate_threshold"][0] + l,
                     min(ops.gate_threshold(cfg.nu, plan.sizes[l]), 0xFFFF)))
        regs.append((REGISTERS["reinforce_threshold"][0] + l, int(thresholds[l])))
        regs.append((REGISTERS["groups"][0] + l, plan.sizes[l + 1] // int(gammas[l])))
    return regs
