import json

import numpy as np
import pytest
import torch

from deepdx.data.dataset import from_arrays
from deepdx.diagnose import KINDS, diagnose


def blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 5)) + 6.0 * np.eye(3, 5)[y]).astype(np.float32)
    return from_arrays(X, y, name="blobs")


def test_diagnose_runs_every_check_and_saves_the_report(tmp_path):
    result = diagnose(blobs(), "mlp:16", budget=60, epochs=30)
    assert result.findings and {f.kind for f in result.findings} <= set(KINDS)
    ev = result.evidence
    assert ev.history is not None and ev.preflight is not None and ev.gradcheck is not None
    assert ev.learning_curve is not None and ev.capacity and ev.baselines
    assert not result.problems  # separable blobs, a sane net
    assert set(result.timings) >= {"baselines", "training run", "learning curve"}
    result.save(tmp_path)
    data = json.loads((tmp_path / "findings.json").read_text())
    assert [f["kind"] for f in data["findings"]] == [f.kind for f in result.findings]
    assert data["settings"]["model"] == "mlp:16"
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_diagnose_custom_module_reports_capacity_not_run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    before = [p.detach().clone() for p in model.parameters()]
    result = diagnose(blobs(), model, budget=60, epochs=3)
    assert "capacity_probes" in result.evidence.skipped
    assert "not_run" in result.kinds()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_diagnose_diverging_run_is_found_and_later_checks_skip():
    result = diagnose(blobs(), "mlp:16", budget=60, epochs=3, optimizer="sgd", lr=1e4)
    assert "divergence" in {f.kind for f in result.problems}
    assert result.evidence.divergence is not None
    assert "learning_curve" in result.evidence.skipped


def test_diagnose_regression_estimates_bias_and_variance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    data = from_arrays(X, X @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.normal(size=200))
    result = diagnose(data, "mlp:8", budget=60, epochs=3)
    assert result.evidence.metric == "r2"
    assert set(result.evidence.bias_variance) >= {"bias2", "variance", "expected_error"}
    assert result.evidence.bias_variance["variance"] >= 0


def test_diagnose_rejects_an_unknown_option():
    with pytest.raises(ValueError, match="Did you mean 'epochs'"):
        diagnose(blobs(), epoch=3)
