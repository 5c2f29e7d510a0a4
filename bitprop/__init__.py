"""bitprop: fully binary on-chip training of binary neural networks."""

__version__ = "0.1.0"
