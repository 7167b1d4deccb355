"""Regression: read_idx let zlib.error out of a gzip file with a corrupt deflate stream."""

import gzip

import numpy as np
import pytest

from deepdx.data import read_idx
from deepdx.exceptions import DataError
from tests.security import payloads


def test_read_idx_corrupt_deflate_stream_raises_data_error(tmp_path):
    data = bytearray(gzip.compress(payloads.idx_bytes(np.zeros((4, 25), np.uint8)), mtime=0))
    data[12] ^= 0xFF  # inside the deflate stream, past the 10-byte gzip header
    path = tmp_path / "x-idx2-ubyte.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="could not be read"):
        read_idx(path)
