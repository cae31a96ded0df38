"""The batch: execute the notebooks with papermill, two at a time, export each and write the index.

A failing notebook does not stop the others: its failure (notebook, cell, error) is in the
returned :class:`~labkit.report.results.ReportIndex` and on its row of index.html.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from labkit.display import VERDICT_MIME, Verdict
from labkit.errors import ConfigError
from labkit.io import atomic_write_text
from labkit.report.export import export_html, export_pdf, find_chromium, redact_notebook, title_of
from labkit.report.index import read_record, write_index, write_record
from labkit.report.kernel import died_on_start, kernel_manager_class, kill_kernel
from labkit.report.params import check_section_names, check_shared_names, check_types, params_for
from labkit.report.results import NotebookFailure, ReportEntry, ReportIndex

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


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


#: Where papermill writes a notebook under way: in memory (:class:`_UnderWay`), not on disk, where
#: it would hold its parameters and outputs before they are redacted.
_UNDER_WAY = "labkit-under-way://"


class _UnderWay:
    """papermill's I/O handler for :data:`_UNDER_WAY` paths: each write of a notebook under way
    (after every cell) kept in memory, read back when execution stops; only the redacted notebook
    is written to disk (:func:`_run_one`)."""

    notebooks: ClassVar[dict[str, str]] = {}
    _lock = threading.Lock()
    _registered = False

    @classmethod
    def register(cls) -> None:
        from papermill.iorw import papermill_io

        with cls._lock:
            if not cls._registered:
                papermill_io.register(_UNDER_WAY, cls)
                cls._registered = True

    @classmethod
    def write(cls, buf: str, path: str) -> None:
        cls.notebooks[path] = buf

    @classmethod
    def read(cls, path: str) -> str:
        return cls.notebooks[path]

    @classmethod
    def listdir(cls, path: str) -> list[str]:
        raise NotImplementedError("a notebook under way is no folder")

    @classmethod
    def pretty_path(cls, path: str) -> str:
        return path

    @classmethod
    def take(cls, path: str) -> Any:
        """The last write of ``path`` as a notebook (None: none), let go of."""
        import nbformat

        buf = cls.notebooks.pop(path, None)
        try:
            return None if buf is None else nbformat.reads(buf, as_version=4)
        except ValueError:
            return None


def _first_error(nb: Any) -> tuple[int | None, int | None, str, str, str]:
    for i, cell in enumerate((nb or {}).get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                return i, cell.get("execution_count"), cell.get("source", ""), out.get("ename", ""), out.get("evalue", "")
    return None, None, "", "", ""


def _redacted(failure: NotebookFailure) -> NotebookFailure:
    """The failure as the report may show and keep it: its message and cell source pass through
    the same redaction as every output (the record, index.html and the CLI's error line)."""
    import dataclasses

    from labkit.trace.redact import Redactor

    red = Redactor()
    return dataclasses.replace(failure, message=red.redact(failure.message), cell_source=red.redact(failure.cell_source))


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
    km_class = kernel_manager_class(on_start=kms.append, log_path=executed.with_suffix(".kernel.log"))
    timed_out = threading.Event()

    def _watchdog() -> None:
        timed_out.set()
        for km in kms:
            kill_kernel(km)

    timer = threading.Timer(timeout_s, _watchdog)
    timer.daemon = True
    timer.start()
    exc: BaseException | None = None
    nb: Any = None
    _UnderWay.register()
    under_way = _UNDER_WAY + str(executed)
    try:
        nb = papermill.execute_notebook(
            str(nb_path),
            under_way,
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
        nb = _UnderWay.take(under_way)
    finally:
        _UnderWay.notebooks.pop(under_way, None)
        timer.cancel()
        for km in kms:
            kill_kernel(km, close_log=True)
    return nb, exc, (timeout_s if timed_out.is_set() and exc is not None else None)


def _run_one(
    nb_path: Path,
    out_dir: Path,
    params: Mapping[str, Any] | None,
    cwd: Path,
    timeout_s: float,
    chromium: str | None = None,
) -> ReportEntry:
    import papermill

    t0 = time.perf_counter()
    name = nb_path.stem
    executed = out_dir / "executed" / nb_path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    declared = papermill.inspect_notebook(str(nb_path))
    parameters = params_for(nb_path, params, declared)
    attempts = 0
    nb: Any = None
    exc: BaseException | None = None
    timed_out: float | None = None
    while attempts < 2:
        attempts += 1
        nb, exc, timed_out = _execute(nb_path, executed, parameters, cwd, timeout_s)
        if exc is None or timed_out is not None or not died_on_start(exc, nb):
            break
    if nb is not None:  # nothing a run would mask reaches a report or the kept notebook
        import nbformat

        nb.metadata.setdefault("papermill", {})["output_path"] = str(executed)
        redact_notebook(nb)
        atomic_write_text(executed, nbformat.writes(nb))
    failure = _redacted(_failure(name, exc, nb, timed_out)) if exc is not None else None
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
        entry.title = title_of(nb, name)
        entry.verdict = verdict_of(nb) if failure is None else None
        export_html(nb, html_path, failure=failure)
        entry.html = html_path
        if chromium is not None:
            _print_pdf(entry, chromium)
    else:
        html_path.unlink(missing_ok=True)
    entry.seconds = time.perf_counter() - t0
    write_record(entry, out_dir)
    return entry


def _print_pdf(entry: ReportEntry, chromium: str) -> None:
    """The entry's PDF beside its HTML; a PDF Chromium could not print fails the entry."""
    from labkit.errors import ReportFailed

    assert entry.html is not None
    try:
        export_pdf(entry.html, chromium=chromium)
    except ReportFailed as e:
        entry.html.with_suffix(".pdf").unlink(missing_ok=True)
        entry.status = "failed"
        entry.failure = entry.failure or NotebookFailure(entry.name, "PdfExportError", str(e))


def build_reports(
    *,
    notebooks_dir: str | os.PathLike[str] = "notebooks",
    out_dir: str | os.PathLike[str] = "outputs/reports",
    params: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
    timeout_s: float = 600,
    workers: int = 2,
    pdf: bool = False,
) -> ReportIndex:
    """Execute the notebooks, export each to offline HTML, and write index.html.

    ``params`` is either one flat mapping (each notebook takes the names it
    declares) or sections: ``{"all": {...}, "02_baseline_vs_variant": {...}}``;
    a section naming a parameter its notebook does not declare is a
    ConfigError. Notebooks run with the project root (the parent of
    ``notebooks_dir``) as working directory. A failing notebook does not stop
    the others: its failure (notebook, cell, error) is in the returned index
    and on its row of index.html; call ``raise_for_failures()`` to turn it into
    :class:`ReportFailed`. With ``pdf``, each report is also printed to ``<name>.pdf``
    beside its HTML by headless Chromium (:func:`~labkit.report.export.export_pdf`); a
    missing Chromium is a ConfigError before any kernel starts.
    """
    t0 = time.perf_counter()
    nb_dir = Path(notebooks_dir).resolve()
    found = discover(nb_dir)
    check_section_names(params, found)
    chosen = select(found, only)
    if not chosen:
        raise ConfigError("no notebooks to run (expected NN_*.ipynb files)", path=str(nb_dir))
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Validate parameters up front so a typo fails before any kernel starts.
    import papermill

    declared_by = {p: papermill.inspect_notebook(str(p)) for p in discover(nb_dir)}
    for p in chosen:
        check_types(p, params_for(p, params, declared_by[p]), declared_by[p])
    check_shared_names(params, declared_by)
    chromium = find_chromium() if pdf else None
    cwd = nb_dir.parent
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="labkit-report") as pool:
        entries = list(pool.map(lambda p: _run_one(p, out, params, cwd, timeout_s, chromium), chosen))
    wall = time.perf_counter() - t0
    # Reports of notebooks not run this time (--only) stay listed from their records.
    built = {e.name for e in entries}
    names = {p.stem for p in discover(nb_dir)}
    earlier = [
        r
        for rec in sorted(out.glob("*.report.json"))
        if rec.name.removesuffix(".report.json") not in built
        and rec.name.removesuffix(".report.json") in names
        and (r := read_record(rec, out)) is not None
    ]
    listed = sorted([*entries, *earlier], key=lambda e: e.name)
    index = write_index(listed, out, wall)
    return ReportIndex(out_dir=out, index_html=index, entries=entries, wall_s=wall)


def iter_reports(out_dir: str | os.PathLike[str] = "outputs/reports") -> Iterator[Path]:
    """The exported HTML reports in a folder (index.html excluded), in name order."""
    yield from sorted(p for p in Path(out_dir).glob("*.html") if p.name != "index.html")

