"""OpenInference spans: OTLP JSON (``resourceSpans`` -> ``scopeSpans`` -> ``spans``, one
document or one payload per line) and Phoenix's span export (JSONL rows, columns such as
``context.trace_id``, ``parent_id``, ``span_kind``, ``attributes.input.value``). One trace
is one case: its root span's input is the question, its output the answer; RETRIEVER spans
give the retrieved documents, LLM spans the tokens and model, TOOL spans the tool calls.
Field by field: docs/interop.md.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from typing import Any

from labkit.errors import DatasetError, Problem
from labkit.interop.core import FieldLog, Record, read_document, read_rows
from labkit.interop.values import (
    epoch_seconds,
    iso_seconds,
    number,
    token_count,
    token_total,
    usage,
)
from labkit.io import StrictJSONError, loads_line, surrogate_problem

__all__ = ["read", "spans_to_records"]


def _value(v: Any) -> Any:
    """An OTLP AnyValue ({stringValue}, {intValue}, {arrayValue: {values}}, ...) as Python;
    ValueError (saying why) when a value is not what OTLP JSON writes there."""
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        x = v["intValue"]
        if isinstance(x, str) and re.fullmatch(r"[+-]?\d+", x.strip(), re.ASCII):
            return int(x)
        if isinstance(x, int) and not isinstance(x, bool):
            return x
        raise ValueError(f"intValue must be an integer (or its decimal text), got {x!r}")
    for key in ("arrayValue", "kvlistValue"):
        if key in v:
            inner = v[key] or {}
            values = inner.get("values", []) if isinstance(inner, dict) else None
            if not isinstance(values, list):
                raise ValueError(f"{key} must be an object holding a values list")
            if key == "arrayValue":
                return [_value(x) for x in values]
            if not all(isinstance(kv, dict) and isinstance(kv.get("key"), str) for kv in values):
                raise ValueError("kvlistValue values must be {key, value} objects with a string key")
            return {kv["key"]: _value(kv.get("value")) for kv in values}
    return None


def _attributes(sp: dict[str, Any], ln: int | None, problems: list[Problem]) -> dict[str, Any]:
    """A span's OTLP attributes list ({key, value: AnyValue}) as {key: value}; a malformed one is
    a problem naming it (its key when it has one)."""
    raw = sp.get("attributes") or []
    if not isinstance(raw, list):
        problems.append(Problem(ln, "attributes", "must be a list of {key, value} objects"))
        return {}
    attrs: dict[str, Any] = {}
    for a in raw:
        if not isinstance(a, dict) or not isinstance(a.get("key"), str):
            problems.append(Problem(ln, "attributes", f"must be {{key, value}} objects with a string key, got {a!r}"))
            continue
        try:
            attrs[a["key"]] = _value(a.get("value"))
        except ValueError as e:
            problems.append(Problem(ln, a["key"], str(e)))
    return attrs


def _ids(span: dict[str, Any], keys: tuple[str, str, str], ln: int | None, problems: list[Problem]) -> bool:
    """A span's trace, span and parent ids are strings (the parent may be absent)."""
    bad = [k for k in keys if span.get(k) not in (None, "") and not isinstance(span.get(k), str)]
    for k in bad:
        problems.append(Problem(ln, k, f"an id must be a string, got {type(span[k]).__name__}"))
    return not bad


def _nano(x: Any) -> float | None:
    """Unix nanoseconds (an int or its decimal text) as seconds; None when absent; ValueError when unreadable."""
    if x is None or x == "":
        return None
    if isinstance(x, bool) or not isinstance(x, (int, str)):
        raise ValueError(x)
    return int(x) / 1e9


def _times(sp: dict[str, Any], keys: tuple[str, str], parse: Any, ln: int | None,
           problems: list[Problem]) -> tuple[float | None, float | None]:
    """A span's start and end in seconds: an unreadable time, or an end before the start, is a
    problem naming the field (never an invented time)."""
    got: list[float | None] = []
    for key in keys:
        try:
            got.append(parse(sp.get(key)))
        except (TypeError, ValueError, OverflowError):
            problems.append(Problem(ln, key, f"not a readable time: {sp.get(key)!r}"))
            got.append(None)
    start, end = got
    if start is not None and end is not None and end < start:
        problems.append(Problem(ln, keys[1], "the span ends before it starts"))
    return start, end


def _otlp_spans(doc: Any, line: int | None, problems: list[Problem]) -> list[dict[str, Any]]:
    """Flat spans {trace_id, span_id, parent_id, name, start, end, status, error, attrs, line}."""
    out: list[dict[str, Any]] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        problems.append(Problem(getattr(doc, "line", line), "resourceSpans", "not an OTLP JSON trace export "
                                                                             "(no resourceSpans list)"))
        return out
    for rs in doc["resourceSpans"]:
        for ss in _items(rs, ("scopeSpans", "instrumentationLibrarySpans"), "resourceSpans", line, problems):
            for sp in _items(ss, ("spans",), "scopeSpans", line, problems):
                ln = getattr(sp, "line", line)
                if not isinstance(sp, dict) or not sp.get("traceId") or not sp.get("spanId"):
                    problems.append(Problem(ln, "traceId", "a span needs traceId and spanId"))
                    continue
                if not _ids(sp, ("traceId", "spanId", "parentSpanId"), ln, problems):
                    continue
                attrs = _attributes(sp, ln, problems)
                status = sp.get("status") or {}
                code = status.get("code") if isinstance(status, dict) else None
                start, end = _times(sp, ("startTimeUnixNano", "endTimeUnixNano"), _nano, ln, problems)
                out.append({"trace_id": sp["traceId"], "span_id": sp["spanId"],
                            "parent_id": sp.get("parentSpanId") or None, "name": sp.get("name"),
                            "start": start, "end": end,
                            "error": code in (2, "STATUS_CODE_ERROR", "ERROR"),
                            "message": status.get("message") if isinstance(status, dict) else None,
                            "attrs": attrs, "line": ln})
    return out


def _items(obj: Any, keys: tuple[str, ...], where: str, line: int | None, problems: list[Problem]) -> list[Any]:
    """The list under the first of ``keys`` an OTLP level holds; a level that is no object, or a
    value that is no list, is a problem naming the field (never a level skipped unsaid)."""
    ln = getattr(obj, "line", line)
    if not isinstance(obj, dict):
        problems.append(Problem(ln, where, f"must hold objects, got {type(obj).__name__}"))
        return []
    key = next((k for k in keys if obj.get(k) is not None), keys[0])
    found = obj.get(key) or []
    if not isinstance(found, list):
        problems.append(Problem(ln, key, f"must be a list, got {type(found).__name__}"))
        return []
    return found


def _iso(x: Any) -> float | None:
    """A Phoenix time: ISO 8601 (no offset: UTC) or a numeric epoch, its unit read by its magnitude
    (:func:`labkit.interop.values.epoch_seconds`), as seconds; None when absent; ValueError when unreadable."""
    if x is None or x == "":
        return None
    if isinstance(x, str):
        return iso_seconds(x)
    return epoch_seconds(x)


def _phoenix_span(n: int, row: dict[str, Any], problems: list[Problem]) -> dict[str, Any] | None:
    ctx = row.get("context") or {}
    if not isinstance(ctx, dict):
        problems.append(Problem(n, "context", f"must be an object {{trace_id, span_id}}, got {type(ctx).__name__}"))
        return None
    flat = {"context.trace_id": row.get("context.trace_id") or ctx.get("trace_id"),
            "context.span_id": row.get("context.span_id") or ctx.get("span_id"), "parent_id": row.get("parent_id")}
    if not _ids(flat, ("context.trace_id", "context.span_id", "parent_id"), n, problems):
        return None
    tid, sid = flat["context.trace_id"], flat["context.span_id"]
    if not tid or not sid:
        problems.append(Problem(n, "context.trace_id", "a span row needs context.trace_id and context.span_id"))
        return None
    attrs: dict[str, Any] = {}
    nested = row.get("attributes")
    if isinstance(nested, dict):
        attrs.update(_flatten(nested))
    for k, v in row.items():
        if k.startswith("attributes.") and v is not None:
            attrs[k[len("attributes."):]] = v
    if "span_kind" in row:
        attrs.setdefault("openinference.span.kind", row["span_kind"])
    docs = attrs.pop("retrieval.documents", None)
    if isinstance(docs, list):
        for i, d in enumerate(docs):
            for dk, dv in (_flatten(d) if isinstance(d, dict) else {}).items():
                attrs[f"retrieval.documents.{i}.{dk}"] = dv
    start, end = _times(row, ("start_time", "end_time"), _iso, n, problems)
    return {"trace_id": tid, "span_id": sid, "parent_id": row.get("parent_id") or None, "name": row.get("name"),
            "start": start, "end": end,
            "error": str(row.get("status_code", "")).upper() == "ERROR", "message": row.get("status_message"),
            "attrs": attrs, "line": n}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _documents(sp: dict[str, Any], problems: list[Problem]) -> list[dict[str, Any]]:
    """A RETRIEVER span's documents (``retrieval.documents.N.document.{id, content, score}``) in N order."""
    docs: dict[int, dict[str, Any]] = defaultdict(dict)
    for k, v in sp["attrs"].items():
        m = _DOCUMENT.fullmatch(k)
        if m is not None:
            docs[int(m[1])][m[2]] = v
    out = []
    for i in sorted(docs):
        d = docs[i]
        score = number(d.get("score"), sp["line"], f"retrieval.documents.{i}.document.score", problems, signed=True)
        out.append({"id": str(d["id"]) if d.get("id") is not None else None,
                    "text": d.get("content") if isinstance(d.get("content"), str) else None, "score": score})
    return out


def _kind(sp: dict[str, Any]) -> str:
    return str(sp["attrs"].get("openinference.span.kind") or "").upper()


def _tool(sp: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    a = sp["attrs"]
    key = "tool.parameters" if "tool.parameters" in a else "input.value"
    args = _arguments(a.get(key), sp["line"], key, problems)
    call = {"name": str(a.get("tool.name") or sp.get("name") or "tool"),
            "args": args if isinstance(args, dict) else {"input": args},
            "status": "error" if sp["error"] else "ok"}
    if a.get("output.value") is not None:
        call["output"] = a["output.value"]
    return call


def _arguments(raw: Any, line: int | None, key: str, problems: list[Problem]) -> Any:
    """A tool call's arguments from a TOOL span's attribute: a text that opens as JSON (``{`` or
    ``[``) is decoded by labkit's one strict decoder (a key given twice, NaN, nesting past the
    limit, a lone surrogate or a text that is no JSON after all is a problem naming the
    attribute); any other text is the call's plain input (a query), kept as it is."""
    if not isinstance(raw, str) or not raw.lstrip().startswith(("{", "[")):
        return raw
    try:
        value = loads_line(raw)
    except json.JSONDecodeError as e:
        kind = "" if isinstance(e, StrictJSONError) else "malformed JSON: "
        problems.append(Problem(line, key, f"{kind}{e.msg} at character {e.pos + 1}"))
        return None
    if (bad := surrogate_problem(raw, value, line)) is not None:
        problems.append(Problem(line, key, bad.reason))
        return None
    return value


def _record(trace_id: str, spans: list[dict[str, Any]], log: FieldLog, problems: list[Problem]) -> Record | None:
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if not s["parent_id"] or s["parent_id"] not in ids]
    if len(roots) != 1:
        lines = ", ".join(str(s["line"]) for s in (roots or spans))
        why = (f"{len(roots)} root spans (lines {lines}): one trace is one case, with one root"
               if roots else "no root span (every span has a parent in the trace: a cycle)")
        problems.append(Problem((roots or spans)[0]["line"], "parentSpanId", f"trace {trace_id}: {why}"))
        return None
    spans.sort(key=lambda s: (s["start"] or 0.0))
    root = roots[0]
    q = root["attrs"].get("input.value")
    if not isinstance(q, str) or not q.strip():
        problems.append(Problem(root["line"], "input.value", f"trace {trace_id}: the root span has no input.value "
                                                            "(the question)"))
        return None
    log.map("root span input.value", "question")
    rec = Record(line=root["line"], question=q)
    rec.case = {"metadata": {"source_trace_id": trace_id, "root_span": root.get("name")}}
    own = {k: v for k, v in root["attrs"].items() if k not in _ROOT_MAPPED}
    if own:  # who asked, the session, metadata, tags: the case's own, kept
        rec.case["metadata"]["openinference"] = own
        for k in own:
            log.keep(f"root span {k}")
    answer = root["attrs"].get("output.value")
    if not root["error"] and not isinstance(answer, str):
        log.drop("root span output.value", "no output on the root span: a trace without an answer is no result")
        return rec
    start, end = root["start"], root["end"]
    latency = round((end - start) * 1000.0, 3) if start is not None and end is not None and end >= start else None
    res: dict[str, Any] = {"status": "error" if root["error"] else "ok",
                           "answer": answer if isinstance(answer, str) and not root["error"] else None,
                           "error": (root.get("message") or "error status on the root span") if root["error"] else None,
                           "latency_ms": latency, "latency_source": "measured" if latency is not None else None,
                           "cost_usd": None, "trace_id": trace_id}
    log.map("root span output.value", "results.answer")
    if latency is not None:
        log.map("root span end - start", "results.latency_ms")
    retrievers = [s for s in spans if _kind(s) == "RETRIEVER"]
    if retrievers:
        rec.retrieved_items = [d for s in retrievers for d in _documents(s, problems)]
        log.map("RETRIEVER retrieval.documents.N.document.{id,content,score}", "results.retrieved")
    llms = [s for s in spans if _kind(s) == "LLM"]
    tokens = [token_total(token_count(s["attrs"].get(f"llm.token_count.{k}"), s["line"], f"llm.token_count.{k}",
                                      problems) for s in llms) for k in ("prompt", "completion")]
    if (used := usage(*tokens)) is not None:
        res["usage"] = used
        log.map("LLM llm.token_count.{prompt,completion}", "results.usage")
    costs = [number(s["attrs"].get("llm.cost.total"), s["line"], "llm.cost.total", problems) for s in llms]
    if any(c is not None for c in costs):
        res["cost_usd"] = sum(c for c in costs if c is not None)
        log.map("LLM llm.cost.total", "results.cost_usd")
    model = next((s["attrs"].get("llm.model_name") for s in llms if s["attrs"].get("llm.model_name")), None)
    if model:
        res["model"] = str(model)
        log.map("LLM llm.model_name", "results.model")
    tools = [_tool(s, problems) for s in spans if _kind(s) == "TOOL"]
    if tools:
        res["tool_calls"] = tools
        log.map("TOOL tool.name/tool.parameters", "results.tool_calls")
    rec.result = res
    if start is not None:  # no start time: no trace record (never an invented time)
        rec.trace = {"ts_start": start, "ts_end": end}  # no end: unknown, not the start
    for kind in sorted({_kind(s) for s in spans} - {"RETRIEVER", "LLM", "TOOL", ""} - {_kind(root)}):
        log.drop(f"{kind} spans", "no labkit field (kept only as the trace's timing)")
    for sp in spans:
        mapped = _MAPPED.get(_kind(sp))
        if sp is root or mapped is None:
            continue
        for name in {_INDEX.sub(".N.", key) for key in sp["attrs"]} - mapped:
            log.drop(f"{_kind(sp)} span {name}", "no labkit field")
    return rec


#: The root span's attributes labkit maps (the others are kept in the case's metadata).
_ROOT_MAPPED = frozenset({"openinference.span.kind", "input.value", "output.value"})
#: A child span's attributes labkit maps, by span kind, list indices written ``N``.
_MAPPED = {
    "RETRIEVER": frozenset({"openinference.span.kind", "retrieval.documents.N.document.id",
                            "retrieval.documents.N.document.content", "retrieval.documents.N.document.score"}),
    "LLM": frozenset({"openinference.span.kind", "llm.model_name", "llm.token_count.prompt",
                      "llm.token_count.completion", "llm.cost.total"}),
    "TOOL": frozenset({"openinference.span.kind", "tool.name", "tool.parameters", "input.value", "output.value"}),
}
#: A list index in an attribute's name: ASCII decimal digits ("²" and "٣" are no index).
_INDEX = re.compile(r"\.[0-9]+\.")
#: A retrieved document's attribute: its index and field (a name longer than that: the field's first part).
_DOCUMENT = re.compile(r"retrieval\.documents\.([0-9]+)\.document\.([^.]+)(?:\..*)?", re.DOTALL)


def spans_to_records(spans: list[dict[str, Any]], log: FieldLog, problems: list[Problem]) -> list[Record]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in spans:
        by_trace[str(s["trace_id"])].append(s)
    recs = [_record(tid, ss, log, problems) for tid, ss in by_trace.items()]
    return [r for r in recs if r is not None]


def read(path: str | os.PathLike[str], **_: Any) -> tuple[list[Record], FieldLog]:
    """Records of an OTLP JSON document (.json), OTLP JSON lines or Phoenix span rows (.jsonl)."""
    problems: list[Problem] = []
    if str(path).lower().endswith(".json"):
        spans = _otlp_spans(read_document(path), 1, problems)
    else:
        spans = []
        for n, row in read_rows(path, problems):
            if "resourceSpans" in row:
                spans.extend(_otlp_spans(row, n, problems))
            else:
                sp = _phoenix_span(n, row, problems)
                if sp is not None:
                    spans.append(sp)
    if problems:
        raise DatasetError(str(path), problems)
    log = FieldLog()
    records = spans_to_records(spans, log, problems)
    if problems:
        raise DatasetError(str(path), problems)
    return records, log
