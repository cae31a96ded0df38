"""The report engine: execute the notebooks with papermill, export offline HTML, write an index.

``build_reports`` runs every ``notebooks/NN_*.ipynb`` (or the ones asked for)
two at a time in kernels started from the running interpreter, keeps each
executed notebook under ``<out>/executed/``, exports each to one self-contained
HTML file through labkit's own nbconvert template (no code, no prompts, images
inline, no script, font, stylesheet or MathJax reference) and writes
``<out>/index.html`` linking every report with its verdict.

A notebook publishes its verdict by displaying a :class:`Verdict` (the banners
of :mod:`labkit.viz` do): the object carries a ``application/vnd.labkit.verdict+json``
representation that the engine reads back from the executed notebook, so the
verdict travels with the notebook and needs no side file.

papermill, nbconvert and nbformat are imported inside the functions that use
them; ``import labkit.report`` stays light.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.cases import atomic_write_text
from labkit.errors import ConfigError, LabkitError

VERDICT_MIME = "application/vnd.labkit.verdict+json"
STATUSES = ("pass", "fail", "warn", "info")
TEMPLATE_NAME = "labkit_report"
REMOVE_CELL_TAGS = ("remove-cell", "remove_cell", "parameters", "injected-parameters")
REMOVE_INPUT_TAGS = ("remove-input", "remove_input", "hide-input")
REMOVE_OUTPUT_TAGS = ("remove-output", "remove_output")
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


# ---------------------------------------------------------------------------
# Verdicts


@dataclass(frozen=True)
class Verdict:
    """What a notebook concludes, shown as a banner and read back by the report engine.

    ``status`` is one of pass, fail, warn, info; ``title`` is the one-line
    verdict ("SHIP", "NO-SHIP: 2 checks failed"), ``detail`` a sentence.
    """

    status: str
    title: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"unknown verdict status {self.status!r}", field="status", known=STATUSES)

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "title": self.title, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        return cls(str(d.get("status", "info")), str(d.get("title", "")), str(d.get("detail", "")))

    def to_html(self) -> str:
        """The verdict banner, every user text HTML-escaped."""
        colours = {
            "pass": ("#1a7f37", "#dafbe1"),
            "fail": ("#cf222e", "#ffebe9"),
            "warn": ("#9a6700", "#fff8c5"),
            "info": ("#0550ae", "#ddf4ff"),
        }
        fg, bg = colours[self.status]
        label = {"pass": "PASS", "fail": "FAIL", "warn": "WARNING", "info": "NOTE"}[self.status]
        detail = f'<div style="margin-top:4px">{html.escape(self.detail)}</div>' if self.detail else ""
        return (
            f'<div class="lk-verdict lk-verdict-{self.status}" role="status" '
            f'style="border:2px solid {fg};background:{bg};color:#1f2328;border-radius:6px;'
            f'padding:12px 16px;margin:10px 0;">'
            f'<span style="background:{fg};color:#fff;font-weight:700;border-radius:4px;'
            f'padding:2px 8px;margin-right:10px;letter-spacing:.05em">{label}</span>'
            f'<strong class="lk-verdict-title" style="font-size:1.15rem">{html.escape(self.title)}</strong>'
            f"{detail}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/html": self.to_html(),
            "text/plain": f"[{self.status.upper()}] {self.title}" + (f" — {self.detail}" if self.detail else ""),
            VERDICT_MIME: self.to_dict(),
        }


def verdict_of(nb: Any) -> Verdict | None:
    """The last verdict a notebook displayed (read from its outputs), or None."""
    found: Verdict | None = None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if VERDICT_MIME in data:
                payload = data[VERDICT_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                try:
                    found = Verdict.from_dict(payload)
                except ConfigError:
                    continue
    return found


# ---------------------------------------------------------------------------
# Results


class ReportFailed(LabkitError):
    """One or more notebooks failed; ``failures`` names each notebook, cell and error."""

    def __init__(self, failures: Sequence[NotebookFailure]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(str(f) for f in self.failures))


@dataclass(frozen=True)
class NotebookFailure:
    """Where and why a notebook failed."""

    notebook: str
    error: str
    message: str
    cell_index: int | None = None
    execution_count: int | None = None
    cell_source: str = ""

    def __str__(self) -> str:
        where = ""
        if self.cell_index is not None:
            where = f" in cell {self.cell_index}"
            if self.execution_count is not None:
                where += f" [{self.execution_count}]"
            head = self.cell_source.strip().splitlines()[0] if self.cell_source.strip() else ""
            if head:
                where += f" ({head[:80]})"
        return f"{self.notebook}{where}: {self.error}: {self.message}"


@dataclass
class ReportEntry:
    """One notebook's outcome."""

    name: str
    notebook: Path
    status: str  # ok | failed
    seconds: float
    attempts: int
    title: str = ""
    executed: Path | None = None
    html: Path | None = None
    verdict: Verdict | None = None
    failure: NotebookFailure | None = None


@dataclass
class ReportIndex:
    """What ``build_reports`` produced."""

    out_dir: Path
    index_html: Path
    entries: list[ReportEntry] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(e.status == "ok" for e in self.entries)

    @property
    def failures(self) -> list[NotebookFailure]:
        return [e.failure for e in self.entries if e.failure is not None]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ReportFailed(self.failures)

    def summary(self) -> str:
        lines = []
        for e in self.entries:
            v = f"{e.verdict.status.upper()}: {e.verdict.title}" if e.verdict else "-"
            state = "ok" if e.status == "ok" else "FAILED"
            lines.append(f"  {e.name:<32} {state:<7} {e.seconds:6.1f}s  {v}")
        lines.append(f"{len(self.entries)} notebook(s), {len(self.failures)} failed, wall time {self.wall_s:.1f} s")
        lines.append(f"index: {self.index_html}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Locating things


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding pyproject.toml and data/."""
    here = Path(start or os.getcwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "data").is_dir():
            return p
    raise ConfigError(
        f"no labkit project (a folder with pyproject.toml and data/) at or above {here}"
    )


def project_root(chdir: bool = True) -> Path:
    """Find the project root and, by default, make it the working directory.

    Notebooks call this first so the same relative paths (``data/...``,
    ``outputs/...``) work in JupyterLab (started in notebooks/), under
    papermill from the repository root, and in the report engine.
    """
    root = find_project_root()
    if chdir:
        os.chdir(root)
    return root


def discover(notebooks_dir: str | os.PathLike[str] = "notebooks") -> list[Path]:
    """Every ``NN_*.ipynb`` in the folder, in name order."""
    d = Path(notebooks_dir)
    if not d.is_dir():
        raise ConfigError("notebooks folder not found", path=str(d))
    return sorted(p for p in d.glob(NOTEBOOK_GLOB) if p.is_file())


def select(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """The notebooks named in ``only`` (stem, file name, or its NN prefix); all when None."""
    if not only:
        return list(notebooks)
    chosen: list[Path] = []
    for raw in only:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            stem = Path(name).stem if name.endswith(".ipynb") else name
            hits = [p for p in notebooks if p.stem == stem or p.stem.split("_", 1)[0] == stem]
            if not hits:
                raise ConfigError(
                    f"unknown notebook {name!r}", field="only", known=[p.stem for p in notebooks]
                )
            chosen.extend(h for h in hits if h not in chosen)
    return [p for p in notebooks if p in chosen]


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameters file (YAML or JSON): ``{all: {...}, <notebook stem>: {...}}``.

    A mapping without notebook-looking keys is taken as parameters for all notebooks.
    """
    from labkit.config import read_yaml_text

    p = Path(path)
    data, _ = read_yaml_text(p, what="parameters file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of notebook name to parameters", path=str(p))
    return data


BATCH_DEFAULTS: dict[str, Any] = {"interactive": False}


def _params_for(nb_path: Path, params: Mapping[str, Any] | None, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The batch defaults a notebook declares (``interactive=False``), then the given parameters."""
    base = {k: v for k, v in BATCH_DEFAULTS.items() if k in declared}
    return {**base, **_given_params_for(nb_path, params, declared)}


def _given_params_for(nb_path: Path, params: Mapping[str, Any] | None, declared: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the parameters of one notebook from the ``all`` section and its own section."""
    if not params:
        return {}
    sectioned = any(k in ("all", "*") or k[:2].isdigit() for k in params)
    out: dict[str, Any] = {}
    if not sectioned:
        # One flat mapping for every notebook: each takes the names it declares.
        return {k: v for k, v in params.items() if k in declared}
    for key in ("all", "*"):
        section = params.get(key) or {}
        out.update({k: v for k, v in section.items() if k in declared})
    for key, section in params.items():
        if key in ("all", "*") or not isinstance(section, Mapping):
            continue
        if key == nb_path.stem or key == nb_path.stem.split("_", 1)[0]:
            unknown = sorted(set(section) - set(declared))
            if unknown:
                raise ConfigError(
                    f"{nb_path.name} declares no parameter {', '.join(map(repr, unknown))}",
                    field=key,
                    known=sorted(declared),
                )
            out.update(section)
    return out


_TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}


def _check_types(nb_path: Path, given: Mapping[str, Any], declared: Mapping[str, Any]) -> None:
    """A value of the wrong type (a quoted number, say) fails before any kernel starts."""
    for name, value in given.items():
        want = str((declared.get(name) or {}).get("inferred_type_name") or "")
        types = _TYPES.get(want)
        if types is None or value is None:
            continue
        if (isinstance(value, bool) and want != "bool") or not isinstance(value, types):
            raise ConfigError(f"{nb_path.name} declares {name}: {want}, got {value!r}", field=name)


def _check_shared_names(params: Mapping[str, Any] | None, declared_by: Mapping[Path, Mapping[str, Any]]) -> None:
    """A name in the ``all`` section (or a flat mapping) that no notebook declares is a typo."""
    if not params:
        return
    sectioned = any(k in ("all", "*") or k[:2].isdigit() for k in params)
    shared: dict[str, Any] = {}
    for key in ("all", "*") if sectioned else ():
        shared.update(params.get(key) or {})
    if not sectioned:
        shared = dict(params)
    known = sorted({n for d in declared_by.values() for n in d})
    unknown = sorted(set(shared) - set(known))
    if unknown:
        raise ConfigError(f"no notebook declares {', '.join(map(repr, unknown))}", field="all", known=known)


# ---------------------------------------------------------------------------
# Kernel: the running interpreter, no kernelspec lookup


def _kernel_manager_class(on_start: Any = None, log_path: Path | None = None) -> type:
    """A kernel manager that always launches ``sys.executable -m ipykernel_launcher``.

    It never consults installed kernelspecs, so it works in a virtual
    environment whatever ``python3`` kernel (or none) Jupyter would find.
    """
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name=f"labkit ({sys.executable})",
        language="python",
        metadata={},
    )

    class RunningInterpreterKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return spec

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log_path is not None:
                # The kernel's own stdout/stderr (start-up chatter, crashes) go to a log file.
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(log_path, "ab")  # noqa: SIM115 - closed by _kill_kernel
                self._labkit_log = log
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

        async def _async_post_start_kernel(self, **kw: Any) -> None:
            await super()._async_post_start_kernel(**kw)
            if on_start is not None:
                on_start(self)

    return RunningInterpreterKernelManager


def _kill_kernel(km: Any, close_log: bool = False) -> None:
    prov = getattr(km, "provisioner", None)
    proc = getattr(prov, "process", None)
    if proc is not None:
        with contextlib.suppress(OSError):
            proc.kill()
    log = getattr(km, "_labkit_log", None)
    if log is not None and close_log:
        log.close()


# ---------------------------------------------------------------------------
# Executing one notebook


_KERNEL_START_MARKERS = ("kernel died", "kernel didn't respond", "dead kernel", "kernel_info")


def _died_on_start(exc: BaseException, nb: Any) -> bool:
    """True when the kernel failed before any cell ran (the only failure worth a retry)."""
    from nbclient.exceptions import DeadKernelError

    text = f"{type(exc).__name__}: {exc}".lower()
    started = any(
        c.get("cell_type") == "code" and c.get("execution_count") for c in (nb or {}).get("cells", [])
    )
    if started:
        return False
    return isinstance(exc, DeadKernelError | TimeoutError) or any(m in text for m in _KERNEL_START_MARKERS)


def _read_nb(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError):
        return None


def _first_error(nb: Any) -> tuple[int | None, int | None, str, str, str]:
    for i, cell in enumerate((nb or {}).get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                return i, cell.get("execution_count"), cell.get("source", ""), out.get("ename", ""), out.get("evalue", "")
    return None, None, "", "", ""


def _failure(name: str, exc: BaseException, nb: Any, timed_out: float | None) -> NotebookFailure:
    from papermill.exceptions import PapermillExecutionError

    if timed_out is not None:
        idx, count, src, _, _ = _running_cell(nb)
        return NotebookFailure(
            name, "Timeout", f"notebook exceeded {timed_out:g} s", idx, count, src
        )
    if isinstance(exc, PapermillExecutionError):
        return NotebookFailure(
            name, exc.ename, str(exc.evalue).strip(), exc.cell_index, exc.exec_count, exc.source
        )
    idx, count, src, ename, evalue = _first_error(nb)
    if idx is not None:
        return NotebookFailure(name, ename, evalue, idx, count, src)
    idx, count, src, _, _ = _running_cell(nb)
    return NotebookFailure(name, type(exc).__name__, str(exc).strip() or repr(exc), idx, count, src)


def _running_cell(nb: Any) -> tuple[int | None, int | None, str, str, str]:
    """The cell that was running when execution stopped: the last one papermill started."""
    found: tuple[int | None, int | None, str, str, str] = (None, None, "", "", "")
    for i, cell in enumerate((nb or {}).get("cells", [])):
        pm = cell.get("metadata", {}).get("papermill") or {}
        if pm.get("status") == "running" or pm.get("start_time"):
            found = (i, cell.get("execution_count"), cell.get("source", ""), "", "")
    return found


def _execute(
    nb_path: Path,
    executed: Path,
    parameters: Mapping[str, Any],
    cwd: Path,
    timeout_s: float,
) -> tuple[Any, BaseException | None, float | None]:
    """Run one notebook once; returns (executed nb or None, exception or None, timed-out seconds)."""
    import papermill

    kms: list[Any] = []
    km_class = _kernel_manager_class(on_start=kms.append, log_path=executed.with_suffix(".kernel.log"))
    timed_out = threading.Event()

    def _watchdog() -> None:
        timed_out.set()
        for km in kms:
            _kill_kernel(km)

    timer = threading.Timer(timeout_s, _watchdog)
    timer.daemon = True
    timer.start()
    exc: BaseException | None = None
    nb: Any = None
    try:
        nb = papermill.execute_notebook(
            str(nb_path),
            str(executed),
            parameters=dict(parameters),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            start_timeout=60,
            execution_timeout=int(timeout_s) + 1,
            kernel_manager_class=km_class,
            resources={"metadata": {"path": str(cwd)}},
        )
    except Exception as e:  # papermill, nbclient and kernel errors are all reported, not raised
        exc = e
        nb = _read_nb(executed)
    finally:
        timer.cancel()
        for km in kms:
            _kill_kernel(km, close_log=True)
    return nb, exc, (timeout_s if timed_out.is_set() and exc is not None else None)


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def redact_notebook(nb: Any, redactor: Any = None) -> int:
    """Mask secrets and PII (e-mail, phone, card, keys, tokens, IPs) in every text output of an
    executed notebook, in place, before it is written or exported; images are left alone.

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
    return masked


def _title_of(nb: Any, fallback: str) -> str:
    for cell in (nb or {}).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in cell.get("source", "").splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


# ---------------------------------------------------------------------------
# Export


def template_dir() -> Path:
    return Path(__file__).parent / "templates"


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
    body, _ = exporter.from_notebook_node(nb)
    out = Path(out_path)
    _write_public(out, body)
    return out


def _write_public(path: Path, text: str) -> None:
    """Write atomically, readable by everyone (reports are for reviewers)."""
    atomic_write_text(path, text)
    os.chmod(path, 0o644)


def _is_widget_only(out: Any) -> bool:
    data = out.get("data") or {}
    return "application/vnd.jupyter.widget-view+json" in data and "text/html" not in data and "image/png" not in data


# ---------------------------------------------------------------------------
# Index


def write_index(entries: Sequence[ReportEntry], out_dir: Path, wall_s: float) -> Path:
    """index.html: one row per report with its verdict, links relative to the index."""
    colours = {"pass": "#1a7f37", "fail": "#cf222e", "warn": "#9a6700", "info": "#0550ae"}
    rows = []
    for e in entries:
        if e.status != "ok":
            badge = _badge("ERROR", "#cf222e")
            verdict = html.escape(str(e.failure)) if e.failure else "failed"
        elif e.verdict is not None:
            badge = _badge(e.verdict.status.upper(), colours[e.verdict.status])
            verdict = f"<strong>{html.escape(e.verdict.title)}</strong>"
            if e.verdict.detail:
                verdict += f"<br><span class='muted'>{html.escape(e.verdict.detail)}</span>"
        else:
            badge = _badge("DONE", "#59636e")
            verdict = "<span class='muted'>no verdict published</span>"
        name = html.escape(e.name)
        title = html.escape(e.title or e.name)
        link = (
            f"<a href='{html.escape(e.html.name, quote=True)}'>{title}</a>" if e.html is not None else title
        )
        rows.append(
            f"<tr class='lk-row lk-{'ok' if e.status == 'ok' else 'failed'}' data-notebook='{name}'>"
            f"<td><code>{name}</code></td><td>{link}</td><td>{badge}</td><td>{verdict}</td>"
            f"<td class='num'>{e.seconds:.1f} s</td></tr>"
        )
    n_fail = sum(1 for e in entries if e.status != "ok")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    status = (
        _badge("ALL REPORTS BUILT", "#1a7f37")
        if n_fail == 0
        else _badge(f"{n_fail} NOTEBOOK(S) FAILED", "#cf222e")
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>labkit reports</title>
<style>
body {{ margin:0; background:#f6f8fa; color:#1f2328;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
main {{ max-width: 1120px; margin: 24px auto; background:#fff; padding: 28px 40px;
  border:1px solid #d1d9e0; border-radius:8px; }}
h1 {{ margin:0 0 .3rem; border-bottom:2px solid #1f2328; padding-bottom:.3rem; }}
table {{ border-collapse: collapse; width:100%; margin-top:1rem; font-size:.95rem; }}
th, td {{ border:1px solid #d1d9e0; padding:6px 10px; text-align:left; vertical-align:top; }}
thead th {{ background:#f6f8fa; }}
td.num {{ text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }}
.muted {{ color:#59636e; }}
.badge {{ color:#fff; font-weight:700; border-radius:4px; padding:2px 8px; font-size:.8rem;
  letter-spacing:.04em; white-space:nowrap; }}
tr.lk-failed td {{ background:#fff1f0; }}
</style></head>
<body><main>
<h1>labkit reports</h1>
<p>{status} <span class="muted">{len(entries)} report(s), built {when}, wall time {wall_s:.1f} s.
Every report is a single offline HTML file.</span></p>
<table><thead><tr><th>notebook</th><th>report</th><th>status</th><th>verdict</th><th>time</th></tr></thead>
<tbody>
{''.join(rows)}
</tbody></table>
</main></body></html>
"""
    path = out_dir / "index.html"
    _write_public(path, page)
    return path


def _badge(text: str, colour: str) -> str:
    return f"<span class='badge' style='background:{colour}'>{html.escape(text)}</span>"


# ---------------------------------------------------------------------------
# The batch


def _run_one(
    nb_path: Path,
    out_dir: Path,
    params: Mapping[str, Any] | None,
    cwd: Path,
    timeout_s: float,
) -> ReportEntry:
    import papermill

    t0 = time.perf_counter()
    name = nb_path.stem
    executed = out_dir / "executed" / nb_path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    declared = papermill.inspect_notebook(str(nb_path))
    parameters = _params_for(nb_path, params, declared)
    attempts = 0
    nb: Any = None
    exc: BaseException | None = None
    timed_out: float | None = None
    while attempts < 2:
        attempts += 1
        nb, exc, timed_out = _execute(nb_path, executed, parameters, cwd, timeout_s)
        if exc is None or timed_out is not None or not _died_on_start(exc, nb):
            break
    if nb is not None:  # nothing a run would mask reaches a report or the kept notebook
        import nbformat

        redact_notebook(nb)
        atomic_write_text(executed, nbformat.writes(nb))
    failure = _failure(name, exc, nb, timed_out) if exc is not None else None
    entry = ReportEntry(
        name=name,
        notebook=nb_path,
        status="ok" if failure is None else "failed",
        seconds=0.0,
        attempts=attempts,
        executed=executed if executed.exists() else None,
        failure=failure,
    )
    html_path = out_dir / f"{name}.html"
    if nb is not None:
        entry.title = _title_of(nb, name)
        entry.verdict = verdict_of(nb) if failure is None else None
        export_html(nb, html_path, failure=failure)
        entry.html = html_path
    else:
        html_path.unlink(missing_ok=True)
    entry.seconds = time.perf_counter() - t0
    _write_record(entry, out_dir)
    return entry


def _write_record(entry: ReportEntry, out_dir: Path) -> None:
    """<name>.report.json: the entry's outcome, so a later partial build can still index it."""
    rec = {
        "name": entry.name,
        "notebook": str(entry.notebook),
        "title": entry.title,
        "status": entry.status,
        "seconds": round(entry.seconds, 3),
        "attempts": entry.attempts,
        "html": entry.html.name if entry.html else None,
        "verdict": entry.verdict.to_dict() if entry.verdict else None,
        "failure": None if entry.failure is None else {**entry.failure.__dict__, "text": str(entry.failure)},
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(out_dir / f"{entry.name}.report.json", json.dumps(rec, indent=2) + "\n")


def _read_record(path: Path, out_dir: Path) -> ReportEntry | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        failure = rec.get("failure")
        fail = None
        if failure:
            fail = NotebookFailure(**{k: v for k, v in failure.items() if k != "text"})
        html_name = rec.get("html")
        return ReportEntry(
            name=rec["name"],
            notebook=Path(rec["notebook"]),
            status=rec["status"],
            seconds=float(rec["seconds"]),
            attempts=int(rec.get("attempts", 1)),
            title=rec.get("title", ""),
            html=(out_dir / html_name) if html_name and (out_dir / html_name).exists() else None,
            verdict=Verdict.from_dict(rec["verdict"]) if rec.get("verdict") else None,
            failure=fail,
        )
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None


def build_reports(
    *,
    notebooks_dir: str | os.PathLike[str] = "notebooks",
    out_dir: str | os.PathLike[str] = "outputs/reports",
    params: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
    timeout_s: float = 600,
    workers: int = 2,
) -> ReportIndex:
    """Execute the notebooks, export each to offline HTML, and write index.html.

    ``params`` is either one flat mapping (each notebook takes the names it
    declares) or sections: ``{"all": {...}, "02_baseline_vs_variant": {...}}``;
    a section naming a parameter its notebook does not declare is a
    ConfigError. Notebooks run with the project root (the parent of
    ``notebooks_dir``) as working directory. A failing notebook does not stop
    the others: its failure (notebook, cell, error) is in the returned index
    and on its row of index.html; call ``raise_for_failures()`` to turn it into
    :class:`ReportFailed`.
    """
    t0 = time.perf_counter()
    nb_dir = Path(notebooks_dir).resolve()
    chosen = select(discover(nb_dir), only)
    if not chosen:
        raise ConfigError("no notebooks to run (expected NN_*.ipynb files)", path=str(nb_dir))
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Validate parameters up front so a typo fails before any kernel starts.
    import papermill

    declared_by = {p: papermill.inspect_notebook(str(p)) for p in discover(nb_dir)}
    for p in chosen:
        _check_types(p, _params_for(p, params, declared_by[p]), declared_by[p])
    _check_shared_names(params, declared_by)
    cwd = nb_dir.parent
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="labkit-report") as pool:
        entries = list(pool.map(lambda p: _run_one(p, out, params, cwd, timeout_s), chosen))
    wall = time.perf_counter() - t0
    # Reports of notebooks not run this time (--only) stay listed from their records.
    built = {e.name for e in entries}
    names = {p.stem for p in discover(nb_dir)}
    earlier = [
        r
        for rec in sorted(out.glob("*.report.json"))
        if rec.name.removesuffix(".report.json") not in built
        and rec.name.removesuffix(".report.json") in names
        and (r := _read_record(rec, out)) is not None
    ]
    listed = sorted([*entries, *earlier], key=lambda e: e.name)
    index = write_index(listed, out, wall)
    return ReportIndex(out_dir=out, index_html=index, entries=entries, wall_s=wall)


def iter_reports(out_dir: str | os.PathLike[str] = "outputs/reports") -> Iterator[Path]:
    """The exported HTML reports in a folder (index.html excluded), in name order."""
    yield from sorted(p for p in Path(out_dir).glob("*.html") if p.name != "index.html")
