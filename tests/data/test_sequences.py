"""Tests of the addition-problem generator against the task as Hochreiter & Schmidhuber state it."""

from __future__ import annotations

import numpy as np
import pytest

from deepdx.data.sequences import ADDITION_TOLERANCE, addition_problem
from deepdx.exceptions import InvalidParameterError


def _unpadded(row: np.ndarray) -> np.ndarray:
    """Return the (L, 2) pairs of one sequence without its (0, 0) left padding."""
    start = int(np.flatnonzero(row[:, 1] != 0.0)[0])  # the first pair has marker -1 or 1
    assert (row[:start] == 0.0).all()
    return row[start:]


@pytest.mark.parametrize(("length", "max_length"), [(20, None), (100, None), (7, 9), (30, 30)])
def test_addition_problem_shapes_and_lengths(length, max_length):
    ds = addition_problem(300, length, seed=0, max_length=max_length)
    assert ds.y is not None
    L_max = length + length // 10 if max_length is None else max_length
    assert ds.X.shape == (300, L_max, 2) and ds.y.shape == (300,)
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.float32 and ds.task == "regression"
    lengths = np.array([len(_unpadded(row)) for row in ds.X])
    assert lengths.min() >= length and lengths.max() <= L_max
    if L_max > length:  # both ends of [T, L_max] occur among 300 draws
        assert {length, L_max} <= set(lengths.tolist())


@pytest.mark.parametrize("length", [4, 12, 20, 60])
def test_addition_problem_marks_two_pairs_in_the_allowed_ranges(length):
    ds = addition_problem(500, length, seed=1)
    assert ds.y is not None
    first_window = min(10, length // 2)
    for row, target in zip(ds.X, ds.y, strict=True):
        pairs = _unpadded(row)
        marked = np.flatnonzero(pairs[:, 1] == 1.0)
        assert len(marked) == 2
        assert marked.max() <= length // 2 - 1  # both in the first T/2 pairs: lag >= T/2
        assert marked.min() < first_window  # the first mark is among the first ten
        others = np.setdiff1d(np.arange(len(pairs)), marked)
        expected = np.zeros(len(others))
        expected[others == 0] = -1.0  # the first pair, unless marked
        expected[others == len(pairs) - 1] = -1.0  # the last pair
        np.testing.assert_array_equal(pairs[others, 1], expected)
        assert (np.abs(pairs[:, 0]) <= 1.0).all()
        x1_plus_x2 = float(pairs[marked, 0].astype(np.float64).sum())
        assert target == pytest.approx(0.5 + x1_plus_x2 / 4.0, abs=1e-6)


def test_addition_problem_zeroes_the_first_pair_when_it_is_the_first_mark():
    # T = 20: the first mark hits pair 0 with probability 1/10 (then X_1 = 0); the second
    # mark hits it with probability 9/10 * 1/9 = 1/10 and keeps its value
    n = 4000
    firsts = np.array([_unpadded(row)[0] for row in addition_problem(n, 20, seed=2).X])
    marked = firsts[:, 1] == 1.0
    assert (firsts[~marked, 1] == -1.0).all() and (firsts[~marked, 0] != 0.0).all()
    bound = 4 * np.sqrt(0.1 * 0.9 / n)  # 4 sigma of a frequency with p = 0.1
    assert abs((marked & (firsts[:, 0] == 0.0)).mean() - 0.1) < bound
    assert abs((marked & (firsts[:, 0] != 0.0)).mean() - 0.1) < bound


def test_addition_problem_targets_have_the_stated_mean_and_variance():
    # X_1 ~ U[-1, 1] except with probability 1/10 (first pair marked first), X_2 ~ U[-1, 1]
    n = 20000
    targets = addition_problem(n, 40, seed=3).y
    assert targets is not None
    y = targets.astype(np.float64)
    variance = (0.9 / 3 + 1 / 3) / 16
    assert abs(y.mean() - 0.5) < 4 * np.sqrt(variance / n)
    assert y.var() == pytest.approx(variance, rel=0.05)
    assert y.min() >= 0.0 and y.max() <= 1.0
    # predicting 0.5 processes |X_1 + X_2| < 4 * 0.04 correctly: about 15% of sequences
    assert 0.10 < (np.abs(y - 0.5) < ADDITION_TOLERANCE).mean() < 0.20


def test_addition_problem_is_seeded():
    a, b, c = (addition_problem(50, 20, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(np.asarray(a.y), np.asarray(b.y))
    assert not np.array_equal(a.X, c.X)


def test_addition_problem_reports_every_invalid_argument():
    with pytest.raises(InvalidParameterError, match=r"n must be an int >= 1.*length must be"):
        addition_problem(0, 3)
    with pytest.raises(InvalidParameterError, match=r"max_length must be an int >= length = 20"):
        addition_problem(5, 20, max_length=10)
