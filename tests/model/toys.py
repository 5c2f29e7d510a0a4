"""Small synthetic datasets shared by the model tests."""

import numpy as np

from bitprop.model.dataset import Dataset


def toy_data(seed=0, n=600, d=97, classes=4, flip=0.3):
    """Return noisy copies of random ±1 prototypes, split 5:1 into train and test."""
    gen = np.random.default_rng(seed)
    protos = gen.choice([-1, 1], size=(classes, d))
    y = gen.integers(0, classes, n)
    x = protos[y] * np.where(gen.random((n, d)) < flip, -1, 1)
    cut = n * 5 // 6
    return Dataset("toy", x[:cut], y[:cut], x[cut:], y[cut:], classes)
