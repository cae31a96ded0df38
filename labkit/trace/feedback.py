"""User feedback against a trace, stored beside the traces in ``<run>/feedback.jsonl``.

One JSON object per line, appended whole and fsynced a line at a time (after a torn last
line of a killed writer is cut: labkit.paths.append_line)::

    {"feedback_id": "fb-…", "trace_id": "…", "run_id": "…", "case_id": "…",
     "rating": 4, "comment": "cited the wrong runbook", "user": "alice", "ts": 1731000000.0}

``rating`` is an integer from 1 (bad) to 5 (good); thumbs map to 1 (down)
and 5 (up). The comment is redacted before it is written. The store exposes
the lines as the ``feedback`` table and the latest rating of each trace as
``traces.feedback_rating``. One validator, :func:`feedback_problems`, judges a line as
:func:`record_feedback` judges what it writes; every reader reads through :func:`feedback_rows`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.io import SURROGATE_REASON, jsonl_objects, surrogate_field
from labkit.paths import append_line
from labkit.runs import FEEDBACK
from labkit.trace.record import iter_trace_lines
from labkit.trace.redact import Redactor

FEEDBACK_FILE = FEEDBACK  # (labkit.runs)
RATING_MIN, RATING_MAX = 1, 5
#: The text fields of a feedback line (each a string or null; trace_id a non-empty string).
TEXT_FIELDS = ("feedback_id", "run_id", "case_id", "comment", "user")


def rating_problem(rating: Any) -> str | None:
    """Why ``rating`` is no rating (None when it is one): an integer from 1 to 5, not a boolean."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
        return f"must be an integer from {RATING_MIN} to {RATING_MAX}, got {rating!r}"
    return None


def feedback_problems(obj: Mapping[str, Any], line: int | None) -> list[Problem]:
    """The problems of one feedback line, each naming its field (empty: valid): the trace_id a
    non-empty string, the rating as :func:`record_feedback` takes it (or null: a comment alone), the
    ts a finite number of epoch seconds or null, the other text fields strings or null."""
    out: list[Problem] = []
    tid = obj.get("trace_id")
    if not isinstance(tid, str) or not tid.strip():
        out.append(Problem(line, "trace_id", "missing: feedback rates a trace" if tid is None
                           else f"must be a non-empty string, got {tid!r}"))
    r = obj.get("rating")
    if r is not None and (why := rating_problem(r)) is not None:
        out.append(Problem(line, "rating", why))
    ts = obj.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts)):
        out.append(Problem(line, "ts", f"must be a finite number (epoch seconds) or null, got {ts!r}: "
                                       "a rating counts from the time it was given"))
    out += [Problem(line, k, f"must be a string or null, got {type(obj[k]).__name__}")
            for k in TEXT_FIELDS if obj.get(k) is not None and not isinstance(obj[k], str)]
    return out


def feedback_rows(path: str | os.PathLike[str], problems: list[Problem], *,
                  torn_tail_ok: bool = True) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) of each valid line of a feedback.jsonl, by the strict JSONL reader
    (labkit.io.jsonl_objects) and :func:`feedback_problems`; each other line adds its problems to
    ``problems``. ``torn_tail_ok``: a last line a killed writer left unfinished is left out, no problem."""
    rows: list[tuple[int, dict[str, Any]]] = []
    found: list[Problem] = []
    for n, obj in jsonl_objects(path, found, torn_tail_ok=torn_tail_ok):
        if bad := feedback_problems(obj, n):
            found += bad
        else:
            rows.append((n, obj))
    problems += sorted(found, key=lambda p: p.line or 0)  # (in line order: a stable sort keeps each line's fields)
    return rows


def _find_trace(run: Path, trace_id: str) -> dict[str, Any] | None:
    p = run / "traces.jsonl"
    if not p.exists():
        return None
    needle = trace_id
    for _, raw in iter_trace_lines(p):
        if needle not in raw:
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("trace_id") == trace_id:
            return obj
    return None


def _refuse_surrogates(**texts: str | None) -> None:
    """A text holding a lone surrogate (a byte that is not UTF-8 in a command-line argument) is
    refused naming its option: no UTF-8 file can hold it."""
    bad = surrogate_field(texts)
    if bad is not None:
        raise ConfigError(f"--{bad.replace('_', '-')} {SURROGATE_REASON} (a byte that is not UTF-8?)",
                          field=bad)


def record_feedback(
    run_dir: str | os.PathLike[str],
    trace_id: str,
    rating: int,
    comment: str | None = None,
    *,
    user: str | None = None,
    redactor: Redactor | Mapping[str, Any] | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """Append one feedback line for ``trace_id`` (which must be a trace of the run)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run directory", field="run")
    if (why := rating_problem(rating)) is not None:
        raise ConfigError(f"rating {why}", field="rating")
    _refuse_surrogates(trace_id=trace_id, comment=comment, user=user)
    trace = _find_trace(run, trace_id)
    if trace is None:
        raise ConfigError(f"{run}: no trace with id {trace_id!r} in traces.jsonl", field="trace_id")
    red = Redactor.from_config(redactor)
    when = time.time() if ts is None else float(ts)
    fid = "fb-" + hashlib.sha256(f"{trace_id}:{when}:{rating}:{comment}".encode()).hexdigest()[:16]
    line: dict[str, Any] = {
        "feedback_id": fid,
        "trace_id": trace_id,
        "run_id": trace.get("run_id") or run.name,
        "case_id": trace.get("case_id"),
        "rating": rating,
        "comment": comment,
        "user": user,
        "ts": when,
    }
    line = red.redact(line)
    append_line(run / FEEDBACK_FILE, line)
    return line


def load_feedback(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every feedback line of a run (a last line a killed writer left unfinished is ignored); a
    DatasetError naming the file, line and field of each line that is no valid feedback."""
    p = Path(run_dir) / FEEDBACK_FILE
    if not p.exists():
        return []
    problems: list[Problem] = []
    rows = feedback_rows(p, problems)
    if problems:
        raise DatasetError(str(p), problems)
    return [obj for _, obj in rows]


def read_feedback_files(files: list[Path]) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[Path, list[Problem]]]]:
    """((run folder name, line object) of every valid line, (file, problems) of each file with
    lines that are no valid feedback) of the given feedback.jsonl files: what the trace store serves
    as its ``feedback`` table, and names on stderr."""
    rows: list[tuple[str, dict[str, Any]]] = []
    bad: list[tuple[Path, list[Problem]]] = []
    for f in files:
        problems: list[Problem] = []
        rows += [(f.parent.name, obj) for _, obj in feedback_rows(f, problems)]
        if problems:
            bad.append((f, problems))
    return rows, bad
