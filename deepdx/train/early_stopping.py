"""Early stopping on the validation loss, restoring the best weights."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from deepdx.train.callbacks import Callback, TrainState

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int, default=5
        Epochs without an improvement of more than ``min_delta`` before stopping.
    min_delta : float, default=0.0
        Smallest decrease that counts as an improvement.
    monitor : str, default="val_loss"
        Epoch quantity to minimise; falls back to ``train_loss`` when there is no
        validation data.
    restore_best : bool, default=True
        Load the best epoch's weights back into the model when training ends.

    Notes
    -----
    Stopping goes through ``TrainState.request_stop``, never an exception; the history
    records a ``stop`` event with the reason.
    """

    def __init__(
        self,
        patience: int = 5,
        *,
        min_delta: float = 0.0,
        monitor: str = "val_loss",
        restore_best: bool = True,
    ) -> None:
        if patience < 1 or min_delta < 0:
            raise ValueError(
                f"EarlyStopping needs patience >= 1 and min_delta >= 0; got patience={patience}, "
                f"min_delta={min_delta}."
            )
        self.patience, self.min_delta = patience, min_delta
        self.monitor, self.restore_best = monitor, restore_best
        self._best = math.inf
        self._best_epoch = 0
        self._best_weights: dict[str, Tensor] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        """Track the best epoch; request a stop once patience runs out."""
        record = state.history.epochs[-1]
        value = getattr(record, self.monitor, None)
        if value is None:
            value = record.train_loss
        if value < self._best - self.min_delta:
            self._best, self._best_epoch = value, record.epoch
            if self.restore_best:
                self._best_weights = {
                    k: v.detach().clone() for k, v in state.model.state_dict().items()
                }
        elif record.epoch - self._best_epoch >= self.patience:
            state.request_stop(
                f"{self.monitor} has not improved for {self.patience} epochs "
                f"(best {self._best:.4g} at epoch {self._best_epoch})"
            )

    def on_fit_end(self, state: TrainState) -> None:
        """Restore the best weights if asked."""
        if self.restore_best and self._best_weights is not None:
            state.model.load_state_dict(self._best_weights)
            state.history.log_event("restore_best", epoch=self._best_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Return the best score, its epoch and (if kept) its weights."""
        return {"best": self._best, "best_epoch": self._best_epoch, "weights": self._best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._best, self._best_epoch = state["best"], state["best_epoch"]
        self._best_weights = state["weights"]
