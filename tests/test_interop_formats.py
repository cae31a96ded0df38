"""Each import format end to end: a file in that tool's own format is imported, scored and
gated with the CLI exactly as a user would; a malformed file of each format fails with the
line numbers of the bad records (exit 2, no traceback, nothing written).

Fixtures (tests/data/peer/): ragas.jsonl and ragas.csv were written by Ragas 0.4.3 itself
(``EvaluationDataset.from_list(...).to_jsonl / to_csv``); the others are written by hand to
each tool's published schema (DeepEval ``save_as("json")`` test cases, promptfoo eval output
version 3 and a tests YAML, OTLP JSON with OpenInference attributes, Phoenix's span dataframe
rows as JSONL, Langfuse's trace export): promptfoo is a Node tool that CI does not install,
and DeepEval, Phoenix and Langfuse bring servers and SDKs that only write these files after
a live evaluation or a running backend. tests/test_interop_openinference.py adds spans made
by the OpenTelemetry SDK itself. Every answer in them is canned text that simulates a model:
no model runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.cli import main

PEER = Path(__file__).parent / "data" / "peer"
CORPUS = str(Path(__file__).parents[1] / "data" / "corpus")


def _gate(tmp: Path, checks: list[dict], unmeasured: float | None = None) -> str:
    import yaml

    doc: dict = {"version": 1, "name": "imported", "checks": checks}
    if unmeasured is not None:
        doc["unmeasured"] = {"max_rate": unmeasured}
    p = tmp / "gate.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def _import_score(tmp: Path, fmt: str, name: str, *extra: str) -> tuple[Path, dict]:
    out = tmp / "imp"
    assert main(["import", fmt, str(PEER / name), "--out", str(out), "--corpus", CORPUS, *extra]) == 0
    assert main(["score", str(out / "run")]) == 0
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    return out, metrics["metrics"]


def _v(m: dict, name: str) -> float | None:
    return m[name]["value"]


@pytest.mark.parametrize("name", ["ragas.jsonl", "ragas.csv"])
def test_ragas_imports_scores_and_gates(tmp_path, capsys, name):
    out, m = _import_score(tmp_path, "ragas", name)
    printed = capsys.readouterr().out
    assert "reference_contexts -> expected_chunks (gold from text)" in printed
    assert "gold from text: matched 5, no_gold_match 1" in printed
    assert _v(m, "retrieval_hit_rate") == 1.0 and m["retrieval_hit_rate"]["n"] == 5
    assert m["recall_at_k"]["unmeasured_reasons"] == {"no_gold": 1}
    assert _v(m, "recall_at_k") == pytest.approx(0.9)
    assert _v(m, "context_precision") == pytest.approx(0.8)
    assert _v(m, "exact_match") == pytest.approx(2 / 6)
    # the file records no latency or cost: unmeasured, never invented
    assert _v(m, "latency_p95_ms") is None and m["latency_p95_ms"]["unmeasured_reasons"] == {"no_latency": 6}
    assert _v(m, "total_cost_usd") is None
    ok = _gate(tmp_path, [{"metric": "recall_at_k", "op": ">=", "threshold": 0.8, "min_n": 1},
                          {"metric": "exact_match", "op": ">=", "threshold": 0.3, "min_n": 1}])
    assert main(["gate", "--config", ok, str(out / "run")]) == 0
    report = capsys.readouterr().out
    assert "imported from the ragas file" in report and "records no latency_ms, cost_usd, usage" in report
    slow = _gate(tmp_path, [{"metric": "latency_p95_ms", "op": "<=", "threshold": 3500, "min_n": 1}])
    assert main(["gate", "--config", slow, str(out / "run")]) == 1
    case = json.loads((out / "dataset.jsonl").read_text().splitlines()[3])
    assert case["expected_chunks"] == []
    assert case["metadata"]["gold_from_text"]["reason"] == "no_gold_match"


def test_deepeval_imports_scores_and_gates(tmp_path, capsys):
    out, m = _import_score(tmp_path, "deepeval", "deepeval.json")
    printed = capsys.readouterr().out
    assert "completion_time -> results.latency_ms (s -> ms) (6)" in printed
    assert "additional_metadata (6)" in printed  # kept in metadata
    assert _v(m, "recall_at_k") == pytest.approx(0.9)
    assert _v(m, "latency_p50_ms") == pytest.approx(1050.0)
    assert _v(m, "total_cost_usd") == pytest.approx(sum(0.0004 + 0.0001 * i for i in range(6)))
    assert _v(m, "tool_call_accuracy") == 1.0 and m["tool_call_accuracy"]["n"] == 1
    ids = [json.loads(x)["id"] for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert ids == [f"de-{i:03d}" for i in range(1, 7)]
    gate = _gate(tmp_path, [{"metric": "latency_p50_ms", "op": "<=", "threshold": 1100, "min_n": 1},
                            {"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.9, "min_n": 1}])
    assert main(["gate", "--config", gate, str(out / "run")]) == 0


def test_promptfoo_eval_output_imports_scores_and_gates(tmp_path, capsys):
    out, m = _import_score(tmp_path, "promptfoo", "promptfoo_output.json")
    printed = capsys.readouterr().out
    assert "assert.icontains -> must_include (6)" in printed
    assert "assert.llm-rubric (6)" in printed  # no labkit field: kept in metadata
    assert _v(m, "must_include_coverage") == 1.0 and _v(m, "must_not_include_violation") == 0.0
    assert _v(m, "latency_p50_ms") == pytest.approx(1025.0)
    assert _v(m, "cost_per_success") == pytest.approx(0.0002 * 21 / 6)
    assert _v(m, "tokens_per_case") == pytest.approx(sum(120 + i for i in range(6)) / 6)
    line = json.loads((out / "run" / "results.jsonl").read_text().splitlines()[0])
    assert line["peer_grading"] == {"tool": "promptfoo", "pass": True, "score": 1}
    gate = _gate(tmp_path, [{"metric": "must_include_coverage", "op": ">=", "threshold": 1.0, "min_n": 1},
                            {"metric": "cost_per_success", "op": "<=", "threshold": 0.01, "min_n": 1}])
    assert main(["gate", "--config", gate, str(out / "run")]) == 0


def test_promptfoo_tests_yaml_is_a_dataset_without_a_run(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["import", "promptfoo", str(PEER / "promptfoo_tests.yaml"), "--out", str(out)]) == 0
    assert "no outputs (no run directory)" in capsys.readouterr().out
    assert not (out / "run").exists()
    cases = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(cases) == 4 and cases[0]["reference_answer"].startswith("An account is locked")
    assert cases[0]["metadata"]["promptfoo_assert"] == [{"type": "javascript", "value": "output.length < 500"}]
    assert main(["dataset", "validate", str(out / "dataset.jsonl")]) == 0


@pytest.mark.parametrize("name", ["openinference_otlp.json", "phoenix_spans.jsonl"])
def test_openinference_spans_import_score_gate_and_carry_traces(tmp_path, capsys, name):
    out, m = _import_score(tmp_path, "openinference", name)
    assert _v(m, "error_rate") == pytest.approx(1 / 6)
    assert _v(m, "latency_p50_ms") == pytest.approx(1450.0)
    assert _v(m, "tokens_per_case") == pytest.approx(435.0)
    results = [json.loads(x) for x in (out / "run" / "results.jsonl").read_text().splitlines()]
    assert results[0]["retrieved"][0]["id"] == "account-management#3"  # content matched to the chunk
    assert results[3]["status"] == "error" and "timed out" in results[3]["error"]
    traces = [json.loads(x) for x in (out / "run" / "traces.jsonl").read_text().splitlines()]
    assert [t["trace_id"] for t in traces] == [f"{i:032x}" for i in range(1, 7)]
    assert traces[0]["model"] == "gpt-4o-mini" and traces[0]["latency_ms"] == pytest.approx(1200.0)
    assert main(["traces", str(out / "run"), "--format", "json"]) == 0
    gate = _gate(tmp_path, [{"metric": "error_rate", "op": "<=", "threshold": 0.2, "min_n": 1},
                            {"metric": "latency_p95_ms", "op": "<=", "threshold": 2000, "min_n": 1}])
    assert main(["gate", "--config", gate, str(out / "run")]) == 0


def test_langfuse_traces_import_score_and_gate(tmp_path, capsys):
    out, m = _import_score(tmp_path, "langfuse", "langfuse_traces.json")
    printed = capsys.readouterr().out
    assert "latency (s) -> results.latency_ms (6)" in printed and "sessionId (6)" in printed
    assert _v(m, "latency_p50_ms") == pytest.approx(1350.0)
    assert _v(m, "total_cost_usd") == pytest.approx(0.0003 * 21)
    assert _v(m, "tokens_per_case") == pytest.approx(sum(435 + 2 * i for i in range(6)) / 6)
    first = json.loads((out / "run" / "results.jsonl").read_text().splitlines()[0])
    assert first["retrieved"][0]["id"] == "account-management#3"
    assert (out / "run" / "traces.jsonl").is_file()
    gate = _gate(tmp_path, [{"metric": "latency_p95_ms", "op": "<=", "threshold": 2000, "min_n": 1},
                            {"metric": "faithfulness", "op": ">=", "threshold": 0.5, "min_n": 1}])
    assert main(["gate", "--config", gate, str(out / "run")]) == 0


def test_csv_with_a_column_mapping_imports_scores_and_gates(tmp_path, capsys):
    out = tmp_path / "imp"
    args = ["import", "csv", str(PEER / "custom.csv"), "--out", str(out), "--corpus", CORPUS, "--map",
            "question=Question,reference_answer=Answer,answer=Bot reply,reference_contexts=Gold passages,"
            "category=Category"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Bot reply -> results.answer (6)" in printed and "Ticket (6)" in printed
    assert main(["score", str(out / "run")]) == 0
    m = json.loads((out / "run" / "metrics.json").read_text())["metrics"]
    assert _v(m, "exact_match") == pytest.approx(2 / 6)
    # no retrieved column mapped: the retrieval metrics say nothing rather than 0
    assert m["recall_at_k"]["unmeasured_reasons"] == {"no_retrieval": 5, "no_gold": 1}
    # the answer with an e-mail address was redacted on disk: token_f1 says so (a failure reason)
    assert m["token_f1"]["unmeasured_reasons"] == {"redacted": 1}
    strict = _gate(tmp_path, [{"metric": "token_f1", "op": ">=", "threshold": 0.5, "min_n": 1}])
    assert main(["gate", "--config", strict, str(out / "run")]) == 1
    budget = _gate(tmp_path, [{"metric": "token_f1", "op": ">=", "threshold": 0.5, "min_n": 1}], unmeasured=0.2)
    assert main(["gate", "--config", budget, str(out / "run")]) == 0


def test_csv_mapping_from_yaml_and_unknown_field(tmp_path, capsys):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("question: Question\nreference_answer: Answer\n")
    assert main(["import", "csv", str(PEER / "custom.csv"), "--out", str(tmp_path / "a"), "--map", str(mapping)]) == 0
    assert main(["import", "csv", str(PEER / "custom.csv"), "--out", str(tmp_path / "b"), "--map",
                 "question=Question,answr=Bot reply"]) == 2
    err = capsys.readouterr().err
    assert "unknown labkit field(s) answr" in err and "Traceback" not in err


BAD = {
    "ragas": ("bad.jsonl", '{"user_input": "fine", "response": "ok"}\n{oops\n{"response": "no question"}\n'
                           '{"user_input": "q", "retrieved_contexts": "not a list", "response": "r"}\n',
              ["line 2: malformed JSON", "line 3 field 'user_input': missing",
               "line 4 field 'retrieved_contexts'"]),
    "deepeval": ("bad.json", '[\n  {"input": "fine", "actual_output": "ok"},\n  {"input": 7,\n   "actual_output": '
                             '"x"},\n  {"input": "q", "completion_time": -1, "actual_output": "y"}\n]\n',
                 ["line 3 field 'input'", "line 5 field 'completion_time'"]),
    "promptfoo": ("bad.yaml", "tests:\n  - vars:\n      question: fine\n  - vars:\n      topic: two vars\n"
                              "      other: no question\n",
                  ["line 4 field 'vars': no question variable"]),
    "openinference": ("bad.json", '{"resourceSpans": [{"scopeSpans": [{"spans": [\n'
                                  '  {"traceId": "a1", "spanId": "b1", "attributes": []},\n'
                                  '  {"spanId": "b2"}\n]}]}]}\n',
                      ["line 3 field 'traceId'"]),
    "langfuse": ("bad.json", '[\n {"id": "t1", "input": "fine", "output": "ok"},\n {"id": "t2", "input": {"x": 1}}\n]\n',
                 ["line 3 field 'input'"]),
    "csv": ("bad.csv", "Question,Bot reply,Latency\nfine,ok,12\nsecond,ok,fast\n", ["line 3 field 'Latency'"]),
}


@pytest.mark.parametrize(("fmt", "name", "text", "where"), [
    ("ragas", "rows.jsonl", '{"user_input": "fine", "response": "ok"}\n{"user_input": "q\\ud800", "response": "r"}\n',
     "line 2 field 'user_input'"),
    ("deepeval", "cases.json", '[\n {"input": "fine", "actual_output": "ok"},\n {"input": "q",\n  "actual_output": '
                               '"a\\udfff"}\n]\n', "line 3 field '[1].actual_output'"),
    ("langfuse", "traces.json", '[\n {"id": "t1", "input": "fine", "output": "ok",\n  "metadata": {"k": '
                                '["\\ud83d"]}}\n]\n', "line 3 field '[0].metadata.k[0]'"),
    ("ragas", "rows.csv", "user_input,reference_contexts\nfine,['ok']\nq,['a\\U0000d800']\n",
     "line 3 field 'reference_contexts'"),
    ("promptfoo", "tests.yaml", 'tests:\n  - vars:\n      question: fine\n  - vars:\n      question: "hi \\ud800"\n',
     "tests.yaml:5: field 'tests[1].vars.question'"),
])
def test_a_lone_surrogate_in_an_import_is_refused_at_its_line(tmp_path, capsys, fmt, name, text, where):
    """JSON's "\\ud800" decodes to no text (it was a traceback when the case's id was derived); so do
    a Python literal's "\\U0000d800" (a Ragas CSV list cell) and YAML's "\\ud800" (a promptfoo test)."""
    bad = tmp_path / name
    bad.write_text(text)
    assert main(["import", fmt, str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert where in err and "lone surrogate" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("fmt", "name"), [("deepeval", "cases.json"), ("deepeval", "wrapped.json"),
                                           ("ragas", "rows.json")])
def test_an_item_that_is_no_object_is_named_at_its_line(tmp_path, capsys, fmt, name):
    """A JSON array with a string or a number among its objects: each such item is named at its
    own line (it was named with no line at all)."""
    items = '[\n  {"input": "fine", "actual_output": "ok", "user_input": "fine", "response": "ok"},\n  "oops",\n  7\n]'
    bad = tmp_path / name
    bad.write_text('{"goldens":\n' + items + "}\n" if name.startswith("wrapped") else items + "\n")
    assert main(["import", fmt, str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    first = 4 if name.startswith("wrapped") else 3
    assert f"line {first}: must be a JSON object, got str" in err and f"line {first + 1}: must be a JSON object, got int" \
        in err and "Traceback" not in err, err


@pytest.mark.parametrize("fmt", sorted(BAD))
def test_a_malformed_file_of_each_format_fails_naming_its_lines(tmp_path, capsys, fmt):
    name, text, expected = BAD[fmt]
    bad = tmp_path / name
    bad.write_text(text)
    extra = ["--map", "question=Question,answer=Bot reply,latency_ms=Latency"] if fmt == "csv" else []
    out = tmp_path / "out"
    assert main(["import", fmt, str(bad), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err
    for piece in expected:
        assert piece in err, err
    assert not out.exists()  # nothing half-written


def test_malformed_json_document_names_its_line(tmp_path, capsys):
    bad = tmp_path / "out.json"
    bad.write_text('{"results": {"version": 3,\n "results": [\n  {"vars": {"question": "q"},}\n]}}\n')
    assert main(["import", "promptfoo", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "line 3: malformed JSON" in capsys.readouterr().err


def test_import_refuses_an_out_folder_holding_an_earlier_import(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out)]) == 0
    assert main(["score", str(out / "run")]) == 0
    assert main(["import", "promptfoo", str(PEER / "promptfoo_tests.yaml"), "--out", str(out)]) == 2
    assert "already holds an import" in capsys.readouterr().err


def test_promptfoo_output_with_several_providers_needs_one_chosen(tmp_path, capsys):
    doc = json.loads((PEER / "promptfoo_output.json").read_text())
    doc["results"]["results"][1]["provider"] = {"id": "anthropic:claude"}
    p = tmp_path / "two.json"
    p.write_text(json.dumps(doc, indent=1))
    assert main(["import", "promptfoo", str(p), "--out", str(tmp_path / "a")]) == 2
    assert "--provider" in capsys.readouterr().err
    assert main(["import", "promptfoo", str(p), "--out", str(tmp_path / "b"), "--provider", "anthropic:claude"]) == 0
    assert len((tmp_path / "b" / "dataset.jsonl").read_text().splitlines()) == 1


def test_secrets_in_a_peer_file_never_reach_disk(tmp_path):
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out), "--corpus", CORPUS]) == 0
    assert "jane.doe@example.com" in (PEER / "ragas.jsonl").read_text()
    for f in (out / "dataset.jsonl", out / "run" / "results.jsonl", out / "run" / "manifest.json"):
        assert "jane.doe@example.com" not in f.read_text()
    assert "[EMAIL]" in (out / "run" / "results.jsonl").read_text()


def test_imported_manifest_is_marked_and_pre_registration_unverifiable(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out), "--corpus", CORPUS]) == 0
    man = json.loads((out / "run" / "manifest.json").read_text())
    assert man["imported"]["format"] == "ragas"
    assert man["imported"]["sha256"] == __import__("hashlib").sha256((PEER / "ragas.jsonl").read_bytes()).hexdigest()
    assert "created_at" not in man and man["dataset"]["n_cases"] == 6
    assert main(["score", str(out / "run")]) == 0
    gate = Path(_gate(tmp_path, [{"metric": "recall_at_k", "op": ">=", "threshold": 0.5, "min_n": 1}]))
    assert main(["gate", "lock", str(gate)]) == 0
    capsys.readouterr()
    assert main(["gate", "--config", str(gate), str(out / "run"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["pre_registration"]["status"] == "unverifiable"


def test_score_at_import_reads_the_answers_as_given_like_the_runner(tmp_path, capsys):
    """results.jsonl on disk is redacted; --score scores the in-memory answers, as labkit run does."""
    out = tmp_path / "imp"
    args = ["import", "csv", str(PEER / "custom.csv"), "--out", str(out), "--corpus", CORPUS, "--score", "--map",
            "question=Question,reference_answer=Answer,answer=Bot reply,reference_contexts=Gold passages"]
    assert main(args) == 0
    assert "scored 6 cases" in capsys.readouterr().out
    m = json.loads((out / "run" / "metrics.json").read_text())["metrics"]
    assert m["token_f1"]["unmeasured"] == 0  # the e-mail address was scored as written
    assert "jane.doe@example.com" not in (out / "run" / "results.jsonl").read_text()
    assert main(["gate", "--config", _gate(tmp_path, [{"metric": "token_f1", "op": ">=", "threshold": 0.5,
                                                        "min_n": 1}]), str(out / "run")]) == 0


def test_promptfoo_tests_csv_reads_expected_columns(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["import", "promptfoo", str(PEER / "promptfoo_tests.csv"), "--out", str(out)]) == 0
    cases = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert cases[0]["must_include"] == ["30 minutes"] and cases[0]["must_not_include"] == ["I don't know"]
    assert cases[1]["reference_answer"] == "Starter allows 100 requests per minute."  # a bare value: equals
    assert cases[1]["metadata"]["promptfoo_assert"] == [{"type": "llm-rubric", "value": "mentions every plan"}]
    assert cases[2]["must_include"] == ["24", "hours"]
    assert cases[0]["metadata"]["vars"] == {"team": "support"} and cases[0]["metadata"]["description"] == "lockout"


def test_scorecard_of_an_import_without_cost_or_latency_says_no_data(tmp_path, capsys):
    """A file that records no cost must not read as 'cost per success $0: SLO met'."""
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out), "--corpus", CORPUS]) == 0
    assert main(["score", str(out / "run")]) == 0
    capsys.readouterr()
    root = Path(__file__).parents[1]
    main(["scorecard", "--baseline", str(out / "run"), "--out", str(tmp_path / "sc"), "--no-html", "--json",
          "--root", str(root), "--dataset", str(out / "dataset.jsonl")])
    card = json.loads(capsys.readouterr().out)
    slos = {s["kind"]: s for s in card["slos"]}
    assert slos["latency"]["status"] == "no_data"
    assert slos["cost_per_success"]["status"] == "no_data" and slos["cost_per_success"]["observed"] is None


def test_a_promptfoo_result_without_a_response_is_not_judged_a_success(tmp_path, capsys):
    p = tmp_path / "pf.json"
    p.write_text(json.dumps({"version": 3, "results": {"results": [{"vars": {"question": "q"}, "response": None}]}}))
    out = tmp_path / "o"
    assert main(["import", "promptfoo", str(p), "--out", str(out), "--score"]) == 0
    assert (out / "dataset.jsonl").exists() and not (out / "run").exists()
    assert "response.output: no output in the result" in capsys.readouterr().out


def test_a_non_finite_number_is_refused_at_import(tmp_path, capsys):
    p = tmp_path / "huge.jsonl"
    p.write_text('{"user_input": "q", "response": "x", "n": 1e999}\n')
    out = tmp_path / "o"
    assert main(["import", "ragas", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 1 field 'metadata.ragas.n'" in err and "not a finite number" in err, err
    assert not out.exists()


def test_a_secret_in_a_column_name_is_redacted_in_the_summary(tmp_path, capsys):
    p = tmp_path / "s.jsonl"
    p.write_text('{"user_input": "q", "response": "x", "meta_AKIA2E0A8F3B244C9986": "v"}\n')
    for i, extra in enumerate(([], ["--json"])):
        assert main(["import", "ragas", str(p), "--out", str(tmp_path / f"o{i}"), *extra]) == 0
        printed = capsys.readouterr().out
        assert "AKIA2E0A8F3B244C9986" not in printed and "ragas.meta_" in printed, printed


def test_import_refuses_any_non_empty_out_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "notes.txt").write_text("an earlier run's notes\n")
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "notes.txt" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_csv_with_a_duplicate_column_name_is_refused(tmp_path, capsys):
    p = tmp_path / "dup.csv"
    p.write_text("user_input,response,user_input\nq,x,q2\n")
    assert main(["import", "ragas", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "line 1 field 'user_input': duplicate column name" in capsys.readouterr().err


def test_a_mapping_naming_one_field_twice_is_refused(tmp_path, capsys):
    p = tmp_path / "c.csv"
    p.write_text("Question,Answer\nq,a\n")
    assert main(["import", "csv", str(p), "--out", str(tmp_path / "o"), "--map", "question=Question,question=Answer"]) == 2
    assert "question" in (err := capsys.readouterr().err) and "twice" in err, err


def test_a_fractional_token_count_is_refused(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("Question,Answer,In\nq,a,1.5\n")
    assert main(["import", "csv", str(p), "--out", str(tmp_path / "o"),
                 "--map", "question=Question,answer=Answer,input_tokens=In"]) == 2
    assert "line 2 field 'In': must be a whole number" in capsys.readouterr().err


def test_deepeval_additional_metadata_that_is_no_object_is_kept_and_said(tmp_path, capsys):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"input": "q", "additional_metadata": "from the March export"}]))
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 0
    assert "additional_metadata (1)" in capsys.readouterr().out
    case = json.loads((out / "dataset.jsonl").read_text())
    assert case["metadata"]["additional_metadata"] == "from the March export"


def test_a_langfuse_trace_without_output_is_not_judged_a_success(tmp_path, capsys):
    p = tmp_path / "lf.json"
    p.write_text(json.dumps([{"id": "t1", "input": "q"}]))
    out = tmp_path / "o"
    assert main(["import", "langfuse", str(p), "--out", str(out), "--score"]) == 0
    assert (out / "dataset.jsonl").exists() and not (out / "run").exists()
    assert "output: no answer text in the trace" in capsys.readouterr().out


def test_a_langfuse_trace_with_an_unreadable_time_is_a_field_error(tmp_path, capsys):
    p = tmp_path / "lf.json"
    p.write_text(json.dumps([{"id": "t1", "input": "q", "output": "a", "timestamp": "yesterday"}]))
    assert main(["import", "langfuse", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "line 1 field 'timestamp'" in capsys.readouterr().err


@pytest.mark.parametrize(("fmt", "head", "extra"), [("csv", "Q,A", ["--map", "question=Q,answer=A"]),
                                                    ("ragas", "user_input,response", []),
                                                    ("deepeval", "input,actual_output", [])])
def test_a_csv_quote_never_closed_is_refused_at_its_line_and_column(tmp_path, capsys, fmt, head, extra):
    col = head.split(",")[1]
    p = tmp_path / "u.csv"
    p.write_text(f'{head}\nq0,"two\nlines"\nq1,"oops\nq2,a2\nq3,a3\n')
    out = tmp_path / "o"
    assert main(["import", fmt, str(p), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert f"line 4 field '{col}'" in err and "never closed" in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_closed_multi_line_csv_cell_is_one_cell(tmp_path, capsys):
    p = tmp_path / "m.csv"
    p.write_text('Q,A\nq1,"two\nlines, one cell"\nq2,a2\n')
    out = tmp_path / "o"
    assert main(["import", "csv", str(p), "--out", str(out), "--map", "question=Q,answer=A"]) == 0
    rows = [json.loads(x) for x in (out / "run" / "results.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["two\nlines, one cell", "a2"]


@pytest.mark.parametrize(("fmt", "name", "text", "where"), [
    ("ragas", "r.jsonl", json.dumps({"user_input": "q", "reference_tool_calls": [{"name": "t", "args": "abc"}]}),
     "line 1 field 'reference_tool_calls'"),
    ("ragas", "r.csv", 'user_input,reference_contexts\nq,"{[1]: 2}"', "line 2 field 'reference_contexts'"),
    ("ragas", "r.csv", "user_input,reference_contexts\nq," + "[" * 100000, "line 2 field 'reference_contexts'"),
    ("deepeval", "d.json", '[{"input": "q", "actual_output": "a", "token_cost": 1' + "0" * 400 + "}]",
     "line 1 field 'token_cost'"),
    ("csv", "c.csv", "Q,L\nq," + "[" * 100000, "line 2 field 'L'"),
])
def test_a_foreign_value_of_the_wrong_type_is_a_field_error_not_a_traceback(tmp_path, capsys, fmt, name, text, where):
    p = tmp_path / name
    p.write_text(text + "\n")
    out = tmp_path / "o"
    extra = ["--map", "question=Q,must_include=L"] if fmt == "csv" else []
    assert main(["import", fmt, str(p), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize(("fmt", "doc", "where"), [
    ("langfuse", [{"id": "t1", "input": "q", "output": "a",
                   "observations": [{"type": "GENERATION", "usage": {"input": 12.7, "output": 3}}]}],
     "field 'usage.input'"),
    ("langfuse", [{"id": "t1", "input": "q", "output": "a",
                   "observations": [{"type": "GENERATION", "usageDetails": {"output": 2.5}}]}],
     "field 'usageDetails.output'"),
    ("promptfoo", {"results": {"results": [{"vars": {"question": "q"},
                                            "response": {"output": "a", "tokenUsage": {"prompt": 12.7}}}]}},
     "field 'tokenUsage.prompt'"),
])
def test_a_fractional_token_count_is_refused_by_every_importer(tmp_path, capsys, fmt, doc, where):
    p = tmp_path / "f.json"
    p.write_text(json.dumps(doc))
    out = tmp_path / "o"
    assert main(["import", fmt, str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert where in err and "must be a whole number of tokens" in err, err
    assert not out.exists()


def test_deepeval_csv_reads_tool_calls_from_json_list_cells(tmp_path, capsys):
    import csv

    p = tmp_path / "d.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["input", "actual_output", "expected_tools", "tools_called"])
        w.writerow(["q", "a", json.dumps([{"name": "search", "input_parameters": {"q": "x"}}]),
                    json.dumps([{"name": "search", "input_parameters": {"q": "x"}, "output": "hit"}])])
        w.writerow(["q2", "a2", "not json", ""])
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 2
    assert "line 3 field 'expected_tools'" in capsys.readouterr().err
    p.write_text("\n".join(p.read_text().splitlines()[:2]) + "\n")
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 0
    case = json.loads((out / "dataset.jsonl").read_text())
    assert case["expected_tools"] == [{"name": "search", "args": {"q": "x"}}]
    res = json.loads((out / "run" / "results.jsonl").read_text())
    assert res["tool_calls"] == [{"name": "search", "args": {"q": "x"}, "status": "ok", "output": "hit"}]


#: JSON list cells labkit's one strict decoder refuses (labkit.io.loads_line), and what it says
BAD_CELLS = {
    "duplicate key 'id'": '[{"id": "a", "id": "b"}]',
    "NaN is not a JSON number": "[NaN]",
    "byte order mark": '\ufeff["a"]',
    "nested more than 200 levels deep": "[" * 300 + "]" * 300,
    "lone surrogate": '["\\ud800"]',
    "unreadable number": "[1" + "0" * 5000 + "]",
}
#: (format, header, the list column, the options): a list cell of each importer reading CSV
LIST_CELLS = [pytest.param("csv", ["Q", "L"], "L", ["--map", "question=Q,must_include=L"], id="csv"),
              pytest.param("ragas", ["user_input", "reference_contexts"], "reference_contexts", [], id="ragas"),
              pytest.param("deepeval", ["input", "context"], "context", [], id="deepeval"),
              pytest.param("deepeval", ["input", "actual_output", "expected_tools"], "expected_tools", [],
                           id="deepeval-tools")]


@pytest.mark.parametrize(("fmt", "head", "col", "extra"), LIST_CELLS)
@pytest.mark.parametrize("reason", sorted(BAD_CELLS))
def test_a_json_list_cell_is_decoded_strictly_by_every_importer(tmp_path, capsys, fmt, head, col, extra, reason):
    """One cell parser (labkit.io.loads_line) for every importer: a cell the strict decoder refuses
    is refused by each, naming the file, the row's line and the column (the CSV and Ragas
    importers decoded cells with plain json.loads: a BOM cell was read as text, a 5000-digit
    number was a traceback, the strict reason was never said)."""
    import csv

    good = {"expected_tools": json.dumps([{"name": "search"}])}.get(col, json.dumps(["alpha", "beta"]))
    p = tmp_path / "cells.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerow(["q1", *(["a1"] if len(head) == 3 else []), good])
        w.writerow(["q2", *(["a2"] if len(head) == 3 else []), BAD_CELLS[reason]])
    out = tmp_path / "o"
    assert main(["import", fmt, str(p), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert f"{p}: 1 invalid line: line 3 field '{col}': " in err and reason in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
    p.write_text("\n".join(p.read_text(encoding="utf-8").splitlines()[:2]) + "\n", encoding="utf-8")
    assert main(["import", fmt, str(p), "--out", str(out), *extra]) == 0
    case = json.loads((out / "dataset.jsonl").read_text())
    got = {"L": case.get("must_include"), "expected_tools": case.get("expected_tools")}.get(
        col, case["metadata"].get("reference_contexts"))
    assert got == ([{"name": "search", "args": {}}] if col == "expected_tools" else ["alpha", "beta"]), case


def test_an_optional_null_name_in_deepeval_still_gets_the_derived_id(tmp_path, capsys):
    """DeepEval's ``name`` is optional (``save_as`` writes null): null there is no name, so the case
    gets the derived id; labkit's own dataset refuses ``"id": null`` (tests/test_cases.py)."""
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"input": "q", "actual_output": "a", "name": None}]))
    assert main(["import", "deepeval", str(p), "--out", str(tmp_path / "o")]) == 0
    case = json.loads((tmp_path / "o" / "dataset.jsonl").read_text())
    assert case["id"].startswith("q-"), case


def test_an_imported_case_id_holding_a_secret_is_refused_before_anything_is_written(tmp_path, capsys):
    """dataset.jsonl keeps case ids as they are (the run scores against them): an id the redaction
    would change is refused at its record, as labkit run refuses it, and nothing is written."""
    import json

    src = tmp_path / "de.json"
    src.write_text(json.dumps([{"name": "ok-1", "input": "q1", "actual_output": "a1"},
                               {"name": "case-sk-proj-PLANTEDimport0123456789abcd", "input": "q2",
                                "actual_output": "a2"}]), encoding="utf-8")
    out = tmp_path / "imp"
    assert main(["import", "deepeval", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "de.json" in err and "'id'" in err and "[API_KEY]" in err and "PLANTEDimport" not in err
    assert not (out / "dataset.jsonl").exists() and not (out / "run").exists()


def test_an_import_that_fails_while_writing_leaves_nothing_and_a_retry_succeeds(tmp_path, capsys, monkeypatch):
    """An import is all-or-nothing on disk too: a failure while the run is written (here a full
    disk) leaves no dataset.jsonl and no empty run/ behind (it did, and the leftovers refused a
    retry as "already holds an import")."""
    import labkit.interop.core as core

    real = core._write_run

    def full_disk(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError(28, "No space left on device", str(args[0] / "manifest.json"))

    monkeypatch.setattr(core, "_write_run", full_disk)
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'run' / 'manifest.json'}: No space left on device" in err and "Traceback" not in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))
    monkeypatch.setattr(core, "_write_run", real)
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset.jsonl", "run"]
    manifest = json.loads((out / "run" / "manifest.json").read_text())
    assert manifest["dataset"]["path"] == str((out / "dataset.jsonl").resolve())


def test_an_import_into_an_existing_empty_folder_fills_it(tmp_path, capsys):
    out = tmp_path / "imp"
    out.mkdir()
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset.jsonl", "run"]
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(("record", "where"), [
    ({"question": "q\ud800"}, "question"),
    ({"question": "q", "case": {"metadata": {"k": ["\udfff"]}}}, "metadata.k[0]"),
    ({"question": "q", "result": {"status": "ok", "answer": "a", "tool_calls": [{"name": "t", "args": {"k": "\ud800"}}]}},
     "results.tool_calls[0].args.k"),
    ({"question": "q", "result": {"status": "ok", "answer": "a"}, "retrieved_texts": ["\ud800"]}, "retrieved[0]"),
])
def test_a_lone_surrogate_any_reader_lets_through_is_refused_before_anything_is_derived(tmp_path, record, where):
    """The importers' one last check (labkit.interop.core): a record's value that holds a lone
    surrogate, whichever decoder gave it, is refused naming the record's line and field before a
    case id is derived from it or a file is written (both were a UnicodeEncodeError traceback)."""
    from labkit.errors import DatasetError
    from labkit.interop.core import FieldLog, Record, write_import

    recs = [Record(line=1, question="fine"), Record(line=2, **record)]
    out = tmp_path / "o"
    with pytest.raises(DatasetError) as e:
        write_import(recs, FieldLog(), fmt="csv", source=tmp_path / "src.csv", out_dir=out)
    assert [(p.line, p.field) for p in e.value.problems] == [(2, where)], e.value.problems
    assert "lone surrogate" in e.value.problems[0].reason and not out.exists()


def test_a_langfuse_document_score_past_a_floats_range_is_refused_at_its_field(tmp_path, capsys):
    """A score of 1 followed by 400 zeros is read by the one numeric reader (labkit.interop.values.number):
    refused naming the observation's line and the field (it was an OverflowError traceback)."""
    p = tmp_path / "lf.json"
    p.write_text('[{"id": "t1", "input": "q", "output": "a", "observations": [\n {"type": "RETRIEVER", "output": '
                 '{"documents": [{"page_content": "x", "score": 0.5}, {"page_content": "y", "score": 1'
                 + "0" * 400 + "}]}}]}]\n")
    out = tmp_path / "o"
    assert main(["import", "langfuse", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 2 field 'output.documents[1].score'" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_deepeval_object_with_goldens_and_test_cases_imports_both(tmp_path, capsys):
    """An EvaluationDataset holds goldens and test cases: an object with both lists gives every one
    of them, goldens first (the test cases were dropped without a word)."""
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"goldens": [{"input": "g1", "expected_output": "r1"}],
                             "test_cases": [{"input": "t1", "actual_output": "a1"}, {"input": "t2", "actual_output": "a2"}]},
                            indent=1))
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 0
    cases = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert [c["question"] for c in cases] == ["g1", "t1", "t2"]
    assert len((out / "run" / "results.jsonl").read_text().splitlines()) == 2


def test_a_deepeval_list_key_that_holds_no_list_is_refused(tmp_path, capsys):
    p = tmp_path / "d.json"
    p.write_text('{"goldens": [{"input": "g1"}],\n "test_cases": {"input": "t1"}}\n')
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 1 field 'test_cases': must be a list" in err and not out.exists(), err


def test_a_csv_row_without_an_answer_has_no_results_line(tmp_path, capsys):
    """As for every other format, a record with no answer is not judged (no results line), and the
    summary says so; it was an ``ok`` line with an empty answer. An error status is a result."""
    p = tmp_path / "c.csv"
    p.write_text("Q,A,S,L\nq1,a1,,12\nq2,,,30\nq3,,error,\n")
    out = tmp_path / "o"
    assert main(["import", "csv", str(p), "--out", str(out), "--map", "question=Q,answer=A,status=S,latency_ms=L"]) == 0
    printed = capsys.readouterr().out
    res = [json.loads(x) for x in (out / "run" / "results.jsonl").read_text().splitlines()]
    assert [(r["status"], r["answer"]) for r in res] == [("ok", "a1"), ("error", None)], res
    assert len((out / "dataset.jsonl").read_text().splitlines()) == 3
    assert "A -> results.answer (2)" in printed and "L -> results.latency_ms (2)" in printed, printed
    assert "L: no answer in the row: a result field without an answer is no result (1)" in printed, printed


@pytest.mark.parametrize("named_first", [True, False])
def test_a_renamed_repeated_question_never_takes_an_id_the_file_gives(tmp_path, capsys, named_first):
    """Two records with one question keep both cases, the second renamed ``<id>-<line>``: a name that
    is taken (a record named so, before or after) gives another, never a dataset with one id twice
    (or a renamed case refused as a duplicate of a name the user gave once)."""
    from labkit.cases import derive_id

    named = {"input": "other", "name": derive_id("q") + "-3", "actual_output": "x"}
    rows = [named, {"input": "q", "actual_output": "a"}, {"input": "q", "actual_output": "b"}]
    if not named_first:
        rows = [rows[1], rows[2], {**named, "name": derive_id("q") + "-2"}]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 0, capsys.readouterr().err
    ids = [json.loads(x)["id"] for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(set(ids)) == 3 and (rows[0] if named_first else rows[2])["name"] in ids, ids
    res = [json.loads(x)["case_id"] for x in (out / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(res) == sorted(ids)


def test_a_name_the_file_gives_is_kept_when_a_derived_id_came_first(tmp_path, capsys):
    from labkit.cases import derive_id

    rows = [{"input": "q", "actual_output": "a"}, {"input": "z", "name": derive_id("q"), "actual_output": "b"}]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["import", "deepeval", str(p), "--out", str(out)]) == 0, capsys.readouterr().err
    cases = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert [(c["question"], c["id"]) for c in cases] == [("q", derive_id("q") + "-1"), ("z", derive_id("q"))]


@pytest.mark.parametrize(("fmt", "name", "text", "extra"), [
    ("csv", "c.csv", "Q,A,IN,OUT\nq,a,12,\n", ["--map", "question=Q,answer=A,input_tokens=IN,output_tokens=OUT"]),
    ("promptfoo", "p.json", json.dumps({"results": {"results": [{"vars": {"question": "q"}, "response": {
        "output": "a", "tokenUsage": {"prompt": 12}}}]}}), []),
    ("langfuse", "l.json", json.dumps([{"id": "t1", "input": "q", "output": "a", "observations": [
        {"type": "GENERATION", "usage": {"input": 5}}, {"type": "GENERATION", "usage": {"input": 7}}]}]), []),
])
def test_a_token_count_the_source_does_not_record_stays_unknown(tmp_path, capsys, fmt, name, text, extra):
    """A usage with the input count only keeps that count: the output count is unknown, never 0 (it
    was written as 0 tokens whenever the other count was there)."""
    p = tmp_path / name
    p.write_text(text)
    out = tmp_path / "o"
    assert main(["import", fmt, str(p), "--out", str(out), *extra]) == 0, capsys.readouterr().err
    assert json.loads((out / "run" / "results.jsonl").read_text())["usage"] == {"input_tokens": 12}


def test_an_imported_runs_lines_edited_after_the_import_are_refused(tmp_path, capsys):
    """An imported run recorded no hash of the results.jsonl the importer wrote: a line edited after
    the import (an answer made to pass) was rescored as the imported evidence. The run records it
    now, as the runner's runs do; the source file stays the evidence of the import."""
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out), "--corpus", CORPUS]) == 0
    run = out / "run"
    man = json.loads((run / "manifest.json").read_text())
    assert isinstance(man.get("results_sha256"), str) and len(man["results_sha256"]) == 64
    assert main(["score", str(run)]) == 0
    lines = (run / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["answer"] = (first.get("answer") or "") + " edited"
    (run / "results.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    capsys.readouterr()
    assert main(["score", str(run)]) == 2
    assert "not the results the run wrote" in capsys.readouterr().err
