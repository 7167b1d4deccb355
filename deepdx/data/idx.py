"""Read and write IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a header followed by one big-endian array::

    bytes 0-1   0x00 0x00                  (magic)
    byte  2     dtype code                 (0x08 uint8, 0x09 int8, 0x0B int16,
                                            0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     ndim                       (number of dimensions, >= 1)
    4 * ndim    dims d_1 ... d_ndim        (big-endian uint32)
    rest        d_1 * ... * d_ndim values  (big-endian, C order)

The reader checks every field and that the file holds exactly the bytes the header
promises, so a truncated or padded download is reported, never silently cut short.
It never reads more than the header promises plus one byte, so a header that claims
an absurd size fails cleanly without allocating it.

Memory
------
Before reading, the bytes a load allocates are computed from the header and checked
against the available memory (:mod:`deepdx.data._memory`), so a file larger than memory
raises a :class:`~deepdx.exceptions.DataError` naming the fix instead of ending in an
out-of-memory kill. ``mmap=True`` maps an uncompressed file instead of reading it: the
array is a read-only ``np.memmap`` of the file, and only the pages used are loaded.

Symbols
-------
n        number of items (d_1)
X        (n, H, W) images as stored; (n, 1, H, W) float32 in [0, 1] after :func:`load_idx`
y        (n,) int64 labels
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np

from deepdx.data._memory import check_fits_in_memory, dataset_bytes
from deepdx.data.dataset import Dataset, from_arrays
from deepdx.exceptions import DataError

__all__ = ["load_idx", "read_idx", "write_idx"]


class _Readable(Protocol):
    """A binary stream: an open file or a GzipFile."""

    def read(self, size: int = -1, /) -> bytes: ...  # noqa: D102


# dtype code -> big-endian NumPy dtype
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[str, int] = {dtype.str[1:]: code for code, dtype in _DTYPES.items()}
_MAX_NDIM = 16
_CHUNK = 1 << 20
_MAX_RATIO = 1100  # deflate (gzip) cannot expand data more than 1032-fold
_TO_NPZ = (
    "for features larger than memory, write them once as float32 to an uncompressed NPZ "
    "file (np.savez, e.g. from np.lib.format.open_memmap filled in chunks) and read it "
    "with read_npz(path, mmap=True)."
)


def read_idx(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed) into a native-endian array.

    Parameters
    ----------
    path : str or path-like
        The file. A name ending in ``.gz`` is read through gzip.
    mmap : bool, default=False
        Memory-map the file instead of reading it: the result is a read-only
        ``np.memmap`` of the data bytes, with the file's big-endian dtype, and nothing is
        copied. Needs an uncompressed file.

    Returns
    -------
    ndarray of shape (d_1, ..., d_ndim)
        The values, with the dtype the header names (uint8 for MNIST).

    Raises
    ------
    DataError
        If the magic number, dtype code or dimensions are invalid, if the file is
        shorter or longer than its header says, if it does not fit in the available
        memory (without ``mmap``), or if ``mmap=True`` is asked of a gzipped file.

    Notes
    -----
    Expected size = 4 + 4 * ndim + prod(dims) * itemsize bytes, checked against the size
    of an uncompressed file before anything is read. At most that many bytes plus one
    are read, in 1 MiB chunks, so a corrupt header cannot trigger a huge allocation.
    Reading holds about twice the data bytes at its peak (the bytes read and the
    native-endian array); that, or for a gzipped file twice the most its deflate stream
    can expand to (1100-fold), must fit in the available memory.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "images-idx3-ubyte.gz"
    >>> write_idx(path, np.zeros((5, 28, 28), np.uint8))
    >>> read_idx(path).shape
    (5, 28, 28)
    >>> write_idx(path.with_suffix(""), np.zeros((5, 28, 28), np.uint8))
    >>> type(read_idx(path.with_suffix(""), mmap=True)).__name__
    'memmap'
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {str(path)!r} does not exist; check the path.")
    gz = path.suffix == ".gz"
    if mmap and gz:
        raise DataError(
            f"IDX file {str(path)!r} is gzipped and cannot be memory-mapped; decompress it "
            f"(gunzip {path.name}) and read the uncompressed file with mmap=True."
        )
    try:
        with (gzip.open if gz else open)(path, "rb") as stream:
            dtype, dims = _read_header(stream, path)
            n_bytes = math.prod(dims) * dtype.itemsize
            if not gz:  # the data bytes on disk, before reading any of them
                _check_body_length(path.stat().st_size - 4 - 4 * len(dims), n_bytes, dims, path)
            if mmap:
                return np.memmap(path, dtype=dtype, mode="r", offset=4 + 4 * len(dims), shape=dims)
            _check_read_fits(path, n_bytes, gz)
            body = _read_at_most(stream, n_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:  # gzip raises these for corrupt streams
        raise DataError(
            f"IDX file {str(path)!r} could not be read ({exc}); download it again."
        ) from exc
    _check_body_length(len(body), n_bytes, dims, path)
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``).

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : ndarray of shape (d_1, ..., d_ndim)
        uint8, int8, int16, int32, float32 or float64 values, at least 1-D.

    Raises
    ------
    DataError
        If the dtype has no IDX code or the array is 0-D.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> write_idx(path, np.arange(3, dtype=np.uint8))
    >>> path.read_bytes()[:4].hex(), read_idx(path).tolist()
    ('00000801', [0, 1, 2])
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.str[1:])
    if code is None or array.ndim == 0 or array.ndim > _MAX_NDIM:
        raise DataError(
            f"write_idx needs a 1-D to {_MAX_NDIM}-D array of uint8, int8, int16, int32, "
            f"float32 or float64; got {array.ndim}-D {array.dtype}. Convert it with astype."
        )
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + body)


def load_idx(
    images: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    class_names: tuple[str, ...] | None = None,
    mmap: bool = False,
) -> Dataset:
    """Load an IDX images file, and optionally its labels file, as a :class:`Dataset`.

    Parameters
    ----------
    images : str or path-like
        IDX file of shape (n, H, W) (images) or (n, d) (feature rows).
    labels : str or path-like, optional
        IDX file of shape (n,) with integer class labels. Without it the dataset is
        unsupervised.
    name : str, optional
        Dataset name; defaults to the images file name.
    class_names : tuple of str, optional
        Names of the classes ``0..C-1``.
    mmap : bool, default=False
        Memory-map the (uncompressed) images file instead of reading it, so that memory
        holds the float32 features (4 bytes a value) but not the raw bytes as well.
        Labels are always read.

    Returns
    -------
    Dataset
        X float32 of shape (n, 1, H, W) for images (uint8 values divided by 255, so in
        [0, 1]) or (n, d); y int64 of shape (n,) or None.

    Raises
    ------
    DataError
        If a file is invalid, the images file is 1-D, the label count does not match
        the image count, or the features do not fit in the available memory.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_idx(root / "x-idx3-ubyte", np.full((4, 2, 3), 255, np.uint8))
    >>> write_idx(root / "y-idx1-ubyte", np.array([0, 1, 0, 1], np.uint8))
    >>> ds = load_idx(root / "x-idx3-ubyte", root / "y-idx1-ubyte")
    >>> ds.X.shape, float(ds.X.max()), ds.y.tolist()
    ((4, 1, 2, 3), 1.0, [0, 1, 0, 1])
    """
    X = idx_features(read_idx(images, mmap=mmap), images)
    name = name or Path(images).name
    if labels is None:
        return from_arrays(X, name=name)
    y = read_idx(labels)
    check_label_count(y, len(X), labels, images)
    return from_arrays(X, y.astype(np.int64), name=name, class_names=class_names)


# ----------------------------------------------------------------------------- helpers


def idx_features(array: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """Turn an IDX array into float32 features: uint8 images / 255, with a channel axis."""
    if array.ndim < 2:
        raise DataError(
            f"IDX file {str(path)!r} holds a 1-D array of {len(array)} values (labels?); "
            "pass the images file as the first argument and the labels as labels=."
        )
    check_fits_in_memory(
        dataset_bytes(array.size, copy=True),
        what=f"converting IDX file {Path(path).name!r} to float32 features",
        fix=f"free memory or use fewer rows; {_TO_NPZ}",
    )
    features = array.astype(np.float32)
    if array.dtype == np.uint8:
        features /= 255.0  # (n, ...) in [0, 1]
    return features[:, None] if array.ndim == 3 else features  # (n, 1, H, W) for images


def check_label_count(
    y: np.ndarray, n_images: int, labels: str | os.PathLike[str], images: str | os.PathLike[str]
) -> None:
    """Raise a DataError unless ``y`` is 1-D with one label per image."""
    if y.ndim != 1 or len(y) != n_images:
        raise DataError(
            f"labels file {str(labels)!r} holds {y.shape} labels but images file "
            f"{str(images)!r} holds {n_images} images; give the labels file that belongs "
            "to these images (one label per image)."
        )


def _read_header(stream: _Readable, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Read and validate the magic number, dtype code and dimensions."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{str(path)!r} is not an IDX file: it must start with bytes 00 00; got "
            f"{magic.hex(' ') or 'an empty file'}. Check that it is an MNIST-format file."
        )
    code, ndim = magic[2], magic[3]
    if code not in _DTYPES:
        raise DataError(
            f"IDX file {str(path)!r} has unknown dtype code 0x{code:02X}; expected one of "
            f"{', '.join(f'0x{c:02X}' for c in _DTYPES)}. The file is corrupt or not IDX."
        )
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(
            f"IDX file {str(path)!r} declares {ndim} dimensions; expected 1 to {_MAX_NDIM}. "
            "The file is corrupt or not IDX."
        )
    raw = stream.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(
            f"IDX file {str(path)!r} is truncated inside its header ({ndim} dimensions "
            "declared); download the file again."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    if 0 in dims:
        raise DataError(f"IDX file {str(path)!r} has an empty dimension in shape {dims}.")
    return _DTYPES[code], dims


def _check_body_length(size: int, n_bytes: int, dims: tuple[int, ...], path: Path) -> None:
    """Raise a DataError unless exactly ``n_bytes`` data bytes follow the header."""
    if size < n_bytes:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: its header promises {n_bytes} data bytes "
            f"for shape {dims}, but only {size} follow. Download the file again."
        )
    if size > n_bytes:
        raise DataError(
            f"IDX file {str(path)!r} has bytes after the {n_bytes} data bytes its header "
            f"promises for shape {dims}; the file is corrupt. Download it again."
        )


def _check_read_fits(path: Path, n_bytes: int, gz: bool) -> None:
    """Raise a DataError unless reading ``n_bytes`` (twice, at the peak) fits in memory."""
    if gz:  # a truncated stream holds less than its header says: bound it by deflate's ratio
        n_bytes = min(n_bytes, _MAX_RATIO * path.stat().st_size)
    fix = (
        f"decompress it (gunzip {path.name}) and read it with mmap=True"
        if gz
        else "read it with mmap=True (read_idx(path, mmap=True)) to map the file instead"
    )
    check_fits_in_memory(2 * n_bytes, what=f"reading IDX file {path.name!r}", fix=f"{fix}.")


def _read_at_most(stream: _Readable, limit: int) -> bytes:
    """Read until EOF or ``limit`` bytes, in chunks, so ``limit`` is never allocated blindly."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
