from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepdx._random import make_generator, seeded_torch
from deepdx.exceptions import InvalidParameterError
from deepdx.nets.autoencoder import DeepAutoencoder
from deepdx.nets.init import SPARSE_FAN_IN, init_weight_

CURVES = (400, 200, 100, 50, 25, 6)


def _build(input_shape=(1, 28, 28), sizes=CURVES, *, seed=0, **kwargs) -> DeepAutoencoder:
    with seeded_torch(seed):
        return DeepAutoencoder(input_shape, sizes, **kwargs)


def _linears(sequential: nn.Sequential) -> list[nn.Linear]:
    return [m for m in sequential if isinstance(m, nn.Linear)]


def test_autoencoder_curves_architecture_has_the_known_parameter_count():
    net = _build()
    widths = [784, *CURVES, *reversed(CURVES[:-1]), 784]  # 784-400-...-6-...-400-784
    expected = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert expected == 842_340  # 2 * 420,000 weights + 2,340 biases
    assert sum(p.numel() for p in net.parameters()) == expected


def test_autoencoder_decoder_mirrors_the_encoder():
    net = _build()
    encoder = [(m.in_features, m.out_features) for m in _linears(net.encoder)]
    decoder = [(m.in_features, m.out_features) for m in _linears(net.decoder)]
    assert encoder == [(784, 400), (400, 200), (200, 100), (100, 50), (50, 25), (25, 6)]
    assert decoder == [(b, a) for a, b in reversed(encoder)]


def test_autoencoder_shapes_of_code_and_logits():
    net = _build()
    x = torch.rand(3, 1, 28, 28)
    assert net.encode(x).shape == (3, 6)
    assert net.decode(torch.zeros(3, 6)).shape == (3, 784)
    assert net(x).shape == (3, 784)


def test_autoencoder_forward_is_decode_of_encode():
    net = _build((5,), (4, 3, 2))
    x = torch.rand(7, 5, generator=make_generator(0))
    assert torch.equal(net(x), net.decode(net.encode(x)))


def test_autoencoder_forward_matches_a_hand_written_net():
    # logistic hidden units, linear code units, no activation on the output logits
    net = _build((5,), (4, 2)).double()
    x = torch.rand(6, 5, generator=make_generator(1), dtype=torch.float64)
    e1, code, d1, out = _linears(net.encoder) + _linears(net.decoder)
    z = code(torch.sigmoid(e1(x)))  # (6, 2) linear code
    expected = out(torch.sigmoid(d1(z)))  # (6, 5) logits
    torch.testing.assert_close(net.encode(x), z, rtol=0, atol=1e-15)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-15)


def test_autoencoder_layer_names_follow_the_mlp_convention():
    net = _build((5,), (4, 3, 2))
    assert list(dict(net.encoder.named_children())) == [
        "flatten", "linear1", "act1", "linear2", "act2", "code", "code_act"
    ]  # fmt: skip
    assert list(dict(net.decoder.named_children())) == [
        "linear1", "act1", "linear2", "act2", "output"
    ]  # fmt: skip
    assert isinstance(net.encoder.code_act, nn.Identity)
    assert [h.name for h in net.hidden_layers()] == [
        "encoder.act1", "encoder.act2", "encoder.code_act", "decoder.act1", "decoder.act2"
    ]  # fmt: skip


def test_autoencoder_get_params_rebuilds_the_same_architecture():
    net = _build((5,), (4, 2), activation="tanh", code_activation="sigmoid", init="lecun")
    copy = DeepAutoencoder(**net.get_params())  # type: ignore[arg-type]  # the constructor's own values
    assert repr(copy) == repr(net)


def test_autoencoder_reset_parameters_is_reproducible_from_a_generator():
    a, b = _build(seed=1, init="sparse"), _build(seed=2, init="sparse")
    a.reset_parameters(generator=make_generator(7))
    b.reset_parameters(generator=make_generator(7))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert all(bool((layer.bias == 0).all()) for layer in _linears(a.encoder))


def test_autoencoder_rejects_invalid_arguments_in_one_message():
    with pytest.raises(InvalidParameterError) as info:
        DeepAutoencoder((0, 28), (), activation="sigmod", code_activation="idenity", init="spars")
    message = str(info.value)
    for fragment in (
        "input_shape must be",
        "encoder_sizes must be a non-empty sequence",
        "did you mean 'sigmoid'",
        "code_activation 'idenity' is not known",
        "did you mean 'sparse'",
    ):
        assert fragment in message


def test_autoencoder_rejects_an_int_for_encoder_sizes():
    with pytest.raises(InvalidParameterError, match=r"Write \(6,\) instead"):
        DeepAutoencoder((4,), 6)  # type: ignore[arg-type]  # the mistake under test


# ----------------------------------------------------------------------------- sparse init


def test_sparse_init_gives_each_unit_exactly_15_nonzero_inputs():
    net = _build(init="sparse")
    for layer in _linears(net.encoder) + _linears(net.decoder):
        nonzero = (layer.weight != 0).sum(dim=1)  # (fan_out,)
        expected = min(SPARSE_FAN_IN, layer.in_features)  # all inputs when fan-in < 15
        assert bool((nonzero == expected).all()), (layer, nonzero.unique())
        assert bool((layer.bias == 0).all())


def test_sparse_init_nonzero_weights_are_standard_normal():
    weight = init_weight_(torch.empty(400, 784), "sparse", generator=make_generator(0))
    values = weight[weight != 0]  # (6000,)
    k = values.numel()
    assert k == 400 * SPARSE_FAN_IN
    assert abs(values.mean().item()) < 4 / math.sqrt(k)  # 4 sigma of the mean of N(0, 1)
    assert abs(values.var().item() - 1.0) < 4 * math.sqrt(2 / k)  # 4 sigma of the variance


def test_sparse_init_spreads_the_chosen_inputs_over_the_fan_in():
    weight = init_weight_(torch.empty(2000, 30), "sparse", generator=make_generator(0))
    counts = (weight != 0).sum(dim=0).double()  # (30,) units using each input
    p = SPARSE_FAN_IN / 30  # each unit picks 15 of 30 inputs uniformly
    sigma = math.sqrt(2000 * p * (1 - p))
    assert bool(((counts - 2000 * p).abs() < 5 * sigma).all())


def test_sparse_init_of_a_convolution_counts_per_output_channel():
    weight = init_weight_(torch.empty(8, 3, 5, 5), "sparse", generator=make_generator(0))
    assert (weight != 0).flatten(1).sum(dim=1).tolist() == [SPARSE_FAN_IN] * 8
