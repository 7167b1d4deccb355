"""Line searches along a descent direction: backtracking Armijo and strong Wolfe.

Every line search here shares one signature, so an optimizer can take any of them (or a
user's own, such as an exact line search on a quadratic)::

    f_new, g_new, t, n_evals = search(obj_fn, x, t, d, f=f, g=g, gtd=gtd)

where ``obj_fn(x, t, d) -> (f(x + t d), g(x + t d))`` evaluates the objective and its
gradient on the ray. The returned gradient is the one at the accepted point, so the
optimizer never evaluates that point twice.

Symbols
-------
==========  ====================================================================
``x``       (n,) the current point; passed through to ``obj_fn`` untouched
``d``       (n,) a descent direction, ``g'd < 0``
``t``       step length; ``phi(t) = f(x + t d)`` is the objective on the ray
``f, g``    ``phi(0) = f(x)`` and the gradient (n,) at ``x``
``gtd``     ``phi'(0) = g'd``, the slope at ``t = 0``
``c1, c2``  sufficient-decrease and curvature constants, ``0 < c1 < c2 < 1``
==========  ====================================================================

Non-finite values
-----------------
A trial point where ``f`` or ``g'd`` is NaN or infinite is treated as a step too long:
the search shrinks the step towards the last finite point. Only when *every* trial
point was non-finite does it raise :class:`~deepdx.exceptions.NumericalError`.

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006:
Alg. 3.1 (backtracking), Alg. 3.5 and 3.6 (strong-Wolfe line search and ``zoom``),
eq. 3.59 (cubic interpolation). The safeguards follow M. Schmidt's minFunc, as does
``torch.optim.LBFGS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

from torch import Tensor

from deepdx.exceptions import InvalidParameterError, NumericalError

__all__ = ["LineSearch", "ObjFn", "armijo_backtracking", "strong_wolfe"]

ObjFn = Callable[[Tensor, float, Tensor], tuple[float, Tensor]]
"""``obj_fn(x, t, d) -> (f, g)``: value and gradient (n,) of the objective at ``x + t d``."""


class LineSearch(Protocol):
    """The signature every line search shares; see the module docstring."""

    def __call__(
        self, obj_fn: ObjFn, x: Tensor, t: float, d: Tensor, *, f: float, g: Tensor, gtd: float
    ) -> tuple[float, Tensor, float, int]:
        """Return ``(f_new, g_new, t, n_evals)`` for an accepted step ``t`` along ``d``."""
        ...


class _Trial(NamedTuple):
    """One evaluated point on the ray: step, value, gradient (n,) and slope ``g'd``."""

    t: float
    f: float
    g: Tensor
    gtd: float

    @property
    def finite(self) -> bool:
        """Whether both the value and the slope are finite numbers."""
        return math.isfinite(self.f) and math.isfinite(self.gtd)


class _Ray:
    """The objective restricted to ``x + t d``, counting evaluations and finite ones."""

    def __init__(self, obj_fn: ObjFn, x: Tensor, d: Tensor) -> None:
        self.obj_fn, self.x, self.d = obj_fn, x, d
        self.n_evals = 0
        self.n_finite = 0
        self.t_last = math.nan
        self.lowest: _Trial | None = None

    def __call__(self, t: float) -> _Trial:
        f, g = self.obj_fn(self.x, t, self.d)
        trial = _Trial(t, float(f), g, float(g.dot(self.d)))
        self.n_evals += 1
        self.t_last = t
        if trial.finite:
            self.n_finite += 1
            if self.lowest is None or trial.f < self.lowest.f:
                self.lowest = trial
        return trial

    def fallback(self, origin: _Trial) -> _Trial:
        """Return the lowest finite trial if it is below ``phi(0)``, else ``origin``."""
        if self.lowest is not None and self.lowest.f < origin.f:
            return self.lowest
        return origin


def armijo_backtracking(
    obj_fn: ObjFn,
    x: Tensor,
    t: float,
    d: Tensor,
    *,
    f: float,
    g: Tensor,
    gtd: float,
    c1: float = 1e-4,
    rho: float = 0.5,
    max_ls: int = 25,
) -> tuple[float, Tensor, float, int]:
    """Shrink the step ``t`` by ``rho`` until the Armijo condition holds (N&W Alg. 3.1).

    Parameters
    ----------
    obj_fn : callable
        ``obj_fn(x, t, d) -> (f, g)`` at ``x + t d``; ``g`` has shape (n,).
    x : Tensor
        Current point, shape (n,); only passed on to ``obj_fn``.
    t : float
        Initial trial step, > 0.
    d : Tensor
        Descent direction, shape (n,).
    f : float
        Objective at ``x``.
    g : Tensor
        Gradient at ``x``, shape (n,); returned when no step is accepted.
    gtd : float
        Slope ``g'd`` at ``x``; must be < 0.
    c1 : float, default=1e-4
        Sufficient-decrease constant, in (0, 1).
    rho : float, default=0.5
        Contraction factor, in (0, 1).
    max_ls : int, default=25
        Most evaluations of ``obj_fn``.

    Returns
    -------
    f_new : float
        Objective at the accepted point (``f`` when none was accepted).
    g_new : Tensor
        Gradient there, shape (n,).
    t : float
        Accepted step. When all ``max_ls`` trials fail the test: the lowest trial if it
        is below ``f``, else 0.0.
    n_evals : int
        Evaluations of ``obj_fn`` made, at most ``max_ls``.

    Raises
    ------
    InvalidParameterError
        If ``gtd >= 0``, ``t <= 0`` or an option is out of range.
    NumericalError
        If every trial point gave a non-finite value or gradient.

    Notes
    -----
    1. Evaluate ``phi(t) = f(x + t d)``.
    2. Accept ``t`` if it is finite and ``phi(t) <= f + c1 t g'd`` (Armijo).
    3. Otherwise set ``t <- rho t`` and go to 1.

    A non-finite trial fails step 2, so the search backs off from overflow. Cost: one
    value-and-gradient evaluation per trial.

    Examples
    --------
    >>> import torch
    >>> def obj_fn(x, t, d):
    ...     z = x + t * d
    ...     return float(z @ z), 2 * z
    >>> x = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> g = 2 * x
    >>> f_new, g_new, t, n = armijo_backtracking(obj_fn, x, 4.0, -g, f=5.0, g=g, gtd=-20.0)
    >>> t, n, f_new < 5.0, tuple(g_new.shape)
    (0.5, 4, True, (2,))
    """
    _check_options("armijo_backtracking", t=t, gtd=gtd, max_ls=max_ls, unit={"c1": c1, "rho": rho})
    ray = _Ray(obj_fn, x, d)
    while ray.n_evals < max_ls:
        trial = ray(t)
        if trial.finite and trial.f <= f + c1 * t * gtd:
            return trial.f, trial.g, trial.t, ray.n_evals
        t *= rho
    _check_some_finite("armijo_backtracking", ray)
    lowest = ray.fallback(_Trial(0.0, f, g, gtd))
    return lowest.f, lowest.g, lowest.t, ray.n_evals


def strong_wolfe(
    obj_fn: ObjFn,
    x: Tensor,
    t: float,
    d: Tensor,
    *,
    f: float,
    g: Tensor,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Tensor, float, int]:
    """Find a step satisfying the strong Wolfe conditions (N&W Alg. 3.5 and 3.6).

    Parameters
    ----------
    obj_fn : callable
        ``obj_fn(x, t, d) -> (f, g)`` at ``x + t d``; ``g`` has shape (n,).
    x : Tensor
        Current point, shape (n,); only passed on to ``obj_fn``.
    t : float
        Initial trial step, > 0.
    d : Tensor
        Descent direction, shape (n,).
    f : float
        Objective at ``x``.
    g : Tensor
        Gradient at ``x``, shape (n,).
    gtd : float
        Slope ``g'd`` at ``x``; must be < 0.
    c1 : float, default=1e-4
        Sufficient-decrease constant.
    c2 : float, default=0.9
        Curvature constant, ``c1 < c2 < 1``; nonlinear CG wants ``c2 < 1/2``.
    tolerance_change : float, default=1e-9
        Stop zooming once the bracket moves ``x`` by less than this (max-norm).
    max_ls : int, default=25
        Most evaluations of ``obj_fn``.

    Returns
    -------
    f_new : float
        Objective at the accepted point.
    g_new : Tensor
        Gradient there, shape (n,).
    t : float
        Accepted step: a strong-Wolfe point or, when the budget or the bracket runs out
        first, the lowest point that satisfies sufficient decrease; failing that, the
        lowest trial if it is below ``f``; failing that, 0.0.
    n_evals : int
        Evaluations of ``obj_fn`` made, at most ``max_ls``.

    Raises
    ------
    InvalidParameterError
        If ``gtd >= 0``, ``t <= 0`` or an option is out of range.
    NumericalError
        If every trial point gave a non-finite value or gradient.

    Notes
    -----
    With ``phi(t) = f(x + t d)``, a step is accepted when

        phi(t) <= phi(0) + c1 t phi'(0)        (sufficient decrease)
        |phi'(t)| <= c2 |phi'(0)|              (strong curvature)

    1. Bracketing (Alg. 3.5). Try ``t``. If it fails sufficient decrease, is not
       finite, or is no lower than the previous trial, the minimiser lies in
       ``[t_prev, t]``: zoom there. If it satisfies both conditions, stop. If
       ``phi'(t) >= 0``, zoom in ``[t, t_prev]``. Otherwise extrapolate to the cubic
       minimiser (eq. 3.59) clipped to ``[t + 0.01 (t - t_prev), 10 t]``.
    2. Zoom (Alg. 3.6) on a bracket ``[lo, hi]``, ``lo`` the lowest sufficient-decrease
       point. Try the cubic minimiser of the two ends (bisection when ``hi`` is not
       finite), kept 10 % of the bracket away from its ends. A trial that fails
       sufficient decrease, is not finite, or is no lower than ``lo`` becomes ``hi``;
       one that satisfies the curvature condition is returned; otherwise it becomes
       ``lo`` (the old ``lo`` becomes ``hi`` when ``phi'(t) (hi - lo) >= 0``).
    3. When ``max_ls`` evaluations or the bracket (``tolerance_change``) run out, return
       ``lo``; if that is still ``t = 0``, the lowest finite trial if it lowers ``f``.

    Differences from ``torch.optim.LBFGS``'s port of minFunc: the "no lower than the
    previous trial" test starts at the second trial, as in N&W (torch starts at the
    third), a zoom trial that fails sufficient decrease always becomes ``hi``, and
    non-finite trials shrink the step instead of poisoning the interpolation.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64))
    >>> def obj_fn(x, t, d):
    ...     z = x + t * d
    ...     return float(0.5 * z @ A @ z), A @ z
    >>> x = torch.tensor([1.0, 1.0], dtype=torch.float64)
    >>> g = A @ x
    >>> f_new, g_new, t, n = strong_wolfe(obj_fn, x, 1.0, -g, f=5.5, g=g, gtd=-101.0)
    >>> round(t, 6), n, tuple(g_new.shape)  # exact minimiser on the ray: 101 / 1001
    (0.100899, 2, (2,))
    """
    _check_options("strong_wolfe", t=t, gtd=gtd, max_ls=max_ls, unit={"c1": c1, "c2": c2})
    ray = _Ray(obj_fn, x, d)
    origin = _Trial(0.0, f, g, gtd)
    lo, hi = _bracket(ray, origin, t, c1=c1, c2=c2, max_ls=max_ls)
    if hi is not None:
        min_width = tolerance_change / float(d.abs().max())
        lo = _zoom(ray, origin, lo, hi, c1=c1, c2=c2, min_width=min_width, max_ls=max_ls)
    _check_some_finite("strong_wolfe", ray)
    if lo is origin:
        lo = ray.fallback(origin)
    return lo.f, lo.g, lo.t, ray.n_evals


def _bracket(
    ray: _Ray, origin: _Trial, t: float, *, c1: float, c2: float, max_ls: int
) -> tuple[_Trial, _Trial | None]:
    """Alg. 3.5: return a bracket ``(lo, hi)``, or ``(point, None)`` when a point is accepted."""
    prev, cur = origin, ray(t)
    while True:
        no_lower = prev is not origin and cur.f >= prev.f
        if not cur.finite or not _armijo(cur, origin, c1) or no_lower:
            return prev, cur
        if abs(cur.gtd) <= -c2 * origin.gtd:
            return cur, None
        if cur.gtd >= 0:
            return cur, prev
        if ray.n_evals >= max_ls:
            return cur, None  # budget spent while still descending: keep the lowest point
        step = cur.t - prev.t
        t_next = _cubic_minimizer(prev, cur, low=cur.t + 0.01 * step, high=10.0 * cur.t)
        prev, cur = cur, ray(t_next)


def _zoom(
    ray: _Ray,
    origin: _Trial,
    lo: _Trial,
    hi: _Trial,
    *,
    c1: float,
    c2: float,
    min_width: float,
    max_ls: int,
) -> _Trial:
    """Alg. 3.6: shrink ``[lo, hi]`` until a trial satisfies the strong Wolfe conditions."""
    insufficient = False
    while ray.n_evals < max_ls and abs(hi.t - lo.t) >= min_width:
        if hi.finite:
            t = _cubic_minimizer(lo, hi, low=min(lo.t, hi.t), high=max(lo.t, hi.t))
        else:
            t = 0.5 * (lo.t + hi.t)
        t, insufficient = _keep_inside(t, lo.t, hi.t, insufficient)
        cur = ray(t)
        if not cur.finite or not _armijo(cur, origin, c1) or cur.f >= lo.f:
            hi = cur
            continue
        if abs(cur.gtd) <= -c2 * origin.gtd:
            return cur
        if cur.gtd * (hi.t - lo.t) >= 0:
            hi = lo
        lo = cur
    return lo


def _armijo(trial: _Trial, origin: _Trial, c1: float) -> bool:
    """Sufficient decrease: ``phi(t) <= phi(0) + c1 t phi'(0)``."""
    return trial.f <= origin.f + c1 * trial.t * origin.gtd


def _cubic_minimizer(a: _Trial, b: _Trial, *, low: float, high: float) -> float:
    """Eq. 3.59: minimiser of the cubic matching ``phi`` and ``phi'`` at a and b, in [low, high].

    d1 = phi'(a) + phi'(b) - 3 (phi(a) - phi(b)) / (a - b)
    d2 = sign(b - a) sqrt(d1^2 - phi'(a) phi'(b))
    t  = b - (b - a) (phi'(b) + d2 - d1) / (phi'(b) - phi'(a) + 2 d2)
    The midpoint of [low, high] stands in when the cubic has no minimiser.
    """
    midpoint = 0.5 * (low + high)
    if a.t == b.t:
        return midpoint
    d1 = a.gtd + b.gtd - 3.0 * (a.f - b.f) / (a.t - b.t)
    d2_square = d1 * d1 - a.gtd * b.gtd
    if not (math.isfinite(d2_square) and d2_square >= 0.0):
        return midpoint
    d2 = math.copysign(math.sqrt(d2_square), b.t - a.t)
    denominator = b.gtd - a.gtd + 2.0 * d2
    if denominator == 0.0:
        return midpoint
    t = b.t - (b.t - a.t) * (b.gtd + d2 - d1) / denominator
    return min(max(t, low), high) if math.isfinite(t) else midpoint


def _keep_inside(t: float, a: float, b: float, insufficient: bool) -> tuple[float, bool]:
    """Move ``t`` 10 % of the bracket inside it when it sits at an end twice in a row."""
    low, high = min(a, b), max(a, b)
    margin = 0.1 * (high - low)
    if min(high - t, t - low) >= margin:
        return t, False
    if insufficient or t >= high or t <= low:
        return (high - margin if abs(t - high) < abs(t - low) else low + margin), False
    return t, True


def _check_options(name: str, *, t: float, gtd: float, max_ls: int, unit: dict[str, float]) -> None:
    """Raise one InvalidParameterError listing every bad argument of a line search."""
    problems = []
    if not gtd < 0:
        problems.append(
            f"{name} needs a descent direction, gtd = g'd < 0; got gtd={gtd!r}. "
            "Pass d = -g or another direction with g'd < 0."
        )
    if not (math.isfinite(t) and t > 0):
        problems.append(f"`t` of {name} must be a finite float > 0; got {t!r}.")
    if not max_ls >= 1:
        problems.append(f"`max_ls` of {name} must be an int >= 1; got {max_ls!r}.")
    for key, value in unit.items():
        if not 0 < value < 1:
            problems.append(f"`{key}` of {name} must be a float in (0, 1); got {value!r}.")
    if unit.get("c1", 0.0) >= unit.get("c2", 1.0):
        problems.append(f"{name} needs c1 < c2; got c1={unit['c1']!r}, c2={unit['c2']!r}.")
    if problems:
        raise InvalidParameterError(" ".join(problems))


def _check_some_finite(name: str, ray: _Ray) -> None:
    """Raise NumericalError when no trial point on the ray gave finite values."""
    if ray.n_finite == 0:
        raise NumericalError(
            f"{name}: all {ray.n_evals} trial steps along d gave a non-finite loss or "
            f"gradient, down to t={ray.t_last:.3g}; expected at least one finite trial. The "
            "objective overflows or is undefined right next to x: lower the initial step "
            "`lr`, or look for NaN/inf in the model and data."
        )
