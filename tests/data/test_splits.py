import dataclasses

import numpy as np
import pytest

from deepdx.data.dataset import Dataset, from_arrays
from deepdx.data.splits import Splits, prepare, split
from deepdx.exceptions import DataError, InvalidParameterError


def imbalanced(n_per_class=(97, 41, 13), seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    X = rng.normal(size=(len(y), 3)) + y[:, None]
    return from_arrays(X, y, name="toy")


def indices(parts: Splits):
    return parts.train_index, parts.val_index, parts.test_index


def test_split_is_a_partition_of_the_rows():
    ds = imbalanced()
    parts = split(ds, seed=0)
    rows = np.concatenate(indices(parts))
    assert sorted(rows.tolist()) == list(range(ds.n_samples))
    np.testing.assert_array_equal(parts.val.X, ds.X[parts.val_index])
    assert (parts.train.name, parts.val.name, parts.test.name) == (
        "toy/train",
        "toy/val",
        "toy/test",
    )


def test_split_same_seed_same_indices():
    ds = imbalanced()
    for a, b in zip(indices(split(ds, seed=7)), indices(split(ds, seed=7)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_split_different_seed_different_indices():
    ds = imbalanced()
    a, b = split(ds, seed=0), split(ds, seed=1)
    assert not np.array_equal(a.test_index, b.test_index)
    assert not np.array_equal(a.val_index, b.val_index)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("val_size", "test_size"), [(0.1, 0.2), (0.15, 0.3), (0.33, 0.33)])
def test_split_stratified_class_counts_within_one_of_exact_share(seed, val_size, test_size):
    ds = imbalanced()
    parts = split(ds, val_size=val_size, test_size=test_size, seed=seed)
    whole = np.bincount(ds.y)
    shares = {"val": val_size, "test": test_size, "train": 1 - val_size - test_size}
    for key, share in shares.items():
        counts = np.bincount(getattr(parts, key).y, minlength=3)
        assert np.all(np.abs(counts - share * whole) <= 1.0), (key, counts, share * whole)


def test_split_unstratified_sizes_are_rounded_fractions():
    ds = imbalanced()
    parts = split(ds, val_size=0.1, test_size=0.2, seed=0, stratify=False)
    n = ds.n_samples
    assert (len(parts.test), len(parts.val)) == (round(0.2 * n), round(0.3 * n) - round(0.2 * n))


def test_split_respects_is_test():
    ds = imbalanced()
    is_test = np.zeros(ds.n_samples, dtype=bool)
    is_test[::5] = True
    ds = dataclasses.replace(ds, is_test=is_test)
    parts = split(ds, val_size=0.1, test_size=0.5, seed=0)
    np.testing.assert_array_equal(parts.test_index, np.flatnonzero(is_test))
    assert not is_test[parts.val_index].any() and not is_test[parts.train_index].any()
    assert abs(len(parts.val) - 0.1 * ds.n_samples) <= 2  # val_size is a share of all rows


def test_split_keeps_singleton_class_in_train():
    y = np.array([0] * 20 + [1] * 20 + [2])
    ds = from_arrays(np.arange(41.0)[:, None], y)
    parts = split(ds, seed=0)
    assert 40 in parts.train_index.tolist()
    assert 2 not in parts.val.y and 2 not in parts.test.y


def test_split_regression_is_not_stratified():
    rng = np.random.default_rng(0)
    ds = from_arrays(rng.normal(size=(50, 2)), rng.normal(size=50))
    parts = split(ds, seed=0)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (35, 5, 10)


def test_split_unsupervised_data():
    ds = Dataset(np.zeros((20, 1, 2, 2), np.float32), None, "unsupervised", "u")
    assert len(split(ds, seed=0).test) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": 0.0}, r"val_size must be a float in \(0, 1\); got 0.0"),
        ({"test_size": 1.5}, r"test_size must be a float in \(0, 1\)"),
        ({"val_size": 0.5, "test_size": 0.5}, "val_size \\+ test_size must be < 1"),
    ],
)
def test_split_rejects_bad_sizes(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        split(imbalanced(), **kwargs)


def test_split_rejects_empty_split():
    ds = from_arrays(np.arange(4.0)[:, None], [0, 1, 0, 1])
    with pytest.raises(DataError, match="the val split of 'arrays' would be empty"):
        split(ds, val_size=0.1, test_size=0.5)


def test_split_explains_one_class_split():
    ds = from_arrays(np.arange(6.0)[:, None], [0, 0, 0, 0, 0, 1])
    with pytest.raises(DataError, match=r"the val split of .* has one class only .*stratify=True"):
        split(ds, val_size=0.2, test_size=0.2, stratify=False, seed=0)


def test_prepare_standardizes_with_train_statistics():
    ds = imbalanced()
    parts, scaler = prepare(ds, seed=0)
    raw = split(ds, seed=0)
    mean = raw.train.X.mean(axis=0)
    std = raw.train.X.std(axis=0)
    np.testing.assert_allclose(parts.train.X.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(parts.train.X.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(parts.test.X, (raw.test.X - mean) / std, atol=1e-5)
    np.testing.assert_allclose(parts.val.X, (raw.val.X - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(parts.test_index, raw.test_index)
    assert scaler is not None and scaler.per_ == "feature"


def test_prepare_without_standardize_returns_raw_splits():
    ds = imbalanced()
    parts, scaler = prepare(ds, seed=0, standardize=False)
    assert scaler is None
    np.testing.assert_array_equal(parts.train.X, split(ds, seed=0).train.X)
