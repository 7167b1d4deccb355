"""Full-batch steepest descent with a backtracking or strong-Wolfe line search.

Symbols
-------
=========  ===================================================================
``x_k``    (n,) all parameters, flattened, at iteration ``k``
``g_k``    (n,) the gradient ``∇f(x_k)``
``d_k``    (n,) the search direction ``-D g_k``
``t_k``    step length
``D``      (n,) learning-rate metric of several groups (``I`` for one group)
``s, y``   (n,) the last step ``x_k - x_{k-1}`` and gradient change ``g_k - g_{k-1}``
=========  ===================================================================

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006,
§3.1–3.3 (steepest descent, Alg. 3.1, eq. 3.60).
J. Barzilai and J. M. Borwein, "Two-point step size gradient methods", IMA J. Numer.
Anal. 8, 1988 (the step ``s'y / y'y``).
M. Raydan, "The Barzilai and Borwein gradient method for the large scale unconstrained
minimization problem", SIAM J. Optim. 7, 1997 (BB steps inside a line search).
"""

from __future__ import annotations

import math
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

__all__ = ["INITIAL_STEPS", "GradientDescent"]

INITIAL_STEPS = ("first_order", "bb")
"""First trial steps of the line search :class:`GradientDescent` accepts."""


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
    initial_step : {"first_order", "bb"}, default="first_order"
        The first trial step of the line search (unused without one): the step that
        repeats the last first-order decrease (N&W eq. 3.60), or the Barzilai-Borwein
        step ``s'y / y'D y`` (Notes). Either way the line search then accepts or
        shortens it, so every iteration still decreases ``f``.
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
        (the last step and slope ``g'd``) for the next initial step; with
        ``initial_step="bb"`` also ``s`` (n,), the last step, and ``g_prev`` (n,), the
        gradient it started from.

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
       first iteration and afterwards

       - ``"first_order"``: ``t_{k-1} g_{k-1}'d_{k-1} / g_k'd_k`` (N&W eq. 3.60: expect
         the same first-order decrease as last time);
       - ``"bb"``: ``s'y / y'D y`` with ``s = x_k - x_{k-1}``, ``y = g_k - g_{k-1}``, the
         Barzilai-Borwein step (their second formula, the shorter one) that fits the
         curvature along the last step; eq. 3.60 when ``s'y <= 0``.

       The line search then returns ``t_k``, ``f(x_{k+1})`` and ``g_{k+1}``.
    4. ``x_{k+1} = x_k + t_k d_k``.

    The Barzilai-Borwein method proper takes its step unconditionally and is not
    monotone; here it is only the first trial of a monotone Armijo or Wolfe search,
    which keeps every iteration a steepest-descent step with sufficient decrease (as in
    Raydan's globalisation, without his non-monotone acceptance). Pair it with
    ``line_search="armijo"``: the strong-Wolfe curvature condition pulls each step
    towards the exact line minimum, and so back towards the zigzag that BB steps avoid.

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
        "initial_step": OneOf(INITIAL_STEPS),
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
        initial_step: str = "first_order",
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
            "initial_step": initial_step,
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

    def _initial_step(self, state: dict[str, Any], *, g: Tensor, gtd: float, lr: float) -> float:
        """Step 3: the Barzilai-Borwein step ``s'y / y'D y`` when asked for and ``s'y > 0``."""
        s, g_prev = state.get("s"), state.get("g_prev")
        group = self.param_groups[0]
        if group["initial_step"] == "bb" and group["line_search"] is not None:
            if s is not None and g_prev is not None:
                y = g - g_prev  # (n,)
                _, scale = self._metric()
                sy, yDy = float(s.dot(y)), float(y.dot(scaled(y, scale)))
                if sy > 0.0 and yDy > 0.0 and math.isfinite(sy / yDy):
                    return sy / yDy
        return super()._initial_step(state, g=g, gtd=gtd, lr=lr)

    def _remember(
        self, state: dict[str, Any], *, d: Tensor, t: float, g: Tensor, gtd: float
    ) -> None:
        """Keep ``t`` and ``g'd``, and for the BB step ``s = t d`` and the gradient ``g``."""
        super()._remember(state, d=d, t=t, g=g, gtd=gtd)
        if self.param_groups[0]["initial_step"] == "bb":
            state["s"], state["g_prev"] = t * d, g  # (n,), (n,)
