"""Lanczos with full reorthogonalisation: extreme eigenpairs of a symmetric operator.

Symbols
-------
A (P, P)       symmetric operator, seen only through ``matvec``
q_j (P,)       Lanczos vectors, orthonormal; Q_m = [q_0 .. q_{m-1}] stored as rows (m, P)
α_j, β_j       diagonal and off-diagonal of the tridiagonal T_m = Q_mᵀ A Q_m (m, m)
θ_i, s_i       Ritz values and eigenvectors of T_m; Ritz vectors y_i = Q_mᵀ s_i
r_i            residual bound ‖A y_i - θ_i y_i‖ = β_m |s_i[m-1]|

Maths
-----
After m products the Krylov space span{q_0, A q_0, .., A^{m-1} q_0} holds the best
approximations to the extreme eigenvalues any m products can give; the extreme Ritz values
converge first and far faster than power iteration when eigenvalues cluster.

1. w = A q_j, α_j = q_jᵀ w.
2. Orthogonalise w against every q_0 .. q_j, twice (full reorthogonalisation; it
   subsumes the three-term recurrence and prevents spurious copies of converged θ).
3. β_j = ‖w‖, q_{j+1} = w / β_j. If β_j <= 1000·ε·‖A‖ the space is invariant: restart with a
   random vector orthogonal to Q and set β_j = 0 (this finds repeated eigenvalues).
4. Stop when the wanted Ritz pairs have r_i <= tol·max|θ| (never right after a restart,
   whose residuals are exactly zero), or when m reaches max_iter or P.

Cost: m products, O(m²P) for reorthogonalisation, O(mP) memory for Q, and an (m, m)
eigendecomposition per step. Like every Krylov method it may miss an eigenvalue whose
eigenvector is orthogonal to the start; a random start makes that improbable.

References
----------
C. Lanczos, J. Res. Nat. Bur. Standards 45, 1950. B. N. Parlett, "The Symmetric Eigenvalue
Problem", SIAM 1998, ch. 13.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from deepdx._random import make_generator
from deepdx.curvature._checks import check_choice, check_k, check_positive
from deepdx.curvature._params import random_vector, vector_spec
from deepdx.curvature.operators import MatVec
from deepdx.exceptions import ConvergenceWarning, InvalidParameterError

__all__ = ["WHICH", "lanczos", "ritz_values"]

WHICH = ("largest", "smallest", "magnitude")
"""Which end of the spectrum: largest λ, smallest λ, or largest |λ|."""

_BREAKDOWN = 1e3
"""β_j <= _BREAKDOWN·ε·‖A‖ counts as zero (rounding after reorthogonalisation is ~ε·‖A‖)."""

# (theta (m,), S (m, m), beta_m) -> stop?
_Stop = Callable[[Tensor, Tensor, float], bool]


@dataclass
class _Krylov:
    """What a Lanczos run leaves: T's entries, the basis, and the last β (residual scale)."""

    alpha: list[float]
    beta: list[float]
    Q: Tensor  # (m, P)
    last_beta: float


def lanczos(
    matvec: MatVec,
    like: int | Tensor,
    k: int = 1,
    *,
    which: str = "largest",
    max_iter: int = 200,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return ``k`` extreme eigenpairs of a symmetric operator by the Lanczos method.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,); A must be symmetric.
    like : int or Tensor
        P, or an example vector of shape (P,) whose dtype and device are used (values are
        ignored). An int means the default dtype on the CPU.
    k : int, default=1
        Number of eigenpairs, 1 <= k <= min(P, max_iter).
    which : {"largest", "smallest", "magnitude"}, default="largest"
        The k largest λ, the k smallest λ, or the k largest |λ|.
    max_iter : int, default=200
        Largest Krylov dimension m (products); capped at P, where the result is exact.
    tol : float, default=1e-6
        Stop when every wanted Ritz pair has ‖A y - θ y‖ <= tol·max|θ|.
    generator : torch.Generator, optional
        Source of the random start (and restart) vectors; seeded with 0 when omitted.

    Returns
    -------
    eigenvalues : Tensor
        Shape (k,): decreasing for "largest", increasing for "smallest", by decreasing |λ|
        for "magnitude".
    eigenvectors : Tensor
        Shape (P, k), orthonormal Ritz vectors, column i for eigenvalue i.

    Raises
    ------
    InvalidParameterError
        If ``k``, ``which``, ``max_iter``, ``tol`` or ``like`` are invalid.

    Warns
    -----
    ConvergenceWarning
        If the wanted pairs miss ``tol`` after ``max_iter`` < P products.

    Notes
    -----
    See the module docstring for the steps and their cost.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    >>> values, vectors = lanczos(lambda v: A @ v, torch.zeros(10, dtype=torch.float64), k=2)
    >>> values.round(decimals=6).tolist(), vectors.shape
    ([10.0, 9.0], torch.Size([10, 2]))
    """
    n, dtype, device = vector_spec(like)
    _check_arguments(k, n, which=which, max_iter=max_iter, tol=tol)
    generator = make_generator(0) if generator is None else generator

    def stop(theta: Tensor, S: Tensor, last_beta: float) -> bool:
        return len(theta) >= k and _residual(theta, S, last_beta, k, which) <= tol

    run = _run(matvec, (n, dtype, device), generator, max_iter=max_iter, stop=stop)
    theta, S = _ritz(run)  # (m,), (m, m)
    residual = _residual(theta, S, run.last_beta, k, which)
    if residual > tol and len(theta) < n:
        warnings.warn(
            f"Lanczos did not converge: after max_iter={max_iter} products the wanted Ritz "
            f"pairs have relative residual {residual:.2e} > tol={tol:g}. Raise max_iter "
            "(the Krylov dimension) or loosen tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    idx = _select(theta, k, which)  # (k,)
    vectors = run.Q.T @ S[:, idx].to(dtype=dtype, device=device)  # (P, k)
    return theta[idx].to(dtype=dtype, device=device), vectors


def ritz_values(
    matvec: MatVec,
    like: int | Tensor,
    *,
    max_iter: int = 200,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return all Ritz values of a ``max_iter``-step Lanczos run, in increasing order.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on flat vectors of shape (P,); A symmetric.
    like : int or Tensor
        P, or an example vector of shape (P,) (dtype and device are used).
    max_iter : int, default=200
        Krylov dimension m, capped at P.
    generator : torch.Generator, optional
        Source of the random start vector; seeded with 0 when omitted.

    Returns
    -------
    Tensor
        θ of shape (m,), float64 on the CPU. They interlace the eigenvalues of A and lie in
        [λ_min, λ_max]; with m = P they are the eigenvalues (distinct ones, plus copies
        found after restarts).

    Raises
    ------
    InvalidParameterError
        If ``max_iter`` or ``like`` is invalid.

    Notes
    -----
    No early stop: every step of the run is kept. Cost as :func:`lanczos` with m steps.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    >>> ritz_values(lambda v: A @ v, torch.zeros(3, dtype=torch.float64)).round(decimals=9)
    tensor([1., 2., 3.], dtype=torch.float64)
    """
    spec = vector_spec(like)
    check_positive("max_iter", max_iter, integer=True)
    generator = make_generator(0) if generator is None else generator
    theta, _ = _ritz(_run(matvec, spec, generator, max_iter=max_iter, stop=None))
    return theta


# ---------------------------------------------------------------------------------------
# The Lanczos kernel
# ---------------------------------------------------------------------------------------


def _run(
    matvec: MatVec,
    spec: tuple[int, torch.dtype, torch.device],
    generator: torch.Generator,
    *,
    max_iter: int,
    stop: _Stop | None,
) -> _Krylov:
    """Run Lanczos steps 1-4 of the module docstring; return T's entries and the basis Q."""
    n, dtype, device = spec
    m_max = min(max_iter, n)
    Q = torch.zeros(min(m_max, 32), n, dtype=dtype, device=device)  # (capacity, P)
    alpha: list[float] = []
    beta: list[float] = []
    q = _unit_orthogonal(random_vector(n, dtype, device, generator), Q[:0])  # (P,)
    a_norm, b = 0.0, 0.0
    for j in range(m_max):
        Q = _ensure_rows(Q, j + 1, m_max)
        Q[j] = q
        # Step 1: w = A q_j, α_j = q_jᵀ w
        w = matvec(q)  # (P,)
        a_norm = max(a_norm, float(w.norm()))
        alpha.append(float(torch.dot(q, w)))
        # Step 2: full reorthogonalisation against q_0 .. q_j, twice
        w = _project_out(w, Q[: j + 1])  # (P,)
        b = float(w.norm())
        # Step 3: invariant subspace reached? (a zero operator restarts at every step)
        restart = b <= _BREAKDOWN * torch.finfo(dtype).eps * a_norm
        # Step 4: convergence test on the wanted Ritz pairs, unless residuals are void
        checked = not restart or a_norm == 0.0
        if j + 1 == m_max or (stop is not None and checked and stop(*_eigh(alpha, beta), b)):
            break
        if restart:
            q, b = _unit_orthogonal(random_vector(n, dtype, device, generator), Q[: j + 1]), 0.0
        else:
            q = w / b
        beta.append(b)
    return _Krylov(alpha, beta, Q[: len(alpha)], b)


def _ensure_rows(Q: Tensor, rows: int, m_max: int) -> Tensor:
    """Return Q with at least ``rows`` rows, doubling its capacity up to ``m_max``."""
    if Q.shape[0] >= rows:
        return Q
    extra = min(Q.shape[0], m_max - Q.shape[0])
    return torch.cat([Q, Q.new_zeros(extra, Q.shape[1])])  # (capacity, P)


def _project_out(x: Tensor, Q: Tensor) -> Tensor:
    """Return x minus its projection on the rows of Q, twice ("twice is enough")."""
    for _ in range(2):
        x = x - Q.T @ (Q @ x)  # (P,)
    return x


def _unit_orthogonal(x: Tensor, Q: Tensor) -> Tensor:
    """Return x orthogonalised against the rows of Q and normalised."""
    x = _project_out(x, Q)  # (P,)
    return x / x.norm()


def _eigh(alpha: list[float], beta: list[float]) -> tuple[Tensor, Tensor]:
    """Return the eigenvalues (m,) increasing and eigenvectors (m, m) of the tridiagonal T."""
    theta, S = scipy.linalg.eigh_tridiagonal(np.asarray(alpha), np.asarray(beta))
    return torch.from_numpy(theta), torch.from_numpy(S)  # (m,), (m, m)


def _ritz(run: _Krylov) -> tuple[Tensor, Tensor]:
    """Return the Ritz values (m,) and T's eigenvectors (m, m) of a finished run."""
    return _eigh(run.alpha, run.beta)


def _select(theta: Tensor, k: int, which: str) -> Tensor:
    """Return the indices (k,) of the wanted Ritz values, in the order they are reported."""
    if which == "largest":
        return torch.argsort(theta, descending=True)[:k]
    if which == "smallest":
        return torch.argsort(theta)[:k]
    return torch.argsort(theta.abs(), descending=True)[:k]


def _residual(theta: Tensor, S: Tensor, last_beta: float, k: int, which: str) -> float:
    """Return max_i r_i / max|θ| over the wanted pairs, r_i = β_m |s_i[m-1]|."""
    idx = _select(theta, k, which)  # (k,)
    r = last_beta * S[-1, idx].abs()  # (k,)
    r_max, scale = float(r.max()), float(theta.abs().max())
    if scale == 0.0:
        return math.inf if r_max > 0.0 else 0.0  # zero operator: exact once r = 0
    return r_max / scale


def _check_arguments(k: int, n: int, *, which: str, max_iter: int, tol: float) -> None:
    """Validate the arguments of :func:`lanczos`."""
    check_k(k, n)
    check_choice("which", which, WHICH)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol)
    if max_iter < k:
        raise InvalidParameterError(
            f"`max_iter` must be at least k={k}, since each Lanczos step adds one Ritz "
            f"value; got max_iter={max_iter}. Raise max_iter."
        )
