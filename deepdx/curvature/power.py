"""Power iteration with deflation: the dominant eigenpairs of a symmetric operator.

Symbols
-------
A (P, P)      symmetric operator, seen only through ``matvec``
λ_1, u_1      dominant eigenpair, |λ_1| = max |λ|
U (P, j)      eigenvectors found so far (orthonormal columns)
Π = I - U Uᵀ  projector onto their orthogonal complement (deflation)
r             residual A v - λ v of the current iterate

Maths
-----
v ← Π A v / ‖Π A v‖ converges to the dominant eigenvector of Π A Π at the rate
|λ_{j+1} / λ_j| per step; the Rayleigh quotient λ = vᵀ A v converges twice as fast. A pair
is accepted when ‖r‖ <= tol·|λ|, which bounds the eigenvalue error by ‖r‖²/gap. Deflation by
projection (rather than subtracting λ u uᵀ) keeps later pairs orthogonal to earlier ones.

Power iteration needs only one vector of memory besides U, but converges slowly when
eigenvalues cluster and oscillates when λ and -λ are both dominant; Lanczos
(:func:`~deepdx.curvature.lanczos`) is faster for the same number of products.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from deepdx._random import make_generator
from deepdx.curvature._checks import check_k, check_positive
from deepdx.curvature._params import random_vector, vector_spec
from deepdx.curvature.operators import MatVec
from deepdx.exceptions import ConvergenceWarning

__all__ = ["power_iteration"]


def power_iteration(
    matvec: MatVec,
    like: int | Tensor,
    k: int = 1,
    *,
    max_iter: int = 500,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return the ``k`` dominant (largest-magnitude) eigenpairs of a symmetric operator.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,); A must be symmetric.
    like : int or Tensor
        P, or an example vector of shape (P,) whose dtype and device the iteration uses
        (its values are ignored). An int means the default dtype on the CPU.
    k : int, default=1
        Number of eigenpairs, 1 <= k <= P, found one after another with deflation.
    max_iter : int, default=500
        Most products per eigenpair.
    tol : float, default=1e-6
        Accept a pair when ‖A v - λ v‖ <= tol·|λ|.
    generator : torch.Generator, optional
        Source of the random start vectors; a generator seeded with 0 when omitted.

    Returns
    -------
    eigenvalues : Tensor
        Shape (k,), in the order found (by decreasing |λ|).
    eigenvectors : Tensor
        Shape (P, k), orthonormal columns.

    Raises
    ------
    InvalidParameterError
        If ``k``, ``max_iter``, ``tol`` or ``like`` are out of range.

    Warns
    -----
    ConvergenceWarning
        If a pair misses ``tol`` after ``max_iter`` products; its last iterate is returned.

    Notes
    -----
    Cost: at most k·max_iter products and O(k·P) memory. See the module docstring.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, -4.0, 2.0], dtype=torch.float64))
    >>> values, vectors = power_iteration(lambda v: A @ v, torch.zeros(3, dtype=torch.float64))
    >>> round(values.item(), 6), vectors.shape
    (-4.0, torch.Size([3, 1]))
    """
    n, dtype, device = vector_spec(like)
    check_k(k, n)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol)
    generator = make_generator(0) if generator is None else generator
    U = torch.zeros(n, 0, dtype=dtype, device=device)  # (P, j)
    values = []
    for _ in range(k):
        v0 = random_vector(n, dtype, device, generator)  # (P,)
        value, u = _dominant_pair(matvec, v0, U, max_iter=max_iter, tol=tol)
        values.append(value)
        U = torch.cat([U, u[:, None]], dim=1)  # (P, j + 1)
    return torch.tensor(values, dtype=dtype, device=device), U


def _project_out(x: Tensor, U: Tensor) -> Tensor:
    """Return Π x = x - U (Uᵀ x), twice for numerical orthogonality."""
    for _ in range(2):
        x = x - U @ (U.T @ x)  # (P,)
    return x


def _dominant_pair(
    matvec: MatVec, v: Tensor, U: Tensor, *, max_iter: int, tol: float
) -> tuple[float, Tensor]:
    """Iterate v ← Π A v / ‖Π A v‖ from ``v`` until ‖r‖ <= tol·|λ|; return (λ, v)."""
    v = _project_out(v, U)
    v = v / v.norm()  # (P,)
    value, residual = 0.0, float("inf")
    for _ in range(max_iter):
        w = _project_out(matvec(v), U)  # (P,) Π A v
        value = float(torch.dot(v, w))  # Rayleigh quotient vᵀ A v
        residual = float((w - value * v).norm())
        if residual <= tol * abs(value):  # also catches Π A v = 0, an eigenvalue 0
            return value, v
        v = w / w.norm()
    warnings.warn(
        f"power iteration did not converge: after max_iter={max_iter} products the "
        f"relative residual is {residual / max(abs(value), 1e-300):.2e} > tol={tol:g}. "
        "Raise max_iter, or use method='lanczos', which converges much faster when "
        "eigenvalues are close.",
        ConvergenceWarning,
        stacklevel=3,
    )
    return value, v
