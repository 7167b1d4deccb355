"""Deep autoencoder on CURVES: Hessian-free against SGD with momentum, nonlinear CG and L-BFGS.

The problem is Martens (2010)'s first benchmark, after Hinton & Salakhutdinov (2006): a deep
encoder with a mirrored decoder (:class:`DeepAutoencoder`), logistic hidden units, 6 linear
code units, logistic outputs, on the procedural CURVES images of :mod:`deepdx.data.curves`.
Two scales (``--scale``; every other option overrides the preset):

=======  ======================================================================  ==========
scale    net and data                                                            run time
=======  ======================================================================  ==========
small    14 x 14 images (28 x 28 average-pooled 2 x 2), 196-200-100-50-25-12-6   ~7 min
         (the paper's depth, half its widths, the 6-unit code kept), 1,000       on 2 cores
         training images, 150 CPU s per optimizer, HF curvature on all of them
paper    28 x 28 images, 784-400-200-100-50-25-6, 20,000 training images, 120    ~10 min
         CPU s per optimizer, HF curvature on one of 4 chunks (Martens)          on 2 cores
=======  ======================================================================  ==========

Every optimizer starts from the same sparse initialisation (Martens 2010: 15 N(0, 1)
incoming weights per unit, zero biases; ``init="sparse"``, ``--seed``) and minimises the
matching loss of logistic outputs, the cross-entropy summed over the pixels and averaged
over the images, as Martens' HF code does. No weight decay.

Reported error: squared error per image, ``(1/N) Σ_b Σ_pixels (sigmoid(z_b) − x_b)²``
(summed over pixels, averaged over images: the ``L2`` error of Martens' code and the
"average squared error per image" of HS2006), on the whole training and test sets. At the
small scale the sum runs over 196 pooled pixels, so its values are not on the paper's scale.

Equal budgets: each optimizer gets the same CPU time (``time.process_time`` of its
process, ``torch.set_num_threads(1)``) inside its own steps; evaluating the errors is
not counted. The runs go to ``--jobs`` (2) worker processes of one thread each. Wall
seconds are printed too. The full-batch closure reuses its last loss and gradient when
called again at the same parameters (each full-batch method starts a ``step`` where the
last one's line search ended).

=================  ====================================================================
optimizer          configuration
=================  ====================================================================
HF                 :class:`~deepdx.optim.HessianFree` with Martens' settings where they
                   fit: Gauss-Newton products on one of ``--curvature-chunks`` chunks
                   of the training set, cycled (4 at the paper scale, 1 at the small);
                   gradient, CG backtracking and line search on the whole training
                   set; λ₀ = ``--damping`` (45, for the curvature of the per-image
                   mean loss, as in Martens' code); at most 250 CG iterations,
                   ε = 5e-4, warm start 0.95; preconditioner from
                   :func:`~deepdx.optim.hessian_free.empirical_fisher_diagonal` on the
                   first ``--fisher-batch`` (1000) images of the chunk
SGD + momentum     ``torch.optim.SGD``, Nesterov momentum 0.9, minibatches of 200; lr
                   from a sweep over 0.003, 0.01, 0.03 (and 0.1 at the small scale;
                   ``--sweep-budget`` CPU s of steps each, not charged to SGD's
                   budget)
NonlinearCG        :class:`~deepdx.optim.NonlinearCG` PR+, strong Wolfe, full batch
L-BFGS             :class:`~deepdx.optim.LBFGS`, m = 20, strong Wolfe, full batch
=================  ====================================================================

At the paper scale it also times Martens' diagonal preconditioner both ways on 128 and
512 images: the per-output-row default of :meth:`HessianFree.step` (O(N²)) against
:func:`~deepdx.optim.hessian_free.empirical_fisher_diagonal` (one vectorised per-sample
gradient per image).

Run::

    python benchmarks/curves_autoencoder.py --out curves-results                 # small
    python benchmarks/curves_autoencoder.py --out curves-results --scale paper
    python benchmarks/curves_autoencoder.py --out curves-results --scale paper --n-train 2000

It prints the errors over CPU time, a table of each optimizer at a quarter, half and all
of the budget, Martens (2010)'s Table 1 next to the final errors (each paper value marked
verified or not), and writes ``curves_autoencoder_<scale>.png`` (train and test squared
error against CPU seconds) into ``--out``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor

import deepdx.data
from deepdx._random import make_generator, seeded_torch
from deepdx.nets.autoencoder import DeepAutoencoder
from deepdx.optim import LBFGS, HessianFree, NonlinearCG
from deepdx.optim.hessian_free import _fisher_diagonal, empirical_fisher_diagonal

DESCRIPTION = "Deep autoencoder on CURVES: HF vs SGD+momentum, nonlinear CG and L-BFGS."
SGD_BATCH = 200


@dataclass(frozen=True)
class Scale:
    """One size of the experiment: the images, the net, the budgets and HF's chunks."""

    pool: int  # images are average-pooled pool x pool (28 x 28 -> 28/pool x 28/pool)
    sizes: tuple[int, ...]  # encoder widths; the decoder mirrors them
    n_train: int
    n_test: int
    budget: float  # CPU s per optimizer
    sweep_budget: float  # CPU s per SGD learning rate
    curvature_chunks: int  # HF's curvature batch is 1/k of the training set
    sgd_rates: tuple[float, ...]


SCALES = {
    # Martens (2010) / HS2006: 784-400-200-100-50-25-6, 20,000 images.
    "paper": Scale(
        1, (400, 200, 100, 50, 25, 6), 20000, 10000, 120.0, 20.0, 4, (0.003, 0.01, 0.03)
    ),
    # Scaled down to fit 10 minutes on two cores: 14 x 14 images, the same depth, half the
    # widths (the 6-unit code kept), 1,000 images, curvature on all of them.
    "small": Scale(
        2, (200, 100, 50, 25, 12, 6), 1000, 10000, 150.0, 15.0, 1, (0.003, 0.01, 0.03, 0.1)
    ),
}

# Martens (2010) Table 1, CURVES row: squared error per image (train, test). No copy of the
# paper could be read; these values come from memory and are NOT verified.
PAPER_ROWS = (
    ("PT + NCG (HS2006 fine-tuning)", 0.74, 0.82, "unverified"),
    ("RAND + HF (Martens 2010)", 0.11, 0.20, "unverified"),
    ("PT + HF (Martens 2010)", 0.10, 0.21, "unverified"),
)
HS2006_TEST = 1.44  # HS2006 Fig. 2 caption, 6-d autoencoder, test set: verified


@dataclass
class Problem:
    """Training and test images, flattened: (N, 784) and (N_test, 784) float32."""

    X: Tensor
    X_test: Tensor


@dataclass
class Trace:
    """Errors of one optimizer over the CPU seconds spent in its steps."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------- objective


def cross_entropy(logits: Tensor, X: Tensor) -> Tensor:
    """Return the mean over images of the cross-entropy summed over pixels (the loss)."""
    return F.binary_cross_entropy_with_logits(logits, X, reduction="sum") / len(X)


def sample_cross_entropy(logits: Tensor, x: Tensor) -> Tensor:
    """Return the summed cross-entropy of a batch of one image (for the Fisher)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


@torch.no_grad()
def squared_error(model: DeepAutoencoder, X: Tensor) -> float:
    """Return (1/N) Σ_b Σ_pixels (sigmoid(z_b) − x_b)², the reported error."""
    total = sum(
        float((torch.sigmoid(model(chunk)) - chunk).square().sum()) for chunk in X.split(5000)
    )
    return total / len(X)


def make_model(seed: int, n_inputs: int, sizes: tuple[int, ...]) -> DeepAutoencoder:
    """Return the autoencoder with Martens' sparse initialisation drawn from ``seed``."""
    with seeded_torch(seed):
        model = DeepAutoencoder((n_inputs,), sizes, init="sparse")
    model.reset_parameters(generator=make_generator(seed))
    return model


def load_problem(n_train: int, n_test: int, pool: int) -> Problem:
    """Return the CURVES images, average-pooled ``pool`` x ``pool``, as float32 rows."""
    ds = deepdx.data.load("curves", n_train=n_train, n_test=n_test)
    images = F.avg_pool2d(torch.from_numpy(ds.X), pool)  # (N, 1, 28/pool, 28/pool)
    X = images.reshape(len(images), -1)  # (n_train + n_test, (28/pool)²)
    is_test = torch.from_numpy(ds.is_test)
    return Problem(X[~is_test].contiguous(), X[is_test].contiguous())


# ----------------------------------------------------------------------------- timing


def run_for(
    name: str, model: DeepAutoencoder, step: Callable[[], None], problem: Problem, *, budget: float
) -> Trace:
    """Call ``step`` until ``budget`` CPU seconds are spent in it; record errors in between."""
    trace, cpu, wall, next_eval = Trace(name), 0.0, 0.0, 0.0
    eval_every = budget / 20
    while True:
        if cpu >= next_eval or cpu >= budget:
            trace.cpu.append(cpu)
            trace.wall.append(wall)
            trace.train.append(squared_error(model, problem.X))
            trace.test.append(squared_error(model, problem.X_test))
            next_eval = cpu + eval_every
            print(f"  {name:<16} cpu {cpu:6.1f}s  train {trace.train[-1]:7.3f}", flush=True)
        if cpu >= budget:
            return trace
        c0, w0 = time.process_time(), time.perf_counter()
        step()
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0


# ----------------------------------------------------------------------------- optimizers


@dataclass
class Evaluation:
    """Loss and gradients at the flat parameters ``x`` (n,)."""

    x: Tensor
    loss: Tensor
    grads: list[Tensor]


def full_batch_closure(optimizer: torch.optim.Optimizer, model: DeepAutoencoder, X: Tensor):
    """Return the closure: zero grads, cross-entropy on X, backward, return the loss.

    A call at the parameters of the last call that ran ``backward()`` restores that call's
    loss and gradients instead of recomputing them: HF, nonlinear CG and L-BFGS all end a
    ``step`` by evaluating the point they accept and start the next one there again.
    """
    params = list(model.parameters())
    cache: list[Evaluation] = []

    def closure() -> Tensor:
        x = torch.cat([p.detach().reshape(-1) for p in params])  # (n,)
        if cache and torch.equal(x, cache[0].x):
            for p, g in zip(params, cache[0].grads, strict=True):
                p.grad = g.clone()
            return cache[0].loss
        optimizer.zero_grad()
        loss = cross_entropy(model(X), X)
        loss.backward()  # a no-op when HF evaluates a backtracking candidate
        grads = [p.grad for p in params]
        if all(g is not None for g in grads):
            cache[:] = [Evaluation(x, loss.detach(), [g.clone() for g in grads if g is not None])]
        return loss

    return closure


def hf_step(
    model: DeepAutoencoder, X: Tensor, args: argparse.Namespace, stats: dict[str, int]
) -> Callable[[], None]:
    """Return one HF iteration: curvature on the next chunk, gradient on all of X."""
    optimizer = HessianFree(
        model.parameters(), damping=args.damping, tolerance_grad=0.0, tolerance_change=0.0
    )
    closure = full_batch_closure(optimizer, model, X)
    chunks = X.split(-(-len(X) // args.curvature_chunks))  # Martens cycles 4 chunks
    first = next(model.parameters())

    def step() -> None:
        Xc = chunks[stats["iterations"] % len(chunks)]  # (C, 784)
        Xf = Xc[: args.fisher_batch]
        optimizer.step(
            closure,
            outputs_fn=lambda: model(Xc),
            loss_on_outputs=lambda z: cross_entropy(z, Xc),
            fisher_fn=lambda: empirical_fisher_diagonal(model, sample_cross_entropy, Xf, Xf),
        )
        state = optimizer.state[first]
        stats["iterations"] += 1
        stats["cg"] += state["cg_iters"]
        if args.verbose:
            print(
                f"    HF cg {state['cg_iters']:3d}  λ {state['damping']:.3g}  ρ {state['rho']:.3f}"
            )

    return step


def sgd_step(model: DeepAutoencoder, X: Tensor, lr: float, seed: int) -> Callable[[], None]:
    """Return one SGD step with Nesterov momentum 0.9 on the next shuffled minibatch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    generator = make_generator(seed)

    def batches() -> Iterator[Tensor]:
        while True:
            yield from X[torch.randperm(len(X), generator=generator)].split(SGD_BATCH)

    stream = batches()

    def step() -> None:
        Xb = next(stream)  # (SGD_BATCH, 784)
        optimizer.zero_grad()
        cross_entropy(model(Xb), Xb).backward()
        optimizer.step()

    return step


def full_batch_step(model: DeepAutoencoder, X: Tensor, name: str) -> Callable[[], None]:
    """Return one iteration of NonlinearCG (PR+) or L-BFGS (m = 20) on all of X."""
    if name == "NonlinearCG":
        optimizer: torch.optim.Optimizer = NonlinearCG(
            model.parameters(), tolerance_grad=0.0, tolerance_change=0.0
        )
    else:
        optimizer = LBFGS(
            model.parameters(),
            history_size=20,
            max_iter=1,
            max_eval=25,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    closure = full_batch_closure(optimizer, model, X)

    def step() -> None:
        optimizer.step(closure)

    return step


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Job:
    """One optimizer run: ``name`` is "HF", "SGD", "NonlinearCG" or "L-BFGS"."""

    name: str
    budget: float
    lr: float = 0.0
    label: str = ""


def run_job(problem: Problem, args: argparse.Namespace, job: Job) -> tuple[Trace, dict[str, int]]:
    """Run ``job`` from the seeded initialisation on one thread; return its trace and HF stats."""
    torch.set_num_threads(1)
    model = make_model(args.seed, problem.X.shape[1], args.sizes)
    stats = {"iterations": 0, "cg": 0}
    if job.name == "HF":
        step = hf_step(model, problem.X, args, stats)
    elif job.name == "SGD":
        step = sgd_step(model, problem.X, job.lr, args.seed)
    else:
        step = full_batch_step(model, problem.X, job.name)
    return run_for(job.label or job.name, model, step, problem, budget=job.budget), stats


def run_jobs(
    problem: Problem, args: argparse.Namespace, jobs: list[Job]
) -> list[tuple[Trace, dict[str, int]]]:
    """Run ``jobs`` in ``--jobs`` worker processes (one thread each), in order of ``jobs``."""
    if args.jobs == 1:
        return [run_job(problem, args, job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        return list(pool.map(partial(run_job, problem, args), jobs))


def run_all(problem: Problem, args: argparse.Namespace) -> tuple[list[Trace], list[str]]:
    """Sweep SGD's rate, then run the four optimizers for ``--budget`` CPU s each."""
    sweep = [Job("SGD", args.sweep_budget, lr, f"SGD lr={lr}") for lr in args.sgd_rates]
    swept = run_jobs(problem, args, sweep)
    finals = {job.lr: trace.train[-1] for job, (trace, _) in zip(sweep, swept, strict=True)}
    lr = min(finals, key=lambda rate: finals[rate] if math.isfinite(finals[rate]) else math.inf)
    notes = [
        f"SGD lr {lr} chosen from {args.sgd_rates} by a sweep of {args.sweep_budget:.0f} CPU s "
        "of steps per rate (not charged to SGD's budget)"
    ]
    print(notes[0])
    jobs = [
        Job("HF", args.budget),
        Job("SGD", args.budget, lr, f"SGD+momentum (lr={lr})"),
        Job("NonlinearCG", args.budget),
        Job("L-BFGS", args.budget),
    ]
    results = run_jobs(problem, args, jobs)
    stats = results[0][1]
    notes.append(f"HF: {stats['iterations']} iterations, {stats['cg']} CG iterations in all")
    return [trace for trace, _ in results], notes


def time_fisher(problem: Problem, sizes: tuple[int, ...]) -> list[str]:
    """Time the per-row default diagonal against empirical_fisher_diagonal on N images."""
    model, lines = make_model(0, problem.X.shape[1], SCALES["paper"].sizes), []
    params = list(model.parameters())
    empirical_fisher_diagonal(model, sample_cross_entropy, problem.X[:8], problem.X[:8])  # warm
    for n in sizes:
        Xn = problem.X[:n]
        start = time.process_time()
        old = _fisher_diagonal(lambda a=Xn: model(a), lambda z, a=Xn: cross_entropy(z, a), params)
        middle = time.process_time()
        new = empirical_fisher_diagonal(model, sample_cross_entropy, Xn, Xn)
        end = time.process_time()
        assert old is not None
        gap = float((old - new).abs().max() / new.abs().max())
        lines.append(
            f"Fisher diagonal, N={n}: per-row default {middle - start:.2f} CPU s, "
            f"empirical_fisher_diagonal {end - middle:.2f} CPU s "
            f"({(middle - start) / (end - middle):.0f}x), max rel. gap {gap:.1e}"
        )
        print(lines[-1], flush=True)
    return lines


# ----------------------------------------------------------------------------- report


def plot(traces: list[Trace], path: Path, title: str) -> Path:
    """Save train and test squared error against CPU seconds; return the PNG's path."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for trace in traces:
        for ax, errors in zip(axes, (trace.train, trace.test), strict=True):
            ax.plot(trace.cpu, errors, marker="o", markersize=3, label=trace.name)
    for ax, which in zip(axes, ("train", "test"), strict=True):
        ax.set(xlabel="CPU seconds in the optimizer (1 thread)", yscale="log")
        ax.set_title(f"{which} squared error per image")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("squared error per image")
    axes[0].legend()
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def print_tables(traces: list[Trace], budget: float) -> None:
    """Print the errors at a quarter and half of the budget and at the end, then the paper's."""
    marks = [budget / 4, budget / 2]
    header = " | ".join(f"train @ {m:.0f} s" for m in marks)
    print(f"\n| optimizer | {header} | train at end | test at end | CPU s | wall s |")
    print("|---|" + "---|" * (len(marks) + 4))
    for trace in traces:
        at = [[e for c, e in zip(trace.cpu, trace.train, strict=True) if c <= m][-1] for m in marks]
        cells = " | ".join(f"{v:.3f}" for v in at)
        print(
            f"| {trace.name} | {cells} | {trace.train[-1]:.3f} | {trace.test[-1]:.3f} "
            f"| {trace.cpu[-1]:.0f} | {trace.wall[-1]:.0f} |"
        )
    print("\n| source | train | test | status |\n|---|---|---|---|")
    for name, train, test, status in PAPER_ROWS:
        print(f"| Martens 2010 Table 1: {name} | {train:.2f} | {test:.2f} | {status} |")
    print(f"| HS2006 Fig. 2: pretrained autoencoder | — | {HS2006_TEST} | verified |")
    for trace in traces:
        print(
            f"| this run, {budget:.0f} CPU s: {trace.name} | {trace.train[-1]:.3f} "
            f"| {trace.test[-1]:.3f} | measured |"
        )


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG")
    parser.add_argument(
        "--scale", choices=tuple(SCALES), default="small", help="preset; options below override it"
    )
    parser.add_argument("--budget", type=float, help="CPU s per optimizer")
    parser.add_argument("--sweep-budget", type=float, help="CPU s per SGD lr")
    parser.add_argument("--n-train", type=int)
    parser.add_argument("--n-test", type=int)
    parser.add_argument("--curvature-chunks", type=int, help="HF curvature batch 1/k")
    parser.add_argument("--fisher-batch", type=int, default=1000, help="HF preconditioner N")
    parser.add_argument("--damping", type=float, default=45.0, help="HF's initial λ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--verbose", action="store_true", help="print every HF iteration")
    args = parser.parse_args()
    for name, value in vars(SCALES[args.scale]).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    """Run every optimizer, time the Fisher diagonal, print the tables, save the plot."""
    args = parse_args()
    torch.set_num_threads(1)
    wall0 = time.perf_counter()
    problem = load_problem(args.n_train, args.n_test, args.pool)
    net = "-".join(map(str, (problem.X.shape[1], *args.sizes)))
    print(
        f"CURVES ({args.scale}) n_train={len(problem.X)} n_test={len(problem.X_test)}; "
        f"{net} mirrored; {args.budget:.0f} CPU s each "
        "(time.process_time, 1 thread); evaluation not counted"
    )
    notes = time_fisher(problem, (128, 512)) if args.scale == "paper" else []
    traces, run_notes = run_all(problem, args)
    print_tables(traces, args.budget)
    title = f"CURVES autoencoder {net}, n_train={len(problem.X)}, {args.budget:.0f} CPU s each"
    print("\n" + "\n".join(notes + run_notes))
    print(f"plot: {plot(traces, args.out / f'curves_autoencoder_{args.scale}.png', title)}")
    print(f"total wall {time.perf_counter() - wall0:.0f} s")


if __name__ == "__main__":
    main()
