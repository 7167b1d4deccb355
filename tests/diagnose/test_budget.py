"""The diagnosis keeps its time budget: slow baselines are stopped, training stops in time."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from sklearn.dummy import DummyClassifier

from deepdx.data.dataset import from_arrays
from deepdx.diagnose import _isolated, baselines, diagnose
from deepdx.diagnose._budget import Budget, CheckSkipped, DeadlineStop
from deepdx.diagnose._isolated import EstimatorWorker, WorkerError, WorkerTimeout
from deepdx.diagnose.engine import BUDGET_RULE, _make_in_time
from deepdx.diagnose.generalization import learning_curve
from deepdx.train import TrainConfig, fit
from tests.diagnose._slow_estimator import SlowClassifier

#: Seconds past the budget a diagnosis on tiny data may take: one training epoch (ms here),
#: stopping the worker, and slack for a loaded test machine.
OVERSHOOT_S = 3.0


def blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 5)) + 6.0 * np.eye(3, 5)[y]).astype(np.float32)
    return from_arrays(X, y, name="blobs")


def _arrays(data):
    return data.X, data.y, data.X, data.y


def _gone(pid):
    """True when no process (not even a zombie) has this id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def started(monkeypatch):
    """Record every worker process started during the test."""
    processes = []

    class Recording(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            processes.append(self)

    monkeypatch.setattr(_isolated.subprocess, "Popen", Recording)
    return processes


@pytest.fixture
def slow_baseline(monkeypatch):
    """Plant a baseline whose fit sleeps 60 s between the dummy and logistic regression."""
    dummy, logistic = baselines._CLASSIFIERS[:2]
    slow = baselines._Spec("slow", lambda seed: SlowClassifier(60.0))
    monkeypatch.setattr(baselines, "_CLASSIFIERS", (dummy, slow, logistic))


def _assert_all_ended(processes):
    assert processes, "no worker process was started"
    assert all(p.returncode is not None and _gone(p.pid) for p in processes)
    assert multiprocessing.active_children() == []


# ----------------------------------------------------------------------------- the worker


def test_estimator_worker_stops_a_slow_fit_and_restarts_on_the_next(started):
    arrays = _arrays(blobs(60))
    with EstimatorWorker() as worker:
        worker.start()
        first = worker.pid
        start = time.perf_counter()
        with pytest.raises(WorkerTimeout, match="no reply within 0.5 s"):
            worker.fit_and_score(SlowClassifier(60.0), arrays, timeout=0.5)
        assert time.perf_counter() - start < 0.5 + 1.5  # stopped, not slept for 60 s
        assert worker.pid is None and first is not None and _gone(first)
        scores = worker.fit_and_score(DummyClassifier(), arrays, timeout=60.0)
        assert worker.pid not in (None, first)
    assert scores.test_score == DummyClassifier().fit(*arrays[:2]).score(*arrays[2:])
    _assert_all_ended(started)


def test_estimator_worker_reraises_the_estimators_error_with_its_traceback():
    arrays = _arrays(blobs(60))
    with (
        EstimatorWorker() as worker,
        pytest.raises(ValueError, match="continuous is not supported") as info,
    ):
        worker.fit_and_score(DummyClassifier(), (*arrays[:1], arrays[1] + 0.5, *arrays[2:]))
    assert any("raised in the worker process" in note for note in info.value.__notes__)


def test_estimator_worker_reports_a_dead_child_and_forgets_it(started):
    with EstimatorWorker() as worker:
        worker.start()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="ended while fitting"):
            worker.fit_and_score(DummyClassifier(), _arrays(blobs(60)), timeout=60.0)
        assert worker.pid is None
    _assert_all_ended(started)


# ----------------------------------------------------------------------------- baselines


@pytest.mark.usefixtures("slow_baseline")
def test_fit_baselines_stops_a_slow_model_when_the_budget_is_spent(started):
    data = blobs()
    start = time.perf_counter()
    results = {r.name: r for r in baselines.fit_baselines(data, data, budget_s=1.5)}
    assert time.perf_counter() - start < 1.5 + 1.0
    assert results["dummy"].fitted
    assert results["slow"].skipped.startswith("stopped after 1.")
    assert "the time budget of 1.5 s was spent; raise the budget" in results["slow"].skipped
    assert "before this model started" in results["logistic_regression"].skipped
    _assert_all_ended(started)


# ----------------------------------------------------------------------------- training


def test_deadline_stop_ends_the_run_after_the_epoch_the_budget_ran_out():
    data = blobs(60)
    ticks = iter(range(100))  # starts at 0; epoch k ends at k s
    stop = DeadlineStop(Budget(4.5, clock=lambda: float(next(ticks))), "out of time")
    history = fit(torch.nn.Linear(5, 3), data, epochs=50, callbacks=[stop])
    assert stop.stopped_at == 5 and len(history.epochs) == 5
    assert history.events[-1] == {"kind": "stop", "reason": "out of time", "epoch": 5}


def test_deadline_stop_does_not_fire_on_the_last_epoch():
    stop = DeadlineStop(Budget(0.0))
    history = fit(torch.nn.Linear(5, 3), blobs(60), epochs=1, callbacks=[stop])
    assert stop.stopped_at is None and not history.events


# ----------------------------------------------------------------------------- fits of a check


def test_make_in_time_builds_until_the_budget_is_spent_then_stops_the_check():
    ticks = iter([0.0, 1.0, 3.0])  # start, first call (1 s left), second call (spent)
    clock = Budget(2.0, clock=lambda: next(ticks))
    model = _make_in_time(lambda: torch.nn.Linear(5, 3), clock)
    assert isinstance(model, torch.nn.Linear)
    with pytest.raises(CheckSkipped, match="budget of 2 s was spent before all its fits ran"):
        _make_in_time(lambda: torch.nn.Linear(5, 3), clock)


def test_learning_curve_stops_before_its_next_fit_when_the_budget_is_spent():
    calls = []
    clock = Budget(2.5, clock=lambda: float(len(calls)))  # one second per model built

    def make():
        calls.append(1)
        return torch.nn.Linear(5, 3)

    with pytest.raises(CheckSkipped, match="stopped: the diagnosis budget of 2.5 s"):
        learning_curve(
            functools.partial(_make_in_time, make, clock),
            blobs(90),
            fractions=(0.5, 1.0),
            config=TrainConfig(epochs=1),
        )
    assert len(calls) == 3  # fits 1-3 built their model; the 4th of 6 found no time left


# ----------------------------------------------------------------------------- diagnose


@pytest.mark.usefixtures("slow_baseline")
def test_diagnose_ends_within_budget_when_a_baseline_is_slow(started):
    budget = 5.0
    start = time.perf_counter()
    result = diagnose(blobs(), "mlp:8", budget=budget, epochs=3)
    assert time.perf_counter() - start < budget + OVERSHOOT_S
    reason = result.evidence.skipped["baseline_slow"]
    assert reason.startswith("stopped after") and "budget" in reason
    assert ("not_run", "baseline_slow") in {
        (f.kind, f.evidence.get("check")) for f in result.findings
    }
    assert result.evidence.history is not None  # the later checks still ran
    _assert_all_ended(started)


def test_diagnose_stops_the_training_run_when_the_budget_is_spent():
    budget, epochs = 3.0, 1_000_000
    start = time.perf_counter()
    result = diagnose(blobs(), "mlp:8", budget=budget, epochs=epochs)
    assert time.perf_counter() - start < budget + OVERSHOOT_S
    trained = len(result.evidence.history.epochs)
    assert 1 <= trained < epochs
    assert result.evidence.skipped["training_epochs"] == (
        f"epochs {trained + 1} to {epochs} of the training run were not trained: the "
        "diagnosis budget of 3 s was spent; raise the budget to train them"
    )
    assert {"learning_curve", "capacity_probes"} <= set(result.evidence.skipped)
    assert result.settings["budget_rule"] == BUDGET_RULE


@pytest.mark.slow
def test_diagnose_mnist5k_keeps_a_20_s_budget():
    from deepdx.data import load

    data = load("mnist5k")
    start = time.perf_counter()
    result = diagnose(data, budget=20.0)
    assert time.perf_counter() - start < 25.0
    assert result.evidence.history is not None
