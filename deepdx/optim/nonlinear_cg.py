"""Nonlinear conjugate gradients: Fletcher–Reeves, Polak–Ribière+ and Hestenes–Stiefel.

Symbols
-------
==========  ==================================================================
``x_k``     (n,) all parameters, flattened, at iteration ``k``
``g_k``     (n,) the gradient ``∇f(x_k)``
``z_k``     (n,) the preconditioned gradient ``D g_k`` (``= g_k`` for one group)
``d_k``     (n,) the search direction
``y_k``     (n,) the gradient change ``g_k - g_{k-1}``
``beta``    the conjugacy coefficient
``nu``      Powell's restart threshold (``restart_orthogonality``)
==========  ==================================================================

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, §5.2:
Alg. 5.4 (Fletcher–Reeves), eqs. 5.41a (FR), 5.44–5.45 (PR, PR+), 5.46 (HS), and
Powell's restart test; §3.5 for the initial step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

from torch import Tensor

from deepdx._validation import Constraint, Interval, OneOf
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

__all__ = ["NonlinearCG"]

BETAS = ("pr+", "fr", "hs")


class NonlinearCG(FlatOptimizer):
    """Nonlinear conjugate gradients with restarts, ``d <- -D g + beta d``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or parameter groups (dicts with ``"params"`` and an optional
        ``"lr"``; every other setting must match across groups).
    lr : float, default=1.0
        First trial step of the line search.
    beta : {"pr+", "fr", "hs"}, default="pr+"
        Polak–Ribière+ (eq. 5.45), Fletcher–Reeves (5.41a) or Hestenes–Stiefel (5.46).
    line_search : {"strong_wolfe", "armijo"} or callable, default="strong_wolfe"
        A callable must have the signature of
        :class:`~deepdx.optim.line_search.LineSearch` (for example an exact line search).
    restart : int or None, default=None
        Restart with steepest descent every ``restart`` iterations; None means every
        ``n`` iterations, ``n`` the number of parameter entries.
    restart_orthogonality : float or None, default=0.1
        Powell's test: restart when ``|g_k'D g_{k-1}| >= nu g_k'D g_k``; None turns it off.
    max_iter : int, default=1
        Iterations per call to :meth:`step`; the CG state carries over between calls.
    tolerance_grad : float, default=1e-7
        Stop when ``max|g| <= tolerance_grad``.
    tolerance_change : float, default=1e-9
        Stop when the loss or ``max|t d|`` changes by less than this.
    c1 : float, default=1e-4
        Sufficient-decrease constant of the line search.
    c2 : float, default=0.1
        Curvature constant of the strong-Wolfe line search; FR needs ``c2 < 1/2``.
    max_ls : int, default=25
        Most closure calls per line search.

    Attributes
    ----------
    state : dict
        ``state[first_param]`` holds ``n_iter``, ``func_evals``, ``n_restarts``, ``t`` and
        ``gtd`` (last step and slope), ``d`` and ``g_prev`` (last direction and the
        gradient it was built from) and ``cg_iter`` (iterations since the last restart).

    Raises
    ------
    InvalidParameterError
        If a hyperparameter is out of range, or groups differ in anything but ``lr``.

    Notes
    -----
    Iteration ``k``, with ``z_k = D g_k`` and ``y_k = g_k - g_{k-1}``:

    1. ``beta_k`` is one of

       - FR: ``g_k'z_k / g_{k-1}'z_{k-1}``
       - PR+: ``max(z_k'y_k / g_{k-1}'z_{k-1}, 0)``
       - HS: ``z_k'y_k / y_k'd_{k-1}``

    2. ``d_k = -z_k + beta_k d_{k-1}``.
    3. Restart, ``d_k = -z_k``, on the first iteration, every ``restart`` iterations,
       when Powell's test ``|z_k'g_{k-1}| >= nu g_k'z_k`` fires, when ``beta_k`` is not
       finite (a zero or, for HS, negative denominator), or when ``g_k'd_k >= 0``.
    4. Line search along ``d_k`` from ``t = lr`` on the first iteration and
       ``t_{k-1} g_{k-1}'d_{k-1} / g_k'd_k`` afterwards (N&W eq. 3.60).
    5. ``x_{k+1} = x_k + t_k d_k``.

    Convention: with one group ``D = I`` and these are N&W's formulas; several groups
    precondition by ``D = lr_group / lr_max``. N&W pair CG with a strong-Wolfe search
    and ``c2 = 0.1``; with "armijo" the descent check of step 3 does the safeguarding.
    With an exact line search on a convex quadratic all three rules coincide and reach
    the minimiser in at most ``n`` iterations.

    A NaN or infinite loss or gradient where an iteration starts raises
    :class:`~deepdx.exceptions.NumericalError`; a non-finite trial point makes the line
    search back off.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    >>> opt = NonlinearCG([x], max_iter=200)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2  # Rosenbrock
    ...     loss.backward()
    ...     return loss
    >>> loss0 = opt.step(closure)
    >>> x.shape, bool((x - 1).abs().max() < 1e-5)
    (torch.Size([2]), True)
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "lr": POSITIVE,
        "beta": OneOf(BETAS),
        "line_search": OneOf(LINE_SEARCHES, callable_name=LINE_SEARCH_CALLABLE),
        "restart": Interval(int, low=1, allow_none=True),
        "restart_orthogonality": Interval(float, low=0.0, low_open=True, allow_none=True),
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
        beta: str = "pr+",
        line_search: str | LineSearch = "strong_wolfe",
        restart: int | None = None,
        restart_orthogonality: float | None = 0.1,
        max_iter: int = 1,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        c1: float = 1e-4,
        c2: float = 0.1,
        max_ls: int = 25,
    ) -> None:
        defaults = {
            "lr": lr,
            "beta": beta,
            "line_search": line_search,
            "restart": restart,
            "restart_orthogonality": restart_orthogonality,
            "max_iter": max_iter,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "c1": c1,
            "c2": c2,
            "max_ls": max_ls,
        }
        super().__init__(params, defaults)

    def _direction(self, state: dict[str, Any], g: Tensor, scale: Tensor | None) -> Tensor:
        """Return the conjugate direction, or ``-D g`` on a restart (steps 1-3)."""
        group = self.param_groups[0]
        z = scaled(g, scale)  # (n,)
        g_prev = state.pop("g_prev", None)
        period = group["restart"] or g.numel()
        if g_prev is None or state["cg_iter"] >= period:
            return self._restart(state, z)
        d_prev, z_prev = state["d"], scaled(g_prev, scale)  # (n,), (n,)
        beta = _beta(group["beta"], g, g_prev, z=z, z_prev=z_prev, d_prev=d_prev)
        if not math.isfinite(beta):
            return self._restart(state, z)
        d = -z + beta * d_prev  # (n,)
        nu = group["restart_orthogonality"]
        powell = nu is not None and abs(float(z.dot(g_prev))) >= nu * float(z.dot(g))
        if powell or not float(g.dot(d)) < 0.0:
            return self._restart(state, z)
        state["cg_iter"] += 1
        return d

    def _restart(self, state: dict[str, Any], z: Tensor) -> Tensor:
        """Start over with the steepest-descent direction ``-z`` (n,)."""
        state["cg_iter"] = 1
        state["n_restarts"] = state.get("n_restarts", 0) + 1
        return -z  # (n,)

    def _remember(
        self, state: dict[str, Any], *, d: Tensor, t: float, g: Tensor, gtd: float
    ) -> None:
        """Keep ``t``, ``g'd``, the direction and the gradient it was built from."""
        super()._remember(state, d=d, t=t, g=g, gtd=gtd)
        state["d"], state["g_prev"] = d, g


def _beta(
    rule: str, g: Tensor, g_prev: Tensor, *, z: Tensor, z_prev: Tensor, d_prev: Tensor
) -> float:
    """Return the FR, PR+ or HS coefficient (NaN when its denominator is not positive)."""
    if rule == "fr":
        return _ratio(float(g.dot(z)), float(g_prev.dot(z_prev)))
    y = g - g_prev  # (n,)
    if rule == "hs":
        return _ratio(float(z.dot(y)), float(y.dot(d_prev)))
    return max(_ratio(float(z.dot(y)), float(g_prev.dot(z_prev))), 0.0)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0.0 else math.nan
