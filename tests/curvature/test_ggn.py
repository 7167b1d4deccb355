import pytest
import torch
from torch.nn import functional as F

from deepdx.curvature import (
    damped,
    flatten,
    functional_ggn_vp,
    ggn_operator,
    ggn_vp,
    hvp,
    unflatten,
)
from deepdx.exceptions import InvalidParameterError
from tests.curvature.conftest import make_linear


def test_ggn_vp_reverse_matches_explicit_jt_hl_j(mlp):
    v = mlp.random_direction(1)
    got = ggn_vp(mlp.outputs, mlp.loss_on_outputs, mlp.params, unflatten(v, mlp.params))
    assert [tuple(t.shape) for t in got] == [tuple(p.shape) for p in mlp.params]
    torch.testing.assert_close(flatten(got), mlp.dense_ggn() @ v, rtol=0, atol=1e-10)


def test_functional_ggn_vp_forward_matches_explicit_jt_hl_j(mlp):
    v = mlp.random_direction(2)
    got = functional_ggn_vp(mlp.flat_outputs, mlp.loss_on_outputs, mlp.theta, v)
    torch.testing.assert_close(got, mlp.dense_ggn() @ v, rtol=0, atol=1e-10)


def test_ggn_vp_reverse_and_forward_paths_agree(mlp):
    v = mlp.random_direction(3)
    reverse = ggn_vp(mlp.outputs, mlp.loss_on_outputs, mlp.params, unflatten(v, mlp.params))
    forward = functional_ggn_vp(mlp.flat_outputs, mlp.loss_on_outputs, mlp.theta, v)
    torch.testing.assert_close(flatten(reverse), forward, rtol=0, atol=1e-12)


def test_ggn_operator_reuses_graph_for_several_vectors(mlp):
    G = mlp.dense_ggn()
    operator = ggn_operator(mlp.outputs, mlp.loss_on_outputs, mlp.params)
    for seed in range(3):
        v = mlp.random_direction(seed)
        got = operator(v)
        assert not got.requires_grad
        torch.testing.assert_close(got, G @ v, rtol=0, atol=1e-10)


def test_ggn_is_positive_semidefinite_for_convex_loss(mlp):
    eigenvalues = torch.linalg.eigvalsh(mlp.dense_ggn())
    assert eigenvalues.min() >= -1e-12 * eigenvalues.max()
    operator = ggn_operator(mlp.outputs, mlp.loss_on_outputs, mlp.params)
    for seed in range(5):
        v = mlp.random_direction(seed)
        assert torch.dot(v, operator(v)) >= 0


def test_ggn_vp_equals_hvp_for_linear_model_with_squared_loss():
    problem = make_linear()
    v = unflatten(problem.random_direction(0), problem.params)
    g = ggn_vp(problem.outputs, problem.loss_on_outputs, problem.params, v)
    h = hvp(problem.loss, problem.params, v)
    torch.testing.assert_close(flatten(g), flatten(h), rtol=0, atol=1e-12)


def test_ggn_vp_differs_from_hvp_for_nonlinear_net(mlp):
    v = unflatten(mlp.random_direction(0), mlp.params)
    g = flatten(ggn_vp(mlp.outputs, mlp.loss_on_outputs, mlp.params, v))
    h = flatten(hvp(mlp.loss, mlp.params, v))
    assert (g - h).norm() > 1e-3 * h.norm()


def test_ggn_vp_damping_adds_lambda_v(mlp):
    v = mlp.random_direction(4)
    parts = unflatten(v, mlp.params)
    got = ggn_vp(mlp.outputs, mlp.loss_on_outputs, mlp.params, parts, damping=0.3)
    torch.testing.assert_close(flatten(got), mlp.dense_ggn() @ v + 0.3 * v, rtol=0, atol=1e-10)
    forward = functional_ggn_vp(mlp.flat_outputs, mlp.loss_on_outputs, mlp.theta, v, damping=0.3)
    torch.testing.assert_close(forward, flatten(got), rtol=0, atol=1e-12)


def test_damped_shifts_operator_by_lambda(mlp):
    G = mlp.dense_ggn()
    operator = damped(ggn_operator(mlp.outputs, mlp.loss_on_outputs, mlp.params), 2.0)
    v = mlp.random_direction(5)
    torch.testing.assert_close(operator(v), (G + 2.0 * torch.eye(len(v))) @ v, atol=1e-10, rtol=0)


def test_ggn_vp_handles_outputs_of_any_shape():
    W = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    X = torch.arange(12.0, dtype=torch.float64).view(4, 3) / 10
    y = torch.tensor([0, 1, 1, 0])
    (got,) = ggn_vp(lambda: X @ W.T, lambda z: F.cross_entropy(z, y), [W], [torch.eye(2, 3)])
    assert got.shape == (2, 3)


def test_ggn_vp_rejects_negative_damping(mlp):
    v = [torch.ones_like(p) for p in mlp.params]
    with pytest.raises(InvalidParameterError, match="damping.*>= 0.*-1"):
        ggn_vp(mlp.outputs, mlp.loss_on_outputs, mlp.params, v, damping=-1.0)


def test_ggn_vp_rejects_outputs_without_history(mlp):
    v = [torch.ones_like(p) for p in mlp.params]
    with pytest.raises(InvalidParameterError, match="without autograd history"):
        ggn_vp(lambda: torch.zeros(8, 3), mlp.loss_on_outputs, mlp.params, v)


def test_ggn_vp_rejects_non_scalar_loss_on_outputs(mlp):
    v = [torch.ones_like(p) for p in mlp.params]
    with pytest.raises(InvalidParameterError, match=r"loss_on_outputs\(z\) must return a scalar"):
        ggn_vp(mlp.outputs, lambda z: z**2, mlp.params, v)


def test_ggn_operator_works_inside_no_grad_block(mlp):
    v = mlp.random_direction(7)
    with torch.no_grad():
        got = ggn_operator(mlp.outputs, mlp.loss_on_outputs, mlp.params)(v)
    torch.testing.assert_close(got, mlp.dense_ggn() @ v, rtol=0, atol=1e-10)
