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
E (k, P)   a chunk of k basis vectors as rows, e_s .. e_{s+k-1}
k          chunk size: how many Hessian-vector products one batched backward computes

Batched Hessian-vector products
-------------------------------
:func:`hessian` computes the columns H E_chunkᵀ of k basis vectors in one backward pass
through the retained gradient graph, vectorised over the chunk with ``torch.vmap``
(``torch.autograd.grad(..., is_grads_batched=True)``): the vector-Jacobian product of
g = ∇_θ L with each row of E. Under ``vmap``, a matrix product of an unbatched matrix
(the data X of a linear layer) with a batch of matrices becomes ``bmm`` over a stride-0
expanded X, which on a CPU streams X from memory once per basis vector; while the chunk
is computed, :class:`_FoldExpandedBmm` rewrites every such ``bmm`` into one matrix
product (with the batch folded into the rows or columns), the same numbers up to
rounding. On the 7,850-parameter logistic regression of
``benchmarks/logreg_optimizers.py`` (3,500 samples, one CPU thread) the Hessian takes
32 s this way against 94 s with one product per column, which stays available as
``chunk_size=1`` and is the default below 1,024 parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from deepdx.curvature._checks import check_params, check_positive, check_scalar
from deepdx.curvature.ggn import ggn_operator
from deepdx.curvature.hessian_vector import hessian_operator
from deepdx.curvature.operators import MatVec
from deepdx.exceptions import InvalidParameterError

__all__ = ["DEFAULT_MAX_PARAMS", "gauss_newton_matrix", "hessian", "matrix_of"]

DEFAULT_MAX_PARAMS = 4096
"""Largest P for which a dense (P, P) curvature matrix is built by default (128 MiB in float64)."""

_CHUNK_BYTES = 32 * 2**20
"""Memory for one chunk's basis vectors and products, 2 k P entries; sets the default k."""

_MIN_BATCHED = 1024
"""Below this P the default is one column per backward pass (see :func:`hessian`)."""


def hessian(
    loss_fn: Callable[[], Tensor],
    params: Sequence[Tensor],
    *,
    max_params: int = DEFAULT_MAX_PARAMS,
    chunk_size: int | None = None,
) -> Tensor:
    """Return the dense Hessian of ``loss_fn()`` with respect to all of ``params``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params``. It is called once.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``, ordered as :func:`flatten` orders them.
    max_params : int, default=4096
        Refuse models with more than this many parameters.
    chunk_size : int, optional
        Hessian-vector products per batched backward pass, k >= 1. By default 1 for
        P < 1,024, else the largest k whose basis vectors and products, 2 k P entries,
        fit in 32 MiB (k = 267 for P = 7,850 in float64). 1 computes one column per
        backward pass without ``vmap``, also for losses whose backward cannot be
        vectorised.

    Returns
    -------
    Tensor
        H of shape (P, P), H[i, j] = ∂²L / ∂θ_i ∂θ_j, dtype and device of ``params``.
        Column i is H e_i as computed; it is symmetric up to rounding.

    Raises
    ------
    InvalidParameterError
        If P > ``max_params``, ``chunk_size`` is not an int >= 1, or as
        :func:`hessian_operator`.

    Notes
    -----
    One gradient evaluation with its graph kept (``create_graph=True``), then P / k
    backward passes through that graph, each vectorised over k basis vectors (module
    docstring). Memory: P² for H, 2 k P for a chunk, plus the backward's intermediate
    tensors, k times those of one Hessian-vector product (for a linear layer on n
    samples with K outputs, k · n · K entries): lower ``chunk_size`` if that is tight.
    The first ``vmap`` in a process imports ``torch._dynamo`` (seconds), which small
    models do not recoup, hence one column at a time below P = 1,024.

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
    like = _example(params)
    k = _chunk_size(chunk_size, like)
    if k == 1:
        return matrix_of(hessian_operator(loss_fn, params), like)
    return _batched_hessian(loss_fn, params, like, chunk_size=k)


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


def _chunk_size(chunk_size: int | None, like: Tensor) -> int:
    """Return k: ``chunk_size``, else 1 below _MIN_BATCHED or the k that fits _CHUNK_BYTES."""
    n = like.numel()
    if chunk_size is not None:
        check_positive("chunk_size", chunk_size, integer=True)
        return min(chunk_size, n)
    if n < _MIN_BATCHED:
        return 1
    return max(1, min(n, _CHUNK_BYTES // (2 * n * like.element_size())))


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
        f"gradients on ggn_vp) for Newton steps; or pass max_params={n} if it fits in memory."
    )


# ----------------------------------------------------------------------------------------
# Batched Hessian-vector products
# ----------------------------------------------------------------------------------------


def _batched_hessian(
    loss_fn: Callable[[], Tensor], params: list[Tensor], like: Tensor, *, chunk_size: int
) -> Tensor:
    """Return H (P, P), filling columns s .. s+k-1 from one vmapped backward per chunk."""
    n = like.numel()
    with torch.enable_grad():
        loss = check_scalar(loss_fn(), "loss_fn()")
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    H = like.new_zeros(n, n)  # (P, P)
    if not live:
        return H  # L is at most linear in θ
    for start in range(0, n, chunk_size):
        k = min(chunk_size, n - start)
        rows = _basis_chunk(like, params, start, k)  # (k, *θ_i.shape) each
        with _FoldExpandedBmm():
            hv = torch.autograd.grad(
                [grads[i] for i in live],
                params,
                grad_outputs=[rows[i] for i in live],
                retain_graph=True,
                is_grads_batched=True,
                allow_unused=True,
            )
        blocks = [
            like.new_zeros(k, p.numel()) if h is None else h.reshape(k, -1)
            for h, p in zip(hv, params, strict=True)
        ]  # (k, numel(θ_i)) each
        H[:, start : start + k] = torch.cat(blocks, dim=1).T  # (P, k)
    return H


def _basis_chunk(like: Tensor, params: Sequence[Tensor], start: int, k: int) -> list[Tensor]:
    """Return E (k, P), rows e_start .. e_{start+k-1}, split and shaped like params."""
    E = like.new_zeros(k, like.numel())  # (k, P)
    E[:, start : start + k].fill_diagonal_(1.0)
    pieces = E.split([p.numel() for p in params], dim=1)  # (k, numel(θ_i)) each
    return [piece.reshape(k, *p.shape) for piece, p in zip(pieces, params, strict=True)]


class _FoldExpandedBmm(TorchDispatchMode):
    """Compute ``bmm`` with a stride-0 (expanded) operand as one matrix product.

    ``vmap`` of ``X @ V`` with X unbatched gives ``bmm(X.expand(k, m, n), V)`` (k, m, p);
    here that is ``X @ [V_1 .. V_k]``, one (m, n) @ (n, k p) product, and
    ``bmm(U, X.expand(k, n, p))`` is ``[U_1; ..; U_k] @ X``, one (k m, n) @ (n, p) product.
    """

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if func is torch.ops.aten.bmm.default and not kwargs:
            A, B = args  # (k, m, n), (k, n, p)
            k, m, n = A.shape
            p = B.shape[2]
            if k > 1 and A.stride(0) == 0:
                AB = A[0] @ B.transpose(0, 1).reshape(n, k * p)  # (m, k p)
                return AB.view(m, k, p).transpose(0, 1).contiguous()  # (k, m, p)
            if k > 1 and B.stride(0) == 0:
                return (A.reshape(k * m, n) @ B[0]).view(k, m, p)  # (k, m, p)
        return func(*args, **(kwargs or {}))
