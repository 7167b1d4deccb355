"""Elman recurrent network: one recurrent tanh layer read out by a linear layer.

Symbols
-------
B          batch size
T          time steps
d          input features per step, ``n_inputs``
H          hidden units, ``n_hidden``
K          outputs per read-out step, ``n_outputs``
x_t        (B, d) input at step t = 1..T
W_xh, b    input weight (H, d) and hidden bias (H,) of ``input``
W_hh       recurrent weight (H, H) of ``recurrent`` (no bias: b is the only hidden bias)
W_hy, c    output weight (K, H) and bias (K,) of ``output``
h_t        (B, H) hidden state, h_0 = 0
ρ          spectral radius (largest absolute eigenvalue) of W_hh

Maths
-----
``h_t = f(W_xh x_t + W_hh h_{t-1} + b)``,  ``y_t = W_hy h_t + c`` (Elman 1990). With
``output="last"`` only y_T is returned (one target per sequence, as in the addition
problem); with ``output="all"`` every y_t is.

Initialisation
--------------
==============  ===========================================================================
init            what each weight is drawn from (biases start at zero)
==============  ===========================================================================
orthogonal      W_hh = ``recurrent_gain`` · Q, Q a uniformly random orthogonal matrix, so
                every singular value of W_hh is ``recurrent_gain`` (Saxe et al. 2014);
                W_xh and W_hy Xavier-uniform (:mod:`deepdx.nets.init`)
sparse          Martens (2010): each unit has min(15, fan_in) non-zero incoming weights
                from N(0, 1), in W_xh, W_hh and W_hy alike; W_hh is then rescaled to
                spectral radius ρ = ``recurrent_gain``
==============  ===========================================================================

References
----------
J. L. Elman, "Finding structure in time", Cognitive Science 14, 1990.
J. Martens, "Deep learning via Hessian-free optimization", ICML 2010 (sparse init).
J. Martens and I. Sutskever, "Learning recurrent neural networks with Hessian-free
optimization", ICML 2011.
A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the nonlinear dynamics
of learning in deep linear neural networks", ICLR 2014 (orthogonal init).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from deepdx.nets.init import _unknown_name, init_weight_
from deepdx.nets.mlp import ACTIVATIONS, _is_size, _raise_problems, make_activation

__all__ = ["RNN_INITS", "RNN_OUTPUTS", "SPARSE_CONNECTIONS", "ElmanRNN"]

RNN_INITS: tuple[str, ...] = ("orthogonal", "sparse")
RNN_OUTPUTS: tuple[str, ...] = ("last", "all")
SPARSE_CONNECTIONS = 15
"""Non-zero incoming weights per unit of the sparse init (Martens 2010)."""


def _problems(
    sizes: dict[str, object], *, activation: object, output: object, init: object, gain: object
) -> list[str]:
    """Return one sentence per invalid ElmanRNN argument."""
    problems = [
        f"{name} must be a positive int; got {value!r}."
        for name, value in sizes.items()
        if not _is_size(value)
    ]
    if activation not in ACTIVATIONS:
        problems.append(_unknown_name("activation", activation, ACTIVATIONS))
    if output not in RNN_OUTPUTS:
        problems.append(_unknown_name("output", output, RNN_OUTPUTS))
    if init not in RNN_INITS:
        problems.append(_unknown_name("init", init, RNN_INITS))
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain < math.inf:
        problems.append(f"recurrent_gain must be a float > 0; got {gain!r}.")
    return problems


class ElmanRNN(nn.Module):
    """Single-layer Elman recurrent net on (B, T, d) sequences, vectorised over the batch.

    Parameters
    ----------
    n_inputs : int
        d, the features of each time step.
    n_hidden : int
        H, the recurrent units.
    n_outputs : int
        K, the width of the linear read-out (no output non-linearity).
    activation : str, default="tanh"
        Hidden non-linearity f, one of :data:`~deepdx.nets.ACTIVATIONS`.
    output : {"last", "all"}, default="last"
        Return y_T only, shape (B, K), or every y_t, shape (B, T, K).
    init : {"orthogonal", "sparse"}, default="orthogonal"
        Weight initialisation, see the module docstring.
    recurrent_gain : float, default=1.0
        Singular values of W_hh (``"orthogonal"``) or its spectral radius ρ
        (``"sparse"``).

    Attributes
    ----------
    input : nn.Linear
        W_xh (H, d) and the hidden bias b (H,).
    recurrent : nn.Linear
        W_hh (H, H), without bias.
    output_layer : nn.Linear
        W_hy (K, H) and c (K,).
    f : nn.Module
        The hidden non-linearity.
    n_inputs, n_hidden, n_outputs, activation, output, init, recurrent_gain
        The hyperparameters; :meth:`get_params` returns them as keyword arguments.

    Raises
    ------
    InvalidParameterError
        Listing every invalid argument: non-positive sizes, unknown activation, output or
        init, or a ``recurrent_gain`` that is not > 0.

    Notes
    -----
    Cost per sequence: O(T (d H + H² + H K)) multiply-adds; the time loop is a Python
    loop, the batch is one matrix product per step. Parameters:
    (d + 1) H + H² + (H + 1) K. :meth:`hidden_states` returns every h_t, which is what
    structural damping (Martens & Sutskever 2011) penalises: pass
    ``hidden_fn=lambda: net.hidden_states(x)`` to
    :class:`~deepdx.optim.HessianFree`.

    Examples
    --------
    >>> net = ElmanRNN(2, 8, 1)
    >>> net.reset_parameters(generator=torch.Generator().manual_seed(0))
    >>> x = torch.zeros(5, 12, 2)
    >>> net(x).shape, net.hidden_states(x).shape
    (torch.Size([5, 1]), torch.Size([5, 12, 8]))
    >>> ElmanRNN(2, 8, 3, output="all")(x).shape
    torch.Size([5, 12, 3])
    """

    def __init__(
        self,
        n_inputs: int,
        n_hidden: int,
        n_outputs: int,
        *,
        activation: str = "tanh",
        output: str = "last",
        init: str = "orthogonal",
        recurrent_gain: float = 1.0,
    ) -> None:
        super().__init__()
        sizes: dict[str, object] = {
            "n_inputs": n_inputs,
            "n_hidden": n_hidden,
            "n_outputs": n_outputs,
        }
        problems = _problems(
            sizes, activation=activation, output=output, init=init, gain=recurrent_gain
        )
        _raise_problems("ElmanRNN", problems)
        self.n_inputs, self.n_hidden, self.n_outputs = int(n_inputs), int(n_hidden), int(n_outputs)
        self.activation, self.output, self.init = activation, output, init
        self.recurrent_gain = float(recurrent_gain)
        self.input = nn.Linear(self.n_inputs, self.n_hidden)  # W_xh, b
        self.recurrent = nn.Linear(self.n_hidden, self.n_hidden, bias=False)  # W_hh
        self.output_layer = nn.Linear(self.n_hidden, self.n_outputs)  # W_hy, c
        self.f = make_activation(activation)
        self.reset_parameters()

    def hidden_states(self, x: Tensor) -> Tensor:
        """Return the hidden states h_1..h_T, starting from h_0 = 0.

        Parameters
        ----------
        x : Tensor of shape (B, T, d)
            Input sequences, d = ``n_inputs``.

        Returns
        -------
        Tensor of shape (B, T, H)
            h_t for every step, differentiable with respect to the parameters.

        Raises
        ------
        InvalidParameterError
            If ``x`` is not (B, T, d) with d = ``n_inputs`` and T >= 1.
        """
        self._check_input(x)
        # unbind, not drive[:, t]: the backward of T slices would write T full-size zero
        # tensors (O(T² B H)); that of unbind stacks the T gradients once
        drives = self.input(x).unbind(dim=1)  # T x (B, H): W_xh x_t + b for every t at once
        W_hh = self.recurrent.weight  # (H, H)
        h = self.f(drives[0])  # (B, H) h_1, since h_0 = 0
        states = [h]
        for drive in drives[1:]:
            h = self.f(drive + h @ W_hh.T)  # (B, H)
            states.append(h)
        return torch.stack(states, dim=1)  # (B, T, H)

    def forward(self, x: Tensor) -> Tensor:
        """Map sequences (B, T, d) to y_T (B, K), or to y_1..y_T (B, T, K) with "all"."""
        h = self.hidden_states(x)  # (B, T, H)
        if self.output == "last":
            return self.output_layer(h[:, -1])  # (B, K)
        return self.output_layer(h)  # (B, T, K)

    def _check_input(self, x: Tensor) -> None:
        """Raise InvalidParameterError unless ``x`` is (B, T, n_inputs) with T >= 1."""
        if x.dim() != 3 or x.shape[1] < 1 or x.shape[2] != self.n_inputs:
            _raise_problems(
                "ElmanRNN",
                [
                    f"inputs must have shape (batch, time, {self.n_inputs}) with time >= 1; "
                    f"got {tuple(x.shape)}. Add a batch axis with x[None] or a feature axis "
                    "with x[..., None]."
                ],
            )

    @torch.no_grad()
    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw the weights from ``init`` and zero the biases.

        Parameters
        ----------
        generator : torch.Generator or None, default=None
            Source of randomness; None uses torch's global RNG, like ``torch.nn``.

        Examples
        --------
        >>> net = ElmanRNN(2, 6, 1, recurrent_gain=0.9)
        >>> net.reset_parameters(generator=torch.Generator().manual_seed(0))
        >>> s = torch.linalg.svdvals(net.recurrent.weight)
        >>> bool(torch.allclose(s, torch.full((6,), 0.9), atol=1e-5))
        True
        """
        W_hh = self.recurrent.weight  # (H, H)
        if self.init == "orthogonal":
            init_weight_(self.input.weight, "xavier", generator=generator)
            init_weight_(self.output_layer.weight, "xavier", generator=generator)
            nn.init.orthogonal_(W_hh, gain=self.recurrent_gain, generator=generator)
        else:
            for layer in (self.input, self.recurrent, self.output_layer):
                _sparse_(layer.weight, generator)
            rho = torch.linalg.eigvals(W_hh.double()).abs().max()  # spectral radius
            W_hh.mul_(self.recurrent_gain / float(rho))
        self.input.bias.zero_()
        self.output_layer.bias.zero_()

    def get_params(self) -> dict[str, object]:
        """Return the constructor's arguments, so ``ElmanRNN(**params)`` builds a fresh copy.

        Examples
        --------
        >>> ElmanRNN(2, 8, 1).get_params()["n_hidden"]
        8
        """
        return {
            "n_inputs": self.n_inputs,
            "n_hidden": self.n_hidden,
            "n_outputs": self.n_outputs,
            "activation": self.activation,
            "output": self.output,
            "init": self.init,
            "recurrent_gain": self.recurrent_gain,
        }


def _sparse_(weight: Tensor, generator: torch.Generator | None) -> None:
    """Keep min(15, fan_in) N(0, 1) entries in each row of ``weight`` (out, in), zero the rest."""
    fan_out, fan_in = weight.shape
    keep = min(SPARSE_CONNECTIONS, fan_in)
    scores = torch.rand(fan_out, fan_in, generator=generator)  # (out, in)
    columns = scores.argsort(dim=1)[:, :keep]  # (out, keep) a random subset per row
    values = torch.randn(fan_out, keep, generator=generator)  # (out, keep)
    weight.zero_()
    weight.scatter_(1, columns, values.to(weight.dtype))
