"""Tests of the linear CG solver behind Hessian-free: exactness, stopping rules, bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from deepdx._random import make_generator
from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.optim._cg import cg_solve, geometric_iterations
from tests.optim.problems import make_spd


def _phi(A, b, x):
    return float(0.5 * x @ A @ x - b @ x)


@pytest.mark.parametrize(("n", "cond"), [(5, 10.0), (10, 30.0), (12, 10.0)])
def test_cg_solve_matches_linalg_solve_within_n_iterations(n, cond):
    A, b = make_spd(n=n, cond=cond, seed=n)
    result = cg_solve(lambda v: A @ v, b, max_iter=10 * n, tol=0.0, rtol=1e-10)
    print(f"n={n} cond={cond:g}: {result.n_iter} iterations, reason {result.reason}")
    assert result.reason == "residual"
    assert result.n_iter <= n  # exact in n steps, up to rounding (N&W Thm. 5.1)
    torch.testing.assert_close(result.x, torch.linalg.solve(A, b), atol=1e-9, rtol=0)


def test_cg_solve_quad_values_are_phi_of_the_iterates():
    A, b = make_spd(n=8, cond=30.0, seed=3)
    x0 = torch.ones(8, dtype=torch.float64)
    result = cg_solve(lambda v: A @ v, b, x0, max_iter=6, tol=0.0, save_at=range(1, 7))
    assert len(result.quad_values) == result.n_iter + 1 == 7
    assert result.quad_values[0] == pytest.approx(_phi(A, b, x0), rel=1e-12)
    for i, x_i in result.iterates:
        assert result.quad_values[i] == pytest.approx(_phi(A, b, x_i), rel=1e-10)
    # CG minimises phi over growing Krylov spaces: phi never increases
    phi = result.quad_values
    assert all(phi[i + 1] <= phi[i] for i in range(len(phi) - 1))


def test_cg_solve_relative_progress_rule_stops_early_when_ill_conditioned():
    n, eps = 300, 5e-4
    A, _ = make_spd(n=n, cond=1e8, seed=0)
    x_true = torch.randn(n, generator=make_generator(1), dtype=torch.float64)
    b = A @ x_true  # (n,) most of phi's decrease lies along the large eigenvalues
    phi_star = _phi(A, b, x_true)
    result = cg_solve(lambda v: A @ v, b, max_iter=5 * n, tol=eps)
    phi, i = result.quad_values, result.n_iter
    gap = (phi[i] - phi_star) / abs(phi_star)
    print(f"ill-conditioned n={n}: stopped after {i} iterations, phi gap {gap:.1e}")
    assert result.reason == "progress"
    assert i < n
    assert gap < 1e-2  # stopped early, yet close to the optimum in the objective
    assert all(phi[j + 1] <= phi[j] + 1e-12 * abs(phi[j]) for j in range(i))

    def fires(j):  # Martens' rule written out independently
        k = max(10, math.floor(0.1 * j))
        return j > k and phi[j] < 0 and (phi[j] - phi[j - k]) / phi[j] < k * eps

    assert fires(i)
    assert not any(fires(j) for j in range(1, i))


def test_cg_solve_without_the_rule_runs_to_max_iter_on_the_same_system():
    A, b = make_spd(n=300, cond=1e8, seed=0)
    result = cg_solve(lambda v: A @ v, b, max_iter=120, tol=0.0)
    assert (result.reason, result.n_iter) == ("max_iter", 120)


def test_cg_solve_preconditioner_needs_fewer_iterations_on_badly_scaled_system():
    n = 60
    C, b = make_spd(n=n, cond=5.0, seed=4)
    s = torch.logspace(0.0, 3.0, n, dtype=torch.float64)  # (n,) scales over 3 decades
    A = s[:, None] * C * s[None, :]  # (n, n) badly scaled, well conditioned after Jacobi
    diagonal = torch.diagonal(A).clone()  # (n,)
    plain = cg_solve(lambda v: A @ v, b, max_iter=20 * n, tol=0.0, rtol=1e-10)
    jacobi = cg_solve(
        lambda v: A @ v,
        b,
        max_iter=20 * n,
        tol=0.0,
        rtol=1e-10,
        preconditioner=lambda r: r / diagonal,
    )
    print(f"badly scaled n={n}: {plain.n_iter} iterations plain, {jacobi.n_iter} with Jacobi")
    assert jacobi.n_iter < plain.n_iter / 2
    x_star = torch.linalg.solve(A, b)
    for result in (plain, jacobi):
        assert float((result.x - x_star).norm() / x_star.norm()) < 1e-6


def test_cg_solve_keeps_iterates_at_save_at_and_the_last_one():
    A, b = make_spd(n=10, cond=50.0, seed=5)
    result = cg_solve(lambda v: A @ v, b, max_iter=7, tol=0.0, save_at=[1, 2, 5])
    assert [i for i, _ in result.iterates] == [1, 2, 5, 7]
    for i, x_i in result.iterates:  # each saved x_i is what a run of i iterations returns
        reference = cg_solve(lambda v: A @ v, b, max_iter=i, tol=0.0).x
        torch.testing.assert_close(x_i, reference, atol=0, rtol=0)
    assert result.iterates[-1][1] is result.x


def test_cg_solve_warm_start_at_the_solution_takes_no_iteration():
    A, b = make_spd(n=6, cond=10.0, seed=6)
    x_star = torch.linalg.solve(A, b)
    result = cg_solve(lambda v: A @ v, b, x_star, max_iter=10, rtol=1e-10)
    assert (result.n_iter, result.reason) == (0, "residual")
    assert result.iterates == [(0, result.x)]
    torch.testing.assert_close(result.x, x_star, atol=0, rtol=0)


def test_cg_solve_stops_when_the_residual_product_underflows():
    # ‖r‖ > 0 but rᵀM⁻¹r underflows to 0 in float32: CG must stop, not divide by zero.
    b = torch.full((4,), 1e-10)
    shrink = 1e-30  # M⁻¹ = 1e-30 I, a huge preconditioner M
    assert float(b.norm()) > 0.0 and float(b.dot(shrink * b)) == 0.0
    result = cg_solve(
        lambda v: 2.0 * v, b, max_iter=10, tol=0.0, preconditioner=lambda r: shrink * r
    )
    assert (result.n_iter, result.reason) == (0, "residual")
    assert torch.equal(result.x, torch.zeros(4))


def test_cg_solve_stops_at_negative_curvature():
    A = torch.diag(torch.tensor([2.0, 1.0, -1.0], dtype=torch.float64))
    b = torch.ones(3, dtype=torch.float64)
    result = cg_solve(lambda v: A @ v, b, max_iter=10, tol=0.0)
    assert result.reason == "negative_curvature"
    assert result.n_iter < 3
    assert bool(torch.isfinite(result.x).all())


def test_cg_solve_raises_numerical_error_on_nan_product():
    b = torch.ones(3, dtype=torch.float64)
    with pytest.raises(NumericalError, match=r"iteration 0: the curvature p'Ap is nan"):
        cg_solve(lambda v: v * float("nan"), b, max_iter=5)


def test_cg_solve_rejects_bad_arguments():
    b = torch.ones(3)
    with pytest.raises(InvalidParameterError, match=r"`x0` must have the shape of b \(3,\)"):
        cg_solve(lambda v: v, b, torch.ones(4), max_iter=5)
    with pytest.raises(InvalidParameterError, match=r"`max_iter` .* got 0\..*`tol` .* got -1"):
        cg_solve(lambda v: v, b, max_iter=0, tol=-1.0)
    with pytest.raises(InvalidParameterError, match=r"`b` must be a flat vector"):
        cg_solve(lambda v: v, torch.ones(2, 2), max_iter=5)


def test_geometric_iterations_are_the_distinct_ceilings_of_powers():
    gen = make_generator(0)
    gamma = 1.0 + float(torch.rand((), generator=gen)) + 0.05
    expected = sorted({math.ceil(gamma**j) for j in range(200) if math.ceil(gamma**j) <= 250})
    assert geometric_iterations(250, gamma) == expected
    assert geometric_iterations(250)[:6] == [1, 2, 3, 4, 5, 7]
    with pytest.raises(InvalidParameterError, match=r"`gamma` must be a float > 1"):
        geometric_iterations(10, 1.0)
