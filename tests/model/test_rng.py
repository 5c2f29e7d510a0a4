"""The counter-based generator: definition, independence of counters, statistical quality."""

import numpy as np
import pytest

from bitprop.model import rng


def test_array_and_scalar_mix64_agree():
    xs = np.array([0, 1, 2, 12345, 2**63, 2**64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(rng.mix64(xs),
                                  np.array([rng.mix64(int(x)) for x in xs], dtype=np.uint64))


def test_mix64_is_a_bijection_on_a_sample():
    xs = np.arange(1 << 16, dtype=np.uint64) * np.uint64(rng.WEYL)
    assert np.unique(rng.mix64(xs)).size == xs.size


def test_draws_follow_the_documented_layout():
    key = rng.step_key(7, 3, 1)
    d = rng.draws(key, 10)
    for i in range(10):
        x = rng.mix64((key + (i >> 2) * rng.WEYL) & rng.MASK64)
        assert d[i] == (x >> (16 * (i & 3))) & 0xFFFF
    # A window starting inside a word sees the same values.
    np.testing.assert_array_equal(rng.draws(key, 5, start=3), d[3:8])


def test_keys_differ_by_seed_step_and_layer():
    keys = {rng.step_key(s, t, l) for s in range(3) for t in range(3) for l in range(3)}
    assert len(keys) == 27


def test_threshold_rounding_and_range():
    assert rng.threshold(0.0) == 0
    assert rng.threshold(1.0) == 65535
    assert rng.threshold(0.5) == 32768
    with pytest.raises(ValueError):
        rng.threshold(-0.1)
    assert not rng.events(1, 2, 3, 100, 0).any()


def test_statistical_quality():
    q = rng.quality_report(n=1 << 20)
    # chi2/dof over 65,535 dof has std ~0.0055: 1 +- 0.03 is > 5 sigma.
    assert abs(q["chi2_16bit"] - 1.0) < 0.03
    assert q["max_bit_bias"] < 0.003          # std of one bit's mean ~0.0005
    assert abs(q["lag1_corr"]) < 0.005        # std ~0.001
    assert q["max_lane_corr"] < 0.01
    assert abs(q["avalanche"] - 0.5) < 0.005
    assert q["worst_avalanche_bit"] < 0.02
    assert q["event_rate_err"] < 0.05
