import pytest
import torch

from deepdx.curvature import (
    flatten,
    functional_hvp,
    hessian_operator,
    hvp,
    hvp_flat,
    unflatten,
)
from deepdx.exceptions import InvalidParameterError
from tests.curvature.conftest import make_mlp


def test_hvp_matches_dense_hessian_times_vector(mlp):
    v = mlp.random_direction(1)
    want = mlp.dense_hessian() @ v
    got = hvp(mlp.loss, mlp.params, unflatten(v, mlp.params))
    assert [tuple(t.shape) for t in got] == [tuple(p.shape) for p in mlp.params]
    torch.testing.assert_close(flatten(got), want, rtol=0, atol=1e-10)


def test_hvp_flat_matches_dense_hessian_times_vector(mlp):
    v = mlp.random_direction(2)
    got = hvp_flat(mlp.loss, mlp.params, v)
    torch.testing.assert_close(got, mlp.dense_hessian() @ v, rtol=0, atol=1e-10)


def test_functional_hvp_matches_dense_hessian_times_vector(mlp):
    v = mlp.random_direction(3)
    got = functional_hvp(mlp.flat_loss, mlp.theta, v)
    torch.testing.assert_close(got, mlp.dense_hessian() @ v, rtol=0, atol=1e-10)


def test_hessian_operator_reuses_graph_for_several_vectors(mlp):
    H = mlp.dense_hessian()
    operator = hessian_operator(mlp.loss, mlp.params)
    for seed in range(3):
        v = mlp.random_direction(seed)
        torch.testing.assert_close(operator(v), H @ v, rtol=0, atol=1e-10)


def test_hvp_result_carries_no_graph(mlp):
    got = hvp_flat(mlp.loss, mlp.params, mlp.random_direction(0))
    assert not got.requires_grad


def test_hvp_zero_block_for_unused_parameter():
    problem = make_mlp("ce")
    unused = torch.ones(5, dtype=torch.float64, requires_grad=True)
    params = [*problem.params, unused]
    v = [torch.ones_like(p) for p in params]
    got = hvp(problem.loss, params, v)
    torch.testing.assert_close(got[-1], torch.zeros(5, dtype=torch.float64))
    want = hvp(problem.loss, problem.params, v[:-1])
    torch.testing.assert_close(flatten(got[:-1]), flatten(want), rtol=0, atol=0)


def test_hvp_zero_for_loss_linear_in_params():
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    got = hvp_flat(lambda: 3 * w.sum(), [w], torch.ones(2, dtype=torch.float64))
    assert got.tolist() == [0.0, 0.0]


def test_hvp_keeps_float32_dtype():
    problem = make_mlp("ce", dtype=torch.float32)
    v = torch.ones(problem.theta.numel(), dtype=torch.float32)
    got = hvp_flat(problem.loss, problem.params, v)
    assert got.dtype == torch.float32
    H = problem.dense_hessian()
    torch.testing.assert_close(got, H @ v, rtol=1e-4, atol=1e-5)


def test_hvp_rejects_mismatched_direction(mlp):
    with pytest.raises(InvalidParameterError, match="one tensor per parameter"):
        hvp(mlp.loss, mlp.params, [torch.ones(3)])


def test_hvp_flat_rejects_wrong_length(mlp):
    with pytest.raises(InvalidParameterError, match=r"shape \(31,\)"):
        hvp_flat(mlp.loss, mlp.params, torch.ones(30, dtype=torch.float64))


def test_hvp_rejects_non_scalar_loss(mlp):
    with pytest.raises(InvalidParameterError, match="scalar tensor.*mean"):
        hvp(mlp.outputs, mlp.params, [torch.ones_like(p) for p in mlp.params])


def test_hvp_rejects_parameter_without_grad():
    w = torch.ones(2)
    with pytest.raises(InvalidParameterError, match=r"params\[0\].*requires_grad=True"):
        hvp(lambda: (w**2).sum(), [w], [torch.ones(2)])


def test_hvp_works_inside_no_grad_block(mlp):
    v = mlp.random_direction(6)
    with torch.no_grad():
        got = hvp_flat(mlp.loss, mlp.params, v)
    torch.testing.assert_close(got, mlp.dense_hessian() @ v, rtol=0, atol=1e-10)
