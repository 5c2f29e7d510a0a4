"""Encoders that turn real-valued features into ±1 bits (ALGORITHMS.md section 7).

Every encoder is fitted on the training split only (``fit``) and then applied unchanged to any
split (``transform``); the output is always ``int8`` ±1. Inputs are either vectors, shape
(N, F), or sequences, shape (N, T, F). A sequence is encoded per time step: the encoder is
fitted on all training steps pooled together (an array of N·T rows of F channels), so
"per feature" means "per channel" and the sequence length T may differ between splits.

Encoders
--------
``median``
    One global median ``m`` of every training value (all samples, steps and features);
    bit = +1 iff ``value > m``. This is the local-error paper's choice for FashionMNIST.
``median-feature``
    The same with one median per feature (channel), ``m_f``.
``thermometer``
    ``levels`` thresholds per feature, evenly spaced strictly between the feature's training
    minimum and maximum: ``t_k = min + (k+1)·(max−min)/(levels+1)`` for ``k = 0..levels−1``,
    computed in float64. Bit ``k`` of feature ``f`` is +1 iff ``value ≥ t_k``. A constant
    training feature (``max == min``) gives ``t_k = min`` for every ``k``, so all of its bits
    are equal for any value. The output has ``F·levels`` bits, feature-major: feature ``f``
    occupies bits ``f·levels … f·levels+levels−1``, threshold order ascending.
``thermometer-quantile``
    The same with thresholds at the training quantiles ``(k+1)/(levels+1)`` of each feature
    (NumPy's default linear interpolation), the "distributive" thermometer.

Medians are NumPy's ``np.median`` (mean of the two middle values for an even count).

Errors
------
Bad data (NaN/inf, wrong rank, wrong feature count, non-numeric or empty training data) raises
``DataError`` naming the split and, for non-finite values, the first bad position. Bad
parameters and misuse (unknown encoder, ``levels < 1``, ``transform`` before ``fit``) raise
``ConfigError``.
"""

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["ENCODINGS", "Encoder", "MedianEncoder", "ThermometerEncoder", "make_encoder",
           "check_features"]

ENCODINGS = ("median", "median-feature", "thermometer", "thermometer-quantile")
DEFAULT_LEVELS = 32

# Rows encoded per chunk by the thermometer, so that its boolean temporaries stay small.
_CHUNK_ELEMENTS = 1 << 24


def _position(index, ndim):
    names = ("sample", "feature") if ndim == 2 else ("sample", "step", "feature")
    return ", ".join(f"{n} {int(i)}" for n, i in zip(names, index))


def check_features(x, *, split, name="features"):
    """Return ``x`` as a numeric 2-D or 3-D array, refusing anything an encoder cannot read.

    Parameters
    ----------
    x : array_like, shape (N, F) or (N, T, F)
        Real-valued features (any integer, boolean or floating dtype). Integer arrays are
        returned as they are (no float copy), so large image sets stay compact.
    split : str
        Name of the split, used in error messages ("train", "test", ...).
    name : str
        What the array is, for the messages.

    Raises
    ------
    DataError
        If ``x`` is not 2-D or 3-D, is not numeric (object, string, complex), or holds NaN or
        infinity (the message names the first bad position in C order).
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise DataError(f"{split} {name} must be 2-D (samples, features) or 3-D "
                        f"(samples, steps, features); got shape {x.shape}")
    if x.dtype == bool:
        return x.astype(np.uint8)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{split} {name} must be numeric; got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            idx = np.unravel_index(int(np.argmin(finite)), x.shape)
            raise DataError(f"{split} {name} contain {x[idx].item()!r} at "
                            f"{_position(idx, x.ndim)}; NaN and infinity cannot be encoded "
                            f"(remove or impute them)")
    return x


def _check_levels(levels):
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)):
        raise ConfigError(f"levels must be an integer >= 1; got {levels!r}")
    if levels < 1:
        raise ConfigError(f"levels must be an integer >= 1; got {levels}")
    return int(levels)


class Encoder:
    """Interface shared by the encoders: ``fit`` on training data, then ``transform``.

    Subclasses implement ``_fit(rows)`` (``rows`` has shape (M, F), M ≥ 1, finite) and
    ``_encode(rows)`` returning ``int8`` ±1 of shape (M, ``bits_per_feature``·F).
    """

    #: name used by ``make_encoder`` and reports
    name = "encoder"
    #: output bits per input feature
    bits_per_feature = 1

    def __init__(self):
        self.n_features = None
        self.fitted_rows = 0

    @property
    def fitted(self):
        return self.n_features is not None

    @property
    def output_width(self):
        """Return the number of output bits per sample (per step for sequences)."""
        if not self.fitted:
            raise ConfigError(f"{self.name} encoder: not fitted yet (call fit on the "
                              f"training split first)")
        return self.n_features * self.bits_per_feature

    def fit(self, x, *, split="train"):
        """Fit on the training split ``x`` (shape (N, F) or (N, T, F)) and return ``self``.

        For sequences all N·T steps are pooled; the statistics are per channel F.
        """
        x = check_features(x, split=split)
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] == 0:
            raise DataError(f"{split} features are empty (shape {x.shape}); cannot fit the "
                            f"{self.name} encoder")
        if rows.shape[1] == 0:
            raise DataError(f"{split} features have no columns (shape {x.shape})")
        self._fit(rows)
        self.n_features = int(rows.shape[1])
        self.fitted_rows = int(rows.shape[0])
        return self

    def transform(self, x, *, split="data"):
        """Return the ±1 ``int8`` encoding of ``x`` using the fitted statistics.

        ``x`` has shape (N, F) or (N, T, F) with the F the encoder was fitted on; the result
        has shape (N, F·b) or (N, T, F·b) with ``b = bits_per_feature``.
        """
        if not self.fitted:
            raise ConfigError(f"{self.name} encoder: transform called before fit (fit it on "
                              f"the training split first)")
        x = check_features(x, split=split)
        if x.shape[-1] != self.n_features:
            raise DataError(f"{split} features have {x.shape[-1]} features per "
                            f"{'step' if x.ndim == 3 else 'sample'}; the {self.name} encoder "
                            f"was fitted on {self.n_features}")
        rows = x.reshape(-1, x.shape[-1])
        out = self._encode(rows)
        return out.reshape(x.shape[:-1] + (self.output_width,))

    def fit_transform(self, x, *, split="train"):
        """Fit on ``x`` and return its encoding."""
        return self.fit(x, split=split).transform(x, split=split)

    def describe(self):
        """Return a JSON-ready description of the encoder and what it was fitted on."""
        d = {"encoding": self.name, "fitted": self.fitted}
        if self.fitted:
            d.update(n_features=self.n_features, fitted_rows=self.fitted_rows,
                     output_width=self.output_width)
        return d

    def _fit(self, rows):  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, rows):  # pragma: no cover - abstract
        raise NotImplementedError


class MedianEncoder(Encoder):
    """Median binarisation: bit = +1 iff ``value > median`` of the training split.

    Parameters
    ----------
    per_feature : bool
        False (default): one global median over every training value. True: one median per
        feature (per channel for sequences).

    Attributes
    ----------
    medians : float64 array, shape (F,), after ``fit`` (all equal when global).
    """

    def __init__(self, *, per_feature=False):
        super().__init__()
        if not isinstance(per_feature, (bool, np.bool_)):
            raise ConfigError(f"per_feature must be True or False; got {per_feature!r}")
        self.per_feature = bool(per_feature)
        self.name = "median-feature" if self.per_feature else "median"
        self.medians = None

    def _fit(self, rows):
        if self.per_feature:
            self.medians = np.median(rows, axis=0).astype(np.float64)
        else:
            self.medians = np.full(rows.shape[1], float(np.median(rows)), dtype=np.float64)

    def _encode(self, rows):
        out = np.empty(rows.shape, dtype=np.int8)
        step = max(1, _CHUNK_ELEMENTS // max(1, rows.shape[1]))
        for a in range(0, rows.shape[0], step):
            above = rows[a:a + step] > self.medians
            out[a:a + step] = above.view(np.int8) * np.int8(2) - np.int8(1)
        return out

    def describe(self):
        d = super().describe()
        d["rule"] = ("+1 iff value > per-feature training median" if self.per_feature
                     else "+1 iff value > global training median")
        if self.fitted and not self.per_feature:
            d["median"] = float(self.medians[0])
        return d


class ThermometerEncoder(Encoder):
    """Thermometer code with ``levels`` thresholds per feature.

    Parameters
    ----------
    levels : int
        Thresholds (output bits) per feature, ≥ 1 (default 32).
    quantile : bool
        False (default): thresholds ``t_k = min + (k+1)·(max−min)/(levels+1)`` between each
        feature's training minimum and maximum. True: thresholds at the training quantiles
        ``(k+1)/(levels+1)`` (linear interpolation).

    Bit ``k`` of feature ``f`` is +1 iff ``value ≥ t_k``; the output is feature-major
    (feature ``f``'s ``levels`` bits are contiguous, in ascending threshold order).

    Attributes
    ----------
    thresholds : float64 array, shape (F, levels), after ``fit``; rows are non-decreasing.
    """

    def __init__(self, *, levels=DEFAULT_LEVELS, quantile=False):
        super().__init__()
        self.levels = _check_levels(levels)
        if not isinstance(quantile, (bool, np.bool_)):
            raise ConfigError(f"quantile must be True or False; got {quantile!r}")
        self.quantile = bool(quantile)
        self.name = "thermometer-quantile" if self.quantile else "thermometer"
        self.bits_per_feature = self.levels
        self.thresholds = None

    def _fit(self, rows):
        k1 = np.arange(1, self.levels + 1, dtype=np.float64)          # k + 1
        if self.quantile:
            q = k1 / (self.levels + 1)
            t = np.quantile(rows, q, axis=0).astype(np.float64).T       # (F, levels)
        else:
            lo = rows.min(axis=0).astype(np.float64)
            hi = rows.max(axis=0).astype(np.float64)
            t = lo[:, None] + k1[None, :] * (hi - lo)[:, None] / (self.levels + 1)
        self.thresholds = np.ascontiguousarray(t)

    def _encode(self, rows):
        m, f = rows.shape
        levels = self.levels
        out = np.empty((m, f * levels), dtype=np.int8)
        step = max(1, _CHUNK_ELEMENTS // max(1, f * levels))
        if rows.dtype.itemsize == 1 and np.issubdtype(rows.dtype, np.integer):
            # Byte-valued inputs (images): look each value up in a per-feature table of its
            # 256 possible codes, gathered as whole uint64 words (several times faster than
            # comparing against every threshold). Same result as the comparison below.
            base = 128 if rows.dtype == np.int8 else 0
            values = np.arange(256, dtype=np.float64) - base
            width = -(-levels // 8) * 8
            table = np.full((f, 256, width), -1, dtype=np.int8)
            table[:, :, :levels] = np.where(
                values[None, :, None] >= self.thresholds[:, None, :], 1, -1)
            table = table.view(np.uint64).reshape(f * 256, width // 8)
            offset = np.arange(f, dtype=np.intp) * 256 + base
            for a in range(0, m, step):
                codes = np.take(table, rows[a:a + step].astype(np.intp) + offset, axis=0)
                codes = codes.view(np.int8).reshape(-1, f, width)[:, :, :levels]
                out[a:a + step] = codes.reshape(-1, f * levels)
            return out
        for a in range(0, m, step):
            above = rows[a:a + step, :, None] >= self.thresholds[None, :, :]
            chunk = above.view(np.int8) * np.int8(2) - np.int8(1)
            out[a:a + step] = chunk.reshape(chunk.shape[0], f * levels)
        return out

    def describe(self):
        d = super().describe()
        d["levels"] = self.levels
        d["rule"] = ("bit k = +1 iff value >= training quantile (k+1)/(levels+1) of its feature"
                     if self.quantile else
                     "bit k = +1 iff value >= min + (k+1)(max-min)/(levels+1), "
                     "per-feature training min/max")
        d["order"] = "feature-major"
        return d


def make_encoder(name, levels=None):
    """Return an unfitted encoder by name.

    Parameters
    ----------
    name : str
        One of ``ENCODINGS``: ``median``, ``median-feature``, ``thermometer``,
        ``thermometer-quantile``.
    levels : int or None
        Thermometer levels (default 32). Must be None for the median encoders.

    Raises
    ------
    ConfigError
        For an unknown name, bad ``levels``, or ``levels`` given to a median encoder.
    """
    if name in ("median", "median-feature"):
        if levels is not None:
            raise ConfigError(f"levels applies to the thermometer encodings only, not to "
                              f"{name!r}")
        return MedianEncoder(per_feature=name == "median-feature")
    if name in ("thermometer", "thermometer-quantile"):
        return ThermometerEncoder(levels=DEFAULT_LEVELS if levels is None else levels,
                                  quantile=name == "thermometer-quantile")
    raise ConfigError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}")
