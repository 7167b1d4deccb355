"""TensorBoard export of a run's :class:`~deepdx.train.History`, live or after the fact.

The scalars are the History's own records, the ones progress lines and reports render, so
TensorBoard shows the same numbers. Writing goes through
``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package (the
``tensorboard`` extra); TensorFlow is not needed.

==========================  ==============================  ============
History record              TensorBoard tag                 x axis
==========================  ==============================  ============
``EpochRecord.train_loss``  ``epoch/train_loss``            epoch
``EpochRecord.val_loss``    ``epoch/val_loss``              epoch
``train_metric``            ``epoch/train_<metric>``        epoch
``val_metric``              ``epoch/val_<metric>``          epoch
``lr``, ``time``            ``epoch/lr``, ``epoch/time``    epoch
``extra[name]``             ``epoch/<name>``                epoch
``steps[name]``             ``step/<name>``                 global step
parameter ``p``             ``weights/<p>`` (histogram)     epoch
``p.grad``                  ``gradients/<p>`` (histogram)   epoch
==========================  ==============================  ============

``<metric>`` is ``History.metric`` (``accuracy``, ``r2``); missing values (no validation
data) are not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deepdx.exceptions import InvalidParameterError
from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.history import EpochRecord, History

__all__ = [
    "HistoryCursor",
    "ScalarWriter",
    "TensorBoardLogger",
    "export_tensorboard",
    "write_history",
]

_MISSING_TENSORBOARD = (
    "{what} needs the tensorboard package, which is not installed; install it with "
    "pip install 'deepdx[tensorboard]' (or pip install tensorboard)."
)


class ScalarWriter(Protocol):
    """What :func:`write_history` needs of a ``SummaryWriter``."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> Any:
        """Write one scalar."""


@dataclass
class HistoryCursor:
    """How much of a History has been written.

    Attributes
    ----------
    epochs : int
        Epoch records written.
    steps : dict of str to int
        Entries written of each per-step series.
    """

    epochs: int = 0
    steps: dict[str, int] = field(default_factory=dict)


def _summary_writer(logdir: str | Path, what: str) -> Any:
    """Return a ``SummaryWriter`` on ``logdir``, or raise ImportError saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(_MISSING_TENSORBOARD.format(what=what)) from error
    return SummaryWriter(log_dir=str(logdir))


def _epoch_scalars(record: EpochRecord, metric: str) -> dict[str, float]:
    """Return the tag -> value pairs of one epoch record (missing values left out)."""
    values: dict[str, float | None] = {
        "train_loss": record.train_loss,
        "val_loss": record.val_loss,
        f"train_{metric or 'metric'}": record.train_metric,
        f"val_{metric or 'metric'}": record.val_metric,
        "lr": record.lr,
        "time": record.time,
        **record.extra,
    }
    return {f"epoch/{name}": float(v) for name, v in values.items() if v is not None}


def write_history(
    writer: ScalarWriter, history: History, *, cursor: HistoryCursor | None = None
) -> HistoryCursor:
    """Write the History records after ``cursor`` as scalars; return the new cursor.

    Parameters
    ----------
    writer : SummaryWriter
        Anything with ``add_scalar(tag, value, global_step)``.
    history : History
        The records to write; tags as in the module's table.
    cursor : HistoryCursor, optional
        What was written before (None: nothing), so a live run writes each record once.

    Returns
    -------
    HistoryCursor
        Counts of the epochs and of each step series written so far.

    Examples
    --------
    >>> class Printer:
    ...     def add_scalar(self, tag, value, step):
    ...         print(tag, value, step)
    >>> h = History(metric="accuracy")
    >>> h.log_step("loss", 0.5, step=1)
    >>> h.epochs.append(EpochRecord(epoch=1, train_loss=0.5, lr=0.1, time=0.2))
    >>> cursor = write_history(Printer(), h)
    epoch/train_loss 0.5 1
    epoch/lr 0.1 1
    epoch/time 0.2 1
    step/loss 0.5 1
    >>> cursor.epochs, write_history(Printer(), h, cursor=cursor).epochs
    (1, 1)
    """
    cursor = cursor or HistoryCursor()
    for record in history.epochs[cursor.epochs :]:
        for tag, value in _epoch_scalars(record, history.metric).items():
            writer.add_scalar(tag, value, record.epoch)
    steps = dict(cursor.steps)
    for name, values in history.steps.items():
        start = steps.get(name, 0)
        for step, value in zip(history.step_index[name][start:], values[start:], strict=True):
            writer.add_scalar(f"step/{name}", value, step)
        steps[name] = len(values)
    return HistoryCursor(epochs=len(history.epochs), steps=steps)


def export_tensorboard(history: History, logdir: str | Path) -> Path:
    """Write a finished run's History as TensorBoard scalars into ``logdir``.

    Parameters
    ----------
    history : History
        For example ``fit(...)``'s result, an estimator's ``history_``, or
        ``History.from_json(text)``.
    logdir : str or Path
        Directory for the event file (created if needed); point ``tensorboard --logdir``
        at it or at its parent.

    Returns
    -------
    Path
        ``logdir``.

    Raises
    ------
    ImportError
        If the ``tensorboard`` package is not installed.

    Notes
    -----
    Tags are those of the module's table; histograms need the live model, so only
    :class:`TensorBoardLogger` writes them.

    Examples
    --------
    >>> import importlib.util, tempfile
    >>> h = History(metric="accuracy")
    >>> h.epochs.append(EpochRecord(epoch=1, train_loss=0.5, lr=0.1, time=0.2))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     if importlib.util.find_spec("tensorboard") is not None:  # the tensorboard extra
    ...         names = [p.name for p in export_tensorboard(h, tmp).iterdir()]
    ...         assert names[0].startswith("events.out.tfevents")
    """
    writer = _summary_writer(logdir, "export_tensorboard")
    try:
        write_history(writer, history)
    finally:
        writer.close()
    return Path(logdir)


class TensorBoardLogger(Callback):
    """Write the run's History to TensorBoard as it grows, and weight/gradient histograms.

    Parameters
    ----------
    logdir : str or Path
        Directory for the event files (created if needed).
    histogram_every : int, default=1
        Write histograms of every parameter and its gradient every this many epochs;
        0 writes none.

    Raises
    ------
    InvalidParameterError
        If ``histogram_every`` is not an int >= 0.
    ImportError
        At the start of ``fit``, if the ``tensorboard`` package is not installed.

    Notes
    -----
    At the end of each epoch (and of the run) the logger writes the History records
    appended since its last write, tagged as in the module's table, so monitors' per-step
    series (gradient norms, ...) and epoch extras appear without configuration. A resumed
    run continues after the records its History already holds. Each run opens a new event
    file; a warm-started estimator's ``fit`` is a new run whose epochs count from 1, so
    give it its own ``logdir``.

    Examples
    --------
    Pass it to :func:`deepdx.train.fit` or to an estimator's ``callbacks``; nothing is
    written before the run starts:

    >>> logger = TensorBoardLogger("runs/mlp", histogram_every=5)
    >>> logger.logdir.name, logger.histogram_every
    ('mlp', 5)
    """

    def __init__(self, logdir: str | Path, *, histogram_every: int = 1) -> None:
        valid = isinstance(histogram_every, int) and not isinstance(histogram_every, bool)
        if not valid or histogram_every < 0:
            raise InvalidParameterError(
                f"histogram_every of TensorBoardLogger must be an int >= 0 (0 for no "
                f"histograms); got {histogram_every!r}."
            )
        self.logdir = Path(logdir)
        self.histogram_every = histogram_every
        self._writer: Any = None
        self._cursor = HistoryCursor()

    def on_fit_start(self, state: TrainState) -> None:
        """Open a writer; skip the records a resumed run already holds."""
        self._writer = _summary_writer(self.logdir, "TensorBoardLogger")
        history = state.history
        steps = {name: len(values) for name, values in history.steps.items()}
        self._cursor = HistoryCursor(epochs=len(history.epochs), steps=steps)

    def on_epoch_end(self, state: TrainState) -> None:
        """Write the new records, and the histograms when the epoch is due."""
        self._cursor = write_history(self._writer, state.history, cursor=self._cursor)
        if self.histogram_every and state.epoch % self.histogram_every == 0:
            for name, parameter in state.model.named_parameters():
                values = parameter.detach().cpu()
                self._writer.add_histogram(f"weights/{name}", values, state.epoch)
                if parameter.grad is not None:
                    grad = parameter.grad.detach().cpu()
                    self._writer.add_histogram(f"gradients/{name}", grad, state.epoch)
        self._writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        """Write what was logged after the last epoch's write, and close the file."""
        if self._writer is None:
            return
        self._cursor = write_history(self._writer, state.history, cursor=self._cursor)
        self._writer.close()
        self._writer = None
