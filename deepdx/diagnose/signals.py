"""Names of the signals monitors write into a run's ``History``.

All monitor signals are per-step series (``History.log_step``, sparse when a monitor runs on
a schedule), so every plot shares one time axis. ``{layer}`` is the qualified module name of
a layer (``net.linear1``) for weights and gradients, and of the activation module
(``net.act1``) for unit statistics. Step 0 holds measurements taken before training.
"""

from __future__ import annotations

__all__ = [
    "DEAD_FRACTION",
    "DISTANCE_FROM_INIT",
    "GRAD_NORM",
    "LAMBDA_MAX",
    "LAYER_GRAD_NORM",
    "LR_TIMES_LAMBDA_MAX",
    "SATURATED_FRACTION",
    "SOFT_SATURATED_FRACTION",
    "UPDATE_RATIO",
    "layer_signal",
    "layers_of",
]

#: Global L2 norm of the gradient, every step.
GRAD_NORM = "grad_norm"
#: L2 norm of each layer's weight gradient.
LAYER_GRAD_NORM = "grad_norm/"
#: ‖θ_{t+1} − θ_t‖ / ‖θ_t‖ of each layer's weight.
UPDATE_RATIO = "update_ratio/"
#: Fraction of a ReLU-family layer's units that are inactive on every probe sample.
DEAD_FRACTION = "dead_fraction/"
#: Fraction of a sigmoid / tanh layer's units saturated on nearly every probe sample.
SATURATED_FRACTION = "saturated_fraction/"
#: Fraction of a sigmoid / tanh layer's units whose derivative is below 1e-2 on more than
#: half the probe samples (a milder saturation than SageMaker's; see the monitors).
SOFT_SATURATED_FRACTION = "soft_saturated_fraction/"
#: Largest Hessian eigenvalue of the training loss on a probe batch.
LAMBDA_MAX = "lambda_max"
#: Learning rate times λ_max; gradient descent is stable below 2 (Cohen et al. 2021).
LR_TIMES_LAMBDA_MAX = "lr_times_lambda_max"
#: ‖θ − θ_0‖ / ‖θ_0‖ over all parameters.
DISTANCE_FROM_INIT = "distance_from_init"


def layer_signal(prefix: str, layer: str) -> str:
    """Return the series name of ``layer`` for a per-layer signal ``prefix``.

    Examples
    --------
    >>> layer_signal(LAYER_GRAD_NORM, "net.linear1")
    'grad_norm/net.linear1'
    """
    return prefix + layer


def layers_of(names: list[str] | dict[str, object], prefix: str) -> list[str]:
    """Return the layers that have a series with ``prefix``, in the order logged.

    Examples
    --------
    >>> layers_of(["loss", "grad_norm/a", "grad_norm/b", "grad_norm"], LAYER_GRAD_NORM)
    ['a', 'b']
    """
    return [name[len(prefix) :] for name in names if name.startswith(prefix) and name != prefix]
