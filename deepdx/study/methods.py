"""The optimizers of a comparison by name: how each is built, stepped and costed.

Names are those of :mod:`deepdx.train.optimizers` (``gd``, ``cg``, ``lbfgs``, ``newton``,
``hf``, ``sgd``, ``momentum``, ``nesterov``, ``adam``, ``adamw``, ``torch-lbfgs``, and any
registered later). The five deepdx full-batch methods are built here with one iteration
per ``step`` so that every iteration lands in the trace; all others come from
:func:`~deepdx.train.optimizers.make_optimizer` with their registry defaults.

==========  ============================================================================
name        built as
==========  ============================================================================
``gd``      ``GradientDescent(lr=1)``, Armijo backtracking from t = 1
``cg``      ``NonlinearCG(lr=1)``, Polak-Ribière+, strong Wolfe
``lbfgs``   ``LBFGS(lr=1, max_iter=1, max_eval=25)``, m = 10, strong Wolfe
``newton``  ``Newton(lr=1, line_search="armijo")``, dense Hessian, P <= 4,096
``hf``      ``HessianFree(lr=1, curvature="ggn", preconditioner=None)``
==========  ============================================================================

Hessian-free uses the problem's Gauss-Newton split on the full batch and no
preconditioner: Martens' diagonal needs one per-sample gradient per output row, which
on a full batch costs about as many backward passes as there are rows.

Stability limits
----------------
Gradient descent with a fixed step lr on a quadratic with top eigenvalue λ_max diverges
when λ_max > 2 / lr; heavy-ball and Nesterov momentum β (``torch.optim.SGD``'s
convention, the step is lr times the velocity) diverge when λ_max > 2 (1 + β) / lr
(Cohen et al., 2021). Adam's step is preconditioned, so no such limit applies to the
raw Hessian.

References
----------
J. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar, "Gradient descent on neural
networks typically occurs at the edge of stability", ICLR 2021.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepdx.optim import LBFGS, GradientDescent, HessianFree, Newton, NonlinearCG
from deepdx.train.optimizers import make_optimizer, optimizer_entry, optimizer_names

__all__ = [
    "MOMENTUM",
    "build_optimizer",
    "curvature_products",
    "is_full_batch",
    "iterations_done",
    "method_names",
    "stability_limit",
    "sweep_centre",
]

MOMENTUM = 0.9
"""β of ``momentum`` and ``nesterov`` (the registry's default)."""

_FULL_BATCH: dict[str, Callable[[list[nn.Parameter], float], torch.optim.Optimizer]] = {
    "gd": lambda params, lr: GradientDescent(params, lr),
    "cg": lambda params, lr: NonlinearCG(params, lr),
    "lbfgs": lambda params, lr: LBFGS(params, lr, max_iter=1, max_eval=25),
    "newton": lambda params, lr: Newton(params, lr, line_search="armijo"),
    "hf": lambda params, lr: HessianFree(params, lr, curvature="ggn", preconditioner=None),
}

_CURVATURE_SCALED = {"sgd": 1.0, "momentum": 1.0 - MOMENTUM, "nesterov": 1.0 - MOMENTUM}
"""lr = factor / λ_max: the 1/L step of an L-smooth function, scaled by 1 − β with momentum."""

_ADAPTIVE = ("adam", "adamw")


def method_names() -> list[str]:
    """Return every name a comparison accepts (the optimizer registry's)."""
    return optimizer_names()


def is_full_batch(name: str) -> bool:
    """Return whether ``name`` steps on the full batch (else on minibatches)."""
    return name in _FULL_BATCH or optimizer_entry(name).full_batch


def build_optimizer(name: str, model: nn.Module, *, lr: float | None) -> torch.optim.Optimizer:
    """Return the optimizer ``name`` over ``model``'s parameters.

    Parameters
    ----------
    name : str
        A registered optimizer name.
    model : nn.Module
        The model to optimize.
    lr : float or None
        Learning rate (first trial step of a line search); None for the registry default.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    InvalidParameterError
        If the name is unknown, or the optimizer refuses the model (Newton beyond
        ``max_params``).

    Examples
    --------
    >>> opt = build_optimizer("lbfgs", nn.Linear(2, 1), lr=None)
    >>> type(opt).__name__, opt.defaults["max_iter"]
    ('LBFGS', 1)
    """
    params = list(model.parameters())
    if name in _FULL_BATCH:
        return _FULL_BATCH[name](params, optimizer_entry(name).default_lr if lr is None else lr)
    return make_optimizer(name, params, lr=lr, momentum=MOMENTUM)


def curvature_products(name: str, optimizer: torch.optim.Optimizer, iterations: int) -> int:
    """Return the curvature-vector products of the last ``iterations`` iterations.

    Newton builds its dense Hessian from P Hessian-vector products per iteration;
    Hessian-free spends one Gauss-Newton product per CG iteration (``cg_iters``, the
    last solve's, which is the only one with one iteration per step). Others use none.
    """
    if iterations <= 0 or name not in ("newton", "hf"):
        return 0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if name == "newton":
        return iterations * sum(p.numel() for p in params)
    return int(optimizer.state[params[0]].get("cg_iters", 0))


def iterations_done(optimizer: torch.optim.Optimizer) -> int:
    """Return the ``n_iter`` count of a deepdx full-batch optimizer (0 for the others)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return int(optimizer.state[params[0]].get("n_iter", 0)) if params else 0


def stability_limit(name: str, lr: float | None) -> float | None:
    """Return the largest λ_max a fixed step ``lr`` of ``name`` is stable for, or None.

    Examples
    --------
    >>> stability_limit("sgd", 0.1), round(stability_limit("momentum", 0.1), 6)
    (20.0, 38.0)
    >>> stability_limit("adam", 0.1) is None
    True
    """
    if lr is None or name not in _CURVATURE_SCALED:
        return None
    return (2.0 if name == "sgd" else 2.0 * (1.0 + MOMENTUM)) / lr


def sweep_centre(name: str, lambda_max: float, adam_lr: float) -> float:
    """Return the centre of the learning-rate sweep of a minibatch method.

    ``sgd``: 1/λ_max, the step that guarantees descent on an L-smooth function with
    L = λ_max; ``momentum`` and ``nesterov``: (1 − β)/λ_max, the same effective step
    lr/(1 − β); ``adam`` and ``adamw``: the problem's ``adam_lr`` (a step in parameter
    units, not set by the curvature); any other name: its registry default.

    Examples
    --------
    >>> sweep_centre("sgd", 50.0, 1e-3), round(sweep_centre("momentum", 50.0, 1e-3), 6)
    (0.02, 0.002)
    """
    if name in _CURVATURE_SCALED and lambda_max > 0.0:
        return _CURVATURE_SCALED[name] / lambda_max
    if name in _ADAPTIVE:
        return adam_lr
    return optimizer_entry(name).default_lr
