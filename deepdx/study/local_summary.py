"""Write a local-optima study to disk: JSON, two PNG plots and a markdown summary.

``summary.md`` starts with a plain-text verdict (one optimum or several), then the table
of spreads and distances for both models, the plots, and how each distance is measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepdx.io import atomic_write_json, atomic_write_text
from deepdx.study.plots import plot_distance_matrix, plot_final_losses
from deepdx.study.summary import save_png

if TYPE_CHECKING:
    from deepdx.study.local_optima import LocalOptima

__all__ = ["local_optima_markdown", "local_optima_table", "save_local_optima"]

_COLUMNS = (
    ("model", "model", "{}"),
    ("final f min", "loss_min", "{:.8g}"),
    ("spread", "loss_spread", "{:.3g}"),
    ("relative", "relative_spread", "{:.3g}"),
    ("max|g|", "max_grad_norm", "{:.2g}"),
    ("function dist.", "mean_function_distance", "{:.3g}"),
    ("disagree", "mean_disagreement", "{:.2%}"),
    ("weight dist.", "mean_weight_distance", "{:.3g}"),
    ("aligned", "mean_aligned_distance", "{:.3g}"),
    ("distinct", "n_distinct", "{}"),
)
"""(header, summary key, format) of the table columns; distances are means over pairs."""


def _cells(summary: dict[str, Any]) -> list[str]:
    """Return the formatted cells of one model's summary."""
    return ["—" if summary[key] is None else fmt.format(summary[key]) for _, key, fmt in _COLUMNS]


def local_optima_table(study: LocalOptima) -> str:
    """Return both models' spreads and mean pairwise distances as a plain-text table."""
    rows = [[header for header, _, _ in _COLUMNS]]
    rows += [_cells(run.summary()) for run in study.runs()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _verdict(study: LocalOptima) -> str:
    """Return the plain-text first paragraph."""
    lr, mlp = study.logreg.summary(), study.mlp.summary()
    return (
        f"Logistic regression (convex) ended at {lr['n_distinct']} distinct solution(s) from "
        f"{len(study.logreg.seeds)} seeds: final losses within {lr['relative_spread']:.2g} "
        f"(relative), predictions within {lr['mean_function_distance']:.2g} on average. "
        f"The MLP (non-convex) ended at {mlp['n_distinct']} distinct solution(s): final "
        f"losses spread by {mlp['relative_spread']:.2g} (relative), predicted probabilities "
        f"{mlp['mean_function_distance']:.2g} apart on average, "
        f"{mlp['mean_disagreement']:.1%} of the rows classified differently."
    )


_MEASURED = (
    "Function distance: sqrt(mean over rows of ‖p_i − p_j‖²) between the predicted class "
    "probabilities of two seeds' solutions on the training rows; invariant to hidden-unit "
    "permutations and sign flips. Weight distance: ‖θ_i − θ_j‖ / ½(‖θ_i‖ + ‖θ_j‖), raw; "
    "aligned: the same after matching the hidden units of j to those of i (Hungarian "
    "algorithm on incoming weights, bias and outgoing weights, sign flips allowed for "
    "tanh). Distinct: solutions at least 1e-3 apart in function distance. Every model "
    "is trained by L-BFGS from its own seed to the gradient tolerance in the settings."
)


def local_optima_markdown(study: LocalOptima, images: list[str]) -> str:
    """Return ``summary.md`` of the study, showing ``images`` (file names beside it)."""
    header = [h for h, _, _ in _COLUMNS]
    rows = [_cells(run.summary()) for run in study.runs()]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    parts = [
        "# Local optima: one MLP from many seeds, next to logistic regression",
        _verdict(study),
        f"Setup: {study.description}.",
        "## Spread of solutions (means over pairs of seeds)",
        "\n".join(table),
        "## Plots",
        *[f"![{Path(name).stem}]({name})" for name in images],
        "## How this was measured",
        _MEASURED,
    ]
    return "\n\n".join(parts) + "\n"


def save_local_optima(study: LocalOptima, directory: Path) -> Path:
    """Write local_optima.json, local_optima.png, distances.png and summary.md."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "local_optima.json", study.to_dict())
    figures = {
        "local_optima.png": plot_final_losses(study),
        "distances.png": plot_distance_matrix(study),
    }
    for name, fig in figures.items():
        save_png(fig, directory / name)
    atomic_write_text(directory / "summary.md", local_optima_markdown(study, list(figures)))
    return directory
