"""The ``Dataset`` record every part of deepdx passes around, and building one from arrays.

Symbols
-------
n        number of samples
X        (n, *sample_shape) float32 features; images are (n, C, H, W)
y        (n,) int64 class indices (classification), (n,) or (n, k) float32 targets
         (regression), or None (unsupervised)
is_test  (n,) bool, rows of an official test set (MNIST's 10,000), or None
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from deepdx.exceptions import DataError

__all__ = ["TASKS", "Dataset", "Task", "from_arrays"]

Task = Literal["classification", "regression", "unsupervised"]
TASKS: tuple[str, ...] = ("classification", "regression", "unsupervised")

_FINITE_CHECK_BYTES = 16 * 2**20
"""The finite check reads X in row chunks of about this size, so its boolean mask stays
small even for a memory-mapped X larger than memory."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, targets and what they mean, validated on construction.

    Parameters
    ----------
    X : ndarray of shape (n, *sample_shape), float32
        Features. Tabular data is (n, d); images are (n, C, H, W); sequences (n, L).
    y : ndarray of shape (n,) or (n, k), or None
        int64 class indices in ``[0, n_classes)`` for classification, float32 targets for
        regression, None for unsupervised data.
    task : {"classification", "regression", "unsupervised"}
        What the targets are.
    name : str
        Short name shown in reports.
    class_names : tuple of str, default=()
        Names of the classes, indexed by ``y``. Empty when not classification.
    is_test : ndarray of shape (n,), bool, or None
        Rows of a predefined test set; :func:`deepdx.data.split` keeps them as the test split.

    Raises
    ------
    DataError
        If the arrays are empty, non-finite, of mismatched length, or the labels do not fit
        the task.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]), "classification",
    ...              "toy", class_names=("a", "b"))
    >>> ds.n_samples, ds.sample_shape, ds.n_classes, ds.n_outputs
    (4, (2,), 2, 2)
    """

    X: np.ndarray
    y: np.ndarray | None
    task: Task
    name: str
    class_names: tuple[str, ...] = ()
    is_test: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_features(self.X, self.name)
        _check_targets(self)
        if self.is_test is not None and self.is_test.shape != (len(self.X),):
            raise DataError(
                f"is_test of dataset {self.name!r} must have shape ({len(self.X)},); "
                f"got {self.is_test.shape}."
            )

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_samples={self.n_samples}, "
            f"sample_shape={self.sample_shape}, n_classes={self.n_classes})"
        )

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return len(self.X)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``X.shape[1:]``."""
        return tuple(self.X.shape[1:])

    @property
    def n_features(self) -> int:
        """Number of scalar features per sample (the flattened sample size)."""
        return math.prod(self.sample_shape)

    @property
    def n_classes(self) -> int:
        """Number of classes (0 unless the task is classification)."""
        return len(self.class_names) if self.task == "classification" else 0

    @property
    def n_outputs(self) -> int:
        """Width of a model's output: classes, regression targets, or features to reconstruct."""
        if self.task == "classification":
            return self.n_classes
        if self.task == "regression":
            assert self.y is not None
            return 1 if self.y.ndim == 1 else int(self.y.shape[1])
        return self.n_features

    def subset(self, index: ArrayLike, name: str | None = None) -> Dataset:
        """Return the rows ``index`` (integer indices or a boolean mask) as a new dataset."""
        index = np.asarray(index)
        return replace(
            self,
            X=self.X[index],
            y=None if self.y is None else self.y[index],
            is_test=None if self.is_test is None else self.is_test[index],
            name=self.name if name is None else name,
        )


def from_arrays(
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    task: Task | None = None,
    name: str = "arrays",
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from user arrays, encoding labels and inferring the task.

    Parameters
    ----------
    X : array-like of shape (n, *sample_shape)
        Numeric features; converted to float32.
    y : array-like of shape (n,) or (n, k), optional
        Targets. Strings, booleans and integers mean classification (strings are encoded
        in sorted order); floats with non-integer values mean regression.
    task : {"classification", "regression", "unsupervised"}, optional
        Overrides the inferred task.
    name : str, default="arrays"
        Short name for reports.
    class_names : tuple of str, optional
        Names for integer labels ``0..C-1``; defaults to the labels themselves.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        For non-numeric, empty or ragged ``X``, or labels that do not fit the task.

    Examples
    --------
    >>> ds = from_arrays([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], ["cat", "dog", "cat"])
    >>> ds.task, ds.class_names, ds.y.tolist()
    ('classification', ('cat', 'dog'), [0, 1, 0])
    """
    features = _as_float_array(X, name)
    if y is None:
        if task not in (None, "unsupervised"):
            raise DataError(f"task={task!r} needs targets y; got y=None. Pass y or task=None.")
        return Dataset(features, None, "unsupervised", name)
    targets = np.asarray(y)
    if targets.dtype == object or targets.dtype.kind in "US":
        targets = targets.astype(str)
    task = task or _infer_task(targets)
    if task == "unsupervised":
        return Dataset(features, None, "unsupervised", name)
    if task == "regression":
        if targets.dtype.kind not in "biuf":
            raise DataError(
                f"regression targets of {name!r} must be numeric; got dtype {targets.dtype}. "
                "Use task='classification' for labels."
            )
        return Dataset(features, targets.astype(np.float32), "regression", name)
    codes, names = _encode_labels(targets, class_names, name)
    return Dataset(features, codes, "classification", name, class_names=names)


# ----------------------------------------------------------------------------- helpers


def _as_float_array(X: ArrayLike, name: str) -> np.ndarray:
    """Convert features to a float32 array or raise a DataError that says why not."""
    try:
        array = np.asarray(X)
    except ValueError as exc:  # numpy refuses ragged nested lists
        raise DataError(
            f"X of {name!r} is ragged (rows of different lengths); pad or trim every row "
            "to the same number of features."
        ) from exc
    if array.dtype == object:
        raise DataError(
            f"X of {name!r} has dtype object (ragged rows or mixed types); convert it to a "
            "numeric array with one row per sample and the same length for every row."
        )
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"X of {name!r} must be numeric; got dtype {array.dtype}. Encode text or "
            "categorical columns as numbers first."
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_features(X: np.ndarray, name: str) -> None:
    """Check features are a non-empty, finite, float32 array with a sample axis."""
    if not isinstance(X, np.ndarray) or X.dtype != np.float32:
        raise DataError(
            f"X of dataset {name!r} must be a float32 ndarray; got "
            f"{type(X).__name__} {getattr(X, 'dtype', '')}. Use deepdx.data.from_arrays."
        )
    if X.ndim < 2:
        raise DataError(
            f"X of dataset {name!r} must have shape (n_samples, ...); got {X.shape}. "
            "Reshape a single feature to (-1, 1)."
        )
    if X.shape[0] == 0 or X.size == 0:
        raise DataError(f"dataset {name!r} is empty (X has shape {X.shape}); give it data.")
    rows_per_chunk = max(1, _FINITE_CHECK_BYTES // max(1, X[0].nbytes))
    if all(np.isfinite(X[i : i + rows_per_chunk]).all() for i in range(0, len(X), rows_per_chunk)):
        return
    bad_rows, n_bad = [], 0
    for start in range(0, len(X), rows_per_chunk):
        bad = ~np.isfinite(X[start : start + rows_per_chunk].reshape(-1, X[0].size))
        bad_rows.append(start + np.flatnonzero(bad.any(axis=1)))
        n_bad += int(bad.sum())
    rows = np.concatenate(bad_rows)
    raise DataError(
        f"X of dataset {name!r} has {n_bad} NaN or infinite values in "
        f"{len(rows)} rows (first rows: {rows[:5].tolist()}); drop or impute them first."
    )


def _check_targets(ds: Dataset) -> None:
    """Check that ``ds.y`` matches ``ds.task`` and the number of rows."""
    if ds.task not in TASKS:
        raise DataError(f"task of dataset {ds.name!r} must be one of {TASKS}; got {ds.task!r}.")
    if ds.task == "unsupervised":
        if ds.y is not None:
            raise DataError(f"unsupervised dataset {ds.name!r} must have y=None.")
        return
    y = ds.y
    if y is None:
        raise DataError(f"{ds.task} dataset {ds.name!r} needs targets y; got None.")
    if len(y) != len(ds.X):
        raise DataError(
            f"dataset {ds.name!r} has {len(ds.X)} samples in X but {len(y)} labels in y; "
            "give one label per sample."
        )
    if ds.task == "regression":
        if y.dtype != np.float32 or y.ndim not in (1, 2) or not np.isfinite(y).all():
            raise DataError(
                f"regression targets of {ds.name!r} must be finite float32 of shape (n,) or "
                f"(n, k); got {y.dtype} {y.shape} with {int((~np.isfinite(y)).sum())} "
                "non-finite values."
            )
        return
    n_classes = len(ds.class_names)
    if y.dtype != np.int64 or y.ndim != 1 or y.min() < 0 or y.max() >= max(n_classes, 1):
        raise DataError(
            f"class labels of {ds.name!r} must be int64 of shape (n,) in [0, {n_classes}); "
            f"got {y.dtype} {y.shape}. Use deepdx.data.from_arrays to encode labels."
        )
    if len(np.unique(y)) < 2:
        raise DataError(
            f"dataset {ds.name!r} has one class only ({ds.class_names[int(y[0])]!r}); "
            "classification needs at least two classes in the data."
        )


def _infer_task(y: np.ndarray) -> Task:
    """Floats with fractional values are regression targets; everything else is labels."""
    if y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        if y.ndim > 1 or not np.all(finite == np.round(finite)):
            return "regression"
    return "classification"


def _encode_labels(
    y: np.ndarray, class_names: tuple[str, ...] | None, name: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map labels to ``0..C-1`` codes; return the codes and the class names."""
    if y.ndim != 1:
        raise DataError(f"class labels of {name!r} must be 1-D; got shape {y.shape}.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"labels of {name!r} contain NaN or infinite values; drop those rows.")
    if y.dtype.kind in "iub" and class_names is not None:
        codes = y.astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= len(class_names)):
            raise DataError(
                f"labels of {name!r} must lie in [0, {len(class_names)}) to match "
                f"{len(class_names)} class names; got range [{codes.min()}, {codes.max()}]."
            )
        return codes, tuple(class_names)
    values, codes = np.unique(y, return_inverse=True)
    names = tuple(class_names) if class_names is not None else tuple(_label_str(v) for v in values)
    return codes.astype(np.int64).reshape(-1), names


def _label_str(value: object) -> str:
    """Render a label value as a class name (``3.0`` becomes ``'3'``)."""
    if isinstance(value, np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
