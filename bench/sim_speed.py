"""Simulation speed of the training core: the native harness against cocotb, same session.

Trains the flagship 784-75-75 (local rule, PE 4 × SIMD 32, 8 lanes, batch 100) on the first
``--samples`` FashionMNIST training samples (Prototypes when FashionMNIST is absent) on each
simulator, side by side with the golden model as ``bitprop sim`` does, weights compared at
the end, and prints for each the simulator's rate while it trains the batches:

- ``train_sim_cycles_per_second``: simulated clock cycles per wall second;
- ``train_sim_cycles_per_cpu_second``: per CPU second of the simulating process (steadier on
  a shared machine: the native harness is its own process, cocotb's simulator runs the host
  program too, so its CPU seconds include the host's share of the batches).

Each simulator runs ``--repeats`` times and the fastest run counts (builds are cached, so
only the first run of each compiles).

    python bench/sim_speed.py [--samples 500] [--repeats 3] [--json PATH]

The last line printed is ``native_over_cocotb: X`` (ratio of the CPU-second rates).
"""

import argparse
import json
import sys

from bitprop.model.config import RunConfig
from bitprop.model.data import load_dataset
from bitprop.model.errors import BitpropError
from bitprop.sim.session import simulate

FIELDS = ("train_sim_cycles_per_second", "train_sim_cycles_per_cpu_second")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--simulators", default="native,verilator")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    try:
        data = load_dataset("fashion-mnist", seed=42)
    except BitpropError as error:
        print(f"FashionMNIST not available ({error}); using Prototypes", file=sys.stderr)
        data = load_dataset("prototypes", seed=42)
    cfg = RunConfig(rule="local", hidden=(75, 75), batch=100, hidden_bits=8, pe=4, simd=32,
                    lanes=8, seed=42, input_dim=data.x_train.shape[1],
                    n_classes=data.n_classes)
    out = {"dataset": data.name, "network": "-".join(map(str, cfg.sizes)),
           "samples": args.samples, "repeats": args.repeats, "simulators": {}}
    for sim in args.simulators.split(","):
        best = None
        for _ in range(args.repeats):
            r = simulate(cfg, data, samples=args.samples, test_samples=100, simulator=sim,
                         check_every=0)
            if r["mismatches"] or r["binary_mismatches"] or r["prediction_mismatches"]:
                raise SystemExit(f"{sim}: the core differs from the model")
            if best is None or r[FIELDS[1]] > best[FIELDS[1]]:
                best = r
        entry = {k: best[k] for k in FIELDS}
        entry.update(train_sim_cycles=best["train_sim_cycles"],
                     cycles_per_sample=best["cycles_per_sample"])
        out["simulators"][sim] = entry
        print(f"{sim}: {entry[FIELDS[0]]:,.0f} cycles/s wall, {entry[FIELDS[1]]:,.0f} cycles "
              f"per CPU second ({entry['train_sim_cycles']:,} cycles, "
              f"{entry['cycles_per_sample']:.1f} per sample)")
    sims = out["simulators"]
    if "native" in sims and "verilator" in sims:
        out["native_over_cocotb"] = sims["native"][FIELDS[1]] / sims["verilator"][FIELDS[1]]
        print(f"native_over_cocotb: {out['native_over_cocotb']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
