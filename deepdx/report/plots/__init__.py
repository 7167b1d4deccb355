"""Plots of a diagnosis: one function per plot, each returning a Figure or None.

=====================  ==========================================  ===========================
function               draws                                       from
=====================  ==========================================  ===========================
plot_loss              smoothed per-step loss; per-epoch losses    ``History``
plot_metric            train / validation metric per epoch         ``History``
plot_learning_curve    score vs training-set size, ±1 std          ``LearningCurve``
plot_baselines         test score of each baseline and the net     ``BaselineResult`` list
plot_grad_norms        per-layer gradient norms over steps (log)   ``History``
plot_activations       dead / saturated unit fractions over steps  ``History``
plot_curvature         λ_max over steps with the 2/η line          ``History``, η
plot_capacity          probe scores (or losses) vs parameters      ``CapacityProbe`` list
plot_gradcheck         relative error per row with 1e-4 / 1e-2     ``GradCheckResult``
figure_to_png_base64   a figure as base64 PNG text                 ``Figure``
=====================  ==========================================  ===========================

:mod:`deepdx.report.plots.registry` binds each plot to the evidence it reads, in page order.
Figures are built with :class:`matplotlib.figure.Figure` directly (never ``pyplot``) and
rendered with Agg, 6 x 3.5 in at 100 dpi.
"""

from __future__ import annotations

from deepdx.report.plots._common import bin_series, figure_to_png_base64, moving_average
from deepdx.report.plots.checks import (
    plot_baselines,
    plot_capacity,
    plot_gradcheck,
    plot_learning_curve,
)
from deepdx.report.plots.training import (
    plot_activations,
    plot_curvature,
    plot_grad_norms,
    plot_loss,
    plot_metric,
)

__all__ = [
    "bin_series",
    "figure_to_png_base64",
    "moving_average",
    "plot_activations",
    "plot_baselines",
    "plot_capacity",
    "plot_curvature",
    "plot_grad_norms",
    "plot_gradcheck",
    "plot_learning_curve",
    "plot_loss",
    "plot_metric",
]
