"""Argument types and report writing shared by the ``bitprop`` subcommands."""

import argparse
import json
import os

__all__ = ["positive", "widths", "write_json"]


def positive(text):
    """Parse a positive integer option."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def widths(text):
    """Parse a comma list of layer widths (``75,75``)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers like 75,75; got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("give at least one width")
    return values


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically (a temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
