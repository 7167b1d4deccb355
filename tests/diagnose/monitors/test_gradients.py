"""GradientMonitor against brute-force gradient norms and explicit weight copies."""

from __future__ import annotations

import numpy as np
import pytest

from deepdx.diagnose import signals
from deepdx.diagnose.monitors import GradientMonitor
from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.train import Callback, cross_entropy_loss, fit
from tests.diagnose.monitors.conftest import Reference, batch_of, linears, manual_state, mlp, series


def test_gradient_monitor_grad_norm_matches_concatenated_reference(data):
    reference = Reference()
    history = fit(mlp(), data, epochs=2, batch_size=32, callbacks=[GradientMonitor(), reference])
    logged = series(history, signals.GRAD_NORM)
    assert sorted(logged) == list(range(1, 9))
    for step, value in logged.items():
        assert value == pytest.approx(reference.grad_norm[step], rel=1e-5)


def test_gradient_monitor_layer_norms_match_reference_on_schedule(data):
    reference = Reference()
    monitor = GradientMonitor(layer_every=3)
    history = fit(mlp(), data, epochs=2, batch_size=16, callbacks=[monitor, reference])
    for name, _ in linears(mlp()):
        logged = series(history, signals.layer_signal(signals.LAYER_GRAD_NORM, name))
        assert sorted(logged) == [1, 3, 6, 9, 12, 15]
        for step, value in logged.items():
            assert value == pytest.approx(reference.layer_norm[name, step], rel=1e-5)


def test_gradient_monitor_update_ratio_matches_explicit_copies(data):
    reference = Reference()
    monitor = GradientMonitor(update_every=4)
    history = fit(mlp(), data, epochs=2, batch_size=16, lr=0.01, callbacks=[monitor, reference])
    for name, _ in linears(mlp()):
        logged = series(history, signals.layer_signal(signals.UPDATE_RATIO, name))
        assert sorted(logged) == [1, 4, 8, 12, 16]
        for step, value in logged.items():
            assert value > 0
            assert value == pytest.approx(reference.ratio[name, step], rel=1e-4)


def test_gradient_monitor_sparse_global_norm_keeps_per_layer_steps(data):
    reference = Reference()
    monitor = GradientMonitor(3, layer_every=4, update_every=100)
    history = fit(mlp(), data, epochs=2, batch_size=16, callbacks=[monitor, reference])
    logged = series(history, signals.GRAD_NORM)
    assert sorted(logged) == [1, 3, 4, 6, 8, 9, 12, 15, 16]
    for step, value in logged.items():
        assert value == pytest.approx(reference.grad_norm[step], rel=1e-5)


def test_gradient_monitor_logs_nan_gradient_as_is(data):
    model = mlp()
    state = manual_state(model)
    monitor = GradientMonitor(layer_every=1)
    monitor.on_fit_start(state)
    cross_entropy_loss(model, batch_of(data)).backward()
    model[0].weight.grad[0, 0] = float("nan")
    state.step = 1
    monitor.on_step_end(state)
    assert np.isnan(series(state.history, signals.GRAD_NORM)[1])
    assert np.isnan(series(state.history, "grad_norm/0")[1])
    assert np.isfinite(series(state.history, "grad_norm/2")[1])


class HistoryKeeper(Callback):
    """Keeps the run's history, which a run that raises does not return."""

    def on_fit_start(self, state):
        self.history = state.history


def test_gradient_monitor_keeps_every_step_of_a_diverging_run(data):
    calls = []

    def diverging_loss(model, batch):  # NaN from the third step on
        calls.append(1)
        loss = cross_entropy_loss(model, batch)
        return loss * float("nan") if len(calls) >= 3 else loss

    keeper = HistoryKeeper()
    with pytest.raises(NumericalError):
        fit(
            mlp(),
            data,
            epochs=2,
            batch_size=32,
            loss_fn=diverging_loss,
            callbacks=[keeper, GradientMonitor()],
        )
    assert not keeper.history.epochs  # fit raised before any epoch-end hook ran
    logged = series(keeper.history, signals.GRAD_NORM)
    assert sorted(logged) == [1, 2, 3, 4]
    assert np.isfinite([logged[1], logged[2]]).all() and np.isnan([logged[3], logged[4]]).all()


@pytest.mark.parametrize("kwargs", [{"every": -1}, {"layer_every": 0}, {"update_every": 2.5}])
def test_gradient_monitor_rejects_bad_period(kwargs):
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        GradientMonitor(**kwargs)
