"""Test problems with known minimisers, and a closure builder, shared by the optim tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from deepdx._random import make_generator, seeded_torch

Objective = Callable[[Tensor], Tensor]


def make_spd(n: int, cond: float, seed: int) -> tuple[Tensor, Tensor]:
    """A (n, n) SPD matrix with eigenvalues log-spaced in [1, cond] and b (n,), float64."""
    gen = make_generator(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eigenvalues = torch.logspace(0.0, math.log10(cond), n, dtype=torch.float64)
    A = Q @ torch.diag(eigenvalues) @ Q.T  # (n, n)
    b = torch.randn(n, generator=gen, dtype=torch.float64)  # (n,)
    return 0.5 * (A + A.T), b


def quadratic(A: Tensor, b: Tensor) -> Objective:
    """f(x) = x'Ax/2 - b'x, minimised at solve(A, b)."""
    return lambda x: 0.5 * x @ A @ x - b @ x


def rosenbrock(x: Tensor) -> Tensor:
    """f(x) = 100 (x1 - x0^2)^2 + (1 - x0)^2, minimised at (1, 1)."""
    return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


ROSENBROCK_START = (-1.2, 1.0)


def barrier(x: Tensor) -> Tensor:
    """f(x) = sum((x - 1)^2 - 0.1 log(1.5 - x)): NaN for x > 1.5; x* = (5 - sqrt(1.8)) / 4."""
    return ((x - 1.0) ** 2 - 0.1 * torch.log(1.5 - x)).sum()


BARRIER_MINIMIZER = (5.0 - math.sqrt(1.8)) / 4.0


def make_closure(
    optimizer: torch.optim.Optimizer, objective: Objective, params: Sequence[Tensor]
) -> Callable[[], Tensor]:
    """The closure torch.optim.LBFGS expects: zero grads, loss of cat(params), backward."""

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = objective(torch.cat([p.reshape(-1) for p in params]))
        loss.backward()
        return loss

    return closure


def run_until_stalled(
    optimizer: torch.optim.Optimizer, closure: Callable[[], Tensor], steps: int
) -> None:
    """Call optimizer.step(closure) up to `steps` times; stop once 3 calls leave x unchanged."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    unchanged = 0
    for _ in range(steps):
        before = [p.detach().clone() for p in params]
        optimizer.step(closure)
        same = all(torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))
        unchanged = unchanged + 1 if same else 0
        if unchanged == 3:
            return


def fit_least_squares(
    factory: Callable[..., torch.optim.Optimizer], *, seed: int, steps: int, **kwargs: object
) -> tuple[Tensor, Tensor]:
    """Train Linear(3, 2) on seeded data by MSE in a standard closure loop, lr=1.

    Returns the trained [W'; b] (4, 2) and the least-squares solution it should reach.
    """
    gen = make_generator(seed)
    X = torch.randn(30, 3, generator=gen, dtype=torch.float64)  # (30, 3)
    y = torch.randn(30, 2, generator=gen, dtype=torch.float64)  # (30, 2)
    with seeded_torch(0):
        model = torch.nn.Linear(3, 2).double()
    optimizer = factory(model.parameters(), lr=1.0, **kwargs)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    X1 = torch.cat([X, torch.ones(30, 1, dtype=torch.float64)], dim=1)  # (30, 4)
    solution = torch.linalg.lstsq(X1, y).solution  # (4, 2) least-squares weights and bias
    return torch.cat([model.weight.detach().T, model.bias.detach()[None]]), solution
