"""The counter-based generator behind all training-time randomness (reinforcement).

Hardware and NumPy compute it bit-identically from (seed, step, layer, index) with nothing but
64-bit shifts, xors and adds, so no state ever has to be shared or replayed.

The function
------------
``mix64`` is Thomas Wang's multiply-free 64-bit integer hash ("hash64shift", 1997/2007): seven
steps of the form ``x ← x ± (x << s)`` and ``x ← x ⊕ (x >> s)`` (the products by 265 and 21
in its published form are written as shift-adds). It is a bijection on 64-bit words.

- Key of one mini-batch step of one layer::

      key = mix64(mix64(mix64(seed ⊕ SEED_SALT) ⊕ step) ⊕ layer)

  ``step`` counts mini-batches from the start of training (0, 1, ...), ``layer`` counts
  hidden-weight matrices from 0. The key is computed once per (step, layer).
- Draw for element ``i`` (the flat row-major index into that layer's hidden-weight matrix):
  word ``w = i >> 2`` and lane ``i & 3``; ``x_w = mix64(key + w·WEYL)`` (mod 2^64) and the draw
  is the 16-bit field ``(x_w >> 16·lane) & 0xFFFF``. One hash serves four hidden weights. In
  hardware ``key + w·WEYL`` is a running sum (add ``WEYL`` per word; a sweep of L words per
  cycle adds ``L·WEYL``), so no multiplier is needed there either.
- An event of probability ``p`` happens iff ``draw < threshold(p)`` with
  ``threshold(p) = min(round(p · 2^16), 2^16 − 1)``: a 16-bit fixed-point threshold computed by
  the host once per epoch.

Statistical quality
-------------------
Wang's hash has full avalanche on most input bits but is not a cryptographic or
BigCrush-grade generator; the Weyl increment (the 64-bit golden-ratio constant) spreads
consecutive counters before hashing. ``quality_report`` measures what matters here: the
uniformity of the 16-bit draws (chi-square over 2^16 bins), the bias of every output bit, the
lag-1 correlation of consecutive draws, the independence of the four lanes of a word, and the
avalanche of key bits; ``python -m bitprop.model.rng`` prints it, and
``tests/model/test_rng.py`` bounds each figure. Reinforcement needs events of probability
~1e-3–1e-1 per hidden weight per batch with no visible structure across weights or steps;
these measurements show the draws meet that.
"""

import numpy as np

__all__ = ["mix64", "step_key", "draws", "threshold", "events", "quality_report",
           "SEED_SALT", "WEYL"]

MASK64 = (1 << 64) - 1
SEED_SALT = 0x5EED_B17B_0B5E_ED00
WEYL = 0x9E37_79B9_7F4A_7C15  # 2^64 / golden ratio, odd


def mix64(x):
    """Return Wang's hash64shift of ``x`` (a Python int or a ``uint64`` array)."""
    if isinstance(x, (int, np.integer)):
        x = int(x) & MASK64
        x = ((~x) + (x << 21)) & MASK64
        x ^= x >> 24
        x = (x + (x << 3) + (x << 8)) & MASK64
        x ^= x >> 14
        x = (x + (x << 2) + (x << 4)) & MASK64
        x ^= x >> 28
        x = (x + (x << 31)) & MASK64
        return x
    x = np.array(x, dtype=np.uint64)          # a copy: the steps below work in place
    t = np.empty_like(x)
    np.left_shift(x, np.uint64(21), out=t)
    np.invert(x, out=x)
    x += t                                    # (~x) + (x << 21)
    np.right_shift(x, np.uint64(24), out=t)
    x ^= t
    np.left_shift(x, np.uint64(3), out=t)
    t += x
    x <<= np.uint64(8)
    x += t                                    # x + (x << 3) + (x << 8)
    np.right_shift(x, np.uint64(14), out=t)
    x ^= t
    np.left_shift(x, np.uint64(2), out=t)
    t += x
    x <<= np.uint64(4)
    x += t                                    # x + (x << 2) + (x << 4)
    np.right_shift(x, np.uint64(28), out=t)
    x ^= t
    np.left_shift(x, np.uint64(31), out=t)
    x += t
    return x


def step_key(seed, step, layer):
    """Return the 64-bit key of mini-batch ``step`` for hidden-weight matrix ``layer``."""
    for v, name in ((seed, "seed"), (step, "step"), (layer, "layer")):
        if not 0 <= int(v) <= MASK64:
            raise ValueError(f"{name} must be in [0, 2^64); got {v}")
    return mix64(mix64(mix64(int(seed) ^ SEED_SALT) ^ int(step)) ^ int(layer))


def _lanes(key, start, n):
    """Return a ``uint16`` view of the draws ``start … start+n−1`` (no copy of the view)."""
    first, last = start >> 2, (start + n + 3) >> 2
    w = np.arange(first, last, dtype=np.uint64)
    w *= np.uint64(WEYL)
    w += np.uint64(key)
    x = mix64(w)
    if not np.little_endian:                      # pragma: no cover
        x = x.astype("<u8")
    off = start - (first << 2)
    return x.view(np.uint16)[off:off + n]


def draws(key, n, start=0):
    """Return the 16-bit draws for element indices ``start … start+n−1`` as ``uint16``."""
    return _lanes(key, start, n).copy()


def threshold(p):
    """Return the 16-bit fixed-point threshold for an event of probability ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1]; got {p}")
    return min(int(round(p * 65536.0)), 65535)


def events(seed, step, layer, n, thr):
    """Return a boolean array: which of the ``n`` elements of ``layer`` fire at ``step``."""
    if not thr:
        return np.zeros(n, dtype=bool)
    return _lanes(step_key(seed, step, layer), 0, n) < np.uint16(thr)


def quality_report(n=1 << 22, seed=1):
    """Measure the generator's statistical quality; return a dict of figures.

    - ``chi2_16bit``: chi-square of the 16-bit draws over 65,536 bins, divided by its degrees
      of freedom (≈ 1 ± 0.006 for n = 2^22 for an ideal source).
    - ``max_bit_bias``: largest |P(bit = 1) − ½| over the 16 bits of a draw.
    - ``lag1_corr``: correlation of consecutive draws.
    - ``max_lane_corr``: largest |correlation| between two of the four draws of one word.
    - ``avalanche``: mean fraction of the 64 hash output bits that flip when one key bit
      flips (0.5 is ideal), and ``worst_avalanche_bit`` its largest deviation over key bits.
    - ``event_rate_err``: relative error of the empirical rate of events at p = 0.01.
    """
    key = step_key(seed, 0, 0)
    d = draws(key, n).astype(np.int64)
    counts = np.bincount(d, minlength=65536)
    expected = n / 65536
    chi2 = float(((counts - expected) ** 2 / expected).sum() / 65535)
    bits = (d[:, None] >> np.arange(16)) & 1
    bias = float(np.abs(bits.mean(axis=0) - 0.5).max())
    x = (d - d.mean()) / d.std()
    lag1 = float((x[:-1] * x[1:]).mean())
    lanes = x[: n - n % 4].reshape(-1, 4)
    lane_corr = np.corrcoef(lanes.T)
    max_lane = float(np.abs(lane_corr[np.triu_indices(4, 1)]).max())
    base = mix64(np.uint64(key) + np.arange(4096, dtype=np.uint64) * np.uint64(WEYL))
    flips = []
    for b in range(64):
        k2 = key ^ (1 << b)
        other = mix64(np.uint64(k2) + np.arange(4096, dtype=np.uint64) * np.uint64(WEYL))
        flips.append(np.bitwise_count(base ^ other).mean() / 64)
    flips = np.array(flips)
    rate = (d < threshold(0.01)).mean()
    return {
        "n": int(n),
        "chi2_16bit": chi2,
        "max_bit_bias": bias,
        "lag1_corr": lag1,
        "max_lane_corr": max_lane,
        "avalanche": float(flips.mean()),
        "worst_avalanche_bit": float(np.abs(flips - 0.5).max()),
        "event_rate_err": float(abs(rate - threshold(0.01) / 65536) / (threshold(0.01) / 65536)),
    }


if __name__ == "__main__":  # pragma: no cover
    for k, v in quality_report().items():
        print(f"{k}: {v}")
