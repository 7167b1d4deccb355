"""LBFGS against torch.optim.LBFGS, scipy's L-BFGS-B and the dense BFGS recursion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from deepdx.optim import LBFGS, two_loop
from tests.optim.problems import (
    ROSENBROCK_START,
    make_closure,
    make_spd,
    quadratic,
    rosenbrock,
    run_until_stalled,
)

TIGHT = {"tolerance_grad": 1e-12, "tolerance_change": 1e-15}

A6, B6 = make_spd(n=6, cond=50.0, seed=0)
PROBLEMS = {
    "rosenbrock": (rosenbrock, ROSENBROCK_START),
    "quadratic": (quadratic(A6, B6), [0.0] * 6),
}


def _solve(factory, objective, x0, **kwargs):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    optimizer = factory([x], **kwargs)
    run_until_stalled(optimizer, make_closure(optimizer, objective, [x]), 50)
    state = optimizer.state[x]
    return x.detach(), state["n_iter"], state["func_evals"]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_lbfgs_matches_torch_lbfgs_after_convergence(problem):
    objective, x0 = PROBLEMS[problem]
    kwargs = {"history_size": 10, "max_iter": 100, "line_search_fn": "strong_wolfe", **TIGHT}
    ours, n_ours, evals_ours = _solve(LBFGS, objective, x0, **kwargs)
    torchs, n_torch, evals_torch = _solve(torch.optim.LBFGS, objective, x0, **kwargs)
    print(
        f"{problem}: deepdx {n_ours} iterations / {evals_ours} evaluations, "
        f"torch {n_torch} / {evals_torch}"
    )
    torch.testing.assert_close(ours, torchs, atol=1e-8, rtol=0)


def test_lbfgs_fixed_step_matches_torch_lbfgs():
    A, b = make_spd(n=6, cond=50.0, seed=3)
    kwargs = {"lr": 0.02, "history_size": 4, "max_iter": 15, "line_search_fn": None}
    ours, _, _ = _solve(LBFGS, quadratic(A, b), [0.0] * 6, **kwargs)
    torchs, _, _ = _solve(torch.optim.LBFGS, quadratic(A, b), [0.0] * 6, **kwargs)
    torch.testing.assert_close(ours, torchs, rtol=1e-12, atol=1e-14)


def _logistic_problem():
    """L2-regularised logistic regression, sklearn's C=1 primal, on standardised breast cancer."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sign = 2.0 * y - 1.0  # labels in {-1, +1}

    def objective_np(theta):
        w, c = theta[:-1], theta[-1]
        margin = sign * (X @ w + c)
        value = np.logaddexp(0.0, -margin).sum() + 0.5 * w @ w
        weight = -sign * expit(-margin)  # d loss / d (Xw + c)
        return value, np.concatenate([X.T @ weight + w, [weight.sum()]])

    def objective_torch(theta):
        w, c = theta[:-1], theta[-1]
        margin = torch.as_tensor(sign) * (torch.as_tensor(X) @ w + c)
        return torch.nn.functional.softplus(-margin).sum() + 0.5 * w @ w

    return X.shape[1], objective_np, objective_torch


def test_lbfgs_matches_scipy_lbfgsb_on_logistic_regression():
    n_features, objective_np, objective_torch = _logistic_problem()
    reference = minimize(
        objective_np,
        np.zeros(n_features + 1),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000},
    )
    w = torch.zeros(n_features, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = LBFGS([w, c], max_iter=500, **TIGHT)
    run_until_stalled(optimizer, make_closure(optimizer, objective_torch, [w, c]), 20)
    ours = objective_torch(torch.cat([w, c]).detach()).item()
    state = optimizer.state[w]
    print(
        f"logistic: deepdx f={ours:.12g} ({state['n_iter']} iterations, "
        f"{state['func_evals']} evaluations); scipy f={reference.fun:.12g} ({reference.nit})"
    )
    assert ours == pytest.approx(reference.fun, rel=1e-6)


def _random_pairs(n, m, seed):
    """m pairs (s, y) with s'y > 0: y = B s for an SPD B."""
    B, _ = make_spd(n=n, cond=20.0, seed=seed)
    S = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return S, S @ B  # rows y_i = B s_i (B symmetric)


@pytest.mark.parametrize("use_scale", [False, True])
def test_two_loop_matches_dense_bfgs_recursion(use_scale):
    n, m, gamma = 5, 3, 0.7
    S, Y = _random_pairs(n, m, seed=4)
    rho = [1.0 / float(y @ s) for s, y in zip(S, Y, strict=True)]
    scale = torch.linspace(0.5, 1.0, n, dtype=torch.float64) if use_scale else None
    H = gamma * torch.diag(scale if use_scale else torch.ones(n, dtype=torch.float64))
    identity = torch.eye(n, dtype=torch.float64)
    for s, y, r in zip(S, Y, rho, strict=True):  # N&W eq. 7.19, oldest pair first
        V = identity - r * torch.outer(y, s)
        H = V.T @ H @ V + r * torch.outer(s, s)
    g = torch.randn(n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = two_loop(g, S, Y, rho=rho, gamma=gamma, scale=scale)
    torch.testing.assert_close(result, H @ g, rtol=1e-12, atol=1e-14)


def test_lbfgs_keeps_the_newest_history_size_pairs():
    A, b = make_spd(n=6, cond=50.0, seed=0)
    memories = []
    for history_size in (3, 10):
        x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        optimizer = LBFGS([x], history_size=history_size, max_iter=5, **TIGHT)
        optimizer.step(make_closure(optimizer, quadratic(A, b), [x]))
        memories.append(optimizer.state[x])
    short, long = memories
    # 5 iterations store the pairs of steps 1-4 (step 5's pair waits for the next call)
    assert long["S"].shape == (4, 6) and short["S"].shape == (3, 6)
    assert torch.equal(short["S"], long["S"][1:]) and torch.equal(short["Y"], long["Y"][1:])
    assert short["rho"] == long["rho"][1:]


def test_lbfgs_skips_pairs_with_negative_curvature():
    double_well = lambda z: (z**4 - z**2).sum()  # noqa: E731  concave for |z| < 1/sqrt(6)
    counts = []
    for start in (0.1, 2.0):
        x = torch.tensor([start], dtype=torch.float64, requires_grad=True)
        optimizer = LBFGS([x], lr=1e-3, line_search_fn=None, max_iter=3)
        optimizer.step(make_closure(optimizer, double_well, [x]))
        counts.append(optimizer.state[x]["S"].shape[0])
    assert counts == [0, 2]  # s'y < 0 where concave; the third step's pair waits for next call
