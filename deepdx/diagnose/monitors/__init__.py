"""Training monitors: callbacks on ``fit`` that log the signals the diagnosis rules read.

Each monitor writes per-step series into ``state.history`` under the names of
:mod:`deepdx.diagnose.signals` (sparse when it runs on a schedule; step 0 is before
training). Monitors never change training: no parameter or gradient is modified, the
global RNG state and each module's train/eval mode are restored after a measurement.
Layers are found by type, so they work with any ``nn.Module``.

=========================  ================================================  ===============
monitor                    signals                                           when
=========================  ================================================  ===============
GradientMonitor            grad_norm; grad_norm/{layer}; update_ratio/...    step; 8; 16
ActivationMonitor          dead_fraction/, saturated_fraction/,              0, every epoch
                           soft_saturated_fraction/{layer}
CurvatureMonitor           lambda_max, lr_times_lambda_max                   0, final
DistanceMonitor            distance_from_init                                every epoch
default_monitors           all of the above with their default schedules
=========================  ================================================  ===============
"""

from __future__ import annotations

from deepdx.diagnose.monitors.activations import (
    INACTIVITY_THRESHOLD,
    RELU_FAMILY,
    SATURATING,
    SATURATION_BOUNDS,
    SOFT_SATURATED_FRACTION,
    SOFT_SATURATION_BOUNDS,
    SOFT_SATURATION_GRADIENT,
    SOFT_SATURATION_SHARE,
    ActivationMonitor,
)
from deepdx.diagnose.monitors.curvature import (
    LR_TIMES_LAMBDA_MAX,
    NOT_CONVERGED_EVENT,
    CurvatureMonitor,
)
from deepdx.diagnose.monitors.defaults import default_monitors
from deepdx.diagnose.monitors.distance import DistanceMonitor
from deepdx.diagnose.monitors.gradients import GradientMonitor

__all__ = [
    "INACTIVITY_THRESHOLD",
    "LR_TIMES_LAMBDA_MAX",
    "NOT_CONVERGED_EVENT",
    "RELU_FAMILY",
    "SATURATING",
    "SATURATION_BOUNDS",
    "SOFT_SATURATED_FRACTION",
    "SOFT_SATURATION_BOUNDS",
    "SOFT_SATURATION_GRADIENT",
    "SOFT_SATURATION_SHARE",
    "ActivationMonitor",
    "CurvatureMonitor",
    "DistanceMonitor",
    "GradientMonitor",
    "default_monitors",
]
