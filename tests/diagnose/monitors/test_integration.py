"""All monitors: distance from init, and proof that they never change training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepdx._random import seeded_torch
from deepdx.diagnose import signals
from deepdx.diagnose.monitors import (
    ActivationMonitor,
    CurvatureMonitor,
    DistanceMonitor,
    GradientMonitor,
    default_monitors,
)
from deepdx.train import cross_entropy_loss, fit
from tests.diagnose.monitors.conftest import N_FEATURES, batch_of, manual_state, mlp, series


def test_distance_monitor_matches_reference(data):
    model = mlp()
    theta0 = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    history = fit(model, data, epochs=2, batch_size=32, callbacks=[DistanceMonitor()])
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    logged = series(history, signals.DISTANCE_FROM_INIT)
    assert sorted(logged) == [4, 8]
    assert logged[8] == pytest.approx(((theta - theta0).norm() / theta0.norm()).item(), rel=1e-5)


# ------------------------------------------------------------------ all monitors
class Noise(nn.Module):
    """Adds Gaussian noise from the global RNG, even in eval mode."""

    def forward(self, x):
        return x + 0.01 * torch.randn_like(x)


class Regularised(nn.Module):
    """Dropout and noise (global RNG), batch norm (running statistics): easy to disturb."""

    def __init__(self) -> None:
        super().__init__()
        with seeded_torch(0):
            self.body = nn.Sequential(
                nn.Linear(N_FEATURES, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Dropout(0.3), Noise()
            )
            self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_monitors_leave_training_bitwise_unchanged(data):
    plain, watched = Regularised(), Regularised()
    rng_before = torch.get_rng_state()
    expected = fit(plain, data, epochs=2, batch_size=32, seed=3)
    history = fit(watched, data, epochs=2, batch_size=32, seed=3, callbacks=default_monitors())
    assert torch.equal(rng_before, torch.get_rng_state())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, watched.state_dict()[key]), key
    assert history.steps["loss"] == expected.steps["loss"]
    for p, q in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)  # the last step's gradient, nothing added
    assert watched.training and watched.body[3].training


def test_monitors_restore_each_module_mode(data):
    model = mlp()
    model[1].eval()  # a submodule the user keeps in eval mode
    state = manual_state(model)
    monitors = [ActivationMonitor(), CurvatureMonitor()]
    state.batch = batch_of(data)
    for monitor in monitors:
        monitor.on_fit_start(state)
        monitor.on_step_begin(state)
    assert model.training and not model[1].training and model[3].training
    assert all(p.grad is None for p in model.parameters())
    assert len(series(state.history, signals.LAMBDA_MAX)) == 1


class UserNet(nn.Module):
    """A model written by a user: its own names, a conv layer, GELU units."""

    def __init__(self) -> None:
        super().__init__()
        with seeded_torch(0):
            self.encoder = nn.Conv1d(1, 3, kernel_size=3)
            self.nonlinearity = nn.GELU()
            self.classifier = nn.Linear(12, 2)

    def forward(self, x):
        h = self.nonlinearity(self.encoder(x.unsqueeze(1)))  # (B, 3, 4)
        return self.classifier(h.flatten(1))


def test_monitors_work_on_user_defined_module(data):
    history = fit(UserNet(), data, epochs=2, batch_size=32, callbacks=default_monitors())
    for name in (
        "grad_norm/encoder",
        "grad_norm/classifier",
        "update_ratio/encoder",
        "dead_fraction/nonlinearity",
        signals.LAMBDA_MAX,
        signals.DISTANCE_FROM_INIT,
    ):
        _, values = history.step_series(name)
        assert values.size and np.isfinite(values).all(), name


def test_monitors_resume_matches_uninterrupted_run(data, tmp_path):
    def run(epochs, **options):
        monitors = [*default_monitors()[:3], CurvatureMonitor((2,))]
        return fit(mlp(), data, epochs=epochs, batch_size=64, callbacks=monitors, **options)

    expected = run(4)
    run(2, checkpoint_dir=tmp_path)
    resumed = run(4, checkpoint_dir=tmp_path, resume=True)
    names = [n for n in expected.steps if n != "loss"]
    assert names and sorted(names) == sorted(n for n in resumed.steps if n != "loss")
    for name in names:
        assert resumed.step_index[name] == expected.step_index[name], name
        np.testing.assert_allclose(resumed.steps[name], expected.steps[name], rtol=1e-6)


def test_monitors_series_stay_ordered_through_a_rollback(data):
    training_calls = []

    def flaky_loss(model, batch):  # NaN on the third training-mode evaluation only
        loss = cross_entropy_loss(model, batch)
        if model.training:
            training_calls.append(1)
            if len(training_calls) == 3:
                return loss * float("nan")
        return loss

    monitors = [GradientMonitor(update_every=2), *default_monitors()[1:]]
    options = dict(epochs=2, batch_size=32, nan_policy="rollback", loss_fn=flaky_loss)
    history = fit(mlp(), data, callbacks=monitors, **options)
    assert [e["kind"] for e in history.events] == ["rollback"]
    for name, steps in history.step_index.items():
        assert steps == sorted(set(steps)), name
    grad_steps, grad_norms = history.step_series(signals.GRAD_NORM)
    assert grad_steps.tolist() == list(range(1, 9)) and np.isfinite(grad_norms).all()
    assert sorted(series(history, "update_ratio/0")) == [1, 2, 4, 6, 8]


def test_default_monitors_curvature_flag():
    kinds = [type(m) for m in default_monitors()]
    assert kinds == [GradientMonitor, ActivationMonitor, DistanceMonitor, CurvatureMonitor]
    assert CurvatureMonitor not in [type(m) for m in default_monitors(curvature=False)]
