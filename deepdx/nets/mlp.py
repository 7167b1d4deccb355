"""Multilayer perceptron: flatten, then L hidden layers, then a linear output layer.

Symbols
-------
B          batch size
d          input features, ``prod(input_shape)``
H_l        width of hidden layer l, ``hidden[l - 1]``
K          outputs, ``n_outputs`` (logits for classification, values for regression)
W_l, b_l   weight (H_l, H_{l-1}) and bias (H_l,) of ``linear{l}``
a_l        pre-activation W_l h_{l-1} + b_l, batch-normalised when ``batch_norm``
h_l        activation f(a_l), with h_0 = flatten(x)

Layer names
-----------
``MLP.layers`` is an ``nn.Sequential`` whose children are named so that forward hooks by
name are easy::

    flatten, linear1, [bn1], act1, [drop1], ..., linearL, [bnL], actL, [dropL], output

A forward hook on ``act{l}`` sees a_l as its input and h_l as its output;
:meth:`MLP.hidden_layers` lists them.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn

from deepdx.exceptions import InvalidParameterError
from deepdx.nets.init import (
    LEAKY_RELU_SLOPE,
    _unknown_name,
    init_problem,
    reset_layer_,
    resolve_init,
)

__all__ = ["ACTIVATIONS", "MLP", "HiddenLayer", "make_activation"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, LEAKY_RELU_SLOPE),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


class HiddenLayer(NamedTuple):
    """One hidden layer as a monitor sees it.

    Attributes
    ----------
    index : int
        1-based position among the net's hidden layers.
    name : str
        Qualified name of the activation module inside the net, for ``net.get_submodule(name)``.
    layer : nn.Module
        The ``nn.Linear`` or ``nn.Conv2d`` that computes the layer's weighted sum.
    activation : nn.Module
        The activation module: its forward-hook input is a_l, its output is h_l.
    """

    index: int
    name: str
    layer: nn.Module
    activation: nn.Module


def make_activation(name: str) -> nn.Module:
    """Return a new activation module looked up by ``name`` in :data:`ACTIVATIONS`.

    Parameters
    ----------
    name : str
        relu, leaky_relu (slope 0.01), tanh, sigmoid, gelu, elu, softplus or identity.

    Returns
    -------
    nn.Module
        A fresh, not-in-place module, so hooks see a_l intact.

    Raises
    ------
    InvalidParameterError
        If ``name`` is unknown; the message suggests the closest name.

    Examples
    --------
    >>> make_activation("tanh")(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    """
    if name not in ACTIVATIONS:
        raise InvalidParameterError(_unknown_name("activation", name, ACTIVATIONS))
    return ACTIVATIONS[name]()


# ---------------------------------------------------------------- validation


def _is_size(value: object) -> bool:
    """Return True for a positive integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def _sizes_problem(what: str, values: object, *, allow_empty: bool) -> str | None:
    """Return why ``values`` is not a sequence of positive ints, or None."""
    expected = "sequence of positive ints" if allow_empty else "non-empty sequence of positive ints"
    if isinstance(values, numbers.Integral):
        return f"{what} must be a {expected}; got the int {values!r}. Write ({values},) instead."
    if not isinstance(values, Sequence) or isinstance(values, str):
        return f"{what} must be a {expected}; got {values!r}."
    if (not values and not allow_empty) or not all(_is_size(v) for v in values):
        return f"{what} must be a {expected}; got {values!r}."
    return None


def _option_problems(*, activation: object, dropout: object, init: object) -> list[str]:
    """Return the problems with the options MLP and ConvNet share."""
    problems = []
    if activation not in ACTIVATIONS:
        problems.append(_unknown_name("activation", activation, ACTIVATIONS))
    if not isinstance(dropout, numbers.Real) or not 0.0 <= float(dropout) < 1.0:
        problems.append(f"dropout must be a float in [0, 1), 0 for none; got {dropout!r}.")
    init_message = init_problem(init)
    if init_message is not None:
        problems.append(init_message)
    return problems


def _raise_problems(owner: str, problems: list[str]) -> None:
    """Raise one InvalidParameterError listing every problem, if there are any."""
    if problems:
        raise InvalidParameterError(f"{owner}: " + " ".join(problems))


# ---------------------------------------------------------------- the network


def _mlp_layers(
    d: int,
    hidden: Sequence[int],
    n_outputs: int,
    *,
    activation: str,
    dropout: float,
    batch_norm: bool,
    bias: bool,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield (name, module) pairs: flatten, linear/bn/act/drop per hidden layer, output."""
    yield "flatten", nn.Flatten()  # (B, *input_shape) -> (B, d)
    width = d
    for index, units in enumerate(hidden, start=1):
        yield f"linear{index}", nn.Linear(width, units, bias=bias)  # (B, H_{l-1}) -> (B, H_l)
        if batch_norm:
            yield f"bn{index}", nn.BatchNorm1d(units)
        yield f"act{index}", make_activation(activation)
        if dropout > 0:
            yield f"drop{index}", nn.Dropout(dropout)
        width = units
    yield "output", nn.Linear(width, n_outputs, bias=bias)  # (B, H_L) -> (B, K)


class MLP(nn.Module):
    """Fully connected feed-forward net on flattened inputs.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; inputs are (B, *input_shape) and are flattened to (B, d).
    n_outputs : int
        K, the width of the output layer (no activation: logits or regression values).
    hidden : sequence of int, default=(256,)
        Widths H_1..H_L of the hidden layers; empty for a linear model.
    activation : str, default="relu"
        Hidden activation f, one of :data:`ACTIVATIONS`.
    dropout : float, default=0.0
        Probability of zeroing each hidden activation in training; 0 adds no Dropout module.
    batch_norm : bool, default=False
        Insert ``BatchNorm1d`` between each hidden Linear and its activation.
    init : str, default="auto"
        Weight-init scheme, see :mod:`deepdx.nets.init` (Kaiming for the ReLU family, Xavier
        for tanh, sigmoid and identity). ``"zeros"`` is refused: it never breaks symmetry.
    bias : bool, default=True
        Give every Linear layer a bias (initialised to zero).

    Attributes
    ----------
    layers : nn.Sequential
        The modules, named as in the module docstring (``linear1``, ``act1``, ..., ``output``).
    input_shape, n_outputs, hidden, activation, dropout, batch_norm, init, bias
        The hyperparameters, as given; :meth:`get_params` returns them as keyword arguments.

    Raises
    ------
    InvalidParameterError
        Listing every invalid parameter: non-positive sizes, dropout outside [0, 1),
        unknown activation or init.

    Notes
    -----
    h_0 = flatten(x);  a_l = W_l h_{l-1} + b_l;  h_l = dropout(f(BN(a_l)));
    y = W_{L+1} h_L + b_{L+1}.
    Parameters: Σ_l (H_{l-1} + 1) H_l with H_0 = d and H_{L+1} = K (bias included).

    Examples
    --------
    >>> net = MLP((1, 8, 8), 10, hidden=(32, 16), activation="tanh", dropout=0.1)
    >>> net(torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    >>> [layer.name for layer in net.hidden_layers()]
    ['layers.act1', 'layers.act2']
    >>> wider = MLP(**{**net.get_params(), "hidden": (64, 16)})
    >>> wider.hidden, wider.activation
    ((64, 16), 'tanh')
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        hidden: Sequence[int] = (256,),
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "auto",
        bias: bool = True,
    ) -> None:
        super().__init__()
        problems = [
            _sizes_problem("input_shape", input_shape, allow_empty=False),
            None
            if _is_size(n_outputs)
            else f"n_outputs must be a positive int; got {n_outputs!r}.",
            _sizes_problem("hidden", hidden, allow_empty=True),
        ]
        options = _option_problems(activation=activation, dropout=dropout, init=init)
        _raise_problems("MLP", [p for p in problems if p is not None] + options)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_outputs = int(n_outputs)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation, self.dropout, self.init = activation, float(dropout), init
        self.batch_norm, self.bias = bool(batch_norm), bool(bias)
        d = math.prod(self.input_shape)
        layers = _mlp_layers(
            d,
            self.hidden,
            self.n_outputs,
            activation=activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            bias=self.bias,
        )
        self.layers = nn.Sequential(OrderedDict(layers))
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """Map a batch (B, *input_shape) to outputs (B, n_outputs)."""
        return self.layers(x)  # (B, K)

    def hidden_layers(self) -> list[HiddenLayer]:
        """Return the hidden layers in order, with the qualified name of each activation.

        Returns
        -------
        list of HiddenLayer
            One per entry of ``hidden``; empty for a linear model.

        Examples
        --------
        >>> MLP((4,), 2, hidden=(3,)).hidden_layers()[0].name
        'layers.act1'
        """
        return [
            HiddenLayer(
                index,
                f"layers.act{index}",
                self.layers.get_submodule(f"linear{index}"),
                self.layers.get_submodule(f"act{index}"),
            )
            for index in range(1, len(self.hidden) + 1)
        ]

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw every weight from ``init``, zero the biases, and reset batch norms.

        Parameters
        ----------
        generator : torch.Generator or None, default=None
            Source of randomness; None uses torch's global RNG, like ``torch.nn``.

        Examples
        --------
        >>> net = MLP((4,), 2, hidden=(3,))
        >>> net.reset_parameters(generator=torch.Generator().manual_seed(0))
        >>> bool((net.layers.linear1.bias == 0).all())
        True
        """
        scheme = resolve_init(self.init, self.activation)
        for hidden in self.hidden_layers():
            reset_layer_(hidden.layer, scheme, activation=self.activation, generator=generator)
        reset_layer_(self.layers.get_submodule("output"), scheme, generator=generator)
        for module in self.layers:
            if isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()

    def get_params(self) -> dict[str, object]:
        """Return the constructor's arguments, so ``MLP(**params)`` rebuilds a fresh copy.

        Returns
        -------
        dict
            input_shape, n_outputs, hidden, activation, dropout, batch_norm, init, bias.

        Examples
        --------
        >>> MLP((4,), 2, hidden=(3,)).get_params()["hidden"]
        (3,)
        """
        return {
            "input_shape": self.input_shape,
            "n_outputs": self.n_outputs,
            "hidden": self.hidden,
            "activation": self.activation,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "init": self.init,
            "bias": self.bias,
        }
