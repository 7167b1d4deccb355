"""Tests of Hessian-free optimisation against dense references and first-order baselines."""

from __future__ import annotations

import io

import pytest
import torch
from torch.nn import functional as F

from deepdx._random import make_generator, seeded_torch
from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.nets.autoencoder import DeepAutoencoder
from deepdx.optim import GradientDescent
from deepdx.optim.hessian_free import HessianFree, _fisher_diagonal, empirical_fisher_diagonal
from tests.optim.problems import fit_least_squares

TIGHT = {"tolerance_grad": 1e-12, "tolerance_change": 0.0}


def _least_squares(seed=0):
    gen = make_generator(seed)
    X = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)
    return X, y


def _blobs(n=90, seed=0, scale=(1.0, 1.0)):
    """Three overlapping Gaussian classes in 2-D, features multiplied by ``scale``."""
    gen = make_generator(seed)
    centres = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]], dtype=torch.float64)
    y = torch.arange(n) % 3
    X = centres[y] + 1.2 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return X * torch.tensor(scale, dtype=torch.float64), y


def _mlp(seed=0, hidden=6):
    with seeded_torch(seed):
        return torch.nn.Sequential(
            torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 3)
        ).double()


def _closure(optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_hessian_free_solves_least_squares_with_either_curvature(curvature):
    # f(w) = mean((Xw - y)^2) / 2: the Gauss-Newton matrix equals the Hessian X'X / N
    X, y = _least_squares()
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    optimizer = HessianFree([w], curvature=curvature, **TIGHT)
    closure = _closure(optimizer, lambda: 0.5 * ((X @ w - y) ** 2).mean())
    ggn = {"outputs_fn": lambda: X @ w, "loss_on_outputs": lambda z: 0.5 * ((z - y) ** 2).mean()}
    for _ in range(30):
        optimizer.step(closure, **(ggn if curvature == "ggn" else {}))
    state = optimizer.state[w]
    print(
        f"HF-{curvature} least squares: {state['n_iter']} iterations, lambda {state['damping']:.2g}"
    )
    solution = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    torch.testing.assert_close(w.detach(), solution, atol=1e-6, rtol=0)


def test_hessian_free_solves_rosenbrock_as_least_squares_with_ggn():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)

    def residuals():
        return torch.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])  # (2,), G = 2 J'J

    optimizer = HessianFree([x], **TIGHT)
    closure = _closure(optimizer, lambda: (residuals() ** 2).sum())
    for _ in range(40):
        optimizer.step(closure, outputs_fn=residuals, loss_on_outputs=lambda r: (r**2).sum())
    print(f"HF-ggn Rosenbrock: {optimizer.state[x]['n_iter']} iterations")
    torch.testing.assert_close(x.detach(), torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_free_trains_mlp_monotonically_and_beats_gradient_descent(seed):
    # badly scaled features (x30 between them) make the curvature ill-conditioned
    X, y = _blobs(seed=seed, scale=(3.0, 0.1))
    n_steps, k = 10, 30  # curvature on the first 30 of 90 samples
    hf_model, gd_model = _mlp(seed), _mlp(seed)
    hf = HessianFree(hf_model.parameters())
    gd = GradientDescent(gd_model.parameters(), line_search="armijo")
    hf_closure = _closure(hf, lambda: F.cross_entropy(hf_model(X), y))
    gd_closure = _closure(gd, lambda: F.cross_entropy(gd_model(X), y))
    hf_losses, gd_losses = [], []
    for _ in range(n_steps):
        hf_losses.append(
            hf.step(
                hf_closure,
                outputs_fn=lambda: hf_model(X[:k]),
                loss_on_outputs=lambda z: F.cross_entropy(z, y[:k]),
            ).item()
        )
        gd_losses.append(gd.step(gd_closure).item())
    hf_final, gd_final = hf_closure().item(), gd_closure().item()
    print(f"after {n_steps} steps: HF loss {hf_final:.4f}, gradient descent {gd_final:.4f}")
    print("HF losses:", [f"{v:.3f}" for v in hf_losses])
    assert all(b <= a for a, b in zip(hf_losses, hf_losses[1:], strict=False))  # line search
    assert hf_final < gd_final


def _dense_reference(model, X, y, *, mu, damping):
    """Solve (G + lambda I + lambda mu J_h'J_h) delta = -g with explicit Jacobians."""
    params = list(model.parameters())
    theta = torch.cat([p.detach().reshape(-1) for p in params])  # (P,)
    sizes = [p.numel() for p in params]

    def unpack(t):
        return [c.view_as(p) for c, p in zip(t.split(sizes), params, strict=True)]

    def hidden(t):
        W1, b1, _, _ = unpack(t)
        return torch.tanh(X @ W1.T + b1)  # (N, H)

    def outputs(t):
        _, _, W2, b2 = unpack(t)
        return hidden(t) @ W2.T + b2  # (N, K)

    def loss_z(z):
        return F.cross_entropy(z, y)

    g = torch.func.grad(lambda t: loss_z(outputs(t)))(theta)  # (P,)
    J = torch.autograd.functional.jacobian(outputs, theta).reshape(-1, theta.numel())  # (NK, P)
    z = outputs(theta)
    H_L = torch.autograd.functional.hessian(loss_z, z).reshape(z.numel(), z.numel())
    J_h = torch.autograd.functional.jacobian(hidden, theta).reshape(-1, theta.numel())
    eye = torch.eye(theta.numel(), dtype=torch.float64)
    A = J.T @ H_L @ J + damping * eye + damping * mu * J_h.T @ J_h  # (P, P)
    return torch.linalg.solve(A, -g)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_hessian_free_cg_solves_the_damped_gauss_newton_system(mu):
    X, y = _blobs(n=24)
    model = _mlp(hidden=4)
    k = 12  # the curvature batch; the reference uses the same samples for g and G
    n_params = sum(p.numel() for p in model.parameters())
    expected = _dense_reference(model, X[:k], y[:k], mu=mu, damping=0.5)
    optimizer = HessianFree(
        model.parameters(), damping=0.5, cg_tol=0.0, cg_max_iter=3 * n_params, structural_damping=mu
    )
    closure = _closure(optimizer, lambda: F.cross_entropy(model(X[:k]), y[:k]))
    hidden_fn = (lambda: torch.tanh(model[0](X[:k]))) if mu > 0 else None
    optimizer.step(
        closure,
        outputs_fn=lambda: model(X[:k]),
        loss_on_outputs=lambda z: F.cross_entropy(z, y[:k]),
        hidden_fn=hidden_fn,
    )
    cg_x = optimizer.state[next(iter(model.parameters()))]["cg_x"]
    torch.testing.assert_close(cg_x, expected, atol=1e-8, rtol=1e-8)


def test_hessian_free_hessian_curvature_uses_the_curvature_closure():
    X, y = _least_squares(seed=1)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    optimizer = HessianFree([w], curvature="hessian", damping=0.1, cg_tol=0.0, cg_max_iter=15)
    closure = _closure(optimizer, lambda: 0.5 * ((X @ w - y) ** 2).mean())
    curvature_closure = _closure(optimizer, lambda: 0.5 * ((X[:8] @ w - y[:8]) ** 2).mean())
    optimizer.step(closure, curvature_closure=curvature_closure)
    g = -(X.T @ y) / 20  # gradient at w = 0 on the full batch
    H = X[:8].T @ X[:8] / 8  # Hessian on the curvature batch
    expected = torch.linalg.solve(H + 0.1 * torch.eye(5, dtype=torch.float64), -g)
    torch.testing.assert_close(optimizer.state[w]["cg_x"], expected, atol=1e-10, rtol=0)


def test_hessian_free_fisher_diagonal_matches_per_sample_loop():
    X, y = _blobs(n=70)  # more than one chunk of per-sample gradients
    model = _mlp(seed=3)
    params = list(model.parameters())
    diagonal = _fisher_diagonal(lambda: model(X), lambda z: F.cross_entropy(z, y), params)
    squares = torch.zeros_like(diagonal)
    for b in range(70):  # empirical Fisher of the mean loss: (1/N) sum_b grad l_b ** 2
        grads = torch.autograd.grad(F.cross_entropy(model(X[b : b + 1]), y[b : b + 1]), params)
        squares += torch.cat([t.reshape(-1) for t in grads]) ** 2
    torch.testing.assert_close(diagonal, squares / 70, atol=1e-12, rtol=1e-10)


def test_hessian_free_takes_no_step_without_a_descent_direction():
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = HessianFree([x], curvature="hessian", damping=1.0)
    closure = _closure(optimizer, lambda: -(x**2).sum())  # H + lambda I = -1: CG stops at once
    optimizer.step(closure)
    state = optimizer.state[x]
    assert x.item() == 1.0
    assert state["rho"] == float("-inf")
    assert state["damping"] == 1.5
    assert not bool(state["cg_x"].any())


def test_hessian_free_raises_numerical_error_on_nan_curvature():
    X, y = _blobs(n=12)
    model = _mlp()
    optimizer = HessianFree(model.parameters(), preconditioner=None)
    closure = _closure(optimizer, lambda: F.cross_entropy(model(X), y))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NumericalError, match=r"HessianFree iteration 1: .*curvature p'Ap is nan"):
        optimizer.step(
            closure,
            outputs_fn=lambda: model(X) * float("nan"),
            loss_on_outputs=lambda z: F.cross_entropy(z, y),
        )
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_hessian_free_step_rejects_mismatched_curvature_inputs():
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    closure = _closure(torch.optim.SGD([w]), lambda: (w**2).sum())
    with pytest.raises(InvalidParameterError, match=r"needs outputs_fn and loss_on_outputs"):
        HessianFree([w]).step(closure)
    with pytest.raises(InvalidParameterError, match=r"used only with curvature='ggn'"):
        HessianFree([w], curvature="hessian").step(closure, outputs_fn=lambda: w)
    with pytest.raises(InvalidParameterError, match=r"structural_damping > 0 and hidden_fn"):
        HessianFree([w], curvature="hessian", structural_damping=0.3).step(closure)


def test_hessian_free_rejects_invalid_hyperparameters_in_one_message():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(InvalidParameterError, match=r"Did you mean 'ggn'\?.*`cg_tol`"):
        HessianFree([w], curvature="gnn", cg_tol=-1.0)
    with pytest.raises(InvalidParameterError, match=r"cg_min_iter <= cg_max_iter; got cg_min_it"):
        HessianFree([w], cg_min_iter=20, cg_max_iter=10)


def _run_mlp(model, X, y, n_steps, state=None):
    optimizer = HessianFree(model.parameters())
    if state is not None:
        optimizer.load_state_dict(state)
    closure = _closure(optimizer, lambda: F.cross_entropy(model(X), y))
    for _ in range(n_steps):
        optimizer.step(
            closure, outputs_fn=lambda: model(X), loss_on_outputs=lambda z: F.cross_entropy(z, y)
        )
    return optimizer


def test_hessian_free_state_dict_round_trip_gives_the_same_next_iterate_bitwise():
    X, y = _blobs(n=30)
    model = _mlp()
    optimizer = _run_mlp(model, X, y, 3)
    mid = {name: t.clone() for name, t in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    _run_mlp(model, X, y, 1, state=optimizer.state_dict())
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def resume(state):
        resumed = _mlp()
        resumed.load_state_dict(mid)
        _run_mlp(resumed, X, y, 1, state=state)
        return torch.cat([p.detach().reshape(-1) for p in resumed.parameters()])

    buffer.seek(0)
    assert torch.equal(resume(torch.load(buffer, weights_only=True)), expected)
    assert not torch.equal(resume(None), expected)  # damping and warm start mattered


def test_hessian_free_is_a_drop_in_for_torch_lbfgs_in_a_training_loop():
    hf, solution = fit_least_squares(
        HessianFree, seed=2, steps=8, curvature="hessian", damping=1e-3
    )
    lbfgs, _ = fit_least_squares(torch.optim.LBFGS, seed=2, steps=8)
    torch.testing.assert_close(hf, solution, atol=1e-6, rtol=0)
    torch.testing.assert_close(lbfgs, solution, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- Fisher diagonal


def _tiny_autoencoder(seed=0):
    with seeded_torch(seed):
        return DeepAutoencoder((6,), (4, 3, 2), init="sparse").double()


def _images(n=13, seed=0):
    return torch.rand(n, 6, generator=make_generator(seed), dtype=torch.float64)


def _summed_bce(z, x):
    return F.binary_cross_entropy_with_logits(z, x, reduction="sum")


def _brute_force_fisher(model, X, params):
    """(1/N) sum_b grad l_b ** 2, one autograd call per sample."""
    squares = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    for b in range(len(X)):
        grads = torch.autograd.grad(_summed_bce(model(X[b : b + 1]), X[b : b + 1]), params)
        squares += torch.cat([t.reshape(-1) for t in grads]) ** 2
    return squares / len(X)


@pytest.mark.parametrize("chunk_size", [None, 1, 4])
def test_empirical_fisher_diagonal_matches_a_per_sample_loop(chunk_size):
    model, X = _tiny_autoencoder(), _images()  # 13 samples: chunks of 4 leave a remainder
    params = list(model.parameters())
    diagonal = empirical_fisher_diagonal(model, _summed_bce, X, X, chunk_size=chunk_size)
    expected = _brute_force_fisher(model, X, params)
    torch.testing.assert_close(diagonal, expected, atol=1e-10, rtol=0)


def test_empirical_fisher_diagonal_follows_the_order_of_params():
    model, X = _tiny_autoencoder(seed=1), _images(seed=1)
    named = dict(model.named_parameters())
    chosen = [named["decoder.output.weight"], named["encoder.linear1.bias"]]  # out of order
    diagonal = empirical_fisher_diagonal(model, _summed_bce, X, X, params=chosen)
    expected = _brute_force_fisher(model, X, chosen)
    torch.testing.assert_close(diagonal, expected, atol=1e-10, rtol=0)


def test_empirical_fisher_diagonal_agrees_with_the_per_row_default():
    # rows of the outputs are samples here, so both are the empirical Fisher of the mean loss
    model, X = _tiny_autoencoder(seed=2), _images(seed=2)
    params = list(model.parameters())
    per_row = _fisher_diagonal(lambda: model(X), lambda z: _summed_bce(z, X) / len(X), params)
    assert per_row is not None
    diagonal = empirical_fisher_diagonal(model, _summed_bce, X, X)
    torch.testing.assert_close(diagonal, per_row, atol=1e-12, rtol=1e-10)


def test_empirical_fisher_diagonal_rejects_foreign_params_and_bad_samples():
    model, X = _tiny_autoencoder(), _images()
    foreign = [dict(model.named_parameters())["decoder.output.bias"], torch.zeros(3)]
    with pytest.raises(InvalidParameterError, match=r"positions \[1\] are not in DeepAutoencoder"):
        empirical_fisher_diagonal(model, _summed_bce, X, X, params=foreign)
    with pytest.raises(InvalidParameterError, match=r"same number N >= 1.*chunk_size must be"):
        empirical_fisher_diagonal(model, _summed_bce, X, X[:5], chunk_size=0)


def _hf_autoencoder_steps(model, X, n_steps, **step_kwargs):
    optimizer = HessianFree(model.parameters())
    closure = _closure(optimizer, lambda: _summed_bce(model(X), X) / len(X))
    losses = [
        optimizer.step(
            closure,
            outputs_fn=lambda: model(X),
            loss_on_outputs=lambda z: _summed_bce(z, X) / len(X),
            **step_kwargs,
        ).item()
        for _ in range(n_steps)
    ]
    return optimizer, losses + [closure().item()]


def test_hessian_free_fisher_fn_replaces_the_per_row_diagonal():
    X = _images(n=20)
    default_model, fisher_model = _tiny_autoencoder(), _tiny_autoencoder()
    default, _ = _hf_autoencoder_steps(default_model, X, 2)
    calls = []

    def fisher_fn():
        calls.append(1)
        return empirical_fisher_diagonal(fisher_model, _summed_bce, X, X)

    given, _ = _hf_autoencoder_steps(fisher_model, X, 2, fisher_fn=fisher_fn)
    assert len(calls) == 2  # once per outer iteration
    first_default, first_given = next(default_model.parameters()), next(fisher_model.parameters())
    torch.testing.assert_close(
        given.state[first_given]["cg_x"], default.state[first_default]["cg_x"], atol=1e-10, rtol=0
    )
    scaled, _ = _hf_autoencoder_steps(
        _tiny_autoencoder(), X, 1, fisher_fn=lambda: 100 * fisher_fn()
    )
    assert not torch.equal(
        scaled.state[next(iter(scaled._params))]["cg_x"], default.state[first_default]["cg_x"]
    )


def test_hessian_free_rejects_a_fisher_fn_of_the_wrong_shape():
    X = _images(n=8)
    model = _tiny_autoencoder()
    n = sum(p.numel() for p in model.parameters())
    with pytest.raises(
        InvalidParameterError,
        match=rf"shape \({n},\) in the optimizer's parameter order; got shape \(3,\)",
    ):
        _hf_autoencoder_steps(model, X, 1, fisher_fn=lambda: torch.ones(3, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match=r"got a tensor with negative or NaN entries"):
        _hf_autoencoder_steps(model, X, 1, fisher_fn=lambda: -torch.ones(n, dtype=torch.float64))


def test_hessian_free_trains_a_tiny_autoencoder():
    X = _images(n=40, seed=3)
    model = _tiny_autoencoder(seed=3)
    fisher_fn = lambda: empirical_fisher_diagonal(model, _summed_bce, X, X)  # noqa: E731
    _, losses = _hf_autoencoder_steps(model, X, 8, fisher_fn=fisher_fn)
    print("HF tiny autoencoder losses:", [f"{v:.4f}" for v in losses])
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))  # line search
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.gpu
def test_hessian_free_ggn_step_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    X, y = _blobs(n=80)
    finals = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        Xd, yd = X.to(device), y.to(device)
        optimizer = HessianFree(model.parameters())
        closure = _closure(optimizer, lambda m=model, a=Xd, b=yd: F.cross_entropy(m(a), b))
        for _ in range(3):
            optimizer.step(
                closure,
                outputs_fn=lambda m=model, a=Xd: m(a[:70]),
                loss_on_outputs=lambda z, b=yd: F.cross_entropy(z, b[:70]),
            )
        assert optimizer.state[next(iter(model.parameters()))]["cg_x"].device.type == device
        finals.append(torch.cat([p.detach().cpu().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(finals[1], finals[0], atol=1e-8, rtol=1e-6)
