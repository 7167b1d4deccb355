"""Reports of a diagnosis: the self-contained HTML page, ``findings.json`` and the plots.

The report reads records (a :class:`~deepdx.diagnose.diagnosis.Diagnosis` and its
:class:`~deepdx.diagnose.evidence.Evidence`); it never trains or touches a model.

======================  ===============================================================
name                    does
======================  ===============================================================
write_report            write ``findings.json`` and ``report.html`` into a directory
render_html             return the HTML report as a string
PLOT_NAMES              names of the report's plots (``<figure id="plot-<name>">``)
plot_<name>             one matplotlib Figure per plot (:mod:`deepdx.report.plots`)
figure_to_png_base64    a Figure as base64 PNG text
======================  ===============================================================
"""

from __future__ import annotations

from deepdx.report.html import PLOT_NAMES, render_html, write_report
from deepdx.report.plots import (
    figure_to_png_base64,
    plot_activations,
    plot_baselines,
    plot_capacity,
    plot_curvature,
    plot_grad_norms,
    plot_gradcheck,
    plot_learning_curve,
    plot_loss,
    plot_metric,
)

__all__ = [
    "PLOT_NAMES",
    "figure_to_png_base64",
    "plot_activations",
    "plot_baselines",
    "plot_capacity",
    "plot_curvature",
    "plot_grad_norms",
    "plot_gradcheck",
    "plot_learning_curve",
    "plot_loss",
    "plot_metric",
    "render_html",
    "write_report",
]
