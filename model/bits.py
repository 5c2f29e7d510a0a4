"""Packed binary algebra in the project's bit convention.

Convention (ALGORITHMS.md section 1): a binary value is ±1; in memory bit 1 means +1 and bit 0
means −1. Element ``i`` of a vector is bit ``i % 64`` of word ``i // 64`` (little-endian,
``uint64`` words). Padding bits are 0 and never count.

For two K-element ±1 vectors ``a`` and ``w`` the dot product is
``2·popcount(XNOR(a, w)) − K`` over the K real positions. Because padding bits are 0 in both
operands, their XOR is 0 there, so the same value is ``K − 2·popcount(a XOR w)`` over whole
words; that is what the functions below compute.
"""

import numpy as np

from .errors import DataError

WORD = 64

__all__ = [
    "WORD", "n_words", "pack", "unpack", "to_pm1", "pack_bits01",
    "xnor_dot", "project_back", "popcount",
]


def n_words(k):
    """Return the number of 64-bit words that hold ``k`` packed elements."""
    return (int(k) + WORD - 1) // WORD


def to_pm1(x, *, name="x"):
    """Return ``x`` as an ``int8`` array of ±1, refusing anything that is not binary.

    Accepts ±1 or {0, 1} (0 is read as −1) in any integer, float or boolean dtype.
    """
    x = np.asarray(x)
    if x.dtype == bool:
        return np.where(x, 1, -1).astype(np.int8)
    if x.size == 0:
        return x.astype(np.int8)
    if np.issubdtype(x.dtype, np.integer):
        ok = int(x.min()) >= -1 and int(x.max()) <= 1
    else:
        ok = bool(((x == 1) | (x == -1) | (x == 0)).all())
    if not ok:
        bad = x[~((x == 1) | (x == -1) | (x == 0))]
        raise DataError(f"{name} must be binary (±1 or 0/1); found value {bad.flat[0]!r}")
    if not (x == 0).any():
        return x.astype(np.int8, copy=False)
    if (x == -1).any():
        raise DataError(f"{name} must be binary: either ±1 or 0/1, not a mix of -1, 0 and 1")
    return np.where(x == 1, 1, -1).astype(np.int8)


def pack_bits01(bits):
    """Pack a boolean/{0,1} array along its last axis into ``uint64`` words (bit 1 = +1)."""
    bits = np.asarray(bits, dtype=bool)
    k = bits.shape[-1]
    nw = n_words(k)
    padded = np.zeros(bits.shape[:-1] + (nw * WORD,), dtype=bool)
    padded[..., :k] = bits
    as_bytes = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(as_bytes).view("<u8").astype(np.uint64, copy=False)


def pack(x):
    """Pack a ±1 array (or {0,1} / bool) along its last axis into ``uint64`` words."""
    x = np.asarray(x)
    if x.dtype != bool:
        x = to_pm1(x) > 0
    return pack_bits01(x)


def unpack(words, k):
    """Unpack ``uint64`` words along the last axis into an ``int8`` ±1 array of length ``k``."""
    words = np.ascontiguousarray(np.asarray(words, dtype=np.uint64))
    as_bytes = words.view(np.uint8).reshape(words.shape[:-1] + (words.shape[-1] * 8,))
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :k]
    return (bits.astype(np.int8) << 1) - 1


def popcount(words):
    """Return the number of set bits per row of a packed array, as ``int64``."""
    return np.bitwise_count(np.asarray(words, dtype=np.uint64)).sum(axis=-1, dtype=np.int64)


def xnor_dot(a, w, k):
    """Return the ±1 dot products of every row of ``a`` with every row of ``w``.

    Parameters
    ----------
    a : uint64 array, shape (N, words) or (words,)
        Packed activations.
    w : uint64 array, shape (M, words)
        Packed binary weights (one row per output unit).
    k : int
        Number of real elements per row.

    Returns
    -------
    int32 array, shape (N, M) (or (M,) for a single vector): ``z = K − 2·popcount(a ⊕ w)``.
    """
    a = np.asarray(a, dtype=np.uint64)
    single = a.ndim == 1
    a2 = a[None, :] if single else a
    w = np.asarray(w, dtype=np.uint64)
    if a2.shape[-1] != w.shape[-1] or a2.shape[-1] != n_words(k):
        raise ValueError(f"packed widths disagree: {a2.shape[-1]} vs {w.shape[-1]} words "
                         f"for K={k}")
    diff = _count_xor(a2, w, None, k)
    z = k - 2 * diff.astype(np.int32)
    return z[0] if single else z


def _count_xor(a, w, mask, k):
    """Return ``Σ_words popcount((a[n] ⊕ w[m]) ∧ mask[n])`` for all pairs (n, m).

    Works word by word on word-major copies (contiguous rows of one word index), counting in
    ``uint16`` where ``k`` allows it, to keep the memory traffic per bit-operation low.
    """
    at = np.ascontiguousarray(a.T)
    wt = np.ascontiguousarray(w.T)
    mt = None if mask is None else np.ascontiguousarray(mask.T)
    acc = np.zeros((a.shape[0], w.shape[0]), dtype=np.uint16 if k < 65536 else np.uint32)
    scratch = np.empty(acc.shape, dtype=np.uint64)
    counts = np.empty(acc.shape, dtype=np.uint8)
    for i in range(wt.shape[0]):
        np.bitwise_xor(at[i][:, None], wt[i][None, :], out=scratch)
        if mt is not None:
            np.bitwise_and(scratch, mt[i][:, None], out=scratch)
        np.bitwise_count(scratch, out=counts)
        acc += counts
    return acc


def project_back(wt, gate, desired, k_out):
    """Return the ternary back-projection ``Wᵀ·(g ⊙ a*)`` for a batch.

    Parameters
    ----------
    wt : uint64 array, shape (K_in, words(K_out))
        The binary weight matrix ``W`` (shape K_out × K_in) packed by columns, i.e. ``pack(W.T)``.
    gate : uint64 array, shape (N, words(K_out))
        Packed gate bits ``g`` (bit 1 = the row passes error).
    desired : uint64 array, shape (N, words(K_out))
        Packed desired activations ``a*`` of the layer above.
    k_out : int
        Number of rows of ``W`` (units of the layer above).

    Returns
    -------
    int32 array, shape (N, K_in): for column c, the number of gated rows where ``W[i, c]``
    agrees with ``a*_i`` minus the number where it disagrees, i.e.
    ``popcount(g) − 2·popcount(g ∧ (a* ⊕ Wᵀ[c]))``.
    """
    wt = np.asarray(wt, dtype=np.uint64)
    gate = np.asarray(gate, dtype=np.uint64)
    desired = np.asarray(desired, dtype=np.uint64)
    if not (wt.shape[-1] == gate.shape[-1] == desired.shape[-1] == n_words(k_out)):
        raise ValueError("packed widths disagree in project_back")
    n_gated = popcount(gate).astype(np.int32)
    diff = _count_xor(desired, wt, gate, k_out)
    return n_gated[:, None] - 2 * diff.astype(np.int32)
