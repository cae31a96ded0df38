"""Trace record: make_trace from a results line, flat record compatibility, loader errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.cases import EvalCase
from labkit.errors import DatasetError
from labkit.trace.record import (
    SCHEMA_VERSION,
    load_traces,
    make_trace,
    normalize_trace,
    read_traces,
    trace_id_for,
)

FLAT = {"trace_id": "trace-1042", "prompt_version": "rag-v3", "model": "gpt-4.1-mini",
        "retrieved_chunks": ["policy-0", "runbook-1"], "tool_calls": [], "faithfulness": 0.9,
        "latency_ms": 1840, "status": "pass"}


pytestmark = pytest.mark.usefixtures("time_bound")
TIME_BOUND_S = 30


def pipe(**cfg: object) -> SimpleNamespace:
    config = {"prompt_version": "rag-v3", "model": {"name": "sim-gen-large", "provider": "labkit-sim"}}
    config.update(cfg)
    return SimpleNamespace(name="baseline", config=config, config_hash="a6e571e724313c1c", fallback=None)


CASE = EvalCase(id="sec-001", question="How do I reset an expired API key?",
                tags={"risk": "high", "category": "security"})
RESULT = {
    "case_id": "sec-001", "status": "ok", "answer": "Use the security portal. [security-runbook#2]",
    "retrieved": [{"id": "security-runbook#2", "source": "security-runbook", "score": 7.1, "text": "chunk text"},
                  {"id": "api-limits#4", "source": "api-limits", "score": 3.2}],
    "citations": ["security-runbook#2"],
    "tool_calls": [{"name": "lookup_account", "args": {"user_id": "u-17"}, "status": "ok", "output": {"plan": "pro"}}],
    "usage": {"input_tokens": 812, "output_tokens": 64}, "cost_usd": 0.00041, "latency_ms": 1840.0,
    "attempts": 1, "error": None, "trace_id": "0123456789abcdef0123456789abcdef", "from_cache": False,
}


def test_make_trace_is_a_superset_of_the_flat_record() -> None:
    t = make_trace(run_id="r1", case=CASE, result=RESULT, pipeline=pipe(), attempt=1, ts_start=100.0, ts_end=101.84)
    for key in FLAT:
        assert key in t, key
    assert t["schema_version"] == SCHEMA_VERSION
    assert t["trace_id"] == RESULT["trace_id"]
    assert (t["prompt_version"], t["model"], t["provider"]) == ("rag-v3", "sim-gen-large", "labkit-sim")
    assert t["retrieved_chunks"] == ["security-runbook#2", "api-limits#4"]
    assert t["retrieved"][0]["text"] == "chunk text" and "text" not in t["retrieved"][1]
    assert t["tool_calls"][0]["args"] == {"user_id": "u-17"} and t["tool_calls"][0]["output"] == {"plan": "pro"}
    assert t["usage"] == {"input_tokens": 812, "output_tokens": 64}
    assert t["latency_ms"] == 1840.0 and t["status"] == "ok" and t["error_type"] is None
    assert t["faithfulness"] is None and t["scores"] == {}  # scored later, joined by the store
    assert t["guardrails"] == {"pii_redacted": False, "injection_flag": False, "violations": []}
    assert t["tags"] == {"risk": "high", "category": "security"}
    assert t["release"] == "baseline@a6e571e72431"
    json.dumps(t)  # serializable as is


def test_spans_cover_retrieval_each_tool_and_generation() -> None:
    res = dict(RESULT, tool_calls=[{"name": "a", "args": {}, "status": "ok"},
                                   {"name": "b", "args": {"x": 1}, "status": "error"}])
    t = make_trace(run_id="r1", case=CASE, result=res, pipeline=pipe(), attempt=1, ts_start=100.0, ts_end=102.0)
    ops = [s["operation"] for s in t["spans"]]
    assert ops == ["retrieval", "execute_tool", "execute_tool", "chat"]
    assert all(s["parent_span_id"] == t["span_id"] for s in t["spans"])
    assert len({s["span_id"] for s in t["spans"]} | {t["span_id"]}) == 5
    assert t["spans"][2]["status"] == "error" and t["spans"][2]["name"] == "execute_tool b"
    assert all(s["timing"] == "inherited" for s in t["spans"])
    # measured stage timings when the pipeline reports them
    res2 = dict(RESULT, timings={"retrieval_ms": 100.0, "generation_ms": 900.0}, tool_calls=[])
    t2 = make_trace(run_id="r1", case=CASE, result=res2, pipeline=pipe(), attempt=1, ts_start=100.0, ts_end=102.0)
    r, g = t2["spans"]
    assert r["timing"] == g["timing"] == "measured"
    assert r["ts_end"] == pytest.approx(100.1) and g["ts_start"] == pytest.approx(100.1)
    assert g["ts_end"] == pytest.approx(101.0)


def test_failed_attempt_and_fallback_and_generated_trace_id() -> None:
    res = dict(RESULT, status="timeout", answer=None, error="TimeoutError: deadline 30s", trace_id=None)
    t = make_trace(run_id="r9", case=CASE, result=res, pipeline=pipe(), attempt=2, ts_start=1.0, ts_end=31.0)
    assert t["status"] == "timeout" and t["error_type"] == "TimeoutError"
    assert t["trace_id"] == trace_id_for("r9", "sec-001", 2) and len(t["trace_id"]) == 32
    assert t["spans"][-1]["status"] == "error"
    fb = SimpleNamespace(name="fallback", config={"prompt_version": "rag-v3-fallback",
                                                  "model": {"name": "sim-gen-small", "provider": "labkit-sim"}})
    p = pipe()
    p.fallback = fb
    t2 = make_trace(run_id="r9", case=CASE, result=dict(RESULT, answered_by="fallback"), pipeline=p,
                    attempt=4, ts_start=1.0, ts_end=2.0)
    assert (t2["model"], t2["prompt_version"]) == ("sim-gen-small", "rag-v3-fallback")


def test_guardrail_block_marks_trace_blocked() -> None:
    res = dict(RESULT, guardrails={"pii_redacted": False, "injection_flag": True,
                                   "violations": ["injection:ignore_instructions"], "blocked": True})
    t = make_trace(run_id="r1", case=CASE, result=res, pipeline=pipe(), attempt=1, ts_start=0.0, ts_end=0.1)
    assert t["status"] == "blocked"
    assert t["guardrails"]["injection_flag"] is True and t["guardrails"]["blocked"] is True


def test_flat_module_record_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "traces.jsonl"
    full = make_trace(run_id="r1", case=CASE, result=RESULT, pipeline=pipe(), attempt=1, ts_start=0, ts_end=1)
    p.write_text(json.dumps(FLAT) + "\n" + json.dumps(full) + "\n")
    flat, rec = load_traces(p)
    assert flat["schema_version"] == 0 and flat["status"] == "pass"
    assert flat["scores"] == {"faithfulness": 0.9} and flat["retrieved_chunks"] == ["policy-0", "runbook-1"]
    assert flat["spans"] == [] and flat["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert rec["trace_id"] == full["trace_id"] and rec["spans"] == full["spans"]


def test_loader_names_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "traces.jsonl"
    lines = [FLAT, dict(FLAT, latency_ms="slow"), {"prompt_version": "x"}, dict(FLAT, faithfulness=1.5),
             dict(FLAT, status="weird"), dict(FLAT, retrieved_chunks=[1, 2])]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    with pytest.raises(DatasetError) as ei:
        load_traces(p)
    probs = {(pr.line, pr.field) for pr in ei.value.problems}
    assert probs == {(2, "latency_ms"), (3, "trace_id"), (4, "faithfulness"), (5, "status"),
                     (6, "retrieved_chunks"), (7, None)}
    assert str(p) in str(ei.value)
    records, problems = read_traces(p)  # (a reader that goes on takes the problems with the records)
    assert len(records) == 1 and {(pr.line, pr.field) for pr in problems} == probs


def test_partial_last_line_is_ignored_but_a_complete_unterminated_one_counts(tmp_path: Path) -> None:
    p = tmp_path / "traces.jsonl"
    p.write_text(json.dumps(FLAT) + "\n" + '{"trace_id": "half", "late')
    assert [r["trace_id"] for r in load_traces(p)] == ["trace-1042"]
    p.write_text(json.dumps(FLAT) + "\n" + json.dumps(dict(FLAT, trace_id="t2")))
    assert [r["trace_id"] for r in load_traces(p)] == ["trace-1042", "t2"]


def test_normalize_rejects_future_schema() -> None:
    with pytest.raises(DatasetError, match="schema_version"):
        normalize_trace(dict(FLAT, schema_version=SCHEMA_VERSION + 1))


def test_dumps_trace_is_the_standard_librarys_json_for_every_value() -> None:
    """The fast encoder writes what json.loads reads back as the standard library would, and what
    it cannot take (a numpy scalar, an integer past 64 bits, another object) goes the slow way."""
    import json

    import numpy as np

    from labkit.trace.record import dumps_trace

    rec = {"a": 1.5, "b": [1, "x", None, True], "c": {"d": "é \u2028 \"q\""}, 3: "int key", "e": 1e-7}
    for extra in ({}, {"np": np.float64(2.5)}, {"big": 2**70}, {"obj": object}):
        r = {**rec, **extra}
        line = dumps_trace(r)
        assert line.endswith("\n") and "\n" not in line[:-1]
        assert json.loads(line) == json.loads(json.dumps(r, default=str))


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("latency_ms", 1e300, "at most 10000000000"),
    ("cost_usd", 2e9, "at most 1000000000 (USD"),
    ("latency_ms", float("inf"), "finite"),
    ("latency_ms", -5, ">= 0"),
    ("cost_usd", float("inf"), "finite"),
    ("ts_start", 1e308, "year 9999"),
    ("ts_end", 253402300800.0, "year 9999"),
    ("ts_start", -1.0, ">= 0"),
    ("ts_start", "2024-01-01T00:00:00Z", "number"),
])
def test_a_number_out_of_its_range_is_refused_naming_field_and_reason(field: str, value: object, reason: str) -> None:
    """1e300 ms of latency and a start past year 9999 passed validation (1e999 decodes to inf too)."""
    with pytest.raises(DatasetError) as ei:
        normalize_trace({"trace_id": "t1", field: value}, line=3, path="traces.jsonl")
    (p,) = ei.value.problems
    assert p.line == 3 and p.field == field and reason in p.reason, p
    for ok in (0, 0.5, *((1700000000.0,) if field.startswith("ts") else ())):
        assert normalize_trace({"trace_id": "t1", field: ok})[field] == ok


@pytest.mark.parametrize(("field", "value", "where", "reason"), [
    ("session_id", {"id": 1}, "session_id", "a string or null"),
    ("pipeline", ["rag"], "pipeline", "a string or null"),
    ("release", 1.2, "release", "a string or null"),
    ("output", {"text": "hi"}, "output", "a string or null"),
    ("attempt", "two", "attempt", "a whole number"),
    ("attempt", 0, "attempt", ">= 1"),
    ("from_cache", "yes", "from_cache", "true, false or null"),
    ("simulated", 1, "simulated", "true, false or null"),
    ("citations", [{"id": 1}], "citations", "a list of strings"),
    ("retrieved", ["a", 1], "retrieved", "a list of objects"),
    ("spans", {"name": "chat"}, "spans", "a list of objects"),
    ("usage", {"input_tokens": "many"}, "usage.input_tokens", "a whole number >= 0"),
    ("usage", {"output_tokens": -3}, "usage.output_tokens", "a whole number >= 0"),
    ("guardrails", {"injection_flag": "yes"}, "guardrails.injection_flag", "true, false or null"),
    ("guardrails", {"violations": "pii"}, "guardrails.violations", "a list of strings"),
    ("tags", ["a"], "tags", "an object"),
])
def test_a_field_of_the_wrong_shape_is_refused_naming_field_and_reason(field: str, value: object, where: str,
                                                                       reason: str) -> None:
    """Only some fields were validated: an object as the session id, a text as the attempt or as
    from_cache, token counts of text and a list of numbers as citations all loaded as records."""
    with pytest.raises(DatasetError) as ei:
        normalize_trace({"trace_id": "t1", field: value}, line=4, path="traces.jsonl")
    (p,) = ei.value.problems
    assert p.line == 4 and p.field == where and reason in p.reason, p


def test_what_make_trace_writes_is_a_valid_record() -> None:
    """A config's release or environment of another type (YAML reads ``release: 1.2`` as a number)
    is written as its text: the run's own traces pass the schema they are read by."""
    case = EvalCase(id="c1", question="q?", metadata={"session_id": 42})
    pipe = SimpleNamespace(name="p", config={"model": "m", "release": 1.2, "environment": 7}, config_hash="h")
    rec = make_trace(run_id="r", case=case, result={"answer": "a", "status": "ok"}, pipeline=pipe, attempt=1,
                     ts_start=1.0, ts_end=2.0)
    assert (rec["release"], rec["environment"], rec["session_id"]) == ("1.2", "7", "42")
    assert {k: v for k, v in normalize_trace(rec).items() if rec[k] is not None} == {k: v for k, v in rec.items()
                                                                                     if v is not None}


def test_the_store_reads_every_field_of_the_schema_and_only_them() -> None:
    from labkit.trace.record import FIELDS
    from labkit.trace.sql import TRACE_COLUMNS

    assert tuple(TRACE_COLUMNS) == FIELDS
