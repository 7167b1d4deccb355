"""What a diagnosis concludes: ``Finding`` records with evidence and advice.

A rule is a pure function ``rule(evidence) -> list[Finding]``; every threshold it uses is a
named constant in :mod:`deepdx.diagnose.thresholds` with its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["KINDS", "SEVERITIES", "Finding", "Severity"]

Severity = Literal["info", "warning", "problem"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "problem")

#: Every kind of finding, spelled as reports and ``findings.json`` spell them.
KINDS: tuple[str, ...] = (
    "wrong_gradient",
    "loss_at_init",
    "ignores_inputs",
    "data_sanity",
    "divergence",
    "learning_rate_too_high",
    "learning_rate_too_low",
    "plateau",
    "oscillation",
    "vanishing_gradients",
    "exploding_gradients",
    "dead_units",
    "saturated_units",
    "overfitting",
    "underfitting",
    "below_baseline",
    "more_data_helps",
    "more_units",
    "more_layers",
    "healthy",
    "not_run",
)


@dataclass(frozen=True)
class Finding:
    """One verdict of the diagnosis.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    severity : {"info", "warning", "problem"}
        ``problem``: training cannot succeed as set up; ``warning``: likely costs accuracy
        or time; ``info``: context or a passed check.
    summary : str
        One plain-language sentence.
    evidence : dict
        The numbers that fired, each threshold and its source (``{"threshold": ...,
        "source": ...}``), JSON-able.
    advice : tuple of str
        Concrete next steps, most promising first.
    plot : str
        Name of the report plot that shows the evidence ('' when none).

    Examples
    --------
    >>> f = Finding("plateau", "warning", "Training loss stopped improving.",
    ...             {"relative_change": 1e-5}, ("Raise the learning rate.",))
    >>> f.to_dict()["kind"]
    'plateau'
    """

    kind: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: tuple[str, ...] = ()
    plot: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Finding kind must be one of {KINDS}; got {self.kind!r}.")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"Finding severity must be one of {SEVERITIES}; got {self.severity!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON-able data."""
        data = asdict(self)
        data["advice"] = list(self.advice)
        return data
