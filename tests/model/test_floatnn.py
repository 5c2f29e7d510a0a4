"""Float baselines: optimizers, the float MLP's gradients, learning and bit-identical resume."""

import numpy as np
import pytest

from bitprop.model.config import RunConfig
from bitprop.model.errors import CheckpointError, ConfigError
from bitprop.model.floatnn import SGD, Adam, FloatMLP, make_optimizer
from bitprop.model.train import load_checkpoint, make_learner, train

from .toys import toy_data


def test_sgd_step_is_exact():
    p = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    opt = SGD([p], lr=0.25)
    opt.step([np.array([4.0, 1.0, -2.0], dtype=np.float32)])
    np.testing.assert_array_equal(p, [0.0, -2.25, 1.0])
    assert opt.t == 1


def test_adam_matches_its_formula_in_float64():
    gen = np.random.default_rng(0)
    p = gen.normal(size=(3, 4)).astype(np.float32)
    ref = p.astype(np.float64)
    m = np.zeros_like(ref)
    v = np.zeros_like(ref)
    opt = Adam([p], lr=0.01)
    for t in range(1, 6):
        g = gen.normal(size=(3, 4)).astype(np.float32)
        opt.step([g])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g.astype(np.float64) ** 2
        ref -= 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)
    # The first step of Adam moves every parameter by about lr, against its gradient.
    q = np.zeros(3, dtype=np.float32)
    Adam([q], lr=0.1).step([np.array([5.0, -0.01, 3e-3], dtype=np.float32)])
    np.testing.assert_allclose(q, [-0.1, 0.1, -0.1], rtol=1e-4)


def test_optimizer_choice_and_errors():
    p = [np.zeros(2, dtype=np.float32)]
    assert isinstance(make_optimizer(RunConfig(optimizer="adam"), p), Adam)
    assert isinstance(make_optimizer(RunConfig(optimizer="sgd"), p), SGD)
    with pytest.raises(ConfigError, match="learning rate"):
        Adam(p, lr=0.0)
    with pytest.raises(CheckpointError, match="'sgd' optimizer"):
        Adam(p, lr=0.1).load_state({}, {"kind": "sgd", "t": 0})


def _mlp(hidden=(6, 5), d=7, classes=3, **kw):
    return FloatMLP(RunConfig(rule="sgd", hidden=hidden, input_dim=d, n_classes=classes, **kw))


def test_gradients_match_finite_differences():
    net = _mlp()
    gen = np.random.default_rng(1)
    x = gen.choice([-1, 1], size=(5, 7)).astype(np.float32)
    y = gen.integers(0, 3, 5)
    params = [p.astype(np.float64) for p in net.params]

    def loss(ps):
        a = x.astype(np.float64)
        for l in range(0, len(ps) - 2, 2):
            a = np.maximum(a @ ps[l].T + ps[l + 1], 0)
        logits = a @ ps[-2].T + ps[-1]
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -logp[np.arange(5), y].mean()

    _, tr = net.train_batch(x, y, 0, trace=True)
    eps = 1e-6
    for i, p in enumerate(params):
        num = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            hi = [q.copy() for q in params]
            lo = [q.copy() for q in params]
            hi[i][idx] += eps
            lo[i][idx] -= eps
            num[idx] = (loss(hi) - loss(lo)) / (2 * eps)
        np.testing.assert_allclose(tr["grads"][i], num, rtol=2e-3, atol=2e-6,
                                   err_msg=f"parameter {i}")


def test_init_is_he_and_seeded():
    a, b, c = (_mlp((300,), d=400, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert (a.weights[0] != c.weights[0]).any()
    assert abs(a.weights[0].std() - np.sqrt(2 / 400)) < 0.003
    assert abs(a.weights[1].std() - np.sqrt(1 / 300)) < 0.01
    assert not a.biases[0].any()


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-3), ("sgd", 0.1)])
def test_float_mlp_learns(optimizer, lr):
    cfg = RunConfig(rule="sgd", hidden=(30, 20), epochs=4, batch=20, seed=1,
                    optimizer=optimizer, lr=lr)
    r = train(cfg, toy_data())
    assert isinstance(r["learner"], FloatMLP)
    assert r["test_accuracy"] > 80.0, r["epochs"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_is_bit_identical(tmp_path, optimizer):
    data = toy_data(1, n=300)
    cfg = RunConfig(rule="sgd", hidden=(21, 14), epochs=3, batch=25, seed=7,
                    optimizer=optimizer, lr=0.01)
    full = train(cfg, data)
    ck = tmp_path / "run.ckpt"
    train(cfg.replace(epochs=2), data, checkpoint=str(ck))
    assert load_checkpoint(str(ck))[0]["epoch"] == 2
    resumed = train(cfg, data, checkpoint=str(ck), resume=True)
    for a, b in zip(full["learner"].params, resumed["learner"].params):
        np.testing.assert_array_equal(a, b)
    assert full["learner"].optimizer.t == resumed["learner"].optimizer.t
    strip = [[{k: v for k, v in e.items() if k != "seconds"} for e in r["epochs"]]
             for r in (full, resumed)]
    assert strip[0] == strip[1]


def test_state_round_trip_continues_identically():
    gen = np.random.default_rng(2)
    x = gen.choice([-1, 1], size=(40, 7)).astype(np.float32)
    y = gen.integers(0, 3, 40)
    a = _mlp()
    for step in range(3):
        a.train_batch(x[step * 10:(step + 1) * 10], y[step * 10:(step + 1) * 10], step)
    arrays, meta = a.state()
    b = _mlp(seed=99)
    b.load_state({k: v.copy() for k, v in arrays.items()}, meta)
    assert b.optimizer.t == 3
    a.train_batch(x[30:], y[30:], 3)
    b.train_batch(x[30:], y[30:], 3)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(CheckpointError, match="lacks weight1"):
        b.load_state({k: v for k, v in arrays.items() if k != "weight1"}, meta)
    with pytest.raises(CheckpointError, match="shape"):
        _mlp(hidden=(8, 5)).load_state(arrays, meta)


def test_wrong_rule_or_data_is_refused():
    with pytest.raises(ConfigError, match="rule 'sgd'"):
        FloatMLP(RunConfig(rule="local", hidden=(4,), input_dim=3, n_classes=2))
    with pytest.raises(ConfigError, match="vector data"):
        _mlp().prepare(np.ones((2, 3, 7)))
    assert isinstance(make_learner(RunConfig(rule="sgd", hidden=(4,), input_dim=3,
                                             n_classes=2)), FloatMLP)
