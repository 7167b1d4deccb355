"""``diagnose``: run the whole checklist on data (and a model) and return the verdicts.

Order, cheapest first, each check given a share of the time budget::

    data sanity -> shallow baselines -> gradient check -> pre-flight (init loss, one-batch
    overfit, zeroed inputs) -> the monitored training run -> learning curve -> (regression)
    bootstrap bias-variance -> capacity probes -> rules -> Diagnosis

A check that cannot run (no budget left, a custom model that cannot be varied, no targets)
is recorded in ``Evidence.skipped`` and reported as ``not_run``; it never fails the diagnosis.

The budget is a deadline, not a hint (see ``BUDGET_RULE``): the shallow baselines fit in a
worker process that is stopped when their share runs out, the training run stops after the
epoch in which the budget ran out, the later checks size their epochs to what is left, and
the learning curve stops before its next fit once nothing is left.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from deepdx.data import Dataset, Splits, load, prepare
from deepdx.diagnose._budget import Budget, CheckSkipped, DeadlineStop
from deepdx.diagnose._isolated import EstimatorWorker
from deepdx.diagnose.baselines import baseline_worker, fit_baselines
from deepdx.diagnose.capacity import capacity_probes
from deepdx.diagnose.diagnosis import Diagnosis
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.generalization import bootstrap_bias_variance, learning_curve
from deepdx.diagnose.gradient_check import gradcheck
from deepdx.diagnose.monitors import default_monitors
from deepdx.diagnose.preflight import run_preflight
from deepdx.diagnose.rules import apply_rules
from deepdx.diagnose.sanity import data_sanity
from deepdx.diagnose.sensitivity import input_sensitivity
from deepdx.exceptions import DiagnosticWarning, NumericalError
from deepdx.nets import build_model
from deepdx.train import Callback, History, TrainConfig, TrainState, evaluate, fit
from deepdx.train.objectives import LossFn, default_loss, metric_name
from deepdx.train.optimizers import optimizer_entry

__all__ = ["BUDGET_RULE", "DEFAULT_BUDGET", "DEFAULT_MODEL", "diagnose"]

logger = logging.getLogger(__name__)

#: Seconds a diagnosis may spend by default (``--budget``).
DEFAULT_BUDGET = 90.0
#: What the budget guarantees; it goes into the report's settings.
BUDGET_RULE = (
    "checks are sized to the time left and skipped or stopped when it is spent, each listed "
    "as not run; the training run finishes the epoch, and the learning curve the fit, in "
    "which the budget ran out"
)
#: The model diagnosed when none is given.
DEFAULT_MODEL = "mlp"
#: Training samples evaluated each epoch so train and validation scores are comparable.
TRAIN_PROBE_SIZE = 2000
#: Training rows on which the monitors measure activations and curvature.
MONITOR_PROBE_SIZE = 256
#: Bootstrap refits of the regression bias-variance decomposition.
BOOTSTRAP_RESAMPLES = 8
#: Shares of the remaining budget given to the optional checks.
_BASELINE_SHARE, _PREFLIGHT_SHARE, _CURVE_SHARE, _BOOTSTRAP_SHARE = 0.15, 0.15, 0.5, 0.5


def diagnose(
    data: Dataset | str,
    model: nn.Module | str | None = None,
    *,
    budget: float = DEFAULT_BUDGET,
    loss_fn: LossFn | None = None,
    val_size: float = 0.1,
    test_size: float = 0.2,
    n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    **fit_options: Any,
) -> Diagnosis:
    """Diagnose a net on ``data``: run every check and return findings with evidence.

    Parameters
    ----------
    data : Dataset or str
        A dataset, or a name or path for :func:`deepdx.data.load`.
    model : nn.Module or str, optional
        A model spec (``"mlp:256,128"``, ``"conv"``, ``"FILE.py:FUNCTION"``) or an untrained
        ``nn.Module`` (it is copied, never trained in place). Default: ``"mlp"``.
    budget : float, default=90.0
        Seconds for the whole diagnosis; optional checks shrink or are skipped to fit. The
        diagnosis ends within ``budget`` plus about one training epoch (see Notes).
    loss_fn : callable, optional
        ``loss_fn(model, batch) -> scalar``; the task's standard loss by default.
    val_size, test_size : float
        Held-out fractions (a dataset's own test set wins).
    n_jobs : int, default=1
        Parallel jobs (joblib) for the learning curve and the capacity probes.
    progress : callable, optional
        Receives one line as each check starts and ends.
    **fit_options
        Settings of :class:`deepdx.train.TrainConfig` for the training run (``epochs``,
        ``lr``, ``optimizer``, ``batch_size``, ``seed``...).

    Returns
    -------
    Diagnosis
        ``findings`` (problems first), the ``evidence``, settings and timings;
        ``Diagnosis.save(dir)`` writes ``report.html`` and ``findings.json``.

    Notes
    -----
    How the budget is kept (``BUDGET_RULE``). The checks run in order, each sized to a share
    of the time left, and each is skipped when nothing is left. The shallow baselines fit
    in a worker process that is stopped when their share runs out. The training run stops
    after the epoch in which the whole budget ran out. The pre-flight, the learning curve
    and the capacity probes cut their epochs to their share from a pilot run's timing; the
    learning curve (and the regression bootstrap) also stop before their next fit once the
    whole budget is spent. The diagnosis thus ends within ``budget`` plus the longest of one
    training epoch and one learning-curve fit, plus the capacity probes' estimate error,
    plus a fraction of a second to stop the worker. Loading ``data`` by name counts in the
    budget; saving the report does not. Every check skipped or stopped, and every epoch not
    trained, is listed in ``evidence.skipped`` and reported as ``not_run`` with its reason.
    """
    clock = Budget(budget)
    dataset = load(data) if isinstance(data, str) else data
    config = TrainConfig().replace(**fit_options)
    splits, _ = prepare(dataset, val_size=val_size, test_size=test_size, seed=config.seed)
    config = config.replace(train_eval_size=min(TRAIN_PROBE_SIZE, len(splits.train)))
    spec, make_model = _model_factory(model, dataset, config.seed)
    run = _Run(splits, config, make_model, spec, loss_fn, clock, n_jobs, progress)
    run.check_all()
    settings = {
        "data": dataset.name,
        "model": spec,
        "budget_s": budget,
        "budget_rule": BUDGET_RULE,
        "val_size": val_size,
        "test_size": test_size,
        "train": config.to_dict(),
        "n_samples": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
    }
    return Diagnosis(apply_rules(run.evidence), run.evidence, settings, run.timings)


@dataclass
class _Run:
    """The checks of one diagnosis, filling ``evidence`` as they go."""

    splits: Splits
    config: TrainConfig
    make_model: Callable[[], nn.Module]
    spec: str
    loss_fn: LossFn | None
    clock: Budget
    n_jobs: int
    progress: Callable[[str], None] | None
    evidence: Evidence = field(init=False)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        train = self.splits.train
        self.evidence = Evidence(
            task=train.task,
            metric=metric_name(train.task),
            n_classes=train.n_classes,
            n_train=len(train),
            optimizer=self.config.optimizer,
            lr=_resolved_lr(self.config),
            model_spec=self.spec,
        )

    def check_all(self) -> None:
        """Run every check in order; each one is timed and may be skipped."""
        ev, splits = self.evidence, self.splits
        with baseline_worker() as worker:
            if splits.train.task != "unsupervised":
                worker.start()  # it imports scikit-learn (about 1 s) while setup runs
            with self._step("setup"):
                # torch imports its compiler stack when the first optimizer is built
                # (seconds); pay it here so no check's time allowance is eaten by it.
                torch.optim.Adam([torch.zeros(1, requires_grad=True)])
            with self._step("data sanity"):
                ev.data_sanity = data_sanity(splits)
            self._baselines(worker)
        with self._step("gradient check"):
            batch = _sample_batch(splits.train, 8, self.config.seed)
            ev.gradcheck = gradcheck(self.make_model(), self._loss, batch, seed=self.config.seed)
        with self._step("pre-flight"):
            ev.preflight = run_preflight(
                self.make_model,
                splits,
                loss_fn=self.loss_fn,
                config=self.config,
                budget=self.clock.share(_PREFLIGHT_SHARE),
                seed=self.config.seed,
            )
        with self._step("training run"):
            self._train()
        self._learning_curve()
        self._bias_variance()
        self._capacity()

    # ------------------------------------------------------------------ checks
    def _baselines(self, worker: EstimatorWorker) -> None:
        if self.splits.train.task == "unsupervised":
            self.evidence.skipped["baselines"] = "unsupervised data has no targets to predict"
            return
        with self._step("baselines"):
            self.evidence.baselines = fit_baselines(
                self.splits.train,
                self.splits.test,
                budget_s=self.clock.remaining() * _BASELINE_SHARE,
                seed=self.config.seed,
                worker=worker,
            )
        for result in self.evidence.baselines:
            if result.skipped is not None:
                self.evidence.skipped[f"baseline_{result.name}"] = result.skipped

    def _train(self) -> None:
        ev, splits = self.evidence, self.splits
        model = self.make_model()
        keeper = _HistoryKeeper()
        probe = _sample_batch(splits.train, MONITOR_PROBE_SIZE, self.config.seed)
        budget = f"the diagnosis budget of {self.clock.seconds:g} s was spent"
        deadline = DeadlineStop(self.clock, budget)
        callbacks = [keeper, deadline, *default_monitors(probe=probe)]
        try:
            fit(
                model,
                splits.train,
                splits.val,
                config=self.config,
                loss_fn=self.loss_fn,
                callbacks=callbacks,
            )
        except NumericalError as exc:
            ev.divergence = str(exc)
        ev.history = keeper.history
        if deadline.stopped_at is not None:
            ev.skipped["training_epochs"] = (
                f"epochs {deadline.stopped_at + 1} to {self.config.epochs} of the training run "
                f"were not trained: {budget}; raise the budget to train them"
            )
        if ev.divergence is None:
            self._score_net(model, probe)

    def _score_net(self, model: nn.Module, probe: tuple[torch.Tensor, ...]) -> None:
        """Record the trained net's input sensitivity and its scores on every split."""
        ev, splits = self.evidence, self.splits
        ev.input_sensitivity = input_sensitivity(model, self._loss, probe)
        if not ev.metric:
            return
        scores = {
            name: evaluate(model, part, loss_fn=self.loss_fn)[ev.metric]
            for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
        }
        ev.net_train_score, ev.net_val_score = scores["train"], scores["val"]
        ev.net_test_score = scores["test"]

    def _learning_curve(self) -> None:
        ev = self.evidence
        if ev.divergence is not None:
            ev.skipped["learning_curve"] = "the training run diverged; fix that first"
            return
        with self._step("learning curve"):
            ev.learning_curve = learning_curve(
                self._make_until_spent(),
                self.splits.train,
                config=self.config,
                budget=self.clock.share(_CURVE_SHARE),
                seed=self.config.seed,
                n_jobs=self.n_jobs,
            )

    def _bias_variance(self) -> None:
        ev = self.evidence
        if ev.task != "regression":
            return
        cost = BOOTSTRAP_RESAMPLES * self.timings.get("training run", 0.0)
        if ev.divergence is not None or cost > self.clock.remaining() * _BOOTSTRAP_SHARE:
            ev.skipped["bias_variance"] = (
                f"{BOOTSTRAP_RESAMPLES} bootstrap refits (~{cost:.0f} s) do not fit the budget"
                if ev.divergence is None
                else "the training run diverged; fix that first"
            )
            return
        with self._step("bias variance"):
            ev.bias_variance = bootstrap_bias_variance(
                self._make_until_spent(),
                self.splits.train,
                self.splits.val,
                n_boot=BOOTSTRAP_RESAMPLES,
                config=self.config,
                seed=self.config.seed,
                loss_fn=self.loss_fn,
                n_jobs=self.n_jobs,
            )

    def _capacity(self) -> None:
        ev = self.evidence
        if ev.divergence is not None:
            ev.skipped["capacity"] = "the training run diverged; fix that first"
            return
        with self._step("capacity probes"):
            ev.capacity = capacity_probes(
                self.spec,
                self.splits,
                config=self.config,
                budget=self.clock.share(1.0),
                seed=self.config.seed,
                n_jobs=self.n_jobs,
            )

    # ------------------------------------------------------------------ helpers
    def _make_until_spent(self) -> Callable[[], nn.Module]:
        """Return the model factory for a check of many fits; it stops the check in time."""
        return functools.partial(_make_in_time, self.make_model, self.clock)

    def _loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return (self.loss_fn or default_loss(self.splits.train.task))(model, batch)

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Time a check, report progress, and record a failure as a skipped check."""
        if self.progress is not None:
            self.progress(f"{name} ...")
        start = time.perf_counter()
        try:
            yield
        except CheckSkipped as exc:
            self.evidence.skipped[name.replace(" ", "_")] = str(exc)
        except Exception as exc:  # a failing check must not lose the other checks' evidence
            logger.exception("diagnosis check %r failed", name)
            self.evidence.skipped[name.replace(" ", "_")] = f"failed: {exc}"
            warnings.warn(
                f"diagnosis check {name!r} failed: {exc}", DiagnosticWarning, stacklevel=3
            )
        finally:
            self.timings[name] = time.perf_counter() - start
            if self.progress is not None:
                self.progress(f"{name} done in {self.timings[name]:.1f}s")


class _HistoryKeeper(Callback):
    """Keep a reference to the run's history so it survives a diverging run."""

    def __init__(self) -> None:
        self.history: History | None = None

    def on_fit_start(self, state: TrainState) -> None:
        """Remember the history object."""
        self.history = state.history


def _make_in_time(make_model: Callable[[], nn.Module], clock: Budget) -> nn.Module:
    """Build a fresh model for the next fit, or stop the check if the budget is spent."""
    if clock.exhausted():
        raise CheckSkipped(
            f"stopped: the diagnosis budget of {clock.seconds:g} s was spent before all its "
            "fits ran; raise the budget to run it."
        )
    return make_model()


def _model_factory(
    model: nn.Module | str | None, dataset: Dataset, seed: int
) -> tuple[str, Callable[[], nn.Module]]:
    """Return the model's spec and a function that builds fresh, identical, untrained copies."""
    if isinstance(model, nn.Module):
        initial = copy.deepcopy(model)
        return "custom", lambda: copy.deepcopy(initial)
    spec = model or DEFAULT_MODEL
    build_model(spec, dataset.sample_shape, dataset.n_outputs, seed=seed)  # fail early
    return spec, lambda: build_model(spec, dataset.sample_shape, dataset.n_outputs, seed=seed)


def _sample_batch(data: Dataset, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Return ``n`` random rows (seeded) as a batch tuple ``(X, y)`` or ``(X,)``."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(data))[:n])
    X = torch.from_numpy(data.X[rows])
    return (X,) if data.y is None else (X, torch.from_numpy(data.y[rows]))


def _resolved_lr(config: TrainConfig) -> float:
    """Return the learning rate the run will use (the optimizer's default when unset)."""
    return config.lr if config.lr is not None else optimizer_entry(config.optimizer).default_lr
