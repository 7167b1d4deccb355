from __future__ import annotations

import pytest

from deepdx.diagnose.rules.baseline import find_below_baseline
from tests.diagnose.rules import builders as b


def test_below_baseline_no_better_than_chance_is_problem():
    (f,) = find_below_baseline(b.evidence(baselines=b.baselines(), net_test_score=0.12))
    assert (f.kind, f.severity, f.plot) == ("below_baseline", "problem", "baselines")
    assert f.evidence["gain_over_chance"] == pytest.approx(0.01 / 0.89)
    assert "rbf_svm reaches 0.92" in f.summary


def test_below_baseline_chance_with_unlearnable_labels_says_so():
    flat = b.baselines(dummy=0.11, logistic=0.10, rbf=0.12)
    (f,) = find_below_baseline(b.evidence(baselines=flat, net_test_score=0.105))
    assert f.severity == "problem" and "labels may not depend" in f.summary


def test_below_baseline_linear_model_wins_is_problem():
    (f,) = find_below_baseline(
        b.evidence(baselines=b.baselines(logistic=0.90, rbf=None), net_test_score=0.80)
    )
    assert f.severity == "problem" and f.evidence["linear_shortfall"] == pytest.approx(0.10)
    assert f.evidence["linear_baseline"] == "logistic_regression"


def test_below_baseline_losing_to_rbf_only_is_warning():
    ev = b.evidence(baselines=b.baselines(logistic=0.85, rbf=0.95), net_test_score=0.90)
    (f,) = find_below_baseline(ev)
    assert f.severity == "warning" and f.evidence["gain"] == pytest.approx(-1.0)
    assert f.evidence["threshold"] == 0.1 and "rbf_svm" in f.summary


def test_below_baseline_small_gain_is_warning():
    ev = b.evidence(baselines=b.baselines(rbf=None, logistic=0.90), net_test_score=0.905)
    (f,) = find_below_baseline(ev)
    assert f.severity == "warning" and f.evidence["gain"] == pytest.approx(0.05)


def test_below_baseline_problem_must_replicate_on_the_validation_split():
    # 30 test rows: the net's 0.8 is 4 rows behind logistic regression, but on validation it
    # matches it, so the shortfall does not replicate and stays a warning.
    base = b.baselines(dummy=0.33, logistic=0.933, rbf=0.933)
    ev = b.evidence(n_classes=3, baselines=base, net_test_score=0.8, net_val_score=0.933)
    (f,) = find_below_baseline(ev)
    assert f.severity == "warning" and f.evidence["linear_shortfall"] == pytest.approx(0.0)


def test_below_baseline_uses_validation_score_without_test_score():
    (f,) = find_below_baseline(b.evidence(baselines=b.baselines(), net_val_score=0.12))
    assert f.evidence["net_split"] == "val"


def test_below_baseline_regression():
    base = b.baselines(dummy=-0.01, logistic=0.6, rbf=None, metric="r2")
    ev = b.evidence(task="regression", metric="r2", n_classes=0, baselines=base, net_test_score=0.4)
    (f,) = find_below_baseline(ev)
    assert f.severity == "problem" and f.evidence["linear_baseline"] == "ridge"


def test_below_baseline_quiet_when_net_clearly_wins():
    assert find_below_baseline(b.evidence(baselines=b.baselines(), net_test_score=0.96)) == []
    assert find_below_baseline(b.evidence(net_test_score=0.5)) == []
