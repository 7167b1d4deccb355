"""Plain functions of a parameter vector: an ill-conditioned quadratic and Rosenbrock's valley.

Both are written through outputs the loss is convex in (:mod:`deepdx.study.problem`): the
quadratic's z = R (x − x*) with RᵀR = A and L = ½‖z‖², so its Gauss-Newton matrix is A
itself; Rosenbrock's residuals z = (10 (x₁ − x₀²), 1 − x₀) with L = ‖z‖², so its
Gauss-Newton matrix is the Levenberg-Marquardt one. Both start from a fixed point (the
seed of :meth:`~deepdx.study.Problem.init_model` is unused) and have f* = 0.

Symbols
-------
==========  ===========================================================================
``x``       (n,) the variables, the only parameter of the model
``A``       (n, n) the quadratic's Hessian, Q diag(λ) Qᵀ with λ log-spaced in [1, κ]
``x*``      (n,) the minimiser
``R``       (n, n) Λ^½ Qᵀ, so that RᵀR = A
==========  ===========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from deepdx._random import make_generator
from deepdx._validation import Interval, check_params
from deepdx.exceptions import DataError
from deepdx.study.problem import Problem

__all__ = ["QuadraticProblem", "RosenbrockProblem"]

_POSITIVE_INT = Interval(int, low=1)


class _Point(nn.Module):
    """A module holding one parameter vector ``x`` (n,), the variable of a plain function."""

    def __init__(self, start: Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(start.clone())  # (n,)


class QuadraticProblem(Problem):
    """Ill-conditioned convex quadratic f(x) = ½ (x − x*)ᵀ A (x − x*), from x = 0.

    Parameters
    ----------
    dim : int, default=100
        n, the number of variables.
    condition : float, default=1e4
        κ = λ_max / λ_min of A; the eigenvalues are log-spaced in [1, κ].
    seed : int, default=0
        Seed of the random eigenvectors of A and of the minimiser x* ~ N(0, I).

    Attributes
    ----------
    A : Tensor
        (n, n) the symmetric positive definite Hessian.
    eigenvalues : Tensor
        (n,) its eigenvalues, increasing.
    x_star : Tensor
        (n,) the minimiser; f* = 0.

    Examples
    --------
    >>> problem = QuadraticProblem(dim=4, condition=100.0)
    >>> model = problem.init_model()
    >>> problem.eigenvalues.round(decimals=4).tolist(), problem.loss(model).item() > 0
    ([1.0, 4.6416, 21.5443, 100.0], True)
    """

    name = "quadratic"
    convex = True
    optimum: float | None = 0.0
    adam_lr = 0.1

    def __init__(self, dim: int = 100, condition: float = 1e4, *, seed: int = 0) -> None:
        check_params(
            "QuadraticProblem",
            {"dim": dim, "condition": condition, "seed": seed},
            {"dim": _POSITIVE_INT, "condition": Interval(float, low=1.0), "seed": Interval(int)},
        )
        self.dim, self.condition, self.seed = dim, float(condition), seed
        gen = make_generator(seed)
        Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        self.eigenvalues = torch.logspace(0.0, math.log10(condition), dim, dtype=torch.float64)
        self._root = self.eigenvalues.sqrt()[:, None] * Q.T  # (n, n) R = Λ^½ Qᵀ, RᵀR = A
        self.A = self._root.T @ self._root  # (n, n)
        self.x_star = torch.randn(dim, generator=gen, dtype=torch.float64)  # (n,)

    def init_model(self, seed: int = 0) -> nn.Module:
        """Return the start x = 0 (the same for every seed)."""
        return _Point(torch.zeros(self.dim, dtype=torch.float64))

    def outputs(self, model: nn.Module, rows: Tensor | None = None) -> Tensor:
        """Return z = R (x − x*) (n,)."""
        return self._root @ (model.get_parameter("x") - self.x_star)  # (n,)

    def loss_on_outputs(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return ½ ‖z‖²."""
        return 0.5 * z.square().sum()

    def describe(self) -> str:
        """Return the problem in one sentence."""
        return (
            f"quadratic ½(x − x*)ᵀA(x − x*) in {self.dim} variables, eigenvalues of A "
            f"log-spaced in [1, {self.condition:g}] (condition number {self.condition:g})"
        )

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments."""
        return {"dim": self.dim, "condition": self.condition, "seed": self.seed}


class RosenbrockProblem(Problem):
    """Rosenbrock's valley f(x) = 100 (x₁ − x₀²)² + (1 − x₀)², minimised at (1, 1), f* = 0.

    Parameters
    ----------
    start : sequence of 2 floats, default=(-1.2, 1.0)
        The classic start point.

    Examples
    --------
    >>> problem = RosenbrockProblem()
    >>> round(problem.loss(problem.init_model()).item(), 6)
    24.2
    """

    name = "rosenbrock"
    convex = False
    optimum: float | None = 0.0
    adam_lr = 0.01
    default_budget = 1.0

    def __init__(self, start: Sequence[float] = (-1.2, 1.0)) -> None:
        if len(start) != 2 or not all(math.isfinite(float(v)) for v in start):
            raise DataError(f"start of RosenbrockProblem must be 2 finite floats; got {start!r}.")
        self.start = (float(start[0]), float(start[1]))

    def init_model(self, seed: int = 0) -> nn.Module:
        """Return the start point (the same for every seed)."""
        return _Point(torch.tensor(self.start, dtype=torch.float64))

    def outputs(self, model: nn.Module, rows: Tensor | None = None) -> Tensor:
        """Return the residuals z = (10 (x₁ − x₀²), 1 − x₀) (2,)."""
        x = model.get_parameter("x")  # (2,)
        return torch.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])  # (2,)

    def loss_on_outputs(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return ‖z‖²."""
        return z.square().sum()

    def describe(self) -> str:
        """Return the problem in one sentence."""
        return f"Rosenbrock 100(x₁ − x₀²)² + (1 − x₀)² from {self.start}, minimum 0 at (1, 1)"

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments."""
        return {"start": list(self.start)}
