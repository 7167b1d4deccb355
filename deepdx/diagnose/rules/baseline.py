"""Rule on the shallow baselines: does the net beat them? (DIAGNOSTICS.md D1).

The baselines (dummy, linear / logistic regression, linear SVM, k-NN, RBF SVM) are fitted
on the training split and scored on the test split; the net is compared on the same split
(its test score, else its validation score).

Symbols
-------
s_net      the net's score (accuracy or R²)
s_dummy    the dummy baseline's score (most frequent class / mean), else 1/C or 0
s_best     the best baseline's score; s_lin the best linear baseline's
s_rep      the better of the net's test and validation scores (a problem must replicate)
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


def _replicated_score(evidence: Evidence, score: float) -> float:
    """Return the better of the net's test and validation scores."""
    val = evidence.net_val_score
    return max(score, val) if val is not None and math.isfinite(val) else score


def find_below_baseline(evidence: Evidence) -> list[Finding]:
    """Report a net that does not clearly beat the shallow baselines (D1).

    Parameters
    ----------
    evidence : Evidence
        Reads ``baselines`` and the net's test (else validation) and validation scores.

    Returns
    -------
    list of Finding
        One ``below_baseline`` finding, or ``[]``:

        * ``problem`` when gain(s_rep, s_dummy) < 0.05 ("no better than chance") or the best
          linear baseline beats s_rep by ≥ 0.05;
        * ``warning`` when gain(s_net, s_best) < 0.1 (Deepchecks).

    Notes
    -----
    A problem must hold on two independent splits: s_rep is the better of the test and the
    validation score, so one unlucky small split (30 test rows of iris, where one row is
    0.033) cannot make it. Only a *linear* baseline's lead makes a problem: a linear model
    is the simplest thing a net can represent, so losing to it clearly points at the
    pipeline, the features or overfitting, while k-NN and RBF SVMs are strong
    non-parametric models that can legitimately beat a small net on small data.

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
    replicated = _replicated_score(evidence, score)
    facts: dict = {
        "net_score": score,
        "net_split": split,
        "net_replicated_score": replicated,
        "best_baseline": best.name,
        "best_baseline_score": best.test_score,
        "gain": m.gain(score, best.test_score),
        **th.BELOW_BASELINE_GAIN.cite(),
    }
    chance = m.chance_score(evidence)
    if chance is not None:
        facts |= {"chance_score": chance, "gain_over_chance": m.gain(replicated, chance)}
        facts |= th.NO_BETTER_GAIN.cite("chance_threshold")
    linear = m.best_baseline(evidence, m.LINEAR_BASELINES)
    if linear is not None and linear.test_score is not None:
        facts |= {
            "linear_baseline": linear.name,
            "linear_shortfall": linear.test_score - replicated,
        }
        facts |= th.LINEAR_SHORTFALL.cite("shortfall_threshold")
    return _verdict(facts, best, chance)


def _verdict(facts: dict, best: BaselineResult, chance: float | None) -> list[Finding]:
    """Turn the compared numbers into at most one finding."""
    if chance is not None and facts["gain_over_chance"] < th.NO_BETTER_GAIN.value:
        return [_chance_finding(facts, best, chance)]
    if facts.get("linear_shortfall", -math.inf) >= th.LINEAR_SHORTFALL.value:
        return [_linear_finding(facts)]
    if facts["gain"] >= th.BELOW_BASELINE_GAIN.value:
        return []
    summary = (
        f"The net ({fmt(facts['net_score'])}) does not clearly beat the {best.name} "
        f"({fmt(best.test_score or 0.0)}): gain {facts['gain']:.2f}."
    )
    advice = (
        "Check features, labels and the pipeline, then tune the net (learning rate, capacity, "
        "regularisation) before concluding.",
        "If it still does not pull ahead, prefer the simpler model.",
    )
    return [Finding("below_baseline", "warning", summary, facts, advice, "baselines")]


def _linear_finding(facts: dict) -> Finding:
    """Return the finding for a net that a linear baseline beats on both splits."""
    replicated, shortfall = facts["net_replicated_score"], facts["linear_shortfall"]
    summary = (
        f"The {facts['linear_baseline']} ({fmt(replicated + shortfall)}) beats the net on both "
        f"held-out splits (at best {fmt(replicated)})."
    )
    advice = (
        "Check the net's pipeline: the same standardised features, a loss matched to the "
        "output layer, a working learning rate.",
        "If the net overfits, regularise it or make it smaller; else prefer the linear model.",
    )
    return Finding("below_baseline", "problem", summary, facts, advice, "baselines")


def _chance_finding(facts: dict, best: BaselineResult, chance: float) -> Finding:
    """Return the finding for a net no better than an input-independent prediction."""
    learnable = m.gain(best.test_score or 0.0, chance) >= th.LEARNABLE_GAIN.value
    summary = (
        f"The net scores {fmt(facts['net_replicated_score'])} at best, no better than chance "
        f"({fmt(chance)})"
    )
    summary += (
        f", while the {best.name} reaches {fmt(best.test_score or 0.0)}."
        if learnable
        else "; no baseline does better, so the labels may not depend on the inputs."
    )
    advice = (
        "Check that labels stay aligned with their inputs (a shuffle or sort applied to one "
        "but not the other, a wrong label file).",
        "Run the pre-flight checks: a net that ignores its inputs or never learns ends here too.",
    )
    return Finding("below_baseline", "problem", summary, facts, advice, "baselines")
