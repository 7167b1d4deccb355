"""``fit``: the one training loop of deepdx.

Minibatches are sliced from tensors already on the training device by indexing with a
seeded permutation, so a step costs what the model's maths costs. Every other concern is a
:class:`~deepdx.train.callbacks.Callback`.

Per epoch::

    perm = randperm(n, generator)                  # seeded, restored on resume
    for each slice idx of perm:                    # (B,) indices
        batch = (X[idx], y[idx])                   # (B, *sample_shape), (B,)
        loss = optimizer.step(closure)             # closure: zero_grad, loss, backward, clip
    evaluate on validation (and a fixed training subset), step the schedule, callbacks

``precision="bf16-mixed"`` runs the closure's forward pass under bf16 autocast. A
Hessian-free step also gets its curvature inputs on the first ``ceil(curvature_fraction
* B)`` rows: ``outputs_fn``, ``loss_on_outputs`` (Gauss-Newton) or ``curvature_closure``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepdx._random import make_generator, seeded_torch
from deepdx.data.dataset import Dataset
from deepdx.exceptions import DataError, InvalidParameterError, NumericalError
from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.config import TrainConfig
from deepdx.train.distributed import all_agree, init_distributed, mean_across_ranks
from deepdx.train.early_stopping import EarlyStopping
from deepdx.train.history import EpochRecord, History
from deepdx.train.objectives import (
    LossFn,
    Objective,
    default_loss,
    evaluate,
    metric_name,
    mixed_precision_loss,
    tensor_view,
)
from deepdx.train.optimizers import make_optimizer, make_schedule, optimizer_entry

__all__ = ["fit"]

logger = logging.getLogger(__name__)

_DEFAULT_BATCH_SIZE = 64
#: Learning-rate factor applied at each rollback of ``nan_policy="rollback"``.
ROLLBACK_LR_FACTOR = 0.5
#: Rollbacks allowed in one run before giving up with a NumericalError.
MAX_ROLLBACKS = 8
# Settings that may differ between a run and its resumption without changing its result
# (``epochs`` too, unless the schedule is shaped by the number of epochs).
_RESUMABLE_CHANGES = frozenset({"device", "early_stopping"})
_EPOCH_SHAPED_SCHEDULES = frozenset({"step", "cosine"})


def fit(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None = None,
    *,
    config: TrainConfig | None = None,
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    **options: Any,
) -> History:
    """Train ``model`` on ``train`` and return the run's :class:`History`.

    Parameters
    ----------
    model : nn.Module
        Any module mapping ``(B, *train.sample_shape)`` to ``(B, train.n_outputs)``; it is
        moved to ``config.device`` and trained in place.
    train : Dataset
        Training data (already standardized; see :func:`deepdx.data.prepare`).
    val : Dataset, optional
        Validation data, evaluated after every epoch.
    config : TrainConfig, optional
        Settings; ``options`` override single fields (``fit(..., epochs=5, lr=0.1)``).
    loss_fn : callable, optional
        ``loss_fn(model, batch) -> scalar``; defaults to cross-entropy, squared error or
        reconstruction error by ``train.task``. An
        :class:`~deepdx.train.objectives.Objective` (every default is one) gives
        ``optimizer="hf"`` Gauss-Newton products; with a plain callable it uses Hessian
        products.
    callbacks : sequence of Callback, default=()
        Monitors and other hooks, run in order.
    checkpoint_dir : str or Path, optional
        Write a checkpoint there after every epoch (atomically; the last two are kept).
    resume : bool, default=False
        Continue from the latest checkpoint in ``checkpoint_dir``; the result is
        bitwise-identical to an uninterrupted run on CPU.
    **options
        Fields of :class:`TrainConfig`.

    Returns
    -------
    History
        One :class:`EpochRecord` per epoch, per-step losses, and events.

    Raises
    ------
    InvalidParameterError
        For unknown or invalid settings, a resume whose settings differ, or
        ``precision="bf16-mixed"`` where it is unsafe (see :class:`TrainConfig`).
    NumericalError
        If the training loss becomes NaN or infinite.

    Examples
    --------
    >>> import numpy as np
    >>> from deepdx.data.dataset import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 3)).astype(np.float32)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> history = fit(torch.nn.Linear(3, 2), data, data, epochs=3, lr=0.1, optimizer="sgd")
    >>> len(history.epochs), history.metric
    (3, 'accuracy')
    """
    config = (config or TrainConfig()).replace(**options)
    loop = _Loop(model, train, val, config=config, loss_fn=loss_fn, callbacks=callbacks)
    if checkpoint_dir is not None:
        from deepdx.train.checkpointer import Checkpointer

        loop.callbacks.append(Checkpointer(checkpoint_dir))
        if resume:
            loop.resume_from(checkpoint_dir)
    elif resume:
        raise InvalidParameterError("resume=True needs checkpoint_dir; got None.")
    return loop.run()


class _Loop:
    """State and steps of one run; ``fit`` is its only user."""

    def __init__(
        self,
        model: nn.Module,
        train: Dataset,
        val: Dataset | None,
        *,
        config: TrainConfig,
        loss_fn: LossFn | None,
        callbacks: Sequence[Callback],
    ) -> None:
        _check_compatible(train, val)
        self.config = config
        self.dist = init_distributed(config.device) if config.distributed else None
        self.device = self.dist.device if self.dist is not None else torch.device(config.device)
        self.model = model.to(self.device)
        self.train_model = self.model if self.dist is None else self.dist.wrap(self.model)
        self.train_data, self.val_data = train, val
        self.loss_fn = loss_fn or default_loss(train.task)
        self.custom_loss = loss_fn is not None
        self.tensors = _to_tensors(train, self.device)
        self.batch_size = _batch_size(config, len(train))
        _check_precision(config, self.model, self.device)
        self.optimizer = make_optimizer(
            config.optimizer,
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.curvature = _curvature_kind(self.optimizer, self.loss_fn, config)
        self.schedule = make_schedule(config.schedule, self.optimizer, epochs=config.epochs)
        self.generator = make_generator(config.seed)
        self.train_probe = _train_probe(train, config.train_eval_size, config.seed)
        self.callbacks = list(callbacks)
        if config.early_stopping is not None:
            self.callbacks.append(EarlyStopping(patience=config.early_stopping))
        self.history = History(metric=metric_name(train.task))
        if config.precision == "bf16-mixed":
            self.history.log_event("autocast", dtype="bfloat16")
        self.state = TrainState(
            model=self.model,
            optimizer=self.optimizer,
            history=self.history,
            n_epochs=config.epochs,
            loss_fn=self.loss_fn,
            device=self.device,
            snapshot=self.snapshot,
        )
        self.elapsed = 0.0
        self._rng_to_restore: Tensor | None = None
        self._last_good: dict[str, Any] | None = None
        self.n_rollbacks = 0

    # ------------------------------------------------------------------ the run
    def run(self) -> History:
        """Train until ``config.epochs`` or a stop request; return the history."""
        with self._environment():
            self.model.train()
            for callback in self.callbacks:
                callback.on_fit_start(self.state)
            while self.state.epoch < self.config.epochs and self.state.stop_reason is None:
                if not self._epoch():
                    self._rollback()
            if self.state.stop_reason is not None:
                self.history.log_event(
                    "stop", reason=self.state.stop_reason, epoch=self.state.epoch
                )
            for callback in self.callbacks:
                callback.on_fit_end(self.state)
        if self.dist is not None:
            self.dist.barrier()  # every rank returns after rank 0's last checkpoint is written
        return self.history

    @contextlib.contextmanager
    def _environment(self) -> Iterator[None]:
        """Seed dropout's RNG (restoring the caller's after) and set determinism."""
        previous = torch.are_deterministic_algorithms_enabled()
        with seeded_torch(self.config.seed):
            if self._rng_to_restore is not None:
                torch.set_rng_state(self._rng_to_restore)
            torch.use_deterministic_algorithms(self.config.deterministic or previous)
            anomaly = (
                torch.autograd.detect_anomaly(check_nan=True)
                if self.config.detect_anomaly
                else contextlib.nullcontext()
            )
            try:
                with anomaly:
                    yield
            except RuntimeError as exc:
                if not self.config.detect_anomaly or "nan" not in str(exc).lower():
                    raise
                raise NumericalError(
                    f"anomaly detection at epoch {self.state.epoch}, step {self.state.step + 1}: "
                    f"{exc} The forward-pass traceback above this error shows where the "
                    "operation was called."
                ) from exc
            finally:
                torch.use_deterministic_algorithms(previous)

    def _epoch(self) -> bool:
        """Run one pass over the training data, then evaluate and call the epoch callbacks.

        Returns False when a non-finite step under ``nan_policy="rollback"`` abandoned it.
        """
        if self.config.nan_policy == "rollback":
            self._last_good = self._capture()
        start = time.perf_counter()
        state, n = self.state, len(self.train_data)
        state.epoch += 1
        perm = torch.randperm(n, generator=self.generator).to(self.device)  # (n,)
        n_batches = math.ceil(n / self.batch_size)
        losses = torch.empty(n_batches, device=self.device)  # (n_batches,)
        for i in range(n_batches):
            index = perm[i * self.batch_size : (i + 1) * self.batch_size]  # (B,)
            if self.dist is not None:
                index = self.dist.shard(index)  # (B / world_size,)
            state.batch = tuple(t[index] for t in self.tensors)
            for callback in self.callbacks:
                callback.on_step_begin(state)
            if not self._step(losses, i):
                return False
            for callback in self.callbacks:
                callback.on_step_end(state)
        self.elapsed += time.perf_counter() - start
        self._end_epoch(losses)
        return True

    def _step(self, losses: Tensor, i: int) -> bool:
        """Take one optimizer step; apply the non-finite policy. False means roll back."""
        loss = self._closure()  # loss and gradients at the current parameters
        if self.config.nan_policy != "raise" and not all_agree(
            _finite(loss, self.model), self.device
        ):
            if self.config.nan_policy == "rollback":
                return False
            self.history.log_event("skip_step", epoch=self.state.epoch, step=self.state.step + 1)
        else:
            replay = _Replay(loss, self._closure)
            self.optimizer.step(replay, **self._curvature_inputs())  # type: ignore[arg-type]
        losses[i] = loss.detach()
        self.state.step += 1
        self.state.loss = losses[i]
        return True

    def _closure(self, batch: tuple[Tensor, ...] | None = None) -> Tensor:
        """Zero the gradients, compute the loss of ``batch`` (the minibatch), backprop, clip."""
        self.optimizer.zero_grad(set_to_none=True)
        batch = batch or self.state.batch
        assert batch is not None
        if self.config.precision == "bf16-mixed":
            loss = mixed_precision_loss(self.loss_fn, self.train_model, batch, self.device.type)
        else:
            loss = self.loss_fn(self.train_model, batch)
        loss.backward()
        if self.config.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        return loss

    def _curvature_inputs(self) -> dict[str, Callable[..., Tensor]]:
        """Return a Hessian-free step's curvature inputs on the curvature batch ({} if none)."""
        if self.curvature is None:
            return {}
        assert self.state.batch is not None
        n = len(self.state.batch[0])
        k = math.ceil(self.config.curvature_fraction * n)
        batch = tuple(t[:k] for t in self.state.batch)  # (k, ...): the rows are in random order
        if self.curvature == "ggn":
            objective, model = self.loss_fn, self.model
            assert isinstance(objective, Objective)
            return {
                "outputs_fn": lambda: objective.outputs(model, batch),  # (k, K)
                "loss_on_outputs": lambda z: objective.on_outputs(z, batch),
            }
        return {} if k == n else {"curvature_closure": lambda: self._closure(batch)}

    def _end_epoch(self, losses: Tensor) -> None:
        """Check the losses, record the epoch, step the schedule, run epoch callbacks."""
        step_losses = mean_across_ranks(losses).cpu().numpy()
        first = self.state.step - len(step_losses) + 1
        finite = np.isfinite(step_losses)
        if self.config.nan_policy == "raise" or not finite.any():
            _check_finite(step_losses, first_step=first, epoch=self.state.epoch, lr=self.state.lr)
        self.history.log_steps("loss", step_losses, first_step=first)
        record = EpochRecord(
            epoch=self.state.epoch,
            train_loss=float(step_losses[finite].mean()),
            lr=self.state.lr,
            time=0.0,
        )
        self._evaluate_into(record)
        self._step_schedule(record)
        record.time = self.elapsed
        self.history.epochs.append(record)
        for callback in self.callbacks:
            callback.on_epoch_end(self.state)

    def _evaluate_into(self, record: EpochRecord) -> None:
        """Fill validation (and training-probe) loss and metric into ``record``."""
        start = time.perf_counter()
        loss_fn = self.loss_fn if self.custom_loss else None
        metric = self.history.metric
        if self.val_data is not None:
            scores = evaluate(self.model, self.val_data, loss_fn=loss_fn, device=self.device)
            record.val_loss, record.val_metric = scores["loss"], scores.get(metric)
        if self.train_probe is not None:
            scores = evaluate(self.model, self.train_probe, loss_fn=loss_fn, device=self.device)
            record.extra["train_eval_loss"] = scores["loss"]
            record.train_metric = scores.get(metric)
        self.elapsed += time.perf_counter() - start

    def _step_schedule(self, record: EpochRecord) -> None:
        """Advance the learning-rate schedule by one epoch."""
        if self.schedule is None:
            return
        if isinstance(self.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.schedule.step(
                record.val_loss if record.val_loss is not None else record.train_loss
            )
        else:
            self.schedule.step()

    # ------------------------------------------------------------------ resume
    def snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return ``(model_state, loop_state)``, everything needed to resume exactly."""
        captured = self._capture()
        model_state = captured.pop("model")
        loop_state = {
            **captured,
            "config": self.config.to_dict(),
            "elapsed": self.elapsed,
            "history": self.history.to_dict(),
        }
        return model_state, loop_state

    def _capture(self) -> dict[str, Any]:
        """Copy the model, optimizer, schedule, RNG and callback states, and the counters."""
        return copy.deepcopy(
            {
                "model": dict(self.model.state_dict()),
                "epoch": self.state.epoch,
                "step": self.state.step,
                "optimizer": self.optimizer.state_dict(),
                "schedule": None if self.schedule is None else self.schedule.state_dict(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "callbacks": [callback.state_dict() for callback in self.callbacks],
            }
        )

    def _restore(self, model_state: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Load states produced by :meth:`_capture` (or a checkpoint) into the loop."""
        if len(state["callbacks"]) != len(self.callbacks):
            raise InvalidParameterError(
                f"cannot resume: the checkpoint holds {len(state['callbacks'])} callback states "
                f"but this run has {len(self.callbacks)} callbacks; pass the same callbacks."
            )
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.state.epoch, self.state.step = state["epoch"], state["step"]
        for callback, callback_state in zip(self.callbacks, state["callbacks"], strict=True):
            callback.load_state_dict(callback_state)

    def _rollback(self) -> None:
        """Return to the start of the failed epoch with every learning rate scaled down."""
        self.n_rollbacks += 1
        failed_step = self.state.step + 1
        if self.n_rollbacks > MAX_ROLLBACKS:
            raise NumericalError(
                f"the training loss stayed non-finite after {MAX_ROLLBACKS} rollbacks (last at "
                f"epoch {self.state.epoch}, step {failed_step}, lr {self.state.lr:g}); check "
                "the data and the model for values that overflow."
            )
        assert self._last_good is not None
        captured = copy.deepcopy(self._last_good)
        self._restore(captured.pop("model"), captured)
        torch.set_rng_state(captured["torch_rng"])  # inside the run's forked RNG
        _scale_learning_rates(self.optimizer, self.schedule, ROLLBACK_LR_FACTOR)
        self.history.truncate_steps(self.state.step)
        self.history.log_event(
            "rollback", epoch=self.state.epoch + 1, step=failed_step, new_lr=self.state.lr
        )
        logger.warning(
            "non-finite loss at step %d: rolled back to epoch %d, lr %g",
            failed_step,
            self.state.epoch,
            self.state.lr,
        )

    def resume_from(self, directory: str | Path) -> None:
        """Load the latest checkpoint in ``directory`` into this loop, if there is one."""
        from deepdx.train.checkpoint import clean_stale, latest_checkpoint, load_checkpoint

        clean_stale(directory)  # temporary files of a run killed mid-save
        if latest_checkpoint(directory) is None:
            logger.info("no checkpoint in %s; starting from scratch", directory)
            return
        checkpoint = load_checkpoint(directory, device=self.device)
        state = checkpoint.state
        _check_same_run(TrainConfig.from_dict(state["config"]), self.config)
        self._restore(checkpoint.model_state, state)
        self._rng_to_restore = state["torch_rng"]
        self.history = History.from_dict(state["history"])
        self.history.log_event("resume", epoch=state["epoch"], step=state["step"])
        self.state.history = self.history
        self.elapsed = state["elapsed"]


class _Replay:
    """A closure whose first call returns an already computed loss (gradients in place)."""

    def __init__(self, loss: Tensor, closure: Callable[[], Tensor]) -> None:
        self.loss: Tensor | None = loss
        self.closure = closure

    def __call__(self) -> Tensor:
        if self.loss is None:
            return self.closure()
        loss, self.loss = self.loss, None
        return loss


# ---------------------------------------------------------------------- helpers


def _check_compatible(train: Dataset, val: Dataset | None) -> None:
    """Raise unless the validation data has the training data's task and sample shape."""
    if val is None:
        return
    if val.task != train.task or val.sample_shape != train.sample_shape:
        raise DataError(
            f"validation data ({val.task}, samples {val.sample_shape}) does not match the "
            f"training data ({train.task}, samples {train.sample_shape}); split both from "
            "one dataset with deepdx.data.split."
        )


def _to_tensors(data: Dataset, device: torch.device) -> tuple[Tensor, ...]:
    """Move ``X`` (and ``y``) to ``device`` once for the whole run."""
    X = tensor_view(data.X).to(device)
    return (X,) if data.y is None else (X, tensor_view(data.y).to(device))


def _batch_size(config: TrainConfig, n: int) -> int:
    """Return the configured batch size, or the optimizer's natural default."""
    if config.batch_size is not None:
        return min(config.batch_size, n)
    return n if optimizer_entry(config.optimizer).full_batch else min(_DEFAULT_BATCH_SIZE, n)


def _check_precision(config: TrainConfig, model: nn.Module, device: torch.device) -> None:
    """Raise unless ``precision="bf16-mixed"`` is safe for the optimizer, model and device."""
    if config.precision != "bf16-mixed":
        return
    problems = []
    if not optimizer_entry(config.optimizer).autocast_safe:
        problems.append(
            f"optimizer {config.optimizer!r} compares losses in a line search or "
            "differentiates twice for curvature, which needs float32; use adam, adamw, sgd, "
            "momentum or nesterov with bf16"
        )
    if any(p.dtype == torch.float64 for p in model.parameters()):
        problems.append(
            "the model is float64, and autocast would run its forward pass in bfloat16; "
            "keep precision='32-true' for float64, or call model.float() first"
        )
    bf16_device = torch.amp.is_autocast_available(device.type) and (
        device.type != "cuda" or torch.cuda.is_bf16_supported()
    )
    if not bf16_device:
        problems.append(f"device {device} has no bfloat16 autocast; train there in float32")
    if problems:
        raise InvalidParameterError(
            "precision='bf16-mixed' is not safe here: " + "; ".join(problems) + "."
        )


def _curvature_kind(
    optimizer: torch.optim.Optimizer, loss_fn: LossFn, config: TrainConfig
) -> str | None:
    """Return the curvature fed to the optimizer (None, "ggn"; "hessian" for a plain loss)."""
    kind = optimizer.defaults.get("curvature")
    if kind is None and config.curvature_fraction < 1:
        raise InvalidParameterError(
            f"curvature_fraction={config.curvature_fraction} is used only by Hessian-free "
            f"optimizers; got optimizer={config.optimizer!r}. Use optimizer='hf', or leave "
            "curvature_fraction at 1."
        )
    if kind == "ggn" and not isinstance(loss_fn, Objective):
        logger.info("loss_fn is not an Objective: %s uses Hessian products", config.optimizer)
        kind = optimizer.defaults["curvature"] = "hessian"
        for group in optimizer.param_groups:
            group["curvature"] = kind
    return kind


def _train_probe(train: Dataset, size: int, seed: int) -> Dataset | None:
    """Return a fixed random subset of the training data to evaluate each epoch (or None)."""
    if size == 0:
        return None
    index = np.random.default_rng(seed).permutation(len(train))[:size]
    return train.subset(np.sort(index), name=f"{train.name} (train probe)")


def _check_finite(losses: np.ndarray, *, first_step: int, epoch: int, lr: float) -> None:
    """Raise :class:`NumericalError` at the first non-finite minibatch loss."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise NumericalError(
            f"the training loss became {losses[bad[0]]} at epoch {epoch}, step "
            f"{first_step + int(bad[0])} (lr {lr:g}); lower the learning rate, set "
            "clip_grad_norm, or check the data for extreme values."
        )


def _finite(loss: Tensor, model: nn.Module) -> bool:
    """Return whether the loss and every gradient are finite (one device sync)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = loss.detach().abs() + (nn.utils.get_total_norm(grads) if grads else 0.0)
    return bool(torch.isfinite(total))


def _scale_learning_rates(
    optimizer: torch.optim.Optimizer, schedule: object, factor: float
) -> None:
    """Multiply every group's learning rate (and the schedule's base rates) by ``factor``."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
        schedule.base_lrs = [lr * factor for lr in schedule.base_lrs]


def _check_same_run(saved: TrainConfig, current: TrainConfig) -> None:
    """Raise unless a resumed run keeps every setting that shapes its trajectory."""
    saved_dict, current_dict = saved.to_dict(), current.to_dict()
    free = _RESUMABLE_CHANGES | (set() if saved.schedule in _EPOCH_SHAPED_SCHEDULES else {"epochs"})
    changed = [
        f"{key}: {saved_dict[key]!r} -> {current_dict[key]!r}"
        for key in saved_dict
        if key not in free and saved_dict[key] != current_dict[key]
    ]
    if changed:
        raise InvalidParameterError(
            "cannot resume: these settings differ from the checkpoint's ("
            + "; ".join(changed)
            + "). Resume with the same settings, or start a new run in another directory."
        )
