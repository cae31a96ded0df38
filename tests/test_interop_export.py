"""Exporters back to Ragas and DeepEval: a labkit dataset and run written in the peer format
and read back by the importer give the same cases, gold and answers."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.cases import load_cases
from labkit.cli import main

ROOT = Path(__file__).parents[1]
CORPUS = str(ROOT / "data" / "corpus")


def _labkit_run(tmp: Path) -> Path:
    run = tmp / "run"
    assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(run), "--quiet", "--no-score"]) == 0
    return run


def test_deepeval_export_round_trips_a_labkit_run(tmp_path, capsys):
    run = _labkit_run(tmp_path)
    out = tmp_path / "deepeval.json"
    assert main(["export", "deepeval", "--dataset", "data/quick_lab.jsonl", "--run", str(run),
                 "--corpus", CORPUS, "--out", str(out)]) == 0
    recs = json.loads(out.read_text())
    ds = load_cases("data/quick_lab.jsonl")
    assert [r["name"] for r in recs] == [c.id for c in ds]
    assert all(r["context"] for r, c in zip(recs, ds, strict=True) if c.expected_chunks)
    assert all(isinstance(r["completion_time"], float) for r in recs)
    back = tmp_path / "back"
    assert main(["import", "deepeval", str(out), "--out", str(back), "--corpus", CORPUS]) == 0
    again = load_cases(back / "dataset.jsonl")
    assert [c.id for c in again] == [c.id for c in ds]
    assert [c.expected_chunks for c in again] == [c.expected_chunks for c in ds]  # gold back from its text
    ours = {r["case_id"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}
    theirs = [json.loads(x) for x in (back / "run" / "results.jsonl").read_text().splitlines()]
    for r in theirs:
        assert r["answer"] == ours[r["case_id"]]["answer"]
        assert [i["id"] for i in r["retrieved"]] == [i["id"] for i in ours[r["case_id"]]["retrieved"]]
        assert r["latency_ms"] == ours[r["case_id"]]["latency_ms"]


def test_ragas_export_without_a_run_is_a_dataset_of_references(tmp_path):
    out = tmp_path / "ragas.jsonl"
    assert main(["export", "ragas", "--dataset", "data/quick_lab.jsonl", "--corpus", CORPUS, "--out", str(out)]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["response"] is None and r["retrieved_contexts"] is None for r in recs)
    back = tmp_path / "back"
    assert main(["import", "ragas", str(out), "--out", str(back), "--corpus", CORPUS]) == 0
    assert not (back / "run").exists()
    ds = load_cases("data/quick_lab.jsonl")
    again = load_cases(back / "dataset.jsonl")
    assert [c.question for c in again] == [c.question for c in ds]
    assert [c.expected_chunks for c in again] == [c.expected_chunks for c in ds]


def test_export_redacts_what_it_writes(tmp_path):
    ds = tmp_path / "ds.jsonl"
    ds.write_text(json.dumps({"id": "a", "question": "Mail me at jane.doe@example.com?"}) + "\n")
    out = tmp_path / "x.json"
    assert main(["export", "deepeval", "--dataset", str(ds), "--out", str(out)]) == 0
    assert "jane.doe@example.com" not in out.read_text() and "[EMAIL]" in out.read_text()


def test_export_to_a_folder_names_the_folder(tmp_path, capsys):
    assert main(["export", "ragas", "--dataset", "data/quick_lab.jsonl", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "is a folder" in err and ".tmp" not in err, err


def test_export_says_how_many_cases_and_results_did_not_match(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps({"case_id": "no-such-case", "status": "ok", "answer": "a"}) + "\n")
    (run / "manifest.json").write_text("{}")
    out = tmp_path / "r.jsonl"
    assert main(["export", "ragas", "--dataset", "data/quick_lab.jsonl", "--run", str(run), "--out", str(out)]) == 0
    n = len(load_cases("data/quick_lab.jsonl"))
    printed = capsys.readouterr().out
    assert f"{n} case(s) had no result in the run" in printed and "1 result(s) had no case" in printed, printed


def test_export_into_its_run_folder_twice_writes_both_times(tmp_path, capsys):
    """``export ragas --run e1 --out e1/ragas.jsonl`` passed, and the same command again was
    refused: the file the first call wrote was taken for a file of the input --run."""
    run = _labkit_run(tmp_path)
    out = run / "ragas.jsonl"
    for _ in range(2):
        assert main(["export", "ragas", "--dataset", "data/quick_lab.jsonl", "--run", str(run),
                     "--out", str(out)]) == 0, capsys.readouterr().err
    assert out.read_text().count("\n") == len(load_cases("data/quick_lab.jsonl"))


def test_export_refuses_to_write_over_its_dataset_or_a_file_of_its_run(tmp_path, capsys):
    """``export ragas --dataset ds.jsonl --out ds.jsonl`` replaced the dataset by its export."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text('{"id":"a","question":"q1"}\n')
    assert main(["export", "ragas", "--dataset", str(ds), "--out", str(ds)]) == 2
    err = capsys.readouterr().err
    assert f"--out {ds}" in err and f"--dataset {ds}" in err and "Traceback" not in err
    assert ds.read_text() == '{"id":"a","question":"q1"}\n'
    run = _labkit_run(tmp_path)
    before = (run / "results.jsonl").read_bytes()
    assert main(["export", "ragas", "--dataset", "data/quick_lab.jsonl", "--run", str(run),
                 "--out", str(run / "results.jsonl")]) == 2
    assert f"--run {run}" in capsys.readouterr().err and (run / "results.jsonl").read_bytes() == before


def test_export_redacts_with_the_runs_own_patterns(tmp_path):
    """An export of a run went through the catalogue only: a question holding what the run's own
    ``extra_patterns`` mask (as every file the run writes does) was written raw."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text(json.dumps({"id": "t-1", "question": "Why was ticket TCK-123456 refunded twice?",
                              "must_include": ["refund"]}) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--redact-pattern", r"TICKET=TCK-\d{6}", "--quiet", "--no-score"]) == 0
    out = tmp_path / "out.json"
    assert main(["export", "deepeval", "--dataset", str(ds), "--run", str(run), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "TCK-123456" not in text and "[TICKET]" in text
