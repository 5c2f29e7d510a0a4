"""Recurrent binary networks: BEP-TT (ALGORITHMS.md section 6) and its QAT baseline.

The network
-----------
One recurrent binary layer of ``K_s`` units reads a sequence ``x_1 … x_T`` of ±1 vectors of
width ``D``::

    z_t = W · [x_t ; s_{t−1}],   s_t = sign(z_t)   (sign(0) = +1),   s_0 = +1
    ŷ   = P · s_T,               prediction argmax ŷ (lowest index on ties)

``W = [W_xs W_ss] = sign(H)`` is one ``K_s × (D + K_s)`` binary matrix (the hidden weights ``H``
are odd, saturating integers as everywhere in the project) and ``P`` (``C × K_s``) is the
fixed output classifier: a binary equiangular frame by default (``cfg.classifier_kind``), built
exactly as ``BinaryMLP`` builds its output classifier. Because the dot product over the
concatenation is the sum of the dot products over its two parts, ``z_t`` is computed as
``W_xs·x_t`` (for all steps at once) plus ``W_ss·s_{t−1}`` (step by step); the integers are the
same as those of one XNOR-popcount over the concatenated row.

BEP-TT (``BinaryRNN``, rule ``bep``)
------------------------------------
For one mini-batch, with the weights of the start of the batch:

1. forward through time; a sample **triggers** iff its output margin ``< ⌊r·K_s⌋``;
2. for triggered samples, backward through time: ``s*_T = ρ_y`` (row of ``P``), and for
   t = T … 2, ``s*_{t−1} = sign(W_ssᵀ · (g_t ⊙ s*_t))`` with the gate
   ``g_{t,i} = [|z_{t,i}| ≤ ⌊ν·(D+K_s)⌋]`` (``ops.gate_threshold(cfg.nu, D + K_s)``);
3. every step t selects units with ``ops.select_winners(z_t, s*_t, γ, active_t)`` and each
   selected unit j contributes ``2·s*_{t,j}·[x_t ; s_{t−1}]`` to row j of ``ΔH`` (summed by
   ``summed_update``, the same integers as ``ops.update_rows``);
4. ``ΔH`` summed over all steps and samples is applied once (saturating); then, if any unit of
   the batch was selected, one reinforcement sweep with generator layer index 0 and the
   epoch's threshold from ``ops.reinforcement_probability(p_r, acc_prev, D + K_s)``.

``cfg.empty_gate``: ``"plus"`` — a step whose gates are all closed gives ``s*_{t−1}`` all +1 (the
sign convention applied to a zero projection); ``"skip"`` — [adopted, as for the MLP's layers]
the sample then gives no update at step t−1 nor at any earlier step (step t itself still
learns from its own ``s*_t``).

Truncated BEP-TT [extension, not in the papers]: ``BinaryRNN(cfg, truncation=n)`` (or
``cfg.bptt_steps = n``, ``--bptt-steps n``) lets only the last n steps
receive desired states and learn. None / 0 is the full chain above.

QAT baseline (``QATRNN``, rule ``qat``)
---------------------------------------
Quantization-aware training of the same binary network, without batch norm: float latent
weights ``W̃`` (``K_s × (D+K_s)``, Glorot-uniform initialisation, clipped to [−1, 1] after every
step), forward with ``sign(W̃)`` and ``sign`` activations exactly as above (so its predictions
are those of a binary RNN with ``H = W̃``), backward by BPTT with straight-through estimators:

- weights: ``∂L/∂W̃ = ∂L/∂sign(W̃)`` (identity STE, BinaryConnect);
- activations: ``s_t = sign(u_t)`` is differentiated as ``hardtanh(u_t / √(D+K_s))``, i.e.
  ``∂s_t/∂u_t = 1/√(D+K_s)`` where ``|u_t| ≤ √(D+K_s)`` and 0 elsewhere. The scale
  ``1/√fan_in`` puts the STE window at one standard deviation of a random ±1 sum, so a
  useful fraction of units passes gradient whatever the width [choice documented here].
- readout: by default the same **fixed** binary classifier ``P`` as BEP-TT, with softmax
  cross-entropy on ``P·s_T / τ``, ``τ = √K_s`` (a fixed temperature that makes the logit
  spread independent of the width). The deployed network is then the very same binary RNN as
  BEP-TT's, which makes the comparison one of training rules only. ``readout="float"`` trains
  a float linear readout (with bias) instead, the other common QAT set-up.

Adam (or SGD) at ``cfg.lr`` from ``model/floatnn.py``. Everything is deterministic given
``cfg.seed``.

Data arrive as ``int8`` ±1 arrays of shape (N, T, D); ``prepare`` packs them per step.
"""

import math

import numpy as np

from . import ops, rng
from .bits import n_words, pack, pack_bits01, project_back, unpack, xnor_dot
from .classifiers import equiangular_frame, random_classifier
from .errors import CheckpointError, ConfigError, DataError
from .floatnn import _copy_into, make_optimizer, softmax_cross_entropy_grad
from .mlp import GroupSchedule

__all__ = ["BinaryRNN", "QATRNN", "make_rnn_learner", "summed_update"]

# Streams of the NumPy generator used for set-up randomness (as in model/mlp.py).
STREAM_INIT, STREAM_CLASSIFIER = 1, 2

# Rows × units per chunk of the batched input products, so the temporaries stay ~32 MB.
_CHUNK_ELEMENTS = 1 << 22


def _check_sequences(x, who):
    x = np.asarray(x)
    if x.ndim != 3:
        raise DataError(f"{who} needs sequence data of shape (samples, steps, features); got "
                        f"shape {x.shape}")
    return x


def _output_classifier(cfg, k, kind):
    gen = np.random.default_rng([cfg.seed, STREAM_CLASSIFIER, 0])
    if kind == "frame":
        return equiangular_frame(cfg.n_classes, k, gen, alpha=cfg.frame_alpha)
    return random_classifier(cfg.n_classes, k, gen)


def summed_update(mask, desired, a_prev):
    """Return ``(rows, sums)`` exactly as ``ops.update_rows``, as one matrix product.

    ``ΔH[j, :] = Σ_r mask[r, j]·2·a*_{r,j}·a_prev[r, :] = 2·((mask ⊙ a*)ᵀ · a_prev)[j, :]``.
    BEP-TT produces many records per unit (every step of every sample selects), where the
    record-by-record accumulation of ``ops.update_rows`` is slow; here every product is 0 or
    ±1 and every partial sum an integer of magnitude ≤ R (the number of rows), so a float32
    product (float64 from R ≥ 2^24) is exact whatever the summation order.
    """
    mask = np.asarray(mask, dtype=bool)
    dtype = np.float32 if mask.shape[0] < (1 << 24) else np.float64
    rows = np.flatnonzero(mask.any(axis=0))
    coef = np.where(mask[:, rows], np.asarray(desired)[:, rows], 0).astype(dtype)
    sums = coef.T @ np.asarray(a_prev).astype(dtype)
    return rows.astype(np.int64), 2 * np.rint(sums).astype(np.int64)


class BinaryRNN:
    """Hidden weights, fixed output classifier and the BEP-TT training step of a binary RNN.

    Parameters
    ----------
    cfg : RunConfig
        ``model == "rnn"``, ``rule == "bep"``, ``hidden == (K_s,)``; ``input_dim`` is D, the
        bits per time step. Also read: ``gamma``, ``robustness``, ``nu``, ``p_r``,
        ``hidden_bits``, ``init_sigma``, ``classifier``, ``frame_alpha``, ``empty_gate``,
        ``gamma_patience``, ``seed``.

    truncation : int, optional
        Truncated BEP-TT [extension, not in the papers]: only the last ``truncation`` steps
        receive desired states and learn (the backward chain stops there). None (default):
        every step, as ALGORITHMS.md section 6 reads.

    Attributes
    ----------
    hidden : int64 array, shape (K_s, D + K_s)
        Odd, saturating hidden weights; columns ``0…D−1`` act on ``x_t``, ``D…D+K_s−1`` on
        ``s_{t−1}``. Initialised by ``ops.init_hidden`` from
        ``np.random.default_rng([seed, 1, 0])``.
    classifier : int8 array, shape (C, K_s)
        The fixed output classifier ``P`` (from ``np.random.default_rng([seed, 2, 0])``).
    gamma : int
        Group size (grows like ``BinaryMLP``'s when ``gamma_patience`` is set).
    threshold : int
        16-bit reinforcement threshold of the current epoch.
    """

    def __init__(self, cfg, *, truncation=None):
        self.cfg = cfg.validate()
        if truncation is not None and (isinstance(truncation, bool) or
                                       not isinstance(truncation, (int, np.integer)) or
                                       truncation < 1):
            raise ConfigError(f"truncation must be None or an integer >= 1; got "
                              f"{truncation!r}")
        self.truncation = None if truncation is None else int(truncation)
        if cfg.model != "rnn" or cfg.rule != "bep":
            raise ConfigError(f"BinaryRNN trains rule 'bep' on model 'rnn', not "
                              f"{cfg.rule!r} on {cfg.model!r}")
        self.d = cfg.input_dim
        self.k = cfg.hidden[0]
        self.f = self.d + self.k
        self.hidden = ops.init_hidden((self.k, self.f), cfg.sigma, cfg.hidden_bits,
                                      np.random.default_rng([cfg.seed, STREAM_INIT, 0]))
        self.classifier = _output_classifier(cfg, self.k, cfg.classifier_kind)
        self.groups = GroupSchedule(cfg.gammas, (self.k,), cfg.gamma_patience)
        self.hmax = ops.hidden_range(cfg.hidden_bits)
        self.gate_threshold = ops.gate_threshold(cfg.nu, self.f)
        self.margin_threshold = ops.margin_threshold(cfg.robustness, self.k)
        self.threshold = 0
        self._repack()

    # -- weights ------------------------------------------------------------------------
    @property
    def sizes(self):
        """Return ``(D, K_s)``."""
        return (self.d, self.k)

    @property
    def output_classifier(self):
        """Return ``P`` (C × K_s, ±1)."""
        return self.classifier

    def _repack(self, rows=None):
        """Refresh the packed binary weights (all rows, or only ``rows``) from ``hidden``."""
        b = self.hidden > 0
        if rows is None:
            self.w_x = pack_bits01(b[:, :self.d])
            self.w_s = pack_bits01(b[:, self.d:])
            self.p = pack(self.classifier)
        else:
            self.w_x[rows] = pack_bits01(b[rows, :self.d])
            self.w_s[rows] = pack_bits01(b[rows, self.d:])
        self.wt_s = pack_bits01(b[:, self.d:].T)       # W_ssᵀ packed by columns of W_ss

    # -- learner interface --------------------------------------------------------------
    def prepare(self, x):
        """Return the sequences (N, T, D) packed per step: uint64 (N, T, words(D))."""
        x = _check_sequences(x, "BinaryRNN")
        if x.shape[1] < 1:
            raise DataError("sequences must have at least one time step")
        if x.shape[2] != self.d:
            raise DataError(f"sequences have {x.shape[2]} bits per step; the network was "
                            f"configured for {self.d}")
        return pack(x)

    def _input_drive(self, x_packed):
        """Return ``W_xs·x_t`` for every sample and step, int32 (N, T, K_s)."""
        n, steps, nw = x_packed.shape
        flat = x_packed.reshape(n * steps, nw)
        out = np.empty((n * steps, self.k), dtype=np.int32)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, self.k))
        for a in range(0, n * steps, chunk):
            out[a:a + chunk] = xnor_dot(flat[a:a + chunk], self.w_x, self.d)
        return out.reshape(n, steps, self.k)

    def forward(self, x_packed):
        """Return ``(z, s)``: pre-activations int32 (N, T, K_s) and packed states.

        ``s`` has shape (N, T+1, words(K_s)); ``s[:, t]`` is ``s_t`` with ``s_0 = +1``.
        """
        n, steps, _ = x_packed.shape
        z = self._input_drive(x_packed)
        s = np.empty((n, steps + 1, n_words(self.k)), dtype=np.uint64)
        s[:, 0] = pack_bits01(np.ones((1, self.k), dtype=bool))
        for t in range(steps):
            z[:, t] += xnor_dot(s[:, t], self.w_s, self.k)
            s[:, t + 1] = pack_bits01(z[:, t] >= 0)
        return z, s

    def scores(self, s_last):
        """Return the class scores ``P·s_T`` (int32, (N, C)) of packed final states."""
        return xnor_dot(s_last, self.p, self.k)

    def predict(self, x_packed, chunk=None):
        """Return the predicted class of each sequence."""
        n, steps = x_packed.shape[:2]
        if chunk is None:
            chunk = max(1, _CHUNK_ELEMENTS // max(1, steps * self.k))
        out = []
        for i in range(0, n, chunk):
            _, s = self.forward(x_packed[i:i + chunk])
            out.append(ops.predict(self.scores(s[:, -1])))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def begin_epoch(self, epoch, acc_prev):
        """Set this epoch's reinforcement threshold from the previous epoch's accuracy."""
        self.threshold = rng.threshold(
            ops.reinforcement_probability(self.cfg.p_r, acc_prev, self.f))

    def end_epoch(self, epoch, train_acc):
        """Grow the group size when training accuracy stalled (``GroupSchedule``)."""
        self.groups.end_epoch(train_acc)

    @property
    def gamma(self):
        """Return the current group size."""
        return self.groups.gammas[0]

    # -- the learning step ----------------------------------------------------------------
    def targets(self, z, s, labels):
        """Return the BEP-TT desired states of one batch.

        Returns ``(desired, active, gates, scores, triggered)``: ``desired`` int8 ±1
        (N, T, K_s) holds ``s*_t`` at index t−1; ``active`` bool (N, T) says which samples may
        select units at each step; ``gates`` bool (N, T, K_s) the gates ``g_t`` (computed for
        triggered samples, False elsewhere). Samples that do not trigger keep filler +1 rows
        and are never active.
        """
        n, steps, k = z.shape
        scores = self.scores(s[:, -1])
        triggered = ops.trigger(ops.margin(scores, labels), self.margin_threshold)
        desired = np.ones((n, steps, k), dtype=np.int8)
        active = np.zeros((n, steps), dtype=bool)
        gates = np.zeros((n, steps, k), dtype=bool)
        live = np.flatnonzero(triggered)
        if steps == 0 or live.size == 0:
            return desired, active, gates, scores, triggered
        cur = self.classifier[labels[live]]
        alive = np.ones(live.size, dtype=bool)
        desired[live, steps - 1] = cur
        active[live, steps - 1] = True
        first = 0 if self.truncation is None else max(0, steps - self.truncation)
        for t in range(steps - 1, first, -1):           # index t holds step t+1
            g = ops.gate(z[live, t], self.gate_threshold)
            gates[live, t] = g
            proj = project_back(self.wt_s, pack_bits01(g), pack_bits01(cur > 0), self.k)
            cur = ops.sign(proj)
            desired[live, t - 1] = cur
            if self.cfg.empty_gate == "skip":
                alive &= g.any(axis=1)
            active[live, t - 1] = alive
        return desired, active, gates, scores, triggered

    def train_batch(self, x_packed, labels, step, trace=False):
        """Run one BEP-TT mini-batch step; return the number of correct predictions.

        ``step`` is the global mini-batch counter (the generator's step). With ``trace`` the
        return value is ``(n_correct, trace_dict)`` with, per sample and step: ``z`` (N, T, K),
        ``s`` (N, T+1, K) ±1 with ``s[:, 0] = +1``, ``desired`` (N, T, K), ``gates``,
        ``active`` (N, T), ``masks`` (N, T, K), ``deltas`` (T, K, D+K: each step's summed
        contribution), ``delta`` (their sum), and ``scores``, ``triggered``, ``pred``.
        """
        labels = np.asarray(labels)
        n, steps, _ = x_packed.shape
        z, s = self.forward(x_packed)
        desired, active, gates, scores, triggered = self.targets(z, s, labels)
        pred = ops.predict(scores)
        n_correct = int((pred == labels).sum())
        k, d = self.k, self.d
        flat_z = z.reshape(n * steps, k)
        flat_desired = desired.reshape(n * steps, k)
        masks = ops.select_winners(flat_z, flat_desired, self.gamma, active.reshape(-1))
        used = np.flatnonzero(masks.any(axis=1))       # (sample, step) pairs that update
        nn, tt = np.divmod(used, steps)
        a_prev = np.concatenate([unpack(x_packed[nn, tt], d), unpack(s[nn, tt], k)], axis=1)
        rows, sums = summed_update(masks[used], flat_desired[used], a_prev)
        if rows.size:
            h = self.hidden
            h[rows] = np.clip(h[rows] + sums, -self.hmax, self.hmax)
            if self.threshold:
                ops.reinforce(h, self.cfg.seed, step, 0, self.threshold, self.cfg.hidden_bits,
                              out=h)
            self._repack(rows)
        if not trace:
            return n_correct
        masks = masks.reshape(n, steps, k)
        x_all = unpack(x_packed, d)
        s_all = unpack(s, k)
        deltas = np.stack([ops.update_delta(masks[:, t], desired[:, t],
                                            np.concatenate([x_all[:, t], s_all[:, t]], axis=1),
                                            k) for t in range(steps)])
        return n_correct, {"z": z, "s": s_all, "desired": desired, "gates": gates,
                           "active": active, "masks": masks, "deltas": deltas,
                           "delta": deltas.sum(axis=0), "scores": scores,
                           "triggered": triggered, "pred": pred}

    # -- checkpoint state -----------------------------------------------------------------
    def state(self):
        """Return ``(arrays, meta)``: everything needed to continue bit-identically."""
        return ({"hidden0": self.hidden, "classifier0": self.classifier},
                self.groups.state())

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned."""
        try:
            hidden = np.array(arrays["hidden0"], dtype=np.int64)
            classifier = np.array(arrays["classifier0"], dtype=np.int8)
        except KeyError as e:
            raise CheckpointError(f"checkpoint lacks {e.args[0]}") from None
        if hidden.shape != (self.k, self.f):
            raise CheckpointError(f"checkpoint recurrent layer has shape {hidden.shape}, the "
                                  f"configuration says {(self.k, self.f)}")
        if classifier.shape != self.classifier.shape:
            raise CheckpointError(f"checkpoint classifier has shape {classifier.shape}, the "
                                  f"configuration says {self.classifier.shape}")
        self.hidden, self.classifier = hidden, classifier
        self.groups.load_state(meta)
        self._repack()


class QATRNN:
    """Quantization-aware training (STE + BPTT, no batch norm) of the binary RNN.

    Parameters
    ----------
    cfg : RunConfig
        ``model == "rnn"``, ``rule == "qat"``, ``hidden == (K_s,)``; also ``optimizer``,
        ``lr``, ``seed``, ``classifier``, ``frame_alpha``.
    readout : {"fixed", "float"}
        ``"fixed"`` (default): the fixed binary classifier ``P`` of BEP-TT, scores
        ``P·s_T / τ``. ``"float"``: a trained float linear readout with bias.
    temperature : float, optional
        ``τ`` of the fixed readout; default ``√K_s``.

    The classifier ``P`` is built as BEP-TT builds it: ``cfg.classifier`` if given, else the
    equiangular frame (BEP's default), from ``np.random.default_rng([seed, 2, 0])``, so both
    rules share the same ``P`` for the same seed.

    Attributes
    ----------
    latent : float32 array, shape (K_s, D + K_s)
        Latent weights in [−1, 1]; the binary weights are ``sign(latent)`` (sign(0) = +1).
    classifier : int8 array, shape (C, K_s)
    optimizer : Adam or SGD
    """

    def __init__(self, cfg, *, readout="fixed", temperature=None):
        self.cfg = cfg.validate()
        if cfg.model != "rnn" or cfg.rule != "qat":
            raise ConfigError(f"QATRNN trains rule 'qat' on model 'rnn', not "
                              f"{cfg.rule!r} on {cfg.model!r}")
        if readout not in ("fixed", "float"):
            raise ConfigError(f"readout must be 'fixed' or 'float'; got {readout!r}")
        if temperature is not None and not temperature > 0:
            raise ConfigError(f"temperature must be > 0; got {temperature}")
        self.d = cfg.input_dim
        self.k = cfg.hidden[0]
        self.f = self.d + self.k
        self.readout = readout
        self.temperature = float(math.sqrt(self.k) if temperature is None else temperature)
        self.ste_window = float(math.sqrt(self.f))
        gen = np.random.default_rng([cfg.seed, STREAM_INIT, 0])
        limit = math.sqrt(6.0 / (self.f + self.k))
        self.latent = gen.uniform(-limit, limit, size=(self.k, self.f)).astype(np.float32)
        self.classifier = _output_classifier(cfg, self.k, cfg.classifier or "frame")
        params = [self.latent]
        if readout == "float":
            gen = np.random.default_rng([cfg.seed, STREAM_INIT, 1])
            self.readout_weight = gen.normal(0.0, math.sqrt(1.0 / self.k),
                                             size=(cfg.n_classes, self.k)).astype(np.float32)
            self.readout_bias = np.zeros(cfg.n_classes, dtype=np.float32)
            params += [self.readout_weight, self.readout_bias]
        self.optimizer = make_optimizer(cfg, params)

    # -- learner interface --------------------------------------------------------------
    def prepare(self, x):
        """Return the ±1 sequences (N, T, D) as a contiguous ``int8`` array."""
        x = _check_sequences(x, "QATRNN")
        if x.shape[1] < 1:
            raise DataError("sequences must have at least one time step")
        if x.shape[2] != self.d:
            raise DataError(f"sequences have {x.shape[2]} bits per step; the network was "
                            f"configured for {self.d}")
        return np.ascontiguousarray(x, dtype=np.int8)

    def binary_weights(self):
        """Return ``sign(latent)`` as float32 ±1."""
        return np.where(self.latent >= 0, np.float32(1), np.float32(-1))

    def forward(self, x):
        """Return ``(u, s, wb)``: pre-activations (N, T, K), states (N, T+1, K), ``sign(W̃)``.

        All float32 holding exact integers (|u| ≤ D + K_s < 2^24).
        """
        x = x.astype(np.float32)
        n, steps, _ = x.shape
        wb = self.binary_weights()
        w_x, w_s = wb[:, :self.d], wb[:, self.d:]
        u = (x.reshape(n * steps, self.d) @ w_x.T).reshape(n, steps, self.k)
        s = np.empty((n, steps + 1, self.k), dtype=np.float32)
        s[:, 0] = 1
        for t in range(steps):
            u[:, t] += s[:, t] @ w_s.T
            s[:, t + 1] = np.where(u[:, t] >= 0, np.float32(1), np.float32(-1))
        return u, s, wb

    def logits(self, s_last):
        """Return the logits of final states: ``P·s_T/τ`` or the float readout."""
        if self.readout == "fixed":
            return (s_last @ self.classifier.T.astype(np.float32)) / np.float32(
                self.temperature)
        return s_last @ self.readout_weight.T + self.readout_bias

    def predict(self, x, chunk=None):
        """Return the predicted class of each sequence (argmax, lowest index on ties)."""
        n, steps = x.shape[:2]
        if chunk is None:
            chunk = max(1, _CHUNK_ELEMENTS // max(1, steps * self.k))
        out = []
        for i in range(0, n, chunk):
            _, s, _ = self.forward(x[i:i + chunk])
            out.append(np.argmax(self.logits(s[:, -1]), axis=1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def begin_epoch(self, epoch, acc_prev):
        """Nothing to do: constant learning rate."""

    def end_epoch(self, epoch, train_acc):
        """Nothing to do."""

    def train_batch(self, x, labels, step, trace=False):
        """Run one BPTT/STE optimizer step; return the number of correct predictions.

        Predictions are those of the weights at the start of the batch. With ``trace``
        returns ``(n_correct, {"u", "s", "logits", "grads", "pred"})``.
        """
        labels = np.asarray(labels)
        n, steps, _ = x.shape
        u, s, wb = self.forward(x)
        logits = self.logits(s[:, -1])
        pred = np.argmax(logits, axis=1)
        n_correct = int((pred == labels).sum())
        g_logits = softmax_cross_entropy_grad(logits, labels)
        grads = []
        if self.readout == "fixed":
            ds = (g_logits @ self.classifier.astype(np.float32)) / np.float32(self.temperature)
        else:
            ds = g_logits @ self.readout_weight
            grads_readout = [g_logits.T @ s[:, -1], g_logits.sum(axis=0)]
        w_s = wb[:, self.d:]
        du = np.zeros((n, steps, self.k), dtype=np.float32)
        scale = np.float32(1.0 / self.ste_window)
        for t in range(steps - 1, -1, -1):
            du[:, t] = ds * (np.abs(u[:, t]) <= np.float32(self.ste_window)) * scale
            ds = du[:, t] @ w_s
        flat_du = du.reshape(n * steps, self.k)
        g_w = np.empty_like(self.latent)
        g_w[:, :self.d] = flat_du.T @ x.reshape(n * steps, self.d).astype(np.float32)
        g_w[:, self.d:] = flat_du.T @ s[:, :-1].reshape(n * steps, self.k)
        grads.append(g_w)
        if self.readout == "float":
            grads += grads_readout
        self.optimizer.step(grads)
        np.clip(self.latent, -1.0, 1.0, out=self.latent)
        if trace:
            return n_correct, {"u": u, "s": s, "logits": logits, "grads": grads, "pred": pred}
        return n_correct

    # -- checkpoint state -----------------------------------------------------------------
    def _named_params(self):
        out = {"latent0": self.latent}
        if self.readout == "float":
            out.update(readout_weight=self.readout_weight, readout_bias=self.readout_bias)
        return out

    def state(self):
        """Return ``(arrays, meta)``: latent weights, readout, optimizer moments and step."""
        arrays = dict(self._named_params())
        arrays["classifier0"] = self.classifier
        opt_arrays, opt_meta = self.optimizer.state()
        arrays.update({f"opt_{k}": v for k, v in opt_arrays.items()})
        return arrays, {"optimizer": opt_meta, "readout": self.readout,
                        "temperature": self.temperature}

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned, in place."""
        if meta.get("readout") != self.readout:
            raise CheckpointError(f"checkpoint has a {meta.get('readout')!r} readout, this "
                                  f"learner a {self.readout!r} one")
        for name, dst in self._named_params().items():
            _copy_into(dst, arrays, name)
        _copy_into(self.classifier, arrays, "classifier0")
        self.temperature = float(meta["temperature"])
        opt = {k[len("opt_"):]: v for k, v in arrays.items() if k.startswith("opt_")}
        self.optimizer.load_state(opt, meta["optimizer"])


def make_rnn_learner(cfg):
    """Return the learner of a recurrent run: ``BinaryRNN`` (bep) or ``QATRNN`` (qat).

    ``cfg.bptt_steps`` sets BEP-TT's ``truncation`` (0 = the full chain, the spec).
    """
    if cfg.rule == "bep":
        return BinaryRNN(cfg, truncation=cfg.bptt_steps or None)
    if cfg.rule == "qat":
        return QATRNN(cfg)
    raise ConfigError(f"the recurrent model trains rules 'bep' (BEP-TT) and 'qat'; got "
                      f"{cfg.rule!r}")
