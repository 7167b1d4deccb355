"""Tests of Newton's method with Levenberg-Marquardt damping, against dense references."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch.nn import functional as F

from deepdx._random import make_generator
from deepdx.exceptions import InvalidParameterError
from deepdx.optim.newton import Newton
from tests.optim.problems import (
    ROSENBROCK_START,
    fit_least_squares,
    make_closure,
    make_spd,
    quadratic,
    rosenbrock,
)


def _newton(x0, objective, **kwargs):
    x = torch.as_tensor(x0, dtype=torch.float64).clone().requires_grad_(True)
    optimizer = Newton([x], **kwargs)
    return x, optimizer, make_closure(optimizer, objective, [x])


def _gradient(objective, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(x), x)
    return g


def test_newton_solves_spd_quadratic_in_one_step_without_damping():
    A, b = make_spd(n=8, cond=1e3, seed=0)
    x, optimizer, closure = _newton(torch.zeros(8), quadratic(A, b), damping=0.0)
    optimizer.step(closure)
    assert optimizer.state[x]["n_iter"] == 1
    torch.testing.assert_close(x.detach(), torch.linalg.solve(A, b), atol=1e-10, rtol=0)


@pytest.mark.parametrize("damping", [1e-1, 1e-3, 1e-6])
def test_newton_first_step_solves_the_damped_system(damping):
    # from x = 0, g = -b, so one step lands on (A + lambda I)^-1 b; lambda -> 0 gives x*
    A, b = make_spd(n=6, cond=50.0, seed=1)
    x, optimizer, closure = _newton(torch.zeros(6), quadratic(A, b), damping=damping)
    optimizer.step(closure)
    expected = torch.linalg.solve(A + damping * torch.eye(6, dtype=torch.float64), b)
    torch.testing.assert_close(x.detach(), expected, atol=1e-12, rtol=0)
    assert optimizer.state[x]["damping"] == pytest.approx(damping * 2 / 3)  # rho = 1 > 3/4


def test_newton_converges_quadratically_on_rosenbrock():
    x, optimizer, closure = _newton(
        ROSENBROCK_START, rosenbrock, damping=0.0, line_search="armijo", tolerance_change=0.0
    )
    norms = [float(_gradient(rosenbrock, x).norm())]
    while norms[-1] > 1e-9 and len(norms) < 60:
        optimizer.step(closure)
        norms.append(float(_gradient(rosenbrock, x).norm()))
    print(f"Newton (damping=0, armijo) on Rosenbrock: {len(norms) - 1} steps")
    for k, norm in enumerate(norms):
        print(f"  k={k:2d}  |g| = {norm:.3e}")
    torch.testing.assert_close(x.detach(), torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert len(norms) - 1 <= 30
    tail = [k for k in range(len(norms) - 1) if 1e-8 < norms[k] < 1e-1]
    ratios = [norms[k + 1] / norms[k] ** 2 for k in tail]
    print("  |g_k+1| / |g_k|^2 near the end:", [f"{r:.2g}" for r in ratios])
    assert len(tail) >= 2
    assert max(ratios) < 100.0  # quadratic: bounded ratio, while |g| falls by orders


def test_newton_step_matches_dense_autograd_on_logistic_regression_with_two_groups():
    gen = make_generator(0)
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = (X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).double()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, dtype=torch.float64, requires_grad=True)

    def loss_of(theta):
        return F.binary_cross_entropy_with_logits(X @ theta[:3] + theta[3], y)

    optimizer = Newton([{"params": [w]}, {"params": [c]}], damping=0.0)
    closure = make_closure(optimizer, loss_of, [w, c])
    theta0 = torch.zeros(4, dtype=torch.float64)
    H = torch.autograd.functional.hessian(loss_of, theta0)  # (4, 4)
    expected = theta0 - torch.linalg.solve(H, _gradient(loss_of, theta0))
    optimizer.step(closure)
    torch.testing.assert_close(torch.cat([w.detach(), c.detach()]), expected, atol=1e-12, rtol=0)


def test_newton_objective_sums_every_backward_call_of_the_closure():
    A, b = make_spd(n=5, cond=20.0, seed=2)
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    optimizer = Newton([x], damping=0.0)

    def closure():  # gradient accumulation: two halves of the objective, two backward calls
        optimizer.zero_grad()
        first = 0.5 * x @ A @ x
        first.backward()
        second = -b @ x
        second.backward()
        return first + second

    optimizer.step(closure)
    torch.testing.assert_close(x.detach(), torch.linalg.solve(A, b), atol=1e-10, rtol=0)


def test_newton_raises_damping_until_positive_definite_at_saddle():
    def saddle(z):
        return z[0] ** 2 - z[1] ** 2 + 0.25 * z[1] ** 4  # H = diag(2, -2) at the origin

    x, optimizer, closure = _newton([0.5, 0.1], saddle, damping=1e-4)
    f0 = float(saddle(x.detach()))
    optimizer.step(closure)
    state = optimizer.state[x]
    print(f"saddle: damping 1e-4 -> {state['damping']:.3g}, rho {state['rho']:.3g}")
    assert state["rho"] > 0.75  # so the lambda used was shrunk by 2/3 afterwards
    assert state["damping"] * 1.5 > 1.97  # H has eigenvalue -2 + 3 (0.1)^2: lambda > 1.97
    assert float(saddle(x.detach())) < f0
    assert abs(float(x.detach()[1])) > 0.1  # moved away from the saddle along negative curvature


def test_newton_rejects_a_step_that_raises_the_loss():
    x, optimizer, closure = _newton(ROSENBROCK_START, rosenbrock, damping=0.0)
    optimizer.step(closure)  # the pure Newton step from (-1.2, 1) is fine
    x1 = x.detach().clone()
    optimizer.step(closure)  # the next one overshoots to f ~ 1e3: rejected, x stays
    state = optimizer.state[x]
    assert torch.equal(x.detach(), x1)
    assert state["rho"] == float("-inf")
    assert state["damping"] > 0.0  # raised from 0 to the floor 1e-3 ||H||_F
    for _ in range(5):  # more damping shortens the step until one is accepted
        optimizer.step(closure)
        if not torch.equal(x.detach(), x1):
            break
    assert float(rosenbrock(x.detach())) < float(rosenbrock(x1))


def test_newton_rejects_more_parameters_than_max_params():
    message = (
        r"at most max_params=10 parameters; got n=12: the Hessian would need \d+ MiB .* "
        r"Pass max_params=12 to Newton .* or use HessianFree"
    )
    with pytest.raises(InvalidParameterError, match=message):
        Newton([torch.zeros(12, requires_grad=True)], max_params=10)
    optimizer = Newton([torch.zeros(6, requires_grad=True)], max_params=10)
    with pytest.raises(InvalidParameterError, match=r"got n=12: .* use HessianFree"):
        optimizer.add_param_group({"params": [torch.zeros(6, requires_grad=True)]})
    assert len(optimizer.param_groups) == 1


def test_newton_max_params_error_states_the_hessian_memory():
    n = 2000  # 2000² float64 entries = 30.5 MiB
    with pytest.raises(InvalidParameterError, match=r"got n=2000: the Hessian would need 31 MiB"):
        Newton([torch.zeros(n, dtype=torch.float64, requires_grad=True)], max_params=1999)


def _digits_problem(n_samples=300):
    """Standardized sklearn digits (n, 64), labels 0..9, as float64 tensors."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:n_samples], y[:n_samples]
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return torch.from_numpy(X), torch.from_numpy(y), X, y


def test_newton_reaches_sklearn_optimum_of_l2_logistic_regression():
    # f = mean CE + (lam/2) |W|^2 with lam = 1 / (C n) is sklearn's C sum CE + |W|^2 / 2
    # divided by C n (intercept not penalised); 10 x 64 + 10 = 650 parameters
    X, y, X_np, y_np = _digits_problem()
    C = 1.0
    lam = 1.0 / (C * X.shape[0])
    reference = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=100)
    reference.fit(X_np, y_np)
    W = torch.zeros(10, 64, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)

    def objective(theta):
        W_, b_ = theta[:640].view(10, 64), theta[640:]
        return F.cross_entropy(X @ W_.T + b_, y) + 0.5 * lam * W_.square().sum()

    f_star = float(
        objective(
            torch.cat(
                [
                    torch.from_numpy(reference.coef_).reshape(-1),
                    torch.from_numpy(reference.intercept_),
                ]
            )
        )
    )
    optimizer = Newton([W, b])
    closure = make_closure(optimizer, objective, [W, b])
    for _ in range(10):  # a few steps: quadratic convergence once the damping has shrunk
        optimizer.step(closure)
        f = float(objective(torch.cat([W.detach().reshape(-1), b.detach()])))
        if abs(f - f_star) / f_star <= 1e-8:
            break
    print(f"Newton {optimizer.state[W]['n_iter']} iterations: f = {f:.15f}, sklearn {f_star:.15f}")
    assert abs(f - f_star) / f_star <= 1e-8
    torch.testing.assert_close(W.detach(), torch.from_numpy(reference.coef_), atol=1e-4, rtol=0)


def test_newton_hessian_chunk_size_gives_the_same_steps():
    X, y, _, _ = _digits_problem(n_samples=100)
    finals = []
    for chunk in (1, 64):
        W = torch.zeros(10, 64, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
        optimizer = Newton([W, b], hessian_chunk_size=chunk)
        closure = make_closure(
            optimizer,
            lambda t: (
                F.cross_entropy(X @ t[:640].view(10, 64).T + t[640:], y)
                + 0.01 * t[:640].square().sum()
            ),
            [W, b],
        )
        for _ in range(3):
            optimizer.step(closure)
        finals.append(torch.cat([W.detach().reshape(-1), b.detach()]))
    torch.testing.assert_close(finals[1], finals[0], atol=1e-10, rtol=0)


def test_newton_rejects_invalid_hyperparameters_in_one_message():
    with pytest.raises(InvalidParameterError, match=r"`damping` .* got -1\.0\..*`max_iter`"):
        Newton([torch.zeros(2, requires_grad=True)], damping=-1.0, max_iter=0)


def test_newton_state_dict_round_trip_gives_the_same_next_iterate_bitwise():
    x, optimizer, closure = _newton(ROSENBROCK_START, rosenbrock)
    for _ in range(4):
        optimizer.step(closure)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    x_mid = x.detach().clone()
    optimizer.step(closure)
    expected = x.detach().clone()

    buffer.seek(0)
    y, resumed, resumed_closure = _newton(x_mid, rosenbrock)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.step(resumed_closure)
    assert torch.equal(y.detach(), expected)
    assert resumed.state[y]["damping"] == optimizer.state[x]["damping"]


def test_newton_is_a_drop_in_for_torch_lbfgs_in_a_training_loop():
    newton, solution = fit_least_squares(Newton, seed=1, steps=5)
    lbfgs, _ = fit_least_squares(torch.optim.LBFGS, seed=1, steps=5)
    torch.testing.assert_close(newton, solution, atol=1e-8, rtol=0)
    torch.testing.assert_close(lbfgs, solution, atol=1e-4, rtol=0)


@pytest.mark.gpu
def test_newton_step_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    finals = []
    for device in ("cpu", "cuda"):
        x = torch.tensor(ROSENBROCK_START, dtype=torch.float64, device=device, requires_grad=True)
        optimizer = Newton([x], line_search="armijo")
        closure = make_closure(optimizer, rosenbrock, [x])
        for _ in range(5):
            optimizer.step(closure)
        finals.append(x.detach().cpu())
    torch.testing.assert_close(finals[1], finals[0], atol=1e-10, rtol=0)
