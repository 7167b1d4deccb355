"""Data sanity of the splits (diagnosis rule A7): input scale, class balance, leaked rows.

Symbols
-------
X          training features flattened to (n, d)
μ_j, σ_j   mean and standard deviation (ddof=0) of feature j over the training rows
n_c        training rows of class c
imbalance  max_c n_c / min_c n_c over all C classes (inf when a class has no training row)
"""

from __future__ import annotations

import math

import numpy as np

from deepdx.data.dataset import Dataset
from deepdx.data.splits import Splits
from deepdx.diagnose.evidence import DataSanity

__all__ = ["count_duplicates", "data_sanity", "row_keys"]


def data_sanity(splits: Splits) -> DataSanity:
    """Return the input statistics, class imbalance and train/eval duplicates of ``splits``.

    Parameters
    ----------
    splits : Splits
        Train, validation and test datasets with the same sample shape.

    Returns
    -------
    DataSanity
        max_j |μ_j|; min and max σ_j over non-constant features (NaN when every feature is
        constant); the number of constant features; the imbalance ratio (1.0 unless
        classification); and the validation plus test rows that also occur in train.

    Notes
    -----
    Statistics are computed in float64 over X (n, d), O(n·d); for images (n, C, H, W) the
    scale statistics are per channel, the unit images are standardized by, while constant
    features are still counted per pixel. A feature is constant when
    all its training values are equal (then σ_j = 0 exactly). Duplicates are exact byte
    matches of whole rows, found by sorting (:func:`count_duplicates`), O(n log n · d).

    Examples
    --------
    >>> from deepdx.data.dataset import from_arrays
    >>> X = np.array([[0, 1], [2, 1], [4, 1], [0, 1], [2, 1], [9, 1]], np.float32)
    >>> data = from_arrays(X, [0, 0, 1, 1, 0, 1])
    >>> parts = Splits(data.subset([0, 1, 2]), data.subset([3, 4]), data.subset([4, 5]))
    >>> s = data_sanity(parts)
    >>> s.feature_mean_abs_max, s.n_constant_features, s.imbalance_ratio
    (2.0, 1, 2.0)
    >>> s.n_duplicates_across_splits  # rows 3 and 4 copy rows 0 and 1, in val and in test
    3
    """
    train = splits.train
    X = train.X.reshape(train.n_samples, -1)  # (n, d)
    constant = np.ptp(X, axis=0) == 0  # (d,)
    scale = _scale_units(train.X)  # (m, f): features, or channels of images
    mean = scale.mean(axis=0, dtype=np.float64)  # (f,)
    std = scale.std(axis=0, dtype=np.float64)  # (f,)
    varying = std[std > 0]  # constant units have σ = 0 exactly
    duplicates = count_duplicates(train, splits.val) + count_duplicates(train, splits.test)
    return DataSanity(
        feature_mean_abs_max=float(np.abs(mean).max()),
        feature_std_min=float(varying.min()) if varying.size else math.nan,
        feature_std_max=float(varying.max()) if varying.size else math.nan,
        n_constant_features=int(constant.sum()),
        imbalance_ratio=_imbalance_ratio(train),
        n_duplicates_across_splits=duplicates,
    )


def _scale_units(X: np.ndarray) -> np.ndarray:
    """Return X as (samples, units): per feature, or per channel for (n, C, H, W) images."""
    if X.ndim == 4:
        return np.moveaxis(X, 1, -1).reshape(-1, X.shape[1])  # (n·H·W, C)
    return X.reshape(len(X), -1)  # (n, d)


def row_keys(X: np.ndarray) -> np.ndarray:
    """Return one opaque, sortable key per row of ``X``: equal rows give equal keys.

    Parameters
    ----------
    X : ndarray of shape (n, *sample_shape)
        Any numeric array.

    Returns
    -------
    ndarray of shape (n,), void dtype
        The bytes of each flattened row; -0.0 is first turned into +0.0 so that rows equal
        as numbers have equal bytes.

    Examples
    --------
    >>> keys = row_keys(np.array([[1.0, -0.0], [1.0, 0.0], [2.0, 0.0]]))
    >>> keys.shape, bool(keys[0] == keys[1]), bool(keys[0] == keys[2])
    ((3,), True, False)
    """
    rows = np.ascontiguousarray(X.reshape(len(X), -1) + 0)  # (n, d); -0.0 + 0 == +0.0
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()  # (n,)


def count_duplicates(reference: Dataset, other: Dataset) -> int:
    """Return how many rows of ``other`` are exact copies of some row of ``reference``.

    Parameters
    ----------
    reference, other : Dataset
        Datasets with the same sample shape (a training split and an evaluation split).

    Returns
    -------
    int
        Rows of ``other`` (counted with multiplicity) whose features equal a row of
        ``reference``; labels are ignored.

    Examples
    --------
    >>> from deepdx.data.dataset import from_arrays
    >>> a = from_arrays(np.eye(3, dtype=np.float32))
    >>> b = from_arrays(np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]], np.float32))
    >>> count_duplicates(a, b)
    2
    """
    if other.n_samples == 0 or reference.n_samples == 0:
        return 0
    return int(np.isin(row_keys(other.X), row_keys(reference.X)).sum())


def _imbalance_ratio(train: Dataset) -> float:
    """Largest over smallest class count of ``train`` (1.0 unless classification)."""
    if train.task != "classification" or train.y is None:
        return 1.0
    counts = np.bincount(train.y, minlength=train.n_classes)  # (C,)
    smallest = int(counts.min())
    return math.inf if smallest == 0 else float(counts.max() / smallest)
