"""The built-in problems of the optimizer study, from a convex quadratic to a deep autoencoder.

==============  ======  ==================================================================
name            convex  objective f(θ)
==============  ======  ==================================================================
``quadratic``   yes     ½ (x − x*)ᵀ A (x − x*), A with eigenvalues log-spaced in [1, κ]
``rosenbrock``  no      100 (x₁ − x₀²)² + (1 − x₀)², from (−1.2, 1)
``logreg``      yes     mean softmax cross-entropy of a linear model + (λ/2) ‖θ‖²
``mlp``         no      the same for a one-hidden-layer tanh MLP
``autoencoder`` no      mean over images of the summed pixel cross-entropy of a deep
                        sigmoid autoencoder's reconstruction (+ (λ/2) ‖θ‖²)
==============  ======  ==================================================================

The plain functions live in :mod:`deepdx.study.functions`, the nets on data in
:mod:`deepdx.study.networks`; both explain how their objective is split into outputs
and a loss convex in them, for Gauss-Newton products.
"""

from __future__ import annotations

import inspect
from typing import Any

from deepdx._validation import OneOf, check_keys, check_params
from deepdx.study.functions import QuadraticProblem, RosenbrockProblem
from deepdx.study.networks import AutoencoderProblem, LogisticRegressionProblem, MLPProblem
from deepdx.study.problem import Problem

__all__ = [
    "PROBLEMS",
    "AutoencoderProblem",
    "LogisticRegressionProblem",
    "MLPProblem",
    "QuadraticProblem",
    "RosenbrockProblem",
    "make_problem",
]

PROBLEMS: dict[str, type[Problem]] = {
    "quadratic": QuadraticProblem,
    "rosenbrock": RosenbrockProblem,
    "logreg": LogisticRegressionProblem,
    "mlp": MLPProblem,
    "autoencoder": AutoencoderProblem,
}
"""Built-in problems by name."""


def make_problem(name: str, **options: Any) -> Problem:
    """Build the built-in problem ``name`` with keyword ``options``.

    Parameters
    ----------
    name : str
        One of :data:`PROBLEMS`.
    **options
        Keyword arguments of that problem's class, e.g. ``data="mnist5k"``.

    Returns
    -------
    Problem

    Raises
    ------
    InvalidParameterError
        If the name or an option is unknown (with a did-you-mean), or an option is invalid.

    Examples
    --------
    >>> make_problem("quadratic", dim=3).A.shape
    torch.Size([3, 3])
    """
    check_params("make_problem", {"problem": name}, {"problem": OneOf(tuple(PROBLEMS))})
    cls = PROBLEMS[name]
    known = [p for p in inspect.signature(cls).parameters if p != "self"]
    check_keys(f"problem {name!r}", options, known)
    return cls(**options)
