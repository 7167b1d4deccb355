"""Rules on capacity probes: would more units, or more layers, help? (DIAGNOSTICS.md D2, D3).

The capacity probes train short variants of the model from the same budget: ``base``,
``wider`` (more units per layer), ``deeper`` (more layers), sometimes ``narrower``. A
variant "beats" another when its validation score is higher by a clear margin (or, without
scores, its validation loss lower by a clear share).

Symbols
-------
s_v      validation score of variant v (accuracy or R²)
L_v      validation loss of variant v
Δs       s_v − s_base;  ΔL = (L_base − L_v) / L_base
"""

from __future__ import annotations

from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import CapacityProbe, Evidence
from deepdx.diagnose.findings import Finding, Severity
from deepdx.diagnose.rules import _measures as m
from deepdx.diagnose.rules._measures import fmt

__all__ = ["find_capacity_gains"]


def _margin(probe: CapacityProbe, other: CapacityProbe) -> tuple[str, float, th.Threshold]:
    """Return how much ``probe`` beats ``other``: by validation score, else by relative val loss."""
    if probe.val_score is not None and other.val_score is not None:
        return "val_score", probe.val_score - other.val_score, th.CAPACITY_SCORE_MARGIN
    if other.val_loss > 0:
        return (
            "val_loss",
            (other.val_loss - probe.val_loss) / other.val_loss,
            th.CAPACITY_LOSS_MARGIN,
        )
    return "val_loss", 0.0, th.CAPACITY_LOSS_MARGIN


def _beats(probe: CapacityProbe, other: CapacityProbe) -> bool:
    """Return whether ``probe`` beats ``other`` by a clear margin."""
    _, delta, limit = _margin(probe, other)
    return delta >= limit.value


def _probe_facts(probe: CapacityProbe, base: CapacityProbe) -> dict:
    """Return the numbers of a probe compared with the base model."""
    measure, delta, limit = _margin(probe, base)
    return {
        "probe": probe.spec,
        "base": base.spec,
        "probe_params": probe.n_params,
        "base_params": base.n_params,
        f"{measure}_improvement": delta,
        "probe_train_loss": probe.train_loss,
        "base_train_loss": base.train_loss,
        **limit.cite(),
    }


def _improvement_words(probe: CapacityProbe, base: CapacityProbe) -> str:
    """Return 'validation score 0.81 -> 0.9', or the loss equivalent."""
    if probe.val_score is not None and base.val_score is not None:
        return f"validation score {fmt(base.val_score)} -> {fmt(probe.val_score)}"
    return f"validation loss {fmt(base.val_loss)} -> {fmt(probe.val_loss)}"


def find_capacity_gains(evidence: Evidence) -> list[Finding]:
    """Report whether the wider or the deeper probe beats the base model (D2, D3).

    Parameters
    ----------
    evidence : Evidence
        Reads ``capacity`` (probes named ``base``, ``wider``, ``deeper``) and, for the
        advice, the unit and gradient signals of ``history``.

    Returns
    -------
    list of Finding
        ``more_units`` when ``wider`` beats ``base``; ``more_layers`` when ``deeper`` beats
        ``base`` and scores at least as well as ``wider``. Each is a ``warning``, or an
        ``info`` while something stops the net from learning at all (divergence, severely
        dead or saturated layers, vanishing gradients, tiny updates; and, for depth,
        vanishing gradients alone). ``[]`` without a ``base`` probe.

    Notes
    -----
    Clear margin: Δs ≥ 0.02, or ΔL ≥ 10% without scores (proposals). D2 asks for healthy
    optimisation before capacity advice: probes that barely train differ by noise. Dead or
    saturated units and vanishing gradients are named first in the advice (D3 a, b): width
    is wasted while units are dead, and depth while gradients vanish.

    Examples
    --------
    >>> from deepdx.diagnose.evidence import CapacityProbe
    >>> probes = [CapacityProbe("base", "mlp:8", 100, 0.9, 0.95, 0.6, 0.58, 5, 1.0),
    ...           CapacityProbe("wider", "mlp:64", 800, 0.3, 0.4, 0.9, 0.85, 5, 1.0),
    ...           CapacityProbe("deeper", "mlp:8-8", 170, 0.8, 0.9, 0.65, 0.59, 5, 1.0)]
    >>> ev = Evidence("classification", "accuracy", 10, 500, "adam", 1e-3, capacity=probes)
    >>> [(f.kind, f.severity) for f in find_capacity_gains(ev)]
    [('more_units', 'warning')]
    """
    probes = {p.name: p for p in evidence.capacity}
    base = probes.get("base")
    if base is None:
        return []
    wider, deeper = probes.get("wider"), probes.get("deeper")
    stuck = m.learning_blockers(evidence)  # D2: capacity advice needs healthy optimisation
    blockers = sorted(set(m.flow_blockers(evidence)) | set(stuck))
    first = ("First fix " + "; ".join(blockers) + ".",) if blockers else ()
    found = []
    if wider is not None and _beats(wider, base):
        severity: Severity = "info" if stuck else "warning"
        advice = first + (f"Use more units per layer ({wider.spec}).",)
        summary = f"More units help: {wider.spec} improves {_improvement_words(wider, base)}."
        facts = _probe_facts(wider, base) | {"blockers": blockers}
        found.append(Finding("more_units", severity, summary, facts, advice, "capacity"))
    if (
        deeper is not None
        and _beats(deeper, base)
        and (wider is None or _margin(deeper, wider)[1] >= 0)
    ):
        vanishing = m.vanishing(m.gradient_profile(evidence.history))
        severity = "info" if stuck or vanishing else "warning"
        advice = first + (
            f"Use more layers ({deeper.spec}), with residual connections and normalisation "
            "if the net gets deep.",
        )
        summary = f"More layers help: {deeper.spec} improves {_improvement_words(deeper, base)}."
        facts = _probe_facts(deeper, base) | {"blockers": blockers}
        found.append(Finding("more_layers", severity, summary, facts, advice, "capacity"))
    return found
