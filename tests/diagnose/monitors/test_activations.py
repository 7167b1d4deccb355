"""ActivationMonitor against per-unit brute-force counts on planted dead and saturated units."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepdx._random import seeded_torch
from deepdx.diagnose import signals
from deepdx.diagnose.monitors import SOFT_SATURATED_FRACTION, ActivationMonitor
from deepdx.train import fit
from tests.diagnose.monitors.conftest import (
    N_FEATURES,
    batch_of,
    manual_state,
    mlp,
    reference_idle_fraction,
    series,
    slope,
)


def test_activation_monitor_dead_fraction_one_with_planted_negative_bias(data):
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    history = fit(model, data, epochs=1, batch_size=32, callbacks=[ActivationMonitor()])
    assert series(history, "dead_fraction/1")[0] == 1.0


def test_activation_monitor_dead_fraction_below_half_with_default_init(data):
    history = fit(mlp(), data, epochs=1, batch_size=32, callbacks=[ActivationMonitor()])
    for layer in ("1", "3"):
        assert series(history, f"dead_fraction/{layer}")[0] < 0.5


def test_activation_monitor_dead_fraction_matches_brute_force(data):
    model = mlp()
    with torch.no_grad():
        model[0].bias[::3] = -100.0  # units 0, 3, 6, ... dead
    state = manual_state(model)
    monitor = ActivationMonitor()
    monitor.on_fit_start(state)
    state.batch = batch_of(data)
    monitor.on_step_begin(state)
    with torch.no_grad():
        a = model[0](state.batch[0])  # (64, 16) input of the first ReLU
    expected = reference_idle_fraction(a > 0)
    assert expected == pytest.approx(6 / 16)
    assert series(state.history, "dead_fraction/1")[0] == pytest.approx(expected)


def test_activation_monitor_conv_unit_is_a_channel(data):
    with seeded_torch(0):
        conv = nn.Conv1d(1, 4, kernel_size=3)
        unflatten = nn.Unflatten(1, (1, N_FEATURES))
        model = nn.Sequential(unflatten, conv, nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        conv.bias[:1] = -100.0
    state = manual_state(model)
    monitor = ActivationMonitor()
    monitor.on_fit_start(state)
    state.batch = batch_of(data)
    monitor.on_step_begin(state)
    with torch.no_grad():
        a = model[1](model[0](state.batch[0]))  # (64, 4, 4): 4 channels at 4 positions
    expected = reference_idle_fraction(a > 0)
    assert expected == pytest.approx(1 / 4)
    assert series(state.history, "dead_fraction/2")[0] == pytest.approx(expected)


class Tokens(nn.Module):
    """A Linear applied to (B, T, F) inputs: its units are on the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        h = self.act(self.proj(x.view(len(x), 2, 3)))  # (B, 2, 4)
        return self.head(h.flatten(1))


def test_activation_monitor_linear_unit_is_the_last_axis(data):
    with seeded_torch(0):  # the two live features must fire somewhere: a seeded init
        model = Tokens()
    with torch.no_grad():
        model.proj.bias[:2] = -100.0  # 2 of the 4 features dead at both positions
    history = fit(model, data, epochs=1, batch_size=32, callbacks=[ActivationMonitor()])
    assert series(history, "dead_fraction/act")[0] == 0.5


def test_activation_monitor_soft_saturation_near_one_with_weights_times_100(data):
    model = mlp(nn.Sigmoid)
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(100.0)
    history = fit(model, data, epochs=1, batch_size=64, callbacks=[ActivationMonitor()])
    for layer in ("1", "3"):
        assert series(history, SOFT_SATURATED_FRACTION + layer)[0] >= 0.9


@pytest.mark.parametrize("activation", [nn.Sigmoid, nn.Tanh])
def test_activation_monitor_saturation_near_zero_with_default_init(data, activation):
    history = fit(mlp(activation), data, epochs=1, batch_size=64, callbacks=[ActivationMonitor()])
    for prefix in (signals.SATURATED_FRACTION, SOFT_SATURATED_FRACTION):
        for layer in ("1", "3"):
            assert series(history, prefix + layer)[0] <= 0.1


@pytest.mark.parametrize(
    ("activation", "lo", "hi"), [(nn.Tanh, -9.4999, 9.4999), (nn.Sigmoid, -23.0, 16.99999)]
)
def test_activation_monitor_saturation_matches_brute_force(data, activation, lo, hi):
    model = mlp(activation)
    with torch.no_grad():
        model[0].weight[:4].mul_(0.1)  # units 0-3 pinned far out: saturated by both rules
        model[0].bias[:4] = torch.tensor([-50.0, 50.0, -60.0, 60.0])
        model[0].weight[4:8].mul_(40.0)  # units 4-7 wide: mostly in the soft-saturated range
    state = manual_state(model)
    monitor = ActivationMonitor()
    monitor.on_fit_start(state)
    state.batch = batch_of(data)
    monitor.on_step_begin(state)
    with torch.no_grad():
        a = model[0](state.batch[0])  # (64, 16)
    strict = reference_idle_fraction((a > lo) & (a < hi))
    soft = reference_idle_fraction(slope(activation(), a) >= 1e-2, threshold=0.5)
    assert 0 < strict < soft < 1
    assert series(state.history, signals.SATURATED_FRACTION + "1")[0] == pytest.approx(strict)
    assert series(state.history, SOFT_SATURATED_FRACTION + "1")[0] == pytest.approx(soft)


def test_activation_monitor_measures_step_zero_and_every_epoch(data):
    history = fit(mlp(), data, epochs=3, batch_size=64, callbacks=[ActivationMonitor()])
    assert sorted(series(history, "dead_fraction/1")) == [0, 2, 4, 6]
    history = fit(mlp(), data, epochs=3, batch_size=64, callbacks=[ActivationMonitor(2)])
    assert sorted(series(history, "dead_fraction/1")) == [0, 4]


class FunctionalNet(nn.Module):
    """Activations called as functions cannot be hooked."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(N_FEATURES, 8)
        self.outer = nn.Linear(8, 2)

    def forward(self, x):
        return self.outer(torch.relu(self.inner(x)))


def test_activation_monitor_skipped_reason_without_activation_modules(data):
    monitor = ActivationMonitor()
    history = fit(FunctionalNet(), data, epochs=1, batch_size=64, callbacks=[monitor])
    assert monitor.skipped_reason is not None and "no activation module" in monitor.skipped_reason
    assert not [name for name in history.steps if "fraction" in name]


class Shared(nn.Module):
    """One activation module called twice in the forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(N_FEATURES, 8), nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.act(self.second(self.act(self.first(x)))))


def test_activation_monitor_reused_module_gets_one_series_per_call(data):
    history = fit(Shared(), data, epochs=1, batch_size=64, callbacks=[ActivationMonitor()])
    assert signals.layers_of(list(history.steps), signals.SATURATED_FRACTION) == ["act", "act#2"]
