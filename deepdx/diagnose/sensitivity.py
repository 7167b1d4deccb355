"""Input sensitivity, which asks whether the trained net's loss depends on its inputs (A3).

s = ‖∂L/∂X‖_F · ‖X‖_F / max(|L|, ε) on a probe batch, with the model in eval mode. It is
exactly 0 when the inputs never reach the output (a cached tensor, a constant, only a
bias), and of order 1 for a net that uses them; it is scale-free in X and L.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deepdx.train.objectives import LossFn

__all__ = ["input_sensitivity"]

_TINY = 1e-12


def input_sensitivity(model: nn.Module, loss_fn: LossFn, batch: tuple[Tensor, ...]) -> float:
    """Return ‖∂L/∂X‖·‖X‖ / |L| of ``model`` on ``batch`` (0 when the inputs are ignored).

    Parameters
    ----------
    model : nn.Module
        The trained model; evaluated in eval mode, its mode is restored afterwards.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar``.
    batch : tuple of Tensor
        ``(X, y)`` or ``(X,)``, X of shape (B, *sample_shape).

    Returns
    -------
    float
        The relative input sensitivity; NaN when the loss is not finite.

    Examples
    --------
    >>> X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])
    >>> input_sensitivity(torch.nn.Linear(3, 2), loss, (X, y)) > 0
    True
    """
    was_training = model.training
    model.eval()
    try:
        X = batch[0].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model, (X, *batch[1:]))
            (grad,) = torch.autograd.grad(loss, X, allow_unused=True)
    finally:
        model.train(was_training)
    value = float(loss.detach())
    if not torch.isfinite(loss.detach()):
        return float("nan")
    grad_norm = 0.0 if grad is None else float(torch.linalg.vector_norm(grad))
    return grad_norm * float(torch.linalg.vector_norm(X.detach())) / max(abs(value), _TINY)
