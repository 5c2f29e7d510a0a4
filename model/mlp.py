"""Binary multi-layer perceptron trained by local binary errors (rule A), BEP (rule B), or
the single-layer CP+R committee machine.

The whole learning step of one mini-batch is ``BinaryMLP.train_batch``. It follows
ALGORITHMS.md sections 2–6 exactly: every sample of a batch sees the weights of the start of
the batch; the changes of all triggered samples are summed and applied once; then each layer
that selected at least one unit in the batch is reinforced once.
"""

import numpy as np

from . import ops, rng
from .bits import pack, pack_bits01, project_back, unpack, xnor_dot
from .classifiers import equiangular_frame, random_classifier
from .errors import CheckpointError

__all__ = ["BinaryMLP", "GroupSchedule", "next_gamma"]

# Streams of the NumPy generator used for set-up (not training-time) randomness.
STREAM_INIT, STREAM_CLASSIFIER = 1, 2


def next_gamma(gamma, k, factor=2):
    """Return the smallest divisor of ``k`` that is at least ``factor·gamma`` (at most ``k``)."""
    for d in range(min(k, factor * gamma), k + 1):
        if k % d == 0 and d >= min(k, factor * gamma):
            return d
    return k


class GroupSchedule:
    """The group size of each layer, grown when training accuracy stalls. [adopted]

    After ``patience`` epochs in a row without a new best training accuracy, every group size
    becomes ``next_gamma`` of itself (at least doubled, still dividing its width). ``patience``
    0 keeps the sizes fixed.
    """

    def __init__(self, gammas, widths, patience):
        self.gammas, self.widths, self.patience = list(gammas), list(widths), patience
        self.best_acc, self.stall = -1.0, 0

    def end_epoch(self, train_acc):
        """Record an epoch's training accuracy; grow the group sizes after a stall."""
        if not self.patience:
            return
        if train_acc > self.best_acc:
            self.best_acc, self.stall = train_acc, 0
            return
        self.stall += 1
        if self.stall >= self.patience:
            self.gammas = [next_gamma(g, k) for g, k in zip(self.gammas, self.widths)]
            self.stall = 0

    def state(self):
        return {"gammas": list(self.gammas), "best_acc": self.best_acc, "stall": self.stall}

    def load_state(self, meta):
        self.gammas = [int(g) for g in meta["gammas"]]
        self.best_acc, self.stall = float(meta["best_acc"]), int(meta["stall"])


class BinaryMLP:
    """Hidden weights, fixed classifiers and the training step of a binary MLP.

    Parameters
    ----------
    cfg : RunConfig
        ``rule`` in {"local", "bep", "cpr"}; ``cfg.sizes`` gives the widths.

    Attributes
    ----------
    hidden : list of int32 (int64 above 30 bits) arrays, shape (K_l, K_{l−1})
        Odd, saturating hidden weights; the binary weights are their signs.
    classifiers : list of int8 ±1 arrays, shape (C, K_l)
        ``classifiers[l]`` is the fixed local classifier ``Q_{l+1}`` of hidden layer l+1
        (rule A); the last one is the output classifier ``P``. Under BEP only ``P`` is used.
    gammas : list of int
        Group size per layer (BEP may grow them, see ``end_epoch``).
    thresholds : list of int
        16-bit reinforcement thresholds of the current epoch, per layer.
    """

    def __init__(self, cfg):
        self.cfg = cfg.validate()
        if cfg.rule not in ("local", "bep", "cpr"):
            raise ValueError(f"BinaryMLP trains rules local, bep and cpr, not {cfg.rule!r}")
        sizes = cfg.sizes
        self.sizes = sizes
        self.n_layers = len(sizes) - 1
        # Hidden weights are stored as int32 where that cannot overflow (|H + ΔH| < 2^31).
        self.dtype = np.int32 if cfg.hidden_bits <= 30 else np.int64
        self.hidden = [
            ops.init_hidden((sizes[l + 1], sizes[l]), cfg.sigma, cfg.hidden_bits,
                            np.random.default_rng([cfg.seed, STREAM_INIT, l])).astype(self.dtype)
            for l in range(self.n_layers)
        ]
        self.classifiers = []
        for l in range(self.n_layers):
            gen = np.random.default_rng([cfg.seed, STREAM_CLASSIFIER, l])
            if cfg.classifier_kind == "frame":
                q = equiangular_frame(cfg.n_classes, sizes[l + 1], gen, alpha=cfg.frame_alpha)
            else:
                q = random_classifier(cfg.n_classes, sizes[l + 1], gen)
            self.classifiers.append(q)
        self.groups = GroupSchedule(cfg.gammas, sizes[1:], cfg.gamma_patience)
        self.hmax = ops.hidden_range(cfg.hidden_bits)
        self.thresholds = [0] * self.n_layers
        self._repack()

    # -- weights ----------------------------------------------------------------------------
    def _repack(self):
        self.w = [pack_bits01(h > 0) for h in self.hidden]
        self.wt = [pack_bits01((h > 0).T) for h in self.hidden] if self.cfg.rule == "bep" \
            else None
        self.q = [pack(q) for q in self.classifiers]

    @property
    def output_classifier(self):
        """Return the output classifier ``P`` (C × K_L, ±1)."""
        return self.classifiers[-1]

    # -- learner interface --------------------------------------------------------------------
    def prepare(self, x):
        """Return the packed form of a ±1 data matrix (N, D)."""
        return pack(x)

    def forward(self, x_packed):
        """Return ``(z, a)``: per layer the pre-activations (int32) and packed activations."""
        zs, acts = [], [x_packed]
        for l in range(self.n_layers):
            z = xnor_dot(acts[-1], self.w[l], self.sizes[l])
            zs.append(z)
            acts.append(pack_bits01(z >= 0))
        return zs, acts

    def scores(self, a_packed, layer=None):
        """Return the class scores ``Q_l·a_l`` of layer ``layer`` (default: the output)."""
        layer = self.n_layers - 1 if layer is None else layer
        return xnor_dot(a_packed, self.q[layer], self.sizes[layer + 1])

    def predict(self, x_packed, chunk=2000):
        """Return the predicted class of each sample."""
        out = []
        for i in range(0, x_packed.shape[0], chunk):
            _, acts = self.forward(x_packed[i:i + chunk])
            out.append(ops.predict(self.scores(acts[-1])))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def begin_epoch(self, epoch, acc_prev):
        """Set this epoch's reinforcement thresholds from the previous epoch's accuracy."""
        self.thresholds = [
            rng.threshold(ops.reinforcement_probability(self.cfg.p_r, acc_prev, self.sizes[l]))
            for l in range(self.n_layers)
        ]

    def end_epoch(self, epoch, train_acc):
        """Grow the group sizes when training accuracy stalled (``GroupSchedule``)."""
        self.groups.end_epoch(train_acc)

    @property
    def gammas(self):
        """Return the current group size of each layer."""
        return self.groups.gammas

    # -- the learning step ------------------------------------------------------------------------
    def targets(self, zs, acts, labels):
        """Return ``(desired, active)`` per layer for one batch, by the configured rule.

        ``desired[l]`` is the ±1 desired activation (N, K_{l+1}) and ``active[l]`` which
        samples may select units in that layer (triggered, and not skipped by an empty gate).
        Under BEP the backward chain runs for triggered samples only; the desired rows of the
        other samples are filler (+1) and select nothing. Also returns the output scores.
        """
        cfg = self.cfg
        n = labels.shape[0]
        out_scores = self.scores(acts[-1])
        if cfg.rule in ("local", "cpr"):
            desired, active = [], []
            for l in range(self.n_layers):
                s = out_scores if l == self.n_layers - 1 else self.scores(acts[l + 1], l)
                thr = ops.margin_threshold(cfg.robustness, self.sizes[l + 1])
                active.append(ops.trigger(ops.margin(s, labels), thr))
                desired.append(self.classifiers[l][labels])
            return desired, active, out_scores
        # BEP: output target, then the backward chain through the gates.
        thr = ops.margin_threshold(cfg.robustness, self.sizes[-1])
        trig = ops.trigger(ops.margin(out_scores, labels), thr)
        desired = [None] * self.n_layers
        active = [None] * self.n_layers
        desired[-1] = self.output_classifier[labels]
        active[-1] = trig
        live = np.flatnonzero(trig)   # only triggered samples need the backward chain
        for l in range(self.n_layers - 2, -1, -1):
            g = ops.gate(zs[l + 1][live], ops.gate_threshold(cfg.nu, self.sizes[l + 1]))
            proj = project_back(self.wt[l + 1], pack_bits01(g),
                                pack_bits01(desired[l + 1][live] > 0),
                                self.sizes[l + 2])
            desired[l] = np.ones((n, self.sizes[l + 1]), dtype=np.int8)
            desired[l][live] = ops.sign(proj)
            active[l] = active[l + 1].copy()
            if cfg.empty_gate == "skip":
                active[l][live[~g.any(axis=1)]] = False
        return desired, active, out_scores

    def train_batch(self, x_packed, labels, step, trace=False):
        """Run one mini-batch learning step; return the number of correct predictions.

        ``step`` is the global mini-batch counter (the generator's step). With ``trace`` the
        return value is ``(n_correct, trace_dict)`` holding every intermediate quantity.
        """
        labels = np.asarray(labels)
        zs, acts = self.forward(x_packed)
        desired, active, out_scores = self.targets(zs, acts, labels)
        pred = ops.predict(out_scores)
        n_correct = int((pred == labels).sum())
        masks, updates = [], []
        for l in range(self.n_layers):
            mask = ops.select_winners(zs[l], desired[l], self.gammas[l], active[l])
            a_prev = unpack(acts[l], self.sizes[l])
            masks.append(mask)
            updates.append(ops.update_rows(mask, desired[l], a_prev))
        for l, (rows, sums) in enumerate(updates):
            if rows.size == 0:
                continue
            h = self.hidden[l]
            before = h[rows] > 0
            h[rows] = np.clip(h[rows] + sums, -self.hmax, self.hmax)
            after = h[rows] > 0
            self.w[l][rows] = pack_bits01(after)
            if self.wt is not None:
                # Toggle the bits of the transposed copy where a binary weight flipped.
                r, i = np.nonzero(before != after)
                j = rows[r].astype(np.uint64)
                np.bitwise_xor.at(self.wt[l], (i, j >> np.uint64(6)),
                                  np.left_shift(np.uint64(1), j & np.uint64(63)))
            if self.thresholds[l]:
                # Reinforcement moves weights away from zero: no binary weight changes.
                ops.reinforce(h, self.cfg.seed, step, l, self.thresholds[l],
                              self.cfg.hidden_bits, out=h)
        if trace:
            deltas = []
            for l, (rows, sums) in enumerate(updates):
                delta = np.zeros(self.hidden[l].shape, dtype=np.int64)
                delta[rows] = sums
                deltas.append(delta)
            return n_correct, {"z": zs, "acts": acts, "scores": out_scores, "desired": desired,
                               "active": active, "masks": masks, "deltas": deltas,
                               "pred": pred}
        return n_correct

    # -- checkpoint state ---------------------------------------------------------------------------
    def state(self):
        """Return ``(arrays, meta)``: everything needed to continue bit-identically."""
        arrays = {f"hidden{l}": h for l, h in enumerate(self.hidden)}
        arrays.update({f"classifier{l}": q for l, q in enumerate(self.classifiers)})
        meta = self.groups.state()
        return arrays, meta

    def load_state(self, arrays, meta):
        """Restore what ``state`` returned."""
        try:
            hidden = [np.array(arrays[f"hidden{l}"], dtype=self.dtype)
                      for l in range(self.n_layers)]
            classifiers = [np.asarray(arrays[f"classifier{l}"], dtype=np.int8)
                           for l in range(self.n_layers)]
        except KeyError as e:
            raise CheckpointError(f"checkpoint lacks {e.args[0]}") from None
        for l, h in enumerate(hidden):
            want = (self.sizes[l + 1], self.sizes[l])
            if h.shape != want:
                raise CheckpointError(f"checkpoint layer {l + 1} has shape {h.shape}, "
                                      f"the configuration says {want}")
        self.hidden, self.classifiers = hidden, classifiers
        self.groups.load_state(meta)
        self._repack()
