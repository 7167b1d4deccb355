"""Seeded train / validation / test splits, stratified by class, and ``prepare``.

Sizes
-----
``val_size`` and ``test_size`` are fractions of *all* n rows. When the dataset marks an
official test set (``is_test``, e.g. MNIST's t10k rows) those rows are the test split,
``test_size`` is ignored, and the validation rows (val_size * n of them) are drawn from
the other rows.

Stratification (classification, ``stratify=True``)
--------------------------------------------------
Each class c with n_c rows of the pool is shuffled, and its first
round(f_test n_c) rows go to test, the next round((f_test + f_val) n_c) - round(f_test n_c)
to validation, the rest to train. Rounding the cumulative boundaries keeps every split's
count of every class within one row of its exact share (within 0.5 for train and test),
at the price of split sizes that may differ from round(f n) by up to half the number of
classes. A class too small to reach a split (one member, say) stays in train: the model
still sees it and no error is raised, but validation and test scores then ignore it.

Symbols
-------
n        rows of the dataset
f_val    validation fraction of the pool, f_test test fraction of the pool
n_c      rows of class c in the pool
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

import numpy as np

from deepdx._random import numpy_rng
from deepdx.data._memory import check_fits_in_memory, dataset_bytes
from deepdx.data.dataset import Dataset
from deepdx.data.standardize import Standardizer
from deepdx.exceptions import DataError, InvalidParameterError

__all__ = ["Splits", "prepare", "split"]

_TRAIN, _VAL, _TEST = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Splits:
    """Three datasets cut from one: ``train``, ``val`` and ``test``.

    Attributes
    ----------
    train, val, test : Dataset
        The splits, named ``"<name>/train"`` and so on.
    train_index, val_index, test_index : ndarray of int64, or None
        Rows of the original dataset in each split, in increasing order (shuffle when
        batching); keyword-only.

    Examples
    --------
    >>> from deepdx.data.dataset import from_arrays
    >>> ds = from_arrays(np.arange(10.0)[:, None], [0, 1] * 5)
    >>> parts = split(ds, val_size=0.2, test_size=0.2, seed=0)
    >>> parts.test.n_samples, parts.train_index.tolist() == sorted(parts.train_index.tolist())
    (2, True)
    """

    train: Dataset
    val: Dataset
    test: Dataset
    _: KW_ONLY
    train_index: np.ndarray | None = field(default=None, repr=False)
    val_index: np.ndarray | None = field(default=None, repr=False)
    test_index: np.ndarray | None = field(default=None, repr=False)


def split(
    dataset: Dataset,
    *,
    val_size: float = 0.1,
    test_size: float = 0.2,
    seed: int | None = 0,
    stratify: bool = True,
) -> Splits:
    """Split ``dataset`` into seeded train, validation and test sets.

    Parameters
    ----------
    dataset : Dataset
        Data of n rows. If ``is_test`` is set, those rows are the test split.
    val_size : float, default=0.1
        Fraction of all n rows that goes to validation, in (0, 1).
    test_size : float, default=0.2
        Fraction of all n rows that goes to test, in (0, 1); ignored when the dataset has
        ``is_test``. ``val_size + test_size`` must be below 1.
    seed : int or None, default=0
        Seed of the shuffle; the same seed gives the same indices.
    stratify : bool, default=True
        Keep class proportions in every split (classification only; see the module
        docstring for classes too small to reach every split).

    Returns
    -------
    Splits

    Raises
    ------
    InvalidParameterError
        If the sizes are out of range.
    DataError
        If a split would be empty or would hold one class only, or if the copy of X the
        splits hold does not fit in the available memory.

    Notes
    -----
    The splits copy their rows of X into memory (4 bytes a value, also for a memory-mapped
    X); the copy is checked against the available memory before it is made.

    Examples
    --------
    >>> from deepdx.data.registry import load
    >>> parts = split(load("iris"), val_size=0.2, test_size=0.2, seed=0)
    >>> len(parts.train), len(parts.val), len(parts.test)
    (90, 30, 30)
    >>> np.bincount(parts.test.y).tolist()
    [10, 10, 10]
    """
    n = dataset.n_samples
    if dataset.is_test is not None:
        pool = np.flatnonzero(~dataset.is_test)
        fixed_test = np.flatnonzero(dataset.is_test)
        _check_sizes(val_size, None, n, len(pool))
        f_test, f_val = 0.0, val_size * n / len(pool)
    else:
        pool, fixed_test = np.arange(n), np.empty(0, dtype=np.int64)
        _check_sizes(val_size, test_size, n, n)
        f_test, f_val = test_size, val_size
    y = dataset.y if stratify and dataset.task == "classification" else None
    strata = None if y is None else y[pool]
    part = _assign(strata, len(pool), f_test, f_val, rng=numpy_rng(seed))  # (len(pool),)
    check_fits_in_memory(
        dataset_bytes(dataset.X.size, copy=True),
        what=f"splitting {dataset.name!r} (the splits copy X)",
        fix="free memory or use fewer rows, or save the train, validation and test rows to "
        "separate files and load each one (with mmap=True).",
    )
    index = {
        "train": pool[part == _TRAIN],
        "val": pool[part == _VAL],
        "test": np.sort(np.concatenate([fixed_test, pool[part == _TEST]])),
    }
    subsets = {key: _take(dataset, rows, key) for key, rows in index.items()}
    return Splits(
        subsets["train"], subsets["val"], subsets["test"],
        train_index=index["train"], val_index=index["val"], test_index=index["test"],
    )  # fmt: skip


def prepare(
    dataset: Dataset,
    *,
    val_size: float = 0.1,
    test_size: float = 0.2,
    seed: int | None = 0,
    stratify: bool = True,
    standardize: bool = True,
) -> tuple[Splits, Standardizer | None]:
    """Split ``dataset`` and standardize all three splits with statistics of the train split.

    Parameters
    ----------
    dataset : Dataset
        The data.
    val_size, test_size, seed, stratify
        As for :func:`split`.
    standardize : bool, default=True
        Fit a :class:`~deepdx.data.standardize.Standardizer` (``per="auto"``) on train
        and apply it to train, val and test. Targets are left as they are.

    Returns
    -------
    splits : Splits
        Standardized splits (with the same indices as :func:`split`).
    standardizer : Standardizer or None
        The fitted standardizer (store its ``state_dict`` with the model), or None.

    Examples
    --------
    >>> from deepdx.data.registry import load
    >>> parts, scaler = prepare(load("wine"), seed=0)
    >>> bool(np.allclose(parts.train.X.mean(axis=0), 0.0, atol=1e-5)), scaler.per_
    (True, 'feature')
    """
    parts = split(dataset, val_size=val_size, test_size=test_size, seed=seed, stratify=stratify)
    if not standardize:
        return parts, None
    scaler = Standardizer().fit(parts.train)
    standardized = Splits(
        scaler.transform(parts.train), scaler.transform(parts.val), scaler.transform(parts.test),
        train_index=parts.train_index, val_index=parts.val_index, test_index=parts.test_index,
    )  # fmt: skip
    return standardized, scaler


# ----------------------------------------------------------------------------- helpers


def _check_sizes(val_size: float, test_size: float | None, n: int, n_pool: int) -> None:
    """Raise one InvalidParameterError naming every out-of-range size."""
    problems = [
        f"{key} must be a float in (0, 1); got {value!r}"
        for key, value in (("val_size", val_size), ("test_size", test_size))
        if value is not None and not (isinstance(value, float | int) and 0 < value < 1)
    ]
    if not problems and test_size is not None and val_size + test_size >= 1:
        problems.append(f"val_size + test_size must be < 1; got {val_size + test_size:g}")
    if not problems and test_size is None and val_size * n >= n_pool:
        problems.append(
            f"val_size * n = {val_size * n:g} rows must be fewer than the {n_pool} rows "
            "outside the predefined test set"
        )
    if problems:
        raise InvalidParameterError("; ".join(problems) + ".")


def _assign(
    strata: np.ndarray | None, m: int, f_test: float, f_val: float, *, rng: np.random.Generator
) -> np.ndarray:
    """Return (m,) split codes; per stratum, cumulative boundaries are rounded to nearest."""
    labels = np.zeros(m, dtype=np.int64) if strata is None else strata  # (m,)
    order = rng.permutation(m)  # (m,) random order of the pool
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, random within
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)  # (C,)
    starts = np.cumsum(counts) - counts  # (C,) first position of each class in ``order``
    sorted_labels = labels[order]  # (m,)
    rank = np.arange(m) - starts[sorted_labels]  # (m,) position within its class
    test_end = np.floor(f_test * counts + 0.5)[sorted_labels]  # (m,)
    val_end = np.floor((f_test + f_val) * counts + 0.5)[sorted_labels]  # (m,)
    part = np.empty(m, dtype=np.int64)
    part[order] = np.where(rank < test_end, _TEST, np.where(rank < val_end, _VAL, _TRAIN))
    return part


def _take(dataset: Dataset, rows: np.ndarray, key: str) -> Dataset:
    """Subset ``rows`` as split ``key``, explaining an empty or one-class split."""
    size = "val_size" if key == "val" else "test_size" if key == "test" else "the other sizes"
    if len(rows) == 0:
        raise DataError(
            f"the {key} split of {dataset.name!r} would be empty (n = {dataset.n_samples}); "
            f"increase {size} or use more data."
        )
    try:
        return dataset.subset(rows, name=f"{dataset.name}/{key}")
    except DataError as exc:
        raise DataError(
            f"the {key} split of {dataset.name!r} ({len(rows)} rows) is not a valid "
            f"dataset: {exc} Increase {size}, use more data, or set stratify=True."
        ) from exc
