"""Shared pieces of the report plots: figures without pyplot, PNG encoding, downsampling.

Every plot is a :class:`matplotlib.figure.Figure` built directly (no ``pyplot``, so no
global figure registry and no backend switch); saving it as PNG uses the Agg renderer.

Symbols
-------
n        points in a per-step series (up to ~10^5)
m        bins after downsampling, ``n_bins`` (a few hundred)
w        window of the trailing moving average, in points
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from numpy.typing import ArrayLike

__all__ = [
    "DPI",
    "FIGSIZE",
    "N_BINS",
    "BinnedSeries",
    "bin_series",
    "figure_to_png_base64",
    "has_finite",
    "moving_average",
    "new_figure",
    "note_on_axes",
    "small_legend",
    "ticks_at",
    "use_log_scale",
]

#: Size of one plot in inches (width, height).
FIGSIZE = (6.0, 3.5)
#: Resolution of the embedded PNGs; 6 x 3.5 in at 100 dpi is 600 x 350 pixels.
DPI = 100
#: Bins a per-step series is reduced to before it is drawn.
N_BINS = 400
#: Ratio max/min of positive values above which an axis switches to a log scale.
LOG_SCALE_RATIO = 100.0


@dataclass(frozen=True)
class BinnedSeries:
    """A series reduced to at most ``m`` bins.

    Attributes
    ----------
    x : ndarray of shape (m,)
        Mean x of the points in each non-empty bin.
    mean, low, high : ndarray of shape (m,)
        Mean, minimum and maximum y of those points.
    """

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def new_figure(
    *, ncols: int = 1, figsize: tuple[float, float] = FIGSIZE
) -> tuple[Figure, list[Axes]]:
    """Return a new figure with ``ncols`` axes side by side, outside any pyplot state.

    Parameters
    ----------
    ncols : int, default=1
        Number of panels in one row.
    figsize : tuple of float, default=FIGSIZE
        Width and height in inches.

    Returns
    -------
    fig : Figure
        Constrained-layout figure at :data:`DPI`.
    axes : list of Axes
        ``ncols`` panels, left to right.

    Examples
    --------
    >>> fig, axes = new_figure(ncols=2)
    >>> len(axes), fig.get_size_inches().tolist()
    (2, [6.0, 3.5])
    """
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def figure_to_png_base64(fig: Figure) -> str:
    r"""Return ``fig`` rendered as a PNG (Agg, :data:`DPI`), base64-encoded as ASCII text.

    Parameters
    ----------
    fig : Figure
        The figure to render.

    Returns
    -------
    str
        Base64 of the PNG bytes, ready for ``<img src="data:image/png;base64,...">``.

    Examples
    --------
    >>> fig, _ = new_figure()
    >>> text = figure_to_png_base64(fig)
    >>> base64.b64decode(text)[:8] == b"\x89PNG\r\n\x1a\n"
    True
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Return the trailing moving average of ``values`` over ``window`` points.

    Parameters
    ----------
    values : ndarray of shape (n,)
        Finite values in step order.
    window : int
        w >= 1; the first w - 1 outputs average the points seen so far.

    Returns
    -------
    ndarray of shape (n,)

    Notes
    -----
    a_i = (1 / k_i) Σ_{j = i - k_i + 1}^{i} v_j with k_i = min(i + 1, w), computed from one
    cumulative sum in O(n).

    Examples
    --------
    >>> moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist()
    [1.0, 2.0, 4.0, 6.0]
    """
    values = np.asarray(values, dtype=np.float64)
    cumsum = np.concatenate([[0.0], np.cumsum(values)])  # (n + 1,)
    end = np.arange(1, values.size + 1)  # (n,)
    start = np.maximum(end - window, 0)  # (n,)
    return (cumsum[end] - cumsum[start]) / (end - start)


def bin_series(x: np.ndarray, y: np.ndarray, *, n_bins: int = N_BINS) -> BinnedSeries:
    """Reduce a series to at most ``n_bins`` equal-width bins of x, dropping non-finite points.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
        Positions (steps) and values; points where either is NaN or infinite are dropped.
    n_bins : int, default=N_BINS
        m, the number of equal-width bins over [min x, max x]. A series of at most m
        points is returned point by point (sorted by x).

    Returns
    -------
    BinnedSeries
        Mean x, and mean / min / max y, of each non-empty bin; empty arrays when no point
        is finite.

    Notes
    -----
    Bin k holds the points with x in [x_min + k·Δ, x_min + (k+1)·Δ), Δ = (x_max − x_min)/m
    (the last bin is closed). Cost O(n log n) for the sort, O(n) otherwise. Pass log10(y)
    to get geometric means for a log-scale axis.

    Examples
    --------
    >>> b = bin_series(np.arange(10.0), np.arange(10.0) ** 2, n_bins=2)
    >>> b.x.tolist(), b.mean.tolist(), b.high.tolist()
    ([2.0, 7.0], [6.0, 51.0], [16.0, 81.0])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    x, y = x[keep][order], y[keep][order]  # (n,)
    if x.size <= n_bins:
        return BinnedSeries(x, y, y, y)
    edges = np.linspace(x[0], x[-1], n_bins + 1)  # (m + 1,)
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)  # (n,)
    starts = np.flatnonzero(np.diff(index, prepend=-1))  # first point of each non-empty bin
    counts = np.diff(np.append(starts, x.size))
    return BinnedSeries(
        x=np.add.reduceat(x, starts) / counts,
        mean=np.add.reduceat(y, starts) / counts,
        low=np.minimum.reduceat(y, starts),
        high=np.maximum.reduceat(y, starts),
    )


def use_log_scale(values: ArrayLike) -> bool:
    """Return True when all finite values are positive and span over two decades."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0 or finite.min() <= 0:
        return False
    return bool(finite.max() / finite.min() > LOG_SCALE_RATIO)


def has_finite(values: ArrayLike) -> bool:
    """Return True when ``values`` holds at least one finite number."""
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).any())


def note_on_axes(ax: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty panel and hide its ticks."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def small_legend(ax: Axes) -> None:
    """Add a compact legend when the axes has labelled artists."""
    handles = ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(fontsize=7, frameon=False, ncols=2 if len(handles) > 6 else 1)


def ticks_at(ax: Axes, values: np.ndarray) -> None:
    """Put the x ticks of a log axis at ``values``, labelled as plain integers."""
    ax.set_xticks(values, labels=[f"{int(v):,}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())
