from __future__ import annotations

import pytest

from deepdx.diagnose.rules.capacity import find_capacity_gains
from tests.diagnose.rules import builders as b


def _run(*probes, **fields):
    return find_capacity_gains(b.evidence(capacity=list(probes), **fields))


def test_capacity_wider_beats_base_gives_more_units():
    (f,) = _run(b.probe("base", 0.70), b.probe("wider", 0.80), b.probe("deeper", 0.71))
    assert (f.kind, f.severity, f.plot) == ("more_units", "warning", "capacity")
    assert f.evidence["val_score_improvement"] == pytest.approx(0.10)
    assert f.evidence["threshold"] == 0.02 and "mlp:128" in f.advice[-1]


def test_capacity_deeper_beats_base_and_wider_gives_more_layers():
    found = _run(b.probe("base", 0.70), b.probe("wider", 0.75), b.probe("deeper", 0.80))
    assert [(f.kind, f.severity) for f in found] == [
        ("more_units", "warning"),
        ("more_layers", "warning"),
    ]


def test_capacity_deeper_behind_wider_gives_no_more_layers():
    found = _run(b.probe("base", 0.70), b.probe("wider", 0.80), b.probe("deeper", 0.75))
    assert [f.kind for f in found] == ["more_units"]


def test_capacity_more_layers_is_info_while_gradients_vanish():
    layers = {"net.linear1": 1e-8, "net.linear2": 1e-5, "net.linear3": 0.1}
    h = b.history(signals={f"grad_norm/{k}": [v] * 3 for k, v in layers.items()})
    (f,) = _run(b.probe("base", 0.70), b.probe("deeper", 0.80), history=h)
    assert (f.kind, f.severity) == ("more_layers", "info")
    assert f.advice[0].startswith("First fix vanishing gradients")


def test_capacity_without_scores_compares_validation_loss():
    (f,) = _run(b.probe("base", None, val_loss=1.0), b.probe("wider", None, val_loss=0.8))
    assert f.kind == "more_units" and f.evidence["val_loss_improvement"] == pytest.approx(0.2)


def test_capacity_quiet_when_nothing_helps_or_no_base():
    assert _run(b.probe("base", 0.80), b.probe("wider", 0.81), b.probe("deeper", 0.79)) == []
    assert _run(b.probe("wider", 0.9)) == []


def test_capacity_is_info_while_the_net_cannot_learn():
    h = b.history(signals={f"update_ratio/{layer}": [1e-7] * 3 for layer in b.LAYERS})
    (f,) = _run(b.probe("base", 0.30), b.probe("wider", 0.40), history=h)
    assert (f.kind, f.severity) == ("more_units", "info")
    assert "learning rate too low" in f.advice[0]
