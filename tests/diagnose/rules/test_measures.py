from __future__ import annotations

import numpy as np
import pytest

from deepdx._random import numpy_rng
from deepdx.diagnose.rules import _measures as m
from tests.diagnose.rules import builders as b


def test_smoothed_matches_the_recursive_definition():
    values = numpy_rng(0).random(50)
    mom, ref = 0.0, []
    for t, v in enumerate(values, start=1):  # Lightning LR finder, written out
        mom = 0.98 * mom + 0.02 * v
        ref.append(mom / (1 - 0.98**t))
    np.testing.assert_allclose(m.smoothed(values, 0.98), ref, rtol=1e-12)


def test_gradient_spikes_match_a_brute_force_running_median():
    g = np.exp(numpy_rng(1).standard_normal(400))
    g[[150, 151, 300]] = 500.0
    h = b.history(signals={"grad_norm": g})
    start = np.median(g[:5])
    ref = [
        t + 1
        for t in range(5, g.size)
        if g[t] > 10 * np.median(g[max(0, t - 50) : t]) and g[t] > start
    ]
    spikes = m.gradient_spikes(h)
    assert spikes is not None and spikes.steps.tolist() == ref
    assert spikes.events == 1 + sum(np.diff(ref) > 1)


def test_loss_progress_uses_preflight_loss_when_present():
    loss = np.linspace(2.0, 1.0, 100)
    h = b.history(loss)
    final = loss[-10:].mean()  # the last 10% of the steps
    assert m.loss_progress(b.evidence(history=h)) == pytest.approx(1 - final / np.median(loss[:5]))
    ev = b.evidence(history=h, preflight=b.preflight(init_loss=4.0))
    assert m.loss_progress(ev) == pytest.approx(1 - final / 4.0)


def test_layer_summary_median_skips_step_zero():
    h = b.history()
    for step, value in [(0, 100.0), (8, 1.0), (16, 3.0)]:
        h.log_step("grad_norm/l1", value, step=step)
    assert m.layer_summary(h, "grad_norm/") == {"l1": 2.0}
    assert m.layer_summary(h, "grad_norm/", reduce="max") == {"l1": 100.0}
    assert m.layer_summary(h, "grad_norm/", reduce="last") == {"l1": 3.0}


def test_gradient_profile_ratio_and_depth():
    h = b.history(signals={"grad_norm/a": [1e-6], "grad_norm/b": [1e-3], "grad_norm/c": [1.0]})
    profile = m.gradient_profile(h)
    assert profile is not None and profile.ratio == pytest.approx(1e-6) and profile.falls_with_depth


@pytest.mark.parametrize(("name", "limit"), [("sgd", 2.0), ("momentum", 3.8), ("adam", None)])
def test_stability_limit(name, limit):
    found = m.stability_limit(name)
    assert (found.value if found else None) == limit


def test_sharpness_falls_back_to_lambda_max_times_lr():
    h = b.history(signals={"lambda_max": [10.0, 30.0]})
    np.testing.assert_allclose(
        m.sharpness(b.evidence(history=h, optimizer="sgd", lr=0.1)), [0.5, 1.5]
    )


def test_chance_score_prefers_the_dummy_baseline():
    assert m.chance_score(b.evidence(baselines=b.baselines(dummy=0.3))) == 0.3
    assert m.chance_score(b.evidence()) == pytest.approx(0.1)
    assert m.chance_score(b.evidence(task="regression", metric="r2")) == 0.0


def test_bias_variance_decomposition():
    ev = b.evidence(net_train_score=0.8, net_val_score=0.7, baselines=b.baselines())
    split = m.bias_variance(ev)
    assert split is not None and split.reference == "rbf_svm"
    assert split.avoidable_bias == pytest.approx(0.2 - 0.08) and split.variance == pytest.approx(
        0.1
    )


def test_update_ratios_leave_out_layers_without_gradient():
    signals = {
        "grad_norm/unused": [0.0] * 3,
        "grad_norm/used": [0.5] * 3,
        "grad_norm/frozen": [0.5] * 3,
        "update_ratio/unused": [0.0] * 3,
        "update_ratio/used": [1e-3] * 3,
        "update_ratio/frozen": [0.0] * 3,  # a gradient but no step: kept
    }
    h = b.history(signals=signals)
    assert m.disconnected_layers(h) == ["unused"]
    assert m.update_ratios(h) == (pytest.approx(5e-4), pytest.approx(1e-3))
