"""One executed notebook to one self-contained, offline HTML file, and the redaction before it.

The template (``labkit/templates/labkit_report``) takes the palette of :mod:`labkit.display`
as CSS variables (``resources["labkit_css"]``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from labkit.display import Verdict, css_variables
from labkit.io import atomic_path, atomic_write_text
from labkit.report.results import NotebookFailure

TEMPLATE_NAME = "labkit_report"
REMOVE_CELL_TAGS = ("remove-cell", "remove_cell", "parameters", "injected-parameters")
REMOVE_INPUT_TAGS = ("remove-input", "remove_input", "hide-input")
REMOVE_OUTPUT_TAGS = ("remove-output", "remove_output")


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def redact_notebook(nb: Any, redactor: Any = None) -> int:
    """Mask secrets and PII (e-mail, phone, card, keys, tokens, IPs) in every cell source and text
    output of an executed notebook, in place, before it is written or exported (a parameter
    given as ``-p api_key ...`` is in the injected cell's source); images are left alone.

    Reports show questions and answers from datasets and runs: the same redaction as
    the trace writer applies, so nothing a run would mask reaches a report. Returns how
    many values were masked.
    """
    from labkit.trace.redact import Redactor

    r = redactor or Redactor.from_config(None)
    masked = 0

    def clean(text: str) -> str:
        nonlocal masked
        parts: list[str] = []
        last = 0
        for m in _DATA_URI.finditer(text):  # base64 payloads are pixels, not text
            red, k = r.redact_text(text[last:m.start()])
            parts += [red, m.group(0)]
            masked += k
            last = m.end()
        red, k = r.redact_text(text[last:])
        masked += k
        return "".join([*parts, red])

    def as_text(v: Any) -> str:
        return v if isinstance(v, str) else "".join(v)

    for cell in (nb or {}).get("cells", []):
        if "source" in cell:  # injected parameters and code are kept in the executed copy
            cell["source"] = clean(as_text(cell["source"]))
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = clean(as_text(out["text"]))
            if "evalue" in out:
                out["evalue"] = clean(str(out["evalue"]))
                out["traceback"] = [clean(t) for t in out.get("traceback", [])]
            data = out.get("data", {})
            for mime, val in list(data.items()):
                if mime.startswith("image/"):
                    continue
                if isinstance(val, (str, list)):
                    data[mime] = clean(as_text(val))
                else:  # JSON payloads (verdicts, widget state)
                    red = r.redact(val)
                    masked += 0 if red == val else 1
                    data[mime] = red
    meta = (nb or {}).get("metadata", {}).get("papermill")
    if isinstance(meta, dict) and meta.get("parameters"):  # (papermill's record of the parameters given)
        red = r.redact(meta["parameters"])
        masked += 0 if red == meta["parameters"] else 1
        meta["parameters"] = red
    return masked


def title_of(nb: Any, fallback: str) -> str:
    for cell in (nb or {}).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in cell.get("source", "").splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def template_dir() -> Path:
    """The folder of labkit's nbconvert templates (``labkit/templates``)."""
    return Path(__file__).parent.parent / "templates"


def export_html(nb: Any, out_path: str | os.PathLike[str], *, failure: NotebookFailure | None = None) -> Path:
    """Export an executed notebook to one self-contained HTML file.

    Code and prompts are hidden; cells tagged remove-cell (and the parameters
    cells) are dropped, remove-input hides a cell's code, remove-output its
    outputs; stderr streams (warnings, progress) stay in the executed notebook
    only; widget state is dropped (the template loads no widget manager).
    """
    import copy

    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                and not _is_widget_only(o)
            ]
    if failure is not None:
        banner = Verdict("fail", f"This notebook failed: {failure.error}", str(failure))
        nb.cells.insert(
            0,
            nbformat.v4.new_code_cell(
                source="",
                outputs=[nbformat.v4.new_output("display_data", data={"text/html": banner.to_html()})],
            ),
        )
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = set(REMOVE_CELL_TAGS)
    c.TagRemovePreprocessor.remove_input_tags = set(REMOVE_INPUT_TAGS)
    c.TagRemovePreprocessor.remove_all_outputs_tags = set(REMOVE_OUTPUT_TAGS)
    c.HTMLExporter.exclude_input = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(
        config=c,
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(template_dir())],
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    body, _ = exporter.from_notebook_node(nb, resources={"labkit_css": css_variables()})
    out = Path(out_path)
    write_public(out, body)
    return out


#: where ``labkit report --pdf`` looks for Chromium, after the LABKIT_CHROMIUM variable
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PDF_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
             "--no-pdf-header-footer", "--host-resolver-rules=MAP * ~NOTFOUND")


def find_chromium() -> str:
    """The Chromium that prints PDFs: $LABKIT_CHROMIUM, else the first of :data:`CHROMIUM_NAMES`
    on PATH; a ConfigError saying how to get one otherwise."""
    import shutil

    from labkit.errors import ConfigError

    given = os.environ.get("LABKIT_CHROMIUM")
    if given:
        if not Path(given).is_file():
            raise ConfigError(f"LABKIT_CHROMIUM={given} is not a file", field="LABKIT_CHROMIUM")
        return given
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError("--pdf needs Chromium: install Debian's chromium (apt-get install chromium) "
                      "or set LABKIT_CHROMIUM to its path", field="--pdf")


def export_pdf(html_path: str | os.PathLike[str], pdf_path: str | os.PathLike[str] | None = None, *,
               chromium: str | None = None, timeout_s: float = 120.0) -> Path:
    """Print one exported report to PDF with headless Chromium (network off: no name resolves),
    beside the HTML unless ``pdf_path`` is given. The template's print rules keep each table,
    chart and banner on one page. Chromium prints into :func:`labkit.io.atomic_path`'s temporary
    file beside the PDF, renamed whole onto it: no half-written PDF, an earlier one kept when
    the print fails; a PDF path that is no regular file is refused before Chromium starts. A
    Chromium that fails or times out is a :class:`ReportFailed`."""
    import tempfile

    src = Path(html_path).resolve()
    out = Path(pdf_path) if pdf_path is not None else src.with_suffix(".pdf")
    exe = chromium or find_chromium()
    with atomic_path(out) as tmp_pdf, tempfile.TemporaryDirectory(prefix="labkit-pdf-") as profile:
        _print_pdf(exe, src, tmp_pdf, Path(profile), timeout_s)
    os.chmod(out, 0o644)
    return out


def _print_pdf(exe: str, src: Path, target: Path, profile: Path, timeout_s: float) -> None:
    """Chromium prints ``src`` into ``target`` (an empty file, which a failed print leaves empty)."""
    import subprocess

    from labkit.errors import ReportFailed

    cmd = [exe, *PDF_FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={target}", src.as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ReportFailed([f"{src.name}: Chromium did not print a PDF within {timeout_s:g} s"]) from None
    if proc.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise ReportFailed([f"{src.name}: Chromium printed no PDF (exit {proc.returncode}): {tail[0]}"])


def write_public(path: Path, text: str) -> None:
    """Write atomically, readable by everyone (reports are for reviewers)."""
    atomic_write_text(path, text)
    os.chmod(path, 0o644)


def _is_widget_only(out: Any) -> bool:
    data = out.get("data") or {}
    return "application/vnd.jupyter.widget-view+json" in data and "text/html" not in data and "image/png" not in data

