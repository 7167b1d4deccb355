"""``ActivationMonitor``: dead and saturated units, measured on a fixed probe batch.

A forward pre-hook on each activation module sees its input a, the pre-activation, on a
fixed probe batch (model in eval mode, no grad). A *unit* is a feature of a fully connected
layer or a channel of a convolution; it is "working" on a sample when the backward pass
can carry a useful gradient through it at one of its positions at least.

Symbols
-------
N           probe samples (rows of the probe batch, at most ``probe_size``)
U           units of a layer (features, or channels)
a (N, U, S) pre-activation of each unit at each of its S positions (S = 1 for features)
w (N, U)    1 where the unit works on a sample: the rule below holds at some position
r_u         fraction of samples on which unit u works, mean_n w[n, u]
τ           ``INACTIVITY_THRESHOLD`` = 0.01; unit u is dead / saturated when r_u < τ
τ_soft      ``SOFT_SATURATION_SHARE`` = 0.5; unit u is softly saturated when r_u < τ_soft

Rules (DIAGNOSTICS.md B10, B11)
-------------------------------
====================================  =========================================  ==========
signal                                unit works on a sample when                family
====================================  =========================================  ==========
``dead_fraction/{layer}``             a > 0 (the ReLU is active)                 ReLU-like
``saturated_fraction/{layer}``        lo < a < hi (SageMaker bounds, below)      sigmoid/tanh
``soft_saturated_fraction/{layer}``   |a| < c, where f'(a) >= 1e-2 (below)       sigmoid/tanh
====================================  =========================================  ==========

Each signal is the fraction of the layer's units with r_u < τ (r_u < τ_soft for the soft
signal). SageMaker flags a layer when this fraction exceeds 50%.

The SageMaker SaturatedActivation bounds (tanh ±9.4999, sigmoid [-23, 16.99999]) are where
the derivative falls to about 1e-7 and float32 rounds the output to its asymptote: the unit
passes no gradient at all. A unit can be harmful long before: the soft bounds c are where
the derivative falls below ``SOFT_SATURATION_GRADIENT`` = 1e-2, so every backward signal
through the unit is attenuated at least a hundredfold:

    sigmoid:  σ'(a) = σ(1 − σ) = 1e-2  ⇔  σ = (1 − √(1 − 4·1e-2)) / 2  ⇔  |a| = 4.585
    tanh:     tanh'(a) = 1 − tanh² = 1e-2  ⇔  |a| = artanh(√(1 − 1e-2)) = 2.993

and a unit counts when this holds on most probe samples (r_u < τ_soft). The strict rule
misses weights that are merely too large: with pre-activations a ~ N(0, 60²) (a default
init scaled by 100) every unit is still inside (-23, 17) on ~25% of samples, so none is
saturated by the 1% rule, while |a| > 4.6 on ~94% of samples makes nearly all of them
softly saturated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from deepdx._validation import Interval, check_params
from deepdx.diagnose.monitors._common import WEIGHT_LAYER_TYPES, measuring, take_probe
from deepdx.diagnose.signals import DEAD_FRACTION, SATURATED_FRACTION, layer_signal
from deepdx.train.callbacks import Callback, TrainState

__all__ = [
    "INACTIVITY_THRESHOLD",
    "RELU_FAMILY",
    "SATURATING",
    "SATURATION_BOUNDS",
    "SOFT_SATURATED_FRACTION",
    "SOFT_SATURATION_BOUNDS",
    "SOFT_SATURATION_GRADIENT",
    "SOFT_SATURATION_SHARE",
    "ActivationMonitor",
]

#: Fraction of a sigmoid / tanh layer's units whose derivative is below 1e-2 on nearly every
#: probe sample (``SOFT_SATURATION_GRADIENT``, ``SOFT_SATURATION_BOUNDS``).
SOFT_SATURATED_FRACTION = "soft_saturated_fraction/"

#: A unit working on fewer than this fraction of probe samples is dead or saturated.
#: Source: SageMaker Debugger DeadRelu and SaturatedActivation, threshold_inactivity = 1.0 %.
INACTIVITY_THRESHOLD = 0.01

#: ReLU-like activations: a unit is active where its input a > 0, its linear regime.
RELU_FAMILY: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
)

#: Squashing activations whose saturation the monitor measures.
SATURATING: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Tanh)

#: Open interval (lo, hi) of inputs where the activation is not saturated. Source: SageMaker
#: Debugger SaturatedActivation defaults threshold_tanh_min/max = ∓9.4999 and
#: threshold_sigmoid_min/max = -23 / 16.99999 (a vanishing-gradient threshold of 1e-7).
SATURATION_BOUNDS: dict[type[nn.Module], tuple[float, float]] = {
    nn.Tanh: (-9.4999, 9.4999),
    nn.Sigmoid: (-23.0, 16.99999),
}

#: Derivative below which a unit counts as softly saturated (a 100x attenuation of the
#: backward signal). A deepdx convention, not a published threshold.
SOFT_SATURATION_GRADIENT = 1e-2

#: A unit working (f'(a) >= SOFT_SATURATION_GRADIENT) on fewer than this fraction of probe
#: samples is softly saturated: it is saturated on most of them. A deepdx convention.
SOFT_SATURATION_SHARE = 0.5

_ROOT = math.sqrt(1 - 4 * SOFT_SATURATION_GRADIENT)  # σ(1 − σ) = g ⇔ σ = (1 ∓ _ROOT) / 2

#: |a| beyond which f'(a) < SOFT_SATURATION_GRADIENT, solved in closed form (module docstring).
SOFT_SATURATION_BOUNDS: dict[type[nn.Module], float] = {
    nn.Sigmoid: math.log((1 + _ROOT) / (1 - _ROOT)),  # |logit σ| at σ = (1 − _ROOT) / 2
    nn.Tanh: math.atanh(math.sqrt(1 - SOFT_SATURATION_GRADIENT)),
}


class ActivationMonitor(Callback):
    """Log the fraction of dead and of saturated units of every activation layer.

    Parameters
    ----------
    every_epochs : int, default=1
        Measure at step 0 (before training) and at the end of every ``every_epochs`` epochs.
    probe : sequence of Tensor, optional
        A fixed batch ``(X, y)`` to measure on, e.g. 256 training samples. By default the
        first minibatch of the run is copied and used throughout.
    probe_size : int, default=256
        Rows of the probe batch kept at most.

    Attributes
    ----------
    skipped_reason : str or None
        Why nothing was logged (the model has no activation module of a known family),
        else None.

    Raises
    ------
    InvalidParameterError
        If ``every_epochs`` or ``probe_size`` is not an int >= 1.

    Notes
    -----
    Rules and thresholds: see the module docstring. Only activation *modules* can be
    hooked; activations called as functions (``torch.relu(x)``) inside ``forward`` are
    invisible. A module called several times in one forward pass gives one series per
    call, ``{name}``, ``{name}#2``, ... The unit axis is the last one after an
    ``nn.Linear`` and axis 1 (channels) after a convolution, telling which came last in
    the forward pass. A layer whose input holds NaN logs NaN.

    Cost per measurement: one forward pass over the probe batch under ``no_grad``; hooks
    are attached only for that pass. Training is unchanged: the model is in eval mode (no
    dropout, no batch-norm statistics update) and the global RNG state is restored.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from deepdx.data.dataset import from_arrays
    >>> from deepdx.train import fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> h = fit(model, data, epochs=2, batch_size=16, callbacks=[ActivationMonitor()])
    >>> h.step_series("saturated_fraction/1")
    (array([0, 4, 8]), array([0., 0., 0.]))
    """

    def __init__(
        self,
        every_epochs: int = 1,
        *,
        probe: Sequence[Tensor] | None = None,
        probe_size: int = 256,
    ) -> None:
        check_params(
            "ActivationMonitor",
            {"every_epochs": every_epochs, "probe_size": probe_size},
            {"every_epochs": Interval(int, low=1), "probe_size": Interval(int, low=1)},
        )
        self.every_epochs, self.probe, self.probe_size = every_epochs, probe, probe_size
        self.skipped_reason: str | None = None
        self._probe: tuple[Tensor, ...] | None = None
        self._initial_pending = False
        self._activations: list[tuple[str, nn.Module]] = []

    # ------------------------------------------------------------------ hooks of fit
    def on_fit_start(self, state: TrainState) -> None:
        """Find the activation modules and set up the probe batch."""
        self._activations = [
            (name, module)
            for name, module in state.model.named_modules()
            if isinstance(module, RELU_FAMILY + SATURATING)
        ]
        self.skipped_reason = None if self._activations else _NO_ACTIVATIONS
        if state.step == 0:  # a fresh run; a resumed one keeps the probe it saved
            self._probe = None if self.probe is None else take_probe(self.probe, self.probe_size)
        if self._probe is not None:
            self._probe = tuple(t.to(state.device) for t in self._probe)
        self._initial_pending = state.step == 0

    def on_step_begin(self, state: TrainState) -> None:
        """Copy the first minibatch as the probe; measure once before the first step."""
        if self._probe is None and state.batch is not None:
            self._probe = take_probe(state.batch, self.probe_size)
        if self._initial_pending:
            self._initial_pending = False
            self._measure(state)

    def on_epoch_end(self, state: TrainState) -> None:
        """Measure at the end of every ``every_epochs`` epochs."""
        if state.epoch % self.every_epochs == 0:
            self._measure(state)

    def state_dict(self) -> dict[str, Any]:
        """Return the probe batch, so a resumed run measures on the same samples."""
        return {"probe": None if self._probe is None else list(self._probe)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the probe batch saved by :meth:`state_dict`."""
        probe = state.get("probe")
        self._probe = None if probe is None else tuple(probe)

    # ------------------------------------------------------------------ measurement
    def _measure(self, state: TrainState) -> None:
        """Run the probe forward pass with hooks and log one value per layer and signal."""
        if not self._activations or self._probe is None:
            return
        collector = _Collector()
        handles = collector.attach(state.model, self._activations)
        try:
            with measuring(state.model), torch.no_grad():
                state.loss_fn(state.model, self._probe)
        finally:
            for handle in handles:
                handle.remove()
        if not collector.values:
            return
        logged = torch.stack(collector.values).tolist()  # one device sync
        for name, value in zip(collector.names, logged, strict=True):
            state.history.log_step(name, value, step=state.step)


_NO_ACTIVATIONS = (
    "the model has no activation module of a known family (nn.ReLU, nn.LeakyReLU, nn.ELU, "
    "nn.GELU, nn.Softplus, nn.Sigmoid, nn.Tanh, ...), so dead and saturated units were not "
    "measured. Activations called as functions inside forward cannot be hooked; use "
    "activation modules to get these signals."
)


class _Collector:
    """Forward hooks that turn each activation input into per-layer fractions."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.values: list[Tensor] = []
        self._calls: dict[str, int] = {}
        self._linear_last = False

    def attach(
        self, model: nn.Module, activations: list[tuple[str, nn.Module]]
    ) -> list[RemovableHandle]:
        """Register the hooks on ``model``; return their handles."""
        handles = [
            module.register_forward_hook(self._weight_hook)
            for module in model.modules()
            if isinstance(module, WEIGHT_LAYER_TYPES)
        ]
        for name, module in activations:
            handles.append(module.register_forward_pre_hook(self._activation_hook(name, module)))
        return handles

    def _weight_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        """Remember whether the latest weight layer was fully connected."""
        self._linear_last = isinstance(module, nn.Linear)

    def _activation_hook(self, name: str, module: nn.Module) -> Callable[..., None]:
        """Return the pre-hook that records the fractions of activation ``name``."""

        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            a = args[0] if args else None
            if not isinstance(a, Tensor) or a.ndim < 2:
                return
            count = self._calls[name] = self._calls.get(name, 0) + 1
            key = name if count == 1 else f"{name}#{count}"
            units = _by_unit(a.detach(), last_axis=self._linear_last)  # (N, U, S)
            for prefix, fraction in _fractions(module, units).items():
                self.names.append(layer_signal(prefix, key))
                self.values.append(fraction)

        return hook


def _by_unit(a: Tensor, *, last_axis: bool) -> Tensor:
    """Reshape a pre-activation (N, ...) to (N, U, S): units on axis 1, positions on axis 2."""
    if a.ndim > 2 and last_axis:
        a = a.movedim(-1, 1)  # (N, U, ...) features of a Linear applied to (N, ..., U)
    return a.reshape(a.shape[0], a.shape[1], -1)  # (N, U, S)


def _fractions(module: nn.Module, a: Tensor) -> dict[str, Tensor]:
    """Return the signals of one activation input a (N, U, S), each a 0-d tensor."""
    if isinstance(module, RELU_FAMILY):
        return {DEAD_FRACTION: _idle_fraction(a > 0, a, INACTIVITY_THRESHOLD)}
    kind = nn.Sigmoid if isinstance(module, nn.Sigmoid) else nn.Tanh
    lo, hi = SATURATION_BOUNDS[kind]
    soft = SOFT_SATURATION_BOUNDS[kind]
    return {
        SATURATED_FRACTION: _idle_fraction((a > lo) & (a < hi), a, INACTIVITY_THRESHOLD),
        SOFT_SATURATED_FRACTION: _idle_fraction(a.abs() < soft, a, SOFT_SATURATION_SHARE),
    }


def _idle_fraction(works: Tensor, a: Tensor, threshold: float) -> Tensor:
    """Return the fraction of units u with r_u < ``threshold``; NaN if ``a`` holds NaN.

    ``works`` (N, U, S) says where each unit works; w = any over positions, r = mean over
    samples.
    """
    rate = works.any(dim=2).float().mean(dim=0)  # (U,) r_u
    fraction = (rate < threshold).float().mean()  # ()
    return torch.where(a.isnan().any(), torch.nan, fraction)  # ()
