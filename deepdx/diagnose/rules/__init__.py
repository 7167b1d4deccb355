"""The rules of the diagnosis: pure functions ``Evidence -> list[Finding]``.

Rules are grouped by the question they answer, one module each:

============== ===============================================================
module         question (DIAGNOSTICS.md section)
============== ===============================================================
preflight      is the pipeline correct? (A1-A3, A5, A7)
optimization   is optimisation healthy or stuck? (B2-B7, B15)
gradients      do gradients explode or vanish? (B8, B9)
units          are units dead or saturated? (B10, B11)
generalization over- or underfitting; would more data help? (C1-C3, C6)
capacity       more units or more layers? (D2, D3)
baseline       does the net beat simple baselines? (D1)
============== ===============================================================

:func:`apply_rules` runs every rule of :data:`RULES`, reports each check that did not run,
adds one ``healthy`` finding when nothing rose above ``info``, and sorts the findings
problem > warning > info (keeping rule order within a severity). Every threshold is a named
constant in :mod:`deepdx.diagnose.thresholds`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import SEVERITIES, Finding
from deepdx.diagnose.rules.baseline import find_below_baseline
from deepdx.diagnose.rules.capacity import find_capacity_gains
from deepdx.diagnose.rules.generalization import (
    find_more_data_helps,
    find_overfitting,
    find_underfitting,
)
from deepdx.diagnose.rules.gradients import find_exploding_gradients, find_vanishing_gradients
from deepdx.diagnose.rules.optimization import (
    find_divergence,
    find_learning_rate_too_high,
    find_learning_rate_too_low,
    find_oscillation,
    find_plateau,
)
from deepdx.diagnose.rules.preflight import (
    find_data_issues,
    find_ignores_inputs,
    find_loss_at_init,
    find_one_batch_failure,
    find_wrong_gradient,
)
from deepdx.diagnose.rules.recovery import find_recovered_divergence
from deepdx.diagnose.rules.units import find_dead_units, find_saturated_units

__all__ = ["RULES", "Rule", "apply_rules"]

Rule = Callable[[Evidence], list[Finding]]

#: Every rule, in the order their findings are listed within a severity.
RULES: list[Rule] = [
    find_wrong_gradient,
    find_divergence,
    find_recovered_divergence,
    find_ignores_inputs,
    find_loss_at_init,
    find_one_batch_failure,
    find_data_issues,
    find_learning_rate_too_high,
    find_learning_rate_too_low,
    find_exploding_gradients,
    find_vanishing_gradients,
    find_dead_units,
    find_saturated_units,
    find_plateau,
    find_oscillation,
    find_below_baseline,
    find_underfitting,
    find_overfitting,
    find_more_data_helps,
    find_capacity_gains,
]

_RANK = {severity: rank for rank, severity in enumerate(reversed(SEVERITIES))}


def apply_rules(evidence: Evidence, rules: Sequence[Rule] | None = None) -> list[Finding]:
    """Run the rules on ``evidence`` and return every finding, most severe first.

    Parameters
    ----------
    evidence : Evidence
        What the checks measured.
    rules : sequence of callables, optional
        Rules to run, ``Evidence -> list[Finding]``; default :data:`RULES`.

    Returns
    -------
    list of Finding
        The rules' findings, one ``not_run`` info per entry of ``evidence.skipped``, and
        exactly one ``healthy`` info when no finding is a warning or a problem; sorted
        problem > warning > info, stable within a severity (``healthy`` first among the
        infos).

    Examples
    --------
    >>> ev = Evidence("classification", "accuracy", 2, 100, "adam", 1e-3,
    ...               skipped={"gradcheck": "the model has no parameters"})
    >>> [(f.kind, f.severity) for f in apply_rules(ev)]
    [('healthy', 'info'), ('not_run', 'info')]
    """
    findings = [
        finding for rule in (RULES if rules is None else rules) for finding in rule(evidence)
    ]
    findings += [_not_run(check, why) for check, why in evidence.skipped.items()]
    if all(f.severity == "info" for f in findings):
        findings.insert(0, _healthy(len(RULES if rules is None else rules), evidence.skipped))
    return sorted(findings, key=lambda f: _RANK[f.severity])


def _not_run(check: str, why: str) -> Finding:
    """Return the info finding for a check that could not run."""
    return Finding(
        "not_run",
        "info",
        f"The {check} check did not run: {why.rstrip('.')}.",
        {"check": check, "reason": why},
    )


def _healthy(n_rules: int, skipped: dict[str, str]) -> Finding:
    """Return the single finding that says no rule found a likely issue."""
    caveat = f" ({len(skipped)} checks did not run)" if skipped else ""
    return Finding(
        "healthy",
        "info",
        f"No rule found a problem or a likely issue{caveat}.",
        {"rules_run": n_rules, "checks_not_run": sorted(skipped)},
        plot="loss",
    )
