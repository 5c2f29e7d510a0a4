"""Packed algebra against a dense ±1 reference, on random shapes and edge cases."""

import numpy as np
import pytest

from bitprop.model import bits
from bitprop.model.errors import DataError

SIZES = [1, 2, 7, 63, 64, 65, 127, 128, 129, 200, 784]


@pytest.mark.parametrize("k", SIZES)
def test_pack_roundtrip_and_padding(k):
    rng = np.random.default_rng(k)
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(5, k))
    p = bits.pack(x)
    assert p.dtype == np.uint64 and p.shape == (5, bits.n_words(k))
    np.testing.assert_array_equal(bits.unpack(p, k), x)
    if k % 64:
        pad = p[:, -1] >> np.uint64(k % 64)
        assert not pad.any(), "padding bits must be 0"


def test_pack_bit_order_is_little_endian():
    x = -np.ones(130, dtype=np.int8)
    x[[0, 3, 64, 129]] = 1
    p = bits.pack(x)
    assert p[0] == np.uint64(0b1001)
    assert p[1] == np.uint64(1)
    assert p[2] == np.uint64(0b10)


@pytest.mark.parametrize("k", SIZES)
def test_xnor_dot_matches_dense(k):
    rng = np.random.default_rng(100 + k)
    a = rng.choice([-1, 1], size=(9, k))
    w = rng.choice([-1, 1], size=(13, k))
    z = bits.xnor_dot(bits.pack(a), bits.pack(w), k)
    np.testing.assert_array_equal(z, a @ w.T)
    np.testing.assert_array_equal(bits.xnor_dot(bits.pack(a[0]), bits.pack(w), k), w @ a[0])


@pytest.mark.parametrize("k_out", [1, 5, 64, 65, 130])
@pytest.mark.parametrize("k_in", [1, 33, 64, 100])
def test_project_back_matches_dense(k_out, k_in):
    rng = np.random.default_rng(k_out * 1000 + k_in)
    w = rng.choice([-1, 1], size=(k_out, k_in))
    g = rng.random((6, k_out)) < 0.4
    g[0] = False                      # all-zero gate: projection 0
    g[1] = True                       # all gates open
    d = rng.choice([-1, 1], size=(6, k_out))
    ref = (g * d) @ w
    got = bits.project_back(bits.pack(w.T), bits.pack_bits01(g), bits.pack(d), k_out)
    np.testing.assert_array_equal(got, ref)
    assert not got[0].any()


def test_to_pm1_accepts_01_and_refuses_other_values():
    np.testing.assert_array_equal(bits.to_pm1([0, 1, 1]), [-1, 1, 1])
    np.testing.assert_array_equal(bits.to_pm1([True, False]), [1, -1])
    with pytest.raises(DataError, match="binary"):
        bits.to_pm1([0, 2, 1])
    with pytest.raises(DataError, match="binary"):
        bits.to_pm1([0.5, 1.0])
    with pytest.raises(DataError, match="not a mix"):
        bits.to_pm1([-1, 0, 1])
    with pytest.raises(DataError, match="binary"):
        bits.to_pm1([np.nan, 1.0])


def test_width_mismatch_is_refused():
    with pytest.raises(ValueError, match="widths"):
        bits.xnor_dot(np.zeros((1, 2), np.uint64), np.zeros((1, 3), np.uint64), 100)
