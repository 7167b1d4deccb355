"""The addition problem of Hochreiter & Schmidhuber (1997), a long time-lag benchmark for RNNs.

The task (Hochreiter & Schmidhuber 1997, Experiment 4 "Adding problem", the variant this
module implements)
-----------------------------------------------------------------------------------
Each step of a sequence is a pair (value, marker):

1. Length: an integer L drawn uniformly from [T, T + T/10] (both ends included;
   ``max_length`` overrides the upper end, ``max_length=T`` gives fixed-length sequences).
2. Values: uniform on [-1, 1].
3. Marks: one of the first ten pairs is marked (its value is called X_1); then one of
   the first T/2 - 1 still unmarked pairs is marked (X_2). Marked pairs carry marker 1.0.
   The first and the last pair carry marker -1.0 unless marked; all other markers are
   0.0. In the rare case where the first pair of the sequence is the first mark, X_1 is
   set to zero.
4. Target, read at the last step only: ``y = 0.5 + (X_1 + X_2) / 4``, the sum scaled
   to [0, 1].
5. A sequence is processed correctly if the absolute error at its end is below
   :data:`ADDITION_TOLERANCE` = 0.04.

The second mark lies in the first T/2 pairs, so the time lag from it to the target is
at least T - T/2 (the minimal time lag T/2); the first mark lies in the first ten
pairs, so it must be carried for at least T - 10 steps.

Where this module fills in details
----------------------------------
* T/2 is ``T // 2``. For T < 20 the first mark is drawn among the first ``T // 2``
  pairs instead of ten, so that it stays clear of the last pair (H&S used T >= 100,
  where the two rules agree).
* Sequences of different lengths share one array: a sequence of length L < L_max is
  left-padded with L_max - L pairs (0.0, 0.0), so that every target is read at the last
  step; the true first pair is the one with a non-zero marker.
* The success criterion of the paper: training stopped once the average training error
  was below 0.01 and all of the 2,000 most recent training sequences were processed
  correctly; the trained nets were then scored by their wrong predictions on a test
  set.
* Later papers, among them Martens & Sutskever (2011), reuse the problem; many change
  the value range, the positions of the marks or the scaling of the target, and
  figures are comparable only within one variant.

Symbols
-------
n          number of sequences
T          minimal sequence length, ``length``
L_max      ``max_length``, the padded length of every sequence
X          (n, L_max, 2) float32: X[..., 0] values, X[..., 1] markers
X_1, X_2   the values at the first and the second mark
y          (n,) float32 target 0.5 + (X_1 + X_2) / 4

References
----------
S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9(8),
1735-1780, 1997 (Experiment 4); first posed as Experiment 1 of "LSTM can solve hard
long time lag problems", NIPS 9, 1997.
J. Martens and I. Sutskever, "Learning recurrent neural networks with Hessian-free
optimization", ICML 2011.
"""

from __future__ import annotations

import numpy as np

from deepdx._random import numpy_rng
from deepdx.data.dataset import Dataset
from deepdx.exceptions import InvalidParameterError

__all__ = ["ADDITION_TOLERANCE", "MIN_ADDITION_LENGTH", "addition_problem"]

ADDITION_TOLERANCE = 0.04
"""Largest absolute error at the end of a correctly processed sequence (H&S 1997)."""

MIN_ADDITION_LENGTH = 4
"""Smallest T: the second mark needs T // 2 - 1 >= 1 candidate pairs."""

_FIRST_WINDOW = 10  # the first mark is one of the first ten pairs


def addition_problem(
    n: int, length: int, *, seed: int | None = 0, max_length: int | None = None
) -> Dataset:
    """Generate ``n`` sequences of the addition problem (H&S 1997, Experiment 4).

    Parameters
    ----------
    n : int
        Number of sequences, >= 1.
    length : int
        T, the minimal sequence length, >= 4; the minimal time lag is T/2.
    seed : int or None, default=0
        Seed of the NumPy generator.
    max_length : int or None, default=None
        L_max >= T, the longest sequence and the padded length of every row; None means
        T + T // 10, the paper's range.

    Returns
    -------
    Dataset
        A regression dataset named ``"addition-T{length}"`` with X of shape
        (n, L_max, 2), float32 (value, marker) pairs, left-padded with (0, 0), and
        y of shape (n,), float32, in [0, 1].

    Raises
    ------
    InvalidParameterError
        If ``n`` < 1, ``length`` < 4 or ``max_length`` < ``length``.

    Notes
    -----
    The module docstring states the task step by step. Predicting the mean target
    0.5 gives a mean squared error of Var(y) = (0.9 / 3 + 1 / 3) / 16 ≈ 0.040 for
    T >= 20 (X_1 is zero one time in ten) and processes about 15% of the sequences
    correctly. Cost O(n L_max), no Python loop per sequence.

    Examples
    --------
    >>> ds = addition_problem(4, 20, seed=0)
    >>> ds.X.shape, ds.y.shape, ds.task
    ((4, 22, 2), (4,), 'regression')
    >>> [int((row[:, 1] == 1.0).sum()) for row in ds.X]
    [2, 2, 2, 2]
    """
    _check(n, length, max_length)
    max_length = length + length // 10 if max_length is None else max_length
    rng = numpy_rng(seed)
    lengths = rng.integers(length, max_length + 1, size=n)  # (n,) L_i in [T, L_max]
    values = rng.uniform(-1.0, 1.0, size=(n, max_length))  # (n, L_max)
    first = rng.integers(0, min(_FIRST_WINDOW, length // 2), size=n)  # (n,) from the start
    r = rng.integers(0, length // 2 - 1, size=n)  # (n,) among the first T/2 - 1 unmarked
    second = r + (r >= first)  # (n,) skip the first mark
    start = max_length - lengths  # (n,) index of each sequence's first pair
    rows = np.arange(n)
    markers = np.zeros((n, max_length))  # (n, L_max)
    markers[rows, start] = -1.0
    markers[rows, max_length - 1] = -1.0
    markers[rows, start + first] = 1.0
    markers[rows, start + second] = 1.0
    values[rows[first == 0], start[first == 0]] = 0.0  # X_1 = 0 when the first pair is marked
    values[np.arange(max_length)[None, :] < start[:, None]] = 0.0  # (0, 0) padding
    y = 0.5 + (values[rows, start + first] + values[rows, start + second]) / 4.0  # (n,)
    X = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, L_max, 2)
    return Dataset(X, y.astype(np.float32), "regression", f"addition-T{length}")


def _int_at_least(value: object, low: int) -> bool:
    """Return True for an int (not a bool) that is >= ``low``."""
    return (
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= low)
    )


def _check(n: int, length: int, max_length: int | None) -> None:
    """Raise one InvalidParameterError listing every invalid argument."""
    problems = []
    if not _int_at_least(n, 1):
        problems.append(f"n must be an int >= 1; got {n!r}.")
    if not _int_at_least(length, MIN_ADDITION_LENGTH):
        problems.append(
            f"length must be an int >= {MIN_ADDITION_LENGTH} (the second mark needs "
            f"length // 2 - 1 >= 1 candidate pairs); got {length!r}."
        )
    elif max_length is not None and not _int_at_least(max_length, length):
        problems.append(
            f"max_length must be an int >= length = {length}; got {max_length!r}. "
            "Pass max_length=None for the paper's length + length // 10."
        )
    if problems:
        raise InvalidParameterError("addition_problem: " + " ".join(problems))
