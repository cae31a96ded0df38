"""The shared mapping core of the importers: records, the mapping summary, reading a peer
file strictly, and writing ``DIR/dataset.jsonl`` plus the run directory ``DIR/run/``.

Every importer turns its file into :class:`Record` objects (one per case, with the source
line) and a :class:`FieldLog` of what it mapped, kept in metadata and dropped; then
:func:`write_import` validates every case and results line (all-or-nothing: one
DatasetError naming the source file's lines), maps reference and retrieved texts onto the
corpus's chunks (labkit.interop.goldtext), redacts, and writes each file atomically.
The values of the fields (list cells, numbers, token counts, times) are read one way, by
labkit.interop.values.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.cases import EvalCase, derive_id, fingerprint
from labkit.errors import ConfigError, DatasetError, Problem
from labkit.io import (
    SURROGATE_REASON,
    atomic_write_text,
    file_hash,
    input_error,
    loads_document,
    may_hold_surrogate,
    non_finite_paths,
    surrogate_at,
    surrogate_field,
)
from labkit.resultline import check_line
from labkit.runs import MANIFEST_SCHEMA_VERSION, RESULTS, TRACES, secret_id_problems

__all__ = ["FieldLog", "ImportOutcome", "Record", "read_document", "read_text", "write_import"]

DATASET = "dataset.jsonl"
RUN = "run"


@dataclass
class Record:
    """One case of a peer file: dataset fields, reference texts, and what it answered, if anything."""

    line: int | None
    question: Any
    case: dict[str, Any] = field(default_factory=dict)  # id, reference_answer, must_include, tags, metadata ...
    reference_contexts: list[str] | None = None
    result: dict[str, Any] | None = None  # results-line fields (no case_id)
    retrieved_texts: list[str] | None = None  # retrieved passages as text, in rank order
    retrieved_items: list[dict[str, Any]] | None = None  # or as {id?, text?, score?} (trace formats)
    trace: dict[str, Any] | None = None  # {ts_start, ts_end}: a trace format's own timing (ts_end None: unknown)


@dataclass
class FieldLog:
    """What an import did with each source field: mapped (to which labkit field), kept in
    metadata, dropped (why); each with the number of records it happened on."""

    mapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def map(self, src: str, dst: str) -> None:
        self.mapped[(src, dst)] += 1

    def keep(self, src: str) -> None:
        self.kept[src] += 1

    def drop(self, src: str, why: str) -> None:
        self.dropped[(src, why)] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"mapped": [{"from": s, "to": d, "n": n} for (s, d), n in sorted(self.mapped.items())],
                "kept_in_metadata": [{"from": s, "n": n} for s, n in sorted(self.kept.items())],
                "dropped": [{"from": s, "why": w, "n": n} for (s, w), n in sorted(self.dropped.items())]}

    def lines(self) -> list[str]:
        out = ["mapped:"] + [f"  {s} -> {d} ({n})" for (s, d), n in sorted(self.mapped.items())]
        out += ["kept in metadata:"] + [f"  {s} ({n})" for s, n in sorted(self.kept.items())]
        if not self.kept:
            out.append("  (none)")
        out += ["dropped:"] + [f"  {s}: {w} ({n})" for (s, w), n in sorted(self.dropped.items())]
        if not self.dropped:
            out.append("  (none)")
        return out


@dataclass(frozen=True)
class ImportOutcome:
    """What :func:`write_import` wrote and how gold from text went."""

    out_dir: Path
    dataset_path: Path
    run_dir: Path | None
    n_cases: int
    n_results: int
    gold: dict[str, int]  # matched / no_gold_match / no_reference_contexts / no_corpus / labelled
    log: FieldLog
    #: the validated results lines before redaction: what ``labkit import --score`` scores, as the
    #: runner scores its in-memory results (results.jsonl on disk is redacted)
    results: tuple[dict[str, Any], ...] = ()

    def summary(self) -> list[str]:
        run = f", {self.n_results} results in {self.run_dir}" if self.run_dir else ", no outputs (no run directory)"
        head = [f"imported {self.n_cases} cases into {self.dataset_path}{run}"]
        gold = ", ".join(f"{k} {v}" for k, v in sorted(self.gold.items()) if v)
        return head + ([f"gold from text: {gold}"] if gold else []) + self.log.lines()


def read_text(path: str | os.PathLike[str]) -> str:
    """A peer file's text; a file that cannot be read or is not UTF-8 is a DatasetError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise input_error(p, e) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DatasetError(str(p), [Problem(line, None, f"not UTF-8 text: {e.reason}")]) from None


def read_document(path: str | os.PathLike[str]) -> Any:
    """A whole-file JSON document, strictly decoded (labkit.io.loads_document): objects know their line."""
    text = read_text(path)
    try:
        doc = loads_document(text)
    except json.JSONDecodeError as e:
        raise DatasetError(str(path), [Problem(e.lineno, None, f"malformed JSON: {e.msg} at column {e.colno}")]) \
            from None
    if may_hold_surrogate(text) and (hit := surrogate_at(doc)) is not None:
        raise DatasetError(str(path), [Problem(hit[1], hit[0], SURROGATE_REASON)])
    return doc


def _gold(rec: Record, matcher: Any, counts: Counter[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The expected chunks of a record from its reference texts, and the metadata record."""
    if rec.reference_contexts is None:
        return [], None
    if matcher is None:
        counts["no_corpus"] += 1
        return [], {"chunk_ids": [], "confidence": None, "reason": "no_corpus"}
    g = matcher.gold(rec.reference_contexts)
    counts["matched" if g["chunk_ids"] else g.get("reason", "no_gold_match")] += 1
    return list(g["chunk_ids"]), g


def _unwritable(rec: Record) -> list[Problem]:
    """A record's values no labkit file can hold, each named by its field (``results.`` for the
    results line): a number that is not finite, and a lone surrogate, which a peer file's decoder
    or a format's own text (a Python literal, JSON in an attribute) may give. Checked before
    anything is derived from them (a case's id from its question) or written."""
    bad = [Problem(rec.line, p, "not a finite number (JSON cannot hold it)")
           for p in non_finite_paths(rec.case) + non_finite_paths(rec.result or {}, "results")]
    texts = {"question": rec.question, "reference_contexts": rec.reference_contexts,
             "retrieved": rec.retrieved_texts if rec.retrieved_texts is not None else rec.retrieved_items}
    hit = surrogate_field({**texts, **rec.case, "results": rec.result})
    if hit is not None:
        bad.append(Problem(rec.line, hit, SURROGATE_REASON))
    return bad


def _case(rec: Record, matcher: Any, counts: Counter[str], problems: list[Problem]) -> EvalCase | None:
    bad = _unwritable(rec)
    if bad:
        problems.extend(bad)
        return None
    d = {k: v for k, v in rec.case.items() if v is not None}
    d["question"] = rec.question
    meta = dict(d.get("metadata") or {})
    chunks, gold = _gold(rec, matcher, counts)
    if gold is not None:
        meta["gold_from_text"] = gold
        if rec.reference_contexts:
            meta.setdefault("reference_contexts", list(rec.reference_contexts))
    if chunks:
        d["expected_chunks"] = chunks
    elif d.get("expected_chunks"):
        counts["labelled"] += 1
    d["metadata"] = meta
    if isinstance(d["question"], str) and "id" not in d:
        d["id"] = derive_id(d["question"])
    try:
        return EvalCase.from_dict(d)
    except DatasetError as e:
        problems.extend(Problem(rec.line, p.field, p.reason) for p in e.problems)
        return None


def _result(rec: Record, case_id: str, matcher: Any, problems: list[Problem]) -> dict[str, Any] | None:
    assert rec.result is not None
    res = {"case_id": case_id, **rec.result}
    if rec.retrieved_texts is not None:
        if matcher is not None:
            res["retrieved"] = matcher.retrieved(rec.retrieved_texts)
        else:
            from labkit.interop.goldtext import text_id

            res["retrieved"] = [{"id": text_id(t), "source": "text", "score": None, "text": t}
                                for t in rec.retrieved_texts]
    elif rec.retrieved_items is not None:
        res["retrieved"] = _resolve_items(rec.retrieved_items, matcher)
    elif "retrieved" not in res:
        res["retrieval_logged"] = False
    res.setdefault("attempts", 1)
    res.setdefault("from_cache", False)
    return check_line(res, rec.line, problems)


def _resolve_items(items: Sequence[dict[str, Any]], matcher: Any) -> list[dict[str, Any]]:
    """Retrieved items with an id, a text or both: an id that is a chunk of the corpus is kept;
    else the text is matched to a chunk; else the item keeps its own id (or the text's)."""
    from labkit.interop.goldtext import text_id

    known = set(matcher.chunk_ids) if matcher is not None else set()
    out = []
    for it in items:
        cid, text, score = it.get("id"), it.get("text"), it.get("score")
        if (isinstance(cid, str) and cid in known) or ((matcher is None or not isinstance(text, str)) and cid):
            item = {"id": str(cid), "score": score}
        elif isinstance(text, str) and matcher is not None:
            item = dict(matcher.retrieved([text])[0], score=score)
            if cid:
                item["source_id"] = str(cid)
        elif isinstance(text, str):
            item = {"id": text_id(text), "source": "text", "score": score}
        else:
            continue
        if isinstance(text, str):
            item["text"] = text
        out.append(item)
    return out


def _unique_ids(cases: list[EvalCase], records: Sequence[Record], problems: list[Problem]) -> list[EvalCase]:
    """Two records with one id: an explicit id twice is an error; an id the file gives is kept, and
    a derived one (the same question, or a question whose id the file gives another record) gets
    ``-<line>`` so both cases stay (a dropped case is never silent), and a further ``-2``, ``-3`` ...
    while that name is taken (never one id twice)."""
    from dataclasses import replace

    seen: dict[str, int | None] = {}
    named = [("id" in rec.case) for rec in records]
    for c, rec, given in zip(cases, records, named, strict=True):
        if given and c.id in seen:
            problems.append(Problem(rec.line, "id", f"duplicate id {c.id!r} (first on line {seen[c.id]})"))
        elif given:
            seen[c.id] = rec.line
    out = []
    for c, rec, given in zip(cases, records, named, strict=True):
        if not given:
            new, n = c.id, 1
            while new in seen:
                n += 1
                new = f"{c.id}-{rec.line}" + (f"-{n - 1}" if n > 2 else "")
            seen[new] = rec.line
            c = replace(c, id=new) if new != c.id else c
        elif seen.get(c.id) != rec.line:  # (a duplicate, refused above)
            continue
        out.append(c)
    return out


def write_import(
    records: Sequence[Record], log: FieldLog, *, fmt: str, source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str], corpus: Any = None, threshold: float | None = None,
) -> ImportOutcome:
    """Validate every record, map gold from text, redact, and write dataset.jsonl and run/:
    all of it or nothing (:func:`_write_whole`)."""
    from labkit.interop.goldtext import DEFAULT_THRESHOLD, ChunkMatcher

    if not records:
        raise DatasetError(str(source), [Problem(None, None, f"no cases found in this {fmt} file")])
    out = Path(out_dir)
    _refuse_used_out(out)
    matcher = ChunkMatcher(corpus, threshold=threshold or DEFAULT_THRESHOLD) if corpus is not None else None
    problems: list[Problem] = []
    counts: Counter[str] = Counter()
    built = [(_case(r, matcher, counts, problems), r) for r in records]
    ok = [(c, r) for c, r in built if c is not None]
    cases = _unique_ids([c for c, _ in ok], [r for _, r in ok], problems)
    if not problems:  # (then every record is a case, in order) ids are written as they are: none may hide a secret
        problems += secret_id_problems([c.id for c in cases], lambda i: ok[i][1].line, "id", None)
    results = []
    if not problems:
        results = [(c, r, _result(r, c.id, matcher, problems)) for c, r in zip(cases, [r for _, r in ok],
                                                                                  strict=True) if r.result is not None]
    if problems:
        raise DatasetError(str(source), problems)
    rows = [(c, r, x) for c, r, x in results if x is not None]
    ds_path, run_dir = out / DATASET, (out / RUN if results else None)
    with _write_whole(out) as tmp:
        _write_dataset(cases, tmp / DATASET)
        if rows:
            _write_run(tmp / RUN, rows, fmt=fmt, source=source, cases=cases, ds_path=ds_path, corpus=corpus, log=log)
    kept = tuple(x for *_, x in rows)
    return ImportOutcome(out, ds_path, run_dir, len(cases), len(results), dict(counts), log, kept)


def _refuse_used_out(out: Path) -> None:
    """An --out folder holding an earlier import, or any file, is refused (a ConfigError)."""
    if (out / DATASET).exists() or (out / RUN).exists():
        raise ConfigError(f"already holds an import ({DATASET} or {RUN}/): choose a new --out folder, so no "
                          "file of an earlier import (its scores, its metrics) is taken for this one's",
                          path=str(out), field="--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        held = names[:3] + (["..."] if len(names) > 3 else [])
        raise ConfigError(f"is not empty (holds {', '.join(held)}): choose a new or empty --out folder, so the "
                          "import is not written among other files" if held else "is a file, not a folder",
                          path=str(out), field="--out")


@contextmanager
def _write_whole(out: Path) -> Iterator[Path]:
    """A new folder beside ``out`` to write the import in, renamed to ``out`` (new, or empty)
    when the block ends, or removed with all it holds when the block raises: an import that
    fails while writing leaves nothing behind (no dataset.jsonl without its run, no empty run/
    that would refuse a retry as an earlier import)."""
    import secrets
    import shutil

    real = out.resolve() if out.is_symlink() else out  # (a link to an empty folder: the folder is filled)
    real.parent.mkdir(parents=True, exist_ok=True)
    tmp = real.parent / f".{real.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, real)  # (rename(2) replaces an empty folder whole)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and isinstance(e.filename, str) and e.filename.startswith(str(tmp)):
            # the error names the file the user asked for, not the folder that is gone
            raise OSError(e.errno, e.strerror or str(e), str(out) + e.filename[len(str(tmp)):]) from None
        raise


def _write_dataset(cases: Sequence[EvalCase], path: Path) -> None:
    """dataset.jsonl, redacted as a run's snapshot is (ids kept, so the run scores against it)."""
    from labkit.trace.redact import Redactor

    red = Redactor()
    lines = []
    for c in cases:
        d = dict(red.redact(c.to_dict()))
        d["id"] = c.id
        lines.append(json.dumps(d, ensure_ascii=False) + "\n")
    atomic_write_text(path, "".join(lines))


def _write_run(run_dir: Path, rows: list[tuple[EvalCase, Record, dict[str, Any]]], *, fmt: str,
               source: str | os.PathLike[str], cases: Sequence[EvalCase], ds_path: Path, corpus: Any,
               log: FieldLog) -> None:
    from labkit import __version__
    from labkit.trace.redact import Redactor

    red = Redactor()
    sha = file_hash(source)
    run_id = f"imported-{fmt}-{sha[:12]}"
    traces = [_trace(run_id, c, rec, res, fmt) for c, rec, res in rows if rec.trace is not None]
    atomic_write_text(run_dir / RESULTS, "".join(json.dumps(red.redact(r), ensure_ascii=False) + "\n"
                                                 for _, _, r in rows))
    if traces:
        atomic_write_text(run_dir / TRACES, "".join(json.dumps(red.redact(t), ensure_ascii=False) + "\n"
                                                    for t in traces))
    statuses = Counter(r["status"] for _, _, r in rows)
    measured = {"latency_ms": sum(1 for *_, r in rows if r.get("latency_ms") is not None),
                "cost_usd": sum(1 for *_, r in rows if r.get("cost_usd") is not None),
                "usage": sum(1 for *_, r in rows if r.get("usage")),
                "retrieved": sum(1 for *_, r in rows if r.get("retrieval_logged") is not False)}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        # no created_at: when the answers were produced is not known, so no gate lock can be shown to
        # precede them (the gate reports pre-registration as unverifiable); the import time is imported.at
        "status": "complete",
        "labkit_version": __version__,
        "git_sha": None,
        "imported": {"format": fmt, "file": str(Path(source).resolve()), "sha256": sha, "n_records": len(rows),
                     "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                     "recorded": measured, "mapping": log.to_dict()},
        "dataset": {"path": str(ds_path.resolve()), "fingerprint": fingerprint(cases), "n_cases": len(cases)},
        "pipeline": {"name": f"imported:{fmt}", "config": {}, "config_hash": None, "path": None, "spec": None,
                     "corpus_dir": str(Path(corpus.root).resolve()) if corpus is not None else None,
                     "fallback": None},
        "runner": None,
        "counts": {**{s: statuses.get(s, 0) for s in ("ok", "error", "timeout", "blocked")}, "from_cache": 0},
        # the lines as the importer wrote them: one edited after the import is refused, as a run's
        "results_sha256": file_hash(run_dir / RESULTS),
    }
    from labkit.trace.redact import DEFAULT_SKIP_KEYS

    mred = Redactor(skip_keys=DEFAULT_SKIP_KEYS | {"sha256", "fingerprint"})
    atomic_write_text(run_dir / "manifest.json", json.dumps(mred.redact(manifest), indent=2, ensure_ascii=False) + "\n")


def _trace(run_id: str, case: EvalCase, rec: Record, res: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The trace record of an imported span tree or trace (its own start and end times)."""
    from types import SimpleNamespace

    from labkit.trace.record import make_trace

    assert rec.trace is not None
    model = res.get("model")
    pipe = SimpleNamespace(name=f"imported:{fmt}",
                           config={"model": {"name": model}} if model else {}, config_hash=None)
    t = make_trace(run_id=run_id, case=case, result=res, pipeline=pipe, attempt=1,
                   ts_start=float(rec.trace["ts_start"]),
                   ts_end=float(rec.trace["ts_end"]) if rec.trace.get("ts_end") is not None else None)
    return t


def array_objects(items: list[Any], path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSON array of a document (:func:`labkit.io.loads_document`), each with its
    line; one DatasetError naming the line of every item that is no object."""
    lines = getattr(items, "lines", None) or [None] * len(items)
    bad = [Problem(n, None, f"must be a JSON object, got {type(o).__name__}")
           for o, n in zip(items, lines, strict=True) if not isinstance(o, dict)]
    if bad:
        raise DatasetError(str(path), bad)
    return [(o.line, dict(o)) for o in items]


def read_rows(path: str | os.PathLike[str], problems: list[Problem] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The records of a JSONL, JSON (an array of objects) or CSV file, each with its line.

    JSONL lines go through labkit's one strict decoder. A line that is no record is added to
    ``problems`` (so the caller reports it with the problems of the other lines), or raised
    at once in one DatasetError when no list is given."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(p)
    if suffix == ".json":
        doc = read_document(p)
        if not isinstance(doc, list):
            raise DatasetError(str(p), [Problem(getattr(doc, "line", 1), None, "must be a JSON array of objects")])
        return array_objects(doc, p)
    from labkit.io import jsonl_objects

    found: list[Problem] = []
    rows = jsonl_objects(p, found)
    if found and problems is None:
        raise DatasetError(str(p), found)
    if problems is not None:
        problems.extend(found)
    return rows


def _csv_rows(p: Path) -> list[tuple[int, dict[str, Any]]]:
    import csv
    import io

    text = read_text(p)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows, problems = [], []
    start = 1
    try:
        names = reader.fieldnames or []
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:  # a DictReader keeps the last cell of a repeated name: refuse, never pick one
            raise DatasetError(str(p), [Problem(1, n, "duplicate column name in the header") for n in dups])
        start = 2
        for row in reader:
            if None in row:
                problems.append(Problem(start, None, f"{len(row[None])} cell(s) more than the header's columns"))
            elif any(v is None for v in row.values()):
                problems.append(Problem(start, None, "fewer cells than the header's columns"))
            else:
                rows.append((start, {k: v for k, v in row.items()}))
            start = reader.line_num + 1
    except csv.Error as e:
        if "unexpected end of data" in str(e):  # a quoted cell still open at the end of the file
            line, cell = _open_quote(text, start)
            name = names[cell] if start > 1 and cell < len(names) else f"cell {cell + 1}"
            problems.append(Problem(line, name, "a quoted cell opens here and is never closed (every later "
                                                "line would be read into it)"))
        else:
            problems.append(Problem(reader.line_num, None, f"malformed CSV: {e}"))
    if problems:
        raise DatasetError(str(p), problems)
    return rows


def _open_quote(text: str, start: int) -> tuple[int, int]:
    """The line and cell index where the quote left open at the end of ``text`` opens, reading
    from the record that begins on line ``start`` (the csv module's quoting: a quote opens a cell
    only as its first character; inside a quoted cell two quotes are one)."""
    import io
    import itertools

    quoted, cell, opened = False, 0, (start, 0)
    for n, raw in enumerate(itertools.islice(io.StringIO(text, newline=""), start - 1, None), start):
        if not quoted:  # a new record begins on this line
            cell = 0
        t, i, fresh = raw.rstrip("\r\n"), 0, not quoted
        while i < len(t):
            if quoted and t[i] == '"':
                quoted = t[i + 1:i + 2] == '"'  # two quotes: one quote in the cell
                i += quoted
            elif not quoted and t[i] == ",":
                cell, fresh = cell + 1, True
                i += 1
                continue
            elif not quoted and fresh and t[i] == '"':
                quoted, opened = True, (n, cell)
            fresh = False
            i += 1
    return opened
