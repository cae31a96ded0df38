"""DeepEval datasets: goldens and test cases (``EvaluationDataset.save_as("json")``, a JSON
array; or the same fields in CSV or JSONL). Field by field: docs/interop.md.
"""

from __future__ import annotations

import os
from typing import Any

from labkit.errors import DatasetError, Problem
from labkit.interop.core import FieldLog, Record, array_objects, read_document, read_rows
from labkit.interop.values import json_cell, number, opt_text, text_list

__all__ = ["FIELDS", "read"]

FIELDS = ("input", "actual_output", "expected_output", "context", "retrieval_context", "tools_called",
          "expected_tools", "additional_metadata", "comments", "name", "source_file", "token_cost",
          "completion_time", "custom_column_key_values")


def _tools(value: Any, line: int, fld: str, problems: list[Problem], *, outputs: bool) -> list[dict[str, Any]]:
    """DeepEval ``ToolCall`` objects {name, input_parameters, output, ...} as labkit tool calls."""
    if value in (None, ""):
        return []
    if isinstance(value, str):  # a CSV cell: a JSON list (docs/interop.md)
        value = json_cell(value, line, fld, problems)
        if value is None:
            return []
    if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in value):
        problems.append(Problem(line, fld, "must be a list of ToolCall objects ({name, input_parameters, ...})"))
        return []
    out = []
    for t in value:
        args = t.get("input_parameters", t.get("inputParameters")) or {}
        item: dict[str, Any] = {"name": t["name"], "args": dict(args) if isinstance(args, dict) else {"input": args}}
        if outputs:
            item["status"] = "ok"
            if t.get("output") is not None:
                item["output"] = t["output"]
        out.append(item)
    return out


def _record(line: int, row: dict[str, Any], log: FieldLog, problems: list[Problem]) -> Record:
    q = row.get("input")
    if not isinstance(q, str) or not q.strip():
        problems.append(Problem(line, "input", "missing or not a non-empty string"))
    log.map("input", "question")
    rec = Record(line=line, question=q)
    name = opt_text(row.get("name"), line, "name", problems)
    if name is not None:
        rec.case["id"] = name
        log.map("name", "id")
    ref = opt_text(row.get("expected_output"), line, "expected_output", problems)
    if ref is not None:
        rec.case["reference_answer"] = ref
        log.map("expected_output", "reference_answer")
    tools = _tools(row.get("expected_tools"), line, "expected_tools", problems, outputs=False)
    if tools:
        rec.case["expected_tools"] = tools
        log.map("expected_tools", "expected_tools")
    rec.reference_contexts = text_list(row.get("context"), line, "context", problems)
    if rec.reference_contexts is not None:
        log.map("context", "expected_chunks (gold from text)")
    meta: dict[str, Any] = {}
    extra = row.get("additional_metadata")
    if isinstance(extra, dict):
        meta.update(extra)
        log.keep("additional_metadata")
    elif extra not in (None, ""):  # not an object: kept whole under its own name, never lost
        meta["additional_metadata"] = extra
        log.keep("additional_metadata")
    for key in ("comments", "source_file", "custom_column_key_values"):
        if row.get(key) not in (None, "", {}):
            meta[key] = row[key]
            log.keep(key)
    for key in sorted(set(row) - set(FIELDS)):
        if row[key] not in (None, "", [], {}):
            meta.setdefault("deepeval", {})[key] = row[key]
            log.keep(f"deepeval.{key}")
    rec.case["metadata"] = meta
    answer = opt_text(row.get("actual_output"), line, "actual_output", problems)
    if answer is None:
        for key in ("retrieval_context", "tools_called", "token_cost", "completion_time"):
            if row.get(key) not in (None, "", []):
                log.drop(key, "no actual_output in the record: an output field without an answer is no result")
        return rec
    log.map("actual_output", "results.answer")
    rec.result = {"status": "ok", "answer": answer,
                  "cost_usd": number(row.get("token_cost"), line, "token_cost", problems),
                  "latency_ms": number(row.get("completion_time"), line, "completion_time", problems, scale=1000.0)}
    for key, dst in (("token_cost", "results.cost_usd"), ("completion_time", "results.latency_ms (s -> ms)")):
        if row.get(key) not in (None, ""):
            log.map(key, dst)
    called = _tools(row.get("tools_called"), line, "tools_called", problems, outputs=True)
    if called:
        rec.result["tool_calls"] = called
        log.map("tools_called", "results.tool_calls")
    retrieved = text_list(row.get("retrieval_context"), line, "retrieval_context", problems)
    if retrieved is not None:
        rec.retrieved_texts = retrieved
        log.map("retrieval_context", "results.retrieved (text, matched to chunk ids)")
    return rec


#: the lists an EvaluationDataset object holds, read in this order (goldens, then test cases)
LIST_KEYS = ("goldens", "test_cases", "testCases")


def _rows(path: str | os.PathLike[str], problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    """A JSON array, or an object holding lists under ``goldens`` / ``test_cases`` / ``testCases``:
    every one of them, in that order (an object with goldens and test cases gives both)."""
    if not str(path).lower().endswith(".json"):
        return read_rows(path, problems)
    doc = read_document(path)
    if isinstance(doc, list):
        return array_objects(doc, path)
    line = getattr(doc, "line", 1)
    keys = [k for k in LIST_KEYS if isinstance(doc, dict) and doc.get(k) is not None]
    if not keys:
        raise DatasetError(str(path), [Problem(line, None, "must be a JSON array of goldens (or an object with a "
                                                           "goldens or test_cases list)")])
    bad = [Problem(line, k, f"must be a list, got {type(doc[k]).__name__}") for k in keys if not isinstance(doc[k], list)]
    if bad:
        raise DatasetError(str(path), bad)
    return [row for k in keys for row in array_objects(doc[k], path)]


def read(path: str | os.PathLike[str], **_: Any) -> tuple[list[Record], FieldLog]:
    """The records of a DeepEval dataset file (all-or-nothing)."""
    log = FieldLog()
    problems: list[Problem] = []
    records = [_record(n, row, log, problems) for n, row in _rows(path, problems)]
    if problems:
        raise DatasetError(str(path), problems)
    return records, log
