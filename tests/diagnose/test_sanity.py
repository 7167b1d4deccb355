import math
import time

import numpy as np
import pytest

from deepdx.data.dataset import Dataset, from_arrays
from deepdx.data.splits import Splits
from deepdx.diagnose.sanity import count_duplicates, data_sanity, row_keys


def _splits(X, y, n_train, n_val, *, task=None):
    data = from_arrays(X, y, task=task)
    n = len(X)
    return Splits(
        data.subset(np.arange(n_train)),
        data.subset(np.arange(n_train, n_train + n_val)),
        data.subset(np.arange(n_train + n_val, n)),
    )


def _scaled_blobs(n=200, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.array([0.01, 1, 5, 20, 1, 1]) + np.array([0, 3, -7, 0, 0, 9])
    X[:, 4] = 2.5  # a constant feature
    y = rng.integers(0, 3, n)
    return X.astype(np.float32), y


def test_data_sanity_statistics_match_brute_force():
    X, y = _scaled_blobs()
    s = data_sanity(_splits(X, y, 120, 40))
    train = X[:120].astype(np.float64)
    means, stds, constant = [], [], 0
    for j in range(train.shape[1]):
        column = train[:, j]
        means.append(abs(column.sum() / len(column)))
        if np.all(column == column[0]):
            constant += 1
        else:
            stds.append(math.sqrt(((column - column.mean()) ** 2).sum() / len(column)))
    assert s.feature_mean_abs_max == pytest.approx(max(means), rel=1e-12)
    assert s.feature_std_min == pytest.approx(min(stds), rel=1e-9)
    assert s.feature_std_max == pytest.approx(max(stds), rel=1e-9)
    assert s.n_constant_features == constant == 1


def test_data_sanity_images_scale_per_channel_constants_per_pixel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2, 3, 3)).astype(np.float32)
    X[:, 1] *= 5.0
    X[:, 0, 1, 1] = 0.0
    s = data_sanity(_splits(X, rng.integers(0, 2, 60), 40, 10))
    assert s.n_constant_features == 1  # the one always-zero pixel
    channels = X[:40].transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)  # (C, n·H·W)
    assert s.feature_std_min == pytest.approx(channels[0].std(), rel=1e-9)
    assert s.feature_std_max == pytest.approx(channels[1].std(), rel=1e-9)
    assert s.feature_mean_abs_max == pytest.approx(np.abs(channels.mean(axis=1)).max(), rel=1e-9)


def test_data_sanity_all_constant_features_give_nan_spread():
    X = np.ones((30, 3), np.float32)
    s = data_sanity(_splits(X, [0, 1, 2] * 10, 15, 6))
    assert s.n_constant_features == 3
    assert math.isnan(s.feature_std_min) and math.isnan(s.feature_std_max)


def test_data_sanity_imbalance_ratio_counts_training_classes():
    y = np.array([0] * 30 + [1] * 10 + [2] * 5 + [0, 1, 2] * 10)
    X = np.random.default_rng(0).normal(size=(len(y), 2))
    s = data_sanity(_splits(X, y, 45, 15))
    assert s.imbalance_ratio == 6.0


def test_data_sanity_imbalance_ratio_is_inf_for_a_class_missing_from_train():
    X = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    names = ("a", "b", "c")
    train = Dataset(X[:4], np.array([0, 1, 0, 1]), "classification", "t", class_names=names)
    val = Dataset(X[4:], np.array([2, 1]), "classification", "v", class_names=names)
    assert data_sanity(Splits(train, val, val)).imbalance_ratio == math.inf


def test_data_sanity_imbalance_ratio_is_one_for_regression():
    X = np.random.default_rng(0).normal(size=(40, 2))
    s = data_sanity(_splits(X, X[:, 0] * 1.5, 20, 10, task="regression"))
    assert s.imbalance_ratio == 1.0


def test_data_sanity_counts_planted_duplicates_exactly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5)).astype(np.float32)
    X[60] = X[3]  # val copies train rows 3, 7 (twice) and 11
    X[61] = X[7]
    X[62] = X[7]
    X[65] = X[11]
    X[85] = X[0]  # test copies train rows 0 and 59
    X[90] = X[59]
    X[70] = X[5] + 1e-6  # near-duplicates do not count
    X[95] = X[80]  # a test row copying a val row is not a train leak
    s = data_sanity(_splits(X, rng.integers(0, 2, 100), 60, 20))
    assert s.n_duplicates_across_splits == 6


def test_count_duplicates_matches_python_set_reference():
    rng = np.random.default_rng(1)
    pool = rng.integers(0, 3, size=(40, 3)).astype(np.float32)  # many repeats
    a, b = from_arrays(pool[:25]), from_arrays(pool[25:])
    seen = {tuple(row) for row in pool[:25].tolist()}
    assert count_duplicates(a, b) == sum(tuple(row) in seen for row in pool[25:].tolist())


def test_row_keys_treat_negative_zero_as_zero():
    keys = row_keys(np.array([[0.0, -0.0], [-0.0, 0.0], [0.0, 1.0]], np.float32))
    assert keys[0] == keys[1] and keys[0] != keys[2]


def test_data_sanity_is_fast_on_mnist_sized_data():
    rng = np.random.default_rng(0)
    X = rng.random((5000, 784), dtype=np.float32)
    X[4000:4100] = X[:100]
    splits = _splits(X, rng.integers(0, 10, 5000), 3500, 500)
    start = time.perf_counter()
    s = data_sanity(splits)
    assert time.perf_counter() - start < 0.5
    assert s.n_duplicates_across_splits == 100
