"""Limited-memory BFGS with the two-loop recursion, over several parameter groups.

Symbols
-------
==========  ======================================================================
``x_k``     (n,) all parameters of all groups, flattened, at iteration ``k``
``g_k``     (n,) the gradient ``∇f(x_k)``
``s_i``     (n,) a step ``x_{i+1} - x_i``; the rows of ``S`` (m, n)
``y_i``     (n,) the matching gradient change ``g_{i+1} - g_i``; the rows of ``Y`` (m, n)
``rho_i``   ``1 / y_i's_i``
``gamma``   the initial inverse-Hessian scale ``s'y / y'y`` of the newest pair
``D``       (n,) learning-rate metric of several groups (``I`` for one group)
``H_k``     the implicit inverse-Hessian approximation; ``H_k^0 = gamma D``
==========  ======================================================================

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, §7.2:
Alg. 7.4 (two-loop recursion), Alg. 7.5 (L-BFGS), eq. 7.20 (the scaling ``gamma``).
D. C. Liu and J. Nocedal, "On the limited memory BFGS method for large scale
optimization", Math. Programming 45 (1989).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
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

__all__ = ["LBFGS", "two_loop"]


def two_loop(
    g: Tensor,
    S: Tensor,
    Y: Tensor,
    *,
    rho: Sequence[float],
    gamma: float,
    scale: Tensor | None = None,
) -> Tensor:
    """Return ``H g`` for the L-BFGS inverse-Hessian approximation ``H`` (N&W Alg. 7.4).

    Parameters
    ----------
    g : Tensor
        Vector to multiply, shape (n,).
    S : Tensor
        Steps ``s_i``, oldest first, shape (m, n); ``m`` may be 0.
    Y : Tensor
        Gradient changes ``y_i``, shape (m, n).
    rho : sequence of float
        ``1 / y_i's_i``, length m.
    gamma : float
        Scale of the initial matrix ``H^0 = gamma D``.
    scale : Tensor or None, default=None
        The diagonal ``D``, shape (n,); None means the identity.

    Returns
    -------
    Tensor
        ``H g``, shape (n,).

    Notes
    -----
    ``H`` is what ``m`` BFGS updates ``H <- (I - rho s y') H (I - rho y s') + rho s s'``
    (eq. 7.19) make of ``H^0``; the recursion applies it in O(m n) without forming it:

    1. ``q <- g``; for ``i = m-1, ..., 0``: ``alpha_i = rho_i s_i'q``, ``q <- q - alpha_i y_i``.
    2. ``r <- H^0 q = gamma D q``.
    3. For ``i = 0, ..., m-1``: ``beta = rho_i y_i'r``, ``r <- r + (alpha_i - beta) s_i``.

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> S = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> Y = torch.tensor([[4.0, 0.0]], dtype=torch.float64)  # curvature 4 along s
    >>> two_loop(g, S, Y, rho=[0.25], gamma=0.25)  # H = diag(1/4, 1/4)
    tensor([0.2500, 0.5000], dtype=torch.float64)
    """
    q = g  # (n,)
    alphas = [0.0] * len(rho)
    for i in reversed(range(len(rho))):
        alphas[i] = float(S[i].dot(q)) * rho[i]
        q = q.add(Y[i], alpha=-alphas[i])  # (n,)
    r = scaled(q, scale) * gamma  # (n,)
    for i in range(len(rho)):
        beta = float(Y[i].dot(r)) * rho[i]
        r = r.add(S[i], alpha=alphas[i] - beta)  # (n,)
    return r


class LBFGS(FlatOptimizer):
    """Limited-memory BFGS, ``torch.optim.LBFGS``'s interface for several parameter groups.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or parameter groups (dicts with ``"params"`` and an optional
        ``"lr"``; every other setting must match across groups).
    lr : float, default=1.0
        Initial trial step of every line search, or the fixed step without one.
    history_size : int, default=10
        Pairs ``(s, y)`` kept, ``m``.
    max_iter : int, default=20
        Iterations per call to :meth:`step`; the memory carries over between calls.
    max_eval : int or None, default=None
        Closure calls per :meth:`step` after the first one at the starting point (the
        count ``torch.optim.LBFGS`` effectively keeps); None means ``max_iter * 5 // 4``.
    line_search_fn : {"strong_wolfe", "armijo"}, callable or None, default="strong_wolfe"
        A callable must have the signature of :class:`~deepdx.optim.line_search.LineSearch`;
        None takes the fixed step ``lr``.
    tolerance_grad : float, default=1e-7
        Stop when ``max|g| <= tolerance_grad``.
    tolerance_change : float, default=1e-9
        Stop when the loss, ``max|t d|`` or the slope ``g'd`` is smaller than this.
    curvature_eps : float, default=1e-10
        Skip the pair ``(s, y)`` when ``s'y <= curvature_eps``.
    c1 : float, default=1e-4
        Sufficient-decrease constant of the line search.
    c2 : float, default=0.9
        Curvature constant of the strong-Wolfe line search.

    Attributes
    ----------
    state : dict
        ``state[first_param]`` holds ``n_iter``, ``func_evals``, the memory ``S``, ``Y``
        (m, n), ``rho`` (list of m floats) and ``gamma``, and ``d``, ``t``, ``g_prev``
        (the last direction, step and the gradient it started from).

    Raises
    ------
    InvalidParameterError
        If a hyperparameter is out of range, or groups differ in anything but ``lr``.

    Notes
    -----
    Iteration ``k``:

    1. For ``k > 0``: ``s = t_{k-1} d_{k-1}``, ``y = g_k - g_{k-1}``. If
       ``s'y > curvature_eps``, append the pair (dropping the oldest beyond
       ``history_size``) and set ``gamma = s'y / y'y`` (eq. 7.20); else skip it.
    2. ``d_k = -H_k g_k`` by :func:`two_loop` with ``H_k^0 = gamma D`` (``-D g_0`` at k = 0).
    3. Stop if ``g_k'd_k > -tolerance_change``. Line search from ``t = lr``
       (``min(1, 1/||g_k||_1) lr`` while the memory is empty), or take ``t_k = lr``.
    4. ``x_{k+1} = x_k + t_k d_k``.

    Conventions, all those of ``torch.optim.LBFGS`` (minFunc) where N&W differ: the
    first step is shortened by ``1/||g_0||_1`` (here also any later step taken while
    the memory is still empty; torch takes those at full length); ``gamma`` changes only
    when a pair is stored; a pair is skipped by the absolute test ``s'y <=
    curvature_eps`` rather than kept by the Wolfe conditions alone. Unlike torch, the
    defaults are ``history_size=10`` and ``line_search_fn="strong_wolfe"``, several
    parameter groups are allowed (``lr_max`` is the step and ``D = lr_group / lr_max``
    the initial metric), and the state is replaced, never updated in place. With one
    group, ``lr=1`` and a strong-Wolfe search the iterates follow torch's up to the line
    search's safeguards.

    A NaN or infinite loss or gradient where an iteration starts raises
    :class:`~deepdx.exceptions.NumericalError`; a non-finite trial point makes the line
    search back off.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    >>> opt = LBFGS([x], max_iter=100, tolerance_change=1e-14)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2  # Rosenbrock
    ...     loss.backward()
    ...     return loss
    >>> loss0 = opt.step(closure)
    >>> tuple(opt.state[x]["S"].shape)[1], bool((x - 1).abs().max() < 1e-6)
    (2, True)
    """

    _line_search_key: ClassVar[str] = "line_search_fn"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "lr": POSITIVE,
        "history_size": AT_LEAST_ONE,
        "max_iter": AT_LEAST_ONE,
        "max_eval": Interval(int, low=1, allow_none=True),
        "line_search_fn": OneOf((*LINE_SEARCHES, None), callable_name=LINE_SEARCH_CALLABLE),
        "tolerance_grad": NONNEGATIVE,
        "tolerance_change": NONNEGATIVE,
        "curvature_eps": NONNEGATIVE,
        "c1": UNIT,
        "c2": UNIT,
    }

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        *,
        history_size: int = 10,
        max_iter: int = 20,
        max_eval: int | None = None,
        line_search_fn: str | LineSearch | None = "strong_wolfe",
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        curvature_eps: float = 1e-10,
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        if max_eval is None and isinstance(max_iter, int):
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "history_size": history_size,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "line_search_fn": line_search_fn,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "curvature_eps": curvature_eps,
            "c1": c1,
            "c2": c2,
        }
        super().__init__(params, defaults)

    def _direction(self, state: dict[str, Any], g: Tensor, scale: Tensor | None) -> Tensor:
        """Update the memory with the last pair, then return ``d = -H g`` (steps 1-2)."""
        if "S" not in state:
            state["S"], state["Y"] = g.new_empty(0, g.numel()), g.new_empty(0, g.numel())
            state["rho"], state["gamma"] = [], 1.0
        g_prev = state.pop("g_prev", None)
        if g_prev is not None:
            self._update_memory(state, s=state["d"] * state["t"], y=g - g_prev)
        return -two_loop(
            g, state["S"], state["Y"], rho=state["rho"], gamma=state["gamma"], scale=scale
        )  # (n,)

    def _update_memory(self, state: dict[str, Any], *, s: Tensor, y: Tensor) -> None:
        """Append ``(s, y)`` (n,) if ``s'y > curvature_eps``, dropping the oldest pair."""
        group = self.param_groups[0]
        ys = float(y.dot(s))
        if not ys > group["curvature_eps"]:
            return
        S, Y, rho = state["S"], state["Y"], state["rho"]
        if S.shape[0] >= group["history_size"]:
            keep = group["history_size"] - 1
            S, Y, rho = S[S.shape[0] - keep :], Y[Y.shape[0] - keep :], rho[len(rho) - keep :]
        state["S"] = torch.cat([S, s[None]])  # (m, n)
        state["Y"] = torch.cat([Y, y[None]])  # (m, n)
        state["rho"] = [*rho, 1.0 / ys]
        state["gamma"] = ys / float(y.dot(y))

    def _initial_step(self, state: dict[str, Any], *, g: Tensor, gtd: float, lr: float) -> float:
        """``lr``, shortened to ``min(1, 1/||g||_1) lr`` while the memory is empty."""
        if state["S"].shape[0] == 0:
            return min(1.0, 1.0 / float(g.abs().sum())) * lr
        return lr

    def _line_search_budget(self, group: dict[str, Any], n_evals: int) -> int:
        """Return what is left of ``max_eval`` in this :meth:`step` (at least one call)."""
        return max(group["max_eval"] - (n_evals - 1), 1)

    def _remember(
        self, state: dict[str, Any], *, d: Tensor, t: float, g: Tensor, gtd: float
    ) -> None:
        """Keep ``t``, the direction and the gradient it started from, for step 1."""
        super()._remember(state, d=d, t=t, g=g, gtd=gtd)
        state["d"], state["g_prev"] = d, g
