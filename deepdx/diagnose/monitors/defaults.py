"""``default_monitors``: the monitors a diagnosis attaches to a training run, cheapest first."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from deepdx.diagnose.monitors.activations import ActivationMonitor
from deepdx.diagnose.monitors.curvature import CurvatureMonitor
from deepdx.diagnose.monitors.distance import DistanceMonitor
from deepdx.diagnose.monitors.gradients import GradientMonitor
from deepdx.train.callbacks import Callback

__all__ = ["default_monitors"]


def default_monitors(
    *, curvature: bool = True, probe: Sequence[Tensor] | None = None
) -> list[Callback]:
    """Return fresh monitors with their default schedules, for ``fit(callbacks=...)``.

    Parameters
    ----------
    curvature : bool, default=True
        Include the :class:`CurvatureMonitor` (the only one that costs extra backward
        passes: 4-15 Hessian-vector products at step 0 and on the final weights).
    probe : sequence of Tensor, optional
        A fixed batch ``(X, y)`` on which activations (up to 256 rows) and curvature (up to
        64 rows) are measured, e.g. 256 training samples; by default each of those monitors
        copies the run's first minibatch.

    Returns
    -------
    list of Callback
        :class:`GradientMonitor` (every step; per layer every 8 and 16 steps),
        :class:`ActivationMonitor` (step 0 and every epoch), :class:`DistanceMonitor`
        (every epoch) and, if asked, :class:`CurvatureMonitor`.

    Notes
    -----
    Signal names are those of :mod:`deepdx.diagnose.signals`, plus
    ``soft_saturated_fraction/{layer}`` and ``lr_times_lambda_max``.

    The main costs are the extra read of every gradient at each step (``grad_norm``), the
    two λ_max measurements, a fixed cost of about 10-20 training steps each, and one
    forward pass over the activation probe per epoch; on short runs of small models that
    is a noticeable share (``benchmarks/monitor_overhead.py`` measures it).
    ``GradientMonitor(every=4)`` and ``curvature=False`` are the levers.

    Examples
    --------
    >>> [type(m).__name__ for m in default_monitors(curvature=False)]
    ['GradientMonitor', 'ActivationMonitor', 'DistanceMonitor']
    """
    monitors: list[Callback] = [
        GradientMonitor(),
        ActivationMonitor(probe=probe),
        DistanceMonitor(),
    ]
    if curvature:
        monitors.append(CurvatureMonitor(probe=probe))
    return monitors
