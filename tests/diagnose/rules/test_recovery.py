from deepdx.diagnose.rules.recovery import find_recovered_divergence
from tests.diagnose.rules import builders as b


def test_recovered_divergence_counts_skips_and_rollbacks():
    h = b.history()
    h.log_event("skip_step", epoch=1, step=7)
    h.log_event("rollback", epoch=2, step=12, new_lr=0.05)
    (f,) = find_recovered_divergence(b.evidence(history=h))
    assert (f.kind, f.severity) == ("divergence", "warning")
    assert (f.evidence["skipped_steps"], f.evidence["rollbacks"]) == (1, 1)
    assert f.evidence["first_step"] == 7 and f.evidence["final_lr_after_rollbacks"] == 0.05


def test_recovered_divergence_quiet_without_events():
    h = b.history()
    h.log_event("resume", epoch=2, step=10)
    assert find_recovered_divergence(b.evidence(history=h)) == []
    assert find_recovered_divergence(b.evidence(history=None)) == []
