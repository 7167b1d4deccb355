"""Rules on generalisation: over- and underfitting, and whether more data would help.

DIAGNOSTICS.md C1 (bias / variance), C2 (generalisation gap), C3 (validation loss rising
while training loss falls) and C6 (learning-curve extrapolation).

Symbols
-------
s_train, s_val   final training and validation score (accuracy or R²)
gap              s_train − s_val
e(n)             validation error at training-set size n: 1 − score, or the loss
e(n) ≈ a n^(−b)  power law fitted by least squares on log e against log n
gain_2x          e(n_max) (1 − 2^(−b)), the error reduction predicted from twice the data
"""

from __future__ import annotations

import math

import numpy as np

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import Evidence, LearningCurve
from deepdx.diagnose.findings import Finding, Severity
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt
from deepdx.train.history import History

__all__ = ["find_more_data_helps", "find_overfitting", "find_underfitting", "fit_power_law"]

_REGULARISE = (
    "Regularise: weight decay, dropout, data augmentation or label smoothing.",
    "Stop early and keep the best checkpoint by validation loss.",
    "Collect more training data, or try a smaller net if it scores as well.",
)


# ------------------------------------------------------------------ C2/C3 overfitting
def _score_gap(evidence: Evidence) -> dict:
    """Return the train − validation score gap when it exceeds AUTOTRAINER's threshold."""
    train, val = m.train_score(evidence), m.val_score(evidence)
    if train is None or val is None:
        return {}
    high = train > th.OVERFIT_TRAIN_SPLIT.value
    limit = th.OVERFIT_GAP_HIGH_TRAIN if high else th.OVERFIT_GAP
    if train - val < limit.value:
        return {}
    return {"train_score": train, "val_score": val, "gap": train - val, **limit.cite()}


def _rising_val_loss(history: History | None) -> dict:
    """Return C3 evidence: val loss stale above its best for k evaluations, train falling."""
    if history is None:
        return {}
    val, train = history.series("val_loss"), _train_losses(history)
    patience, delta = int(th.OVERFIT_PATIENCE.value), th.OVERFIT_DELTA.value
    if np.isfinite(val).sum() <= patience:
        return {}
    best = int(np.nanargmin(val))
    rise = val[-1] / val[best] - 1 if val[best] > 0 else 0.0
    stale = len(val) - 1 - best >= patience
    falling = train[-1] < (1 - delta) * train[best]
    if not (stale and rise > delta and falling):
        return {}
    score = history.series("val_metric")  # (E,), NaN where not measured
    drop = float(np.nanmax(score) - score[-1]) if np.isfinite(score[-1]) else None
    return {
        "best_val_epoch": best + 1,
        "val_loss_rise": float(rise),
        "val_score_drop_from_best": drop,
        **th.OVERFIT_PATIENCE.cite("patience"),
        **th.OVERFIT_DELTA.cite("delta"),
    }


def _rising_hurts(rising: dict) -> bool:
    """Return whether a rising validation loss came with a lower validation score too.

    A loss that rises while the score holds (within δ) is growing overconfidence on the
    errors the net already makes, not worse predictions.
    """
    drop = rising.get("val_score_drop_from_best")
    return bool(rising) and (drop is None or drop >= th.OVERFIT_DELTA.value)


def _train_losses(history: History) -> np.ndarray:
    """Return the per-epoch eval-mode probe loss when logged, else the epoch-mean loss."""
    probe = history.series("train_eval_loss")
    return probe if np.isfinite(probe).all() and probe.size else history.series("train_loss")


def _loss_gap(history: History | None) -> dict:
    """Return C2 loss evidence: (val − train)/train > 0.1 for the last k evaluations."""
    if history is None or not history.epochs:
        return {}
    val, train = history.series("val_loss"), _train_losses(history)
    k = int(th.OVERFIT_PATIENCE.value)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (val[-k:] - train[-k:]) / train[-k:]  # (k,)
    if len(val) < k or not np.all(ratio > th.OVERFIT_LOSS_RATIO.value):
        return {}
    return {
        "val_over_train_loss_gap": float(ratio[-1]),
        **th.OVERFIT_LOSS_RATIO.cite("loss_gap_threshold"),
    }


def find_overfitting(evidence: Evidence) -> list[Finding]:
    """Report a net that fits its training data much better than new data (C2, C3).

    Parameters
    ----------
    evidence : Evidence
        Reads the final scores and the per-epoch losses of ``history``.

    Returns
    -------
    list of Finding
        One ``overfitting`` finding: ``warning`` when s_train − s_val ≥ 0.10 (≥ 0.07 when
        s_train > 0.9; AUTOTRAINER), or when the validation loss has risen > 1% above its
        best for ≥ 3 evaluations while the training loss fell and the validation score fell
        ≥ 0.01 below its best (unless early stopping already restored the best weights);
        ``info`` for a rising validation loss alone, or a loss gap (val − train)/train > 0.1
        (SageMaker Overfit) over the last 3 evaluations.

    Notes
    -----
    A loss gap alone is common in healthy runs, and so is a validation loss that creeps up
    while the validation accuracy holds (the net grows more confident on the few samples it
    gets wrong), so both are reported as context only.

    Examples
    --------
    >>> ev = Evidence("classification", "accuracy", 2, 50, "adam", 1e-3,
    ...               net_train_score=1.0, net_val_score=0.7)
    >>> [(f.kind, f.severity, round(f.evidence["gap"], 2)) for f in find_overfitting(ev)]
    [('overfitting', 'warning', 0.3)]
    """
    history = evidence.history
    gap, rising, loss_gap = _score_gap(evidence), _rising_val_loss(history), _loss_gap(history)
    if not (gap or rising or loss_gap):
        return []
    restored = history is not None and any(e.get("kind") == "restore_best" for e in history.events)
    severity: Severity = "warning" if gap or (_rising_hurts(rising) and not restored) else "info"
    parts = []
    if gap:
        parts.append(
            f"it scores {fmt(gap['train_score'])} on training data but "
            f"{fmt(gap['val_score'])} on validation data"
        )
    if rising:
        parts.append(
            f"validation loss has risen {rising['val_loss_rise']:.0%} above its best "
            f"(epoch {rising['best_val_epoch']}) while training loss kept falling"
        )
    if loss_gap and not parts:
        parts.append(
            f"validation loss is {loss_gap['val_over_train_loss_gap']:.0%} above training loss"
        )
    facts = {**gap, **rising, **loss_gap, "early_stopping_restored_best": restored}
    opening = "The net overfits: " if severity == "warning" else "A generalisation gap: "
    summary = opening + "; ".join(parts) + "."
    plot = "metric" if gap else "loss"
    return [Finding("overfitting", severity, summary, facts, _REGULARISE, plot)]


# ------------------------------------------------------------------ C1 underfitting
def _linear_fits_better(evidence: Evidence, train_score: float) -> dict:
    """Return the best linear baseline's training score when it beats the net's by the floor."""
    linear = [
        b
        for b in m.fitted_baselines(evidence)
        if b.name in m.LINEAR_BASELINES and b.train_score is not None
    ]
    best = max(linear, key=lambda b: b.train_score or 0.0, default=None)
    if best is None or best.train_score is None:
        return {}
    if best.train_score - train_score < th.AVOIDABLE_BIAS_FLOOR.value:
        return {}
    return {"linear_baseline": best.name, "linear_train_score": best.train_score}


def find_underfitting(evidence: Evidence) -> list[Finding]:
    """Report a large avoidable bias: the net fits its own training data poorly (C1).

    Parameters
    ----------
    evidence : Evidence
        Reads the final scores and the baselines.

    Returns
    -------
    list of Finding
        One ``underfitting`` finding: ``warning`` when the avoidable bias is ≥ 0.1 against
        the best baseline, or when a linear baseline fits the training data better than the
        net by ≥ 0.02; ``info`` when the bias is ≥ 0.1 against a perfect score (no baseline
        ran), or ≥ 0.02 and larger than the variance (the dominant term).

    Notes
    -----
    avoidable bias = (1 − s_train) − (1 − s_ref), with s_ref the best baseline's test score
    (an upper bound of the Bayes error, as Ng suggests when no human level is known), else
    1; variance = s_train − s_val. An MLP can represent any linear model, so a net that fits
    its training data worse than logistic / linear regression does underfits whatever the
    Bayes error (this catches underfitting when only weak baselines ran). Dead, saturated
    or vanishing signal paths are named in the advice, since fixing them comes first.

    Examples
    --------
    >>> from deepdx.diagnose.baselines import BaselineResult
    >>> base = [BaselineResult("rbf_svm", "accuracy", 0.99, 0.95)]
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, baselines=base,
    ...               net_train_score=0.6, net_val_score=0.58)
    >>> [(f.kind, f.severity, round(f.evidence["avoidable_bias"], 2))
    ...  for f in find_underfitting(ev)]
    [('underfitting', 'warning', 0.35)]
    """
    split = m.bias_variance(evidence)
    if split is None:
        return []
    bias, variance = split.avoidable_bias, split.variance
    linear = _linear_fits_better(evidence, m.PERFECT_SCORE - split.train_error)
    high = bias >= th.AVOIDABLE_BIAS.value
    dominant = bias >= th.AVOIDABLE_BIAS_FLOOR.value and (variance is None or bias > variance)
    if not (high or dominant or linear):
        return []
    warn = (high and split.reference != "perfect") or bool(linear)
    facts = {
        "train_error": split.train_error,
        "reference_error": split.reference_error,
        "reference": split.reference,
        "avoidable_bias": bias,
        "variance": variance,
        **linear,
        **th.AVOIDABLE_BIAS.cite(),
        **th.AVOIDABLE_BIAS_FLOOR.cite("dominant_floor"),
    }
    summary = _underfitting_summary(split, linear)
    blockers = m.flow_blockers(evidence)
    advice = (("First fix " + "; ".join(blockers) + ".",) if blockers else ()) + (
        "Add capacity, more units per layer first (see the capacity probes).",
        "Train longer, or raise the learning rate if the loss is still falling steadily.",
        "Reduce regularisation (dropout, weight decay).",
    )
    severity: Severity = "warning" if warn else "info"
    return [Finding("underfitting", severity, summary, facts, advice, "metric")]


def _underfitting_summary(split: m.BiasVariance, linear: dict) -> str:
    """Return the summary: the avoidable bias, or the linear model that fits better."""
    if linear:
        return (
            f"The net underfits: it fits its training data worse than the "
            f"{linear['linear_baseline']} does ({fmt(m.PERFECT_SCORE - split.train_error)} "
            f"against {fmt(linear['linear_train_score'])})."
        )
    against = "a perfect score" if split.reference == "perfect" else f"the {split.reference}"
    return (
        f"The net underfits: its training error is {fmt(split.train_error)} against "
        f"{fmt(split.reference_error)} for {against} (avoidable bias {fmt(split.avoidable_bias)})."
    )


# ------------------------------------------------------------------ C6 more data
def fit_power_law(sizes: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """Fit e(n) = a n^(−b) to errors by least squares in log-log space.

    Parameters
    ----------
    sizes : ndarray of shape (K,)
        Training-set sizes n_k > 0.
    errors : ndarray of shape (K,)
        Errors e_k > 0 at those sizes.

    Returns
    -------
    a, b : float
        Scale and exponent; b > 0 means the error falls with more data.

    Notes
    -----
    log e = log a − b log n, solved with ``np.polyfit`` of degree 1; O(K).

    Examples
    --------
    >>> a, b = fit_power_law(np.array([100.0, 200.0, 400.0]), np.array([0.4, 0.2, 0.1]))
    >>> round(a, 3), round(b, 3)
    (40.0, 1.0)
    """
    slope, intercept = np.polyfit(np.log(sizes), np.log(errors), 1)
    return float(np.exp(intercept)), float(-slope)


def _errors(curve: LearningCurve) -> tuple[np.ndarray, np.ndarray]:
    """Return the validation and training error per size: 1 − score, or the loss itself."""
    val, train = np.asarray(curve.val_mean), np.asarray(curve.train_mean)  # (K,), (K,)
    if curve.metric == "loss":
        return val, train
    return m.PERFECT_SCORE - val, m.PERFECT_SCORE - train


def _data_outlook(curve: LearningCurve) -> dict | None:
    """Return the power-law extrapolation of the validation error and the final train/val gap."""
    val_err, train_err = _errors(curve)
    ok = np.isfinite(val_err) & (val_err > 0)
    if ok.sum() < th.LEARNING_CURVE_SIZES.value:
        return None
    _, b = fit_power_law(np.asarray(curve.sizes, dtype=float)[ok], val_err[ok])
    relative = 1.0 - 2.0 ** (-b)
    gap = float(val_err[-1] - train_err[-1])
    if curve.metric == "loss":
        gap = gap / train_err[-1] if train_err[-1] > 0 else math.inf
    return {
        "exponent_b": b,
        "val_error": float(val_err[-1]),
        "predicted_gain_2x": float(val_err[-1] * relative),
        "predicted_relative_gain_2x": relative,
        "standard_error": float(curve.val_std[-1]) / math.sqrt(max(curve.n_folds, 1)),
        "train_val_gap": gap,
        **th.MORE_DATA_GAIN.cite(),
        **th.MORE_DATA_GAP.cite("gap_threshold"),
    }


def find_more_data_helps(evidence: Evidence) -> list[Finding]:
    """Say whether more training data is predicted to help, from the learning curve (C6).

    Parameters
    ----------
    evidence : Evidence
        Reads ``learning_curve``.

    Returns
    -------
    list of Finding
        One ``more_data_helps`` finding, ``[]`` with fewer than 3 sizes: ``warning`` when
        the curve is still falling (twice the data predicted to cut the error by ≥ 5%, more
        than the standard error of the last point) and the train/validation gap is large
        (≥ 0.1); ``info`` otherwise, saying whether more data would help a little or not.

    Notes
    -----
    gain_2x = e(n_max) (1 − 2^(−b)) from the power-law exponent b (:func:`fit_power_law`).
    The gap is val − train error for scores and (val − train)/train for losses.

    Examples
    --------
    >>> from deepdx.diagnose.evidence import LearningCurve
    >>> lc = LearningCurve((25, 50, 100), (1.0, 1.0, 1.0), (0, 0, 0),
    ...                    (0.5, 0.6, 0.68), (0.02, 0.02, 0.02), "accuracy", 5)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "adam", 1e-3, learning_curve=lc)
    >>> [(f.kind, f.severity) for f in find_more_data_helps(ev)]
    [('more_data_helps', 'warning')]
    """
    curve = evidence.learning_curve
    outlook = None if curve is None else _data_outlook(curve)
    if curve is None or outlook is None:
        return []
    steep = (
        outlook["predicted_relative_gain_2x"] >= th.MORE_DATA_GAIN.value
        and outlook["predicted_gain_2x"] > outlook["standard_error"]
    )
    large_gap = outlook["train_val_gap"] >= th.MORE_DATA_GAP.value
    n_max = curve.sizes[-1]
    severity: Severity = "warning" if steep and large_gap else "info"
    if steep:
        summary = (
            f"More data should help: the validation error {fmt(outlook['val_error'])} at "
            f"{n_max} samples is predicted to fall by {fmt(outlook['predicted_gain_2x'])} "
            f"with {2 * n_max}."
        )
        advice = ("Collect more labelled data, or augment the data you have.",)
    else:
        summary = (
            f"More data is unlikely to help much: doubling {n_max} samples is predicted to "
            f"cut the validation error by only {fmt(outlook['predicted_gain_2x'])}."
        )
        advice = (
            ("Regularise: the gap is large but data alone is not closing it.",)
            if large_gap
            else ("Increase capacity or improve the features instead.",)
        )
    return [Finding("more_data_helps", severity, summary, outlook, advice, "learning_curve")]
