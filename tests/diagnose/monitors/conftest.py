"""Shared data, models and brute-force references for the monitor tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepdx._random import seeded_torch
from deepdx.data.dataset import from_arrays
from deepdx.train import Callback, History, TrainState, cross_entropy_loss

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
        self._before = {n: m.weight.detach().clone() for n, m in linears(state.model)}

    def on_step_end(self, state):
        flat = torch.cat([p.grad.reshape(-1) for p in state.model.parameters()])
        self.grad_norm[state.step] = torch.linalg.vector_norm(flat).item()
        for name, module in linears(state.model):
            before = self._before[name]
            self.layer_norm[name, state.step] = module.weight.grad.norm().item()
            self.ratio[name, state.step] = ((module.weight - before).norm() / before.norm()).item()


def linears(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


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
