"""Randomised cases for GroupWinnerSelect, shared by the Amaranth and cocotb tests.

Each case is (z, desired, gamma, active) for ``ops.select_winners``; the stream words and
the decoding of the block's per-group words live here too, so both simulators check the
same way. The reference is always ``bitprop.model.ops.select_winners``.
"""

import numpy as np

from bitprop.model import ops

__all__ = ["make_case", "case_words", "check_groups", "SHAPES"]

#: (K, gamma, flavour): odd sizes, gamma not a power of two, gamma = 1 and gamma = K.
SHAPES = [
    (35, 35, "random"), (45, 9, "ties"), (21, 7, "random"), (21, 3, "ties"),
    (12, 1, "random"), (15, 5, "all_right"), (30, 10, "sparse"), (33, 11, "extreme"),
    (7, 7, "inactive"), (48, 16, "ties"),
]


def make_case(rng, k, gamma, flavour, z_width, n_samples=3):
    """Return ``(z, desired, active)`` for one case.

    Flavours: ``random`` (wide z), ``ties`` (|z| in 0..3, many equal), ``all_right`` (no
    wrong unit), ``sparse`` (few wrong units, so some groups are empty), ``extreme`` (z at
    the ends of its range), ``inactive`` (some samples did not trigger).
    """
    zmax = (1 << (z_width - 1)) - 1
    if flavour == "ties":
        z = rng.integers(-3, 4, size=(n_samples, k))
    elif flavour == "extreme":
        z = rng.choice([-zmax - 1, -zmax, -1, 0, 1, zmax - 1, zmax], size=(n_samples, k))
    else:
        z = rng.integers(-zmax - 1, zmax + 1, size=(n_samples, k))
    desired = rng.choice([-1, 1], size=(n_samples, k))
    if flavour == "all_right":
        desired = ops.sign(z).astype(np.int64)
    elif flavour == "sparse":
        right = ops.sign(z).astype(np.int64)
        flip = rng.random((n_samples, k)) < 0.05
        desired = np.where(flip, -right, right)
    active = np.ones(n_samples, dtype=bool)
    if flavour == "inactive":
        active = rng.random(n_samples) < 0.5
        active[0] = False
    return z, desired, active


def case_words(z, desired, active):
    """Return the stream words (dicts) of a case: samples in order, units in order."""
    n, k = z.shape
    return [{"z": int(z[s, j]), "desired": int(desired[s, j] > 0), "active": int(active[s]),
             "first": int(j == 0)} for s in range(n) for j in range(k)]


def check_groups(words, z, desired, gamma, active):
    """Compare the block's group words (objects with found/index/desired) to the model."""
    n, k = z.shape
    groups = k // gamma
    assert len(words) == n * groups, f"{len(words)} group words, expected {n * groups}"
    mask = np.zeros((n, k), dtype=bool)
    for t, w in enumerate(words):
        s, g = divmod(t, groups)
        if w.found:
            assert g * gamma <= w.index < (g + 1) * gamma, (s, g, w.index)
            assert w.desired == int(desired[s, w.index] > 0)
            mask[s, w.index] = True
    expected = ops.select_winners(z, desired, gamma, active)
    bad = np.argwhere(mask != expected)
    assert bad.size == 0, f"winner masks differ at (sample, unit) {bad[:5].tolist()}"
