"""Hostile files for the security tests, built in memory.

Every pickle here holds a :class:`Plant`, whose unpickling calls ``os.mkdir(sentinel)``:
if a reader ever unpickled one, the sentinel folder would appear. ``test_untrusted_files``
first proves that each payload is live (loading it unsafely does create the sentinel).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PICKLE_PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))


class Plant:
    """Unpickling this creates the folder ``sentinel``; nothing else happens."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.mkdir, (self.sentinel,))


def pickle_bytes(sentinel: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps({"X": Plant(sentinel)}, protocol=protocol)


def torch_save_bytes(sentinel: Path, *, zip_format: bool = True) -> bytes:
    """A ``torch.save`` file (zip archive, or the legacy bare pickle) holding a Plant."""
    buffer = io.BytesIO()
    state = {"weight": torch.zeros(2), "plant": Plant(sentinel)}
    torch.save(state, buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def object_array(sentinel: Path) -> np.ndarray:
    array = np.empty(3, dtype=object)
    array[:] = [Plant(sentinel), 1, 2]
    return array


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive with the given raw entries (``X.npy`` ...)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def set_zip_header_byte(data: bytes, field: int, value: int) -> bytes:
    """Set byte ``field`` of the local header of a one-entry zip, and of its central entry.

    ``field`` 6 holds the flags (bit 0: encrypted), 8 the compression method.
    """
    patched = bytearray(data)
    central = patched.rfind(b"PK\x01\x02")
    patched[field] = value
    patched[central + field + 2] = value  # a central entry has 2 more bytes before it
    return bytes(patched)


def npy_header_bytes(header: str, body: bytes = b"") -> bytes:
    """A version-1.0 ``.npy`` file with a hand-written header dict (padded to 64 bytes)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(text) + pad + 1)
        + text
        + b" " * pad
        + b"\n"
        + body
    )


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def gzip_bomb(payload: bytes, n_mib: int) -> bytes:
    """``payload`` then ``n_mib`` MiB of zeros, as gzip members of ~1 KiB each."""
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    return gzip.compress(payload, mtime=0) + zeros * n_mib


def safetensors_bytes(header: object, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def png_bytes(width: int = 4, height: int = 3, shade: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), shade).save(buffer, "PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` 1-bit pixels but stores one empty row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00")
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)


EPS_BYTES = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n0 0 moveto showpage\n%%EOF\n"


def forge(folder: Path, name: str, data: bytes) -> None:
    """Replace a checkpoint file and rewrite its manifest entry so the hashes match."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
