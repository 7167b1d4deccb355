"""Generalised Gauss-Newton-vector products G v = Jᵀ H_L J v, without forming G.

Symbols
-------
θ (P,)       all parameters flattened
z (B, K)     network outputs, ``outputs_fn()`` (any shape; B, K are the usual case)
L(z)         scalar loss on the outputs, ``loss_on_outputs(z)``, convex in z for a PSD G
J (BK, P)    Jacobian ∂z/∂θ, never formed
H_L (BK, BK) Hessian ∇²_z L of the loss with respect to the outputs
G (P, P)     Gauss-Newton matrix Jᵀ H_L J

Maths
-----
The Hessian of L(z(θ)) is Jᵀ H_L J + Σ_i (∂L/∂z_i) ∇²_θ z_i; dropping the second term leaves
G, which is positive semi-definite whenever L is convex in z (squared error, softmax cross
entropy), so conjugate gradients on (G + λ I) p = -g is well posed (Schraudolph 2002,
Martens 2010). G v is computed in three steps:

1. Jv (B, K). Reverse-only "R-op" trick: with a dummy cotangent u, Jᵀ u is linear in u, so
   ∂/∂u (Jᵀ u · v) = J v; a backward through the graph of Jᵀ u gives J v. The functional
   variant uses forward mode, ``torch.func.jvp``.
2. H_L (J v) (B, K): a Hessian-vector product of L with respect to z (cheap: z is small).
3. Jᵀ (H_L J v) (P,): one ordinary vector-Jacobian product (a backward pass).

Cost: one forward, a backward that records its graph, and three more backwards on the
network (about 3-4 gradient evaluations); forward mode costs about 3 instead.

References
----------
N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
descent", Neural Computation 14, 2002.
J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from deepdx.curvature._checks import (
    check_flat,
    check_like_params,
    check_nonnegative,
    check_params,
    check_scalar,
)
from deepdx.curvature._compat import quiet_forward_ad
from deepdx.curvature._params import flatten, unflatten
from deepdx.curvature.operators import MatVec, damped
from deepdx.exceptions import InvalidParameterError

__all__ = ["functional_ggn_vp", "ggn_operator", "ggn_vp"]


def ggn_operator(
    outputs_fn: Callable[[], Tensor],
    loss_on_outputs: Callable[[Tensor], Tensor],
    params: Sequence[Tensor],
) -> MatVec:
    """Return the Gauss-Newton matrix G = Jᵀ H_L J as a matrix-free operator on flat vectors.

    The forward pass and the graphs of Jᵀ u and ∇_z L are built once; each call of the
    returned operator is then three backward passes (the R-op, H_L, and Jᵀ).

    Parameters
    ----------
    outputs_fn : callable
        ``outputs_fn() -> z``, network outputs of shape (B, K) (any shape works) computed
        from ``params`` on a fixed batch; called once, with grad enabled.
    loss_on_outputs : callable
        ``loss_on_outputs(z) -> L``, a scalar tensor; the targets live in its closure.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``; P = Σ numel(θ_i).

    Returns
    -------
    callable
        ``matvec(v) -> G v`` with v and G v of shape (P,); the result carries no graph.

    Raises
    ------
    InvalidParameterError
        If ``params`` is invalid, ``outputs_fn()`` does not depend on them, or
        ``loss_on_outputs`` is not scalar; when called, if v is not of shape (P,).

    Notes
    -----
    See the module docstring for the three steps. Memory: the operator holds the forward
    graph, the graph of Jᵀ u, and that of ∇_z L until it is garbage collected.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([2.0, 1.0], requires_grad=True)
    >>> X = torch.eye(2)
    >>> G = ggn_operator(lambda: X @ w, lambda z: 0.5 * (z**2).sum(), [w])  # G = XᵀX
    >>> G(torch.tensor([1.0, 3.0]))
    tensor([1., 3.])
    """
    params = check_params(params)
    n = sum(p.numel() for p in params)
    with torch.enable_grad():
        z = _outputs(outputs_fn)  # (B, K)
        u = torch.zeros_like(z, requires_grad=True)  # (B, K) dummy cotangent
        jt_u = torch.autograd.grad(z, params, grad_outputs=u, create_graph=True, allow_unused=True)
        z_leaf = z.detach().requires_grad_(True)  # (B, K)
        loss = check_scalar(loss_on_outputs(z_leaf), "loss_on_outputs(z)")
        (grad_z,) = torch.autograd.grad(loss, z_leaf, create_graph=True)  # (B, K)
    live = [i for i, g in enumerate(jt_u) if g is not None and g.requires_grad]

    def matvec(v: Tensor) -> Tensor:
        check_flat(v, n)
        if not live:
            return torch.zeros_like(v)  # (P,) z does not depend on params
        parts = unflatten(v, params)
        # Step 1: J v by differentiating Jᵀ u with respect to u
        jv = torch.autograd.grad(
            [jt_u[i] for i in live], u, [parts[i] for i in live], retain_graph=True
        )[0]  # (B, K)
        # Step 2: H_L (J v), an hvp with respect to the outputs
        hjv = _output_hvp(grad_z, z_leaf, jv)  # (B, K)
        # Step 3: Jᵀ (H_L J v), a vector-Jacobian product
        gv = torch.autograd.grad(z, params, hjv, retain_graph=True, materialize_grads=True)
        return flatten(gv)  # (P,)

    return matvec


def ggn_vp(
    outputs_fn: Callable[[], Tensor],
    loss_on_outputs: Callable[[Tensor], Tensor],
    params: Sequence[Tensor],
    v: Sequence[Tensor],
    *,
    damping: float = 0.0,
) -> list[Tensor]:
    """Return the (damped) Gauss-Newton-vector product (Jᵀ H_L J + λ I) v.

    Parameters
    ----------
    outputs_fn : callable
        ``outputs_fn() -> z``, network outputs of shape (B, K) computed from ``params``.
    loss_on_outputs : callable
        ``loss_on_outputs(z) -> L``, a scalar tensor.
    params : sequence of Tensor
        θ_1 .. θ_m with ``requires_grad=True``.
    v : sequence of Tensor
        The direction, one tensor per parameter with the same shapes.
    damping : float, default=0.0
        λ >= 0 added to the diagonal (Levenberg-Marquardt / Tikhonov damping).

    Returns
    -------
    list of Tensor
        (G + λ I) v split like ``params``, without graph.

    Raises
    ------
    InvalidParameterError
        If ``v`` does not match ``params``, ``damping`` < 0, or as :func:`ggn_operator`.

    Notes
    -----
    Reverse mode only (R-op by double backward), so it works with any closure; see the
    module docstring. Cost: about 3-4 gradient evaluations. For several products at the
    same θ (CG iterations), build :func:`ggn_operator` once instead.

    Examples
    --------
    >>> import torch
    >>> W = torch.ones(3, 2, requires_grad=True)
    >>> X = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    >>> y = torch.tensor([0, 1, 2, 0, 1])
    >>> ce = lambda z: torch.nn.functional.cross_entropy(z, y)
    >>> Gv = ggn_vp(lambda: X @ W.T, ce, [W], [torch.ones(3, 2)], damping=0.1)
    >>> Gv[0].shape
    torch.Size([3, 2])
    """
    check_nonnegative("damping", damping)
    params = check_params(params)
    v = check_like_params(v, params, "v")
    operator = damped(ggn_operator(outputs_fn, loss_on_outputs, params), damping)
    return unflatten(operator(flatten(v)), params)


def functional_ggn_vp(
    f: Callable[[Tensor], Tensor],
    loss_on_outputs: Callable[[Tensor], Tensor],
    theta: Tensor,
    v: Tensor,
    *,
    damping: float = 0.0,
) -> Tensor:
    """Return (Jᵀ H_L J + λ I) v for a functional ``f(theta) -> z``, J v by forward mode.

    Parameters
    ----------
    f : callable
        ``f(theta) -> z``, network outputs of shape (B, K); a pure function of ``theta``
        (``torch.func`` transforms it), e.g. a ``functional_call`` of a model.
    loss_on_outputs : callable
        ``loss_on_outputs(z) -> L``, a scalar tensor, also pure.
    theta : Tensor
        θ of shape (P,).
    v : Tensor
        Direction of shape (P,).
    damping : float, default=0.0
        λ >= 0 added to the diagonal.

    Returns
    -------
    Tensor
        (G + λ I) v of shape (P,).

    Raises
    ------
    InvalidParameterError
        If ``v`` does not have the shape of ``theta`` or ``damping`` < 0.

    Notes
    -----
    J v = ``jvp(f, θ, v)`` (forward mode, one forward pass with a tangent),
    H_L J v = ``jvp(grad(L), z, J v)``, Jᵀ(·) = ``vjp(f, θ)``. Cost: about 3 forward-pass
    equivalents; ``f`` is evaluated twice. The first
    forward-mode call in a process also loads PyTorch's forward-AD rules (a one-off cost).

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    >>> sse = lambda z: 0.5 * (z**2).sum()
    >>> functional_ggn_vp(lambda t: X @ t, sse, torch.zeros(2), torch.tensor([1.0, 0.0]))
    tensor([1., 2.])
    """
    check_flat(v, theta.numel())
    check_nonnegative("damping", damping)
    with quiet_forward_ad():
        z, jv = torch.func.jvp(f, (theta,), (v.view_as(theta),))[:2]  # (B, K), (B, K)
        hjv = torch.func.jvp(torch.func.grad(loss_on_outputs), (z,), (jv,))[1]  # (B, K)
    vjp_fn = torch.func.vjp(f, theta)[1]
    (gv,) = vjp_fn(hjv)  # (P,)
    return gv + damping * v


def _outputs(outputs_fn: Callable[[], Tensor]) -> Tensor:
    """Call ``outputs_fn`` and check that its result depends on the parameters."""
    z = outputs_fn()
    if not isinstance(z, Tensor) or not z.requires_grad:
        raise InvalidParameterError(
            "outputs_fn() must return a tensor computed from `params`; got one without "
            "autograd history. Compute the outputs inside the closure, with grad enabled."
        )
    return z


def _output_hvp(grad_z: Tensor, z_leaf: Tensor, jv: Tensor) -> Tensor:
    """Return H_L jv from the differentiable gradient ∇_z L (zero if L is linear in z)."""
    if not grad_z.requires_grad:
        return torch.zeros_like(jv)  # (B, K)
    return torch.autograd.grad(grad_z, z_leaf, jv, retain_graph=True)[0]  # (B, K)
