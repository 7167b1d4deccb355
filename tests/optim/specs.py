"""The OptimizerSpec registry: every full-batch optimizer joins the shared tests here.

To add an optimizer, append an ``OptimizerSpec`` to ``OPTIMIZERS``. A test asks for one
spec per optimizer by taking an argument named in ``SPEC_FIXTURES`` (``spec`` for all of
them, ``<capability>_spec`` for those that declare the capability); see conftest.py.

Capabilities
------------
line_search    backs off from non-finite trial points instead of raising
param_groups   accepts several parameter groups with different ``lr``
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from deepdx.optim import LBFGS, GradientDescent, HessianFree, Newton, NonlinearCG
from tests.optim.problems import Objective, make_closure, run_until_stalled


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build, run and misconfigure one optimizer in the shared tests."""

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    kwargs: dict[str, Any]
    steps: int
    capabilities: frozenset[str] = frozenset()
    bad_kwargs: tuple[tuple[dict[str, Any], str], ...] = ()
    slow_tests: frozenset[str] = field(default_factory=frozenset)

    def __str__(self) -> str:
        return self.name

    def make(self, params: Any, **overrides: Any) -> torch.optim.Optimizer:
        """Build the optimizer with the spec's kwargs, overridden by ``overrides``."""
        return self.factory(params, **{**self.kwargs, **overrides})

    def minimize(
        self, objective: Objective, x0: Sequence[float] | Tensor, **overrides: Any
    ) -> tuple[Tensor, torch.optim.Optimizer]:
        """Run up to ``steps`` calls to step(); stop early once x stops changing."""
        x = torch.as_tensor(x0, dtype=torch.float64).clone().requires_grad_(True)
        optimizer = self.make([x], **overrides)
        run_until_stalled(optimizer, make_closure(optimizer, objective, [x]), self.steps)
        return x.detach().clone(), optimizer


TIGHT = {"tolerance_grad": 1e-10, "tolerance_change": 1e-15}

OPTIMIZERS: list[OptimizerSpec] = [
    OptimizerSpec(
        name="GradientDescent-armijo",
        factory=GradientDescent,
        kwargs={"line_search": "armijo", "max_iter": 50, **TIGHT},
        steps=2000,
        capabilities=frozenset({"line_search", "param_groups"}),
        bad_kwargs=(
            ({"lr": -1.0}, r"`lr` of GradientDescent must be a float > 0; got -1\.0\."),
            (
                {"line_search": "wolfe"},
                r"`line_search` .* got 'wolfe'\. Did you mean 'strong_wolfe'\?",
            ),
            ({"max_iter": 0, "max_ls": 2.5}, r"`max_iter` .* an int >= 1; got 0\..*`max_ls`"),
            ({"c1": 0.5, "c2": 0.1}, r"needs c1 < c2; got c1=0\.5, c2=0\.1"),
        ),
        slow_tests=frozenset({"test_optimizer_solves_rosenbrock"}),
    ),
    OptimizerSpec(
        name="GradientDescent-strong_wolfe",
        factory=GradientDescent,
        kwargs={"line_search": "strong_wolfe", "max_iter": 50, **TIGHT},
        steps=2000,
        capabilities=frozenset({"line_search", "param_groups"}),
        bad_kwargs=(({"tolerance_grad": -1e-3}, r"`tolerance_grad` .* a float >= 0; got -0\.001"),),
        slow_tests=frozenset({"test_optimizer_solves_rosenbrock"}),
    ),
    *(
        OptimizerSpec(
            name=f"NonlinearCG-{beta}",
            factory=NonlinearCG,
            kwargs={"beta": beta, "max_iter": 10, **TIGHT},
            steps=500,
            capabilities=frozenset({"line_search", "param_groups"}),
            bad_kwargs=(
                ({"beta": "pr"}, r"`beta` of NonlinearCG must be one of .*Did you mean 'pr\+'\?"),
                ({"line_search": None}, r"`line_search` of NonlinearCG must be one of"),
                ({"restart": 0}, r"`restart` of NonlinearCG must be an int >= 1 or None; got 0"),
            ),
        )
        for beta in ("pr+", "fr", "hs")
    ),
    OptimizerSpec(
        name="LBFGS",
        factory=LBFGS,
        kwargs={"max_iter": 5, **TIGHT},
        steps=200,
        capabilities=frozenset({"line_search", "param_groups"}),
        bad_kwargs=(
            ({"history_size": 0}, r"`history_size` of LBFGS must be an int >= 1; got 0\."),
            ({"line_search_fn": "wolfe"}, r"Did you mean 'strong_wolfe'\?"),
            ({"lr": float("nan")}, r"`lr` of LBFGS must be a float > 0; got nan\."),
            ({"c2": 1.0}, r"`c2` of LBFGS must be a float in \(0, 1\); got 1\.0\."),
        ),
    ),
    OptimizerSpec(
        name="Newton-armijo",
        factory=Newton,
        kwargs={"line_search": "armijo", "max_iter": 5, **TIGHT},
        steps=100,
        capabilities=frozenset({"line_search", "param_groups"}),
        bad_kwargs=(
            ({"damping": -1.0}, r"`damping` of Newton must be a float >= 0; got -1\.0\."),
            ({"line_search": "armjio"}, r"`line_search` of Newton .* Did you mean 'armijo'\?"),
            ({"max_params": 0}, r"`max_params` of Newton must be an int >= 1; got 0\."),
        ),
    ),
    OptimizerSpec(
        name="Newton-lm",
        factory=Newton,
        kwargs={"max_iter": 5, **TIGHT},
        steps=100,
        capabilities=frozenset({"param_groups"}),
    ),
    OptimizerSpec(
        name="HessianFree-hessian",
        factory=HessianFree,
        kwargs={"curvature": "hessian", "max_iter": 5, **TIGHT},
        steps=200,
        capabilities=frozenset({"line_search", "param_groups"}),
        bad_kwargs=(
            (
                {"curvature": "gnn"},
                r"`curvature` of HessianFree must be one of .*Did you mean 'ggn'\?",
            ),
            ({"damping": 0.0}, r"`damping` of HessianFree must be a float > 0; got 0\.0\."),
            (
                {"warm_start_decay": 1.5},
                r"`warm_start_decay` of HessianFree must be a float in \[0, 1\]",
            ),
            ({"cg_min_iter": 300}, r"needs cg_min_iter <= cg_max_iter; got cg_min_iter=300"),
        ),
    ),
]

SPEC_FIXTURES: dict[str, str | None] = {
    "spec": None,
    "line_search_spec": "line_search",
    "param_groups_spec": "param_groups",
}
