"""Regressions of read_npz on hostile archives (found by the security suite and the fuzzer)."""

import pickle
import zipfile

import numpy as np
import pytest

from deepdx.data import read_npz
from deepdx.exceptions import DataError, UnsafeFileError
from tests.security import payloads


def _write(tmp_path, data: bytes):
    path = tmp_path / "data.npz"
    path.write_bytes(data)
    return path


def _archive(compression=zipfile.ZIP_STORED, **arrays) -> bytes:
    members = {f"{key}.npy": payloads.npy_bytes(np.asarray(a)) for key, a in arrays.items()}
    return payloads.npz_bytes(members, compression)


HUGE = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }"


def test_read_npz_huge_declared_shape_raises_data_error_without_allocating(tmp_path):
    # was: MemoryError, "Unable to allocate 72.8 TiB"
    path = _write(tmp_path, payloads.npz_bytes({"X.npy": payloads.npy_header_bytes(HUGE)}))
    with pytest.raises(DataError, match=r"declares shape \(10000000000000,\)"):
        read_npz(path)


def test_read_npz_bare_npy_with_huge_shape_is_refused_before_loading(tmp_path):
    # was: MemoryError, np.load read the array before the type was checked
    with pytest.raises(DataError, match="holds a single array"):
        read_npz(_write(tmp_path, payloads.npy_header_bytes(HUGE)))


def test_read_npz_truncated_entry_is_a_data_error_not_a_pickle(tmp_path):
    # was: UnsafeFileError "can only be loaded by unpickling (EOF: reading array data...)"
    data = payloads.npz_bytes({"X.npy": payloads.npy_bytes(np.eye(8))[:-16]})
    with pytest.raises(DataError, match="but its entry holds 496"):
        read_npz(_write(tmp_path, data))


def test_read_npz_bzip2_bomb_is_refused(tmp_path):
    # was: 16 MB allocated and filled from a file of a few hundred bytes
    data = _archive(zipfile.ZIP_BZIP2, X=np.zeros((2_000_000, 1)))
    with pytest.raises(UnsafeFileError, match="decompression bomb"):
        read_npz(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: d.replace(np.full(4, 7.0).tobytes(), np.full(4, 8.0).tobytes()), "Bad CRC-32"),
        (lambda d: payloads.set_zip_header_byte(d, 6, 1), "encrypted"),
        (lambda d: payloads.set_zip_header_byte(d, 8, 99), "compression method"),
    ],
    ids=["bad-crc", "encrypted", "unknown-method"],
)
def test_read_npz_damaged_entry_raises_data_error(tmp_path, damage, match):
    # was: zipfile.BadZipFile, RuntimeError and NotImplementedError leaking out
    data = _archive(X=np.full((4, 1), 7.0))
    with pytest.raises(DataError, match=match):
        read_npz(_write(tmp_path, damage(data)))


def test_read_npz_corrupt_deflate_stream_raises_data_error(tmp_path):
    # was: zlib.error: Error -3 while decompressing data
    data = bytearray(_archive(zipfile.ZIP_DEFLATED, X=np.random.default_rng(0).random((30, 2))))
    data[100] ^= 0xFF
    data[120] ^= 0x55
    with pytest.raises(DataError, match="cannot be read"):
        read_npz(_write(tmp_path, bytes(data)))


def test_read_npz_zero_dimensional_class_names_raises_data_error(tmp_path):
    # was: TypeError: iteration over a 0-d array
    data = _archive(X=np.eye(3), y=np.array([0, 1, 0]), class_names=np.array("a"))
    with pytest.raises(DataError, match="'class_names' .* must be 1-D"):
        read_npz(_write(tmp_path, data))


def test_read_npz_entry_that_is_not_npy_raises_data_error(tmp_path):
    # was: AttributeError: 'bytes' object has no attribute 'dtype' (np.load returned bytes)
    data = payloads.npz_bytes({"X.npy": payloads.npy_bytes(np.eye(2)), "is_test": b"\x01\x00"})
    with pytest.raises(DataError, match="entry 'is_test' .* is not a .npy array"):
        read_npz(_write(tmp_path, data))


def test_read_npz_text_file_is_not_reported_as_a_pickle(tmp_path):
    # was: UnsafeFileError "can only be loaded by unpickling" for any non-zip file
    with pytest.raises(DataError, match="not a readable NPZ archive"):
        read_npz(_write(tmp_path, b"X,y\n1,2\n"))
    with pytest.raises(UnsafeFileError, match="is a Python pickle"):
        read_npz(_write(tmp_path, pickle.dumps([1, 2])))
