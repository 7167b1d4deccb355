"""Full-batch steepest descent with a backtracking or strong-Wolfe line search.

Symbols
-------
=========  ===================================================================
``x_k``    (n,) all parameters, flattened, at iteration ``k``
``g_k``    (n,) the gradient ``∇f(x_k)``
``d_k``    (n,) the search direction ``-D g_k``
``t_k``    step length
``D``      (n,) learning-rate metric of several groups (``I`` for one group)
=========  ===================================================================

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006,
§3.1–3.3 (steepest descent, Alg. 3.1, eq. 3.60).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from torch import Tensor

from deepdx._validation import Constraint, OneOf
from deepdx.optim._flat import (
    AT_LEAST_ONE,
    LINE_SEARCH_CALLABLE,
    LINE_SEARCHES,
    NONNEGATIVE,
    POSITIVE,
    UNIT,
    FlatOptimizer,
    scaled,
)
from deepdx.optim.line_search import LineSearch

__all__ = ["GradientDescent"]


class GradientDescent(FlatOptimizer):
    """Full-batch steepest descent, ``x <- x - t D g``, with an optional line search.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or parameter groups (dicts with ``"params"`` and an optional
        ``"lr"``; every other setting must match across groups).
    lr : float, default=1.0
        The fixed step without a line search; the first trial step with one.
    line_search : {"armijo", "strong_wolfe"}, callable or None, default="armijo"
        How ``t_k`` is chosen: backtracking (N&W Alg. 3.1), strong Wolfe (Alg. 3.5),
        a callable with the signature of :class:`~deepdx.optim.line_search.LineSearch`,
        or None for the fixed step ``lr``.
    max_iter : int, default=1
        Iterations per call to :meth:`step`.
    tolerance_grad : float, default=1e-7
        Stop when ``max|g| <= tolerance_grad``.
    tolerance_change : float, default=1e-9
        Stop when the loss or ``max|t d|`` changes by less than this.
    c1 : float, default=1e-4
        Sufficient-decrease constant of the line search.
    c2 : float, default=0.9
        Curvature constant of the strong-Wolfe line search.
    max_ls : int, default=25
        Most closure calls per line search.

    Attributes
    ----------
    state : dict
        ``state[first_param]`` holds ``n_iter``, ``func_evals``, and ``t`` and ``gtd``
        (the last step and slope ``g'd``) for the next initial step.

    Raises
    ------
    InvalidParameterError
        If a hyperparameter is out of range, or groups differ in anything but ``lr``.

    Notes
    -----
    Iteration ``k``:

    1. ``g_k = ∇f(x_k)``; stop when ``max|g_k| <= tolerance_grad``.
    2. ``d_k = -D g_k``.
    3. Without a line search ``t_k = lr``. With one, the first trial step is ``lr`` on the
       first iteration and ``t_{k-1} g_{k-1}'d_{k-1} / g_k'd_k`` afterwards (N&W eq. 3.60:
       expect the same first-order decrease as last time); the line search then returns
       ``t_k``, ``f(x_{k+1})`` and ``g_{k+1}``.
    4. ``x_{k+1} = x_k + t_k d_k``.

    Convention: ``lr`` is the initial trial step, as in ``torch.optim.LBFGS``, and only
    for the first iteration (or after a zero step); N&W leave ``alpha_0`` to the user.
    With several groups ``lr_max`` is that step and ``D = lr_group / lr_max``.

    A NaN or infinite loss or gradient where an iteration starts raises
    :class:`~deepdx.exceptions.NumericalError`; a non-finite trial point makes the line
    search back off.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)
    >>> opt = GradientDescent([x], lr=1.0, max_iter=50)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (x**2).sum()
    ...     loss.backward()
    ...     return loss
    >>> loss0 = opt.step(closure)
    >>> x.shape, bool(x.abs().max() < 1e-6)
    (torch.Size([2]), True)
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "lr": POSITIVE,
        "line_search": OneOf((*LINE_SEARCHES, None), callable_name=LINE_SEARCH_CALLABLE),
        "max_iter": AT_LEAST_ONE,
        "tolerance_grad": NONNEGATIVE,
        "tolerance_change": NONNEGATIVE,
        "c1": UNIT,
        "c2": UNIT,
        "max_ls": AT_LEAST_ONE,
    }

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        *,
        line_search: str | LineSearch | None = "armijo",
        max_iter: int = 1,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls: int = 25,
    ) -> None:
        defaults = {
            "lr": lr,
            "line_search": line_search,
            "max_iter": max_iter,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "c1": c1,
            "c2": c2,
            "max_ls": max_ls,
        }
        super().__init__(params, defaults)

    def _direction(self, state: dict[str, Any], g: Tensor, scale: Tensor | None) -> Tensor:
        """Steepest descent in the metric D: ``d = -D g``."""
        return -scaled(g, scale)  # (n,)
