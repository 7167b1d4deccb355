"""Read a NumPy ``.npz`` archive into a :class:`~deepdx.data.dataset.Dataset`, never unpickling.

Arrays read from the archive
----------------------------
X            (n, *sample_shape) numeric features (required)
y            (n,) or (n, k) targets: integers, strings or floats (optional)
class_names  (C,) str names of the integer classes ``0..C-1`` (optional)
is_test      (n,) bool rows of a predefined test set (optional)

Object arrays (ragged lists, Python objects) can only be loaded by unpickling, which can
run code from the file; they are refused with :class:`~deepdx.exceptions.UnsafeFileError`.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from deepdx.data.dataset import Dataset, Task, from_arrays
from deepdx.exceptions import DataError, UnsafeFileError

__all__ = ["read_npz"]

_KEYS = ("X", "y", "class_names", "is_test")


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
        If the file holds an object array or a pickle (loading would need unpickling).
    DataError
        If the file is not a valid archive, has no ``X`` (the message lists its keys),
        or its arrays do not fit together.

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
    class_names = arrays.get("class_names")
    dataset = from_arrays(
        arrays["X"],
        arrays.get("y"),
        task=task,
        name=name or path.stem,
        class_names=None if class_names is None else tuple(str(c) for c in class_names),
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
    """Open the archive with pickle disabled; a pickle or a bare .npy array is refused."""
    try:
        archive = np.load(handle, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"{path.name!r} is not a readable NPZ archive ({exc}); write it with np.savez."
        ) from exc
    except ValueError as exc:  # np.load refuses a pickle file when allow_pickle=False
        raise _unsafe(path, "the file", exc) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path.name!r} holds a single array, not an NPZ archive; save it with "
            "np.savez(path, X=features, y=labels)."
        )
    return archive


def _member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """Read one array; object arrays raise UnsafeFileError."""
    try:
        return archive[key]
    except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise _unsafe(path, f"array {key!r}", exc) from exc


def _unsafe(path: Path, what: str, exc: ValueError) -> UnsafeFileError:
    """Build the error for content that only unpickling could load."""
    return UnsafeFileError(
        f"{what} in {path.name!r} can only be loaded by unpickling ({exc}), and deepdx "
        "never unpickles a file because that can run code. Save numeric arrays, and "
        "string labels as a fixed-width array: np.asarray(labels, dtype=str)."
    )
