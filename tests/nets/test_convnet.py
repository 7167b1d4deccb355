from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets import ConvNet, conv_plan


def _build(*args, seed: int = 0, **kwargs) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(*args, **kwargs)


@pytest.mark.parametrize(
    "input_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 12, 20), (2, 64, 9)], ids=str
)
def test_convnet_output_shape(input_shape):
    net = _build(input_shape, 10)
    x = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (3, 10)


@pytest.mark.parametrize(
    ("input_shape", "kwargs"),
    [
        ((1, 8, 8), {}),
        ((1, 28, 28), {}),
        ((1, 28, 28), {"channels": (4, 4, 4), "kernel_size": 3}),
        ((3, 17, 31), {"channels": (2, 3), "kernel_size": 4}),
        ((1, 100, 6), {"channels": (2,), "kernel_size": 7}),
    ],
    ids=str,
)
def test_convnet_head_input_matches_dry_run(input_shape, kwargs):
    net = _build(input_shape, 2, **kwargs)
    with torch.no_grad():
        features = net.features(torch.zeros(1, *input_shape))
    assert net.head.input_shape == tuple(features.shape[1:])
    assert min(features.shape[2:]) >= 1


def test_convnet_on_mnist_size_has_lenet5_feature_count():
    net = _build((1, 28, 28), 10)
    assert net.head.input_shape == (16, 5, 5)  # LeNet-5: 16 maps of 5x5 = 400 features
    assert net.features.conv1.padding == (2, 2)  # MNIST padded to LeNet's 32x32
    assert net.features.conv2.padding == (0, 0)


def test_conv_plan_is_valid_padding_on_lenet_native_size():
    assert conv_plan(32, 2, 5) == [(0, 14), (0, 5)]


def test_conv_plan_pads_small_maps_so_they_survive():
    assert conv_plan(8, 2, 5) == [(2, 4), (2, 2)]
    assert [size for _, size in conv_plan(8, 4, 5)] == [4, 2, 1, 0]


@pytest.mark.parametrize("input_shape", [(64,), (8, 8), (1, 1, 8, 8), (1, 0, 8)], ids=str)
def test_convnet_rejects_input_that_is_not_chw(input_shape):
    with pytest.raises(InvalidParameterError, match=r"input_shape must be \(C, H, W\)"):
        ConvNet(input_shape, 10)


def test_convnet_rejects_image_too_small_for_its_layers():
    with pytest.raises(InvalidParameterError, match="8x8 pixels is too small.*at most 3"):
        ConvNet((1, 8, 8), 10, channels=(4, 4, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": ()}, "channels must be a non-empty sequence.*Use MLP"),
        ({"kernel_size": 0}, "kernel_size must be a positive int; got 0"),
        ({"pool": "mean"}, "pool 'mean' is not known; expected one of max, avg"),
        ({"activation": "tanhh"}, "did you mean 'tanh'"),
        ({"dropout": 1.5}, r"dropout must be a float in \[0, 1\)"),
    ],
    ids=str,
)
def test_convnet_rejects_invalid_parameter(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        ConvNet((1, 8, 8), 10, **kwargs)


def test_convnet_batch_norm_and_pool_kind_as_asked():
    net = _build((1, 8, 8), 3, pool="avg", batch_norm=True)
    names = [name for name, _ in net.features.named_children()]
    assert names == ["conv1", "bn1", "act1", "pool1", "conv2", "bn2", "act2", "pool2"]
    assert isinstance(net.features.pool1, nn.AvgPool2d)
    assert isinstance(net.head.layers.bn1, nn.BatchNorm1d)
    assert isinstance(_build((1, 8, 8), 3).features.pool2, nn.MaxPool2d)


def test_convnet_dropout_only_in_head():
    net = _build((1, 8, 8), 3, dropout=0.5)
    assert not any(isinstance(m, nn.Dropout) for m in net.features.modules())
    assert sum(isinstance(m, nn.Dropout) for m in net.head.modules()) == 2


def test_convnet_hidden_layers_name_conv_then_head_activations():
    net = _build((1, 28, 28), 10, channels=(3, 5), hidden=(7,))
    layers = net.hidden_layers()
    assert [(h.index, h.name) for h in layers] == [
        (1, "features.act1"),
        (2, "features.act2"),
        (3, "head.layers.act1"),
    ]
    assert all(net.get_submodule(h.name) is h.activation for h in layers)
    assert [type(h.layer) for h in layers] == [nn.Conv2d, nn.Conv2d, nn.Linear]


def test_convnet_conv_init_uses_receptive_field_fan_in():
    net = _build((64, 10, 10), 2, channels=(64,), hidden=(), kernel_size=3, init="kaiming")
    weight = net.features.conv1.weight  # (64, 64, 3, 3): fan_in = 64 * 9
    assert abs(weight.std().item() / math.sqrt(2.0 / (64 * 9)) - 1.0) < 0.1
    assert torch.equal(net.features.conv1.bias, torch.zeros(64))


def test_convnet_get_params_rebuilds_the_same_architecture():
    net = _build((1, 12, 12), 4, channels=(3, 5), hidden=(6,), kernel_size=3, pool="avg")
    copy = ConvNet(**net.get_params())
    assert str(copy) == str(net)


def test_convnet_gradcheck_float64():
    net = _build(
        (1, 6, 6), 3, channels=(2, 2), hidden=(3,), kernel_size=3, activation="tanh", pool="avg"
    ).double()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x.requires_grad_()
    # gradcheck perturbs each input in place, the parameters included, so the closure sees them.
    assert torch.autograd.gradcheck(lambda x, *params: net(x), (x, *net.parameters()))
