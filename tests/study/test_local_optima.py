import json

import numpy as np
import pytest
import torch

from deepdx.exceptions import InvalidParameterError
from deepdx.nets import MLP
from deepdx.study import local_optima
from deepdx.study.local_optima import (
    _aligned,
    _matched_distance,
    _relative_distance,
    _unit_vectors,
)


@pytest.fixture(scope="module")
def study():
    return local_optima(n_seeds=3, hidden=(6,), n_samples=80, max_iter=600, l2=1e-2)


def test_logistic_regression_has_one_optimum_and_the_mlp_several(study):
    logreg, mlp = study.logreg, study.mlp
    assert logreg.relative_spread < 1e-6
    assert logreg.function_distance.max() < 1e-5
    assert mlp.relative_spread > 100 * max(logreg.relative_spread, 1e-12)
    assert mlp.function_distance.max() > 100 * logreg.function_distance.max()
    assert logreg.n_distinct == 1 and mlp.n_distinct >= 2


def test_runs_reach_the_gradient_tolerance_for_logreg(study):
    assert max(study.logreg.grad_norm) <= 1e-8


def test_distance_matrices_are_symmetric_with_zero_diagonal(study):
    for run in study.runs():
        for matrix in (run.function_distance, run.disagreement, run.weight_distance):
            np.testing.assert_array_equal(matrix, matrix.T)
            np.testing.assert_array_equal(np.diag(matrix), 0.0)


def test_aligned_distance_never_exceeds_the_raw_one(study):
    aligned, raw = study.mlp.aligned_distance, study.mlp.weight_distance
    assert aligned is not None and np.all(aligned <= raw + 1e-12)


def permuted_copy(net, order, signs):
    """The same function: hidden units reordered, tanh units sign-flipped."""
    copy = MLP(**net.get_params()).double()
    src, dst = net.layers, copy.layers
    with torch.no_grad():
        dst.linear1.weight.copy_(signs[:, None] * src.linear1.weight[order])
        dst.linear1.bias.copy_(signs * src.linear1.bias[order])
        dst.output.weight.copy_(src.output.weight[:, order] * signs)
        dst.output.bias.copy_(src.output.bias)
    return copy


def test_alignment_recovers_a_permuted_and_sign_flipped_net():
    torch.manual_seed(0)
    net = MLP((5,), 3, hidden=(7,), activation="tanh").double()
    order = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    signs = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    twin = permuted_copy(net, order, signs)
    x = torch.randn(20, 5, dtype=torch.float64)
    torch.testing.assert_close(net(x), twin(x))  # same function
    flat = [torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in (net, twin)]
    assert _relative_distance(*flat) > 0.5
    aligned = _matched_distance(_unit_vectors(net), _unit_vectors(twin), flip=True)
    assert aligned == pytest.approx(0.0, abs=1e-12)
    assert _aligned([net, twin], "tanh")[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_local_optima_save_writes_files(study, tmp_path):
    out = study.save(tmp_path / "lo")
    data = json.loads((out / "local_optima.json").read_text())
    assert data["logreg"]["summary"]["n_distinct"] == 1
    assert len(data["mlp"]["final_loss"]) == 3
    for name in ("local_optima.png", "distances.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "Logistic regression (convex) ended at 1 distinct solution(s)" in summary
    assert study.summary_table().splitlines()[1].startswith("logreg")


def test_local_optima_rejects_one_seed():
    with pytest.raises(InvalidParameterError, match="`n_seeds` of local_optima"):
        local_optima(n_seeds=1)
