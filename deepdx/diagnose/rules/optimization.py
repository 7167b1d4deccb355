"""Rules on the training run: "is optimisation healthy or stuck?" (DIAGNOSTICS.md B2-B7, B15).

Each rule is a pure function ``Evidence -> list[Finding]`` reading ``evidence.history``
(per-step losses and monitor signals, per-epoch records) and returns ``[]`` without it.

Symbols
-------
ℓ_t, ℓ̃_t     minibatch loss at step t and its debiased EMA (β = 0.98)
ℓ̃*           best (smallest) smoothed loss so far
L0           loss before training
given back   (ℓ̃_T − ℓ̃*) / (L0 − ℓ̃*), the share of the progress lost again by the end
r            per-layer update ratio ‖Δθ‖/‖θ‖; its median over steps, then over layers
η λ_max / λc learning rate times the top Hessian eigenvalue over the optimizer's stability
             limit (2 for SGD, 3.8 for momentum 0.9)
p_k          evaluation losses: per-epoch training losses, or means of 2W equal chunks of
             steps when there are too few epochs
"""

from __future__ import annotations

import math

import numpy as np

from deepdx.diagnose import signals
from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding, Severity
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt
from deepdx.train.history import History

__all__ = [
    "find_divergence",
    "find_learning_rate_too_high",
    "find_learning_rate_too_low",
    "find_oscillation",
    "find_plateau",
]

_LOWER_LR = "Lower the learning rate 3-10x (an LR range test picks a value just below where "
_LOWER_LR += "the loss starts to rise)."


# ------------------------------------------------------------------ B2 divergence
def _loss_divergence(evidence: Evidence) -> tuple[Severity, dict] | None:
    """Return the severity and numbers of a loss that rose far above its best, else None."""
    loss = m.step_losses(evidence.history)
    start = m.initial_loss(evidence)
    if loss.size < 2 or start is None:
        return None
    smooth = m.smoothed(loss, th.LOSS_SMOOTHING.value)  # (T,)
    best, final = float(smooth.min()), float(smooth[-1])
    given_back = (final - best) / (start - best) if start > best else math.inf
    ratio = final / best if best > 0 else math.nan
    facts = {
        "final_smoothed_loss": final,
        "best_smoothed_loss": best,
        "initial_loss": start,
        "ratio_to_best": ratio,
        "progress_given_back": given_back,
        **th.DIVERGENCE_FACTOR.cite(),
        **th.DIVERGENCE_LOSS.cite("absolute_threshold"),
        **th.DIVERGENCE_GIVEN_BACK.cite("given_back_threshold"),
    }
    rose = ratio > th.DIVERGENCE_FACTOR.value
    if (final >= th.DIVERGENCE_LOSS.value and final > start) or (rose and given_back >= 1):
        return "problem", facts
    if rose and given_back >= th.DIVERGENCE_GIVEN_BACK.value:
        return "warning", facts
    return None


def find_divergence(evidence: Evidence) -> list[Finding]:
    """Report a run whose loss became non-finite or rose far above its best (B2).

    Parameters
    ----------
    evidence : Evidence
        Reads ``divergence`` (the message of the error that stopped the run) and the
        per-step losses of ``history``.

    Returns
    -------
    list of Finding
        One ``divergence`` finding: ``problem`` when the run stopped on a non-finite loss,
        ended at a loss ≥ 1e3 above its start, or ended 4x above its best having lost all
        its progress; ``warning`` when it ended 4x above its best having lost half of it.

    Notes
    -----
    Smoothing and the factor 4 follow the PyTorch Lightning LR finder
    (ℓ̃_T > 4 ℓ̃*), the absolute 1e3 AUTOTRAINER. Requiring the progress given back keeps
    a loss bouncing between 1e-4 and 5e-4 near the end of a good run from counting.

    Examples
    --------
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 10.0,
    ...               divergence="the training loss became nan at epoch 1, step 7 (lr 10)")
    >>> [(f.kind, f.severity) for f in find_divergence(ev)]
    [('divergence', 'problem')]
    """
    advice = (
        _LOWER_LR,
        "Clip the gradient norm (clip_grad_norm) at about the 90th percentile of the "
        "observed norms, and warm the learning rate up over the first 5-10% of steps.",
        "Check the data for extreme values, NaNs or unstandardised features.",
    )
    if evidence.divergence:
        message = evidence.divergence.split(";")[0]
        return [
            Finding(
                "divergence",
                "problem",
                f"Training diverged and was stopped: {message}.",
                {"message": evidence.divergence, "lr": evidence.lr},
                advice,
                "loss",
            )
        ]
    found = _loss_divergence(evidence)
    if found is None:
        return []
    severity, facts = found
    summary = (
        f"The training loss ended at {fmt(facts['final_smoothed_loss'])}, "
        f"{fmt(facts['ratio_to_best'])}x its best of {fmt(facts['best_smoothed_loss'])}: "
        "training diverged."
    )
    return [Finding("divergence", severity, summary, facts, advice, "loss")]


# ------------------------------------------------------------------ B5/B6 step size
def _large_steps(evidence: Evidence) -> dict:
    """Return the update-ratio and η·λ_max measurements that exceed their 'too high' thresholds."""
    found: dict = {}
    ratios = m.update_ratios(evidence.history)
    if ratios is not None and ratios[0] > th.UPDATE_RATIO_HIGH.value:
        found |= {"median_update_ratio": ratios[0], **th.UPDATE_RATIO_HIGH.cite("ratio_threshold")}
    sharp = m.sharpness(evidence)
    if sharp is not None and float(np.median(sharp)) > th.SHARPNESS_HIGH.value:
        found |= {
            "lr_lambda_max_over_limit": float(np.median(sharp)),
            **th.SHARPNESS_HIGH.cite("sharpness_threshold"),
        }
    return found


def _instability(evidence: Evidence) -> dict:
    """Return signs of an unstable run: divergence, spikes, oscillation, no progress."""
    signs: dict = {}
    if evidence.divergence or _loss_divergence(evidence) is not None:
        signs["diverged"] = True
    spikes = m.gradient_spikes(evidence.history)
    if spikes is not None and spikes.events >= th.SPIKE_EVENTS.value:
        signs["gradient_spike_events"] = spikes.events
    swings = _oscillation(evidence.history)
    if swings is not None and swings[1] >= th.OSCILLATION_SHARE.value:
        signs["share_of_epochs_with_swings"] = swings[1]
    progress = m.loss_progress(evidence)
    if progress is not None and progress < th.LITTLE_PROGRESS.value:
        signs["loss_progress"] = progress
    return signs


_SIGN_WORDS = {
    "diverged": "it diverged",
    "gradient_spike_events": "gradient-norm spikes",
    "share_of_epochs_with_swings": "an oscillating training curve",
    "loss_progress": "almost no progress",
}


def find_learning_rate_too_high(evidence: Evidence) -> list[Finding]:
    """Report a learning rate that makes the run unstable (B2, B5, B6, B7, B8).

    Parameters
    ----------
    evidence : Evidence
        Reads ``history`` (losses, ``grad_norm``, ``update_ratio/*``, ``lambda_max``),
        ``divergence``, ``lr`` and ``optimizer``.

    Returns
    -------
    list of Finding
        One ``learning_rate_too_high`` finding when the run is unstable (diverged, gradient
        spikes, oscillating, or no progress) and the steps are measurably too large
        (median update ratio > 1e-2, or η·λ_max > 2x the stability limit): ``problem`` if
        it diverged, else ``warning``. A divergence without step measurements gives a
        ``warning`` (a too-high learning rate is its most common cause).

    Notes
    -----
    The update ratio target is ~1e-3 (CS231n); gradient descent is stable only while
    η·λ_max < 2 (Cohen et al. 2021; (2 + 2β) with heavy-ball momentum β). The curvature
    test applies only to SGD-family optimizers: Adam's raw λ_max is not comparable.

    Examples
    --------
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 10.0,
    ...               divergence="the training loss became nan at epoch 1, step 7 (lr 10)")
    >>> [(f.kind, f.severity) for f in find_learning_rate_too_high(ev)]
    [('learning_rate_too_high', 'warning')]
    """
    signs, steps = _instability(evidence), _large_steps(evidence)
    diverged = "diverged" in signs
    if not (diverged or (signs and steps)):
        return []
    severity: Severity = "problem" if diverged and steps else "warning"
    measured = (
        f", with a median update/weight ratio of {fmt(steps['median_update_ratio'])}"
        if "median_update_ratio" in steps
        else ""
    )
    if "lr_lambda_max_over_limit" in steps:
        measured += (
            f", and lr x lambda_max at {fmt(steps['lr_lambda_max_over_limit'])}x the "
            "stability limit"
        )
    summary = (
        f"The learning rate {fmt(evidence.lr)} looks too high: the run is unstable "
        f"({', '.join(_SIGN_WORDS[sign] for sign in signs)}){measured}."
    )
    advice = (
        _LOWER_LR,
        "Warm the learning rate up over the first 5-10% of steps.",
        "Clip gradients at the 90th-percentile norm as a safety net, not as the fix.",
    )
    plot = "grad_norms" if "gradient_spike_events" in signs else "loss"
    if "lr_lambda_max_over_limit" in steps and "median_update_ratio" not in steps:
        plot = "curvature"
    facts = {"lr": evidence.lr, **signs, **steps}
    return [Finding("learning_rate_too_high", severity, summary, facts, advice, plot)]


def _crawl(evidence: Evidence) -> float | None:
    """Return rate_last / rate_first of the loss when it falls steadily at a slow crawl."""
    loss = m.step_losses(evidence.history)
    progress = m.loss_progress(evidence)
    if loss.size < 8 or progress is None or not 0 < progress < th.LITTLE_PROGRESS.value:
        return None
    quarters = np.array([q.mean() for q in np.array_split(loss, 4)])  # (4,)
    if not np.all(np.diff(quarters) < 0):
        return None
    rate = quarters[-2] - quarters[-1], quarters[0] - quarters[1]
    return float(rate[0] / rate[1])


def _small_steps(evidence: Evidence) -> dict:
    """Return the independent measurements that say the weights barely move."""
    found: dict = {}
    ratios = m.update_ratios(evidence.history)
    if ratios is not None and m.tiny_updates(evidence.history):
        found |= {
            "median_update_ratio": ratios[0],
            "largest_layer_update_ratio": ratios[1],
            **th.UPDATE_RATIO_LOW.cite("ratio_threshold"),
            **th.UPDATE_RATIO_TARGET.cite("largest_ratio_threshold"),
        }
    sharp = m.sharpness(evidence)
    if sharp is not None and float(sharp.max()) < th.SHARPNESS_LOW.value:
        found |= {
            "lr_lambda_max_over_limit_max": float(sharp.max()),
            **th.SHARPNESS_LOW.cite("sharpness_threshold"),
        }
    distance = m.last_step_value(evidence.history, signals.DISTANCE_FROM_INIT)
    if distance is not None and distance < th.DISTANCE_STILL.value:
        found |= {"distance_from_init": distance, **th.DISTANCE_STILL.cite("distance_threshold")}
    return found


def find_learning_rate_too_low(evidence: Evidence) -> list[Finding]:
    """Report a learning rate so small that the weights barely move (B5, B6, B15).

    Parameters
    ----------
    evidence : Evidence
        Reads ``history`` (losses, ``update_ratio/*``, ``lambda_max``,
        ``distance_from_init``), ``lr``, ``optimizer`` and the scores.

    Returns
    -------
    list of Finding
        One ``learning_rate_too_low`` finding when the net has not fitted its training data
        and the weights barely move (median update ratio < 1e-4 with every layer below
        1e-3; η·λ_max < 0.1 of the stability limit for the whole run; ‖θ − θ0‖/‖θ0‖ <
        1e-2), or the loss falls at a steady crawl. ``problem`` with two or more of the
        three measurements, else ``warning``. Quiet when dead, saturated or vanishing
        signal paths, or layers cut off from the loss, explain the small updates.

    Notes
    -----
    A crawl: the training loss fell by less than 10% overall, its four quarter-means fall
    monotonically, and it falls at least half as fast in the last quarter as in the first
    (no sign of converging).

    Examples
    --------
    >>> ev = Evidence("classification", "accuracy", 2, 100, "adam", 1e-7)
    >>> find_learning_rate_too_low(ev)
    []
    """
    failed = m.fit_failed(evidence)
    progress = m.loss_progress(evidence)
    stuck = failed is True or (progress is not None and progress < th.LITTLE_PROGRESS.value)
    if not stuck or m.flow_blockers(evidence) or m.disconnected_layers(evidence.history):
        return []
    steps, crawl = _small_steps(evidence), _crawl(evidence)
    crawling = crawl is not None and crawl >= th.CRAWL_RATE.value
    if not (steps or crawling):
        return []
    facts = {"lr": evidence.lr, "loss_progress": progress, **steps}
    if crawling:
        facts |= {"late_over_early_loss_rate": crawl, **th.CRAWL_RATE.cite("crawl_threshold")}
    n_measured = sum(k in steps for k in _STILL_KEYS)
    severity: Severity = "problem" if n_measured >= 2 and failed is True else "warning"
    summary = (
        f"The learning rate {fmt(evidence.lr)} looks too low: the loss fell by only "
        f"{_percent(progress)} and the weights barely move ({', '.join(_still(steps, crawling))})."
    )
    advice = (
        "Raise the learning rate 10x and compare the first epochs (an LR range test finds "
        "the largest stable value).",
        "Check that every parameter is in the optimizer and none is frozen or detached.",
    )
    return [Finding("learning_rate_too_low", severity, summary, facts, advice, "loss")]


_STILL_KEYS = ("median_update_ratio", "lr_lambda_max_over_limit_max", "distance_from_init")


def _still(steps: dict, crawling: bool) -> list[str]:
    """Return plain descriptions of the small-step measurements."""
    words = {
        "median_update_ratio": "median update/weight ratio",
        "lr_lambda_max_over_limit_max": "largest lr x lambda_max over its stability limit",
        "distance_from_init": "distance from init",
    }
    parts = [f"{words[k]} {fmt(steps[k])}" for k in _STILL_KEYS if k in steps]
    return parts + (["the loss still falls as fast as at the start"] if crawling else [])


def _percent(value: float | None) -> str:
    """Format a share, or 'an unknown share'."""
    return "an unknown share" if value is None else f"{value:.1%}"


# ------------------------------------------------------------------ B3/B4 plateau
def _evaluation_losses(history: History | None) -> np.ndarray:
    """Return the evaluation losses p_k: per epoch, or 2W chunk means of the steps."""
    if history is None:
        return np.zeros(0)
    window = int(th.PLATEAU_WINDOW.value)
    per_epoch = history.series("train_loss")
    if per_epoch.size > window:
        return per_epoch
    loss = m.step_losses(history)
    if loss.size < 2 * window:
        return np.zeros(0)
    return np.array([chunk.mean() for chunk in np.array_split(loss, 2 * window)])


def _plateau_cause(evidence: Evidence) -> tuple[str, Severity, tuple[str, ...]]:
    """Classify the cause of a plateau (B4): cause, severity and advice."""
    blockers = m.flow_blockers(evidence)
    if blockers:
        return (
            "capacity wasted by " + "; ".join(blockers),
            "warning",
            ("Fix the dead, saturated or vanishing signal paths first (see their findings).",),
        )
    ratios = m.update_ratios(evidence.history)
    if ratios is not None and ratios[0] < th.UPDATE_RATIO_LOW.value:
        return "learning rate too small", "warning", ("Raise the learning rate 3-10x.",)
    sharp = m.sharpness(evidence)
    bouncing = sharp is not None and float(np.median(sharp)) >= th.SHARPNESS_EDGE.value
    if bouncing or (ratios is not None and ratios[0] > th.UPDATE_RATIO_HIGH.value):
        return (
            "learning rate too large, bouncing across the valley",
            "warning",
            (_LOWER_LR, "Or decay the learning rate (step or cosine schedule)."),
        )
    split = m.bias_variance(evidence)
    if split is not None and split.avoidable_bias >= th.AVOIDABLE_BIAS.value:
        return (
            f"converged to a poor fit (training error {fmt(split.train_error)})",
            "warning",
            ("The net underfits: add capacity or decay the learning rate (see underfitting).",),
        )
    return "converged", "info", ("Further training is unlikely to help; stop earlier.",)


def find_plateau(evidence: Evidence) -> list[Finding]:
    """Report a training loss that stopped improving, with its likely cause (B3, B4).

    Parameters
    ----------
    evidence : Evidence
        Reads the losses of ``history`` and, for the cause, units, gradients, update
        ratios, curvature and scores.

    Returns
    -------
    list of Finding
        One ``plateau`` finding when the relative improvement over the last W = 10
        evaluations is below 0.1%: ``info`` when the net has simply converged on a good fit,
        ``warning`` for any other cause.

    Notes
    -----
    improvement = (p_{K−W} − min_{k > K−W} p_k) / |p_{K−W}| over the evaluation losses
    (SageMaker LossNotDecreasing: num_steps 10, diff_percent 0.1). Causes are tried in
    order: dead / saturated units or vanishing gradients; median update ratio < 1e-4 (LR
    too small); η·λ_max at or above the stability limit or update ratio > 1e-2 (LR too
    large); avoidable bias ≥ 0.1 (poor fit); else converged.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> h.log_steps("loss", [1.0] * 10 + [0.5] * 30, first_step=1)
    >>> ev = Evidence("regression", "", 0, 100, "adam", 1e-3, history=h)
    >>> [(f.kind, f.severity) for f in find_plateau(ev)]
    [('plateau', 'info')]
    """
    points = _evaluation_losses(evidence.history)
    window = int(th.PLATEAU_WINDOW.value)
    if points.size <= window or not math.isfinite(points[-window - 1]):
        return []
    start = points[-window - 1]
    improvement = (start - np.nanmin(points[-window:])) / max(abs(start), 1e-12)
    if improvement >= th.PLATEAU_IMPROVEMENT.value:
        return []
    cause, severity, advice = _plateau_cause(evidence)
    facts = {"relative_improvement": float(improvement), "cause": cause}
    facts |= th.PLATEAU_IMPROVEMENT.cite() | th.PLATEAU_WINDOW.cite("window")
    summary = (
        f"The training loss improved by only {improvement:.2%} over the last {window} "
        f"evaluations (at {fmt(points[-1])}); likely cause: {cause}."
    )
    return [Finding("plateau", severity, summary, facts, advice, "loss")]


# ------------------------------------------------------------------ B7 oscillation
def _oscillation(history: History | None) -> tuple[str, float, int] | None:
    """Return (series, share of epochs with a swing, swings) for the more swinging series."""
    if history is None or len(history.epochs) < th.OSCILLATION_MIN_EPOCHS.value:
        return None
    loss, score = history.series("train_loss"), history.series("train_metric")  # (E,), (E,)
    scale = max(abs(loss[0]), 1e-12)  # the first epoch's loss sets the scale of the run
    rises = np.diff(loss) / scale >= th.OSCILLATION_LOSS_RISE.value  # (E−1,)
    drops = -np.diff(score) >= th.OSCILLATION_DROP.value  # (E−1,), False where NaN
    name, swings = max(
        (("train_loss", int(rises.sum())), ("train_metric", int(drops.sum()))),
        key=lambda item: item[1],
    )
    return name, swings / (len(history.epochs) - 1), swings


def find_oscillation(evidence: Evidence) -> list[Finding]:
    """Report a training curve that swings up and down from epoch to epoch (B7).

    Parameters
    ----------
    evidence : Evidence
        Reads the per-epoch ``train_loss`` and ``train_metric`` of ``history``.

    Returns
    -------
    list of Finding
        One ``oscillation`` warning when at least 20% of the epoch-to-epoch changes are
        swings, else ``[]`` (also with fewer than 5 epochs).

    Notes
    -----
    A swing is a drop of the training accuracy / R² by ≥ 0.03 (AUTOTRAINER ζ = 0.03,
    η = 0.2) or a rise of the epoch-mean training loss by ≥ 3% of the first epoch's loss
    (the same ζ on the loss scale of the run, a proposal; relative to the current loss,
    noise around a near-zero loss would count).

    Examples
    --------
    >>> from deepdx.train.history import EpochRecord, History
    >>> h = History(epochs=[EpochRecord(i + 1, loss, 0.1, 0.0)
    ...                     for i, loss in enumerate([1.0, 0.7, 0.9, 0.6, 0.8, 0.5])])
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.5, history=h)
    >>> [(f.kind, f.severity, f.evidence["swings"]) for f in find_oscillation(ev)]
    [('oscillation', 'warning', 2)]
    """
    found = _oscillation(evidence.history)
    if found is None or found[1] < th.OSCILLATION_SHARE.value:
        return []
    name, share, swings = found
    facts = {
        "series": name,
        "swings": swings,
        "share_of_epochs": share,
        **th.OSCILLATION_SHARE.cite(),
        **th.OSCILLATION_DROP.cite("drop_threshold"),
        **th.OSCILLATION_LOSS_RISE.cite("loss_rise_threshold"),
    }
    what = "training loss rose" if name == "train_loss" else "training score dropped"
    summary = f"The {what} sharply in {swings} of the epoch-to-epoch changes ({share:.0%})."
    advice = (
        _LOWER_LR,
        "Or add warmup, use a larger batch, or average the weights (SWA / Polyak).",
    )
    plot = "loss" if name == "train_loss" else "metric"
    return [Finding("oscillation", "warning", summary, facts, advice, plot)]
