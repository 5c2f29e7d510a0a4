"""Reproduce the papers' accuracies with the golden model (ALGORITHMS.md section 8).

Each experiment trains with the papers' protocol (batch 100, r = 0.25, p_r = 0.5, accuracy at
the last epoch on the held-out split) over several seeds and prints mean ± std against the
published figure. Every finished run is stored in the JSON file at once, so an interrupted
benchmark continues where it stopped when started again with the same arguments.

    python bench/reproduce.py                       # all experiments, 10 seeds, 50 epochs
    python bench/reproduce.py --only fmnist-75-8bit --seeds 42-44 --jobs 2

Experiments:
  fmnist-525-local   FashionMNIST 784-525-525, local rule, unclipped (32-bit, σ = 64)
  fmnist-525-bep     the same with BEP (ν = 0.2, equiangular frame)
  protos-525-local   Random Prototypes 1000-525-525, local rule, unclipped
  protos-525-bep     the same with BEP
  fmnist-75-8bit     the hardware-shaped 784-75-75 with 8-bit hidden weights, local rule
  fmnist-75-8bit-bep the same with BEP
"""

import argparse
import os
import statistics
import time

from resumable import load_runs, parse_seeds, run_pending, save_json

EXPERIMENTS = {
    # name: (dataset, rule, hidden, hidden_bits, init_sigma, published mean, published std)
    "fmnist-525-local": ("fashion-mnist", "local", (525, 525), 32, 64.0, 86.64, 0.29),
    "fmnist-525-bep": ("fashion-mnist", "bep", (525, 525), 32, 64.0, 86.64 + 1.22, None),
    "protos-525-local": ("prototypes", "local", (525, 525), 32, 64.0, 94.83, 0.56),
    "protos-525-bep": ("prototypes", "bep", (525, 525), 32, 64.0, 94.83 + 6.89, None),
    "fmnist-75-8bit": ("fashion-mnist", "local", (75, 75), 8, 0.0, 84.66, 0.32),
    "fmnist-75-8bit-bep": ("fashion-mnist", "bep", (75, 75), 8, 0.0, 84.66, 0.32),
}



def run_one(name, seed, epochs):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bitprop.model.config import RunConfig
    from bitprop.model.data import load_dataset
    from bitprop.model.train import train

    dataset, rule, hidden, bits, sigma, _, _ = EXPERIMENTS[name]
    data = load_dataset(dataset, seed=seed)
    cfg = RunConfig(rule=rule, hidden=hidden, hidden_bits=bits, init_sigma=sigma,
                    epochs=epochs, batch=100, seed=seed, robustness=0.25, p_r=0.5, nu=0.2)
    t0 = time.perf_counter()
    r = train(cfg, data)
    return {"experiment": name, "seed": seed, "epochs": epochs,
            "test_accuracy": r["test_accuracy"],
            "official_test_accuracy": r.get("official_test_accuracy"),
            "train_accuracy": r["epochs"][-1]["train_accuracy"] if r["epochs"] else None,
            "seconds": time.perf_counter() - t0}


def summarise(runs, epochs):
    rows = []
    for name, (dataset, rule, hidden, bits, _, pub, pub_std) in EXPERIMENTS.items():
        accs = [r["test_accuracy"] for r in runs
                if r["experiment"] == name and r["epochs"] == epochs]
        if not accs:
            continue
        off = [r["official_test_accuracy"] for r in runs if r["experiment"] == name
               and r["epochs"] == epochs and r["official_test_accuracy"] is not None]
        rows.append({
            "experiment": name, "dataset": dataset, "rule": rule,
            "hidden": "_".join(map(str, hidden)), "hidden_bits": bits, "seeds": len(accs),
            "mean": statistics.mean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "official_mean": statistics.mean(off) if off else None,
            "published": pub, "published_std": pub_std})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(EXPERIMENTS),
                    help="comma-separated experiment names")
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("42-51"))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", default="bench/results/reproduce.json")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    for n in names:
        if n not in EXPERIMENTS:
            ap.error(f"unknown experiment {n!r}; choose from {', '.join(EXPERIMENTS)}")
    runs = load_runs(args.json)
    done = {(r["experiment"], r["seed"], r["epochs"]) for r in runs}
    todo = [(n, s) for n in names for s in args.seeds if (n, s, args.epochs) not in done]

    run_pending(run_one, [(n, s, args.epochs) for n, s in todo], runs,
                lambda: save_json(args.json, {"runs": runs,
                                              "summary": summarise(runs, args.epochs)}),
                lambda r: f"{r['experiment']} seed {r['seed']}: {r['test_accuracy']:.2f} "
                          f"({r['seconds']:.0f} s)", jobs=args.jobs)
    print(f"| experiment | hidden bits | seeds | test acc (held-out) | official test | "
          f"published |")
    print("|---|---|---|---|---|---|")
    for row in summarise(runs, args.epochs):
        pub = f"{row['published']:.2f}" + (f" ± {row['published_std']:.2f}"
                                             if row["published_std"] else " (derived)")
        off = f"{row['official_mean']:.2f}" if row["official_mean"] is not None else "–"
        print(f"| {row['experiment']} | {row['hidden_bits']} | {row['seeds']} | "
              f"{row['mean']:.2f} ± {row['std']:.2f} | {off} | {pub} |")


if __name__ == "__main__":
    main()
