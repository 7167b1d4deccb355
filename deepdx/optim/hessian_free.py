"""Hessian-free optimisation (truncated Newton with Gauss-Newton curvature and CG).

Newton's method without the matrix: each iteration minimises the damped quadratic model
of the loss by linear conjugate gradients (:func:`~deepdx.optim._cg.cg_solve`), which
only needs curvature-vector products from :mod:`deepdx.curvature`, so it scales to
networks whose Hessian could never be stored.

Symbols
-------
==========  ===========================================================================
``θ``       (n,) all parameters of all groups, flattened
``f``       the closure's loss (gradient minibatch); ``g = ∇f(θ)`` (n,)
``B``       (n, n) curvature, never formed: the Gauss-Newton matrix ``G = Jᵀ H_L J``
            (``curvature="ggn"``) or the Hessian ``H`` (``curvature="hessian"``)
``λ``       Tikhonov / Levenberg-Marquardt damping, adapted by ``ρ``
``μ``       structural damping weight; ``S = J_hᵀ J_h``, J_h the Jacobian of the
            hidden states (Martens & Sutskever 2011)
``D``       (n,) learning-rate metric of several groups (``I`` for one group)
``A``       the damped matrix ``B + λ D⁻¹ + λ μ S`` CG works with
``φ(δ)``    CG's objective ``gᵀδ + ½ δᵀ A δ``
``q(δ)``    the model ``gᵀδ + ½ δᵀ B δ`` (``+ ½ λ μ δᵀ S δ``) of ``f(θ + δ) − f(θ)``
``ρ``       reduction ratio ``(f(θ) − f(θ + δ)) / −q(δ)``
``M``       diagonal preconditioner ``(diag F + λ D⁻¹)^α``, α = 3/4
``ζ``       ``warm_start_decay``: CG starts from ζ times the previous CG solution
==========  ===========================================================================

Curvature on its own minibatch
------------------------------
:meth:`HessianFree.step` takes the usual gradient closure plus, for Gauss-Newton
products, ``outputs_fn() -> z`` and ``loss_on_outputs(z) -> scalar``, which may use a
smaller batch than the closure (Martens 2010 uses a fraction of the gradient batch).
With ``curvature="hessian"``, ``curvature_closure`` (a closure like the gradient one, on
the curvature batch) may replace the gradient closure for Hessian products. Both are
arguments of ``step``, not of the constructor, because the minibatch changes every step
and ``state_dict()`` must stay free of callables.

Preconditioner
--------------
Martens' diagonal preconditioner needs diag F, the empirical Fisher's diagonal. Pass
``fisher_fn`` to :meth:`HessianFree.step`, typically built on
:func:`empirical_fisher_diagonal`, which vectorises one per-sample gradient per sample
with ``torch.func``; the default splits ``outputs_fn()`` by rows, which costs a backward
through the whole batch per row. The function lives here, next to the step that uses it,
so both share one convention (the loss is a mean over samples); that is why this module
runs past 600 lines.

References
----------
J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
J. Martens and I. Sutskever, "Learning recurrent neural networks with Hessian-free
optimization", ICML 2011 (structural damping).
J. Martens and I. Sutskever, "Training deep and recurrent networks with Hessian-free
optimization", in *Neural Networks: Tricks of the Trade*, 2nd ed., Springer, 2012.
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, §7.1
(line-search Newton-CG), §4.1 (the ratio ρ), Alg. 3.1 (backtracking).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from deepdx._validation import Constraint, Interval, OneOf
from deepdx.curvature import MatVec, ggn_operator, hessian_operator
from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.optim._cg import CGResult, cg_solve, geometric_iterations
from deepdx.optim._flat import (
    AT_LEAST_ONE,
    LINE_SEARCH_CALLABLE,
    NONNEGATIVE,
    POSITIVE,
    UNIT,
    FlatOptimizer,
    unscaled,
)
from deepdx.optim._second_order import adapted_damping, differentiable_loss
from deepdx.optim.line_search import LineSearch

__all__ = ["CURVATURES", "HessianFree", "empirical_fisher_diagonal"]

CURVATURES = ("ggn", "hessian")

PRECONDITIONER_EXPONENT = 0.75
"""α of Martens' preconditioner M = (diag F + λ)^α."""

_SAMPLE_CHUNK = 64
"""Per-row gradients of the default diagonal are computed this many rows at a time."""

_CHUNK_NUMBERS = 2**24
"""Numbers of per-sample gradients held at once by :func:`empirical_fisher_diagonal`."""


class HessianFree(FlatOptimizer):
    """Hessian-free optimisation (Martens 2010): damped Newton steps solved by CG.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or parameter groups (dicts with ``"params"`` and an optional
        ``"lr"``; every other setting must match across groups).
    lr : float, default=1.0
        Step length along the CG solution δ without a line search, first trial step
        with one.
    damping : float, default=1.0
        Initial λ > 0, adapted by ρ after every iteration (Notes, step 6).
    curvature : {"ggn", "hessian"}, default="ggn"
        Gauss-Newton products (positive semi-definite for a loss convex in the outputs;
        :meth:`step` then needs ``outputs_fn`` and ``loss_on_outputs``) or exact Hessian
        products of the closure's loss (may be indefinite: CG stops at negative
        curvature).
    max_iter : int, default=1
        Outer (Newton) iterations per call to :meth:`step`.
    cg_max_iter : int, default=250
        Most CG iterations per outer iteration.
    cg_min_iter : int, default=1
        CG runs at least this many iterations before the relative-progress rule may stop
        it (the rule itself needs more than 10).
    cg_tol : float, default=5e-4
        Martens' ε: CG stops at iteration i when φ improved by less than a fraction
        k ε over the last k = max(10, 0.1 i) iterations. 0 turns the rule off.
    warm_start_decay : float, default=0.95
        ζ in [0, 1]: CG starts from ζ times the previous CG solution (0: from zero).
    preconditioner : {"martens"} or None, default="martens"
        Diagonal preconditioner ``M = (diag F + λ D⁻¹)^0.75`` (Notes, step 2), or none.
    line_search : {"armijo"}, callable or None, default="armijo"
        Backtracking on ``f(θ + t δ)`` from ``t = lr`` (N&W Alg. 3.1; a step no trial
        improves is not taken), a :class:`~deepdx.optim.line_search.LineSearch`
        callable, or None to take ``θ + lr δ`` unconditionally (Martens 2010).
    structural_damping : float, default=0.0
        μ >= 0. When > 0, :meth:`step` needs ``hidden_fn`` and CG works with
        ``B + λ D⁻¹ + λ μ J_hᵀ J_h`` (Martens & Sutskever 2011), for recurrent nets.
    tolerance_grad : float, default=1e-7
        Stop when ``max|g| <= tolerance_grad``.
    tolerance_change : float, default=1e-9
        Stop when the loss or ``max|t δ|`` changes by less than this.
    c1 : float, default=1e-2
        Sufficient-decrease constant of the line search (Martens & Sutskever use 10⁻²).
    max_ls : int, default=25
        Most closure calls per line search.

    Attributes
    ----------
    state : dict
        ``state[first_param]`` holds ``n_iter``, ``func_evals`` (closure calls),
        ``damping`` (the current λ), ``rho`` (the last ρ), ``cg_iters`` (CG iterations
        of the last solve) and ``cg_x`` (n,), the last CG solution (the warm start).

    Raises
    ------
    InvalidParameterError
        If a hyperparameter is out of range, ``cg_min_iter > cg_max_iter``, or groups
        differ in anything but ``lr``.

    Notes
    -----
    Iteration (Martens 2010, Alg. 1 and §4; Martens & Sutskever 2012):

    1. ``g = ∇f(θ)`` from the closure; stop if ``max|g| <= tolerance_grad``. Build the
       operator ``v ↦ B v`` on the curvature batch
       (:func:`~deepdx.curvature.ggn_operator` or
       :func:`~deepdx.curvature.hessian_operator`) and ``A = B + λ D⁻¹ (+ λ μ S)``.
    2. Preconditioner (§4.7): ``M = (diag F + λ D⁻¹)^α``, α = 3/4. ``diag F`` is what
       ``fisher_fn()`` returns, e.g. :func:`empirical_fisher_diagonal` (one per-sample
       gradient per sample, vectorised). Without it, and with Gauss-Newton curvature,
       F is the empirical Fisher of the curvature batch taking each of the N rows of
       ``outputs_fn()`` as a sample, ``diag F = N Σ_b c_b ⊙ c_b`` where c_b is row b's
       share of the gradient of the mean loss (one batched backward through the whole
       batch per row, ``is_grads_batched``: O(N²) work, so pass ``fisher_fn`` when N
       is in the thousands; this assumes row b of z depends only on sample b, which
       batch normalisation breaks). With Hessian curvature and no ``fisher_fn`` there
       are no outputs to split by sample, so F is the squared gradient ``g ⊙ g``.
    3. ``δ_N = cg_solve(A, −g, x_0 = ζ δ_prev)`` with the relative-progress rule,
       keeping the iterates at iterations ⌈1.3ʲ⌉ and the last one.
    4. Backtracking over iterates (§4.6): evaluate f at θ + δ_i from the last saved
       iterate backwards while f keeps decreasing; δ is the best. Each evaluation is a
       forward pass (the closure's ``backward()`` is skipped).
    5. ``ρ = (f(θ) − f(θ + δ)) / −q(δ)`` with ``q(δ) = φ(δ) − ½ λ δᵀD⁻¹δ``, CG's
       model without its Tikhonov term, read off CG's φ with no further product.
    6. Levenberg-Marquardt (§4.1): ``λ <- 2/3 λ`` if ρ > 3/4, ``λ <- 3/2 λ`` if ρ < 1/4.
    7. Armijo backtracking on ``f(θ + t δ)`` from t = ``lr`` (or ``t = lr``), and
       ``θ <- θ + t δ``. No step is taken if δ is not a descent direction (``gᵀδ >= 0``,
       e.g. CG met negative curvature at once; then ρ = −∞) or the line search finds no
       decrease; λ then grows by 3/2 whatever ρ was, and the warm start is reset.

    Conventions: ρ uses the model without Tikhonov damping (trust-region convention,
    N&W eq. 4.4; a structural term stays in it);
    the warm start is the last CG iterate, not the backtracked one (Martens &
    Sutskever 2012); the preconditioner uses the curvature batch; with several groups
    the damping identity becomes ``D⁻¹ = lr_max / lr_group`` (a group with a smaller
    ``lr`` is damped more) and ``lr_max`` is the step length. The structural damping
    penalty is the linearised squared distance ½‖J_h δ‖² ≈ ½‖h(θ + δ) − h(θ)‖² of the
    hidden states, the matching loss of linear units; Martens & Sutskever (2011) use
    the matching loss of the units' own non-linearity (cross-entropy for logistic
    units), which weights saturated units less.

    A NaN or infinite loss or gradient where an iteration starts, and a non-finite
    curvature product in CG, raise :class:`~deepdx.exceptions.NumericalError` naming the
    quantity: more damping cannot repair a NaN in the model, so there is no retry. A
    non-finite loss at a backtracking or line-search trial counts as +∞.

    Examples
    --------
    An MLP with cross-entropy, Gauss-Newton curvature on the first 32 of 128 samples:

    >>> import torch
    >>> import torch.nn.functional as F
    >>> gen = torch.Generator().manual_seed(0)
    >>> X = torch.randn(128, 4, generator=gen, dtype=torch.float64)
    >>> y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()  # 3 classes
    >>> with torch.random.fork_rng():  # seed the layers without touching the global RNG
    ...     _ = torch.manual_seed(0)
    ...     model = torch.nn.Sequential(
    ...         torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ...     ).double()
    >>> opt = HessianFree(model.parameters())
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = F.cross_entropy(model(X), y)
    ...     loss.backward()
    ...     return loss
    >>> k = 32
    >>> losses = []
    >>> for _ in range(5):
    ...     loss = opt.step(
    ...         closure,
    ...         outputs_fn=lambda: model(X[:k]),
    ...         loss_on_outputs=lambda z: F.cross_entropy(z, y[:k]),
    ...     )
    ...     losses.append(loss.item())
    >>> all(b < a for a, b in zip(losses, losses[1:])), opt.state[model[0].weight]["cg_x"].shape
    (True, torch.Size([67]))
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "lr": POSITIVE,
        "damping": POSITIVE,
        "curvature": OneOf(CURVATURES),
        "max_iter": AT_LEAST_ONE,
        "cg_max_iter": AT_LEAST_ONE,
        "cg_min_iter": AT_LEAST_ONE,
        "cg_tol": NONNEGATIVE,
        "warm_start_decay": Interval(float, low=0.0, high=1.0),
        "preconditioner": OneOf(("martens", None)),
        "line_search": OneOf(("armijo", None), callable_name=LINE_SEARCH_CALLABLE),
        "structural_damping": NONNEGATIVE,
        "tolerance_grad": NONNEGATIVE,
        "tolerance_change": NONNEGATIVE,
        "c1": UNIT,
        "max_ls": AT_LEAST_ONE,
    }

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        *,
        damping: float = 1.0,
        curvature: str = "ggn",
        max_iter: int = 1,
        cg_max_iter: int = 250,
        cg_min_iter: int = 1,
        cg_tol: float = 5e-4,
        warm_start_decay: float = 0.95,
        preconditioner: str | None = "martens",
        line_search: str | LineSearch | None = "armijo",
        structural_damping: float = 0.0,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        c1: float = 1e-2,
        max_ls: int = 25,
    ) -> None:
        defaults = {
            "lr": lr,
            "damping": damping,
            "curvature": curvature,
            "max_iter": max_iter,
            "cg_max_iter": cg_max_iter,
            "cg_min_iter": cg_min_iter,
            "cg_tol": cg_tol,
            "warm_start_decay": warm_start_decay,
            "preconditioner": preconditioner,
            "line_search": line_search,
            "structural_damping": structural_damping,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "c1": c1,
            "max_ls": max_ls,
        }
        super().__init__(params, defaults)

    def _setting_problems(self, settings: dict[str, Any]) -> list[str]:
        """Return the base problems, plus one if ``cg_min_iter > cg_max_iter``."""
        problems = super()._setting_problems(settings)
        low, high = settings["cg_min_iter"], settings["cg_max_iter"]
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append(
                f"HessianFree needs cg_min_iter <= cg_max_iter; got cg_min_iter={low}, "
                f"cg_max_iter={high}. Lower cg_min_iter or raise cg_max_iter."
            )
        return problems

    @torch.no_grad()
    def step(
        self,
        closure: Callable[[], Tensor],
        *,
        outputs_fn: Callable[[], Tensor] | None = None,
        loss_on_outputs: Callable[[Tensor], Tensor] | None = None,
        curvature_closure: Callable[[], Tensor] | None = None,
        hidden_fn: Callable[[], Tensor] | None = None,
        fisher_fn: Callable[[], Tensor] | None = None,
    ) -> Tensor:
        """Run up to ``max_iter`` Hessian-free iterations; return the loss before them.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss`` on the gradient batch: zeroes the gradients, computes
            the scalar loss, calls ``loss.backward()`` and returns the loss. Called
            several times (gradient, backtracking, line search).
        outputs_fn : callable, optional
            ``outputs_fn() -> z`` (N, K), the network outputs on the curvature batch;
            required with ``curvature="ggn"``, e.g. ``lambda: model(X[:k])``.
        loss_on_outputs : callable, optional
            ``loss_on_outputs(z) -> scalar``, the loss of those outputs (a mean over the
            N rows), e.g. ``lambda z: F.cross_entropy(z, y[:k])``; required with "ggn".
        curvature_closure : callable, optional
            With ``curvature="hessian"``, a closure like ``closure`` on the curvature
            batch; defaults to ``closure``.
        hidden_fn : callable, optional
            ``hidden_fn() -> h``, the hidden states (any shape) the structural damping
            penalises; required when ``structural_damping > 0``.
        fisher_fn : callable, optional
            ``fisher_fn() -> diag F`` (n,), non-negative, in the optimizer's parameter
            order, for the Martens preconditioner (Notes, step 2), e.g.
            ``lambda: empirical_fisher_diagonal(model, loss, Xc, yc)``; called once per
            outer iteration, unused with ``preconditioner=None``. By default each row of
            ``outputs_fn()`` counts as a sample.

        Returns
        -------
        Tensor
            The loss ``closure()`` returned at the starting point.

        Raises
        ------
        InvalidParameterError
            If the curvature inputs do not match ``curvature`` or ``structural_damping``,
            or ``fisher_fn()`` is not a non-negative vector of n entries.
        NumericalError
            If the loss or gradient where an iteration starts, or a curvature product,
            is not finite.
        """
        group = self.param_groups[0]
        _check_inputs(group, outputs_fn, loss_on_outputs, curvature_closure, hidden_fn)
        closure = self._checked(closure)
        state = self._algorithm_state()
        state.setdefault("damping", float(group["damping"]))
        loss, f, g = self._evaluate(closure, state)
        if g.abs().max() <= group["tolerance_grad"]:
            return loss

        def curvature() -> MatVec:
            if group["curvature"] == "ggn":
                assert outputs_fn is not None and loss_on_outputs is not None
                return ggn_operator(outputs_fn, loss_on_outputs, self._params)
            objective = differentiable_loss(curvature_closure or closure)
            state["func_evals"] += 1
            return hessian_operator(lambda: objective, self._params)

        def fisher(g: Tensor) -> Tensor:
            diagonal = None
            if fisher_fn is not None:
                diagonal = _checked_diagonal(fisher_fn(), g)
            elif outputs_fn is not None and loss_on_outputs is not None:
                diagonal = _fisher_diagonal(outputs_fn, loss_on_outputs, self._params)
            return g * g if diagonal is None else diagonal  # (n,)

        for k in range(1, group["max_iter"] + 1):
            state["n_iter"] += 1
            structure = None if hidden_fn is None else _structure(hidden_fn, self._params)
            f_new, g_new, s = self._iterate(
                closure, (curvature(), structure), fisher, f=f, g=g, last=k == group["max_iter"]
            )
            moved = bool(s.any())
            if moved and self._should_stop(group, 0, f_new - f, g_new, s):
                break
            f, g = f_new, g_new
        return loss

    # ------------------------------------------------------------------------------------
    # One outer iteration: steps 2-7
    # ------------------------------------------------------------------------------------

    def _iterate(
        self,
        closure: Callable[[], Tensor],
        operators: tuple[MatVec, MatVec | None],
        fisher: Callable[[Tensor], Tensor],
        *,
        f: float,
        g: Tensor,
        last: bool,
    ) -> tuple[float, Tensor, Tensor]:
        """Run steps 2-7 with curvature B and structure S; return (f, g (n,), step (n,))."""
        group, state = self.param_groups[0], self._algorithm_state()
        B, structure = operators
        result = self._solve(B, structure, g, fisher)
        i, delta, f_delta = self._backtrack(closure, result, state)  # δ: (n,)
        gtd = float(g.dot(delta))
        predicted = -self._model(result.quad_values[i], delta)
        descent = gtd < 0.0 and predicted > 0.0
        state["rho"] = (f - f_delta) / predicted if descent else -math.inf
        f_new, g_new, t = f, g, 0.0
        if descent:
            lr, _ = self._metric()
            last = last and group["line_search"] is None
            f_new, g_new, t, _ = self._move(
                closure, delta, state, t=lr, f=f, g=g, gtd=gtd, n_evals=0, last=last
            )
        state["damping"] = adapted_damping(state["damping"], state["rho"] if t > 0 else -1.0)
        if t == 0.0:
            state["cg_x"] = torch.zeros_like(delta)  # (n,) do not warm-start from a failure
        return f_new, g_new, t * delta

    def _solve(
        self,
        B: MatVec,
        structure: MatVec | None,
        g: Tensor,
        fisher: Callable[[Tensor], Tensor],
    ) -> CGResult:
        """Run steps 2-3: preconditioned CG on (B + λ D⁻¹ + λ μ S) δ = −g from ζ δ_prev."""
        group, state = self.param_groups[0], self._algorithm_state()
        damping, mu = state["damping"], group["structural_damping"]
        _, scale = self._metric()
        tikhonov = damping * unscaled(torch.ones_like(g), scale)  # (n,) λ D⁻¹

        def matvec(v: Tensor) -> Tensor:
            Av = B(v) + tikhonov * v  # (n,)
            return Av if structure is None else Av + (damping * mu) * structure(v)

        preconditioner = None
        if group["preconditioner"] == "martens":
            M = (fisher(g) + tikhonov) ** PRECONDITIONER_EXPONENT  # (n,)
            preconditioner = M.reciprocal().mul  # r ↦ M⁻¹ r
        x0 = state.get("cg_x")
        try:
            result = cg_solve(
                matvec,
                -g,
                None if x0 is None else group["warm_start_decay"] * x0,
                max_iter=group["cg_max_iter"],
                tol=group["cg_tol"],
                min_iter=group["cg_min_iter"],
                preconditioner=preconditioner,
                save_at=geometric_iterations(group["cg_max_iter"]),
            )
        except NumericalError as err:
            raise NumericalError(f"HessianFree iteration {state['n_iter']}: {err}") from err
        state["cg_x"], state["cg_iters"] = result.x, result.n_iter
        return result

    def _backtrack(
        self, closure: Callable[[], Tensor], result: CGResult, state: dict[str, Any]
    ) -> tuple[int, Tensor, float]:
        """Run step 4: return the saved (i, δ_i (n,)) with the lowest f(θ + δ_i), and f."""
        x = self._flat_x()  # (n,)

        def value(delta: Tensor) -> float:
            self._set_x(x + delta)
            state["func_evals"] += 1
            f = float(differentiable_loss(closure).detach())
            return f if math.isfinite(f) else math.inf

        best_i, best = result.iterates[-1]
        best_f = value(best)
        for i, delta in reversed(result.iterates[:-1]):
            f = value(delta)
            if not f < best_f:
                break
            best_i, best, best_f = i, delta, f
        self._set_x(x)
        return best_i, best, best_f

    def _model(self, phi: float, delta: Tensor) -> float:
        """Return q(δ) = φ(δ) − ½ λ δᵀD⁻¹δ, CG's model without the Tikhonov term."""
        _, scale = self._metric()
        weighted = unscaled(delta, scale)  # (n,) D⁻¹ δ
        return phi - 0.5 * self._algorithm_state()["damping"] * float(delta.dot(weighted))


def _check_inputs(
    group: dict[str, Any],
    outputs_fn: Callable[[], Tensor] | None,
    loss_on_outputs: Callable[[Tensor], Tensor] | None,
    curvature_closure: Callable[[], Tensor] | None,
    hidden_fn: Callable[[], Tensor] | None,
) -> None:
    """Raise one InvalidParameterError listing every curvature input that does not fit."""
    problems = []
    ggn = group["curvature"] == "ggn"
    if ggn and (outputs_fn is None or loss_on_outputs is None):
        problems.append(
            "HessianFree(curvature='ggn').step needs outputs_fn and loss_on_outputs for "
            "Gauss-Newton products; got "
            f"outputs_fn={'given' if outputs_fn else None}, "
            f"loss_on_outputs={'given' if loss_on_outputs else None}. Pass e.g. "
            "outputs_fn=lambda: model(X), loss_on_outputs=lambda z: F.cross_entropy(z, y), "
            "or construct HessianFree with curvature='hessian'."
        )
    if not ggn and (outputs_fn is not None or loss_on_outputs is not None):
        problems.append(
            "outputs_fn and loss_on_outputs are used only with curvature='ggn'; got them "
            "with curvature='hessian'. Drop them, or pass curvature='ggn'."
        )
    if ggn and curvature_closure is not None:
        problems.append(
            "curvature_closure is used only with curvature='hessian'; with 'ggn' put the "
            "curvature batch in outputs_fn and loss_on_outputs instead."
        )
    if (group["structural_damping"] > 0) != (hidden_fn is not None):
        problems.append(
            "structural damping needs both structural_damping > 0 and hidden_fn; got "
            f"structural_damping={group['structural_damping']} and hidden_fn="
            f"{'given' if hidden_fn else None}. Pass hidden_fn=lambda: hidden_states "
            "with structural_damping=mu, or neither."
        )
    if problems:
        raise InvalidParameterError(" ".join(problems))


def _structure(hidden_fn: Callable[[], Tensor], params: list[Tensor]) -> MatVec:
    """Return v ↦ J_hᵀ J_h v, the Gauss-Newton matrix of ½‖h − h(θ)‖² (structural damping)."""
    return ggn_operator(hidden_fn, lambda h: 0.5 * (h**2).sum(), params)


def _fisher_diagonal(
    outputs_fn: Callable[[], Tensor],
    loss_on_outputs: Callable[[Tensor], Tensor],
    params: Sequence[Tensor],
) -> Tensor | None:
    """Return diag F = N Σ_b c_b ⊙ c_b (n,) from per-sample gradients c_b; None if z is 0-d."""
    with torch.enable_grad():
        z = outputs_fn()  # (N, ...)
        z_leaf = z.detach().requires_grad_(True)
        (grad_z,) = torch.autograd.grad(loss_on_outputs(z_leaf), z_leaf)  # (N, ...)
    if z.dim() == 0 or not z.requires_grad:
        return None  # no samples to split
    n_samples = z.shape[0]
    total = params[0].new_zeros(sum(p.numel() for p in params))  # (n,)
    for start in range(0, n_samples, _SAMPLE_CHUNK):
        rows = torch.arange(start, min(start + _SAMPLE_CHUNK, n_samples), device=z.device)
        cotangent = z.new_zeros(len(rows), *z.shape)  # (c, N, ...)
        cotangent[torch.arange(len(rows), device=z.device), rows] = grad_z[rows]
        per_sample = torch.autograd.grad(
            z, params, cotangent, retain_graph=True, is_grads_batched=True, allow_unused=True
        )
        squares = [
            p.new_zeros(p.numel()) if c is None else c.reshape(len(rows), -1).square().sum(0)
            for p, c in zip(params, per_sample, strict=True)
        ]
        total += torch.cat(squares)  # (n,)
    return n_samples * total


def _checked_diagonal(diagonal: object, g: Tensor) -> Tensor:
    """Return ``fisher_fn()``'s result as g's dtype; raise unless it is (n,) and >= 0."""
    if isinstance(diagonal, Tensor) and diagonal.shape == g.shape:
        if bool((diagonal >= 0).all()):
            return diagonal.to(g)  # (n,)
        got = "a tensor with negative or NaN entries"
    elif isinstance(diagonal, Tensor):
        got = f"shape {tuple(diagonal.shape)}"
    else:
        got = type(diagonal).__name__
    raise InvalidParameterError(
        f"fisher_fn() must return the diagonal of the empirical Fisher, a non-negative "
        f"tensor of shape {tuple(g.shape)} in the optimizer's parameter order; got {got}. "
        "Return e.g. empirical_fisher_diagonal(model, sample_loss, X, y)."
    )


def empirical_fisher_diagonal(
    module: nn.Module,
    sample_loss: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    params: Sequence[Tensor] | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Return diag F = (1/N) Σ_b ∇ℓ_b ⊙ ∇ℓ_b, the empirical Fisher's diagonal, by per-sample grads.

    Parameters
    ----------
    module : nn.Module
        The network; ``module(x)`` maps a batch (B, ...) to outputs (B, ...). Its
        per-sample outputs must not depend on other samples or on chance: call
        ``module.eval()`` first if it has batch normalisation or dropout.
    sample_loss : callable
        ``sample_loss(z, t) -> scalar``: the loss ℓ_b of one sample, given the outputs
        z (1, ...) and targets t (1, ...) of a batch holding only that sample, e.g.
        ``lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="sum")``.
        The objective whose Fisher this is, is the mean of ℓ_b over the N samples.
    inputs : Tensor of shape (N, ...)
        The samples x_b.
    targets : Tensor of shape (N, ...)
        Their targets t_b (``inputs`` again for an autoencoder).
    params : sequence of Tensor or None, default=None
        Parameters of ``module`` to differentiate, in the order of the result (the
        optimizer's order); None takes ``module.parameters()``. The others stay fixed.
    chunk_size : int or None, default=None
        Samples whose gradients are held at once; None picks the most that keep
        ``chunk_size · n`` under 2²⁴ numbers (64 MiB in float32).

    Returns
    -------
    Tensor of shape (n,)
        n = Σ numel over ``params``, in their order, flattened like ``torch.cat``.

    Raises
    ------
    InvalidParameterError
        If a tensor in ``params`` is not a parameter of ``module``, ``inputs`` and
        ``targets`` differ in length or are empty, or ``chunk_size < 1``.

    Notes
    -----
    ``torch.func.vmap(torch.func.grad(ℓ))`` over the samples, in chunks: one per-sample
    gradient per sample, about the cost of a few backward passes over the N samples
    plus N · n multiply-adds for the squares, memory ``chunk_size · n``. The default of
    :meth:`HessianFree.step` instead runs one batched backward through the whole batch
    per output row, O(N²) work. Martens (2010, §4.7) computes the same quantity per
    layer as (δ ⊙ δ)ᵀ(a ⊙ a) for fully connected layers.

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> net = nn.Linear(3, 2).double()
    >>> X = torch.randn(10, 3, dtype=torch.float64)
    >>> y = torch.randint(0, 2, (10,))
    >>> diag = empirical_fisher_diagonal(net, lambda z, t: F.cross_entropy(z, t), X, y)
    >>> diag.shape, bool((diag >= 0).all())
    (torch.Size([8]), True)
    """
    names, chosen = _parameter_names(module, params)
    n_samples = _check_samples(inputs, targets, chunk_size)
    n = sum(p.numel() for p in chosen)
    chunk = chunk_size or max(1, min(n_samples, _CHUNK_NUMBERS // max(n, 1)))
    fixed = {k: v.detach() for k, v in module.named_parameters() if k not in names}
    fixed.update(dict(module.named_buffers()))

    def loss_of_sample(weights: tuple[Tensor, ...], x: Tensor, t: Tensor) -> Tensor:
        values = {**fixed, **dict(zip(names, weights, strict=True))}
        z = torch.func.functional_call(module, values, (x.unsqueeze(0),))  # (1, ...)
        return sample_loss(z, t.unsqueeze(0))

    per_sample = torch.func.vmap(torch.func.grad(loss_of_sample), in_dims=(None, 0, 0))
    weights = tuple(p.detach() for p in chosen)
    total = chosen[0].new_zeros(n)  # (n,)
    with torch.enable_grad():
        for start in range(0, n_samples, chunk):
            grads = per_sample(
                weights, inputs[start : start + chunk], targets[start : start + chunk]
            )
            total += torch.cat([c.flatten(1).square().sum(0) for c in grads])  # (n,)
    return total / n_samples


def _parameter_names(
    module: nn.Module, params: Sequence[Tensor] | None
) -> tuple[list[str], list[Tensor]]:
    """Return the qualified names and tensors of ``params`` (default: all) in ``module``."""
    named: dict[str, Tensor] = dict(module.named_parameters())
    chosen = list(named.values()) if params is None else list(params)
    by_id = {id(p): name for name, p in named.items()}
    missing = [i for i, p in enumerate(chosen) if id(p) not in by_id]
    if missing or not chosen:
        raise InvalidParameterError(
            f"empirical_fisher_diagonal needs params that are parameters of module; got "
            f"{len(chosen)} tensors, of which positions {missing} are not in "
            f"{type(module).__name__}.named_parameters(). Pass params=None for all of them."
        )
    return [by_id[id(p)] for p in chosen], chosen


def _check_samples(inputs: Tensor, targets: Tensor, chunk_size: int | None) -> int:
    """Return N; raise unless inputs and targets hold N >= 1 samples and chunk_size >= 1."""
    problems = []
    if inputs.dim() == 0 or targets.dim() == 0 or len(inputs) != len(targets) or not len(inputs):
        problems.append(
            f"inputs and targets must hold the same number N >= 1 of samples along dim 0; got "
            f"shapes {tuple(inputs.shape)} and {tuple(targets.shape)}."
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        problems.append(f"chunk_size must be an int >= 1 or None; got {chunk_size!r}.")
    if problems:
        raise InvalidParameterError("empirical_fisher_diagonal: " + " ".join(problems))
    return len(inputs)
