"""Line searches against their defining conditions, exact minimisers and brute force."""

from __future__ import annotations

import math

import pytest
import torch

from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.optim import armijo_backtracking, strong_wolfe
from deepdx.optim.line_search import _cubic_minimizer, _Trial
from tests.optim.problems import make_spd, quadratic, rosenbrock


def _obj_fn(objective, counter=None):
    """obj_fn(x, t, d) -> (f, g) by autograd, counting calls in counter[0]."""

    def obj_fn(x, t, d):
        if counter is not None:
            counter[0] += 1
        z = (x + t * d).detach().requires_grad_(True)
        loss = objective(z)
        (g,) = torch.autograd.grad(loss, z)
        return float(loss.detach()), g

    return obj_fn


def _start(objective, x):
    f, g = _obj_fn(objective)(x, 0.0, torch.zeros_like(x))
    return f, g, -g, float(g @ -g)


ROSENBROCK_POINTS = [(-1.2, 1.0), (0.0, 0.0), (1.5, 2.0), (0.9, 0.7)]


@pytest.mark.parametrize("x0", ROSENBROCK_POINTS)
@pytest.mark.parametrize("t0", [1e-6, 1.0, 1e3])
def test_strong_wolfe_step_satisfies_strong_wolfe_conditions(x0, t0):
    c1, c2 = 1e-4, 0.9
    x = torch.tensor(x0, dtype=torch.float64)
    f, g, d, gtd = _start(rosenbrock, x)
    f_new, g_new, t, n = strong_wolfe(_obj_fn(rosenbrock), x, t0, d, f=f, g=g, gtd=gtd)
    f_ref, g_ref = _obj_fn(rosenbrock)(x, t, d)  # recomputed independently
    assert f_new == f_ref and torch.equal(g_new, g_ref)
    assert f_ref <= f + c1 * t * gtd
    assert abs(float(g_ref @ d)) <= c2 * abs(gtd)
    assert 1 <= n <= 25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strong_wolfe_finds_exact_minimizer_on_a_quadratic(seed):
    A, b = make_spd(n=6, cond=50.0, seed=seed)
    x = torch.zeros(6, dtype=torch.float64)
    f, g, d, gtd = _start(quadratic(A, b), x)
    # c2 tiny: only the exact minimiser passes; one cubic fit of a quadratic finds it
    obj_fn = _obj_fn(quadratic(A, b))
    _, _, t, n = strong_wolfe(obj_fn, x, 1.0, d, f=f, g=g, gtd=gtd, c1=1e-8, c2=1e-6)
    t_exact = float(-(g @ d) / (d @ A @ d))
    print(f"seed {seed}: t={t:.6g}, exact {t_exact:.6g}, {n} evaluations")
    assert t == pytest.approx(t_exact, rel=1e-10)


def test_armijo_backtracking_returns_first_step_that_passes():
    c1, rho = 1e-4, 0.5
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    f, g, d, gtd = _start(rosenbrock, x)
    f_new, _, t, n = armijo_backtracking(_obj_fn(rosenbrock), x, 1.0, d, f=f, g=g, gtd=gtd)
    assert t == rho ** (n - 1)
    assert f_new <= f + c1 * t * gtd
    f_longer, _ = _obj_fn(rosenbrock)(x, t / rho, d)
    assert f_longer > f + c1 * (t / rho) * gtd  # the previous, longer trial failed


@pytest.mark.parametrize("search", [armijo_backtracking, strong_wolfe])
@pytest.mark.parametrize("max_ls", [1, 3, 10])
def test_line_search_respects_evaluation_budget(search, max_ls):
    counter = [0]
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    f, g, d, gtd = _start(rosenbrock, x)
    obj_fn = _obj_fn(rosenbrock, counter)
    *_, n = search(obj_fn, x, 1e6, d, f=f, g=g, gtd=gtd, max_ls=max_ls)  # absurd first step
    assert n == counter[0] <= max_ls


def _nan_beyond(limit):
    """f(z) = ||z - 1||^2 on the ray, but NaN once the step passes `limit`."""

    def obj_fn(x, t, d):
        z = x + t * d
        f = float((z - 1.0) @ (z - 1.0)) if t <= limit else math.nan
        return f, 2.0 * (z - 1.0) if t <= limit else torch.full_like(z, math.nan)

    return obj_fn


@pytest.mark.parametrize("search", [armijo_backtracking, strong_wolfe])
def test_line_search_backs_off_from_non_finite_trials(search):
    x = torch.zeros(2, dtype=torch.float64)
    g = -2.0 * torch.ones(2, dtype=torch.float64)
    f_new, g_new, t, _ = search(_nan_beyond(0.3), x, 10.0, -g, f=2.0, g=g, gtd=float(-g @ g))
    assert 0.0 < t <= 0.3
    assert math.isfinite(f_new) and f_new < 2.0
    assert torch.isfinite(g_new).all()


@pytest.mark.parametrize("search", [armijo_backtracking, strong_wolfe])
def test_line_search_raises_when_no_trial_is_finite(search):
    x = torch.zeros(2, dtype=torch.float64)
    g = -2.0 * torch.ones(2, dtype=torch.float64)
    with pytest.raises(NumericalError, match=r"all 5 trial steps along d gave a non-finite"):
        search(_nan_beyond(0.0), x, 1.0, -g, f=2.0, g=g, gtd=-8.0, max_ls=5)


def test_line_search_rejects_ascent_direction_and_bad_constants():
    x = torch.zeros(2, dtype=torch.float64)
    g = torch.ones(2, dtype=torch.float64)
    with pytest.raises(InvalidParameterError, match=r"needs a descent direction.*got gtd=2\.0"):
        strong_wolfe(_nan_beyond(1.0), x, 1.0, g, f=0.0, g=g, gtd=2.0)
    with pytest.raises(InvalidParameterError, match=r"needs c1 < c2; got c1=0\.5, c2=0\.1"):
        strong_wolfe(_nan_beyond(1.0), x, 1.0, -g, f=0.0, g=g, gtd=-2.0, c1=0.5, c2=0.1)
    with pytest.raises(InvalidParameterError, match=r"`t` .*got -1\.0\. `rho` .*got 1\.5\."):
        armijo_backtracking(_nan_beyond(1.0), x, -1.0, -g, f=0.0, g=g, gtd=-2.0, rho=1.5)


@pytest.mark.parametrize("seed", range(5))
def test_cubic_minimizer_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    # a cubic with a local minimiser m inside [a, b]: p(t) = (t - m)^2 (t - r) with r < a
    m, a, b = 0.3 + 0.4 * float(torch.rand(1, generator=gen)), 0.0, 1.0
    r = -1.0 - float(torch.rand(1, generator=gen))
    p = lambda t: (t - m) ** 2 * (t - r)  # noqa: E731
    dp = lambda t: 2 * (t - m) * (t - r) + (t - m) ** 2  # noqa: E731
    ends = [_Trial(a, p(a), torch.zeros(1), dp(a)), _Trial(b, p(b), torch.zeros(1), dp(b))]
    grid = torch.linspace(a, b, 200_001, dtype=torch.float64)
    brute = float(grid[torch.argmin(p(grid))])
    for first, second in (ends, ends[::-1]):  # either end may come first
        assert _cubic_minimizer(first, second, low=a, high=b) == pytest.approx(brute, abs=1e-5)
