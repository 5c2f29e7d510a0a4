"""The binary dataset a run trains on, whatever its source."""

from dataclasses import dataclass, field

import numpy as np

from .bits import to_pm1
from .errors import DataError

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """Binary (±1) training and test data with integer labels.

    ``x_*`` are ``int8`` ±1 arrays of shape (N, D) for vectors or (N, T, D) for sequences;
    ``y_*`` are ``int64`` labels in ``[0, n_classes)``. ``extra_tests`` holds further
    evaluation splits by name (for example FashionMNIST's official test file), and ``info``
    records provenance (files, protocol, encoding) for reports.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    extra_tests: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.x_train, self.y_train = self._check("train", self.x_train, self.y_train)
        self.x_test, self.y_test = self._check("test", self.x_test, self.y_test)
        self.extra_tests = {k: self._check(k, *v) for k, v in self.extra_tests.items()}

    def _check(self, split, x, y):
        x = to_pm1(x, name=f"{self.name} {split} features")
        y = np.asarray(y)
        if x.ndim not in (2, 3):
            raise DataError(f"{self.name} {split}: features must be 2-D (samples, features) or "
                            f"3-D (samples, steps, features); got shape {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{self.name} {split}: {x.shape[0]} samples but labels of shape "
                            f"{y.shape}")
        if y.size and not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise DataError(f"{self.name} {split}: labels must be integers")
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise DataError(f"{self.name} {split}: labels must be in [0, {self.n_classes}); "
                            f"found {int(y.min())}..{int(y.max())}")
        if x.shape[0] == 0 and split == "train":
            raise DataError(f"{self.name}: the training split is empty")
        return x, y

    @property
    def input_dim(self):
        """Return the number of binary features per sample (per step for sequences)."""
        return int(self.x_train.shape[-1])

    @property
    def is_sequence(self):
        return self.x_train.ndim == 3

    def describe(self):
        """Return a JSON-ready summary."""
        return {"name": self.name, "n_train": int(self.x_train.shape[0]),
                "n_test": int(self.x_test.shape[0]), "input_dim": self.input_dim,
                "n_classes": int(self.n_classes),
                "shape": list(self.x_train.shape[1:]),
                "extra_tests": {k: int(v[0].shape[0]) for k, v in self.extra_tests.items()},
                **self.info}
