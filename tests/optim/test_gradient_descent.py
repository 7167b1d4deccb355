"""GradientDescent against hand-written iterations and its documented step rules."""

from __future__ import annotations

import pytest
import torch

from deepdx.exceptions import NumericalError
from deepdx.optim import GradientDescent, strong_wolfe
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
