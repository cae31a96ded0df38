"""labkit.report.export: the offline HTML takes its colours from the one palette."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

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
