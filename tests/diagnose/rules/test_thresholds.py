from __future__ import annotations

from dataclasses import replace

import pytest

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules.units import find_dead_units
from tests.diagnose.rules import builders as b

_ALL = [name for name in th.__all__ if name != "Threshold"]


@pytest.mark.parametrize("name", _ALL)
def test_threshold_has_a_source(name):
    threshold = getattr(th, name)
    assert isinstance(threshold, th.Threshold) and threshold.source.strip()


def test_threshold_all_lists_every_constant():
    assert set(_ALL) == {k for k, v in vars(th).items() if isinstance(v, th.Threshold)}


def test_threshold_override_changes_the_rules(monkeypatch):
    ev = b.evidence(history=b.history(signals={"dead_fraction/act1": [0.3]}))
    assert find_dead_units(ev) == [] and m.flow_blockers(ev) == []
    monkeypatch.setattr(th, "DEAD_LAYER_FRACTION", replace(th.DEAD_LAYER_FRACTION, value=0.2))
    (f,) = find_dead_units(ev)
    assert f.evidence["threshold"] == 0.2
    assert m.flow_blockers(ev) == ["30% dead units in act1"]
