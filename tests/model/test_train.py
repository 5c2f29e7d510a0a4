"""Training loop: learning, determinism, checkpoints and bit-identical resume, clear errors."""

import numpy as np
import pytest

from bitprop.model.config import RunConfig
from bitprop.model.dataset import Dataset
from bitprop.model.errors import CheckpointError, ConfigError, DataError
from bitprop.model.train import epoch_order, load_checkpoint, train

from .toys import toy_data


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("rule", ["local", "bep", "cpr"])
def test_rules_learn_above_chance(rule):
    hidden = (30,) if rule == "cpr" else (30, 20)
    r = train(RunConfig(rule=rule, hidden=hidden, epochs=4, batch=20, seed=1), toy_data())
    assert r["test_accuracy"] > 60.0, r["epochs"]


@pytest.mark.parametrize("rule", ["local", "bep"])
def test_resume_is_bit_identical(tmp_path, rule):
    data = toy_data(1)
    cfg = RunConfig(rule=rule, hidden=(21, 14), gamma=(7, 7), epochs=3, batch=25, seed=7)
    full = train(cfg, data)
    ck = tmp_path / "run.ckpt"
    train(cfg.replace(epochs=2), data, checkpoint=str(ck))
    meta, _ = load_checkpoint(str(ck))
    assert meta["epoch"] == 2
    resumed = train(cfg, data, checkpoint=str(ck), resume=True)
    for a, b in zip(full["learner"].hidden, resumed["learner"].hidden):
        np.testing.assert_array_equal(a, b)
    assert _strip(full["epochs"]) == _strip(resumed["epochs"])


def test_same_seed_same_result_and_seed_matters():
    data = toy_data(2)
    cfg = RunConfig(rule="bep", hidden=(16, 8), gamma=(4, 4), epochs=2, batch=30, seed=3)
    a, b = train(cfg, data), train(cfg, data)
    c = train(cfg.replace(seed=4), data)
    assert _strip(a["epochs"]) == _strip(b["epochs"])
    assert any((x != y).any() for x, y in zip(a["learner"].hidden, c["learner"].hidden))


def test_epoch_order_is_a_permutation_per_epoch():
    a, b = epoch_order(1, 0, 100), epoch_order(1, 1, 100)
    assert sorted(a) == list(range(100)) and (a != b).any()
    np.testing.assert_array_equal(a, epoch_order(1, 0, 100))


def test_bad_checkpoints_are_refused(tmp_path):
    data = toy_data(3)
    cfg = RunConfig(rule="local", hidden=(10, 10), gamma=(5, 5), epochs=1, batch=50)
    ck = tmp_path / "c.ckpt"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(cfg, data, checkpoint=str(ck), resume=True)
    train(cfg, data, checkpoint=str(ck))
    with pytest.raises(CheckpointError, match="differs in: hidden_bits"):
        train(cfg.replace(hidden_bits=6), data, checkpoint=str(ck), resume=True)
    with pytest.raises(CheckpointError, match="different data"):
        train(cfg, toy_data(4), checkpoint=str(ck), resume=True)
    raw = ck.read_bytes()
    ck.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(cfg, data, checkpoint=str(ck), resume=True)
    ck.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(cfg, data, checkpoint=str(ck), resume=True)
    with pytest.raises(ConfigError, match="--resume needs --checkpoint"):
        train(cfg, data, resume=True)


@pytest.mark.parametrize("kw,msg", [
    (dict(hidden=(10, 9), gamma=(5, 4)), "does not divide the width 9"),
    (dict(hidden=(0, 5)), "width 0"),
    (dict(hidden=()), "at least one hidden layer"),
    (dict(batch=0), "batch size"),
    (dict(hidden_bits=1), "hidden-weight bits"),
    (dict(hidden_bits=40), "hidden-weight bits"),
    (dict(rule="cpr", hidden=(10, 10)), "exactly one hidden width"),
    (dict(rule="nope"), "unknown rule"),
    (dict(p_r=1.5), "p_r"),
    (dict(nu=-1.0), "nu"),
    (dict(gamma=(5,), hidden=(10, 10)), "1 group sizes given for 2"),
    (dict(classifier="circle"), "classifier"),
    (dict(seed=-1), "seed"),
])
def test_impossible_configurations_are_refused(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        train(RunConfig(epochs=1, **kw), toy_data())


def test_bad_data_is_refused():
    x = np.ones((4, 3))
    with pytest.raises(DataError, match="binary"):
        Dataset("bad", x * 2, [0, 1, 0, 1], x, [0, 1, 0, 1], 2)
    with pytest.raises(DataError, match="labels must be in"):
        Dataset("bad", x, [0, 1, 2, 1], x, [0, 1, 0, 1], 2)
    with pytest.raises(DataError, match="4 samples but labels"):
        Dataset("bad", x, [0, 1, 0], x, [0, 1, 0, 1], 2)
    with pytest.raises(DataError, match="binary"):
        Dataset("bad", np.full((4, 3), np.nan), [0, 1, 0, 1], x, [0, 1, 0, 1], 2)
    data = Dataset("ok", x, [0, 1, 0, 1], x, [0, 1, 0, 1], 2)
    with pytest.raises(ConfigError, match="input width 5 differs"):
        train(RunConfig(hidden=(4,), rule="cpr", gamma=(2,), input_dim=5), data)
