"""Rule for runs that survived non-finite steps through ``nan_policy`` (B1).

A run trained with ``nan_policy="skip_step"`` or ``"rollback"`` finishes even when some
minibatches give a NaN or infinite loss; the history records each such step as a
``skip_step`` or ``rollback`` event. Finishing is not the same as being healthy: the
events are the evidence of an instability the user should know about.
"""

from __future__ import annotations

from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding

__all__ = ["find_recovered_divergence"]

_SOURCE = "B1: any non-finite loss or gradient is a fault (Lightning check_finite, SageMaker)"


def find_recovered_divergence(evidence: Evidence) -> list[Finding]:
    """Report non-finite steps that ``nan_policy`` skipped or rolled back.

    Parameters
    ----------
    evidence : Evidence
        Reads the ``skip_step`` and ``rollback`` events of ``history``.

    Returns
    -------
    list of Finding
        One ``divergence`` warning naming how many steps were skipped and how many
        rollbacks lowered the learning rate, with the first affected step; ``[]`` when the
        run had none.

    Examples
    --------
    >>> from deepdx.train.history import History
    >>> h = History()
    >>> h.log_event("rollback", epoch=3, step=41, new_lr=0.05)
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.1, history=h)
    >>> [(f.kind, f.severity) for f in find_recovered_divergence(ev)]
    [('divergence', 'warning')]
    """
    if evidence.history is None:
        return []
    events = [e for e in evidence.history.events if e["kind"] in ("skip_step", "rollback")]
    if not events:
        return []
    skipped = sum(e["kind"] == "skip_step" for e in events)
    rollbacks = [e for e in events if e["kind"] == "rollback"]
    first = min(int(e["step"]) for e in events)
    summary = (
        f"The loss became non-finite during training: {skipped} step(s) skipped and "
        f"{len(rollbacks)} rollback(s), first at step {first}; the run finished only "
        "because nan_policy recovered."
    )
    facts = {
        "skipped_steps": skipped,
        "rollbacks": len(rollbacks),
        "first_step": first,
        "final_lr_after_rollbacks": rollbacks[-1]["new_lr"] if rollbacks else None,
        "threshold": 0,
        "threshold_source": _SOURCE,
    }
    advice = (
        "Lower the learning rate (rollbacks already halved it; start from the final rate).",
        "Clip gradients (clip_grad_norm) if the failures follow gradient spikes.",
        "Look for inputs that overflow (huge values, log of zero) in the failing batches; "
        "detect_anomaly=True names the first operation that produced a NaN.",
    )
    return [Finding("divergence", "warning", summary, facts, advice, "loss")]
