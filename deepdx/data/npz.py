"""Read a NumPy ``.npz`` archive into a :class:`~deepdx.data.dataset.Dataset`, never unpickling.

Arrays read from the archive
----------------------------
X            (n, *sample_shape) numeric features (required)
y            (n,) or (n, k) targets: integers, strings or floats (optional)
class_names  (C,) str names of the integer classes ``0..C-1`` (optional)
is_test      (n,) bool rows of a predefined test set (optional)

Object arrays (ragged lists, Python objects) can only be loaded by unpickling, which can
run code from the file; they are refused with :class:`~deepdx.exceptions.UnsafeFileError`.

Before an array is read, its ``.npy`` header is checked against the zip entry that holds
it, so a hostile archive cannot make the reader allocate more than it stores:

- header bytes + prod(shape) * itemsize must equal the entry's uncompressed size;
- the entry's compressed size cannot exceed the archive's size on disk;
- uncompressed / compressed size must stay under 1100 (deflate, which
  ``np.savez_compressed`` uses, cannot pass 1032:1; a higher ratio is a decompression bomb).

Memory
------
Once the headers are checked, the bytes the load allocates are added up from them (the
arrays as stored, a float32 copy of X unless it is stored as C-ordered float32, and one
byte a value of X for the dataset's finite check) and compared with the available memory
(:mod:`deepdx.data._memory`): a file larger than memory raises a
:class:`~deepdx.exceptions.DataError` that names the fix instead of ending in an
out-of-memory kill. With ``mmap=True``, X is not read but memory-mapped: a read-only
``np.memmap`` of its bytes inside the archive, located from the zip entry's local header
and the ``.npy`` header. That needs X stored uncompressed (``np.savez``); the other
arrays, one value a row, are read. The CRC-32 of X's entry, which a read checks, is
checked over 16 MiB chunks of the file, so the file is read once but never held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, NamedTuple

import numpy as np

from deepdx.data._memory import check_fits_in_memory, dataset_bytes
from deepdx.data.dataset import Dataset, Task, from_arrays
from deepdx.exceptions import DataError, UnsafeFileError

__all__ = ["read_npz"]

_KEYS = ("X", "y", "class_names", "is_test")
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip entry, or an empty zip archive
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_OPCODE = 0x80  # first byte of a pickle of protocol 2 or later
_MAX_RATIO = 1100
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # zip local file header: magic ... name, extra length
_CRC_CHUNK = 1 << 24
# what zipfile and zlib raise on a damaged archive, besides the ValueError of a bad header
# (NotImplementedError: an unknown compression method; RuntimeError: an encrypted entry)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError)


def read_npz(
    path: str | os.PathLike[str],
    *,
    task: Task | None = None,
    name: str | None = None,
    mmap: bool = False,
) -> Dataset:
    """Load arrays ``X`` and optionally ``y``, ``class_names``, ``is_test`` from an NPZ file.

    Parameters
    ----------
    path : str or path-like
        An archive written by ``np.savez`` or ``np.savez_compressed``.
    task : {"classification", "regression", "unsupervised"}, optional
        Overrides the task inferred from ``y``.
    name : str, optional
        Dataset name; defaults to the file name without its suffix.
    mmap : bool, default=False
        Memory-map X from the file instead of reading it, for data larger than memory.
        X must be stored uncompressed (``np.savez``); stored as C-ordered float32, the
        dataset's X is a read-only view of the file and nothing is copied.

    Returns
    -------
    Dataset
        X float32 of shape (n, *sample_shape); y encoded as for
        :func:`~deepdx.data.dataset.from_arrays`.

    Raises
    ------
    UnsafeFileError
        If the file holds an object array or a pickle (loading would need unpickling), or
        an array that decompresses more than 1100-fold (a decompression bomb).
    DataError
        If the file is not a valid archive, has no ``X`` (the message lists its keys),
        an array's header disagrees with the bytes stored for it, the arrays do not
        fit together, the load does not fit in the available memory, or ``mmap=True``
        is asked of a compressed X.

    Notes
    -----
    Arrays are read with ``np.load(path, allow_pickle=False)``. Save labels that are
    strings as a fixed-width array (``np.asarray(labels, dtype=str)``), not as objects.
    The memory a load needs is checked first (see the module docstring). A memory-mapped
    X is still scanned once for NaN by the dataset, which reads the whole file.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> np.savez(path, X=np.eye(4), y=np.array(["a", "b", "a", "b"]))
    >>> ds = read_npz(path)
    >>> ds.X.shape, ds.class_names, ds.y.tolist()
    ((4, 4), ('a', 'b'), [0, 1, 0, 1])
    >>> np.savez(path, X=np.eye(4, dtype=np.float32))
    >>> type(read_npz(path, mmap=True).X.base).__name__
    'memmap'
    """
    path = Path(path)
    arrays = _load_arrays(path, mmap)
    dataset = from_arrays(
        arrays["X"],
        arrays.get("y"),
        task=task,
        name=name or path.stem,
        class_names=_class_names(arrays.get("class_names"), path),
    )
    if "is_test" not in arrays:
        return dataset
    is_test = arrays["is_test"]
    if is_test.dtype != np.bool_:
        raise DataError(
            f"array 'is_test' in {path.name!r} must be boolean (one flag per row); got "
            f"{is_test.dtype}. Save it as a bool array."
        )
    return dataclasses.replace(dataset, is_test=is_test)


# ----------------------------------------------------------------------------- helpers


class _Entry(NamedTuple):
    """What the zip entry of an array and its ``.npy`` header declare."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    n_header: int  # bytes of the .npy header at the start of the entry

    @property
    def nbytes(self) -> int:
        """Bytes of the array data."""
        return math.prod(self.shape) * self.dtype.itemsize


def _load_arrays(path: Path, mmap: bool) -> dict[str, np.ndarray]:
    """Return the known arrays of the archive, refusing anything that needs pickle."""
    if not path.is_file():
        raise DataError(f"NPZ file {str(path)!r} does not exist; check the path.")
    with path.open("rb") as handle, _open(handle, path) as archive:
        assert archive.zip is not None  # an open NpzFile holds its zip archive
        keys = list(archive.files)
        if "X" not in keys:
            raise DataError(
                f"NPZ file {path.name!r} has no array named 'X'; its arrays are {keys}. "
                "Save the features as X (np.savez(path, X=..., y=...))."
            )
        entries: dict[str, _Entry] = {}
        for key in (key for key in _KEYS if key in keys):
            with _reading(key, path):
                entries[key] = _check_entry(archive.zip, key, path)
        if mmap:
            _check_mappable(entries["X"], path)
        _check_fits(entries, path, mmap)
        arrays = {}
        for key in entries:
            with _reading(key, path):
                mapped = mmap and key == "X"
                arrays[key] = _map(entries[key], handle, path) if mapped else archive[key]
        return arrays


def _open(handle: BinaryIO, path: Path) -> np.lib.npyio.NpzFile:
    """Open a zip archive with pickle disabled; a pickle or a bare .npy array is refused."""
    magic = handle.read(len(_NPY_MAGIC))
    handle.seek(0)
    if magic.startswith(_NPY_MAGIC):
        raise DataError(
            f"{path.name!r} holds a single array, not an NPZ archive; save it with "
            "np.savez(path, X=features, y=labels)."
        )
    if magic[:1] == bytes([_PICKLE_OPCODE]):
        raise _unsafe(path, "the file", "it is a Python pickle")
    if not magic.startswith(_ZIP_MAGICS):
        raise DataError(
            f"{path.name!r} is not a readable NPZ archive (it starts with bytes "
            f"{magic.hex(' ') or 'nothing'}, not a zip header); write it with np.savez."
        )
    try:
        return np.load(handle, allow_pickle=False)
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise DataError(
            f"{path.name!r} is not a readable NPZ archive ({exc}); write it with np.savez."
        ) from exc


@contextlib.contextmanager
def _reading(key: str, path: Path) -> Iterator[None]:
    """Turn what zipfile and NumPy raise on a damaged entry into a DataError."""
    try:
        yield
    except (DataError, UnsafeFileError):  # already say what is wrong
        raise
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise DataError(
            f"array {key!r} in {path.name!r} cannot be read ({exc}); the archive is damaged. "
            "Write it again with np.savez."
        ) from exc


def _check_entry(archive: zipfile.ZipFile, key: str, path: Path) -> _Entry:
    """Check the ``.npy`` header of ``key`` against the sizes its zip entry records."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        raise DataError(
            f"entry {key!r} of {path.name!r} is not a .npy array; write the archive with np.savez."
        ) from None
    with archive.open(info) as stream:
        dtype, shape, fortran = _read_npy_header(stream)
        n_header = stream.tell()
    if dtype.hasobject:
        raise _unsafe(path, f"array {key!r}", f"its dtype {dtype} holds Python objects")
    stored = info.file_size - n_header
    if stored != math.prod(shape) * dtype.itemsize:
        raise DataError(
            f"array {key!r} in {path.name!r} declares shape {shape} of {dtype} "
            f"({math.prod(shape) * dtype.itemsize} bytes) but its entry holds {stored}; the "
            "file is truncated or corrupt. Write it again with np.savez."
        )
    if info.compress_size > path.stat().st_size or info.file_size > _MAX_RATIO * max(
        info.compress_size, 1
    ):
        raise UnsafeFileError(
            f"array {key!r} in {path.name!r} claims {info.file_size} bytes from "
            f"{info.compress_size} compressed bytes in a {path.stat().st_size}-byte file, "
            f"more than deflate can expand (at most {_MAX_RATIO}-fold); it is a "
            "decompression bomb or corrupt and was not read."
        )
    return _Entry(info, dtype, shape, fortran, n_header)


def _check_mappable(x: _Entry, path: Path) -> None:
    """Raise a DataError unless the entry of X is stored uncompressed, so it can be mapped."""
    if x.info.compress_type != zipfile.ZIP_STORED:
        raise DataError(
            f"array 'X' in {path.name!r} is compressed and cannot be memory-mapped; save the "
            "archive uncompressed with np.savez (not np.savez_compressed) to read it with "
            "mmap=True, or read it with mmap=False."
        )


def _check_fits(entries: dict[str, _Entry], path: Path, mmap: bool) -> None:
    """Raise a DataError unless the arrays, and the float32 copy of X if any, fit in memory."""
    x = entries["X"]
    converted = x.dtype != np.float32 or (x.fortran and len(x.shape) > 1)
    stored = sum(entry.nbytes for key, entry in entries.items() if not (mmap and key == "X"))
    steps = ["save X as C-ordered float32 so that it needs no float32 copy"] if converted else []
    if not mmap and x.info.compress_type != zipfile.ZIP_STORED:
        steps.append("save the archive uncompressed with np.savez (not np.savez_compressed)")
    if not mmap:
        steps.append("read it with mmap=True (read_npz or load) to map X from the file")
    fix = "; ".join(steps) if steps else "free memory or split the data into smaller files"
    check_fits_in_memory(
        stored + dataset_bytes(math.prod(x.shape), copy=converted),
        what=f"reading {path.name!r}",
        fix=f"{fix}.",
    )


def _map(x: _Entry, handle: BinaryIO, path: Path) -> np.memmap:
    """Memory-map an uncompressed entry once its CRC-32 is checked: skip the two headers."""
    handle.seek(x.info.header_offset)
    local = handle.read(_LOCAL_HEADER.size)  # zipfile checked it when it read the .npy header
    _, n_name, n_extra = _LOCAL_HEADER.unpack(local)
    start = x.info.header_offset + _LOCAL_HEADER.size + n_name + n_extra  # the entry's bytes
    _check_crc(x, handle, start, path)
    order = "F" if x.fortran else "C"
    return np.memmap(
        path, dtype=x.dtype, mode="r", offset=start + x.n_header, shape=x.shape, order=order
    )


def _check_crc(x: _Entry, handle: BinaryIO, start: int, path: Path) -> None:
    """Check the entry's CRC-32 (what zipfile checks on a read) over chunks of the file."""
    handle.seek(start)
    crc, remaining = 0, x.info.file_size
    while remaining:
        chunk = handle.read(min(_CRC_CHUNK, remaining))
        if not chunk:
            break
        crc, remaining = zlib.crc32(chunk, crc), remaining - len(chunk)
    if remaining or crc != x.info.CRC:
        problem = f"the file ends {remaining} bytes early" if remaining else "its CRC-32 differs"
        raise DataError(
            f"array {x.info.filename.removesuffix('.npy')!r} in {path.name!r} fails its "
            f"integrity check ({problem}); the archive is truncated or damaged. Write it "
            "again with np.savez."
        )


def _read_npy_header(stream: IO[bytes]) -> tuple[np.dtype, tuple[int, ...], bool]:
    """Return the dtype, shape and Fortran order a ``.npy`` header declares, reading no more."""
    major, minor = np.lib.format.read_magic(stream)
    read_header = getattr(np.lib.format, f"read_array_header_{major}_{minor}", None)
    if read_header is None:
        raise ValueError(f"unsupported .npy format version {major}.{minor}")
    shape, fortran, dtype = read_header(stream)
    return dtype, shape, fortran


def _class_names(names: np.ndarray | None, path: Path) -> tuple[str, ...] | None:
    """Return the class names as strings; the array must be 1-D."""
    if names is None:
        return None
    if names.ndim != 1:
        raise DataError(
            f"array 'class_names' in {path.name!r} must be 1-D (one name per class); got "
            f"shape {names.shape}. Save it as np.asarray(names, dtype=str)."
        )
    return tuple(str(name) for name in names)


def _unsafe(path: Path, what: str, reason: object) -> UnsafeFileError:
    """Build the error for content that only unpickling could load."""
    return UnsafeFileError(
        f"{what} in {path.name!r} can only be loaded by unpickling ({reason}), and deepdx "
        "never unpickles a file because that can run code. Save numeric arrays, and "
        "string labels as a fixed-width array: np.asarray(labels, dtype=str)."
    )
