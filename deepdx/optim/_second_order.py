"""What the damped second-order methods (Newton, Hessian-free) share.

Both adapt a Levenberg-Marquardt damping λ by the reduction ratio ρ of the last step, and
both need the loss as a differentiable objective, with its autograd graph, from a standard
closure that calls ``loss.backward()`` (which frees that graph).

Symbols
-------
==========  ===========================================================================
``λ``       Levenberg-Marquardt damping
``ρ``       reduction ratio, actual / predicted decrease of the loss over the last step
==========  ===========================================================================

References
----------
J. Martens, "Deep learning via Hessian-free optimization", ICML 2010, §4.1 (the
2/3, 3/2 damping rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["DECREASE", "INCREASE", "adapted_damping", "differentiable_loss"]

DECREASE, INCREASE = 2.0 / 3.0, 3.0 / 2.0
"""Factors of the Levenberg-Marquardt rule: λ *= 2/3 when ρ > 3/4, λ *= 3/2 when ρ < 1/4."""


def adapted_damping(damping: float, rho: float, *, floor: float = 0.0) -> float:
    """Return λ after the Levenberg-Marquardt rule for the reduction ratio ``rho``.

    Parameters
    ----------
    damping : float
        Current λ >= 0.
    rho : float
        ρ = actual / predicted reduction of the last step (−∞ for a failed step).
    floor : float, default=0.0
        Lower bound for an increased λ (so that λ = 0 can grow).

    Returns
    -------
    float
        ``2/3 λ`` if ρ > 3/4; ``max(3/2 λ, floor)`` if ρ < 1/4; λ otherwise.

    Notes
    -----
    Martens (2010, §4.1): the model is trusted more (less damping) when it predicted the
    decrease well, and less when it overestimated it.

    Examples
    --------
    >>> adapted_damping(1.0, 0.9), adapted_damping(1.0, 0.1), adapted_damping(0.0, -1.0)
    (0.6666666666666666, 1.5, 0.0)
    """
    if rho > 0.75:
        return damping * DECREASE
    if rho < 0.25:
        return max(damping * INCREASE, floor)
    return damping


# ----------------------------------------------------------------------------------------
# A differentiable objective from a standard closure
# ----------------------------------------------------------------------------------------


class _CaptureBackward(TorchFunctionMode):
    """Turn ``Tensor.backward()`` into a no-op that records what it was called on."""

    def __init__(self) -> None:
        super().__init__()
        self.objectives: list[Tensor] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is not Tensor.backward:
            return func(*args, **kwargs)
        tensor = args[0]
        weight = kwargs.get("gradient", args[1] if len(args) > 1 else None)
        self.objectives.append(tensor.sum() if weight is None else (tensor * weight).sum())
        return None


def differentiable_loss(closure: Callable[[], Tensor]) -> Tensor:
    """Call ``closure`` with its ``backward()`` calls skipped; return the objective with graph.

    The objective is the sum of the tensors the closure called ``backward()`` on (each
    weighted by its ``gradient`` argument), or the returned loss if it called none. Its
    gradient is the one ``backward()`` would have accumulated, and its graph is intact,
    so curvature products can differentiate it twice.

    Examples
    --------
    >>> w = torch.tensor([3.0], requires_grad=True)
    >>> def closure():
    ...     loss = (w**2).sum()
    ...     loss.backward()
    ...     return loss
    >>> objective = differentiable_loss(closure)
    >>> objective.requires_grad, w.grad  # backward() was skipped
    (True, None)
    """
    with torch.enable_grad():
        with _CaptureBackward() as mode:
            loss = closure()
        if not mode.objectives:
            return loss
        total = mode.objectives[0]
        for objective in mode.objectives[1:]:
            total = total + objective  # keeps the graph: grad mode is still on
    return total
