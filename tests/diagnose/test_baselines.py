from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_classification, make_regression
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR
from threadpoolctl import threadpool_limits

from deepdx.data.dataset import from_arrays
from deepdx.diagnose import baselines
from deepdx.diagnose._isolated import EstimatorWorker, WorkerTimeout, fit_and_score
from deepdx.diagnose.baselines import (
    MAX_GAIN,
    BaselineResult,
    best_baseline,
    fit_baselines,
    normalised_gain,
)
from deepdx.exceptions import DataError, InvalidParameterError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Tiny problems: BLAS threads only add contention, and results must not depend on them.
    with threadpool_limits(1):
        yield


def _split(X, y, *, task=None, train_fraction=0.75):
    ds = from_arrays(X, y, task=task)
    n_train = int(train_fraction * len(X))
    return ds.subset(np.arange(n_train)), ds.subset(np.arange(n_train, len(X)))


def _iris_like(n=150, seed=0):
    X, y = make_classification(
        n, 4, n_informative=3, n_redundant=0, n_classes=3, n_clusters_per_class=1, random_state=seed
    )
    return _split(X, y)


def _digits_like(n=400, seed=0):
    X, y = make_classification(n, 64, n_informative=20, n_classes=10, random_state=seed)
    return _split(X, y)


def _regression(n=200, n_targets=1, seed=0):
    X, y = make_regression(
        n, 10, n_informative=5, n_targets=n_targets, noise=10.0, random_state=seed
    )
    return _split(X, y + 0.5, task="regression")


def _direct(name, task, seed=0, n_outputs=1):
    """The pipelines the docstring of fit_baselines promises, written out independently."""
    models = {
        "classification": {
            "dummy": DummyClassifier(strategy="most_frequent"),
            "logistic_regression": LogisticRegression(max_iter=1_000),
            "linear_svm": LinearSVC(dual="auto", max_iter=1_000, random_state=seed),
            "knn": KNeighborsClassifier(n_neighbors=5),
            "rbf_svm": SVC(kernel="rbf"),
        },
        "regression": {
            "dummy": DummyRegressor(strategy="mean"),
            "ridge": Ridge(),
            "linear_svr": LinearSVR(
                loss="squared_epsilon_insensitive", dual="auto", max_iter=1_000, random_state=seed
            ),
            "knn": KNeighborsRegressor(n_neighbors=5),
            "rbf_svr": SVR(kernel="rbf"),
        },
    }
    model = models[task][name]
    if n_outputs > 1 and name in ("linear_svr", "rbf_svr"):
        model = MultiOutputRegressor(model)
    pipeline = make_pipeline(StandardScaler(), model)
    if task == "regression":
        return TransformedTargetRegressor(regressor=pipeline, transformer=StandardScaler())
    return pipeline


def _assert_equal_to_direct(results, train, test, seed=0):
    X_train, X_test = train.X.reshape(len(train.X), -1), test.X.reshape(len(test.X), -1)
    y_train, y_test = train.y, test.y
    if y_train.ndim == 2 and y_train.shape[1] == 1:
        y_train, y_test = y_train.ravel(), y_test.ravel()
    for result in results:
        assert result.fitted, result.skipped
        direct = _direct(result.name, train.task, seed, train.n_outputs).fit(X_train, y_train)
        assert result.train_score == direct.score(X_train, y_train), result.name
        assert result.test_score == direct.score(X_test, y_test), result.name


# ----------------------------------------------------------------------------- fit_baselines


@pytest.mark.parametrize("make", [_iris_like, _digits_like], ids=["iris_like", "digits_like"])
def test_fit_baselines_scores_equal_direct_sklearn_pipelines_classification(make):
    train, test = make()
    results = fit_baselines(train, test, seed=3)
    assert [r.name for r in results] == [
        "dummy",
        "logistic_regression",
        "knn",
        "rbf_svm",
        "linear_svm",
    ]
    assert {r.metric for r in results} == {"accuracy"}
    assert all(r.note == "" and r.fit_seconds >= 0 for r in results)
    _assert_equal_to_direct(results, train, test, seed=3)


def test_fit_baselines_dummy_scores_majority_class_frequency():
    train, test = _digits_like()
    dummy = fit_baselines(train, test, budget_s=0.0)[0]
    majority = np.bincount(train.y).argmax()
    assert dummy.name == "dummy"
    assert dummy.train_score == np.mean(train.y == majority)
    assert dummy.test_score == np.mean(test.y == majority)


def test_fit_baselines_regression_returns_r2_equal_to_direct_pipelines():
    train, test = _regression()
    results = fit_baselines(train, test)
    assert [r.name for r in results] == ["dummy", "ridge", "linear_svr", "knn", "rbf_svr"]
    assert {r.metric for r in results} == {"r2"}
    assert results[1].test_score > 0.5  # the data are linear: ridge explains most of it
    _assert_equal_to_direct(results, train, test)


def test_fit_baselines_multi_output_regression_equals_direct_pipelines():
    train, test = _regression(n_targets=2)
    results = fit_baselines(train, test)
    _assert_equal_to_direct(results, train, test)


def test_fit_baselines_flattens_image_features():
    train, test = _digits_like(n=120)
    images = [replace(ds, X=ds.X.reshape(-1, 1, 8, 8)) for ds in (train, test)]  # (n, C, H, W)
    assert images[0].sample_shape == (1, 8, 8)
    flat_scores = [(r.train_score, r.test_score) for r in fit_baselines(train, test)]
    image_scores = [(r.train_score, r.test_score) for r in fit_baselines(*images)]
    assert image_scores == flat_scores


def test_fit_baselines_skips_rbf_above_max_rbf_samples():
    train, test = _iris_like()  # 112 training samples
    results = {r.name: r for r in fit_baselines(train, test, max_rbf_samples=111)}
    assert not results["rbf_svm"].fitted
    assert results["rbf_svm"].test_score is None
    assert "n_train=112 > max_rbf_samples=111" in results["rbf_svm"].skipped
    assert all(r.fitted for name, r in results.items() if name != "rbf_svm")
    at_limit = {r.name: r for r in fit_baselines(train, test, max_rbf_samples=112)}
    assert at_limit["rbf_svm"].fitted


def test_fit_baselines_zero_budget_fits_only_the_dummy():
    train, test = _iris_like()
    results = fit_baselines(train, test, budget_s=0.0)
    assert results[0].name == "dummy" and results[0].fitted
    assert all(not r.fitted and "time budget of 0 s" in r.skipped for r in results[1:])


@pytest.fixture(scope="module")
def worker():
    with EstimatorWorker() as started:
        yield started


@pytest.mark.parametrize(
    "make",
    [_digits_like, _regression, lambda: _regression(n_targets=2)],
    ids=["classification", "regression", "multi_output"],
)
def test_fit_baselines_in_a_worker_process_equal_in_process_results_exactly(make, worker):
    train, test = make()
    here = fit_baselines(train, test, seed=3)
    there = fit_baselines(train, test, seed=3, worker=worker)
    assert [(r.name, r.train_score, r.test_score, r.note) for r in there] == [
        (r.name, r.train_score, r.test_score, r.note) for r in here
    ]


def test_fit_baselines_in_a_worker_keeps_convergence_warning_in_note(monkeypatch, worker):
    monkeypatch.setattr(baselines, "LOGISTIC_MAX_ITER", 1)
    train, test = _digits_like(n=200)
    results = {r.name: r for r in fit_baselines(train, test, worker=worker)}
    assert "ConvergenceWarning" in results["logistic_regression"].note


class _RecordingWorker:
    """Stands in for EstimatorWorker: fits here, records each timeout, may time out."""

    def __init__(self, time_out=()):
        self.timeouts, self.time_out = [], set(time_out)

    def fit_and_score(self, estimator, arrays, *, timeout):
        self.timeouts.append(timeout)
        if type(estimator[-1]).__name__ in self.time_out:
            raise WorkerTimeout("no reply")
        return fit_and_score(estimator, arrays)


def test_fit_baselines_stops_adding_models_once_budget_is_spent(monkeypatch):
    ticks = iter(range(1000))  # a clock that advances one second per reading
    monkeypatch.setattr(baselines, "perf_counter", lambda: float(next(ticks)))
    train, test = _iris_like()
    worker = _RecordingWorker()
    results = fit_baselines(train, test, budget_s=4.5, worker=worker)
    # clock: start 0; dummy checks at 1 and fits here; logistic regression checks at 2 and
    # fits in the worker (its start reads 3); k-NN checks at 4, fits (5); then 6 >= 4.5
    assert [r.name for r in results if r.fitted] == ["dummy", "logistic_regression", "knn"]
    assert worker.timeouts == [4.5 - 2, 4.5 - 4]  # what is left of the budget
    assert all("budget of 4.5 s was spent" in r.skipped for r in results[3:])


def test_fit_baselines_reports_a_model_stopped_by_its_timeout(monkeypatch):
    ticks = iter(range(1000))
    monkeypatch.setattr(baselines, "perf_counter", lambda: float(next(ticks)))
    train, test = _iris_like()
    worker = _RecordingWorker(time_out={"LogisticRegression"})
    results = fit_baselines(train, test, budget_s=100.0, worker=worker)
    stopped = results[1]
    assert stopped.name == "logistic_regression" and not stopped.fitted
    # its start reads 3, the timeout 4: stopped after 1 s
    assert stopped.skipped.startswith("stopped after 1.0 s: the time budget of 100 s")
    assert [r.name for r in results if r.fitted] == ["dummy", "knn", "rbf_svm", "linear_svm"]


def test_fit_baselines_keeps_convergence_warning_in_note(monkeypatch):
    monkeypatch.setattr(baselines, "LOGISTIC_MAX_ITER", 1)
    train, test = _digits_like(n=200)
    results = {r.name: r for r in fit_baselines(train, test)}  # warnings are errors in tests
    assert "ConvergenceWarning" in results["logistic_regression"].note
    assert results["logistic_regression"].fitted


def test_fit_baselines_skips_knn_with_too_few_samples():
    X, y = make_classification(12, 3, n_informative=2, n_redundant=0, random_state=0)
    y[:4] = [0, 1, 0, 1]
    train, test = _split(X, y, train_fraction=1 / 3)
    results = {r.name: r for r in fit_baselines(train, test)}
    assert "at least 5 training samples; got 4" in results["knn"].skipped


def test_fit_baselines_rejects_unsupervised_and_mismatched_splits():
    train, test = _iris_like()
    with pytest.raises(DataError, match="supervised splits"):
        fit_baselines(from_arrays(train.X), from_arrays(test.X))
    other = from_arrays(np.ones((10, 3)), np.arange(10) % 3)
    with pytest.raises(DataError, match="differ in sample shape"):
        fit_baselines(train, other)


def test_fit_baselines_rejects_invalid_parameters_in_one_message():
    train, test = _iris_like()
    with pytest.raises(InvalidParameterError, match=r"budget_s must .* max_rbf_samples must"):
        fit_baselines(train, test, budget_s=-1.0, max_rbf_samples=2.5)


# ----------------------------------------------------------------------------- best / gain


def test_best_baseline_picks_highest_test_score_and_cheapest_on_ties():
    results = [
        BaselineResult("dummy", "accuracy", 0.3, 0.3),
        BaselineResult("logistic_regression", "accuracy", 0.9, 0.8),
        BaselineResult("linear_svm", "accuracy", 0.95, 0.8),
        BaselineResult("rbf_svm", "accuracy", skipped="too big"),
    ]
    assert best_baseline(results).name == "logistic_regression"


def test_best_baseline_raises_without_fitted_results():
    with pytest.raises(InvalidParameterError, match="at least one fitted baseline"):
        best_baseline([BaselineResult("knn", "accuracy", skipped="budget")])


@pytest.mark.parametrize(
    ("net", "base", "perfect"),
    [(0.95, 0.9, 1.0), (0.5, 0.9, 1.0), (0.3, 0.2, 1.0), (1.0, 2.0, 0.0), (-0.5, 0.1, 1.0)],
)
def test_normalised_gain_matches_deepchecks_formula(net, base, perfect):
    assert normalised_gain(net, base, perfect) == pytest.approx((net - base) / (perfect - base))


def test_normalised_gain_is_one_for_perfect_net_and_zero_when_equal_to_baseline():
    assert normalised_gain(1.0, 0.7) == 1.0
    assert normalised_gain(0.7, 0.7) == 0.0


def test_normalised_gain_perfect_baseline_is_defined():
    assert normalised_gain(1.0, 1.0) == 0.0  # nothing left to gain, and the net matches
    assert normalised_gain(0.99, 1.0) == -MAX_GAIN  # any shortfall against a perfect baseline


def test_normalised_gain_clips_to_max_gain():
    assert normalised_gain(0.0, 0.999) == -MAX_GAIN  # ratio -999 without the clip
    assert normalised_gain(2.0, 0.99) == MAX_GAIN  # ratio 101: only a score above 'perfect'


def test_normalised_gain_rejects_non_finite_scores():
    with pytest.raises(InvalidParameterError, match="net_score=nan"):
        normalised_gain(math.nan, 0.5)
