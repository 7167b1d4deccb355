from __future__ import annotations

from deepdx.diagnose.rules.units import find_dead_units, find_saturated_units
from tests.diagnose.rules import builders as b


def _units(prefix, **layers):
    return b.history(signals={f"{prefix}/{name}": values for name, values in layers.items()})


def test_dead_units_layer_above_half_is_warning():
    h = _units("dead_fraction", act1=[0.0, 0.2], act2=[0.0, 0.6])
    (f,) = find_dead_units(b.evidence(history=h))
    assert (f.kind, f.severity, f.plot) == ("dead_units", "warning", "activations")
    assert f.evidence["worst_layer"] == "act2" and f.evidence["flagged_layers"] == ["act2"]
    assert f.evidence["threshold"] == 0.5


def test_dead_units_all_dead_and_no_learning_is_problem():
    h = _units("dead_fraction", act1=[1.0, 1.0], act2=[1.0, 1.0])
    ev = b.evidence(history=h, net_train_score=0.11, baselines=b.baselines())
    (f,) = find_dead_units(ev)
    assert f.severity == "problem" and f.evidence["training_failed"] is True


def test_dead_units_severe_but_net_learned_is_warning():
    h = _units("dead_fraction", act1=[0.0, 0.95], act2=[0.0, 0.1])
    ev = b.evidence(history=h, net_train_score=0.95, baselines=b.baselines())
    assert [f.severity for f in find_dead_units(ev)] == ["warning"]


def test_dead_units_quiet_below_threshold():
    assert find_dead_units(b.evidence(history=_units("dead_fraction", act1=[0.1, 0.5]))) == []
    assert find_dead_units(b.healthy_evidence()) == []


def test_saturated_units_at_init_are_flagged_even_after_recovery():
    h = _units("saturated_fraction", act1=[0.8, 0.1])
    (f,) = find_saturated_units(b.evidence(history=h))
    assert f.severity == "warning"
    assert f.evidence["peak_fractions"] == {"act1": 0.8} and f.evidence["final_fractions"] == {
        "act1": 0.1
    }


def test_saturated_units_severe_and_failed_is_problem():
    h = _units("saturated_fraction", act1=[0.95, 0.95])
    ev = b.evidence(history=h, net_train_score=0.1, baselines=b.baselines())
    assert [f.severity for f in find_saturated_units(ev)] == ["problem"]


def test_saturated_units_soft_signal_gives_warning_only():
    h = _units("soft_saturated_fraction", act1=[0.99, 0.99])
    ev = b.evidence(history=h, net_train_score=0.1, baselines=b.baselines())
    (f,) = find_saturated_units(ev)
    assert f.severity == "warning" and f.evidence["soft_definition"] is True


def test_saturated_units_quiet_below_threshold():
    assert find_saturated_units(b.evidence(history=_units("saturated_fraction", act1=[0.3]))) == []


def test_dead_units_single_layer_just_above_half_stays_warning():
    # 'Every layer flagged' needs two layers or more; one layer at 60% is not severe.
    h = _units("dead_fraction", act1=[0.6, 0.6])
    ev = b.evidence(history=h, net_train_score=0.1, baselines=b.baselines())
    assert [f.severity for f in find_dead_units(ev)] == ["warning"]
