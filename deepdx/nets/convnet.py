"""LeNet-5 style convolutional net: conv, activation and 2x2 pooling per layer, then an MLP head.

Symbols
-------
B, C, H, W   batch size, channels, height and width of the input (B, C, H, W)
C_l          output channels of conv layer l, ``channels[l - 1]``
k            ``kernel_size`` (square kernels, stride 1)
p_l          padding of conv layer l along one axis (the padding rule below)
H_l, W_l     map size after conv layer l and its pooling

Padding rule
------------
Along each axis, conv layer l pads by

- ``k // 2`` ("same": an odd kernel keeps the size) for the first layer when the image is
  smaller than 32, LeNet-5's native input, which MNIST's 28 reaches by exactly this padding;
- ``k // 2`` for a later layer when a valid convolution would leave fewer than 2 pixels to pool;
- 0 ("valid", as in LeNet-5) otherwise.

Each 2x2 pooling then halves the map (rounding down): with the defaults, 28x28 -> 14 -> 5
(LeNet-5's 16·5·5 = 400 features), 32x32 -> 14 -> 5, and 8x8 -> 4 -> 2 (16·2·2 = 64).
An image too small for the number of layers (some map would pool to 0) is an error.

Layer names
-----------
``features`` is an ``nn.Sequential`` of ``conv1, [bn1], act1, pool1, conv2, ...``; ``head``
is an :class:`~deepdx.nets.mlp.MLP` whose layers are named as in that module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets.init import _unknown_name, reset_layer_, resolve_init
from deepdx.nets.mlp import (
    MLP,
    HiddenLayer,
    _is_size,
    _option_problems,
    _raise_problems,
    _sizes_problem,
    make_activation,
)

__all__ = ["LENET_INPUT_SIZE", "POOLS", "ConvNet", "conv_plan"]

LENET_INPUT_SIZE = 32
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def conv_plan(size: int, n_layers: int, kernel_size: int) -> list[tuple[int, int]]:
    """Return the padding and the pooled map size of each conv layer along one axis.

    Parameters
    ----------
    size : int
        Length of the input along this axis (H or W).
    n_layers : int
        Number of conv layers.
    kernel_size : int
        k, the side of the square kernel.

    Returns
    -------
    list of (int, int)
        ``(p_l, size_l)`` per layer: padding, then the size after conv and 2x2 pooling. A size
        of 0 means the image is too small for that many layers.

    Notes
    -----
    size_l = floor((size_{l-1} + 2 p_l - k + 1) / 2), with p_l from the padding rule in the
    module docstring.

    Examples
    --------
    >>> conv_plan(28, 2, 5), conv_plan(8, 2, 5)
    ([(2, 14), (0, 5)], [(2, 4), (2, 2)])
    """
    plan = []
    for layer in range(n_layers):
        small_first = layer == 0 and size < LENET_INPUT_SIZE
        pad = kernel_size // 2 if small_first or size - kernel_size + 1 < 2 else 0
        size = (size + 2 * pad - kernel_size + 1) // 2  # conv (stride 1), then 2x2 pooling
        plan.append((pad, size))
    return plan


def _is_image_shape(shape: object) -> bool:
    """Return True for a (C, H, W) sequence of three positive ints."""
    return isinstance(shape, Sequence) and len(shape) == 3 and all(_is_size(s) for s in shape)


def _convnet_problems(
    input_shape: object, channels: object, *, kernel_size: object, pool: object
) -> list[str]:
    """Return the problems with the parameters only ConvNet has."""
    problems = []
    if not _is_image_shape(input_shape):
        problems.append(
            f"input_shape must be (C, H, W), three positive ints; got {input_shape!r}. Pass "
            "(1, H, W) for a single-channel image, or use MLP for flat or 1-D inputs."
        )
    channels_problem = _sizes_problem("channels", channels, allow_empty=False)
    if channels_problem:
        problems.append(channels_problem + " Use MLP for a net without conv layers.")
    if not _is_size(kernel_size):
        problems.append(f"kernel_size must be a positive int; got {kernel_size!r}.")
    if pool not in POOLS:
        problems.append(_unknown_name("pool", pool, POOLS))
    return problems


def _check_fits(input_shape: tuple[int, ...], plans: Sequence[list[tuple[int, int]]]) -> None:
    """Raise if some conv layer's pooled map would be empty."""
    sizes = [min(size for _, size in plan) for plan in plans]
    if min(sizes) >= 1:
        return
    fits = min(sum(size >= 1 for _, size in plan) for plan in plans)
    _, height, width = input_shape
    raise InvalidParameterError(
        f"ConvNet: an input of {height}x{width} pixels is too small for {len(plans[0])} conv "
        f"layers; each conv layer and its 2x2 pooling halve the map, and it supports at most "
        f"{fits}. Pass fewer channels or a larger image."
    )


def _conv_layers(
    in_channels: int,
    channels: Sequence[int],
    paddings: Sequence[tuple[int, int]],
    *,
    kernel_size: int,
    activation: str,
    pool: str,
    batch_norm: bool,
    bias: bool,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield conv{l}, [bn{l}], act{l}, pool{l} for each conv layer."""
    for index, (out_channels, padding) in enumerate(zip(channels, paddings, strict=True), start=1):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        yield f"conv{index}", conv  # (B, C_{l-1}, ., .) -> (B, C_l, ., .)
        if batch_norm:
            yield f"bn{index}", nn.BatchNorm2d(out_channels)
        yield f"act{index}", make_activation(activation)
        yield f"pool{index}", POOLS[pool](2)  # (B, C_l, H_l, W_l): the map halved
        in_channels = out_channels


class ConvNet(nn.Module):
    """LeNet-5 style conv net for images (B, C, H, W); works from 8x8 digits up.

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) of one image.
    n_outputs : int
        K, the width of the output layer (logits or regression values).
    channels : sequence of int, default=(6, 16)
        Output channels C_l of the conv layers (LeNet-5: 6 then 16).
    hidden : sequence of int, default=(120, 84)
        Hidden widths of the fully connected head (LeNet-5: 120 then 84); may be empty.
    kernel_size : int, default=5
        k, side of every square kernel; stride 1; padding follows the module's rule.
    activation : str, default="relu"
        Activation after every conv and hidden layer, one of
        :data:`~deepdx.nets.mlp.ACTIVATIONS`.
    pool : {"max", "avg"}, default="max"
        2x2 pooling after each conv layer (LeNet-5 used average pooling).
    dropout : float, default=0.0
        Dropout after each hidden activation of the head (not in the conv layers).
    batch_norm : bool, default=False
        ``BatchNorm2d`` after each conv and ``BatchNorm1d`` after each hidden Linear, before
        the activation.
    init : str, default="auto"
        Weight-init scheme, see :mod:`deepdx.nets.init`; conv fan-in is C_{l-1} k².
    bias : bool, default=True
        Give every conv and Linear layer a bias (initialised to zero).

    Attributes
    ----------
    features : nn.Sequential
        conv1, [bn1], act1, pool1, ... mapping (B, C, H, W) to (B, C_L, H_L, W_L).
    head : MLP
        Flattens (B, C_L, H_L, W_L) and maps it to (B, K).
    input_shape, n_outputs, channels, hidden, kernel_size
        The sizes, as given; :meth:`get_params` returns every hyperparameter.
    activation, pool, dropout, batch_norm, init, bias
        The options, as given.

    Raises
    ------
    InvalidParameterError
        If ``input_shape`` is not (C, H, W), a size is not positive, a name is unknown, or the
        image is too small for the number of conv layers.

    Notes
    -----
    Conv layer l: h_l = pool(f(BN(W_l * h_{l-1} + b_l))), with W_l of shape (C_l, C_{l-1}, k, k)
    and ``*`` the 2-D cross-correlation; then y = head(flatten(h_L)).

    Examples
    --------
    >>> net = ConvNet((1, 28, 28), 10)
    >>> net.head.input_shape, net(torch.zeros(2, 1, 28, 28)).shape
    ((16, 5, 5), torch.Size([2, 10]))
    >>> ConvNet((1, 8, 8), 10)(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    >>> [layer.name for layer in net.hidden_layers()]
    ['features.act1', 'features.act2', 'head.layers.act1', 'head.layers.act2']
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        channels: Sequence[int] = (6, 16),
        hidden: Sequence[int] = (120, 84),
        *,
        kernel_size: int = 5,
        activation: str = "relu",
        pool: str = "max",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "auto",
        bias: bool = True,
    ) -> None:
        super().__init__()
        problems = _convnet_problems(input_shape, channels, kernel_size=kernel_size, pool=pool)
        problems += _option_problems(activation=activation, dropout=dropout, init=init)
        _raise_problems("ConvNet", problems)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_outputs, self.kernel_size = int(n_outputs), int(kernel_size)
        self.channels, self.hidden = tuple(int(c) for c in channels), tuple(int(h) for h in hidden)
        self.activation, self.pool, self.dropout = activation, pool, float(dropout)
        self.batch_norm, self.init, self.bias = bool(batch_norm), init, bool(bias)
        self.features, features_shape = self._build_features()
        self.head = MLP(
            features_shape,
            n_outputs,
            self.hidden,
            activation=activation,
            dropout=dropout,
            batch_norm=batch_norm,
            init=init,
            bias=bias,
        )
        self.reset_parameters()

    def _build_features(self) -> tuple[nn.Sequential, tuple[int, int, int]]:
        """Return the conv stack and the shape (C_L, H_L, W_L) of one sample it outputs."""
        n_layers = len(self.channels)
        plans = [conv_plan(size, n_layers, self.kernel_size) for size in self.input_shape[1:]]
        _check_fits(self.input_shape, plans)
        paddings = [(pad_h, pad_w) for (pad_h, _), (pad_w, _) in zip(*plans, strict=True)]
        layers = _conv_layers(
            self.input_shape[0],
            self.channels,
            paddings,
            kernel_size=self.kernel_size,
            activation=self.activation,
            pool=self.pool,
            batch_norm=self.batch_norm,
            bias=self.bias,
        )
        (_, height), (_, width) = plans[0][-1], plans[1][-1]
        return nn.Sequential(OrderedDict(layers)), (self.channels[-1], height, width)

    def forward(self, x: Tensor) -> Tensor:
        """Map a batch (B, C, H, W) to outputs (B, n_outputs)."""
        return self.head(self.features(x))  # (B, C_L, H_L, W_L) -> (B, K)

    def hidden_layers(self) -> list[HiddenLayer]:
        """Return the conv layers, then the head's hidden layers, named inside this net.

        Returns
        -------
        list of HiddenLayer
            ``features.act{l}`` for each conv layer, then ``head.layers.act{l}``.

        Examples
        --------
        >>> len(ConvNet((1, 8, 8), 3, channels=(4,), hidden=(5,)).hidden_layers())
        2
        """
        convs = [
            HiddenLayer(
                index,
                f"features.act{index}",
                self.features.get_submodule(f"conv{index}"),
                self.features.get_submodule(f"act{index}"),
            )
            for index in range(1, len(self.channels) + 1)
        ]
        head = [
            layer._replace(index=len(convs) + layer.index, name=f"head.{layer.name}")
            for layer in self.head.hidden_layers()
        ]
        return convs + head

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw every weight from ``init``, zero the biases, and reset batch norms.

        Parameters
        ----------
        generator : torch.Generator or None, default=None
            Source of randomness; None uses torch's global RNG, like ``torch.nn``.

        Examples
        --------
        >>> net = ConvNet((1, 8, 8), 3, channels=(4,), hidden=())
        >>> net.reset_parameters(generator=torch.Generator().manual_seed(0))
        >>> bool((net.features.conv1.bias == 0).all())
        True
        """
        scheme = resolve_init(self.init, self.activation)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                reset_layer_(module, scheme, activation=self.activation, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
        self.head.reset_parameters(generator=generator)

    def get_params(self) -> dict[str, object]:
        """Return the constructor's arguments, so ``ConvNet(**params)`` rebuilds a fresh copy.

        Returns
        -------
        dict
            input_shape, n_outputs, channels, hidden, kernel_size, activation, pool, dropout,
            batch_norm, init, bias.

        Examples
        --------
        >>> ConvNet((1, 8, 8), 3).get_params()["channels"]
        (6, 16)
        """
        names = (
            "input_shape",
            "n_outputs",
            "channels",
            "hidden",
            "kernel_size",
            "activation",
            "pool",
            "dropout",
            "batch_norm",
            "init",
            "bias",
        )
        return {name: getattr(self, name) for name in names}
