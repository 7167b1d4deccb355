"""Dense curvature matrices for small models: the Hessian and the Gauss-Newton matrix.

A dense (P, P) matrix costs P² memory and P operator products, so these functions refuse
models larger than ``max_params``; for bigger ones use the matrix-free operators
(:func:`~deepdx.curvature.hessian_operator`, :func:`~deepdx.curvature.ggn_operator`)
with an eigensolver or conjugate gradients.

Symbols
-------
P          number of parameters, Σ numel(θ_i)
H (P, P)   Hessian ∇²_θ L
G (P, P)   Gauss-Newton matrix Jᵀ H_L J
e_i (P,)   i-th standard basis vector; column i of a matrix A is A e_i
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from deepdx.curvature._checks import check_params, check_positive
from deepdx.curvature.ggn import ggn_operator
from deepdx.curvature.hessian_vector import hessian_operator
from deepdx.curvature.operators import MatVec
from deepdx.exceptions import InvalidParameterError

__all__ = ["DEFAULT_MAX_PARAMS", "gauss_newton_matrix", "hessian", "matrix_of"]

DEFAULT_MAX_PARAMS = 4096
"""Largest P for which a dense (P, P) curvature matrix is built by default (128 MiB in float64)."""


def hessian(
    loss_fn: Callable[[], Tensor],
    params: Sequence[Tensor],
    *,
    max_params: int = DEFAULT_MAX_PARAMS,
) -> Tensor:
    """Return the dense Hessian of ``loss_fn()`` with respect to all of ``params``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params``.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``, ordered as :func:`flatten` orders them.
    max_params : int, default=4096
        Refuse models with more than this many parameters.

    Returns
    -------
    Tensor
        H of shape (P, P), H[i, j] = ∂²L / ∂θ_i ∂θ_j, dtype and device of ``params``.

    Raises
    ------
    InvalidParameterError
        If P > ``max_params``, or as :func:`hessian_operator`.

    Notes
    -----
    Column i is H e_i from one backward pass through the retained gradient graph, so the
    cost is one gradient evaluation plus P second-order backward passes; memory P².

    Examples
    --------
    >>> import torch
    >>> W = torch.ones(2, 2, requires_grad=True)
    >>> b = torch.ones(2, requires_grad=True)
    >>> hessian(lambda: ((W @ b) ** 2).sum(), [W, b]).shape
    torch.Size([6, 6])
    """
    params = check_params(params)
    _check_max_params("hessian", params, max_params)
    return matrix_of(hessian_operator(loss_fn, params), _example(params))


def gauss_newton_matrix(
    outputs_fn: Callable[[], Tensor],
    loss_on_outputs: Callable[[Tensor], Tensor],
    params: Sequence[Tensor],
    *,
    max_params: int = DEFAULT_MAX_PARAMS,
) -> Tensor:
    """Return the dense Gauss-Newton matrix G = Jᵀ H_L J.

    Parameters
    ----------
    outputs_fn : callable
        ``outputs_fn() -> z``, network outputs of shape (B, K) computed from ``params``.
    loss_on_outputs : callable
        ``loss_on_outputs(z) -> L``, a scalar tensor.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``.
    max_params : int, default=4096
        Refuse models with more than this many parameters.

    Returns
    -------
    Tensor
        G of shape (P, P), symmetric positive semi-definite when L is convex in z.

    Raises
    ------
    InvalidParameterError
        If P > ``max_params``, or as :func:`ggn_operator`.

    Notes
    -----
    Column i is G e_i from :func:`ggn_operator`, three backward passes each; memory P².

    Examples
    --------
    >>> import torch
    >>> w = torch.ones(3, requires_grad=True)
    >>> X = torch.eye(4, 3)
    >>> G = gauss_newton_matrix(lambda: X @ w, lambda z: 0.5 * (z**2).sum(), [w])  # XᵀX
    >>> G
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]])
    """
    params = check_params(params)
    _check_max_params("gauss_newton_matrix", params, max_params)
    operator = ggn_operator(outputs_fn, loss_on_outputs, params)
    return matrix_of(operator, _example(params))


def matrix_of(matvec: MatVec, like: Tensor) -> Tensor:
    """Return the dense matrix of a matrix-free operator, one column per basis vector.

    Parameters
    ----------
    matvec : callable
        ``matvec(v) -> A v`` on vectors of shape (P,).
    like : Tensor
        Example vector of shape (P,); its dtype and device are used, its values ignored.

    Returns
    -------
    Tensor
        A of shape (P, P) with A[:, i] = matvec(e_i).

    Notes
    -----
    P calls of ``matvec``; no size limit is applied here, so check P first.

    Examples
    --------
    >>> import torch
    >>> matrix_of(lambda v: 2 * v, torch.zeros(2))
    tensor([[2., 0.],
            [0., 2.]])
    """
    n = like.numel()
    A = like.new_empty(n, n)  # (P, P)
    e = like.new_zeros(n)  # (P,)
    for i in range(n):
        e[i] = 1.0
        A[:, i] = matvec(e)
        e[i] = 0.0
    return A


def _example(params: Sequence[Tensor]) -> Tensor:
    """Return a zero flat vector with the total size, dtype and device of params."""
    n = sum(p.numel() for p in params)
    return params[0].new_zeros(n)  # (P,)


def _check_max_params(what: str, params: Sequence[Tensor], max_params: int) -> None:
    """Raise a teaching error when a dense (P, P) matrix would be too large."""
    check_positive("max_params", max_params, integer=True)
    n = sum(p.numel() for p in params)
    if n <= max_params:
        return
    mib = n * n * params[0].element_size() / 2**20
    raise InvalidParameterError(
        f"{what} builds a dense (P, P) matrix, so it accepts at most max_params={max_params} "
        f"parameters; got P={n} ({mib:,.0f} MiB and {n} operator products). Use the "
        "matrix-free products instead: hvp / hessian_operator or ggn_vp / ggn_operator, "
        "top_eigenvalues for the spectrum, and Hessian-free optimisation (conjugate "
        "gradients on ggn_vp) for Newton steps; or raise max_params if it fits in memory."
    )
