from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from deepdx.diagnose.diagnosis import Diagnosis
from deepdx.diagnose.evidence import Evidence
from deepdx.diagnose.findings import Finding
from deepdx.exceptions import InvalidParameterError
from deepdx.report import PLOT_NAMES, render_html, write_report
from deepdx.report import html as report_html
from tests.report.synthetic import (
    ATTR,
    XSS,
    make_diagnosis,
    make_empty_diagnosis,
    make_history,
)


class _Page(HTMLParser):
    """Collect every start tag with its attributes, and the cell texts of table#verdicts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.verdict_rows: list[list[str]] = []
        self.text: list[str] = []
        self._table_depth = 0  # > 0 inside table#verdicts
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table" and (attributes.get("id") == "verdicts" or self._table_depth):
            self._table_depth += 1
        elif self._table_depth and tag == "tr":
            self.verdict_rows.append([])
        elif self._table_depth and tag == "td":
            self.verdict_rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table" and self._table_depth:
            self._table_depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._table_depth and self.verdict_rows and self.verdict_rows[-1]:
            self.verdict_rows[-1][-1] += data

    def ids(self) -> list[str]:
        return [a["id"] or "" for _, a in self.tags if a.get("id")]


@pytest.fixture(scope="module")
def full_page() -> str:
    return render_html(make_diagnosis(n_steps=1000))


@pytest.fixture(scope="module")
def empty_page() -> str:
    return render_html(make_empty_diagnosis())


def _reject(name):
    raise ValueError(f"non-strict JSON constant {name}")


# ---------------------------------------------------------------------------------------
# write_report and findings.json
# ---------------------------------------------------------------------------------------


def test_write_report_creates_directory_with_both_files(tmp_path):
    out = write_report(make_empty_diagnosis(), tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b"
    assert sorted(p.name for p in out.iterdir()) == ["findings.json", "report.html"]
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_write_report_findings_json_is_strict_and_round_trips_findings(tmp_path):
    diagnosis = make_diagnosis(n_steps=100)
    diagnosis.findings.append(
        Finding("plateau", "warning", "Flat.", {"slope": math.nan, "ratio": np.float32(0.25)})
    )
    diagnosis.evidence.history.log_step("loss", math.inf, step=101)
    text = (write_report(diagnosis, tmp_path) / "findings.json").read_text(encoding="utf-8")
    data = json.loads(text, parse_constant=_reject)
    assert [Finding(**{**f, "advice": tuple(f["advice"])}) for f in data["findings"][:3]] == (
        diagnosis.findings[:3]
    )
    assert data["findings"][3]["evidence"] == {"slope": None, "ratio": 0.25}
    assert len(data["epochs"]) == len(diagnosis.evidence.history.epochs)
    diagnosis.save(tmp_path)  # per-step signals go to their own strict history.json
    history = json.loads((tmp_path / "history.json").read_text(), parse_constant=_reject)
    assert history["steps"]["loss"][-1] is None
    assert data["metrics"] == {"metric": "accuracy", "train": 0.99, "val": 0.88, "test": 0.87}


def test_write_report_replaces_existing_files(tmp_path):
    first = make_empty_diagnosis()
    first.findings.append(Finding("plateau", "warning", "Flat."))
    write_report(first, tmp_path)
    write_report(make_empty_diagnosis(), tmp_path)
    data = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert data["findings"] == []
    assert "Flat." not in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_write_report_rejects_a_file_as_directory(tmp_path):
    target = tmp_path / "report"
    target.write_text("not a directory")
    with pytest.raises(InvalidParameterError, match="exists but is a file"):
        write_report(make_empty_diagnosis(), target)


def test_diagnosis_save_writes_through_write_report(tmp_path):
    out = make_empty_diagnosis().save(tmp_path / "saved")
    assert (out / "report.html").is_file() and (out / "findings.json").is_file()


# ---------------------------------------------------------------------------------------
# Page structure
# ---------------------------------------------------------------------------------------


def test_render_html_sections_come_in_order_with_summary_first(full_page):
    ids = _Page(full_page).ids()
    order = ["summary", "verdicts", "evidence", "plots", "settings", "timings"]
    positions = [ids.index(section) for section in order]
    assert positions == sorted(positions)
    summary = full_page[full_page.index('id="summary"') : full_page.index('id="verdicts"')]
    assert "1 problem, 1 warning and 1 note." in summary
    assert summary.index("Wrong gradient (problem)") < summary.index("Overfitting (warning)")
    assert "Network accuracy: train 0.990, validation 0.880, test 0.870." in summary


def test_render_html_verdict_table_lists_every_finding(full_page):
    diagnosis = make_diagnosis(n_steps=10)
    rows = [[c.strip() for c in r] for r in _Page(full_page).verdict_rows if r]  # no header
    order = ("problem", "warning", "info")
    expected = sorted(diagnosis.findings, key=lambda f: order.index(f.severity))
    assert [r[:3] for r in rows] == [[f.severity, f.kind, f.summary] for f in expected]
    assert [r[3] for r in rows] == ["".join(f.advice) for f in expected]


def test_render_html_evidence_pairs_thresholds_with_sources(full_page):
    assert "<td>gap_threshold</td><td>0.1</td><td>SageMaker Overfit</td>" in full_page
    assert "<td>gap_threshold_source</td>" not in full_page
    assert '<a href="#plot-gradcheck">' in full_page


def test_render_html_contains_every_figure_when_data_exists(full_page):
    tags = _Page(full_page).tags
    figures = [a["id"] for tag, a in tags if tag == "figure"]
    assert figures == [f"plot-{name}" for name in PLOT_NAMES]
    images = [a for tag, a in tags if tag == "img"]
    assert len(images) == len(PLOT_NAMES)
    assert all((a["src"] or "").startswith("data:image/png;base64,") for a in images)
    assert all(a.get("alt") for a in images)
    assert "not run:" not in full_page


def test_render_html_says_not_run_with_reason_for_missing_plots(empty_page):
    page = _Page(empty_page)
    assert not [tag for tag, _ in page.tags if tag in ("figure", "img")]
    assert [i for i in page.ids() if i.startswith("missing-")] == [
        f"missing-{name}" for name in PLOT_NAMES
    ]
    assert "not run: too few samples for 5 folds" in empty_page
    assert "not run: model has no parameters" in empty_page
    assert "not run: no baseline was fitted" in empty_page
    assert "No findings were recorded." in empty_page


def test_render_html_links_finding_to_missing_plot_note():
    diagnosis = make_empty_diagnosis()
    diagnosis.findings.append(Finding("plateau", "warning", "Flat.", plot="loss"))
    assert '<a href="#missing-loss">' in render_html(diagnosis)


def test_render_html_replaces_a_failing_plot_by_a_note(monkeypatch, caplog):
    def broken(evidence):
        raise RuntimeError("boom")

    plots = tuple(
        dataclasses.replace(p, draw=broken) if p.name == "metric" else p
        for p in report_html.REPORT_PLOTS
    )
    monkeypatch.setattr(report_html, "REPORT_PLOTS", plots)
    diagnosis = make_empty_diagnosis()
    diagnosis.evidence.history = make_history(n_steps=50)
    with caplog.at_level(logging.ERROR, logger="deepdx.report.html"):
        page = render_html(diagnosis)
    assert 'id="missing-metric"' in page and 'id="plot-loss"' in page
    assert "could not be drawn" in page
    assert "metric plot" in caplog.text


def test_render_html_is_self_contained(full_page):
    page = _Page(full_page)
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object")]
    urls = [v or "" for _, a in page.tags for k, v in a.items() if k in ("src", "href")]
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in urls)
    css = (report_html.resources.files("deepdx.report") / "style.css").read_text("utf-8")
    assert css.strip() in full_page
    assert "default-src 'none'" in full_page


def test_render_html_stays_small_and_fast_for_100k_steps():
    diagnosis = make_diagnosis(n_steps=100_000)
    start = time.process_time()  # CPU time of this process: other busy processes do not count
    page = render_html(diagnosis)
    seconds = time.process_time() - start
    assert seconds < 3.0
    assert len(page.encode("utf-8")) < 1_000_000


# ---------------------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------------------


def _hostile_diagnosis() -> Diagnosis:
    evidence = Evidence("classification", "accuracy", 2, 10, XSS, 0.1, model_spec=ATTR)
    evidence.divergence = f"loss is NaN at {XSS}"
    evidence.skipped = {XSS: ATTR, "learning_curve": XSS}
    finding = Finding(
        "data_sanity",
        "problem",
        f"Class {XSS} is empty.",
        {XSS: ATTR, "threshold": 1.0, "threshold_source": XSS, "columns": [ATTR, XSS]},
        (f"Drop column {ATTR}.",),
        plot=ATTR,
    )
    return Diagnosis(
        [finding],
        evidence,
        settings={"data": XSS, XSS: {ATTR: XSS}, "file": f"{ATTR}.csv"},
        timings={XSS: 1.0},
    )


def test_render_html_escapes_user_strings_everywhere():
    page_text = render_html(_hostile_diagnosis())
    assert "<script" not in page_text.lower()
    page = _Page(page_text)
    attributes = {name for _, attrs in page.tags for name in attrs}
    assert not {name for name in attributes if name.startswith("on")}
    assert all(tag not in ("script", "img") for tag, _ in page.tags)
    text = "".join(page.text)
    assert text.count(XSS) >= 10  # shown as text: title, summary, tables, notes
    assert ATTR in text
