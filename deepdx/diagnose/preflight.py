"""Pre-flight checks (diagnosis rules A1-A3): seconds-long tests that catch a broken pipeline.

A1  Initial loss. The untrained model's loss, in eval mode, on (up to 4,096 seeded rows of)
    the training split, next to the loss of the best input-independent prediction.
A2  Overfit one batch. With regularisation off, a net must be able to memorise 32 examples;
    if it cannot, there is a bug, too little capacity, or a learning rate far off.
A3  Zeroed inputs. Two identical short runs, one on the real inputs and one with every
    input replaced by zeros; if the real inputs do not score clearly better, the model
    ignores its inputs (or the labels leak, or the data is broken).

Choices
-------
- A2 trains with Adam (weight decay 0) in train mode, so batch norm uses batch statistics
  as in real training, but with every dropout module switched to eval mode: dropout is
  regularisation, and A2 asks whether the net *can* fit. Progress is judged in eval mode
  after every step. The 300-step allowance is split between two tries from the same
  initial weights: lr 1e-3 for up to 200 steps, then, if the batch was not fitted, lr 1e-2
  for up to 100 steps (:data:`ONE_BATCH_TRIES`). The user's optimizer and learning rate are
  not used: A2 tests the model and the objective, not the tuning.
- A3 zeroes the inputs *inside* the model (a wrapper feeds zeros to it) rather than in the
  data, so the targets are untouched, which also keeps the check meaningful for
  autoencoders, whose target is the input. Both runs use the user's training settings,
  without early stopping, on at most 2,000 training rows, for 5 epochs or 100 optimizer
  steps, whichever is longer, but never more epochs than the user's run; they are scored on
  at most 4,096 validation rows (with zeroed inputs for the zeroed run). The step floor
  keeps tiny datasets (two minibatches an epoch) from being judged after ten steps, when
  the real-input run has barely left its initial loss while the zeroed one starts at
  chance.

Symbols
-------
L0        loss of the untrained model
L_chance  loss of an input-independent prediction: ln C for C-class cross-entropy (zero
          logits), mean (y − ȳ)² for squared error, mean (x − x̄)² for reconstruction
B1        rows of the one batch, :data:`ONE_BATCH_SIZE`
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from deepdx._random import seeded_torch
from deepdx.data.dataset import Dataset
from deepdx.data.splits import Splits
from deepdx.diagnose import thresholds
from deepdx.diagnose._budget import (
    Budget,
    CheckSkipped,
    ModelFactory,
    affordable_epochs,
    as_budget,
)
from deepdx.diagnose.evidence import Preflight
from deepdx.diagnose.generalization import stratified_order
from deepdx.exceptions import NumericalError
from deepdx.train.config import TrainConfig
from deepdx.train.loop import fit
from deepdx.train.objectives import LossFn, default_loss, evaluate, metric_name
from deepdx.train.optimizers import optimizer_entry

__all__ = [
    "EVAL_MAX_ROWS",
    "ONE_BATCH_SIZE",
    "ONE_BATCH_TRIES",
    "ZEROED_EPOCHS",
    "ZEROED_MAX_ROWS",
    "ZEROED_MIN_STEPS",
    "OneBatchResult",
    "ZeroedInputsResult",
    "chance_loss",
    "overfit_one_batch",
    "run_preflight",
    "zeroed_inputs_runs",
]

logger = logging.getLogger(__name__)

#: Rows of the batch the net must overfit (Karpathy's Recipe: "a few examples").
ONE_BATCH_SIZE = 32
#: (Adam learning rate, steps) of each try at overfitting the batch; 300 steps in all.
ONE_BATCH_TRIES: tuple[tuple[float, int], ...] = ((1e-3, 200), (1e-2, 100))
#: Share of the pre-flight time allowance the one-batch overfit may use.
ONE_BATCH_SHARE = 0.4
#: Epochs of each zeroed-input run (fewer when the training config has fewer).
ZEROED_EPOCHS = 5
#: ... or enough epochs for this many optimizer steps, if that is more.
ZEROED_MIN_STEPS = 100
#: Training rows of each zeroed-input run.
ZEROED_MAX_ROWS = 2000
#: Fewest training rows a zeroed-input run is shrunk to when the budget is tight.
ZEROED_MIN_ROWS = 64
#: Rows on which the initial loss and the zeroed-input runs are evaluated.
EVAL_MAX_ROWS = 4096

# fit's batch size for stochastic optimizers when the config leaves it unset.
_DEFAULT_BATCH_SIZE = 64
_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


@dataclass(frozen=True)
class OneBatchResult:
    """Outcome of :func:`overfit_one_batch`.

    Attributes
    ----------
    initial_loss, final_loss : float
        Eval-mode loss on the batch before training and after the reported try.
    final_score : float or None
        Eval-mode accuracy or R² on the batch after the reported try (None if unsupervised).
    steps : int
        Optimizer steps over all tries.
    lr : float
        Learning rate of the reported try: the first that fitted the batch, else the one
        that reached the lowest loss.
    reached : bool
        Whether the batch was fitted (loss below 1% of L0, or score >= 0.99).
    seconds_per_step : float
        Measured cost of one step (training plus the eval-mode check), first step excluded.
    """

    initial_loss: float
    final_loss: float
    final_score: float | None
    steps: int
    lr: float
    reached: bool
    seconds_per_step: float


@dataclass(frozen=True)
class ZeroedInputsResult:
    """Outcome of :func:`zeroed_inputs_runs`: validation loss and metric of both runs.

    Attributes
    ----------
    real_loss, zeroed_loss : float
        Validation loss after the run on real and on zeroed inputs (NaN if it diverged).
    real_score, zeroed_score : float or None
        Their validation metric (None if unsupervised or diverged).
    epochs, rows : int
        Epochs and training rows of each run.
    """

    real_loss: float
    zeroed_loss: float
    real_score: float | None
    zeroed_score: float | None
    epochs: int
    rows: int


def run_preflight(
    make_model: ModelFactory,
    splits: Splits,
    *,
    loss_fn: LossFn | None = None,
    config: TrainConfig,
    budget: Budget | float | None = None,
    seed: int = 0,
) -> Preflight:
    """Run the initial-loss, one-batch-overfit and zeroed-input checks (A1-A3).

    Parameters
    ----------
    make_model : callable
        Returns a fresh, identically initialised, untrained model on every call.
    splits : Splits
        Standardized train / validation / test data (test is not used).
    loss_fn : callable, optional
        ``loss_fn(model, batch) -> scalar``; the task's default objective when None.
    config : TrainConfig
        Settings of the real training run; the zeroed-input runs use them (shortened).
    budget : Budget or float, optional
        Time allowance in seconds (None: unlimited). The one-batch overfit may use 40% of it;
        the zeroed-input runs shrink (fewer epochs, then fewer rows) to fit the rest.
    seed : int, default=0
        Seed of the row samples.

    Returns
    -------
    Preflight

    Raises
    ------
    CheckSkipped
        If the budget is already spent.

    Notes
    -----
    See the module docstring for the procedure and the choices behind it. Cost: one
    forward pass over up to 4,096 rows, up to 300 steps on 32 rows, and two short runs.

    Examples
    --------
    >>> from deepdx.data import from_arrays, split
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 4))  # (120, 4)
    >>> parts = split(from_arrays(X, (X[:, 0] > 0).astype(int)), seed=0)
    >>> make = lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
    ...                                    torch.nn.Linear(8, 2))
    >>> report = run_preflight(make, parts, config=TrainConfig(epochs=2))
    >>> round(report.chance_loss, 4), report.one_batch_final_score
    (0.6931, 1.0)
    """
    clock = as_budget(budget)
    if clock.exhausted():
        raise CheckSkipped(
            f"pre-flight needs some time but its budget of {clock.seconds:g} s was spent "
            "before it started; give the diagnosis a larger budget."
        )
    device = config.device
    sample = _sample(splits.train, EVAL_MAX_ROWS, seed)
    initial = evaluate(make_model().to(device), sample, loss_fn=loss_fn, device=device)["loss"]
    chance = chance_loss(sample, loss_fn=loss_fn, device=device)
    share = clock.share(ONE_BATCH_SHARE)
    one = overfit_one_batch(
        make_model, splits.train, loss_fn=loss_fn, seed=seed, device=device, time_limit=share
    )
    zeroed = zeroed_inputs_runs(
        make_model,
        splits,
        config=config,
        loss_fn=loss_fn,
        seed=seed,
        time_limit=clock.remaining(),
        seconds_per_row=one.seconds_per_step / ONE_BATCH_SIZE,
    )
    return _assemble(initial, chance, one, zeroed)


def _assemble(
    init_loss: float, chance: float, one: OneBatchResult, zeroed: ZeroedInputsResult
) -> Preflight:
    """Gather the three checks' numbers into a :class:`Preflight`."""
    return Preflight(
        init_loss=init_loss,
        chance_loss=chance,
        one_batch_initial_loss=one.initial_loss,
        one_batch_final_loss=one.final_loss,
        one_batch_final_score=one.final_score,
        one_batch_steps=one.steps,
        real_inputs_loss=zeroed.real_loss,
        zeroed_inputs_loss=zeroed.zeroed_loss,
        real_inputs_score=zeroed.real_score,
        zeroed_inputs_score=zeroed.zeroed_score,
    )


# ------------------------------------------------------------------ A1: chance loss


def chance_loss(
    data: Dataset, *, loss_fn: LossFn | None = None, device: str | torch.device = "cpu"
) -> float:
    """Return L_chance, the loss of the best input-independent prediction on ``data``.

    Parameters
    ----------
    data : Dataset
        Usually the training split (or a sample of it).
    loss_fn : callable, optional
        A custom objective; it is evaluated on a model that outputs the constant below for
        every input. None uses the task's default objective, in closed form.
    device : str or torch.device, default="cpu"
        Where a custom objective is evaluated.

    Returns
    -------
    float
        ln C for classification (uniform prediction: zero logits); mean over rows and
        targets of (y − ȳ)² for regression (predict the mean); mean of (x − x̄)² over the
        flattened inputs for unsupervised data (reconstruct the mean input).

    Notes
    -----
    For cross-entropy the constant prediction with the lowest loss is the class prior,
    whose loss is the label entropy ≤ ln C; ln C is the loss a well-initialised net starts
    at (CS231n), which is what rule A1 compares against.

    Examples
    --------
    >>> from deepdx.data import from_arrays
    >>> chance_loss(from_arrays(np.zeros((4, 2)), [0, 1, 2, 2])) == math.log(3)
    True
    >>> chance_loss(from_arrays(np.zeros((2, 1)), [0.5, 1.5], task="regression"))
    0.25
    """
    if loss_fn is None:
        return _closed_form_chance_loss(data)
    model = _Constant(_constant_prediction(data)).to(device)
    return evaluate(model, data, loss_fn=loss_fn, device=device)["loss"]


def _closed_form_chance_loss(data: Dataset) -> float:
    """L_chance of the task's default objective, computed in float64."""
    if data.task == "classification":
        return math.log(data.n_classes)
    target = data.X.reshape(data.n_samples, -1) if data.y is None else data.y
    target = target.astype(np.float64)
    return float(((target - target.mean(axis=0)) ** 2).mean())


def _constant_prediction(data: Dataset) -> Tensor:
    """Return the input-independent output (K,): zero logits, mean target, or mean input."""
    if data.task == "classification":
        return torch.zeros(data.n_classes)  # (C,)
    target = data.X.reshape(data.n_samples, -1) if data.y is None else data.y
    return torch.from_numpy(target.reshape(data.n_samples, -1).mean(axis=0))  # (K,)


class _Constant(nn.Module):
    """Outputs the same vector (K,) for every input row."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``value`` repeated for each of the B rows of ``x``."""
        return self.get_buffer("value").expand(len(x), -1)  # (B, K)


# ------------------------------------------------------------------ A2: one batch


def overfit_one_batch(
    make_model: ModelFactory,
    train: Dataset,
    *,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    time_limit: float = math.inf,
) -> OneBatchResult:
    """Try to memorise one batch of ``ONE_BATCH_SIZE`` training rows (rule A2).

    Parameters
    ----------
    make_model : callable
        Returns a fresh, identically initialised model; called once per try.
    train : Dataset
        Training data; the batch is the first 32 rows of a seeded, class-stratified
        permutation (:func:`~deepdx.diagnose.generalization.stratified_order`).
    loss_fn : callable, optional
        Objective; the task's default when None.
    seed : int, default=0
        Seed of the permutation (and of torch's global RNG during the tries).
    device : str or torch.device, default="cpu"
        Where to train.
    time_limit : float, default=inf
        Seconds the tries may take; a try stops early when they are spent.

    Returns
    -------
    OneBatchResult

    Notes
    -----
    Each try runs Adam (weight decay 0) from the initial weights for up to its steps of
    :data:`ONE_BATCH_TRIES`, with dropout off (see the module docstring), and stops as soon
    as the eval-mode loss is below ``thresholds.ONE_BATCH_LOSS_FRACTION`` · L0 or the score
    reaches ``thresholds.ONE_BATCH_SCORE``. A model without trainable parameters takes no
    step.

    Examples
    --------
    >>> from deepdx.data import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> data = from_arrays(rng.normal(size=(40, 5)), rng.integers(0, 3, 40))
    >>> make = lambda: torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(),
    ...                                    torch.nn.Linear(32, 3))
    >>> result = overfit_one_batch(make, data)
    >>> result.reached, result.final_score, result.steps <= 300
    (True, 1.0, True)
    """
    batch = _sample(train, ONE_BATCH_SIZE, seed)
    deadline = time.perf_counter() + time_limit
    tries: list[OneBatchResult] = []
    with seeded_torch(seed):
        for lr, max_steps in ONE_BATCH_TRIES:
            model = make_model().to(device)
            tries.append(_overfit(model, batch, lr, max_steps, loss_fn, device, deadline))
            if tries[-1].reached or time.perf_counter() >= deadline:
                break
    best = next((t for t in tries if t.reached), None) or min(tries, key=_loss_key)
    return replace(best, initial_loss=tries[0].initial_loss, steps=sum(t.steps for t in tries))


def _overfit(
    model: nn.Module,
    batch: Dataset,
    lr: float,
    max_steps: int,
    loss_fn: LossFn | None,
    device: str | torch.device,
    deadline: float,
) -> OneBatchResult:
    """One try: Adam steps on ``batch`` until fitted, ``max_steps``, or the deadline."""
    objective = loss_fn or default_loss(batch.task)
    tensors = tuple(
        torch.from_numpy(a).to(device) for a in (batch.X, batch.y) if a is not None
    )  # (B1, *sample_shape)[, (B1,)]
    metric = metric_name(batch.task)
    initial = scores = evaluate(model, batch, loss_fn=loss_fn, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr) if params else None  # weight_decay 0
    steps, start, after_first = 0, time.perf_counter(), time.perf_counter()
    while optimizer is not None and steps < max_steps and time.perf_counter() < deadline:
        _train_without_dropout(model)
        optimizer.zero_grad(set_to_none=True)
        objective(model, tensors).backward()
        optimizer.step()
        steps += 1
        after_first = after_first if steps > 1 else time.perf_counter()
        scores = evaluate(model, batch, loss_fn=loss_fn, device=device)
        if _fitted(scores, metric, initial["loss"]) or not math.isfinite(scores["loss"]):
            break
    end = time.perf_counter()
    per_step = (end - after_first) / (steps - 1) if steps > 1 else (end - start) / max(steps, 1)
    return OneBatchResult(
        initial_loss=initial["loss"],
        final_loss=scores["loss"],
        final_score=scores.get(metric),
        steps=steps,
        lr=lr,
        reached=_fitted(scores, metric, initial["loss"]),
        seconds_per_step=per_step,
    )


def _train_without_dropout(model: nn.Module) -> None:
    """Put ``model`` in train mode, except its dropout modules."""
    model.train()
    for module in model.modules():
        if isinstance(module, _DROPOUT):
            module.eval()


def _fitted(scores: dict[str, float], metric: str, initial_loss: float) -> bool:
    """Whether the batch counts as memorised (rule A2's two criteria)."""
    fraction = thresholds.ONE_BATCH_LOSS_FRACTION.value
    if scores["loss"] < fraction * initial_loss:
        return True
    score = scores.get(metric)
    return score is not None and score >= thresholds.ONE_BATCH_SCORE.value


def _loss_key(result: OneBatchResult) -> float:
    """Sort key: the final loss, with NaN last."""
    return result.final_loss if math.isfinite(result.final_loss) else math.inf


# ------------------------------------------------------------------ A3: zeroed inputs


def zeroed_inputs_runs(
    make_model: ModelFactory,
    splits: Splits,
    *,
    config: TrainConfig,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    time_limit: float = math.inf,
    seconds_per_row: float | None = None,
) -> ZeroedInputsResult:
    """Train two identical short runs, on real and on zeroed inputs, and score both (rule A3).

    Parameters
    ----------
    make_model : callable
        Returns a fresh, identically initialised model; called once per run.
    splits : Splits
        Train and validation data.
    config : TrainConfig
        Training settings; each run trains max(``ZEROED_EPOCHS``, the epochs of
        ``ZEROED_MIN_STEPS`` steps) epochs, at most ``config.epochs``, without early stopping
        or a training probe.
    loss_fn : callable, optional
        Objective; it receives the zero-feeding wrapper as ``model`` in the zeroed run.
    seed : int, default=0
        Seed of the row samples.
    time_limit : float, default=inf
        Seconds both runs may take together; with ``seconds_per_row`` it shrinks the runs.
    seconds_per_row : float, optional
        s_row, the estimated cost of one training row per epoch.

    Returns
    -------
    ZeroedInputsResult

    Notes
    -----
    The cost is ≈ 2 · epochs · rows · s_row. When that exceeds ``time_limit`` the epochs
    drop first (to 1), then the rows (to ``ZEROED_MIN_ROWS``). A run that diverges reports
    a NaN loss and no score; a model without trainable parameters is only evaluated.

    Examples
    --------
    >>> from deepdx.data import from_arrays, split
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))  # (200, 2)
    >>> parts = split(from_arrays(X, (X[:, 0] > 0).astype(int)), seed=0)
    >>> result = zeroed_inputs_runs(lambda: torch.nn.Linear(2, 2), parts,
    ...                             config=TrainConfig(epochs=5, lr=0.1))
    >>> result.real_score > result.zeroed_score + 0.2, result.epochs
    (True, 5)
    """
    rows = min(ZEROED_MAX_ROWS, splits.train.n_samples)
    epochs = min(config.epochs, max(ZEROED_EPOCHS, _epochs_for_steps(config, rows)))
    rows, epochs = _plan_zeroed_runs(rows, epochs, seconds_per_row, time_limit)
    train = _sample(splits.train, rows, seed)
    val = _sample(splits.val, EVAL_MAX_ROWS, seed)
    short = config.replace(epochs=epochs, early_stopping=None, train_eval_size=0)
    real_loss, real_score = _short_run(make_model(), train, val, short, loss_fn)
    zeroed_loss, zeroed_score = _short_run(_ZeroedInputs(make_model()), train, val, short, loss_fn)
    return ZeroedInputsResult(real_loss, zeroed_loss, real_score, zeroed_score, epochs, rows)


def _epochs_for_steps(config: TrainConfig, rows: int) -> int:
    """Epochs needed for ``ZEROED_MIN_STEPS`` optimizer steps on ``rows`` rows."""
    full_batch = optimizer_entry(config.optimizer).full_batch
    batch_size = config.batch_size or (rows if full_batch else _DEFAULT_BATCH_SIZE)
    return math.ceil(ZEROED_MIN_STEPS / math.ceil(rows / min(batch_size, rows)))


def _plan_zeroed_runs(
    rows: int, epochs: int, seconds_per_row: float | None, time_limit: float
) -> tuple[int, int]:
    """Shrink (rows, epochs) so that 2 · epochs · rows · s_row fits in ``time_limit``."""
    if seconds_per_row is None or math.isinf(time_limit):
        return rows, epochs
    fitting = affordable_epochs(epochs, 2 * rows * seconds_per_row, time_limit)
    if fitting >= 1:
        return rows, fitting
    affordable_rows = math.floor(time_limit / (2 * seconds_per_row))
    rows = max(min(rows, ZEROED_MIN_ROWS), min(rows, affordable_rows))
    logger.info("zeroed-input runs shrunk to %d rows and 1 epoch to fit the budget", rows)
    return rows, 1


def _short_run(
    model: nn.Module,
    train: Dataset,
    val: Dataset,
    config: TrainConfig,
    loss_fn: LossFn | None,
) -> tuple[float, float | None]:
    """Train and return the final validation loss and metric (NaN, None if it diverged)."""
    if not any(p.requires_grad for p in model.parameters()):  # nothing to train
        scores = evaluate(model, val, loss_fn=loss_fn, device=config.device)
        return scores["loss"], scores.get(metric_name(val.task))
    try:
        history = fit(model, train, val, config=config, loss_fn=loss_fn)
    except NumericalError as exc:
        logger.info("a zeroed-input check run diverged: %s", exc)
        return math.nan, None
    record = history.epochs[-1]
    assert record.val_loss is not None  # fit evaluates val every epoch
    return record.val_loss, record.val_metric


class _ZeroedInputs(nn.Module):
    """Feeds zeros of the input's shape to the wrapped model: an input-independent twin."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """Return ``model(zeros_like(x))``."""
        return self.model(torch.zeros_like(x))  # (B, K)


# ------------------------------------------------------------------ helpers


def _sample(data: Dataset, rows: int, seed: int) -> Dataset:
    """Return ``data``, or a seeded, class-stratified sample of ``rows`` of its rows."""
    if data.n_samples <= rows:
        return data
    index = np.sort(stratified_order(data.n_samples, data.y, seed=seed)[:rows])  # (rows,)
    return data.subset(index)
