"""Rule on the shallow baselines: does the net beat them? (DIAGNOSTICS.md D1).

The baselines (dummy, linear / logistic regression, linear SVM, k-NN, RBF SVM) are fitted
on the training split and scored on the test split; the net is compared on the same split
(its test score, else its validation score). The verdict's severity depends on which
baseline the net fails to beat: chance or a linear model (the simple references of D1), or
only a non-parametric one.

Symbols
-------
s_net      the net's score (accuracy or R²)
s_dummy    the dummy baseline's score (most frequent class / mean), else 1/C or 0
s_best     the best baseline's score; s_lin the best linear baseline's; s_simple the best
           of the dummy and linear baselines
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
        One ``below_baseline`` finding, or ``[]``:

        * ``problem`` when gain(s_net, s_dummy) < 0.05 ("no better than chance") or the best
          linear baseline beats the net by ≥ 0.05;
        * ``warning`` when gain(s_net, s_simple) < 0.1 (Deepchecks), s_simple the best of the
          dummy and linear baselines;
        * ``info`` when only a non-linear baseline (k-NN, RBF SVM) keeps gain < 0.1.

    Notes
    -----
    D1's reference models are the dummy and linear ones (plus a shallow tree): a linear model
    is the simplest thing a net can represent, so failing to beat one points at the
    pipeline, the features or overfitting. k-NN and RBF SVMs are strong non-parametric
    models that can legitimately match a net on small data; matching them is context.

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
    simple = m.best_baseline(evidence, m.LINEAR_BASELINES | {"dummy"})
    if simple is not None and simple.test_score is not None:
        facts |= {
            "simple_baseline": simple.name,
            "gain_over_simple": m.gain(score, simple.test_score),
        }
    linear = m.best_baseline(evidence, m.LINEAR_BASELINES)
    if linear is not None and linear.test_score is not None:
        facts |= {"linear_baseline": linear.name, "linear_shortfall": linear.test_score - score}
        facts |= th.LINEAR_SHORTFALL.cite("shortfall_threshold")
    return _verdict(facts, best, chance)


def _verdict(facts: dict, best: BaselineResult, chance: float | None) -> list[Finding]:
    """Turn the compared numbers into at most one finding."""
    if chance is not None and facts["gain_over_chance"] < th.NO_BETTER_GAIN.value:
        return [_chance_finding(facts, best, chance)]
    score, limit = facts["net_score"], th.BELOW_BASELINE_GAIN.value
    if facts.get("linear_shortfall", -math.inf) >= th.LINEAR_SHORTFALL.value:
        summary = (
            f"The {facts['linear_baseline']} beats the net by {fmt(facts['linear_shortfall'])} "
            f"({fmt(score + facts['linear_shortfall'])} against {fmt(score)})."
        )
        advice = (
            "Check the net's pipeline: the same standardised features, a loss matched to the "
            "output layer, a working learning rate.",
            "If the net overfits, regularise it or make it smaller; else prefer the linear model.",
        )
        return [Finding("below_baseline", "problem", summary, facts, advice, "baselines")]
    if facts.get("gain_over_simple", math.inf) < limit:
        name, gain = facts["simple_baseline"], facts["gain_over_simple"]
        severity, advice = "warning", _TUNE_ADVICE
    elif facts["gain"] < limit:
        name, gain = best.name, facts["gain"]
        severity, advice = "info", ("A simpler non-parametric model does as well here.",)
    else:
        return []
    summary = f"The net ({fmt(score)}) does not clearly beat the {name}: gain {gain:.2f}."
    return [Finding("below_baseline", severity, summary, facts, advice, "baselines")]


_TUNE_ADVICE = (
    "Check features, labels and the pipeline, then tune the net (learning rate, capacity, "
    "regularisation) before concluding.",
    "If it still does not pull ahead, prefer the simpler model.",
)


def _chance_finding(facts: dict, best: BaselineResult, chance: float) -> Finding:
    """Return the finding for a net no better than an input-independent prediction."""
    learnable = m.gain(best.test_score or 0.0, chance) >= th.LEARNABLE_GAIN.value
    summary = f"The net scores {fmt(facts['net_score'])}, no better than chance ({fmt(chance)})"
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
