"""Rules on the pre-flight checks: "is the pipeline correct?" (DIAGNOSTICS.md A1-A3, A5, A7).

Each rule is a pure function ``Evidence -> list[Finding]`` and returns ``[]`` when the check
it reads did not run.

A failed one-batch overfit (A2) is reported as ``underfitting``: its three causes ("bug, too
little capacity, or learning rate far off") cannot be told apart by the failure alone, but
the gradient check can rule out the first. When the gradient check says ``wrong`` the
failure is quoted as corroboration in the ``wrong_gradient`` finding instead.

Symbols
-------
L0, L_chance   loss before training and of an input-independent prediction
s_real         validation score with real inputs (the better of the short pre-flight run
               and the trained net)
s_zero         validation score of the same short run on zeroed inputs
gain           (s_real − s_zero) / (1 − s_zero), Deepchecks' normalised gain
"""

from __future__ import annotations

import math

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import DataSanity, Evidence, Preflight
from deepdx.diagnose.findings import Finding
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt

__all__ = [
    "find_data_issues",
    "find_ignores_inputs",
    "find_loss_at_init",
    "find_one_batch_failure",
    "find_wrong_gradient",
]


# ------------------------------------------------------------------ A5 gradient check
def find_wrong_gradient(evidence: Evidence) -> list[Finding]:
    """Report a gradient that disagrees with finite differences (A5).

    Parameters
    ----------
    evidence : Evidence
        Reads ``gradcheck`` (and ``preflight`` for corroboration).

    Returns
    -------
    list of Finding
        One ``wrong_gradient`` finding: ``problem`` when the check says ``wrong``,
        ``warning`` when it says ``suspect`` on a model without kinks; else ``[]``.

    Notes
    -----
    Relative error r = |a − n| / (|a| + |n|) of the analytic and numeric directional
    derivatives; r > 1e-2 is wrong, 1e-4 < r ≤ 1e-2 suspect (CS231n). A suspect error on a
    model with ReLU-like kinks is expected and not reported.

    Examples
    --------
    >>> find_wrong_gradient(Evidence("classification", "accuracy", 2, 100, "adam", 1e-3))
    []
    """
    check = evidence.gradcheck
    if check is None or check.verdict == "ok" or (check.verdict == "suspect" and check.non_smooth):
        return []
    wrong = check.verdict == "wrong"
    limit = th.GRADCHECK_WRONG if wrong else th.GRADCHECK_OK
    facts = {
        "verdict": check.verdict,
        "worst_tensor": check.worst_tensor,
        "max_rel_error": check.max_rel_error,
        "custom_functions": list(check.custom_functions),
        "non_smooth_ops": list(check.non_smooth),
        **limit.cite(),
    }
    if evidence.preflight is not None and not _one_batch_passed(evidence.preflight):
        facts["one_batch_final_loss"] = evidence.preflight.one_batch_final_loss
    summary = (
        f"The gradient of {check.worst_tensor!r} disagrees with the slope of the loss "
        f"(relative error {fmt(check.max_rel_error)}, above {fmt(limit.value)})."
    )
    return [
        Finding(
            "wrong_gradient",
            "problem" if wrong else "warning",
            summary,
            facts,
            _gradient_advice(check.custom_functions, wrong=wrong, kinks=bool(check.non_smooth)),
            "gradcheck",
        )
    ]


def _gradient_advice(custom: tuple[str, ...], *, wrong: bool, kinks: bool) -> tuple[str, ...]:
    """Return the next steps for a wrong or suspect gradient."""
    advice = []
    if custom:
        advice.append(
            f"Check the backward of the custom autograd Function(s) {', '.join(custom)} with "
            "torch.autograd.gradcheck in float64."
        )
    advice.append(
        "Look for in-place operations, .detach()/.data or NumPy round trips, and "
        "non-differentiable steps in the module that owns that tensor."
    )
    if not wrong or kinks:
        advice.append(
            "Rerun the check with another seed or a smaller eps: an error that persists is a "
            "bug, one that moves around is a finite difference crossing a kink."
        )
    return tuple(advice)


# ------------------------------------------------------------------ A1 loss at init
def find_loss_at_init(evidence: Evidence) -> list[Finding]:
    """Report an initial loss far from the loss of a chance-level prediction (A1).

    Parameters
    ----------
    evidence : Evidence
        Reads ``preflight.init_loss`` and ``preflight.chance_loss``.

    Returns
    -------
    list of Finding
        One ``loss_at_init`` warning when |L0 − L_chance| > 0.2 L_chance, else ``[]``.

    Notes
    -----
    L_chance is ln C for C-class cross-entropy (uniform predictions) and the target variance
    for squared error (predicting the mean). L0 > 3 L_chance means confidently wrong initial
    predictions: initial weights or inputs too large, or probabilities fed to a logits loss.

    Examples
    --------
    >>> from deepdx.diagnose.evidence import Preflight
    >>> pre = Preflight(9.2, 2.303, 2.3, 0.01, 1.0, 300, 0.5, 2.3, 0.8, 0.1)
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, preflight=pre)
    >>> [(f.kind, f.severity, round(f.evidence["ratio_to_chance"], 1))
    ...  for f in find_loss_at_init(ev)]
    [('loss_at_init', 'warning', 4.0)]
    """
    pre = evidence.preflight
    if pre is None or not (math.isfinite(pre.init_loss) and pre.chance_loss > 0):
        return []
    deviation = (pre.init_loss - pre.chance_loss) / pre.chance_loss
    if abs(deviation) <= th.INIT_LOSS_BAND.value:
        return []
    ratio = pre.init_loss / pre.chance_loss
    facts = {
        "init_loss": pre.init_loss,
        "chance_loss": pre.chance_loss,
        "relative_deviation": deviation,
        "ratio_to_chance": ratio,
        **th.INIT_LOSS_BAND.cite(),
        **th.INIT_LOSS_OVERCONFIDENT.cite("overconfident_threshold"),
    }
    summary, advice = _init_loss_message(pre, deviation, ratio)
    return [Finding("loss_at_init", "warning", summary, facts, advice, "loss")]


def _init_loss_message(pre: Preflight, deviation: float, ratio: float) -> tuple[str, tuple]:
    """Return the summary and advice for an initial loss above, far above, or below chance."""
    start = f"The loss before training is {fmt(pre.init_loss)}"
    if ratio > th.INIT_LOSS_OVERCONFIDENT.value:
        return (
            f"{start}, {ratio:.1f}x the chance-level {fmt(pre.chance_loss)}: the untrained net "
            "makes confidently wrong predictions.",
            (
                "Use smaller initial weights (PyTorch's default, He or Glorot init) and a "
                "small or zero last layer.",
                "Standardise the inputs: large inputs give large initial outputs.",
                "Feed logits, not probabilities, to the loss (no softmax or sigmoid before "
                "CrossEntropyLoss / BCEWithLogitsLoss).",
            ),
        )
    if deviation > 0:
        return (
            f"{start}, {deviation:.0%} above the chance-level {fmt(pre.chance_loss)}.",
            (
                "Initialise the last layer small, with its bias at the class log-frequencies "
                "(or the target mean).",
                "Check that the loss matches the output layer (logits for cross-entropy).",
            ),
        )
    return (
        f"{start}, {-deviation:.0%} below the chance-level {fmt(pre.chance_loss)}: the "
        "untrained net already predicts better than chance.",
        (
            "Check for label leakage: labels or proxies of them among the inputs.",
            "Check that the loss compares the predictions with the right targets.",
        ),
    )


# ------------------------------------------------------------------ A2 one-batch overfit
def _one_batch_passed(pre: Preflight) -> bool:
    """Return whether the one-batch overfit reached the score or the loss reduction of A2."""
    score = pre.one_batch_final_score
    if score is not None and score >= th.ONE_BATCH_SCORE.value:
        return True
    return pre.one_batch_final_loss < th.ONE_BATCH_LOSS_FRACTION.value * pre.one_batch_initial_loss


def find_one_batch_failure(evidence: Evidence) -> list[Finding]:
    """Report a net that cannot overfit one small batch (A2), as ``underfitting``.

    Parameters
    ----------
    evidence : Evidence
        Reads ``preflight`` (one-batch fields), ``gradcheck`` and the scores.

    Returns
    -------
    list of Finding
        One ``underfitting`` finding when the batch was not overfitted and the gradient
        check did not already explain it: ``warning`` when the trained net also underfits
        (or that is unknown), ``info`` when it fits its training data anyway.

    Notes
    -----
    Passed when the batch accuracy / R² reaches 0.99 or its loss falls below 1% of its
    initial value (Karpathy's procedure; the numbers are proposals).

    Examples
    --------
    >>> from deepdx.diagnose.evidence import Preflight
    >>> pre = Preflight(2.3, 2.303, 2.3, 2.1, 0.3, 300, 0.5, 2.3, 0.8, 0.1)
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, preflight=pre)
    >>> [(f.kind, f.severity) for f in find_one_batch_failure(ev)]
    [('underfitting', 'warning')]
    """
    pre = evidence.preflight
    if pre is None or _one_batch_passed(pre):
        return []
    if evidence.gradcheck is not None and evidence.gradcheck.verdict == "wrong":
        return []
    split = m.bias_variance(evidence)
    underfits = split is None or split.avoidable_bias >= th.AVOIDABLE_BIAS.value
    facts = {
        "one_batch_initial_loss": pre.one_batch_initial_loss,
        "one_batch_final_loss": pre.one_batch_final_loss,
        "one_batch_final_score": pre.one_batch_final_score,
        "one_batch_steps": pre.one_batch_steps,
        **th.ONE_BATCH_SCORE.cite("score_threshold"),
        **th.ONE_BATCH_LOSS_FRACTION.cite("loss_fraction_threshold"),
    }
    score = pre.one_batch_final_score
    scored = "" if score is None else f", score {fmt(score)}"
    summary = (
        f"The net could not overfit one small batch: in {pre.one_batch_steps} steps its loss "
        f"went only from {fmt(pre.one_batch_initial_loss)} to "
        f"{fmt(pre.one_batch_final_loss)}{scored}."
    )
    advice = (
        "Turn regularisation off (dropout, weight decay, augmentation) and retry with the "
        "learning rate 10x higher and 10x lower.",
        "Check the loss against the labels: a loss/activation mismatch or labels out of range "
        "make even one batch unlearnable.",
        "If neither helps, the net is too small even for these examples: add units.",
    )
    severity = "warning" if underfits else "info"
    return [Finding("underfitting", severity, summary, facts, advice, "")]


# ------------------------------------------------------------------ A3 zeroed inputs
def find_ignores_inputs(evidence: Evidence) -> list[Finding]:
    """Report a net that scores about as well on zeroed inputs as on real ones (A3).

    Parameters
    ----------
    evidence : Evidence
        Reads ``preflight`` (real and zeroed runs), ``net_val_score``, the baselines and,
        to rule out a net that cannot learn at all, the signals of ``history``.

    Returns
    -------
    list of Finding
        One ``ignores_inputs`` finding when gain < 0.1 or the input gradient is zero:
        ``problem`` when the trained net's input sensitivity ‖∂L/∂X‖·‖X‖/|L| is ≈ 0 and
        nothing else (divergence, dead or saturated layers, vanishing gradients) explains
        it, or, when it was not measured, when gain < 0.05, a baseline beats chance clearly
        and nothing else stops the net from learning; else ``warning``. ``[]`` otherwise and for
        unsupervised tasks.

    Notes
    -----
    gain = (s_real − s_zero) / (1 − s_zero): the share of the headroom left by an
    input-independent model that real inputs close (Deepchecks' gain, with the zeroed-input
    run as the baseline). Without scores the losses are used, with 0 as perfect. s_real is
    the better of the short run and the trained net, so a short run that was merely too
    short does not fire the rule. Layers whose gradient is exactly zero throughout (unused,
    or their input zeroed or detached in the forward pass) are quoted as corroboration.

    Examples
    --------
    >>> from deepdx.diagnose.evidence import Preflight
    >>> pre = Preflight(2.3, 2.303, 2.3, 0.01, 1.0, 300, 2.2, 2.2, 0.12, 0.11)
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, preflight=pre)
    >>> [(f.kind, f.severity) for f in find_ignores_inputs(ev)]
    [('ignores_inputs', 'warning')]
    """
    pre = evidence.preflight
    if pre is None or evidence.task == "unsupervised":
        return []
    measured = _input_gain(evidence, pre)
    blind = _input_blind(evidence)
    if measured is None or (measured[0] >= th.IGNORES_INPUTS_GAIN.value and not blind):
        return []
    value, real, zero = measured
    learnable, blockers = _labels_learnable(evidence), m.learning_blockers(evidence)
    profile = m.gradient_profile(evidence.history)
    facts = {
        "gain_over_zeroed_inputs": value,
        "real_inputs": real,
        "zeroed_inputs": zero,
        "labels_learnable_by_baselines": learnable,
        "first_layer_grad_norm": None if profile is None else profile.norms[0],
        "layers_without_gradient": m.disconnected_layers(evidence.history),
        "learning_blockers": blockers,
        **th.IGNORES_INPUTS_GAIN.cite(),
        **th.NO_BETTER_GAIN.cite("no_better_threshold"),
        **th.LEARNABLE_GAIN.cite("learnable_threshold"),
        "input_sensitivity": evidence.input_sensitivity,
        **th.INPUT_SENSITIVITY_ZERO.cite("input_sensitivity_threshold"),
    }
    # A zero input gradient proves it (unless dead, saturated or vanishing layers, or a
    # divergence, already explain it); a small gain alone could also be a short run.
    problem = (blind and not blockers) or (
        value < th.NO_BETTER_GAIN.value
        and learnable is True
        and not blockers
        and evidence.input_sensitivity is None
    )
    severity = "problem" if problem else "warning"
    summary = _ignores_summary(value, real, zero, learnable=learnable, blockers=blockers)
    advice = (
        "Check that the forward pass uses its input (not a cached tensor, a constant or only a "
        "bias) and that the input is not overwritten or detached on the way.",
        "Check that inputs and labels stay aligned (same order, same shuffle) and that the "
        "inputs are not constant after preprocessing.",
        "If the zeroed run scores well, look for labels leaking through another channel.",
    )
    return [Finding("ignores_inputs", severity, summary, facts, advice, "baselines")]


def _input_blind(evidence: Evidence) -> bool:
    """Return whether the trained net's loss measurably does not depend on its inputs."""
    value = evidence.input_sensitivity
    return value is not None and value <= th.INPUT_SENSITIVITY_ZERO.value


def _ignores_summary(
    value: float, real: float, zero: float, *, learnable: bool | None, blockers: list[str]
) -> str:
    """Return the summary of the zeroed-input comparison, with its likeliest reading."""
    start = (
        f"With all inputs set to zero the net reaches {fmt(zero)} against {fmt(real)} with "
        f"real inputs (gain {value:.2f})"
    )
    if blockers:
        return f"{start}, but it may learn nothing at all: {'; '.join(blockers)}."
    if learnable is False:
        return f"{start}; no baseline beats chance either: the labels may not depend on them."
    tail = ", although a shallow baseline shows they are informative." if learnable else "."
    return f"{start}: it barely uses its inputs{tail}"


def _input_gain(evidence: Evidence, pre: Preflight) -> tuple[float, float, float] | None:
    """Return (gain, real, zeroed) from the scores, else from the losses (perfect = 0)."""
    zero = pre.zeroed_inputs_score
    reals = [s for s in (pre.real_inputs_score, evidence.net_val_score) if s is not None]
    if zero is not None and reals and all(math.isfinite(v) for v in (zero, *reals)):
        real = max(reals)
        return m.gain(real, zero), real, zero
    real_loss, zero_loss = pre.real_inputs_loss, pre.zeroed_inputs_loss
    if not (math.isfinite(real_loss) and math.isfinite(zero_loss)) or zero_loss <= 0:
        return None
    return (zero_loss - real_loss) / zero_loss, real_loss, zero_loss


def _labels_learnable(evidence: Evidence) -> bool | None:
    """Return whether the best baseline beats chance clearly (None without baselines)."""
    best, chance = m.best_baseline(evidence), m.chance_score(evidence)
    if best is None or best.test_score is None or chance is None:
        return None
    return m.gain(best.test_score, chance) >= th.LEARNABLE_GAIN.value


# ------------------------------------------------------------------ A7 data sanity
def find_data_issues(evidence: Evidence) -> list[Finding]:
    """Report badly scaled inputs, class imbalance and rows shared across splits (A7).

    Parameters
    ----------
    evidence : Evidence
        Reads ``data_sanity``, ``task`` and ``n_train``.

    Returns
    -------
    list of Finding
        Zero to three ``data_sanity`` findings, one per issue.

    Notes
    -----
    Scale: a warning when some feature has |mean| > 3 std (tested as max |mean| > 3 max std,
    a sufficient condition) or std > 10; an ``info`` when only some std < 0.1. Imbalance:
    a warning above 10:1 (SageMaker). Duplicates: the count over ``n_train`` is a lower
    bound of the share of evaluation rows duplicated (evaluation splits are no larger than
    the training split); a warning above 5% (Deepchecks), else ``info``.

    Examples
    --------
    >>> from deepdx.diagnose.evidence import DataSanity
    >>> ds = DataSanity(120.0, 2.0, 80.0, 0, 1.5, 0)
    >>> ev = Evidence("classification", "accuracy", 3, 500, "adam", 1e-3, data_sanity=ds)
    >>> [(f.kind, f.severity) for f in find_data_issues(ev)]
    [('data_sanity', 'warning')]
    """
    data = evidence.data_sanity
    if data is None:
        return []
    found = [_scale_issue(data), _duplicate_issue(data, evidence.n_train)]
    if evidence.task == "classification":
        found.append(_imbalance_issue(data))
    return [f for f in found if f is not None]


def _scale_issue(data: DataSanity) -> Finding | None:
    """Return a finding for inputs far from zero mean and unit variance."""
    off_centre = data.feature_mean_abs_max > th.SCALE_MEAN_STDS.value * data.feature_std_max
    too_wide = data.feature_std_max > th.SCALE_STD_HIGH.value
    too_narrow = data.feature_std_min < th.SCALE_STD_LOW.value
    if not (off_centre or too_wide or too_narrow):
        return None
    facts = {
        "feature_mean_abs_max": data.feature_mean_abs_max,
        "feature_std_min": data.feature_std_min,
        "feature_std_max": data.feature_std_max,
        **th.SCALE_MEAN_STDS.cite("mean_stds_threshold"),
        **th.SCALE_STD_LOW.cite("std_low_threshold"),
        **th.SCALE_STD_HIGH.cite("std_high_threshold"),
    }
    summary = (
        f"Inputs are far from standardised: largest |feature mean| {fmt(data.feature_mean_abs_max)}"
        f", feature standard deviations from {fmt(data.feature_std_min)} to "
        f"{fmt(data.feature_std_max)}."
    )
    advice = (
        "Standardise each feature with the training split's mean and standard deviation, and "
        "apply the same transform to validation and test.",
    )
    severity = "warning" if off_centre or too_wide else "info"
    return Finding("data_sanity", severity, summary, facts, advice, "")


def _imbalance_issue(data: DataSanity) -> Finding | None:
    """Return a finding for a class imbalance above 10:1."""
    if not data.imbalance_ratio > th.IMBALANCE_RATIO.value:
        return None
    return Finding(
        "data_sanity",
        "warning",
        f"The classes are imbalanced {data.imbalance_ratio:.0f}:1 (largest over smallest).",
        {"imbalance_ratio": data.imbalance_ratio, **th.IMBALANCE_RATIO.cite()},
        (
            "Judge the net by balanced accuracy or per-class recall, not accuracy alone.",
            "Weight the loss by inverse class frequency, or resample the rare classes.",
        ),
        "",
    )


def _duplicate_issue(data: DataSanity, n_train: int) -> Finding | None:
    """Return a finding for validation or test rows that also occur in the training split."""
    n = data.n_duplicates_across_splits
    if n <= 0:
        return None
    share = n / max(n_train, 1)
    return Finding(
        "data_sanity",
        "warning" if share > th.DUPLICATE_RATIO.value else "info",
        f"{n} validation or test rows also occur in the training split, so their scores "
        "overstate how well the net generalises.",
        {"n_duplicates_across_splits": n, "share_lower_bound": share, **th.DUPLICATE_RATIO.cite()},
        ("Remove the duplicates from the evaluation splits (or deduplicate before splitting).",),
        "",
    )
