"""Training throughput of the packed golden model against a dense float32 BLAS emulation.

Both run BEP on a FashionMNIST-shaped 784-525-525 network, batch 100, on one core, in the same
process. The emulation computes exactly the same rule the way the papers' reference code does:
±1 matrices in float32 through ``matmul`` for the forward pass, the back-projection and the
batch update. Selection, margins and reinforcement use the same model functions in both, so
the comparison isolates the binary algebra. The two must produce identical hidden weights.

    python bench/speed.py [--batches 40] [--repeats 7] [--json PATH]

Each side is timed ``--repeats`` times from the same fresh start and the fastest run counts
(the usual best-of-k, which filters out interference from other processes).

The last line printed is ``speedup_vs_float_emulation: X``.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bitprop.model import ops  # noqa: E402
from bitprop.model.bits import pack, xnor_dot  # noqa: E402
from bitprop.model.config import RunConfig  # noqa: E402
from bitprop.model.errors import DataError  # noqa: E402
from bitprop.model.mlp import BinaryMLP  # noqa: E402


class FloatEmulation:
    """BEP on ±1 float32 matrices through BLAS, sharing the state layout of ``BinaryMLP``."""

    def __init__(self, net):
        self.cfg, self.sizes, self.n_layers = net.cfg, net.sizes, net.n_layers
        self.hidden = [h.copy() for h in net.hidden]
        self.p = net.output_classifier.astype(np.float32)
        self.gammas, self.thresholds = list(net.gammas), list(net.thresholds)
        self.w = [np.where(h > 0, 1.0, -1.0).astype(np.float32) for h in self.hidden]

    def train_batch(self, x, labels, step):
        cfg = self.cfg
        acts, zs = [x], []
        for w in self.w:
            z = acts[-1] @ w.T
            zs.append(z)
            acts.append(np.where(z >= 0, 1.0, -1.0).astype(np.float32))
        scores = acts[-1] @ self.p.T
        correct = int((ops.predict(scores) == labels).sum())
        trig = ops.trigger(ops.margin(scores.astype(np.int32), labels),
                           ops.margin_threshold(cfg.robustness, self.sizes[-1]))
        desired = [None] * self.n_layers
        desired[-1] = self.p[labels]
        for l in range(self.n_layers - 2, -1, -1):
            g = np.abs(zs[l + 1]) <= ops.gate_threshold(cfg.nu, self.sizes[l + 1])
            proj = (g * desired[l + 1]) @ self.w[l + 1]
            desired[l] = np.where(proj >= 0, 1.0, -1.0).astype(np.float32)
        for l in range(self.n_layers):
            mask = ops.select_winners(zs[l].astype(np.int32), desired[l], self.gammas[l], trig)
            delta = (2.0 * mask * desired[l]).T @ acts[l]
            h = ops.apply_update(self.hidden[l], delta.astype(np.int64), cfg.hidden_bits)
            if mask.any() and self.thresholds[l]:
                h = ops.reinforce(h, cfg.seed, step, l, self.thresholds[l], cfg.hidden_bits)
            self.hidden[l] = h
            self.w[l] = np.where(h > 0, 1.0, -1.0).astype(np.float32)
        return correct


def _data(n):
    try:
        from bitprop.model.data import load_fashion_mnist
        d = load_fashion_mnist(seed=42)
        return d.x_train[:n], d.y_train[:n], "fashion-mnist"
    except (DataError, ImportError):
        gen = np.random.default_rng(0)
        return (gen.choice(np.array([-1, 1], np.int8), size=(n, 784)),
                gen.integers(0, 10, n), "random ±1 (FashionMNIST not found)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=7,
                    help="time each side this many times from a fresh start; keep the fastest")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    batch = 100
    x, y, source = _data(batch * args.batches)
    cfg = RunConfig(rule="bep", hidden=(525, 525), input_dim=784, n_classes=10, seed=42)
    xf = x.astype(np.float32)

    def run(make, prepare):
        """Return (seconds, learner) of the fastest of ``--repeats`` fresh runs."""
        best = None
        for _ in range(args.repeats):
            learner = make()
            data = prepare(learner)
            t0 = time.perf_counter()
            for b in range(args.batches):
                sl = slice(b * batch, (b + 1) * batch)
                learner.train_batch(data[sl], y[sl], b)
            t = time.perf_counter() - t0
            best = (t, learner) if best is None or t < best[0] else best
        return best

    def make_net():
        net = BinaryMLP(cfg)
        net.begin_epoch(0, 0.0)
        return net

    t_packed, net = run(make_net, lambda n: n.prepare(x))
    t_float, emu = run(lambda: FloatEmulation(make_net()), lambda e: xf)
    same = all(np.array_equal(a, b) for a, b in zip(net.hidden, emu.hidden))
    n = batch * args.batches
    # Forward kernel alone: batch 100 through the 784->525 layer.
    a, w = pack(x[:batch]), net.w[0]
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        xnor_dot(a, w, 784)
    t_fwd = (time.perf_counter() - t0) / reps
    bitops = batch * 525 * 784 / t_fwd
    out = {"data": source, "network": "784-525-525", "rule": "bep", "batch": batch,
           "batches": args.batches, "repeats": args.repeats, "threads": 1,
           "packed_samples_per_s": n / t_packed, "float_emulation_samples_per_s": n / t_float,
           "identical_hidden_weights": bool(same),
           "forward_kernel_bitops_per_s": bitops,
           "speedup_vs_float_emulation": t_float / t_packed}
    print(f"data: {source}")
    print(f"packed golden model:       {out['packed_samples_per_s']:10.0f} samples/s")
    print(f"float32 BLAS emulation:    {out['float_emulation_samples_per_s']:10.0f} samples/s")
    print(f"identical hidden weights:  {same}")
    print(f"forward kernel:            {bitops / 1e9:10.2f} G bit-ops/s (XNOR+popcount)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    if not same:
        raise SystemExit("hidden weights differ between the packed model and the emulation")
    print(f"speedup_vs_float_emulation: {out['speedup_vs_float_emulation']:.2f}")


if __name__ == "__main__":
    main()
