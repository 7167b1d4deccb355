import pytest
import torch

from deepdx.curvature import gauss_newton_matrix, hessian, matrix_of
from deepdx.exceptions import InvalidParameterError
from tests.curvature.conftest import make_linear


def test_hessian_matches_autograd_functional_reference(mlp):
    got = hessian(mlp.loss, mlp.params)
    assert got.shape == (31, 31)
    torch.testing.assert_close(got, mlp.dense_hessian(), rtol=0, atol=1e-10)


def test_hessian_is_symmetric(mlp):
    got = hessian(mlp.loss, mlp.params)
    torch.testing.assert_close(got, got.T, rtol=0, atol=1e-12)


def test_gauss_newton_matrix_matches_explicit_jt_hl_j(mlp):
    got = gauss_newton_matrix(mlp.outputs, mlp.loss_on_outputs, mlp.params)
    torch.testing.assert_close(got, mlp.dense_ggn(), rtol=0, atol=1e-10)


def test_gauss_newton_matrix_equals_hessian_for_linear_squared_loss():
    problem = make_linear()
    G = gauss_newton_matrix(problem.outputs, problem.loss_on_outputs, problem.params)
    torch.testing.assert_close(G, hessian(problem.loss, problem.params), rtol=0, atol=1e-12)


def test_matrix_of_recovers_explicit_matrix():
    A = torch.arange(9.0, dtype=torch.float64).view(3, 3)
    torch.testing.assert_close(matrix_of(lambda v: A @ v, torch.zeros(3, dtype=torch.float64)), A)


def test_hessian_rejects_more_than_max_params(mlp):
    with pytest.raises(InvalidParameterError, match=r"max_params=10.*P=31.*hessian_operator"):
        hessian(mlp.loss, mlp.params, max_params=10)


def test_gauss_newton_matrix_rejects_more_than_max_params(mlp):
    with pytest.raises(InvalidParameterError, match=r"max_params=30.*Hessian-free"):
        gauss_newton_matrix(mlp.outputs, mlp.loss_on_outputs, mlp.params, max_params=30)


def test_hessian_rejects_non_integer_max_params(mlp):
    with pytest.raises(InvalidParameterError, match="max_params.*int >= 1"):
        hessian(mlp.loss, mlp.params, max_params=0)
