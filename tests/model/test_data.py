"""Dataset loaders: IDX files, FashionMNIST protocol, Random Prototypes, npz files, dispatch."""

import gzip
import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bitprop.model import data
from bitprop.model.data import (fashion_mnist_dir, load_dataset, load_fashion_mnist, load_npz,
                                make_prototypes, read_idx)
from bitprop.model.encode import make_encoder
from bitprop.model.errors import ConfigError, DataError

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(arr, *, code=None):
    """Return the IDX encoding of ``arr`` (independent of the reader under test)."""
    arr = np.asarray(arr)
    code = IDX_CODES[arr.dtype.newbyteorder("=")] if code is None else code
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, *, gz=False, code=None):
    raw = idx_bytes(arr, code=code)
    Path(path).write_bytes(gzip.compress(raw) if gz else raw)
    return Path(path)


# -------------------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(len(dtype) + gz)
    arr = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    got = read_idx(write_idx(tmp_path / "a", arr, gz=gz))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, arr)
    got[0, 0, 0] = 1                                          # writable


def test_idx_compression_detected_by_content_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "raw.gz", arr)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed", arr, gz=True)), arr)


def test_idx_one_and_zero_length_dims(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels)), labels)
    assert read_idx(write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))).shape \
        == (0, 28, 28)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_corruptions(tmp_path, gz):
    good = idx_bytes(np.arange(24, dtype=np.int16).reshape(4, 6))

    def check(raw, pattern):
        p = tmp_path / "bad"
        p.write_bytes(gzip.compress(raw) if gz else raw)
        with pytest.raises(DataError, match=pattern):
            read_idx(p)

    check(b"\x01" + good[1:], "not an IDX file")
    check(b"\x00\x00\x0a" + good[3:], "unknown IDX type code 0x0A")
    check(good[:-1], "truncated IDX data.*need 48 bytes, the file has 47")
    check(good + b"\x00\x00", "2 trailing bytes")
    check(good[:3], "not an IDX file")
    check(good[:9], "truncated IDX header")
    check(b"", "not an IDX file")


def test_idx_corrupt_gzip_and_missing_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    p = tmp_path / "cut.gz"
    p.write_bytes(packed[:len(packed) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(p)
    broken = bytearray(packed)
    for i in range(12, len(broken) - 8, 7):
        broken[i] ^= 0x5A
    p.write_bytes(bytes(broken))
    with pytest.raises(DataError, match="gzip"):
        read_idx(p)
    with pytest.raises(DataError, match="IDX file not found"):
        read_idx(tmp_path / "nowhere")


# ------------------------------------------------------------------------------ FashionMNIST

def write_fake_fmnist(directory, *, n_train=12, n_test=6, gz=True, labels_max=9, shape=(28, 28),
                      n_train_labels=None):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}",
              rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8), gz=gz)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}",
              rng.integers(0, labels_max + 1, n_train_labels or n_train, dtype=np.uint8), gz=gz)
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}",
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), gz=gz)
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}",
              rng.integers(0, 10, n_test, dtype=np.uint8), gz=gz)
    return directory


@pytest.fixture
def no_default_fmnist(tmp_path, monkeypatch):
    """Point the default location somewhere empty and clear BITPROP_DATA."""
    monkeypatch.setattr(data, "DEFAULT_FASHION_MNIST_DIR", str(tmp_path / "no-default"))
    monkeypatch.delenv("BITPROP_DATA", raising=False)


def test_fmnist_dir_search_order(tmp_path, monkeypatch, no_default_fmnist):
    plain = write_fake_fmnist(tmp_path / "plain", gz=False)
    nested = write_fake_fmnist(tmp_path / "root" / "fashion-mnist")
    default = write_fake_fmnist(tmp_path / "default")
    assert fashion_mnist_dir(plain) == plain
    assert fashion_mnist_dir(tmp_path / "root") == nested
    monkeypatch.setattr(data, "DEFAULT_FASHION_MNIST_DIR", str(default))
    assert fashion_mnist_dir() == default
    monkeypatch.setenv("BITPROP_DATA", str(tmp_path / "root"))
    assert fashion_mnist_dir() == nested                     # env before default
    assert fashion_mnist_dir(plain) == plain                 # explicit before env
    monkeypatch.setenv("BITPROP_DATA", str(tmp_path / "empty"))
    assert fashion_mnist_dir() == default                    # env incomplete: fall through
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist_dir(tmp_path / "elsewhere")            # explicit is never replaced


def test_fmnist_missing_message_says_how_to_get_it(tmp_path, no_default_fmnist):
    partial = write_fake_fmnist(tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        fashion_mnist_dir(partial)
    msg = str(e.value)
    for part in ("apt-get install dataset-fashion-mnist", "--data-dir", "BITPROP_DATA",
                 "github.com/zalandoresearch/fashion-mnist", "missing t10k-labels-idx1-ubyte"):
        assert part in msg
    with pytest.raises(DataError, match="no-default.*no such directory"):
        load_fashion_mnist(seed=0)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_train_labels": 11}, "12 images but 11 labels"),
    ({"labels_max": 12}, "labels must be in 0..9"),
    ({"shape": (28, 27)}, r"shape \(N, 28, 28\)"),
    ({}, "needs 60000 training images; the file has 12"),
])
def test_fmnist_file_checks(tmp_path, kwargs, pattern):
    d = write_fake_fmnist(tmp_path / "f", **kwargs)
    if "labels_max" in kwargs:                                # make sure one is out of range
        write_idx(d / "train-labels-idx1-ubyte.gz", np.full(12, 12, np.uint8), gz=True)
    with pytest.raises(DataError, match=pattern):
        load_fashion_mnist(seed=0, data_dir=d)


@pytest.fixture(scope="module")
def fmnist():
    """Load the real FashionMNIST once (two seeds) with the raw arrays, or skip."""
    try:
        directory = fashion_mnist_dir()
    except DataError as e:
        pytest.skip(f"FashionMNIST files not available: {e}")
    files, _ = data._find_files(directory)
    raw = {k: read_idx(v) for k, v in files.items()}
    return {"raw": raw, 42: load_fashion_mnist(seed=42), 7: load_fashion_mnist(seed=7)}


def test_fmnist_protocol_sizes(fmnist):
    d = fmnist[42]
    assert d.x_train.shape == (50000, 784) and d.x_test.shape == (10000, 784)
    x_off, y_off = d.extra_tests["official_test"]
    assert x_off.shape == (10000, 784) and y_off.shape == (10000,)
    for x in (d.x_train, d.x_test, x_off):
        assert x.dtype == np.int8 and np.isin(x, (-1, 1)).all()
    assert d.n_classes == 10 and d.input_dim == 784
    assert json.loads(json.dumps(d.describe()))["encoding"]["encoding"] == "median"


def test_fmnist_split_is_the_seeded_permutation(fmnist):
    raw = fmnist["raw"]
    flat = raw["train_images"].reshape(60000, 784)
    order = np.random.default_rng(42).permutation(60000)
    d = fmnist[42]
    np.testing.assert_array_equal(d.y_train, raw["train_labels"][order[:50000]])
    np.testing.assert_array_equal(d.y_test, raw["train_labels"][order[50000:]])
    np.testing.assert_array_equal(d.extra_tests["official_test"][1], raw["test_labels"])
    median = np.median(flat[order[:50000]])                  # fitted on the 50,000 only
    assert d.info["encoding"]["median"] == median
    np.testing.assert_array_equal(d.x_train[:500], np.where(flat[order[:500]] > median, 1, -1))
    np.testing.assert_array_equal(d.x_test[-500:],
                                  np.where(flat[order[-500:]] > median, 1, -1))
    np.testing.assert_array_equal(d.extra_tests["official_test"][0][:500],
                                  np.where(raw["test_images"][:500].reshape(500, 784) > median,
                                           1, -1))


def test_fmnist_seeds_give_different_splits(fmnist):
    a, b = fmnist[42], fmnist[7]
    assert not np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.extra_tests["official_test"][0],
                                  b.extra_tests["official_test"][0])


# ------------------------------------------------------------------------------ prototypes

@pytest.fixture(scope="module")
def protos():
    return make_prototypes(seed=3)


def test_prototypes_sizes_and_determinism(protos):
    assert protos.x_train.shape == (10000, 1000) and protos.x_test.shape == (2000, 1000)
    assert protos.x_train.dtype == np.int8 and protos.n_classes == 10
    assert np.isin(protos.x_train, (-1, 1)).all()
    again = make_prototypes(seed=3)
    np.testing.assert_array_equal(again.x_train, protos.x_train)
    np.testing.assert_array_equal(again.y_test, protos.y_test)
    other = make_prototypes(seed=4, n_train=50, n_test=10)
    assert not np.array_equal(other.x_train, protos.x_train[:50])


def test_prototypes_no_duplicates(protos):
    x = np.concatenate([protos.x_train, protos.x_test])
    assert np.unique(x, axis=0).shape[0] == x.shape[0]
    small = make_prototypes(seed=1, dim=10, n_classes=2, flip=0.3, n_train=300, n_test=100)
    xs = np.concatenate([small.x_train, small.x_test])       # collisions are frequent here
    assert xs.shape == (400, 10) and np.unique(xs, axis=0).shape[0] == 400
    full = make_prototypes(seed=1, dim=3, n_classes=1, flip=0.5, n_train=8, n_test=0)
    assert np.unique(full.x_train, axis=0).shape[0] == 8     # every 3-bit vector once


def test_prototypes_flip_rate_and_balance(protos):
    x = np.concatenate([protos.x_train, protos.x_test]).astype(np.int64)
    y = np.concatenate([protos.y_train, protos.y_test])
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 12000 and (np.abs(counts - 1200) < 200).all()   # ~6 sd
    # The majority vote of ~1200 noisy copies recovers each prototype (error ~1e-5 per bit).
    proto = np.stack([np.where(x[y == c].sum(axis=0) >= 0, 1, -1) for c in range(10)])
    rate = (x != proto[y]).mean()
    assert abs(rate - 0.44) < 0.004                          # sd of the mean ~1.4e-4
    # prototypes of different classes are independent: they differ in about half the bits
    diff = (proto[:, None, :] != proto[None, :, :]).mean(axis=-1)[np.triu_indices(10, 1)]
    assert (np.abs(diff - 0.5) < 0.1).all()


def test_prototypes_bad_parameters():
    for kwargs in ({"dim": 0}, {"n_classes": 0}, {"n_train": 0}, {"n_test": -1},
                   {"flip": 1.5}, {"flip": -0.1}, {"flip": "x"}, {"dim": 2.0}):
        with pytest.raises(ConfigError):
            make_prototypes(seed=0, **kwargs)
    with pytest.raises(ConfigError, match="seed"):
        make_prototypes(seed=-1)
    with pytest.raises(ConfigError, match="only 8 exist"):
        make_prototypes(seed=0, dim=3, n_train=9, n_test=0)
    with pytest.raises(ConfigError, match="distinct samples after"):
        make_prototypes(seed=0, dim=100, n_classes=2, flip=0.0, n_train=5, n_test=0)


# ------------------------------------------------------------------------------------- npz

def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return Path(path)


def real_arrays(rng, n_train=40, n_test=20, f=5):
    return dict(X_train=rng.normal(size=(n_train, f)), y_train=rng.integers(0, 3, n_train),
                X_test=rng.normal(size=(n_test, f)), y_test=rng.integers(0, 3, n_test))


@pytest.mark.parametrize("kind", ["pm1", "01", "bool"])
def test_npz_binary_passthrough(tmp_path, kind):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (30, 8)).astype(bool)
    conv = {"pm1": lambda b: np.where(b, 1.0, -1.0), "01": lambda b: b.astype(np.uint8),
            "bool": lambda b: b}[kind]
    p = save_npz(tmp_path / "bin.npz", X_train=conv(bits[:20]), y_train=np.arange(20) % 4,
                 X_test=conv(bits[20:]), y_test=np.arange(10) % 2)
    d = load_npz(p, encoding="thermometer")                  # ignored: already binary
    np.testing.assert_array_equal(d.x_train, np.where(bits[:20], 1, -1))
    np.testing.assert_array_equal(d.x_test, np.where(bits[20:], 1, -1))
    assert d.n_classes == 4 and d.name == "bin"
    assert d.info["encoding"]["encoding"] == "none (already binary)"


@pytest.mark.parametrize("encoding, width", [("median", 5), ("median-feature", 5),
                                             ("thermometer", 20), ("thermometer-quantile", 20)])
def test_npz_real_valued_is_encoded_on_train_only(tmp_path, encoding, width):
    rng = np.random.default_rng(1)
    a = real_arrays(rng)
    a["X_test"] = a["X_test"] * 3 + 1                        # a different range
    p = save_npz(tmp_path / "real.npz", **a)
    d = load_npz(p, encoding=encoding, levels=4)
    enc = make_encoder(encoding, None if encoding.startswith("median") else 4).fit(a["X_train"])
    assert d.x_train.shape == (40, width)
    np.testing.assert_array_equal(d.x_train, enc.transform(a["X_train"]))
    np.testing.assert_array_equal(d.x_test, enc.transform(a["X_test"]))
    np.testing.assert_array_equal(d.y_test, a["y_test"])
    assert d.info["encoding"]["encoding"] == encoding and d.info["source"] == str(p)


def test_npz_sequences_and_label_range(tmp_path):
    rng = np.random.default_rng(2)
    p = save_npz(tmp_path / "seq.npz", X_train=rng.normal(size=(6, 9, 2)),
                 y_train=np.array([0, 1, 2, 0, 1, 2], dtype=np.float64),
                 X_test=rng.normal(size=(3, 9, 2)), y_test=np.array([4, 0, 1]))
    d = load_npz(p, encoding="thermometer", levels=3)
    assert d.x_train.shape == (6, 9, 6) and d.is_sequence
    assert d.n_classes == 5                                  # test label 4 beyond train's range
    assert d.y_train.dtype == np.int64


@pytest.mark.parametrize("change, pattern", [
    ({"X_train": np.zeros(4)}, "2-D"),
    ({"X_test": np.zeros((20, 6))}, "5 features but X_test has 6"),
    ({"X_test": np.zeros((20, 2, 5))}, "2-D .* but X_test is 3-D"),
    ({"y_train": np.zeros(39, np.int64)}, "40 samples but y_train has 39"),
    ({"y_test": np.zeros((20, 1), np.int64)}, "y_test must be 1-D"),
    ({"y_train": np.full(40, -1)}, "labels must be >= 0"),
    ({"y_train": np.full(40, 1.5)}, "integer class labels; found 1.5 at index 0"),
    ({"y_test": np.array(["a"] * 20)}, "integer class labels; got dtype"),
    ({"X_train": np.zeros((0, 5)), "y_train": np.zeros(0, np.int64)}, "X_train is empty"),
    ({"X_test": np.where(np.eye(20, 5) > 0, 1.0, -1.0)}, "X_test is binary but X_train is not"),
])
def test_npz_malformed(tmp_path, change, pattern):
    a = real_arrays(np.random.default_rng(3))
    a.update(change)
    with pytest.raises(DataError, match=pattern):
        load_npz(save_npz(tmp_path / "m.npz", **a))


def test_npz_nan_is_refused_with_split_and_position(tmp_path):
    a = real_arrays(np.random.default_rng(4))
    a["X_test"][7, 2] = np.nan
    with pytest.raises(DataError, match=r"test features \(X\) contain nan at sample 7, "
                                        r"feature 2"):
        load_npz(save_npz(tmp_path / "nan.npz", **a))


def test_npz_bad_files(tmp_path):
    a = real_arrays(np.random.default_rng(5))
    missing = dict(a)
    del missing["y_test"], missing["X_train"]
    with pytest.raises(DataError, match="missing array.*X_train, y_test"):
        load_npz(save_npz(tmp_path / "k.npz", **missing))
    good = save_npz(tmp_path / "good.npz", **a).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good[:len(good) // 2])
    with pytest.raises(DataError, match="truncated/corrupt"):
        load_npz(cut)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(junk)
    npy = tmp_path / "one.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        load_npz(npy)
    obj = dict(a)
    obj["y_train"] = np.array([{"x": 1}] * 40, dtype=object)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(save_npz(tmp_path / "obj.npz", **obj))
    with pytest.raises(DataError, match="npz file not found"):
        load_npz(tmp_path / "absent.npz")
    with pytest.raises(ConfigError, match="unknown encoding"):
        load_npz(tmp_path / "good.npz", encoding="fancy")


# -------------------------------------------------------------------------------- dispatch

def test_load_dataset_dispatch(tmp_path, monkeypatch, no_default_fmnist):
    d = load_dataset("prototypes", seed=5)
    np.testing.assert_array_equal(d.x_test, make_prototypes(seed=5).x_test)
    with pytest.raises(ConfigError, match="already binary"):
        load_dataset("prototypes", seed=5, encoding="median")
    a = real_arrays(np.random.default_rng(6))
    save_npz(tmp_path / "t.npz", **a)
    d = load_dataset(str(tmp_path / "t.npz"), seed=0, encoding="thermometer", levels=2)
    assert d.input_dim == 10
    monkeypatch.chdir(tmp_path.parent)
    d = load_dataset("t.npz", seed=0, data_dir=tmp_path)     # relative path under data_dir
    assert d.input_dim == 5 and d.info["encoding"]["encoding"] == "median"
    with pytest.raises(DataError, match="unknown dataset 'mnist'.*fashion-mnist.*prototypes"):
        load_dataset("mnist", seed=0)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", seed=0, data_dir=tmp_path / "none")


def test_load_dataset_ucr_is_dispatched_lazily(monkeypatch):
    calls = []

    def load_ucr(name, *, seed, data_dir=None, levels=None):
        calls.append((name, seed, data_dir, levels))
        return "sentinel"

    fake = types.ModuleType("bitprop.model.ucr")
    fake.load_ucr = load_ucr
    monkeypatch.setitem(sys.modules, "bitprop.model.ucr", fake)
    assert load_dataset("ucr:GunPoint", seed=3, data_dir="/d", levels=16) == "sentinel"
    assert calls == [("GunPoint", 3, "/d", 16)]
    with pytest.raises(ConfigError, match="--encoding does not apply"):
        load_dataset("ucr:GunPoint", seed=3, encoding="median")
