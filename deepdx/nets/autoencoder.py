"""Deep autoencoder: an MLP encoder down to a small code, and its mirror image as decoder.

Hinton & Salakhutdinov (2006) and Martens (2010) train 784-400-200-100-50-25-6 encoders with
a mirrored 6-25-50-100-200-400-784 decoder on the CURVES images: logistic hidden units, linear
code units, logistic output units. The net returns the output *logits*; ``sigmoid`` of them
are the reconstructed pixels, so the training loss can be the matching cross-entropy
(``binary_cross_entropy_with_logits``) or the squared error of ``sigmoid(logits)``.

Symbols
-------
B          batch size
d          input features, ``prod(input_shape)``; also the reconstruction's width
H_l        width of encoder layer l, ``encoder_sizes[l - 1]``; H_0 = d
L          number of encoder layers, ``len(encoder_sizes)``; the code has H_L units
z          the code, (B, H_L)
x̂          reconstruction logits, (B, d); the pixels are sigmoid(x̂)

Layer names
-----------
Two ``nn.Sequential`` children, named like :class:`~deepdx.nets.mlp.MLP`'s layers::

    encoder: flatten, linear1, act1, ..., linear{L-1}, act{L-1}, code, code_act
    decoder: linear1, act1, ..., linear{L-1}, act{L-1}, output

Decoder layer l maps H_{L-l+1} to H_{L-l}: the decoder's widths are the encoder's reversed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from deepdx.nets.init import reset_layer_, resolve_init
from deepdx.nets.mlp import (
    HiddenLayer,
    _option_problems,
    _raise_problems,
    _sizes_problem,
    make_activation,
)

__all__ = ["DeepAutoencoder"]


def _encoder_layers(
    d: int, sizes: Sequence[int], *, activation: str, code_activation: str
) -> Iterator[tuple[str, nn.Module]]:
    """Yield (name, module) pairs: flatten, linear/act per hidden layer, code, code_act."""
    yield "flatten", nn.Flatten()  # (B, *input_shape) -> (B, d)
    width = d
    for index, units in enumerate(sizes[:-1], start=1):
        yield f"linear{index}", nn.Linear(width, units)  # (B, H_{l-1}) -> (B, H_l)
        yield f"act{index}", make_activation(activation)
        width = units
    yield "code", nn.Linear(width, sizes[-1])  # (B, H_{L-1}) -> (B, H_L)
    yield "code_act", make_activation(code_activation)


def _decoder_layers(
    d: int, sizes: Sequence[int], *, activation: str
) -> Iterator[tuple[str, nn.Module]]:
    """Yield (name, module) pairs of the mirrored decoder: linear/act per layer, output."""
    widths = list(reversed(sizes))  # H_L, ..., H_1
    for index, (fan_in, units) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
        yield f"linear{index}", nn.Linear(fan_in, units)  # (B, H_{L-l+1}) -> (B, H_{L-l})
        yield f"act{index}", make_activation(activation)
    yield "output", nn.Linear(widths[-1], d)  # (B, H_1) -> (B, d) logits


class DeepAutoencoder(nn.Module):
    """Encoder MLP to a small code and a mirrored decoder back to the input's logits.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; inputs are (B, *input_shape), flattened to (B, d).
    encoder_sizes : sequence of int, default=(400, 200, 100, 50, 25, 6)
        Widths H_1..H_L of the encoder's layers; the last one is the code. The decoder uses
        them in reverse, then a d-wide output layer.
    activation : str, default="sigmoid"
        Activation of every hidden layer of encoder and decoder, one of
        :data:`~deepdx.nets.mlp.ACTIVATIONS`.
    code_activation : str, default="identity"
        Activation of the code layer (linear code units, as in Hinton & Salakhutdinov 2006).
    init : str, default="auto"
        Weight-init scheme, see :mod:`deepdx.nets.init`; ``"sparse"`` is Martens (2010)'s.

    Attributes
    ----------
    encoder : nn.Sequential
        flatten, linear1, act1, ..., code, code_act: (B, *input_shape) -> (B, H_L).
    decoder : nn.Sequential
        linear1, act1, ..., output: (B, H_L) -> (B, d) logits.
    input_shape, encoder_sizes, activation, code_activation, init
        The hyperparameters, as given; :meth:`get_params` returns them as keyword arguments.

    Raises
    ------
    InvalidParameterError
        Listing every invalid parameter: non-positive sizes, an empty ``encoder_sizes``,
        unknown activation, code activation or init.

    Notes
    -----
    Encoder: h_0 = flatten(x), h_l = f(W_l h_{l-1} + b_l) for l < L, z = g(W_L h_{L-1} + b_L).
    Decoder: the same recursion over the reversed widths from z, ending in x̂ = W h + b
    without activation. Parameters: 2 Σ_l H_{l-1} H_l + 2 Σ_l H_l - H_L + d (weights of both
    halves, biases of every layer but counting the input-sized output bias once).

    References
    ----------
    Hinton, G. E. & Salakhutdinov, R. R. (2006). Reducing the dimensionality of data with
    neural networks. Science 313(5786), 504-507.
    Martens, J. (2010). Deep learning via Hessian-free optimization. ICML.

    Examples
    --------
    >>> net = DeepAutoencoder((1, 28, 28), (400, 200, 100, 50, 25, 6), init="sparse")
    >>> x = torch.rand(5, 1, 28, 28)
    >>> net.encode(x).shape, net(x).shape
    (torch.Size([5, 6]), torch.Size([5, 784]))
    >>> [net.decoder.get_submodule(f"linear{i}").out_features for i in range(1, 6)]
    [25, 50, 100, 200, 400]
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        encoder_sizes: Sequence[int] = (400, 200, 100, 50, 25, 6),
        *,
        activation: str = "sigmoid",
        code_activation: str = "identity",
        init: str = "auto",
    ) -> None:
        super().__init__()
        problems = [
            _sizes_problem("input_shape", input_shape, allow_empty=False),
            _sizes_problem("encoder_sizes", encoder_sizes, allow_empty=False),
        ]
        options = _option_problems(activation=activation, dropout=0.0, init=init)
        code_options = _option_problems(activation=code_activation, dropout=0.0, init="auto")
        code_options = [f"code_{problem}" for problem in code_options]
        _raise_problems("DeepAutoencoder", [p for p in problems if p] + options + code_options)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.encoder_sizes = tuple(int(h) for h in encoder_sizes)
        self.activation, self.code_activation, self.init = activation, code_activation, init
        d = math.prod(self.input_shape)
        encoder = _encoder_layers(
            d, self.encoder_sizes, activation=activation, code_activation=code_activation
        )
        self.encoder = nn.Sequential(OrderedDict(encoder))
        self.decoder = nn.Sequential(
            OrderedDict(_decoder_layers(d, self.encoder_sizes, activation=activation))
        )
        self.reset_parameters()

    def encode(self, x: Tensor) -> Tensor:
        """Map a batch (B, *input_shape) to its codes z (B, H_L)."""
        return self.encoder(x)  # (B, H_L)

    def decode(self, code: Tensor) -> Tensor:
        """Map codes (B, H_L) to reconstruction logits x̂ (B, d); sigmoid gives the pixels."""
        return self.decoder(code)  # (B, d)

    def forward(self, x: Tensor) -> Tensor:
        """Map a batch (B, *input_shape) to reconstruction logits (B, d)."""
        return self.decode(self.encode(x))  # (B, d)

    def hidden_layers(self) -> list[HiddenLayer]:
        """Return every hidden layer in order: the encoder's, the code, then the decoder's.

        Returns
        -------
        list of HiddenLayer
            2L - 1 entries; their ``name`` is the activation's qualified name.

        Examples
        --------
        >>> [h.name for h in DeepAutoencoder((4,), (3, 2)).hidden_layers()]
        ['encoder.act1', 'encoder.code_act', 'decoder.act1']
        """
        n_hidden = len(self.encoder_sizes) - 1
        pairs = [(f"encoder.linear{i}", f"encoder.act{i}") for i in range(1, n_hidden + 1)]
        pairs.append(("encoder.code", "encoder.code_act"))
        pairs += [(f"decoder.linear{i}", f"decoder.act{i}") for i in range(1, n_hidden + 1)]
        return [
            HiddenLayer(index, act, self.get_submodule(linear), self.get_submodule(act))
            for index, (linear, act) in enumerate(pairs, start=1)
        ]

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw every weight from ``init`` and zero the biases.

        Parameters
        ----------
        generator : torch.Generator or None, default=None
            Source of randomness; None uses torch's global RNG, like ``torch.nn``.

        Examples
        --------
        >>> net = DeepAutoencoder((4,), (3, 2))
        >>> net.reset_parameters(generator=torch.Generator().manual_seed(0))
        >>> bool((net.decoder.output.bias == 0).all())
        True
        """
        scheme = resolve_init(self.init, self.activation)
        for hidden in self.hidden_layers():
            act = self.code_activation if hidden.name == "encoder.code_act" else self.activation
            reset_layer_(hidden.layer, scheme, activation=act, generator=generator)
        reset_layer_(self.decoder.get_submodule("output"), scheme, generator=generator)

    def get_params(self) -> dict[str, object]:
        """Return the constructor's arguments, so ``DeepAutoencoder(**params)`` rebuilds it.

        Returns
        -------
        dict
            input_shape, encoder_sizes, activation, code_activation, init.

        Examples
        --------
        >>> DeepAutoencoder((4,), (3, 2)).get_params()["encoder_sizes"]
        (3, 2)
        """
        return {
            "input_shape": self.input_shape,
            "encoder_sizes": self.encoder_sizes,
            "activation": self.activation,
            "code_activation": self.code_activation,
            "init": self.init,
        }
