"""Plots of the monitored training run, drawn from its :class:`~deepdx.train.History`.

Each function returns a :class:`~matplotlib.figure.Figure`, or None when the history holds
no finite value of the series it draws. Per-step series (up to ~10^5 points) are reduced
to :data:`~deepdx.report.plots._common.N_BINS` bins before drawing.

Symbols
-------
t          global optimizer step
L_t        training minibatch loss at step t
g_l        L2 norm of layer l's weight gradient
λ_max      largest Hessian eigenvalue of the training loss on a probe batch
η_t        learning rate at step t; gradient descent is stable along the top
           eigendirection only while λ_max < 2/η_t
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deepdx.diagnose.signals import (
    DEAD_FRACTION,
    GRAD_NORM,
    LAMBDA_MAX,
    LAYER_GRAD_NORM,
    SATURATED_FRACTION,
    layers_of,
)
from deepdx.report.plots._common import (
    bin_series,
    has_finite,
    moving_average,
    new_figure,
    note_on_axes,
    small_legend,
    use_log_scale,
)
from deepdx.train.history import History

__all__ = [
    "plot_activations",
    "plot_curvature",
    "plot_grad_norms",
    "plot_loss",
    "plot_metric",
]

#: The moving average of the per-step loss spans this fraction of the run (at least 1 step).
SMOOTHING_FRACTION = 0.01


# ---------------------------------------------------------------------------------------
# Loss and metric
# ---------------------------------------------------------------------------------------


def plot_loss(history: History | None) -> Figure | None:
    """Plot the per-step training loss (smoothed) and the per-epoch train / validation loss.

    Parameters
    ----------
    history : History or None
        The run; its ``"loss"`` step series and ``train_loss`` / ``val_loss`` epoch fields.

    Returns
    -------
    Figure or None
        Two panels (per step, per epoch); None when no loss value is finite.

    Notes
    -----
    Left: the trailing moving average of L_t over w = max(1, ⌊0.01·n⌋) steps, binned, over
    the raw values (as a min..max band per bin when the series was binned, so spikes stay
    visible). A red line marks the first non-finite loss. The y axis is logarithmic when the
    values span over two decades.

    Examples
    --------
    >>> h = History()
    >>> h.log_steps("loss", np.linspace(2.0, 0.5, 1000), first_step=1)
    >>> fig = plot_loss(h)
    >>> len(fig.get_axes()), fig.get_axes()[0].get_xlabel()
    (2, 'step')
    >>> plot_loss(None) is None
    True
    """
    if history is None:
        return None
    steps, loss = history.step_series("loss")
    epoch_losses = [history.series(name) for name in ("train_loss", "val_loss")]
    if not (has_finite(loss) or any(has_finite(v) for v in epoch_losses)):
        return None
    fig, (ax_step, ax_epoch) = new_figure(ncols=2)
    _draw_step_loss(ax_step, steps, loss)
    _draw_epoch_series(ax_epoch, history, ("train_loss", "val_loss"), "loss")
    return fig


def plot_metric(history: History | None) -> Figure | None:
    """Plot the train and validation metric per epoch.

    Parameters
    ----------
    history : History or None
        The run; its ``train_metric`` and ``val_metric`` epoch fields.

    Returns
    -------
    Figure or None
        None when neither series has a finite value.

    Examples
    --------
    >>> from deepdx.train.history import EpochRecord
    >>> h = History(metric="accuracy")
    >>> h.epochs = [EpochRecord(e, 1.0 / e, 0.1, e, val_metric=0.5 + e / 10) for e in (1, 2)]
    >>> plot_metric(h).get_axes()[0].get_ylabel()
    'accuracy'
    """
    if history is None:
        return None
    names = ("train_metric", "val_metric")
    if not any(has_finite(history.series(name)) for name in names):
        return None
    fig, (ax,) = new_figure()
    _draw_epoch_series(ax, history, names, history.metric or "metric")
    return fig


def _draw_step_loss(ax: Axes, steps: np.ndarray, loss: np.ndarray) -> None:
    """Draw the per-bin range and the smoothed per-step loss on ``ax``."""
    finite = np.isfinite(loss)
    if not finite.any():
        note_on_axes(ax, "no finite per-step loss")
        return
    window = max(1, int(SMOOTHING_FRACTION * finite.sum()))
    raw = bin_series(steps, loss)
    if raw.x.size < finite.sum():  # bins merged points: show their spread
        ax.fill_between(raw.x, raw.low, raw.high, alpha=0.25, lw=0, label="min–max per bin")
    else:
        ax.plot(raw.x, raw.mean, alpha=0.4 if window > 1 else 1.0, lw=0.8, label="per step")
    if window > 1:
        smooth = bin_series(steps[finite], moving_average(loss[finite], window))
        ax.plot(smooth.x, smooth.mean, lw=1.2, label=f"moving average ({window} steps)")
    if not finite.all():
        ax.axvline(steps[~finite][0], color="tab:red", lw=1, label="first non-finite loss")
    ax.set_yscale("log" if use_log_scale(loss) else "linear")
    ax.set(xlabel="step", ylabel="training loss", title="per step")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    small_legend(ax)


def _draw_epoch_series(ax: Axes, history: History, names: tuple[str, str], label: str) -> None:
    """Draw the train and validation epoch series ``names`` against the epoch number."""
    epochs = history.series("epoch")
    values = [history.series(name) for name in names]
    if not any(has_finite(v) for v in values):
        note_on_axes(ax, f"no per-epoch {label}")
        return
    marker = "o" if epochs.size <= 30 else None
    for split, series in zip(("train", "validation"), values, strict=True):
        if has_finite(series):
            ax.plot(epochs, series, marker=marker, ms=3, label=split)
    ax.set_yscale("log" if use_log_scale(np.concatenate(values)) else "linear")
    ax.set(xlabel="epoch", ylabel=label, title="per epoch")
    small_legend(ax)


# ---------------------------------------------------------------------------------------
# Monitor signals
# ---------------------------------------------------------------------------------------


def plot_grad_norms(history: History | None) -> Figure | None:
    """Plot the gradient norm of each layer (and the global norm) over steps, log scale.

    Parameters
    ----------
    history : History or None
        The run; its ``grad_norm/<layer>`` and ``grad_norm`` step series.

    Returns
    -------
    Figure or None
        None when no series has a finite positive value.

    Notes
    -----
    Each series is binned on log10(g_l), so a line shows the geometric mean per bin; zero
    norms cannot be drawn on a log axis and are left out.

    Examples
    --------
    >>> h = History()
    >>> h.log_steps("grad_norm/net.0", np.full(50, 1e-3), first_step=1)
    >>> h.log_steps("grad_norm/net.2", np.full(50, 1e-1), first_step=1)
    >>> [line.get_label() for line in plot_grad_norms(h).get_axes()[0].get_lines()]
    ['net.0', 'net.2']
    """
    if history is None:
        return None
    names = [LAYER_GRAD_NORM + layer for layer in layers_of(list(history.steps), LAYER_GRAD_NORM)]
    series = {name: history.step_series(name) for name in [*names, GRAD_NORM]}
    series = {name: (t, v) for name, (t, v) in series.items() if has_finite(_log10(v))}
    if not series:
        return None
    fig, (ax,) = new_figure()
    for name, (steps, values) in series.items():
        binned = bin_series(steps, _log10(values))
        total = name == GRAD_NORM
        label = name.removeprefix(LAYER_GRAD_NORM)
        ax.plot(
            binned.x,
            10.0**binned.mean,
            color="black" if total else None,
            lw=1.6 if total else 1.0,
            label=label,
        )
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="gradient norm")
    small_legend(ax)
    return fig


def plot_activations(history: History | None) -> Figure | None:
    """Plot the dead and saturated unit fractions of each layer over steps.

    Parameters
    ----------
    history : History or None
        The run; its ``dead_fraction/<layer>`` and ``saturated_fraction/<layer>`` series.

    Returns
    -------
    Figure or None
        Dead fractions as solid lines, saturated as dashed; None when there are none.

    Examples
    --------
    >>> h = History()
    >>> for t, f in [(0, 0.0), (10, 0.4)]:
    ...     h.log_step("dead_fraction/net.act1", f, step=t)
    >>> plot_activations(h).get_axes()[0].get_lines()[0].get_label()
    'dead: net.act1'
    """
    if history is None:
        return None
    kinds = ((DEAD_FRACTION, "dead", "-"), (SATURATED_FRACTION, "saturated", "--"))
    drawn = [
        (f"{word}: {layer}", style, history.step_series(prefix + layer))
        for prefix, word, style in kinds
        for layer in layers_of(list(history.steps), prefix)
    ]
    drawn = [item for item in drawn if has_finite(item[2][1])]
    if not drawn:
        return None
    fig, (ax,) = new_figure()
    for label, style, (steps, values) in drawn:
        binned = bin_series(steps, values)
        ax.plot(binned.x, binned.mean, ls=style, marker=".", ms=4, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set(xlabel="step", ylabel="fraction of units")
    small_legend(ax)
    return fig


def plot_curvature(history: History | None, lr: float | None = None) -> Figure | None:
    """Plot λ_max over steps with the gradient-descent stability limit 2/η.

    Parameters
    ----------
    history : History or None
        The run; its ``lambda_max`` step series and, for 2/η_t, its ``lr`` step series.
    lr : float, optional
        Constant η used for the 2/η line when the history has no ``lr`` series.

    Returns
    -------
    Figure or None
        None when ``lambda_max`` has no finite value.

    Notes
    -----
    Gradient descent with step η diverges along the top eigendirection when η·λ_max > 2
    (Cohen et al. 2021, edge of stability). For adaptive optimizers the line is context.

    Examples
    --------
    >>> h = History()
    >>> for t, lam in [(0, 5.0), (100, 18.0)]:
    ...     h.log_step("lambda_max", lam, step=t)
    >>> fig = plot_curvature(h, lr=0.1)
    >>> [line.get_label() for line in fig.get_axes()[0].get_lines()]
    ['λ_max', '2/η']
    """
    if history is None:
        return None
    steps, lam = history.step_series(LAMBDA_MAX)
    if not has_finite(lam):
        return None
    fig, (ax,) = new_figure()
    ax.plot(steps, lam, marker="o", ms=4, label="λ_max")
    limit = _stability_limit(history, steps, lr)
    if limit is not None:
        ax.plot(*limit, color="tab:red", ls="--", lw=1, label="2/η")
    everything = lam if limit is None else np.concatenate([lam, limit[1]])
    ax.set_yscale("log" if use_log_scale(everything) else "linear")
    ax.set(xlabel="step", ylabel="largest Hessian eigenvalue")
    small_legend(ax)
    return fig


def _stability_limit(
    history: History, steps: np.ndarray, lr: float | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (steps, 2/η) from the ``lr`` series, else from the constant ``lr``, else None."""
    lr_steps, lr_values = history.step_series("lr")
    with np.errstate(divide="ignore"):
        binned = bin_series(lr_steps, 2.0 / lr_values)
    if binned.x.size:
        return binned.x, binned.mean
    if lr is not None and lr > 0:
        span = np.array([steps.min(), steps.max()], dtype=np.float64)  # (2,)
        return span, np.full(2, 2.0 / lr)
    return None


def _log10(values: np.ndarray) -> np.ndarray:
    """Return log10 of ``values`` with NaN where a value is not positive."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    positive = values > 0
    out[positive] = np.log10(values[positive])
    return out
