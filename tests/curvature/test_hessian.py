import pytest
import torch
from torch.nn import functional as F

from deepdx.curvature import flatten, gauss_newton_matrix, hessian, hessian_operator, matrix_of
from deepdx.curvature.dense import _chunk_size, _FoldExpandedBmm
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


# ---------------------------------------------------------------------------- batched columns


def _per_column_hessian(problem):
    """The reference the batched path replaces: one Hessian-vector product per column."""
    return matrix_of(hessian_operator(problem.loss, problem.params), problem.theta)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 31, 100])
def test_hessian_in_chunks_matches_per_column_and_autograd(mlp, chunk_size):
    got = hessian(mlp.loss, mlp.params, chunk_size=chunk_size)
    torch.testing.assert_close(got, _per_column_hessian(mlp), rtol=0, atol=1e-10)
    torch.testing.assert_close(got, mlp.dense_hessian(), rtol=0, atol=1e-10)


def _softmax_regression(seed=0):
    """Multinomial logistic regression: X (40, 6) @ W.T (6, 4) + b, CE + ridge; P = 28."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=gen)
    W = (0.5 * torch.randn(4, 6, generator=gen, dtype=torch.float64)).requires_grad_(True)
    b = torch.randn(4, generator=gen, dtype=torch.float64).requires_grad_(True)

    def flat_loss(theta):
        logits = X @ theta[:24].view(4, 6).T + theta[24:]  # (40, 4)
        return F.cross_entropy(logits, y) + 0.05 * theta[:24].square().sum()

    return [W, b], flat_loss


@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_hessian_of_linear_layer_matches_autograd(chunk_size):
    # X @ W.T under vmap is the unbatched-times-batched product the bmm fold rewrites
    params, flat_loss = _softmax_regression()
    theta = flatten(params).detach()
    got = hessian(lambda: flat_loss(flatten(params)), params, chunk_size=chunk_size)
    expected = torch.autograd.functional.hessian(flat_loss, theta)  # (28, 28)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_hessian_has_zero_rows_for_unused_and_linear_parameters():
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    linear = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    unused = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    got = hessian(lambda: (w**3).sum() + 2 * linear.sum(), [w, linear, unused])
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[0, 0], expected[1, 1] = 6.0, 12.0  # diag(6 w)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("expanded", ["left", "right"])
def test_fold_expanded_bmm_equals_bmm(expanded):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    V = torch.randn(4, 3, 2, generator=gen, dtype=torch.float64)  # (k, n, p)
    U = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64)  # (k, p', m)
    A, B = (X.expand(4, 5, 3), V) if expanded == "left" else (U, X.expand(4, 5, 3))
    with _FoldExpandedBmm():
        got = torch.bmm(A, B)
    torch.testing.assert_close(got, torch.bmm(A.contiguous(), B.contiguous()), rtol=0, atol=1e-14)


def test_hessian_rejects_bad_chunk_size(mlp):
    with pytest.raises(InvalidParameterError, match=r"`chunk_size` must be an int >= 1; got 0"):
        hessian(mlp.loss, mlp.params, chunk_size=0)


def test_hessian_max_params_error_names_size_memory_and_fix(mlp):
    with pytest.raises(InvalidParameterError, match=r"P=31 \(\d+ MiB.*pass max_params=31"):
        hessian(mlp.loss, mlp.params, max_params=30)


def test_hessian_default_chunks_a_large_model_and_matches_one_column_at_a_time():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(6, 103, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=gen)
    W = (0.1 * torch.randn(10, 103, generator=gen, dtype=torch.float64)).requires_grad_(True)

    def loss():
        return F.cross_entropy(X @ W.T, y) + 0.5 * W.square().sum()

    assert _chunk_size(None, flatten([W]).detach()) > 1  # P = 1030: batched by default
    got = hessian(loss, [W])
    torch.testing.assert_close(got, hessian(loss, [W], chunk_size=1), rtol=0, atol=1e-10)


def test_default_chunk_size_fits_the_memory_budget():
    assert _chunk_size(None, torch.zeros(1000, dtype=torch.float64)) == 1  # small: per column
    assert _chunk_size(None, torch.zeros(7850, dtype=torch.float64)) == 267  # 2 k P 8 B <= 32 MiB
    assert _chunk_size(None, torch.zeros(7850, dtype=torch.float32)) == 534
    assert _chunk_size(5000, torch.zeros(7850, dtype=torch.float64)) == 5000
