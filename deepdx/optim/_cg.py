"""Linear conjugate gradients with Martens' relative-progress stopping rule.

The inner solver of Hessian-free optimisation: it minimises the quadratic model
φ(x) = ½ xᵀ A x − bᵀ x of a damped curvature matrix A, seen only through ``matvec``, and
keeps the iterates that the outer loop backtracks over.

Symbols
-------
===========  ===========================================================================
A (n, n)     symmetric positive definite operator, ``matvec(v) -> A v``
b (n,)       right-hand side; the minimiser of φ solves A x = b
x_i (n,)     i-th iterate, x_0 the (warm) start
r_i (n,)     residual b − A x_i = −∇φ(x_i)
M (n, n)     preconditioner, applied as ``preconditioner(r) -> M⁻¹ r``
z_i (n,)     preconditioned residual M⁻¹ r_i
p_i (n,)     search direction, A-conjugate to the earlier ones
φ_i          φ(x_i) = −½ x_iᵀ (r_i + b), computed without an extra product
ε            ``tol``, Martens' relative-progress tolerance
===========  ===========================================================================

Contents
--------
=========================  =================================================================
``cg_solve``               preconditioned CG (N&W Alg. 5.3) with the relative-progress rule
``CGResult``               solution, saved iterates, iteration count, φ history, stop reason
``geometric_iterations``   Martens' save schedule ⌈γʲ⌉ for backtracking over iterates
=========================  =================================================================

References
----------
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, §5.1
(Alg. 5.2, CG) and Alg. 5.3 (preconditioned CG).
J. Martens, "Deep learning via Hessian-free optimization", ICML 2010, §4.4 (termination),
§4.6 (saved iterates, backtracking), §4.7 (preconditioning).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from deepdx.exceptions import InvalidParameterError, NumericalError

__all__ = ["STOP_REASONS", "CGResult", "cg_solve", "geometric_iterations"]

STOP_REASONS = ("max_iter", "progress", "residual", "negative_curvature")
"""Why :func:`cg_solve` stopped; see :class:`CGResult`."""


class CGResult(NamedTuple):
    """What :func:`cg_solve` returns.

    Attributes
    ----------
    x : Tensor
        The last iterate x_N, shape (n,).
    iterates : list of (int, Tensor)
        The pairs (i, x_i) saved at the iterations of ``save_at``, in increasing i; the
        last pair is always (N, x_N).
    n_iter : int
        N, the number of CG iterations (products with A, besides the one for r_0).
    quad_values : list of float
        φ(x_0), φ(x_1), ..., φ(x_N); non-increasing up to rounding.
    reason : str
        ``"progress"`` (Martens' rule), ``"residual"`` (‖r_N‖ <= rtol ‖b‖),
        ``"negative_curvature"`` (p_Nᵀ A p_N <= 0: A is not positive definite, x_N is the
        last iterate before that direction) or ``"max_iter"``.
    """

    x: Tensor
    iterates: list[tuple[int, Tensor]]
    n_iter: int
    quad_values: list[float]
    reason: str


def cg_solve(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    *,
    max_iter: int,
    tol: float = 5e-4,
    min_iter: int = 1,
    rtol: float = 0.0,
    preconditioner: Callable[[Tensor], Tensor] | None = None,
    save_at: Sequence[int] = (),
) -> CGResult:
    """Minimise φ(x) = ½ xᵀ A x − bᵀ x by preconditioned conjugate gradients.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on vectors of shape (n,); A symmetric positive definite.
    b : Tensor
        Right-hand side, shape (n,).
    x0 : Tensor or None, default=None
        Start x_0, shape (n,); None means zeros (and saves the product A x_0).
    max_iter : int
        Most iterations N.
    tol : float, default=5e-4
        ε of the relative-progress rule below; 0 turns the rule off.
    min_iter : int, default=1
        The relative-progress rule is tested only from iteration ``min_iter`` on.
    rtol : float, default=0.0
        Also stop once ‖r_i‖ <= rtol ‖b‖ (0: only an exactly zero residual stops).
    preconditioner : callable or None, default=None
        ``preconditioner(r) -> M⁻¹ r``, shape (n,) to (n,), M symmetric positive
        definite; None means M = I.
    save_at : sequence of int, default=()
        Iterations i whose iterate x_i is kept in ``iterates`` (e.g.
        :func:`geometric_iterations`); x_N is always kept.

    Returns
    -------
    CGResult
        ``x`` (n,), ``iterates``, ``n_iter``, ``quad_values`` (length N + 1), ``reason``.

    Raises
    ------
    InvalidParameterError
        If ``b`` is not a vector, ``x0`` has another shape, or an option is out of range.
    NumericalError
        If a product A p, the preconditioned residual or φ is not finite.

    Notes
    -----
    Preconditioned CG (N&W Alg. 5.3), from r_0 = b − A x_0, z_0 = M⁻¹ r_0, p_0 = z_0:

    1. α_i = r_iᵀ z_i / p_iᵀ A p_i (stop with reason ``"negative_curvature"`` when
       p_iᵀ A p_i <= 0, keeping x_i).
    2. x_{i+1} = x_i + α_i p_i,  r_{i+1} = r_i − α_i A p_i,  z_{i+1} = M⁻¹ r_{i+1}.
    3. β_i = r_{i+1}ᵀ z_{i+1} / r_iᵀ z_i,  p_{i+1} = z_{i+1} + β_i p_i.
    4. φ_{i+1} = −½ x_{i+1}ᵀ (r_{i+1} + b).

    Martens' relative-progress rule (2010, §4.4): with k = max(10, ⌊0.1 i⌋), stop at
    iteration i when i > k, φ_i < 0 and (φ_i − φ_{i−k}) / φ_i < k ε: the average
    relative decrease of φ over the last k iterations has fallen below ε. Unlike a
    residual test it measures progress on the objective CG actually minimises, which in
    Hessian-free optimisation is what matters. In exact arithmetic CG reaches the
    minimiser in at most n iterations (N&W Thm. 5.1); use ``tol=0`` and a small
    ``rtol`` to observe that.

    Cost: one ``matvec`` and one ``preconditioner`` call per iteration (plus one for
    r_0 when ``x0`` is given), O(n) extra work and memory for each saved iterate.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> result = cg_solve(lambda v: A @ v, b, max_iter=10, tol=0.0, rtol=1e-12)
    >>> result.x.shape, result.n_iter, result.reason
    (torch.Size([2]), 2, 'residual')
    >>> torch.allclose(result.x, torch.linalg.solve(A, b))
    True
    """
    _check_arguments(b, x0, max_iter=max_iter, tol=tol, min_iter=min_iter, rtol=rtol)
    apply_m = preconditioner if preconditioner is not None else _identity
    keep = set(save_at)
    x = torch.zeros_like(b) if x0 is None else x0.clone()  # (n,)
    r = b.clone() if x0 is None else b - matvec(x0)  # (n,)
    phi = [-0.5 * float(x.dot(r + b))]
    z = apply_m(r)  # (n,)
    p = z  # (n,)
    rz = _finite(float(r.dot(z)), "the preconditioned residual r'M^-1 r", 0)
    r_stop = rtol * float(b.norm())
    iterates: list[tuple[int, Tensor]] = []
    reason, i = "max_iter", 0
    # ---- iterate: steps 1-4 --------------------------------------------------------------
    while i < max_iter:
        if float(r.norm()) <= r_stop or rz == 0.0:  # rz underflows for a tiny r in float32
            reason = "residual"
            break
        Ap = matvec(p)  # (n,)
        pAp = _finite(float(p.dot(Ap)), "the curvature p'Ap", i)
        if pAp <= 0.0:
            reason = "negative_curvature"
            break
        alpha = rz / pAp
        x = x + alpha * p  # (n,)
        r = r - alpha * Ap  # (n,)
        z = apply_m(r)  # (n,)
        rz_new = _finite(float(r.dot(z)), "the preconditioned residual r'M^-1 r", i)
        p = z + (rz_new / rz) * p  # (n,)
        rz = rz_new
        i += 1
        phi.append(_finite(-0.5 * float(x.dot(r + b)), "the quadratic model phi", i))
        if i in keep:
            iterates.append((i, x))
        # ---- Martens' relative-progress rule ---------------------------------------------
        if i >= min_iter and _no_progress(phi, i, tol):
            reason = "progress"
            break
    if not iterates or iterates[-1][0] != i:
        iterates.append((i, x))
    return CGResult(x, iterates, i, phi, reason)


def geometric_iterations(max_iter: int, gamma: float = 1.3) -> list[int]:
    """Return the iterations ⌈γʲ⌉ <= ``max_iter``, j = 0, 1, ..., without repeats.

    Parameters
    ----------
    max_iter : int
        Largest iteration to include, >= 1.
    gamma : float, default=1.3
        Growth factor γ > 1 (Martens 2010 uses 1.3).

    Returns
    -------
    list of int
        Increasing iteration numbers starting at 1, about log(max_iter) / log(γ) of them.

    Raises
    ------
    InvalidParameterError
        If ``max_iter`` < 1 or ``gamma`` <= 1.

    Notes
    -----
    Saving the iterates at geometrically spaced iterations costs O(n log N) memory and
    lets Hessian-free backtrack to an earlier, shorter step when the last one overshoots
    on the real objective (Martens 2010, §4.6).

    Examples
    --------
    >>> geometric_iterations(12)
    [1, 2, 3, 4, 5, 7, 9, 11]
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidParameterError(f"`max_iter` must be an int >= 1; got {max_iter!r}.")
    if not gamma > 1.0:
        raise InvalidParameterError(f"`gamma` must be a float > 1; got {gamma!r}.")
    out: list[int] = []
    power = 1.0
    while math.ceil(power) <= max_iter:
        if not out or math.ceil(power) > out[-1]:
            out.append(math.ceil(power))
        power *= gamma
    return out


def _identity(r: Tensor) -> Tensor:
    """M⁻¹ r for M = I."""
    return r


def _no_progress(phi: list[float], i: int, tol: float) -> bool:
    """Martens' rule: i > k, φ_i < 0 and (φ_i − φ_{i−k}) / φ_i < k ε, k = max(10, ⌊0.1 i⌋)."""
    k = max(10, int(0.1 * i))
    if i <= k or not phi[i] < 0.0:
        return False
    return (phi[i] - phi[i - k]) / phi[i] < k * tol


def _finite(value: float, what: str, i: int) -> float:
    """Return ``value``; raise NumericalError naming ``what`` if it is NaN or infinite."""
    if not math.isfinite(value):
        raise NumericalError(
            f"cg_solve iteration {i}: {what} is {value}; expected a finite number. The "
            "operator or the preconditioner produced NaN/inf: check the model's outputs, "
            "or raise the damping."
        )
    return value


def _check_arguments(
    b: Tensor, x0: Tensor | None, *, max_iter: int, tol: float, min_iter: int, rtol: float
) -> None:
    """Raise one InvalidParameterError listing every bad argument of :func:`cg_solve`."""
    problems = []
    if not isinstance(b, Tensor) or b.dim() != 1:
        got = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
        problems.append(f"`b` must be a flat vector of shape (n,); got {got}.")
    elif x0 is not None and (not isinstance(x0, Tensor) or x0.shape != b.shape):
        got = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
        problems.append(f"`x0` must have the shape of b {tuple(b.shape)}; got {got}.")
    for name, value in {"max_iter": max_iter, "min_iter": min_iter}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"`{name}` of cg_solve must be an int >= 1; got {value!r}.")
    for name, value in {"tol": tol, "rtol": rtol}.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            problems.append(f"`{name}` of cg_solve must be a float >= 0; got {value!r}.")
    if problems:
        raise InvalidParameterError(" ".join(problems))
