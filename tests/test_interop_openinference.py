"""OpenInference spans made by the OpenTelemetry SDK itself (the otel extra), encoded as OTLP
JSON the way a collector's file exporter writes it, imported, scored and gated.

The SDK builds the spans and the OTLP exporter's own encoder turns them into the
ExportTraceServiceRequest; the protobuf JSON mapping writes ids in base64, the OTLP/JSON
encoding in hex, so the ids are re-encoded as the OTLP specification says. The span contents
(a canned answer, canned documents) simulate an instrumented RAG app: no model runs.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from labkit.cli import main

CORPUS = Path(__file__).parents[1] / "data" / "corpus"


def _hex_ids(obj):
    if isinstance(obj, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else _hex_ids(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hex_ids(v) for v in obj]
    return obj


def _otlp_json(tmp: Path) -> Path:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    chunk = (CORPUS / "api-limits.md").read_text().split("## ")[1]  # "Rate limits by plan ..." section
    mem = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("simulated-rag-app")
    cases = [("What rate limit does each plan allow?", "Starter allows 100 requests per minute.", None),
             ("Which scopes can an API key have?", None, "upstream timeout")]
    for question, answer, error in cases:
        with tracer.start_as_current_span("rag") as root:
            root.set_attribute("openinference.span.kind", "CHAIN")
            root.set_attribute("input.value", question)
            with tracer.start_as_current_span("retrieve") as r:
                r.set_attribute("openinference.span.kind", "RETRIEVER")
                r.set_attribute("retrieval.documents.0.document.content", "## " + chunk)
                r.set_attribute("retrieval.documents.0.document.score", 0.91)
            with tracer.start_as_current_span("llm") as llm:
                llm.set_attribute("openinference.span.kind", "LLM")
                llm.set_attribute("llm.model_name", "simulated-model")
                llm.set_attribute("llm.token_count.prompt", 300)
                llm.set_attribute("llm.token_count.completion", 12)
            if error:
                root.set_status(Status(StatusCode.ERROR, error))
            else:
                root.set_attribute("output.value", answer)
    provider.shutdown()
    doc = _hex_ids(MessageToDict(encode_spans(mem.get_finished_spans())))
    path = tmp / "spans.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_sdk_made_otlp_json_imports_scores_and_gates(tmp_path, capsys):
    path = _otlp_json(tmp_path)
    out = tmp_path / "imp"
    assert main(["import", "openinference", str(path), "--out", str(out), "--corpus", str(CORPUS)]) == 0
    assert main(["score", str(out / "run")]) == 0
    m = json.loads((out / "run" / "metrics.json").read_text())["metrics"]
    assert m["error_rate"]["value"] == pytest.approx(0.5)
    assert m["tokens_per_case"]["value"] == pytest.approx(312.0)
    assert m["latency_p50_ms"]["n"] == 2  # measured from the spans' own times
    results = [json.loads(x) for x in (out / "run" / "results.jsonl").read_text().splitlines()]
    assert results[0]["retrieved"][0]["id"] == "api-limits#1"
    assert results[1]["status"] == "error" and results[1]["error"] == "upstream timeout"
    assert all(len(r["trace_id"]) == 32 for r in results)
    gate = tmp_path / "gate.yaml"
    gate.write_text("version: 1\nname: spans\nchecks:\n  - {metric: error_rate, op: '<=', threshold: 0.5, min_n: 1}\n")
    assert main(["gate", "--config", str(gate), str(out / "run")]) == 0
    assert "imported from the openinference file" in capsys.readouterr().out


def _span(sid: str, parent: str | None = None, start: str = "1000", end: str = "2000", **attrs: str) -> dict:
    sp = {"traceId": "t1", "spanId": sid, "startTimeUnixNano": start, "endTimeUnixNano": end,
          "attributes": [{"key": k.replace("_", "."), "value": {"stringValue": v}} for k, v in attrs.items()]}
    if parent:
        sp["parentSpanId"] = parent
    return sp


def _import_spans(tmp: Path, spans: list[dict]) -> tuple[int, Path]:
    path = tmp / "spans.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}, indent=1))
    out = tmp / "o"
    return main(["import", "openinference", str(path), "--out", str(out)]), out


def test_a_trace_without_a_root_span_is_refused_naming_it(tmp_path, capsys):
    rc, out = _import_spans(tmp_path, [_span("s1", "s2"), _span("s2", "s1")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "trace t1" in err and "no root span" in err
    assert not out.exists()


def test_a_trace_with_two_root_spans_is_refused_not_half_imported(tmp_path, capsys):
    rc, out = _import_spans(tmp_path, [_span("s1", input_value="first", output_value="a"),
                                       _span("s2", input_value="second", output_value="b")])
    err = capsys.readouterr().err
    assert rc == 2 and "trace t1" in err and "2 root spans" in err
    assert not out.exists()


@pytest.mark.parametrize(("start", "end", "piece"), [("x", "1", "startTimeUnixNano"),
                                                     ("3000", "1000", "endTimeUnixNano")])
def test_an_unparseable_or_backward_span_time_is_a_field_error(tmp_path, capsys, start, end, piece):
    rc, out = _import_spans(tmp_path, [_span("s1", start=start, end=end, input_value="q", output_value="a")])
    err = capsys.readouterr().err
    assert rc == 2 and f"field '{piece}'" in err, err
    assert not out.exists()


def test_a_phoenix_row_with_an_unparseable_time_is_a_field_error(tmp_path, capsys):
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"context.trace_id": "t", "context.span_id": "s", "parent_id": None,
                                "span_kind": "CHAIN", "start_time": "not-a-date",
                                "end_time": "2024-01-01T00:00:00Z", "attributes.input.value": "q"}) + "\n")
    assert main(["import", "openinference", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 1 field 'start_time'" in err, err


def test_a_root_span_without_output_is_not_judged_a_success(tmp_path, capsys):
    rc, out = _import_spans(tmp_path, [_span("s1", input_value="q")])
    assert rc == 0
    assert (out / "dataset.jsonl").exists() and not (out / "run").exists()
    assert "root span output.value: no output on the root span" in capsys.readouterr().out


def test_what_no_labkit_field_holds_is_kept_or_said_never_lost(tmp_path):
    """The root span's own attributes (who asked, the session, metadata, tags) are the case's: kept
    in its metadata; a child span's attributes no labkit field holds are listed as dropped, by
    name (the import's mapping in the manifest says so), never left out without a word."""
    def span(sid: str, parent: str | None, attrs: dict[str, str]) -> dict:
        sp = _span(sid, parent)
        sp["attributes"] = [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]
        return sp

    spans = [span("r", None, {"openinference.span.kind": "CHAIN", "input.value": "What is the quota?",
                              "output.value": "The quota is 5.", "user.id": "u-17", "session.id": "s-9",
                              "metadata": '{"plan": "pro"}', "tag.tags": "billing"}),
             span("l", "r", {"openinference.span.kind": "LLM", "llm.model_name": "m",
                             "llm.invocation_parameters": '{"temperature": 0}',
                             "llm.input_messages.0.message.content": "What is the quota?"})]
    code, out = _import_spans(tmp_path, spans)
    assert code == 0
    case = json.loads((out / "dataset.jsonl").read_text().splitlines()[0])
    kept = case["metadata"]["openinference"]
    assert kept == {"user.id": "u-17", "session.id": "s-9", "metadata": '{"plan": "pro"}', "tag.tags": "billing"}
    mapping = json.loads((out / "run" / "manifest.json").read_text())["imported"]["mapping"]
    assert {k["from"] for k in mapping["kept_in_metadata"]} >= {"root span user.id", "root span session.id",
                                                                 "root span metadata", "root span tag.tags"}
    dropped = {d["from"]: d["why"] for d in mapping["dropped"]}
    assert "LLM span llm.invocation_parameters" in dropped and "LLM span llm.input_messages.N.message.content" in dropped
    assert "LLM span llm.model_name" not in dropped  # mapped (results.model)


def _otlp(span_patch: dict, attrs: list | None = None) -> str:
    sp = {"traceId": "t1", "spanId": "s1", "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
          "attributes": [{"key": "input.value", "value": {"stringValue": "q"}},
                         {"key": "output.value", "value": {"stringValue": "a"}}] + (attrs or [])}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**sp, **span_patch}]}]}]})


@pytest.mark.parametrize(("name", "text", "where"), [
    ("oi.json", _otlp({}, [{"key": "user.n", "value": {"intValue": "abc"}}]), "line 1 field 'user.n'"),
    ("oi.json", _otlp({}, [{"key": "user.n", "value": {"arrayValue": [1]}}]), "line 1 field 'user.n'"),
    ("oi.json", _otlp({}, [{"key": "user.n", "value": {"kvlistValue": {"values": ["x"]}}}]), "line 1 field 'user.n'"),
    ("oi.json", _otlp({}, [{"key": 7, "value": {"stringValue": "x"}}]), "line 1 field 'attributes'"),
    ("oi.json", _otlp({"attributes": {"input.value": "q"}}), "line 1 field 'attributes'"),
    ("oi.json", _otlp({"spanId": {"a": 1}}), "line 1 field 'spanId'"),
    ("oi.json", _otlp({"startTimeUnixNano": "9" * 400}), "line 1 field 'startTimeUnixNano'"),
    ("oi.json", json.dumps({"resourceSpans": [{"scopeSpans": ["x"]}]}), "line 1 field 'scopeSpans'"),
    ("ph.jsonl", json.dumps({"name": "r", "span_kind": "CHAIN", "context": "x", "attributes.input.value": "q"}),
     "line 1 field 'context'"),
    ("ph.jsonl", json.dumps({"context.trace_id": "t", "context.span_id": ["s"], "attributes.input.value": "q"}),
     "line 1 field 'context.span_id'"),
    ("ph.jsonl", json.dumps({"context.trace_id": "t", "context.span_id": "s", "parent_id": {"p": 1},
                             "attributes.input.value": "q"}), "line 1 field 'parent_id'"),
])
def test_a_foreign_value_of_the_wrong_type_is_a_field_error_not_a_traceback(tmp_path, capsys, name, text, where):
    p = tmp_path / name
    p.write_text(text + "\n")
    out = tmp_path / "o"
    assert main(["import", "openinference", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize(("value", "why"), [({"doubleValue": 12.7}, "must be a whole number of tokens, got 12.7"),
                                            ({"stringValue": "abc"}, "must be a finite number >= 0")])
def test_a_token_count_that_is_no_whole_number_is_refused(tmp_path, capsys, value, why):
    llm = {"traceId": "t1", "spanId": "s2", "parentSpanId": "s1", "startTimeUnixNano": "1000000000",
           "endTimeUnixNano": "2000000000",
           "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                          {"key": "llm.token_count.prompt", "value": value}]}
    doc = json.loads(_otlp({}))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(llm)
    p = tmp_path / "oi.json"
    p.write_text(json.dumps(doc))
    out = tmp_path / "o"
    assert main(["import", "openinference", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "field 'llm.token_count.prompt'" in err and why in err and "Traceback" not in err, err
    assert not out.exists()


def _tool_spans(params: str, key: str = "tool.parameters") -> list[dict]:
    tool = _span("s2", "s1", openinference_span_kind="TOOL", tool_name="search")
    tool["attributes"].append({"key": key, "value": {"stringValue": params}})
    return [_span("s1", input_value="q", output_value="a"), tool]


@pytest.mark.parametrize(("params", "reason"), [
    ('{"k": "\\ud800"}', "lone surrogate"),
    ('{"k": 1, "k": 2}', "duplicate key 'k'"),
    ('{"k": NaN}', "NaN is not a JSON number"),
    ('{"k": ' * 5000 + "1" + "}" * 5000, "nested more than 200 levels deep"),
    ('{"k": 1', "malformed JSON"),
])
def test_tool_parameters_are_decoded_strictly_at_their_span(tmp_path, capsys, params, reason):
    """A TOOL span's tool.parameters (JSON in a string) goes through labkit's one strict decoder
    (labkit.io.loads_line): a lone surrogate, a key given twice, NaN, nesting past the limit, or a
    text that opens as JSON and is none, is refused naming the span's line and the attribute (they
    were a UnicodeEncodeError or RecursionError traceback, or the last key silently won)."""
    rc, out = _import_spans(tmp_path, _tool_spans(params))
    err = capsys.readouterr().err
    assert rc == 2 and "field 'tool.parameters'" in err and reason in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists(), err


@pytest.mark.parametrize(("params", "key", "args"), [('{"k": [1, 2]}', "tool.parameters", {"k": [1, 2]}),
                                                     ("rate limits", "input.value", {"input": "rate limits"})])
def test_tool_arguments_as_json_or_plain_text(tmp_path, capsys, params, key, args):
    rc, out = _import_spans(tmp_path, _tool_spans(params, key))
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "run" / "results.jsonl").read_text())
    assert res["tool_calls"] == [{"name": "search", "args": args, "status": "ok"}]


def _llm_import(tmp: Path, attrs: list[dict], kind: str = "LLM") -> tuple[int, Path]:
    child = {"traceId": "t1", "spanId": "s2", "parentSpanId": "s1", "startTimeUnixNano": "1000000000",
             "endTimeUnixNano": "2000000000",
             "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": kind}}, *attrs]}
    doc = json.loads(_otlp({}))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(child)
    p = tmp / "oi.json"
    p.write_text(json.dumps(doc))
    out = tmp / "o"
    return main(["import", "openinference", str(p), "--out", str(out)]), out


@pytest.mark.parametrize(("kind", "key", "value", "why"), [
    ("LLM", "llm.cost.total", {"intValue": "1" + "0" * 400}, "must be a finite number >= 0"),
    ("LLM", "llm.cost.total", {"boolValue": True}, "must be a finite number >= 0, got True"),
    ("RETRIEVER", "retrieval.documents.0.document.score", {"intValue": "1" + "0" * 400}, "must be a finite number"),
])
def test_a_cost_or_score_that_is_no_float_is_refused_at_its_attribute(tmp_path, capsys, kind, key, value, why):
    """Costs and document scores are read by the one numeric reader (labkit.interop.values.number): an
    integer past a float's range was an OverflowError traceback, true was read as a cost of 1.0."""
    rc, out = _llm_import(tmp_path, [{"key": key, "value": value}], kind)
    err = capsys.readouterr().err
    assert rc == 2 and f"line 1 field '{key}'" in err and why in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists(), err


def test_a_cost_written_as_a_decimal_string_is_read(tmp_path, capsys):
    """OTLP JSON may write a double as a string (the protobuf JSON mapping): {"doubleValue": "0.5"} is
    a cost of 0.5 (it was dropped without a word)."""
    rc, out = _llm_import(tmp_path, [{"key": "llm.cost.total", "value": {"doubleValue": "0.5"}}])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "run" / "results.jsonl").read_text())["cost_usd"] == 0.5


@pytest.mark.parametrize("index", ["\u00b2", "\u0663"])
def test_a_document_index_that_is_no_ascii_number_is_no_document(tmp_path, capsys, index):
    """``retrieval.documents.N.document.content``: N is an ASCII decimal index. A superscript two
    (which str.isdigit takes, int() refuses) was a ValueError traceback; an Arabic-Indic three was read
    as index 3. Such an attribute is no document: listed as dropped, by name."""
    key = f"retrieval.documents.{index}.document.content"
    rc, out = _llm_import(tmp_path, [{"key": "retrieval.documents.0.document.content", "value": {"stringValue": "d0"}},
                                     {"key": key, "value": {"stringValue": "odd"}}], "RETRIEVER")
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "run" / "results.jsonl").read_text())
    assert [r["text"] for r in res["retrieved"]] == ["d0"]
    dropped = json.loads((out / "run" / "manifest.json").read_text())["imported"]["mapping"]["dropped"]
    assert f"RETRIEVER span {key}" in {d["from"] for d in dropped}, dropped


def _phoenix(tmp: Path, start: object, end: object) -> tuple[int, Path]:
    p = tmp / "ph.jsonl"
    p.write_text(json.dumps({"context.trace_id": "t", "context.span_id": "s", "parent_id": None, "span_kind": "CHAIN",
                             "start_time": start, "end_time": end, "attributes.input.value": "q",
                             "attributes.output.value": "a"}) + "\n")
    out = tmp / "o"
    return main(["import", "openinference", str(p), "--out", str(out)]), out


@pytest.mark.parametrize(("start", "end"), [
    (1714557600, 1714557600.25),  # seconds
    (1714557600000, 1714557600250),  # milliseconds
    (1714557600000000, 1714557600250000),  # microseconds
    (1714557600000000000, 1714557600250000000),  # nanoseconds
    ("2024-05-01T10:00:00", "2024-05-01T10:00:00.250"),  # ISO without an offset: UTC, as labkit writes times
    ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.250Z"),
])
def test_a_phoenix_epoch_time_is_read_by_its_magnitude(tmp_path, capsys, monkeypatch, start, end):
    """A numeric epoch is seconds, milliseconds, microseconds or nanoseconds by its size (milliseconds
    were read as nanoseconds: 1970, and a latency of 0.00025 ms); an ISO time without an offset is
    UTC whatever the machine's zone (it was read in the machine's local time)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        rc, out = _phoenix(tmp_path, start, end)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "run" / "results.jsonl").read_text())
    trace = json.loads((out / "run" / "traces.jsonl").read_text())
    assert res["latency_ms"] == pytest.approx(250.0) and trace["ts_start"] == pytest.approx(1714557600.0), trace


@pytest.mark.parametrize("start", [1e20, -5, True])
def test_a_phoenix_epoch_time_of_no_known_unit_is_refused(tmp_path, capsys, start):
    rc, out = _phoenix(tmp_path, start, None)
    err = capsys.readouterr().err
    assert rc == 2 and "line 1 field 'start_time'" in err and "Traceback" not in err and not out.exists(), err


def test_a_token_count_no_span_records_stays_unknown_in_results_and_trace(tmp_path, capsys):
    """Token counts are summed over the LLM spans that record them; a count none records is unknown
    (left out of the results line's usage, null in the trace record), never 0."""
    rc, out = _llm_import(tmp_path, [{"key": "llm.token_count.prompt", "value": {"intValue": "12"}}])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "run" / "results.jsonl").read_text())["usage"] == {"input_tokens": 12}
    trace = json.loads((out / "run" / "traces.jsonl").read_text())
    assert trace["usage"] == {"input_tokens": 12, "output_tokens": None}, trace["usage"]
