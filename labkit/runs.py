"""The run directory: read and write manifest, results, traces, scores and metrics.

A run directory (``outputs/runs/<run_id>/``) holds::

    manifest.json   what ran: run_id, created_at, labkit_version, git_sha, dataset,
                    pipeline, runner, gate (when pre-registered), scoring
    results.jsonl   one line per case (the results-line contract of docs/formats.md)
    traces.jsonl    one trace record per case attempt
    scores.csv      per-case metric values, empty cell = unmeasured, ``<metric>_reason``
    metrics.json    aggregates with intervals

:class:`RunDir` reads any of them and works on a directory written by hand or
by another system (only ``results.jsonl`` present): that is how recorded
production traffic is evaluated with :func:`labkit.scoring.score_run`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from labkit.cases import Dataset, EvalCase, load_cases, unwritable
from labkit.errors import ConfigError, DatasetError, Problem
from labkit.io import (
    atomic_path,
    atomic_write_text,
    atomic_writer,
    iter_jsonl,
    loads_line,
    surrogate_problem,
)
from labkit.paths import FolderInput
from labkit.resultline import RESULT_DEFAULTS, STATUSES, check_line

if TYPE_CHECKING:
    import pandas as pd

    from labkit.trace.redact import Redactor

__all__ = [
    "MANIFEST_SCHEMA_VERSION",
    "RESULT_DEFAULTS",
    "STATUSES",
    "RunDir",
    "load_dataset",
    "redact_manifest",
    "refuse_secret_ids",
    "refuse_secret_names",
    "run_files",
    "secret_id_problems",
]

MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
TRACES = "traces.jsonl"
SCORES = "scores.csv"
METRICS = "metrics.json"
SNAPSHOT = "cases.jsonl"
PARQUET = "traces.parquet"
FEEDBACK = "feedback.jsonl"
#: The files of a run directory labkit reads (what an output written into it may not replace).
RUN_FILES = (MANIFEST, RESULTS, TRACES, SCORES, METRICS, SNAPSHOT, PARQUET, FEEDBACK)


def run_files(run_dir: str | os.PathLike[str]) -> FolderInput:
    """The files labkit reads from the run directory ``run_dir`` (:data:`RUN_FILES`), for
    :func:`labkit.paths.refuse_overwriting_inputs`: other files there are no input of a run."""
    return FolderInput(run_dir, tuple(Path(run_dir) / name for name in RUN_FILES))


#: The manifest.json format the runner writes (docs/formats.md "manifest.json"); a manifest
#: without ``schema_version`` is version 0, the first landing's.
MANIFEST_SCHEMA_VERSION = 1

#: What an HTTP header value becomes in manifest.json (any header may carry a credential).
HEADER_PLACEHOLDER = "[REDACTED]"
#: Manifest keys holding hashes and commits (never secrets, never rewritten).
_MANIFEST_IDS = frozenset({"git_sha", "hash", "config_hash", "fingerprint", "locked_at", "finished_at"})


#: How a value labkit writes as it is, and that redaction would change, is refused (its redacted form).
_HIDES = "holds what redaction hides (redacted: {!r})"


def secret_id_problems(ids: Sequence[str], line_of: Callable[[int], int | None], field: str,
                       settings: Mapping[str, Any] | Redactor | None) -> list[Problem]:
    """A problem at its line (``line_of(position)``) for each of ``ids`` (case ids) that the run's
    redaction (its ``redaction`` option, or its redactor) would change: labkit writes a case id as
    it is (results.jsonl, scores.csv: the key that joins scores, traces and feedback), so such an
    id would put what redaction hides on disk. The problem shows the id redacted."""
    from labkit.trace.redact import Redactor

    return [Problem(line_of(i), field, f"{_HIDES.format(new)}: a case id is written as it is (results.jsonl, "
                                       "scores.csv) to join scores and traces; give the case an id without it")
            for i, new in Redactor.from_config(settings).changed_ids(ids)]


def refuse_secret_ids(ds: Dataset, settings: Mapping[str, Any] | Redactor | None) -> None:
    """A DatasetError naming (line, ``id``) each case of ``ds`` whose id the run's redaction would
    change (:func:`secret_id_problems`): a run refuses them before it writes anything."""
    ids = [c.id for c in ds]

    def line_of(i: int) -> int | None:  # (the line the parse kept; none for cases given in memory)
        return ds.lines[i] if len(ds.lines) == len(ids) else None

    problems = secret_id_problems(ids, line_of, "id", settings)
    if problems:
        raise DatasetError(ds.path, problems)


def refuse_secret_names(names: Sequence[tuple[str, str]], settings: Mapping[str, Any] | Redactor | None,
                        *, path: str | None = None, written: str = "results, the result cache") -> None:
    """A ConfigError naming the option of the first of ``names`` ((option, value): a run id, a
    pipeline's name) that the run's redaction would change: like case ids, they are written as
    they are (each line's ``answered_by``, a cache entry's and a cache hit's ``cache_origin``)."""
    from labkit.trace.redact import Redactor

    changed = Redactor.from_config(settings).changed_ids([v for _, v in names])
    if changed:
        i, new = changed[0]
        raise ConfigError(f"{_HIDES.format(new)}: it is written as it is ({written}); choose one without it",
                          path=path, field=names[i][0])


def redact_manifest(manifest: Mapping[str, Any], settings: Mapping[str, Any] | Redactor | None = None) -> dict[str, Any]:
    """manifest.json as it may be written (:meth:`RunDir.write_manifest`, every write): HTTP header
    values masked, every other string through the redactor's full catalogue plus the run's extra
    patterns (a manifest holds configs and paths, not content, so the run's content and type
    choices do not apply to it; its hashes and times are left alone). ``settings``: the run's
    ``redaction`` option, or the run's redactor built from it."""
    out: dict[str, Any] = _catalogue_redactor(_extra_of(settings), manifest=True).redact(
        _headers_masked(dict(manifest)))
    return out


def record_redactor(settings: Mapping[str, Any] | Redactor | None = None) -> Redactor:
    """The redactor of what is written from a run besides its content (the slice names of
    metrics.json, the cases an incident proposes, an export of its results): the full catalogue
    plus the run's extra patterns, whatever its content and type choices, as for its manifest.
    ``settings``: the run's ``redaction`` option, or its redactor."""
    return _catalogue_redactor(_extra_of(settings), manifest=False)


def _extra_of(settings: Mapping[str, Any] | Redactor | None) -> str:
    """The extra patterns of a run's redaction settings (validated with the run's config), as JSON."""
    from labkit.trace.redact import Redactor

    extra = (dict(settings.extra_patterns) if isinstance(settings, Redactor)
             else settings.get("extra_patterns") if isinstance(settings, Mapping) else None)
    return json.dumps(extra, sort_keys=True)


@functools.lru_cache(maxsize=8)
def _catalogue_redactor(extra_patterns: str, *, manifest: bool) -> Redactor:
    """The full catalogue and a run's extra patterns (as JSON), built once in a process (each build
    compiles the catalogue's gates); for a manifest, its ids and times are left alone."""
    from labkit.trace.redact import DEFAULT_SKIP_KEYS, Redactor

    skip = DEFAULT_SKIP_KEYS | _MANIFEST_IDS if manifest else DEFAULT_SKIP_KEYS
    return Redactor.from_config({"extra_patterns": json.loads(extra_patterns), "skip_keys": sorted(skip)})


def _headers_masked(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == "headers" and isinstance(v, dict):
                out[k] = {str(h): HEADER_PLACEHOLDER for h in v}
            else:
                out[k] = _headers_masked(v)
        return out
    if isinstance(cfg, list):
        return [_headers_masked(v) for v in cfg]
    return cfg


#: The results-line contract lives in labkit.resultline (one validator for the runner,
#: the cache and this reader); these names are kept here for existing callers.


class ResultsPart(NamedTuple):
    """The valid lines of (a part of) a results.jsonl, the line of each, and every problem."""

    rows: list[dict[str, Any]]
    lines: list[int]
    problems: list[Problem]


def read_results_part(path: str | os.PathLike[str], span: tuple[int, int] | None = None, *,
                      tolerate_torn_tail: bool = True) -> ResultsPart:
    """Validate the lines of a results.jsonl (or of the ``span`` of it, lines numbered from 1
    within it: :func:`labkit.io.line_spans`) one by one; duplicate case ids are left to
    :func:`duplicate_ids`, which sees every part."""
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for n, raw, complete in iter_jsonl(path, span=span, problems=problems):
        try:
            obj = loads_line(raw)
        except json.JSONDecodeError as e:
            if not complete and tolerate_torn_tail:
                continue
            problems.append(Problem(n, None, f"malformed JSON: {e.msg} at column {e.colno}"))
            continue
        except (ValueError, RecursionError) as e:  # an integer of thousands of digits, deep nesting
            problems.append(Problem(n, None, f"unreadable JSON: {type(e).__name__}: {str(e)[:80]}"))
            continue
        if (bad := surrogate_problem(raw, obj, n)) is not None:  # (as a dataset line)
            problems.append(bad)
            continue
        res = check_line(obj, n, problems)
        if res is not None:
            rows.append(res)
            lines.append(n)
    return ResultsPart(rows, lines, problems)


def duplicate_ids(ids: Sequence[str], lines: Sequence[int]) -> tuple[list[int], list[Problem]]:
    """The positions of the lines that repeat an earlier line's case_id, and a problem for each."""
    seen: dict[str, int] = {}
    repeats: list[int] = []
    problems: list[Problem] = []
    for i, (cid, n) in enumerate(zip(ids, lines, strict=True)):
        first = seen.setdefault(cid, n)
        if first != n:
            repeats.append(i)
            problems.append(Problem(n, "case_id", f"duplicate case_id {cid!r} (first on line {first})"))
    return repeats, problems


def read_results(path: str | os.PathLike[str], *, tolerate_torn_tail: bool = True) -> list[dict[str, Any]]:
    """Read and validate a results.jsonl; every bad line is reported in one DatasetError.

    A final line that is cut short (no newline, not valid JSON: a writer killed
    mid-line) is skipped when ``tolerate_torn_tail``. Duplicate case ids are errors.
    """
    return _valid_results(path, tolerate_torn_tail=tolerate_torn_tail).rows


def _valid_results(path: str | os.PathLike[str], *, tolerate_torn_tail: bool = True) -> ResultsPart:
    part = read_results_part(path, tolerate_torn_tail=tolerate_torn_tail)
    _, repeated = duplicate_ids([r["case_id"] for r in part.rows], part.lines)
    problems = sorted(part.problems + repeated, key=lambda pr: pr.line or 0)
    if problems:
        raise DatasetError(str(path), problems)
    return part


def cache_claim_problem(manifest: Mapping[str, Any], cache_lines: Sequence[int]) -> Problem | None:
    """A finished run records how many cases it served from the cache (``counts.from_cache``):
    the first line beyond that many claiming a cache hit is a problem (``cache_lines``: the
    lines that claim one, in file order)."""
    counts = manifest.get("counts") if manifest.get("status") == "complete" else None
    recorded = counts.get("from_cache") if isinstance(counts, dict) else None
    if not isinstance(recorded, int) or isinstance(recorded, bool) or len(cache_lines) <= recorded:
        return None
    return Problem(cache_lines[max(recorded, 0)], "from_cache", f"claims a cache hit, but the run recorded only "
                                                       f"{recorded} (manifest.json counts.from_cache)")


class RunDir:
    """A run directory on disk (it need not be complete: a hand-written one may hold
    only results.jsonl)."""

    def __init__(self, path: str | os.PathLike[str] | RunDir) -> None:
        self.path: Path = Path(path.path) if isinstance(path, RunDir) else Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def traces_path(self) -> Path:
        return self.path / TRACES

    @property
    def scores_path(self) -> Path:
        return self.path / SCORES

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def manifest(self) -> dict[str, Any]:
        """manifest.json as a dict, or {} when the directory has none."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"malformed JSON: {e.msg}", path=str(self.manifest_path), line=e.lineno) from None
        if not isinstance(data, dict):
            raise ConfigError("must be a JSON object", path=str(self.manifest_path))
        sv = data.get("schema_version", 0)  # (every reader of the manifest reads a version it knows)
        if not isinstance(sv, int) or isinstance(sv, bool) or not 0 <= sv <= MANIFEST_SCHEMA_VERSION:
            raise ConfigError(f"unsupported manifest version {sv!r} (this labkit reads 0 to "
                              f"{MANIFEST_SCHEMA_VERSION})", path=str(self.manifest_path), field="schema_version")
        return data

    @property
    def redaction(self) -> Any:
        """The redaction settings the run was written with: its manifest's ``runner.redaction``
        (None: the defaults, as for a run whose manifest records none)."""
        runner = self.manifest.get("runner")
        return runner.get("redaction") if isinstance(runner, dict) else None

    @property
    def manifest_version(self) -> int:
        """The ``schema_version`` of manifest.json: 0 for a manifest without one (the first
        landing's) and for a directory without a manifest; a version this labkit does not know
        is a ConfigError naming the field."""
        sv: int = self.manifest.get("schema_version", 0)  # (checked as the manifest is read)
        return sv

    @property
    def run_id(self) -> str:
        rid = self.manifest.get("run_id")
        return rid if isinstance(rid, str) and rid else self.path.name

    @property
    def run_uuid(self) -> str:
        """What tells this run from every other, wherever it lies and whatever its name: the
        manifest's ``run_uuid`` (a random uuid the runner records when the run is created);
        for a manifest written before it, a hash of its run_id and created_at (microseconds);
        for a folder without a manifest, or one that records no created_at (written by hand: two
        of one folder name are two runs), a hash of the folder's resolved path."""
        import hashlib

        m = self.manifest
        uid = m.get("run_uuid")
        if isinstance(uid, str) and uid:
            return uid
        seed = (f"manifest:{m.get('run_id')}:{m.get('created_at')}" if m and m.get("created_at")
                else f"path:{self.path.resolve()}")
        return "derived-" + hashlib.sha256(seed.encode()).hexdigest()[:32]

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """manifest.json written atomically, redacted with the settings it records (its
        ``runner.redaction``: :func:`redact_manifest`) whoever writes it: the runner, scoring, a
        resume (a path or a setting named by a secret pattern reaches the disk as its placeholder)."""
        runner = manifest.get("runner")
        shown = redact_manifest(manifest, runner.get("redaction") if isinstance(runner, dict) else None)
        atomic_write_text(self.manifest_path, json.dumps(shown, indent=2, ensure_ascii=False, default=str) + "\n")

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        m = self.manifest
        m.update(fields)
        self.write_manifest(m)
        return m

    def summary(self) -> str:
        """One line: run id, case counts by status, where it is."""
        m = self.manifest
        counts = m.get("counts")
        if not isinstance(counts, dict):
            rows = self.results() if self.results_path.is_file() else []
            counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
            counts["from_cache"] = sum(1 for r in rows if r.get("from_cache"))
        n = sum(int(counts.get(s, 0)) for s in STATUSES)
        parts = ", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES)
        cached = f", from cache {counts['from_cache']}" if counts.get("from_cache") else ""
        return f"run {self.run_id}: {n} cases ({parts}{cached}) in {self.path}"

    def results(self) -> list[dict[str, Any]]:
        """The results lines, validated (a bad line is a DatasetError naming file, line, field).

        A finished run records how many cases it served from the cache
        (``counts.from_cache``); more lines claiming a cache hit than that is an error.
        """
        part = _valid_results(self.results_path)
        claim = cache_claim_problem(self.manifest, [n for r, n in zip(part.rows, part.lines, strict=True)
                                                    if r["from_cache"]])
        if claim is not None:
            raise DatasetError(str(self.results_path), [claim])
        return part.rows

    def metrics(self) -> dict[str, Any]:
        """metrics.json, or {} when the run has not been scored."""
        try:
            data = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"malformed JSON: {e.msg}", path=str(self.metrics_path), line=e.lineno) from None
        return data if isinstance(data, dict) else {}

    def scores(self) -> pd.DataFrame:
        """scores.csv as a DataFrame (unmeasured cells are NaN); raises FileNotFoundError if unscored."""
        if not self.scores_path.is_file():
            raise FileNotFoundError(f"{self.scores_path}: run not scored yet ({self.score_command})")
        return read_scores_csv(self.scores_path)

    @property
    def scored_dataset(self) -> dict[str, Any]:
        """The dataset the run was scored on, as its manifest records it (``path``, ``fingerprint``,
        ``n_cases``): scoring's record (``labkit score --dataset`` may name another), else the run's."""
        m = self.manifest
        for rec in ((m.get("scoring") or {}).get("dataset") if isinstance(m.get("scoring"), dict) else None,
                    m.get("dataset")):
            if isinstance(rec, dict) and rec:
                return rec
        return {}

    @property
    def score_command(self) -> str:
        """The command that (re)scores this run: ``labkit score RUN``, with ``--dataset DATASET``
        when the run names no dataset (recorded traffic in a folder written by hand)."""
        ds = self.dataset_path()
        return f"labkit score {self.path}" + ("" if ds and Path(ds).is_file() else " --dataset DATASET")

    def dataset_path(self) -> str | None:
        """Where the run's cases are: the manifest's dataset.path, else the run's snapshot."""
        ds = self.manifest.get("dataset") or {}
        path = ds.get("path") if isinstance(ds, dict) else None
        if isinstance(path, str) and Path(path).is_file():
            return path
        snap = self.path / SNAPSHOT
        if snap.is_file():
            return str(snap)
        return path if isinstance(path, str) else None


def load_dataset(
    dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str] | None, rd: RunDir | None = None, *,
    meanwhile: Callable[[], object] | None = None,
) -> Dataset:
    """The dataset of a run: a Dataset as is, a JSONL path loaded, cases in memory wrapped
    (no path), or None: the one the run directory ``rd`` names (its manifest's, else its
    snapshot). The one loader of the runner and of scoring. ``meanwhile``: the caller's own
    work, done once while a forked process parses a large file (:func:`labkit.cases.load_cases`)."""
    if isinstance(dataset, Dataset):
        return dataset
    if dataset is None:
        if rd is None:
            raise ConfigError("no dataset given", field="dataset")
        dataset = rd.dataset_path()
        if dataset is None:
            raise ConfigError(
                "no dataset: the run directory's manifest names none; pass --dataset PATH",
                path=str(rd.path),
                field="dataset",
            )
    if isinstance(dataset, (str, os.PathLike)):
        return load_cases(dataset, meanwhile=meanwhile)
    cases = tuple(dataset)
    bad = unwritable(cases)
    if bad:  # (before anything is written: the run keeps its cases beside it, in a file)
        raise DatasetError(None, bad)
    return Dataset(cases, None)


#: first characters that make a spreadsheet read a cell as a formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: the first characters of a text :func:`csv_safe` may change: a formula start or a quote before one
_RISKY_START = frozenset(_FORMULA_START) | {"'"}


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet will not run: ``'`` before a formula-like start (and before a
    ``'`` that already precedes one, so :func:`csv_unsafe` reverses it exactly)."""
    if isinstance(value, str) and value.lstrip("'")[:1] in _FORMULA_START and value.lstrip("'"):
        return "'" + value
    return value


def csv_unsafe(value: Any) -> Any:
    """The text :func:`csv_safe` was given."""
    if isinstance(value, str) and value[:1] == "'" and value.lstrip("'")[:1] in _FORMULA_START and value.lstrip("'"):
        return value[1:]
    return value


def csv_unsafe_sql(expr: str) -> str:
    """:func:`csv_unsafe` as a SQL (DuckDB) expression over the text ``expr``: for a query
    that reads scores.csv itself."""
    rest = f"ltrim({expr}, '''')"
    starts = ", ".join(f"'{ch}'" if ch.isprintable() else f"chr({ord(ch)})" for ch in _FORMULA_START)
    return (f"CASE WHEN starts_with({expr}, '''') AND {rest} <> '' AND left({rest}, 1) IN ({starts}) "
            f"THEN substr({expr}, 2) ELSE {expr} END")


def write_scores_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` as scores.csv, whole or not at all: every text cell csv-safe, an empty cell
    for NaN, None and ``""``, floats as Python writes them (``repr``), booleans ``True`` and
    ``False``: the bytes pandas' ``to_csv(index=False)`` writes, but a text holding a carriage
    return is quoted (pandas leaves it bare, and a reader then cuts the row there). DuckDB
    writes it, about five times faster than pandas (tests/test_runs.py pins both).
    """
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    select: list[str] = []
    for i, name in enumerate(df.columns):
        col, alias = df[name], f"c{i}"
        kind = col.dtype.kind
        if kind in "fiu":
            out[alias] = col
            select.append(f"{alias}")
        elif kind == "b":
            out[alias] = col
            select.append(f"CASE WHEN {alias} THEN 'True' ELSE 'False' END")
        else:
            out[alias] = _safe_texts(col)
            select.append(f"NULLIF({alias}, '')")
    names = [str(c) for c in df.columns]
    if all(_PLAIN_NAME.fullmatch(name) for name in names):  # (the common case) a header DuckDB writes as is
        with atomic_path(path) as tmp:
            _copy_csv(out, [f"{e} AS \"{name}\"" for e, name in zip(select, names, strict=True)], tmp, header=True)
        return
    with atomic_writer(path) as f, tempfile.TemporaryDirectory(dir=Path(path).parent) as work:
        body = os.path.join(work, "rows.csv")
        _copy_csv(out, [f"{e} AS c{i}" for i, e in enumerate(select)], body, header=False)
        f.write(",".join(_csv_cell(name) for name in names).encode("utf-8") + b"\n")
        with open(body, "rb") as rows:
            shutil.copyfileobj(rows, f, 2**20)


#: A column name no CSV writer quotes (every metric's and raw column's name is one).
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _copy_csv(frame: pd.DataFrame, columns: list[str], target: str | os.PathLike[str], *, header: bool) -> None:
    """DuckDB's CSV of ``SELECT columns FROM frame`` at ``target`` (quotes doubled, NULL empty)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("scores", frame)
        con.execute(f"COPY (SELECT {', '.join(columns)} FROM scores) TO '{_sql_text(str(target))}' "
                    f"(FORMAT csv, HEADER {'true' if header else 'false'}, DELIMITER ',', QUOTE '\"', "
                    "ESCAPE '\"', NULL '')")
    finally:
        con.close()


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


def _safe_texts(col: pd.Series) -> Any:
    """A text column with every distinct text made csv-safe once (a reason column holds a
    handful), missing values as None."""
    import pandas as pd

    vals = col.astype(object).where(col.notna(), None)
    distinct = pd.unique(vals.to_numpy())
    change = {v: safe for v in distinct  # (csv_safe changes only a text starting so: the others are passed by)
              if isinstance(v, str) and v[:1] in _RISKY_START and (safe := csv_safe(v)) is not v}
    return vals.map(lambda v: change.get(v, v)) if change else vals


def read_scores_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A scores.csv as it was scored: an empty cell is NaN (unmeasured), every other text as
    written (a case id ``NA`` or ``null`` stays one), each csv-safe text as it was before."""
    import pandas as pd

    return csv_unsafe_frame(pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False, na_values=[""]))


def read_scores_rows(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """A scores.csv as rows of text, in plain Python (no frame): each text as it was scored
    (:func:`csv_unsafe`), an unmeasured cell ``""``."""
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        return [{k: csv_unsafe(v) for k, v in row.items()} for row in csv.DictReader(f)]


def csv_unsafe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell passed through :func:`csv_unsafe` (scores.csv as it was scored)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    for col in df.columns:
        if is_object_dtype(df[col]) or is_string_dtype(df[col]):
            df[col] = df[col].map(csv_unsafe)
    return df
