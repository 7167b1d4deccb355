"""The self-contained HTML report of a diagnosis, and ``findings.json`` beside it.

``report.html`` reads top to bottom: a plain-text summary, the verdict table
(``id="verdicts"``), the evidence of each finding (numbers, thresholds and their sources),
the plots (each a ``<figure id="plot-<name>">``), then the settings and timings. It is one
file: ``style.css`` is inlined, plots are base64 PNGs, and a Content-Security-Policy forbids
scripts and every external load. Every value that comes from the user or the data is escaped
with :func:`html.escape`; only fragments built here are trusted (:class:`_Html`).

A plot without data is replaced by the note ``not run: <reason>``; the reason is the first
of its check names found in ``evidence.skipped``, else a default sentence
(:mod:`deepdx.report.plots.registry` lists both).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import numpy as np

from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding
from deepdx.exceptions import InvalidParameterError
from deepdx.io import atomic_write_json, atomic_write_text
from deepdx.report.plots import figure_to_png_base64
from deepdx.report.plots.registry import PLOT_NAMES, REPORT_PLOTS, ReportPlot

if TYPE_CHECKING:
    from deepdx.diagnose.diagnosis import Diagnosis

__all__ = ["PLOT_NAMES", "render_html", "write_report"]

logger = logging.getLogger(__name__)

#: Verdicts listed in the plain-text summary.
N_TOP_VERDICTS = 3
#: Items of a list value shown in a table cell before it is cut short.
MAX_LIST_ITEMS = 8
#: Characters of a value shown in a table cell before it is cut short.
MAX_VALUE_CHARS = 400
_SEVERITY_ORDER = {"problem": 0, "warning": 1, "info": 2}
_METRIC_LABELS = {"accuracy": "accuracy", "r2": "R²"}


class _Html(str):
    """A fragment of markup built by this module: trusted, never escaped again."""


def _e(value: object) -> _Html:
    """Return ``value`` as escaped text, or unchanged when it is already trusted markup."""
    return value if isinstance(value, _Html) else _Html(html.escape(str(value), quote=True))


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def write_report(diagnosis: Diagnosis, directory: Path) -> Path:
    """Write ``findings.json`` and ``report.html`` for ``diagnosis`` into ``directory``.

    Parameters
    ----------
    diagnosis : Diagnosis
        Findings, evidence, settings and timings of one diagnosis.
    directory : Path
        Created (with parents) when missing; existing report files are replaced atomically.

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    InvalidParameterError
        If ``directory`` exists and is not a directory, or the findings hold a value strict
        JSON cannot represent.

    Notes
    -----
    ``findings.json`` is ``diagnosis.to_dict()`` as strict JSON: NaN and infinities become
    ``null`` and NumPy scalars and arrays become plain numbers and lists.

    Examples
    --------
    >>> import tempfile
    >>> from deepdx.diagnose.diagnosis import Diagnosis
    >>> ev = Evidence("classification", "accuracy", 2, 100, "sgd", 0.1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_report(Diagnosis([], ev), Path(tmp) / "run")
    ...     sorted(p.name for p in out.iterdir())
    ['findings.json', 'report.html']
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InvalidParameterError(
            f"The report directory {directory} exists but is a file; expected a directory or "
            "a path that does not exist yet. Choose another output directory."
        )
    page = render_html(diagnosis)  # before writing, so a failure leaves the old files intact
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "findings.json", _strict_json(diagnosis.to_dict()))
    atomic_write_text(directory / "report.html", page)
    return directory


def render_html(diagnosis: Diagnosis) -> str:
    """Return the self-contained HTML report of ``diagnosis``.

    Parameters
    ----------
    diagnosis : Diagnosis
        Findings, evidence, settings and timings of one diagnosis.

    Returns
    -------
    str
        One HTML document: summary, verdicts, evidence, plots, settings, timings.

    Notes
    -----
    Cost: the nine plots dominate (about 0.1 s each); per-step series are binned to a few
    hundred points first, so a 10^5-step history renders in about a second.

    Examples
    --------
    >>> from deepdx.diagnose.diagnosis import Diagnosis
    >>> f = Finding("plateau", "warning", "Training loss stopped improving.")
    >>> page = render_html(Diagnosis([f], Evidence("regression", "r2", 0, 50, "adam", 1e-3)))
    >>> 'id="verdicts"' in page, "No problems, 1 warning and no notes." in page
    (True, True)
    """
    ev = diagnosis.evidence
    findings = sorted(diagnosis.findings, key=lambda f: _SEVERITY_ORDER[f.severity])
    drawn = {plot.name: _draw(plot, ev) for plot in REPORT_PLOTS}
    return Template(_resource("template.html")).substitute(
        title=_e(_title(diagnosis.settings)),
        subtitle=_e(_subtitle(ev)),
        css=_resource("style.css"),
        summary=_summary_html(findings, ev),
        verdicts=_verdicts_html(findings),
        evidence=_evidence_html(findings, drawn),
        plots="\n".join(_figure_html(plot, drawn[plot.name], ev) for plot in REPORT_PLOTS),
        settings=_key_value_table(_flatten(diagnosis.settings), "setting"),
        timings=_timings_html(diagnosis.timings, ev.skipped),
    )


# ---------------------------------------------------------------------------------------
# Header and summary
# ---------------------------------------------------------------------------------------


def _title(settings: Mapping[str, Any]) -> str:
    """Return the page title, naming the data set when the settings give its name."""
    data = settings.get("data", settings.get("dataset"))
    name = data.get("name") if isinstance(data, Mapping) else data
    return f"deepdx diagnosis: {name}" if name else "deepdx diagnosis"


def _subtitle(ev: Evidence) -> str:
    """Return one line describing the task, model and optimizer."""
    return (
        f"{ev.task} · model {ev.model_spec} · optimizer {ev.optimizer} (lr {ev.lr:g}) · "
        f"{ev.n_train} training samples"
    )


def _summary_html(findings: list[Finding], ev: Evidence) -> _Html:
    """Return the counts sentence, the network's scores and the top verdicts."""
    parts = [f'<p class="counts">{_e(_counts_sentence(findings))}</p>']
    scores = _scores_sentence(ev)
    if scores:
        parts.append(f"<p>{_e(scores)}</p>")
    if ev.divergence:
        parts.append(f'<p class="divergence">The main run diverged: {_e(ev.divergence)}</p>')
    top = [f for f in findings if f.severity != "info"][:N_TOP_VERDICTS]
    if top:
        items = "".join(f"<li>{_e(_verdict_sentence(f))}</li>" for f in top)
        parts.append(f"<p>Top verdicts:</p>\n<ol>{items}</ol>")
    else:
        parts.append("<p>No problems or warnings were found.</p>")
    return _Html("\n".join(parts))


def _counts_sentence(findings: list[Finding]) -> str:
    """Return e.g. ``3 problems, 2 warnings and 1 note.``."""
    nouns = {"problem": "problem", "warning": "warning", "info": "note"}
    words = [_plural(sum(f.severity == s for f in findings), noun) for s, noun in nouns.items()]
    sentence = f"{words[0]}, {words[1]} and {words[2]}."
    return sentence[0].upper() + sentence[1:]


def _plural(n: int, noun: str) -> str:
    """Return ``no <noun>s``, ``1 <noun>`` or ``n <noun>s``."""
    return f"no {noun}s" if n == 0 else f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _scores_sentence(ev: Evidence) -> str:
    """Return the network's final scores in words, or '' when there are none."""
    splits = (("train", ev.net_train_score), ("validation", ev.net_val_score))
    scores = [*splits, ("test", ev.net_test_score)]
    known = [f"{split} {score:.3f}" for split, score in scores if _is_number(score)]
    if not known:
        return ""
    return f"Network {_METRIC_LABELS.get(ev.metric, ev.metric or 'score')}: {', '.join(known)}."


def _verdict_sentence(finding: Finding) -> str:
    """Return a finding as one plain-language line with its first piece of advice."""
    text = f"{_kind_label(finding.kind)} ({finding.severity}): {finding.summary}"
    return f"{text} First try: {finding.advice[0]}" if finding.advice else text


def _kind_label(kind: str) -> str:
    """Return ``learning_rate_too_high`` as ``Learning rate too high``."""
    return kind.replace("_", " ").capitalize()


# ---------------------------------------------------------------------------------------
# Verdicts and evidence
# ---------------------------------------------------------------------------------------


def _verdicts_html(findings: list[Finding]) -> _Html:
    """Return the verdict table: severity, kind, summary and advice of every finding."""
    rows = [
        _Html(
            f'<tr class="{_e(f.severity)}" id="verdict-{i}">'
            f"<td>{_badge(f.severity)}</td>"
            f'<td><a href="#evidence-{i}"><code>{_e(f.kind)}</code></a></td>'
            f"<td>{_e(f.summary)}</td><td>{_list_html(f.advice)}</td></tr>"
        )
        for i, f in enumerate(findings, start=1)
    ]
    if not rows:
        rows = [_Html('<tr><td colspan="4">No findings were recorded.</td></tr>')]
    head = "<tr><th>severity</th><th>kind</th><th>summary</th><th>advice</th></tr>"
    return _Html(
        f'<table id="verdicts"><thead>{head}</thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _evidence_html(findings: list[Finding], drawn: Mapping[str, str | None]) -> _Html:
    """Return one block per finding with its evidence table and a link to its plot."""
    blocks = []
    for i, f in enumerate(findings, start=1):
        table = _table(("quantity", "value", "source"), _evidence_rows(f.evidence))
        link = ""
        if f.plot in drawn:
            target = f"plot-{f.plot}" if drawn[f.plot] else f"missing-{f.plot}"
            link = f'<p><a href="#{_e(target)}">See the {_e(f.plot)} plot.</a></p>'
        blocks.append(
            f'<article class="finding" id="evidence-{i}">'
            f"<h3>{i}. {_e(_kind_label(f.kind))} {_badge(f.severity)}</h3>"
            f"<p>{_e(f.summary)}</p>{table if f.evidence else ''}{link}</article>"
        )
    return _Html("\n".join(blocks) or "<p>No findings were recorded.</p>")


def _evidence_rows(evidence: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Return (quantity, value, source) rows; ``<key>_source`` entries fill the source."""
    rows = []
    for key, value in evidence.items():
        if key.endswith("_source") and key.removesuffix("_source") in evidence:
            continue
        source = evidence.get(f"{key}_source", "")
        rows.append((key, _format_value(value), _format_value(source) if source else ""))
    return rows


# ---------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------


def _draw(plot: ReportPlot, ev: Evidence) -> str | None:
    """Return the plot as base64 PNG, or None when it has no data.

    A plot that fails is logged and left out: a report that lost its findings to one bad
    plot would be worse than a report with a note in the plot's place.
    """
    try:
        fig = plot.draw(ev)
        return None if fig is None else figure_to_png_base64(fig)
    except Exception:  # any plotting failure must not lose the rest of the report
        logger.exception("The %s plot of the report could not be drawn", plot.name)
        return ""


def _figure_html(plot: ReportPlot, png: str | None, ev: Evidence) -> _Html:
    """Return the plot's ``<figure>``, or a ``not run`` note when it could not be drawn."""
    if png:
        return _Html(
            f'<figure id="plot-{plot.name}">'
            f'<img src="data:image/png;base64,{png}" alt="{_e(plot.title)}: {_e(plot.caption)}">'
            f"<figcaption><strong>{_e(plot.title)}.</strong> {_e(plot.caption)}</figcaption>"
            "</figure>"
        )
    reason = "the plot could not be drawn (see the log)" if png == "" else _missing(plot, ev)
    return _Html(
        f'<div class="not-run" id="missing-{plot.name}"><h3>{_e(plot.title)}</h3>'
        f"<p>not run: {_e(reason)}</p></div>"
    )


def _missing(plot: ReportPlot, ev: Evidence) -> str:
    """Return why a plot has no data: the first matching skipped check, else its default."""
    for check in plot.checks:
        if check in ev.skipped:
            return str(ev.skipped[check])
    return plot.missing


# ---------------------------------------------------------------------------------------
# Settings and timings
# ---------------------------------------------------------------------------------------


def _timings_html(timings: Mapping[str, float], skipped: Mapping[str, str]) -> _Html:
    """Return the seconds spent per check (with the total) and the checks that did not run."""
    rows = [(name, f"{seconds:.2f}") for name, seconds in timings.items()]
    if rows:
        rows.append(("total", f"{sum(timings.values()):.2f}"))
    parts = [_table(("check", "seconds"), rows) if rows else "<p>No timings were recorded.</p>"]
    if skipped:
        parts.append("<h3>Checks not run</h3>")
        parts.append(_table(("check", "reason"), list(skipped.items())))
    return _Html("\n".join(parts))


def _key_value_table(rows: list[tuple[str, str]], label: str) -> _Html:
    """Return a two-column table, or a note when there are no rows."""
    if not rows:
        return _Html(f"<p>No {_e(label)}s were recorded.</p>")
    return _table((label, "value"), rows)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Return nested settings as ``(dotted.key, formatted value)`` rows."""
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, prefix=f"{name}."))
        else:
            rows.append((name, _format_value(value)))
    return rows


# ---------------------------------------------------------------------------------------
# Markup and value helpers
# ---------------------------------------------------------------------------------------


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> _Html:
    """Return a table whose cells are escaped unless they are trusted markup."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return _Html(f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>")


def _badge(severity: str) -> _Html:
    """Return the coloured severity label."""
    return _Html(f'<span class="badge {_e(severity)}">{_e(severity)}</span>')


def _list_html(items: Iterable[str]) -> _Html:
    """Return a bulleted list of escaped items ('' when empty)."""
    lis = "".join(f"<li>{_e(item)}</li>" for item in items)
    return _Html(f"<ul>{lis}</ul>" if lis else "")


def _format_value(value: object) -> str:
    """Return a value as short plain text: floats to 4 significant digits, lists cut short."""
    value = _strict_json(value)
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_format_value(v) for v in value[:MAX_LIST_ITEMS])
        more = f", … ({len(value)} items)" if len(value) > MAX_LIST_ITEMS else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _strict_json(value: Any) -> Any:
    """Return ``value`` with NumPy values made plain and non-finite floats made None."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return value


def _is_number(value: object) -> bool:
    """Return True for a finite int or float."""
    return isinstance(value, int | float) and math.isfinite(value)


@functools.cache
def _resource(name: str) -> str:
    """Return the text of a file shipped with this package (the template, the stylesheet)."""
    return resources.files("deepdx.report").joinpath(name).read_text(encoding="utf-8")
