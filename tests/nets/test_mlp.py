from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets import ACTIVATIONS, MLP, make_activation

# Independent definitions of each activation, written from the formulas.
REFERENCE_ACTIVATIONS = {
    "relu": lambda x: torch.clamp(x, min=0.0),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "sigmoid": lambda x: 1.0 / (1.0 + torch.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1.0),
    "softplus": lambda x: torch.log(1.0 + torch.exp(x)),
    "identity": lambda x: x,
}


def _build(*args, seed: int = 0, **kwargs) -> MLP:
    torch.manual_seed(seed)
    return MLP(*args, **kwargs)


def test_mlp_reference_covers_every_activation():
    assert set(REFERENCE_ACTIVATIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize(
    ("input_shape", "hidden"),
    [((1, 8, 8), (32,)), ((1, 28, 28), (64, 32)), ((40,), ()), ((10, 3), (5, 5, 5))],
    ids=str,
)
def test_mlp_output_shape(input_shape, hidden):
    net = _build(input_shape, 7, hidden)
    x = torch.randn(5, *input_shape, generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (5, 7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_activation_matches_formula(name):
    net = _build((6,), 3, (9,), activation=name)
    seen = {}
    net.get_submodule("layers.act1").register_forward_hook(
        lambda module, inputs, output: seen.update(a=inputs[0], h=output)
    )
    net(torch.randn(4, 6, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(seen["h"], REFERENCE_ACTIVATIONS[name](seen["a"]))


def test_mlp_forward_matches_manual_affine_maps():
    net = _build((2, 3), 4, (5,), activation="tanh")
    x = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(2))
    W1, b1 = net.layers.linear1.weight, net.layers.linear1.bias
    W2, b2 = net.layers.output.weight, net.layers.output.bias
    expected = torch.tanh(x.reshape(3, 6) @ W1.T + b1) @ W2.T + b2
    torch.testing.assert_close(net(x), expected)


def test_make_activation_unknown_name_suggests_closest():
    with pytest.raises(InvalidParameterError, match="did you mean 'sigmoid'"):
        make_activation("sigmod")


def test_mlp_batch_norm_present_only_when_asked():
    with_bn = _build((4,), 2, (3, 3), batch_norm=True)
    without = _build((4,), 2, (3, 3))
    names = [name for name, _ in with_bn.layers.named_children()]
    assert names == ["flatten", "linear1", "bn1", "act1", "linear2", "bn2", "act2", "output"]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in without.modules())


def test_mlp_dropout_present_only_when_asked():
    net = _build((4,), 2, (3, 3), dropout=0.25)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [0.25, 0.25]
    assert [n for n, _ in net.layers.named_children()][2:4] == ["act1", "drop1"]
    assert not any(isinstance(m, nn.Dropout) for m in _build((4,), 2, (3,)).modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (0, 3)}, "input_shape must be a non-empty sequence of positive ints"),
        ({"input_shape": ()}, "input_shape must be a non-empty"),
        ({"n_outputs": 0}, "n_outputs must be a positive int; got 0"),
        ({"hidden": (8, -1)}, r"hidden must be a sequence of positive ints; got \(8, -1\)"),
        ({"hidden": (True,)}, "hidden must be a sequence of positive ints"),
        ({"hidden": 256}, r"got the int 256. Write \(256,\) instead"),
        ({"dropout": 1.0}, r"dropout must be a float in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout must be a float in \[0, 1\)"),
        ({"activation": "Relu"}, "did you mean 'relu'"),
        ({"init": "zeros"}, "symmetry"),
        ({"init": "xavir"}, "did you mean 'xavier'"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_mlp_rejects_invalid_parameter(kwargs, message):
    params = {"input_shape": (4,), "n_outputs": 2, "hidden": (3,), **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        MLP(**params)


def test_mlp_reports_every_invalid_parameter_at_once():
    with pytest.raises(InvalidParameterError) as excinfo:
        MLP((4,), -2, dropout=2.0, activation="nope")
    for part in ("n_outputs must", "dropout must", "activation 'nope' is not known"):
        assert part in str(excinfo.value)


def test_mlp_hidden_layers_name_their_activation_modules():
    net = _build((1, 8, 8), 10, (16, 12), batch_norm=True, dropout=0.1)
    layers = net.hidden_layers()
    assert [(h.index, h.name) for h in layers] == [(1, "layers.act1"), (2, "layers.act2")]
    for hidden, width in zip(layers, (16, 12), strict=True):
        assert net.get_submodule(hidden.name) is hidden.activation
        assert isinstance(hidden.layer, nn.Linear) and hidden.layer.out_features == width


def test_mlp_linear_model_has_no_hidden_layers():
    net = _build((3, 2), 4, ())
    assert net.hidden_layers() == []
    assert [n for n, _ in net.layers.named_children()] == ["flatten", "output"]


def test_mlp_get_params_rebuilds_a_wider_net():
    net = _build((1, 8, 8), 10, (32,), activation="gelu", dropout=0.2, batch_norm=True)
    wider = MLP(**{**net.get_params(), "hidden": (64, 32)})
    assert wider.hidden == (64, 32)
    assert wider.layers.linear1.out_features == 64
    assert (wider.activation, wider.dropout, wider.batch_norm) == ("gelu", 0.2, True)


def test_mlp_reset_parameters_is_reproducible_with_a_generator():
    net = _build((6,), 3, (5,), batch_norm=True)
    net.layers.bn1.running_mean.fill_(3.0)
    net.reset_parameters(generator=torch.Generator().manual_seed(7))
    first = [p.detach().clone() for p in net.parameters()]
    net.reset_parameters(generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(first, net.parameters(), strict=True))
    assert torch.equal(net.layers.bn1.running_mean, torch.zeros(5))


@pytest.mark.parametrize(
    "kwargs", [{"activation": "tanh"}, {"activation": "softplus", "batch_norm": True}], ids=str
)
def test_mlp_gradcheck_float64(kwargs):
    net = _build((2, 2), 3, (5, 4), **kwargs).double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x.requires_grad_()
    # gradcheck perturbs each input in place, the parameters included, so the closure sees them.
    assert torch.autograd.gradcheck(lambda x, *params: net(x), (x, *net.parameters()))
