import pickle

import numpy as np
import pytest

from deepdx.data.npz import read_npz
from deepdx.exceptions import DataError, UnsafeFileError


def test_read_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 1, 3, 3))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    is_test = np.arange(8) >= 6
    path = tmp_path / "set.npz"
    np.savez_compressed(path, X=X, y=y, class_names=np.array(["a", "b", "c"]), is_test=is_test)
    ds = read_npz(path)
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    assert ds.X.shape == (8, 1, 3, 3) and ds.X.dtype == np.float32
    assert ds.y.tolist() == y.tolist() and ds.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(ds.is_test, is_test)
    assert ds.name == "set"


def test_read_npz_without_y_is_unsupervised(tmp_path):
    np.savez(tmp_path / "x.npz", X=np.eye(3))
    ds = read_npz(tmp_path / "x.npz")
    assert ds.task == "unsupervised" and ds.y is None


def test_read_npz_refuses_object_array(tmp_path):
    labels = np.array(["cat", 1, None], dtype=object)
    np.savez(tmp_path / "obj.npz", X=np.eye(3), y=labels)
    with pytest.raises(UnsafeFileError, match=r"array 'y' in 'obj.npz' can only be loaded by"):
        read_npz(tmp_path / "obj.npz")


def test_read_npz_refuses_pickle_file(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"X": [1, 2, 3]}))
    with pytest.raises(UnsafeFileError, match="never unpickles"):
        read_npz(path)


def test_read_npz_lists_keys_when_x_missing(tmp_path):
    np.savez(tmp_path / "k.npz", features=np.eye(2), labels=np.arange(2))
    with pytest.raises(
        DataError, match=r"no array named 'X'; its arrays are \['features', 'labels'\]"
    ):
        read_npz(tmp_path / "k.npz")


def test_read_npz_rejects_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", X=np.zeros((5, 2)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="5 samples in X but 4 labels"):
        read_npz(tmp_path / "m.npz")


def test_read_npz_rejects_non_boolean_is_test(tmp_path):
    np.savez(tmp_path / "t.npz", X=np.eye(2), is_test=np.array([0, 1]))
    with pytest.raises(DataError, match="must be boolean"):
        read_npz(tmp_path / "t.npz")


def test_read_npz_rejects_single_array_file(tmp_path):
    path = tmp_path / "one.npz"
    with path.open("wb") as handle:
        np.save(handle, np.eye(2))
    with pytest.raises(DataError, match="holds a single array"):
        read_npz(path)


def test_read_npz_rejects_garbage(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(DataError, match="not a readable NPZ archive"):
        read_npz(path)


def test_read_npz_rejects_ragged_x_saved_as_object(tmp_path):
    np.savez(tmp_path / "r.npz", X=np.array([[1.0, 2.0], [3.0]], dtype=object))
    with pytest.raises(UnsafeFileError, match="array 'X'"):
        read_npz(tmp_path / "r.npz")
