"""Shallow scikit-learn baselines on the network's own splits (diagnosis rule D1).

A network that does not clearly beat a linear model on the same train/test split points at
the features, the labels or the pipeline, not at the architecture. :func:`fit_baselines` fits,
from cheap to expensive, a dummy model, a linear model, a linear SVM, k-nearest neighbours
and an RBF-kernel SVM on flattened, standardised features; :func:`normalised_gain` measures
how much of the remaining headroom the network closes.

Symbols
-------
n_train, n_test   rows of the train and test splits
d                 flattened features per sample, prod(sample_shape)
s_net             the network's test score (accuracy or R²)
s_base            a baseline's test score
s_perfect         the best possible score, 1.0 for accuracy and R²
gain              (s_net − s_base) / (s_perfect − s_base)
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

from deepdx.data.dataset import Dataset
from deepdx.diagnose._isolated import EstimatorWorker, FitScores, WorkerTimeout, fit_and_score
from deepdx.exceptions import DataError, InvalidParameterError

__all__ = [
    "GAIN_THRESHOLD",
    "MAX_GAIN",
    "BaselineResult",
    "baseline_worker",
    "best_baseline",
    "fit_baselines",
    "normalised_gain",
]

logger = logging.getLogger(__name__)

Metric = Literal["accuracy", "r2"]
_Estimator = Pipeline | TransformedTargetRegressor

#: A network whose gain over the best baseline is below this does not clearly beat it.
#: Source: Deepchecks ``SimpleModelComparison.add_condition_gain_greater_than``
#: (``min_allowed_gain=0.1``).
GAIN_THRESHOLD = 0.1
#: Gains are clipped to [−MAX_GAIN, MAX_GAIN]. Source: Deepchecks ``SimpleModelComparison``
#: (``max_gain=50``).
MAX_GAIN = 50.0
#: L-BFGS iterations for logistic regression; standardised features converge in far fewer.
LOGISTIC_MAX_ITER = 1_000
#: Coordinate-descent iterations for liblinear's linear SVM / SVR (scikit-learn's default).
#: More buys little accuracy on ill-conditioned data (pixels) at minutes of time: on mnist5k,
#: 10,000 iterations took 220 s and still did not converge. A stop is noted on the result.
LINEAR_SVM_MAX_ITER = 1_000
#: Neighbours of the k-NN baselines (sklearn default).
N_NEIGHBORS = 5
# Warnings a baseline may raise about itself; they go into its ``note`` instead of escaping.
_RECORDED_WARNINGS = (ConvergenceWarning, UndefinedMetricWarning)


@dataclass(frozen=True)
class BaselineResult:
    """Scores of one shallow baseline, or the reason it was not fitted.

    Attributes
    ----------
    name : str
        ``"dummy"``, ``"logistic_regression"``, ``"linear_svm"``, ``"knn"``, ``"rbf_svm"``
        (classification) or ``"dummy"``, ``"ridge"``, ``"linear_svr"``, ``"knn"``,
        ``"rbf_svr"`` (regression).
    metric : {"accuracy", "r2"}
        What the scores measure (the estimator's ``score``).
    train_score, test_score : float or None
        Scores on the train and test splits; None when skipped.
    fit_seconds : float
        Wall-clock seconds of ``fit`` (0.0 when skipped).
    skipped : str or None
        Why the baseline was not fitted (too many samples, budget spent), else None.
    note : str
        Convergence or metric warnings raised while fitting or scoring, else "".
    """

    name: str
    metric: Metric
    train_score: float | None = None
    test_score: float | None = None
    fit_seconds: float = 0.0
    skipped: str | None = None
    note: str = ""

    @property
    def fitted(self) -> bool:
        """True when the baseline was fitted and scored."""
        return self.skipped is None


@dataclass(frozen=True)
class _Spec:
    """A baseline: its name, a factory seed -> final estimator, and when it applies."""

    name: str
    make: Callable[[int], BaseEstimator]
    kernel: bool = False  # O(n_train²) memory: only up to max_rbf_samples
    min_samples: int = 1
    single_output: bool = False  # wrap in MultiOutputRegressor for (n, k) targets


# Cheap to expensive; the factories read the module constants at call time. liblinear's
# linear SVM goes last: on ill-conditioned inputs (pixels) it is by far the slowest.
_CLASSIFIERS = (
    _Spec("dummy", lambda seed: DummyClassifier(strategy="most_frequent")),
    _Spec("logistic_regression", lambda seed: LogisticRegression(max_iter=LOGISTIC_MAX_ITER)),
    _Spec(
        "knn", lambda seed: KNeighborsClassifier(n_neighbors=N_NEIGHBORS), min_samples=N_NEIGHBORS
    ),
    _Spec("rbf_svm", lambda seed: SVC(kernel="rbf"), kernel=True),
    _Spec(
        "linear_svm",
        lambda seed: LinearSVC(dual="auto", max_iter=LINEAR_SVM_MAX_ITER, random_state=seed),
    ),
)
_REGRESSORS = (
    _Spec("dummy", lambda seed: DummyRegressor(strategy="mean")),
    _Spec("ridge", lambda seed: Ridge()),
    _Spec(
        "linear_svr",
        lambda seed: LinearSVR(
            loss="squared_epsilon_insensitive",
            dual="auto",
            max_iter=LINEAR_SVM_MAX_ITER,
            random_state=seed,
        ),
        single_output=True,
    ),
    _Spec(
        "knn", lambda seed: KNeighborsRegressor(n_neighbors=N_NEIGHBORS), min_samples=N_NEIGHBORS
    ),
    _Spec("rbf_svr", lambda seed: SVR(kernel="rbf"), kernel=True, single_output=True),
)


def fit_baselines(
    train: Dataset,
    test: Dataset,
    *,
    budget_s: float | None = None,
    seed: int = 0,
    max_rbf_samples: int = 10_000,
    worker: EstimatorWorker | None = None,
) -> list[BaselineResult]:
    """Fit shallow scikit-learn baselines on ``train`` and score them on both splits.

    Parameters
    ----------
    train, test : Dataset
        Supervised splits with the same task and sample shape. X of shape
        (n, *sample_shape) is flattened to (n, d); images (n, C, H, W) become (n, C·H·W).
    budget_s : float, optional
        Wall-clock budget in seconds for all the models but the dummy, which always runs.
        A model is skipped when the budget is spent before it starts, and stopped (its
        worker process ended) when the budget runs out while it fits; both are reported in
        its ``skipped`` reason. None: no limit.
    seed : int, default=0
        ``random_state`` of the liblinear models (the others are deterministic).
    max_rbf_samples : int, default=10_000
        The RBF-kernel SVM / SVR is fitted only when ``n_train <= max_rbf_samples``.
    worker : EstimatorWorker, optional
        Worker process that fits every model but the dummy (see :func:`baseline_worker`);
        it is left running for the caller to reuse or close. By default a finite
        ``budget_s`` starts one for this call (its start-up, about a second, counts in the
        budget), and an unlimited budget fits every model in this process.

    Returns
    -------
    list of BaselineResult
        One per baseline, cheap to expensive, fitted or with a ``skipped`` reason.
        Classification: dummy (most frequent), logistic_regression (L-BFGS), linear_svm
        (LinearSVC, dual="auto"), knn (k=5), rbf_svm (SVC). Regression: dummy (mean), ridge,
        linear_svr (LinearSVR, squared epsilon-insensitive loss, dual="auto"), knn (k=5),
        rbf_svr (SVR).

    Raises
    ------
    DataError
        If a split is unsupervised, or the splits differ in task, sample shape, classes or
        number of targets.
    InvalidParameterError
        If ``budget_s`` is negative or ``max_rbf_samples`` is not a non-negative int.

    Notes
    -----
    Every model is ``make_pipeline(StandardScaler(), model)`` on the flattened features;
    regressors are further wrapped in ``TransformedTargetRegressor(pipeline,
    transformer=StandardScaler())``, so that the scale-dependent ``C`` and ``epsilon`` of the
    SVR models see unit-variance targets. LinearSVR uses the squared (L2) epsilon-insensitive
    loss, the regression twin of LinearSVC's default squared hinge: with dual="auto" liblinear
    then solves the primal when n_train > d, which converges where the L1-loss dual can stall
    for 10,000 iterations on near-noiseless data. LinearSVR and SVR fit one target, so for (n, k)
    targets they are wrapped in ``MultiOutputRegressor``. Scores are the estimator's
    ``score``: accuracy, or R² averaged uniformly over targets. Convergence and undefined-metric
    warnings are kept in ``note`` rather than raised. Costs: linear models O(n·d) per
    iteration, k-NN scoring O(n_train·(n_train + n_test)·d), the RBF SVM between
    O(n_train²·d) and O(n_train³).

    A scikit-learn ``fit`` cannot be interrupted in its own process, so with a budget the
    models are fitted in a worker process (:class:`~deepdx.diagnose._isolated.EstimatorWorker`)
    that is stopped at the deadline: the call returns within ``budget_s`` plus the time to
    stop a process (well under a second) and the dummy's fit. A model fitted there scores
    exactly as it would in this process.

    Examples
    --------
    >>> import numpy as np
    >>> from deepdx.data.dataset import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4))  # (60, 4)
    >>> y = (X[:, 0] > 0).astype(int)  # (60,)
    >>> results = fit_baselines(from_arrays(X[:40], y[:40]), from_arrays(X[40:], y[40:]))
    >>> [(r.name, r.metric) for r in results][:2]
    [('dummy', 'accuracy'), ('logistic_regression', 'accuracy')]
    >>> best_baseline(results).test_score > results[0].test_score
    True
    """
    _check_inputs(train, test, budget_s, max_rbf_samples)
    metric: Metric = "accuracy" if train.task == "classification" else "r2"
    specs = _CLASSIFIERS if train.task == "classification" else _REGRESSORS
    arrays = (*_arrays(train), *_arrays(test))
    start = perf_counter()
    results: list[BaselineResult] = []
    with contextlib.ExitStack() as stack:
        if worker is None and budget_s is not None:
            worker = stack.enter_context(baseline_worker())  # starts on its first fit
        for spec in specs:
            elapsed = perf_counter() - start
            budget = budget_s if results else None  # the dummy always runs: it is the reference
            reason = _skip_reason(spec, train.n_samples, max_rbf_samples, budget, elapsed)
            if reason is not None:
                results.append(BaselineResult(spec.name, metric, skipped=reason))
                continue
            estimator = _build(spec, train.task == "regression", seed, train.n_outputs)
            fitter = _Fitter(spec.name, metric, worker if results else None, budget, elapsed)
            results.append(fitter.fit(estimator, arrays))
    return results


def baseline_worker() -> EstimatorWorker:
    """Return a worker process (not yet started) that preloads the baselines' modules.

    Returns
    -------
    EstimatorWorker
        Pass it to :func:`fit_baselines` as ``worker``; started early with ``start()``, it
        imports scikit-learn while the caller does other work. Close it when done.

    Examples
    --------
    >>> with baseline_worker() as worker:
    ...     "sklearn.pipeline" in worker.preload
    True
    """
    parts = [Pipeline, StandardScaler, TransformedTargetRegressor, MultiOutputRegressor]
    models = [type(spec.make(0)) for spec in (*_CLASSIFIERS, *_REGRESSORS)]
    return EstimatorWorker(preload=sorted({cls.__module__ for cls in (*parts, *models)}))


def best_baseline(results: list[BaselineResult]) -> BaselineResult:
    """Return the fitted baseline with the highest test score (the cheapest on ties).

    Parameters
    ----------
    results : list of BaselineResult
        The output of :func:`fit_baselines`.

    Returns
    -------
    BaselineResult

    Raises
    ------
    InvalidParameterError
        If no result has a finite test score.

    Notes
    -----
    The choice uses the test split, which flatters the baselines, never the network: a gain
    computed against it is conservative.

    Examples
    --------
    >>> a = BaselineResult("dummy", "accuracy", 0.5, 0.5, 0.0)
    >>> b = BaselineResult("knn", "accuracy", 0.9, 0.8, 0.0)
    >>> best_baseline([a, b]).name
    'knn'
    """
    scored = [r for r in results if r.test_score is not None and math.isfinite(r.test_score)]
    if not scored:
        raise InvalidParameterError(
            f"best_baseline needs at least one fitted baseline with a finite test score; got "
            f"{len(results)} results, none usable. Call fit_baselines with a larger budget_s."
        )
    return max(scored, key=lambda r: r.test_score or 0.0)


def normalised_gain(net_score: float, baseline_score: float, perfect: float = 1.0) -> float:
    """Return the share of the baseline's headroom that the network closes.

    Parameters
    ----------
    net_score : float
        The network's test score.
    baseline_score : float
        The baseline's test score on the same split and metric.
    perfect : float, default=1.0
        The best possible score: 1.0 for accuracy and R², 0.0 for a loss.

    Returns
    -------
    float
        gain = (net − base) / (perfect − base), clipped to [−MAX_GAIN, MAX_GAIN]. 1 means the
        network is perfect, 0 that it only matches the baseline, negative that it is worse.
        Compare with ``GAIN_THRESHOLD``.

    Raises
    ------
    InvalidParameterError
        If a score is not finite.

    Notes
    -----
    Deepchecks' gain. When the baseline is already perfect (base = perfect) the ratio is
    undefined; following Deepchecks the gain is 0.0 if the network is perfect too, and
    −MAX_GAIN otherwise. Works for lower-is-better metrics too, with ``perfect`` the minimum.

    Examples
    --------
    >>> normalised_gain(0.875, 0.75)  # closes half of the remaining 0.25
    0.5
    >>> normalised_gain(1.0, 1.0), normalised_gain(0.9, 1.0)
    (0.0, -50.0)
    """
    values = {"net_score": net_score, "baseline_score": baseline_score, "perfect": perfect}
    bad = [f"{name}={value!r}" for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise InvalidParameterError(
            f"normalised_gain needs finite scores; got {', '.join(bad)}. Skip baselines that "
            "were not fitted."
        )
    headroom = perfect - baseline_score
    if headroom == 0:
        return 0.0 if net_score == baseline_score else -MAX_GAIN
    return float(np.clip((net_score - baseline_score) / headroom, -MAX_GAIN, MAX_GAIN))


# ----------------------------------------------------------------------------- helpers


def _check_inputs(
    train: Dataset, test: Dataset, budget_s: float | None, max_rbf_samples: int
) -> None:
    """Raise if the splits cannot be compared or a parameter is out of range."""
    problems = []
    if budget_s is not None and not budget_s >= 0:
        problems.append(f"budget_s must be None or a number >= 0; got {budget_s!r}.")
    if isinstance(max_rbf_samples, bool) or not isinstance(max_rbf_samples, int):
        problems.append(f"max_rbf_samples must be an int >= 0; got {max_rbf_samples!r}.")
    elif max_rbf_samples < 0:
        problems.append(f"max_rbf_samples must be an int >= 0; got {max_rbf_samples!r}.")
    if problems:
        raise InvalidParameterError("fit_baselines: " + " ".join(problems))
    if train.task == "unsupervised" or test.task != train.task:
        raise DataError(
            f"fit_baselines needs two supervised splits of the same task; got train task "
            f"{train.task!r} and test task {test.task!r}. Baselines need targets y."
        )
    mismatch = {
        "sample shape": (train.sample_shape, test.sample_shape),
        "classes": (train.class_names, test.class_names),
        "number of targets": (train.n_outputs, test.n_outputs),
    }
    for what, (ours, theirs) in mismatch.items():
        if ours != theirs:
            raise DataError(
                f"train split {train.name!r} and test split {test.name!r} differ in {what}: "
                f"{ours} vs {theirs}. Split one dataset so that both parts match."
            )


def _arrays(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return X flattened to (n, d) and y, with (n, 1) regression targets as (n,)."""
    assert ds.y is not None  # checked by _check_inputs
    y = ds.y.reshape(-1) if ds.y.ndim == 2 and ds.y.shape[1] == 1 else ds.y
    return ds.X.reshape(ds.n_samples, -1), y


def _skip_reason(
    spec: _Spec, n_train: int, max_rbf_samples: int, budget_s: float | None, elapsed: float
) -> str | None:
    """Return why ``spec`` must not be fitted, or None."""
    if budget_s is not None and elapsed >= budget_s:
        return (
            f"time budget of {budget_s:.3g} s was spent ({elapsed:.2f} s elapsed) before this "
            "model started; raise the budget to fit it."
        )
    if spec.kernel and n_train > max_rbf_samples:
        return (
            f"n_train={n_train} > max_rbf_samples={max_rbf_samples}: the RBF kernel needs "
            "O(n_train²) memory and up to O(n_train³) time; raise max_rbf_samples to fit it."
        )
    if n_train < spec.min_samples:
        return f"needs at least {spec.min_samples} training samples; got {n_train}."
    return None


def _build(spec: _Spec, regression: bool, seed: int, n_outputs: int) -> _Estimator:
    """Wrap the spec's model in the standardising pipeline (and target scaler)."""
    model = spec.make(seed)
    if spec.single_output and n_outputs > 1:
        model = MultiOutputRegressor(model)
    pipeline = make_pipeline(StandardScaler(), model)
    if regression:
        return TransformedTargetRegressor(regressor=pipeline, transformer=StandardScaler())
    return pipeline


@dataclass(frozen=True)
class _Fitter:
    """Fits one baseline, in this process or in ``worker`` until the budget is spent."""

    name: str
    metric: Metric
    worker: EstimatorWorker | None
    budget_s: float | None
    elapsed: float  # seconds of the budget spent before this model

    def fit(self, estimator: _Estimator, arrays: tuple[np.ndarray, ...]) -> BaselineResult:
        """Fit on the train arrays, score both splits, and keep the model's own warnings."""
        if self.worker is None:
            return self._result(fit_and_score(estimator, arrays))
        timeout = None if self.budget_s is None else self.budget_s - self.elapsed
        start = perf_counter()
        try:
            return self._result(self.worker.fit_and_score(estimator, arrays, timeout=timeout))
        except WorkerTimeout:
            seconds = perf_counter() - start
        logger.info("baseline %s stopped after %.1f s: the budget was spent", self.name, seconds)
        return BaselineResult(
            self.name,
            self.metric,
            skipped=f"stopped after {seconds:.1f} s: the time budget of {self.budget_s:.3g} s "
            "was spent; raise the budget to fit it.",
        )

    def _result(self, scores: FitScores) -> BaselineResult:
        """Turn the scores into a result; re-raise the warnings that are not the model's."""
        notes = []
        for category, message, filename, lineno in scores.caught:
            if issubclass(category, _RECORDED_WARNINGS):
                notes.append(f"{category.__name__}: {message}")
                logger.info("baseline %s: %s", self.name, message)
            else:
                warnings.warn_explicit(message, category, filename, lineno)
        return BaselineResult(
            self.name,
            self.metric,
            scores.train_score,
            scores.test_score,
            scores.fit_seconds,
            note=" ".join(notes),
        )
