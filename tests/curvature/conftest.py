"""Tiny float64 problems with dense references for the curvature tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from deepdx.curvature import flatten, unflatten

B, D, H, K = 8, 3, 4, 3  # batch, inputs, hidden units, outputs -> P = 4*3+4+3*4+3 = 31


@dataclass
class Problem:
    """A model given as parameter tensors, closures over them, and flat-vector functions."""

    params: list[Tensor]
    forward: Callable[[list[Tensor]], Tensor]  # params -> z (B, K)
    loss_on_outputs: Callable[[Tensor], Tensor]  # z -> scalar

    def outputs(self) -> Tensor:
        return self.forward(self.params)

    def loss(self) -> Tensor:
        return self.loss_on_outputs(self.outputs())

    @property
    def theta(self) -> Tensor:
        return flatten(self.params).detach()

    def flat_outputs(self, theta: Tensor) -> Tensor:
        return self.forward(unflatten(theta, self.params))

    def flat_loss(self, theta: Tensor) -> Tensor:
        return self.loss_on_outputs(self.flat_outputs(theta))

    def dense_hessian(self) -> Tensor:
        return torch.autograd.functional.hessian(self.flat_loss, self.theta)  # (P, P)

    def dense_ggn(self) -> Tensor:
        """J^T H_L J from explicit Jacobian and output Hessian."""
        theta = self.theta
        z = self.flat_outputs(theta).detach()
        J = torch.autograd.functional.jacobian(self.flat_outputs, theta)  # (B, K, P)
        J = J.reshape(z.numel(), -1)  # (BK, P)
        H_L = torch.autograd.functional.hessian(
            lambda zf: self.loss_on_outputs(zf.view_as(z)), z.reshape(-1)
        )  # (BK, BK)
        return J.T @ H_L @ J

    def random_direction(self, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        v = torch.randn(self.theta.numel(), generator=gen, dtype=self.theta.dtype)
        return v.to(self.theta.device)


def mlp_forward(params: list[Tensor], X: Tensor) -> Tensor:
    W1, b1, W2, b2 = params
    h = torch.tanh(X @ W1.T + b1)  # (B, H)
    return h @ W2.T + b2  # (B, K)


def make_mlp(
    loss: str, seed: int = 0, dtype: torch.dtype = torch.float64, device: str = "cpu"
) -> Problem:
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).to(device)

    X = randn(B, D)
    params = [randn(H, D), randn(H, scale=0.5), randn(K, H), randn(K, scale=0.5)]
    params = [p.requires_grad_(True) for p in params]
    if loss == "ce":
        y = torch.randint(0, K, (B,), generator=gen).to(device)
        loss_on_outputs = lambda z: F.cross_entropy(z, y)  # noqa: E731
    else:
        t = randn(B, K)
        loss_on_outputs = lambda z: 0.5 * ((z - t) ** 2).sum(dim=1).mean()  # noqa: E731
    return Problem(params, lambda ps: mlp_forward(ps, X), loss_on_outputs)


def make_linear(seed: int = 0) -> Problem:
    """Linear model z = X W^T + b with squared loss: its GGN equals its Hessian."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(B, D, generator=gen, dtype=torch.float64)
    t = torch.randn(B, K, generator=gen, dtype=torch.float64)
    W = torch.randn(K, D, generator=gen, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(K, generator=gen, dtype=torch.float64).requires_grad_(True)
    return Problem(
        [W, b],
        lambda ps: X @ ps[0].T + ps[1],
        lambda z: 0.5 * ((z - t) ** 2).sum(dim=1).mean(),
    )


def make_symmetric(eigenvalues: Tensor, seed: int = 0) -> Tensor:
    """Return Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    n = eigenvalues.numel()
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (Q * eigenvalues) @ Q.T


@pytest.fixture(params=["ce", "squared"])
def mlp(request: pytest.FixtureRequest) -> Problem:
    """2-layer tanh MLP with 31 parameters in 4 tensors, softmax-CE or squared loss."""
    return make_mlp(request.param)
