"""Langfuse trace export: a JSON array of traces (or the API's ``{"data": [...]}``), each
with its ``observations`` (SPAN, GENERATION, EVENT, RETRIEVER, TOOL ...). One trace is one
case: ``input`` the question, ``output`` the answer, ``latency`` (seconds) and
``totalCost`` the ops fields; generations give tokens and model, retriever observations
the retrieved documents. Field by field: docs/interop.md.
"""

from __future__ import annotations

import os
from typing import Any

from labkit.errors import DatasetError, Problem
from labkit.interop.core import FieldLog, Record, read_document
from labkit.interop.values import iso_seconds, number, token_count, token_total, usage

__all__ = ["read"]

_QUESTION_KEYS = ("question", "query", "input", "user_input", "prompt")
_ANSWER_KEYS = ("answer", "output", "response", "content", "text")


def _text(value: Any, keys: tuple[str, ...]) -> str | None:
    """A string, a mapping's first text field, or the last user/assistant message's content."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for k in keys:
            if isinstance(value.get(k), str):
                return str(value[k])
        if isinstance(value.get("messages"), list):
            return _text(value["messages"], keys)
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        want = "user" if "question" in keys else "assistant"
        msgs = [m for m in value if m.get("role") == want and isinstance(m.get("content"), str)]
        return msgs[-1]["content"] if msgs else None
    return None


def _ts(obj: Any, key: str, line: int | None, problems: list[Problem]) -> float | None:
    """``obj[key]`` as an ISO 8601 time in seconds; None when absent; unreadable: a problem (never an invented time)."""
    x = obj.get(key) if isinstance(obj, dict) else None
    if x is None or x == "":
        return None
    try:
        if isinstance(x, str):
            return iso_seconds(x)
    except ValueError:
        pass
    problems.append(Problem(getattr(obj, "line", line), key, f"not a readable ISO 8601 time: {x!r}"))
    return None


def _first(*values: Any) -> Any:
    """The first of ``values`` that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


def _documents(output: Any, line: int | None, problems: list[Problem]) -> list[dict[str, Any]]:
    """A retriever observation's documents (strings, or objects with a text, an id and a score)."""
    held = isinstance(output, dict)
    items = output.get("documents") if held else output
    out: list[dict[str, Any]] = []
    for i, d in enumerate(items if isinstance(items, list) else []):
        if isinstance(d, str):
            out.append({"id": None, "text": d, "score": None})
        elif isinstance(d, dict):
            meta: dict[str, Any] = d["metadata"] if isinstance(d.get("metadata"), dict) else {}
            text: Any = next((d[k] for k in ("page_content", "pageContent", "content", "text") if isinstance(d.get(k), str)),
                        None)
            did = _first(d.get("id"), meta.get("id"), meta.get("chunk_id"))  # (a null id is none: the next one)
            where = f"output{'.documents' if held else ''}[{i}].{'score' if d.get('score') is not None else 'metadata.score'}"
            score = number(_first(d.get("score"), meta.get("score")), line, where, problems, signed=True)
            out.append({"id": str(did) if did is not None else None, "text": text, "score": score})
    return out


def _usage(obs: list[dict[str, Any]], line: int | None, problems: list[Problem]) -> dict[str, int] | None:
    """The generations' token counts, each summed over those that record it (one none records: unknown)."""
    counts: dict[str, list[int | None]] = {"input_tokens": [], "output_tokens": []}
    for o in obs:
        key = "usageDetails" if o.get("usageDetails") else "usage"
        u = o.get(key)
        if not isinstance(u, dict):
            continue
        for src, dst in (("input", "input_tokens"), ("promptTokens", "input_tokens"), ("output", "output_tokens"),
                         ("completionTokens", "output_tokens")):
            counts[dst].append(token_count(u.get(src), getattr(o, "line", line), f"{key}.{src}", problems))
    return usage(token_total(counts["input_tokens"]), token_total(counts["output_tokens"]))


def _is_retrieval(o: dict[str, Any]) -> bool:
    return str(o.get("type", "")).upper() == "RETRIEVER" or "retriev" in str(o.get("name", "")).lower()


def _observations(t: dict[str, Any], log: FieldLog) -> list[dict[str, Any]]:
    obs = t.get("observations") or []
    if not isinstance(obs, list):
        return []
    if any(isinstance(o, str) for o in obs):
        log.drop("observations (ids only)", "the export lists observation ids, not the observations")
    return sorted((o for o in obs if isinstance(o, dict)), key=lambda o: str(o.get("startTime") or ""))


def _ops(t: dict[str, Any], res: dict[str, Any], obs: list[dict[str, Any]], line: int, log: FieldLog,
         problems: list[Problem]) -> None:
    latency = number(t.get("latency"), line, "latency", problems, scale=1000.0)
    if latency is not None:
        res["latency_ms"] = round(latency, 3)
        log.map("latency (s)", "results.latency_ms")
    cost = number(t.get("totalCost", t.get("calculatedTotalCost")), line, "totalCost", problems)
    if cost is not None:
        res["cost_usd"] = cost
        log.map("totalCost", "results.cost_usd")
    gens = [o for o in obs if str(o.get("type", "")).upper() == "GENERATION"]
    usage = _usage(gens, line, problems)
    if usage is not None:
        res["usage"] = usage
        log.map("GENERATION usageDetails/usage", "results.usage")
    model = next((o.get("model") for o in gens if o.get("model")), None)
    if model:
        res["model"] = str(model)
        log.map("GENERATION model", "results.model")
    tools = [o for o in obs if str(o.get("type", "")).upper() == "TOOL"]
    if tools:
        res["tool_calls"] = [{"name": str(o.get("name") or "tool"),
                              "args": o["input"] if isinstance(o.get("input"), dict) else {"input": o.get("input")},
                              "status": "error" if o.get("level") == "ERROR" else "ok", "output": o.get("output")}
                             for o in tools]
        log.map("TOOL observations", "results.tool_calls")


def _record(t: Any, log: FieldLog, problems: list[Problem]) -> Record | None:
    line = getattr(t, "line", None)
    if not isinstance(t, dict):
        problems.append(Problem(line, None, "a trace must be an object"))
        return None
    q = _text(t.get("input"), _QUESTION_KEYS)
    if not q or not q.strip():
        problems.append(Problem(line, "input", f"trace {t.get('id')!r}: no question in input (a string, a "
                                               f"{'/'.join(_QUESTION_KEYS)} field or user messages)"))
        return None
    log.map("input", "question")
    rec = Record(line=line, question=q)
    meta = {"source_trace_id": t.get("id"), "name": t.get("name")}
    for key in ("metadata", "tags", "sessionId", "userId", "release", "version", "scores"):
        if t.get(key) not in (None, "", [], {}):
            meta[key] = t[key]
            log.keep(key)
    rec.case = {"metadata": {k: v for k, v in meta.items() if v is not None}}
    obs = _observations(t, log)
    errors = [o for o in obs if o.get("level") == "ERROR"]
    answer = _text(t.get("output"), _ANSWER_KEYS)
    if not errors and answer is None:
        log.drop("output", "no answer text in the trace's output and no ERROR observation: a trace without an "
                           "answer is no result")
        return rec
    res: dict[str, Any] = {"status": "error" if errors else "ok", "answer": None if errors else answer,
                           "error": str(errors[0].get("statusMessage") or "ERROR level observation") if errors
                           else None, "latency_ms": None, "cost_usd": None}
    if t.get("id"):
        res["trace_id"] = str(t["id"])
    log.map("output", "results.answer")
    _ops(t, res, obs, line or 0, log, problems)
    retr = [o for o in obs if _is_retrieval(o)]
    if retr:
        rec.retrieved_items = [d for o in retr for d in _documents(o.get("output"), getattr(o, "line", line), problems)]
        log.map("retriever observation output", "results.retrieved")
    rec.result = res
    starts = [x for x in (_ts(o, "startTime", line, problems) for o in obs) if x is not None]
    start = _ts(t, "timestamp", line, problems)
    start = start if start is not None else min(starts, default=None)
    ends = [x for x in (_ts(o, "endTime", line, problems) for o in obs) if x is not None]
    if start is not None:  # no time at all: no trace record; no end known: none (never an invented time)
        end = start + res["latency_ms"] / 1000.0 if res["latency_ms"] is not None else max(ends, default=None)
        rec.trace = {"ts_start": start, "ts_end": max(end, start) if end is not None else None}
    return rec


def read(path: str | os.PathLike[str], **_: Any) -> tuple[list[Record], FieldLog]:
    """Records of a Langfuse trace export (JSON array or ``{"data": [...]}``, or JSONL of traces)."""
    if str(path).lower().endswith(".jsonl"):
        from labkit.interop.core import read_rows

        class _Row(dict[str, Any]):
            line = 0

        traces: list[Any] = []
        for n, row in read_rows(path):
            r = _Row(row)
            r.line = n
            traces.append(r)
    else:
        doc = read_document(path)
        found = doc.get("data") if isinstance(doc, dict) else doc
        if not isinstance(found, list):
            raise DatasetError(str(path), [Problem(getattr(doc, "line", 1), None,
                                                   "must be a JSON array of traces (or {\"data\": [...]})")])
        traces = found
    log = FieldLog()
    problems: list[Problem] = []
    records = [_record(t, log, problems) for t in traces]
    if problems:
        raise DatasetError(str(path), problems)
    return [r for r in records if r is not None], log
