"""labkit.report.export: the offline HTML takes its colours from the one palette."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labkit import display
from labkit.display import Verdict
from labkit.report.export import export_html, template_dir


def _exported(tmp_path: Path) -> str:
    nb = nbformat.v4.new_notebook()
    banner = Verdict("warn", "check the slices")
    nb.cells = [nbformat.v4.new_markdown_cell("# Palette"),
                nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/html": banner.to_html()})])]
    return export_html(nb, tmp_path / "p.html").read_text(encoding="utf-8")


def test_exported_html_carries_the_palette_as_css_variables(tmp_path: Path) -> None:
    page = _exported(tmp_path)
    assert display.css_variables() in page
    for name, value in display.CSS_VARIABLES.items():
        assert f"{name}: {value};" in page
    assert display.WARN_BG in page  # the banner itself


def test_the_template_writes_no_colour_of_its_own() -> None:
    text = (template_dir() / "labkit_report" / "index.html.j2").read_text(encoding="utf-8")
    assert re.findall(r"#[0-9a-fA-F]{3,6}\b", text) == []
    assert "resources['labkit_css']" in text


# ---------------------------------------------------------------------------- PDF

ROOT = Path(__file__).resolve().parents[1]
#: The test's own copy of a report numbers its tables with a CSS counter and writes the number
#: before the first cell of each table's first row and after the last cell of its last row,
#: so the PDF's text says on which page each table starts and ends.
TABLE_MARKS = """<style>
body { counter-reset: lkt; } table { counter-increment: lkt; }
table > tbody > tr:first-child > td:first-child::before { content: "[[T" counter(lkt) "a]]"; }
table > tbody > tr:last-child > td:last-child::after { content: "[[T" counter(lkt) "z]]"; }
</style></head>"""


def _chromium() -> str:
    import os
    import shutil

    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but chromium is missing: install Debian's chromium (apt-get install chromium)")
    pytest.skip("chromium not found: install Debian's chromium to print PDFs (.ci/run does)")


def _headings(page: str) -> list[str]:
    from html.parser import HTMLParser

    class Headings(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.out: list[str] = []
            self.depth = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag in ("h2", "h3"):
                self.depth, self.out = 1, [*self.out, ""]

        def handle_endtag(self, tag: str) -> None:
            if tag in ("h2", "h3"):
                self.depth = 0

        def handle_data(self, data: str) -> None:
            if self.depth:
                self.out[-1] += data

    h = Headings()
    h.feed(page)
    return [t.replace("¶", "").strip() for t in h.out if t.strip()]


def _squash(text: str) -> str:
    """The text without white space, ligatures the PDF's font set (``ﬃ``) spelt out (NFKC)."""
    import unicodedata

    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.fixture(scope="module")
def readiness_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Report 05 built with pdf=True: (its HTML, its PDF)."""
    _chromium()
    from labkit.report.engine import build_reports

    out = tmp_path_factory.mktemp("pdf")
    params = {"05_readiness_scorecard": {"runs_dir": str(out / "runs"), "incident_dir": str(out / "incident")}}
    idx = build_reports(notebooks_dir=ROOT / "notebooks", out_dir=out / "reports", params=params, only=["05"],
                        timeout_s=300, pdf=True)
    assert idx.ok, idx.failures
    html_path = idx.entries[0].html
    assert html_path is not None
    return html_path, html_path.with_suffix(".pdf")


@pytest.mark.slow
@pytest.mark.browser
def test_pdf_of_the_scorecard_has_every_section(readiness_pdf: tuple[Path, Path]) -> None:
    from pypdf import PdfReader

    html_path, pdf = readiness_pdf
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    pages = [_squash(p.extract_text() or "") for p in PdfReader(str(pdf)).pages]
    assert len(pages) > 1
    headings = _headings(html_path.read_text(encoding="utf-8"))
    assert "Verdict" in headings and "Incident note (Day 20)" in headings, headings
    text = "".join(pages)
    missing = [h for h in headings if _squash(h) not in text]
    assert missing == [], f"section headings not in the PDF: {missing}"


@pytest.mark.slow
@pytest.mark.browser
def test_pdf_splits_no_table_across_pages(readiness_pdf: tuple[Path, Path], tmp_path: Path) -> None:
    from pypdf import PdfReader

    from labkit.report.export import export_pdf

    html_path, _ = readiness_pdf
    page = html_path.read_text(encoding="utf-8")
    n_tables = len(re.findall(r"<table\b", page))
    assert n_tables >= 10  # the scorecard's areas, gaps, gate, metrics, SLOs, rollout, checklists, note, footer
    marked = tmp_path / html_path.name
    marked.write_text(page.replace("</head>", TABLE_MARKS, 1), encoding="utf-8")
    pages = [_squash(p.extract_text() or "") for p in PdfReader(str(export_pdf(marked))).pages]
    where: dict[str, list[int]] = {}
    for i, text in enumerate(pages):
        for mark in re.findall(r"\[\[T(\d+[az])\]\]", text):
            where.setdefault(mark, []).append(i + 1)
    split = []
    for t in range(1, n_tables + 1):
        start, end = where.get(f"{t}a"), where.get(f"{t}z")
        assert start and end, f"table {t}: marks not found in the PDF text ({start}, {end})"
        if start != end:
            split.append(f"table {t}: pages {start[0]}–{end[0]}")
    assert split == [], split


def test_pdf_without_chromium_is_one_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main
    from labkit.errors import ConfigError
    from labkit.report.export import find_chromium

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LABKIT_CHROMIUM", raising=False)
    with pytest.raises(ConfigError, match="apt-get install chromium"):
        find_chromium()
    monkeypatch.setenv("LABKIT_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="LABKIT_CHROMIUM"):
        find_chromium()
    monkeypatch.delenv("LABKIT_CHROMIUM")
    code = main(["report", "--pdf", "--only", "01", "--notebooks", str(ROOT / "notebooks"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "chromium" in err[0].lower(), err
    assert not (tmp_path / "out" / "01_dataset.html").exists()  # refused before any kernel started


def _fake_chromium(tmp_path: Path, action: str) -> tuple[str, Path]:
    """A stand-in for Chromium (no browser needed): it logs the path it is told to print to, then
    ``action`` (Python, with ``target`` that path) writes it, fails or hangs. (its path, its log)"""
    import sys

    log = tmp_path / "printed-to.txt"
    exe = tmp_path / "fake-chromium"
    exe.write_text(f"#!{sys.executable}\nimport sys, time\n"
                   "target = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--print-to-pdf='))\n"
                   f"open({str(log)!r}, 'w').write(target)\n{action}\n")
    exe.chmod(0o755)
    return str(exe), log


def _report(tmp_path: Path) -> tuple[Path, Path]:
    """A report's HTML in a folder of its own, and the PDF path beside it."""
    folder = tmp_path / "reports"
    folder.mkdir()
    html = folder / "r.html"
    html.write_text("<html><body>report</body></html>", encoding="utf-8")
    return html, folder / "r.pdf"


def test_pdf_is_printed_into_a_temporary_file_beside_it_then_renamed(tmp_path: Path) -> None:
    """Chromium prints straight into labkit.io.atomic_path's temporary file in the PDF's folder,
    which is renamed whole onto the PDF (it printed into a temporary folder, whose file was then
    copied: a second write of every byte)."""
    from labkit.report.export import export_pdf

    html, pdf = _report(tmp_path)
    exe, log = _fake_chromium(tmp_path, "open(target, 'wb').write(b'%PDF-1.4 fake')")
    assert export_pdf(html, chromium=exe) == pdf
    assert pdf.read_bytes() == b"%PDF-1.4 fake" and pdf.stat().st_mode & 0o777 == 0o644
    printed_to = Path(log.read_text())
    assert printed_to.parent == pdf.parent and printed_to.name.startswith(".r.pdf."), printed_to
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["r.html", "r.pdf"]  # no leftovers


@pytest.mark.parametrize("failure", ["half", "exit", "hang", "rename"])
def test_a_pdf_that_fails_before_its_rename_leaves_nothing_at_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   failure: str) -> None:
    """Half a PDF then a crash, an empty print, a Chromium that hangs, or a failure injected just
    before the rename: no file at the PDF's path (an earlier PDF kept as it was) and no leftovers."""
    import labkit.io
    from labkit.errors import ReportFailed
    from labkit.report.export import export_pdf

    html, pdf = _report(tmp_path)
    action = {"half": "open(target, 'wb').write(b'%PDF-1.4 half'); sys.exit(1)", "exit": "sys.exit(0)",
              "hang": "time.sleep(30)", "rename": "open(target, 'wb').write(b'%PDF-1.4 whole')"}[failure]
    exe, _ = _fake_chromium(tmp_path, action)
    if failure == "rename":
        def crash(path: object) -> None:
            raise OSError(28, "No space left on device", str(path))

        monkeypatch.setattr(labkit.io, "settle", crash)
    with pytest.raises(ReportFailed if failure != "rename" else OSError):
        export_pdf(html, chromium=exe, timeout_s=1.0)
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["r.html"]
    pdf.write_bytes(b"%PDF-1.4 earlier")
    with pytest.raises(ReportFailed if failure != "rename" else OSError):
        export_pdf(html, chromium=exe, timeout_s=1.0)
    assert pdf.read_bytes() == b"%PDF-1.4 earlier"
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["r.html", "r.pdf"]


def test_a_pdf_path_that_is_no_file_is_refused_before_chromium_runs(tmp_path: Path) -> None:
    """A folder at the PDF's path is refused before Chromium is started (it was found only
    when the printed PDF was copied into place)."""
    from labkit.errors import OutputError
    from labkit.report.export import export_pdf

    html, pdf = _report(tmp_path)
    pdf.mkdir()
    exe, log = _fake_chromium(tmp_path, "open(target, 'wb').write(b'%PDF-1.4 fake')")
    with pytest.raises(OutputError, match="not a regular file"):
        export_pdf(html, chromium=exe)
    assert not log.exists()
