"""Measurements several rules share: smoothed losses, per-layer summaries, scores.

Every function here reads an :class:`~deepdx.diagnose.evidence.Evidence` or a
:class:`~deepdx.train.history.History` and returns plain numbers (or None when the input
is missing); nothing here decides a verdict.

Symbols
-------
ℓ_t        minibatch training loss at step t (t = 1 … T)
ℓ̃_t        debiased EMA of the loss: m_t = β m_{t−1} + (1 − β) ℓ_t, ℓ̃_t = m_t / (1 − β^t)
L0         loss before training (pre-flight, else the median of the first steps)
progress   1 − (mean of the last 10% of ℓ) / L0
s          a score, accuracy or R² (higher is better, perfect = 1)
gain       (s − s_ref) / (1 − s_ref)
g_l        median over steps of layer l's gradient norm, l = 1 (input side) … L
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from deepdx.diagnose import signals
from deepdx.diagnose import thresholds as th
from deepdx.diagnose.baselines import BaselineResult, normalised_gain
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.monitors import LR_TIMES_LAMBDA_MAX, SOFT_SATURATED_FRACTION
from deepdx.train.history import History

#: Best possible accuracy or R².
PERFECT_SCORE = 1.0
#: Baselines whose decision function is linear in the (standardised) inputs.
LINEAR_BASELINES = frozenset({"logistic_regression", "linear_svm", "ridge", "linear_svr"})
# Steps whose median gives L0 when no pre-flight loss exists.
_HEAD_STEPS = 5
# Share of the run whose mean loss is the final loss.
_TAIL_SHARE = 0.1


def fmt(value: float) -> str:
    """Format a number for a finding's summary (three significant digits)."""
    return f"{value:.3g}"


# ------------------------------------------------------------------ losses
def smoothed(values: np.ndarray, beta: float) -> np.ndarray:
    """Return the debiased EMA ℓ̃ of ``values`` (T,) -> (T,), as the Lightning LR finder."""
    m = lfilter([1.0 - beta], [1.0, -beta], values)  # (T,) m_t with m_0 = 0
    return m / (1.0 - beta ** np.arange(1, len(values) + 1))  # (T,) debiased


def step_losses(history: History | None) -> np.ndarray:
    """Return the per-step training losses ℓ (T,), empty when there is no history."""
    if history is None:
        return np.zeros(0)
    return history.step_series("loss")[1]


def initial_loss(evidence: Evidence) -> float | None:
    """Return L0: the pre-flight loss at init, else the median of the first steps."""
    pre = evidence.preflight
    if pre is not None and math.isfinite(pre.init_loss):
        return pre.init_loss
    loss = step_losses(evidence.history)
    return float(np.median(loss[:_HEAD_STEPS])) if loss.size else None


def final_loss(history: History | None) -> float | None:
    """Return the mean training loss over the last 10% of the steps (at least one)."""
    loss = step_losses(history)
    if not loss.size:
        return None
    return float(loss[-max(1, int(_TAIL_SHARE * loss.size)) :].mean())


def loss_progress(evidence: Evidence) -> float | None:
    """Return 1 − final/L0, the share of the initial loss training removed."""
    start, end = initial_loss(evidence), final_loss(evidence.history)
    if start is None or end is None or not start > 0 or not math.isfinite(end):
        return None
    return 1.0 - end / start


# ------------------------------------------------------------------ per-layer signals
def layer_summary(
    history: History | None, prefix: str, *, reduce: str = "median"
) -> dict[str, float]:
    """Return ``{layer: median, last or max finite value}`` of a per-layer signal.

    Step 0 holds measurements before training; the median uses it only when nothing else
    exists, the last and max values always.
    """
    if history is None:
        return {}
    out: dict[str, float] = {}
    for layer in signals.layers_of(list(history.steps), prefix):
        steps, values = history.step_series(signals.layer_signal(prefix, layer))
        keep = np.isfinite(values)
        if reduce == "median" and (steps[keep] > 0).any():
            keep &= steps > 0
        if keep.any():
            out[layer] = float(_REDUCERS[reduce](values[keep]))
    return out


_REDUCERS = {"median": np.median, "last": lambda v: v[-1], "max": np.max}


def disconnected_layers(history: History | None) -> list[str]:
    """Return the layers whose weight gradient was exactly zero at every measurement.

    Such a layer is cut off from the loss (unused, or its input zeroed or detached): its
    silence says nothing about the step size or about vanishing gradients.
    """
    peaks = layer_summary(history, signals.LAYER_GRAD_NORM, reduce="max")
    return [layer for layer, peak in peaks.items() if peak == 0]


def update_ratios(history: History | None) -> tuple[float, float] | None:
    """Return (median over layers, largest) of the per-layer median update ratios r_l.

    Disconnected layers (see :func:`disconnected_layers`) are left out. A layer that has a
    gradient but never moves (frozen, or missing from the optimizer) stays in, with r = 0.
    """
    cut = set(disconnected_layers(history))
    medians = layer_summary(history, signals.UPDATE_RATIO)
    ratios = [ratio for layer, ratio in medians.items() if layer not in cut]
    return (float(np.median(ratios)), float(max(ratios))) if ratios else None


@dataclass(frozen=True)
class GradientProfile:
    """Median gradient norm g_l of each layer, input side first."""

    layers: tuple[str, ...]
    norms: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """g_first / g_last (inf when only the last is zero, nan when both are)."""
        first, last = self.norms[0], self.norms[-1]
        if last == 0:
            return math.nan if first == 0 else math.inf
        return first / last

    @property
    def falls_with_depth(self) -> bool:
        """True when g_l falls strictly from the output back to the input over ≥ 3 layers."""
        g = self.norms
        return len(g) >= 3 and all(a < b for a, b in zip(g[:-1], g[1:], strict=True))


def gradient_profile(history: History | None) -> GradientProfile | None:
    """Return the per-layer gradient-norm profile, or None with fewer than two layers."""
    medians = layer_summary(history, signals.LAYER_GRAD_NORM)
    if len(medians) < 2:
        return None
    return GradientProfile(tuple(medians), tuple(medians.values()))


def vanishing(profile: GradientProfile | None) -> bool:
    """Return True when the profile meets AUTOTRAINER's vanishing-gradient condition (B9).

    A first-layer gradient of exactly zero is not a vanishing gradient but a disconnected
    input layer (its input zeroed or detached), and is left to the zeroed-input rule.
    """
    if profile is None or not math.isfinite(profile.ratio) or profile.norms[0] == 0:
        return False
    return (
        profile.ratio < th.VANISHING_LAYER_RATIO.value
        and profile.norms[0] < th.VANISHING_FIRST_NORM.value
    )


def unit_fractions(history: History | None, prefix: str, *, peak: bool = False) -> dict[str, float]:
    """Return the last (or, with ``peak``, the largest) fraction of idle units per layer."""
    return layer_summary(history, prefix, reduce="max" if peak else "last")


def flow_blockers(evidence: Evidence) -> list[str]:
    """Return plain descriptions of dead, saturated or vanishing signal paths, if any."""
    history, out = evidence.history, []
    for prefix, what, limit in (
        (signals.DEAD_FRACTION, "dead", th.DEAD_LAYER_FRACTION),
        (signals.SATURATED_FRACTION, "saturated", th.SATURATED_LAYER_FRACTION),
        (SOFT_SATURATED_FRACTION, "nearly saturated", th.SATURATED_LAYER_FRACTION),
    ):
        for layer, share in unit_fractions(history, prefix).items():
            if share > limit.value:
                out.append(f"{share:.0%} {what} units in {layer}")
    profile = gradient_profile(history)
    if profile is not None and vanishing(profile):
        out.append(f"vanishing gradients (first/last layer norm ratio {fmt(profile.ratio)})")
    return out


def severe_idle_units(history: History | None) -> list[str]:
    """Return descriptions of layers that end with most units dead or saturated.

    Severe: a layer above the severe fraction (0.9), or, with two or more layers, every
    layer above the layer fraction (0.5).
    """
    out = []
    for prefix, what, layer_limit, severe_limit in (
        (signals.DEAD_FRACTION, "dead", th.DEAD_LAYER_FRACTION, th.DEAD_SEVERE_FRACTION),
        (
            signals.SATURATED_FRACTION,
            "saturated",
            th.SATURATED_LAYER_FRACTION,
            th.SATURATED_SEVERE_FRACTION,
        ),
    ):
        last = unit_fractions(history, prefix)
        everywhere = len(last) >= 2 and min(last.values()) > layer_limit.value
        out += [
            f"{share:.0%} {what} units in {layer}"
            for layer, share in last.items()
            if share > severe_limit.value or everywhere
        ]
    return out


def tiny_updates(history: History | None) -> bool:
    """Return True when every layer's median update ratio is far below the ~1e-3 target.

    The median over layers is below ``UPDATE_RATIO_LOW`` and even the fastest layer is below
    ``UPDATE_RATIO_TARGET``: the whole net moves slowly, as a global step size would make it.
    """
    ratios = update_ratios(history)
    return (
        ratios is not None
        and ratios[0] < th.UPDATE_RATIO_LOW.value
        and ratios[1] < th.UPDATE_RATIO_TARGET.value
    )


def learning_blockers(evidence: Evidence) -> list[str]:
    """Return reasons the net could not learn anything, whatever its inputs.

    A stopped (diverged) run, severely dead or saturated layers, vanishing gradients, or
    updates far too small everywhere.
    """
    out = ["the run diverged"] if evidence.divergence else []
    out += severe_idle_units(evidence.history)
    profile = gradient_profile(evidence.history)
    if profile is not None and vanishing(profile):
        out.append("vanishing gradients")
    if tiny_updates(evidence.history):
        out.append("updates far too small (learning rate too low)")
    return out


# ------------------------------------------------------------------ curvature
def stability_limit(optimizer: str) -> th.Threshold | None:
    """Return the η·λ_max stability limit of an SGD-family optimizer, else None."""
    name = optimizer.lower()
    if name in {"sgd", "gd"}:
        return th.STABILITY_GD
    if name in {"momentum", "nesterov"}:
        return th.STABILITY_MOMENTUM
    return None


def sharpness(evidence: Evidence) -> np.ndarray | None:
    """Return η·λ_max / limit at each curvature measurement (None when not applicable).

    η·λ_max is read from ``lr_times_lambda_max`` (the learning rate when measured), else
    computed from ``lambda_max`` and the initial learning rate.
    """
    limit = stability_limit(evidence.optimizer)
    if limit is None or evidence.history is None:
        return None
    product = evidence.history.step_series(LR_TIMES_LAMBDA_MAX)[1]  # (K,)
    if not np.isfinite(product).any():
        product = evidence.lr * evidence.history.step_series(signals.LAMBDA_MAX)[1]  # (K,)
    product = product[np.isfinite(product)]
    return product / limit.value if product.size else None


# ------------------------------------------------------------------ scores
def fitted_baselines(evidence: Evidence) -> list[BaselineResult]:
    """Return the baselines with a finite test score."""
    return [
        b for b in evidence.baselines if b.test_score is not None and math.isfinite(b.test_score)
    ]


def best_baseline(evidence: Evidence, names: frozenset[str] | None = None) -> BaselineResult | None:
    """Return the fitted baseline (among ``names``, if given) with the best test score."""
    scored = [b for b in fitted_baselines(evidence) if names is None or b.name in names]
    return max(scored, key=lambda b: b.test_score or 0.0) if scored else None


def chance_score(evidence: Evidence) -> float | None:
    """Return the score of an input-independent prediction: the dummy baseline, else 1/C or 0."""
    dummy = best_baseline(evidence, frozenset({"dummy"}))
    if dummy is not None and dummy.test_score is not None:
        return dummy.test_score
    if evidence.metric == "accuracy" and evidence.n_classes > 0:
        return 1.0 / evidence.n_classes
    return 0.0 if evidence.metric == "r2" else None


def gain(score: float, reference: float) -> float:
    """Return Deepchecks' normalised gain of ``score`` over ``reference`` (perfect = 1)."""
    return normalised_gain(score, reference, PERFECT_SCORE)


def last_epoch_value(history: History | None, name: str) -> float | None:
    """Return the last finite epoch-level value of ``name``."""
    if history is None:
        return None
    values = history.series(name)
    values = values[np.isfinite(values)]
    return float(values[-1]) if values.size else None


def last_step_value(history: History | None, name: str) -> float | None:
    """Return the last finite value of the per-step series ``name``."""
    if history is None:
        return None
    values = history.step_series(name)[1]
    values = values[np.isfinite(values)]
    return float(values[-1]) if values.size else None


def train_score(evidence: Evidence) -> float | None:
    """Return the trained net's training score (evidence, else the last epoch's)."""
    if evidence.net_train_score is not None and math.isfinite(evidence.net_train_score):
        return evidence.net_train_score
    return last_epoch_value(evidence.history, "train_metric")


def val_score(evidence: Evidence) -> float | None:
    """Return the trained net's validation score (evidence, else the last epoch's)."""
    if evidence.net_val_score is not None and math.isfinite(evidence.net_val_score):
        return evidence.net_val_score
    return last_epoch_value(evidence.history, "val_metric")


def fit_failed(evidence: Evidence) -> bool | None:
    """Return True when the net learned next to nothing of its own training data.

    With a training score: its gain over chance is below ``FIT_FAILED_GAIN``. Without one:
    the loss fell by less than ``LITTLE_PROGRESS``. None when neither is known.
    """
    score, chance = train_score(evidence), chance_score(evidence)
    if score is not None and chance is not None:
        return gain(score, chance) < th.FIT_FAILED_GAIN.value
    progress = loss_progress(evidence)
    return None if progress is None else progress < th.LITTLE_PROGRESS.value


@dataclass(frozen=True)
class BiasVariance:
    """Ng's decomposition of the net's error (DIAGNOSTICS C1), errors as 1 − score.

    ``reference`` names where the reference error comes from: a baseline or ``"perfect"``.
    """

    train_error: float
    reference_error: float
    reference: str
    val_error: float | None

    @property
    def avoidable_bias(self) -> float:
        """Train error − reference error."""
        return self.train_error - self.reference_error

    @property
    def variance(self) -> float | None:
        """Validation error − train error."""
        return None if self.val_error is None else self.val_error - self.train_error


def bias_variance(evidence: Evidence) -> BiasVariance | None:
    """Return the bias/variance decomposition, or None without a training score."""
    score = train_score(evidence)
    if score is None or evidence.metric not in {"accuracy", "r2"}:
        return None
    best = best_baseline(evidence)
    ref_score = PERFECT_SCORE if best is None else best.test_score or 0.0
    val = val_score(evidence)
    return BiasVariance(
        train_error=PERFECT_SCORE - score,
        reference_error=PERFECT_SCORE - ref_score,
        reference="perfect" if best is None else best.name,
        val_error=None if val is None else PERFECT_SCORE - val,
    )


# ------------------------------------------------------------------ gradient spikes
@dataclass(frozen=True)
class Spikes:
    """Steps whose global gradient norm exceeded ``SPIKE_FACTOR`` x its running median."""

    steps: np.ndarray
    events: int
    clip_at: float
    n_steps: int
    last_step: int

    @property
    def early_only(self) -> bool:
        """True when every spike falls in the first ``EARLY_SHARE`` of the steps."""
        return bool(self.steps.size) and self.steps.max() <= th.EARLY_SHARE.value * self.last_step


def gradient_spikes(history: History | None) -> Spikes | None:
    """Find spikes of the global gradient norm (B8); None when it was not logged.

    A step t is a spike when g_t is non-finite, or when g_t > F · median(g_{t−W} … g_{t−1})
    and g_t exceeds the median norm of the first steps (a spike below the norm at
    initialisation is not an explosion). Consecutive spike steps form one event.
    """
    if history is None:
        return None
    steps, g = history.step_series(signals.GRAD_NORM)  # (T,), (T,)
    if g.size <= _HEAD_STEPS:
        return None
    finite = np.where(np.isfinite(g), g, np.nan)  # (T,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
        reference = _running_median(finite, int(th.SPIKE_WINDOW.value))  # (T,)
        start = np.nanmedian(finite[:_HEAD_STEPS])
        clip = float(np.nanpercentile(finite, th.CLIP_PERCENTILE.value))
    with np.errstate(invalid="ignore"):
        high = (finite > th.SPIKE_FACTOR.value * reference) & (finite > start)  # (T,)
    spike = ~np.isfinite(g) | high  # (T,)
    spike[:_HEAD_STEPS] = False
    at = steps[spike]
    events = 1 + int(np.count_nonzero(np.diff(at) > 1)) if at.size else 0
    return Spikes(at, events, clip, int(g.size), int(steps.max()))


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the ``window`` values before each position (NaN-aware; NaN at 0)."""
    out = np.full(values.shape, np.nan)  # (T,)
    for t in range(1, min(window, values.size)):
        out[t] = np.nanmedian(values[:t])
    if values.size > window:
        windows = np.lib.stride_tricks.sliding_window_view(values[:-1], window)  # (T − W, W)
        out[window:] = np.nanmedian(windows, axis=1)
    return out
