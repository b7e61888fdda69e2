"""Dataset loading: checksums, IDX parsing, the validation split."""

import shutil

import numpy as np
import pytest

from fmnist.core import data


def test_bundled_files_load_with_release_shapes():
    x_train, y_train, x_test, y_test, sums = data.load_arrays()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.max() == 9
    # Fashion-MNIST: 6,000 / 1,000 per class, light objects on a zero background.
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert x_train[:, 0, 0].mean() < 5
    assert sums == data.SHA256


def test_checksums_are_the_release_files_own():
    """data.SHA256 against the SHA256SUMS that came with the release (bundled beside
    the files), and the bundled files against both: an independent source, not the
    constant compared with itself."""
    import hashlib

    published = dict(
        reversed(line.split())
        for line in (data.BUNDLED_DIR / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    assert {name: published[name] for name in data.SHA256} == data.SHA256
    for name, digest in data.SHA256.items():
        assert hashlib.sha256((data.BUNDLED_DIR / name).read_bytes()).hexdigest() == digest


def test_validation_split_is_stratified_deterministic_and_disjoint():
    s1 = data.load(val_size=5000)
    s2 = data.load(val_size=5000)
    assert len(s1.y_val) == 5000 and len(s1.y_train) == 55000
    assert np.array_equal(s1.x_val, s2.x_val)
    assert np.bincount(s1.y_val).tolist() == [500] * 10
    # Disjoint by index, together the whole training set, and what load() returns.
    x_train, y_train, *_ = data.load_arrays()
    train, val = data.stratified_split(y_train, 5000)
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(60000))
    assert np.array_equal(s1.x_val, x_train[val]) and np.array_equal(s1.x_train, x_train[train])


def test_limit_takes_a_stratified_slice():
    s = data.load(limit=3000, val_size=300)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (2700, 300, 10000)
    assert np.bincount(s.y_val).tolist() == [30] * 10


def _copy(tmp_path):
    d = tmp_path / "fm"
    shutil.copytree(data.BUNDLED_DIR, d)
    return d


def test_corrupt_file_names_the_file_and_expected_checksum(tmp_path):
    d = _copy(tmp_path)
    target = d / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(data.DataError) as e:
        data.load_arrays(d)
    msg = str(e.value)
    assert str(target) in msg and data.SHA256[target.name] in msg and "\n" not in msg


def test_missing_file_names_the_file(tmp_path, monkeypatch):
    d = _copy(tmp_path)
    (d / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("FMNIST_DATA_DIR", str(d))
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz: missing"):
        data.load_arrays()


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(data.DataError, match="not a directory"):
        data.load_arrays(tmp_path / "nowhere")
