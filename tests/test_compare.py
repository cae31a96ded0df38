"""compare_runs on hand-written run directories: planted regression, no change, alignment, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from labkit.cases import EvalCase, save_cases
from labkit.commands.compare import cmd_compare, register
from labkit.compare import compare_runs
from labkit.errors import LabkitError, RunDirError
from labkit.scoring import score_run

N = 60
CTX = "Expired API keys are reissued in the security portal after identity verification."
GOOD = "Expired API keys are reissued in the security portal. This happens after identity verification."
BAD = "Keys never expire on weekends. The moon is made of green cheese."


def _cases(n: int = N) -> list[EvalCase]:
    return [
        EvalCase(id=f"c{i:03d}", question="How do I reset an expired API key?", expected_source="sec",
                 must_include=("security portal",), tags={"risk": "high" if i % 4 == 0 else "low"})
        for i in range(n)
    ]


def _results(cases: list[EvalCase], bad: set[int] = frozenset(), seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i, c in enumerate(cases):
        out.append({
            "case_id": c.id, "status": "ok",
            "answer": BAD if i in bad else GOOD,
            "retrieved": [{"id": "sec#1", "source": "sec", "text": CTX}],
            "citations": ["sec#1"],
            "latency_ms": float(rng.lognormal(6.5, 0.3)),
            "cost_usd": 0.001, "usage": {"input_tokens": 100, "output_tokens": 20}, "attempts": 1,
        })
    return out


def _write_run(path, run_id, cases, results):
    """A run directory as recorded traffic is: results.jsonl beside its dataset, scored by labkit
    score (which writes the scoring record compare verifies)."""
    path.mkdir(parents=True)
    ds = save_cases(cases, path.parent / f"{path.name}-dataset.jsonl")
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (path / "manifest.json").write_text(json.dumps({"run_id": run_id}))
    score_run(path, str(ds), n_boot=100)
    return path


def _rehash(run) -> None:
    """The scoring record of a run whose metrics.json a labkit of another layout wrote."""
    from labkit.io import file_hash

    man = json.loads((run / "manifest.json").read_text())
    man["scoring"]["sha256"]["metrics.json"] = file_hash(run / "metrics.json")
    (run / "manifest.json").write_text(json.dumps(man))


def test_planted_regression_detected(tmp_path):
    cases = _cases()
    base = _write_run(tmp_path / "base", "run-base", cases, _results(cases))
    bad = set(range(0, N, 3))  # a third of the cases lose faithfulness
    var = _write_run(tmp_path / "var", "run-var", cases, _results(cases, bad=bad))
    cmp = compare_runs(base, var)
    d = cmp.to_dict()
    f = d["metrics"]["faithfulness"]
    assert d["baseline"] == "run-base" and d["variant"] == "run-var" and d["n_paired"] == N
    assert f["verdict"] == "regressed"
    assert f["delta"] == pytest.approx(-1 / 3)
    assert f["ci_high"] < 0 and f["p_adjusted"] < 0.05
    assert {x["case_id"] for x in d["flipped"]} == {f"c{i:03d}" for i in bad}
    assert all(x["from"] == "pass" and x["to"] == "fail" for x in d["flipped"])
    assert "dropped" not in d
    assert d["metrics"]["retrieval_hit_rate"]["verdict"] == "no_change"
    json.dumps(d, allow_nan=False)
    assert "regressed" in cmp.to_text() and "c000" in cmp.to_text()


def test_same_pipeline_twice_is_no_change(tmp_path):
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases, seed=1))
    var = _write_run(tmp_path / "b", "b", cases, _results(cases, seed=2))  # latency noise only
    d = compare_runs(base, var).to_dict()
    verdicts = {name: m["verdict"] for name, m in d["metrics"].items()}
    # nothing to measure on either side (no expected tools, no must_not_include, no reference
    # answer): unmeasured
    assert {n for n, v in verdicts.items() if v == "unmeasured"} == {
        "tool_call_accuracy", "must_not_include_violation", "exact_match", "token_f1", "rouge_l"}
    assert {v for v in verdicts.values() if v != "unmeasured"} == {"no_change"}
    assert d["flipped"] == []


def test_variant_that_measured_nothing_is_unmeasured_not_no_change(tmp_path):
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases))
    broken = [{"case_id": c.id, "status": "error", "error": "endpoint down"} for c in cases]
    var = _write_run(tmp_path / "b", "b", cases, broken)
    d = compare_runs(base, var).to_dict()
    faith = d["metrics"]["faithfulness"]
    assert faith["verdict"] == "unmeasured" and faith["n"] == 0
    assert faith["baseline"] == pytest.approx(1.0) and faith["variant"] is None  # the baseline's own value
    assert d["metrics"]["cost_per_success"]["verdict"] == "unmeasured"  # a row, not a silent gap
    assert d["metrics"]["error_rate"]["verdict"] == "regressed"


def test_latency_direction_lower_is_better(tmp_path):
    cases = _cases()
    fast = _results(cases)
    slow = [dict(r, latency_ms=r["latency_ms"] * 2) for r in fast]
    d = compare_runs(_write_run(tmp_path / "a", "a", cases, fast), _write_run(tmp_path / "b", "b", cases, slow)).to_dict()
    assert d["metrics"]["latency_p50_ms"]["verdict"] == "regressed"
    d2 = compare_runs(tmp_path / "b", tmp_path / "a").to_dict()
    assert d2["metrics"]["latency_p50_ms"]["verdict"] == "improved"


def test_same_seed_same_result(tmp_path):
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases))
    var = _write_run(tmp_path / "b", "b", cases, _results(cases, bad={1, 5, 9}))
    assert compare_runs(base, var, seed=4).to_dict() == compare_runs(base, var, seed=4).to_dict()


def test_fingerprint_mismatch_refused_then_aligned(tmp_path):
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases))
    fewer = [*cases[:50], EvalCase(id="new-1", question="other")]
    var = _write_run(tmp_path / "b", "b", fewer, _results(fewer))
    with pytest.raises(LabkitError, match="--align"):
        compare_runs(base, var)
    d = compare_runs(base, var, align=True).to_dict()
    assert d["n_paired"] == 50 and d["dropped"] == 11


def test_missing_scores_says_run_score(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.jsonl").write_text("")
    with pytest.raises(LabkitError, match="labkit score"):
        compare_runs(tmp_path / "run", tmp_path / "run")


def test_cli_functions(tmp_path, capsys):
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases))
    var = _write_run(tmp_path / "b", "b", cases, _results(cases, bad=set(range(0, N, 3))))
    parser = argparse.ArgumentParser(prog="labkit")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", str(base), str(var), "--json", "--seed", "1"])
    assert args.handler(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["faithfulness"]["verdict"] == "regressed"
    args = parser.parse_args(["compare", str(base), str(var), "--fail-on-regression"])
    assert cmd_compare(args) == 1
    assert "faithfulness" in capsys.readouterr().out


def test_each_flipped_case_names_the_metric_that_flipped_and_why(tmp_path):
    cases = _cases(20)
    base = _write_run(tmp_path / "base", "run-base", cases, _results(cases))
    var_res = _results(cases, bad={3})
    var_res[7]["status"], var_res[7]["answer"] = "error", None
    var = _write_run(tmp_path / "var", "run-var", cases, var_res)
    flips = {f["case_id"]: f for f in compare_runs(base, var).to_dict()["flipped"]}
    assert set(flips) == {"c003", "c007"}
    assert all(f["metric"] == "task_success_rate" for f in flips.values())
    assert flips["c003"]["cause"] == "must_include_coverage 1 → 0"
    assert flips["c007"]["cause"] == "error_rate 0 → 1; must_include_coverage 1 → 0"  # no answer, no phrase


def test_compare_reports_each_runs_metrics_schema_version_and_is_keyword_only(tmp_path):
    from labkit.compare import Comparison, MetricDelta

    cases = _cases(20)
    base = _write_run(tmp_path / "base", "run-base", cases, _results(cases))
    var = _write_run(tmp_path / "var", "run-var", cases, _results(cases))
    (base / "metrics.json").write_text(json.dumps({"n_cases": 20, "metrics": {}}))  # first landing: no key
    (var / "metrics.json").write_text(json.dumps({"schema_version": 1, "n_cases": 20, "metrics": {}}))
    _rehash(base)
    _rehash(var)
    d = compare_runs(base, var, n_boot=200).to_dict()
    assert d["metrics_schema_version"] == {"baseline": 0, "variant": 1}
    (var / "metrics.json").write_text("{}")  # a metrics.json without a layout (its record rewritten): no version
    _rehash(var)
    assert compare_runs(base, var, n_boot=200).to_dict()["metrics_schema_version"]["variant"] is None
    (var / "metrics.json").unlink()  # a scored file gone: not what scoring wrote
    with pytest.raises(RunDirError, match=r"metrics\.json differ"):
        compare_runs(base, var, n_boot=200)
    with pytest.raises(TypeError):
        Comparison("b", "v", 0, {}, [])  # type: ignore[misc]
    with pytest.raises(TypeError):
        MetricDelta("m", "ops", "lower", 1.0, 1.0, 0.0, 0.0, 0.0, None, None, "no_change", 1, "t")  # type: ignore[misc]


def test_text_names_each_run_once(tmp_path):
    cases = _cases(12)
    same = compare_runs(_write_run(tmp_path / "baseline", "baseline", cases, _results(cases)),
                        _write_run(tmp_path / "variant", "variant", cases, _results(cases)))
    head = same.to_text().splitlines()[0]
    assert head.startswith("baseline vs variant:"), head
    other = compare_runs(_write_run(tmp_path / "b2", "run-b", cases, _results(cases)),
                         _write_run(tmp_path / "v2", "run-v", cases, _results(cases)))
    assert other.to_text().splitlines()[0].startswith("baseline (run-b) vs variant (run-v):")


def test_aligned_ids_that_hold_other_cases_are_not_paired(tmp_path):
    """--align paired every shared id, also those whose cases differ between the two datasets
    (another question, other labels): their deltas compared different cases without a word."""
    cases = _cases()
    base = _write_run(tmp_path / "a", "a", cases, _results(cases))
    relabelled = [EvalCase(id=c.id, question=c.question, expected_source="other", must_include=c.must_include)
                  if i < 10 else c for i, c in enumerate(cases)]
    var = _write_run(tmp_path / "b", "b", relabelled, _results(relabelled))
    with pytest.raises(LabkitError, match="--align"):
        compare_runs(base, var)
    comp = compare_runs(base, var, align=True)
    assert comp.n_paired == N - 10 and comp.dropped == 10
    assert any("10 shared case ids hold different cases" in n for n in comp.notes), comp.notes
    assert "c000" not in {x["case_id"] for x in comp.to_dict()["flipped"]}


def test_a_run_is_not_compared_with_itself(tmp_path, capsys):
    """`labkit compare RUN RUN` compared a run with itself ("no change" everywhere) where the gate
    refuses it as a baseline: the same directory, a copy of it, or the same results.jsonl."""
    import shutil

    from labkit.cli import main

    cases = _cases()
    run = _write_run(tmp_path / "a", "a", cases, _results(cases, seed=1))
    shutil.copytree(run, tmp_path / "copy")
    for other in (run, tmp_path / "copy"):
        with pytest.raises(LabkitError, match="the same run"):
            compare_runs(run, other)
        assert main(["compare", str(run), str(other)]) == 2
        assert "the same run" in capsys.readouterr().err
