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
"""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from deepdx.data.dataset import Dataset, Task, from_arrays
from deepdx.exceptions import DataError, UnsafeFileError

__all__ = ["read_npz"]

_KEYS = ("X", "y", "class_names", "is_test")
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip entry, or an empty zip archive
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_OPCODE = 0x80  # first byte of a pickle of protocol 2 or later
_MAX_RATIO = 1100
# what zipfile and zlib raise on a damaged archive, besides the ValueError of a bad header
# (NotImplementedError: an unknown compression method; RuntimeError: an encrypted entry)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError)


def read_npz(
    path: str | os.PathLike[str],
    *,
    task: Task | None = None,
    name: str | None = None,
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
        an array's header disagrees with the bytes stored for it, or the arrays do not
        fit together.

    Notes
    -----
    Arrays are read with ``np.load(path, allow_pickle=False)``. Save labels that are
    strings as a fixed-width array (``np.asarray(labels, dtype=str)``), not as objects.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> np.savez(path, X=np.eye(4), y=np.array(["a", "b", "a", "b"]))
    >>> ds = read_npz(path)
    >>> ds.X.shape, ds.class_names, ds.y.tolist()
    ((4, 4), ('a', 'b'), [0, 1, 0, 1])
    """
    path = Path(path)
    arrays = _load_arrays(path)
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


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Return the known arrays of the archive, refusing anything that needs pickle."""
    if not path.is_file():
        raise DataError(f"NPZ file {str(path)!r} does not exist; check the path.")
    with path.open("rb") as handle, _open(handle, path) as archive:
        keys = list(archive.files)
        if "X" not in keys:
            raise DataError(
                f"NPZ file {path.name!r} has no array named 'X'; its arrays are {keys}. "
                "Save the features as X (np.savez(path, X=..., y=...))."
            )
        return {key: _member(archive, key, path) for key in _KEYS if key in keys}


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


def _member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """Read one array once its header fits its zip entry; object arrays are refused."""
    assert archive.zip is not None  # an open NpzFile holds its zip archive
    try:
        _check_entry(archive.zip, key, path)
        return archive[key]
    except (DataError, UnsafeFileError):  # already say what is wrong
        raise
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise DataError(
            f"array {key!r} in {path.name!r} cannot be read ({exc}); the archive is damaged. "
            "Write it again with np.savez."
        ) from exc


def _check_entry(archive: zipfile.ZipFile, key: str, path: Path) -> None:
    """Check the ``.npy`` header of ``key`` against the sizes its zip entry records."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        raise DataError(
            f"entry {key!r} of {path.name!r} is not a .npy array; write the archive with np.savez."
        ) from None
    with archive.open(info) as stream:
        dtype, shape = _read_npy_header(stream)
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


def _read_npy_header(stream: IO[bytes]) -> tuple[np.dtype, tuple[int, ...]]:
    """Return the dtype and shape a ``.npy`` header declares, reading nothing more."""
    major, minor = np.lib.format.read_magic(stream)
    read_header = getattr(np.lib.format, f"read_array_header_{major}_{minor}", None)
    if read_header is None:
        raise ValueError(f"unsupported .npy format version {major}.{minor}")
    shape, _, dtype = read_header(stream)
    return dtype, shape


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
