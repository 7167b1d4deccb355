"""Open a rendered report in headless Chromium and check what a reader would see.

The report itself has no JavaScript and its Content-Security-Policy forbids scripts. The test
loads a copy with a probe script placed before the policy's ``<meta>`` (a policy set by
``<meta>`` governs only what follows it), so everything of the report is still under its own
policy. On load the probe records, in ``body[data-check]``, whether the verdict table and every
plot image are laid out and decoded, and which policy violations occurred: an injected script
or event handler that escaped escaping, or an external load, would be one. ``--dump-dom``
prints the DOM after load and the test reads the record back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from deepdx.diagnose.findings import Finding
from deepdx.report import PLOT_NAMES, write_report
from tests.report.synthetic import ATTR, XSS, make_diagnosis

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
    "--dump-dom",
)
IMG_PAYLOAD = "<img src=x onerror=document.title='pwned'>"

PROBE = """<script>
(() => {
  const violations = [];
  document.addEventListener("securitypolicyviolation",
    (e) => violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.display !== "none"
      && style.visibility !== "hidden";
  };
  window.addEventListener("load", () => {
    const table = document.getElementById("verdicts");
    const figures = [...document.querySelectorAll("figure")].map((figure) => {
      const img = figure.querySelector("img");
      return {id: figure.id, width: img ? img.naturalWidth : 0,
              decoded: !!img && img.complete && img.naturalWidth > 0, shown: !!img && shown(img)};
    });
    document.body.dataset.check = JSON.stringify({
      verdictRows: table && shown(table) ? table.tBodies[0].rows.length : -1,
      figures, violations, title: document.title, text: document.body.innerText,
    });
  });
})();
</script>"""

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="headless Chromium is not installed (Debian package: chromium, /usr/bin/chromium)",
)


class _CheckReader(HTMLParser):
    """Read the ``data-check`` attribute of ``<body>`` from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.check: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.check = dict(attrs).get("data-check")


def _probe(report: Path, tmp_path: Path) -> dict:
    page = report.read_text(encoding="utf-8")
    assert page.count("<head>") == 1
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", probed.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    reader = _CheckReader()
    reader.feed(done.stdout)
    assert reader.check, f"the probe did not run; stderr: {done.stderr[-2000:]}"
    return json.loads(reader.check)


def test_report_in_chromium_shows_verdicts_and_every_plot_without_running_payloads(tmp_path):
    diagnosis = make_diagnosis(n_steps=500)
    diagnosis.settings["data"] = XSS
    diagnosis.evidence.skipped["capacity_probes"] = IMG_PAYLOAD
    diagnosis.findings.append(
        Finding("not_run", "info", f"{XSS} {IMG_PAYLOAD}", {ATTR: XSS}, (ATTR,), plot=ATTR)
    )
    check = _probe(write_report(diagnosis, tmp_path / "report") / "report.html", tmp_path)

    assert check["violations"] == []
    assert check["verdictRows"] == len(diagnosis.findings)
    assert [f["id"] for f in check["figures"]] == [f"plot-{name}" for name in PLOT_NAMES]
    assert all(f["decoded"] and f["shown"] and f["width"] == 600 for f in check["figures"])
    assert check["title"] != "pwned"
    assert XSS in check["text"] and IMG_PAYLOAD in check["text"]
