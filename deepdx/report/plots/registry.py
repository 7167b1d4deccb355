"""The report's plots, in page order: how each is drawn from the evidence.

Each :class:`ReportPlot` binds a ``plot_<name>`` function to the evidence it reads and says
which skipped checks explain a missing plot.

==============  =====================================  ====================================
name            drawn from                             ``Evidence.skipped`` keys looked up
==============  =====================================  ====================================
loss            history: loss, train/val loss          training_run
metric          history: train/val metric              training_run
learning_curve  learning_curve                         learning_curve
baselines       baselines, net_test_score              baselines
grad_norms      history: grad_norm, grad_norm/<layer>  training_run
activations     history: dead/saturated_fraction/...   training_run
curvature       history: lambda_max, lr; evidence.lr   training_run
capacity        capacity                               capacity, capacity_probes
gradcheck       gradcheck                              gradcheck, gradient_check
==============  =====================================  ====================================

The keys are the check names of :func:`deepdx.diagnose.diagnose` with spaces as underscores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure

from deepdx.diagnose.evidence import Evidence
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

__all__ = ["PLOT_NAMES", "REPORT_PLOTS", "ReportPlot"]


@dataclass(frozen=True)
class ReportPlot:
    """One plot of the report: how to draw it from the evidence, and what to say without it.

    Attributes
    ----------
    name : str
        Short name; the report's ``<figure id="plot-<name>">`` and ``Finding.plot``.
    title, caption : str
        Heading and one-sentence description shown under the figure.
    draw : callable
        ``draw(evidence) -> Figure | None``; None when the evidence lacks the data.
    checks : tuple of str
        Keys of ``Evidence.skipped`` whose reason explains a missing plot, first match wins.
    missing : str
        The reason shown when no check in ``checks`` was skipped.
    """

    name: str
    title: str
    caption: str
    draw: Callable[[Evidence], Figure | None]
    checks: tuple[str, ...]
    missing: str


REPORT_PLOTS: tuple[ReportPlot, ...] = (
    ReportPlot(
        name="loss",
        title="Loss",
        caption="Left: training loss per step and its moving average (for long runs a band "
        "spans each bin's min to max). Right: mean training and validation loss per epoch.",
        draw=lambda ev: plot_loss(ev.history),
        checks=("training_run",),
        missing="no loss was recorded",
    ),
    ReportPlot(
        name="metric",
        title="Metric",
        caption="Training and validation metric per epoch.",
        draw=lambda ev: plot_metric(ev.history),
        checks=("training_run",),
        missing="no training or validation metric was recorded",
    ),
    ReportPlot(
        name="learning_curve",
        title="Learning curve",
        caption="Training and validation score against training-set size, mean ± one "
        "standard deviation over folds.",
        draw=lambda ev: plot_learning_curve(ev.learning_curve),
        checks=("learning_curve",),
        missing="no learning curve was computed",
    ),
    ReportPlot(
        name="baselines",
        title="Baselines",
        caption="Test score of each shallow baseline and of the network on the same split; "
        "the best is outlined.",
        draw=lambda ev: plot_baselines(ev.baselines, net_score=ev.net_test_score, metric=ev.metric),
        checks=("baselines",),
        missing="no baseline was fitted",
    ),
    ReportPlot(
        name="grad_norms",
        title="Gradient norms",
        caption="Gradient norm of each layer's weight (and the global norm, black) over "
        "steps, log scale.",
        draw=lambda ev: plot_grad_norms(ev.history),
        checks=("training_run",),
        missing="no gradient norms were recorded",
    ),
    ReportPlot(
        name="activations",
        title="Dead and saturated units",
        caption="Fraction of dead units (solid) and saturated units (dashed) of each "
        "activation layer over steps.",
        draw=lambda ev: plot_activations(ev.history),
        checks=("training_run",),
        missing="no dead or saturated fractions were recorded",
    ),
    ReportPlot(
        name="curvature",
        title="Curvature",
        caption="Largest Hessian eigenvalue λ_max over steps; gradient descent is unstable "
        "above the dashed line 2/η.",
        draw=lambda ev: plot_curvature(ev.history, lr=ev.lr),
        checks=("training_run",),
        missing="λ_max was not measured",
    ),
    ReportPlot(
        name="capacity",
        title="Capacity probes",
        caption="Train-probe and validation score (or loss) of each model variant against "
        "its number of trainable parameters.",
        draw=lambda ev: plot_capacity(ev.capacity),
        checks=("capacity", "capacity_probes"),
        missing="no capacity probe was run",
    ),
    ReportPlot(
        name="gradcheck",
        title="Gradient check",
        caption="Relative error of each finite-difference comparison, log scale; below 1e-4 "
        "is ok, above 1e-2 the gradient is wrong.",
        draw=lambda ev: plot_gradcheck(ev.gradcheck),
        checks=("gradcheck", "gradient_check"),
        missing="the gradient check was not run",
    ),
)

#: Names of the report's plots, in page order; ``Finding.plot`` names one of them.
PLOT_NAMES: tuple[str, ...] = tuple(plot.name for plot in REPORT_PLOTS)
