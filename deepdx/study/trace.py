"""One optimizer on one problem under a budget: the loop, and the trace it records.

What a trace counts
-------------------
- **time**: CPU seconds (``time.process_time``, all threads of the process) and wall
  seconds (``time.perf_counter``) spent inside ``optimizer.step`` and drawing the
  minibatch, summed over steps. The full objective a trace records at its points is
  evaluated *outside* the timed region, so recording costs the optimizer nothing.
- **evals**: gradient evaluations in full-batch equivalents: a closure call on the full
  batch counts 1, on a minibatch of b of n rows b/n. Calls a line search or a
  Hessian-free backtracking makes count alike (they are forward passes, some without
  the backward pass).
- **curvature products**: Hessian-vector products of Newton's dense Hessian (P per
  iteration) and Gauss-Newton products of Hessian-free's CG (one per CG iteration).

Points are recorded at steps 0..10, then whenever the step count has grown by 15 %, or
1 % of the budget has been spent since the last point (and at least twice what the last
point cost to evaluate, so that recording never costs much more than half the budget),
and at the end: a few hundred points at most, spaced evenly on a log scale of steps early
and in time late.

Symbols
-------
==========  ===========================================================================
``n``       rows of the problem's data; ``b`` rows of a minibatch (b/n evaluations)
``P``       parameters of the model (Newton spends P products per iteration)
``f₀``      the objective at the start point
==========  ===========================================================================

How a run ends (``status``)
---------------------------
``budget`` the time or evaluation budget is spent; ``converged`` the parameters did not
change for 3 steps in a row (the optimizer's own tolerances stopped it);
``diverged`` the objective became non-finite or grew past 1000 (|f₀| + 1), or the
optimizer raised :class:`~deepdx.exceptions.NumericalError`; ``skipped`` the optimizer
refused the problem (Newton beyond its ``max_params``); ``failed`` any other deepdx or
torch error, with its message in ``reason``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from deepdx._random import make_generator
from deepdx.exceptions import DeepdxError, InvalidParameterError, NumericalError
from deepdx.study.methods import (
    build_optimizer,
    curvature_products,
    is_full_batch,
    iterations_done,
)
from deepdx.study.problem import Problem
from deepdx.study.spectrum import CurvatureSummary

__all__ = ["STATUSES", "Trace", "run_optimizer"]

STATUSES = ("budget", "converged", "diverged", "skipped", "failed")
DIVERGENCE_FACTOR = 1e3
"""A loss above DIVERGENCE_FACTOR·(|f₀| + 1) counts as diverged."""
RECORD_FRACTION = 0.01
"""A point is recorded at least every RECORD_FRACTION of the budget."""
RECORD_GROWTH = 1.15
"""... and whenever the step count has grown by this factor (after step 10)."""
STALL_STEPS = 3


@dataclass
class Trace:
    """The record of one optimizer's run; parallel lists hold one entry per point.

    Attributes
    ----------
    optimizer : str
        Registry name.
    lr : float or None
        Learning rate (first trial step for line-search methods).
    lr_source : str
        Where ``lr`` came from: ``"given"``, ``"sweep"``, ``"default"``.
    status, reason : str
        How the run ended (module docstring) and why, in words.
    steps : list of int
        ``optimizer.step`` calls so far.
    evals : list of float
        Gradient evaluations in full-batch equivalents.
    curvature_products : list of int
        Curvature-vector products so far.
    cpu_seconds, wall_seconds : list of float
        Time spent in the optimizer so far.
    loss : list of float
        The full objective f at the point.
    points : list of list of float
        θ at each point, only for problems with at most 2 parameters (paths).
    curvature : CurvatureSummary or None
        Curvature at the end point, when measured.
    """

    optimizer: str
    lr: float | None = None
    lr_source: str = "default"
    status: str = "budget"
    reason: str = ""
    steps: list[int] = field(default_factory=list)
    evals: list[float] = field(default_factory=list)
    curvature_products: list[int] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    curvature: CurvatureSummary | None = None

    @property
    def final_loss(self) -> float:
        """The last recorded f, NaN when nothing ran."""
        return self.loss[-1] if self.loss else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Return every field as JSON-able data (the curvature as a dict)."""
        data = {k: v for k, v in vars(self).items() if k != "curvature"}
        data["curvature"] = None if self.curvature is None else self.curvature.to_dict()
        return data


def run_optimizer(
    problem: Problem,
    name: str,
    *,
    lr: float | None = None,
    budget_seconds: float | None = 2.0,
    max_evals: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[Trace, nn.Module | None]:
    """Run optimizer ``name`` on ``problem`` from its seeded start until the budget is spent.

    Parameters
    ----------
    problem : Problem
        The objective.
    name : str
        A registered optimizer name (:func:`deepdx.study.methods.method_names`).
    lr : float or None, default=None
        Learning rate; None for the registry default.
    budget_seconds : float or None, default=2.0
        CPU seconds of optimizer steps; None for no time limit.
    max_evals : float or None, default=None
        Gradient evaluations (full-batch equivalents); None for no limit.
    batch_size : int, default=64
        Rows per minibatch of the minibatch methods.
    seed : int, default=0
        Seed of the start point and of the minibatch order.

    Returns
    -------
    trace : Trace
    model : nn.Module or None
        The model at the end point; None when the optimizer was skipped.

    Examples
    --------
    >>> from deepdx.study.problems import RosenbrockProblem
    >>> trace, _ = run_optimizer(RosenbrockProblem(), "lbfgs", max_evals=200)
    >>> trace.status, trace.final_loss < 1e-10
    ('converged', True)
    """
    trace = Trace(name, lr=lr)
    model = problem.init_model(seed)
    try:
        optimizer = build_optimizer(name, model, lr=lr)
    except InvalidParameterError as exc:
        trace.status, trace.reason = "skipped", str(exc)
        return trace, None
    trace.lr = optimizer.param_groups[0]["lr"]
    budget = _Budget(budget_seconds, max_evals)
    _Run(problem, model, optimizer, trace, budget).run(batch_size, seed)
    return trace, model


@dataclass(frozen=True)
class _Budget:
    """When a run stops, and how often it records."""

    seconds: float | None
    evals: float | None

    def spent(self, seconds: float, evals: float) -> bool:
        """Return whether either limit is reached."""
        over_time = self.seconds is not None and seconds >= self.seconds
        return over_time or (self.evals is not None and evals >= self.evals)

    def record_due(self, seconds: float, evals: float) -> bool:
        """Return whether 1 % of a limit has passed (``seconds``, ``evals`` since last point)."""
        by_time = self.seconds is not None and seconds >= RECORD_FRACTION * self.seconds
        return by_time or (self.evals is not None and evals >= RECORD_FRACTION * self.evals)


class _Run:
    """The step loop of :func:`run_optimizer`, with its counters."""

    def __init__(
        self,
        problem: Problem,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        trace: Trace,
        budget: _Budget,
    ) -> None:
        self.problem, self.model, self.optimizer = problem, model, optimizer
        self.trace, self.budget = trace, budget
        self.params = list(model.parameters())
        self.evals, self.products, self.cpu, self.wall, self.steps = 0.0, 0, 0.0, 0.0, 0
        self.f0 = math.nan
        self.record_cost = 0.0

    def run(self, batch_size: int, seed: int) -> None:
        """Step until the budget is spent, the run stalls, diverges or fails."""
        step = self._stepper(batch_size, make_generator(seed))
        self.f0 = self._record()
        unchanged = 0
        while self.trace.status == "budget":
            before = parameters_to_vector(self.params).clone()  # (P,)
            if not self._timed(step):
                break
            moved = not torch.equal(before, parameters_to_vector(self.params))
            unchanged = 0 if moved else unchanged + 1
            if unchanged >= STALL_STEPS:
                self.trace.status = "converged"
            done = self.trace.status != "budget" or self.budget.spent(self.cpu, self.evals)
            if done or self._record_due():
                self._check(self._record())
            if done:
                break

    def _stepper(self, batch_size: int, generator: torch.Generator) -> Callable[[], None]:
        """Return a function that makes one optimizer step (full batch or next minibatch)."""
        name, problem, n = self.trace.optimizer, self.problem, self.problem.n_samples
        extra = problem.ggn_inputs(self.model) if name == "hf" else {}
        if is_full_batch(name):
            closure = self._counted(problem.closure(self.model, self.optimizer), 1.0)
            return lambda: self._step(closure, extra)
        batches = problem.minibatches(batch_size, generator)

        def minibatch_step() -> None:
            rows = next(batches)  # (b,)
            closure = problem.closure(self.model, self.optimizer, None if n == 1 else rows)
            self._step(self._counted(closure, len(rows) / n), extra)

        return minibatch_step

    def _step(self, closure: Callable[[], Tensor], extra: dict[str, Any]) -> None:
        """Call ``optimizer.step`` and count its curvature products."""
        before = iterations_done(self.optimizer)
        step = cast(Callable[..., object], self.optimizer.step)  # torch types closures as float
        step(closure, **extra)
        done = iterations_done(self.optimizer) - before
        self.products += curvature_products(self.trace.optimizer, self.optimizer, done)

    def _counted(self, closure: Callable[[], Tensor], weight: float) -> Callable[[], Tensor]:
        """Return ``closure`` that adds ``weight`` evaluations per call."""

        def counted() -> Tensor:
            self.evals += weight
            return closure()

        return counted

    def _timed(self, step: Callable[[], None]) -> bool:
        """Make one timed step; on an error set the status and return False."""
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            step()
        except NumericalError as exc:
            self.trace.status, self.trace.reason = "diverged", str(exc)
        except (DeepdxError, RuntimeError) as exc:
            self.trace.status, self.trace.reason = "failed", f"{type(exc).__name__}: {exc}"
        self.cpu += time.process_time() - cpu
        self.wall += time.perf_counter() - wall
        self.steps += 1
        if self.trace.status != "budget":
            self._record()
            return False
        return True

    def _record_due(self) -> bool:
        """Return whether this step gets a point (module docstring)."""
        trace = self.trace
        last_step = trace.steps[-1]
        if self.steps <= 10 or self.steps >= RECORD_GROWTH * last_step:
            return True
        seconds = self.cpu - trace.cpu_seconds[-1]
        if self.budget.seconds is not None and seconds < 2.0 * self.record_cost:
            return False  # under a time budget, recording may not eat the steps' time
        return self.budget.record_due(seconds, self.evals - trace.evals[-1])

    @torch.no_grad()
    def _record(self) -> float:
        """Append the current point to the trace; return f there (not timed)."""
        cost = time.process_time()
        f = float(self.problem.loss(self.model))
        self.record_cost = time.process_time() - cost
        trace = self.trace
        trace.steps.append(self.steps)
        trace.evals.append(self.evals)
        trace.curvature_products.append(self.products)
        trace.cpu_seconds.append(self.cpu)
        trace.wall_seconds.append(self.wall)
        trace.loss.append(f)
        if sum(p.numel() for p in self.params) <= 2:
            trace.points.append(parameters_to_vector(self.params).tolist())
        return f

    def _check(self, f: float) -> None:
        """Set the status to diverged when f is non-finite or far above f₀."""
        limit = DIVERGENCE_FACTOR * (abs(self.f0) + 1.0)
        if not math.isfinite(f) or f > limit:
            self.trace.status = "diverged"
            self.trace.reason = (
                f"the objective reached {f:.3g} (start {self.f0:.3g}, limit {limit:.3g})"
            )
