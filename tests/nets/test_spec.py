from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets import (
    MLP,
    ConvNet,
    ModelSpec,
    build_model,
    count_parameters,
    describe_spec,
    parse_spec,
)


def _write(tmp_path: Path, source: str, name: str = "models.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


USER_MODELS = """
    import math
    import torch
    from torch import nn

    def make_net(input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs))

    def wrong_width(input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs + 1))

    def not_a_module(input_shape, n_outputs):
        return "a string"

    def positional_only(shape, outputs):
        return nn.Identity()

    def no_flatten(input_shape, n_outputs):
        return nn.Linear(5, n_outputs)

    def with_batch_norm(input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(math.prod(input_shape)),
                             nn.Linear(math.prod(input_shape), n_outputs))

    class Net(nn.Module):
        def __init__(self, input_shape, n_outputs):
            super().__init__()
            self.linear = nn.Linear(math.prod(input_shape), n_outputs)

        def forward(self, x):
            return self.linear(x.flatten(1))

    _private = 3
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mlp", ModelSpec("mlp")),
        ("mlp:256,128", ModelSpec("mlp", sizes=(256, 128))),
        ("mlp:256, 128:tanh", ModelSpec("mlp", sizes=(256, 128), activation="tanh")),
        ("linear", ModelSpec("linear")),
        ("conv", ModelSpec("conv")),
        (" conv:6,16 ", ModelSpec("conv", sizes=(6, 16))),
        ("conv:6,16:gelu", ModelSpec("conv", sizes=(6, 16), activation="gelu")),
        (
            "nets/models.py:make_net",
            ModelSpec("file", file=Path("nets/models.py"), function="make_net"),
        ),
    ],
)
def test_parse_spec_valid(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mpl", "model kind 'mpl' is not known.*did you mean 'mlp'"),
        ("", "model kind '' is not known"),
        ("mlp:", "has sizes ''; expected comma-separated positive ints"),
        ("mlp:256,x", "has sizes '256,x'"),
        ("mlp:-3", "has sizes '-3'"),
        ("mlp:0,4", r"sizes must be a non-empty sequence of positive ints; got \(0, 4\)"),
        ("linear:32", "too many ':' parts: linear takes no options"),
        ("mlp:3:tanh:1", "too many ':' parts"),
        ("models.py", "names a file but no function"),
        ("models.py:2net", "'2net', which is not a Python identifier"),
    ],
)
def test_parse_spec_invalid(spec, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_spec(spec)


def test_build_model_mlp_defaults():
    net = build_model("mlp", (1, 8, 8), 10)
    assert isinstance(net, MLP)
    assert (net.hidden, net.activation) == ((256,), "relu")


def test_build_model_mlp_sizes_and_activation():
    net = build_model("mlp:32,16:sigmoid", (20,), 3)
    assert isinstance(net, MLP)
    assert (net.hidden, net.activation) == ((32, 16), "sigmoid")


def test_build_model_unknown_activation_suggests_closest():
    with pytest.raises(InvalidParameterError, match="did you mean 'softplus'"):
        build_model("mlp:8:softpls", (4,), 2)


@pytest.mark.parametrize(("spec", "channels"), [("conv", (6, 16)), ("conv:4,8,8", (4, 8, 8))])
def test_build_model_conv(spec, channels):
    net = build_model(spec, (1, 28, 28), 10)
    assert isinstance(net, ConvNet)
    assert net.channels == channels
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_build_model_conv_on_flat_input_explains_shape():
    with pytest.raises(InvalidParameterError, match=r"\(C, H, W\).*use MLP"):
        build_model("conv", (64,), 10)


@pytest.mark.parametrize(
    ("input_shape", "n_outputs", "message"),
    [((), 2, "input_shape must be a non-empty"), ((4,), 0, "n_outputs must be a positive int")],
)
def test_build_model_rejects_bad_shapes(input_shape, n_outputs, message):
    with pytest.raises(InvalidParameterError, match=message):
        build_model("mlp", input_shape, n_outputs)


def test_build_model_linear_equals_a_single_linear_layer_after_flatten():
    net = build_model("linear", (2, 3, 4), 5)
    linear = nn.Linear(24, 5)
    linear.load_state_dict({"weight": net.layers.output.weight, "bias": net.layers.output.bias})
    x = torch.randn(7, 2, 3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(x), linear(x.reshape(7, 24)))
    assert count_parameters(net) == count_parameters(linear) == 24 * 5 + 5


@pytest.mark.parametrize("spec", ["mlp:16", "conv", "linear"])
def test_build_model_same_seed_same_weights(spec):
    first, second = (build_model(spec, (1, 8, 8), 3, seed=5) for _ in range(2))
    assert all(
        torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True)
    )
    other = build_model(spec, (1, 8, 8), 3, seed=6)
    assert not torch.equal(next(first.parameters()), next(other.parameters()))


@pytest.mark.parametrize("seed", [0, None])
def test_build_model_leaves_global_rng_untouched(seed):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("mlp:8", (4,), 2, seed=seed)
    torch.testing.assert_close(torch.rand(3), expected)


def test_build_model_seed_none_draws_fresh_weights():
    first, second = (build_model("mlp:8", (4,), 2, seed=None) for _ in range(2))
    assert not torch.equal(first.layers.linear1.weight, second.layers.linear1.weight)


@pytest.mark.parametrize("function", ["make_net", "Net"])
def test_build_model_from_user_file(tmp_path, function):
    path = _write(tmp_path, USER_MODELS)
    net = build_model(f"{path}:{function}", (1, 4, 4), 3)
    assert net(torch.zeros(6, 1, 4, 4)).shape == (6, 3)
    again = build_model(f"{path}:{function}", (1, 4, 4), 3)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters(), strict=True))


def test_build_model_from_user_file_sees_edits(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    before = build_model(f"{path}:make_net", (4,), 2)
    _write(
        tmp_path,
        USER_MODELS.replace("nn.Flatten(), nn.Linear", "nn.Flatten(), nn.ReLU(), nn.Linear"),
    )
    after = build_model(f"{path}:make_net", (4,), 2)
    assert len(after) == len(before) + 1


def test_build_model_user_file_wrong_output_shape(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    with pytest.raises(InvalidParameterError, match=r"returned shape \(2, 4\); expected \(2, 3\)"):
        build_model(f"{path}:wrong_width", (1, 4, 4), 3)


def test_build_model_user_file_forward_failure(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    with pytest.raises(
        InvalidParameterError,
        match=r"forward pass on a zero batch of shape "
        r"\(2, 1, 4, 4\) failed with RuntimeError",
    ):
        build_model(f"{path}:no_flatten", (1, 4, 4), 3)


def test_build_model_user_file_missing_function_lists_public_callables(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    with pytest.raises(InvalidParameterError) as excinfo:
        build_model(f"{path}:make_nte", (4,), 2)
    message = str(excinfo.value)
    assert "function 'make_nte' is not known" in message
    assert "Net, make_net, no_flatten, not_a_module" in message  # defined here, not imported
    assert "_private" not in message and "Linear" not in message
    assert "did you mean 'make_net'" in message


def test_build_model_user_file_without_callables(tmp_path):
    path = _write(tmp_path, "WIDTH = 3\n", name="empty.py")
    with pytest.raises(InvalidParameterError, match="defines no public functions or classes"):
        build_model(f"{path}:make_net", (4,), 2)


def test_build_model_user_file_missing(tmp_path):
    with pytest.raises(InvalidParameterError, match="model file .*absent.py' does not exist"):
        build_model(f"{tmp_path / 'absent.py'}:make_net", (4,), 2)


def test_build_model_user_function_must_return_a_module(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    with pytest.raises(InvalidParameterError, match="must return a torch.nn.Module; got str"):
        build_model(f"{path}:not_a_module", (4,), 2)


def test_build_model_user_function_must_take_the_keywords(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    with pytest.raises(
        InvalidParameterError,
        match=r"input_shape and n_outputs; its signature "
        r"is \(shape, outputs\)",
    ):
        build_model(f"{path}:positional_only", (4,), 2)


def test_build_model_dry_run_changes_neither_mode_nor_batch_norm_statistics(tmp_path):
    path = _write(tmp_path, USER_MODELS)
    net = build_model(f"{path}:with_batch_norm", (4,), 2)
    batch_norm = net[1]
    assert net.training and batch_norm.training
    assert int(batch_norm.num_batches_tracked) == 0
    assert torch.equal(batch_norm.running_mean, torch.zeros(4))


def test_count_parameters_matches_layer_formula():
    net = build_model("mlp:32,16", (1, 8, 8), 10)
    expected = (64 + 1) * 32 + (32 + 1) * 16 + (16 + 1) * 10
    assert count_parameters(net) == expected
    net.layers.linear1.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == expected - (64 + 1) * 32


def test_count_parameters_counts_shared_tensors_once():
    layer = nn.Linear(3, 3)
    assert count_parameters(nn.Sequential(layer, layer)) == 12


def test_describe_spec_lists_every_form():
    text = describe_spec()
    for form in ("mlp:256,128:tanh", "linear", "conv:6,16", "FILE.py:FUNCTION"):
        assert form in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_build_model_empty_activation_is_an_error_not_relu():
    with pytest.raises(InvalidParameterError, match="activation '' is not known"):
        build_model("mlp:8:", (4,), 2)
