"""Plots of the checks run around training: learning curve, baselines, capacity, gradcheck.

Each function takes the check's record and returns a :class:`~matplotlib.figure.Figure`,
or None when the record is missing or holds no finite number to draw.

Symbols
-------
n          training-set size of a learning-curve point
s          score (accuracy or R², higher is better) or loss (lower is better)
P          trainable parameters of a capacity-probe variant
r          relative error |a − n| / max(|a| + |n|, τ) of a gradient-check row
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.evidence import CapacityProbe, LearningCurve
from deepdx.diagnose.gradient_check import OK_REL_ERROR, WRONG_REL_ERROR, GradCheckResult
from deepdx.report.plots._common import FIGSIZE, has_finite, new_figure, small_legend, ticks_at

__all__ = ["plot_baselines", "plot_capacity", "plot_gradcheck", "plot_learning_curve"]

#: Relative errors of exactly zero are drawn at this floor of the log axis.
REL_ERROR_FLOOR = 1e-16
#: Height in inches given to each bar or row of a horizontal chart.
ROW_HEIGHT = 0.28
#: Tallest horizontal chart, in inches.
MAX_HEIGHT = 10.0
_VERDICT_COLORS = {"ok": "tab:green", "suspect": "tab:orange", "wrong": "tab:red"}


def plot_learning_curve(curve: LearningCurve | None) -> Figure | None:
    """Plot train and validation score against training-set size, with ±1 std error bars.

    Parameters
    ----------
    curve : LearningCurve or None
        Means and standard deviations over folds at each size.

    Returns
    -------
    Figure or None
        None when the curve is missing or has no finite mean.

    Notes
    -----
    The x axis is logarithmic when the sizes span a factor of 10 or more.

    Examples
    --------
    >>> lc = LearningCurve((50, 100, 200), (1.0, 0.98, 0.97), (0.0, 0.01, 0.01),
    ...                    (0.7, 0.8, 0.85), (0.05, 0.03, 0.02), "accuracy", 5)
    >>> plot_learning_curve(lc).get_axes()[0].get_ylabel()
    'accuracy'
    """
    if curve is None or not (has_finite(curve.train_mean) or has_finite(curve.val_mean)):
        return None
    fig, (ax,) = new_figure()
    sizes = np.asarray(curve.sizes, dtype=np.float64)  # (k,)
    for split, mean, std in (
        ("train", curve.train_mean, curve.train_std),
        ("validation", curve.val_mean, curve.val_std),
    ):
        ax.errorbar(sizes, mean, yerr=std, marker="o", ms=4, capsize=3, label=split)
    if sizes.size and sizes.max() >= 10 * sizes.min() > 0:
        ax.set_xscale("log")
        ticks_at(ax, sizes)
    ax.set(xlabel="training-set size", ylabel=curve.metric or "score")
    ax.set_title(f"mean ± std over {curve.n_folds} folds", fontsize=9)
    small_legend(ax)
    return fig


def plot_baselines(
    baselines: Sequence[BaselineResult], *, net_score: float | None = None, metric: str = ""
) -> Figure | None:
    """Plot each fitted baseline's test score and the network's as horizontal bars.

    Parameters
    ----------
    baselines : sequence of BaselineResult
        Results of :func:`~deepdx.diagnose.baselines.fit_baselines`; skipped ones are left out.
    net_score : float, optional
        The network's test score, drawn as the bar ``network``.
    metric : str, default=""
        Axis label (``accuracy`` or ``r2``).

    Returns
    -------
    Figure or None
        The highest bar is outlined and labelled ``best``; None when no score is finite.

    Examples
    --------
    >>> rows = [BaselineResult("dummy", "accuracy", 0.5, 0.5), BaselineResult("knn", "accuracy",
    ...         0.9, 0.8)]
    >>> fig = plot_baselines(rows, net_score=0.95, metric="accuracy")
    >>> [t.get_text() for t in fig.get_axes()[0].get_yticklabels()]
    ['dummy', 'knn', 'network']
    """
    bars = [(b.name, b.test_score) for b in baselines if _finite(b.test_score)]
    if _finite(net_score):
        bars.append(("network", net_score))
    if not bars:
        return None
    fig, (ax,) = new_figure(figsize=_bar_figsize(len(bars)))
    names = [name for name, _ in bars]
    scores = np.array([score for _, score in bars], dtype=np.float64)  # (k,)
    colors = ["tab:orange" if name == "network" else "tab:blue" for name in names]
    drawn = ax.barh(np.arange(len(bars)), scores, color=colors, height=0.6)
    best = int(np.argmax(scores))
    drawn[best].set(edgecolor="black", linewidth=2.0)
    for i, score in enumerate(scores):
        label = f"{score:.3f}  best" if i == best else f"{score:.3f}"
        ax.annotate(label, (score, i), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_yticks(np.arange(len(bars)), labels=names)
    ax.set_xlim(min(0.0, scores.min() * 1.1), max(scores.max(), 0.0) * 1.25 + 1e-12)
    ax.set(xlabel=f"test {metric or 'score'}")
    return fig


def plot_capacity(probes: Sequence[CapacityProbe]) -> Figure | None:
    """Plot each probe variant's train and validation score (or loss) against its parameters.

    Parameters
    ----------
    probes : sequence of CapacityProbe
        Short runs of the model variants (``base``, ``wider``, ``deeper``...).

    Returns
    -------
    Figure or None
        Scores when every probe has one, else losses; None when nothing is finite.

    Examples
    --------
    >>> probes = [CapacityProbe("base", "mlp:64", 1000, 0.5, 0.6, 0.9, 0.8, 5, 1.0),
    ...           CapacityProbe("wider", "mlp:128", 2000, 0.3, 0.55, 0.95, 0.82, 5, 1.5)]
    >>> plot_capacity(probes).get_axes()[0].get_ylabel()
    'score'
    """
    use_score = bool(probes) and all(
        _finite(p.train_score) and _finite(p.val_score) for p in probes
    )
    field = "score" if use_score else "loss"
    points = {
        split: np.array([_as_float(getattr(p, f"{split}_{field}")) for p in probes])
        for split in ("train", "val")
    }
    if not any(has_finite(v) for v in points.values()):
        return None
    fig, (ax,) = new_figure()
    params = np.array([p.n_params for p in probes], dtype=np.float64)  # (k,)
    for split, label in (("train", "train probe"), ("val", "validation")):
        ax.plot(params, points[split], ls="none", marker="o", label=label)
    for probe, x, y in zip(probes, params, points["val"], strict=True):
        ax.annotate(probe.name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    if params.min() > 0:
        ax.set_xscale("log")
        ticks_at(ax, np.unique(params))
    ax.set(xlabel="trainable parameters", ylabel=field)
    small_legend(ax)
    return fig


def plot_gradcheck(result: GradCheckResult | None) -> Figure | None:
    """Plot the relative error of every gradient-check row on a log axis with its thresholds.

    Parameters
    ----------
    result : GradCheckResult or None
        Output of :func:`~deepdx.diagnose.gradient_check.gradcheck`.

    Returns
    -------
    Figure or None
        One point per row (whole-model directions, then tensors), coloured by verdict, with
        vertical lines at r = 1e-4 (ok below) and r = 1e-2 (wrong above); None when there are
        no finite errors.

    Notes
    -----
    r = 0 is drawn at :data:`REL_ERROR_FLOOR`.

    Examples
    --------
    >>> from deepdx.diagnose.gradient_check import GradCheckRow
    >>> row = GradCheckRow("fc.weight", (3, 2), 1.0, 1.0, 1e-9, "ok")
    >>> res = GradCheckResult((), (row,), "ok", "fc.weight", 1e-9, (), (), "", 1e-6, 4,
    ...                       "directions", 1e-12)
    >>> plot_gradcheck(res).get_axes()[0].get_xscale()
    'log'
    """
    rows = [] if result is None else [r for r in result.rows if math.isfinite(r.rel_error)]
    if not rows:
        return None
    fig, (ax,) = new_figure(figsize=_bar_figsize(len(rows)))
    errors = np.maximum([r.rel_error for r in rows], REL_ERROR_FLOOR)  # (k,)
    positions = np.arange(len(rows))
    left = min(errors.min(), OK_REL_ERROR) / 10.0
    ax.scatter(errors, positions, c=[_VERDICT_COLORS[r.verdict] for r in rows], zorder=3)
    ax.hlines(positions, left, errors, color="0.8", lw=1, zorder=1)
    ax.set_xlim(left=left)
    _threshold_lines(ax)
    ax.set_yticks(positions, labels=[r.name for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set(xlabel="relative error")
    small_legend(ax)
    return fig


def _threshold_lines(ax: Axes) -> None:
    """Draw the CS231n gradient-check thresholds as vertical lines."""
    ax.axvline(OK_REL_ERROR, color="tab:orange", ls="--", lw=1, label=f"ok < {OK_REL_ERROR:g}")
    ax.axvline(
        WRONG_REL_ERROR, color="tab:red", ls="--", lw=1, label=f"wrong > {WRONG_REL_ERROR:g}"
    )


def _bar_figsize(n_rows: int) -> tuple[float, float]:
    """Return a figure size tall enough for ``n_rows`` horizontal rows."""
    return FIGSIZE[0], min(MAX_HEIGHT, max(FIGSIZE[1], 1.2 + ROW_HEIGHT * n_rows))


def _finite(value: float | None) -> bool:
    """Return True when ``value`` is a finite number."""
    return value is not None and math.isfinite(value)


def _as_float(value: float | None) -> float:
    """Return ``value`` as a float, NaN for None."""
    return math.nan if value is None else float(value)
