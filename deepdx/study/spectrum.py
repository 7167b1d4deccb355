"""The curvature at a point: top Hessian eigenvalue, smallest eigenvalue, condition number.

A small model gets its dense Hessian and exact eigenvalues; a larger one a Lanczos run
of m Hessian-vector products (:func:`deepdx.curvature.ritz_values`) on a fixed probe batch
of rows. The extreme Ritz values converge first, the top one within a few percent after
20-30 steps on a net; the smallest converges last, so λ_min is an over-estimate and
κ = λ_max / λ_min+ a lower bound.

Symbols
-------
==========  ==========================================================================
``H``       (P, P) Hessian of the objective on the probe rows
``λ_max``   largest eigenvalue of H; a fixed-step method needs lr < 2/λ_max
``λ_min``   smallest eigenvalue; < 0 means H is indefinite (a saddle or a non-convex
            region), and then no condition number is reported
``κ``       λ_max / λ_min+ with λ_min+ the smallest eigenvalue above 10⁻¹⁰ λ_max (the
            null space of an over-parameterised model does not count)
==========  ==========================================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from deepdx.curvature import hessian, hessian_operator, ritz_values
from deepdx.study.problem import Problem

__all__ = [
    "DENSE_MAX_PARAMS",
    "LANCZOS_STEPS",
    "PROBE_ROWS",
    "CurvatureSummary",
    "measure_curvature",
]

DENSE_MAX_PARAMS = 1024
"""Models with at most this many parameters get the dense Hessian (P products, exact)."""
LANCZOS_STEPS = 30
"""m, the Hessian-vector products of a Lanczos estimate."""
PROBE_ROWS = 2048
"""Rows of the fixed batch the curvature of a larger data set is measured on. The Hessian
of a subset differs from the full one: at a full-batch minimum of the MLP on digits, 512
of 1,258 rows give a negative λ_min, all rows a positive one. 2,048 covers the built-in
problems' default data whole (digits' 1,258 rows, the autoencoder's 1,000 images)."""
NULL_RTOL = 1e-10
"""Eigenvalues within NULL_RTOL·λ_max of zero count as zero (null space, rounding)."""


@dataclass(frozen=True)
class CurvatureSummary:
    """The Hessian spectrum's extremes at one point.

    Attributes
    ----------
    lambda_max, lambda_min : float
        Largest and smallest eigenvalue (Ritz values when ``method == "lanczos"``).
    condition : float or None
        κ = λ_max / λ_min+, None when H is indefinite or has no positive eigenvalue.
    method : str
        ``"dense"`` (exact eigenvalues) or ``"lanczos"``.
    products : int
        Hessian-vector products spent.
    rows : int
        Rows of the data the Hessian was taken on (1 for a plain function).
    note : str
        What the numbers mean here, e.g. that κ is a lower bound.
    """

    lambda_max: float
    lambda_min: float
    condition: float | None
    method: str
    products: int
    rows: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict."""
        return asdict(self)


def measure_curvature(
    problem: Problem,
    model: nn.Module,
    *,
    lanczos_steps: int = LANCZOS_STEPS,
    probe_rows: int = PROBE_ROWS,
    dense_max_params: int = DENSE_MAX_PARAMS,
) -> CurvatureSummary:
    """Return λ_max, λ_min and κ of the Hessian of ``problem`` at ``model``'s parameters.

    Parameters
    ----------
    problem : Problem
        The objective.
    model : nn.Module
        A module of ``problem`` at the point to measure.
    lanczos_steps : int, default=30
        m, the Krylov dimension when the Hessian is too large to build.
    probe_rows : int, default=2048
        Take the Hessian on a fixed random batch of this many rows (all rows if fewer).
    dense_max_params : int, default=1024
        Build the dense Hessian up to this many parameters.

    Returns
    -------
    CurvatureSummary

    Notes
    -----
    Cost: P Hessian-vector products (dense) or m (Lanczos), each about two gradient
    evaluations on the probe rows, plus O(P³) for the dense eigenvalues.

    Examples
    --------
    >>> from deepdx.study.problems import QuadraticProblem
    >>> problem = QuadraticProblem(dim=5, condition=1e3)
    >>> summary = measure_curvature(problem, problem.init_model())
    >>> round(summary.lambda_max, 6), round(summary.condition, 6), summary.method
    (1000.0, 1000.0, 'dense')
    """
    rows = problem.probe_rows(probe_rows)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    n_rows = problem.n_samples if rows is None else len(rows)

    def loss_fn() -> Tensor:
        return problem.loss(model, rows)

    if n_params <= dense_max_params:
        eigenvalues = torch.linalg.eigvalsh(hessian(loss_fn, params, max_params=n_params))
        method, products = "dense", n_params
    else:
        operator = hessian_operator(loss_fn, params)
        like = params[0].new_zeros(n_params)  # (P,)
        eigenvalues = ritz_values(operator, like, max_iter=lanczos_steps)  # (m,)
        method, products = "lanczos", min(lanczos_steps, n_params)
    summary = _summary(eigenvalues, method=method, products=products, rows=n_rows)
    if n_rows < problem.n_samples:
        summary = replace(summary, note=f"{summary.note}; on {n_rows} of {problem.n_samples} rows")
    return summary


def _summary(eigenvalues: Tensor, *, method: str, products: int, rows: int) -> CurvatureSummary:
    """Return the summary of eigenvalues (or Ritz values) (m,), with the note that fits."""
    lam_max, lam_min = float(eigenvalues.max()), float(eigenvalues.min())
    finite = math.isfinite(lam_max) and math.isfinite(lam_min)
    floor = NULL_RTOL * abs(lam_max)
    positive = eigenvalues[eigenvalues > floor]
    condition = None
    if not finite:
        note = "non-finite Hessian entries: the point is not finite"
    elif lam_min < -floor:
        note = "indefinite Hessian (λ_min < 0): no condition number"
    elif positive.numel() == 0:
        note = "no positive curvature: no condition number"
    else:
        condition = lam_max / float(positive.min())
        note = "exact" if method == "dense" else "κ from Ritz values: a lower bound"
    if finite and method == "lanczos":
        note += f"; Lanczos, {products} steps"
    return CurvatureSummary(lam_max, lam_min, condition, method, products, rows, note)
