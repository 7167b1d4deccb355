"""Rules on hidden units: dead and saturated units (DIAGNOSTICS.md B10, B11).

The monitors measure, on a probe batch, the fraction of each activation layer's units that
are dead (a ReLU-family unit active on < 1% of the samples) or saturated (a sigmoid / tanh
unit in its flat tails on nearly every sample), before training and every epoch. A layer is
flagged by its peak fraction (saturation at initialisation counts, even if training later
recovers); the severity reads the last measurement, the state the trained net ended in.

Symbols
-------
f_l       fraction of layer l's units that are dead (or saturated) at the last measurement
f_l^max   its largest value over the run
"""

from __future__ import annotations

from dataclasses import dataclass

from deepdx.diagnose import signals
from deepdx.diagnose import thresholds as th
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding, Severity
from deepdx.diagnose.monitors import SOFT_SATURATED_FRACTION
from deepdx.diagnose.rules import _measures as m

__all__ = ["find_dead_units", "find_saturated_units"]


@dataclass(frozen=True)
class _UnitRule:
    """What differs between the dead-unit and the saturated-unit rule."""

    kind: str
    word: str
    meaning: str
    layer_name: str  # names in `thresholds`, read at call time so overrides apply
    severe_name: str
    advice: tuple[str, ...]

    @property
    def layer(self) -> th.Threshold:
        """Return the layer threshold."""
        return getattr(th, self.layer_name)

    @property
    def severe(self) -> th.Threshold:
        """Return the severe threshold."""
        return getattr(th, self.severe_name)


_DEAD = _UnitRule(
    "dead_units",
    "dead",
    "inactive on almost every probe sample",
    "DEAD_LAYER_FRACTION",
    "DEAD_SEVERE_FRACTION",
    (
        "Lower the learning rate: one large step can push ReLU units dead for good.",
        "Initialise biases at zero (or slightly positive) with He initialisation, or use "
        "LeakyReLU / ELU / GELU, which keep a gradient for negative inputs.",
        "Add batch or layer normalisation before the activation.",
    ),
)
_SATURATED = _UnitRule(
    "saturated_units",
    "saturated",
    "stuck in the flat tails of their activation",
    "SATURATED_LAYER_FRACTION",
    "SATURATED_SEVERE_FRACTION",
    (
        "Initialise the weights smaller (Glorot / Xavier for sigmoid and tanh) and "
        "standardise the inputs, so pre-activations start near zero.",
        "Use ReLU-family activations, or normalise before the activation.",
        "Lower the learning rate if the units saturated during training.",
    ),
)


def _unit_finding(
    evidence: Evidence, prefix: str, rule: _UnitRule, *, soft: bool = False
) -> list[Finding]:
    """Return one finding for the layers whose fraction ever exceeded the rule's threshold."""
    peak = m.unit_fractions(evidence.history, prefix, peak=True)
    flagged = {layer: f for layer, f in peak.items() if f > rule.layer.value}
    if not flagged:
        return []
    last = m.unit_fractions(evidence.history, prefix)
    worst = max(flagged, key=flagged.__getitem__)
    everywhere = len(last) >= 2 and min(last.values()) > rule.layer.value
    severe = max(last.values()) > rule.severe.value or everywhere
    failed = m.fit_failed(evidence) is True
    severity: Severity = "problem" if severe and failed and not soft else "warning"
    facts = {
        "final_fractions": last,
        "peak_fractions": peak,
        "flagged_layers": sorted(flagged),
        "worst_layer": worst,
        "training_failed": failed,
        "soft_definition": soft,
        **rule.layer.cite(),
        **rule.severe.cite("severe_threshold"),
    }
    summary = (
        f"Up to {flagged[worst]:.0%} of the units of layer {worst} were {rule.word} "
        f"({rule.meaning}), {last[worst]:.0%} at the end; {len(flagged)} of {len(peak)} layers "
        f"went above {rule.layer.value:.0%}" + ("; the net failed to learn." if failed else ".")
    )
    return [Finding(rule.kind, severity, summary, facts, rule.advice, "activations")]


def find_dead_units(evidence: Evidence) -> list[Finding]:
    """Report layers where most ReLU-family units are dead (B10).

    Parameters
    ----------
    evidence : Evidence
        Reads ``dead_fraction/{layer}`` of ``history`` and, for the severity, the scores.

    Returns
    -------
    list of Finding
        One ``dead_units`` finding when some layer has f_l^max > 0.5 (SageMaker DeadRelu):
        ``problem`` when some f_l > 0.9 or every layer (of two or more) has f_l > 0.5, and
        the net failed to learn; else ``warning``.

    Notes
    -----
    A dead unit passes no gradient to the weights before it, so a layer of dead units cuts
    the network in two; the severity asks for that consequence (no learning) before calling
    it a problem.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> h.log_step("dead_fraction/net.act1", 0.2, step=100)
    >>> h.log_step("dead_fraction/net.act2", 0.75, step=100)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "adam", 1e-3, history=h)
    >>> [(f.kind, f.severity, f.evidence["worst_layer"]) for f in find_dead_units(ev)]
    [('dead_units', 'warning', 'net.act2')]
    """
    return _unit_finding(evidence, signals.DEAD_FRACTION, _DEAD)


def find_saturated_units(evidence: Evidence) -> list[Finding]:
    """Report layers where most sigmoid / tanh units are saturated (B11).

    Parameters
    ----------
    evidence : Evidence
        Reads ``saturated_fraction/{layer}`` (and ``soft_saturated_fraction/{layer}``) of
        ``history`` and, for the severity, the scores.

    Returns
    -------
    list of Finding
        One ``saturated_units`` finding when some layer has f_l^max > 0.5 (SageMaker
        SaturatedActivation): ``problem`` when some f_l > 0.9 or every layer (of two or
        more) has f_l > 0.5, and the net failed to learn; else ``warning``. Without a
        flagged layer by the strict definition, the soft one can still give a ``warning``.

    Notes
    -----
    The strict definition (SageMaker) takes inputs beyond ±9.5 for tanh and outside
    [−23, 17] for sigmoid, where the derivative is below 1e-7; the soft one, when the
    monitors log it, a looser band where the derivative is merely tiny.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> h.log_step("saturated_fraction/net.act1", 0.95, step=100)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.1, history=h,
    ...               net_train_score=0.5)
    >>> [(f.kind, f.severity) for f in find_saturated_units(ev)]
    [('saturated_units', 'problem')]
    """
    found = _unit_finding(evidence, signals.SATURATED_FRACTION, _SATURATED)
    return found or _unit_finding(evidence, SOFT_SATURATED_FRACTION, _SATURATED, soft=True)
