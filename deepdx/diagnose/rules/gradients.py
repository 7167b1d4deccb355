"""Rules on gradient norms: exploding and vanishing gradients (DIAGNOSTICS.md B8, B9).

Both rules read the ``grad_norm`` and ``grad_norm/{layer}`` series of ``evidence.history``;
layers are taken in the order the monitors logged them, the input side first.

Symbols
-------
g_t        global gradient norm at step t
med_t      median of g over the W = 50 steps before t
g_l        median over steps of layer l's weight-gradient norm, l = 1 (input) … L (output)
ρ          g_1 / g_L, the first-to-last layer ratio
"""

from __future__ import annotations

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding, Severity
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt

__all__ = ["find_exploding_gradients", "find_vanishing_gradients"]


def find_exploding_gradients(evidence: Evidence) -> list[Finding]:
    """Report gradient-norm spikes or an input layer with far larger gradients (B8).

    Parameters
    ----------
    evidence : Evidence
        Reads ``grad_norm`` and ``grad_norm/{layer}`` of ``history``.

    Returns
    -------
    list of Finding
        One ``exploding_gradients`` warning when the global norm spiked (g_t > 10 med_t,
        above its initial value, or non-finite) in at least 3 separate events, or when
        ρ > 70; else ``[]``.

    Notes
    -----
    Spikes: trainproof's 10x running median. ρ > 70: AUTOTRAINER β₃. The advice follows the
    Deep Learning Tuning Playbook: clip at the 90th percentile of the observed norms; if
    more than half the steps end up clipped, lower the learning rate instead; spikes only in
    the first 10% of steps call for warmup.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> norms = [1.0] * 60 + [50.0] + [1.0] * 20 + [80.0] + [1.0] * 20 + [90.0] + [1.0] * 5
    >>> h.log_steps("grad_norm", norms, first_step=1)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.1, history=h)
    >>> [(f.kind, f.severity, f.evidence["spike_events"]) for f in find_exploding_gradients(ev)]
    [('exploding_gradients', 'warning', 3)]
    """
    spikes = m.gradient_spikes(evidence.history)
    profile = m.gradient_profile(evidence.history)
    by_spikes = spikes is not None and spikes.events >= th.SPIKE_EVENTS.value
    ratio = profile.ratio if profile is not None else float("nan")
    by_layers = ratio > th.EXPLODING_LAYER_RATIO.value and ratio != float("inf")
    if not (by_spikes or by_layers):
        return []
    facts: dict = {**th.SPIKE_FACTOR.cite("spike_factor"), **th.SPIKE_EVENTS.cite()}
    parts, advice = [], []
    if spikes is not None:
        facts |= {"spike_events": spikes.events, "clip_at_p90": spikes.clip_at}
        facts |= th.CLIP_PERCENTILE.cite("clip_percentile")
    if spikes is not None and by_spikes:
        parts.append(f"the gradient norm spiked above 10x its running median {spikes.events} times")
        advice += _spike_advice(spikes)
    if profile is not None:
        facts |= {
            "first_over_last_layer": ratio,
            **th.EXPLODING_LAYER_RATIO.cite("ratio_threshold"),
        }
    if by_layers:
        parts.append(f"the first layer's gradients are {fmt(ratio)}x the last layer's")
        advice.append(
            "Normalise activations (batch or layer norm) and check the initialisation of the "
            "early layers (He for ReLU, Glorot for tanh)."
        )
    summary = "Gradients explode: " + " and ".join(parts) + "."
    return [Finding("exploding_gradients", "warning", summary, facts, tuple(advice), "grad_norms")]


def _spike_advice(spikes: m.Spikes) -> list[str]:
    """Return the Playbook advice for gradient-norm spikes."""
    advice = [
        f"Clip the gradient norm at about {fmt(spikes.clip_at)} (the 90th percentile of the "
        "observed norms); if more than half of the steps end up clipped, lower the learning "
        "rate instead.",
    ]
    if spikes.early_only:
        advice.append("The spikes all come early: warm the learning rate up over those steps.")
    return advice


def find_vanishing_gradients(evidence: Evidence) -> list[Finding]:
    """Report gradients that shrink to nothing on the way back to the input (B9).

    Parameters
    ----------
    evidence : Evidence
        Reads ``grad_norm/{layer}`` of ``history``, the losses and the scores.

    Returns
    -------
    list of Finding
        One ``vanishing_gradients`` finding when ρ < 1e-3 and g_1 < 1e-4 (AUTOTRAINER):
        ``problem`` when the net also failed to learn and g_l falls steadily from the output
        to the input; ``warning`` with one of the two; ``info`` with neither (the ratio
        alone can be noisy).

    Notes
    -----
    Each g_l is a median over steps, so a single noisy step cannot fire the rule. A steady
    fall (g_1 < g_2 < … < g_L over ≥ 3 layers) is the signature of a per-layer factor below
    one, e.g. σ' ≤ 1/4 for sigmoid units.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> for layer, norm in [("l1", 1e-8), ("l2", 1e-5), ("l3", 1e-2)]:
    ...     h.log_steps(f"grad_norm/{layer}", [norm] * 5, first_step=1)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.1, history=h)
    >>> [(f.kind, f.severity) for f in find_vanishing_gradients(ev)]
    [('vanishing_gradients', 'warning')]
    """
    profile = m.gradient_profile(evidence.history)
    if profile is None or not m.vanishing(profile):
        return []
    failed = m.fit_failed(evidence) is True
    steady = profile.falls_with_depth
    severity: Severity = (
        "problem" if failed and steady else "warning" if failed or steady else "info"
    )
    facts = {
        "first_over_last_layer": profile.ratio,
        "first_layer_grad_norm": profile.norms[0],
        "layer_grad_norms": dict(zip(profile.layers, profile.norms, strict=True)),
        "falls_with_depth": steady,
        "training_failed": failed,
        **th.VANISHING_LAYER_RATIO.cite(),
        **th.VANISHING_FIRST_NORM.cite("first_norm_threshold"),
    }
    summary = (
        f"Gradients vanish towards the input: the first layer's gradient norm "
        f"{fmt(profile.norms[0])} is {fmt(profile.ratio)} of the last layer's"
        + (", falling layer by layer." if steady else ".")
    )
    advice = (
        "Use ReLU-family activations instead of sigmoid/tanh in the hidden layers.",
        "Add residual connections and normalisation (batch or layer norm) inside the blocks.",
        "Use He (ReLU) or Glorot (tanh) initialisation, and warm the learning rate up.",
    )
    return [Finding("vanishing_gradients", severity, summary, facts, advice, "grad_norms")]
