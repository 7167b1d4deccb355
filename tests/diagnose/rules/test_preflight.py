from __future__ import annotations

import math

import pytest

from deepdx.diagnose.rules.preflight import (
    find_data_issues,
    find_ignores_inputs,
    find_loss_at_init,
    find_one_batch_failure,
    find_wrong_gradient,
)
from tests.diagnose.rules import builders as b

# ------------------------------------------------------------------ wrong_gradient


def test_wrong_gradient_problem_names_the_tensor():
    check = b.gradcheck_result("wrong", error=0.4, worst="net.custom.weight", custom=("MyFn",))
    (f,) = find_wrong_gradient(b.evidence(gradcheck=check))
    assert (f.kind, f.severity, f.plot) == ("wrong_gradient", "problem", "gradcheck")
    assert f.evidence["worst_tensor"] == "net.custom.weight"
    assert f.evidence["max_rel_error"] == 0.4 and f.evidence["threshold"] == 1e-2
    assert "net.custom.weight" in f.summary and "MyFn" in f.advice[0]


def test_wrong_gradient_suspect_without_kinks_is_warning():
    check = b.gradcheck_result("suspect", error=1e-3)
    (f,) = find_wrong_gradient(b.evidence(gradcheck=check))
    assert f.severity == "warning" and f.evidence["threshold"] == 1e-4


@pytest.mark.parametrize(
    "check",
    [
        None,
        b.gradcheck_result("ok"),
        b.gradcheck_result("suspect", error=1e-3, non_smooth=("relu",)),
    ],
    ids=["not_run", "ok", "suspect_with_kinks"],
)
def test_wrong_gradient_quiet(check):
    assert find_wrong_gradient(b.evidence(gradcheck=check)) == []


def test_wrong_gradient_quotes_failed_one_batch_overfit():
    pre = b.preflight(one_batch_final_loss=2.0, one_batch_final_score=0.2)
    (f,) = find_wrong_gradient(
        b.evidence(gradcheck=b.gradcheck_result("wrong", error=0.5), preflight=pre)
    )
    assert f.evidence["one_batch_final_loss"] == 2.0


# ------------------------------------------------------------------ loss_at_init


def test_loss_at_init_overconfident():
    (f,) = find_loss_at_init(b.evidence(preflight=b.preflight(init_loss=15.0)))
    assert (f.kind, f.severity) == ("loss_at_init", "warning")
    assert f.evidence["ratio_to_chance"] == pytest.approx(15.0 / math.log(10))
    assert "confidently wrong" in f.summary


def test_loss_at_init_moderately_high_is_not_called_overconfident():
    (f,) = find_loss_at_init(b.evidence(preflight=b.preflight(init_loss=3.2)))
    assert f.evidence["relative_deviation"] == pytest.approx(3.2 / math.log(10) - 1)
    assert "confidently" not in f.summary


def test_loss_at_init_below_chance_points_at_leakage():
    (f,) = find_loss_at_init(b.evidence(preflight=b.preflight(init_loss=1.0)))
    assert f.evidence["relative_deviation"] < -0.2 and "leakage" in f.advice[0]


@pytest.mark.parametrize("init_loss", [2.303, 2.0, 2.7])
def test_loss_at_init_quiet_within_band(init_loss):
    assert find_loss_at_init(b.evidence(preflight=b.preflight(init_loss=init_loss))) == []


def test_loss_at_init_quiet_without_chance_loss():
    assert find_loss_at_init(b.evidence(preflight=b.preflight(chance_loss=0.0))) == []


# ------------------------------------------------------------------ ignores_inputs


def _ignoring(**fields):
    pre = b.preflight(real_inputs_score=0.115, zeroed_inputs_score=0.11)
    return b.evidence(preflight=pre, **fields)


def test_ignores_inputs_problem_when_baselines_use_the_inputs():
    (f,) = find_ignores_inputs(_ignoring(baselines=b.baselines(), net_val_score=0.11))
    assert (f.kind, f.severity) == ("ignores_inputs", "problem")
    assert f.evidence["gain_over_zeroed_inputs"] == pytest.approx(0.005 / 0.89)
    assert f.evidence["labels_learnable_by_baselines"] is True


def test_ignores_inputs_warning_when_no_baseline_beats_chance():
    flat = b.baselines(dummy=0.11, logistic=0.12, rbf=0.115)
    (f,) = find_ignores_inputs(_ignoring(baselines=flat))
    assert f.severity == "warning" and f.evidence["labels_learnable_by_baselines"] is False


def test_ignores_inputs_quiet_when_the_trained_net_uses_its_inputs():
    # The short pre-flight run learned little, but the trained net clearly beats zero inputs.
    assert find_ignores_inputs(_ignoring(baselines=b.baselines(), net_val_score=0.9)) == []


def test_ignores_inputs_falls_back_to_losses():
    pre = b.preflight(
        real_inputs_score=None,
        zeroed_inputs_score=None,
        real_inputs_loss=0.98,
        zeroed_inputs_loss=1.0,
    )
    (f,) = find_ignores_inputs(b.evidence(task="regression", metric="", preflight=pre))
    assert f.evidence["gain_over_zeroed_inputs"] == pytest.approx(0.02)


def test_ignores_inputs_quiet_for_healthy_and_unsupervised():
    assert find_ignores_inputs(b.evidence(preflight=b.preflight())) == []
    assert find_ignores_inputs(_ignoring(task="unsupervised", metric="")) == []


# ------------------------------------------------------------------ one-batch overfit


def test_one_batch_failure_is_underfitting_warning():
    pre = b.preflight(one_batch_final_loss=1.5, one_batch_final_score=0.4)
    (f,) = find_one_batch_failure(b.evidence(preflight=pre))
    assert (f.kind, f.severity) == ("underfitting", "warning")
    assert f.evidence["one_batch_final_loss"] == 1.5


def test_one_batch_failure_info_when_trained_net_fits():
    pre = b.preflight(one_batch_final_loss=1.5, one_batch_final_score=0.4)
    ev = b.evidence(preflight=pre, net_train_score=0.99, baselines=b.baselines())
    (f,) = find_one_batch_failure(ev)
    assert f.severity == "info"


@pytest.mark.parametrize(
    "fields",
    [
        {"one_batch_final_score": 0.995, "one_batch_final_loss": 0.5},
        {"one_batch_final_score": None},
    ],
    ids=["by_score", "by_loss"],
)
def test_one_batch_passed_is_quiet(fields):
    assert find_one_batch_failure(b.evidence(preflight=b.preflight(**fields))) == []


def test_one_batch_failure_left_to_wrong_gradient():
    pre = b.preflight(one_batch_final_loss=1.5, one_batch_final_score=0.4)
    ev = b.evidence(preflight=pre, gradcheck=b.gradcheck_result("wrong", error=0.5))
    assert find_one_batch_failure(ev) == []


# ------------------------------------------------------------------ data_sanity


def test_data_issues_unscaled_inputs_warning():
    (f,) = find_data_issues(b.evidence(data_sanity=b.data_sanity(feature_std_max=80.0)))
    assert (f.kind, f.severity) == ("data_sanity", "warning")
    assert f.evidence["std_high_threshold"] == 10.0


def test_data_issues_off_centre_inputs_warning():
    ds = b.data_sanity(feature_mean_abs_max=5.0, feature_std_max=1.0)
    assert [f.severity for f in find_data_issues(b.evidence(data_sanity=ds))] == ["warning"]


def test_data_issues_narrow_feature_is_info():
    ds = b.data_sanity(feature_std_min=0.01)
    assert [f.severity for f in find_data_issues(b.evidence(data_sanity=ds))] == ["info"]


def test_data_issues_imbalance_only_for_classification():
    ds = b.data_sanity(imbalance_ratio=25.0)
    (f,) = find_data_issues(b.evidence(data_sanity=ds))
    assert f.evidence["imbalance_ratio"] == 25.0 and f.evidence["threshold"] == 10.0
    assert find_data_issues(b.evidence(task="regression", metric="r2", data_sanity=ds)) == []


@pytest.mark.parametrize(("n", "severity"), [(100, "warning"), (3, "info")])
def test_data_issues_duplicates(n, severity):
    ds = b.data_sanity(n_duplicates_across_splits=n)
    (f,) = find_data_issues(b.evidence(data_sanity=ds, n_train=1000))
    assert f.severity == severity and f.evidence["share_lower_bound"] == n / 1000


def test_data_issues_quiet_on_clean_data():
    assert find_data_issues(b.evidence(data_sanity=b.data_sanity())) == []
    assert find_data_issues(b.evidence()) == []


def test_ignores_inputs_only_warning_when_the_net_cannot_learn_at_all():
    h = b.history(signals={"dead_fraction/act1": [1.0], "dead_fraction/act2": [1.0]})
    (f,) = find_ignores_inputs(_ignoring(baselines=b.baselines(), history=h))
    assert f.severity == "warning" and f.evidence["learning_blockers"]
    assert "may learn nothing at all" in f.summary


def test_ignores_inputs_quotes_a_disconnected_input_layer():
    h = b.history(signals={"grad_norm/net.linear1": [0.0] * 3, "grad_norm/net.linear2": [0.5] * 3})
    (f,) = find_ignores_inputs(_ignoring(baselines=b.baselines(), history=h))
    assert f.severity == "problem" and f.evidence["first_layer_grad_norm"] == 0.0


def test_ignores_inputs_problem_when_the_input_gradient_is_zero():
    # Even if the short zeroed-input comparison were inconclusive, ∂L/∂X ≡ 0 settles it.
    ev = b.evidence(preflight=b.preflight(), input_sensitivity=0.0)
    (f,) = find_ignores_inputs(ev)
    assert (f.kind, f.severity) == ("ignores_inputs", "problem")
    assert f.evidence["input_sensitivity"] == 0.0


def test_ignores_inputs_only_warning_when_the_inputs_are_used_but_the_run_was_short():
    # A small gain over zeroed inputs, but the trained net's loss does depend on its inputs.
    ev = _ignoring(baselines=b.baselines(), net_val_score=0.11)
    ev.input_sensitivity = 0.8
    (f,) = find_ignores_inputs(ev)
    assert f.severity == "warning"


def test_ignores_inputs_zero_gradient_explained_by_dead_units_is_a_warning():
    h = b.history(signals={"dead_fraction/act1": [1.0], "dead_fraction/act2": [1.0]})
    ev = _ignoring(baselines=b.baselines(), history=h)
    ev.input_sensitivity = 0.0
    (f,) = find_ignores_inputs(ev)
    assert f.severity == "warning" and f.evidence["learning_blockers"]
