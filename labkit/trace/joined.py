"""A run's trace records joined with its scores and feedback in plain Python, no DuckDB: what
the OpenTelemetry export sends (:mod:`labkit.trace.otel`). A line that is no valid trace is never
left out without a word: :func:`records_with_scores` refuses it, :func:`scored_records` returns
it beside the records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.errors import DatasetError, Problem
from labkit.trace.sql import SCORES_FILE, TRACES_FILE


def records_with_scores(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A run's trace records (normalized) with ``scores``/``score_reasons`` from ``scores.csv`` and
    the latest ``feedback_rating`` joined; a :class:`DatasetError` naming the file, line and field
    of each line that is no valid trace (:func:`scored_records` goes on without them)."""
    recs, problems = scored_records(run_dir)
    if problems:
        raise DatasetError(str(Path(run_dir) / TRACES_FILE), problems)
    return recs


def scored_records(run_dir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """A run's valid trace records, joined as :func:`records_with_scores` joins them, and a
    :class:`Problem` (line, field, reason) for each line of its traces.jsonl that is no valid
    trace (by the trace schema: :func:`labkit.trace.record.read_traces`), left out."""
    from labkit.runs import read_scores_rows
    from labkit.trace.feedback import load_feedback
    from labkit.trace.record import read_traces

    run = Path(run_dir)
    recs, problems = read_traces(run / TRACES_FILE)
    by_case: dict[str, dict[str, float]] = {}
    reasons: dict[str, dict[str, str]] = {}
    sp = run / SCORES_FILE
    if sp.exists():
        for row in read_scores_rows(sp):
            cid = row.get("case_id") or ""
            vals: dict[str, float] = {}
            why: dict[str, str] = {}
            for k, v in row.items():
                if k in (None, "case_id") or v is None:
                    continue
                if k.endswith("_reason"):
                    if v:
                        why[k[: -len("_reason")]] = v
                    continue
                try:
                    vals[k] = float(v)
                except ValueError:
                    continue
            by_case[cid] = vals
            reasons[cid] = why
    ratings: dict[str, float] = {}
    for fb in sorted(load_feedback(run), key=lambda x: float(x.get("ts") or 0)):
        if fb.get("trace_id") and isinstance(fb.get("rating"), int | float):
            ratings[str(fb["trace_id"])] = float(fb["rating"])
    for rec in recs:
        cid = str(rec.get("case_id") or "")
        if cid in by_case:
            rec["scores"] = {**(rec.get("scores") or {}), **by_case[cid]}
            rec["score_reasons"] = reasons.get(cid, {})
            if "faithfulness" in by_case[cid]:
                rec["faithfulness"] = by_case[cid]["faithfulness"]
        if rec["trace_id"] in ratings:
            rec["feedback_rating"] = ratings[rec["trace_id"]]
    return recs, problems
