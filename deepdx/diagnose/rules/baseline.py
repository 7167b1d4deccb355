"""Rule on the shallow baselines: does the net beat them? (DIAGNOSTICS.md D1).

The baselines (dummy, linear / logistic regression, linear SVM, k-NN, RBF SVM) are fitted
on the training split and scored on the test split; the net is compared on the same split
(its test score, else its validation score).

Symbols
-------
s_net      the net's score (accuracy or R²)
s_dummy    the dummy baseline's score (most frequent class / mean), else 1/C or 0
s_best     the best baseline's score; s_lin the best linear baseline's
gain(s, r) (s − r) / (1 − r), Deepchecks' normalised gain
"""

from __future__ import annotations

import math

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt

__all__ = ["find_below_baseline"]


def _net_score(evidence: Evidence) -> tuple[float, str] | None:
    """Return the net's test score (the baselines' split), else its validation score."""
    for score, split in ((evidence.net_test_score, "test"), (evidence.net_val_score, "val")):
        if score is not None and math.isfinite(score):
            return score, split
    return None


def find_below_baseline(evidence: Evidence) -> list[Finding]:
    """Report a net that does not clearly beat the shallow baselines (D1).

    Parameters
    ----------
    evidence : Evidence
        Reads ``baselines`` and the net's test (else validation) score.

    Returns
    -------
    list of Finding
        One ``below_baseline`` finding: ``problem`` when gain(s_net, s_dummy) < 0.05 ("no
        better than chance") or a linear baseline beats the net by ≥ 0.05; ``warning`` when
        gain(s_net, s_best) < 0.1 (Deepchecks); else ``[]``.

    Notes
    -----
    Only a *linear* baseline's lead makes a problem: a linear model is the simplest thing a
    net can represent, so losing to it clearly points at the pipeline, the features or
    overfitting. k-NN and RBF SVMs are strong non-parametric models that can legitimately
    beat a small net on small data, so losing to them only gives a warning.

    Examples
    --------
    >>> from deepdx.diagnose.baselines import BaselineResult
    >>> base = [BaselineResult("dummy", "accuracy", 0.1, 0.1),
    ...         BaselineResult("logistic_regression", "accuracy", 0.95, 0.92)]
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, baselines=base,
    ...               net_test_score=0.8)
    >>> [(f.kind, f.severity) for f in find_below_baseline(ev)]
    [('below_baseline', 'problem')]
    """
    net, best = _net_score(evidence), m.best_baseline(evidence)
    if net is None or best is None or best.test_score is None:
        return []
    score, split = net
    chance = m.chance_score(evidence)
    linear = m.best_baseline(evidence, m.LINEAR_BASELINES)
    facts: dict = {
        "net_score": score,
        "net_split": split,
        "best_baseline": best.name,
        "best_baseline_score": best.test_score,
        "gain": m.gain(score, best.test_score),
        **th.BELOW_BASELINE_GAIN.cite(),
    }
    if chance is not None:
        facts |= {"chance_score": chance, "gain_over_chance": m.gain(score, chance)}
        facts |= th.NO_BETTER_GAIN.cite("chance_threshold")
    if linear is not None and linear.test_score is not None:
        facts |= {"linear_baseline": linear.name, "linear_shortfall": linear.test_score - score}
        facts |= th.LINEAR_SHORTFALL.cite("shortfall_threshold")
    return _verdict(facts, best, chance)


def _verdict(facts: dict, best: BaselineResult, chance: float | None) -> list[Finding]:
    """Turn the compared numbers into at most one finding."""
    score = facts["net_score"]
    if chance is not None and facts["gain_over_chance"] < th.NO_BETTER_GAIN.value:
        learnable = m.gain(best.test_score or 0.0, chance) >= th.LEARNABLE_GAIN.value
        summary = f"The net scores {fmt(score)}, no better than chance ({fmt(chance)})" + (
            f", while the {best.name} reaches {fmt(best.test_score or 0.0)}."
            if learnable
            else "; no baseline does better, so the labels may not depend on the inputs."
        )
        advice = (
            "Check that labels stay aligned with their inputs (a shuffle or sort applied to "
            "one but not the other, a wrong label file).",
            "Run the pre-flight checks: a net that ignores its inputs or never learns ends "
            "here too.",
        )
        return [Finding("below_baseline", "problem", summary, facts, advice, "baselines")]
    if facts.get("linear_shortfall", -math.inf) >= th.LINEAR_SHORTFALL.value:
        summary = (
            f"The {facts['linear_baseline']} beats the net by "
            f"{fmt(facts['linear_shortfall'])} ({fmt(score + facts['linear_shortfall'])} "
            f"against {fmt(score)})."
        )
        advice = (
            "Check the net's pipeline: the same standardised features, a loss matched to the "
            "output layer, a working learning rate.",
            "If the net overfits, regularise it or make it smaller; else prefer the linear model.",
        )
        return [Finding("below_baseline", "problem", summary, facts, advice, "baselines")]
    if facts["gain"] < th.BELOW_BASELINE_GAIN.value:
        summary = (
            f"The net ({fmt(score)}) does not clearly beat the {best.name} "
            f"({fmt(best.test_score or 0.0)}): gain {facts['gain']:.2f}, below 0.1."
        )
        advice = (
            "Tune the net (learning rate, capacity, regularisation) before concluding.",
            "If it still does not pull ahead, consider the simpler model.",
        )
        return [Finding("below_baseline", "warning", summary, facts, advice, "baselines")]
    return []
