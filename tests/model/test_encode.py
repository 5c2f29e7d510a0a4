"""Encoders: exact thresholds on hand-checked inputs, train-only fitting, sequences, refusals."""

import json

import numpy as np
import pytest

from bitprop.model.encode import (ENCODINGS, MedianEncoder, ThermometerEncoder, make_encoder)
from bitprop.model.errors import ConfigError, DataError


def pm(*bits):
    """Return an int8 ±1 row from 0/1 digits (1 = +1)."""
    return np.array([1 if b else -1 for b in bits], dtype=np.int8)


def reference_thermometer(x, thresholds):
    """Slow, obviously correct reference: bit k of feature f = +1 iff x[f] >= t[f, k]."""
    n, f = x.shape
    levels = thresholds.shape[1]
    out = np.empty((n, f * levels), dtype=np.int8)
    for i in range(n):
        for j in range(f):
            for k in range(levels):
                out[i, j * levels + k] = 1 if float(x[i, j]) >= thresholds[j, k] else -1
    return out


# ---------------------------------------------------------------------------------- median

def test_global_median_hand_checked():
    train = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])   # median of 1..6 = 3.5
    enc = MedianEncoder().fit(train)
    assert enc.describe()["median"] == 3.5
    got = enc.transform(np.array([[3.5, 3.6], [-10.0, 100.0]]))
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, [pm(0, 1), pm(0, 1)])


def test_global_median_strictly_greater_and_odd_count():
    enc = MedianEncoder().fit(np.array([[0], [1], [2], [7], [9]], dtype=np.uint8))   # median 2
    np.testing.assert_array_equal(enc.transform(np.array([[1], [2], [3]], dtype=np.uint8)),
                                  [[-1], [-1], [1]])


def test_per_feature_median_hand_checked():
    train = np.array([[0, 10], [1, 20], [2, 30]])
    enc = MedianEncoder(per_feature=True).fit(train)
    np.testing.assert_array_equal(enc.medians, [1, 20])
    np.testing.assert_array_equal(enc.transform(np.array([[1, 20], [2, 21], [0, 25]])),
                                  [pm(0, 0), pm(1, 1), pm(0, 1)])


def test_median_fitted_on_train_only():
    rng = np.random.default_rng(0)
    train = rng.normal(0.0, 1.0, (200, 3))
    test = rng.normal(5.0, 1.0, (50, 3))          # a shifted range: almost all above
    enc = MedianEncoder().fit(train)
    ref = float(np.median(train))
    np.testing.assert_array_equal(enc.transform(test), np.where(test > ref, 1, -1))
    assert enc.describe()["median"] == ref != float(np.median(test))
    per = MedianEncoder(per_feature=True).fit(train)
    np.testing.assert_array_equal(per.transform(test),
                                  np.where(test > np.median(train, axis=0), 1, -1))


# ----------------------------------------------------------------------------- thermometer

def test_thermometer_exact_thresholds_and_layout():
    # feature 0: min 0, max 4, 3 levels -> 1, 2, 3; feature 1: min 10, max 20 -> 12.5, 15, 17.5
    train = np.array([[0.0, 10.0], [4.0, 20.0], [2.0, 13.0]])
    enc = ThermometerEncoder(levels=3).fit(train)
    np.testing.assert_array_equal(enc.thresholds, [[1, 2, 3], [12.5, 15, 17.5]])
    x = np.array([[0.0, 12.5], [1.0, 12.4], [2.0, 15.0], [3.0, 17.5], [4.0, 20.0],
                  [-1.0, 9.0], [9.0, 99.0], [2.999, 17.49]])
    want = np.array([
        pm(0, 0, 0, 1, 0, 0), pm(1, 0, 0, 0, 0, 0), pm(1, 1, 0, 1, 1, 0),
        pm(1, 1, 1, 1, 1, 1), pm(1, 1, 1, 1, 1, 1), pm(0, 0, 0, 0, 0, 0),
        pm(1, 1, 1, 1, 1, 1), pm(1, 1, 0, 1, 1, 0)])
    got = enc.transform(x)
    assert got.shape == (8, 6) and got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    assert enc.output_width == 6


def test_thermometer_formula_many_levels_against_reference():
    rng = np.random.default_rng(1)
    train = rng.uniform(-3, 7, (40, 4))
    test = rng.uniform(-5, 9, (30, 4))               # wider than the training range
    enc = ThermometerEncoder(levels=32).fit(train)
    lo, hi = train.min(axis=0), train.max(axis=0)
    k = np.arange(32)
    t = lo[:, None] + (k[None, :] + 1) * (hi - lo)[:, None] / 33
    np.testing.assert_allclose(enc.thresholds, t, rtol=0, atol=1e-12)
    assert (enc.thresholds > lo[:, None]).all() and (enc.thresholds < hi[:, None]).all()
    np.testing.assert_array_equal(enc.transform(test), reference_thermometer(test, t))
    # fitted on train only: refitting on test would give other thresholds and other bits
    other = ThermometerEncoder(levels=32).fit(test)
    assert not np.array_equal(other.thresholds, enc.thresholds)


def test_thermometer_bits_are_monotone():
    rng = np.random.default_rng(2)
    enc = ThermometerEncoder(levels=7).fit(rng.normal(size=(100, 5)))
    bits = enc.transform(rng.normal(size=(60, 5))).reshape(60, 5, 7)
    assert (np.diff(bits.astype(int), axis=-1) <= 0).all()     # +1s first, then -1s


def test_quantile_thermometer_hand_checked():
    train = np.arange(9, dtype=np.float64)[:, None]       # 0..8: quartiles 2, 4, 6
    enc = ThermometerEncoder(levels=3, quantile=True).fit(train)
    np.testing.assert_array_equal(enc.thresholds, [[2.0, 4.0, 6.0]])
    got = enc.transform(np.array([[1.9], [2.0], [5.0], [6.0], [100.0]]))
    np.testing.assert_array_equal(got, [pm(0, 0, 0), pm(1, 0, 0), pm(1, 1, 0), pm(1, 1, 1),
                                        pm(1, 1, 1)])
    assert enc.describe()["encoding"] == "thermometer-quantile"


def test_quantile_thermometer_matches_numpy_quantiles():
    rng = np.random.default_rng(3)
    train = rng.exponential(size=(500, 3))
    enc = ThermometerEncoder(levels=5, quantile=True).fit(train)
    want = np.quantile(train, np.arange(1, 6) / 6, axis=0).T
    np.testing.assert_allclose(enc.thresholds, want)
    # about 1/6 of the training values fall below the first threshold
    bits = enc.transform(train).reshape(500, 3, 5)
    frac = (bits == 1).mean(axis=(0, 1))
    np.testing.assert_allclose(frac, 1 - np.arange(1, 6) / 6, atol=0.01)


@pytest.mark.parametrize("name", ENCODINGS)
def test_constant_feature_does_not_crash(name):
    train = np.array([[5.0, 0.0], [5.0, 1.0], [5.0, 2.0]])
    enc = make_encoder(name).fit(train)
    x = np.array([[5.0, 1.0], [4.0, 1.0], [6.0, 1.0]])
    got = enc.transform(x)
    assert set(np.unique(got)) <= {-1, 1}
    width = enc.output_width // 2
    const = got[:, :width]
    assert (const == const[:, :1]).all()                    # all bits of the feature agree
    if name.startswith("thermometer"):
        np.testing.assert_array_equal(const[:, 0], [1, -1, 1])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("levels", [1, 3, 8, 32, 33])
def test_byte_inputs_take_the_table_path_with_identical_results(dtype, levels):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(levels)
    train = rng.integers(info.min, info.max + 1, (300, 6)).astype(dtype)
    train[:, 5] = 7                                          # a constant feature too
    test = rng.integers(info.min, info.max + 1, (100, 6)).astype(dtype)
    for quantile in (False, True):
        enc = ThermometerEncoder(levels=levels, quantile=quantile).fit(train)
        got = enc.transform(test)
        np.testing.assert_array_equal(got, enc.transform(test.astype(np.float64)))
        np.testing.assert_array_equal(got, reference_thermometer(test, enc.thresholds))


# ------------------------------------------------------------------------------- sequences

@pytest.mark.parametrize("name", ENCODINGS)
def test_sequences_are_encoded_per_step(name):
    rng = np.random.default_rng(4)
    train = rng.normal(size=(10, 7, 3)) * np.array([1.0, 10.0, 100.0])
    test = rng.normal(size=(4, 5, 3)) * np.array([1.0, 10.0, 100.0])   # another length
    levels = None if name.startswith("median") else 4
    seq = make_encoder(name, levels).fit(train)
    flat = make_encoder(name, levels).fit(train.reshape(-1, 3))
    got = seq.transform(test)
    width = 3 if levels is None else 12
    assert got.shape == (4, 5, width) and got.dtype == np.int8
    np.testing.assert_array_equal(got.reshape(-1, width), flat.transform(test.reshape(-1, 3)))
    assert seq.fitted_rows == 70
    if name == "median-feature":                              # one median per channel
        np.testing.assert_allclose(seq.medians, np.median(train.reshape(-1, 3), axis=0))


# -------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_training_values_are_refused_with_position(bad):
    x = np.zeros((4, 5))
    x[2, 3] = bad
    x[3, 1] = bad
    with pytest.raises(DataError, match=r"train.*sample 2, feature 3"):
        make_encoder("thermometer").fit(x)


def test_non_finite_test_values_name_split_and_step():
    enc = make_encoder("median").fit(np.zeros((3, 4, 2)))
    x = np.zeros((2, 4, 2), dtype=np.float32)
    x[1, 2, 0] = np.nan
    with pytest.raises(DataError, match=r"held-out.*sample 1, step 2, feature 0"):
        enc.transform(x, split="held-out")


def test_misuse_is_refused():
    enc = make_encoder("thermometer", 4)
    with pytest.raises(ConfigError, match="before fit"):
        enc.transform(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="not fitted"):
        enc.output_width
    enc.fit(np.arange(6.0).reshape(2, 3))
    with pytest.raises(DataError, match="4 features per sample.*fitted on 3"):
        enc.transform(np.zeros((2, 4)))
    with pytest.raises(DataError, match="2-D"):
        enc.transform(np.zeros(3))
    with pytest.raises(DataError, match="2-D"):
        make_encoder("median").fit(np.zeros((2, 2, 2, 2)))
    with pytest.raises(DataError, match="empty"):
        make_encoder("median").fit(np.zeros((0, 3)))
    with pytest.raises(DataError, match="numeric"):
        make_encoder("median").fit(np.array([["a", "b"]]))
    with pytest.raises(DataError, match="numeric"):
        make_encoder("median").fit(np.ones((2, 2), dtype=complex))


def test_factory():
    assert isinstance(make_encoder("median"), MedianEncoder)
    assert make_encoder("median-feature").per_feature
    assert make_encoder("thermometer").levels == 32
    assert make_encoder("thermometer-quantile", 5).quantile
    with pytest.raises(ConfigError, match="unknown encoding 'bogus'.*thermometer-quantile"):
        make_encoder("bogus")
    with pytest.raises(ConfigError, match="thermometer encodings only"):
        make_encoder("median", 8)
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ConfigError, match="levels must be an integer >= 1"):
            make_encoder("thermometer", bad)
    with pytest.raises(ConfigError, match="per_feature"):
        MedianEncoder(per_feature="yes")


@pytest.mark.parametrize("name", ENCODINGS)
def test_describe_is_json_ready(name):
    enc = make_encoder(name)
    d = enc.describe()
    assert d["encoding"] == name and d["fitted"] is False and "n_features" not in d
    enc.fit(np.random.default_rng(5).normal(size=(20, 3)))
    d = json.loads(json.dumps(enc.describe()))
    assert d["encoding"] == name and d["n_features"] == 3 and d["fitted_rows"] == 20
    assert d["output_width"] == (3 if name.startswith("median") else 96)


def test_bool_input_is_accepted():
    enc = make_encoder("median").fit(np.array([[True, False], [False, False]]))   # median 0
    np.testing.assert_array_equal(enc.transform(np.array([[True, False]])), [pm(1, 0)])
