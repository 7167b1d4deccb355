"""GradientDescent against hand-written iterations and its documented step rules."""

from __future__ import annotations

import copy

import pytest
import torch

from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.optim import GradientDescent, armijo_backtracking, strong_wolfe
from tests.optim.problems import make_closure, make_spd, quadratic, rosenbrock


def test_gradient_descent_fixed_step_matches_hand_written_iteration():
    A, b = make_spd(n=6, cond=50.0, seed=0)
    lr = 1.0 / 50.0
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    optimizer = GradientDescent([x], lr=lr, line_search=None, max_iter=20)
    optimizer.step(make_closure(optimizer, quadratic(A, b), [x]))
    reference = torch.zeros(6, dtype=torch.float64)
    for _ in range(20):
        reference = reference - lr * (A @ reference - b)  # x <- x - lr grad f(x)
    torch.testing.assert_close(x.detach(), reference, rtol=1e-13, atol=1e-15)


def test_gradient_descent_fixed_step_uses_each_group_lr():
    A, b = make_spd(n=6, cond=50.0, seed=0)
    head = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    tail = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    groups = [{"params": [head], "lr": 0.02}, {"params": [tail], "lr": 0.005}]
    optimizer = GradientDescent(groups, line_search=None, max_iter=3)
    optimizer.step(make_closure(optimizer, quadratic(A, b), [head, tail]))
    rates = torch.tensor([0.02] * 2 + [0.005] * 4, dtype=torch.float64)
    reference = torch.zeros(6, dtype=torch.float64)
    for _ in range(3):
        reference = reference - rates * (A @ reference - b)  # x_g <- x_g - lr_g g_g
    torch.testing.assert_close(torch.cat([head, tail]).detach(), reference, rtol=1e-13, atol=1e-15)


def test_gradient_descent_step_returns_loss_at_starting_point():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = GradientDescent([x], max_iter=5)
    loss = optimizer.step(make_closure(optimizer, rosenbrock, [x]))
    assert loss.item() == pytest.approx(24.2)  # f(-1.2, 1) = 100 * 0.44^2 + 2.2^2
    assert rosenbrock(x.detach()).item() < 24.2


def test_gradient_descent_initial_step_follows_first_order_change_rule():
    trials = []

    def recording_search(obj_fn, x, t, d, *, f, g, gtd):
        trials.append((t, gtd))
        f_new, g_new, t_new, n = strong_wolfe(obj_fn, x, t, d, f=f, g=g, gtd=gtd)
        trials[-1] += (t_new,)
        return f_new, g_new, t_new, n

    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = GradientDescent([x], lr=0.5, line_search=recording_search, max_iter=6)
    optimizer.step(make_closure(optimizer, rosenbrock, [x]))
    assert trials[0][0] == 0.5  # lr on the first iteration
    for (_, gtd_prev, t_prev), (t0, gtd, _) in zip(trials, trials[1:], strict=False):
        assert t0 == pytest.approx(t_prev * gtd_prev / gtd, rel=1e-15)  # N&W eq. 3.60


def test_gradient_descent_fixed_step_divergence_raises_numerical_error():
    x = torch.tensor([10.0], dtype=torch.float64, requires_grad=True)
    optimizer = GradientDescent([x], lr=1.0, line_search=None, max_iter=20)
    with pytest.raises(NumericalError, match=r"GradientDescent iteration \d+: the loss is inf"):
        optimizer.step(make_closure(optimizer, lambda z: (z**4).sum(), [x]))


# ---------------------------------------------------------------------------- Barzilai-Borwein


def _recording(search, trials):
    """Wrap a line search to record (first trial t, accepted t, x at the start)."""

    def recording_search(obj_fn, x, t, d, *, f, g, gtd):
        f_new, g_new, t_new, n = search(obj_fn, x, t, d, f=f, g=g, gtd=gtd)
        trials.append((t, t_new, x.clone(), g.clone()))
        return f_new, g_new, t_new, n

    return recording_search


def test_gradient_descent_bb_first_trial_is_sy_over_yy():
    A, b = make_spd(n=6, cond=50.0, seed=0)
    trials = []
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    search = _recording(armijo_backtracking, trials)
    optimizer = GradientDescent([x], line_search=search, initial_step="bb", max_iter=8)
    optimizer.step(make_closure(optimizer, quadratic(A, b), [x]))
    assert trials[0][0] == 1.0  # lr on the first iteration
    for (_, _, x0, g0), (t0, _, x1, g1) in zip(trials, trials[1:], strict=False):
        s, y = x1 - x0, g1 - g0  # y = A s on a quadratic
        assert t0 == pytest.approx(float(s @ y) / float(y @ y), rel=1e-12)


def test_gradient_descent_bb_falls_back_to_first_order_rule_under_negative_curvature():
    trials = []
    x = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)  # f'' = -cos x < 0
    search = _recording(armijo_backtracking, trials)
    optimizer = GradientDescent(
        [x], lr=0.1, line_search=search, initial_step="bb", max_iter=2, tolerance_change=0.0
    )
    optimizer.step(make_closure(optimizer, lambda z: torch.cos(z).sum(), [x]))
    (_, t_prev, x0, g0), (t0, _, x1, g1) = trials
    assert float((x1 - x0) @ (g1 - g0)) < 0.0  # s'y < 0: no BB step
    assert t0 == pytest.approx(t_prev * float(g0 @ g0) / float(g1 @ g1), rel=1e-12)  # eq. 3.60


def test_gradient_descent_bb_with_armijo_decreases_monotonically_to_the_minimizer():
    A, b = make_spd(n=20, cond=1e3, seed=3)
    x = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    objective = quadratic(A, b)
    optimizer = GradientDescent([x], initial_step="bb", tolerance_grad=0.0, tolerance_change=0.0)
    closure = make_closure(optimizer, objective, [x])
    x_star = torch.linalg.solve(A, b)
    values = [float(objective(x.detach()))]
    while (x.detach() - x_star).abs().max() > 1e-6 and len(values) <= 600:
        optimizer.step(closure)
        values.append(float(objective(x.detach())))
    assert all(later <= earlier for earlier, later in zip(values, values[1:], strict=False))
    torch.testing.assert_close(x.detach(), x_star, atol=1e-6, rtol=0)


def test_gradient_descent_bb_state_dict_round_trip_is_bitwise():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = GradientDescent([x], initial_step="bb", max_iter=5)
    closure = make_closure(optimizer, rosenbrock, [x])
    optimizer.step(closure)
    saved, x_mid = copy.deepcopy(optimizer.state_dict()), x.detach().clone()
    optimizer.step(closure)
    y = x_mid.clone().requires_grad_(True)
    resumed = GradientDescent([y], initial_step="bb", max_iter=5)
    resumed.load_state_dict(saved)
    resumed.step(make_closure(resumed, rosenbrock, [y]))
    assert torch.equal(y.detach(), x.detach())


def test_gradient_descent_rejects_unknown_initial_step():
    with pytest.raises(
        InvalidParameterError, match=r"`initial_step` .* one of 'first_order', 'bb'; got 'BB'\."
    ):
        GradientDescent([torch.zeros(2, requires_grad=True)], initial_step="BB")
