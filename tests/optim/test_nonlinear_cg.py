"""NonlinearCG: finite termination with an exact line search, and its restart rules."""

from __future__ import annotations

import pytest
import torch

from deepdx.optim import GradientDescent, NonlinearCG
from tests.optim.problems import ROSENBROCK_START, make_closure, make_spd, quadratic, rosenbrock


def _exact_line_search(A):
    """The exact step on f(x) = x'Ax/2 - b'x: t = -g'd / d'Ad, one evaluation."""

    def search(obj_fn, x, t, d, *, f, g, gtd):
        t_exact = float(-gtd / (d @ A @ d))
        f_new, g_new = obj_fn(x, t_exact, d)
        return f_new, g_new, t_exact, 1

    return search


@pytest.mark.parametrize("beta", ["pr+", "fr", "hs"])
def test_nonlinear_cg_exact_line_search_terminates_in_n_iterations(beta):
    n = 6
    A, b = make_spd(n=n, cond=50.0, seed=0)
    x_star = torch.linalg.solve(A, b)
    x = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    optimizer = NonlinearCG([x], beta=beta, line_search=_exact_line_search(A), max_iter=1)
    closure = make_closure(optimizer, quadratic(A, b), [x])
    errors = []
    for _ in range(n):
        optimizer.step(closure)
        errors.append((x.detach() - x_star).norm().item() / x_star.norm().item())
    print(f"{beta}: relative errors per iteration", " ".join(f"{e:.1e}" for e in errors))
    assert errors[n - 2] > 1e-8  # not done one iteration early
    assert errors[n - 1] < 1e-10  # done after n, up to rounding
    assert optimizer.state[x]["n_restarts"] == 1  # Powell's test never fired


def test_nonlinear_cg_restart_every_iteration_is_steepest_descent():
    runs = []
    for make in (
        lambda p: NonlinearCG(p, restart=1, max_iter=15),
        lambda p: GradientDescent(p, line_search="strong_wolfe", c2=0.1, max_iter=15),
    ):
        x = torch.tensor(ROSENBROCK_START, dtype=torch.float64, requires_grad=True)
        optimizer = make([x])
        optimizer.step(make_closure(optimizer, rosenbrock, [x]))
        runs.append(x.detach())
    assert torch.equal(runs[0], runs[1])


def test_nonlinear_cg_restarts_when_powell_test_fires():
    x = torch.tensor(ROSENBROCK_START, dtype=torch.float64, requires_grad=True)
    counts = []
    for nu in (None, 0.1):
        x = torch.tensor(ROSENBROCK_START, dtype=torch.float64, requires_grad=True)
        optimizer = NonlinearCG([x], restart=10_000, restart_orthogonality=nu, max_iter=30)
        optimizer.step(make_closure(optimizer, rosenbrock, [x]))
        counts.append(optimizer.state[x]["n_restarts"])
    print(f"restarts on Rosenbrock in 30 iterations: without Powell {counts[0]}, with {counts[1]}")
    assert counts[1] > counts[0]
