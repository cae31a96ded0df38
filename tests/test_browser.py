"""The exported reports in a real browser (Playwright driving Debian's Chromium), network blocked.

Skipped with a message when /usr/bin/chromium is absent and the CI variable is
not set; under CI a missing browser fails. Screenshots go to outputs/screenshots/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_notebooks import (  # noqa: F401 (fixture)
    EXPECTED,
    NOTEBOOKS,
    ROOT,
    all_notebooks,
    built_reports,
    tmp_params,
)

from labkit.report.engine import build_reports
from labkit.report.results import ReportIndex
from labkit.views.elements import NUMBER_KINDS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "outputs" / "screenshots"
PAYLOAD = ('Can I <script>window.__xss = "script ran"</script> reset '
           '<img src=x onerror="window.__xss = \'onerror ran\'"> my key?')

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser tests "
                "(.ci/run does; under CI this is a failure, not a skip)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Visit:
    """One page load from disk with every non-file request blocked and recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url == self.url or url.startswith("data:"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def left_the_file(self) -> list[str]:
        return [u for u in self.requests if u != self.url and not u.startswith("data:")] + self.blocked

    def broken_images(self) -> list[str]:
        return self.page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src.slice(0, 80))"
        )

    def close(self) -> None:
        self.context.close()


def _reports(built: ReportIndex) -> list[Path]:
    return [e.html for e in built.entries if e.html is not None]


def test_every_report_opens_offline_and_renders(browser: Any, built_reports: ReportIndex) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    reports = _reports(built_reports)
    assert reports
    for path in [*reports, built_reports.index_html]:
        v = Visit(browser, path)
        try:
            assert v.left_the_file() == [], f"{path.name} made requests: {v.left_the_file()}"
            assert v.console_errors == [], f"{path.name}: console errors {v.console_errors}"
            assert v.page_errors == [], f"{path.name}: page errors {v.page_errors}"
            assert v.broken_images() == [], f"{path.name}: images not rendered"
            name = path.stem
            if name != "index":
                if name in EXPECTED:  # our reports all carry at least one chart
                    assert v.page.evaluate("document.images.length") >= 1, f"{name}: no chart"
                assert v.page.locator("h1").count() == 1
                assert v.page.locator(".lk-verdict").count() >= 1, f"{name}: no verdict banner"
                assert v.page.locator("footer.lk-footer").count() == 1, f"{name}: no run-metadata footer"
                body = v.page.inner_text("body")
                assert "In [" not in body and "import labkit" not in body
                if name in EXPECTED:
                    heading, words = EXPECTED[name]
                    assert v.page.inner_text("h1").strip().rstrip("¶").strip() == heading
                    verdict = v.page.locator(".lk-verdict-title").last.inner_text()
                    assert any(w in verdict for w in words), verdict
            else:
                rows = v.page.locator("tr.lk-row")
                assert rows.count() == len(reports)
                for e in built_reports.entries:
                    assert v.page.locator(f"a[href='{e.name}.html']").count() == 1
                    if e.verdict is not None:
                        assert e.verdict.title in v.page.inner_text("body")
            v.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        finally:
            v.close()


#: One layout check in the page: the verdict banner's box, the elements wider than the card
#: (``main``) outside any scroll container, and the number cells without their unit.
LAYOUT_JS = """(kinds) => {
  const card = document.querySelector('main').getBoundingClientRect();
  const verdict = document.querySelector('.lk-verdict');
  const box = verdict ? verdict.getBoundingClientRect() : null;
  const clipped = (e) => {
    for (let a = e.parentElement; a && a.tagName !== 'MAIN'; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const wide = [];
  for (const e of document.querySelectorAll('main *')) {
    const r = e.getBoundingClientRect();
    if (r.width && (r.right > card.right + 0.5 || r.left < card.left - 0.5) && !clipped(e)) {
      wide.push(e.tagName + '.' + e.className + ' ' + Math.round(r.width) + 'px: '
                + (e.innerText || '').slice(0, 60));
    }
  }
  const number = /^[\\s$+\u2212\\-]*\\d/;
  const bad = [];
  let counted = 0;
  for (const td of document.querySelectorAll('main td')) {
    if (td.closest('footer.lk-footer')) continue;  // parameters as typed, versions, shas
    const t = td.innerText.trim();
    if (t === '0\u20131') continue;  // the unit column's label of scores and rates, not a number
    const kind = Array.from(td.classList).find(c => c.startsWith('lk-k-'));
    if (!td.classList.contains('lk-num') || !kind) {
      const rest = t.replace(/\\b(ms|tokens|USD|min|n)\\b/g, '');
      if (number.test(t) && !/[A-Za-z]/.test(rest)) bad.push('no unit class: ' + t.slice(0, 60));
      continue;
    }
    counted += 1;
    if (t === '\u2014' || t === '') continue;  // unmeasured
    const rule = kinds[kind.slice(5)];
    if (rule === undefined) { bad.push('unknown kind ' + kind + ': ' + t); continue; }
    const th = td.closest('table').querySelectorAll('thead th')[td.cellIndex];
    const context = (th ? th.innerText : '') + ' ' + td.parentElement.innerText;
    if (!new RegExp(rule[0]).test(t) && !(rule[1] && new RegExp(rule[1]).test(context))) {
      bad.push(kind + ': ' + t.slice(0, 60));
    }
  }
  return {verdict: box && {top: box.top, bottom: box.bottom}, height: window.innerHeight, wide, bad, counted};
}"""


#: Reports whose layout is another change's to make, each with what it lacks today. Strict: the
#: test goes red the day one of them follows the layout, so its line here is deleted then.
PENDING_LAYOUT: dict[str, str] = {}  # name -> why its layout check is known to fail (none now)


def _layout_params() -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=PENDING_LAYOUT[n]))
            if n in PENDING_LAYOUT else n for n in all_notebooks()]


@pytest.mark.parametrize("name", _layout_params())
def test_report_layout(browser: Any, built_reports: ReportIndex, name: str) -> None:  # noqa: F811
    """Every report: the verdict banner inside the first viewport, no element wider than its
    card (wide tables scroll inside it), every number cell with its unit or a count, no console
    error; a full-page screenshot in outputs/screenshots/layout-<name>.png."""
    entry = {e.name: e for e in built_reports.entries}[name]
    assert entry.html is not None, entry.failure
    v = Visit(browser, entry.html)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        v.page.screenshot(path=str(SHOTS / f"layout-{name}.png"), full_page=True)
        got = v.page.evaluate(LAYOUT_JS, {k: list(r) for k, r in NUMBER_KINDS.items()})
        assert v.console_errors == [] and v.page_errors == [], (v.console_errors, v.page_errors)
        assert got["verdict"] is not None, f"{name}: no verdict banner"
        assert got["verdict"]["bottom"] <= got["height"], f"{name}: verdict banner below the first viewport {got}"
        assert got["wide"] == [], f"{name}: wider than the card: {got['wide'][:5]}"
        assert got["bad"] == [], f"{name}: number cells without their unit: {got['bad'][:8]}"
    finally:
        v.close()


def test_layout_covers_every_built_report(built_reports: ReportIndex) -> None:  # noqa: F811
    """test_report_layout runs over every notebook, which is every report the index lists."""
    assert sorted(e.name for e in built_reports.entries) == all_notebooks()


def test_quick_lab_shows_its_decision(browser: Any, built_reports: ReportIndex) -> None:  # noqa: F811
    entry = {e.name: e for e in built_reports.entries}["00_quick_lab"]
    assert entry.html is not None
    v = Visit(browser, entry.html)
    try:
        text = v.page.inner_text("body")
        assert "SIMULATED" in text
        assert "SHIP the variant" in text or "NO-SHIP" in text
        headings = v.page.locator("h2").all_inner_texts()
        assert any("decision" in h.lower() for h in headings)
    finally:
        v.close()


@pytest.fixture(scope="module")
def xss_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick lab run on a dataset whose question carries a script and an onerror payload."""
    _require_browser()
    base = tmp_path_factory.mktemp("xss")
    rows = [json.loads(line) for line in (ROOT / "data" / "quick_lab.jsonl").read_text().splitlines() if line]
    rows.append({"id": "xss-<1>", "question": PAYLOAD, "expected_source": "security-runbook",
                 "must_include": ["<b>identity verification</b>"],
                 "tags": {"category": "<i>security</i>", "risk": "high", "kind": "adversarial"}})
    ds = base / "xss.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"00_quick_lab": {**tmp_params(base)["00_quick_lab"], "dataset": str(ds)}}
    idx = build_reports(notebooks_dir=NOTEBOOKS, out_dir=base / "out", params=params, only=["00"], timeout_s=300)
    assert idx.ok, idx.failures
    entry = idx.entries[0]
    assert entry.html is not None
    return entry.html


def test_injected_markup_shows_as_text_and_never_runs(browser: Any, xss_report: Path) -> None:
    raw = xss_report.read_text(encoding="utf-8")
    assert "<script>window.__xss" not in raw and "<img src=x" not in raw
    v = Visit(browser, xss_report)
    try:
        assert v.page.evaluate("typeof window.__xss") == "undefined"
        assert v.dialogs == [] and v.page_errors == []
        assert v.left_the_file() == [], v.left_the_file()
        text = v.page.inner_text("body")
        assert '<script>window.__xss = "script ran"</script>' in text
        assert "<img src=x onerror=" in text
        assert "xss-<1>" in text and "<i>security</i>" in text
        assert v.page.locator("script").count() == 0
        assert v.page.locator("img[src='x']").count() == 0
        assert v.broken_images() == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        v.page.screenshot(path=str(SHOTS / "xss_quick_lab.png"), full_page=True)
    finally:
        v.close()
