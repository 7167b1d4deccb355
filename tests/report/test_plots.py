from __future__ import annotations

import base64
import math
import struct
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.evidence import CapacityProbe, LearningCurve
from deepdx.diagnose.gradient_check import GradCheckResult
from deepdx.report.plots import (
    bin_series,
    figure_to_png_base64,
    moving_average,
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
from deepdx.report.plots._common import N_BINS
from deepdx.report.plots.checks import REL_ERROR_FLOOR
from deepdx.report.plots.registry import PLOT_NAMES, REPORT_PLOTS
from deepdx.train.history import EpochRecord, History
from tests.report.synthetic import LAYERS, make_evidence, make_gradcheck, make_history

# ---------------------------------------------------------------------------------------
# Downsampling against slow references
# ---------------------------------------------------------------------------------------


def _bin_reference(x, y, n_bins):
    """Loop over bins: mean x, mean / min / max y of the finite points in each."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    edges = np.linspace(x.min(), x.max(), n_bins + 1)
    rows = []
    for k in range(n_bins):
        last = k == n_bins - 1
        inside = (x >= edges[k]) & ((x <= edges[k + 1]) if last else (x < edges[k + 1]))
        if inside.any():
            rows.append((x[inside].mean(), y[inside].mean(), y[inside].min(), y[inside].max()))
    return np.array(rows).T


def test_bin_series_matches_loop_reference_with_gaps_and_nan():
    rng = np.random.default_rng(0)
    x = np.sort(rng.choice(10_000, size=3_000, replace=False)).astype(float)
    x = x[(x < 3000) | (x > 6000)]  # a gap leaves empty bins
    y = rng.normal(size=x.size)
    y[::97] = np.nan
    y[5] = np.inf
    binned = bin_series(x, y, n_bins=50)
    x_ref, mean_ref, low_ref, high_ref = _bin_reference(x, y, 50)
    np.testing.assert_allclose(binned.x, x_ref)
    np.testing.assert_allclose(binned.mean, mean_ref)
    np.testing.assert_allclose(binned.low, low_ref)
    np.testing.assert_allclose(binned.high, high_ref)


def test_bin_series_returns_short_series_point_by_point_sorted():
    binned = bin_series(np.array([3.0, 1.0, 2.0]), np.array([30.0, 10.0, np.nan]), n_bins=10)
    assert binned.x.tolist() == [1.0, 3.0]
    assert binned.mean.tolist() == [10.0, 30.0]


def test_bin_series_is_empty_when_nothing_is_finite():
    binned = bin_series(np.arange(5.0), np.full(5, np.nan))
    assert binned.x.size == 0 and binned.mean.size == 0


@pytest.mark.parametrize("window", [1, 3, 50])
def test_moving_average_matches_loop_reference(window):
    values = np.random.default_rng(1).normal(size=40)
    reference = [values[max(0, i - window + 1) : i + 1].mean() for i in range(values.size)]
    np.testing.assert_allclose(moving_average(values, window), reference)


# ---------------------------------------------------------------------------------------
# Every plot: a Figure for data, None without
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("plot", REPORT_PLOTS, ids=lambda p: p.name)
def test_report_plot_returns_figure_for_synthetic_evidence(plot):
    fig = plot.draw(make_evidence(n_steps=500))
    assert isinstance(fig, Figure)
    assert all(ax.has_data() for ax in fig.get_axes())


def test_report_plot_names_are_unique_and_id_safe():
    assert len(set(PLOT_NAMES)) == len(PLOT_NAMES) == 9
    assert all(name.replace("_", "").isalnum() for name in PLOT_NAMES)


_EMPTY_INPUTS = [
    (plot_loss, None),
    (plot_loss, History()),
    (plot_metric, None),
    (plot_metric, History()),
    (plot_grad_norms, None),
    (plot_grad_norms, History(steps={"loss": [1.0]}, step_index={"loss": [1]})),
    (plot_activations, History()),
    (plot_curvature, History()),
    (plot_learning_curve, None),
    (plot_baselines, []),
    (plot_capacity, []),
    (plot_gradcheck, None),
]


@pytest.mark.parametrize(("plot", "data"), _EMPTY_INPUTS, ids=lambda v: getattr(v, "__name__", ""))
def test_plot_returns_none_for_missing_data(plot, data):
    assert plot(data) is None


def test_plot_returns_none_when_every_value_is_nan():
    history = History()
    history.log_steps("loss", np.full(5, np.nan), first_step=1)
    history.log_steps("grad_norm/net.0", np.zeros(5), first_step=1)  # not drawable on log axis
    history.log_step("lambda_max", math.nan, step=0)
    history.epochs.append(EpochRecord(1, math.nan, 0.1, 0.1))
    curve = LearningCurve((10,), (math.nan,), (0.0,), (math.nan,), (0.0,), "accuracy", 3)
    skipped = BaselineResult("rbf_svm", "accuracy", skipped="too many samples")
    assert plot_loss(history) is None
    assert plot_metric(history) is None
    assert plot_grad_norms(history) is None
    assert plot_curvature(history, lr=0.1) is None
    assert plot_learning_curve(curve) is None
    assert plot_baselines([skipped], net_score=math.nan) is None


# ---------------------------------------------------------------------------------------
# What each plot draws
# ---------------------------------------------------------------------------------------


def test_plot_loss_downsamples_100k_steps_and_marks_first_non_finite_step():
    history = History()
    loss = np.linspace(3.0, 0.1, 100_000)
    loss[70_000:] = np.nan  # diverged
    history.log_steps("loss", loss, first_step=1)
    ax_step = plot_loss(history).get_axes()[0]
    moving, marker = ax_step.get_lines()
    assert moving.get_xdata().size <= N_BINS
    assert marker.get_xdata()[0] == 70_001


@pytest.mark.parametrize(
    ("n_steps", "labels"),
    [
        (40, ["per step"]),
        (300, ["per step", "moving average (3 steps)"]),
        (1000, ["moving average (10 steps)"]),  # binned: the raw values become a band
    ],
)
def test_plot_loss_smooths_only_runs_long_enough(n_steps, labels):
    history = History()
    history.log_steps("loss", np.random.default_rng(0).random(n_steps), first_step=1)
    ax = plot_loss(history).get_axes()[0]
    assert [line.get_label() for line in ax.get_lines()] == labels
    assert len(ax.collections) == int(n_steps > N_BINS)
    if n_steps <= N_BINS:
        window = max(1, n_steps // 100)
        expected = moving_average(np.asarray(history.steps["loss"]), window)
        np.testing.assert_allclose(ax.get_lines()[-1].get_ydata(), expected)


def test_plot_grad_norms_draws_geometric_bin_means_of_each_layer():
    history = make_history(n_steps=5_000)
    ax = plot_grad_norms(history).get_axes()[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {*LAYERS, "grad_norm"}
    steps, values = history.step_series(f"grad_norm/{LAYERS[1]}")
    reference = bin_series(steps, np.log10(values))
    np.testing.assert_allclose(lines[LAYERS[1]].get_ydata(), 10.0**reference.mean)
    assert ax.get_yscale() == "log"


def test_plot_activations_draws_dead_solid_and_saturated_dashed():
    lines = plot_activations(make_history(n_steps=100)).get_axes()[0].get_lines()
    styles = {line.get_label(): line.get_linestyle() for line in lines}
    assert styles == {"dead: net.relu1": "-", "saturated: net.tanh2": "--"}


def test_plot_curvature_draws_two_over_lr_from_the_lr_series():
    history = History()
    history.log_steps("lr", np.array([0.1] * 50 + [0.01] * 50), first_step=1)
    history.log_step("lambda_max", 10.0, step=0)
    history.log_step("lambda_max", 30.0, step=100)
    _, limit = plot_curvature(history).get_axes()[0].get_lines()
    assert set(np.round(limit.get_ydata(), 9)) == {20.0, 200.0}


def test_plot_curvature_falls_back_to_constant_lr_and_omits_line_without_it():
    history = History()
    history.log_step("lambda_max", 10.0, step=0)
    history.log_step("lambda_max", 12.0, step=40)
    _, limit = plot_curvature(history, lr=0.5).get_axes()[0].get_lines()
    assert limit.get_xdata().tolist() == [0.0, 40.0] and limit.get_ydata().tolist() == [4.0, 4.0]
    assert len(plot_curvature(history).get_axes()[0].get_lines()) == 1


def test_plot_baselines_skips_unfitted_and_outlines_the_best():
    rows = [
        BaselineResult("dummy", "r2", 0.0, -0.1),
        BaselineResult("ridge", "r2", 0.8, 0.75),
        BaselineResult("rbf_svr", "r2", skipped="budget spent"),
    ]
    ax = plot_baselines(rows, net_score=0.6, metric="r2").get_axes()[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dummy", "ridge", "network"]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == pytest.approx([-0.1, 0.75, 0.6])
    edges = [bar.get_linewidth() for bar in ax.patches]
    assert edges.index(max(edges)) == int(np.argmax(widths))
    assert [t.get_text().endswith("best") for t in ax.texts] == [False, True, False]


def test_plot_capacity_uses_losses_when_a_probe_has_no_score():
    probes = [
        CapacityProbe("base", "mlp:8", 100, 0.5, 0.6, None, None, 3, 0.1),
        CapacityProbe("wider", "mlp:16", 200, 0.4, 0.5, None, None, 3, 0.1),
    ]
    ax = plot_capacity(probes).get_axes()[0]
    assert ax.get_ylabel() == "loss"
    assert ax.get_lines()[1].get_ydata().tolist() == [0.6, 0.5]


def test_plot_learning_curve_draws_error_bars_of_one_std():
    curve = make_evidence(n_steps=10).learning_curve
    ax = plot_learning_curve(curve).get_axes()[0]
    val_bars = ax.containers[1]  # ErrorbarContainer of the validation split
    segments = val_bars.lines[2][0].get_segments()
    half_widths = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    assert half_widths == pytest.approx(list(curve.val_std))


def test_plot_gradcheck_floors_zero_error_and_draws_both_thresholds():
    result: GradCheckResult = make_gradcheck()
    ax = plot_gradcheck(result).get_axes()[0]
    offsets = ax.collections[0].get_offsets()
    errors = dict(zip([t.get_text() for t in ax.get_yticklabels()], offsets[:, 0], strict=True))
    assert errors["fc1.bias"] == REL_ERROR_FLOOR
    assert errors["fc2.weight"] == pytest.approx(0.2)
    thresholds = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert thresholds == [1e-4, 1e-2]


# ---------------------------------------------------------------------------------------
# Encoding and global state
# ---------------------------------------------------------------------------------------


def test_figure_to_png_base64_encodes_600_by_350_png():
    png = base64.b64decode(figure_to_png_base64(plot_metric(make_history(n_steps=10))))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert (width, height) == (600, 350)


def test_plots_leave_no_pyplot_figures_open():
    for plot in REPORT_PLOTS:
        plot.draw(make_evidence(n_steps=50))
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []
