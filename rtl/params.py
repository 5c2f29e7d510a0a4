"""Validation of block parameters, shared by the hardware blocks."""

__all__ = ["check_int"]


def check_int(name, value, lo, hi=None):
    """Raise ``ValueError`` unless ``value`` is an integer in ``[lo, hi]`` (``hi`` optional)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or \
            (hi is not None and value > hi):
        bound = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
