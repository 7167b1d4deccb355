"""Monitors against brute-force references, and proof that they never change training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from deepdx._random import seeded_torch
from deepdx.data.dataset import from_arrays
from deepdx.diagnose import signals
from deepdx.diagnose.monitors import (
    NOT_CONVERGED_EVENT,
    SOFT_SATURATED_FRACTION,
    ActivationMonitor,
    CurvatureMonitor,
    DistanceMonitor,
    GradientMonitor,
    default_monitors,
)
from deepdx.exceptions import InvalidParameterError
from deepdx.train import Callback, History, TrainState, cross_entropy_loss, fit

N_FEATURES = 6


@pytest.fixture
def data():
    """128 rows of 6 standard-normal features, two classes."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, N_FEATURES)).astype(np.float32)
    return from_arrays(X, (X[:, 0] + X[:, 1] > 0).astype(np.int64))


def mlp(activation: type[nn.Module] = nn.ReLU, *, hidden: int = 16, seed: int = 0) -> nn.Module:
    with seeded_torch(seed):
        return nn.Sequential(
            nn.Linear(N_FEATURES, hidden),
            activation(),
            nn.Linear(hidden, hidden),
            activation(),
            nn.Linear(hidden, 2),
        )


def manual_state(model: nn.Module) -> TrainState:
    """A TrainState for driving a monitor's hooks by hand."""
    return TrainState(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        history=History(),
        n_epochs=1,
        loss_fn=cross_entropy_loss,
        device=torch.device("cpu"),
    )


def batch_of(data, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.X[:n]), torch.from_numpy(data.y[:n])


def series(history: History, name: str) -> dict[int, float]:
    steps, values = history.step_series(name)
    return dict(zip(steps.tolist(), values.tolist(), strict=True))


class Reference(Callback):
    """Brute-force gradient norms and update ratios, recorded at every step."""

    def __init__(self) -> None:
        self.grad_norm: dict[int, float] = {}
        self.layer_norm: dict[tuple[str, int], float] = {}
        self.ratio: dict[tuple[str, int], float] = {}
        self._before: dict[str, torch.Tensor] = {}

    def on_step_begin(self, state):
        self._before = {n: m.weight.detach().clone() for n, m in _linears(state.model)}

    def on_step_end(self, state):
        flat = torch.cat([p.grad.reshape(-1) for p in state.model.parameters()])
        self.grad_norm[state.step] = torch.linalg.vector_norm(flat).item()
        for name, module in _linears(state.model):
            before = self._before[name]
            self.layer_norm[name, state.step] = module.weight.grad.norm().item()
            self.ratio[name, state.step] = ((module.weight - before).norm() / before.norm()).item()


def _linears(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


# ------------------------------------------------------------------ GradientMonitor
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
    for name, _ in _linears(mlp()):
        logged = series(history, signals.layer_signal(signals.LAYER_GRAD_NORM, name))
        assert sorted(logged) == [1, 3, 6, 9, 12, 15]
        for step, value in logged.items():
            assert value == pytest.approx(reference.layer_norm[name, step], rel=1e-5)


def test_gradient_monitor_update_ratio_matches_explicit_copies(data):
    reference = Reference()
    monitor = GradientMonitor(update_every=4)
    history = fit(mlp(), data, epochs=2, batch_size=16, lr=0.01, callbacks=[monitor, reference])
    for name, _ in _linears(mlp()):
        logged = series(history, signals.layer_signal(signals.UPDATE_RATIO, name))
        assert sorted(logged) == [1, 4, 8, 12, 16]
        for step, value in logged.items():
            assert value > 0
            assert value == pytest.approx(reference.ratio[name, step], rel=1e-4)


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


@pytest.mark.parametrize("kwargs", [{"layer_every": 0}, {"update_every": 2.5}])
def test_gradient_monitor_rejects_bad_period(kwargs):
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        GradientMonitor(**kwargs)


# ------------------------------------------------------------------ ActivationMonitor
def reference_idle_fraction(works: torch.Tensor, threshold: float = 0.01) -> float:
    """Share of units (axis 1) that work, at some position, on < ``threshold`` of samples."""
    n_samples, n_units = works.shape[:2]
    idle = 0
    for u in range(n_units):
        n_working = sum(bool(works[n, u].any()) for n in range(n_samples))
        idle += n_working / n_samples < threshold
    return idle / n_units


def slope(activation: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """f'(a) element-wise, by autograd."""
    a = a.detach().clone().requires_grad_(True)
    activation(a).sum().backward()
    return a.grad


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


# ------------------------------------------------------------------ CurvatureMonitor
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


@pytest.mark.parametrize("epochs", [(0, 2), "12", (1.5,)])
def test_curvature_monitor_rejects_bad_epochs(epochs):
    with pytest.raises(InvalidParameterError, match="epochs"):
        CurvatureMonitor(epochs)


# ------------------------------------------------------------------ DistanceMonitor
def test_distance_monitor_matches_reference(data):
    model = mlp()
    theta0 = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    history = fit(model, data, epochs=2, batch_size=32, callbacks=[DistanceMonitor()])
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    logged = series(history, signals.DISTANCE_FROM_INIT)
    assert sorted(logged) == [4, 8]
    assert logged[8] == pytest.approx(((theta - theta0).norm() / theta0.norm()).item(), rel=1e-5)


# ------------------------------------------------------------------ all monitors
class Regularised(nn.Module):
    """Dropout (global RNG) and batch norm (running statistics): easy to disturb."""

    def __init__(self) -> None:
        super().__init__()
        with seeded_torch(0):
            self.body = nn.Sequential(
                nn.Linear(N_FEATURES, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Dropout(0.3)
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


def test_default_monitors_curvature_flag():
    kinds = [type(m) for m in default_monitors()]
    assert kinds == [GradientMonitor, ActivationMonitor, DistanceMonitor, CurvatureMonitor]
    assert CurvatureMonitor not in [type(m) for m in default_monitors(curvature=False)]
