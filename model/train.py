"""The training loop: epochs, mini-batches, metrics, checkpoints and bit-identical resume.

Any learner with the interface of ``BinaryMLP`` can be trained here: ``prepare``,
``train_batch``, ``predict``, ``begin_epoch``, ``end_epoch``, ``state`` and ``load_state``.
The order of the training samples in epoch ``e`` is a permutation drawn from
``numpy.random.default_rng([seed, e, STREAM_ORDER])``: it depends on nothing but the seed and
the epoch, so a run resumed from the checkpoint of any epoch continues bit-identically.
"""

import hashlib
import json
import os
import sys
import time
import zipfile

import numpy as np

from .errors import CheckpointError, ConfigError

__all__ = ["make_learner", "train", "epoch_order", "Progress", "load_checkpoint"]

STREAM_ORDER = 0x5A4D
CHECKPOINT_VERSION = 1


def make_learner(cfg):
    """Return the learner that trains ``cfg.rule`` on ``cfg.model``."""
    if cfg.model == "rnn":
        from .rnn import make_rnn_learner
        return make_rnn_learner(cfg)
    if cfg.rule in ("local", "bep", "cpr"):
        from .mlp import BinaryMLP
        return BinaryMLP(cfg)
    if cfg.rule == "sgd":
        from .floatnn import FloatMLP
        return FloatMLP(cfg)
    raise ConfigError(f"rule {cfg.rule!r} does not train a {cfg.model!r} model")


def epoch_order(seed, epoch, n):
    """Return the order in which epoch ``epoch`` visits the ``n`` training samples."""
    return np.random.default_rng([seed, epoch, STREAM_ORDER]).permutation(n)


def _fingerprint(data):
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class Progress:
    """A dependency-free progress bar on stderr (one line, redrawn at most 10 times/s)."""

    def __init__(self, total, label, enabled=True, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, n, extra=""):
        self.done += n
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        frac = self.done / max(1, self.total)
        bar = "#" * int(frac * 30)
        rate = self.done / max(1e-9, now - self.start)
        self.stream.write(f"\r{self.label} [{bar:<30}] {self.done}/{self.total} "
                          f"{rate:,.0f}/s {extra}  ")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _save_checkpoint(path, cfg, learner, meta):
    arrays, learner_meta = learner.state()
    meta = dict(meta, learner=learner_meta, config=cfg.to_dict(), version=CHECKPOINT_VERSION)
    payload = {f"learner/{k}": v for k, v in arrays.items()}
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """Return ``(meta, arrays)`` of a checkpoint, with a clear error for a bad file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            arrays = {k[len("learner/"):]: z[k] for k in z.files if k.startswith("learner/")}
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({e})") from None
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has version {meta.get('version')}, "
                              f"expected {CHECKPOINT_VERSION}")
    return meta, arrays


def _evaluate(learner, x, y):
    if len(y) == 0:
        return float("nan")
    return float((learner.predict(x) == y).mean() * 100.0)


def train(cfg, data, *, checkpoint=None, resume=False, progress=False, log=None):
    """Train ``cfg`` on ``data``; return the result dict (also what ``--json`` writes).

    Parameters
    ----------
    cfg : RunConfig
        ``input_dim`` and ``n_classes`` are filled from ``data`` when 0.
    data : Dataset
    checkpoint : str, optional
        Path written after every epoch (atomically).
    resume : bool
        Continue from ``checkpoint``; the configuration must match except ``epochs``.
    progress : bool
        Draw a progress bar on stderr.
    log : callable, optional
        Receives one line of text per epoch.
    """
    cfg = cfg.replace(input_dim=cfg.input_dim or data.input_dim,
                      n_classes=cfg.n_classes or data.n_classes)
    if cfg.input_dim != data.input_dim:
        raise ConfigError(f"configuration input width {cfg.input_dim} differs from the data's "
                          f"{data.input_dim}")
    if cfg.n_classes != data.n_classes:
        raise ConfigError(f"configuration has {cfg.n_classes} classes, the data "
                          f"{data.n_classes}")
    if cfg.model == "rnn" and not data.is_sequence:
        raise ConfigError("the recurrent model needs sequence data (samples, steps, features)")
    if cfg.model == "mlp" and data.is_sequence:
        raise ConfigError("the MLP needs vector data; use --model rnn for sequences")
    cfg.validate()
    learner = make_learner(cfg)
    fingerprint = _fingerprint(data)
    history, epoch0, step, acc_prev = [], 0, 0, 0.0
    if resume:
        if not checkpoint:
            raise ConfigError("--resume needs --checkpoint PATH")
        meta, arrays = load_checkpoint(checkpoint)
        saved = dict(meta["config"])
        mine = cfg.to_dict()
        saved.pop("epochs", None), mine.pop("epochs", None)
        if saved != mine:
            diff = sorted(k for k in mine if saved.get(k) != mine[k])
            raise CheckpointError(f"checkpoint {checkpoint} was written by a different "
                                  f"configuration (differs in: {', '.join(diff)})")
        if meta["data_fingerprint"] != fingerprint:
            raise CheckpointError(f"checkpoint {checkpoint} was trained on different data")
        learner.load_state(arrays, meta["learner"])
        history, epoch0 = meta["history"], meta["epoch"]
        step, acc_prev = meta["step"], meta["acc_prev"]
        if epoch0 >= cfg.epochs and log:
            log(f"checkpoint already holds {epoch0} epochs (>= {cfg.epochs}): nothing to train; "
                f"reporting its state")
    x_train = learner.prepare(data.x_train)
    x_test = learner.prepare(data.x_test)
    extra = {k: (learner.prepare(x), y) for k, (x, y) in data.extra_tests.items()}
    n = data.y_train.shape[0]
    for epoch in range(epoch0, cfg.epochs):
        t0 = time.perf_counter()
        learner.begin_epoch(epoch, acc_prev)
        order = epoch_order(cfg.seed, epoch, n)
        bar = Progress(n, f"epoch {epoch + 1}/{cfg.epochs}", enabled=progress)
        correct = 0
        for start in range(0, n, cfg.batch):
            idx = order[start:start + cfg.batch]
            correct += learner.train_batch(x_train[idx], data.y_train[idx], step)
            step += 1
            bar.update(len(idx), f"train acc {100.0 * correct / (start + len(idx)):.2f}%")
        bar.close()
        train_acc = correct / n
        learner.end_epoch(epoch, train_acc)
        acc_prev = train_acc
        rec = {"epoch": epoch + 1, "train_accuracy": 100.0 * train_acc,
               "test_accuracy": _evaluate(learner, x_test, data.y_test)}
        for k, (x, y) in extra.items():
            rec[f"{k}_accuracy"] = _evaluate(learner, x, y)
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        if log:
            log("  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in rec.items()))
        if checkpoint:
            _save_checkpoint(checkpoint, cfg, learner, {
                "epoch": epoch + 1, "step": step, "acc_prev": acc_prev, "history": history,
                "data_fingerprint": fingerprint})
    result = {"config": cfg.to_dict(), "dataset": data.describe(), "epochs": history,
              "test_accuracy": history[-1]["test_accuracy"] if history else
              _evaluate(learner, x_test, data.y_test)}
    for k, (x, y) in extra.items():
        result[f"{k}_accuracy"] = history[-1][f"{k}_accuracy"] if history else \
            _evaluate(learner, x, y)
    result["learner"] = learner
    return result
