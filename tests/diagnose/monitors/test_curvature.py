"""CurvatureMonitor against the eigenvalues of a dense Hessian, and its schedule."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from deepdx._random import seeded_torch
from deepdx.diagnose import signals
from deepdx.diagnose.monitors import NOT_CONVERGED_EVENT, CurvatureMonitor
from deepdx.exceptions import InvalidParameterError
from deepdx.train import cross_entropy_loss, fit
from tests.diagnose.monitors.conftest import N_FEATURES, batch_of, manual_state, mlp, series


def test_curvature_monitor_lambda_max_matches_dense_hessian(data):
    with seeded_torch(1):
        model = nn.Sequential(nn.Linear(N_FEATURES, 4), nn.Tanh(), nn.Linear(4, 2))
    state = manual_state(model)
    monitor = CurvatureMonitor(max_iter=50, tol=1e-6)
    monitor.on_fit_start(state)
    state.batch = batch_of(data)
    monitor.on_step_begin(state)

    double = copy.deepcopy(model).double()
    names = [n for n, _ in double.named_parameters()]
    shapes = [p.shape for p in double.parameters()]
    X, y = state.batch[0].double(), state.batch[1]

    def loss(theta):
        parts = torch.split(theta, [s.numel() for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        logits = torch.func.functional_call(double, params, (X,))
        return nn.functional.cross_entropy(logits, y)

    theta = torch.cat([p.detach().reshape(-1) for p in double.parameters()])  # (P,)
    H = torch.autograd.functional.hessian(loss, theta)  # (P, P)
    expected = torch.linalg.eigvalsh(H)[-1].item()
    assert series(state.history, signals.LAMBDA_MAX)[0] == pytest.approx(expected, rel=1e-3)
    lr_lambda = series(state.history, "lr_times_lambda_max")[0]
    assert lr_lambda == pytest.approx(0.1 * expected, rel=1e-3)


def test_curvature_monitor_default_schedule_is_step_zero_and_final(data):
    history = fit(mlp(), data, epochs=3, batch_size=64, callbacks=[CurvatureMonitor()])
    assert sorted(series(history, signals.LAMBDA_MAX)) == [0, 6]
    history = fit(mlp(), data, epochs=3, batch_size=64, callbacks=[CurvatureMonitor((1, 3))])
    assert sorted(series(history, signals.LAMBDA_MAX)) == [0, 2, 6]


def test_curvature_monitor_records_event_when_solver_misses_tol(data):
    monitor = CurvatureMonitor(max_iter=2, final=False)
    history = fit(mlp(), data, epochs=1, batch_size=64, callbacks=[monitor])
    assert np.isfinite(series(history, signals.LAMBDA_MAX)[0])
    assert [e["step"] for e in history.events if e["kind"] == NOT_CONVERGED_EVENT] == [0]


def test_curvature_monitor_logs_nan_for_non_finite_weights(data):
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    state = manual_state(model)
    monitor = CurvatureMonitor()
    monitor.on_fit_start(state)
    state.batch = batch_of(data)
    monitor.on_step_begin(state)
    assert np.isnan(series(state.history, signals.LAMBDA_MAX)[0])


def test_curvature_monitor_evaluates_probe_loss_once_per_measurement(data):
    sizes = []

    def counting_loss(model, batch):
        sizes.append(len(batch[0]))
        return cross_entropy_loss(model, batch)

    state = manual_state(mlp())
    state.loss_fn = counting_loss
    monitor = CurvatureMonitor()
    monitor.on_fit_start(state)
    state.batch = batch_of(data, 100)
    monitor.on_step_begin(state)  # the step-0 measurement
    assert sizes == [64]  # one forward pass; every product reuses its graph
    assert np.isfinite(series(state.history, signals.LAMBDA_MAX)[0])


@pytest.mark.parametrize("epochs", [(0, 2), "12", (1.5,)])
def test_curvature_monitor_rejects_bad_epochs(epochs):
    with pytest.raises(InvalidParameterError, match="epochs"):
        CurvatureMonitor(epochs)
