"""What an optimizer comparison needs from a problem: a start point, the objective, closures.

A problem is an objective of the parameters θ of a small ``nn.Module``,

    f(θ) = L(z(θ)),   z = ``outputs(model, rows)``,   L = ``loss_on_outputs(z, rows)``,

written through its outputs so that one definition serves the gradient closures, the
minibatch closures and the Gauss-Newton products of Hessian-free (``G = Jᵀ ∇²L J``). For a
data set of n rows, ``rows`` selects a minibatch and L is the mean loss over those rows
plus the regulariser, an unbiased estimate of the full objective; ``rows=None`` is the
full objective, the value every trace records.

Symbols
-------
==========  ===========================================================================
``θ``       (P,) every parameter of the model, flattened
``n``       rows of the objective's data (1 for a plain function of θ)
``rows``    (b,) int64 indices of a minibatch, or None for all n rows
``z``       the outputs the loss is convex in (logits, residuals, scaled parameters)
``f*``      the optimal value when it is known (0 for the quadratic and Rosenbrock)
==========  ===========================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from deepdx._random import make_generator

__all__ = ["Problem"]


class Problem(ABC):
    """A differentiable objective with a seeded start point, for comparing optimizers.

    Subclasses set the class attributes and implement :meth:`init_model`,
    :meth:`outputs` and :meth:`loss_on_outputs`; everything else is built from them.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"logreg"``.
    convex : bool
        Whether f is convex in θ (then any local minimum is global).
    n_samples : int
        n, the rows a minibatch is drawn from (1 for a plain function).
    optimum : float or None
        f* when it is known exactly; the plots then show f − f*.
    adam_lr : float
        Centre of the learning-rate sweep of Adam-type methods (parameter-scale step).
    default_budget : float
        CPU seconds per optimizer a comparison uses when given no budget.
    """

    name: ClassVar[str]
    convex: ClassVar[bool]
    n_samples: int = 1
    optimum: float | None = None
    adam_lr: float = 1e-3
    default_budget: float = 2.0

    @abstractmethod
    def init_model(self, seed: int = 0) -> nn.Module:
        """Return a new float64 module whose parameters are θ at the start point."""

    @abstractmethod
    def outputs(self, model: nn.Module, rows: Tensor | None = None) -> Tensor:
        """Return z on ``rows`` (all rows when None), computed from the model's parameters."""

    @abstractmethod
    def loss_on_outputs(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return the scalar L(z) for the outputs of :meth:`outputs` on the same ``rows``."""

    @abstractmethod
    def describe(self) -> str:
        """Return one sentence that says what the problem is, with its sizes."""

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments (JSON-able), for the saved results."""
        return {}

    # ------------------------------------------------------------------------------------
    # Built from the three methods above
    # ------------------------------------------------------------------------------------

    def loss(self, model: nn.Module, rows: Tensor | None = None) -> Tensor:
        """Return f on ``rows`` (the full objective when None) as a 0-d tensor."""
        return self.loss_on_outputs(self.outputs(model, rows), rows)

    def closure(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, rows: Tensor | None = None
    ) -> Callable[[], Tensor]:
        """Return the standard closure: zero the gradients, f on ``rows``, backward, return f.

        Parameters
        ----------
        model : nn.Module
            A module from :meth:`init_model`.
        optimizer : torch.optim.Optimizer
            The optimizer whose gradients are zeroed.
        rows : Tensor or None, default=None
            (b,) minibatch indices; None gives the full-batch closure.

        Returns
        -------
        callable
            ``closure() -> loss``, as ``torch.optim.LBFGS.step`` expects.
        """

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = self.loss(model, rows)
            loss.backward()
            return loss

        return closure

    def ggn_inputs(
        self, model: nn.Module, rows: Tensor | None = None
    ) -> dict[str, Callable[..., Tensor]]:
        """Return ``outputs_fn`` and ``loss_on_outputs`` for Gauss-Newton products on ``rows``.

        ``HessianFree.step(closure, **problem.ggn_inputs(model))`` then uses
        G = Jᵀ ∇²L J, exact for the regulariser, which is part of z.
        """
        return {
            "outputs_fn": lambda: self.outputs(model, rows),
            "loss_on_outputs": lambda z: self.loss_on_outputs(z, rows),
        }

    def minibatches(self, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
        """Yield (b,) row indices forever: shuffled epochs cut into batches of ``batch_size``.

        The last batch of an epoch may be smaller; a plain function (n = 1) yields [0].
        """
        while True:
            order = torch.randperm(self.n_samples, generator=generator)  # (n,)
            yield from torch.split(order, max(1, batch_size))

    def probe_rows(self, limit: int) -> Tensor | None:
        """Return a fixed random batch of ``limit`` rows (seed 0), or None when n <= limit."""
        if self.n_samples <= limit:
            return None
        order = torch.randperm(self.n_samples, generator=make_generator(0))  # (n,)
        return order[:limit].sort().values  # (limit,)
