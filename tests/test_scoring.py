"""score_run: the cycle collector is paused only while a run is scored, and back on after."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from labkit.errors import DatasetError
from labkit.scoring import score_run


def _run(tmp_path: Path, lines: list[dict[str, object]]) -> tuple[Path, Path]:
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps(c) + "\n" for c in [
        {"id": "a", "question": "How do I rotate a key?", "expected_source": "security-runbook"},
        {"id": "b", "question": "What is the refund window?"}]))
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run, ds


def test_the_cycle_collector_is_paused_while_scoring_and_back_on_after(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.metrics import percase

    seen: list[bool] = []
    real = percase.score_columns  # what score_cases and a part of results.jsonl are scored by

    def spy(*args: object, **kw: object) -> object:
        seen.append(gc.isenabled())
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(percase, "score_columns", spy)
    run, ds = _run(tmp_path, [{"case_id": "a", "answer": "Rotate it in the portal.", "retrieved": ["security-runbook#1"]},
                              {"case_id": "b", "answer": "30 days."}])
    assert gc.isenabled()
    m = score_run(run, ds, n_boot=50)
    assert m["n_cases"] == 2 and seen == [False] and gc.isenabled()


def test_the_cycle_collector_is_back_on_after_an_input_error(tmp_path: Path) -> None:
    run, ds = _run(tmp_path, [{"case_id": "zzz", "answer": "x"}])
    with pytest.raises(DatasetError):
        score_run(run, ds, n_boot=50)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that paused it itself finds it paused still
        with pytest.raises(DatasetError):
            score_run(run, ds, n_boot=50)
        assert not gc.isenabled()
    finally:
        gc.enable()



def test_a_runs_own_redaction_settings_decide_what_a_placeholder_is(tmp_path: Path) -> None:
    """Rescoring a run from disk reads its manifest's runner.redaction: an extra pattern's
    ``[TAG]`` may hide a phrase (unmeasured), bracketed capitals no redactor of the run writes
    (``[DOC1]``) are the answer's text, and the case that misses its phrase fails task success."""
    from labkit.runs import RunDir

    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps(c) + "\n" for c in [
        {"id": "a", "question": "Which ticket?", "must_include": ["ticket TK-1234"]},
        {"id": "b", "question": "How do I reset?", "must_include": ["identity check"]}]))
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        {"case_id": "a", "answer": "See ticket [TICKET_ID]."},
        {"case_id": "b", "answer": "Reset it from the portal [DOC1]."}]))
    RunDir(run).write_manifest({"run_id": "run", "runner": {"redaction": {"extra_patterns": {"ticket-id": r"TK-\d+"}}}})
    score_run(run, ds, n_boot=50)
    rows = {r["case_id"]: r for r in RunDir(run).scores().to_dict("records")}
    assert rows["a"]["must_include_coverage_reason"] == "redacted" and rows["a"]["task_success_rate_reason"] == "redacted"
    assert rows["b"]["must_include_coverage"] == 0.0 and rows["b"]["task_success_rate"] == 0.0


def test_lines_naming_cases_the_dataset_lacks_are_no_duplicates_of_each_other(tmp_path: Path) -> None:
    run, ds = _run(tmp_path, [{"case_id": "zz1", "answer": "x"}, {"case_id": "zz2", "answer": "y"}])
    with (run / "results.jsonl").open("a") as f:
        f.write("{bad\n")
    with pytest.raises(DatasetError) as e:
        score_run(run, ds, n_boot=50)
    assert [(p.line, p.field) for p in e.value.problems] == [(3, None)]  # (unknown ids: once the lines read)


def test_results_given_in_memory_are_refused_with_a_case_twice(tmp_path: Path) -> None:
    run, ds = _run(tmp_path, [{"case_id": "a", "answer": "x"}])
    row = {"case_id": "a", "status": "ok", "answer": "x", "retrieved": [], "citations": [], "tool_calls": [],
           "usage": None, "cost_usd": None, "latency_ms": None, "attempts": 1, "error": None, "trace_id": None,
           "from_cache": False}
    with pytest.raises(DatasetError) as e:
        score_run(run, ds, n_boot=50, results=[row, dict(row)])
    assert "duplicate case_id 'a'" in e.value.problems[0].reason


def test_a_rescore_keeps_the_cut_off_the_run_was_scored_at(tmp_path: Path) -> None:
    """`labkit score RUN` rescored a run made with --k 1 at k=5: its precision@k changed, and a
    compare with its twin then refused the pair for different cut-offs."""
    from labkit.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", "data/golden.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(run), "--quiet", "--k", "1"]) == 0
    scored = json.loads((run / "metrics.json").read_text())
    assert main(["score", str(run), "--n-boot", "2000"]) == 0
    man = json.loads((run / "manifest.json").read_text())
    assert man["scoring"]["k"] == 1 and json.loads((run / "metrics.json").read_text()) == scored
    assert main(["score", str(run), "--k", "3", "--n-boot", "200"]) == 0  # a cut-off given is taken
    assert json.loads((run / "manifest.json").read_text())["scoring"]["k"] == 3
    assert score_run(run, n_boot=200)["k"] == 3  # the API keeps the last one too
