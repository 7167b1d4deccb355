"""Benchmark deepdx's full-batch optimizers on L2-regularised logistic regression.

The problem is multinomial logistic regression on the ``mnist5k`` train split (3,500
digits after :func:`~deepdx.data.prepare` with ``seed=0``, standardized with one mean
and one scale for all pixels), flattened to 784 float64 features, 10 classes. The
objective, for ``nn.Linear(784, 10)``, is

    f(W, b) = (1/n) Σ_i CE(W x_i + b, y_i) + (λ/2) ‖W‖²,   λ = 1 / (C n).

scikit-learn's ``LogisticRegression(C=C)`` minimises ``C Σ_i CE_i + ½ ‖W‖²`` (the
intercept is not penalised), which is ``C n · f``: the two share their minimiser, and
f* is read off with our f at each reference solution. The reference optimum f* is the
smaller of scikit-learn's (``lbfgs``, ``tol=1e-10``) and SciPy's (``L-BFGS-B``,
``ftol=0``, ``gtol=1e-10``) values. Every optimizer starts from W = 0, b = 0; each
deepdx optimizer runs one iteration per ``step`` until the relative error
``rel = (f − f*) / f*`` is at most 1e-6, it stalls (20 steps without a lower f), or
its CPU-time cap is spent. The SciPy row "to 1e-6" is the first L-BFGS-B iterate with
``rel <= 1e-6`` in the same run, the like-for-like comparison with the deepdx rows.

Settings (``--settings``)
-------------------------
``c1``
    C = 1 with an intercept (7,850 parameters), scikit-learn's default; 150 s CPU per
    first-order method, 30 s for Newton (one iteration: its 29 iterations to 1e-6 take
    about 17 minutes, ``--optimizers newton --newton-cap 1500``). Gradient descent with
    the strong-Wolfe search cannot reach 1e-6 here in any reasonable time, so the run
    measures the Hessian's extreme eigenvalues at the optimum by Lanczos and prints κ
    and the iterations GD would need: from its measured rate, and from the
    exact-line-search bound
    ``f_{k+1} − f* <= ((κ − 1)/(κ + 1))² (f_k − f*)`` (N&W Thm 3.3). The bias shift
    b + c·1 leaves f unchanged: an exact zero eigenvalue that no gradient method
    excites (the gradient is orthogonal to it), lifted to λ_max before Lanczos looks
    for λ_min+. Nothing bounds λ_min+ below by λ while the intercept is unpenalised:
    curvature along b comes only from the cross-entropy, tiny once the fit is
    confident (at C = 1 the eigenvector of λ_min+ is 99 % intercept, λ_min+ ≈ λ / 90),
    and with pixels that are not centred, directions that move W along the mean image
    x̄ while b compensates are penalised only about λ / (1 + ‖x̄‖²), ‖x̄‖² = 230.
``strong``
    C = 0.01 without an intercept (7,840 parameters), where every optimizer reaches
    1e-6 within its cap (60 s CPU, 300 s for Newton). Without an intercept the
    Hessian is H_CE + λI with H_CE ⪰ 0, so λ_min >= λ and κ <= 1 + λ_max(H_CE) / λ;
    the run measures κ ≈ 350. A stronger C alone does not make GD practical while
    the intercept is there: Lanczos gives κ ≈ 3.7e4 at C = 0.01 with it.

Measurement
-----------
CPU seconds are ``time.process_time()`` of the whole process with
``torch.set_num_threads(1)`` and ``threadpool_limits(1)`` (so robust to other load on
the machine); wall seconds are printed too. Evaluations: a closure call (loss and
gradient) counts as one f+g evaluation; scikit-learn reports iterations only
(``n_iter_``), SciPy ``nfev``. Hessian(-vector) products: Newton builds its dense
Hessian from P batched products per iteration (:func:`deepdx.curvature.hessian`, chunks
of 267 basis vectors); Hessian-free counts its CG iterations. With ``curvature="ggn"``
the curvature outputs are the logits stacked over ``sqrt(λ) Wᵀ`` and the loss on them is
``CE + ½ ‖·‖²``, so the Gauss-Newton matrix is exact for the regulariser; that run has
no preconditioner (Martens' diagonal needs one per-sample gradient for each of the
4,284 output rows). Newton is given ``max_params=8000``: its three dense (P, P) float64
matrices take 1.4 GB. ``GradientDescent (Armijo, BB)`` takes the Barzilai-Borwein
step as the first trial of a monotone Armijo backtracking search
(``initial_step="bb"``).

=============  ================================================================
``X``          (n, 784) float64 standardized pixels, n = 3,500
``y``          (n,) int64 class indices in 0..9
``W``, ``b``   (10, 784) weights and (10,) biases (absent in ``strong``)
``C``          scikit-learn's inverse regularisation strength, λ = 1 / (C n)
``f*``         the reference optimum; ``rel`` = (f − f*) / f*
``κ``          λ_max / λ_min+ of the Hessian at the optimum
=============  ================================================================

Run (about 12 minutes of CPU time on one core; ``--settings``, ``--optimizers`` and the
caps select less or more; ``--hessian-timing`` only times the dense Hessian, batched and
one column per product, about 2 minutes per setting)::

    python benchmarks/logreg_optimizers.py
    python benchmarks/logreg_optimizers.py --settings c1 --optimizers newton --newton-cap 1500
    python benchmarks/logreg_optimizers.py --settings c1 --hessian-timing
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

import deepdx.data
from deepdx.curvature import hessian, hessian_operator, top_eigenvalues
from deepdx.optim import LBFGS, GradientDescent, HessianFree, Newton, NonlinearCG

TARGET = 1e-6
STALL_STEPS = 20
N_FEATURES, N_CLASSES = 784, 10
NEWTON_MAX_PARAMS = 8000
LANCZOS_STEPS = 600


@dataclass(frozen=True)
class Setting:
    """One problem setting and the CPU-second caps of its deepdx runs."""

    C: float
    intercept: bool
    time_cap: float
    newton_cap: float


SETTINGS = {
    "c1": Setting(C=1.0, intercept=True, time_cap=150.0, newton_cap=30.0),
    "strong": Setting(C=0.01, intercept=False, time_cap=60.0, newton_cap=300.0),
}


@dataclass
class Row:
    """One line of a results table; ``f`` is the best objective value reached."""

    name: str
    f: float
    cpu: float
    wall: float
    evals: str
    products: str = "—"
    trace: list[tuple[float, ...]] = field(default_factory=list)  # per step, f last


@dataclass
class Problem:
    """The data and regularisation of the benchmark objective."""

    X: Tensor  # (n, 784) float64
    y: Tensor  # (n,) int64
    C: float
    intercept: bool

    @property
    def lam(self) -> float:
        """Return λ = 1 / (C n)."""
        return 1.0 / (self.C * self.X.shape[0])

    @property
    def n_params(self) -> int:
        """Return P = 7,850 with the intercept, 7,840 without."""
        return N_CLASSES * (N_FEATURES + int(self.intercept))


class Clock:
    """CPU (``process_time``) and wall (``perf_counter``) seconds since construction."""

    def __init__(self) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def lap(self) -> tuple[float, float]:
        """Return (CPU seconds, wall seconds) so far."""
        return time.process_time() - self.cpu0, time.perf_counter() - self.wall0


def load_problem(setting: Setting) -> Problem:
    """Return the mnist5k train split as float64 (n, 784) features and int64 labels."""
    parts, _ = deepdx.data.prepare(deepdx.data.load("mnist5k"), seed=0)
    X = torch.from_numpy(parts.train.X).reshape(-1, N_FEATURES).double()  # (n, 784)
    return Problem(X, torch.from_numpy(parts.train.y), setting.C, setting.intercept)


def objective(problem: Problem, W: Tensor, b: Tensor | None) -> Tensor:
    """Return f(W, b) = mean cross-entropy + (λ/2) ‖W‖² (a 0-d tensor)."""
    logits = problem.X @ W.T  # (n, 10)
    if b is not None:
        logits = logits + b
    return F.cross_entropy(logits, problem.y) + 0.5 * problem.lam * W.square().sum()


def split(problem: Problem, theta: Tensor) -> tuple[Tensor, Tensor | None]:
    """Return W (10, 784) and b (10,) (None without intercept) as views of theta (P,)."""
    W = theta[: N_CLASSES * N_FEATURES].view(N_CLASSES, N_FEATURES)
    return W, theta[N_CLASSES * N_FEATURES :] if problem.intercept else None


# ----------------------------------------------------------------------------- references


def run_sklearn(problem: Problem) -> Row:
    """Fit scikit-learn's lbfgs logistic regression (tol 1e-10) and return its row."""
    model = LogisticRegression(
        C=problem.C, tol=1e-10, max_iter=10000, fit_intercept=problem.intercept
    )
    clock = Clock()
    model.fit(problem.X.numpy(), problem.y.numpy())
    cpu, wall = clock.lap()
    W = torch.from_numpy(model.coef_)  # (10, 784)
    b = torch.from_numpy(model.intercept_) if problem.intercept else None  # (10,)
    f = float(objective(problem, W, b))
    return Row("scikit-learn lbfgs (tol 1e-10)", f, cpu, wall, f"{int(model.n_iter_[0])} iter")


def run_scipy(problem: Problem) -> tuple[Row, Tensor]:
    """Minimise f with SciPy's L-BFGS-B (gtol 1e-10); return its row and its solution."""
    calls, clock, trace = [0], Clock(), []  # trace: (cpu, wall, nfev, f) per iteration

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        calls[0] += 1
        flat = torch.from_numpy(theta).requires_grad_(True)  # (P,)
        f = objective(problem, *split(problem, flat))
        (grad,) = torch.autograd.grad(f, flat)  # (P,)
        return float(f.detach()), grad.numpy()

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        trace.append((*clock.lap(), calls[0], float(intermediate_result.fun)))

    options = {"ftol": 0.0, "gtol": 1e-10, "maxiter": 20000, "maxfun": 40000}
    result = scipy.optimize.minimize(
        fun,
        np.zeros(problem.n_params),
        jac=True,
        method="L-BFGS-B",
        options=options,
        callback=callback,
    )
    cpu, wall = clock.lap()
    row = Row("SciPy L-BFGS-B (gtol 1e-10)", float(result.fun), cpu, wall, f"{result.nfev} nfev")
    row.trace = trace  # (cpu, wall, nfev, f) per iteration
    return row, torch.from_numpy(result.x)


def scipy_to_target(row: Row, f_star: float) -> Row | None:
    """Return SciPy's row at its first iterate with rel <= 1e-6 (None if it has none)."""
    for cpu, wall, nfev, f in row.trace:
        if (f - f_star) / f_star <= TARGET:
            return Row("SciPy L-BFGS-B, first iterate at 1e-6", f, cpu, wall, f"{nfev} nfev")
    return None


# ----------------------------------------------------------------------------- curvature


@dataclass
class Spectrum:
    """Extreme eigenvalues of the Hessian at the optimum, by Lanczos."""

    lam_max: float
    lam_min: float  # λ_min+, with the bias-shift null direction lifted away
    converged: bool  # False: lam_min is only an upper bound
    intercept_share: float  # ‖v_b‖ of λ_min+'s unit eigenvector v
    cpu: float

    @property
    def kappa(self) -> float:
        """Return κ = λ_max / λ_min+."""
        return self.lam_max / self.lam_min


def extreme_eigenvalues(problem: Problem, theta: Tensor) -> Spectrum:
    """Return λ_max and λ_min+ of the Hessian at theta (P,) by Lanczos."""
    clock = Clock()
    flat = theta.clone().requires_grad_(True)  # (P,)
    operator = hessian_operator(lambda: objective(problem, *split(problem, flat)), [flat])
    lam_max = float(top_eigenvalues(operator, flat.detach(), 1, max_iter=300, tol=1e-8)[0])
    null = torch.zeros_like(theta)  # (P,) the bias shift b + c 1, an exact zero eigenvalue
    if problem.intercept:
        null[N_CLASSES * N_FEATURES :] = N_CLASSES**-0.5

    def lifted(v: Tensor) -> Tensor:
        return operator(v) + lam_max * null.dot(v) * null  # (P,) null vector -> λ_max

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        values, vectors = top_eigenvalues(
            lifted,
            flat.detach(),
            1,
            which="smallest",
            max_iter=LANCZOS_STEPS,
            tol=1e-10,
            return_eigenvectors=True,
        )  # (1,), (P, 1)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    share = float(vectors[N_CLASSES * N_FEATURES :, 0].norm()) if problem.intercept else 0.0
    return Spectrum(lam_max, float(values[0]), converged, share, clock.lap()[0])


# ----------------------------------------------------------------------------- deepdx

Optimizer = GradientDescent | NonlinearCG | LBFGS | Newton | HessianFree

OPTIMIZERS = {
    "gd": "GradientDescent (strong Wolfe)",
    "gd-bb": "GradientDescent (Armijo, BB)",
    "cg": "NonlinearCG (PR+)",
    "lbfgs": "LBFGS (m=10)",
    "newton": "Newton (LM, dense Hessian)",
    "hf": "HessianFree (Hessian)",
    "hf-ggn": "HessianFree (GGN + λI, no preconditioner)",
}


def make_optimizer(model: nn.Linear, name: str) -> Optimizer:
    """Return the deepdx optimizer ``name`` on ``model``'s parameters, stopping rules off."""
    params = list(model.parameters())
    off: dict[str, Any] = {"tolerance_grad": 0.0, "tolerance_change": 0.0}
    if name == "GradientDescent (strong Wolfe)":
        return GradientDescent(params, line_search="strong_wolfe", **off)
    if name == "GradientDescent (Armijo, BB)":
        return GradientDescent(params, line_search="armijo", initial_step="bb", **off)
    if name == "NonlinearCG (PR+)":
        return NonlinearCG(params, beta="pr+", **off)
    if name == "LBFGS (m=10)":
        return LBFGS(params, max_iter=1, max_eval=25, **off)
    if name == "Newton (LM, dense Hessian)":
        return Newton(params, max_params=NEWTON_MAX_PARAMS, **off)
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


def run_deepdx(problem: Problem, name: str, *, f_star: float, cap: float) -> Row:
    """Run one deepdx optimizer from zero until rel <= 1e-6, a stall or ``cap`` CPU seconds."""
    model = nn.Linear(N_FEATURES, N_CLASSES, bias=problem.intercept).double()
    for p in model.parameters():
        nn.init.zeros_(p)
    optimizer, calls = make_optimizer(model, name), [0]
    extra = ggn_inputs(problem, model) if "GGN" in name else {}

    def closure() -> Tensor:
        calls[0] += 1
        optimizer.zero_grad()
        loss = objective(problem, model.weight, model.bias)
        loss.backward()
        return loss

    row, products, stalled = Row(name, math.inf, 0.0, 0.0, ""), 0, 0
    while row.cpu < cap and stalled < STALL_STEPS:
        clock = Clock()
        optimizer.step(closure, **extra)
        cpu, wall = clock.lap()
        row.cpu, row.wall = row.cpu + cpu, row.wall + wall
        if isinstance(optimizer, Newton):
            products += problem.n_params  # one dense Hessian per step
        elif isinstance(optimizer, HessianFree):
            products += optimizer.state[model.weight]["cg_iters"]
        with torch.no_grad():
            f = float(objective(problem, model.weight, model.bias))
        stalled = stalled + 1 if f >= row.f else 0
        row.f = min(row.f, f)
        row.trace.append((row.cpu, f))
        if (f - f_star) / f_star <= TARGET:
            break
    row.evals = f"{calls[0]} f+g"
    row.products = str(products) if "Hessian" in name else "—"
    return row


# ----------------------------------------------------------------------------- reports


def print_table(rows: list[Row], f_star: float) -> None:
    """Print the Markdown results table."""
    print(
        "| optimizer | reached 1e-6 | final rel. error | CPU s | wall s | f+g evaluations "
        "| Hessian(-vector) products |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        rel = (row.f - f_star) / f_star
        reached = "yes" if rel <= TARGET else "no"
        print(
            f"| {row.name} | {reached} | {rel:.2e} | {row.cpu:.1f} | {row.wall:.1f} "
            f"| {row.evals} | {row.products} |"
        )


def print_gd_forecast(row: Row, f_star: float, kappa: float) -> None:
    """Print the iterations and CPU time GD would need to reach 1e-6 from where it stopped."""
    rels = np.array([(t[-1] - f_star) / f_star for t in row.trace])  # (k,) after each step
    k = len(rels)
    if rels[-1] <= TARGET or k < 40:
        return
    quarters = [np.arange(q * k // 4, (q + 1) * k // 4) for q in (1, 2, 3)]
    rates = [math.exp(np.polyfit(idx, np.log(rels[idx]), 1)[0]) for idx in quarters]
    per_iter = row.cpu / k
    more = math.log(rels[-1] / TARGET) / -math.log(rates[-1]) if rates[-1] < 1 else math.inf
    q = ((kappa - 1.0) / (kappa + 1.0)) ** 2
    rel0 = (math.log(N_CLASSES) - f_star) / f_star  # f(0) = ln 10
    bound = math.log(rel0 / TARGET) / -math.log(q)
    print(
        f"- {row.name}: rel {rels[-1]:.2e} after {k:,} iterations ({1e3 * per_iter:.1f} ms "
        f"CPU each). Rate per iteration over the 2nd, 3rd and 4th quarter of the run: "
        f"{', '.join(f'{r:.6f}' for r in rates)}; at the last rate, 1e-6 after ~{more:,.0f} "
        f"more iterations (~{more * per_iter / 60:,.0f} min CPU), an optimistic figure while "
        f"the rate keeps slowing. Exact-line-search bound ((κ-1)/(κ+1))² = {q:.8f} per "
        f"iteration: {bound:,.0f} iterations from rel(0) = {rel0:.1f} "
        f"(~{bound * per_iter / 3600:,.1f} h CPU)."
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch and the BLAS / OpenMP pools of NumPy and scikit-learn on one thread."""
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield


def run_setting(name: str, setting: Setting, optimizers: list[str]) -> None:
    """Run the references, the curvature measurement and every deepdx optimizer."""
    problem = load_problem(setting)
    sk_row = run_sklearn(problem)
    sp_row, theta = run_scipy(problem)
    f_star = min(sk_row.f, sp_row.f)
    spectrum = extreme_eigenvalues(problem, theta)
    print(
        f"\n## Setting {name}: C={setting.C}, intercept={setting.intercept}, "
        f"P={problem.n_params}, n={problem.X.shape[0]}, lambda={problem.lam:.4e}"
    )
    print(f"f(sklearn)={sk_row.f:.13f}  f(scipy)={sp_row.f:.13f}  f*={f_star:.13f}")
    notes = [] if spectrum.converged else ["Lanczos not converged: an upper bound"]
    if problem.intercept:
        notes.append(f"eigenvector {100 * spectrum.intercept_share**2:.1f} % intercept")
    remark = f" ({'; '.join(notes)})" if notes else ""
    print(
        f"Hessian at x* (Lanczos, {spectrum.cpu:.1f} s CPU): "
        f"lambda_max={spectrum.lam_max:.6g}, lambda_min+={spectrum.lam_min:.8g}{remark}, "
        f"lambda={problem.lam:.8g}, kappa={spectrum.kappa:.4g}"
    )
    rows = [sk_row, sp_row]
    target_row = scipy_to_target(sp_row, f_star)
    rows += [target_row] if target_row is not None else []
    for key in optimizers:
        opt_name = OPTIMIZERS[key]
        cap = setting.newton_cap if key == "newton" else setting.time_cap
        rows.append(run_deepdx(problem, opt_name, f_star=f_star, cap=cap))
    print()
    print_table(rows, f_star)
    print()
    for row in rows:
        if row.name.startswith("GradientDescent"):
            print_gd_forecast(row, f_star, spectrum.kappa)


def print_hessian_timing(problem: Problem) -> None:
    """Print the CPU time of one dense Hessian at W = 0, batched and one column at a time."""
    theta = torch.zeros(problem.n_params, dtype=torch.float64, requires_grad=True)  # (P,)
    for chunk_size in (None, 1):
        clock = Clock()
        H = hessian(
            lambda: objective(problem, *split(problem, theta)),
            [theta],
            max_params=NEWTON_MAX_PARAMS,
            chunk_size=chunk_size,
        )  # (P, P)
        cpu, wall = clock.lap()
        how = "one column per product" if chunk_size == 1 else "batched chunks"
        print(
            f"Dense Hessian ({H.shape[0]} x {H.shape[1]}, {how}): {cpu:.1f} s CPU, "
            f"{wall:.1f} s wall"
        )
        del H


def main() -> None:
    """Parse the options and run the chosen settings."""
    parser = argparse.ArgumentParser(
        description="Benchmark deepdx optimizers on L2-regularised logistic regression."
    )
    parser.add_argument("--settings", default="c1,strong", help="comma-separated: c1, strong")
    parser.add_argument(
        "--optimizers", default=",".join(OPTIMIZERS), help=f"subset of {', '.join(OPTIMIZERS)}"
    )
    parser.add_argument("--time-cap", type=float, help="CPU seconds per first-order optimizer")
    parser.add_argument("--newton-cap", type=float, help="CPU seconds for Newton")
    parser.add_argument(
        "--hessian-timing",
        action="store_true",
        help="only time the dense Hessian, batched and one column per product",
    )
    args = parser.parse_args()
    caps = {"time_cap": args.time_cap, "newton_cap": args.newton_cap}
    caps = {key: value for key, value in caps.items() if value is not None}
    clock = Clock()
    with one_thread():
        for name in args.settings.split(","):
            setting = dataclasses.replace(SETTINGS[name], **caps)
            if args.hessian_timing:
                print(f"\n## Setting {name}")
                print_hessian_timing(load_problem(setting))
            else:
                run_setting(name, setting, args.optimizers.split(","))
    cpu, wall = clock.lap()
    print(f"\nTotal: {cpu:.0f} s CPU, {wall:.0f} s wall (torch and BLAS on one thread).")


if __name__ == "__main__":
    main()
