"""Write a comparison to disk: the JSON of every trace, the PNG plots, a markdown summary.

``summary.md`` reads top to bottom: a plain-text verdict, the results table, the
curvature table (λ_max against the stability limit 2/lr), the learning-rate sweeps, the
plots (PNG files beside it) and how things were counted. Figures are rendered by
:mod:`deepdx.study.plots`; this module only lays them out.

Symbols
-------
``f₀``      objective at the common start; ``f_best`` the lowest final objective of all runs
``t_99.9``  CPU seconds until f <= f_best + 10⁻³ (f₀ − f_best): when a run had made 99.9 %
            of the best decrease any run made
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from deepdx.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from deepdx.report.plots._common import DPI
from deepdx.study.methods import stability_limit
from deepdx.study.plots import plot_curvature, plot_loss, plot_paths

if TYPE_CHECKING:
    from deepdx.study.compare import Comparison
    from deepdx.study.spectrum import CurvatureSummary
    from deepdx.study.trace import Trace

__all__ = ["comparison_table", "jsonable", "save_comparison", "save_png", "time_to_reach"]

REACH_FRACTION = 1e-3
"""A run has "reached" the best value within REACH_FRACTION of the decrease f₀ − f_best."""
TIE_RTOL = 1e-6
"""Final objectives within TIE_RTOL (relative) of the lowest share the verdict's first place."""


def jsonable(value: Any) -> Any:
    """Replace non-finite floats by None and tuples by lists, recursively (strict JSON).

    Examples
    --------
    >>> jsonable({"a": (1.0, float("nan"))})
    {'a': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def save_png(fig: Figure, path: Path) -> Path:
    """Render ``fig`` with Agg at the report's resolution and write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return atomic_write_bytes(path, buffer.getvalue())


def time_to_reach(trace: Trace, target: float) -> tuple[float, float] | None:
    """Return (CPU seconds, evaluations) at the first point with f <= ``target``, or None."""
    for f, seconds, evals in zip(trace.loss, trace.cpu_seconds, trace.evals, strict=True):
        if f <= target:
            return seconds, evals
    return None


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------

_HEADER = (
    "optimizer", "status", "lr", "final f", "evals", "curv. prod.", "CPU s", "wall s",
    f"CPU s to {1 - REACH_FRACTION:.1%}", "λ_max end", "stable below", "κ end",
)  # fmt: skip


def _rows(comparison: Comparison) -> list[list[str]]:
    """Return one row of formatted cells per trace, in :data:`_HEADER` order."""
    target = _reach_target(comparison)
    rows = []
    for t in comparison.traces:
        reached = None if target is None or not t.loss else time_to_reach(t, target)
        limit = stability_limit(t.optimizer, t.lr)
        curvature = t.curvature
        rows.append(
            [
                t.optimizer,
                t.status,
                "—" if t.lr is None else f"{t.lr:.3g} ({t.lr_source})",
                _number(t.final_loss),
                _number(t.evals[-1] if t.evals else math.nan, ".1f"),
                str(t.curvature_products[-1]) if t.curvature_products else "—",
                _number(t.cpu_seconds[-1] if t.cpu_seconds else math.nan, ".2f"),
                _number(t.wall_seconds[-1] if t.wall_seconds else math.nan, ".2f"),
                "not reached" if reached is None else f"{reached[0]:.3g}",
                "—" if curvature is None else _number(curvature.lambda_max),
                "—" if limit is None else _number(limit),
                "—" if curvature is None else _condition(curvature),
            ]
        )
    return rows


def comparison_table(comparison: Comparison) -> str:
    """Return the results as an aligned plain-text table, one line per optimizer."""
    rows = [list(_HEADER), *_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    start = comparison.curvature_start
    lines.append(f"start: f {_start_loss(comparison)}  λ_max {_number(start.lambda_max)}  "
                 f"λ_min {_number(start.lambda_min)}  κ {_condition(start)}")  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """Return a markdown table; cells have their pipes escaped."""
    cells = [[c.replace("|", "\\|") for c in row] for row in [header, *rows]]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells[1:]])


# ---------------------------------------------------------------------------------------
# The markdown summary
# ---------------------------------------------------------------------------------------


def comparison_markdown(comparison: Comparison, images: list[str]) -> str:
    """Return ``summary.md``: verdict, tables, sweeps, the ``images`` and the counting rules."""
    start, settings = comparison.curvature_start, comparison.settings
    limits = (("CPU seconds", settings["budget_seconds"]), ("evals", settings["max_evals"]))
    budget = ", ".join(f"{v:g} {k}" for k, v in limits if v is not None)
    parts = [
        f"# Optimizer comparison: {comparison.problem}",
        _verdict(comparison),
        f"Problem: {comparison.description} ({'convex' if comparison.convex else 'non-convex'})."
        f" Budget per optimizer: {budget}; seed {settings['seed']}, minibatch size "
        f"{settings['batch_size']}.",
        "## Results",
        _markdown_table(list(_HEADER), _rows(comparison)),
        "## Curvature",
        f"At the start: λ_max = {_number(start.lambda_max)}, λ_min = "
        f"{_number(start.lambda_min)}, κ = {_condition(start)} ({start.note}). "
        "A fixed step lr is stable only while λ_max < 2/lr (2(1 + β)/lr with momentum β); "
        "the table's *stable below* column is that limit for the rate used.",
        _markdown_table(
            ["point", "λ_max", "λ_min", "κ", "note"],
            [_curvature_row("start", start)]
            + [_curvature_row(t.optimizer, t.curvature) for t in comparison.traces if t.curvature],
        ),
    ]
    if comparison.sweeps:
        parts += ["## Learning-rate sweeps", _sweep_table(comparison)]
    parts += ["## Plots", *[f"![{Path(name).stem}]({name})" for name in images]]
    parts += ["## How this was measured", _COUNTING]
    return "\n\n".join(parts) + "\n"


_COUNTING = (
    "Time is CPU seconds (process time) and wall seconds spent in `optimizer.step` only; "
    "the full objective recorded at each point is evaluated outside that time. Evaluations "
    "count closure calls in full-batch equivalents (a minibatch of b of n rows counts b/n); "
    "line-search and backtracking calls count alike. Curvature products are Newton's "
    "Hessian-vector products (P per iteration) and Hessian-free's Gauss-Newton products "
    "(one per CG iteration). Skipped and failed runs give their reason in comparison.json."
)


def _verdict(comparison: Comparison) -> str:
    """Return the plain-text first paragraph: who got lowest, who got there first."""
    ran = [t for t in comparison.traces if t.loss and math.isfinite(t.final_loss)]
    if not ran:
        return "No optimizer produced a finite objective."
    best = min(t.final_loss for t in ran)
    tied = [t.optimizer for t in ran if t.final_loss - best <= TIE_RTOL * max(abs(best), 1e-300)]
    text = f"Lowest final objective: f = {best:.6g} ({', '.join(tied)}"
    text += f", within {TIE_RTOL:g} relative)." if len(tied) > 1 else ")."
    target = _reach_target(comparison)
    reached = [(time_to_reach(t, target), t.optimizer) for t in ran] if target else []
    reached = sorted((r[0], name) for r, name in reached if r is not None)
    if reached:
        text += (
            f" First within {REACH_FRACTION:g} of the best decrease: {reached[0][1]} "
            f"({reached[0][0]:.3g} CPU s)."
        )
    others = [f"{t.optimizer} {t.status}" for t in comparison.traces if t.status != "budget"]
    return text + (f" Runs that ended early: {', '.join(others)}." if others else "")


def _sweep_table(comparison: Comparison) -> str:
    """Return the sweeps as one markdown table: optimizer, lr, final f, status."""
    rows = [
        [name, f"{lr:.3g}", _number(loss), status]
        for name, entries in comparison.sweeps.items()
        for lr, loss, status in entries
    ]
    header = ["optimizer", "lr", "mean f, last quarter of the short run", "status"]
    return _markdown_table(header, rows)


def _curvature_row(name: str, summary: CurvatureSummary | None) -> list[str]:
    """Return the cells of one row of the curvature table."""
    assert summary is not None
    return [
        name,
        _number(summary.lambda_max),
        _number(summary.lambda_min),
        _condition(summary),
        summary.note,
    ]


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def save_comparison(comparison: Comparison, directory: Path) -> Path:
    """Write comparison.json, loss.png, curvature.png, paths.png (2-D) and summary.md."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "comparison.json", comparison.to_dict())
    figures = {"loss.png": plot_loss(comparison), "curvature.png": plot_curvature(comparison)}
    paths = plot_paths(comparison)
    if paths is not None:
        figures["paths.png"] = paths
    for name, fig in figures.items():
        save_png(fig, directory / name)
    atomic_write_text(directory / "summary.md", comparison_markdown(comparison, list(figures)))
    return directory


# ---------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------


def _reach_target(comparison: Comparison) -> float | None:
    """Return f_best + REACH_FRACTION (f₀ − f_best), or None when no run is finite."""
    finals = [t.final_loss for t in comparison.traces if t.loss and math.isfinite(t.final_loss)]
    starts = [t.loss[0] for t in comparison.traces if t.loss]
    if not finals or not starts:
        return None
    best = min(finals)
    return best + REACH_FRACTION * max(starts[0] - best, 0.0)


def _start_loss(comparison: Comparison) -> str:
    """Return f₀ formatted, from the first trace that ran."""
    starts = [t.loss[0] for t in comparison.traces if t.loss]
    return _number(starts[0]) if starts else "—"


def _condition(summary: CurvatureSummary) -> str:
    """Return κ formatted, or why there is none."""
    if summary.condition is not None:
        return _number(summary.condition)
    return "indefinite" if summary.lambda_min < 0 else "—"


def _number(value: float, spec: str = ".4g") -> str:
    """Format a float, writing non-finite values as words."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, spec)
