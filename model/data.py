"""Datasets a run can train on, turned into binary ``Dataset`` objects (ALGORITHMS.md §7).

Sources
-------
``fashion-mnist``
    The original IDX files (``load_fashion_mnist``), split by the papers' protocol: the 60,000
    training images are shuffled with ``np.random.default_rng(seed).permutation(60000)``; the
    first 50,000 train, the last 10,000 are the held-out test split; the official t10k file is
    kept as ``extra_tests["official_test"]``. Encoded by a global median fitted on the 50,000
    training images.
``prototypes``
    The papers' synthetic Random Prototypes task (``make_prototypes``).
``PATH.npz``
    Arrays ``X_train, y_train, X_test, y_test`` (``load_npz``); binary features pass through,
    real-valued ones are encoded with an encoder fitted on ``X_train``.
``ucr:NAME`` / ``ucr:PATH``
    UCR time series, handled by ``model/ucr.py`` (imported only when asked for).

Every loader records provenance (files, protocol, encoding) in ``Dataset.info``. Every
user-facing problem raises ``DataError`` (bad or missing data) or ``ConfigError`` (bad
parameters) with a message that says what to do.
"""

import gzip
import inspect
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .encode import check_features, make_encoder
from .errors import ConfigError, DataError

__all__ = ["read_idx", "fashion_mnist_dir", "load_fashion_mnist", "make_prototypes",
           "load_npz", "load_dataset", "FASHION_MNIST_FILES", "DEFAULT_FASHION_MNIST_DIR",
           "DATASETS"]

#: IDX type codes (third magic byte) and the big-endian dtypes they denote.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

FASHION_MNIST_FILES = {"train_images": "train-images-idx3-ubyte",
                       "train_labels": "train-labels-idx1-ubyte",
                       "test_images": "t10k-images-idx3-ubyte",
                       "test_labels": "t10k-labels-idx1-ubyte"}
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HELP = (
    "FashionMNIST not found. Install it with 'apt-get install dataset-fashion-mnist' "
    "(Debian/Ubuntu; files go to /usr/share/datasets/fashion-mnist), or download the four IDX "
    "files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) from https://github.com/zalandoresearch/fashion-mnist "
    "(data/fashion) into a directory and pass it with --data-dir or the BITPROP_DATA "
    "environment variable.")

#: The papers' FashionMNIST protocol: images shuffled by seed, then this many train.
FMNIST_N_ALL = 60000
FMNIST_N_TRAIN = 50000

#: Fixed stream constant that separates the prototype generator from other seeded streams.
STREAM_PROTOTYPES = 0x50524F54  # "PROT"

DATASETS = ("fashion-mnist", "prototypes", "PATH.npz", "ucr:NAME", "ucr:PATH")

_GZIP_MAGIC = b"\x1f\x8b"


# ----------------------------------------------------------------------------------------
# IDX files


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    The format: 4 magic bytes ``0x00 0x00 <type code> <ndim>``, then ``ndim`` big-endian
    ``uint32`` dimensions, then the elements in C order, big-endian. Type codes: ``0x08``
    uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.
    Compression is detected from the gzip magic bytes (``1f 8b``), not from the file name.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape and element type.

    Raises
    ------
    DataError
        Missing or unreadable file, corrupt gzip stream, bad magic, unknown type code,
        truncated data (fewer bytes than the dimensions say) or trailing bytes.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(raw)} bytes, no header)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex(' ')}; expected "
                        f"00 00 <type> <ndim>)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes; {ndim} dimensions "
                        f"need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have < expected:
        raise DataError(f"{path}: truncated IDX data: dimensions {dims} of {dtype.name} need "
                        f"{expected} bytes, the file has {have}")
    if have > expected:
        raise DataError(f"{path}: {have - expected} trailing bytes after the IDX data "
                        f"(dimensions {dims} of {dtype.name} need {expected} bytes)")
    arr = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


# ----------------------------------------------------------------------------------------
# FashionMNIST


def _find_files(directory):
    """Return ({key: path}, [missing names]) for the FashionMNIST files in ``directory``."""
    found, missing = {}, []
    for key, stem in FASHION_MNIST_FILES.items():
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(stem)
    return found, missing


def _fashion_candidates(data_dir):
    if data_dir is not None:
        return [("--data-dir", Path(data_dir))]
    out = []
    env = os.environ.get("BITPROP_DATA")
    if env:
        out.append(("BITPROP_DATA", Path(env)))
    out.append(("default", Path(DEFAULT_FASHION_MNIST_DIR)))
    return out


def fashion_mnist_dir(data_dir=None):
    """Return the directory holding the four FashionMNIST IDX files.

    Search order: the explicit ``data_dir`` (if given, only it is searched, so an explicit
    choice is never silently replaced), else the directory in the environment variable
    ``BITPROP_DATA``, else ``/usr/share/datasets/fashion-mnist``. Each directory ``D`` is
    accepted if it, or its subfolder ``D/fashion-mnist``, holds all four files
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``).

    Raises
    ------
    DataError
        If no searched directory is complete; the message lists where it looked and how to
        get the files.
    """
    looked = []
    for origin, base in _fashion_candidates(data_dir):
        for directory in (base, base / "fashion-mnist"):
            if not directory.is_dir():
                looked.append(f"{directory} ({origin}): no such directory")
                continue
            found, missing = _find_files(directory)
            if not missing:
                return directory
            looked.append(f"{directory} ({origin}): missing {', '.join(missing)}")
    raise DataError(FASHION_MNIST_HELP + " Looked in: " + "; ".join(looked) + ".")


def _check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _read_fmnist_pair(files, prefix):
    images = read_idx(files[f"{prefix}_images"])
    labels = read_idx(files[f"{prefix}_labels"])
    where = files[f"{prefix}_images"].parent
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{files[f'{prefix}_images']}: expected images of shape (N, 28, 28); "
                        f"got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{files[f'{prefix}_labels']}: expected a 1-D label array; "
                        f"got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{where}: {prefix} has {images.shape[0]} images but "
                        f"{labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{files[f'{prefix}_labels']}: labels must be in 0..9; found "
                        f"{labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def load_fashion_mnist(*, seed, data_dir=None, encoding="median", levels=None):
    """Load FashionMNIST with the papers' split and a binary encoding.

    Parameters
    ----------
    seed : int
        The run's seed. The 60,000 training images are reordered by
        ``np.random.default_rng(seed).permutation(60000)``; the first 50,000 form the training
        split, the last 10,000 the held-out test split.
    data_dir : str or Path, optional
        Where the IDX files are (see ``fashion_mnist_dir``).
    encoding : str
        An encoder name from ``model.encode.ENCODINGS`` (default ``median``: one global
        median over the training pixels), fitted on the 50,000 training images only.
    levels : int, optional
        Thermometer levels (thermometer encodings only).

    Returns
    -------
    Dataset
        ``x_*`` int8 ±1 of shape (N, 784·b) (b = 1 for median, ``levels`` for thermometer);
        ``extra_tests["official_test"]`` holds the official t10k set encoded the same way.
    """
    seed = _check_seed(seed)
    encoder = make_encoder(encoding, levels)
    directory = fashion_mnist_dir(data_dir)
    files, _ = _find_files(directory)
    train_images, train_labels = _read_fmnist_pair(files, "train")
    test_images, test_labels = _read_fmnist_pair(files, "test")
    if train_images.shape[0] != FMNIST_N_ALL:
        raise DataError(f"{files['train_images']}: the papers' protocol needs "
                        f"{FMNIST_N_ALL} training images; the file has {train_images.shape[0]}")
    order = np.random.default_rng(seed).permutation(FMNIST_N_ALL)
    flat = train_images.reshape(FMNIST_N_ALL, 784)
    tr, te = order[:FMNIST_N_TRAIN], order[FMNIST_N_TRAIN:]
    raw_train = flat[tr]
    encoder.fit(raw_train, split="fashion-mnist train")
    x_train = encoder.transform(raw_train, split="fashion-mnist train")
    x_test = encoder.transform(flat[te], split="fashion-mnist held-out test")
    x_official = encoder.transform(test_images.reshape(-1, 784),
                                   split="fashion-mnist official test")
    info = {
        "source": {k: str(v) for k, v in files.items()},
        "protocol": (f"60,000 training images shuffled by np.random.default_rng({seed})"
                     f".permutation(60000); first {FMNIST_N_TRAIN} train, last "
                     f"{FMNIST_N_ALL - FMNIST_N_TRAIN} held-out test; official t10k set in "
                     f"extra_tests['official_test']"),
        "seed": seed,
        "encoding": encoder.describe(),
    }
    return Dataset(name="fashion-mnist", x_train=x_train, y_train=train_labels[tr],
                   x_test=x_test, y_test=train_labels[te], n_classes=10,
                   extra_tests={"official_test": (x_official, test_labels)}, info=info)


# ----------------------------------------------------------------------------------------
# Random Prototypes


def _check_int(name, value, lo):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def make_prototypes(*, seed, dim=1000, n_classes=10, flip=0.44, n_train=10000, n_test=2000):
    """Generate the papers' Random Prototypes task.

    ``n_classes`` random ±1 prototypes of length ``dim`` are drawn; each sample picks a class
    uniformly at random, copies its prototype and flips each bit independently with
    probability ``flip``. A sample equal to any earlier sample is rejected and redrawn. The
    first ``n_train`` accepted samples train, the remaining ``n_test`` test.

    Everything is drawn from ``np.random.default_rng([seed, STREAM_PROTOTYPES])`` in blocks
    (one block of the still-missing count per round), so the result depends on the
    arguments only.

    Raises
    ------
    ConfigError
        For bad parameters, or if distinct samples cannot be found (for example ``flip`` 0 or
        1 with more samples than prototypes, or ``dim`` too small).
    """
    seed = _check_seed(seed)
    dim = _check_int("dim", dim, 1)
    n_classes = _check_int("n_classes", n_classes, 1)
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 0)
    if isinstance(flip, (bool, np.bool_)) or not isinstance(flip, (int, float, np.floating)) \
            or not 0.0 <= float(flip) <= 1.0:
        raise ConfigError(f"flip must be a probability in [0, 1]; got {flip!r}")
    flip = float(flip)
    total = n_train + n_test
    if dim < 63 and total > 2 ** dim:
        raise ConfigError(f"cannot draw {total} distinct samples of {dim} bits "
                          f"(only {2 ** dim} exist)")
    rng = np.random.default_rng([seed, STREAM_PROTOTYPES])
    prototypes = np.where(rng.random((n_classes, dim)) < 0.5, 1, -1).astype(np.int8)
    xs, ys, seen = [], [], set()
    accepted, draws, max_draws = 0, 0, 20 * total + 10000
    while accepted < total:
        need = total - accepted
        if draws + need > max_draws:
            raise ConfigError(f"prototypes: only {accepted} distinct samples after {draws} "
                              f"draws (dim={dim}, flip={flip}, n_classes={n_classes}); make "
                              f"the task less degenerate or ask for fewer samples")
        draws += need
        labels = rng.integers(0, n_classes, need)
        flips = rng.random((need, dim), dtype=np.float32) < flip
        x = prototypes[labels]
        np.negative(x, out=x, where=flips)
        keys = np.packbits(x > 0, axis=1)
        keep = np.zeros(need, dtype=bool)
        for i, row in enumerate(keys):
            k = row.tobytes()
            if k not in seen:
                seen.add(k)
                keep[i] = True
        xs.append(x[keep])
        ys.append(labels[keep])
        accepted += int(keep.sum())
    x = np.concatenate(xs)
    y = np.concatenate(ys).astype(np.int64)
    info = {
        "protocol": (f"{n_classes} random ±1 prototypes of {dim} bits; each sample copies a "
                     f"uniformly drawn class's prototype and flips each bit with probability "
                     f"{flip}; duplicates rejected; first {n_train} train, last {n_test} test"),
        "generator": f"np.random.default_rng([{seed}, {STREAM_PROTOTYPES:#x}])",
        "seed": seed, "dim": dim, "flip": flip,
        "encoding": {"encoding": "none (already binary)"},
    }
    return Dataset(name="prototypes", x_train=x[:n_train], y_train=y[:n_train],
                   x_test=x[n_train:], y_test=y[n_train:], n_classes=n_classes, info=info)


# ----------------------------------------------------------------------------------------
# .npz files

NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")


def _read_npz(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: not an .npz archive (it holds a single .npy array)")
        with z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; an .npz "
                                f"dataset needs {', '.join(NPZ_KEYS)} (it has "
                                f"{', '.join(z.files) or 'none'})")
            return {k: z[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz archive, or truncated/corrupt "
                        f"({type(e).__name__}: {e})") from None


def _is_binary(x):
    if x.dtype == bool or x.size == 0:
        return True
    return bool(np.isin(x, (-1, 1)).all() or np.isin(x, (0, 1)).all())


def _check_labels(y, split, path):
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{path}: y_{split} must be 1-D; got shape {y.shape}")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer)
                               or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{path}: y_{split} must hold integer class labels; got dtype "
                        f"{y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        ok = np.isfinite(y) & (y == np.round(y))
        if not ok.all():
            i = int(np.argmin(ok))
            raise DataError(f"{path}: y_{split} must hold integer class labels; found "
                            f"{y[i].item()!r} at index {i}")
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise DataError(f"{path}: y_{split} labels must be >= 0; found {y[i].item()!r} at "
                        f"index {i}")
    return y.astype(np.int64)


def load_npz(path, *, encoding="median", levels=32):
    """Load a dataset from an ``.npz`` archive.

    The archive holds ``X_train``, ``y_train``, ``X_test``, ``y_test`` (read with
    ``allow_pickle=False``). Features are 2-D (samples, features) or 3-D (samples, steps,
    features) with the same feature count in both splits. If both splits are already binary
    (every value in {−1, +1} or every value in {0, 1}; 0 reads as −1) they are used directly;
    otherwise they are encoded with ``make_encoder(encoding, levels)`` fitted on ``X_train``.
    Labels are 1-D, integer-valued and ≥ 0; ``n_classes`` is the largest label in either
    split plus one.

    Parameters
    ----------
    path : str or Path
    encoding : str
        Encoder for real-valued features (``model.encode.ENCODINGS``).
    levels : int
        Thermometer levels; ignored by the median encoders.

    Raises
    ------
    DataError
        Missing file or key, not a zip/npz, truncated archive, bad shapes, NaN/inf features,
        bad labels, empty training split, or only one split binary.
    """
    path = Path(path)
    median = encoding in ("median", "median-feature")
    encoder = make_encoder(encoding, None if median else levels)   # refuse bad names early
    a = _read_npz(path)
    xs = {}
    for split in ("train", "test"):
        xs[split] = check_features(a[f"X_{split}"], split=f"{path.name} {split}",
                                   name="features (X)")
    xtr, xte = xs["train"], xs["test"]
    if xtr.shape[0] == 0:
        raise DataError(f"{path}: X_train is empty (shape {xtr.shape})")
    if xtr.ndim != xte.ndim:
        raise DataError(f"{path}: X_train is {xtr.ndim}-D {xtr.shape} but X_test is "
                        f"{xte.ndim}-D {xte.shape}")
    if xtr.shape[-1] != xte.shape[-1]:
        raise DataError(f"{path}: X_train has {xtr.shape[-1]} features but X_test has "
                        f"{xte.shape[-1]}")
    ytr = _check_labels(a["y_train"], "train", path)
    yte = _check_labels(a["y_test"], "test", path)
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: X_{split} has {x.shape[0]} samples but y_{split} has "
                            f"{y.shape[0]} labels")
    n_classes = int(max(ytr.max(), yte.max() if yte.size else 0)) + 1
    btr, bte = _is_binary(xtr), _is_binary(xte)
    if btr and bte:
        encoding_info = {"encoding": "none (already binary)"}
    elif btr != bte:
        which, other = ("X_train", "X_test") if btr else ("X_test", "X_train")
        raise DataError(f"{path}: {which} is binary but {other} is not; both splits must be "
                        f"binary (±1 or 0/1) or both real-valued")
    else:
        encoder.fit(xtr, split=f"{path.name} train")
        xtr = encoder.transform(xtr, split=f"{path.name} train")
        xte = encoder.transform(xte, split=f"{path.name} test")
        encoding_info = encoder.describe()
    info = {"source": str(path), "protocol": "train/test splits as stored in the file",
            "encoding": encoding_info}
    return Dataset(name=path.stem, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                   n_classes=n_classes, info=info)


# ----------------------------------------------------------------------------------------
# Dispatch


def load_dataset(spec, *, seed, data_dir=None, encoding=None, levels=None):
    """Return the ``Dataset`` named by ``spec``.

    Parameters
    ----------
    spec : str
        ``fashion-mnist``, ``prototypes``, a path ending in ``.npz``, or ``ucr:NAME`` /
        ``ucr:PATH``.
    seed : int
        The run's seed (FashionMNIST split, prototype generation, UCR).
    data_dir : str or Path, optional
        Where dataset files are searched (FashionMNIST, UCR; a relative ``.npz`` path that
        does not exist is also tried under it).
    encoding : str, optional
        Encoder for real-valued data; None picks the source's default (median for
        FashionMNIST and npz). Refused for the already-binary prototypes.
    levels : int, optional
        Thermometer levels.

    Raises
    ------
    DataError
        Unknown spec (the message lists the choices), or any loader's data error.
    ConfigError
        An encoding or levels that do not apply to the source.
    """
    if not isinstance(spec, str) or not spec:
        raise DataError(f"dataset must be a non-empty string; choose one of "
                        f"{', '.join(DATASETS)}")
    if spec == "fashion-mnist":
        return load_fashion_mnist(seed=seed, data_dir=data_dir,
                                  encoding=encoding or "median", levels=levels)
    if spec == "prototypes":
        if encoding is not None or levels is not None:
            raise ConfigError("prototypes are already binary; --encoding and --levels do not "
                              "apply")
        return make_prototypes(seed=seed)
    if spec.startswith("ucr:"):
        from .ucr import load_ucr
        kwargs = dict(seed=seed, data_dir=data_dir, levels=levels)
        if encoding is not None:
            if "encoding" not in inspect.signature(load_ucr).parameters:
                raise ConfigError("UCR series are encoded per time step by a thermometer; "
                                  "--encoding does not apply (use --levels)")
            kwargs["encoding"] = encoding
        return load_ucr(spec[4:], **kwargs)
    if spec.lower().endswith(".npz"):
        path = Path(spec)
        if not path.exists() and data_dir is not None and not path.is_absolute():
            path = Path(data_dir) / path
        return load_npz(path, encoding=encoding or "median",
                        levels=32 if levels is None else levels)
    raise DataError(f"unknown dataset {spec!r}; choose one of {', '.join(DATASETS)}")
