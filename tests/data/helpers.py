"""IDX fixture files built by hand, independent of deepdx.data.idx."""

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Build an IDX file by hand (reference for write_idx): magic, dims, big-endian data."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_bytes(path: Path, data: bytes) -> Path:
    """Write raw bytes, gzipped when the name ends in .gz."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path
