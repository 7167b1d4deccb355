"""``Diagnosis``: the findings of one diagnosis with the evidence behind them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding

__all__ = ["Diagnosis"]


@dataclass
class Diagnosis:
    """What :func:`deepdx.diagnose.diagnose` found.

    Attributes
    ----------
    findings : list of Finding
        Verdicts, problems first.
    evidence : Evidence
        Every measurement the rules read (histories, baselines, curves, probes).
    settings : dict
        The settings used: data, model, training config, budget, seed.
    timings : dict of str to float
        Seconds spent in each check.
    """

    findings: list[Finding]
    evidence: Evidence
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        """Findings of severity ``problem``."""
        return [f for f in self.findings if f.severity == "problem"]

    def kinds(self) -> set[str]:
        """Kinds of all findings."""
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """Return findings, metrics, baselines, checks and settings as JSON-able data."""
        ev = self.evidence
        return _jsonable(
            {
                "findings": [f.to_dict() for f in self.findings],
                "metrics": {
                    "metric": ev.metric,
                    "train": ev.net_train_score,
                    "val": ev.net_val_score,
                    "test": ev.net_test_score,
                },
                "baselines": [dataclasses.asdict(b) for b in ev.baselines],
                "data_sanity": _asdict(ev.data_sanity),
                "preflight": _asdict(ev.preflight),
                "gradcheck": None if ev.gradcheck is None else _gradcheck_dict(ev),
                "learning_curve": _asdict(ev.learning_curve),
                "capacity": [dataclasses.asdict(p) for p in ev.capacity],
                "bias_variance": ev.bias_variance,
                "divergence": ev.divergence,
                "skipped": ev.skipped,
                "epochs": None if ev.history is None else ev.history.to_dict()["epochs"],
                "settings": self.settings,
                "timings": self.timings,
            }
        )

    def summary_table(self) -> str:
        """Return the verdicts as a short plain-text table for the terminal."""
        width = max([len(f.kind) for f in self.findings] + [4])
        lines = [f"{'severity':<9} {'kind':<{width}}  summary"]
        lines += [f"{f.severity:<9} {f.kind:<{width}}  {f.summary}" for f in self.findings]
        return "\n".join(lines)

    def save(self, directory: str | Path) -> Path:
        """Write ``report.html``, ``findings.json`` and ``history.json`` into ``directory``.

        ``findings.json`` holds the per-epoch records; the per-step signals of the
        monitored run go to ``history.json``.
        """
        from deepdx.io import atomic_write_text
        from deepdx.report import write_report

        directory = write_report(self, Path(directory))
        if self.evidence.history is not None:
            atomic_write_text(directory / "history.json", self.evidence.history.to_json())
        return directory


def _asdict(value: Any) -> dict[str, Any] | None:
    """Return a dataclass as a dict, or None."""
    return None if value is None else dataclasses.asdict(value)


def _gradcheck_dict(ev: Evidence) -> dict[str, Any]:
    """Return the gradient check's verdict and rows."""
    assert ev.gradcheck is not None
    result = ev.gradcheck
    return {
        "verdict": result.verdict,
        "max_rel_error": result.max_rel_error,
        "worst_tensor": result.worst_tensor,
        "note": result.note,
        "rows": [dataclasses.asdict(row) for row in result.rows],
    }


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None and tuples by lists, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
