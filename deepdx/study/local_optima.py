"""Local optima, seen: one MLP trained from many seeds next to logistic regression.

Both models minimise softmax cross-entropy + (λ/2) ‖θ‖² on the same rows, each seed from
its own random initialisation, with L-BFGS run to a tight gradient tolerance. Logistic
regression's objective is strictly convex (the penalty covers the biases too), so every
seed must end at the same point; the MLP's is not, and different seeds end in different
minima. The spread is measured three ways:

- **final loss**: max − min over seeds (and relative to the smallest);
- **function distance**: ``d_ij = sqrt(mean_rows ‖p_i(x) − p_j(x)‖²)`` between the
  predicted class probabilities of seeds i and j on the training rows, and the share of
  rows whose predicted class differs. Invariant to every reparametrisation, hidden-unit
  permutations and sign flips included;
- **weight distance**: ``‖θ_i − θ_j‖ / ½(‖θ_i‖ + ‖θ_j‖)``, raw, and *aligned* for a
  one-hidden-layer MLP: the hidden units of j are matched to those of i by the Hungarian
  algorithm on the squared distance of (incoming weights, bias, outgoing weights), with
  a sign flip of all three allowed for odd activations (tanh), which leaves the function
  unchanged. A distance that stays large after alignment is a genuinely different
  solution, not a relabelling.

Symbols
-------
``N``       seeds; ``n`` rows; ``K`` classes; ``H`` hidden units; ``θ_i`` (P,) seed i's solution
``p_i``     (n, K) predicted probabilities of seed i's solution
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from deepdx._validation import Interval, check_params
from deepdx.nets import MLP
from deepdx.optim import LBFGS
from deepdx.study.problems import LogisticRegressionProblem, MLPProblem

__all__ = ["DISTINCT_TOL", "LocalOptima", "SeedRuns", "local_optima"]

DISTINCT_TOL = 1e-3
"""Solutions whose function distance is below this count as one (:attr:`SeedRuns.n_distinct`)."""
_ODD_ACTIVATIONS = ("tanh", "identity")
_T = TypeVar("_T")


@dataclass
class SeedRuns:
    """One model trained from each seed, and the distances between the solutions.

    Attributes
    ----------
    model : str
        What was trained, e.g. ``"mlp [16] tanh"``.
    seeds : list of int
        The N seeds.
    final_loss, grad_norm : list of float
        Final objective and max|∇f| per seed.
    n_iter : list of int
        L-BFGS iterations per seed.
    function_distance, disagreement, weight_distance : ndarray of shape (N, N)
        Pairwise distances (module docstring).
    aligned_distance : ndarray of shape (N, N) or None
        Weight distance after aligning hidden units; the raw distance for a model
        without hidden units; None for more than one hidden layer.
    """

    model: str
    seeds: list[int]
    final_loss: list[float]
    grad_norm: list[float]
    n_iter: list[int]
    function_distance: np.ndarray
    disagreement: np.ndarray
    weight_distance: np.ndarray
    aligned_distance: np.ndarray | None

    @property
    def loss_spread(self) -> float:
        """The final losses' max − min."""
        return float(np.ptp(self.final_loss))

    @property
    def relative_spread(self) -> float:
        """(max − min) / |min| of the final losses."""
        return self.loss_spread / max(abs(min(self.final_loss)), 1e-300)

    @property
    def n_distinct(self) -> int:
        """Solutions that differ by a function distance of at least :data:`DISTINCT_TOL`."""
        representatives: list[int] = []
        for i in range(len(self.seeds)):
            if all(self.function_distance[i, r] >= DISTINCT_TOL for r in representatives):
                representatives.append(i)
        return len(representatives)

    def summary(self) -> dict[str, Any]:
        """Return the headline numbers: spreads, mean and max distances, distinct solutions."""
        upper = np.triu_indices(len(self.seeds), k=1)
        aligned = self.aligned_distance
        return {
            "model": self.model,
            "loss_min": float(min(self.final_loss)),
            "loss_max": float(max(self.final_loss)),
            "loss_spread": self.loss_spread,
            "relative_spread": self.relative_spread,
            "max_grad_norm": float(max(self.grad_norm)),
            "mean_function_distance": float(self.function_distance[upper].mean()),
            "max_function_distance": float(self.function_distance[upper].max()),
            "mean_disagreement": float(self.disagreement[upper].mean()),
            "mean_weight_distance": float(self.weight_distance[upper].mean()),
            "mean_aligned_distance": None if aligned is None else float(aligned[upper].mean()),
            "n_distinct": self.n_distinct,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return every field as JSON-able data."""
        data = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in vars(self).items()}
        return {**data, "summary": self.summary()}


@dataclass
class LocalOptima:
    """The local-optima study: the MLP and logistic regression from the same seeds.

    Attributes
    ----------
    description : str
        The data and models in one sentence.
    settings : dict
        The arguments of :func:`local_optima`.
    logreg, mlp : SeedRuns
        The two models' runs.
    """

    description: str
    settings: dict[str, Any]
    logreg: SeedRuns
    mlp: SeedRuns

    def runs(self) -> list[SeedRuns]:
        """Return [logreg, mlp]."""
        return [self.logreg, self.mlp]

    def to_dict(self) -> dict[str, Any]:
        """Return everything as JSON-able data."""
        from deepdx.study.summary import jsonable

        return jsonable(
            {
                "description": self.description,
                "settings": self.settings,
                "logreg": self.logreg.to_dict(),
                "mlp": self.mlp.to_dict(),
            }
        )

    def summary_table(self) -> str:
        """Return the headline numbers of both models as a plain-text table."""
        from deepdx.study.local_summary import local_optima_table

        return local_optima_table(self)

    def save(self, directory: str | Path) -> Path:
        """Write the study into ``directory``; return it.

        Files: ``local_optima.json``, ``local_optima.png``, ``distances.png`` and
        ``summary.md``.
        """
        from deepdx.study.local_summary import save_local_optima

        return save_local_optima(self, Path(directory))


def local_optima(
    data: str = "digits",
    *,
    n_seeds: int = 10,
    hidden: Sequence[int] = (16,),
    activation: str = "tanh",
    l2: float = 1e-3,
    n_samples: int | None = 500,
    max_iter: int = 2000,
    tolerance_grad: float = 1e-8,
    progress: Callable[[str], None] | None = None,
) -> LocalOptima:
    """Train the MLP and logistic regression from seeds 0..N−1 to convergence; compare.

    Parameters
    ----------
    data : str, default="digits"
        A classification data set name.
    n_seeds : int, default=10
        N >= 2 seeds; seed s draws the initial weights of both models.
    hidden : sequence of int, default=(16,)
        Hidden widths of the MLP (aligned weight distances need exactly one layer).
    activation : str, default="tanh"
        Hidden activation of the MLP.
    l2 : float, default=1e-3
        λ of (λ/2) ‖θ‖² for both models (> 0 makes logistic regression strictly convex).
    n_samples : int or None, default=500
        Training rows used (a subset seeded with 0); None for all.
    max_iter : int, default=2000
        Most L-BFGS iterations per seed.
    tolerance_grad : float, default=1e-8
        L-BFGS stops when max|∇f| falls to this.
    progress : callable, optional
        Called with one line per trained model.

    Returns
    -------
    LocalOptima

    Raises
    ------
    InvalidParameterError
        If a setting is out of range.

    Examples
    --------
    >>> study = local_optima(n_seeds=3, hidden=(4,), n_samples=60, max_iter=300)
    >>> study.logreg.relative_spread < 1e-6, study.mlp.function_distance.shape
    (True, (3, 3))
    """
    check_params(
        "local_optima",
        {"n_seeds": n_seeds, "l2": l2, "max_iter": max_iter, "tolerance_grad": tolerance_grad},
        {
            "n_seeds": Interval(int, low=2),
            "l2": Interval(float, low=0.0, low_open=True),
            "max_iter": Interval(int, low=1),
            "tolerance_grad": Interval(float, low=0.0),
        },
    )
    options = {"l2": l2, "n_samples": n_samples}
    problems = {
        "logreg": LogisticRegressionProblem(data, **options),
        "mlp": MLPProblem(data, hidden=hidden, activation=activation, **options),
    }
    runs = {
        key: _train_seeds(problem, n_seeds, max_iter, tolerance_grad, progress)
        for key, problem in problems.items()
    }
    mlp = problems["mlp"]
    settings = {
        "data": data, "n_seeds": n_seeds, "hidden": list(hidden), "activation": activation,
        "l2": l2, "n_samples": mlp.n_samples, "max_iter": max_iter,
        "tolerance_grad": tolerance_grad,
    }  # fmt: skip
    description = (
        f"{problems['logreg'].describe()}; {mlp.describe()}; {n_seeds} seeds each, "
        f"L-BFGS to max|∇f| <= {tolerance_grad:g} or {max_iter} iterations"
    )
    return LocalOptima(description, settings, runs["logreg"], runs["mlp"])


def _train_seeds(
    problem: LogisticRegressionProblem | MLPProblem,
    n_seeds: int,
    max_iter: int,
    tolerance_grad: float,
    progress: Callable[[str], None] | None,
) -> SeedRuns:
    """Train ``problem``'s model from each seed; return the runs and their distances."""
    models, losses, grads, iters = [], [], [], []
    for seed in range(n_seeds):
        model, loss, grad, n_iter = _fit(problem, seed, max_iter, tolerance_grad)
        models.append(model)
        losses.append(loss)
        grads.append(grad)
        iters.append(n_iter)
        if progress is not None:
            progress(f"[{problem.name}] seed {seed}: f {loss:.10g}  max|g| {grad:.2g}")
    probabilities = [_probabilities(problem, m) for m in models]  # N x (n, K)
    thetas = [parameters_to_vector(m.parameters()).detach() for m in models]  # N x (P,)
    hidden = getattr(problem, "hidden", ())
    name = "logreg" if not hidden else f"mlp {list(hidden)} {problem.activation}"
    return SeedRuns(
        model=name,
        seeds=list(range(n_seeds)),
        final_loss=losses,
        grad_norm=grads,
        n_iter=iters,
        function_distance=_pairwise(probabilities, _rms_distance),
        disagreement=_pairwise(probabilities, _disagreement),
        weight_distance=_pairwise(thetas, _relative_distance),
        aligned_distance=_aligned(models, problem.activation),
    )


def _fit(
    problem: LogisticRegressionProblem | MLPProblem, seed: int, max_iter: int, tol: float
) -> tuple[nn.Module, float, float, int]:
    """Run L-BFGS from seed's start to max|g| <= tol; return (model, f, max|g|, iterations)."""
    model = problem.init_model(seed)
    optimizer = LBFGS(
        model.parameters(), max_iter=max_iter, max_eval=2 * max_iter, history_size=20,
        tolerance_grad=tol, tolerance_change=0.0,
    )  # fmt: skip
    closure = problem.closure(model, optimizer)
    optimizer.step(closure)
    loss = closure()  # fills the gradients at the solution
    g = parameters_to_vector([p.grad for p in model.parameters() if p.grad is not None])
    n_iter = int(optimizer.state[next(iter(model.parameters()))]["n_iter"])
    return model, float(loss.detach()), float(g.abs().max()), n_iter


@torch.no_grad()
def _probabilities(problem: LogisticRegressionProblem | MLPProblem, model: nn.Module) -> Tensor:
    """Return the predicted class probabilities (n, K) on the problem's rows."""
    return torch.softmax(model(problem.X), dim=1)  # (n, K)


def _pairwise(items: Sequence[_T], distance: Callable[[_T, _T], float]) -> np.ndarray:
    """Return the symmetric (N, N) matrix of ``distance`` over pairs, zero diagonal."""
    n = len(items)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = distance(items[i], items[j])
    return matrix


def _rms_distance(p: Tensor, q: Tensor) -> float:
    """Return sqrt(mean_rows ‖p − q‖²) for probabilities (n, K)."""
    return float((p - q).square().sum(dim=1).mean().sqrt())


def _disagreement(p: Tensor, q: Tensor) -> float:
    """Return the share of rows whose most probable class differs."""
    return float((p.argmax(dim=1) != q.argmax(dim=1)).double().mean())


def _relative_distance(a: Tensor, b: Tensor) -> float:
    """Return ‖a − b‖ / ½(‖a‖ + ‖b‖)."""
    return float((a - b).norm() / (0.5 * (a.norm() + b.norm())).clamp_min(1e-300))


def _aligned(models: list[nn.Module], activation: str) -> np.ndarray | None:
    """Return the aligned relative weight distances, or None beyond one hidden layer."""
    first = models[0]
    hidden = first.hidden if isinstance(first, MLP) else ()
    if len(hidden) > 1:
        return None
    if not hidden:
        thetas = [parameters_to_vector(m.parameters()).detach() for m in models]
        return _pairwise(thetas, _relative_distance)
    units = [_unit_vectors(m) for m in models]  # N x ((H, 2 + d + K), (K,))
    flip = activation in _ODD_ACTIVATIONS
    return _pairwise(units, lambda a, b: _matched_distance(a, b, flip=flip))


@torch.no_grad()
def _unit_vectors(model: nn.Module) -> tuple[Tensor, Tensor]:
    """Return the units' [incoming weights, bias, outgoing weights] (H, d+1+K), output bias (K,)."""
    layers = model.get_submodule("layers")
    first, output = layers.get_submodule("linear1"), layers.get_submodule("output")
    assert isinstance(first, nn.Linear) and isinstance(output, nn.Linear)
    units = torch.cat([first.weight, first.bias[:, None], output.weight.T], dim=1)  # (H, .)
    return units, output.bias.clone()


def _matched_distance(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], *, flip: bool) -> float:
    """Return the relative distance of two MLPs after the best unit permutation (and signs)."""
    (ua, ca), (ub, cb) = a, b  # (H, m), (K,)
    cost = torch.cdist(ua, ub).square()  # (H, H) ‖u_i − v_j‖²
    if flip:
        cost = torch.minimum(cost, torch.cdist(ua, -ub).square())
    rows, cols = linear_sum_assignment(cost.numpy())
    squared = float(cost[rows, cols].sum()) + float((ca - cb).square().sum())
    norm_a = float(torch.cat([ua.reshape(-1), ca]).norm())
    norm_b = float(torch.cat([ub.reshape(-1), cb]).norm())
    return squared**0.5 / max(0.5 * (norm_a + norm_b), 1e-300)
