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
