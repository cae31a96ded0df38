"""The trace schema: what each field of a trace record may hold, stated once.

:data:`FIELD_KINDS` gives each field its kind; :data:`NUMBER_RANGES`, :data:`INTEGER_RANGES` and
:data:`STATUSES` bound the kinds ``number``, ``integer`` and ``status``. Two readers hold a record
to it: :func:`record_problems`, the validator of :func:`labkit.trace.record.normalize_trace` (a
:class:`~labkit.errors.Problem` naming line, field and reason for each value it refuses), and the
trace store's views (:mod:`labkit.trace.schema`), which read a value the schema refuses as null, so
no query counts it, and name its line (``TraceStore.skipped_warning``).

Kinds (``null`` is accepted by each, and an absent field is null):

``id``          a non-empty string, required (``trace_id``)
``string``      a string
``status``      one of :data:`STATUSES`
``number``      a finite number within its :data:`NUMBER_RANGES` entry
``integer``     a whole number within its :data:`INTEGER_RANGES` entry
``boolean``     true or false
``strings``     a list of strings
``objects``     a list of objects
``tool_calls``  a list of objects, each with a string ``name``
``object``      an object
``scores``      an object of numbers (or nulls)
``usage``       an object whose ``input_tokens`` and ``output_tokens`` are whole numbers >= 0
``guardrails``  an object whose ``pii_redacted``, ``injection_flag`` and ``blocked`` are booleans
                and ``violations`` a list of strings
``any``         any JSON value (an error's text or object, feedback)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from labkit.errors import Problem
from labkit.resultline import MAX_COST_USD, MAX_LATENCY_MS

SCHEMA_VERSION = 1

#: ok | error | timeout from the runner, blocked from the guardrails; pass | fail
#: are the flat record's legacy values and still load.
STATUSES = ("ok", "error", "timeout", "blocked", "pass", "fail")

#: Unix seconds of 9999-12-31T23:59:59Z: a later time is no date (a clock gives none past year 9999).
LAST_TIME = 253402300799.0
_YEAR = " (unix seconds of 9999-12-31T23:59:59Z: a later time is past year 9999)"
#: The range of each number a record holds (ends included), and why its upper end: the one statement of
#: them. latency_ms and cost_usd are bounded as a results line's are (labkit.resultline, docs/formats.md).
#: The validator refuses a number outside its range or not finite (1e999 decodes to inf); the trace
#: store's views read such a number as null (labkit.trace.schema).
NUMBER_RANGES: dict[str, tuple[float, float, str]] = {
    "latency_ms": (0.0, MAX_LATENCY_MS, " (about 115 days, as a results line: beyond it a value is no measurement)"),
    "cost_usd": (0.0, MAX_COST_USD, " (USD per case, as a results line: beyond it a value is no measurement)"),
    "ts_start": (0.0, LAST_TIME, _YEAR), "ts_end": (0.0, LAST_TIME, _YEAR),
    "faithfulness": (0.0, 1.0, ""),
}

#: The range of each whole number a record holds (ends included), and why its upper end.
INTEGER_RANGES: dict[str, tuple[int, int, str]] = {
    "schema_version": (0, SCHEMA_VERSION, f" (this labkit reads up to {SCHEMA_VERSION})"),
    "attempt": (1, 2**31 - 1, " (the store's 32-bit column)"),
}

#: The kind of each field of a record (the module's docstring says what each kind holds).
FIELD_KINDS: dict[str, str] = {
    "schema_version": "integer", "trace_id": "id", "span_id": "string", "run_id": "string",
    "case_id": "string", "attempt": "integer", "session_id": "string", "ts_start": "number",
    "ts_end": "number", "operation": "string", "provider": "string", "model": "string",
    "prompt_version": "string", "pipeline": "string", "config_hash": "string", "status": "status",
    "error": "any", "error_type": "string", "latency_ms": "number", "input": "string", "output": "string",
    "retrieved_chunks": "strings", "retrieved": "objects", "citations": "strings", "tool_calls": "tool_calls",
    "usage": "usage", "cost_usd": "number", "faithfulness": "number", "scores": "scores",
    "guardrails": "guardrails", "feedback": "any", "environment": "string", "release": "string",
    "tags": "object", "from_cache": "boolean", "answered_by": "string", "simulated": "boolean", "spans": "objects",
}

#: The token counts of ``usage`` and the flags of ``guardrails`` (kinds ``usage``, ``guardrails``).
USAGE_KEYS = ("input_tokens", "output_tokens")
GUARDRAIL_FLAGS = ("pii_redacted", "injection_flag", "blocked")

#: A digest of the schema as stated above: a Parquet archive records the one its compaction read its
#: traces through (labkit.trace.compaction), so one made under this schema holds no value it refuses.
SCHEMA_DIGEST = hashlib.sha256(json.dumps([FIELD_KINDS, NUMBER_RANGES, INTEGER_RANGES, STATUSES, USAGE_KEYS,
                                           GUARDRAIL_FLAGS], sort_keys=True).encode()).hexdigest()[:16]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _number_problem(key: str, v: Any) -> str | None:
    lo, hi, why = NUMBER_RANGES[key]
    if not _is_number(v):
        return f"must be a number or null, got {type(v).__name__}"
    if v != v or v in (float("inf"), float("-inf")):
        return f"must be a finite number, got {v!r}"
    if not lo <= v <= hi:
        return f"must be >= {lo:g}" if v < lo else f"must be at most {hi:.15g}{why}"
    return None


def _integer_problem(key: str, v: Any) -> str | None:
    lo, hi, why = INTEGER_RANGES[key]
    if not _is_whole(v):
        return f"must be a whole number or null, got {type(v).__name__}"
    if not lo <= v <= hi:
        return f"must be >= {lo}" if v < lo else f"must be at most {hi}{why}"
    return None


def _nested_problems(key: str, kind: str, v: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) of each value inside an object of kind scores, usage or guardrails."""
    out: list[tuple[str, str]] = []
    if kind == "scores":
        out += [(f"{key}.{k}", "must be a number or null") for k, x in v.items() if x is not None and not _is_number(x)]
    elif kind == "usage":
        out += [(f"{key}.{k}", f"must be a whole number >= 0 or null, got {v[k]!r}") for k in USAGE_KEYS
                if v.get(k) is not None and not (_is_whole(v[k]) and v[k] >= 0)]
    elif kind == "guardrails":
        out += [(f"{key}.{k}", f"must be true, false or null, got {type(v[k]).__name__}") for k in GUARDRAIL_FLAGS
                if v.get(k) is not None and not isinstance(v[k], bool)]
        if v.get("violations") is not None and not _strings(v["violations"]):
            out.append((f"{key}.violations", "must be a list of strings or null"))
    return out


_SHAPES = {"string": "a string or null", "boolean": "true, false or null", "strings": "a list of strings",
           "objects": "a list of objects", "tool_calls": "a list", "object": "an object", "scores": "an object",
           "usage": "an object {input_tokens, output_tokens}",
           "guardrails": "an object {pii_redacted, injection_flag, violations}"}


def field_problems(key: str, v: Any) -> list[tuple[str, str]]:
    """(field, reason) of each thing the trace schema refuses in the value ``v`` of field ``key``
    (empty when it accepts it; a field the schema does not name holds anything)."""
    kind = FIELD_KINDS.get(key, "any")
    if kind == "id":
        return [] if isinstance(v, str) and v.strip() else [(key, "missing" if v is None else "must be a non-empty string")]
    if v is None or kind == "any":
        return []
    if kind == "status":
        return [] if v in STATUSES else [(key, f"unknown status {v!r} (known: {', '.join(STATUSES)})")]
    if kind in ("number", "integer"):
        why = _number_problem(key, v) if kind == "number" else _integer_problem(key, v)
        return [(key, why)] if why else []
    ok = {"string": isinstance(v, str), "boolean": isinstance(v, bool), "strings": _strings(v),
          "objects": isinstance(v, list) and all(isinstance(x, Mapping) for x in v),
          "tool_calls": isinstance(v, list)}.get(kind, isinstance(v, Mapping))
    if not ok:
        got = f", got {type(v).__name__}" if kind == "string" else ""
        return [(key, f"must be {_SHAPES[kind]}{got}")]
    if kind == "tool_calls":
        return [(f"{key}[{i}]", "must be an object with a string name") for i, t in enumerate(v)
                if not isinstance(t, Mapping) or not isinstance(t.get("name"), str)]
    return _nested_problems(key, kind, v) if kind in ("scores", "usage", "guardrails") else []


def record_problems(obj: Mapping[str, Any], line: int | None) -> list[Problem]:
    """A :class:`Problem` for each value of the record ``obj`` (at ``line``) the trace schema refuses."""
    return [Problem(line, fld, why) for key in FIELD_KINDS for fld, why in field_problems(key, obj.get(key))]
