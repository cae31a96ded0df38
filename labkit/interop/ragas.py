"""Ragas ``EvaluationDataset`` files (``SingleTurnSample`` records) in and out.

Read: JSONL (``EvaluationDataset.to_jsonl``), a JSON array, or CSV (``to_csv``: list cells
written as list literals). Field by field: docs/interop.md.
"""

from __future__ import annotations

import os
from typing import Any

from labkit.errors import DatasetError, Problem
from labkit.interop.core import FieldLog, Record, read_rows
from labkit.interop.values import opt_text, text_list

__all__ = ["FIELDS", "read"]

#: SingleTurnSample's fields: how each maps (docs/interop.md)
FIELDS = ("user_input", "retrieved_contexts", "reference_contexts", "response", "multi_responses",
          "reference", "rubrics", "reference_tool_calls", "retrieved_context_ids", "reference_context_ids")


def _tools(value: Any, line: int, problems: list[Problem]) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                              and isinstance(t.get("args") or {}, dict) for t in value):
        problems.append(Problem(line, "reference_tool_calls", "must be a list of {name, args} objects"))
        return []
    return [{"name": t["name"], "args": dict(t.get("args") or {})} for t in value]


def _record(line: int, row: dict[str, Any], log: FieldLog, problems: list[Problem]) -> Record:
    q = row.get("user_input")
    if isinstance(q, list):
        problems.append(Problem(line, "user_input", "a multi-turn sample (a list of messages): only single-turn "
                                                    "samples can be imported"))
    elif q is None or q == "":
        problems.append(Problem(line, "user_input", "missing"))
    log.map("user_input", "question")
    rec = Record(line=line, question=q)
    ref = opt_text(row.get("reference"), line, "reference", problems)
    if ref is not None:
        rec.case["reference_answer"] = ref
        log.map("reference", "reference_answer")
    tools = _tools(row.get("reference_tool_calls"), line, problems)
    if tools:
        rec.case["expected_tools"] = tools
        log.map("reference_tool_calls", "expected_tools")
    rec.reference_contexts = text_list(row.get("reference_contexts"), line, "reference_contexts", problems)
    if rec.reference_contexts is not None:
        log.map("reference_contexts", "expected_chunks (gold from text)")
    ids = text_list(row.get("reference_context_ids"), line, "reference_context_ids", problems)
    if ids:
        rec.case["expected_chunks"] = ids
        log.map("reference_context_ids", "expected_chunks")
    meta: dict[str, Any] = {}
    for key in ("rubrics", "multi_responses"):
        if row.get(key) not in (None, "", [], {}):
            meta[key] = row[key]
            log.keep(key)
    for key in sorted(set(row) - set(FIELDS)):
        if row[key] not in (None, ""):
            meta.setdefault("ragas", {})[key] = row[key]  # a score column of an evaluation result ...
            log.keep(f"ragas.{key}")
    rec.case["metadata"] = meta
    response = opt_text(row.get("response"), line, "response", problems)
    if response is not None:
        rec.result = {"status": "ok", "answer": response, "latency_ms": None, "cost_usd": None}
        log.map("response", "results.answer")
        retrieved = text_list(row.get("retrieved_contexts"), line, "retrieved_contexts", problems)
        if retrieved is not None:
            rec.retrieved_texts = retrieved
            log.map("retrieved_contexts", "results.retrieved (text, matched to chunk ids)")
    elif row.get("retrieved_contexts") not in (None, ""):
        log.drop("retrieved_contexts", "no response in the record: a retrieval without an answer is no result")
    return rec


def read(path: str | os.PathLike[str], **_: Any) -> tuple[list[Record], FieldLog]:
    """The records of a Ragas dataset file (all-or-nothing: a DatasetError names every bad line)."""
    log = FieldLog()
    problems: list[Problem] = []
    records = [_record(n, row, log, problems) for n, row in read_rows(path, problems)]
    if problems:
        raise DatasetError(str(path), problems)
    return records, log
