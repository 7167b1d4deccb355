from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets import ACTIVATIONS, MLP, gain, init_weight_, reset_layer_, resolve_init

FAN_IN, FAN_OUT = 512, 256


def _weight(scheme: str, activation: str = "identity", seed: int = 0) -> torch.Tensor:
    weight = torch.empty(FAN_OUT, FAN_IN)
    generator = torch.Generator().manual_seed(seed)
    return init_weight_(weight, scheme, activation=activation, generator=generator)


def _relative_error(value: float, expected: float) -> float:
    return abs(value / expected - 1.0)


def test_init_kaiming_std_matches_fan_in_on_a_512_layer():
    torch.manual_seed(0)
    net = MLP((512,), 10, (512,), init="kaiming")
    weight = net.layers.linear1.weight  # (512, 512)
    assert _relative_error(weight.std().item(), math.sqrt(2.0 / 512)) < 0.1
    assert abs(weight.mean().item()) < 4 * math.sqrt(2.0 / 512) / 512  # 4 sigma of the mean


@pytest.mark.parametrize(
    ("activation", "slope"), [("relu", 0.0), ("leaky_relu", 0.01)], ids=["relu", "leaky_relu"]
)
def test_init_kaiming_gain_follows_the_activation(activation, slope):
    expected = math.sqrt(2.0 / ((1.0 + slope**2) * FAN_IN))  # He et al. (2015), eq. 10
    assert _relative_error(_weight("kaiming", activation).std().item(), expected) < 0.1


def test_init_xavier_std_and_bound():
    weight = _weight("xavier", "tanh")
    bound = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert _relative_error(weight.std().item(), math.sqrt(2.0 / (FAN_IN + FAN_OUT))) < 0.1
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound  # uniform, not normal


def test_init_lecun_std():
    assert _relative_error(_weight("lecun").std().item(), 1.0 / math.sqrt(FAN_IN)) < 0.1


def test_init_normal_std():
    assert _relative_error(_weight("normal").std().item(), 0.01) < 0.1


@pytest.mark.parametrize(
    ("activation", "scheme"),
    [
        ("relu", "kaiming"),
        ("gelu", "kaiming"),
        ("elu", "kaiming"),
        ("tanh", "xavier"),
        ("sigmoid", "xavier"),
        ("identity", "xavier"),
    ],
)
def test_init_auto_draws_as_the_documented_scheme(activation, scheme):
    assert resolve_init("auto", activation) == scheme
    torch.testing.assert_close(_weight("auto", activation), _weight(scheme, activation))


def test_init_output_layer_uses_identity_gain():
    torch.manual_seed(0)
    net = MLP((64,), 512, (512,), init="kaiming")
    output = net.layers.output.weight  # (512, 512), followed by no activation
    assert _relative_error(output.std().item(), 1.0 / math.sqrt(512)) < 0.1


@pytest.mark.parametrize("init", ["auto", "kaiming", "xavier", "lecun", "normal"])
def test_init_biases_start_at_zero(init):
    torch.manual_seed(0)
    net = MLP((8,), 3, (6, 5), init=init)
    assert all(
        torch.equal(m.bias, torch.zeros_like(m.bias))
        for m in net.modules()
        if isinstance(m, nn.Linear)
    )


def test_init_zeros_is_refused_with_the_symmetry_reason():
    with pytest.raises(InvalidParameterError, match="symmetry is never broken"):
        resolve_init("zeros", "relu")


def test_init_unknown_scheme_suggests_closest():
    with pytest.raises(InvalidParameterError, match="did you mean 'lecun'"):
        init_weight_(torch.empty(3, 3), "lecunn")


def test_gain_matches_torch_calculate_gain():
    reference = {
        "relu": nn.init.calculate_gain("relu"),
        "leaky_relu": nn.init.calculate_gain("leaky_relu", 0.01),
        "tanh": nn.init.calculate_gain("tanh"),
        "sigmoid": nn.init.calculate_gain("sigmoid"),
        "identity": nn.init.calculate_gain("linear"),
    }
    for activation, expected in reference.items():
        assert gain(activation) == pytest.approx(expected)


def test_gain_is_defined_for_every_activation():
    assert all(gain(name) > 0 for name in ACTIVATIONS)
    with pytest.raises(InvalidParameterError, match="activation 'swish' is not known"):
        gain("swish")


def test_init_weight_rejects_a_vector():
    with pytest.raises(InvalidParameterError, match="at least 2 dimensions"):
        init_weight_(torch.empty(5), "kaiming")


def test_reset_layer_rejects_a_module_without_weight():
    with pytest.raises(InvalidParameterError, match="got ReLU"):
        reset_layer_(nn.ReLU(), "kaiming")


def test_init_same_generator_seed_gives_same_weights():
    torch.testing.assert_close(_weight("kaiming", seed=3), _weight("kaiming", seed=3))
    assert not torch.equal(_weight("kaiming", seed=3), _weight("kaiming", seed=4))
