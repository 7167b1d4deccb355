"""Shared tests every optimizer of the OptimizerSpec registry must pass."""

from __future__ import annotations

import io

import pytest
import torch

from deepdx.exceptions import InvalidParameterError, NumericalError
from tests.optim.problems import (
    BARRIER_MINIMIZER,
    ROSENBROCK_START,
    barrier,
    make_closure,
    make_spd,
    quadratic,
    rosenbrock,
    run_until_stalled,
)


def _report(spec, optimizer, problem):
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    print(f"{spec} on {problem}: {state['n_iter']} iterations, {state['func_evals']} evaluations")


def test_optimizer_solves_spd_quadratic(spec):
    A, b = make_spd(n=6, cond=50.0, seed=0)
    x, optimizer = spec.minimize(quadratic(A, b), torch.zeros(6))
    _report(spec, optimizer, "quadratic n=6 cond=50")
    torch.testing.assert_close(x, torch.linalg.solve(A, b), atol=1e-6, rtol=0)


def test_optimizer_solves_rosenbrock(spec):
    x, optimizer = spec.minimize(rosenbrock, ROSENBROCK_START)
    _report(spec, optimizer, "Rosenbrock")
    torch.testing.assert_close(x, torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)


def _run(spec, x0, n_steps, state=None):
    """Take n_steps on Rosenbrock from x0 (after loading `state`); return x and the optimizer."""
    x = x0.clone().requires_grad_(True)
    optimizer = spec.make([x], max_iter=2)
    if state is not None:
        optimizer.load_state_dict(state)
    closure = make_closure(optimizer, rosenbrock, [x])
    for _ in range(n_steps):
        optimizer.step(closure)
    return x.detach().clone(), optimizer


def test_optimizer_state_dict_round_trip_is_bitwise(spec):
    x_mid, optimizer = _run(spec, torch.tensor(ROSENBROCK_START, dtype=torch.float64), 3)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)  # a real checkpoint, loaded with weights_only
    closure = make_closure(optimizer, rosenbrock, optimizer.param_groups[0]["params"])
    optimizer.step(closure)
    expected = optimizer.param_groups[0]["params"][0].detach().clone()

    buffer.seek(0)
    resumed, _ = _run(spec, x_mid, 1, state=torch.load(buffer, weights_only=True))
    fresh, _ = _run(spec, x_mid, 1)
    assert torch.equal(resumed, expected)
    assert not torch.equal(fresh, expected)  # the restored state mattered


def test_optimizer_rejects_invalid_hyperparameters(spec):
    for kwargs, message in spec.bad_kwargs:
        with pytest.raises(InvalidParameterError, match=message):
            spec.make([torch.zeros(2, requires_grad=True)], **kwargs)


def test_optimizer_raises_on_nan_loss_and_keeps_parameters(spec):
    x = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    optimizer = spec.make([x])
    closure = make_closure(optimizer, lambda z: z.sum() * float("nan"), [x])
    with pytest.raises(NumericalError, match=r"iteration 0: the loss is nan at the current"):
        optimizer.step(closure)
    assert x.tolist() == [0.5, 2.0]


def test_optimizer_raises_on_infinite_gradient(spec):
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = spec.make([x])
    closure = make_closure(optimizer, lambda z: z.abs().sqrt().sum(), [x])  # f = 0, f' = inf
    with pytest.raises(NumericalError, match=r"the gradient has 2 non-finite entries of 2"):
        optimizer.step(closure)


def test_optimizer_line_search_backs_off_from_nan(line_search_spec):
    # the first trial step lands far past x = 1.5, where the loss is NaN
    x, _ = line_search_spec.minimize(barrier, torch.zeros(3), lr=10.0)
    assert torch.isfinite(barrier(x))
    torch.testing.assert_close(x, torch.full((3,), BARRIER_MINIMIZER, dtype=torch.float64))


def _two_group_run(spec, groups_lr, n_steps=4, stall=False):
    """Quadratic with x split into two tensors; one group per lr in groups_lr (or one group)."""
    A, b = make_spd(n=6, cond=50.0, seed=1)
    head = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    tail = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    if groups_lr is None:
        groups = [{"params": [head, tail]}]
    else:
        groups = [{"params": [head], "lr": groups_lr[0]}, {"params": [tail], "lr": groups_lr[1]}]
    optimizer = spec.make(groups)
    closure = make_closure(optimizer, quadratic(A, b), [head, tail])
    if stall:
        run_until_stalled(optimizer, closure, n_steps)
    else:
        for _ in range(n_steps):
            optimizer.step(closure)
    return torch.cat([head.detach(), tail.detach()]), torch.linalg.solve(A, b)


def test_optimizer_equal_lr_groups_match_one_group_bitwise(param_groups_spec):
    grouped, _ = _two_group_run(param_groups_spec, (1.0, 1.0))
    single, _ = _two_group_run(param_groups_spec, None)
    assert torch.equal(grouped, single)


def test_optimizer_groups_with_different_lr_reach_minimizer(param_groups_spec):
    x, x_star = _two_group_run(
        param_groups_spec, (1.0, 0.25), n_steps=param_groups_spec.steps, stall=True
    )
    torch.testing.assert_close(x, x_star, atol=1e-6, rtol=0)


def test_optimizer_rejects_groups_that_differ_in_other_settings(param_groups_spec):
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(InvalidParameterError, match=r"`max_iter` .* only `lr` may differ"):
        param_groups_spec.make([{"params": [a]}, {"params": [b], "max_iter": 7}])


def test_optimizer_rejects_mixed_dtypes(spec):
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float32, requires_grad=True)
    with pytest.raises(InvalidParameterError, match=r"share one dtype and device"):
        spec.make([{"params": [a]}, {"params": [b]}])


def test_optimizer_solves_quadratic_in_float32(spec):
    A, b = make_spd(n=6, cond=50.0, seed=2)
    A32, b32 = A.float(), b.float()
    x = torch.zeros(6, requires_grad=True)
    optimizer = spec.make([x], tolerance_grad=1e-5, tolerance_change=1e-9)
    run_until_stalled(optimizer, make_closure(optimizer, quadratic(A32, b32), [x]), 100)
    error = (x.detach().double() - torch.linalg.solve(A, b)).abs().max().item()
    print(f"{spec} float32 quadratic: max error {error:.1e}")
    assert x.dtype == torch.float32
    # a value-based line search stalls at |x - x*| ~ cond * sqrt(eps32) |x*| ~ 2e-2 |x*|
    assert error < 1e-2


@pytest.mark.gpu
def test_optimizer_runs_on_cuda(spec):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    A, b = make_spd(n=6, cond=50.0, seed=0)
    A, b = A.cuda(), b.cuda()
    x = torch.zeros(6, dtype=torch.float64, device="cuda", requires_grad=True)
    optimizer = spec.make([x])
    closure = make_closure(optimizer, quadratic(A, b), [x])
    for _ in range(spec.steps):
        optimizer.step(closure)
    assert x.device.type == "cuda"
    torch.testing.assert_close(x.detach(), torch.linalg.solve(A, b), atol=1e-6, rtol=0)


def test_optimizer_step_without_closure_raises(spec):
    optimizer = spec.make([torch.zeros(2, requires_grad=True)])
    with pytest.raises(InvalidParameterError, match=r"\.step needs a closure .*got None"):
        optimizer.step(None)


def test_optimizer_add_param_group_restarts_and_moves_new_group(param_groups_spec):
    A, b = make_spd(n=6, cond=50.0, seed=0)
    head = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    tail = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = param_groups_spec.make([head])
    closure = make_closure(optimizer, quadratic(A, b), [head, tail])
    optimizer.step(closure)
    optimizer.add_param_group({"params": [tail]})
    assert optimizer.state[head] == {}  # the flat vector grew: the algorithm starts over
    run_until_stalled(optimizer, closure, param_groups_spec.steps)
    x = torch.cat([head, tail]).detach()
    torch.testing.assert_close(x, torch.linalg.solve(A, b), atol=1e-6, rtol=0)


def test_optimizer_follows_an_lr_scheduler(spec):
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = spec.make([x], lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    closure = make_closure(optimizer, barrier, [x])
    for _ in range(3):
        optimizer.step(closure)
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.125
    assert barrier(x.detach()) < barrier(torch.zeros(3, dtype=torch.float64))
