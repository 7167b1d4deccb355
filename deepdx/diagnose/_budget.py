"""``Budget``: the wall-clock allowance the diagnosis checks share, and how a check sizes itself.

A check asks the budget how many seconds it may spend, measures what one unit of its work
costs (a pilot epoch on a few hundred rows), and then scales its work down (fewer epochs) or
raises :class:`CheckSkipped` with a reason the engine records. The estimates are rough, so a
check sized this way may overrun its share by one unit of work. A training run that must end
with the budget takes a :class:`DeadlineStop` callback, which stops it after the epoch in
which the budget ran out.

Symbols
-------
T        total seconds of the budget (inf when unlimited)
t        seconds spent since the budget started
s_row    seconds per training row per epoch, measured by a pilot run
E        epochs a check can afford: min(E_asked, floor(allowance / cost of one epoch))
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
from torch import nn

from deepdx._random import numpy_rng
from deepdx.data.dataset import Dataset
from deepdx.exceptions import DeepdxError, InvalidParameterError
from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.config import TrainConfig
from deepdx.train.loop import fit
from deepdx.train.objectives import LossFn

__all__ = [
    "PILOT_ROWS",
    "Budget",
    "CheckSkipped",
    "DeadlineStop",
    "ModelFactory",
    "affordable_epochs",
    "as_budget",
    "budgeted_epochs",
    "seconds_per_row",
]

logger = logging.getLogger(__name__)

#: A model factory returns a fresh, identically initialised, untrained model on every call.
ModelFactory = Callable[[], nn.Module]

#: Rows of the pilot run that measures the cost of a training row.
PILOT_ROWS = 256


class CheckSkipped(DeepdxError):
    """A diagnosis check could not run; the message says why (budget spent, model not variable).

    The engine catches it and records the message in ``Evidence.skipped``.
    """


class Budget:
    """A wall-clock allowance of ``seconds``, started when the object is created.

    Parameters
    ----------
    seconds : float or None, default=None
        T, the total allowance; None means unlimited (``remaining()`` is ``inf``).
    clock : callable, default=time.perf_counter
        Returns the current time in seconds; tests pass a fake clock.

    Raises
    ------
    InvalidParameterError
        If ``seconds`` is negative or not a number.

    Notes
    -----
    remaining = max(0, T − t); share(f) = f · remaining. A sub-budget (:meth:`sub`) starts
    its own clock with T_sub = share(f), so a check can hand part of its time to a helper.

    Examples
    --------
    >>> ticks = iter([0.0, 4.0, 4.0, 4.0])
    >>> budget = Budget(10.0, clock=lambda: next(ticks))
    >>> budget.spent(), budget.remaining(), budget.share(0.5)
    (4.0, 6.0, 3.0)
    >>> Budget().remaining()
    inf
    """

    def __init__(
        self, seconds: float | None = None, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if seconds is not None and not (isinstance(seconds, int | float) and seconds >= 0):
            raise InvalidParameterError(
                f"Budget seconds must be None (unlimited) or a number >= 0; got {seconds!r}."
            )
        self.seconds = math.inf if seconds is None else float(seconds)
        self._clock = clock
        self._start = clock()

    def __repr__(self) -> str:
        return f"Budget(seconds={self.seconds:g}, spent={self.spent():.2f})"

    def spent(self) -> float:
        """Return t, the seconds elapsed since the budget started."""
        return self._clock() - self._start

    def remaining(self) -> float:
        """Return max(0, T − t), the seconds left (``inf`` when unlimited)."""
        return max(0.0, self.seconds - self.spent())

    def share(self, fraction: float) -> float:
        """Return ``fraction`` of the remaining seconds; ``fraction`` must lie in [0, 1]."""
        if not 0.0 <= fraction <= 1.0:
            raise InvalidParameterError(
                f"Budget.share fraction must lie in [0, 1]; got {fraction!r}."
            )
        return fraction * self.remaining()

    def exhausted(self) -> bool:
        """Return True when no time is left."""
        return self.remaining() <= 0.0

    def sub(self, fraction: float) -> Budget:
        """Return a new budget of ``share(fraction)`` seconds that starts now."""
        return Budget(self.share(fraction), clock=self._clock)


class DeadlineStop(Callback):
    """Stop a training run after the epoch in which ``budget`` ran out.

    Parameters
    ----------
    budget : Budget
        The allowance; checked at the end of every epoch.
    reason : str, default="the time budget was spent"
        The stop reason recorded in the run's history.

    Attributes
    ----------
    stopped_at : int or None
        The epoch after which the stop was requested; None while the budget lasts.

    Notes
    -----
    ``fit`` stops only between epochs, so the run ends at most one epoch (its steps and its
    evaluation) after the budget ran out.

    Examples
    --------
    >>> import torch
    >>> from deepdx.data.dataset import from_arrays
    >>> data = from_arrays(np.random.default_rng(0).normal(size=(32, 3)), [0, 1] * 16)
    >>> ticks = iter(range(100))  # a fake clock: starts at 0, epochs end at 1, 2, 3... s
    >>> stop = DeadlineStop(Budget(2.5, clock=lambda: float(next(ticks))))
    >>> history = fit(torch.nn.Linear(3, 2), data, epochs=10, callbacks=[stop])
    >>> stop.stopped_at, len(history.epochs)
    (3, 3)
    """

    def __init__(self, budget: Budget, reason: str = "the time budget was spent") -> None:
        self.budget, self.reason = budget, reason
        self.stopped_at: int | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        """Request a stop once no time is left (unless the run ends or stops anyway)."""
        last = state.epoch >= state.n_epochs or state.stop_reason is not None
        if not last and self.stopped_at is None and self.budget.exhausted():
            self.stopped_at = state.epoch
            state.request_stop(self.reason)


def as_budget(budget: Budget | float | None) -> Budget:
    """Return ``budget`` as a :class:`Budget`: seconds from now, or unlimited for None.

    Examples
    --------
    >>> as_budget(None).remaining(), as_budget(5.0).seconds
    (inf, 5.0)
    """
    return budget if isinstance(budget, Budget) else Budget(budget)


def affordable_epochs(epochs: int, seconds_per_epoch: float, allowance: float) -> int:
    """Return how many of ``epochs`` fit in ``allowance`` seconds.

    Parameters
    ----------
    epochs : int
        E_asked, the epochs the check would like.
    seconds_per_epoch : float
        Estimated cost of one epoch of all the check's runs together.
    allowance : float
        Seconds the check may spend (``inf`` for no limit).

    Returns
    -------
    int
        min(E_asked, floor(allowance / seconds_per_epoch)); 0 when not even one epoch fits.

    Examples
    --------
    >>> affordable_epochs(10, 2.0, 7.0), affordable_epochs(10, 2.0, math.inf)
    (3, 10)
    >>> affordable_epochs(10, 2.0, 1.0)
    0
    """
    if math.isinf(allowance) or seconds_per_epoch <= 0:
        return epochs
    return int(min(epochs, math.floor(allowance / seconds_per_epoch)))


def budgeted_epochs(
    budget: Budget | float | None,
    epochs: int,
    seconds_per_epoch: Callable[[], float],
    *,
    check: str,
    pronoun: str,
    work: str,
) -> int:
    """Return the epochs of ``epochs`` a check can afford, or raise :class:`CheckSkipped`.

    Parameters
    ----------
    budget : Budget, float or None
        The check's allowance (see :func:`as_budget`).
    epochs : int
        E_asked, the epochs the check would like.
    seconds_per_epoch : callable
        Estimates the cost of one epoch of all the check's runs together; called only
        when the budget is finite and not yet spent (it may run a pilot).
    check : str
        Name of the check in messages, e.g. ``"learning curve"``.
    pronoun : str
        ``"it"`` or ``"they"``, whichever refers to ``check``.
    work : str
        What one epoch covers, e.g. ``"its 6 fits"``.

    Returns
    -------
    int
        ``epochs`` for an unlimited budget, else :func:`affordable_epochs` (>= 1); a cut
        is logged at INFO level.

    Raises
    ------
    CheckSkipped
        If the budget is spent, or not even one epoch fits in what is left.

    Examples
    --------
    >>> budgeted_epochs(None, 10, lambda: 2.0, check="probes", pronoun="they", work="3 fits")
    10
    >>> budgeted_epochs(7.0, 10, lambda: 2.0, check="probes", pronoun="they", work="3 fits")
    3
    """
    clock = as_budget(budget)
    if math.isinf(clock.remaining()):
        return epochs
    if clock.exhausted():
        raise CheckSkipped(f"{check}: the time budget was spent before {pronoun} started.")
    per_epoch = seconds_per_epoch()
    fitting = affordable_epochs(epochs, per_epoch, clock.remaining())
    if fitting < 1:
        raise CheckSkipped(
            f"{check}: one epoch of {work} would take about {per_epoch:.1f} s but "
            f"{clock.remaining():.1f} s are left; raise the budget."
        )
    if fitting < epochs:
        logger.info("%s: %d of %d epochs fit the budget", check, fitting, epochs)
    return fitting


def seconds_per_row(
    make_model: ModelFactory,
    data: Dataset,
    *,
    config: TrainConfig,
    loss_fn: LossFn | None = None,
    rows: int = PILOT_ROWS,
    seed: int = 0,
) -> float:
    """Measure s_row, the seconds one training row costs per epoch, with a pilot run.

    Parameters
    ----------
    make_model : callable
        Returns a fresh model.
    data : Dataset
        Training data; a seeded sample of ``rows`` of its rows is used.
    config : TrainConfig
        Settings of the runs to be estimated (optimizer, batch size, device).
    loss_fn : callable, optional
        Objective; the task's default when None.
    rows : int, default=PILOT_ROWS
        Rows of the pilot.
    seed : int, default=0
        Seed of the row sample.

    Returns
    -------
    float
        Seconds of the pilot's second epoch divided by its rows.

    Notes
    -----
    The pilot trains two epochs and times only the second, so one-off costs (building the
    optimizer, the first call into autograd) do not inflate the estimate. Per-row cost
    falls with larger batches, so the estimate errs on the side of fewer epochs.

    Examples
    --------
    >>> import torch
    >>> from deepdx.data.dataset import from_arrays
    >>> data = from_arrays(np.random.default_rng(0).normal(size=(64, 3)), [0, 1] * 32)
    >>> s_row = seconds_per_row(lambda: torch.nn.Linear(3, 2), data, config=TrainConfig())
    >>> s_row > 0
    True
    """
    n_rows = min(rows, data.n_samples)
    index = np.sort(numpy_rng(seed).permutation(data.n_samples)[:n_rows])  # (n_rows,)
    pilot = config.replace(epochs=2, early_stopping=None, train_eval_size=0)
    history = fit(make_model(), data.subset(index), None, config=pilot, loss_fn=loss_fn)
    first, second = history.epochs
    return max(second.time - first.time, 1e-9) / n_rows
