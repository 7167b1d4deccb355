"""Extreme eigenvalues of curvature operators: the spectrum a diagnosis or a step size needs.

Gradient descent with step size lr is stable along an eigendirection of the Hessian only
if lr·λ < 2, so the top eigenvalue λ_max against 2/lr tells whether a run sits at the edge
of stability; λ_max / λ_min (the condition number) tells how slow first-order methods are
and how much Newton-type methods can help.

Symbols
-------
A (P, P)    symmetric operator (Hessian H or Gauss-Newton G), seen through ``matvec``
λ_max       largest eigenvalue; λ_min+ smallest positive eigenvalue
κ           condition estimate λ_max / λ_min+
σ           spectral shift, A + σ I

Methods
-------
``"lanczos"`` (default) builds a Krylov space with full reorthogonalisation and reads the
extreme eigenvalues off a small tridiagonal matrix; it needs far fewer products than power
iteration when eigenvalues cluster. ``"power"`` finds dominant (largest |λ|) pairs one at a
time with deflation; for ``which="largest"`` it first finds the dominant λ_d and, unless
k = 1 and λ_d >= 0, iterates on A + |λ_d| I, whose spectrum is >= 0 and ordered like A's;
``which="smallest"`` runs on -A.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, overload

import torch
from torch import Tensor

from deepdx._random import make_generator
from deepdx.curvature._checks import check_choice, check_k, check_params, check_positive
from deepdx.curvature._params import vector_spec
from deepdx.curvature.hessian_vector import hessian_operator
from deepdx.curvature.krylov import WHICH, lanczos, ritz_values
from deepdx.curvature.operators import MatVec, damped
from deepdx.curvature.power import power_iteration
from deepdx.exceptions import NumericalError

__all__ = ["METHODS", "condition_estimate", "hessian_top_eigenvalue", "top_eigenvalues"]

METHODS = ("lanczos", "power")
"""Eigensolvers accepted by :func:`top_eigenvalues`."""

_DEFAULT_MAX_ITER = {"lanczos": 200, "power": 500}


@overload
def top_eigenvalues(
    matvec: MatVec,
    like: int | Tensor,
    k: int = ...,
    *,
    method: str = ...,
    which: str = ...,
    max_iter: int | None = ...,
    tol: float = ...,
    generator: torch.Generator | None = ...,
    return_eigenvectors: Literal[False] = ...,
) -> Tensor: ...


@overload
def top_eigenvalues(
    matvec: MatVec,
    like: int | Tensor,
    k: int = ...,
    *,
    method: str = ...,
    which: str = ...,
    max_iter: int | None = ...,
    tol: float = ...,
    generator: torch.Generator | None = ...,
    return_eigenvectors: Literal[True],
) -> tuple[Tensor, Tensor]: ...


def top_eigenvalues(
    matvec: MatVec,
    like: int | Tensor,
    k: int = 1,
    *,
    method: str = "lanczos",
    which: str = "largest",
    max_iter: int | None = None,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
    return_eigenvectors: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Return the ``k`` extreme eigenvalues (and optionally eigenvectors) of an operator.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,), A symmetric, e.g.
        :func:`hessian_operator` or :func:`ggn_operator`.
    like : int or Tensor
        P, or an example vector of shape (P,) whose dtype and device are used (values
        ignored). An int means the default dtype on the CPU.
    k : int, default=1
        Number of eigenvalues, 1 <= k <= P.
    method : {"lanczos", "power"}, default="lanczos"
        Eigensolver, see the module docstring.
    which : {"largest", "smallest", "magnitude"}, default="largest"
        The k largest λ, the k smallest λ, or the k largest |λ|.
    max_iter : int, optional
        Lanczos: Krylov dimension (default 200); power: products per eigenpair (default 500).
    tol : float, default=1e-6
        Relative residual ‖A v - λ v‖ / |λ| at which a pair is accepted (for Lanczos and for
        shifted power iteration, relative to the largest |λ| in play).
    generator : torch.Generator, optional
        Source of random start vectors; a generator seeded with 0 when omitted. The global
        RNG is never used.
    return_eigenvectors : bool, default=False
        Also return the eigenvectors.

    Returns
    -------
    eigenvalues : Tensor
        Shape (k,): decreasing for "largest", increasing for "smallest", by decreasing |λ|
        for "magnitude".
    eigenvectors : Tensor
        Shape (P, k), orthonormal columns; only when ``return_eigenvectors``.

    Raises
    ------
    InvalidParameterError
        If ``method``, ``which``, ``k``, ``max_iter`` or ``tol`` are invalid.

    Warns
    -----
    ConvergenceWarning
        If the solver misses ``tol`` within ``max_iter``.

    Notes
    -----
    Lanczos costs m products (m <= max_iter, usually 20-60 for k = 1) and O(mP) memory;
    power iteration about k·(log(1/tol) / log|λ_j/λ_{j+1}|) products and O(kP) memory.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, 5.0, -7.0, 3.0], dtype=torch.float64))
    >>> like = torch.zeros(4, dtype=torch.float64)
    >>> top_eigenvalues(lambda v: A @ v, like, k=2).round(decimals=6)
    tensor([5., 3.], dtype=torch.float64)
    >>> top_eigenvalues(lambda v: A @ v, like, method="power", which="magnitude").round(decimals=6)
    tensor([-7.], dtype=torch.float64)
    """
    check_choice("method", method, METHODS)
    check_choice("which", which, WHICH)
    check_k(k, vector_spec(like)[0])
    max_iter = _DEFAULT_MAX_ITER[method] if max_iter is None else max_iter
    generator = make_generator(0) if generator is None else generator
    solve = lanczos if method == "lanczos" else _power
    values, vectors = solve(
        matvec, like, k, which=which, max_iter=max_iter, tol=tol, generator=generator
    )
    return (values, vectors) if return_eigenvectors else values


def hessian_top_eigenvalue(
    loss_fn: Callable[[], Tensor],
    params: Sequence[Tensor],
    *,
    method: str = "lanczos",
    max_iter: int | None = None,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> float:
    """Return the largest eigenvalue λ_max of the Hessian of ``loss_fn()``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params`` on a fixed batch.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``.
    method : {"lanczos", "power"}, default="lanczos"
        Eigensolver, see :func:`top_eigenvalues`.
    max_iter : int, optional
        As in :func:`top_eigenvalues`.
    tol : float, default=1e-6
        Relative residual at which λ_max is accepted.
    generator : torch.Generator, optional
        Source of random start vectors; seeded with 0 when omitted.

    Returns
    -------
    float
        λ_max (the largest, not the largest in magnitude). Gradient descent with step lr
        is unstable along its eigenvector when λ_max > 2 / lr.

    Raises
    ------
    InvalidParameterError
        As :func:`hessian_operator` and :func:`top_eigenvalues`.

    Notes
    -----
    One gradient evaluation that records its graph, then one Hessian-vector product (a
    backward pass) per iteration.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    >>> round(hessian_top_eigenvalue(lambda: 3 * w[0] ** 2 + 0.5 * w[1] ** 2, [w]), 6)
    6.0
    """
    params = check_params(params)
    operator = hessian_operator(loss_fn, params)
    like = params[0].new_zeros(sum(p.numel() for p in params))  # (P,)
    values = top_eigenvalues(
        operator, like, 1, method=method, max_iter=max_iter, tol=tol, generator=generator
    )
    return float(values[0])


def condition_estimate(
    matvec: MatVec,
    like: int | Tensor,
    *,
    max_iter: int = 200,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """Return κ = λ_max / λ_min+, the ratio of the largest to the smallest positive eigenvalue.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,), A symmetric.
    like : int or Tensor
        P, or an example vector of shape (P,) (dtype and device are used).
    max_iter : int, default=200
        Lanczos steps m (capped at P; with m = P the estimate is exact).
    rtol : float, optional
        Ritz values <= rtol·λ_max count as zero (the null space of an over-parameterised
        net). Default: 1000·ε of the dtype (2e-13 in float64, 1e-4 in float32).
    generator : torch.Generator, optional
        Source of the random start vector; seeded with 0 when omitted.

    Returns
    -------
    float
        κ >= 1. For an indefinite A, only its positive part is measured.

    Raises
    ------
    InvalidParameterError
        If ``max_iter`` or ``rtol`` is invalid.
    NumericalError
        If no Ritz value is positive (A is negative semi-definite as far as seen).

    Notes
    -----
    Ritz values lie inside [λ_min, λ_max] and the extreme ones converge first, so for a
    positive definite A the estimate is a lower bound on κ that tightens as m grows;
    λ_min+ is the slowest to converge. A PSD matrix of rank r is exact for m > r.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([0.0, 0.5, 2.0, 10.0], dtype=torch.float64))
    >>> round(condition_estimate(lambda v: A @ v, torch.zeros(4, dtype=torch.float64)), 6)
    20.0
    """
    _, dtype, _ = vector_spec(like)
    rtol = 1000 * torch.finfo(dtype).eps if rtol is None else rtol
    check_positive("rtol", rtol)
    theta = ritz_values(matvec, like, max_iter=max_iter, generator=generator)  # (m,)
    lam_max = float(theta.max())
    positive = theta[theta > rtol * lam_max]  # (m+,)
    if lam_max <= 0.0 or positive.numel() == 0:
        raise NumericalError(
            "condition_estimate found no positive curvature: the largest Ritz value after "
            f"{theta.numel()} Lanczos steps is {lam_max:.3e}, expected > 0. The operator is "
            "negative semi-definite as far as the run saw; check the sign of the loss, or "
            "use top_eigenvalues(..., which='smallest') to inspect negative curvature."
        )
    return lam_max / float(positive.min())


def _power(
    matvec: MatVec,
    like: int | Tensor,
    k: int,
    *,
    which: str,
    max_iter: int,
    tol: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Run power iteration for ``which`` with the shifts of the module docstring."""
    solve = partial(power_iteration, like=like, max_iter=max_iter, tol=tol, generator=generator)
    if which == "magnitude":
        return solve(matvec, k=k)
    sign = 1.0 if which == "largest" else -1.0

    def signed(v: Tensor) -> Tensor:
        return sign * matvec(v)  # (P,)

    values, vectors = solve(signed, k=1)  # dominant λ_d of ±A
    if k > 1 or values[0] < 0:
        shift = abs(float(values[0]))  # ±A + |λ_d| I has spectrum >= 0, same order
        values, vectors = solve(damped(signed, shift), k=k)
        values = values - shift
    return sign * values, vectors
