"""Binary MLP rules against the direct transcription of the spec, bit for bit."""

import numpy as np
import pytest

from bitprop.model import ops
from bitprop.model.bits import pack_bits01
from bitprop.model.classifiers import equiangular_frame, frame_objective, random_classifier
from bitprop.model.config import RunConfig
from bitprop.model.mlp import BinaryMLP, next_gamma

from .spec_reference import reference_step

CASES = [
    # (rule, input width, hidden widths, gammas, hidden bits, classes)
    ("local", 5, (3,), (3,), 4, 3),
    ("local", 70, (6, 4), (3, 2), 4, 3),
    ("local", 130, (9, 6, 3), (3, 2, 1), 8, 4),
    ("cpr", 65, (10,), (5,), 5, 3),
    ("bep", 5, (6, 4), (2, 4), 4, 3),
    ("bep", 70, (9, 7), (3, 7), 4, 5),
    ("bep", 130, (65, 66, 3), (13, 11, 1), 8, 3),
    ("bep", 1, (4, 3), (1, 3), 3, 2),
]


def _setup(rule, d, hidden, gammas, bits, classes, seed, **kw):
    cfg = RunConfig(rule=rule, hidden=hidden, gamma=gammas, input_dim=d, n_classes=classes,
                    hidden_bits=bits, seed=seed, robustness=0.5, **kw)
    net = BinaryMLP(cfg)
    gen = np.random.default_rng(seed + 99)
    return cfg, net, gen


# empty_gate only changes BEP, so only BEP cases run with both settings.
SPEC_RUNS = [(c, "plus") for c in CASES] + [(c, "skip") for c in CASES if c[0] == "bep"]


@pytest.mark.parametrize("case,empty_gate", SPEC_RUNS)
def test_train_batch_matches_spec(case, empty_gate):
    rule, d, hidden, gammas, bits, classes = case
    cfg, net, gen = _setup(rule, d, hidden, gammas, bits, classes, seed=len(hidden) * 7 + d,
                           empty_gate=empty_gate, nu=0.1)
    hidden_ref = [h.tolist() for h in net.hidden]
    classifiers = [q.tolist() for q in net.classifiers]
    n_selected = 0
    for step in range(4):
        x = gen.choice([-1, 1], size=(7, d)).astype(np.int8)
        y = gen.integers(0, classes, size=7)
        net.thresholds = [int(t) for t in gen.integers(0, 30000, size=len(hidden))]
        correct, tr = net.train_batch(net.prepare(x), y, step, trace=True)
        n_selected += sum(int(m.sum()) for m in tr["masks"])
        hidden_ref, correct_ref = reference_step(
            hidden_ref, classifiers, x.tolist(), y.tolist(), rule=rule, gammas=gammas,
            r=cfg.robustness, nu=cfg.nu, hidden_bits=bits, seed=cfg.seed, step=step,
            thresholds=net.thresholds, empty_gate=empty_gate)
        assert correct == correct_ref
        for l, h in enumerate(hidden_ref):
            np.testing.assert_array_equal(net.hidden[l], np.array(h), err_msg=f"layer {l}")
    assert n_selected > 0, "the case must exercise updates"


def test_hidden_weights_stay_odd_and_in_range():
    cfg, net, gen = _setup("bep", 40, (12, 8), (4, 4), 4, 3, seed=3)
    net.begin_epoch(0, 0.0)
    net.thresholds = [20000, 20000]
    for step in range(30):
        x = gen.choice([-1, 1], size=(10, 40))
        net.train_batch(net.prepare(x), gen.integers(0, 3, 10), step)
        for h in net.hidden:
            assert (h % 2 != 0).all()
            assert np.abs(h).max() <= 7
    assert any((np.abs(h) == 7).any() for h in net.hidden), "saturation should be reached"


def test_same_seed_same_bits_and_different_seed_differs():
    def run(seed):
        cfg, net, gen = _setup("local", 30, (10, 10), (5, 5), 8, 4, seed=seed)
        gen = np.random.default_rng(0)
        net.begin_epoch(0, 0.3)
        for step in range(5):
            net.train_batch(net.prepare(gen.choice([-1, 1], size=(8, 30))),
                            gen.integers(0, 4, 8), step)
        return net.hidden
    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any((x != z).any() for x, z in zip(a, c))


def test_bep_all_gates_closed_gives_all_plus_desired():
    cfg, net, gen = _setup("bep", 20, (8, 6), (4, 3), 8, 3, seed=5, nu=0.0)
    # nu = 0 gates only units with z == 0; use even widths of 20 and 8 and force no zeros:
    x = gen.choice([-1, 1], size=(6, 20))
    zs, acts = net.forward(net.prepare(x))
    closed = ~ops.gate(zs[1], 0).any(axis=1)
    desired, active, _ = net.targets(zs, acts, gen.integers(0, 3, 6))
    assert closed.any()
    assert (desired[0][closed] == 1).all()


def test_selection_semantics():
    z = np.array([[3, -1, 0, 2, -5, 4]])
    desired = np.array([[-1, 1, -1, -1, -1, 1]])
    # wrong: unit0 (+ vs -), unit1 (- vs +), unit2 (0 -> + vs -), unit3 (+ vs -)
    m = ops.select_winners(z, desired, 3)
    np.testing.assert_array_equal(m, [[False, False, True, True, False, False]])
    # tie on |z|: lowest index wins
    m = ops.select_winners(np.array([[2, -2]]), np.array([[-1, 1]]), 2)
    np.testing.assert_array_equal(m, [[True, False]])
    # inactive sample selects nothing
    assert not ops.select_winners(z, desired, 3, active=[False]).any()
    with pytest.raises(ValueError, match="divide"):
        ops.select_winners(z, desired, 4)


def test_margin_and_trigger_and_predict():
    s = np.array([[5, 5, 1], [0, 3, 3]])
    np.testing.assert_array_equal(ops.margin(s, np.array([0, 2])), [0, 0])
    np.testing.assert_array_equal(ops.predict(s), [0, 1])
    np.testing.assert_array_equal(ops.trigger(np.array([0, 1]), 1), [True, False])
    assert ops.margin_threshold(0.25, 525) == 131
    assert ops.gate_threshold(0.2, 525) == 105


def test_init_hidden_odd_and_scaled():
    h = ops.init_hidden((200, 200), 64.0, 8, np.random.default_rng(0))
    assert (h % 2 != 0).all() and np.abs(h).max() <= 127
    assert 55 < h.std() < 70


def test_frame_is_better_than_random():
    gen = np.random.default_rng(1)
    rand = random_classifier(10, 75, np.random.default_rng(1))
    frame = equiangular_frame(10, 75, gen)
    assert frame_objective(frame, 5.0) < frame_objective(rand, 5.0)
    g = frame.astype(int) @ frame.T
    off = g[np.triu_indices(10, 1)]
    # The ideal frame has every inner product at -K/(C-1) = -8.33.
    assert off.max() - off.min() <= 8, "rows should be nearly equiangular"
    assert abs(off.mean() + 75 / 9) < 1.0


def test_next_gamma():
    assert next_gamma(105, 525) == 525
    assert next_gamma(5, 60) == 10
    assert next_gamma(7, 60) == 15
    assert next_gamma(60, 60) == 60


def test_gamma_growth_after_patience():
    cfg, net, _ = _setup("bep", 10, (12,), (2,), 8, 3, seed=1, gamma_patience=2)
    net.end_epoch(0, 0.5)
    net.end_epoch(1, 0.5)
    assert net.gammas == [2]
    net.end_epoch(2, 0.4)
    assert net.gammas == [4]


def test_packed_copies_track_the_hidden_weights():
    cfg, net, gen = _setup("bep", 70, (66, 65), (6, 5), 6, 4, seed=11)
    net.begin_epoch(0, 0.0)
    for step in range(6):
        x = gen.choice([-1, 1], size=(12, 70))
        net.train_batch(net.prepare(x), gen.integers(0, 4, 12), step)
    for l, h in enumerate(net.hidden):
        np.testing.assert_array_equal(net.w[l], pack_bits01(h > 0))
        np.testing.assert_array_equal(net.wt[l], pack_bits01((h > 0).T))
