"""The trace record: one JSON object per case attempt in ``<run>/traces.jsonl``.

A superset of the course module's flat record (trace_id, prompt_version,
model, retrieved_chunks, tool_calls, faithfulness, latency_ms, status), which
still loads. The full record (``schema_version`` 1) adds::

    schema_version, run_id, case_id, attempt, span_id, session_id,
    ts_start, ts_end (unix seconds), operation, provider, pipeline, config_hash,
    input, output, retrieved [{id, source, score, text?}], usage, cost_usd,
    scores {metric: value}, error, error_type,
    guardrails {pii_redacted, injection_flag, violations}, feedback,
    environment, release, tags, from_cache, answered_by, simulated,
    spans [{span_id, parent_span_id, name, operation, ts_start, ts_end,
            timing, status, attributes}]

``spans`` holds one child span for retrieval, one for generation and one per
tool call, so an OpenTelemetry export can rebuild the tree. When the pipeline
did not report per-stage timings, a child span inherits the case's interval
and says so (``timing: "inherited"``; ``"measured"`` otherwise).

Scores are not known when a trace is written (traces are written during the
run, scoring comes after): ``faithfulness`` and ``scores`` stay empty in the
file and the store joins ``<run>/scores.csv`` on (run_id, case_id).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, TypeGuard

from labkit.cases import EvalCase
from labkit.errors import DatasetError, Problem
from labkit.io import iter_jsonl, loads_line
from labkit.trace.fields import (  # (the trace schema; named here too, where readers have found them)
    FIELD_KINDS,
    LAST_TIME,
    NUMBER_RANGES,
    SCHEMA_VERSION,
    STATUSES,
    record_problems,
)

__all__ = ["FIELDS", "FIELD_KINDS", "LAST_TIME", "NUMBER_RANGES", "SCHEMA_VERSION", "STATUSES", "dumps_trace",
           "iter_trace_lines", "load_traces", "make_trace", "normalize_trace", "read_traces", "span_id_for",
           "trace_environment", "trace_id_for"]

#: Every field of a normalized record, in output order (the trace schema's: labkit.trace.fields).
FIELDS: tuple[str, ...] = tuple(FIELD_KINDS)

ROOT_OPERATION = "invoke_workflow"


_sha256 = hashlib.sha256


def _hex_id(seed: str, n: int) -> str:
    return _sha256(seed.encode()).hexdigest()[:n]


def _mapping(x: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(x, Mapping)``, a dict, None and a string first (the ABC check is the slow one)."""
    t = type(x)
    return t is dict or (x is not None and t is not str and isinstance(x, Mapping))


def _text(x: Any) -> str | None:
    """A field of kind string as the trace schema holds it: a config's ``release: 1.2`` (YAML reads a
    number) is written as its text."""
    return None if x is None else x if isinstance(x, str) else str(x)


def trace_id_for(run_id: str, case_id: str, attempt: int = 1) -> str:
    """A deterministic 32-hex trace id (OpenTelemetry-sized) for a case attempt."""
    return _hex_id(f"trace:{run_id}:{case_id}:{attempt}", 32)


def span_id_for(trace_id: str, name: str) -> str:
    """A deterministic 16-hex span id inside a trace."""
    return _hex_id(f"span:{trace_id}:{name}", 16)


def _model_of(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    model = config.get("model")
    if _mapping(model):
        name = model.get("name") or model.get("model")
        provider = model.get("provider")
        version = model.get("version")
        if name and version and str(version) not in str(name):
            name = f"{name}@{version}"
        return (str(name) if name else None, str(provider) if provider else None)
    if isinstance(model, str):
        return model, (str(config["provider"]) if config.get("provider") else None)
    gen = config.get("generator")
    if _mapping(gen):
        return _model_of({"model": gen.get("model"), "provider": gen.get("provider")})
    return None, None


def _error_type(status: str, error: Any) -> str | None:
    if status == "ok":
        return None
    if _mapping(error):
        t = error.get("type")
        return str(t) if t else status
    if isinstance(error, str) and error:
        head = error.split(":", 1)[0].strip()
        if head and " " not in head and len(head) <= 64:
            return head
    return status


def _num(x: Any) -> float | None:
    t = type(x)
    if t is float:
        return None if x != x else x  # (NaN is the one float not equal to itself)
    if t is int:
        return float(x)
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float):
        f = float(x)
        return None if math.isnan(f) else f
    return None


def _answering_model(pipeline: Any, config: Mapping[str, Any],
                     answered_by: Any) -> tuple[str | None, str | None, Mapping[str, Any]]:
    """(model, provider, the config holding the prompt) of what actually answered the case."""
    model, provider = _model_of(config)
    prompt_cfg: Mapping[str, Any] = config
    if answered_by and isinstance(answered_by, str) and answered_by != getattr(pipeline, "name", None):
        # a fallback answered: its model and prompt are what actually ran
        fb = getattr(pipeline, "fallback", None)
        fb_cfg = getattr(fb, "config", None)
        if _mapping(fb_cfg):
            fm, fp = _model_of(fb_cfg)
            model, provider = fm or model, fp or provider
            if fb_cfg.get("prompt_version") is not None:
                prompt_cfg = fb_cfg
    return model, provider, prompt_cfg


def _prompt_version(prompt_cfg: Mapping[str, Any]) -> str | None:
    pv = prompt_cfg.get("prompt_version")
    if pv is None and _mapping(prompt_cfg.get("prompt")):
        pv = prompt_cfg["prompt"].get("version")
    return str(pv) if pv is not None else None


def _status_of(result: Mapping[str, Any]) -> str:
    status = str(result.get("status") or "ok")
    guard_in = result.get("guardrails")
    if _mapping(guard_in) and guard_in.get("blocked") and status == "ok":
        status = "blocked"  # the guardrails middleware refused the response
    return status


def _retrieved_of(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Retrieved chunks as ``{id, source, score[, text]}`` (a bare string is a chunk id)."""
    retrieved: list[dict[str, Any]] = []
    for r in items:
        if _mapping(r):
            item = {"id": r.get("id"), "source": r.get("source"), "score": _num(r.get("score"))}
            text = r.get("text")
            if text is not None:
                item["text"] = text
            retrieved.append(item)
        elif isinstance(r, str):
            retrieved.append({"id": r, "source": r.split("#", 1)[0], "score": None})
    return retrieved


def _tool_calls_of(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Tool calls as ``{name, args, status[, output][, latency_ms]}``."""
    tool_calls: list[dict[str, Any]] = []
    for t in items:
        if _mapping(t):
            tc: dict[str, Any] = {
                "name": t.get("name"),
                "args": dict(t.get("args") or {}),
                "status": t.get("status", "ok"),
            }
            if "output" in t:
                tc["output"] = t.get("output")
            ms = _num(t.get("latency_ms"))
            if ms is not None:
                tc["latency_ms"] = ms
            tool_calls.append(tc)
    return tool_calls


def _usage_of(usage_in: Any) -> dict[str, int | None] | None:
    """The token counts; None when the result recorded none, and a count it did not record null
    (unknown, never 0 tokens: an imported usage may hold one count only)."""
    if not _mapping(usage_in) or not usage_in:
        return None
    return {k: int(v) if (v := usage_in.get(k)) is not None else None for k in ("input_tokens", "output_tokens")}


def _guardrails_of(guard_in: Any) -> dict[str, Any]:
    """The guardrail verdicts (all False/empty when the middleware did not run)."""
    g = guard_in if _mapping(guard_in) else {}
    guardrails: dict[str, Any] = {
        "pii_redacted": bool(g.get("pii_redacted", False)),
        "injection_flag": bool(g.get("injection_flag", False)),
        "violations": list(g.get("violations") or []),
    }
    if "blocked" in g:
        guardrails["blocked"] = bool(g["blocked"])
    return guardrails


class _Environment(Enum):
    FROM_CONFIG = "the pipeline config's environment, else $LABKIT_ENV"


#: ``make_trace(environment=FROM_CONFIG)``: the record's environment is :func:`trace_environment`.
FROM_CONFIG = _Environment.FROM_CONFIG


def trace_environment(config: Mapping[str, Any]) -> str | None:
    """The environment of a pipeline's traces: its config's ``environment``, else ``$LABKIT_ENV``
    (None without either). A run reads it once, when it starts."""
    return config.get("environment") or os.environ.get("LABKIT_ENV") or None


def make_trace(
    *,
    run_id: str,
    case: EvalCase,
    result: Mapping[str, Any],
    pipeline: Any,
    attempt: int,
    ts_start: float,
    ts_end: float | None,
    environment: str | _Environment | None = FROM_CONFIG,
    session_id: str | None = None,
) -> dict[str, Any]:
    """The trace record of one case attempt (not yet redacted: redact before writing).

    ``result`` is a results line (docs/formats.md); ``pipeline`` a ``LoadedPipeline``
    (``name``, ``config`` dict, ``config_hash``). Optional result fields used
    when present: ``guardrails``, ``timings`` ({retrieval_ms, generation_ms}),
    per-tool-call ``latency_ms``, ``answered_by``, ``simulated``, ``session_id``.
    ``environment``: the record's (None: none); by default read now (:func:`trace_environment`).
    ``ts_end`` None: the end is unknown (an import): the latency is the result's or null, never invented.
    """
    config: Mapping[str, Any] = getattr(pipeline, "config", None) or {}
    pname = getattr(pipeline, "name", None)
    config_hash = getattr(pipeline, "config_hash", None)
    answered_by = result.get("answered_by")
    model, provider, prompt_cfg = _answering_model(pipeline, config, answered_by)
    status = _status_of(result)
    trace_id = str(result.get("trace_id") or trace_id_for(run_id, case.id, attempt))
    root_span = span_id_for(trace_id, "root")
    latency = _num(result.get("latency_ms"))
    latency = round((ts_end - ts_start) * 1000.0, 3) if latency is None and ts_end is not None else latency
    retrieved = _retrieved_of(result.get("retrieved") or [])
    tool_calls = _tool_calls_of(result.get("tool_calls") or [])
    usage = _usage_of(result.get("usage"))
    timings = result.get("timings")
    spans = _child_spans(
        trace_id=trace_id, root_span=root_span, ts_start=ts_start, ts_end=ts_end, status=status,
        retrieved=retrieved, tool_calls=tool_calls, model=model, provider=provider, usage=usage,
        timings=timings if _mapping(timings) else None, question=case.question,
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "trace_id": trace_id,
        "span_id": root_span,
        "run_id": run_id,
        "case_id": case.id,
        "attempt": int(attempt),
        "session_id": _text(session_id or result.get("session_id") or case.metadata.get("session_id")),
        "ts_start": float(ts_start),
        "ts_end": float(ts_end) if ts_end is not None else None,
        "operation": ROOT_OPERATION,
        "provider": provider,
        "model": model,
        "prompt_version": _prompt_version(prompt_cfg),
        "pipeline": pname,
        "config_hash": config_hash,
        "status": status,
        "error": result.get("error"),
        "error_type": _error_type(status, result.get("error")),
        "latency_ms": latency,
        "input": case.question,
        "output": result.get("answer"),
        "retrieved_chunks": [r["id"] for r in retrieved if r.get("id") is not None],
        "retrieved": retrieved,
        "citations": list(result.get("citations") or []),
        "tool_calls": tool_calls,
        "usage": usage,
        "cost_usd": _num(result.get("cost_usd")),
        "faithfulness": None,
        "scores": {},
        "guardrails": _guardrails_of(result.get("guardrails")),
        "feedback": None,
        "environment": _text(trace_environment(config) if environment is FROM_CONFIG else environment or None),
        "release": _text(config.get("release") or (f"{pname}@{str(config_hash)[:12]}" if pname and config_hash else pname)),
        "tags": dict(case.tags),
        "from_cache": bool(result.get("from_cache", False)),
        "answered_by": answered_by,
        "simulated": result.get("simulated"),
        "spans": spans,
    }


class _SpanClock:
    """Lays measured child spans end to end from the trace start; an unmeasured span spans the trace."""

    def __init__(self, ts_start: float, ts_end: float | None) -> None:
        self.ts_start, self.ts_end, self.cursor = ts_start, ts_end, ts_start

    def interval(self, ms: float | None) -> tuple[float, float | None, str]:
        if ms is None:
            return self.ts_start, self.ts_end, "inherited"
        start = self.cursor
        end = start + ms / 1000.0 if self.ts_end is None or self.ts_end < start else min(self.ts_end, start + ms / 1000.0)
        self.cursor = end
        return start, end, "measured"


def _span(*, trace_id: str, root_span: str, key: str, name: str, operation: str,
          when: tuple[float, float | None, str], status: str, attributes: dict[str, Any]) -> dict[str, Any]:
    s, e, how = when
    return {"span_id": span_id_for(trace_id, key), "parent_span_id": root_span, "name": name,
            "operation": operation, "ts_start": s, "ts_end": e, "timing": how, "status": status,
            "attributes": attributes}


def _child_spans(
    *,
    trace_id: str,
    root_span: str,
    ts_start: float,
    ts_end: float | None,
    status: str,
    retrieved: Sequence[Mapping[str, Any]],
    tool_calls: Sequence[Mapping[str, Any]],
    model: str | None,
    provider: str | None,
    usage: Mapping[str, int | None] | None,
    timings: Mapping[str, Any] | None,
    question: str,
) -> list[dict[str, Any]]:
    """retrieval, one execute_tool per tool call, and chat — in the order they ran."""
    clock = _SpanClock(ts_start, ts_end)
    spans: list[dict[str, Any]] = []
    t = timings or {}
    if retrieved or "retrieval_ms" in t:
        spans.append(_span(trace_id=trace_id, root_span=root_span, key="retrieval", name="retrieval", operation="retrieval",
                           when=clock.interval(_num(t.get("retrieval_ms"))), status="ok",
                           attributes={"query": question, "documents": [r.get("id") for r in retrieved],
                                       "scores": [r.get("score") for r in retrieved]}))
    for i, tc in enumerate(tool_calls):
        spans.append(_span(trace_id=trace_id, root_span=root_span, key=f"tool:{i}", name=f"execute_tool {tc.get('name')}", operation="execute_tool",
                           when=clock.interval(_num(tc.get("latency_ms"))), status="ok" if tc.get("status", "ok") == "ok" else "error",
                           attributes={"tool_name": tc.get("name"), "index": i}))
    chat_status = "ok" if status == "ok" else ("blocked" if status == "blocked" else "error")
    spans.append(_span(trace_id=trace_id, root_span=root_span, key="generation", name=f"chat {model}" if model else "chat", operation="chat",
                       when=clock.interval(_num(t.get("generation_ms"))), status=chat_status,
                       attributes={"model": model, "provider": provider,
                                   "input_tokens": usage["input_tokens"] if usage else None,
                                   "output_tokens": usage["output_tokens"] if usage else None}))
    return spans


# ---------------------------------------------------------------------- loading

_DEFAULTS: dict[str, Any] = {
    "schema_version": 0,  # 0 = the flat record of the course module
    **dict.fromkeys(("span_id", "run_id", "case_id", "session_id", "ts_start", "ts_end", "operation", "provider",
                     "model", "prompt_version", "pipeline", "config_hash", "status", "error", "error_type",
                     "latency_ms", "input", "output", "cost_usd", "faithfulness", "feedback", "environment",
                     "release", "answered_by", "simulated")),
    "attempt": 1,
    "retrieved_chunks": [], "retrieved": [], "citations": [], "tool_calls": [], "spans": [],
    "usage": {"input_tokens": 0, "output_tokens": 0},
    "scores": {}, "tags": {},
    "guardrails": {"pii_redacted": False, "injection_flag": False, "violations": []},
    "from_cache": False,
}


def normalize_trace(obj: Mapping[str, Any], *, line: int | None = None, path: str | None = None) -> dict[str, Any]:
    """A validated record with every field of :data:`FIELDS` (flat records get defaults).

    Raises :class:`DatasetError` naming the file, line and field of each problem.
    """
    if not isinstance(obj, Mapping):
        raise DatasetError(path, [Problem(line, None, f"must be a JSON object, got {type(obj).__name__}")])
    problems = record_problems(obj, line)
    if problems:
        raise DatasetError(path, problems)
    rec: dict[str, Any] = {}
    for key in FIELDS:
        if key == "trace_id":
            rec[key] = obj["trace_id"]
        elif key in obj and obj[key] is not None:
            rec[key] = obj[key]
        else:
            d = _DEFAULTS[key]
            rec[key] = json.loads(json.dumps(d)) if isinstance(d, dict | list) else d
    if "schema_version" not in obj:
        rec["schema_version"] = 0
    # flat records: fold faithfulness into scores and vice versa
    if rec["faithfulness"] is not None and "faithfulness" not in rec["scores"]:
        rec["scores"] = {**rec["scores"], "faithfulness": rec["faithfulness"]}
    elif rec["faithfulness"] is None and isinstance(rec["scores"].get("faithfulness"), int | float):
        rec["faithfulness"] = rec["scores"]["faithfulness"]
    if not rec["retrieved_chunks"] and rec["retrieved"]:
        rec["retrieved_chunks"] = [r.get("id") for r in rec["retrieved"] if isinstance(r, Mapping) and r.get("id")]
    # keep unknown extra keys (forward compatibility within a schema version)
    for key, val in obj.items():
        if key not in rec:
            rec[key] = val
    return rec


def iter_trace_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the complete lines of a JSONL file.

    A last line without its newline that is not valid JSON is a record still
    being written by another process and is skipped.
    """
    for n, raw, complete in iter_jsonl(path):
        if not complete:
            try:  # a file written without a final newline still counts its last line
                json.loads(raw)
            except json.JSONDecodeError:
                continue
        yield n, raw.rstrip("\r\n")


def read_traces(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The valid records of a traces JSONL file (normalized) and a :class:`Problem` (line, field,
    reason) for each line that is none; a partial last line is neither."""
    out: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for n, raw in iter_trace_lines(path):
        try:
            obj = loads_line(raw)
        except json.JSONDecodeError as e:
            problems.append(Problem(n, None, f"malformed JSON: {e.msg} at column {e.colno}"))
            continue
        try:
            out.append(normalize_trace(obj, line=n, path=str(path)))
        except DatasetError as e:
            problems.extend(e.problems)
    return out, problems


def load_traces(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Load a traces JSONL file (flat module records or full records), normalized.

    All-or-nothing: every bad line is reported in one :class:`DatasetError` with file, line and
    field (a reader that goes on without them takes them from :func:`read_traces` and names
    them). A partial last line is ignored.
    """
    out, problems = read_traces(path)
    if problems:
        raise DatasetError(str(Path(path)), problems)
    return out


def _fast_encoder() -> Any:
    try:
        import orjson
    except ImportError:  # (a core dependency; the standard library still writes the same JSON)
        return False
    return functools.partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS)


_ENCODE: Any = None  # orjson.dumps, or False without it; looked up on first use (import labkit loads none)


def dumps_trace(rec: Mapping[str, Any]) -> str:
    """One JSONL line (with its newline) for a record: orjson (about 4x the standard library's
    speed: a run writes a trace line per attempt), or the standard library for what orjson does
    not take (a numpy scalar, an integer past 64 bits, any other object: written as str)."""
    global _ENCODE
    if _ENCODE is None:
        _ENCODE = _fast_encoder()
    if _ENCODE:
        try:
            return str(_ENCODE(rec), "utf-8") + "\n"
        except TypeError:
            pass
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
