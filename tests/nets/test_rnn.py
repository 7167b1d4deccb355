"""Tests of the Elman RNN against torch.nn.RNN, autograd, and Hessian-free training."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepdx._random import make_generator, seeded_torch
from deepdx.exceptions import InvalidParameterError
from deepdx.nets.rnn import SPARSE_CONNECTIONS, ElmanRNN
from deepdx.optim import HessianFree


def _copied_from_torch(reference: nn.RNN, n_outputs: int, output: str) -> ElmanRNN:
    """Return an ElmanRNN with the weights of a one-layer torch RNN (two biases summed)."""
    net = ElmanRNN(reference.input_size, reference.hidden_size, n_outputs, output=output)
    theirs = dict(reference.named_parameters())
    with torch.no_grad():
        net.input.weight.copy_(theirs["weight_ih_l0"])
        net.input.bias.copy_(theirs["bias_ih_l0"] + theirs["bias_hh_l0"])
        net.recurrent.weight.copy_(theirs["weight_hh_l0"])
    return net.double()


@pytest.mark.parametrize("output", ["last", "all"])
def test_elman_rnn_matches_torch_rnn_with_copied_weights(output):
    with seeded_torch(0):
        reference = nn.RNN(3, 7, nonlinearity="tanh", batch_first=True).double()
    net = _copied_from_torch(reference, 2, output)
    x = torch.randn(4, 9, 3, generator=make_generator(1), dtype=torch.float64)
    states, h_T = reference(x)  # (B, T, H), (1, B, H)
    torch.testing.assert_close(net.hidden_states(x), states, atol=1e-6, rtol=0)
    expected = states[:, -1] if output == "last" else states
    torch.testing.assert_close(h_T[0], states[:, -1])
    readout = net.output_layer(expected)  # (B, K) or (B, T, K)
    torch.testing.assert_close(net(x), readout, atol=1e-6, rtol=0)
    assert net(x).shape == ((4, 2) if output == "last" else (4, 9, 2))


def test_elman_rnn_passes_gradcheck_in_float64():
    with seeded_torch(0):
        net = ElmanRNN(2, 3, 1, output="all").double()
    x = torch.randn(2, 4, 2, generator=make_generator(0), dtype=torch.float64)
    x.requires_grad_(True)
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())

    def outputs(x, *theta):
        values = dict(zip(names, theta, strict=True))
        return torch.func.functional_call(net, values, (x,))

    assert torch.autograd.gradcheck(outputs, (x, *params))


def test_elman_rnn_hidden_states_follow_the_recurrence():
    with seeded_torch(3):
        net = ElmanRNN(2, 4, 1, activation="sigmoid").double()
    x = torch.randn(3, 5, 2, generator=make_generator(2), dtype=torch.float64)
    W_xh, b, W_hh = net.input.weight, net.input.bias, net.recurrent.weight
    h = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(5):
        h = torch.sigmoid(x[:, t] @ W_xh.T + b + h @ W_hh.T)
        torch.testing.assert_close(net.hidden_states(x)[:, t], h)


def test_elman_rnn_orthogonal_init_sets_every_singular_value_to_the_gain():
    net = ElmanRNN(2, 16, 1, recurrent_gain=1.3)
    net.reset_parameters(generator=make_generator(0))
    singular = torch.linalg.svdvals(net.recurrent.weight.double())
    torch.testing.assert_close(
        singular, torch.full((16,), 1.3, dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert (net.input.bias == 0).all() and (net.output_layer.bias == 0).all()


def test_elman_rnn_sparse_init_has_fifteen_inputs_per_unit_and_the_spectral_radius():
    net = ElmanRNN(2, 40, 1, init="sparse", recurrent_gain=1.1)
    net.reset_parameters(generator=make_generator(0))
    W_hh = net.recurrent.weight.double()
    assert ((W_hh != 0).sum(dim=1) == SPARSE_CONNECTIONS).all()
    assert ((net.input.weight != 0).sum(dim=1) == 2).all()  # fan_in 2 < 15 keeps all
    rho = torch.linalg.eigvals(W_hh).abs().max().item()
    assert rho == pytest.approx(1.1, rel=1e-6)


def test_elman_rnn_reset_is_seeded():
    a, b = ElmanRNN(2, 8, 1, init="sparse"), ElmanRNN(2, 8, 1, init="sparse")
    a.reset_parameters(generator=make_generator(5))
    b.reset_parameters(generator=make_generator(5))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.get_params() == {
        "n_inputs": 2,
        "n_hidden": 8,
        "n_outputs": 1,
        "activation": "tanh",
        "output": "last",
        "init": "sparse",
        "recurrent_gain": 1.0,
    }


def test_elman_rnn_reports_every_invalid_argument():
    with pytest.raises(InvalidParameterError) as info:
        ElmanRNN(0, 8, 1, activation="tanhh", output="first", init="orthogonl", recurrent_gain=0)
    message = str(info.value)
    for fragment in ("n_inputs", "'tanh'", "output 'first'", "'orthogonal'", "recurrent_gain"):
        assert fragment in message


def test_elman_rnn_refuses_inputs_of_the_wrong_shape():
    with pytest.raises(InvalidParameterError, match=r"shape \(batch, time, 2\).*x\[None\]"):
        ElmanRNN(2, 4, 1)(torch.zeros(5, 2))


def test_hessian_free_with_structural_damping_trains_an_elman_rnn():
    # y = x_1 (the first input) read at the last of 6 steps: a short memory task
    gen = make_generator(0)
    x = torch.randn(64, 6, 1, generator=gen, dtype=torch.float64)
    y = x[:, 0]  # (B, 1)
    with seeded_torch(0):
        net = ElmanRNN(1, 6, 1).double()
    optimizer = HessianFree(net.parameters(), structural_damping=0.5, cg_max_iter=30)

    def closure():
        optimizer.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        return loss

    losses = [
        optimizer.step(
            closure,
            outputs_fn=lambda: net(x[:32]),
            loss_on_outputs=lambda z: F.mse_loss(z, y[:32]),
            hidden_fn=lambda: net.hidden_states(x[:32]),
        ).item()
        for _ in range(8)
    ]
    losses.append(closure().item())
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.5 * losses[0]


def test_structural_damping_changes_the_hessian_free_step_on_an_elman_rnn():
    # the same first step with mu = 0 and mu = 1: only the penalty on h_t differs
    x = torch.randn(16, 5, 1, generator=make_generator(1), dtype=torch.float64)
    y = x[:, 0]  # (B, 1)
    steps = []
    for mu in (0.0, 1.0):
        with seeded_torch(0):
            net = ElmanRNN(1, 4, 1).double()
        start = [p.detach().clone() for p in net.parameters()]
        optimizer = HessianFree(net.parameters(), structural_damping=mu, line_search=None)

        def closure(net=net, optimizer=optimizer):
            optimizer.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
            return loss

        hidden = {"hidden_fn": lambda net=net: net.hidden_states(x)} if mu > 0 else {}
        optimizer.step(
            closure,
            outputs_fn=lambda net=net: net(x),
            loss_on_outputs=lambda z: F.mse_loss(z, y),
            **hidden,
        )
        steps.append(
            torch.cat([(p - q).reshape(-1) for p, q in zip(net.parameters(), start, strict=True)])
        )
    plain, damped = steps
    assert torch.isfinite(damped).all() and damped.abs().max() > 0
    assert not torch.allclose(plain, damped)  # the penalty on h_t reached CG
