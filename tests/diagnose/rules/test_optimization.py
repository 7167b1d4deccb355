from __future__ import annotations

import numpy as np
import pytest

from deepdx.diagnose.rules.optimization import (
    find_divergence,
    find_learning_rate_too_high,
    find_learning_rate_too_low,
    find_oscillation,
    find_plateau,
)
from tests.diagnose.rules import builders as b

_NAN_MESSAGE = "the training loss became nan at epoch 2, step 130 (lr 5); lower the learning rate"


def _layers(prefix, value, n=20):
    return {f"{prefix}/{layer}": np.full(n, value) for layer in b.LAYERS}


# ------------------------------------------------------------------ divergence


def test_divergence_from_the_error_message():
    (f,) = find_divergence(b.evidence(divergence=_NAN_MESSAGE))
    assert (f.kind, f.severity, f.plot) == ("divergence", "problem", "loss")
    assert "epoch 2, step 130" in f.summary and f.evidence["message"] == _NAN_MESSAGE


def test_divergence_loss_back_above_its_start_is_problem():
    loss = np.concatenate([np.linspace(2.3, 0.3, 300), np.full(300, 3.0)])
    (f,) = find_divergence(b.evidence(history=b.history(loss)))
    assert f.severity == "problem"
    assert f.evidence["ratio_to_best"] > 4 and f.evidence["progress_given_back"] >= 1
    assert f.evidence["threshold"] == 4.0


def test_divergence_half_the_progress_lost_is_warning():
    loss = np.concatenate([np.linspace(2.3, 0.2, 300), np.full(200, 0.2), np.full(300, 1.5)])
    (f,) = find_divergence(b.evidence(history=b.history(loss)))
    assert f.severity == "warning" and 0.5 <= f.evidence["progress_given_back"] < 1


def test_divergence_absolute_loss_is_problem():
    loss = np.concatenate([np.full(50, 500.0), np.full(300, 5e3)])
    (f,) = find_divergence(b.evidence(history=b.history(loss)))
    assert f.severity == "problem" and f.evidence["final_smoothed_loss"] >= 1e3


def test_divergence_quiet_on_noise_near_zero_loss():
    # The smoothed loss ends 5x its best, but near zero: almost no progress is given back.
    loss = np.concatenate([np.linspace(2.3, 1e-4, 300), np.full(300, 5e-4)])
    assert find_divergence(b.evidence(history=b.history(loss))) == []


def test_divergence_quiet_on_healthy_run():
    assert find_divergence(b.healthy_evidence()) == []
    assert find_divergence(b.evidence()) == []


# ------------------------------------------------------------------ learning rate too high


def test_lr_too_high_divergence_with_large_updates_is_problem():
    h = b.history(b.decaying_loss(100), signals=_layers("update_ratio", 0.2))
    (f,) = find_learning_rate_too_high(b.evidence(history=h, divergence=_NAN_MESSAGE, lr=5.0))
    assert (f.kind, f.severity) == ("learning_rate_too_high", "problem")
    assert f.evidence["median_update_ratio"] == pytest.approx(0.2)
    assert f.evidence["ratio_threshold"] == 1e-2 and f.evidence["diverged"] is True


def test_lr_too_high_divergence_alone_is_warning():
    (f,) = find_learning_rate_too_high(b.evidence(divergence=_NAN_MESSAGE))
    assert f.severity == "warning"


def test_lr_too_high_oscillation_with_sharpness_for_sgd():
    records = b.epochs([1.0, 0.7, 0.9, 0.6, 0.8, 0.5, 0.75])
    h = b.history(records=records, signals={"lr_times_lambda_max": [9.0, 11.0]})
    (f,) = find_learning_rate_too_high(b.evidence(history=h, optimizer="sgd", lr=1.0))
    assert f.severity == "warning" and f.plot == "curvature"
    assert f.evidence["lr_lambda_max_over_limit"] == pytest.approx(5.0)


def test_lr_too_high_ignores_raw_sharpness_for_adam():
    records = b.epochs([1.0, 0.7, 0.9, 0.6, 0.8, 0.5, 0.75])
    h = b.history(records=records, signals={"lr_times_lambda_max": [9.0, 11.0]})
    assert find_learning_rate_too_high(b.evidence(history=h, optimizer="adam")) == []


def test_lr_too_high_quiet_when_large_updates_are_stable():
    signals = b.healthy_signals() | _layers("update_ratio", 0.02, n=100)
    h = b.history(b.decaying_loss(), signals=signals, every=10)
    assert find_learning_rate_too_high(b.evidence(history=h)) == []


def test_lr_too_high_quiet_on_healthy_run():
    assert find_learning_rate_too_high(b.healthy_evidence()) == []


# ------------------------------------------------------------------ learning rate too low


def _crawling_loss(n=400):
    return np.linspace(2.303, 2.25, n) + 0.001 * np.sin(np.arange(n))


def test_lr_too_low_two_measurements_and_no_fit_is_problem():
    signals = _layers("update_ratio", 1e-6) | {"distance_from_init": [1e-4, 2e-4, 3e-4]}
    h = b.history(_crawling_loss(), signals=signals)
    ev = b.evidence(history=h, lr=1e-7, net_train_score=0.12, baselines=b.baselines())
    (f,) = find_learning_rate_too_low(ev)
    assert (f.kind, f.severity) == ("learning_rate_too_low", "problem")
    assert f.evidence["median_update_ratio"] == pytest.approx(1e-6)
    assert f.evidence["distance_from_init"] == pytest.approx(3e-4)


def test_lr_too_low_update_ratio_alone_is_warning():
    h = b.history(_crawling_loss(), signals=_layers("update_ratio", 1e-6))
    (f,) = find_learning_rate_too_low(b.evidence(history=h, lr=1e-7))
    assert f.severity == "warning" and f.evidence["ratio_threshold"] == 1e-4


def test_lr_too_low_crawl_without_monitors_is_warning():
    (f,) = find_learning_rate_too_low(b.evidence(history=b.history(_crawling_loss())))
    assert f.severity == "warning" and f.evidence["late_over_early_loss_rate"] >= 0.5


def test_lr_too_low_quiet_when_one_layer_moves_fast():
    signals = _layers("update_ratio", 1e-6) | {"update_ratio/net.linear3": np.full(20, 5e-3)}
    h = b.history(np.full(400, 2.3), signals=signals)
    assert find_learning_rate_too_low(b.evidence(history=h)) == []


def test_lr_too_low_quiet_when_dead_units_explain_small_updates():
    signals = _layers("update_ratio", 1e-6) | {"dead_fraction/net.act1": [0.0, 0.99]}
    h = b.history(_crawling_loss(), signals=signals)
    assert find_learning_rate_too_low(b.evidence(history=h)) == []


def test_lr_too_low_quiet_when_converged_on_a_good_fit():
    signals = b.healthy_signals() | _layers("update_ratio", 1e-6, n=100)
    h = b.history(b.decaying_loss(), signals=signals, every=10)
    assert find_learning_rate_too_low(b.evidence(history=h, net_train_score=0.99)) == []
    assert find_learning_rate_too_low(b.healthy_evidence()) == []


# ------------------------------------------------------------------ plateau


def _flat_run(**signals):
    loss = np.concatenate([np.linspace(2.3, 1.5, 200), np.full(800, 1.5)])
    return b.history(loss, signals=signals)


def test_plateau_with_tiny_updates_blames_the_learning_rate():
    (f,) = find_plateau(b.evidence(history=_flat_run(**_layers("update_ratio", 1e-6))))
    assert (f.kind, f.severity) == ("plateau", "warning")
    assert f.evidence["cause"] == "learning rate too small"
    assert f.evidence["relative_improvement"] < 1e-3 and f.evidence["window"] == 10


def test_plateau_blames_dead_units_first():
    h = _flat_run(**(_layers("update_ratio", 1e-6) | {"dead_fraction/net.act1": [0.1, 0.95]}))
    (f,) = find_plateau(b.evidence(history=h))
    assert "dead units in net.act1" in f.evidence["cause"]


def test_plateau_with_large_updates_says_bouncing():
    (f,) = find_plateau(b.evidence(history=_flat_run(**_layers("update_ratio", 0.05))))
    assert "too large" in f.evidence["cause"]


def test_plateau_at_a_poor_fit_is_warning():
    ev = b.evidence(history=_flat_run(), net_train_score=0.5, baselines=b.baselines())
    (f,) = find_plateau(ev)
    assert f.severity == "warning" and "poor fit" in f.evidence["cause"]


def test_plateau_converged_on_a_good_fit_is_info():
    ev = b.evidence(history=_flat_run(), net_train_score=0.96, baselines=b.baselines())
    (f,) = find_plateau(ev)
    assert f.severity == "info" and f.evidence["cause"] == "converged"


def test_plateau_uses_epochs_when_there_are_enough():
    records = b.epochs([2.0, 1.5, 1.2, 1.0] + [0.9] * 11)
    (f,) = find_plateau(b.evidence(history=b.history(np.linspace(2, 1, 20), records=records)))
    assert f.evidence["relative_improvement"] == 0.0


@pytest.mark.parametrize(
    "loss", [np.linspace(2.3, 0.5, 1000), np.full(15, 1.0)], ids=["falling", "short"]
)
def test_plateau_quiet(loss):
    assert find_plateau(b.evidence(history=b.history(loss))) == []


# ------------------------------------------------------------------ oscillation


def test_oscillation_of_the_training_loss():
    (f,) = find_oscillation(
        b.evidence(history=b.history(records=b.epochs([1.0, 0.7, 0.9, 0.6, 0.8, 0.5])))
    )
    assert (f.kind, f.severity, f.plot) == ("oscillation", "warning", "loss")
    assert f.evidence["swings"] == 2 and f.evidence["share_of_epochs"] == pytest.approx(0.4)


def test_oscillation_of_the_training_accuracy():
    records = b.epochs(np.linspace(1.0, 0.5, 6), train_metric=[0.5, 0.7, 0.6, 0.8, 0.7, 0.9])
    (f,) = find_oscillation(b.evidence(history=b.history(records=records)))
    assert f.evidence["series"] == "train_metric" and f.plot == "metric"


def test_oscillation_quiet_on_noise_near_zero_loss():
    losses = [2.0, 0.5, 0.01, 0.002, 0.003, 0.0015, 0.0025, 0.001]
    assert find_oscillation(b.evidence(history=b.history(records=b.epochs(losses)))) == []


def test_oscillation_quiet_on_few_epochs_and_healthy_runs():
    assert find_oscillation(b.evidence(history=b.history(records=b.epochs([1.0, 0.5, 0.9])))) == []
    assert find_oscillation(b.healthy_evidence()) == []


def test_lr_too_low_quiet_when_layers_get_no_gradient_at_all():
    signals = {"grad_norm/unused": [0.0] * 3, "update_ratio/unused": [0.0] * 3}
    h = b.history(_crawling_loss(), signals=signals)
    assert find_learning_rate_too_low(b.evidence(history=h)) == []
