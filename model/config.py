"""One configuration object describes a run; the model, RTL generator, driver and reports read it."""

import dataclasses
import json
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["RunConfig", "default_gamma", "PAPER_GAMMA", "RULES", "MODELS"]

RULES = ("local", "bep", "cpr", "sgd", "qat")
MODELS = ("mlp", "rnn")

# Group sizes of the local-error paper (two hidden layers of width K): K -> gamma.
PAPER_GAMMA = {35: 35, 75: 75, 135: 45, 255: 85, 525: 105, 1035: 115}

def default_gamma(k):
    """Return the paper's group size for width ``k``, else the divisor of ``k`` nearest ``k/5``.

    About 5–65 groups per layer worked best in the local-error paper; where it gives no value
    the default aims at 5 groups.
    """
    if k in PAPER_GAMMA:
        return PAPER_GAMMA[k]
    divisors = [d for d in range(1, k + 1) if k % d == 0]
    return min(divisors, key=lambda d: (abs(d - k / 5), d))

@dataclass
class RunConfig:
    """Everything that determines a training run, bit for bit.

    Hardware folding (``pe``, ``simd``, ``lanes``) does not change the results; it is here so
    the RTL generator and reports read the same object.
    """

    rule: str = "local"
    model: str = "mlp"
    hidden: tuple = (525, 525)
    input_dim: int = 0          # set from the data
    n_classes: int = 0          # set from the data
    epochs: int = 50
    batch: int = 100
    seed: int = 42
    hidden_bits: int = 8
    init_sigma: float = 0.0     # 0: min(64, 2^(b-2)), the papers' 64 scaled with the range
    gamma: tuple = ()           # per layer; () = default_gamma of each width
    robustness: float = 0.25    # r: trigger iff margin < floor(r*K)
    nu: float = 0.2             # BEP gate: |z| <= floor(nu*K_in)
    p_r: float = 0.5            # reinforcement base probability
    classifier: str = ""        # "random" or "frame"; "" = random for local/cpr, frame for bep
    frame_alpha: float = 5.0     # weight of the variance term of the frame objective [adopted]
    empty_gate: str = "plus"    # BEP: all gates closed -> a* all +1 ("plus") or no update ("skip")
    gamma_patience: int = 0     # BEP: grow gamma after this many epochs without gain (0 = off)
    bptt_steps: int = 0         # BEP-TT: only the last n steps learn (0 = all; an extension)
    # float baselines (sgd / qat)
    optimizer: str = "adam"
    lr: float = 1e-3
    # hardware folding
    pe: int = 4
    simd: int = 32
    lanes: int = 4

    def __post_init__(self):
        self.hidden = tuple(int(k) for k in self.hidden)
        self.gamma = tuple(int(g) for g in self.gamma)

    # -- derived -------------------------------------------------------------------------
    @property
    def sizes(self):
        """Return the layer widths ``(D, K_1, …, K_L)``."""
        return (self.input_dim,) + self.hidden

    @property
    def gammas(self):
        """Return the group size of each hidden layer."""
        return self.gamma if self.gamma else tuple(default_gamma(k) for k in self.hidden)

    @property
    def classifier_kind(self):
        """Return the classifier construction actually used."""
        if self.classifier:
            return self.classifier
        return "frame" if self.rule in ("bep", "qat") else "random"

    @property
    def sigma(self):
        """Return the standard deviation of the hidden-weight initialisation."""
        if self.init_sigma > 0:
            return float(self.init_sigma)
        return float(min(64, 2 ** (self.hidden_bits - 2)))

    # -- validation ------------------------------------------------------------------------
    def validate(self):
        """Raise ``ConfigError`` naming the first impossible setting; return ``self``."""
        if self.rule not in RULES:
            raise ConfigError(f"unknown rule {self.rule!r}; choose from {', '.join(RULES)}")
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        if not self.hidden:
            raise ConfigError("at least one hidden layer is needed (--hidden K[,K...])")
        for i, k in enumerate(self.hidden):
            if k < 1:
                raise ConfigError(f"hidden layer {i + 1} has width {k}; widths must be >= 1")
        if self.input_dim < 1:
            raise ConfigError(f"input width must be >= 1; got {self.input_dim}")
        if self.n_classes < 2:
            raise ConfigError(f"at least 2 classes are needed; got {self.n_classes}")
        if self.rule == "cpr" and len(self.hidden) != 1:
            raise ConfigError("rule 'cpr' is the single-layer committee machine: give exactly "
                              f"one hidden width (got {len(self.hidden)})")
        if self.model == "rnn" and len(self.hidden) != 1:
            raise ConfigError("the recurrent model has one recurrent layer: give one width")
        if self.gamma and len(self.gamma) != len(self.hidden):
            raise ConfigError(f"{len(self.gamma)} group sizes given for "
                              f"{len(self.hidden)} hidden layers")
        for i, (k, g) in enumerate(zip(self.hidden, self.gammas)):
            if g < 1 or k % g:
                raise ConfigError(f"group size {g} does not divide the width {k} of hidden "
                                  f"layer {i + 1}; divisors of {k}: "
                                  f"{[d for d in range(1, k + 1) if k % d == 0]}")
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0; got {self.epochs}")
        if self.batch < 1:
            raise ConfigError(f"batch size must be >= 1; got {self.batch}")
        if not 2 <= self.hidden_bits <= 32:
            raise ConfigError(f"hidden-weight bits must be in [2, 32]; got {self.hidden_bits}")
        if not 0 <= self.seed < 2 ** 63:
            raise ConfigError(f"seed must be in [0, 2^63); got {self.seed}")
        if self.robustness < 0:
            raise ConfigError(f"robustness r must be >= 0; got {self.robustness}")
        if self.nu < 0:
            raise ConfigError(f"gate parameter nu must be >= 0; got {self.nu}")
        if not 0 <= self.p_r <= 1:
            raise ConfigError(f"p_r must be in [0, 1]; got {self.p_r}")
        if self.classifier_kind not in ("random", "frame"):
            raise ConfigError(f"classifier must be 'random' or 'frame'; got {self.classifier!r}")
        if self.empty_gate not in ("plus", "skip"):
            raise ConfigError(f"empty_gate must be 'plus' or 'skip'; got {self.empty_gate!r}")
        if self.gamma_patience < 0:
            raise ConfigError("gamma patience must be >= 0")
        if self.bptt_steps < 0:
            raise ConfigError(f"bptt steps must be >= 0; got {self.bptt_steps}")
        if self.bptt_steps and self.model != "rnn":
            raise ConfigError("--bptt-steps applies to the recurrent model only")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0; got {self.lr}")
        for name in ("pe", "simd", "lanes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        return self

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self):
        """Return a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["gamma"] = list(self.gamma)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build a config from ``to_dict`` output, refusing unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown configuration keys: {sorted(unknown)}")
        return cls(**d)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)
