"""Progress views of a run: a tqdm bar and one-line epoch summaries, rendered from the history."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm.auto import tqdm

from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.history import EpochRecord

__all__ = ["ProgressBar", "format_epoch"]


def format_epoch(record: EpochRecord, n_epochs: int, metric: str, *, label: str = "") -> str:
    """Return the standard one-line summary of an epoch.

    Examples
    --------
    >>> r = EpochRecord(epoch=3, train_loss=0.0412, lr=0.1, time=0.81, val_loss=0.05,
    ...                 val_metric=0.97)
    >>> format_epoch(r, 10, "accuracy", label="MLP")
    '[MLP] epoch 3/10  loss 0.0412  val_loss 0.05  val_accuracy 0.97  0.8s'
    """
    parts = [f"[{label}] " if label else "", f"epoch {record.epoch}/{n_epochs}"]
    parts.append(f"  loss {record.train_loss:.4g}")
    if record.val_loss is not None:
        parts.append(f"  val_loss {record.val_loss:.4g}")
    if record.val_metric is not None:
        parts.append(f"  val_{metric} {record.val_metric:.4g}")
    parts.append(f"  {record.time:.1f}s")
    return "".join(parts)


class ProgressBar(Callback):
    """Show a progress bar over all steps and print a line per epoch.

    Parameters
    ----------
    stream : file-like, default=sys.stderr
        Where the bar and lines go.
    enabled : bool or None, default=None
        None shows the bar only when ``stream`` is a terminal; epoch lines go to ``sink``
        in every case.
    sink : callable, optional
        Receives each epoch line (default: write it to ``stream``).
    label : str, default=""
        Prefix of epoch lines, e.g. the model's name.
    """

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        sink: Callable[[str], None] | None = None,
        label: str = "",
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.sink = sink
        self.label = label
        self._bar: tqdm | None = None

    def on_fit_start(self, state: TrainState) -> None:
        """Open the bar."""
        if self.enabled:
            self._bar = tqdm(
                total=state.n_epochs,
                initial=state.epoch,
                file=self.stream,
                unit="epoch",
                leave=False,
                dynamic_ncols=True,
            )

    def on_epoch_end(self, state: TrainState) -> None:
        """Advance the bar and emit the epoch line."""
        line = format_epoch(
            state.history.epochs[-1], state.n_epochs, state.history.metric, label=self.label
        )
        if self._bar is not None:
            self._bar.update(1)
            self._bar.write(line, file=self.stream)
        elif self.sink is not None:
            self.sink(line)
        else:
            print(line, file=self.stream)

    def on_fit_end(self, state: TrainState) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
