"""Over- or underfitting, and will more data help? (diagnosis rules C1 and C6).

- :func:`learning_curve`: k-fold cross-validated train and validation scores against the
  training-set size, one fresh model per (size, fold), run in parallel through joblib.
- :func:`more_data_prediction`: a power law fitted to the validation error against size,
  extrapolated to twice the data.
- :func:`bias_variance`: Ng's decomposition of the error into avoidable bias, variance and
  data mismatch, from scores alone.
- :func:`bootstrap_bias_variance`: the squared bias and variance of a regression model's
  predictions over refits on bootstrap resamples of its training set.

Subsets
-------
Training subsets are prefixes of one seeded, class-stratified order of the rows
(:func:`stratified_order`), so the subsets of a fold are nested (the 10% subset lies inside
the 25% one), which makes the curve smoother than independent draws would, and every
prefix of two rows or more holds at least two classes.

Length
------
The module is past the 600-line guide because it keeps together the four estimators that
the C-rules read, which share one error convention (1 − score, or the loss) and one subset
order; about two thirds of it is docstrings. The bias / variance part could move to a module
of its own if it grows.

Symbols
-------
n          training-set size
k          folds of the cross-validation
err(n)     validation error at size n: 1 − accuracy, 1 − R², or the loss itself
a, b, c    power law err(n) = a · n^(−b) + c (b the exponent, c the irreducible error)
f_b(x)     prediction at x of the model refitted on bootstrap resample b = 1..B
f̄(x)       (1/B) Σ_b f_b(x)
σ²         variance of the target noise
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeResult, minimize_scalar
from sklearn.model_selection import KFold, StratifiedKFold

from deepdx._random import numpy_rng
from deepdx.data.dataset import Dataset
from deepdx.diagnose._budget import (
    Budget,
    CheckSkipped,
    ModelFactory,
    budgeted_epochs,
    seconds_per_row,
)
from deepdx.diagnose.evidence import LearningCurve
from deepdx.exceptions import DataError, InvalidParameterError, NumericalError
from deepdx.train.config import TrainConfig
from deepdx.train.loop import fit
from deepdx.train.objectives import LossFn, evaluate, metric_name, predict

__all__ = [
    "DEFAULT_FRACTIONS",
    "BiasVariance",
    "bias_variance",
    "bootstrap_bias_variance",
    "bootstrap_indices",
    "fit_power_law",
    "learning_curve",
    "more_data_prediction",
    "stratified_order",
]

#: Training-set fractions of a learning curve (scikit-learn-style 10/25/50/100%).
DEFAULT_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
#: Errors are floored here before taking logs in the power-law fit.
_ERROR_FLOOR = 1e-12


def stratified_order(n: int, y: np.ndarray | None = None, *, seed: int = 0) -> np.ndarray:
    """Return a seeded order of ``n`` rows whose every prefix keeps the class proportions.

    Parameters
    ----------
    n : int
        Rows.
    y : ndarray of shape (n,), int, optional
        Class labels; None (regression, unsupervised) gives a plain seeded permutation.
    seed : int, default=0
        Seed of the permutation.

    Returns
    -------
    ndarray of shape (n,), int64
        A permutation of ``range(n)``.

    Notes
    -----
    Systematic stratified sampling: rows are shuffled, the r-th row of class c (0-based,
    in shuffled order) gets the key (r + 1/2) / n_c, and rows are sorted by key (stably, so
    ties stay shuffled). A prefix of length m then holds m · n_c / n rows of class c to within
    about one row.
    When the first two rows share a class, the first row of another class is moved to
    position 2, so that any prefix of two rows or more holds two classes.

    Examples
    --------
    >>> order = stratified_order(8, np.array([0, 0, 0, 0, 0, 0, 1, 1]), seed=0)
    >>> sorted(order.tolist()) == list(range(8))
    True
    >>> [int(np.isin(order[:4], [6, 7]).sum()), int(np.isin(order[:2], [6, 7]).sum())]
    [1, 1]
    """
    perm = numpy_rng(seed).permutation(n)  # (n,)
    if y is None or np.asarray(y).dtype.kind not in "iub":  # no classes: regression targets
        return perm
    labels = np.asarray(y)[perm]  # (n,)
    by_class = np.argsort(labels, kind="stable")  # (n,)
    counts = np.bincount(labels)  # (C,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (C,)
    rank = np.empty(n, dtype=np.int64)
    rank[by_class] = np.arange(n) - starts[labels[by_class]]  # position within its class
    order = np.argsort((rank + 0.5) / counts[labels], kind="stable")  # (n,)
    other = np.flatnonzero(labels[order] != labels[order[0]])
    if other.size and other[0] > 1:
        order[[1, other[0]]] = order[[other[0], 1]]
    return perm[order]


# ------------------------------------------------------------------ learning curve


def learning_curve(
    make_model: ModelFactory,
    dataset: Dataset,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    n_folds: int = 3,
    config: TrainConfig,
    budget: Budget | float | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    loss_fn: LossFn | None = None,
) -> LearningCurve:
    """Cross-validate fresh models on growing training subsets (rule C6).

    Parameters
    ----------
    make_model : callable
        Returns a fresh, identically initialised model; called once per (size, fold). With
        process-based joblib backends it must be picklable (cloudpickle handles closures).
    dataset : Dataset
        The rows to cross-validate on: the training split (or train and validation pooled).
        Never pass the test split.
    fractions : sequence of float, default=(0.1, 0.25, 0.5, 1.0)
        Training-set sizes as fractions, in (0, 1], of the smallest fold's training part.
    n_folds : int, default=3
        k, folds (StratifiedKFold for classification, KFold otherwise; shuffled, seeded).
    config : TrainConfig
        Settings of every fit; early stopping and the training probe are switched off (the
        held-out fold must not steer training).
    budget : Budget or float, optional
        Time allowance in seconds (None: unlimited). A pilot run measures the cost of a row;
        the epochs of every fit are then cut, all alike, until the curve fits.
    seed : int, default=0
        Seed of the folds and of the subset orders.
    n_jobs : int, default=1
        Parallel fits through ``joblib.Parallel``; pick the backend (loky, Dask, Ray) with
        ``joblib.parallel_config``. Thread-based backends are not supported: torch's global
        random state is shared between threads.
    loss_fn : callable, optional
        Objective; the task's default when None.

    Returns
    -------
    LearningCurve
        Sizes and the mean and standard deviation (ddof=0) over folds of the train score
        (on the subset used) and the validation score (on the held-out fold); the metric is
        accuracy, r2, or loss (unsupervised). A fit that diverges scores NaN.

    Raises
    ------
    InvalidParameterError
        If a fraction lies outside (0, 1] or ``n_folds`` < 2.
    CheckSkipped
        If the budget cannot pay for one epoch of every fit, or fewer than two classes have
        ``n_folds`` rows each.

    Notes
    -----
    Cost: k · Σ_sizes fits, each ``epochs`` passes over its subset, shared by the workers.
    Results do not depend on ``n_jobs``: every fit is seeded by its (size, fold).

    Examples
    --------
    >>> from deepdx.data import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(90, 3))  # (90, 3)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> curve = learning_curve(lambda: torch.nn.Linear(3, 2), data, fractions=(0.5, 1.0),
    ...                        config=TrainConfig(epochs=3, lr=0.1))
    >>> curve.sizes, curve.metric, len(curve.val_mean)
    ((30, 60), 'accuracy', 2)
    """
    _check_curve_args(fractions, n_folds)
    folds = _folds(dataset, n_folds, seed)
    sizes = _sizes(fractions, min(len(train) for train, _ in folds))
    config = config.replace(early_stopping=None, train_eval_size=0)
    epochs = _curve_epochs(make_model, dataset, sizes, n_folds, config, budget, n_jobs, loss_fn)
    config = config.replace(epochs=epochs)
    metric = metric_name(dataset.task) or "loss"
    jobs = [(size, fold) for size in sizes for fold in range(n_folds)]
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_fit_and_score)(
            make_model, dataset, folds[fold][0][:size], folds[fold][1], config, loss_fn, metric
        )
        for size, fold in jobs
    )
    table = np.asarray(scores, dtype=np.float64).reshape(len(sizes), n_folds, 2)  # (S, k, 2)
    return LearningCurve(
        sizes=tuple(sizes),
        train_mean=tuple(table[:, :, 0].mean(axis=1).tolist()),
        train_std=tuple(table[:, :, 0].std(axis=1).tolist()),
        val_mean=tuple(table[:, :, 1].mean(axis=1).tolist()),
        val_std=tuple(table[:, :, 1].std(axis=1).tolist()),
        metric=metric,
        n_folds=n_folds,
    )


def _check_curve_args(fractions: Sequence[float], n_folds: int) -> None:
    """Raise naming every bad learning-curve argument."""
    problems = []
    if not fractions or not all(0 < f <= 1 for f in fractions):
        problems.append(f"fractions must be a non-empty sequence in (0, 1]; got {fractions!r}.")
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        problems.append(f"n_folds must be an int >= 2; got {n_folds!r}.")
    if problems:
        raise InvalidParameterError("learning_curve: " + " ".join(problems))


def _folds(dataset: Dataset, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (training rows in stratified order, held-out rows) for each fold."""
    y = dataset.y if dataset.task == "classification" else None
    if y is not None and np.sum(np.bincount(y) >= n_folds) < 2:
        raise CheckSkipped(
            f"learning curve: {n_folds}-fold cross-validation needs at least two classes with "
            f"{n_folds} rows or more; got class counts {np.bincount(y).tolist()}."
        )
    splitter = (StratifiedKFold if y is not None else KFold)(
        n_folds, shuffle=True, random_state=seed
    )
    with warnings.catch_warnings():  # classes rarer than n_folds: those miss some folds
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        parts = list(splitter.split(np.zeros(dataset.n_samples), y))
    return [
        (train[stratified_order(len(train), None if y is None else y[train], seed=seed + i)], val)
        for i, (train, val) in enumerate(parts)
    ]


def _sizes(fractions: Sequence[float], n_train: int) -> list[int]:
    """Distinct subset sizes round(f · n_train), at least 2, increasing."""
    return sorted({min(n_train, max(2, round(f * n_train))) for f in fractions})


def _curve_epochs(
    make_model: ModelFactory,
    dataset: Dataset,
    sizes: list[int],
    n_folds: int,
    config: TrainConfig,
    budget: Budget | float | None,
    n_jobs: int,
    loss_fn: LossFn | None,
) -> int:
    """Epochs every fit may train so that the whole curve fits the budget."""

    def seconds_per_epoch() -> float:
        s_row = seconds_per_row(make_model, dataset, config=config, loss_fn=loss_fn)
        workers = max(1, min(effective_n_jobs(n_jobs), n_folds * len(sizes)))
        return s_row * n_folds * sum(sizes) / workers

    return budgeted_epochs(
        budget,
        config.epochs,
        seconds_per_epoch,
        check="learning curve",
        pronoun="it",
        work=f"its {n_folds * len(sizes)} fits",
    )


def _fit_and_score(
    make_model: ModelFactory,
    dataset: Dataset,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    loss_fn: LossFn | None,
    metric: str,
) -> tuple[float, float]:
    """Fit a fresh model on the training rows; return its (train, validation) score."""
    train, val = dataset.subset(np.sort(train_index)), dataset.subset(val_index)
    model = make_model()
    try:
        fit(model, train, None, config=config, loss_fn=loss_fn)
    except NumericalError:
        return math.nan, math.nan
    train_score, val_score = (
        evaluate(model, part, loss_fn=loss_fn, device=config.device)[metric]
        for part in (train, val)
    )
    return train_score, val_score


# ------------------------------------------------------------------ more data?


def fit_power_law(sizes: ArrayLike, errors: ArrayLike) -> dict[str, float]:
    """Fit err(n) = a · n^(−b) + c to errors measured at training-set sizes.

    Parameters
    ----------
    sizes : array-like of shape (m,)
        n_i, at least two distinct positive sizes.
    errors : array-like of shape (m,)
        err_i at each size (floored at 1e-12).

    Returns
    -------
    dict
        ``a``, ``exponent`` (b), ``c`` and ``r2``, the coefficient of determination of the
        fit in error space (1 when the fit is exact; with as many points as parameters it
        is 1 by construction).

    Raises
    ------
    InvalidParameterError
        If the lengths differ, a value is not finite, a size is not positive, or there are
        fewer than two distinct sizes.

    Notes
    -----
    For a fixed c the law is linear in log space, log(err − c) = log a − b log n, and is
    solved by least squares. With four or more points c is chosen in [0, min err) to
    minimise the squared error of the fit in error space (a bounded scalar search, compared
    with c = 0); with fewer points c = 0 and the fit is a straight line in log-log space.

    Examples
    --------
    >>> n = np.array([100, 200, 400, 800, 1600])
    >>> law = fit_power_law(n, 2.0 * n ** -0.5 + 0.05)
    >>> round(law["exponent"], 3), round(law["c"], 3), round(law["r2"], 6)
    (0.5, 0.05, 1.0)
    """
    n, err = _check_curve_points(sizes, errors)
    c = 0.0
    if len(n) >= 4:
        ceiling = float(err.min()) * (1 - 1e-9)
        search: OptimizeResult = minimize_scalar(  # type: ignore[assignment]  # stubs: object
            lambda c_: _sse(n, err, c_), bounds=(0.0, ceiling), method="bounded",
            options={"xatol": 1e-10 * max(ceiling, _ERROR_FLOOR)},
        )  # fmt: skip
        c = float(search.x) if search.fun < _sse(n, err, 0.0) else 0.0
    a, b = _log_linear(n, err, c)
    sse = _sse(n, err, c)
    sst = float(((err - err.mean()) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else float(sse <= 1e-24)
    return {"a": a, "exponent": b, "c": c, "r2": r2}


def more_data_prediction(curve: LearningCurve) -> dict[str, float]:
    """Predict the validation error with twice the largest training set (rule C6).

    Parameters
    ----------
    curve : LearningCurve
        A curve with at least two sizes of finite validation score.

    Returns
    -------
    dict
        :func:`fit_power_law`'s ``a``, ``exponent``, ``c``, ``r2``, and: ``slope``, the local
        log-log slope d log err / d log n at the largest size n_max (−b for a pure power
        law, nearer 0 as the curve flattens onto c); ``current_error`` and
        ``predicted_error``, the fitted err(n_max) and err(2 n_max); ``predicted_gain`` =
        current − predicted; ``relative_gain`` = gain / current; ``n_points``.

    Raises
    ------
    InvalidParameterError
        If fewer than two sizes have a finite validation score.

    Notes
    -----
    Errors are 1 − accuracy, 1 − R², or the loss. Extrapolating a power law by a factor two
    is a heuristic (scikit-learn's learning-curve reading, made quantitative): read
    ``r2`` before trusting the gain.

    Examples
    --------
    >>> sizes = (100, 200, 400, 800)
    >>> err = [0.5 * n ** -0.5 for n in sizes]
    >>> curve = LearningCurve(sizes, (1.0,) * 4, (0.0,) * 4, tuple(1 - e for e in err),
    ...                       (0.0,) * 4, "accuracy", 3)
    >>> out = more_data_prediction(curve)
    >>> round(out["relative_gain"], 4), round(out["slope"], 3)  # 1 - 2 ** -0.5
    (0.2929, -0.5)
    """
    errors = np.array([_error(score, curve.metric) for score in curve.val_mean], np.float64)
    keep = np.isfinite(errors)
    sizes = np.asarray(curve.sizes, dtype=np.float64)[keep]
    law = fit_power_law(sizes, errors[keep])
    n_max = float(sizes.max())
    decaying = law["a"] * n_max ** -law["exponent"]
    now, later = _power(law, n_max), _power(law, 2 * n_max)
    return {
        **law,
        "slope": -law["exponent"] * decaying / now if now > 0 else 0.0,
        "current_error": now,
        "predicted_error": later,
        "predicted_gain": now - later,
        "relative_gain": (now - later) / now if now > 0 else 0.0,
        "n_points": float(keep.sum()),
    }


def _check_curve_points(sizes: ArrayLike, errors: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return sizes and floored errors as float64 arrays, or raise saying what is wrong."""
    n, err = np.asarray(sizes, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if n.shape != err.shape or n.ndim != 1:
        raise InvalidParameterError(
            f"fit_power_law needs sizes and errors of one equal length; got shapes {n.shape} "
            f"and {err.shape}."
        )
    if not (np.isfinite(n).all() and np.isfinite(err).all() and (n > 0).all()):
        raise InvalidParameterError(
            "fit_power_law needs finite errors and finite positive sizes; drop the sizes whose "
            f"score is NaN. Got sizes {n.tolist()} and errors {err.tolist()}."
        )
    if len(np.unique(n)) < 2:
        raise InvalidParameterError(
            f"fit_power_law needs at least two distinct sizes; got {n.tolist()}."
        )
    return n, np.maximum(err, _ERROR_FLOOR)


def _log_linear(n: np.ndarray, err: np.ndarray, c: float) -> tuple[float, float]:
    """Least-squares (a, b) of log(err − c) = log a − b log n."""
    design = np.column_stack([np.ones_like(n), np.log(n)])  # (m, 2)
    target = np.log(np.maximum(err - c, _ERROR_FLOOR))  # (m,)
    (log_a, minus_b), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.exp(log_a)), float(-minus_b)


def _sse(n: np.ndarray, err: np.ndarray, c: float) -> float:
    """Squared error, in error space, of the log-space fit for this c."""
    a, b = _log_linear(n, err, c)
    return float(((a * n**-b + c - err) ** 2).sum())


def _power(law: dict[str, float], n: float) -> float:
    """err(n) = a · n^(−b) + c."""
    return law["a"] * n ** -law["exponent"] + law["c"]


# ------------------------------------------------------------------ bias and variance


@dataclass(frozen=True)
class BiasVariance:
    """Ng's decomposition of a model's error (rule C1).

    Attributes
    ----------
    train_error, val_error, reference_error : float
        Errors (1 − score, or the loss) on the training data, the validation data, and of
        the reference (Bayes / human / best-baseline error; 0 for a perfect reference).
    train_dev_error : float or None
        Error on held-out rows from the training distribution, when measured.
    avoidable_bias : float
        train_error − reference_error.
    variance : float
        train_dev_error − train_error, or val_error − train_error without a train-dev split.
    mismatch : float or None
        val_error − train_dev_error (data mismatch), when a train-dev error was given.
    dominant : str
        ``"bias"``, ``"variance"`` or ``"mismatch"``: the largest positive component, or
        ``"none"`` when no component is positive.
    """

    train_error: float
    val_error: float
    reference_error: float
    train_dev_error: float | None
    avoidable_bias: float
    variance: float
    mismatch: float | None
    dominant: str


def bias_variance(
    train_score: float,
    val_score: float,
    *,
    metric: str = "accuracy",
    reference_score: float | None = None,
    train_dev_score: float | None = None,
) -> BiasVariance:
    """Split a model's error into avoidable bias, variance and data mismatch (Ng).

    Parameters
    ----------
    train_score, val_score : float
        The model's score on its training data and on validation data.
    metric : {"accuracy", "r2", "loss"}, default="accuracy"
        What the scores are: error = 1 − score for accuracy and R², error = score for a
        loss.
    reference_score : float, optional
        Score of the reference: human level, a known Bayes rate, or the best shallow
        baseline (an upper bound on the Bayes error). None means a perfect reference
        (error 0).
    train_dev_score : float, optional
        Score on a "train-dev" split: unseen rows from the training distribution.

    Returns
    -------
    BiasVariance

    Raises
    ------
    InvalidParameterError
        If ``metric`` is unknown.

    Notes
    -----
    Machine Learning Yearning, ch. 20-41: avoidable bias = e_train − e_ref; variance =
    e_train-dev − e_train; mismatch = e_val − e_train-dev. Without a train-dev split the
    validation set plays its part and there is no mismatch term.

    Examples
    --------
    >>> bv = bias_variance(0.85, 0.83, reference_score=0.99)
    >>> round(bv.avoidable_bias, 2), round(bv.variance, 2), bv.dominant
    (0.14, 0.02, 'bias')
    >>> bias_variance(0.99, 0.80).dominant
    'variance'
    """
    if metric not in ("accuracy", "r2", "loss"):
        raise InvalidParameterError(
            f"bias_variance metric must be 'accuracy', 'r2' or 'loss'; got {metric!r}."
        )
    e_train, e_val = _error(train_score, metric), _error(val_score, metric)
    e_ref = 0.0 if reference_score is None else _error(reference_score, metric)
    e_dev = None if train_dev_score is None else _error(train_dev_score, metric)
    variance = (e_val if e_dev is None else e_dev) - e_train
    mismatch = None if e_dev is None else e_val - e_dev
    components = {"bias": e_train - e_ref, "variance": variance, "mismatch": mismatch or 0.0}
    name, largest = max(components.items(), key=lambda item: item[1])
    return BiasVariance(
        train_error=e_train,
        val_error=e_val,
        reference_error=e_ref,
        train_dev_error=e_dev,
        avoidable_bias=e_train - e_ref,
        variance=variance,
        mismatch=mismatch,
        dominant=name if largest > 0 else "none",
    )


def _error(score: float, metric: str) -> float:
    """Error of a score: the loss itself, or 1 − accuracy / 1 − R²."""
    return score if metric == "loss" else 1.0 - score


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """Return ``n_boot`` seeded bootstrap resamples of ``range(n)``.

    Returns
    -------
    ndarray of shape (n_boot, n), int64
        Row b holds n draws with replacement.

    Examples
    --------
    >>> bootstrap_indices(5, 3, seed=0).shape
    (3, 5)
    """
    return numpy_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_bias_variance(
    make_model: ModelFactory,
    train: Dataset,
    test: Dataset,
    *,
    n_boot: int = 8,
    config: TrainConfig,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    noise_variance: float | None = None,
    n_jobs: int = 1,
) -> dict[str, float | None]:
    """Estimate squared bias and variance of a regression model's predictions by bootstrap.

    Parameters
    ----------
    make_model : callable
        Returns a fresh, identically initialised model; refitted once per resample.
    train, test : Dataset
        Regression data; the model is refitted on resamples of ``train`` and predicts
        ``test``.
    n_boot : int, default=8
        B, bootstrap resamples (at least 2).
    config : TrainConfig
        Settings of every refit (early stopping and the training probe are switched off).
    seed : int, default=0
        Seed of the resamples (:func:`bootstrap_indices`).
    loss_fn : callable, optional
        Objective; squared error when None.
    noise_variance : float, optional
        σ², when known (synthetic data, repeated measurements); it is subtracted from the
        squared bias. None leaves the noise inside ``bias2``.
    n_jobs : int, default=1
        Parallel refits through ``joblib.Parallel``.

    Returns
    -------
    dict
        ``bias2``: mean over test points and targets of (f̄(x) − y)² − variance / B − σ²;
        ``variance``: mean of the unbiased (ddof=1) variance of f_b(x) over b;
        ``noise_estimate``: σ² as given, or None (then ``bias2`` includes the noise);
        ``expected_error``: mean of (f_b(x) − y)² over b, x and targets.

    Raises
    ------
    DataError
        If either dataset is not regression.
    InvalidParameterError
        If ``n_boot`` < 2.

    Notes
    -----
    E_b (f_b − y)² = (E_b f_b − f*)² + Var_b f_b + σ² for y = f*(x) + noise. f̄ is the mean of
    B draws, so E (f̄ − y)² = bias² + Var/B + σ², and ``bias2`` subtracts both. The init is
    the same for every refit (``make_model``), so the variance is over training sets only.
    Cost: B fits.

    Examples
    --------
    >>> from deepdx.data import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 2))  # (80, 2)
    >>> y = X @ np.array([1.0, -2.0]) + 0.1 * rng.normal(size=80)  # (80,)
    >>> data = from_arrays(X, y, task="regression")
    >>> train, test = data.subset(np.arange(60)), data.subset(np.arange(60, 80))
    >>> out = bootstrap_bias_variance(lambda: torch.nn.Linear(2, 1), train, test, n_boot=3,
    ...                               config=TrainConfig(epochs=10, optimizer="lbfgs"))
    >>> sorted(out), out["variance"] < 0.01
    (['bias2', 'expected_error', 'noise_estimate', 'variance'], True)
    """
    if train.task != "regression" or test.task != "regression":
        raise DataError(
            f"bootstrap_bias_variance needs regression data; got {train.task!r} and "
            f"{test.task!r}. Use learning_curve and bias_variance for classification."
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise InvalidParameterError(f"n_boot must be an int >= 2; got {n_boot!r}.")
    config = config.replace(early_stopping=None, train_eval_size=0)
    predictions = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(make_model, train.subset(index), test, config, loss_fn)
        for index in bootstrap_indices(train.n_samples, n_boot, seed)
    )
    P = np.stack([np.asarray(p) for p in predictions])  # (B, n_test, K)
    assert test.y is not None
    y = test.y.reshape(test.n_samples, -1).astype(np.float64)  # (n_test, K)
    variance = float(P.var(axis=0, ddof=1).mean())
    noisy_bias2 = float(((P.mean(axis=0) - y) ** 2).mean())
    return {
        "bias2": noisy_bias2 - variance / n_boot - (noise_variance or 0.0),
        "variance": variance,
        "noise_estimate": noise_variance,
        "expected_error": float(((P - y) ** 2).mean()),
    }


def _fit_predict(
    make_model: ModelFactory,
    train: Dataset,
    test: Dataset,
    config: TrainConfig,
    loss_fn: LossFn | None,
) -> np.ndarray:
    """Fit a fresh model on ``train``; return its test predictions (n_test, K) in float64."""
    model = make_model()
    fit(model, train, None, config=config, loss_fn=loss_fn)
    z = predict(model, torch.from_numpy(test.X), device=config.device)  # (n_test, K)
    return z.reshape(test.n_samples, -1).double().numpy()
