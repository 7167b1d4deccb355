from __future__ import annotations

import json

import numpy as np
import pytest

from deepdx.diagnose.findings import KINDS, Finding
from deepdx.diagnose.rules import RULES, apply_rules
from tests.diagnose.rules import builders as b

_PLOTS = {"loss", "metric", "grad_norms", "activations", "learning_curve", "baselines"}
_PLOTS |= {"capacity", "gradcheck", "curvature", ""}


def _sick_evidence():
    """Several planted faults at once: wrong gradient, dead units, overfitting, skipped checks."""
    h = b.history(b.decaying_loss(), signals={"dead_fraction/act1": [0.0, 0.7]}, every=10)
    return b.healthy_evidence(
        history=h,
        gradcheck=b.gradcheck_result("wrong", error=0.3),
        net_train_score=1.0,
        net_val_score=0.85,
        net_test_score=0.94,
        skipped={"capacity": "the model is custom", "learning_curve": "budget spent"},
    )


def test_apply_rules_healthy_run_gives_only_healthy_and_info():
    findings = apply_rules(b.healthy_evidence())
    assert [f.kind for f in findings].count("healthy") == 1
    assert findings[0].kind == "healthy"
    assert all(f.severity == "info" for f in findings)


def test_apply_rules_sorts_problem_warning_info():
    findings = apply_rules(_sick_evidence())
    ranks = [("problem", "warning", "info").index(f.severity) for f in findings]
    assert ranks == sorted(ranks) and ranks[0] == 0 and 1 in ranks and 2 in ranks
    assert "healthy" not in [f.kind for f in findings]


def _first(ev):
    return [Finding("plateau", "warning", "a."), Finding("oscillation", "info", "b.")]


def _second(ev):
    return [Finding("divergence", "problem", "c."), Finding("dead_units", "warning", "d.")]


def test_apply_rules_keeps_rule_order_within_a_severity():
    kinds = [f.kind for f in apply_rules(b.evidence(), rules=[_first, _second])]
    assert kinds == ["divergence", "plateau", "dead_units", "oscillation"]


def test_apply_rules_reports_each_skipped_check():
    findings = apply_rules(_sick_evidence())
    not_run = [f for f in findings if f.kind == "not_run"]
    assert sorted(f.evidence["check"] for f in not_run) == ["capacity", "learning_curve"]
    assert all(f.severity == "info" for f in not_run)
    assert any("budget spent" in f.summary for f in not_run)


def test_apply_rules_healthy_says_checks_did_not_run():
    findings = apply_rules(b.evidence(skipped={"gradcheck": "no parameters"}))
    assert [f.kind for f in findings] == ["healthy", "not_run"]
    assert findings[0].evidence["checks_not_run"] == ["gradcheck"]
    assert "1 checks did not run" in findings[0].summary


def test_apply_rules_finds_planted_faults():
    kinds = {f.kind: f.severity for f in apply_rules(_sick_evidence())}
    assert kinds["wrong_gradient"] == "problem"
    assert kinds["dead_units"] == "warning" and kinds["overfitting"] == "warning"


@pytest.mark.parametrize("make", [b.healthy_evidence, _sick_evidence], ids=["healthy", "sick"])
def test_apply_rules_findings_are_well_formed(make):
    for f in apply_rules(make()):
        assert f.kind in KINDS and f.plot in _PLOTS and f.summary.endswith(".")
        json.dumps(f.to_dict())  # evidence is JSON-able
        for key in [k for k in f.evidence if k.endswith("threshold")]:
            assert f.evidence[f"{key}_source"], f"{f.kind}: {key} has no source"


def test_rules_return_nothing_on_empty_evidence():
    empty = b.evidence(history=b.history(np.zeros(0)))
    assert all(rule(empty) == [] for rule in RULES)
