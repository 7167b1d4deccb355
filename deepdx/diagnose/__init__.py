"""The diagnosis engine, which answers: why does my net not work.

``diagnose(data, model)`` runs the checklist and returns a :class:`Diagnosis` whose
findings name the problem, show the evidence and say what to try.
"""

from deepdx.diagnose.baselines import BaselineResult, best_baseline, fit_baselines, normalised_gain
from deepdx.diagnose.diagnosis import Diagnosis
from deepdx.diagnose.evidence import CapacityProbe, DataSanity, Evidence, LearningCurve, Preflight
from deepdx.diagnose.findings import KINDS, Finding
from deepdx.diagnose.gradient_check import GradCheckResult, GradCheckRow
from deepdx.diagnose.gradient_check import gradcheck as gradcheck

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MODEL",
    "KINDS",
    "BaselineResult",
    "CapacityProbe",
    "DataSanity",
    "Diagnosis",
    "Evidence",
    "Finding",
    "GradCheckResult",
    "GradCheckRow",
    "LearningCurve",
    "Preflight",
    "best_baseline",
    "diagnose",
    "fit_baselines",
    "gradcheck",
    "normalised_gain",
]


def __getattr__(name: str) -> object:
    # The engine imports every check; load it only when asked for.
    if name in ("DEFAULT_BUDGET", "DEFAULT_MODEL", "diagnose"):
        from deepdx.diagnose import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'deepdx.diagnose' has no attribute {name!r}")
