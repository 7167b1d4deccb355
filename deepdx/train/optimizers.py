"""Optimizers and learning-rate schedules selectable by name in ``fit`` and the CLI.

Every entry builds a ``torch.optim.Optimizer``; ``fit`` always calls ``step(closure)``, so
closure-based optimizers (L-BFGS, nonlinear CG, Newton, Hessian-free) work unchanged.
An optimizer whose ``defaults`` hold a ``"curvature"`` setting (Hessian-free) also gets
its curvature inputs from ``fit``: ``outputs_fn`` and ``loss_on_outputs`` for ``"ggn"``,
``curvature_closure`` for ``"hessian"``. Further optimizers join with
:func:`register_optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from deepdx._validation import OneOf, check_params
from deepdx.exceptions import InvalidParameterError

__all__ = [
    "OptimizerEntry",
    "make_optimizer",
    "make_schedule",
    "optimizer_entry",
    "optimizer_names",
    "register_optimizer",
]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
_Params = Iterable[nn.Parameter]
_Optimizer = torch.optim.Optimizer


@dataclass(frozen=True)
class OptimizerEntry:
    """How to build one named optimizer.

    Attributes
    ----------
    factory : callable
        ``factory(params, lr=..., momentum=..., weight_decay=...) -> Optimizer``.
    default_lr : float
        Learning rate used when the config leaves ``lr`` unset.
    full_batch : bool
        Whether the method assumes the whole training set per step (the default batch size
        is then the training-set size).
    description : str
        One line for ``--help``.
    autocast_safe : bool, default=True
        Whether the method tolerates a bf16-autocast forward pass
        (``precision="bf16-mixed"``); False for line searches and curvature products,
        which compare losses and differentiate twice at full precision.
    """

    factory: OptimizerFactory
    default_lr: float
    full_batch: bool
    description: str
    autocast_safe: bool = True


_REGISTRY: dict[str, OptimizerEntry] = {}


def register_optimizer(name: str, entry: OptimizerEntry) -> None:
    """Make an optimizer selectable by ``name`` in ``fit`` and the CLI."""
    _REGISTRY[name] = entry


def optimizer_names() -> list[str]:
    """Return the names of all registered optimizers."""
    return sorted(_REGISTRY)


def optimizer_entry(name: str) -> OptimizerEntry:
    """Return the registry entry of ``name``; an unknown name raises with a did-you-mean."""
    names = optimizer_names()
    check_params("fit", {"optimizer": name}, {"optimizer": OneOf(tuple(names))})
    return _REGISTRY[name]


def make_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    *,
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build the optimizer ``name`` over ``params``.

    Parameters
    ----------
    name : str
        A registered name (see :func:`optimizer_names`).
    params : iterable of Parameter
        Parameters to optimize.
    lr : float, optional
        Learning rate; the entry's ``default_lr`` when None.
    momentum : float, default=0.9
        Used by ``momentum`` and ``nesterov``.
    weight_decay : float, default=0.0
        L2 penalty.

    Returns
    -------
    torch.optim.Optimizer

    Examples
    --------
    >>> opt = make_optimizer("nesterov", torch.nn.Linear(3, 1).parameters(), lr=0.1)
    >>> type(opt).__name__, opt.defaults["nesterov"]
    ('SGD', True)
    """
    entry = optimizer_entry(name)
    lr = entry.default_lr if lr is None else lr
    return entry.factory(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_schedule(
    name: str, optimizer: torch.optim.Optimizer, *, epochs: int
) -> LRScheduler | ReduceLROnPlateau | None:
    """Return the per-epoch learning-rate schedule ``name`` (None for ``constant``).

    ``step`` multiplies the rate by 0.1 at 1/2 and 3/4 of the epochs; ``cosine`` anneals it
    to 0 at the last epoch; ``exponential`` multiplies it by 0.95 per epoch; ``plateau``
    multiplies it by 0.1 after 3 epochs without validation-loss progress.
    """
    schedules = torch.optim.lr_scheduler
    if name == "constant":
        return None
    if name == "step":
        milestones = sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)})
        return schedules.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if name == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "exponential":
        return schedules.ExponentialLR(optimizer, gamma=0.95)
    if name == "plateau":
        return schedules.ReduceLROnPlateau(optimizer, factor=0.1, patience=3)
    raise ValueError(f"unknown schedule {name!r}")  # TrainConfig validates names first


def _sgd(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


def _momentum(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _nesterov(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay
    )


def _adam(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _adamw(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _closure_based(resolve: Callable[[], type], **fixed: object) -> OptimizerFactory:
    """Return a factory for a closure-based optimizer class (imported lazily by ``resolve``)."""

    def factory(params: _Params, *, lr: float, momentum: float, weight_decay: float) -> _Optimizer:
        cls = resolve()
        if weight_decay:
            raise InvalidParameterError(
                f"optimizer {cls.__name__} has no weight_decay; got {weight_decay}. Add an L2 "
                "term to the loss, or use sgd / momentum / adam."
            )
        return cls(params, lr=lr, **fixed)

    return factory


def _roadmap(name: str) -> Callable[[], type]:
    """Resolve ``deepdx.optim.<name>`` when first used (keeps start-up light)."""

    def resolve() -> type:
        import deepdx.optim

        return getattr(deepdx.optim, name)

    return resolve


for _name, _entry in {
    "sgd": OptimizerEntry(_sgd, 0.1, False, "plain minibatch SGD"),
    "momentum": OptimizerEntry(_momentum, 0.01, False, "SGD with heavy-ball momentum"),
    "nesterov": OptimizerEntry(_nesterov, 0.01, False, "SGD with Nesterov momentum"),
    "adam": OptimizerEntry(_adam, 3e-3, False, "Adam (Kingma & Ba 2015)"),
    "adamw": OptimizerEntry(_adamw, 3e-3, False, "Adam with decoupled weight decay"),
    "torch-lbfgs": OptimizerEntry(
        _closure_based(lambda: torch.optim.LBFGS, line_search_fn="strong_wolfe"),
        1.0,
        True,
        "torch.optim.LBFGS with strong-Wolfe line search",
        autocast_safe=False,
    ),
    "gd": OptimizerEntry(
        _closure_based(_roadmap("GradientDescent")),
        1.0,
        True,
        "gradient descent, line search",
        autocast_safe=False,
    ),
    "cg": OptimizerEntry(
        _closure_based(_roadmap("NonlinearCG")),
        1.0,
        True,
        "nonlinear conjugate gradient (PR+)",
        autocast_safe=False,
    ),
    "lbfgs": OptimizerEntry(
        _closure_based(_roadmap("LBFGS")),
        1.0,
        True,
        "L-BFGS, two-loop, strong Wolfe",
        autocast_safe=False,
    ),
    "newton": OptimizerEntry(
        _closure_based(_roadmap("Newton"), line_search="armijo"),
        1.0,
        True,
        "Newton with Levenberg-Marquardt damping (small models)",
        autocast_safe=False,
    ),
    "hf": OptimizerEntry(
        _closure_based(_roadmap("HessianFree"), curvature="ggn"),
        1.0,
        True,
        "Hessian-free (Martens 2010), Gauss-Newton products",
        autocast_safe=False,
    ),
    "hf-hessian": OptimizerEntry(
        _closure_based(_roadmap("HessianFree"), curvature="hessian"),
        1.0,
        True,
        "Hessian-free with Hessian-vector products",
        autocast_safe=False,
    ),
}.items():
    register_optimizer(_name, _entry)
