"""The callback interface of :func:`deepdx.train.fit`.

``fit`` owns the loop; every other concern (monitors, early stopping, checkpoints,
progress) is a :class:`Callback` on the same five hooks, receiving a :class:`TrainState`:

    on_fit_start -> [on_step_begin -> optimizer.step(closure) -> on_step_end]* -> on_epoch_end
                 -> ... -> on_fit_end

During ``on_step_end`` every parameter's ``.grad`` still holds the gradient of the last
closure evaluation (the closure zeroes gradients at its start, not after the step): the
gradient of the step just taken for SGD and Adam, the last trial point's for line-search
methods such as L-BFGS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from deepdx.train.history import History

__all__ = ["Callback", "TrainState"]


@dataclass
class TrainState:
    """What callbacks may read about the running loop.

    Callbacks treat every field as read-only; the one way to change the loop is
    :meth:`request_stop`.

    Attributes
    ----------
    model : nn.Module
        The model being trained.
    optimizer : torch.optim.Optimizer
        Its optimizer.
    history : History
        Records so far; callbacks log into it with ``log_step`` / ``log_epoch``.
    n_epochs : int
        Epochs this run will train in total (including epochs before a resume).
    epoch : int
        Current epoch, 1-based (0 before the first epoch).
    step : int
        Optimizer steps taken so far, over all epochs.
    batch : tuple of Tensor or None
        The latest minibatch ``(X, y)``, on the training device.
    loss : Tensor or None
        The latest minibatch loss, a detached scalar tensor (reading it forces a sync).
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``, the objective being minimised.
    device : torch.device
        Where the model and data live.
    stop_reason : str or None
        Set by :meth:`request_stop`.
    snapshot : callable or None
        ``snapshot() -> (model_state, loop_state)``: everything needed to resume the run
        exactly (used by :class:`deepdx.train.Checkpointer`).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    n_epochs: int
    loss_fn: Any
    device: torch.device
    epoch: int = 0
    step: int = 0
    batch: tuple[Tensor, ...] | None = None
    loss: Tensor | None = None
    stop_reason: str | None = field(default=None)
    snapshot: Callable[[], tuple[dict[str, Tensor], dict[str, Any]]] | None = field(
        default=None, repr=False
    )

    @property
    def lr(self) -> float:
        """Learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current epoch; ``reason`` goes into the history."""
        if self.stop_reason is None:
            self.stop_reason = reason


class Callback:
    """Base class: override any hook; the defaults do nothing.

    Callbacks with state that must survive a checkpoint override :meth:`state_dict` and
    :meth:`load_state_dict`; values may be JSON scalars, lists, dicts or tensors.
    """

    def on_fit_start(self, state: TrainState) -> None:
        """Run once before the first step (also after a resume)."""

    def on_step_begin(self, state: TrainState) -> None:
        """Run before each optimizer step; ``state.batch`` is the batch about to be used."""

    def on_step_end(self, state: TrainState) -> None:
        """Run after each optimizer step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Run after each epoch, once its :class:`EpochRecord` is in the history."""

    def on_fit_end(self, state: TrainState) -> None:
        """Run once after the last epoch (or after an early stop)."""

    def state_dict(self) -> dict[str, Any]:
        """Return the callback's resumable state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore state produced by :meth:`state_dict`."""
