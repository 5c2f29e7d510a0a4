"""Errors that carry a message meant for the user, never a traceback."""


class BitpropError(ValueError):
    """Base class: bad input or an impossible configuration, with a clear message.

    The command-line entry point prints the message of any ``BitpropError`` and exits with
    status 2; it never shows a traceback for one.
    """


class ConfigError(BitpropError):
    """An impossible or inconsistent configuration."""


class DataError(BitpropError):
    """A malformed, truncated or inconsistent data file or array."""


class CheckpointError(BitpropError):
    """A checkpoint that cannot be read or does not match the run it should resume."""
