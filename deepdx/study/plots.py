"""Plots of an optimizer comparison and of a local-optima study: one function per figure.

=====================  =====================================================  ================
function               draws                                                  from
=====================  =====================================================  ================
plot_loss              f (or f − f*) against CPU seconds and evaluations      ``Comparison``
plot_curvature         λ_max at each end point against 2/lr; κ per point      ``Comparison``
plot_paths             iterates on the contours of a 2-parameter objective    ``Comparison``
plot_final_losses      final loss above the best seed's; function distances   ``LocalOptima``
plot_distance_matrix   pairwise function and aligned weight distances (MLP)   ``LocalOptima``
=====================  =====================================================  ================

Figures are :class:`matplotlib.figure.Figure` objects built without ``pyplot``, rendered
with Agg, 6 x 3.5 in per panel at 100 dpi, as in :mod:`deepdx.report.plots`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from deepdx.report.plots._common import FIGSIZE, new_figure, note_on_axes, small_legend
from deepdx.study.methods import is_full_batch, stability_limit

if TYPE_CHECKING:
    from deepdx.study.compare import Comparison
    from deepdx.study.local_optima import LocalOptima
    from deepdx.study.spectrum import CurvatureSummary
    from deepdx.study.trace import Trace

__all__ = [
    "plot_curvature",
    "plot_distance_matrix",
    "plot_final_losses",
    "plot_loss",
    "plot_paths",
]

#: Axes are symmetric-log; values below these thresholds are drawn linearly (0 included).
EVALS_LINTHRESH = 1.0
SECONDS_LINTHRESH = 1e-2
#: Differences f − f* at or below this are drawn at it on a log axis (f* reached).
GAP_FLOOR = 1e-16


def _wide(ncols: int) -> tuple[float, float]:
    """Return the size of ``ncols`` standard panels side by side."""
    return (FIGSIZE[0] * ncols / 1.5, FIGSIZE[1])


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------


def plot_loss(comparison: Comparison) -> Figure:
    """Plot every trace's objective against CPU seconds (left) and evaluations (right).

    Parameters
    ----------
    comparison : Comparison
        The runs. With a known optimum the y axis is f − f* (floored at 10⁻¹⁶).

    Returns
    -------
    Figure
        Two panels, symmetric-log x axes, log y axis when the values span over two
        decades; a cross marks where a run diverged. Skipped runs are listed in the title.
    """
    fig, (ax_time, ax_evals) = new_figure(ncols=2, figsize=_wide(2))
    gap = comparison.optimum is not None
    drawn = [t for t in comparison.traces if t.loss]
    for trace in drawn:
        y = _values(trace, comparison.optimum)
        for ax, x in ((ax_time, trace.cpu_seconds), (ax_evals, trace.evals)):
            (line,) = ax.plot(x, y, lw=1.2, label=_label(trace))
            if trace.status == "diverged":
                ax.plot(x[-1], y[-1], "x", color=line.get_color(), ms=7)
    values = np.concatenate([_values(t, comparison.optimum) for t in drawn] or [np.empty(0)])
    finite = values[np.isfinite(values)]
    for ax, xlabel, linthresh in (
        (ax_time, "CPU seconds in the optimizer", SECONDS_LINTHRESH),
        (ax_evals, "gradient evaluations (full-batch equivalents)", EVALS_LINTHRESH),
    ):
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("f − f*" if gap else "training objective f")
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    small_legend(ax_evals)
    skipped = [t.optimizer for t in comparison.traces if not t.loss]
    title = f"{comparison.problem}: {'convex' if comparison.convex else 'non-convex'}"
    fig.suptitle(title + (f" (skipped: {', '.join(skipped)})" if skipped else ""), fontsize=10)
    return fig


def plot_curvature(comparison: Comparison) -> Figure:
    """Plot λ_max at each end point against the start and 2/lr (left), and κ (right).

    Parameters
    ----------
    comparison : Comparison
        The runs with their curvature summaries.

    Returns
    -------
    Figure
        Left: λ_max per end point (dots), at the start (dashed line), and the largest
        λ_max a fixed-step method is stable for, 2/lr or 2(1 + β)/lr (red bars). Right:
        the condition estimate κ = λ_max / λ_min+ of each point (log axis); a point whose
        Hessian is indefinite is marked "indefinite" instead.
    """
    fig, (ax_top, ax_cond) = new_figure(ncols=2, figsize=_wide(2))
    start = comparison.curvature_start
    measured = [t for t in comparison.traces if t.curvature is not None]
    names = ["start"] + [t.optimizer for t in measured]
    summaries = [start] + [t.curvature for t in measured if t.curvature is not None]
    x = np.arange(len(names))
    ax_top.axhline(start.lambda_max, color="0.4", ls="--", lw=1, label="λ_max at start")
    ax_top.plot(x[1:], [s.lambda_max for s in summaries[1:]], "o", label="λ_max at end")
    limits = [(i + 1, stability_limit(t.optimizer, t.lr)) for i, t in enumerate(measured)]
    limits = [(i, v) for i, v in limits if v is not None]
    if limits:
        ax_top.plot(*zip(*limits, strict=True), "_", color="C3", ms=18, mew=2,
                    label="stability limit 2/lr")  # fmt: skip
    ax_top.set_yscale("log")
    ax_top.set_ylabel("top Hessian eigenvalue λ_max")
    small_legend(ax_top)
    _draw_conditions(ax_cond, summaries)
    for ax in (ax_top, ax_cond):
        ax.set_xticks(x, labels=names, rotation=45, fontsize=8)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{comparison.problem}: curvature ({start.note})", fontsize=9)
    return fig


def _draw_conditions(ax: Axes, summaries: list[CurvatureSummary]) -> None:
    """Draw κ per point, or 'indefinite' where the Hessian has a negative eigenvalue."""
    defined = [(i, s.condition) for i, s in enumerate(summaries) if s.condition is not None]
    if not defined:
        note_on_axes(ax, "Hessian indefinite (λ_min < 0) at every point:\nno condition number")
        return
    ax.plot(*zip(*defined, strict=True), "s", color="C2", label="κ = λ_max / λ_min+")
    ax.set_yscale("log")
    ax.set_ylabel("condition estimate κ")
    for i, s in enumerate(summaries):
        if s.condition is None:
            ax.annotate("indefinite" if s.lambda_min < 0 else "no λ_min+", (i, 0.02),
                        xycoords=("data", "axes fraction"), rotation=90, ha="center",
                        va="bottom", fontsize=7, color="C3")  # fmt: skip
    small_legend(ax)


def plot_paths(comparison: Comparison) -> Figure | None:
    """Plot the recorded iterates on the contours of f, for a problem of 2 parameters.

    Returns
    -------
    Figure or None
        Contours of log10(f − f* + 10⁻¹⁶) with one path per optimizer; None when the
        comparison has no landscape.
    """
    land = comparison.landscape
    if land is None:
        return None
    fig, (ax,) = new_figure(figsize=(FIGSIZE[0], FIGSIZE[0] * 0.8))
    level = np.log10(np.asarray(land["loss"]) - (comparison.optimum or 0.0) + GAP_FLOOR)
    ax.contour(land["x"], land["y"], level, levels=25, colors="0.75", linewidths=0.6)
    for trace in comparison.traces:
        if trace.points:
            path = np.asarray(trace.points)  # (m, 2)
            ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1, label=_label(trace))
    start = comparison.traces[0].points[0] if comparison.traces[0].points else None
    if start is not None:
        ax.plot(*start, "ks", ms=5, label="start")
    ax.set_xlabel("θ₀")
    ax.set_ylabel("θ₁")
    small_legend(ax)
    ax.set_title(f"{comparison.problem}: iterates (recorded points)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------
# Local optima
# ---------------------------------------------------------------------------------------


def plot_final_losses(study: LocalOptima) -> Figure:
    """Plot each seed's final loss per model (left) and the pairwise function distances.

    Returns
    -------
    Figure
        Left: each seed's final objective above the best seed's, one column per model,
        with small horizontal jitter, on a log axis (floored at 10⁻¹⁶, where the best
        seed sits). Right: the distribution of pairwise function distances on a log axis
        (floored alike), one histogram per model.
    """
    fig, (ax_loss, ax_dist) = new_figure(ncols=2, figsize=_wide(2))
    runs = study.runs()
    jitter = np.random.default_rng(0)  # layout only; the data are not random
    for i, run in enumerate(runs):
        loss = np.asarray(run.final_loss)
        excess = np.maximum(loss - loss.min(), GAP_FLOOR)
        ax_loss.plot(i + jitter.uniform(-0.12, 0.12, loss.size), excess, "o", ms=4, alpha=0.7)
    ax_loss.set_xticks(range(len(runs)), labels=[r.model for r in runs])
    ax_loss.set_xlim(-0.5, len(runs) - 0.5)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("final f − best final f over seeds")
    distances = [np.maximum(_upper(run.function_distance), GAP_FLOOR) for run in runs]
    bins = np.logspace(-16, max(0.0, np.log10(max(d.max() for d in distances))) + 0.1, 40)
    for run, d in zip(runs, distances, strict=True):
        ax_dist.hist(d, bins=bins.tolist(), alpha=0.6, label=run.model)
    ax_dist.set_xscale("log")
    ax_dist.set_xlabel("pairwise RMS distance of predicted probabilities")
    ax_dist.set_ylabel("pairs of seeds")
    small_legend(ax_dist)
    fig.suptitle(f"{len(runs[0].seeds)} seeds: one optimum or many?", fontsize=10)
    return fig


def plot_distance_matrix(study: LocalOptima) -> Figure:
    """Plot the MLP's pairwise function distances and aligned weight distances as heatmaps.

    Returns
    -------
    Figure
        Two heatmaps over seeds; the right one is replaced by a note when the hidden
        units could not be aligned (more than one hidden layer).
    """
    fig, axes = new_figure(ncols=2, figsize=_wide(2))
    run = study.mlp
    _heatmap(fig, axes[0], run.function_distance, "function distance (probabilities)")
    if run.aligned_distance is None:
        note_on_axes(axes[1], "weights not aligned: only one hidden layer is supported")
    else:
        _heatmap(fig, axes[1], run.aligned_distance, "relative weight distance, units aligned")
    fig.suptitle(f"{run.model}: distances between the solutions of {len(run.seeds)} seeds",
                 fontsize=10)  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _values(trace: Trace, optimum: float | None) -> np.ndarray:
    """Return the trace's f, or f − f* floored at GAP_FLOOR when f* is known."""
    loss = np.asarray(trace.loss, dtype=np.float64)
    return loss if optimum is None else np.maximum(loss - optimum, GAP_FLOOR)


def _label(trace: Trace) -> str:
    """Return ``name (lr=...)`` for minibatch methods, the name otherwise."""
    if is_full_batch(trace.optimizer) or trace.lr is None:
        return trace.optimizer
    return f"{trace.optimizer} (lr={trace.lr:.2g})"


def _upper(matrix: np.ndarray) -> np.ndarray:
    """Return the entries above the diagonal of a square matrix, flattened."""
    matrix = np.asarray(matrix)
    return matrix[np.triu_indices(len(matrix), k=1)]


def _heatmap(fig: Figure, ax: Axes, matrix: np.ndarray, title: str) -> None:
    """Draw ``matrix`` (N, N) with a colour bar."""
    image = ax.imshow(np.asarray(matrix), cmap="viridis")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xlabel("seed index")
    ax.set_ylabel("seed index")
    ax.set_title(title, fontsize=9)
