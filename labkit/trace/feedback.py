"""User feedback against a trace, stored beside the traces in ``<run>/feedback.jsonl``.

One JSON object per line, appended whole and fsynced a line at a time (after a torn last
line of a killed writer is cut: labkit.paths.append_line)::

    {"feedback_id": "fb-…", "trace_id": "…", "run_id": "…", "case_id": "…",
     "rating": 4, "comment": "cited the wrong runbook", "user": "alice", "ts": 1731000000.0}

``rating`` is an integer from 1 (bad) to 5 (good); thumbs map to 1 (down)
and 5 (up). The comment is redacted before it is written. The store exposes
the lines as the ``feedback`` table and the latest rating of each trace as
``traces.feedback_rating``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError
from labkit.io import SURROGATE_REASON, surrogate_field
from labkit.paths import append_line
from labkit.runs import FEEDBACK
from labkit.trace.record import iter_trace_lines
from labkit.trace.redact import Redactor

FEEDBACK_FILE = FEEDBACK  # (labkit.runs)
RATING_MIN, RATING_MAX = 1, 5


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
    if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
        raise ConfigError(f"rating must be an integer from {RATING_MIN} to {RATING_MAX}, got {rating!r}", field="rating")
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
    """Every feedback line of a run (a partial last line is ignored)."""
    p = Path(run_dir) / FEEDBACK_FILE
    if not p.exists():
        return []
    out: list[dict[str, Any]] = []
    for _, raw in iter_trace_lines(p):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out
