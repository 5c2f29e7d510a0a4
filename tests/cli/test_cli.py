"""The ``bitprop`` command line, run as a user runs it: a subprocess with real files."""

import json
import subprocess
import sys

import numpy as np
import pytest


def bitprop(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bitprop", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def _npz(path, n=300, d=40, classes=3, real=False, seed=0):
    gen = np.random.default_rng(seed)
    protos = gen.choice([-1, 1], size=(classes, d))
    y = gen.integers(0, classes, n)
    x = protos[y] * np.where(gen.random((n, d)) < 0.2, -1, 1)
    if real:
        x = x * 3.5 + gen.normal(size=x.shape)
    np.savez(path, X_train=x[:250], y_train=y[:250], X_test=x[250:], y_test=y[250:])
    return path


def test_train_writes_json_checkpoint_and_plot(tmp_path):
    data = _npz(tmp_path / "d.npz", real=True)
    out, ck, png = tmp_path / "r.json", tmp_path / "r.ckpt", tmp_path / "curve.png"
    r = bitprop("train", "--dataset", str(data), "--rule", "bep", "--hidden", "12,9",
                "--gamma", "4,3", "--epochs", "3", "--batch", "25", "--seed", "5",
                "--encoding", "thermometer", "--levels", "4", "--json", str(out),
                "--checkpoint", str(ck), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["config"]["hidden"] == [12, 9] and res["config"]["rule"] == "bep"
    assert len(res["epochs"]) == 3
    assert res["dataset"]["input_dim"] == 160          # 40 features x 4 levels
    assert res["test_accuracy"] == res["epochs"][-1]["test_accuracy"]
    assert f"test_accuracy: {res['test_accuracy']:.2f}" in r.stdout
    assert ck.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_through_the_cli_matches_a_straight_run(tmp_path):
    data = _npz(tmp_path / "d.npz")
    common = ["train", "--dataset", str(data), "--rule", "local", "--hidden", "10,10",
              "--gamma", "5,5", "--batch", "50", "--seed", "3"]
    straight, resumed, ck = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.ckpt"
    assert bitprop(*common, "--epochs", "3", "--json", str(straight)).returncode == 0
    assert bitprop(*common, "--epochs", "1", "--checkpoint", str(ck)).returncode == 0
    r = bitprop(*common, "--epochs", "3", "--checkpoint", str(ck), "--resume",
                "--json", str(resumed))
    assert r.returncode == 0, r.stderr
    a, b = json.loads(straight.read_text()), json.loads(resumed.read_text())
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in a["epochs"]]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in b["epochs"]]


@pytest.mark.parametrize("args,message", [
    (["--hidden", "10,9", "--gamma", "5,4"], "does not divide the width 9"),
    (["--hidden", "0"], "width 0"),
    (["--rule", "cpr", "--hidden", "10,10"], "exactly one hidden width"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--hidden-bits", "64"], "hidden-weight bits"),
])
def test_impossible_configurations_exit_2_without_traceback(tmp_path, args, message):
    data = _npz(tmp_path / "d.npz")
    r = bitprop("train", "--dataset", str(data), "--epochs", "1", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_data_files_exit_2_without_traceback(tmp_path):
    trunc = tmp_path / "t.npz"
    _npz(trunc)
    trunc.write_bytes(trunc.read_bytes()[:100])
    bad_labels = tmp_path / "l.npz"
    np.savez(bad_labels, X_train=np.ones((4, 3)), y_train=[0, 1, -1, 0],
             X_test=np.ones((2, 3)), y_test=[0, 1])
    nan = tmp_path / "n.npz"
    np.savez(nan, X_train=np.full((4, 3), np.nan), y_train=[0, 1, 1, 0],
             X_test=np.ones((2, 3)), y_test=[0, 1])
    for path in (trunc, bad_labels, nan, tmp_path / "missing.npz"):
        r = bitprop("train", "--dataset", str(path), "--epochs", "1")
        assert r.returncode == 2, (path, r.stderr)
        assert "bitprop: error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = bitprop("train", "--dataset", "no-such-dataset", "--epochs", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_prototypes_trains_from_the_cli(tmp_path):
    r = bitprop("train", "--dataset", "prototypes", "--hidden", "20,20", "--gamma", "10,10",
                "--epochs", "2", "--seed", "1", "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "p.json").read_text())
    assert res["dataset"]["n_train"] == 10000 and res["dataset"]["input_dim"] == 1000
    assert res["test_accuracy"] > 30.0     # chance is 10%


def test_data_ucr_from_a_wheel_then_train_the_rnn(tmp_path):
    import zipfile
    gen = np.random.default_rng(0)
    t = np.linspace(0, 1, 10)

    def split(n):
        lines = []
        for i in range(n):
            v = (np.sin(2 * np.pi * t) if i % 2 else 2 * t - 1) + gen.normal(0, 0.2, t.size)
            lines.append(",".join(f"{a:.3f}" for a in v) + f":{i % 2}")
        return ("@problemName Toy\n@timeStamps false\n@missing false\n@univariate true\n"
                "@equalLength true\n@seriesLength 10\n@classLabel true 0 1\n@data\n"
                + "\n".join(lines) + "\n")
    wheel = tmp_path / "aeon-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("aeon/datasets/data/Toy/Toy_TRAIN.ts", split(40))
        z.writestr("aeon/datasets/data/Toy/Toy_TEST.ts", split(20))
    dest = tmp_path / "data"
    r = bitprop("data", "ucr", "--wheel", str(wheel), "--dest", str(dest), "--data-dir",
                str(dest))
    assert r.returncode == 0, r.stderr
    assert "extracted 1 datasets" in r.stdout and "Toy" in r.stdout
    out = tmp_path / "rnn.json"
    r = bitprop("train", "--model", "rnn", "--rule", "bep", "--dataset", "ucr:Toy",
                "--data-dir", str(dest), "--hidden", "12", "--gamma", "4", "--levels", "8",
                "--epochs", "2", "--batch", "10", "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["config"]["model"] == "rnn" and res["dataset"]["shape"] == [10, 8]


def test_demo_trains_the_up5k_core_and_projects_its_rate(tmp_path):
    # The demo simulates the UP5K's core (PE 1 x SIMD 8, 2 lanes, SPRAM models) through the
    # host driver; its test accuracy is the golden model's, and the projection is the clock
    # over the measured cycles per sample.
    data = _npz(tmp_path / "toy.npz", d=40)
    out = tmp_path / "demo.json"
    run = bitprop("demo", "--dataset", str(data), "--hidden", "13,9", "--batch", "10",
                  "--samples", "40", "--test-samples", "30", "--fmax-mhz", "30",
                  "--json", str(out))
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert (r["plan"]["pe"], r["plan"]["simd"], r["plan"]["lanes"]) == (1, 8, 2)
    assert r["mismatches"] == r["prediction_mismatches"] == 0
    assert r["test_accuracy_device"] == r["test_accuracy_model"]
    assert r["projected_samples_per_second"] == pytest.approx(30e6 / r["cycles_per_sample"])
    assert "projected" in run.stdout and "on the simulated core" in run.stdout
    # Without --fmax-mhz the projection takes the UP5K build report only if it is this core.
    run = bitprop("demo", "--dataset", str(data), "--hidden", "13,9", "--batch", "10",
                  "--samples", "40", "--test-samples", "30", "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["projected_samples_per_second"] is None
    assert "no projection" in run.stdout
