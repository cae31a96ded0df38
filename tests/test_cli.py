"""The CLI contracts: exit codes 0/1/2, one-line errors, --json reports, rescoring by hand."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import main

GOLDEN = "data/golden.jsonl"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in ("baseline", "variant"):
        code = main(["run", "--dataset", GOLDEN, "--pipeline", f"data/pipelines/{name}.yaml",
                     "--out", str(root / name), "--quiet"])
        assert code == 0
    return root


def test_validate_ok_and_bad_file_names_all_lines(tmp_path, capsys):
    assert main(["dataset", "validate", GOLDEN]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "fine"}\n{oops\n{"id": "a", "question": "dup"}\n{"id": "b"}\n')
    assert main(["dataset", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "malformed JSON" in err
    assert "line 3" in err and "duplicate id" in err
    assert "line 4" in err and "'question': missing" in err
    assert "Traceback" not in err



def test_validate_refuses_an_id_a_run_refuses(tmp_path, capsys):
    """`dataset validate` said "1 valid cases" of a dataset whose case id holds what redaction
    hides, and `labkit run` then refused it: validate checks the ids as a run with the default
    redaction does, at the case's line."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text('\n{"id": "ok-1", "question": "fine?"}\n\n'
                  '{"id": "sk-proj-abcdefghijklmnop1234567890", "question": "Where?"}\n')
    assert main(["dataset", "validate", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "line 4" in err and "'id'" in err and "holds what redaction hides" in err and "Traceback" not in err
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "line 4" in capsys.readouterr().err


def test_validate_names_an_id_redaction_hides_beside_the_other_bad_lines(tmp_path, capsys):
    """With another line bad, the id check was skipped: every bad line is named in one error."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text('{"id": "a", "question": "fine?", "tags": {"kind": "nope"}}\n'
                  '{"id": "sk-proj-abcdefghijklmnop1234567890", "question": "Where?"}\n')
    assert main(["dataset", "validate", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "tags.kind" in err and "line 2" in err and "holds what redaction hides" in err, err
    assert "abcdefghijklmnop" not in err


def test_run_writes_complete_run_directory(runs):
    for name in ("baseline", "variant"):
        d = runs / name
        for f in ("manifest.json", "results.jsonl", "traces.jsonl", "scores.csv", "metrics.json"):
            assert (d / f).is_file(), f
        man = json.loads((d / "manifest.json").read_text())
        assert man["dataset"]["n_cases"] == 70 and man["pipeline"]["config_hash"]
        lines = (d / "results.jsonl").read_text().splitlines()
        assert len(lines) == 70
        m = json.loads((d / "metrics.json").read_text())
        assert m["metrics"]["retrieval_hit_rate"]["stage"] == "retrieval"


def test_gate_exit_codes_follow_the_gate(runs, capsys):
    base = str(runs / "baseline")
    assert main(["gate", "--config", "data/gate.yaml", base, "--thresholds-only"]) == 0
    capsys.readouterr()
    assert main(["gate", "--config", "data/gate.yaml", str(runs / "variant"), "--baseline", base, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["verdict"] == "fail"
    assert [(c["kind"], c["metric"]) for c in rep["checks"] if not c["passed"]] == [
        ("absolute", "faithfulness"), ("regression", "faithfulness")]
    assert {"metric", "op", "threshold", "observed", "passed", "reason"} <= set(rep["checks"][0])


def test_gate_ci_outputs_and_baseline(runs, tmp_path):
    junit, md = tmp_path / "g.xml", tmp_path / "g.md"
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n  - {metric: retrieval_hit_rate, op: '>=', threshold: 0.8}\n"
                    "regression:\n  - {metric: faithfulness, max_drop: 0.02}\n")
    code = main(["gate", "--config", str(gate), str(runs / "variant"), "--baseline", str(runs / "baseline"),
                 "--junit", str(junit), "--markdown", str(md)])
    assert code == 1  # the variant's faithfulness drop is beyond the margin
    assert 'failures="1"' in junit.read_text() and "faithfulness" in md.read_text()
    assert main(["gate", "--config", str(gate), str(runs / "baseline"), "--thresholds-only"]) == 0


@pytest.mark.parametrize(("flag", "target"), [
    ("--junit", "gate"), ("--markdown", "gate_lock"), ("--markdown", "run_metrics"),
    ("--junit", "baseline_results"), ("--markdown", "reviews"), ("--junit", "dataset"),
])
def test_gate_refuses_a_report_over_one_of_its_inputs(runs, tmp_path, capsys, flag, target):
    """``gate --junit data/gate.yaml``: the report replaced the locked gate (the next gate run said
    "malformed YAML"); over a run's metrics.json it broke the scoring record. Refused, nothing written."""
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n  - {metric: retrieval_hit_rate, op: '>=', threshold: 0.8}\n"
                    "regression:\n  - {metric: faithfulness, max_drop: 0.02}\n")
    assert main(["gate", "lock", str(gate)]) == 0
    run, base = tmp_path / "variant", tmp_path / "baseline"
    shutil.copytree(runs / "variant", run)
    shutil.copytree(runs / "baseline", base)
    reviews, ds = tmp_path / "reviews.jsonl", tmp_path / "golden.jsonl"
    reviews.write_text("")
    shutil.copy(GOLDEN, ds)
    out = {"gate": gate, "gate_lock": tmp_path / "gate.yaml.lock.json", "run_metrics": run / "metrics.json",
           "baseline_results": base / "results.jsonl", "reviews": reviews, "dataset": ds}[target]
    assert out.is_file()
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["gate", "--config", str(gate), str(run), "--baseline", str(base), "--reviews", str(reviews),
                 "--dataset", str(ds), flag, str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {out} would overwrite" in err and "Traceback" not in err and err.count("\n") == 1, err
    assert out.read_bytes() == before


@pytest.mark.parametrize("link", [False, True])
def test_gate_refuses_both_reports_to_one_file(runs, tmp_path, capsys, link):
    """``gate --junit X --markdown X`` wrote the JUnit report, then the markdown over it: a CI job
    reading X as JUnit found no test cases. Refused before anything is judged (a symlink too)."""
    out = tmp_path / "gate-report"
    other = out
    if link:
        out.write_text("")
        other = tmp_path / "link"
        other.symlink_to(out)
    assert main(["gate", "--config", "data/gate.yaml", str(runs / "variant"), "--junit", str(out),
                 "--markdown", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"--markdown {other} is the --junit file too" in err and "Traceback" not in err, err
    assert err.count("\n") == 1
    assert not out.exists() or out.read_text() == ""


@pytest.mark.parametrize(("args", "code"), [
    (["gate", "--config", "data/gate.yaml", "{variant}", "--thresholds-only"], 1),
    (["gate", "--config", "data/gate.yaml", "{variant}", "--thresholds-only", "--json"], 1),
    (["gate", "--config", "data/gate.yaml", "{baseline}", "--thresholds-only"], 0),
])
def test_a_closed_stdout_never_changes_the_exit_code(runs, tmp_path, args, code):
    """``labkit gate ... | true``: the reader gone, the failing gate exited 0 (its JUnit file said
    failures="1"), so a CI job passed on a FAIL. The verdict's code stands, the rest of the work
    is done (the JUnit file is written), and no traceback reaches stderr."""
    import os

    junit = tmp_path / "g.xml"
    argv = [a.format(variant=runs / "variant", baseline=runs / "baseline") for a in args]
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    try:
        p = subprocess.run([sys.executable, "-m", "labkit", *argv, "--junit", str(junit)], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert ('failures="0"' if code == 0 else 'failures="') in junit.read_text()


def test_gate_config_and_usage_errors_exit_2(runs, tmp_path, capsys):
    bad = tmp_path / "gate.yaml"
    bad.write_text("checks:\n  - {metric: nope, op: '>=', threshold: 1}\n")
    assert main(["gate", "--config", str(bad), str(runs / "baseline")]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'nope'" in err and "faithfulness" in err and err.count("\n") == 1
    assert main(["gate", str(runs / "baseline")]) == 2
    assert main(["gate", "--config", "data/gate.yaml", str(tmp_path / "missing")]) == 2
    assert main(["run", "--dataset", GOLDEN]) == 2
    assert main(["no-such-command"]) == 2


def test_gate_lock_then_run_records_it(tmp_path, capsys):
    gate = tmp_path / "gate.yaml"
    shutil.copy("data/gate.yaml", gate)
    assert main(["gate", "lock", str(gate)]) == 0
    out = tmp_path / "run"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(out), "--gate", str(gate), "--quiet"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["gate"]["locked_at"] and man["gate"]["hash"]
    capsys.readouterr()
    assert main(["gate", "--config", str(gate), str(out), "--thresholds-only", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pre_registration"]["status"] == "pre_registered"
    gate.write_text(gate.read_text().replace("0.85", "0.5"))
    assert main(["gate", "--config", str(gate), str(out), "--thresholds-only"]) == 1


def test_score_recomputes_from_hand_written_results(tmp_path, capsys):
    run = tmp_path / "recorded"
    run.mkdir()
    lines = [
        {"case_id": "sec-001", "status": "ok",
         "answer": "Start identity verification in the security portal. [security-runbook#2]",
         "retrieved": [{"id": "security-runbook#2", "source": "security-runbook"}],
         "citations": ["security-runbook#2"], "latency_ms": 1200.0, "cost_usd": 0.01},
        {"case_id": "sup-001", "status": "error", "error": "upstream 503", "latency_ms": 30000.0},
    ]
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = tmp_path / "two.jsonl"
    picked = [ln for ln in Path(GOLDEN).read_text(encoding="utf-8").splitlines(keepends=True) if '"sec-001"' in ln or '"sup-001"' in ln]
    ds.write_text("".join(picked))
    assert main(["score", str(run), "--dataset", str(ds), "--corpus", "data/corpus"]) == 0
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["error_rate"]["value"] == 0.5
    assert m["retrieval_hit_rate"]["value"] == 0.5      # the errored case retrieved nothing
    assert m["must_include_coverage"]["value"] == 0.5   # both phrases on one case, none on the other
    assert m["faithfulness"]["n"] == 1 and m["faithfulness"]["unmeasured"] == 1
    assert m["latency_p95_ms"]["value"] == pytest.approx(1200 + 0.95 * (30000 - 1200))
    assert (run / "scores.csv").read_text().count("\n") == 3


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "labkit.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("labkit ")


def test_full_gate_slices_reviews_and_lock_from_the_cli(runs, tmp_path, capsys):
    """data/gate_full.yaml: slices, unmeasured budget, regression and review coverage, end to end."""
    gate = tmp_path / "gate_full.yaml"
    shutil.copy("data/gate_full.yaml", gate)
    base, var = str(runs / "baseline"), str(runs / "variant")
    rerun = str(tmp_path / "rerun")  # the baseline made again: another run to compare it with
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml", "--out", rerun,
                 "--quiet"]) == 0
    assert main(["gate", "lock", str(gate)]) == 0
    capsys.readouterr()
    assert main(["gate", "--config", str(gate), rerun, "--baseline", base, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    failed = {c["kind"] for c in rep["checks"] if not c["passed"]}
    # the baseline misses the human reviews of high-risk cases; and the run was made before
    # this copy of the gate was locked, which the report flags
    assert failed == {"review", "pre_registration"}
    assert rep["pre_registration"]["status"] == "locked_after_run"
    assert {"slice", "unmeasured", "regression"} <= {c["kind"] for c in rep["checks"]}

    high = [json.loads(ln)["id"] for ln in Path(GOLDEN).read_text().splitlines()
            if json.loads(ln)["tags"].get("risk") == "high"]
    reviews = tmp_path / "reviews.jsonl"
    for run_dir in (rerun, var):  # a review counts only for the answer it judged: each run's answers
        for c in high:
            assert main(["review", run_dir, "--gate", str(gate), "--reviews", str(reviews), "--decide", c,
                         "--decision", "approve", "--reviewer", "qa"]) == 0
    edited = tmp_path / "unlocked.yaml"
    edited.write_text(gate.read_text())
    assert main(["gate", "--config", str(edited), rerun, "--baseline", base, "--reviews", str(reviews)]) == 0
    capsys.readouterr()
    assert main(["gate", "--config", str(edited), var, "--baseline", base, "--reviews", str(reviews),
                 "--json"]) == 1
    failed = {c["name"] for c in json.loads(capsys.readouterr().out)["checks"] if not c["passed"]}
    assert "faithfulness no worse than baseline by 0.02" in failed
    assert "risk=high: must_include_coverage >= 0.5" in failed
    assert not any(n.startswith("human review") for n in failed)


def test_traffic_without_retrieval_logged_is_unmeasured_not_zero(tmp_path):
    run = tmp_path / "recorded"
    run.mkdir()
    lines = [
        {"case_id": "sec-001", "status": "ok", "answer": "Use the security portal."},   # no retrieved field
        {"case_id": "sup-001", "status": "ok", "answer": "Escalate high risk ones.", "retrieved": []},
    ]
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = tmp_path / "two.jsonl"
    ds.write_text("".join(ln for ln in Path(GOLDEN).read_text(encoding="utf-8").splitlines(keepends=True)
                          if '"sec-001"' in ln or '"sup-001"' in ln))
    assert main(["score", str(run), "--dataset", str(ds)]) == 0
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    hit = m["retrieval_hit_rate"]
    assert hit["value"] == 0.0 and hit["n"] == 1  # [] is "retrieved nothing"
    assert hit["unmeasured_reasons"] == {"no_retrieval": 1}  # no field: nothing known
    assert m["citation_validity"]["unmeasured_reasons"].get("no_retrieval") == 1


def _no_traceback_exit_2(args, capsys, *needles):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_deep_json_and_lone_surrogate_in_a_dataset_exit_2_without_traceback(tmp_path, capsys, command):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"id": "ok", "question": "fine"}\n{"id": "a", "question": "q", "metadata": '
                    + '[' * 50_000 + ']' * 50_000 + '}\n', encoding="utf-8")
    sur = tmp_path / "surrogate.jsonl"
    sur.write_text('{"id": "a", "question": "lone \\ud800 surrogate"}\n', encoding="utf-8")
    for path, line in ((deep, "line 2"), (sur, "line 1")):
        args = (["dataset", "validate", str(path)] if command == "validate" else
                ["run", "--dataset", str(path), "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(tmp_path / f"run-{path.stem}"), "--quiet"])
        _no_traceback_exit_2(args, capsys, str(path), line)


def test_deep_json_through_the_console_script_prints_no_traceback(tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"id": "a", "question": "q", "metadata": ' + '{"k": ' * 200_000 + '1' + '}' * 200_000
                    + '}\n', encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "labkit.cli", "dataset", "validate", str(deep)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and str(deep) in p.stderr


@pytest.mark.parametrize("args, field", [
    (["compare", "{base}", "{var}", "--alpha", "2"], "alpha"),
    (["compare", "{base}", "{var}", "--n-boot", "-5"], "n_boot"),
    (["score", "{copy}", "--n-boot", "-1"], "n_boot"),
])
def test_out_of_range_options_exit_2_naming_the_option(runs, tmp_path, capsys, args, field):
    copy = tmp_path / "variant"
    shutil.copytree(runs / "variant", copy)
    before = {f.name: f.read_bytes() for f in copy.iterdir() if f.is_file()}
    argv = [a.format(base=runs / "baseline", var=runs / "variant", copy=copy) for a in args]
    _no_traceback_exit_2(argv, capsys, field)
    assert {f.name: f.read_bytes() for f in copy.iterdir() if f.is_file()} == before  # nothing rewritten


def _recorded_two(tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "recorded"
    run.mkdir()
    line = {"case_id": "sec-001", "status": "ok",
            "answer": "Start identity verification in the security portal. [security-runbook#2]",
            "retrieved": [{"id": "security-runbook#2", "source": "security-runbook"}],
            "citations": ["security-runbook#2"], "latency_ms": 1200.0, "cost_usd": 0.01}
    (run / "results.jsonl").write_text(json.dumps(line) + "\n")
    ds = tmp_path / "one.jsonl"
    ds.write_text("".join(ln for ln in Path(GOLDEN).read_text(encoding="utf-8").splitlines(keepends=True)
                          if '"sec-001"' in ln))
    return run, ds


def test_score_takes_the_judge_by_name_or_from_a_file(tmp_path, capsys):
    """`labkit score --judge` selects a judge as the Python API does: a name, or a YAML file with
    the judge's config (here the embedding judge on a SIMULATED embedding model, tests/fake_embeddings.py)."""
    from fake_embeddings import FakeEmbeddings

    from labkit.registry import METRICS

    run, ds = _recorded_two(tmp_path)
    assert main(["score", str(run), "--dataset", str(ds), "--corpus", "data/corpus", "--judge", "lexical"]) == 0
    before = dict(METRICS)
    try:
        with FakeEmbeddings() as srv:
            cfg = tmp_path / "judge.yaml"
            cfg.write_text(f"type: embedding\nbase_url: {srv.base_url}\nmodel: sim-embed\n")
            assert main(["score", str(run), "--dataset", str(ds), "--corpus", "data/corpus",
                         "--judge", str(cfg)]) == 0
    finally:
        METRICS.clear()
        METRICS.update(before)
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["semantic_similarity"]["n"] == 1 and m["answer_relevance"]["n"] == 1
    judge = json.loads((run / "manifest.json").read_text())["scoring"]["judge"]
    assert judge["type"] == "embedding"
    capsys.readouterr()
    assert main(["score", str(run), "--dataset", str(ds), "--judge", "oracle"]) == 2
    err = capsys.readouterr().err
    assert "unknown judge 'oracle'" in err and "embedding" in err and "Traceback" not in err


def test_run_refuses_a_dataset_its_run_directory_would_overwrite(tmp_path, capsys):
    """``run --dataset r/cases.jsonl --out r``: the run's snapshot of the cases replaced the dataset."""
    run = tmp_path / "r"
    run.mkdir()
    ds = run / "cases.jsonl"
    shutil.copy("data/quick_lab.jsonl", ds)
    before = ds.read_bytes()
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--quiet", "--no-score"]) == 2
    err = capsys.readouterr().err
    assert f"--out {ds}" in err and f"--dataset {ds}" in err and "Traceback" not in err
    assert ds.read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["cases.jsonl"]


@pytest.mark.parametrize("version", [2, "one", True])
def test_a_manifest_of_a_version_this_labkit_does_not_know_is_refused_by_every_command(
        runs, tmp_path, capsys, version):
    """formats.md: an unknown ``schema_version`` is a ConfigError naming the field. ``labkit gate``
    judged such a run and ``labkit score`` rescored it, keeping the version it cannot read."""
    run = tmp_path / "run"
    shutil.copytree(runs / "baseline", run)
    man = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**man, "schema_version": version}))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    for argv in (["gate", "--config", "data/gate.yaml", str(run), "--thresholds-only"], ["score", str(run)],
                 ["compare", str(runs / "baseline"), str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "schema_version" in err and "manifest.json" in err and err.count("\n") == 1, (argv, err)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_every_file_a_run_and_its_follow_ups_write_is_owner_only(tmp_path, capsys):
    """formats.md: every file labkit writes is owner-only. Under the usual umask (022) a run's
    traces.jsonl, its .lock, feedback.jsonl, the reviews and proposals, the history index and the
    compacted traces were readable by every user of the machine (results.jsonl, with the same
    answers, was not)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/variant.yaml",
                     "--out", str(run), "--quiet"]) == 0
        trace_id = json.loads((run / "traces.jsonl").read_text().splitlines()[0])["trace_id"]
        assert main(["feedback", trace_id, "--run", str(run), "--rating", "2", "--comment", "curt"]) == 0
        gate = tmp_path / "gate.yaml"
        gate.write_text("name: reviewed\nreview:\n  required_for: {risk: high}\n")
        assert main(["review", str(run), "--gate", str(gate), "--reviews", str(tmp_path / "reviews.jsonl"),
                     "--decide", "ql-09", "--decision", "reject", "--reviewer", "qa"]) == 0
        assert main(["traces", "compact", str(run)]) == 0
        assert main(["traces", "compact", str(run), "--out", str(tmp_path / "archive.parquet")]) == 0
        assert main(["history", str(run), "--index", str(tmp_path / "h.duckdb")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != "gate.yaml")
    assert {"traces.jsonl", ".lock", "feedback.jsonl", "reviews.jsonl", "regression_proposals.jsonl",
            "traces.parquet", "archive.parquet", "h.duckdb"} <= {p.name for p in written}
    shared = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
              if p.stat().st_mode & 0o077}
    assert shared == {}


@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "0"), ("--timeout", "0"), ("--retries", "-1")])
def test_a_bad_runner_flag_is_named_as_the_flag_not_as_the_pipeline_file(tmp_path, capsys, flag, value):
    """``run --pipeline baseline.yaml --concurrency 0`` said "baseline.yaml: field 'runner.concurrency'":
    the file holds valid values, and a newcomer looked in the wrong place."""
    out = tmp_path / "r"
    assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(out), "--quiet", flag, value]) == 2
    err = capsys.readouterr().err
    assert f"field '{flag}'" in err and "baseline.yaml" not in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize(("argv", "field"), [
    (["score", "{run}", "--seed", "-5"], "seed"),
    (["compare", "{base}", "{run}", "--seed", "-1"], "seed"),
    (["gate", "--config", "data/gate.yaml", "{run}", "--baseline", "{base}", "--seed", "-5"], "seed"),
    (["score", "{run}", "--k", "100000000000000000000"], "k"),
    (["score", "{run}", "--n-boot", "1000000000000000000000000000"], "n_boot"),
])
def test_an_out_of_range_number_option_is_a_one_line_error(runs, tmp_path, capsys, argv, field):
    """``--seed -5`` ended in numpy's "expected non-negative integer", ``--k 1e20`` and a huge
    ``--n-boot`` in "Maximum allowed dimension exceeded": tracebacks, and gate exited 1."""
    run = tmp_path / "variant"
    shutil.copytree(runs / "variant", run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([a.format(run=run, base=runs / "baseline") for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_report_refuses_an_out_folder_whose_executed_copies_would_replace_the_notebooks(tmp_path, capsys):
    """``report --notebooks X/executed --out X``: each executed copy is written over its notebook."""
    nbs = tmp_path / "x" / "executed"
    nbs.mkdir(parents=True)
    shutil.copy("notebooks/05_readiness_scorecard.ipynb", nbs)
    before = (nbs / "05_readiness_scorecard.ipynb").read_bytes()
    assert main(["report", "--notebooks", str(nbs), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and f"--notebooks {nbs}" in err and "Traceback" not in err
    assert (nbs / "05_readiness_scorecard.ipynb").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["executed"]


def test_resume_with_another_k_is_an_error_naming_the_flag_and_the_manifest_field(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml", "--out", str(out),
                 "--quiet", "--k", "1"]) == 0
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:10]))  # a killed run
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet", "--k", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--k" in err and "score_k" in err, err
    assert len((out / "results.jsonl").read_text().splitlines()) == 10  # nothing run, nothing written
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["scoring"]["k"] == 1


def test_review_prints_a_questions_control_characters_as_escapes(tmp_path, capsys):
    """`labkit review` printed a dataset question raw: ESC ] 0 ; ... BEL retitled the terminal and
    ESC [2K CR erased the line shown. What it prints shows such characters as their escapes."""
    lines = Path("data/quick_lab.jsonl").read_text().splitlines()
    cases = [json.loads(x) for x in lines]
    hi = next(c for c in cases if c.get("tags", {}).get("risk") == "high")
    hi["question"] += " \x1b]0;pwned\x07\x1b[2K\r"
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps(c) + "\n" for c in cases))
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/variant.yaml", "--out", str(run),
                 "--quiet"]) in (0, 1)
    gate = tmp_path / "gate.yaml"
    gate.write_text("name: reviewed\nreview:\n  required_for: {risk: high}\n")
    capsys.readouterr()
    main(["review", str(run), "--gate", str(gate), "--reviews", str(tmp_path / "r.jsonl"), "--dataset", str(ds),
          "--show", hi["id"]])
    out = capsys.readouterr().out
    assert hi["id"] in out and "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out, out[-500:]


def test_run_refuses_an_out_folder_that_holds_other_files_and_no_run(tmp_path, capsys):
    """``run --out src`` wrote manifest.json, results.jsonl ... into a project's source folder: a folder
    that is neither empty nor a run folder is a one-line error naming it, and nothing is written."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print(1)\n")
    assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(src), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and str(src) in err and "Traceback" not in err, err
    assert [p.name for p in src.iterdir()] == ["app.py"]


def test_the_command_as_a_process_leaves_what_is_left_to_the_exit_unwalked(monkeypatch):
    """``labkit`` as a process (the console script, ``python -m labkit``, ``python -m labkit.cli``)
    is :func:`labkit.cli.command`: main's exit code, and the objects left frozen out of the cycle
    collector's reach, whose collections at exit walked every object of the imported libraries
    again (about 0.2 s of each command). main itself, called in a process that goes on, freezes
    nothing."""
    import gc
    import tomllib

    from labkit import cli

    frozen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))
    monkeypatch.setattr(cli, "_main", lambda argv: 3)
    assert cli.main([]) == 3 and frozen == []
    assert cli.command() == 3 and frozen == [1]
    root = Path(cli.__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["labkit"] == "labkit.cli:command"
    assert "sys.exit(command())" in (root / "labkit" / "__main__.py").read_text()
    assert 'if __name__ == "__main__":\n    sys.exit(command())' in Path(cli.__file__).read_text()
    r = subprocess.run([sys.executable, "-m", "labkit", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith(cli.__version__), r
