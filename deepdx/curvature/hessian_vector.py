"""Hessian-vector products by double backward (Pearlmutter's trick), without forming H.

Symbols
-------
L          scalar loss, ``loss_fn()``
θ (P,)     all parameters flattened (``params`` as one vector)
g (P,)     gradient ∇_θ L
H (P, P)   Hessian ∇²_θ L, symmetric, never formed
v (P,)     direction; ``hvp`` takes it split like ``params``

Maths
-----
H v = ∇_θ (g · v): differentiate the scalar g · v once more. The first backward keeps its
graph (``create_graph=True``) so that g is itself differentiable; the second backward, with v
as the output cotangent, returns H v exactly (up to rounding). A forward-over-reverse
variant, ``jvp(grad(f))``, does the same for a functional f(θ) with ``torch.func``.

Cost: one forward, one backward that records its graph, and one backward through that graph
(about twice a plain backward), so an hvp costs about 2-3 gradient evaluations and keeps the
activations of the first backward in memory.

References
----------
B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6, 1994.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from deepdx.curvature._checks import check_flat, check_like_params, check_params, check_scalar
from deepdx.curvature._compat import quiet_forward_ad
from deepdx.curvature._params import flatten, unflatten
from deepdx.curvature.operators import MatVec

__all__ = ["functional_hvp", "hessian_operator", "hvp", "hvp_flat"]


def hessian_operator(loss_fn: Callable[[], Tensor], params: Sequence[Tensor]) -> MatVec:
    """Return the Hessian of ``loss_fn()`` as a matrix-free operator on flat vectors.

    The loss and its gradient graph are built once; each call of the returned operator is
    then a single backward pass, which makes it the right input for Lanczos or CG.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params`` (a closure over the
        model and a fixed batch). It is called once, with grad enabled.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``; P = Σ numel(θ_i) in total.

    Returns
    -------
    callable
        ``matvec(v) -> H v`` with v and H v of shape (P,), same dtype and device as params;
        the result carries no autograd graph.

    Raises
    ------
    InvalidParameterError
        If ``params`` is empty or has a tensor without grad, if ``loss_fn()`` is not a scalar,
        or (when called) if v is not of shape (P,).

    Notes
    -----
    H v = ∇_θ (g · v) with g = ∇_θ L kept differentiable (``create_graph=True``). Parameters
    the loss does not use, or on which g does not depend (L linear in them), have zero rows.
    Memory: the operator holds the graph of g until it is garbage collected.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> H = hessian_operator(lambda: (w**3).sum(), [w])  # H = diag(6 w)
    >>> H(torch.tensor([1.0, 1.0]))
    tensor([ 6., 12.])
    """
    params = check_params(params)
    n = sum(p.numel() for p in params)
    with torch.enable_grad():
        loss = check_scalar(loss_fn(), "loss_fn()")
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def matvec(v: Tensor) -> Tensor:
        check_flat(v, n)
        if not live:
            return torch.zeros_like(v)  # (P,) L is at most linear in θ
        parts = unflatten(v, params)
        hv = torch.autograd.grad(
            [grads[i] for i in live],
            params,
            grad_outputs=[parts[i] for i in live],
            retain_graph=True,
            materialize_grads=True,
        )
        return flatten(hv)  # (P,)

    return matvec


def hvp(
    loss_fn: Callable[[], Tensor], params: Sequence[Tensor], v: Sequence[Tensor]
) -> list[Tensor]:
    """Return the Hessian-vector product H v of ``loss_fn()`` with respect to ``params``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params``.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``.
    v : sequence of Tensor
        The direction, one tensor per parameter with the same shapes.

    Returns
    -------
    list of Tensor
        H v split like ``params`` (``out[i].shape == params[i].shape``), without graph.

    Raises
    ------
    InvalidParameterError
        If ``v`` does not match ``params`` in number and shapes, or as
        :func:`hessian_operator`.

    Notes
    -----
    H v = ∇_θ (∇_θ L · v) by double backward (Pearlmutter 1994). Cost: one forward and about
    two backward passes' worth of work (2-3 gradient evaluations). For several products
    at the same θ, build :func:`hessian_operator` once instead.

    Examples
    --------
    >>> import torch
    >>> W = torch.ones(2, 2, requires_grad=True)
    >>> b = torch.zeros(2, requires_grad=True)
    >>> loss = lambda: ((W @ torch.ones(2) + b) ** 2).sum()
    >>> [tuple(t.shape) for t in hvp(loss, [W, b], [torch.ones(2, 2), torch.ones(2)])]
    [(2, 2), (2,)]
    """
    params = check_params(params)
    v = check_like_params(v, params, "v")
    return unflatten(hessian_operator(loss_fn, params)(flatten(v)), params)


def hvp_flat(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], v: Tensor) -> Tensor:
    """Return H v for a flat direction ``v``; :func:`hvp` on flat vectors.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> L``, a scalar tensor computed from ``params``.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``; P = Σ numel(θ_i).
    v : Tensor
        Direction of shape (P,), ordered as :func:`flatten` orders ``params``.

    Returns
    -------
    Tensor
        H v of shape (P,), without graph.

    Raises
    ------
    InvalidParameterError
        If ``v`` is not of shape (P,), or as :func:`hessian_operator`.

    Notes
    -----
    Same maths and cost as :func:`hvp`.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
    >>> hvp_flat(lambda: (w[0] * w[1]) ** 2, [w], torch.tensor([1.0, 0.0]))
    tensor([ 2., -4.])
    """
    return hessian_operator(loss_fn, params)(v)


def functional_hvp(f: Callable[[Tensor], Tensor], theta: Tensor, v: Tensor) -> Tensor:
    """Return ∇²f(θ) v for a functional ``f(theta) -> scalar`` with ``torch.func``.

    Parameters
    ----------
    f : callable
        ``f(theta) -> L``, a scalar tensor; must be a pure function of ``theta``
        (``torch.func`` transforms it), e.g. a ``functional_call`` of a model.
    theta : Tensor
        θ of shape (P,) where the Hessian is taken.
    v : Tensor
        Direction of shape (P,).

    Returns
    -------
    Tensor
        H v of shape (P,).

    Raises
    ------
    InvalidParameterError
        If ``v`` does not have the shape of ``theta``.

    Notes
    -----
    Forward-over-reverse: H v = d/dε ∇f(θ + ε v) at ε = 0, i.e. ``jvp(grad(f), θ, v)``. Cost:
    one forward and one backward, each carrying a tangent (about 2-3 gradient evaluations),
    and it needs no retained graph. The first forward-mode call in a process
    also loads PyTorch's forward-AD rules (a one-off cost of about a second).

    Examples
    --------
    >>> import torch
    >>> f = lambda t: (t**2).sum() * t[0]
    >>> functional_hvp(f, torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]))
    tensor([4., 2.])
    """
    check_flat(v, theta.numel())
    with quiet_forward_ad():
        hv = torch.func.jvp(torch.func.grad(f), (theta,), (v.view_as(theta),))[1]  # (P,)
    return hv
