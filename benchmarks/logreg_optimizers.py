"""Benchmark deepdx's full-batch optimizers on L2-regularised logistic regression.

The problem is multinomial logistic regression on the ``mnist5k`` train split (3,500
digits after :func:`~deepdx.data.prepare` with ``seed=0``, standardized), flattened to
784 float64 features, 10 classes. The objective, for ``nn.Linear(784, 10)``, is

    f(W, b) = (1/n) Σ_i CE(W x_i + b, y_i) + (λ/2) ‖W‖²,   λ = 1 / (C n).

scikit-learn's ``LogisticRegression(C=C)`` minimises ``C Σ_i CE_i + ½ ‖W‖²`` (the
intercept is not penalised), which is ``C n · f``: the two share their minimiser, and
f* is read off with our f at each reference solution. The reference optimum f* is the
smaller of scikit-learn's (``lbfgs``, ``tol=1e-10``) and SciPy's (``L-BFGS-B``,
``ftol=0``, ``gtol=1e-10``) values. Every deepdx optimizer starts, like both references,
from W = 0, b = 0 and runs one iteration per ``step`` until the relative error
``(f − f*) / |f*|`` is at most 1e-6, it stalls, or the time cap is spent.

=============  ================================================================
``X``          (n, 784) float64 standardized pixels, n = 3,500
``y``          (n,) int64 class indices in 0..9
``W``, ``b``   (10, 784) weights and (10,) biases (7,850 parameters)
``C``          scikit-learn's inverse regularisation strength, λ = 1 / (C n)
``f*``         the reference optimum; ``rel`` = (f − f*) / |f*|
=============  ================================================================

Evaluations: a closure call (loss and gradient) counts as one function+gradient
evaluation; scikit-learn reports iterations only (``n_iter_``), SciPy ``nfev``.
Hessian-free also uses curvature-vector products, counted apart (CG iterations).
With ``curvature="ggn"`` the curvature outputs are the logits stacked over
``sqrt(λ) Wᵀ`` and the loss on them is ``CE + ½ ‖·‖²``, so the Gauss-Newton matrix is
the Gauss-Newton matrix of the cross-entropy plus λI on W: exact for the regulariser.
The GGN run has no preconditioner: Martens' diagonal needs one per-sample gradient for
each of the 4,284 output rows, about 9 s per iteration here, for no fewer iterations.
Newton is skipped: 7,850 parameters exceed its ``max_params`` (4,096), and raising
it means a 490 MB dense Hessian built from 7,850 Hessian-vector products per iteration.

Run::

    python benchmarks/logreg_optimizers.py --C 1.0 --time-cap 45 --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import Tensor, nn

import deepdx.data
from deepdx.optim import LBFGS, GradientDescent, HessianFree, NonlinearCG

Optimizer = GradientDescent | NonlinearCG | LBFGS | HessianFree
TARGET = 1e-6
STALL_STEPS = 20
N_FEATURES, N_CLASSES = 784, 10


@dataclass
class Row:
    """One line of the results table."""

    name: str
    f: float
    evals: str
    seconds: float
    hvps: str = "—"


@dataclass
class Problem:
    """The data and regularisation of the benchmark objective."""

    X: Tensor  # (n, 784) float64
    y: Tensor  # (n,) int64
    C: float

    @property
    def lam(self) -> float:
        """Return λ = 1 / (C n)."""
        return 1.0 / (self.C * self.X.shape[0])


def load_problem(C: float) -> Problem:
    """Return the mnist5k train split as float64 (n, 784) features and int64 labels."""
    parts, _ = deepdx.data.prepare(deepdx.data.load("mnist5k"), seed=0)
    X = torch.from_numpy(parts.train.X).reshape(-1, N_FEATURES).double()  # (n, 784)
    return Problem(X, torch.from_numpy(parts.train.y), C)


def objective(problem: Problem, W: Tensor, b: Tensor) -> Tensor:
    """Return f(W, b) = mean cross-entropy + (λ/2) ‖W‖² (a 0-d tensor)."""
    logits = problem.X @ W.T + b  # (n, 10)
    return F.cross_entropy(logits, problem.y) + 0.5 * problem.lam * W.square().sum()


# ----------------------------------------------------------------------------- references


def run_sklearn(problem: Problem) -> tuple[Row, float]:
    """Fit scikit-learn's lbfgs logistic regression; return its row and f at its solution."""
    model = LogisticRegression(C=problem.C, tol=1e-10, max_iter=10000)
    start = time.perf_counter()
    model.fit(problem.X.numpy(), problem.y.numpy())
    seconds = time.perf_counter() - start
    W, b = torch.from_numpy(model.coef_), torch.from_numpy(model.intercept_)  # (10, 784), (10,)
    f = float(objective(problem, W, b))
    return Row("scikit-learn lbfgs", f, f"{int(model.n_iter_[0])} iter", seconds), f


def run_scipy(problem: Problem) -> tuple[Row, float]:
    """Minimise f with SciPy's L-BFGS-B (ftol=0, gtol=1e-10); return its row and f."""
    n_params = N_CLASSES * (N_FEATURES + 1)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        flat = torch.from_numpy(theta).requires_grad_(True)  # (7850,)
        W = flat[: N_CLASSES * N_FEATURES].view(N_CLASSES, N_FEATURES)  # (10, 784)
        f = objective(problem, W, flat[N_CLASSES * N_FEATURES :])
        (grad,) = torch.autograd.grad(f, flat)  # (7850,)
        return float(f.detach()), grad.numpy()

    options = {"ftol": 0.0, "gtol": 1e-10, "maxiter": 20000, "maxfun": 40000}
    start = time.perf_counter()
    result = scipy.optimize.minimize(
        fun, np.zeros(n_params), jac=True, method="L-BFGS-B", options=options
    )
    seconds = time.perf_counter() - start
    row = Row("SciPy L-BFGS-B", float(result.fun), f"{result.nfev} nfev", seconds)
    return row, float(result.fun)


# ----------------------------------------------------------------------------- deepdx


def make_optimizers(model: nn.Linear, name: str) -> Optimizer:
    """Return the deepdx optimizer ``name`` on ``model``'s parameters, stopping rules off."""
    params = list(model.parameters())
    off: dict[str, Any] = {"tolerance_grad": 0.0, "tolerance_change": 0.0}
    if name == "GradientDescent (strong Wolfe)":
        return GradientDescent(params, line_search="strong_wolfe", **off)
    if name == "NonlinearCG (PR+)":
        return NonlinearCG(params, beta="pr+", **off)
    if name == "LBFGS (m=10)":
        return LBFGS(params, max_iter=1, max_eval=25, **off)
    if name == "HessianFree (Hessian)":
        return HessianFree(params, curvature="hessian", **off)
    return HessianFree(params, curvature="ggn", preconditioner=None, **off)


def ggn_inputs(problem: Problem, model: nn.Linear) -> dict[str, Callable]:
    """Return HessianFree's GGN inputs: logits stacked over sqrt(λ) Wᵀ, CE + ½ ‖·‖²."""
    n, scale = problem.X.shape[0], problem.lam**0.5

    def outputs_fn() -> Tensor:
        return torch.cat([model(problem.X), scale * model.weight.T])  # (n + 784, 10)

    def loss_on_outputs(z: Tensor) -> Tensor:
        return F.cross_entropy(z[:n], problem.y) + 0.5 * z[n:].square().sum()

    return {"outputs_fn": outputs_fn, "loss_on_outputs": loss_on_outputs}


def run_deepdx(problem: Problem, name: str, *, f_star: float, time_cap: float) -> Row:
    """Run one deepdx optimizer from zero until rel <= 1e-6, a stall or the time cap."""
    model = nn.Linear(N_FEATURES, N_CLASSES).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    optimizer, calls = make_optimizers(model, name), [0]
    extra = ggn_inputs(problem, model) if "GGN" in name else {}

    def closure() -> Tensor:
        calls[0] += 1
        optimizer.zero_grad()
        loss = objective(problem, model.weight, model.bias)
        loss.backward()
        return loss

    seconds, hvps, best, stalled = 0.0, 0, float("inf"), 0
    while seconds < time_cap and stalled < STALL_STEPS:
        start = time.perf_counter()
        optimizer.step(closure, **extra)
        seconds += time.perf_counter() - start
        hvps += optimizer.state[model.weight].get("cg_iters", 0)
        with torch.no_grad():
            f = float(objective(problem, model.weight, model.bias))
        stalled = stalled + 1 if f >= best else 0
        best = min(best, f)
        if (f - f_star) / abs(f_star) <= TARGET:
            break
    return Row(name, best, f"{calls[0]} f+g", seconds, str(hvps) if "Hessian" in name else "—")


# ----------------------------------------------------------------------------- table


def print_table(rows: list[Row], f_star: float) -> None:
    """Print the Markdown results table."""
    print("| optimizer | reached 1e-6 | final rel. error | evaluations | Hv products | seconds |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        rel = (row.f - f_star) / abs(f_star)
        reached = "yes" if rel <= TARGET else "no"
        print(
            f"| {row.name} | {reached} | {rel:.2e} | {row.evals} | {row.hvps} | {row.seconds:.2f} |"
        )


def main() -> None:
    """Parse the options, run the references and every optimizer, print the table."""
    parser = argparse.ArgumentParser(
        description="Benchmark deepdx optimizers on logistic regression."
    )
    parser.add_argument("--C", type=float, default=1.0, help="scikit-learn's C")
    parser.add_argument("--time-cap", type=float, default=45.0, help="seconds per optimizer")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = load_problem(args.C)
    sk_row, f_sk = run_sklearn(problem)
    sp_row, f_sp = run_scipy(problem)
    f_star = min(f_sk, f_sp)
    print(f"n={problem.X.shape[0]} C={args.C} lambda={problem.lam:.3e} threads={args.threads}")
    print(f"f(sklearn)={f_sk:.12f} f(scipy)={f_sp:.12f} f*={f_star:.12f}\n")
    names = [
        "GradientDescent (strong Wolfe)",
        "NonlinearCG (PR+)",
        "LBFGS (m=10)",
        "HessianFree (Hessian)",
        "HessianFree (GGN + λI, no preconditioner)",
    ]
    rows = [sk_row, sp_row]
    rows += [run_deepdx(problem, n, f_star=f_star, time_cap=args.time_cap) for n in names]
    print_table(rows, f_star)
    print("\nNewton: skipped (7,850 parameters > max_params=4,096; dense Hessian 490 MB).")


if __name__ == "__main__":
    main()
