"""OpenTelemetry export: span tree and GenAI attributes (in-memory exporter), and a real
OTLP/HTTP receiver on loopback decoding the protobuf request."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

from labkit.trace.otel import SEMCONV_VERSION, export_runs, export_traces, otel_trace_id
from labkit.trace.synth import synthetic_traces, write_synthetic_run

pytestmark = pytest.mark.usefixtures("time_bound")


def _records(n: int = 20) -> list[dict[str, Any]]:
    recs = list(synthetic_traces(n, run_id="r1", seed=4))
    for r in recs:
        r["scores"] = {"faithfulness": 0.9, "retrieval_hit_rate": 0.0}
        r["score_reasons"] = {"retrieval_hit_rate": "gold not retrieved"}
    return recs


def test_span_tree_and_genai_attributes_in_memory() -> None:
    recs = _records()
    with_tools = next(r for r in recs if r["tool_calls"])
    ex = InMemorySpanExporter()
    n = export_traces([with_tools], exporter=ex)
    spans = ex.get_finished_spans()
    assert n == len(spans) == 4  # root, retrieval, one tool, chat
    root = next(s for s in spans if s.parent is None)
    assert root.context.trace_id == int(with_tools["trace_id"], 16)
    assert root.name == f"invoke_workflow {with_tools['pipeline']}"
    kids = {s.attributes["gen_ai.operation.name"]: s for s in spans if s.parent is not None}
    assert set(kids) == {"retrieval", "execute_tool", "chat"}
    assert all(s.parent.span_id == root.context.span_id for s in kids.values())
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    chat = kids["chat"]
    assert chat.attributes["gen_ai.request.model"] == with_tools["model"]
    assert chat.attributes["gen_ai.provider.name"] == with_tools["provider"]
    assert chat.attributes["gen_ai.usage.input_tokens"] == with_tools["usage"]["input_tokens"]
    assert chat.attributes["gen_ai.usage.output_tokens"] == with_tools["usage"]["output_tokens"]
    assert chat.attributes["labkit.prompt.version"] == root.attributes["labkit.prompt.version"] == with_tools["prompt_version"]
    assert kids["execute_tool"].attributes["gen_ai.tool.name"] == "lookup_account"
    assert "gen_ai.tool.call.arguments" not in kids["execute_tool"].attributes  # content off by default
    evs = {e.attributes["gen_ai.evaluation.name"]: e for e in chat.events if e.name == "gen_ai.evaluation.result"}
    assert evs["faithfulness"].attributes["gen_ai.evaluation.score.value"] == 0.9
    assert evs["faithfulness"].attributes["gen_ai.evaluation.score.label"] == "pass"
    assert evs["retrieval_hit_rate"].attributes["gen_ai.evaluation.score.label"] == "fail"
    assert evs["retrieval_hit_rate"].attributes["gen_ai.evaluation.explanation"] == "gold not retrieved"
    assert root.start_time == int(with_tools["ts_start"] * 1e9) and root.end_time == int(with_tools["ts_end"] * 1e9)
    assert root.instrumentation_scope.schema_url.endswith(SEMCONV_VERSION)


def test_every_genai_name_used_is_a_semconv_constant() -> None:
    known = {v for k, v in vars(gen_ai_attributes).items() if k.startswith("GEN_AI_") and isinstance(v, str)}
    ex = InMemorySpanExporter()
    export_traces(_records(30), exporter=ex, capture_content=True)
    used = set()
    for s in ex.get_finished_spans():
        used |= {k for k in s.attributes if k.startswith("gen_ai.")}
        for e in s.events:
            used |= {k for k in e.attributes if k.startswith("gen_ai.")}
    assert used and used <= known, sorted(used - known)
    ops = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
    assert {s.attributes["gen_ai.operation.name"] for s in ex.get_finished_spans()} <= ops


def test_errors_flat_records_and_non_hex_ids() -> None:
    flat = {"trace_id": "trace-1042", "prompt_version": "rag-v3", "model": "gpt-4.1-mini",
            "retrieved_chunks": ["policy-0"], "tool_calls": [], "faithfulness": 0.9, "latency_ms": 1840,
            "status": "timeout", "ts_start": 10.0}
    ex = InMemorySpanExporter()
    assert export_traces([flat], exporter=ex) == 3
    spans = ex.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    assert root.context.trace_id == otel_trace_id("trace-1042")
    assert root.status.status_code.name == "ERROR"
    assert root.end_time - root.start_time == int(1.84e9)


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[ExportTraceServiceRequest]] = []
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        enc = self.headers.get("Content-Encoding", "")
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        type(self).received.append(req)
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(b"")

    def log_message(self, *args: Any) -> None:
        pass


def _val(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def test_real_otlp_http_receiver_on_loopback(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    write_synthetic_run(run, 25, seed=5)
    ids = [json.loads(x)["case_id"] for x in (run / "traces.jsonl").read_text().splitlines()]
    with open(run / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "faithfulness", "faithfulness_reason"])
        for cid in ids:
            w.writerow([cid, 0.75, ""])
    _Receiver.received, _Receiver.paths = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        n = export_runs([str(run)], endpoint=f"http://127.0.0.1:{server.server_port}", timeout_s=10)
    finally:
        server.shutdown()
        server.server_close()
    assert set(_Receiver.paths) == {"/v1/traces"}
    spans, events, resource = [], [], {}
    for req in _Receiver.received:
        for rs in req.resource_spans:
            resource = {a.key: _val(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                assert ss.scope.name == "labkit"
                for sp in ss.spans:
                    attrs = {a.key: _val(a.value) for a in sp.attributes}
                    spans.append((sp, attrs))
                    events += [(e.name, {a.key: _val(a.value) for a in e.attributes}) for e in sp.events]
    assert len(spans) == n and n >= 25 * 3
    assert resource["service.name"] == "labkit"
    chats = [a for _, a in spans if a.get("gen_ai.operation.name") == "chat"]
    assert len(chats) == 25
    assert all(a["gen_ai.request.model"] in ("sim-small", "sim-large") for a in chats)
    assert all(a["gen_ai.provider.name"] == "labkit" and a["gen_ai.usage.input_tokens"] > 0 for a in chats)
    assert all(a["labkit.prompt.version"].startswith("rag-v") for a in chats)
    assert sum(1 for _, a in spans if a.get("gen_ai.operation.name") == "retrieval") == 25
    roots = [(sp, a) for sp, a in spans if not sp.parent_span_id]
    assert len(roots) == 25 and len({sp.trace_id for sp, _ in roots}) == 25
    trace_ids = {x["trace_id"] for x in map(json.loads, (run / "traces.jsonl").read_text().splitlines())}
    assert {a["labkit.trace_id"] for _, a in roots} == trace_ids  # the OTel ids are the run's own (run_uuid)
    faith = [a for name, a in events if name == "gen_ai.evaluation.result" and a["gen_ai.evaluation.name"] == "faithfulness"]
    assert len(faith) == 25 and all(a["gen_ai.evaluation.score.value"] == 0.75 for a in faith)
    assert all(a["gen_ai.evaluation.score.label"] == "fail" for a in faith)


class _Failing(BaseHTTPRequestHandler):
    code: ClassVar[int] = 500
    hits: ClassVar[int] = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).hits += 1
        self.send_response(self.code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _export_cli(run: Path, url: str, capsys: pytest.CaptureFixture[str], timeout_s: float = 1.0) -> tuple[int, str, float]:
    import time

    from labkit.cli import main

    t0 = time.monotonic()
    code = main(["traces", "export", str(run), "--otlp", url, "--timeout", str(timeout_s)])
    return code, capsys.readouterr().err, time.monotonic() - t0


def _n_spans(run: Path) -> int:
    ex = InMemorySpanExporter()
    from labkit.trace.store import records_with_scores

    return export_traces(records_with_scores(str(run)), exporter=ex)


def _assert_undelivered(code: int, err: str, took: float, n: int) -> None:
    assert code == 1, err
    assert f"{n} of {n} spans not delivered" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert took < 15, took


def test_export_to_a_closed_port_exits_1_and_counts_the_spans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    run = tmp_path / "r1"
    write_synthetic_run(run, 5, seed=1)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    _assert_undelivered(*_export_cli(run, f"http://127.0.0.1:{port}", capsys), _n_spans(run))


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` served on a loopback port (yielded) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        th.join(5)


@pytest.mark.parametrize("status", [500, 503])
def test_export_to_an_endpoint_answering_an_error_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        status: int) -> None:
    run = tmp_path / "r1"
    write_synthetic_run(run, 5, seed=1)
    _Failing.code, _Failing.hits = status, 0
    with _serving(_Failing) as port:
        res = _export_cli(run, f"http://127.0.0.1:{port}", capsys)
    assert _Failing.hits >= 1
    _assert_undelivered(*res, _n_spans(run))
    assert str(status) in res[1]


def test_export_to_an_endpoint_that_never_answers_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    run = tmp_path / "r1"
    write_synthetic_run(run, 5, seed=1)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)  # the kernel accepts the connection; nobody ever reads or answers
    try:
        res = _export_cli(run, f"http://127.0.0.1:{s.getsockname()[1]}", capsys, timeout_s=1.0)
    finally:
        s.close()
    _assert_undelivered(*res, _n_spans(run))


def test_export_to_an_endpoint_that_drips_its_answer_ends_by_the_timeout(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``--timeout 3`` bounded each read only: an endpoint answering 200 with a body of 50 bytes
    at a byte per second held the export for 49 s, which then said "exported" (rc 0). The
    timeout is the whole export's: it ends by it, nothing counted as delivered."""
    from drip_server import dripping

    run = tmp_path / "r1"
    write_synthetic_run(run, 5, seed=1)
    with dripping(interval_s=1.0, n_bytes=50) as base:
        res = _export_cli(run, base, capsys, timeout_s=3.0)
    _assert_undelivered(*res, _n_spans(run))
    assert "within 3s" in res[1], res[1]


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(400 if "fail" in self.path else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_endpoints_password_is_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--otlp http://bob:pw123456@host`` printed the password, on success ("exported 210 spans to
    http://bob:pw123456@...") and on a 400 ("... not delivered to http://bob:pw123456@..."). The
    URL is printed with its credentials masked, as the endpoint pipeline's messages are."""
    from labkit.cli import main

    run = tmp_path / "r1"
    write_synthetic_run(run, 3, seed=1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    base = f"http://bob:pw123456@127.0.0.1:{server.server_port}"
    try:
        assert main(["traces", "export", str(run), "--otlp", base, "--timeout", "10"]) == 0
        out, err = capsys.readouterr()
        assert main(["traces", "export", str(run), "--otlp", base + "/fail", "--timeout", "10"]) == 1
        out2, err2 = capsys.readouterr()
    finally:
        server.shutdown()
        server.server_close()
        th.join(5)
    assert "pw123456" not in out + err + out2 + err2, (out, err, out2, err2)
    assert f"spans to http://[TOKEN]@127.0.0.1:{server.server_port}" in out, out
    assert f"not delivered to http://[TOKEN]@127.0.0.1:{server.server_port}/fail/v1/traces" in err2, err2
    assert "400" in err2 and len(err2.strip().splitlines()) == 1, err2


def test_export_traces_raises_with_the_counts_for_api_users() -> None:
    from labkit.trace.otel import ExportFailed

    class Refusing(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            from opentelemetry.sdk.trace.export import SpanExportResult

            return SpanExportResult.FAILURE

    with pytest.raises(ExportFailed) as ei:
        export_traces(_records(3), exporter=Refusing())
    assert ei.value.delivered == 0 and ei.value.failed == ei.value.total > 0


# --- traces that real backends read: ids unique per run, finish_reason, OpenInference names --------


def _export_run_ids(run: Path) -> tuple[set[int], set[int], int]:
    ex = InMemorySpanExporter()
    n = export_runs([str(run)], exporter=ex)
    spans = ex.get_finished_spans()
    return {s.context.trace_id for s in spans}, {s.context.span_id for s in spans}, n


def _manifest(run: Path, **fields: Any) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"schema_version": 1, "run_id": run.name, **fields}))


def test_two_runs_in_folders_of_the_same_name_never_share_an_id(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "r1", tmp_path / "b" / "r1"
    for run, uid in ((a, "6f1c7a52-6b1e-4c53-9a55-1f3f6b1d0a01"), (b, "0d9e2b44-52a8-4f0e-8f7c-3b1a9c2e7d02")):
        _manifest(run, run_uuid=uid, created_at="2026-12-01T10:00:00.000001+00:00")
        write_synthetic_run(run, 6, seed=3)  # the same records, the same labkit trace ids
    ta, sa, na = _export_run_ids(a)
    tb, sb, nb = _export_run_ids(b)
    assert na == nb > 0 and len(ta) == len(tb) == 6
    assert not ta & tb and not sa & sb  # a backend keying on either id keeps both runs whole
    assert _export_run_ids(a) == (ta, sa, na)  # re-exporting a run is idempotent


def test_runs_without_a_run_uuid_still_get_ids_of_their_own(tmp_path: Path) -> None:
    old_a, old_b = tmp_path / "a" / "r1", tmp_path / "b" / "r1"  # first-landing manifests: no run_uuid
    _manifest(old_a, created_at="2026-12-01T10:00:00.000001+00:00")
    _manifest(old_b, created_at="2026-12-01T10:00:00.000002+00:00")
    bare_a, bare_b = tmp_path / "c" / "r1", tmp_path / "d" / "r1"  # no manifest at all
    for run in (old_a, old_b, bare_a, bare_b):
        write_synthetic_run(run, 4, seed=3)
    ids = [_export_run_ids(r)[0] for r in (old_a, old_b, bare_a, bare_b)]
    assert all(not x & y for i, x in enumerate(ids) for y in ids[i + 1:])
    assert _export_run_ids(old_a)[0] == ids[0] and _export_run_ids(bare_a)[0] == ids[2]


def test_a_new_run_records_a_run_uuid(tmp_path: Path) -> None:
    from labkit.runner import run as run_dataset

    ds = tmp_path / "ds.jsonl"
    ds.write_text(json.dumps({"id": "c1", "question": "What is the refund window?"}) + "\n")
    rds = [run_dataset(str(ds), "data/pipelines/baseline.yaml", tmp_path / d / "r1", score=False,
                       overrides={"progress": False}) for d in ("a", "b")]
    uids = [rd.manifest.get("run_uuid") for rd in rds]
    assert all(isinstance(u, str) and len(u) == 36 for u in uids) and uids[0] != uids[1]


def _by_op(ex: InMemorySpanExporter) -> dict[str, Any]:
    return {s.attributes["gen_ai.operation.name"]: s for s in ex.get_finished_spans()}


def test_output_messages_carry_a_finish_reason() -> None:
    recs = _records(30)
    ok = next(r for r in recs if r["status"] == "ok")
    failed = {**ok, "status": "error", "output": None, "error_type": "PipelineError"}
    for rec, reason in ((ok, "stop"), (failed, "error")):
        ex = InMemorySpanExporter()
        export_traces([rec], exporter=ex, capture_content=True)
        chat = _by_op(ex)["chat"]
        out = json.loads(chat.attributes["gen_ai.output.messages"])
        assert out == [{"role": "assistant", "parts": [{"type": "text", "content": rec["output"]}] if rec["output"] else [],
                        "finish_reason": reason}]
        assert list(chat.attributes["gen_ai.response.finish_reasons"]) == [reason]


def test_openinference_kind_on_every_span_and_the_root_is_a_chain() -> None:
    ex = InMemorySpanExporter()
    export_traces(_records(30), exporter=ex)
    kinds = {"invoke_workflow": "CHAIN", "retrieval": "RETRIEVER", "execute_tool": "TOOL", "chat": "LLM"}
    spans = ex.get_finished_spans()
    assert {s.attributes["gen_ai.operation.name"] for s in spans} == set(kinds)
    for s in spans:
        assert s.attributes["openinference.span.kind"] == kinds[s.attributes["gen_ai.operation.name"]], s.name


def test_cost_prompt_version_model_and_tokens_under_openinference_names() -> None:
    rec = next(r for r in _records() if r["status"] == "ok")
    ex = InMemorySpanExporter()
    export_traces([rec], exporter=ex)
    chat = _by_op(ex)["chat"].attributes
    assert chat["llm.cost.total"] == pytest.approx(rec["cost_usd"])
    assert chat["llm.prompt_template.version"] == rec["prompt_version"]
    assert chat["llm.model_name"] == rec["model"] and chat["llm.provider"] == rec["provider"]
    assert chat["llm.token_count.prompt"] == rec["usage"]["input_tokens"]
    assert chat["llm.token_count.completion"] == rec["usage"]["output_tokens"]
    assert chat["llm.token_count.total"] == rec["usage"]["input_tokens"] + rec["usage"]["output_tokens"]
    assert "input.value" not in chat and "output.value" not in chat  # content off by default


def test_content_capture_sends_input_output_and_document_content() -> None:
    rec = next(r for r in _records(30) if r["status"] == "ok" and r["tool_calls"])
    rec["retrieved"][0]["text"] = "Refunds are accepted within 30 days."
    ex = InMemorySpanExporter()
    export_traces([rec], exporter=ex, capture_content=True)
    spans = _by_op(ex)
    root, ret, chat, tool = (spans[k].attributes for k in ("invoke_workflow", "retrieval", "chat", "execute_tool"))
    assert root["input.value"] == chat["input.value"] == rec["input"]
    assert root["output.value"] == chat["output.value"] == rec["output"]
    assert chat["llm.output_messages.0.message.role"] == "assistant"
    assert chat["llm.output_messages.0.message.content"] == rec["output"]
    assert chat["llm.input_messages.0.message.content"] == rec["input"]
    assert ret["input.value"] == rec["input"]
    assert ret["retrieval.documents.0.document.id"] == rec["retrieved"][0]["id"]
    assert ret["retrieval.documents.0.document.score"] == rec["retrieved"][0]["score"]
    assert ret["retrieval.documents.0.document.content"] == "Refunds are accepted within 30 days."
    assert tool["tool.name"] == "lookup_account"
    assert json.loads(tool["input.value"]) == rec["tool_calls"][0]["args"]


@pytest.mark.parametrize("usage", [None, {"input_tokens": 120, "output_tokens": None}, {"output_tokens": 7}])
def test_a_token_count_the_trace_does_not_record_is_exported_as_no_attribute(usage: Any) -> None:
    """An imported trace may record one token count, or none: the export wrote 0 for the one it
    lacks (and 0 + 0 as the total), a count no backend can tell from a real zero."""
    rec = {**next(r for r in _records() if r["status"] == "ok"), "usage": usage}
    ex = InMemorySpanExporter()
    export_traces([rec], exporter=ex)
    spans = _by_op(ex)
    known = {k: v for k, v in (usage or {}).items() if v is not None}
    for span in (spans["chat"], spans["invoke_workflow"]):
        a = span.attributes
        for key in ("input_tokens", "output_tokens"):
            assert a.get(f"gen_ai.usage.{key}") == known.get(key), (span.name, key)
    chat = spans["chat"].attributes
    assert chat.get("llm.token_count.prompt") == known.get("input_tokens")
    assert chat.get("llm.token_count.completion") == known.get("output_tokens")
    assert "llm.token_count.total" not in chat


# --- bad trace lines: named, never dropped without a word ----------------------------------------


def _run_with_bad_lines(tmp_path: Path) -> Path:
    """A run of 5 traces with a line that is no JSON (line 3) and a record of an unknown status
    (line 5) among them."""
    run = tmp_path / "r1"
    write_synthetic_run(run, 5, seed=5)
    lines = (run / "traces.jsonl").read_text().splitlines(keepends=True)
    bad = {**json.loads(lines[3]), "status": "exploded"}
    lines[2:2] = ['{"trace_id": "cut\n']
    lines[4] = json.dumps(bad) + "\n"
    (run / "traces.jsonl").write_text("".join(lines))
    return run


def test_an_export_of_bad_trace_lines_is_refused_naming_them_and_sends_nothing(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The export read the traces leniently: a line that was no JSON and a record of an unknown status
    were left out, and it said "exported N spans" as if that were every trace of the run."""
    from labkit.cli import main

    run = _run_with_bad_lines(tmp_path)
    _Failing.code, _Failing.hits = 200, 0
    with _serving(_Failing) as port:
        code = main(["traces", "export", str(run), "--otlp", f"http://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert code == 2 and _Failing.hits == 0 and "exported" not in out, (out, err)
    assert "Traceback" not in err and "nothing exported" in err, err
    assert str(run / "traces.jsonl") in err and "2 invalid lines" in err, err
    assert "line 3: malformed JSON" in err and "line 5 field 'status': unknown status 'exploded'" in err, err
    assert "--skip-invalid" in err, err


def test_an_export_told_to_skip_bad_lines_says_how_many_and_which(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    run = _run_with_bad_lines(tmp_path)
    _Failing.code, _Failing.hits = 200, 0
    with _serving(_Failing) as port:
        code = main(["traces", "export", str(run), "--otlp", f"http://127.0.0.1:{port}",
                     "--skip-invalid"])
    out, err = capsys.readouterr()
    assert code == 0 and _Failing.hits >= 1, (out, err)
    (warning,) = [x for x in err.splitlines() if "warning" in x]
    assert str(run / "traces.jsonl") in warning and "skipped 2 line(s)" in warning, err
    assert "line 3: malformed JSON" in warning and "line 5 field 'status'" in warning, err
    clean = tmp_path / "clean"
    clean.mkdir()
    lines = (run / "traces.jsonl").read_text().splitlines(keepends=True)
    (clean / "traces.jsonl").write_text("".join(x for i, x in enumerate(lines, 1) if i not in (3, 5)))
    assert out.split()[:2] == ["exported", str(_n_spans(clean))], out  # the 4 valid traces, every span of them
    assert "2 invalid line(s) skipped" in out, out


def test_the_export_api_refuses_bad_trace_lines_naming_file_line_and_field(tmp_path: Path) -> None:
    from labkit.errors import DatasetError

    run = _run_with_bad_lines(tmp_path)
    ex = InMemorySpanExporter()
    with pytest.raises(DatasetError) as e:
        export_runs([str(run)], exporter=ex)
    assert [(p.line, p.field) for p in e.value.problems] == [(3, None), (5, "status")]
    assert ex.get_finished_spans() == ()
