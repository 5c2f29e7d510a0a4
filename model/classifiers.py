"""Fixed binary classifiers: random ±1 rows, or a binary equiangular frame (BEP appendix)."""

import numpy as np

__all__ = ["random_classifier", "equiangular_frame", "frame_objective"]


def random_classifier(n_classes, k, generator):
    """Return a random ±1 classifier of shape (C, K) as ``int8``."""
    return np.where(generator.random((n_classes, k)) < 0.5, -1, 1).astype(np.int8)


def frame_objective(rows, alpha):
    """Return ``J = Σ_{i<j} ⟨ρ_i, ρ_j⟩ + α·Var_{i<j} ⟨ρ_i, ρ_j⟩`` of a ±1 matrix."""
    rows = np.asarray(rows, dtype=np.int64)
    g = rows @ rows.T
    iu = np.triu_indices(rows.shape[0], 1)
    off = g[iu].astype(np.float64)
    if off.size == 0:
        return 0.0
    return float(off.sum() + alpha * off.var())


def equiangular_frame(n_classes, k, generator, *, alpha=5.0, flips=None):
    """Return a binary equiangular frame of shape (C, K) as ``int8``. [adopted]

    Start from random ±1 rows, then ``flips`` times flip a random bit of a random row and keep
    the flip only if it lowers ``J`` (see ``frame_objective``). The Gram matrix is updated
    incrementally, so each proposal costs O(C). ``flips`` defaults to ``20·C·K``.
    """
    rows = random_classifier(n_classes, k, generator).astype(np.int64)
    if n_classes < 2:
        return rows.astype(np.int8)
    flips = 20 * n_classes * k if flips is None else int(flips)
    gram = rows @ rows.T
    iu = np.triu_indices(n_classes, 1)
    m = len(iu[0])
    off = gram[iu].astype(np.float64)
    s1, s2 = off.sum(), (off ** 2).sum()
    cur = s1 + alpha * (s2 / m - (s1 / m) ** 2)
    pick_rows = generator.integers(0, n_classes, size=flips)
    pick_cols = generator.integers(0, k, size=flips)
    for i, c in zip(pick_rows.tolist(), pick_cols.tolist()):
        # Flipping rows[i, c] changes <ρ_i, ρ_j> by −2·ρ_i[c]·ρ_j[c] for every j ≠ i.
        change = -2 * rows[i, c] * rows[:, c]
        change[i] = 0
        old = gram[i]
        new = old + change
        d1 = change.sum()
        d2 = (new.astype(np.float64) ** 2 - old.astype(np.float64) ** 2).sum()
        n1, n2 = s1 + d1, s2 + d2
        val = n1 + alpha * (n2 / m - (n1 / m) ** 2)
        if val < cur:
            rows[i, c] = -rows[i, c]
            gram[i] = new
            gram[:, i] = new
            gram[i, i] = k
            s1, s2, cur = n1, n2, val
    return rows.astype(np.int8)
