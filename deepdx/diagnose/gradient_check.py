"""Whole-model finite-difference gradient check in float64 (diagnosis rule A5).

The check asks one question of a model and its objective: does the gradient that autograd
returns match the slope of the loss itself? It compares, in float64 on a few samples,

* the directional derivative ∇L·u against the central difference
  (L(θ + εu) − L(θ − εu)) / (2ε) along ``n_directions`` random unit directions u over all
  parameters, and
* the same comparison along one random unit direction restricted to each parameter tensor
  (``mode="directions"``), or along up to ``max_coordinates`` random coordinate axes of each
  tensor (``mode="coordinates"``), which names the tensor whose gradient is wrong.

Symbols
-------
θ        all trainable parameters of the model, flattened, (P,)
u        a unit direction in parameter space, (P,) (zero outside one tensor for per-tensor rows)
ε        finite-difference step, ``eps``
L(θ)     the scalar loss ``loss_fn(model, batch)`` on the first ``n_samples`` samples
a        analytic directional derivative ∇L(θ)·u from autograd
n        numeric directional derivative (L(θ + εu) − L(θ − εu)) / (2ε)
r        relative error |a − n| / max(|a| + |n|, τ), τ the noise floor

Cost: one forward and backward pass for ∇L, then two forward passes per direction and two per
tensor (two per coordinate in coordinate mode). Nothing is O(P) in forward passes.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from deepdx._random import make_generator, seeded_torch
from deepdx.exceptions import DiagnosticWarning, InvalidParameterError, NumericalError
from deepdx.train.objectives import LossFn

__all__ = [
    "EXCELLENT_REL_ERROR",
    "OK_REL_ERROR",
    "WRONG_REL_ERROR",
    "GradCheckResult",
    "GradCheckRow",
    "Verdict",
    "gradcheck",
]

Verdict = Literal["ok", "suspect", "wrong"]
Mode = Literal["directions", "coordinates"]

#: Relative error above which the gradient is "wrong". Source: CS231n notes, "Neural Networks
#: Part 3", Gradient checks: "relative error > 1e-2 usually means the gradient is probably wrong".
WRONG_REL_ERROR = 1e-2
#: Relative error up to which the gradient is "ok". Source: CS231n (as above): "1e-2 > relative
#: error > 1e-4 should make you feel uncomfortable; 1e-4 > relative error is usually okay for
#: objectives with kinks". Between the two the verdict is "suspect".
OK_REL_ERROR = 1e-4
#: Relative error at or below which the agreement is "excellent". Source: CS231n (as above):
#: "1e-7 and less you should be happy"; also the float64 convention of torch.autograd.gradcheck.
EXCELLENT_REL_ERROR = 1e-7
#: Allowance for roundoff accumulated in the loss (proposal): the numeric derivative is trusted
#: to ``ROUNDOFF_ALLOWANCE * machine_eps * max(|L|, 1) / ε``.
ROUNDOFF_ALLOWANCE = 100.0

_VERDICTS: tuple[Verdict, ...] = ("ok", "suspect", "wrong")  # from best to worst
# Autograd node names (without the "Backward<k>" suffix) of operations with kinks or jumps.
_NON_SMOOTH_OPS = frozenset(
    "Relu LeakyRelu Threshold Hardtanh Elu Celu Prelu PreluKernel RreluWithNoise Hardswish "
    "Hardsigmoid Hardshrink Softshrink Abs Sign Sgn Clamp ClampMin ClampMax Maximum Minimum "
    "Fmax Fmin Max Min Amax Amin Median NanMedian Kthvalue Sort Topk Floor Ceil Round Trunc "
    "Frac Remainder Fmod".split()
)
_NON_SMOOTH_PREFIXES = ("MaxPool", "AdaptiveMaxPool", "FractionalMaxPool")
_KINK_ADVICE: dict[str, str] = {
    "ok": "no difference crossed a kink badly here, and one that did would give a harmless "
    "'suspect'.",
    "suspect": "a finite difference that crosses a kink gives errors of this size, so this is "
    "probably harmless. Rerun with another seed or a smaller eps to tell a kink from a bug.",
    "wrong": "a difference that crosses a kink can, rarely, cause this too. Rerun with another "
    "seed or a smaller eps to confirm.",
}


@dataclass(frozen=True)
class GradCheckRow:
    """One comparison of an analytic and a numeric directional derivative.

    Attributes
    ----------
    name : str
        ``"direction k"`` for a whole-model direction, else the parameter's qualified name.
    shape : tuple of int
        ``(P,)`` for a whole-model direction, else the parameter tensor's shape.
    analytic : float
        ∇L·u from autograd.
    numeric : float
        Central difference (L(θ + εu) − L(θ − εu)) / (2ε).
    rel_error : float
        |a − n| / max(|a| + |n|, τ).
    verdict : {"ok", "suspect", "wrong"}
        Classification of ``rel_error`` by the CS231n thresholds.
    index : tuple of int or None
        In coordinate mode, the coordinate with the largest error (the one reported).
    """

    name: str
    shape: tuple[int, ...]
    analytic: float
    numeric: float
    rel_error: float
    verdict: Verdict
    index: tuple[int, ...] | None = None


@dataclass(frozen=True)
class GradCheckResult:
    """Outcome of :func:`gradcheck`: the rows, the overall verdict and an explanation.

    Attributes
    ----------
    directions : tuple of GradCheckRow
        One row per random whole-model direction.
    tensors : tuple of GradCheckRow
        One row per trainable parameter tensor, in ``named_parameters`` order.
    verdict : {"ok", "suspect", "wrong"}
        The worst verdict over all rows.
    worst_tensor : str
        Name of the tensor with the largest relative error.
    max_rel_error : float
        Largest relative error over all rows.
    non_smooth : tuple of str
        Non-smooth operations found in the autograd graph (``"relu"``, ``"maxpool2d"``, ...).
    custom_functions : tuple of str
        Custom ``torch.autograd.Function`` classes found in the graph.
    note : str
        Plain-language explanation of the verdict and what to do next.
    eps : float
        Finite-difference step ε.
    n_samples : int
        Number of samples the loss was evaluated on.
    mode : {"directions", "coordinates"}
        How the per-tensor rows were computed.
    noise_floor : float
        τ, the smallest denominator of the relative error (see Notes of :func:`gradcheck`).
    """

    directions: tuple[GradCheckRow, ...]
    tensors: tuple[GradCheckRow, ...]
    verdict: Verdict
    worst_tensor: str
    max_rel_error: float
    non_smooth: tuple[str, ...]
    custom_functions: tuple[str, ...]
    note: str
    eps: float
    n_samples: int
    mode: Mode
    noise_floor: float

    @property
    def rows(self) -> tuple[GradCheckRow, ...]:
        """All rows: whole-model directions first, then per-tensor rows."""
        return self.directions + self.tensors

    def summary(self) -> str:
        """Return a one-line summary: verdict, worst error and where it was found."""
        quality = " (excellent)" if self.max_rel_error <= EXCELLENT_REL_ERROR else ""
        kinks = f"; non-smooth ops: {', '.join(self.non_smooth)}" if self.non_smooth else ""
        return (
            f"gradcheck {self.verdict}: max relative error {self.max_rel_error:.1e}{quality}, "
            f"worst tensor {self.worst_tensor!r}, {len(self.directions)} directions, "
            f"{len(self.tensors)} tensors, eps={self.eps:g}, {self.n_samples} samples{kinks}"
        )


def gradcheck(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Sequence[Tensor],
    *,
    n_directions: int = 4,
    eps: float = 1e-6,
    n_samples: int = 8,
    seed: int = 0,
    mode: Mode = "directions",
    max_coordinates: int = 8,
) -> GradCheckResult:
    """Check a model's autograd gradient against central finite differences in float64.

    Parameters
    ----------
    model : nn.Module
        The model; it is deep-copied, never modified.
    loss_fn : callable
        ``loss_fn(model, batch) -> Tensor`` of shape (), the training objective.
    batch : sequence of Tensor
        ``(X, y)`` with X of shape (B, *sample_shape) and y of shape (B,) or (B, k). Only the
        first ``n_samples`` rows are used; floating tensors become float64, integer labels
        stay integer.
    n_directions : int, default=4
        Number of random unit directions over all parameters (0 skips them).
    eps : float, default=1e-6
        Finite-difference step ε, the torch.autograd.gradcheck default for float64.
    n_samples : int, default=8
        Number of samples of ``batch`` to evaluate the loss on.
    seed : int, default=0
        Seed of the directions, the coordinates, and of the global RNG inside every forward
        pass (restored afterwards), so stochastic layers see the same noise each time.
    mode : {"directions", "coordinates"}, default="directions"
        Per-tensor check along one random direction per tensor, or along up to
        ``max_coordinates`` random coordinates per tensor (finer, 2 passes per coordinate).
    max_coordinates : int, default=8
        Coordinates checked per tensor in ``mode="coordinates"``.

    Returns
    -------
    GradCheckResult
        Rows, overall verdict, worst tensor, non-smooth operations found, and a note.

    Raises
    ------
    InvalidParameterError
        For invalid arguments, a model without trainable parameters, or a non-scalar loss.
    NumericalError
        If the loss or its gradient is not finite at θ.

    Warns
    -----
    DiagnosticWarning
        If ``loss_fn`` returns a loss in lower precision than float64.

    Notes
    -----
    The copy runs in eval mode: dropout is off, so L(θ + εu) and L(θ − εu) are the same
    function rather than two different random sub-networks, and batch norm uses its running
    statistics, so the loss is a fixed function of θ and the forward passes do not update
    buffers. The batch-statistics backward of batch norm (train mode) is therefore not checked.

    Relative error r = |a − n| / max(|a| + |n|, τ) with
    τ = ROUNDOFF_ALLOWANCE · machine_eps · max(|L(θ)|, 1) / (ε · OK_REL_ERROR): a difference no
    larger than the roundoff of the central difference gives r ≤ OK_REL_ERROR, so tensors with
    (near) zero gradient are not flagged by noise. Verdicts: r > 1e-2 "wrong", 1e-4 < r ≤ 1e-2
    "suspect", r ≤ 1e-4 "ok" (≤ 1e-7 excellent), after CS231n. Near kinks (ReLU, max pooling,
    abs) a difference that crosses the kink gives "suspect" errors legitimately; the note says
    so when the autograd graph contains such operations. Truncation error is O(ε²) and roundoff
    O(machine_eps / ε), balanced near ε = 1e-6 in float64.

    References
    ----------
    CS231n, "Neural Networks Part 3: Learning and Evaluation", section Gradient checks.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.nn import functional as F
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(16, 4, generator=g)  # (16, 4)
    >>> y = torch.randint(0, 3, (16,), generator=g)  # (16,)
    >>> result = gradcheck(net, lambda m, b: F.cross_entropy(m(b[0]), b[1]), (X, y))
    >>> result.verdict, len(result.directions), [r.shape for r in result.tensors]
    ('ok', 4, [(8, 4), (8,), (3, 8), (3,)])
    """
    _check_arguments(n_directions, eps, n_samples, mode, max_coordinates)
    probe = copy.deepcopy(model).to(torch.float64).eval()
    named = [(name, p) for name, p in probe.named_parameters() if p.requires_grad]
    if not named:
        raise InvalidParameterError(
            f"model {type(model).__name__} has no trainable parameters, so there is no gradient "
            "to check; set requires_grad=True on the parameters to check."
        )
    data = _float64_batch(batch, n_samples, named[0][1].device)

    def objective() -> Tensor:
        with seeded_torch(seed):
            return loss_fn(probe, data)

    loss, grads = _loss_and_gradient(objective, [p for _, p in named])
    graph_ops = _graph_ops(loss)
    floor = ROUNDOFF_ALLOWANCE * torch.finfo(torch.float64).eps * max(abs(loss.item()), 1.0)
    floor /= eps * OK_REL_ERROR
    generator = make_generator(seed)
    context = _Context(objective, named, grads, eps, floor)
    directions = [_whole_model_row(context, k, generator) for k in range(n_directions)]
    if mode == "coordinates":
        tensors = [
            _coordinate_row(context, i, generator, max_coordinates) for i in range(len(named))
        ]
    else:
        tensors = [_tensor_row(context, i, generator) for i in range(len(named))]
    return _assemble(directions, tensors, graph_ops, context, n_samples=len(data[0]), mode=mode)


# ----------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class _Context:
    """What every row computation needs: the objective, parameters, gradient, ε and τ."""

    objective: Callable[[], Tensor]
    named: list[tuple[str, nn.Parameter]]
    grads: list[Tensor]
    eps: float
    floor: float


def _check_arguments(
    n_directions: int, eps: float, n_samples: int, mode: str, max_coordinates: int
) -> None:
    """Raise one InvalidParameterError that lists every invalid argument."""
    problems = []
    if not isinstance(n_directions, int) or n_directions < 0:
        problems.append(f"n_directions must be an int >= 0; got {n_directions!r}.")
    if not isinstance(eps, float | int) or not math.isfinite(eps) or eps <= 0:
        problems.append(f"eps must be a finite float > 0 (1e-6 suits float64); got {eps!r}.")
    if not isinstance(n_samples, int) or n_samples < 1:
        problems.append(f"n_samples must be an int >= 1; got {n_samples!r}.")
    if mode not in ("directions", "coordinates"):
        problems.append(f"mode must be 'directions' or 'coordinates'; got {mode!r}.")
    if not isinstance(max_coordinates, int) or max_coordinates < 1:
        problems.append(f"max_coordinates must be an int >= 1; got {max_coordinates!r}.")
    if problems:
        raise InvalidParameterError("gradcheck: " + " ".join(problems))


def _float64_batch(batch: Sequence[Tensor], n_samples: int, device: torch.device) -> tuple:
    """Return a copy of the first ``n_samples`` rows, floating tensors in float64."""
    if isinstance(batch, Tensor) or not isinstance(batch, Sequence) or len(batch) == 0:
        raise InvalidParameterError(
            f"batch must be a tuple (X, y) of tensors; got {type(batch).__name__}. "
            "Pass the batch your loss_fn receives during training."
        )
    converted = []
    for item in batch:
        if isinstance(item, Tensor):
            dtype = torch.float64 if item.is_floating_point() else item.dtype
            item = item[:n_samples].detach().to(device=device, dtype=dtype).clone()
        converted.append(item)
    return tuple(converted)


def _loss_and_gradient(
    objective: Callable[[], Tensor], params: list[nn.Parameter]
) -> tuple[Tensor, list[Tensor]]:
    """Return L(θ) with its graph and ∇L(θ) per parameter (zeros for unused ones)."""
    loss = objective()
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise InvalidParameterError(
            "loss_fn must return a scalar tensor; got "
            f"{type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}. Reduce it with .mean()."
        )
    if loss.dtype != torch.float64:
        warnings.warn(
            f"loss_fn returned a {loss.dtype} loss for a float64 model, so the check runs in "
            "lower precision and may report false errors; do not cast inside loss_fn.",
            DiagnosticWarning,
            stacklevel=3,
        )
    grads = torch.autograd.grad(loss.reshape(()), params, allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads, strict=True)
    ]
    if not math.isfinite(loss.item()) or not all(bool(g.isfinite().all()) for g in grads):
        raise NumericalError(
            f"gradcheck: the loss ({loss.item()}) or its gradient is not finite at the current "
            "parameters, so derivatives cannot be compared; fix the NaN or Inf first."
        )
    return loss, grads


def _graph_ops(loss: Tensor) -> tuple[list[str], list[str]]:
    """Walk the autograd graph of ``loss``; return (non-smooth op names, custom Functions)."""
    non_smooth: set[str] = set()
    custom: set[str] = set()
    stack, seen = [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        name = re.sub(r"Backward\d*$", "", type(node).__name__)
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            custom.add(name)
        elif name in _NON_SMOOTH_OPS or name.startswith(_NON_SMOOTH_PREFIXES):
            non_smooth.add(name.removesuffix("WithIndices").lower())
        stack.extend(child for child, _ in node.next_functions)
    return sorted(non_smooth), sorted(custom)


# ----------------------------------------------------------------------------- rows


def _central_difference(
    context: _Context, perturbation: list[tuple[nn.Parameter, Tensor]]
) -> float:
    """Return (L(θ + εu) − L(θ − εu)) / (2ε) for u given per parameter; θ is restored."""
    originals = [p.detach().clone() for p, _ in perturbation]
    losses = []
    with torch.no_grad():
        for sign in (1.0, -1.0):
            for (p, u), p0 in zip(perturbation, originals, strict=True):
                p.copy_(p0 + sign * context.eps * u)
            losses.append(context.objective().item())
        for (p, _), p0 in zip(perturbation, originals, strict=True):
            p.copy_(p0)
    if not all(math.isfinite(value) for value in losses):
        raise NumericalError(
            f"gradcheck: the loss is not finite at θ ± {context.eps:g}·u; use a smaller eps."
        )
    return (losses[0] - losses[1]) / (2.0 * context.eps)


def _row(
    context: _Context, name: str, shape: tuple[int, ...], analytic: float, numeric: float
) -> GradCheckRow:
    """Build a row: relative error and its verdict."""
    error = abs(analytic - numeric) / max(abs(analytic) + abs(numeric), context.floor)
    return GradCheckRow(name, shape, analytic, numeric, error, _verdict(error))


def _verdict(rel_error: float) -> Verdict:
    """Classify a relative error by the CS231n thresholds."""
    if not rel_error <= WRONG_REL_ERROR:  # NaN counts as wrong
        return "wrong"
    return "suspect" if rel_error > OK_REL_ERROR else "ok"


def _random_unit(shapes: list[torch.Size], generator: torch.Generator) -> list[Tensor]:
    """Draw u ~ N(0, I) over the given shapes and scale it to unit norm over all of them."""
    parts = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    norm = torch.cat([part.reshape(-1) for part in parts]).norm()  # ‖u‖ over all shapes
    return [part / norm for part in parts]


def _whole_model_row(context: _Context, k: int, generator: torch.Generator) -> GradCheckRow:
    """Compare ∇L·u with the central difference along a random unit u over all parameters."""
    params = [p for _, p in context.named]
    unit = _random_unit([p.shape for p in params], generator)
    u = [part.to(p.device) for part, p in zip(unit, params, strict=True)]
    analytic = sum(float((g * part).sum()) for g, part in zip(context.grads, u, strict=True))
    numeric = _central_difference(context, list(zip(params, u, strict=True)))
    n_params = sum(p.numel() for p in params)
    return _row(context, f"direction {k}", (n_params,), analytic, numeric)


def _tensor_row(context: _Context, i: int, generator: torch.Generator) -> GradCheckRow:
    """Compare along a random unit direction restricted to parameter tensor ``i``."""
    name, p = context.named[i]
    (u,) = _random_unit([p.shape], generator)
    u = u.to(p.device)
    analytic = float((context.grads[i] * u).sum())
    numeric = _central_difference(context, [(p, u)])
    return _row(context, name, tuple(p.shape), analytic, numeric)


def _coordinate_row(
    context: _Context, i: int, generator: torch.Generator, max_coordinates: int
) -> GradCheckRow:
    """Compare ∂L/∂θ_j with a central difference for random coordinates j; keep the worst."""
    name, p = context.named[i]
    picks = torch.randperm(p.numel(), generator=generator)[:max_coordinates]
    worst: GradCheckRow | None = None
    for flat in picks.tolist():
        u = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
        u[flat] = 1.0
        numeric = _central_difference(context, [(p, u.view(p.shape))])
        analytic = float(context.grads[i].reshape(-1)[flat])
        row = _row(context, name, tuple(p.shape), analytic, numeric)
        if worst is None or not row.rel_error <= worst.rel_error:
            index = tuple(int(j) for j in np.unravel_index(flat, tuple(p.shape)))
            worst = replace(row, index=index)
    assert worst is not None  # a parameter has at least one element
    return worst


# ----------------------------------------------------------------------------- verdict


def _assemble(
    directions: list[GradCheckRow],
    tensors: list[GradCheckRow],
    graph_ops: tuple[list[str], list[str]],
    context: _Context,
    *,
    n_samples: int,
    mode: Mode,
) -> GradCheckResult:
    """Combine the rows into the overall verdict, the worst tensor and the note."""
    rows = directions + tensors
    verdict = _VERDICTS[max(_VERDICTS.index(row.verdict) for row in rows)]
    worst = max(tensors, key=lambda row: row.rel_error)
    max_error = max(row.rel_error for row in rows)
    non_smooth, custom = graph_ops
    return GradCheckResult(
        directions=tuple(directions),
        tensors=tuple(tensors),
        verdict=verdict,
        worst_tensor=worst.name,
        max_rel_error=max_error,
        non_smooth=tuple(non_smooth),
        custom_functions=tuple(custom),
        note=_note(verdict, worst, max_error, non_smooth, custom),
        eps=context.eps,
        n_samples=n_samples,
        mode=mode,
        noise_floor=context.floor,
    )


def _note(
    verdict: Verdict, worst: GradCheckRow, max_error: float, non_smooth: list, custom: list
) -> str:
    """Explain the verdict in plain sentences, with the next step."""
    kinks = ", ".join(non_smooth)
    if verdict == "wrong":
        text = _wrong_note(worst, max_error, custom)
    elif verdict == "suspect":
        text = (
            f"Relative error {max_error:.2g} (worst tensor {worst.name!r}) lies between "
            f"{OK_REL_ERROR:g} and {WRONG_REL_ERROR:g}."
        )
        if not non_smooth:
            text += " The model is smooth, so this usually means a subtle gradient bug."
    else:
        quality = "excellent" if max_error <= EXCELLENT_REL_ERROR else "acceptable"
        text = f"Gradients agree: max relative error {max_error:.2g} ({quality})."
        if max_error > EXCELLENT_REL_ERROR and not non_smooth:
            text += (
                " A smooth model in float64 usually reaches 1e-7; a larger error deserves a look."
            )
    if non_smooth:
        text += f" The model uses non-smooth operations ({kinks}); " + _KINK_ADVICE[verdict]
    return text


def _wrong_note(worst: GradCheckRow, max_error: float, custom: list) -> str:
    """Explain a "wrong" verdict: which tensor, or why no single tensor was flagged."""
    if worst.verdict == "wrong":
        text = (
            f"The gradient of {worst.name!r} is wrong: relative error {worst.rel_error:.2g} > "
            f"{WRONG_REL_ERROR:g} (analytic {worst.analytic:.6g}, numeric {worst.numeric:.6g}). "
            "Check the backward of the code that computes this tensor's contribution."
        )
    else:
        text = (
            f"A whole-model direction disagrees (relative error {max_error:.2g} > "
            f"{WRONG_REL_ERROR:g}) but no single tensor does: the bug may touch only a few "
            "elements, or the difference crossed a kink. Rerun with mode='coordinates'."
        )
    if custom:
        text += (
            f" The graph contains custom autograd Functions ({', '.join(custom)}); check "
            "them first with torch.autograd.gradcheck(fast_mode=True)."
        )
    return text
