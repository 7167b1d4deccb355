"""Run a set of optimizers on one problem and put their traces and the curvature side by side.

Every optimizer starts from the same seeded point and gets the same budget (CPU seconds
of its own steps and/or gradient evaluations, see :mod:`deepdx.study.trace`). The
curvature (:mod:`deepdx.study.spectrum`) is measured at the start and at each end point,
outside the budget.

Symbols
-------
==========  ===========================================================================
``λ_max``   top Hessian eigenvalue at the common start point
``β``       momentum of ``momentum`` and ``nesterov`` (0.9)
``lr``      learning rate; for the full-batch methods the first trial step (1)
==========  ===========================================================================

Learning rates
--------------
The full-batch methods (gd, cg, lbfgs, newton, hf) take ``lr = 1`` as the first trial step
of a line search or the step along a Newton-type direction: nothing to tune. The
minibatch methods get, unless ``lrs`` names their rate, a short sweep over
``centre × (0.1, 0.3, 1, 3, 10)``, extended by factors of 3 (up to 3 times) while the
largest rate tried is the best: the smallest rate runs for 5 % of the budget, every other
for as many gradient evaluations as it used, all from the same start, and the one with
the lowest mean objective over the last quarter of its recorded points (diverged runs
excluded) is used.
The centre comes from the curvature at the start
(:func:`~deepdx.study.methods.sweep_centre`): 1/λ_max for sgd, (1 − β)/λ_max with
momentum β = 0.9, and the problem's ``adam_lr`` for Adam (0.1 quadratic, 0.01
Rosenbrock, logreg and mlp, 10⁻³ autoencoder). With ``lr_sweep=False`` the centre
itself is used.

A short sweep favours rates that make fast early progress (short-horizon bias). On
Rosenbrock it picks Adam's lr = 0.9, best after 200 evaluations, which then stalls near
f = 1, where lr = 0.03 reaches 10⁻¹⁰ after 4,000; the sweep table in the summary shows
what was tried, and ``lrs`` overrides the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import vector_to_parameters

from deepdx._validation import Interval, OneOf, check_params
from deepdx.exceptions import DeepdxError, InvalidParameterError
from deepdx.study.methods import is_full_batch, method_names, stability_limit, sweep_centre
from deepdx.study.problem import Problem
from deepdx.study.problems import make_problem
from deepdx.study.spectrum import LANCZOS_STEPS, PROBE_ROWS, CurvatureSummary, measure_curvature
from deepdx.study.trace import Trace, run_optimizer

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "SWEEP_FACTORS",
    "Comparison",
    "compare_optimizers",
]

DEFAULT_OPTIMIZERS = ("gd", "cg", "lbfgs", "newton", "hf", "sgd", "momentum", "adam")
SWEEP_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
"""Multiples of the centre a learning-rate sweep tries."""
SWEEP_FRACTION = 0.05
"""Share of the budget each sweep candidate runs for."""
SWEEP_STEP, SWEEP_EXTENSIONS = 3.0, 3
"""While the largest rate tried is the best, try SWEEP_STEP times it (at most 3 times)."""
LANDSCAPE_GRID = 80
"""Grid points per axis of the loss landscape kept for 2-parameter problems."""


@dataclass
class Comparison:
    """The traces of several optimizers on one problem, with the curvature.

    Attributes
    ----------
    problem : str
        Problem name.
    description : str
        The problem in one sentence.
    convex : bool
        Whether the objective is convex.
    optimum : float or None
        f* when known.
    settings : dict
        Budget, seed, batch size, problem options.
    curvature_start : CurvatureSummary
        Curvature at the common start point.
    traces : list of Trace
        One per optimizer, in the order asked.
    sweeps : dict of str to list of [lr, score, status]
        The learning-rate sweep of each swept optimizer.
    landscape : dict or None
        ``{"x": (G,), "y": (G,), "loss": (G, G)}`` lists for a problem of 2 parameters.
    """

    problem: str
    description: str
    convex: bool
    optimum: float | None
    settings: dict[str, Any]
    curvature_start: CurvatureSummary
    traces: list[Trace]
    sweeps: dict[str, list[list[Any]]] = field(default_factory=dict)
    landscape: dict[str, Any] | None = None

    def trace(self, name: str) -> Trace:
        """Return the trace of optimizer ``name``."""
        for trace in self.traces:
            if trace.optimizer == name:
                return trace
        raise InvalidParameterError(
            f"this comparison has no optimizer {name!r}; it ran "
            f"{', '.join(t.optimizer for t in self.traces)}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Return everything as JSON-able data (non-finite floats become None)."""
        from deepdx.study.summary import jsonable

        return jsonable(
            {
                "problem": self.problem,
                "description": self.description,
                "convex": self.convex,
                "optimum": self.optimum,
                "settings": self.settings,
                "curvature_start": self.curvature_start.to_dict(),
                "traces": [trace.to_dict() for trace in self.traces],
                "sweeps": self.sweeps,
                "landscape": self.landscape,
            }
        )

    def summary_table(self) -> str:
        """Return one plain-text line per optimizer: status, lr, loss, cost, curvature."""
        from deepdx.study.summary import comparison_table

        return comparison_table(self)

    def save(self, directory: str | Path) -> Path:
        """Write the results into ``directory``; return it.

        Files: ``comparison.json``, ``loss.png``, ``curvature.png``, ``paths.png`` (for a
        2-parameter problem) and ``summary.md``.
        """
        from deepdx.study.summary import save_comparison

        return save_comparison(self, Path(directory))


def compare_optimizers(
    problem: Problem | str,
    optimizers: Sequence[str] | None = None,
    *,
    budget_seconds: float | None = None,
    max_evals: float | None = None,
    batch_size: int = 64,
    lrs: Mapping[str, float] | None = None,
    lr_sweep: bool = True,
    seed: int = 0,
    lanczos_steps: int = LANCZOS_STEPS,
    probe_rows: int = PROBE_ROWS,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Run each optimizer on ``problem`` under the same budget; measure the curvature.

    Parameters
    ----------
    problem : Problem or str
        A problem, or the name of a built-in one (:data:`deepdx.study.PROBLEMS`).
    optimizers : sequence of str, optional
        Registry names; default :data:`DEFAULT_OPTIMIZERS`.
    budget_seconds : float or None, default=None
        CPU seconds of optimizer steps per optimizer (a step in progress is finished).
    max_evals : float or None, default=None
        Gradient evaluations (full-batch equivalents) per optimizer; a run stops at
        whichever limit comes first. With neither, the budget is the problem's
        ``default_budget`` seconds (1 Rosenbrock, 2 quadratic and logreg, 3 mlp, 20
        autoencoder).
    batch_size : int, default=64
        Minibatch size of the minibatch methods.
    lrs : mapping of str to float, optional
        Learning rates by optimizer name; these are not swept.
    lr_sweep : bool, default=True
        Sweep the learning rate of minibatch methods not in ``lrs`` (module docstring).
    seed : int, default=0
        Seed of the start point (the same for every optimizer) and of the minibatches.
    lanczos_steps, probe_rows : int
        Curvature measurement settings (:func:`~deepdx.study.spectrum.measure_curvature`).
    progress : callable, optional
        Called with one line per finished optimizer.

    Returns
    -------
    Comparison

    Raises
    ------
    InvalidParameterError
        If a name, budget or setting is invalid. Optimizers that diverge, fail or refuse
        the problem are recorded with their status; they never stop the comparison.

    Examples
    --------
    >>> result = compare_optimizers("rosenbrock", ["lbfgs", "gd"], max_evals=100)
    >>> [(t.optimizer, t.final_loss < t.loss[0]) for t in result.traces]
    [('lbfgs', True), ('gd', True)]
    """
    problem = make_problem(problem) if isinstance(problem, str) else problem
    names = list(DEFAULT_OPTIMIZERS if optimizers is None else optimizers)
    lrs = dict(lrs or {})
    _check_settings(names, lrs, budget_seconds, max_evals, batch_size)
    if budget_seconds is None and max_evals is None:
        budget_seconds = problem.default_budget
    budget = {"budget_seconds": budget_seconds, "max_evals": max_evals}
    common = {"batch_size": batch_size, "seed": seed}
    curvature = {"lanczos_steps": lanczos_steps, "probe_rows": probe_rows}
    start = measure_curvature(problem, problem.init_model(seed), **curvature)
    traces, sweeps = [], {}
    for name in names:
        lr, source = lrs.get(name), "given"
        if lr is None:
            lr, source = _default_lr(problem, name, start.lambda_max)
            if lr is not None and lr_sweep:
                lr, sweeps[name] = _sweep(problem, name, lr, budget, common)
                source = "sweep"
        traces.append(_run(problem, name, lr, source, budget | common, curvature))
        if progress is not None:
            progress(_progress_line(traces[-1]))
    return Comparison(
        problem=problem.name,
        description=problem.describe(),
        convex=problem.convex,
        optimum=problem.optimum,
        settings={**budget, **common, "lr_sweep": lr_sweep, "problem": problem.settings()},
        curvature_start=start,
        traces=traces,
        sweeps=sweeps,
        landscape=_landscape(problem, traces),
    )


def _check_settings(
    names: list[str],
    lrs: dict[str, float],
    budget_seconds: float | None,
    max_evals: float | None,
    batch_size: int,
) -> None:
    """Raise one InvalidParameterError for every invalid name and setting."""
    known = OneOf(tuple(method_names()))
    positive = Interval(float, low=0.0, low_open=True, allow_none=True)
    values: dict[str, Any] = {f"optimizers[{i}]": n for i, n in enumerate(names)}
    rules: dict[str, Any] = dict.fromkeys(values, known)
    values.update({f"lrs[{n!r}]": lr for n, lr in lrs.items()})
    rules.update(dict.fromkeys((f"lrs[{n!r}]" for n in lrs), positive))
    values.update(budget_seconds=budget_seconds, max_evals=max_evals, batch_size=batch_size)
    rules.update(budget_seconds=positive, max_evals=positive, batch_size=Interval(int, low=1))
    check_params("compare_optimizers", values, rules)
    if not names:
        raise InvalidParameterError("compare_optimizers got no optimizers; name at least one.")


def _default_lr(problem: Problem, name: str, lambda_max: float) -> tuple[float | None, str]:
    """Return (lr, source): None for a full-batch method (its line search or unit step)."""
    if is_full_batch(name):
        return None, "line search"
    return sweep_centre(name, lambda_max, problem.adam_lr), "default"


def _sweep(
    problem: Problem,
    name: str,
    centre: float,
    budget: dict[str, float | None],
    common: dict[str, int],
) -> tuple[float, list[list[Any]]]:
    """Run ``name`` briefly at each multiple of ``centre``; return the best lr and the table.

    The smallest rate runs first, for 5 % of the budget; every other rate then gets the
    gradient evaluations it used, so that the candidates are compared at equal work.
    """
    short = {k: None if v is None else SWEEP_FRACTION * v for k, v in budget.items()}
    rows: list[list[Any]] = []

    def attempt(lr: float) -> float:
        trace, _ = run_optimizer(problem, name, lr=lr, **short, **common)
        score = _sweep_score(trace)
        rows.append([lr, score, trace.status])
        if len(rows) == 1 and trace.evals and trace.evals[-1] > 0:
            short.update(budget_seconds=None, max_evals=trace.evals[-1])
        return score

    losses = {centre * factor: attempt(centre * factor) for factor in sorted(SWEEP_FACTORS)}
    for _ in range(SWEEP_EXTENSIONS):  # the largest rate won: the optimum may lie beyond
        largest = max(losses)
        if min(losses, key=lambda lr: (losses[lr], lr)) != largest or losses[largest] == math.inf:
            break
        losses[largest * SWEEP_STEP] = attempt(largest * SWEEP_STEP)
    best = min(losses, key=lambda lr: (losses[lr], lr))
    return (centre if losses[best] == math.inf else best), rows


def _run(
    problem: Problem,
    name: str,
    lr: float | None,
    source: str,
    settings: dict[str, Any],
    curvature: dict[str, int],
) -> Trace:
    """Run one optimizer with ``settings`` (budget, batch size, seed); measure its end point."""
    trace, model = run_optimizer(problem, name, lr=lr, **settings)
    trace.lr_source = source
    if model is not None and math.isfinite(trace.final_loss):
        trace.curvature = _end_curvature(problem, model, trace, curvature)
    return trace


def _end_curvature(
    problem: Problem, model: nn.Module, trace: Trace, settings: dict[str, int]
) -> CurvatureSummary | None:
    """Measure the curvature at a run's end point; on an error note it in the trace."""
    try:
        return measure_curvature(problem, model, **settings)
    except (DeepdxError, RuntimeError) as exc:
        note = f"curvature not measured at the end point: {type(exc).__name__}: {exc}"
        trace.reason = f"{trace.reason}; {note}" if trace.reason else note
        return None


def _sweep_score(trace: Trace) -> float:
    """Return the mean f over the last quarter of a short run's points; inf if it diverged.

    A mean rather than the last value: a rate that oscillates (or a noisy minibatch
    method that happens to end low) is judged by where it keeps the objective.
    """
    tail = trace.loss[-max(1, len(trace.loss) // 4) :]
    score = float(np.mean(tail)) if tail else math.inf
    return math.inf if trace.status == "diverged" or not math.isfinite(score) else score


def _progress_line(trace: Trace) -> str:
    """Return ``[name] status  f=...  evals  seconds`` for one finished run."""
    if not trace.loss:
        return f"[{trace.optimizer}] {trace.status}: {trace.reason.splitlines()[0][:120]}"
    limit = stability_limit(trace.optimizer, trace.lr)
    edge = "" if limit is None else f"  2/lr-limit {limit:.3g}"
    return (
        f"[{trace.optimizer}] {trace.status}  f {trace.final_loss:.6g}  "
        f"evals {trace.evals[-1]:.1f}  cpu {trace.cpu_seconds[-1]:.2f}s{edge}"
    )


@torch.no_grad()
def _landscape(problem: Problem, traces: list[Trace]) -> dict[str, Any] | None:
    """Return f on a grid around the paths, for a problem of exactly 2 parameters."""
    points = [p for t in traces for p in t.points if len(p) == 2 and all(map(math.isfinite, p))]
    if not points:
        return None
    xy = np.asarray(points)  # (m, 2)
    low, high = xy.min(axis=0), xy.max(axis=0)
    margin = 0.15 * np.maximum(high - low, 0.5)  # (2,)
    axes = [np.linspace(low[i] - margin[i], high[i] + margin[i], LANDSCAPE_GRID) for i in (0, 1)]
    model = problem.init_model()
    loss = np.empty((LANDSCAPE_GRID, LANDSCAPE_GRID))  # (G, G): loss[j, i] at (x_i, y_j)
    for j, y_value in enumerate(axes[1]):
        for i, x_value in enumerate(axes[0]):
            vector_to_parameters(torch.tensor([x_value, y_value]).double(), model.parameters())
            loss[j, i] = float(problem.loss(model))
    return {"x": axes[0].tolist(), "y": axes[1].tolist(), "loss": loss.tolist()}
