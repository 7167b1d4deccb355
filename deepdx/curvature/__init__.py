"""Curvature products: Hessian- and Gauss-Newton-vector products, dense matrices, spectra.

Pure functions on tensors, written once and shared by the second-order optimizers (Newton,
Hessian-free) and by the diagnosis monitors (top Hessian eigenvalue against the 2/lr
stability limit, condition number). They know nothing of models: inputs are a list of
parameter tensors and closures that compute a loss or network outputs from them.

Symbols
-------
θ (P,)        all parameters flattened (:func:`flatten`); ``params`` is θ split in tensors
L             scalar loss; g = ∇_θ L
H (P, P)      Hessian ∇²_θ L
z (B, K)      network outputs; J = ∂z/∂θ (BK, P); H_L = ∇²_z L (BK, BK)
G (P, P)      generalised Gauss-Newton matrix Jᵀ H_L J
λ             damping, G + λ I

Contents
--------
=======================  ===================================================================
``hvp``, ``hvp_flat``    H v by double backward (``functional_hvp``: ``torch.func``)
``hessian_operator``     v ↦ H v on flat vectors, graph built once (for Lanczos, CG)
``ggn_vp``               (G + λ I) v by the reverse-mode R-op (``functional_ggn_vp``: forward)
``ggn_operator``         v ↦ G v on flat vectors, graph built once
``damped``               v ↦ (A + λ I) v for any operator
``hessian``              dense H (P, P) for small models (``max_params``)
``gauss_newton_matrix``  dense G (P, P) for small models; ``matrix_of`` for any operator
``top_eigenvalues``      extreme eigenpairs by Lanczos or power iteration
``lanczos``              Lanczos with full reorthogonalisation; ``ritz_values``
``power_iteration``      dominant eigenpairs with deflation
``hessian_top_eigenvalue``  λ_max of H, to compare with 2 / lr
``condition_estimate``   λ_max / λ_min+ by Lanczos
``flatten``, ``unflatten``  parameter lists to flat vectors and back
=======================  ===================================================================
"""

from __future__ import annotations

from deepdx.curvature._params import flatten, unflatten
from deepdx.curvature.dense import (
    DEFAULT_MAX_PARAMS,
    gauss_newton_matrix,
    hessian,
    matrix_of,
)
from deepdx.curvature.eigen import (
    METHODS,
    condition_estimate,
    hessian_top_eigenvalue,
    top_eigenvalues,
)
from deepdx.curvature.ggn import functional_ggn_vp, ggn_operator, ggn_vp
from deepdx.curvature.hessian_vector import functional_hvp, hessian_operator, hvp, hvp_flat
from deepdx.curvature.krylov import WHICH, lanczos, ritz_values
from deepdx.curvature.operators import MatVec, damped
from deepdx.curvature.power import power_iteration

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "METHODS",
    "WHICH",
    "MatVec",
    "condition_estimate",
    "damped",
    "flatten",
    "functional_ggn_vp",
    "functional_hvp",
    "gauss_newton_matrix",
    "ggn_operator",
    "ggn_vp",
    "hessian",
    "hessian_operator",
    "hessian_top_eigenvalue",
    "hvp",
    "hvp_flat",
    "lanczos",
    "matrix_of",
    "power_iteration",
    "ritz_values",
    "top_eigenvalues",
    "unflatten",
]
