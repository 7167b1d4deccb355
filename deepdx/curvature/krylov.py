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
2. w ← w − α_j q_j − β_{j-1} q_{j-1} (the three-term recurrence), then orthogonalise w once
   more against every q_0 .. q_j (full reorthogonalisation, one classical Gram-Schmidt
   pass). It prevents spurious copies of converged θ; a second pass runs only when the
   first cancelled most of w (‖w‖ fell below ‖w_before‖ / √2: "twice is enough").
3. β_j = ‖w‖, q_{j+1} = w / β_j. If β_j <= 1000·ε·‖A‖ the space is invariant: restart with a
   random vector orthogonal to Q and set β_j = 0 (this finds repeated eigenvalues).
4. Stop when the wanted Ritz pairs have r_i <= tol·max|θ| (never right after a restart,
   whose residuals are exactly zero), or when m reaches max_iter or P.

Cost: m products, about 2·m²·P flops (and reads of Q) for reorthogonalisation, O(mP)
memory for Q, which grows with m (rows are never zero-filled), and an (m, m)
eigendecomposition per step. Like every Krylov method it may miss an eigenvalue whose
eigenvector is orthogonal to the start; a random start makes that improbable.

References
----------
C. Lanczos, J. Res. Nat. Bur. Standards 45, 1950. B. N. Parlett, "The Symmetric Eigenvalue
Problem", SIAM 1998, ch. 13. J. W. Daniel, W. B. Gragg, L. Kaufman, G. W. Stewart,
"Reorthogonalization and stable algorithms for updating the Gram-Schmidt QR factorization",
Math. Comp. 30, 1976 (the second-pass test).
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

_REPEAT = 1 / math.sqrt(2)
"""A Gram-Schmidt pass that leaves less than this share of ‖x‖ is repeated (DGKS test)."""

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
    # rows 0..j hold q_0..q_j; row j + 1 is where w, then q_{j+1}, is formed in place
    Q = torch.empty(min(m_max + 1, 32), n, dtype=dtype, device=device)  # (capacity, P)
    Q[0] = _unit_orthogonal(random_vector(n, dtype, device, generator), Q[:0])  # q_0
    alpha: list[float] = []
    beta: list[float] = []
    a_norm, b = 0.0, 0.0
    for j in range(m_max):
        Q = _ensure_rows(Q, j + 2, m_max + 1)
        q, w = Q[j], Q[j + 1]  # (P,), (P,)
        # Step 1: A q_j, α_j = q_jᵀ A q_j
        Aq = matvec(q)  # (P,) not ours: never written to
        alpha.append(float(torch.dot(q, Aq)))
        # Step 2: w = A q_j − β_{j-1} q_{j-1} − α_j q_j (one pass), then full
        # reorthogonalisation against q_0 .. q_j
        b_prev = beta[-1] if beta else 0.0
        recent = Q[max(j - 1, 0) : j + 1]  # (1 or 2, P) q_{j-1}, q_j
        coef = torch.tensor([b_prev, alpha[-1]][-len(recent) :], dtype=dtype, device=device)
        torch.addmv(Aq, recent.T, coef, alpha=-1.0, out=w)  # (P,)
        del Aq  # freed before the next product, whose output can then reuse its memory
        b, before = _orthogonalise_(w, Q[: j + 1])
        a_norm = max(a_norm, math.hypot(alpha[-1], b_prev, before))  # ‖A q_j‖ <= ‖A‖
        # Step 3: invariant subspace reached? (a zero operator restarts at every step)
        restart = b <= _BREAKDOWN * torch.finfo(dtype).eps * a_norm
        # Step 4: convergence test on the wanted Ritz pairs, unless residuals are void
        checked = not restart or a_norm == 0.0
        if j + 1 == m_max or (stop is not None and checked and stop(*_eigh(alpha, beta), b)):
            break
        if restart:
            w.copy_(random_vector(n, dtype, device, generator))
            _unit_orthogonal(w, Q[: j + 1])
            b = 0.0
        else:
            w.div_(b)  # q_{j+1} = w / β_j
        beta.append(b)
    return _Krylov(alpha, beta, Q[: len(alpha)], b)


def _ensure_rows(Q: Tensor, rows: int, cap: int) -> Tensor:
    """Return Q with at least ``rows`` rows, doubling its capacity up to ``cap`` rows."""
    if Q.shape[0] >= rows:
        return Q
    extra = min(Q.shape[0], cap - Q.shape[0])
    return torch.cat([Q, Q.new_empty(extra, Q.shape[1])])  # (capacity, P)


def _orthogonalise_(x: Tensor, Q: Tensor) -> tuple[float, float]:
    """Project the rows of Q out of x in place; return ‖x‖ after and before.

    One classical Gram-Schmidt pass x ← x − Qᵀc with c = Q x, repeated once when it removed
    most of x (‖x‖ fell below ‖x_before‖ / √2), after which x is orthogonal to working
    precision. With orthonormal rows ‖x_before‖² = ‖c‖² + ‖x_after‖², so no norm is taken
    before the pass.
    """
    if Q.shape[0] == 0:
        norm = float(x.norm())
        return norm, norm
    c = Q @ x  # (j,)
    x.addmv_(Q.T, c, alpha=-1.0)  # (P,) x − Qᵀc
    after = float(x.norm())
    before = math.hypot(float(c.norm()), after)  # ‖x_before‖, by Pythagoras
    if after < _REPEAT * before:  # cancellation: rounding left components along Q
        x.addmv_(Q.T, Q @ x, alpha=-1.0)  # (P,)
        after = float(x.norm())
    return after, before


def _unit_orthogonal(x: Tensor, Q: Tensor) -> Tensor:
    """Return x (a tensor of ours, changed in place) orthogonalised against Q and normalised."""
    norm, _ = _orthogonalise_(x, Q)
    return x.div_(norm)


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
