"""A peer tool's span export handed to ``labkit traces`` is refused with the way in, not read as
"(no rows)" with exit 0; imported spans become trace records the trace store reads."""

from __future__ import annotations

import shutil
from pathlib import Path

from labkit.cli import main

PEER = Path(__file__).parent / "data" / "peer"


def test_phoenix_export_given_as_a_trace_file_is_refused_with_the_import_command(capsys):
    code = main(["traces", str(PEER / "phoenix_spans.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 1" in err and "not a labkit trace record" in err
    assert "labkit import openinference" in err


def test_phoenix_export_as_a_run_directorys_traces_is_refused(tmp_path, capsys):
    shutil.copy(PEER / "phoenix_spans.jsonl", tmp_path / "traces.jsonl")
    assert main(["traces", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "traces.jsonl" in err and "line 1" in err and "labkit import openinference" in err


def test_a_langfuse_export_given_as_a_trace_file_is_refused(tmp_path, capsys):
    # a JSON array, not JSONL: its first line is no trace record either
    assert main(["traces", str(PEER / "langfuse_traces.json")]) == 2
    assert "labkit import" in capsys.readouterr().err


def test_imported_spans_are_queryable_traces(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["import", "openinference", str(PEER / "openinference_otlp.json"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["traces", str(out / "run"), "--sql", "SELECT count(*) AS n, count_if(status = 'error') AS errors "
                 "FROM traces", "--format", "csv"]) == 0
    n, errors = map(float, capsys.readouterr().out.strip().splitlines()[-1].split(","))
    assert (n, errors) == (6, 1)


def test_a_trace_the_file_does_not_time_says_unknown_never_0(tmp_path, capsys):
    import json

    lf = tmp_path / "lf.json"
    lf.write_text(json.dumps([{"id": "t1", "timestamp": "2026-12-01T10:00:00Z", "input": "q1", "output": "a1",
                               "latency": 2.0},
                              {"id": "t2", "timestamp": "2026-12-01T10:00:05Z", "input": "q2", "output": "a2"}]))
    out = tmp_path / "o"
    assert main(["import", "langfuse", str(lf), "--out", str(out)]) == 0
    traces = [json.loads(x) for x in (out / "run" / "traces.jsonl").read_text().splitlines()]
    assert [(t["latency_ms"], t["usage"]) for t in traces] == [(2000.0, None), (None, None)]
    assert traces[1]["ts_end"] is None
    capsys.readouterr()
    assert main(["traces", str(out / "run"), "--sql", "SELECT count(latency_ms) AS n, "
                 "quantile_cont(latency_ms, 0.95) AS p95 FROM traces", "--format", "csv"]) == 0
    n, p95 = map(float, capsys.readouterr().out.strip().splitlines()[-1].split(","))
    assert (n, p95) == (1, 2000.0)


def test_a_span_without_an_end_time_has_no_invented_latency(tmp_path):
    import json

    sp = {"traceId": "t1", "spanId": "s1", "startTimeUnixNano": "1000000000",
          "attributes": [{"key": "input.value", "value": {"stringValue": "q"}},
                         {"key": "output.value", "value": {"stringValue": "a"}}]}
    p = tmp_path / "oi.json"
    p.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [sp]}]}]}))
    out = tmp_path / "o"
    assert main(["import", "openinference", str(p), "--out", str(out)]) == 0
    t = json.loads((out / "run" / "traces.jsonl").read_text())
    assert (t["ts_start"], t["ts_end"], t["latency_ms"], t["usage"]) == (1.0, None, None, None)


def test_a_langfuse_document_with_a_null_id_takes_the_id_its_metadata_holds():
    """A retrieval document written ``{"id": null, "metadata": {"chunk_id": ...}}`` (a common export
    shape) is the chunk its metadata names, not an unnamed document matched by text; a null score
    falls back to the metadata's the same way."""
    from labkit.interop.langfuse import _documents

    docs = _documents({"documents": [{"id": None, "page_content": "Reset it in the portal.", "score": None,
                                      "metadata": {"chunk_id": "doc3#1", "score": 0.8}},
                                     {"id": "doc4#0", "page_content": "x", "metadata": {"chunk_id": "other"}}]},
                      1, [])
    assert [(d["id"], d["score"]) for d in docs] == [("doc3#1", 0.8), ("doc4#0", None)]
