"""Recurrent binary networks: BEP-TT against a direct transcription of the spec, QAT, training."""

import math

import numpy as np
import pytest

from bitprop.model.bits import pack_bits01
from bitprop.model.config import RunConfig
from bitprop.model.dataset import Dataset
from bitprop.model.errors import ConfigError, DataError
from bitprop.model.rng import MASK64, WEYL, mix64, step_key
from bitprop.model.rnn import BinaryRNN, QATRNN, make_rnn_learner
from bitprop.model.train import load_checkpoint, train


# ---------------------------------------------------------------------------------------------
# A slow, direct transcription of ALGORITHMS.md section 6, BEP-TT: plain Python ints and ±1
# lists, one sample and one step at a time, no packed algebra, no NumPy in the arithmetic.


def sgn(v):
    return 1 if v >= 0 else -1


def binary(h):
    return 1 if h > 0 else -1


def draw(seed, step, layer, i):
    key = step_key(seed, step, layer)
    x = mix64((key + (i >> 2) * WEYL) & MASK64)
    return (x >> (16 * (i & 3))) & 0xFFFF


def reference_bep_tt_step(hidden, classifier, xs, ys, *, gamma, r, nu, hidden_bits, seed,
                          step, threshold, empty_gate, truncation=None):
    """Return (new hidden weights, number of correct predictions) after one mini-batch."""
    hmax = 2 ** (hidden_bits - 1) - 1
    k = len(hidden)
    f = len(hidden[0])
    d = f - k
    delta = [[0] * f for _ in range(k)]
    selected = False
    correct = 0
    for seq, y in zip(xs, ys):
        steps = len(seq)
        states, zs = [[1] * k], []
        for t in range(steps):
            inp = list(seq[t]) + states[-1]
            z = [sum(binary(h) * a for h, a in zip(row, inp)) for row in hidden]
            zs.append(z)
            states.append([sgn(v) for v in z])
        scores = [sum(p * a for p, a in zip(row, states[-1])) for row in classifier]
        pred = max(range(len(scores)), key=lambda c: (scores[c], -c))
        correct += pred == y
        margin = scores[y] - max(v for c, v in enumerate(scores) if c != y)
        if not margin < math.floor(r * k):
            continue
        desired = [None] * steps           # desired[t] is s*_{t+1}
        desired[steps - 1] = list(classifier[y])
        first = 0                          # earliest step that still learns
        if truncation is not None:
            first = max(0, steps - truncation)
        thr = math.floor(nu * f)
        for t in range(steps - 1, first, -1):
            gate = [abs(v) <= thr for v in zs[t]]
            if empty_gate == "skip" and not any(gate):
                first = t
                break
            proj = [sum(desired[t][i] * binary(hidden[i][d + c]) for i in range(k) if gate[i])
                    for c in range(k)]
            desired[t - 1] = [sgn(p) for p in proj]
        for t in range(first, steps):
            z, want = zs[t], desired[t]
            inp = list(seq[t]) + states[t]
            for start in range(0, k, gamma):
                best = None
                for j in range(start, start + gamma):
                    if sgn(z[j]) != want[j] and (best is None or abs(z[j]) < abs(z[best])):
                        best = j
                if best is not None:
                    selected = True
                    for i in range(f):
                        delta[best][i] += 2 * want[best] * inp[i]
    new = [[max(-hmax, min(hmax, h + dh)) for h, dh in zip(row, drow)]
           for row, drow in zip(hidden, delta)]
    if selected and threshold:
        for j in range(k):
            for i in range(f):
                if draw(seed, step, 0, j * f + i) < threshold:
                    h = new[j][i]
                    new[j][i] = max(-hmax, min(hmax, h + 2 * binary(h)))
    return new, correct


# ---------------------------------------------------------------------------------------------

CASES = [
    # (D, K_s, gamma, T, hidden bits, classes, nu)
    (5, 3, 3, 1, 4, 3, 0.25),          # T = 1: no backward through time
    (70, 9, 3, 4, 4, 3, 0.125),        # D > 64, not a multiple of 64
    (40, 33, 11, 3, 5, 4, 0.125),      # D + K_s > 64, odd width, gamma < K_s
    (1, 66, 6, 5, 8, 2, 0.0625),       # K_s > 64: two words of state
    (130, 7, 7, 2, 3, 5, 0.25),        # 3-bit hidden weights saturate
    (63, 65, 13, 6, 6, 3, 0.125),      # D + K_s = 128 exactly, K_s odd
    (9, 4, 2, 3, 4, 3, 0.0),           # nu = 0, D + K_s odd: every gate closed
]


def _net(d, k, gamma, bits, classes, seed, **kw):
    kw.setdefault("robustness", 0.5)
    cfg = RunConfig(model="rnn", rule="bep", hidden=(k,), gamma=(gamma,), input_dim=d,
                    n_classes=classes, hidden_bits=bits, seed=seed, **kw)
    return cfg, BinaryRNN(cfg)


@pytest.mark.parametrize("empty_gate", ["plus", "skip"])
@pytest.mark.parametrize("case", CASES)
def test_bep_tt_step_matches_spec(case, empty_gate):
    d, k, gamma, steps, bits, classes, nu = case
    seed = d + 3 * k
    cfg, net = _net(d, k, gamma, bits, classes, seed, nu=nu, empty_gate=empty_gate)
    gen = np.random.default_rng(seed + 1)
    hidden_ref = net.hidden.tolist()
    classifier = net.classifier.tolist()
    n_selected = n_reinforced = 0
    for step in range(3):
        x = gen.choice([-1, 1], size=(6, steps, d)).astype(np.int8)
        y = gen.integers(0, classes, size=6)
        net.threshold = int(gen.integers(1000, 30000))
        before = net.hidden.copy()
        correct, tr = net.train_batch(net.prepare(x), y, step, trace=True)
        n_selected += int(tr["masks"].sum())
        expected = np.clip(before + tr["delta"], -net.hmax, net.hmax)
        n_reinforced += int((net.hidden != expected).sum())
        hidden_ref, correct_ref = reference_bep_tt_step(
            hidden_ref, classifier, x.tolist(), y.tolist(), gamma=gamma, r=cfg.robustness,
            nu=nu, hidden_bits=bits, seed=cfg.seed, step=step, threshold=net.threshold,
            empty_gate=empty_gate)
        assert correct == correct_ref
        np.testing.assert_array_equal(net.hidden, np.array(hidden_ref), err_msg=f"step {step}")
    assert n_selected > 0, "the case must exercise updates"
    assert n_reinforced > 0, "the case must exercise reinforcement"


@pytest.mark.parametrize("truncation", [1, 2, 5])
def test_truncated_bep_tt_matches_spec(truncation):
    d, k, gamma, steps, bits, classes = 20, 12, 4, 4, 5, 3
    cfg, _ = _net(d, k, gamma, bits, classes, seed=9, nu=0.25)
    net = BinaryRNN(cfg, truncation=truncation)
    gen = np.random.default_rng(2)
    hidden_ref, classifier = net.hidden.tolist(), net.classifier.tolist()
    for step in range(3):
        x = gen.choice([-1, 1], size=(6, steps, d)).astype(np.int8)
        y = gen.integers(0, classes, size=6)
        net.threshold = 5000
        _, tr = net.train_batch(net.prepare(x), y, step, trace=True)
        assert not tr["masks"][:, :max(0, steps - truncation)].any()
        hidden_ref, _ = reference_bep_tt_step(
            hidden_ref, classifier, x.tolist(), y.tolist(), gamma=gamma, r=cfg.robustness,
            nu=cfg.nu, hidden_bits=bits, seed=cfg.seed, step=step, threshold=5000,
            empty_gate="plus", truncation=truncation)
        np.testing.assert_array_equal(net.hidden, np.array(hidden_ref))
    with pytest.raises(ConfigError, match="truncation"):
        BinaryRNN(cfg, truncation=0)


def test_trace_is_consistent_with_the_forward_pass():
    cfg, net = _net(20, 12, 4, 8, 3, seed=5, nu=0.25)
    gen = np.random.default_rng(0)
    x = gen.choice([-1, 1], size=(5, 4, 20)).astype(np.int8)
    w = np.where(net.hidden > 0, 1, -1)
    _, tr = net.train_batch(net.prepare(x), gen.integers(0, 3, 5), 0, trace=True)
    s = np.ones((5, 12), dtype=np.int64)
    for t in range(4):
        z = np.concatenate([x[:, t], s], axis=1) @ w.T
        np.testing.assert_array_equal(tr["z"][:, t], z)
        np.testing.assert_array_equal(tr["s"][:, t], s)
        s = np.where(z >= 0, 1, -1)
    np.testing.assert_array_equal(tr["s"][:, 4], s)
    np.testing.assert_array_equal(tr["scores"], s @ net.classifier.T.astype(np.int64))
    assert tr["deltas"].shape == (4, 12, 32)
    np.testing.assert_array_equal(tr["delta"], tr["deltas"].sum(axis=0))
    assert not tr["masks"][~tr["active"]].any()


@pytest.mark.parametrize("empty_gate", ["plus", "skip"])
def test_empty_gates(empty_gate):
    # nu = 0 opens a gate only where z == 0; with D + K_s odd, z is odd, so every gate closes.
    cfg, net = _net(9, 4, 2, 8, 3, seed=2, nu=0.0, empty_gate=empty_gate, robustness=10.0)
    gen = np.random.default_rng(1)
    x = gen.choice([-1, 1], size=(8, 5, 9)).astype(np.int8)
    _, tr = net.train_batch(net.prepare(x), gen.integers(0, 3, 8), 0, trace=True)
    assert tr["triggered"].all()
    assert not tr["gates"].any()
    assert tr["active"][:, -1].all()
    if empty_gate == "plus":
        assert (tr["desired"][:, :-1] == 1).all()
        assert tr["active"].all()
        assert tr["masks"][:, :-1].any(), "earlier steps learn toward all +1"
    else:
        assert not tr["active"][:, :-1].any()
        assert not tr["masks"][:, :-1].any()
        assert tr["masks"][:, -1].any()


def test_same_seed_same_bits_and_different_seed_differs():
    def run(seed):
        _, net = _net(30, 10, 5, 8, 4, seed=seed, nu=0.2)
        net.begin_epoch(0, 0.3)
        gen = np.random.default_rng(0)
        for step in range(5):
            net.train_batch(net.prepare(gen.choice([-1, 1], size=(8, 3, 30))),
                            gen.integers(0, 4, 8), step)
        return net.hidden
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_hidden_weights_stay_odd_and_in_range():
    _, net = _net(40, 12, 4, 4, 3, seed=3, nu=0.25)
    net.threshold = 20000
    gen = np.random.default_rng(4)
    for step in range(30):
        x = gen.choice([-1, 1], size=(10, 3, 40))
        net.train_batch(net.prepare(x), gen.integers(0, 3, 10), step)
        assert (net.hidden % 2 != 0).all()
        assert np.abs(net.hidden).max() <= 7
    assert (np.abs(net.hidden) == 7).any(), "saturation should be reached"
    np.testing.assert_array_equal(net.w_x, pack_bits01(net.hidden[:, :40] > 0))
    np.testing.assert_array_equal(net.wt_s, pack_bits01((net.hidden[:, 40:] > 0).T))


def test_reinforcement_threshold_follows_accuracy():
    _, net = _net(30, 10, 5, 8, 3, seed=1)
    net.begin_epoch(0, 0.0)
    t0 = net.threshold
    net.begin_epoch(1, 0.75)
    assert 0 < net.threshold < t0
    # p = p_r·sqrt(1 − acc)·sqrt(2/(π·(D + K_s))) with D + K_s = 40
    assert t0 == round(0.5 * math.sqrt(2 / (math.pi * 40)) * 65536)


def test_make_rnn_learner_and_bad_inputs():
    base = dict(model="rnn", hidden=(8,), input_dim=4, n_classes=2)
    assert isinstance(make_rnn_learner(RunConfig(rule="bep", **base)), BinaryRNN)
    assert isinstance(make_rnn_learner(RunConfig(rule="qat", **base)), QATRNN)
    with pytest.raises(ConfigError, match="'bep' .* and 'qat'"):
        make_rnn_learner(RunConfig(rule="local", **base))
    net = make_rnn_learner(RunConfig(rule="bep", **base))
    with pytest.raises(DataError, match="sequence data"):
        net.prepare(np.ones((3, 4), dtype=np.int8))
    with pytest.raises(DataError, match="5 bits per step"):
        net.prepare(np.ones((3, 2, 5), dtype=np.int8))
    with pytest.raises(ConfigError, match="one recurrent layer"):
        make_rnn_learner(RunConfig(rule="bep", **dict(base, hidden=(8, 8))))


# ---------------------------------------------------------------------------------------------
# Training on a tiny synthetic sequence task


def sequence_data(seed=0, n=360, steps=6, d=16, classes=3, flip=0.2):
    """Each class is a random ±1 prototype sequence; samples flip each bit with prob ``flip``."""
    gen = np.random.default_rng(seed)
    protos = gen.choice([-1, 1], size=(classes, steps, d))
    y = gen.integers(0, classes, n)
    x = protos[y] * np.where(gen.random((n, steps, d)) < flip, -1, 1)
    cut = n * 5 // 6
    return Dataset("seq", x[:cut], y[:cut], x[cut:], y[cut:], classes)


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("rule", ["bep", "qat"])
def test_rnn_learns_above_chance(rule):
    cfg = RunConfig(model="rnn", rule=rule, hidden=(32,), epochs=6, batch=20, seed=1,
                    lr=0.01)
    r = train(cfg, sequence_data())
    assert r["test_accuracy"] > 70.0, r["epochs"]


@pytest.mark.parametrize("rule", ["bep", "qat"])
def test_rnn_resume_is_bit_identical(tmp_path, rule):
    data = sequence_data(1, n=180)
    cfg = RunConfig(model="rnn", rule=rule, hidden=(21,), gamma=(7,), epochs=3, batch=25,
                    seed=7, lr=0.01)
    full = train(cfg, data)
    ck = tmp_path / "run.ckpt"
    train(cfg.replace(epochs=2), data, checkpoint=str(ck))
    assert load_checkpoint(str(ck))[0]["epoch"] == 2
    resumed = train(cfg, data, checkpoint=str(ck), resume=True)
    a, b = full["learner"], resumed["learner"]
    if rule == "bep":
        np.testing.assert_array_equal(a.hidden, b.hidden)
    else:
        np.testing.assert_array_equal(a.latent, b.latent)
        np.testing.assert_array_equal(a.optimizer.m[0], b.optimizer.m[0])
        assert a.optimizer.t == b.optimizer.t
    assert _strip(full["epochs"]) == _strip(resumed["epochs"])


# ---------------------------------------------------------------------------------------------
# QAT


def test_qat_learns_a_separable_toy_problem():
    # The class is the sign of feature 0, constant over the sequence.
    gen = np.random.default_rng(3)
    n, steps, d = 200, 4, 6
    y = gen.integers(0, 2, n)
    x = gen.choice([-1, 1], size=(n, steps, d)).astype(np.int8)
    x[:, :, 0] = np.where(y == 1, 1, -1)[:, None]
    cfg = RunConfig(model="rnn", rule="qat", hidden=(16,), input_dim=d, n_classes=2, seed=0,
                    lr=0.02)
    net = QATRNN(cfg)
    xp = net.prepare(x)
    for step in range(60):
        idx = gen.integers(0, n, 32)
        net.train_batch(xp[idx], y[idx], step)
    assert (net.predict(xp) == y).mean() > 0.95
    assert np.abs(net.latent).max() <= 1.0


@pytest.mark.parametrize("readout", ["fixed", "float"])
def test_qat_gradient_matches_finite_differences_of_the_surrogate(readout):
    """The BPTT/STE gradient is the exact gradient of the surrogate network in which every
    sign activation is replaced by hardtanh(u/√F) and the binary weights held fixed; check it
    against finite differences of that surrogate in float64."""
    d, k, steps, n = 3, 5, 3, 4
    cfg = RunConfig(model="rnn", rule="qat", hidden=(k,), input_dim=d, n_classes=3, seed=2)
    net = QATRNN(cfg, readout=readout)
    gen = np.random.default_rng(0)
    x = gen.choice([-1, 1], size=(n, steps, d)).astype(np.int8)
    y = gen.integers(0, 3, n)
    wb = net.binary_weights().astype(np.float64)
    f = d + k
    if readout == "float":       # train_batch updates them in place: keep the start values
        v, b = net.readout_weight.astype(np.float64), net.readout_bias.astype(np.float64)

    def surrogate_loss(w):
        # Forward of the binary net gives the operating point; the surrogate linearises each
        # sign around it: s = sign(u) + (hardtanh'(u)·(u' − u)) / √F for the perturbed u'.
        s = np.ones((n, k))
        s_ref = np.ones((n, k))
        for t in range(steps):
            u_ref = np.concatenate([x[:, t], s_ref], axis=1) @ wb.T
            u = np.concatenate([x[:, t], s], axis=1) @ w.T
            window = np.abs(u_ref) <= math.sqrt(f)
            s_new = np.where(u_ref >= 0, 1.0, -1.0) + window * (u - u_ref) / math.sqrt(f)
            s_ref = np.where(u_ref >= 0, 1.0, -1.0)
            s = s_new
        if readout == "fixed":
            logits = s @ net.classifier.T / net.temperature
        else:
            logits = s @ v.T + b
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -logp[np.arange(n), y].mean()

    _, tr = net.train_batch(net.prepare(x), y, 0, trace=True)
    grad = tr["grads"][0].astype(np.float64)
    eps = 1e-6
    num = np.zeros_like(wb)
    for idx in np.ndindex(*wb.shape):
        wp, wm = wb.copy(), wb.copy()
        wp[idx] += eps
        wm[idx] -= eps
        num[idx] = (surrogate_loss(wp) - surrogate_loss(wm)) / (2 * eps)
    assert np.abs(num).max() > 1e-4
    np.testing.assert_allclose(grad, num, rtol=1e-3, atol=1e-6)


def test_qat_predictions_are_those_of_the_binary_network():
    d, k = 7, 9
    cfg = RunConfig(model="rnn", rule="qat", hidden=(k,), input_dim=d, n_classes=3, seed=4)
    qat = QATRNN(cfg)
    bep = BinaryRNN(cfg.replace(rule="bep"))
    np.testing.assert_array_equal(qat.classifier, bep.classifier)
    bep.hidden = np.where(qat.latent >= 0, 1, -1).astype(np.int64)
    bep._repack()
    x = np.random.default_rng(0).choice([-1, 1], size=(50, 5, d)).astype(np.int8)
    np.testing.assert_array_equal(qat.predict(qat.prepare(x)), bep.predict(bep.prepare(x)))


def test_summed_update_equals_the_record_by_record_sum():
    from bitprop.model import ops
    from bitprop.model.rnn import summed_update
    gen = np.random.default_rng(5)
    for r, k, f in [(1, 3, 5), (40, 7, 70), (3000, 12, 130)]:
        mask = gen.random((r, k)) < 0.3
        desired = gen.choice([-1, 1], size=(r, k)).astype(np.int8)
        a_prev = gen.choice([-1, 1], size=(r, f)).astype(np.int8)
        rows, sums = summed_update(mask, desired, a_prev)
        rows_ref, sums_ref = ops.update_rows(mask, desired, a_prev)
        np.testing.assert_array_equal(rows, rows_ref)
        np.testing.assert_array_equal(sums, sums_ref)
    rows, sums = summed_update(np.zeros((4, 3), bool), np.ones((4, 3)), np.ones((4, 5)))
    assert rows.size == 0 and sums.shape == (0, 5)
