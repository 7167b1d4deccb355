from __future__ import annotations

import numpy as np
import pytest

from deepdx.diagnose.rules.gradients import find_exploding_gradients, find_vanishing_gradients
from tests.diagnose.rules import builders as b


def _norms_with_spikes(at, n=300, height=50.0):
    norms = np.ones(n)
    norms[list(at)] = height
    return norms


def _grad_history(norms=None, layers=None, loss=None):
    signals = {} if norms is None else {"grad_norm": norms}
    for layer, value in (layers or {}).items():
        signals[f"grad_norm/{layer}"] = np.full(10, value)
    return b.history(loss, signals=signals)


# ------------------------------------------------------------------ exploding


def test_exploding_three_spike_events_is_warning_with_clip_advice():
    h = _grad_history(_norms_with_spikes([100, 101, 180, 250]))
    (f,) = find_exploding_gradients(b.evidence(history=h))
    assert (f.kind, f.severity, f.plot) == ("exploding_gradients", "warning", "grad_norms")
    assert f.evidence["spike_events"] == 3  # steps 101 and 102 are one event
    assert f.evidence["clip_at_p90"] == pytest.approx(
        np.percentile(_norms_with_spikes([100, 101, 180, 250]), 90)
    )
    assert "Clip the gradient norm" in f.advice[0]


def test_exploding_early_spikes_advise_warmup():
    h = _grad_history(_norms_with_spikes([8, 12, 16], n=400))
    (f,) = find_exploding_gradients(b.evidence(history=h))
    assert any("warm" in line for line in f.advice)


def test_exploding_non_finite_norm_counts_as_spike():
    norms = _norms_with_spikes([100, 200])
    norms[250] = np.inf
    (f,) = find_exploding_gradients(b.evidence(history=_grad_history(norms)))
    assert f.evidence["spike_events"] == 3


def test_exploding_by_layer_ratio():
    h = _grad_history(layers={"net.linear1": 100.0, "net.linear2": 10.0, "net.linear3": 1.0})
    (f,) = find_exploding_gradients(b.evidence(history=h))
    assert f.evidence["first_over_last_layer"] == 100.0 and f.evidence["ratio_threshold"] == 70.0


def test_exploding_quiet_on_two_events():
    h = _grad_history(_norms_with_spikes([100, 200]))
    assert find_exploding_gradients(b.evidence(history=h)) == []


def test_exploding_quiet_when_spikes_stay_below_the_initial_norm():
    norms = np.full(300, 0.01)
    norms[:20] = 5.0
    norms[[100, 150, 200]] = 0.5  # 50x the running median, but a tenth of the initial norm
    assert find_exploding_gradients(b.evidence(history=_grad_history(norms))) == []


def test_exploding_quiet_on_healthy_run():
    assert find_exploding_gradients(b.healthy_evidence()) == []
    assert find_exploding_gradients(b.evidence()) == []


# ------------------------------------------------------------------ vanishing

_DEEP_SIGMOID = {"net.linear1": 1e-9, "net.linear2": 1e-6, "net.linear3": 1e-3, "net.linear4": 0.5}


def test_vanishing_steady_fall_and_failed_training_is_problem():
    h = _grad_history(layers=_DEEP_SIGMOID, loss=np.full(200, 2.3))
    ev = b.evidence(history=h, net_train_score=0.1, baselines=b.baselines())
    (f,) = find_vanishing_gradients(ev)
    assert (f.kind, f.severity) == ("vanishing_gradients", "problem")
    assert f.evidence["first_over_last_layer"] == pytest.approx(2e-9)
    assert f.evidence["falls_with_depth"] is True and f.evidence["threshold"] == 1e-3


def test_vanishing_ratio_alone_is_info():
    layers = {"net.linear1": 1e-6, "net.linear2": 1.0, "net.linear3": 0.5}
    ev = b.evidence(history=_grad_history(layers=layers), net_train_score=0.9)
    (f,) = find_vanishing_gradients(ev)
    assert f.severity == "info" and f.evidence["falls_with_depth"] is False


@pytest.mark.parametrize(
    "layers",
    [
        {"net.linear1": 0.5, "net.linear2": 0.8, "net.linear3": 1.0},
        {"net.linear1": 1e-3, "net.linear2": 1.0, "net.linear3": 2.0},  # first norm not tiny
    ],
    ids=["healthy", "first_not_tiny"],
)
def test_vanishing_quiet(layers):
    assert find_vanishing_gradients(b.evidence(history=_grad_history(layers=layers))) == []


def test_vanishing_quiet_when_the_input_layer_gets_exactly_zero_gradient():
    # A zeroed or detached input, not a vanishing gradient: left to the zeroed-input rule.
    layers = {"net.linear1": 0.0, "net.linear2": 1e-3, "net.linear3": 1.0}
    assert find_vanishing_gradients(b.evidence(history=_grad_history(layers=layers))) == []
