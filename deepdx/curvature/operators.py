"""Matrix-free operators: a symmetric matrix A seen only through v ↦ A v on flat vectors.

Every curvature operator in this package (Hessian, Gauss-Newton) is a :data:`MatVec`, so the
same solvers (conjugate gradients) and eigensolvers (power iteration, Lanczos) serve them all.

Symbols
-------
A (P, P)   a symmetric operator, never formed
v (P,)     a flat vector, see :func:`deepdx.curvature.flatten`
λ          damping (Tikhonov / Levenberg-Marquardt), or a spectral shift
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from deepdx.curvature._checks import check_nonnegative

__all__ = ["MatVec", "damped"]

MatVec = Callable[[Tensor], Tensor]
"""A linear operator on flat vectors: ``matvec(v) -> A v``, both of shape (P,)."""


def damped(matvec: MatVec, damping: float) -> MatVec:
    """Return the operator v ↦ (A + λ I) v.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,).
    damping : float
        λ >= 0 added to the diagonal.

    Returns
    -------
    callable
        ``v -> A v + λ v``, shape (P,) to (P,).

    Raises
    ------
    InvalidParameterError
        If ``damping`` is negative or not a number.

    Notes
    -----
    Hessian-free optimisation solves (G + λ I) p = -g by conjugate gradients; the damping λ
    keeps the system positive definite and the step inside the region where the quadratic
    model is trusted (Martens 2010, Sec. 4.1). Adding λ shifts every eigenvalue by λ, which
    eigensolvers also use as a spectral shift. Cost: one ``matvec`` plus O(P).

    References
    ----------
    J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, 2.0]))
    >>> op = damped(lambda v: A @ v, 0.5)
    >>> op(torch.ones(2))
    tensor([1.5000, 2.5000])
    """
    check_nonnegative("damping", damping)

    def damped_matvec(v: Tensor) -> Tensor:
        return matvec(v) + damping * v  # (P,)

    return damped_matvec
