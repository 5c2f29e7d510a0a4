"""The elementary operations of fully binary training, one function each.

Every hardware block implements exactly one of these functions and is tested against it.
All functions are batched over samples (axis 0) and follow ALGORITHMS.md section 1:
``sign(0) = +1``, lowest index wins ties, hidden weights are odd and saturate.
"""

import math

import numpy as np

from . import rng
from .bits import xnor_dot

__all__ = [
    "sign", "hidden_range", "binary_weights", "gate", "gate_threshold", "margin",
    "margin_threshold", "trigger", "predict", "select_winners", "winner_records",
    "update_rows", "update_delta", "apply_update", "reinforcement_probability", "reinforce",
    "init_hidden", "forward",
]


def sign(z):
    """Return ``sign(z)`` as ``int8`` ±1, with ``sign(0) = +1``."""
    return np.where(np.asarray(z) >= 0, 1, -1).astype(np.int8)


def hidden_range(hidden_bits):
    """Return ``h_max = 2^(b−1) − 1``: hidden weights live in ``[−h_max, h_max]``."""
    return (1 << (int(hidden_bits) - 1)) - 1


def binary_weights(hidden):
    """Return the binary weights ``W = sign(H)`` of a hidden-weight matrix as bool (True=+1)."""
    return np.asarray(hidden) > 0


def forward(a_packed, w_packed, k_in):
    """Return pre-activations ``z = W·a`` (int32, shape (N, K_out)) by XNOR-popcount."""
    return xnor_dot(a_packed, w_packed, k_in)


def gate_threshold(nu, k_in):
    """Return the integer gate threshold ``⌊ν·K⌋`` (K = the layer's input width)."""
    return int(math.floor(nu * k_in + 1e-9))


def gate(z, threshold):
    """Return the BEP gate ``|z| ≤ threshold`` as bool."""
    return np.abs(np.asarray(z)) <= threshold


def margin_threshold(r, k):
    """Return the integer trigger threshold ``⌊r·K⌋``."""
    return int(math.floor(r * k + 1e-9))


def margin(scores, labels):
    """Return the margin ``ŷ_y − max_{c≠y} ŷ_c`` of each sample (int32)."""
    scores = np.asarray(scores, dtype=np.int32)
    labels = np.asarray(labels)
    n = np.arange(scores.shape[0])
    own = scores[n, labels]
    others = scores.copy()
    others[n, labels] = np.iinfo(np.int32).min
    return own - others.max(axis=1)


def trigger(margins, threshold):
    """Return which samples trigger learning: ``margin < threshold``."""
    return np.asarray(margins) < threshold


def predict(scores):
    """Return ``argmax`` of the scores per sample, the lowest index winning ties."""
    return np.argmax(scores, axis=1)


def select_winners(z, desired, gamma, active=None):
    """Return the group-winner mask of a layer.

    A unit is wrong iff ``sign(z_j) ≠ a*_j``. Units are split into consecutive groups of
    ``gamma``; in each group the wrong unit with the smallest ``|z_j|`` is selected (lowest
    index on ties), none if the group has no wrong unit. Samples with ``active`` False select
    nothing.

    Parameters
    ----------
    z : int array (N, K)
    desired : ±1 array (N, K)
    gamma : int, divides K
    active : bool array (N,), optional

    Returns
    -------
    bool array (N, K)
    """
    z = np.asarray(z)
    n, k = z.shape
    if k % gamma:
        raise ValueError(f"group size {gamma} does not divide width {k}")
    wrong = (z >= 0) != (np.asarray(desired) > 0)
    if active is not None:
        wrong &= np.asarray(active, dtype=bool)[:, None]
    cost = np.where(wrong, np.abs(z), np.iinfo(z.dtype).max)
    groups = k // gamma
    pick = np.argmin(cost.reshape(n, groups, gamma), axis=2)
    has = wrong.reshape(n, groups, gamma).any(axis=2)
    mask = np.zeros((n, groups, gamma), dtype=bool)
    nn, gg = np.nonzero(has)
    mask[nn, gg, pick[nn, gg]] = True
    return mask.reshape(n, k)


def winner_records(mask, desired):
    """Return the per-sample update records ``(sample, unit, a*_unit)`` of a winner mask."""
    nn, jj = np.nonzero(mask)
    return nn, jj, np.asarray(desired)[nn, jj].astype(np.int8)


def update_rows(mask, desired, a_prev):
    """Return the batch-summed hidden-weight change of the selected rows only.

    Returns ``(rows, sums)``: the sorted distinct units selected by at least one sample, and
    for each ``sums[r] = Σ_n mask[n, j] · 2 · a*_{n,j} · a_prev[n, :]`` with ``j = rows[r]``
    (int32, shape (len(rows), K_in)). ``a_prev`` is the ±1 forward input of the layer,
    unpacked, shape (N, K_in). Only these rows are read-modify-written, as in hardware.
    """
    a_prev = np.asarray(a_prev)
    jj, nn = np.nonzero(np.asarray(mask).T)       # records sorted by unit, then by sample
    if nn.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, a_prev.shape[1]), dtype=np.int32)
    s = np.asarray(desired)[nn, jj].astype(np.int8)
    contrib = s[:, None] * a_prev[nn]                       # ±a_prev, one row per record
    new_run = np.r_[True, jj[1:] != jj[:-1]]
    run = np.cumsum(new_run) - 1                            # which distinct unit
    rank = np.arange(jj.size) - np.flatnonzero(new_run)[run]  # record's place in its run
    acc = np.int16 if nn.size < 32768 else np.int32         # |sum| <= records
    sums = np.zeros((run[-1] + 1, a_prev.shape[1]), dtype=acc)
    # Add the k-th record of every unit at once: within one k each unit appears once.
    for k in range(int(rank.max()) + 1):
        sel = np.flatnonzero(rank == k)
        sums[run[sel]] += contrib[sel]
    return jj[new_run].astype(np.int64), 2 * sums.astype(np.int32)


def update_delta(mask, desired, a_prev, k_out):
    """Return the batch-summed hidden-weight change ``ΔH`` (int64, shape (K_out, K_in)).

    ``ΔH[j, :] = Σ_n mask[n, j] · 2 · a*_{n,j} · a_prev[n, :]``: ``update_rows`` scattered
    into a dense matrix.
    """
    rows, sums = update_rows(mask, desired, a_prev)
    delta = np.zeros((k_out, np.asarray(a_prev).shape[1]), dtype=np.int64)
    delta[rows] = sums
    return delta


def apply_update(hidden, delta, hidden_bits, rows=None):
    """Return ``clamp(H + ΔH)`` into the odd range ``[−h_max, h_max]`` (saturating).

    With ``rows``, ``delta`` holds only those rows (as from ``update_rows``) and only they
    change; the result is a new array either way.
    """
    hmax = hidden_range(hidden_bits)
    out = np.array(hidden, dtype=np.int64)
    if rows is None:
        return np.clip(out + delta, -hmax, hmax, out=out)
    out[rows] = np.clip(out[rows] + delta, -hmax, hmax)
    return out


def reinforcement_probability(p_r, acc_prev, k_in):
    """Return ``p = p_r·sqrt(1 − acc_prev)·sqrt(2 / (π·K_in))`` (section 4)."""
    return p_r * math.sqrt(max(0.0, 1.0 - acc_prev)) * math.sqrt(2.0 / (math.pi * k_in))


def reinforce(hidden, seed, step, layer, thr, hidden_bits, *, out=None):
    """Return the hidden weights after one reinforcement sweep.

    Element ``i`` (row-major flat index) moves away from zero, ``h ← h + 2·sign(h)``
    (saturating), iff its draw from the counter-based generator at (seed, step, layer) is below
    the 16-bit threshold ``thr``. Signs never change, so binary weights are unaffected. With
    ``out=hidden`` the sweep happens in place.
    """
    if out is None:
        out = np.array(hidden, dtype=np.int64)
    elif out is not hidden:
        out[...] = hidden
    flat = out.reshape(-1)
    fire = np.flatnonzero(rng.events(seed, step, layer, flat.size, thr))
    h = flat[fire]
    hmax = hidden_range(hidden_bits)
    flat[fire] = np.clip(h + np.where(h > 0, 2, -2), -hmax, hmax)
    return out


def init_hidden(shape, sigma, hidden_bits, generator):
    """Return odd initial hidden weights: ``2·⌊x/2⌋ + 1`` of ``x ~ N(0, σ²)``, clamped."""
    x = generator.normal(0.0, sigma, size=shape)
    h = 2 * np.floor(x / 2.0).astype(np.int64) + 1
    hmax = hidden_range(hidden_bits)
    return np.clip(h, -hmax, hmax)
