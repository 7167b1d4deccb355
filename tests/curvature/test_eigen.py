import pytest
import torch

from deepdx.curvature import (
    condition_estimate,
    ggn_operator,
    hessian_operator,
    hessian_top_eigenvalue,
    lanczos,
    power_iteration,
    ritz_values,
    top_eigenvalues,
)
from deepdx.exceptions import ConvergenceWarning, InvalidParameterError, NumericalError
from tests.curvature.conftest import make_mlp, make_symmetric


def like(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64)


@pytest.fixture
def spread():
    """Symmetric 40 x 40 with eigenvalues from -3 to 10, all distinct."""
    eigenvalues = torch.cat([torch.linspace(-3.0, 6.0, 37), torch.tensor([7.5, 9.0, 10.0])])
    return make_symmetric(eigenvalues.double(), seed=1)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got - want).abs() / want.abs()).max())


# --- symmetric random matrices -----------------------------------------------------------


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_top3_match_eigvalsh_on_symmetric_matrix(spread, method):
    want = torch.linalg.eigvalsh(spread).flip(0)[:3]
    got = top_eigenvalues(lambda v: spread @ v, like(40), 3, method=method, tol=1e-10)
    assert relative_error(got, want) <= 1e-8


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_smallest_match_eigvalsh(spread, method):
    want = torch.linalg.eigvalsh(spread)[:2]
    got = top_eigenvalues(
        lambda v: spread @ v,
        like(40),
        2,
        method=method,
        which="smallest",
        tol=1e-10,
        max_iter=5000,
    )
    assert relative_error(got, want) <= 1e-6


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_magnitude_finds_negative_dominant(method):
    A = make_symmetric(torch.tensor([-8.0, 5.0, 1.0, 0.5, -2.0], dtype=torch.float64))
    got = top_eigenvalues(lambda v: A @ v, like(5), 2, method=method, which="magnitude")
    assert relative_error(got, torch.tensor([-8.0, 5.0], dtype=torch.float64)) <= 1e-6


def test_power_largest_shifts_past_dominant_negative_eigenvalue():
    A = make_symmetric(torch.tensor([-8.0, 5.0, 1.0, 0.5, -2.0], dtype=torch.float64))
    got = top_eigenvalues(lambda v: A @ v, like(5), method="power", tol=1e-10)
    assert abs(got.item() - 5.0) <= 1e-8


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_returns_orthonormal_eigenvectors(spread, method):
    values, vectors = top_eigenvalues(
        lambda v: spread @ v, like(40), 3, method=method, tol=1e-10, return_eigenvectors=True
    )
    assert vectors.shape == (40, 3)
    torch.testing.assert_close(spread @ vectors, vectors * values, rtol=0, atol=1e-7)
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(3, dtype=torch.float64))


def test_lanczos_finds_repeated_eigenvalue_copies():
    eigenvalues = torch.tensor([5.0, 5.0, 5.0] + [2.0, 1.0] * 5, dtype=torch.float64)
    A = make_symmetric(eigenvalues, seed=2)
    values, _ = lanczos(lambda v: A @ v, like(13), 4)
    torch.testing.assert_close(values, torch.tensor([5.0, 5.0, 5.0, 2.0], dtype=torch.float64))


def test_lanczos_needs_fewer_products_than_power_when_eigenvalues_cluster():
    eigenvalues = torch.cat([torch.linspace(0.0, 0.98, 199), torch.tensor([1.0])]).double()
    A = make_symmetric(eigenvalues, seed=3)
    counts = {"lanczos": 0, "power": 0}

    def counting(method):
        def matvec(v):
            counts[method] += 1
            return A @ v

        return matvec

    for method in counts:
        got = top_eigenvalues(counting(method), like(200), method=method, max_iter=5000)
        assert abs(got.item() - 1.0) <= 1e-6
    assert counts["lanczos"] < counts["power"]


def test_lanczos_keeps_basis_orthonormal_on_graded_spectrum():
    # eigenvalues spread over 8 decades: without reorthogonalisation the converged top
    # values come back as spurious copies and the small ones are missed
    eigenvalues = torch.logspace(-8, 0, 60, dtype=torch.float64)
    A = make_symmetric(eigenvalues, seed=7)
    got = ritz_values(lambda v: A @ v, like(60), max_iter=60)
    torch.testing.assert_close(got, eigenvalues, rtol=0, atol=1e-12)
    values, vectors = lanczos(lambda v: A @ v, like(60), 6, tol=1e-12)
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(values, eigenvalues.flip(0)[:6], rtol=1e-10, atol=0)


def test_lanczos_never_writes_into_operator_output():
    # the identity returns its input, a row of the Lanczos basis, as A q
    values, vectors = lanczos(lambda v: v, like(12), 3)
    assert values.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(3, dtype=torch.float64))


def test_lanczos_exact_for_zero_operator():
    values = top_eigenvalues(lambda v: 0 * v, like(30), 2)
    assert values.tolist() == [0.0, 0.0]


def test_ritz_values_equal_eigenvalues_with_full_krylov_space(spread):
    got = ritz_values(lambda v: spread @ v, like(40), max_iter=40)
    torch.testing.assert_close(got, torch.linalg.eigvalsh(spread), rtol=0, atol=1e-10)


def test_top_eigenvalues_is_reproducible_and_leaves_global_rng_alone(spread):
    state = torch.random.get_rng_state()
    runs = [
        top_eigenvalues(
            lambda v: spread @ v,
            like(40),
            method="power",
            max_iter=200,
            tol=1e-3,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert runs[0].item() == runs[1].item()
    assert torch.equal(state, torch.random.get_rng_state())


def test_top_eigenvalues_keeps_dtype_of_example_vector(spread):
    got = top_eigenvalues(lambda v: spread.float() @ v, torch.zeros(40), tol=1e-4)
    assert got.dtype == torch.float32
    assert abs(got.item() - 10.0) <= 1e-4 * 10.0


# --- Hessians and Gauss-Newton matrices of a tiny MLP -------------------------------------


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_hessian_top_eigenvalue_matches_eigvalsh(mlp, method):
    want = torch.linalg.eigvalsh(mlp.dense_hessian()).max().item()
    got = hessian_top_eigenvalue(mlp.loss, mlp.params, method=method, max_iter=5000)
    assert abs(got - want) <= 1e-6 * abs(want)


def test_top_eigenvalues_lanczos_top3_of_hessian_match_eigvalsh(mlp):
    want = torch.linalg.eigvalsh(mlp.dense_hessian()).flip(0)[:3]
    got = top_eigenvalues(hessian_operator(mlp.loss, mlp.params), mlp.theta, 3)
    assert relative_error(got, want) <= 1e-6


def test_top_eigenvalues_power_dominant_of_hessian_matches_eigvalsh():
    mlp = make_mlp("squared")
    eigenvalues = torch.linalg.eigvalsh(mlp.dense_hessian())
    want = eigenvalues[eigenvalues.abs().argmax()]
    operator = hessian_operator(mlp.loss, mlp.params)
    got = top_eigenvalues(operator, mlp.theta, method="power", which="magnitude", max_iter=5000)
    assert abs(got.item() - want.item()) <= 1e-6 * abs(want.item())


def test_condition_estimate_of_gauss_newton_matches_positive_eigenvalues(mlp):
    eigenvalues = torch.linalg.eigvalsh(mlp.dense_ggn())
    positive = eigenvalues[eigenvalues > 1e-9 * eigenvalues.max()]
    want = (positive.max() / positive.min()).item()
    operator = ggn_operator(mlp.outputs, mlp.loss_on_outputs, mlp.params)
    got = condition_estimate(operator, mlp.theta, max_iter=31)
    assert abs(got - want) <= 1e-6 * want


# --- condition estimate ------------------------------------------------------------------


def test_condition_estimate_exact_for_spd_matrix_with_full_krylov_space():
    A = make_symmetric(torch.logspace(-2, 1, 20, dtype=torch.float64), seed=4)
    got = condition_estimate(lambda v: A @ v, like(20), max_iter=20)
    assert abs(got - 1000.0) <= 1e-6 * 1000.0


def test_condition_estimate_is_lower_bound_with_short_run():
    A = make_symmetric(torch.logspace(-3, 1, 60, dtype=torch.float64), seed=5)
    got = condition_estimate(lambda v: A @ v, like(60), max_iter=10)
    assert 1.0 <= got <= 1e4 * (1 + 1e-9)


def test_condition_estimate_rejects_negative_definite_operator():
    A = -torch.eye(4, dtype=torch.float64)
    with pytest.raises(NumericalError, match="no positive curvature"):
        condition_estimate(lambda v: A @ v, like(4))


# --- warnings and errors -----------------------------------------------------------------


def test_power_iteration_warns_when_plus_minus_eigenvalues_tie():
    A = torch.diag(torch.tensor([2.0, -2.0, 1.0], dtype=torch.float64))
    with pytest.warns(ConvergenceWarning, match="power iteration did not converge.*lanczos"):
        power_iteration(lambda v: A @ v, like(3), max_iter=50)


def test_lanczos_warns_when_max_iter_too_small():
    A = make_symmetric(torch.linspace(0.0, 1.0, 50, dtype=torch.float64), seed=6)
    with pytest.warns(ConvergenceWarning, match="Lanczos did not converge.*max_iter=3"):
        lanczos(lambda v: A @ v, like(50), max_iter=3)


def test_top_eigenvalues_suggests_close_method_name():
    with pytest.raises(InvalidParameterError, match="Did you mean 'lanczos'"):
        top_eigenvalues(lambda v: v, 3, method="lanczoz")


def test_top_eigenvalues_rejects_k_larger_than_size():
    with pytest.raises(InvalidParameterError, match="at most the operator size 3; got k=4"):
        top_eigenvalues(lambda v: v, 3, 4)


def test_lanczos_rejects_max_iter_below_k():
    with pytest.raises(InvalidParameterError, match="max_iter.*at least k=3"):
        lanczos(lambda v: v, 10, 3, max_iter=2)


def test_top_eigenvalues_rejects_bad_size():
    with pytest.raises(InvalidParameterError, match="like.*int >= 1"):
        top_eigenvalues(lambda v: v, 0)
