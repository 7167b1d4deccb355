import gzip
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdx.data.idx import load_idx, read_idx, write_idx
from deepdx.exceptions import DataError

from .helpers import idx_bytes, write_bytes

CASES = [
    (np.uint8, 0x08, (5, 28, 28)),
    (np.int8, 0x09, (7,)),
    (np.int16, 0x0B, (3, 4)),
    (np.int32, 0x0C, (2, 3, 4)),
    (np.float32, 0x0D, (6, 2)),
    (np.float64, 0x0E, (4,)),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(("dtype", "code", "shape"), CASES, ids=lambda c: str(c))
def test_read_idx_round_trip(tmp_path, gz, dtype, code, shape):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=shape) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(("dtype", "code", "shape"), CASES, ids=lambda c: str(c))
def test_write_idx_matches_hand_built_bytes(tmp_path, dtype, code, shape):
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == idx_bytes(array, code)


def test_read_idx_reads_hand_built_gz_file(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_bytes(tmp_path / "x-idx3-ubyte.gz", idx_bytes(array, 0x08))
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_read_idx_rejects_truncated_file(tmp_path, name):
    data = idx_bytes(np.zeros((10, 28, 28), np.uint8), 0x08)
    path = write_bytes(tmp_path / name, data[:-100])
    with pytest.raises(DataError, match=r"truncated: its header promises 7840 data bytes"):
        read_idx(path)


def test_read_idx_rejects_truncated_header(tmp_path):
    data = idx_bytes(np.zeros((10, 28, 28), np.uint8), 0x08)
    path = write_bytes(tmp_path / "x.idx", data[:9])
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path):
    data = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    path = write_bytes(tmp_path / "x.idx", data + b"\x00")
    with pytest.raises(DataError, match="bytes after the 6 data bytes"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_read_idx_rejects_oversized_header_without_allocating(tmp_path, gz):
    header = struct.pack(">BBBB", 0, 0, 0x0E, 3) + struct.pack(">3I", *(2**32 - 1,) * 3)
    path = write_bytes(tmp_path / ("x.idx.gz" if gz else "x.idx"), header + b"\x00" * 64)
    with pytest.raises(DataError, match="truncated.*only 64 follow"):
        read_idx(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "must start with bytes 00 00"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown dtype code 0x07"),
        (b"\x00\x00\x08\x00\x00", "declares 0 dimensions"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x00", "empty dimension"),
        (b"", "an empty file"),
    ],
    ids=["magic", "dtype", "ndim", "zero-dim", "empty"],
)
def test_read_idx_rejects_bad_header(tmp_path, data, message):
    path = write_bytes(tmp_path / "x.idx", data)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "x.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8), 0x08))[:20])
    with pytest.raises(DataError, match="could not be read|truncated"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="got 1-D int64"):
        write_idx(tmp_path / "x.idx", np.arange(3))


def test_load_idx_scales_images_and_adds_channel(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    write_idx(tmp_path / "x-idx3-ubyte", images)
    write_idx(tmp_path / "y-idx1-ubyte", np.array([0, 1, 2, 0, 1, 2], np.uint8))
    ds = load_idx(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte")
    assert ds.X.shape == (6, 1, 5, 4) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X[:, 0], images / 255.0, rtol=1e-6)
    assert ds.y.tolist() == [0, 1, 2, 0, 1, 2] and ds.task == "classification"


def test_load_idx_rejects_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "x-idx3-ubyte", np.zeros((6, 5, 4), np.uint8))
    write_idx(tmp_path / "y-idx1-ubyte", np.array([0, 1, 0, 1, 0], np.uint8))
    with pytest.raises(DataError, match=r"holds \(5,\) labels .* holds 6 images"):
        load_idx(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte")


def test_load_idx_rejects_labels_file_as_images(tmp_path):
    write_idx(tmp_path / "y-idx1-ubyte", np.array([0, 1], np.uint8))
    with pytest.raises(DataError, match="1-D array of 2 values"):
        load_idx(tmp_path / "y-idx1-ubyte")


# ----------------------------------------------------------------------------- mmap


@pytest.mark.parametrize(("dtype", "code", "shape"), CASES, ids=lambda c: str(c))
def test_read_idx_mmap_maps_the_file_and_equals_read(tmp_path, dtype, code, shape):
    array = (np.random.default_rng(0).normal(size=shape) * 50).astype(dtype)
    path = write_bytes(tmp_path / "a.idx", idx_bytes(array, code))
    mapped = read_idx(path, mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.shape == shape
    assert mapped.offset == 4 + 4 * len(shape) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, read_idx(path))
    again = np.memmap(path, dtype=mapped.dtype, mode="r", offset=mapped.offset, shape=shape)
    np.testing.assert_array_equal(mapped, again)  # the file's bytes, as mapped by hand


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    case=st.sampled_from(CASES),
    seed=st.integers(0, 2**16),
)
def test_read_idx_mmap_equals_read_property(tmp_path_factory, shape, case, seed):
    dtype, code, _ = case
    array = (np.random.default_rng(seed).normal(size=shape) * 100).astype(dtype)
    path = write_bytes(tmp_path_factory.mktemp("idx") / "a.idx", idx_bytes(array, code))
    np.testing.assert_array_equal(read_idx(path, mmap=True), array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_mmap_refuses_gzip_with_the_fix(tmp_path):
    path = tmp_path / "a.idx.gz"
    write_idx(path, np.zeros((2, 3), np.uint8))
    with pytest.raises(DataError, match=r"gzipped and cannot be memory-mapped.*gunzip a.idx.gz"):
        read_idx(path, mmap=True)


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_read_idx_checks_size_on_disk_before_reading(tmp_path, mmap):
    data = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    short = write_bytes(tmp_path / "short.idx", data[:-1])
    with pytest.raises(DataError, match="truncated.*promises 6 data bytes.*only 5 follow"):
        read_idx(short, mmap=mmap)
    padded = write_bytes(tmp_path / "padded.idx", data + b"\x00")
    with pytest.raises(DataError, match="bytes after the 6 data bytes"):
        read_idx(padded, mmap=mmap)


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_read_idx_huge_header_on_tiny_file_allocates_nothing(tmp_path, mmap):
    header = struct.pack(">BBBB", 0, 0, 0x0D, 2) + struct.pack(">2I", 10**6, 10**6)  # 4 TB
    path = write_bytes(tmp_path / "x.idx", header + b"\x00" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="truncated.*only 64 follow"):
            read_idx(path, mmap=mmap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_load_idx_mmap_equals_load(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 5), dtype=np.uint8)
    write_idx(tmp_path / "x-idx3-ubyte", images)
    write_idx(tmp_path / "y-idx1-ubyte", np.arange(6, dtype=np.uint8) % 2)
    read = load_idx(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte")
    mapped = load_idx(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte", mmap=True)
    np.testing.assert_array_equal(mapped.X, read.X)
    np.testing.assert_array_equal(mapped.y, read.y)
