"""Weight-initialisation schemes for the weight layers of deepdx nets.

A scheme draws each weight layer's ``W`` from a zero-mean distribution whose spread depends on
the layer's fan-in and fan-out, so that activations and gradients keep their scale through
depth. Biases always start at zero.

Symbols
-------
W         (fan_out, fan_in) for ``nn.Linear``; (C_out, C_in, k, k) for ``nn.Conv2d``
fan_in    inputs feeding one unit: ``in_features``, or ``C_in * k * k`` for a convolution
fan_out   units fed by one input: ``out_features``, or ``C_out * k * k``
g         gain of the activation that follows the layer (``identity`` after the output layer)

==========  =============================================  ===================================
scheme      distribution of each entry of W                reference
==========  =============================================  ===================================
kaiming     N(0, g² / fan_in)                              He et al. (2015)
xavier      U(-a, a), a = √(6 / (fan_in + fan_out));       Glorot & Bengio (2010)
            variance 2 / (fan_in + fan_out), gain 1
lecun       N(0, 1 / fan_in)                               LeCun et al. (1998)
normal      N(0, 0.01²)                                    small random weights
sparse      k = min(15, fan_in) entries per unit drawn     Martens (2010)
            N(0, 1) at distinct random inputs, the rest 0
auto        kaiming after a ReLU-family activation
            (relu, leaky_relu, gelu, elu, softplus),
            xavier after tanh, sigmoid or identity
==========  =============================================  ===================================

The sparse scheme keeps each unit's total input of order √k whatever the layer's fan-in, so
wide layers do not saturate their units, while the weights stay large (unit variance) and
the units start out clearly different from one another; ``k`` is :data:`SPARSE_FAN_IN`.
For a convolution, a unit is an output channel and its inputs are the ``C_in * k * k``
kernel entries.

There is no ``zeros`` scheme for weights: if every unit of a layer starts with the same
weights, every unit receives the same gradient and they stay identical forever (the symmetry
is never broken), so the layer behaves like a single unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from deepdx._validation import closest_name
from deepdx.exceptions import InvalidParameterError

__all__ = [
    "INIT_SCHEMES",
    "LEAKY_RELU_SLOPE",
    "RELU_FAMILY",
    "SPARSE_FAN_IN",
    "gain",
    "init_problem",
    "init_weight_",
    "reset_layer_",
    "resolve_init",
]

INIT_SCHEMES: tuple[str, ...] = ("auto", "kaiming", "xavier", "lecun", "normal", "sparse")
SPARSE_FAN_IN = 15
"""Nonzero incoming weights per unit in the ``sparse`` scheme (Martens 2010 used 15)."""
LEAKY_RELU_SLOPE = 0.01
RELU_FAMILY = frozenset({"relu", "leaky_relu", "gelu", "elu", "softplus"})

# Gains follow torch.nn.init.calculate_gain; gelu, elu and softplus, which are near zero on the
# negative half-line and near the identity on the positive one, take the ReLU gain.
_GAINS: dict[str, float] = {
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1.0 + LEAKY_RELU_SLOPE**2)),
    "gelu": math.sqrt(2.0),
    "elu": math.sqrt(2.0),
    "softplus": math.sqrt(2.0),
    "tanh": 5.0 / 3.0,
    "sigmoid": 1.0,
    "identity": 1.0,
}
_NORMAL_STD = 0.01
_ZEROS_MESSAGE = (
    "init 'zeros' is not allowed for weights: units that start with identical weights get "
    "identical gradients and never become different (the symmetry is never broken). "
    "Use one of {choices}; biases already start at zero."
)


def _unknown_name(what: str, got: object, choices: Iterable[str]) -> str:
    """Return 'what got is unknown; expected one of ...; did you mean ...?'."""
    names = list(choices)
    message = f"{what} {got!r} is not known; expected one of {', '.join(names)}"
    close = closest_name(str(got), names, ignore_case=True) if got else None
    return message + (f"; did you mean {close!r}?" if close is not None else ".")


def init_problem(init: object) -> str | None:
    """Return why ``init`` is not a weight-init scheme, or None when it is one.

    Parameters
    ----------
    init : object
        Candidate scheme name, one of :data:`INIT_SCHEMES`.

    Returns
    -------
    str or None
        A message in the *what / expected / got / fix* form, or None if ``init`` is valid.

    Examples
    --------
    >>> init_problem("kaiming") is None
    True
    >>> print(init_problem("kaimig"))  # doctest: +NORMALIZE_WHITESPACE
    init 'kaimig' is not known; expected one of auto, kaiming, xavier, lecun, normal, sparse; did
    you mean 'kaiming'?
    """
    if init in INIT_SCHEMES:
        return None
    if init == "zeros":
        return _ZEROS_MESSAGE.format(choices=", ".join(INIT_SCHEMES))
    return _unknown_name("init", init, INIT_SCHEMES)


def gain(activation: str) -> float:
    """Return the gain ``g`` that keeps the variance of signals through ``activation``.

    Parameters
    ----------
    activation : str
        Name of the activation that follows the layer (``identity`` for the output layer).

    Returns
    -------
    float
        √2 for relu, gelu, elu, softplus; √(2 / (1 + 0.01²)) for leaky_relu; 5/3 for tanh;
        1 for sigmoid and identity.

    Raises
    ------
    InvalidParameterError
        If ``activation`` is unknown.

    Examples
    --------
    >>> round(gain("relu") ** 2, 6), gain("identity")
    (2.0, 1.0)
    """
    if activation not in _GAINS:
        raise InvalidParameterError(_unknown_name("activation", activation, _GAINS))
    return _GAINS[activation]


def resolve_init(init: str, activation: str) -> str:
    """Return the concrete scheme ``init`` stands for in a net with hidden ``activation``.

    Parameters
    ----------
    init : str
        One of :data:`INIT_SCHEMES`.
    activation : str
        The net's hidden activation.

    Returns
    -------
    str
        ``init`` itself, or for ``"auto"``: ``"kaiming"`` after the ReLU family, else ``"xavier"``.

    Raises
    ------
    InvalidParameterError
        If ``init`` is not a scheme (``"zeros"`` included, see the module notes).

    Examples
    --------
    >>> resolve_init("auto", "relu"), resolve_init("auto", "tanh"), resolve_init("lecun", "relu")
    ('kaiming', 'xavier', 'lecun')
    """
    problem = init_problem(init)
    if problem is not None:
        raise InvalidParameterError(problem)
    if init != "auto":
        return init
    return "kaiming" if activation in RELU_FAMILY else "xavier"


def _fans(weight: Tensor) -> tuple[int, int]:
    """Return (fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:])  # k * k for Conv2d, 1 for Linear
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _sparse_(weight: Tensor, *, generator: torch.Generator | None) -> Tensor:
    """Give each unit (row of the flattened weight) min(15, fan_in) N(0, 1) inputs, others 0."""
    rows = weight.view(weight.shape[0], -1)  # (fan_out units, fan_in)
    k = min(SPARSE_FAN_IN, rows.shape[1])
    scores = torch.rand(rows.shape, generator=generator, device=weight.device)  # (out, in)
    chosen = scores.argsort(dim=1)[:, :k]  # (out, k) distinct inputs per unit
    values = torch.randn(chosen.shape, generator=generator, device=weight.device)  # (out, k)
    rows.zero_().scatter_(1, chosen, values.to(weight.dtype))
    return weight


@torch.no_grad()
def init_weight_(
    weight: Tensor,
    scheme: str,
    *,
    activation: str = "identity",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``weight`` in place from ``scheme`` and return it.

    Parameters
    ----------
    weight : Tensor of shape (fan_out, fan_in) or (C_out, C_in, *kernel)
        A Linear or convolution weight.
    scheme : str
        One of :data:`INIT_SCHEMES`; ``"auto"`` resolves with ``activation``.
    activation : str, default="identity"
        The activation that follows this layer; sets the Kaiming gain ``g``.
    generator : torch.Generator or None, default=None
        Source of randomness; None uses torch's global RNG, like ``torch.nn.init``.

    Returns
    -------
    Tensor
        ``weight``, filled.

    Raises
    ------
    InvalidParameterError
        If ``scheme`` or ``activation`` is unknown, or ``weight`` has fewer than 2 dimensions.

    Notes
    -----
    See the table in the module docstring for each scheme's distribution.

    Examples
    --------
    >>> w = init_weight_(torch.empty(512, 512), "kaiming", activation="relu",
    ...                  generator=torch.Generator().manual_seed(0))
    >>> w.shape, abs(w.std().item() / (2 / 512) ** 0.5 - 1) < 0.05
    (torch.Size([512, 512]), True)
    """
    if weight.dim() < 2:
        raise InvalidParameterError(
            f"init_weight_ needs a weight with at least 2 dimensions (fan_out, fan_in, ...); "
            f"got shape {tuple(weight.shape)}. Biases are set to zero, not initialised."
        )
    g = gain(activation)
    fan_in, fan_out = _fans(weight)
    chosen = resolve_init(scheme, activation)
    if chosen == "sparse":
        return _sparse_(weight, generator=generator)
    if chosen == "xavier":
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Var U(-a, a) = a² / 3 = 2 / (in + out)
        return nn.init.uniform_(weight, -bound, bound, generator=generator)
    if chosen == "kaiming":
        std = g / math.sqrt(fan_in)
    elif chosen == "lecun":
        std = 1.0 / math.sqrt(fan_in)
    else:
        std = _NORMAL_STD
    return nn.init.normal_(weight, 0.0, std, generator=generator)


def reset_layer_(
    layer: nn.Module,
    scheme: str,
    *,
    activation: str = "identity",
    generator: torch.Generator | None = None,
) -> None:
    """Re-initialise a weight layer in place: ``weight`` from ``scheme``, ``bias`` to zero.

    Parameters
    ----------
    layer : nn.Module
        A module with a ``weight`` parameter (``nn.Linear``, ``nn.Conv2d``) and an optional
        ``bias``.
    scheme : str
        One of :data:`INIT_SCHEMES`.
    activation : str, default="identity"
        The activation that follows ``layer``.
    generator : torch.Generator or None, default=None
        Source of randomness; None uses torch's global RNG.

    Raises
    ------
    InvalidParameterError
        If ``layer`` has no 2-D-or-more ``weight`` or a name is unknown.

    Examples
    --------
    >>> layer = nn.Linear(3, 2)
    >>> reset_layer_(layer, "lecun", generator=torch.Generator().manual_seed(0))
    >>> layer.weight.shape, bool((layer.bias == 0).all())
    (torch.Size([2, 3]), True)
    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor):
        raise InvalidParameterError(
            f"reset_layer_ needs a layer with a weight tensor such as nn.Linear or nn.Conv2d; "
            f"got {type(layer).__name__}."
        )
    init_weight_(weight, scheme, activation=activation, generator=generator)
    bias = getattr(layer, "bias", None)
    if isinstance(bias, Tensor):
        with torch.no_grad():
            bias.zero_()
