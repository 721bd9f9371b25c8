"""The HTML dry-run report: self-contained, escapes log content, and renders in a real headless Chromium with no
console errors and charts that show the report's numbers.

The browser is driven through the DevTools protocol over ``--remote-debugging-pipe`` (no driver package, no
downloaded browser): Debian's ``chromium`` (``.ci/run`` installs it). Without a browser the browser tests are
skipped with a message saying how to get one.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from html import escape
from pathlib import Path
from typing import Any

import pytest
from support import TEST_KEY, dry_run

from logmap.reports.html import render_html, time_series, write_html

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-pipe")

#: An unmatched page with a long non-Latin path, percent-encoded as logs write it ("/مقاله/616/علت خواب رفتن…").
ARTICLE = "/%D9%85%D9%82%D8%A7%D9%84%D9%87/616/" + "%20".join([  # noqa: FLY002 - words joined by spaces: not a slug, kept whole
    "%D8%B9%D9%84%D8%AA", "%D8%AE%D9%88%D8%A7%D8%A8", "%D8%B1%D9%81%D8%AA%D9%86",
    "%D8%A7%D9%86%DA%AF%D8%B4%D8%AA%D8%A7%D9%86", "%D8%AF%D8%B3%D8%AA", "%D9%88", "%D8%AF%D8%B1%D9%85%D8%A7%D9%86",
    "%D8%A2%D9%86", "%D8%AF%D8%B1", "%D8%AE%D8%A7%D9%86%D9%87", "%D8%A8%D8%A7", "%D8%B1%D9%88%D8%B4%D9%87%D8%A7%DB%8C",
    "%D8%B3%D8%A7%D8%AF%D9%87", "%D9%88", "%D8%B7%D8%A8%DB%8C%D8%B9%DB%8C"])
ARTICLE_LINE = (f'9.9.9.8 - - [01/Mar/2024:09:31:00 +0000] "GET {ARTICLE} HTTP/1.1" 200 1 "-" '
                '"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"')
HOSTILE_UA = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
HOSTILE_LINE = (f'9.9.9.9 - - [01/Mar/2024:09:30:00 +0000] "GET /</script><i/class=pwned>x</i>-{"1" * 6} HTTP/1.1" 200 1 '
                f'"-" "{HOSTILE_UA}"')


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Any]:
    """The storefront sample plus one hostile line (script in the user agent and the path)."""
    os.environ.setdefault("LOGMAP_KEY", TEST_KEY)
    log = tmp_path_factory.mktemp("html") / "access.log"
    log.write_bytes(SAMPLE.read_bytes() + HOSTILE_LINE.encode() + b"\n" + ARTICLE_LINE.encode() + b"\n")
    return dry_run([str(log)], MAPPING).to_dict()


def find_browser() -> str | None:
    configured = os.environ.get("LOGMAP_CHROMIUM")
    if configured:
        return configured
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


# --- the page without a browser -------------------------------------------------------------------------------

def test_page_is_self_contained_and_escapes_log_content(report):
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    # no external resource of any kind: no src/href to a URL, no @import, a CSP that forbids fetching
    assert not re.search(r'(?:src|href)\s*=\s*"(?:https?:)?//', page)
    assert "@import" not in page and "default-src 'none'" in page
    # the hostile user agent and path appear only escaped
    assert "<script>document.title" not in page and "<img src=x" not in page and "<i/class=pwned>" not in page
    assert "&lt;script&gt;document.title" in page
    # the embedded JSON is the report itself, and cannot close its <script> element early
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in embedded
    assert json.loads(embedded) == report


def test_charts_carry_the_reports_numbers(report):
    page = render_html(report)
    drops = dict(re.findall(r'<rect class="bar"[^>]*data-key="([^"]+)" data-value="(\d+)"', _svg(page, "chart-drops")))
    assert {k: int(v) for k, v in drops.items()} == report["ledger"]["dropped"]
    values = [int(v) for v in re.findall(r'data-value="(\d+)"', _svg(page, "chart-records-over-time"))]
    assert sum(values) == report["ledger"]["emitted"]


def test_paths_are_shown_percent_decoded_and_chart_labels_cut_to_fit(report):
    page = render_html(report)
    article = next(s for s in report["unmatched_shapes"] if s["value"].startswith("/%D9%85"))
    assert article["label"].startswith("/مقاله/{id}/") and "%D9" not in article["label"]
    assert "%{n}" not in article["value"]                    # the shape never splits an escape
    assert article["example_label"].startswith("/مقاله/616/علت خواب")
    assert escape(article["label"]) in page and escape(article["example_label"]) in page  # the table
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)<title>([^<]*)</title>', _svg(page, "chart-unmatched"))
    shown = {full: cut for cut, full in labels}
    assert shown[escape(article["label"])].endswith("…")      # too long for the label column: cut, whole in title


def test_empty_report_renders(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    data = dry_run([str(empty)], MAPPING).to_dict()
    page = render_html(data)
    assert "nothing to show" in page and 'id="chart-drops-empty"' in page


def test_long_runs_chart_days_not_hours():
    hours = [{"hour": f"2024-03-{d:02d}T{h:02d}:00:00Z", "counts": {"search": 1}} for d in range(1, 21)
             for h in range(24)]
    unit, keys, _, series = time_series({"records_per_hour": hours})
    assert unit == "day" and len(keys) == 20 and series["search"] == [24] * 20


def _svg(page: str, chart_id: str) -> str:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.S)
    assert match, f"chart {chart_id} missing"
    return match.group(0)


# --- the page in Chromium -------------------------------------------------------------------------------------

class DevTools:
    """A minimal DevTools-protocol client over Chromium's ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, browser: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_pipes() -> None:  # runs in the child before exec
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=False,
                                        preexec_fn=wire_pipes)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(timeout)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.process.stderr.close()


READ_CHARTS = """JSON.stringify({
  ready: document.body.getAttribute('data-ready'),
  title: document.title,
  injected: document.querySelectorAll('.pwned, img').length,
  bars: Array.from(document.querySelectorAll('svg rect.bar')).map(function (r) {
    var box = r.getBoundingClientRect();
    return {chart: r.ownerSVGElement.id, key: r.getAttribute('data-key'), series: r.getAttribute('data-series'),
            value: Number(r.getAttribute('data-value')), width: box.width, height: box.height};
  }),
  labels: Array.from(document.querySelectorAll('svg.hbar text.label')).map(function (t) {
    var box = t.getBBox();
    return {chart: t.ownerSVGElement.id, text: t.firstChild.textContent, x: box.x, width: box.width,
            column: Number(t.ownerSVGElement.getAttribute('data-label-width'))};
  })
})"""


def render_in_chromium(html_path: Path, screenshot: Path | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Open the page, return what its charts show and the console errors, exceptions and network requests."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium found (looked for $LOGMAP_CHROMIUM, " + ", ".join(BROWSERS) + "): install Debian's "
                    "`chromium` package (.ci/run does) to run the HTML report's browser test")
    with tempfile.TemporaryDirectory(prefix="logmap-chromium-") as profile:
        tools = DevTools(browser, profile)
        try:
            target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                tools.send(f"{domain}.enable", session=session)
            tools.send("Page.navigate", {"url": html_path.resolve().as_uri()}, session=session)
            tools.wait_for("Page.loadEventFired")
            state = tools.send("Runtime.evaluate", {"expression": READ_CHARTS, "returnByValue": True},
                               session=session)
            if screenshot is not None:
                size = tools.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
                shot = tools.send("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}},
                    session=session)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            time.sleep(0.2)  # let late console messages arrive
            tools.send("Runtime.evaluate", {"expression": "1"}, session=session)
        finally:
            tools.close()
    return json.loads(state["result"]["value"]), tools.events


def _problems(events: list[dict]) -> list[str]:
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            problems.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            problems.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        elif method == "Page.javascriptDialogOpening":
            problems.append(f"dialog: {params.get('message')}")
        elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith(("file:", "data:")):
            problems.append(f"network request: {params['request']['url']}")
    return problems


def test_report_renders_in_headless_chromium(report, tmp_path):
    page = tmp_path / "report.html"
    write_html(report, page)
    shown, events = render_in_chromium(page, screenshot=tmp_path / "report.png")

    assert _problems(events) == []
    assert shown["ready"] == "yes"                      # the page's script ran to the end
    assert shown["title"].startswith("logmap dry-run")  # the hostile user agent did not run
    assert shown["injected"] == 0                       # …nor inject elements
    assert (tmp_path / "report.png").stat().st_size > 10_000

    bars = shown["bars"]
    assert bars and all(b["width"] > 0 and b["height"] > 0 for b in bars)  # every bar was laid out and drawn

    def chart(name: str) -> list[dict]:
        return [b for b in bars if b["chart"] == name]

    assert {b["key"]: b["value"] for b in chart("chart-drops")} == report["ledger"]["dropped"]
    assert {b["key"]: b["value"] for b in chart("chart-unmatched")} == \
        {s["value"]: s["count"] for s in report["unmatched_shapes"]}
    hourly = {(e["hour"], t): n for e in report["records_per_hour"] for t, n in e["counts"].items()}
    assert {(b["key"], b["series"]): b["value"] for b in chart("chart-records-over-time")} == hourly
    assert sum(b["value"] for b in chart("chart-records-over-time")) == report["ledger"]["emitted"]
    histogram = {(str(bin_["from_s"]), t): bin_["count"] for t, s in report["durations"]["per_type"].items()
                 for bin_ in s["histogram"] if bin_["count"]}
    assert {(b["key"], b["series"]): b["value"] for b in chart("chart-durations")} == histogram

    # every chart label starts inside the chart and ends before the bars (cut to fit, not at the left edge)
    labels = shown["labels"]
    assert any(label["text"].startswith("/مقاله") for label in labels)
    assert all(label["x"] >= 0 and label["x"] + label["width"] <= label["column"] for label in labels), labels
