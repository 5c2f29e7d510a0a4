"""Float baselines in plain NumPy: the optimizers and the float MLP of the papers' tables.

``FloatMLP`` is the "float SGD, binary input" column of ALGORITHMS.md section 8: an ordinary
float multi-layer perceptron (ReLU hidden layers, a trained linear output layer with biases,
softmax cross-entropy) that sees the same ±1 inputs as the binary networks. It implements the
learner interface of ``BinaryMLP`` (``prepare``, ``train_batch``, ``predict``, ``begin_epoch``,
``end_epoch``, ``state``, ``load_state``), so ``model/train.py`` trains it with the same
epochs, sample order and checkpoints.

Everything is float32 and deterministic given ``cfg.seed``: initial weights come from
``np.random.default_rng([seed, STREAM_INIT, layer])`` and nothing else is random. ``state``
holds the weights, the optimizer moments and its step count, so a resumed run continues
bit-identically (on the same machine and BLAS).
"""

import numpy as np

from .errors import CheckpointError, ConfigError

__all__ = ["SGD", "Adam", "make_optimizer", "softmax", "softmax_cross_entropy_grad",
           "FloatMLP"]

# Stream of the NumPy generator used for the initial weights (as in model/mlp.py).
STREAM_INIT = 1


# ---------------------------------------------------------------------------------------------
# Optimizers over a list of float32 arrays, updated in place.


class SGD:
    """Plain stochastic gradient descent, ``p ← p − lr·g``, in place.

    Parameters
    ----------
    params : list of float32 arrays
        The parameters; they are updated in place, so the caller keeps its references.
    lr : float
        Learning rate, > 0.
    """

    kind = "sgd"

    def __init__(self, params, *, lr):
        if not lr > 0:
            raise ConfigError(f"learning rate must be > 0; got {lr}")
        self.params = list(params)
        self.lr = float(lr)
        self.t = 0

    def step(self, grads):
        """Apply one update with the gradients ``grads`` (same shapes as the parameters)."""
        lr = np.float32(self.lr)
        for p, g in zip(self.params, grads, strict=True):
            p -= lr * g.astype(np.float32, copy=False)
        self.t += 1

    def state(self):
        """Return ``(arrays, meta)`` of the optimizer (SGD keeps only its step count)."""
        return {}, {"kind": self.kind, "t": self.t}

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned."""
        _check_kind(self.kind, meta)
        self.t = int(meta["t"])


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction, in place, float32.

    ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``, then
    ``p ← p − lr · m̂ / (sqrt(v̂) + ε)`` with ``m̂ = m/(1−β1^t)`` and ``v̂ = v/(1−β2^t)``.

    Parameters
    ----------
    params : list of float32 arrays
        Updated in place.
    lr : float
        Learning rate, > 0.
    beta1, beta2, eps : float
        The usual constants (0.9, 0.999, 1e-8).
    """

    kind = "adam"

    def __init__(self, params, *, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ConfigError(f"learning rate must be > 0; got {lr}")
        self.params = list(params)
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), \
            float(eps)
        self.m = [np.zeros_like(p, dtype=np.float32) for p in self.params]
        self.v = [np.zeros_like(p, dtype=np.float32) for p in self.params]
        self.t = 0

    def step(self, grads):
        """Apply one update with the gradients ``grads``."""
        self.t += 1
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        c1 = np.float32(1.0 - self.beta1 ** self.t)
        c2 = np.float32(1.0 - self.beta2 ** self.t)
        lr, eps = np.float32(self.lr), np.float32(self.eps)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            g = g.astype(np.float32, copy=False)
            m *= b1
            m += (np.float32(1) - b1) * g
            v *= b2
            v += (np.float32(1) - b2) * (g * g)
            p -= lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def state(self):
        """Return ``(arrays, meta)``: the moments and the step count."""
        arrays = {f"m{i}": m for i, m in enumerate(self.m)}
        arrays.update({f"v{i}": v for i, v in enumerate(self.v)})
        return arrays, {"kind": self.kind, "t": self.t}

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned (into the existing moment arrays)."""
        _check_kind(self.kind, meta)
        for name, dst in [(f"m{i}", m) for i, m in enumerate(self.m)] + \
                         [(f"v{i}", v) for i, v in enumerate(self.v)]:
            _copy_into(dst, arrays, name)
        self.t = int(meta["t"])


def _check_kind(kind, meta):
    if meta.get("kind") != kind:
        raise CheckpointError(f"checkpoint holds a {meta.get('kind')!r} optimizer, the "
                              f"configuration says {kind!r}")


def _copy_into(dst, arrays, name):
    try:
        src = np.asarray(arrays[name])
    except KeyError:
        raise CheckpointError(f"checkpoint lacks {name}") from None
    if src.shape != dst.shape:
        raise CheckpointError(f"checkpoint {name} has shape {src.shape}, the configuration "
                              f"says {dst.shape}")
    dst[...] = src


def make_optimizer(cfg, params):
    """Return the optimizer ``cfg.optimizer`` ("adam" or "sgd") at ``cfg.lr`` over ``params``."""
    if cfg.optimizer == "adam":
        return Adam(params, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr)
    raise ConfigError(f"optimizer must be 'adam' or 'sgd'; got {cfg.optimizer!r}")


# ---------------------------------------------------------------------------------------------
# Losses


def softmax(logits):
    """Return the row-wise softmax of ``logits`` (float32, max-subtracted for stability)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy_grad(logits, labels):
    """Return ``∂L/∂logits`` of the batch-mean softmax cross-entropy: ``(p − onehot)/N``."""
    n = logits.shape[0]
    g = softmax(logits)
    g[np.arange(n), labels] -= np.float32(1)
    g /= np.float32(n)
    return g


# ---------------------------------------------------------------------------------------------
# The float MLP


class FloatMLP:
    """Float MLP on binary inputs: the "float SGD, binary input" baseline (rule ``sgd``).

    Architecture: ``D → K_1 → … → K_L → C``; every hidden layer is ``relu(W·a + b)``, the
    output layer ``W·a + b`` is trained (unlike the binary networks' fixed classifier); loss
    softmax cross-entropy averaged over the mini-batch; optimizer ``cfg.optimizer`` at
    ``cfg.lr``. Initialisation: hidden weights ``N(0, 2/fan_in)`` (He), output weights
    ``N(0, 1/fan_in)`` (LeCun), biases 0; drawn from
    ``np.random.default_rng([cfg.seed, STREAM_INIT, layer])``.

    Parameters
    ----------
    cfg : RunConfig
        ``rule == "sgd"``; ``hidden``, ``input_dim``, ``n_classes``, ``optimizer``, ``lr``,
        ``seed`` are read.

    Attributes
    ----------
    weights : list of float32 arrays, shape (K_out, K_in)
    biases : list of float32 arrays, shape (K_out,)
    optimizer : Adam or SGD
    """

    def __init__(self, cfg):
        self.cfg = cfg.validate()
        if cfg.rule != "sgd":
            raise ConfigError(f"FloatMLP trains rule 'sgd', not {cfg.rule!r}")
        if cfg.model != "mlp":
            raise ConfigError(f"FloatMLP is a 'mlp' model, not {cfg.model!r}")
        self.sizes = tuple(cfg.sizes) + (cfg.n_classes,)
        self.n_layers = len(self.sizes) - 1
        self.weights, self.biases = [], []
        for l in range(self.n_layers):
            k_in, k_out = self.sizes[l], self.sizes[l + 1]
            gain = 1.0 if l == self.n_layers - 1 else 2.0
            gen = np.random.default_rng([cfg.seed, STREAM_INIT, l])
            w = gen.normal(0.0, np.sqrt(gain / k_in), size=(k_out, k_in)).astype(np.float32)
            self.weights.append(w)
            self.biases.append(np.zeros(k_out, dtype=np.float32))
        self.optimizer = make_optimizer(cfg, self.params)

    @property
    def params(self):
        """Return the trained arrays in a fixed order ``[W_1, b_1, …, W_out, b_out]``."""
        out = []
        for w, b in zip(self.weights, self.biases):
            out += [w, b]
        return out

    # -- learner interface ----------------------------------------------------------------
    def prepare(self, x):
        """Return the ±1 data matrix (N, D) as float32."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ConfigError(f"FloatMLP needs vector data (samples, features); got shape "
                              f"{x.shape}")
        return x.astype(np.float32)

    def forward(self, x):
        """Return ``(acts, logits)``: the inputs of every layer and the output logits."""
        acts = [x]
        for l in range(self.n_layers - 1):
            acts.append(np.maximum(acts[-1] @ self.weights[l].T + self.biases[l], 0))
        logits = acts[-1] @ self.weights[-1].T + self.biases[-1]
        return acts, logits

    def predict(self, x, chunk=4096):
        """Return the predicted class of each sample (argmax, lowest index on ties)."""
        out = [np.argmax(self.forward(x[i:i + chunk])[1], axis=1)
               for i in range(0, x.shape[0], chunk)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def begin_epoch(self, epoch, acc_prev):
        """Nothing to do: the float baseline has no per-epoch settings."""

    def end_epoch(self, epoch, train_acc):
        """Nothing to do: constant learning rate."""

    def train_batch(self, x, labels, step, trace=False):
        """Run one optimizer step on a mini-batch; return the number of correct predictions.

        Predictions are those of the weights at the start of the batch. With ``trace`` the
        return value is ``(n_correct, {"logits", "grads", "pred"})``.
        """
        labels = np.asarray(labels)
        acts, logits = self.forward(x)
        pred = np.argmax(logits, axis=1)
        n_correct = int((pred == labels).sum())
        delta = softmax_cross_entropy_grad(logits, labels)
        grads = [None] * (2 * self.n_layers)
        for l in range(self.n_layers - 1, -1, -1):
            grads[2 * l] = delta.T @ acts[l]
            grads[2 * l + 1] = delta.sum(axis=0)
            if l:
                delta = (delta @ self.weights[l]) * (acts[l] > 0)
        self.optimizer.step(grads)
        if trace:
            return n_correct, {"logits": logits, "grads": grads, "pred": pred}
        return n_correct

    # -- checkpoint state -------------------------------------------------------------------
    def state(self):
        """Return ``(arrays, meta)``: weights, biases and optimizer state."""
        arrays = {f"weight{l}": w for l, w in enumerate(self.weights)}
        arrays.update({f"bias{l}": b for l, b in enumerate(self.biases)})
        opt_arrays, opt_meta = self.optimizer.state()
        arrays.update({f"opt_{k}": v for k, v in opt_arrays.items()})
        return arrays, {"optimizer": opt_meta}

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned, in place (the optimizer keeps its references)."""
        for l in range(self.n_layers):
            _copy_into(self.weights[l], arrays, f"weight{l}")
            _copy_into(self.biases[l], arrays, f"bias{l}")
        opt = {k[len("opt_"):]: v for k, v in arrays.items() if k.startswith("opt_")}
        self.optimizer.load_state(opt, meta["optimizer"])
