from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from deepdx.diagnose.evidence import LearningCurve
from deepdx.diagnose.rules.generalization import (
    find_more_data_helps,
    find_overfitting,
    find_underfitting,
    fit_power_law,
)
from tests.diagnose.rules import builders as b

# ------------------------------------------------------------------ overfitting


@pytest.mark.parametrize(
    ("train", "val", "fires"),
    [(0.99, 0.91, True), (0.99, 0.93, False), (0.85, 0.74, True), (0.85, 0.77, False)],
    ids=["high_train_gap_0.08", "high_train_gap_0.06", "low_train_gap_0.11", "low_train_gap_0.08"],
)
def test_overfitting_score_gap_thresholds(train, val, fires):
    found = find_overfitting(b.evidence(net_train_score=train, net_val_score=val))
    assert [f.severity for f in found] == (["warning"] if fires else [])


def test_overfitting_reports_gap_and_source():
    (f,) = find_overfitting(b.evidence(net_train_score=1.0, net_val_score=0.8))
    assert (f.kind, f.plot) == ("overfitting", "metric")
    assert (
        f.evidence["gap"] == pytest.approx(0.2) and "AUTOTRAINER" in f.evidence["threshold_source"]
    )


def _rising(events=()):
    k = np.arange(12)
    records = b.epochs(
        1.0 * np.exp(-0.3 * k), val_loss=np.r_[np.linspace(1.0, 0.5, 6), np.linspace(0.52, 0.8, 6)]
    )
    return b.history(records=records, events=events)


def test_overfitting_rising_validation_loss_is_warning():
    (f,) = find_overfitting(b.evidence(history=_rising()))
    assert f.severity == "warning" and f.plot == "loss"
    assert f.evidence["best_val_epoch"] == 6 and f.evidence["val_loss_rise"] == pytest.approx(0.6)


def test_overfitting_rising_loss_with_steady_score_is_info():
    k = np.arange(12)
    records = b.epochs(
        1.0 * np.exp(-0.3 * k),
        val_loss=np.r_[np.linspace(1.0, 0.5, 6), np.linspace(0.52, 0.8, 6)],
        val_metric=np.r_[np.linspace(0.5, 0.95, 6), np.full(6, 0.945)],
    )
    (f,) = find_overfitting(b.evidence(history=b.history(records=records)))
    assert f.severity == "info" and f.evidence["val_score_drop_from_best"] == pytest.approx(0.005)


def test_overfitting_restored_by_early_stopping_is_info():
    (f,) = find_overfitting(
        b.evidence(history=_rising(events=[{"kind": "restore_best", "epoch": 6}]))
    )
    assert f.severity == "info" and f.evidence["early_stopping_restored_best"] is True


def test_overfitting_loss_gap_alone_is_info():
    records = b.epochs([1.0, 0.6, 0.4, 0.3], val_loss=[1.1, 0.8, 0.6, 0.5])
    (f,) = find_overfitting(b.evidence(history=b.history(records=records)))
    assert f.severity == "info" and f.evidence["val_over_train_loss_gap"] == pytest.approx(2 / 3)


def test_overfitting_prefers_eval_mode_training_loss():
    # Dropout inflates the epoch-mean loss; the eval-mode probe loss shows the real gap.
    records = b.epochs(
        [1.0, 0.9, 0.9, 0.9],
        val_loss=[1.0, 0.9, 0.9, 0.9],
        extra={"train_eval_loss": [0.9, 0.5, 0.5, 0.5]},
    )
    (f,) = find_overfitting(b.evidence(history=b.history(records=records)))
    assert f.evidence["val_over_train_loss_gap"] == pytest.approx(0.8)


def test_overfitting_quiet_on_small_gaps():
    records = b.epochs([1.0, 0.6, 0.4, 0.3], val_loss=[1.0, 0.62, 0.42, 0.32])
    ev = b.evidence(history=b.history(records=records), net_train_score=0.95, net_val_score=0.93)
    assert find_overfitting(ev) == []


# ------------------------------------------------------------------ underfitting


def test_underfitting_against_best_baseline_is_warning():
    ev = b.evidence(net_train_score=0.6, net_val_score=0.58, baselines=b.baselines())
    (f,) = find_underfitting(ev)
    assert (f.kind, f.severity, f.plot) == ("underfitting", "warning", "metric")
    assert f.evidence["reference"] == "rbf_svm"
    assert f.evidence["avoidable_bias"] == pytest.approx(0.4 - 0.08)


def test_underfitting_without_baselines_is_info():
    (f,) = find_underfitting(b.evidence(net_train_score=0.6, net_val_score=0.58))
    assert f.severity == "info" and f.evidence["reference"] == "perfect"


def test_underfitting_small_but_dominant_bias_is_info():
    ev = b.evidence(net_train_score=0.87, net_val_score=0.86, baselines=b.baselines())
    (f,) = find_underfitting(ev)
    assert f.severity == "info" and f.evidence["avoidable_bias"] > f.evidence["variance"]


def test_underfitting_names_dead_units_first():
    h = b.history(signals={"dead_fraction/act1": [0.0, 0.9]})
    ev = b.evidence(history=h, net_train_score=0.5, baselines=b.baselines())
    (f,) = find_underfitting(ev)
    assert f.advice[0].startswith("First fix 90% dead units in act1")


def test_underfitting_quiet_when_the_net_fits():
    ev = b.evidence(net_train_score=0.97, net_val_score=0.95, baselines=b.baselines())
    assert find_underfitting(ev) == []
    assert find_underfitting(b.evidence(task="unsupervised", metric="")) == []


# ------------------------------------------------------------------ more data


def test_fit_power_law_matches_scipy_curve_fit():
    sizes = np.array([100.0, 250.0, 500.0, 1000.0])
    errors = 3.0 * sizes**-0.4 * np.array([1.02, 0.98, 1.01, 0.99])
    a, b_exp = fit_power_law(sizes, errors)
    # Reference: nonlinear least squares on the log model, which log-log polyfit solves exactly.
    (ref_log_a, ref_b), _ = curve_fit(lambda n, la, bb: la - bb * n, np.log(sizes), np.log(errors))
    assert a == pytest.approx(np.exp(ref_log_a), rel=1e-6) and b_exp == pytest.approx(
        ref_b, rel=1e-6
    )


def test_more_data_helps_steep_curve_with_large_gap_is_warning():
    lc = b.learning_curve(val=(0.5, 0.6, 0.68, 0.74), train=(1.0, 1.0, 1.0, 1.0))
    (f,) = find_more_data_helps(b.evidence(learning_curve=lc))
    assert (f.kind, f.severity, f.plot) == ("more_data_helps", "warning", "learning_curve")
    _, b_exp = fit_power_law(np.array(lc.sizes, float), 1 - np.array(lc.val_mean))
    assert f.evidence["predicted_gain_2x"] == pytest.approx(0.26 * (1 - 2**-b_exp))


def test_more_data_helps_steep_curve_small_gap_is_info():
    (f,) = find_more_data_helps(b.evidence(learning_curve=b.learning_curve()))
    assert f.severity == "info" and "should help" in f.summary


def test_more_data_helps_flat_curve_says_unlikely():
    lc = b.learning_curve(val=(0.90, 0.901, 0.90, 0.902), train=(0.93, 0.93, 0.93, 0.93))
    (f,) = find_more_data_helps(b.evidence(learning_curve=lc))
    assert f.severity == "info" and "unlikely" in f.summary and "capacity" in f.advice[0]


def test_more_data_helps_gain_within_noise_is_not_steep():
    lc = LearningCurve(
        (100, 200, 400), (1.0,) * 3, (0.0,) * 3, (0.6, 0.62, 0.64), (0.2,) * 3, "accuracy", 4
    )
    (f,) = find_more_data_helps(b.evidence(learning_curve=lc))
    assert "unlikely" in f.summary and f.evidence["standard_error"] == pytest.approx(0.1)


def test_more_data_helps_on_a_loss_curve():
    lc = LearningCurve(
        (100, 200, 400), (0.1,) * 3, (0.0,) * 3, (1.0, 0.8, 0.64), (0.01,) * 3, "loss", 5
    )
    (f,) = find_more_data_helps(b.evidence(learning_curve=lc))
    assert f.severity == "warning" and f.evidence["exponent_b"] == pytest.approx(-np.log2(0.8))


def test_more_data_helps_quiet_with_too_few_sizes():
    lc = b.learning_curve(val=(0.5, 0.7), train=(1.0, 1.0))
    assert find_more_data_helps(b.evidence(learning_curve=lc)) == []
    assert find_more_data_helps(b.evidence()) == []


def test_underfitting_when_a_linear_model_fits_the_training_data_better():
    # Only a weak linear baseline ran: the avoidable bias looks small, but the net fits its
    # own training data worse than logistic regression does.
    base = b.baselines(dummy=0.09, logistic=0.30, rbf=None)  # logistic train score 0.32
    ev = b.evidence(baselines=base, net_train_score=0.28, net_val_score=0.29)
    (f,) = find_underfitting(ev)
    assert f.severity == "warning" and f.evidence["linear_train_score"] == pytest.approx(0.32)
    assert "logistic_regression" in f.summary
