"""Optimizer studies: convex vs non-convex objectives, seen through traces and curvature.

=========================  ==============================================================
name                       what
=========================  ==============================================================
compare_optimizers         run several optimizers on one problem under one budget
Comparison                 their traces, the curvature, ``save`` (JSON, PNG, markdown)
local_optima               one MLP from many seeds next to logistic regression
LocalOptima                spread of final losses and of solutions, ``save``
Problem                    what a problem provides (start, objective, closures, GGN)
make_problem, PROBLEMS     the built-in problems by name
QuadraticProblem           ill-conditioned convex quadratic
RosenbrockProblem          Rosenbrock's valley
LogisticRegressionProblem  L2-regularised softmax regression on a data set (convex)
MLPProblem                 the same for an MLP (non-convex)
AutoencoderProblem         deep sigmoid autoencoder (Martens' CURVES net)
measure_curvature          λ_max, λ_min and κ of the Hessian at a point
run_optimizer, Trace       one optimizer under a budget, and what it records
=========================  ==============================================================
"""

from __future__ import annotations

from deepdx.study.compare import DEFAULT_OPTIMIZERS, Comparison, compare_optimizers
from deepdx.study.local_optima import LocalOptima, SeedRuns, local_optima
from deepdx.study.problem import Problem
from deepdx.study.problems import (
    PROBLEMS,
    AutoencoderProblem,
    LogisticRegressionProblem,
    MLPProblem,
    QuadraticProblem,
    RosenbrockProblem,
    make_problem,
)
from deepdx.study.spectrum import CurvatureSummary, measure_curvature
from deepdx.study.trace import Trace, run_optimizer

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "PROBLEMS",
    "AutoencoderProblem",
    "Comparison",
    "CurvatureSummary",
    "LocalOptima",
    "LogisticRegressionProblem",
    "MLPProblem",
    "Problem",
    "QuadraticProblem",
    "RosenbrockProblem",
    "SeedRuns",
    "Trace",
    "compare_optimizers",
    "local_optima",
    "make_problem",
    "measure_curvature",
    "run_optimizer",
]
