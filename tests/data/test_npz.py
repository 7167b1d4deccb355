import io
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdx.data.npz import read_npz
from deepdx.data.registry import load
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


# ----------------------------------------------------------------------------- mmap


def npy_bytes(array):
    """The .npy file of ``array``, as np.save writes it."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_read_npz_mmap_maps_float32_x_without_copy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 1, 3, 3)).astype(np.float32)
    path = tmp_path / "set.npz"
    np.savez(path, X=X, y=np.arange(8) % 2, is_test=np.arange(8) >= 6)
    read, mapped = read_npz(path), read_npz(path, mmap=True)
    base = mapped.X.base
    assert isinstance(base, np.memmap) and np.shares_memory(mapped.X, base)
    assert not mapped.X.flags.writeable
    again = np.memmap(path, dtype=np.float32, mode="r", offset=base.offset, shape=X.shape)
    np.testing.assert_array_equal(again, X)  # the mapped bytes are X's bytes in the file
    np.testing.assert_array_equal(mapped.X, read.X)
    np.testing.assert_array_equal(mapped.y, read.y)
    np.testing.assert_array_equal(mapped.is_test, read.is_test)


@pytest.mark.parametrize(
    "make",
    [
        lambda X: X.astype(np.float64),
        lambda X: X.astype(">f4"),
        lambda X: np.asfortranarray(X),
        lambda X: (X * 10).astype(np.int16),
    ],
    ids=["float64", "big-endian", "fortran", "int16"],
)
def test_read_npz_mmap_equals_read_for_other_layouts(tmp_path, make):
    X = make(np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32))
    np.savez(tmp_path / "a.npz", X=X)
    mapped = read_npz(tmp_path / "a.npz", mmap=True)
    np.testing.assert_array_equal(mapped.X, read_npz(tmp_path / "a.npz").X)
    np.testing.assert_array_equal(mapped.X, X.astype(np.float32))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple),
    dtype=st.sampled_from(["<f4", "<f8", ">f8", "<i4", "|u1"]),
    fortran=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_read_npz_mmap_equals_read_property(tmp_path_factory, shape, dtype, fortran, seed):
    X = (np.random.default_rng(seed).normal(size=shape) * 100).astype(dtype)
    path = tmp_path_factory.mktemp("npz") / "a.npz"
    np.savez(path, X=np.asfortranarray(X) if fortran else X)
    np.testing.assert_array_equal(read_npz(path, mmap=True).X, read_npz(path).X)


def test_read_npz_mmap_refuses_compressed_x_with_the_fix(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", X=np.eye(3))
    with pytest.raises(
        DataError,
        match=r"array 'X' in 'c.npz' is compressed and cannot be memory-mapped; save the "
        r"archive uncompressed with np\.savez \(not np\.savez_compressed\)",
    ):
        read_npz(tmp_path / "c.npz", mmap=True)


def test_read_npz_mmap_maps_stored_x_beside_compressed_labels(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "mixed.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", npy_bytes(X), compress_type=zipfile.ZIP_STORED)
        archive.writestr("y.npy", npy_bytes(np.array([0, 1, 0, 1])), zipfile.ZIP_DEFLATED)
    mapped = read_npz(path, mmap=True)
    assert isinstance(mapped.X.base, np.memmap)
    np.testing.assert_array_equal(mapped.X, X)
    np.testing.assert_array_equal(mapped.y, [0, 1, 0, 1])


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_read_npz_rejects_damaged_x_bytes(tmp_path, mmap):
    X = np.arange(4096, dtype=np.float32).reshape(64, 64)  # past zipfile's 4 KiB read-ahead
    path = tmp_path / "d.npz"
    np.savez(path, X=X)
    data = bytearray(path.read_bytes())
    data[data.index(X.tobytes()) + 10_000] ^= 0xFF  # one byte of X, inside the stored entry
    path.write_bytes(bytes(data))
    match = "CRC-32 differs" if mmap else "cannot be read.*CRC"
    with pytest.raises(DataError, match=match):
        read_npz(path, mmap=mmap)


def test_read_npz_mmap_rejects_entry_running_past_the_file(tmp_path):
    # a hand-built zip whose directory claims 8,000 bytes of X where 16 follow; its comment
    # pads the file to 10 bytes more than the claimed entry, so only the local header
    # (30 bytes) and name (5) make the entry run 25 bytes past the end of the file
    header = npy_bytes(np.zeros((1000, 2), np.float32))[:128]  # the .npy header only
    name, payload, claimed = b"X.npy", header + b"\x00" * 16, len(header) + 8000
    sizes = (claimed, claimed, len(name))
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 33, 0, *sizes, 0) + name
    entry = (20, 20, 0, 0, 0, 33, 0, *sizes, 0, 0, 0, 0, 0, 0)  # versions ... offset 0
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", *entry) + name
    comment = b" " * (claimed + 10 - (len(local) + len(payload) + len(central) + 22))
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(payload), len(comment)
    )
    path = tmp_path / "t.npz"
    path.write_bytes(local + payload + central + end + comment)
    assert path.stat().st_size == claimed + 10
    with pytest.raises(DataError, match=r"integrity check \(the file ends 25 bytes early\)"):
        read_npz(path, mmap=True)


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_read_npz_huge_header_on_tiny_file_allocates_nothing(tmp_path, mmap):
    header = npy_bytes(np.zeros((1, 1), np.float32))[:-4]  # .npy header of shape (1, 1)
    header = header.replace(b"(1, 1)", b"(1000000, 1000000)".ljust(6))  # 4 TB, same length
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header + b"\x00" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"declares shape \(1000000, 1000000\).*truncated"):
            read_npz(path, mmap=mmap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_load_passes_mmap_to_the_npz_reader(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.eye(3, dtype=np.float32))
    assert isinstance(load(tmp_path / "a.npz", mmap=True).X.base, np.memmap)
