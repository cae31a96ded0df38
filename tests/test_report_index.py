"""labkit.report.index: index.html with the palette, and the per-report records read back."""

from __future__ import annotations

from pathlib import Path

from labkit import display
from labkit.display import Verdict
from labkit.report.index import read_record, write_index, write_record
from labkit.report.results import NotebookFailure, ReportEntry


def test_index_rows_badges_and_records(tmp_path: Path) -> None:
    ok = ReportEntry(name="00_a", notebook=Path("notebooks/00_a.ipynb"), status="ok", seconds=1.5, attempts=1,
                     title="A <b>", verdict=Verdict("pass", "SHIP"))
    bad = ReportEntry(name="01_b", notebook=Path("notebooks/01_b.ipynb"), status="failed", seconds=0.2,
                      attempts=1, failure=NotebookFailure("01_b", "ZeroDivisionError", "division by zero", 2, 3,
                                                          "1/0"))
    page = write_index([ok, bad], tmp_path, 2.0).read_text(encoding="utf-8")
    assert display.css_variables() in page
    assert f"background:{display.PASS_COLOUR}'>PASS" in page
    assert f"background:{display.FAIL_COLOUR}'>ERROR" in page and "1 NOTEBOOK(S) FAILED" in page
    assert "A &lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]
    for e in (ok, bad):
        write_record(e, tmp_path)
    back = read_record(tmp_path / "01_b.report.json", tmp_path)
    assert back is not None and back.failure == bad.failure and back.status == "failed"
    again = read_record(tmp_path / "00_a.report.json", tmp_path)
    assert again is not None and again.verdict == Verdict("pass", "SHIP")
    (tmp_path / "broken.report.json").write_text("{", encoding="utf-8")
    assert read_record(tmp_path / "broken.report.json", tmp_path) is None
