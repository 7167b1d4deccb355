"""What a training run records: typed per-epoch records and named per-step series.

Monitors (callbacks) add their own named values with :meth:`History.log_step` and
:meth:`History.log_epoch`; progress lines, reports and diagnosis rules all read from here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpochRecord", "History"]


@dataclass
class EpochRecord:
    """One epoch of a run.

    Attributes
    ----------
    epoch : int
        1-based epoch number.
    train_loss : float
        Mean minibatch loss over the epoch (training mode, as the optimizer saw it).
    lr : float
        Learning rate of the first parameter group at the end of the epoch.
    time : float
        Seconds since the run started (accumulated across resumes).
    val_loss, val_metric : float or None
        Loss and metric on the validation split, when one was given.
    train_metric : float or None
        Metric on the training minibatches (accuracy for classification), when computed.
    extra : dict of str to float
        Values logged by monitors for this epoch.
    """

    epoch: int
    train_loss: float
    lr: float
    time: float
    val_loss: float | None = None
    val_metric: float | None = None
    train_metric: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class History:
    """Records of a run: one :class:`EpochRecord` per epoch and named per-step series.

    Attributes
    ----------
    metric : str
        Name of the metric in ``val_metric`` (``"accuracy"`` or ``"r2"``, or ``""``).
    epochs : list of EpochRecord
        In order.
    steps : dict of str to list of float
        Per-step series; ``"loss"`` and ``"lr"`` always, monitors add more.
    step_index : dict of str to list of int
        Global step number of each entry in ``steps`` (series logged on a schedule are sparse).
    events : list of dict
        Notable events (early stop, resume, divergence) with the epoch and step they occurred.

    Examples
    --------
    >>> h = History(metric="accuracy")
    >>> h.log_step("loss", 0.5, step=1)
    >>> h.epochs.append(EpochRecord(epoch=1, train_loss=0.5, lr=0.1, time=0.2, val_metric=0.9))
    >>> h.series("val_metric").tolist(), h.step_series("loss")[1].tolist()
    ([0.9], [0.5])
    """

    metric: str = ""
    epochs: list[EpochRecord] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    step_index: dict[str, list[int]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    # -- writing ---------------------------------------------------------------------------
    def log_step(self, name: str, value: float, *, step: int) -> None:
        """Append ``value`` to the per-step series ``name`` at global step ``step``."""
        self.steps.setdefault(name, []).append(float(value))
        self.step_index.setdefault(name, []).append(int(step))

    def log_steps(self, name: str, values: np.ndarray, *, first_step: int) -> None:
        """Append a block of consecutive per-step values starting at ``first_step``."""
        self.steps.setdefault(name, []).extend(np.asarray(values, dtype=float).tolist())
        self.step_index.setdefault(name, []).extend(range(first_step, first_step + len(values)))

    def log_epoch(self, name: str, value: float) -> None:
        """Attach ``value`` under ``name`` to the latest epoch record."""
        self.epochs[-1].extra[name] = float(value)

    def log_event(self, kind: str, **details: Any) -> None:
        """Record a notable event (``"early_stop"``, ``"resume"``, ...)."""
        self.events.append({"kind": kind, **details})

    def truncate_steps(self, last_step: int) -> None:
        """Drop per-step entries after global step ``last_step`` (used by rollbacks)."""
        for name, index in self.step_index.items():
            keep = sum(1 for step in index if step <= last_step)
            del index[keep:]
            del self.steps[name][keep:]

    # -- reading ---------------------------------------------------------------------------
    def series(self, name: str) -> np.ndarray:
        """Return an epoch-level quantity as a float array (NaN where missing).

        ``name`` is an :class:`EpochRecord` field or a key of ``extra``.
        """
        values = []
        for record in self.epochs:
            value = getattr(record, name, None) if name != "extra" else None
            if value is None:
                value = record.extra.get(name)
            values.append(np.nan if value is None else value)
        return np.asarray(values, dtype=np.float64)

    def step_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(steps, values)`` of the per-step series ``name`` (empty if absent)."""
        return (
            np.asarray(self.step_index.get(name, []), dtype=np.int64),
            np.asarray(self.steps.get(name, []), dtype=np.float64),
        )

    @property
    def n_steps(self) -> int:
        """Number of optimizer steps recorded."""
        return len(self.steps.get("loss", []))

    # -- export ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-serialisable data."""
        return {
            "metric": self.metric,
            "epochs": [asdict(r) for r in self.epochs],
            "steps": self.steps,
            "step_index": self.step_index,
            "events": self.events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a history written by :meth:`to_dict`."""
        return cls(
            metric=str(data.get("metric", "")),
            epochs=[EpochRecord(**r) for r in data.get("epochs", [])],
            steps={
                k: [math.nan if v is None else float(v) for v in vs]
                for k, vs in data.get("steps", {}).items()
            },
            step_index={k: [int(v) for v in vs] for k, vs in data.get("step_index", {}).items()},
            events=list(data.get("events", [])),
        )

    def to_json(self) -> str:
        """Return the history as strict JSON (non-finite numbers become ``null``)."""
        return json.dumps(_finite_or_none(self.to_dict()), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Parse a history written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_csv(self) -> str:
        """Return the per-epoch records as CSV text, one column per field and extra."""
        extras = sorted({k for r in self.epochs for k in r.extra})
        columns = [f for f in EpochRecord.__dataclass_fields__ if f != "extra"] + extras
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for record in self.epochs:
            row = asdict(record)
            writer.writerow([row.get(c, record.extra.get(c, "")) for c in columns])
        return buffer.getvalue()


def _finite_or_none(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value
