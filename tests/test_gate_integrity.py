"""The gate's verdict cannot be bent: each test replays one way an adversary turned the shipped
variant's FAIL into PASS on the shipped gate (``data/gate.yaml`` with the baseline run), and
asserts it no longer works.

The runs are made once per module with the CLI, with ``--gate`` naming a copy of the shipped
gate and its lock (the run records the gate's hash); every test edits its own copy of a run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.errors import ConfigError
from labkit.gate import Gate

GOLDEN = "data/golden.jsonl"
SHIPPED_GATE = "data/gate.yaml"
TIME_BOUND_S = 300


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    gates = root / "gates"
    gates.mkdir()
    shutil.copy(SHIPPED_GATE, gates / "gate.yaml")
    shutil.copy(SHIPPED_GATE + ".lock.json", gates / "gate.yaml.lock.json")
    for name in ("baseline", "variant"):
        assert main(["run", "--dataset", GOLDEN, "--pipeline", f"data/pipelines/{name}.yaml",
                     "--out", str(root / name), "--quiet", "--gate", str(gates / "gate.yaml")]) == 0
    return root


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a run as recorded traffic: its manifest keeps no hash of the results the runner wrote
    (``results_sha256``) and no ``pipeline_calls``, as one written by hand, so its lines may be edited and rescored, as a team edits recorded lines;
    the checks below are what must hold then. A runner's run refuses edited lines outright
    (test_results_swapped_in_from_another_run_and_rescored_are_refused)."""
    shutil.copytree(src, dst)
    man = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    man.pop("results_sha256", None)
    man.pop("pipeline_calls", None)
    (dst / "manifest.json").write_text(json.dumps(man, indent=2), encoding="utf-8")
    return dst


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def _write_rows(run: Path, rows: list[dict]) -> None:
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _least_faithful(run: Path, n: int) -> set[str]:
    import pandas as pd

    scores = pd.read_csv(run / "scores.csv", dtype={"case_id": str})
    return set(scores.sort_values("faithfulness", na_position="last")["case_id"].head(n))


def _gate_json(capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["gate", *argv, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code in (0, 1) else {})


def _check(rep: dict, kind: str, metric: str | None) -> dict:
    return next(c for c in rep["checks"] if c["kind"] == kind and c["metric"] == metric)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---- V1: a case that failed is not a case that was not asked ----------------------------------------


def _fail_cases(rows: list[dict], ids: set[str], how: str) -> None:
    for r in rows:
        if r["case_id"] not in ids:
            continue
        if how in ("error", "timeout", "blocked"):
            r["status"] = how
            r["error"] = f"forced {how}"
        elif how == "empty_answer":
            r["answer"] = ""
        elif how == "no_retrieved":
            r.pop("retrieved", None)


@pytest.mark.parametrize("how, reason", [
    ("error", "not_ok"), ("timeout", "not_ok"), ("blocked", "not_ok"),
    ("empty_answer", "no_answer"), ("no_retrieved", "no_context"),
])
def test_failed_cases_count_against_the_unmeasured_budget(runs, tmp_path, capsys, how, reason):
    run = _copy(runs / "variant", tmp_path / "variant")
    worst = _least_faithful(run, 25)
    rows = _rows(run)
    _fail_cases(rows, worst, how)
    _write_rows(run, rows)
    assert main(["score", str(run)]) == 0
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline"))
    assert code == 1 and rep["verdict"] == "fail"
    # every case has a line: judged 70 of 70 (a guardrail block is the pipeline's own verdict)
    assert rep["cases"] == {"n_judged": 70, "n_dataset": 70, "n_missing": 0}
    assert _check(rep, "coverage", None)["passed"]
    faith = _check(rep, "absolute", "faithfulness")
    assert not faith["passed"] and reason in faith["reason"] and "25 of 70" in faith["reason"]
    assert "unmeasured budget" in faith["reason"]
    reg = _check(rep, "regression", "faithfulness")
    assert not reg["passed"] and "unmeasured in the candidate" in reg["reason"]


def test_deleting_the_retrieval_of_the_misses_does_not_lift_the_hit_rate(runs, tmp_path, capsys):
    run = _copy(runs / "variant", tmp_path / "variant")
    scores = (run / "scores.csv").read_text().splitlines()
    head = scores[0].split(",")
    col = head.index("retrieval_hit_rate")
    missed = {ln.split(",")[0] for ln in scores[1:] if ln.split(",")[col] == "0.0"}
    assert missed  # the shipped variant misses a few
    rows = _rows(run)
    _fail_cases(rows, missed, "no_retrieved")
    _write_rows(run, rows)
    assert main(["score", str(run)]) == 0
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline"))
    hit = _check(rep, "absolute", "retrieval_hit_rate")
    assert code == 1 and not hit["passed"] and "no_retrieval" in hit["reason"]
    assert not _check(rep, "regression", "retrieval_hit_rate")["passed"]


def test_deleting_the_cost_of_the_dearest_cases_does_not_lower_the_cost(runs, tmp_path, capsys):
    """A total that leaves cases out is not the run's total: the cases with no recorded cost are
    unmeasured (no_cost) and count against the unmeasured budget like any failed measurement."""
    run = _copy(runs / "baseline", tmp_path / "baseline_nocost")
    rows = sorted(_rows(run), key=lambda r: -(r.get("cost_usd") or 0.0))
    for r in rows[:40]:
        r.pop("cost_usd", None)
    _write_rows(run, rows)
    assert main(["score", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())["metrics"]["cost_per_success"]
    assert m["n"] == 30 and m["unmeasured_reasons"] == {"no_cost": 40}
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--thresholds-only")
    assert code == 1
    cost = _check(rep, "absolute", "cost_per_success")
    assert not cost["passed"] and "no_cost" in cost["reason"]


def _metrics(reasons: dict[str, int], n: int = 63) -> dict:
    un = sum(reasons.values())
    return {"k": 5, "n_cases": n + un, "n_missing": 0, "slices": {}, "metrics": {"faithfulness": {
        "stage": "generation", "value": 0.9, "ci_low": 0.85, "ci_high": 0.95, "n": n, "unmeasured": un,
        "unmeasured_reasons": reasons, "n_missing": 0}}}


def test_only_failure_reasons_count_and_a_declared_budget_raises_the_limit():
    checks = [{"metric": "faithfulness", "op": ">=", "threshold": 0.85}]
    strict = Gate.from_dict({"checks": checks})
    # not applicable: an abstention is not a claim, a case without gold has nothing to retrieve
    assert strict.evaluate(_metrics({"no_claims": 7})).passed
    assert strict.evaluate(_metrics({"no_gold": 4, "no_must_include": 3})).passed
    for failure in ("not_ok", "no_answer", "no_retrieval", "no_context", "judge_error", "unmeasured"):
        rep = strict.evaluate(_metrics({"no_claims": 6, failure: 1}))
        (faith,) = [c for c in rep.checks if c.metric == "faithfulness"]
        assert not faith.passed and failure in faith.reason, failure
    loose = Gate.from_dict({"checks": checks, "unmeasured": {"max_rate": 0.05}})
    assert loose.evaluate(_metrics({"no_claims": 6, "not_ok": 3})).passed  # 3 of 72 = 4.2%
    assert not loose.evaluate(_metrics({"no_claims": 6, "not_ok": 4})).passed  # 4 of 73 = 5.5%


def test_a_slice_check_counts_its_failed_cases_too():
    g = Gate.from_dict({"slices": [{"where": {"risk": "high"}, "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": 0.85}]}]})
    m = _metrics({})
    m["slices"]["risk=high"] = _metrics({"not_ok": 5}, n=12)["metrics"]
    (sl,) = [c for c in g.evaluate(m).checks if c.kind == "slice"]
    assert not sl.passed and "not_ok" in sl.reason


def test_a_regression_counts_the_cases_the_candidate_lost(runs, tmp_path, capsys):
    run = _copy(runs / "variant", tmp_path / "variant")
    man = json.loads((run / "manifest.json").read_text())
    del man["gate"]  # a run made without --gate: the ad-hoc gates below are not another gate than its own
    (run / "manifest.json").write_text(json.dumps(man))
    rows = _rows(run)
    _fail_cases(rows, {r["case_id"] for r in rows[:3]}, "error")
    _write_rows(run, rows)
    assert main(["score", str(run)]) == 0
    gate = tmp_path / "g.yaml"
    gate.write_text("regression:\n  - {metric: faithfulness, max_drop: 1.0}\n")  # any drop is within
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--baseline", str(runs / "baseline"))
    reg = _check(rep, "regression", "faithfulness")
    assert code == 1 and not reg["passed"]
    assert "3 of" in reg["reason"] and "unmeasured in the candidate" in reg["reason"] and "not_ok" in reg["reason"]
    gate.write_text("regression:\n  - {metric: faithfulness, max_drop: 1.0}\nunmeasured: {max_rate: 0.1}\n")
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--baseline", str(runs / "baseline"))
    assert code == 0 and _check(rep, "regression", "faithfulness")["passed"]


# ---- V2: what the gate reads is what scoring wrote ----------------------------------------------------


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_scoring_records_the_hashes_of_what_it_read_and_wrote(runs):
    for name in ("baseline", "variant"):
        run = runs / name
        rec = json.loads((run / "manifest.json").read_text())["scoring"]["sha256"]
        assert rec == {f: _sha(run / f) for f in ("results.jsonl", "scores.csv", "metrics.json")}


def _forge_faithfulness(run: Path) -> None:
    m = json.loads((run / "metrics.json").read_text())
    m["metrics"]["faithfulness"]["value"] = 0.9
    (run / "metrics.json").write_text(json.dumps(m, indent=2))
    lines = (run / "scores.csv").read_text().splitlines(keepends=True)
    col = lines[0].split(",").index("faithfulness")
    out = [lines[0]]
    for ln in lines[1:]:
        cells = ln.rstrip("\n").split(",")
        if cells[col]:
            cells[col] = "1.0"
        out.append(",".join(cells) + "\n")
    (run / "scores.csv").write_text("".join(out))


def test_hand_edited_metrics_and_scores_do_not_pass(runs, tmp_path, capsys):
    run = _copy(runs / "variant", tmp_path / "variant")
    _forge_faithfulness(run)
    capsys.readouterr()
    assert main(["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")]) == 2
    err = _one_line_error(capsys)
    assert "run files changed after scoring: rescore with labkit score" in err and "metrics.json" in err
    assert main(["compare", str(runs / "baseline"), str(run)]) == 2
    err = _one_line_error(capsys)
    assert "run files changed after scoring" in err and "scores.csv" in err


def test_results_changed_after_scoring_are_refused(runs, tmp_path, capsys):
    run = _copy(runs / "variant", tmp_path / "variant")
    rows = _rows(run)
    rows[0]["latency_ms"] = 1.0
    _write_rows(run, rows)
    capsys.readouterr()
    assert main(["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")]) == 2
    err = _one_line_error(capsys)
    assert "results.jsonl" in err and f"labkit score {run}" in err
    # a tampered baseline is refused the same way
    base = _copy(runs / "baseline", tmp_path / "baseline")
    rows = _rows(base)
    rows[0]["latency_ms"] = 1.0
    _write_rows(base, rows)
    assert main(["gate", "--config", SHIPPED_GATE, str(runs / "variant"), "--baseline", str(base)]) == 2
    assert "run files changed after scoring" in _one_line_error(capsys)
    assert main(["score", str(run)]) == 0  # rescoring makes the run whole again
    assert main(["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")]) == 1


def _unhashed(run: Path) -> None:
    man = json.loads((run / "manifest.json").read_text())
    del man["scoring"]["sha256"]  # the record of what scoring wrote, deleted
    (run / "manifest.json").write_text(json.dumps(man, indent=2))


@pytest.mark.parametrize("how", ["hashes deleted", "manifest deleted"])
def test_a_run_whose_scoring_record_is_gone_is_refused(runs, tmp_path, capsys, how):
    """Without the hashes scoring recorded, forged scores.csv and metrics.json would be judged as
    scored: deleting the record passed a failing run as pre-registered, and deleting the whole
    manifest passed it with a note (docs/formats.md "The scoring record": refused, exit 2).
    Rescoring makes either whole."""
    run = _copy(runs / "variant", tmp_path / "variant")
    if how == "hashes deleted":
        _unhashed(run)
    else:
        (run / "manifest.json").unlink()
    metrics = json.loads((run / "metrics.json").read_text())
    for m in metrics["metrics"].values():  # forged: every value the best it can be
        if isinstance(m, dict) and isinstance(m.get("value"), float) and m.get("direction") == "higher":
            m["value"] = 1.0
    (run / "metrics.json").write_text(json.dumps(metrics))
    for cmd in (["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")],
                ["gate", "--config", SHIPPED_GATE, str(run), "--thresholds-only"],
                ["compare", str(runs / "baseline"), str(run)]):
        assert main(cmd) == 2
        err = _one_line_error(capsys)
        assert "cannot be verified" in err and f"labkit score {run}" in err, err
    assert main(["score", str(run), "--dataset", GOLDEN]) == 0  # rescored: whole again, and judged
    assert main(["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")]) == 1


def test_runs_scored_at_different_cut_offs_are_not_compared(runs, tmp_path, capsys):
    """precision_at_k at k=1 against k=5 is no change of the pipeline: the same run rescored at k=1
    was a regression (and the other way round an improvement)."""
    run = _copy(runs / "baseline", tmp_path / "baseline-k1")
    assert main(["score", str(run), "--k", "1"]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs / "baseline"), str(run)]) == 2
    err = _one_line_error(capsys)
    assert "different cut-offs (k=5 vs k=1)" in err and "--k" in err, err


def test_a_run_rescored_on_another_dataset_is_compared_as_scored(runs, tmp_path, capsys):
    """compare read the dataset the run was made on, not the one it was scored on: phrases
    relabelled in a copy of the dataset made a 'regression' of the same answers."""
    relabelled = tmp_path / "relabelled.jsonl"
    lines = [json.loads(ln) for ln in Path(GOLDEN).read_text(encoding="utf-8").splitlines()]
    for c in lines:
        if c.get("must_include"):
            c["must_include"] = ["zzz-never-in-answer"]
    relabelled.write_text("".join(json.dumps(c) + "\n" for c in lines), encoding="utf-8")
    run = _copy(runs / "baseline", tmp_path / "baseline-relabelled")
    assert main(["score", str(run), "--dataset", str(relabelled)]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs / "baseline"), str(run)]) == 2
    assert "different dataset fingerprints" in _one_line_error(capsys)


def test_a_duplicate_case_in_scores_is_an_input_error(runs, tmp_path, capsys):
    from labkit.io import file_hash

    run = _copy(runs / "variant", tmp_path / "variant")
    lines = (run / "scores.csv").read_text().splitlines(keepends=True)
    (run / "scores.csv").write_text("".join(lines) + lines[1])
    man = json.loads((run / "manifest.json").read_text())  # its hash rewritten too: the reader still refuses it
    man["scoring"]["sha256"]["scores.csv"] = file_hash(run / "scores.csv")
    (run / "manifest.json").write_text(json.dumps(man, indent=2))
    capsys.readouterr()
    assert main(["compare", str(runs / "baseline"), str(run)]) == 2
    err = _one_line_error(capsys)
    assert "scores.csv" in err and "duplicate case_id" in err and lines[1].split(",")[0] in err


# ---- V3: a gate edited after the run fails, lock or no lock ------------------------------------------


def test_a_gate_edited_after_the_run_fails_even_without_its_lock(runs, tmp_path, capsys):
    gate = tmp_path / "gate.yaml"
    shutil.copy(SHIPPED_GATE, gate)
    shutil.copy(SHIPPED_GATE + ".lock.json", tmp_path / "gate.yaml.lock.json")
    run = tmp_path / "variant"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/variant.yaml", "--out", str(run),
                 "--quiet", "--gate", str(gate)]) == 0
    text = gate.read_text()
    gate.write_text(text.replace("threshold: 0.85", "threshold: 0.5")
                    .replace("faithfulness,       max_drop: 0.02", "faithfulness,       max_drop: 0.5"))
    (tmp_path / "gate.yaml.lock.json").unlink()
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--baseline", str(runs / "baseline"))
    assert code == 1 and rep["pre_registration"]["status"] == "edited_after_run"
    (pre,) = [c for c in rep["checks"] if c["kind"] == "pre_registration"]
    assert not pre["passed"] and "after the run" in pre["reason"]
    assert [c["kind"] for c in rep["checks"] if not c["passed"]] == ["pre_registration"]
    # locking the edited gate anew does not make it the gate the run recorded
    assert main(["gate", "lock", str(gate)]) == 0
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--baseline", str(runs / "baseline"))
    assert code == 1 and rep["pre_registration"]["status"] in ("edited_after_run", "locked_after_run")


def test_a_loosened_copy_of_the_gate_at_another_path_fails_the_run_that_recorded_the_gate(runs, tmp_path, capsys):
    """The run recorded the gate it was made under (its hash): a copy of it, loosened and kept at
    another path with no lock, is another gate, not the one declared before the change."""
    gate = tmp_path / "g" / "gate.yaml"
    gate.parent.mkdir()
    shutil.copy(SHIPPED_GATE, gate)
    run = tmp_path / "variant"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/variant.yaml", "--out", str(run),
                 "--quiet", "--gate", str(gate)]) == 0
    loose = tmp_path / "g2" / "gate.yaml"
    loose.parent.mkdir()
    loose.write_text(gate.read_text().replace("threshold: 0.85", "threshold: 0.5")
                     .replace("faithfulness,       max_drop: 0.02", "faithfulness,       max_drop: 0.5"))
    code, rep = _gate_json(capsys, "--config", str(loose), str(run), "--baseline", str(runs / "baseline"))
    assert code == 1 and rep["pre_registration"]["status"] == "other_gate", rep["pre_registration"]
    assert [c["kind"] for c in rep["checks"] if not c["passed"]] == ["pre_registration"]
    # the same gate copied unchanged to another path is the gate the run recorded
    same = tmp_path / "g3" / "gate.yaml"
    same.parent.mkdir()
    shutil.copy(gate, same)
    code, rep = _gate_json(capsys, "--config", str(same), str(run), "--baseline", str(runs / "baseline"))
    assert rep["pre_registration"]["status"] != "other_gate"


def test_runs_scored_by_different_judges_are_not_compared(runs, tmp_path, capsys):
    """Rescoring the candidate with a lenient judge turned a failing regression into a pass: a
    comparison of two judges measures the judge, not the change."""
    run = _copy(runs / "variant", tmp_path / "variant")
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("{type: lexical, threshold: 0.01, min_content_words: 1}\n")
    assert main(["score", str(run), "--judge", str(lenient)]) == 0
    capsys.readouterr()
    for cmd in (["compare", str(runs / "baseline"), str(run)],
                ["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")]):
        assert main(cmd) == 2
        err = _one_line_error(capsys)
        assert "different judges" in err and "threshold" in err, err
    assert main(["score", str(run), "--judge", "lexical"]) == 0  # rescored with the baseline's judge: compared again
    assert main(["compare", str(runs / "baseline"), str(run)]) == 0


def test_a_run_scored_by_a_judge_the_gate_does_not_declare_fails(runs, tmp_path, capsys):
    """Rescoring the candidate (and the baseline) with a lenient judge turned the thresholds' FAIL
    into PASS: a gate declares the judge its thresholds are measured with (the default lexical
    judge when it names none), and a run scored by another fails it, whatever its numbers."""
    run = _copy(runs / "variant", tmp_path / "variant")
    base = _copy(runs / "baseline", tmp_path / "baseline")
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("{type: lexical, threshold: 0.01, min_content_words: 1}\n")
    for r in (run, base):
        assert main(["score", str(r), "--judge", str(lenient)]) == 0
    for argv in (["--thresholds-only"], ["--baseline", str(base)]):
        code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), *argv)
        assert code == 1 and not rep["passed"], rep
        judge = _check(rep, "judge", None)
        assert not judge["passed"] and "threshold" in judge["reason"] and "0.01" in judge["reason"], judge
        assert "labkit score" in judge["reason"], judge
    declared = tmp_path / "gates" / "lenient-gate.yaml"
    declared.parent.mkdir()
    declared.write_text(Path(SHIPPED_GATE).read_text() + "judge: {type: lexical, threshold: 0.01, min_content_words: 1}\n")
    code, rep = _gate_json(capsys, "--config", str(declared), str(run), "--thresholds-only")
    assert not [c for c in rep["checks"] if c["kind"] == "judge"], rep  # measured as that gate declares
    assert _check(rep, "absolute", "faithfulness")["passed"]
    assert main(["score", str(run), "--judge", "lexical"]) == 0  # the default judge: the shipped gate's verdict again
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--thresholds-only")
    assert not [c for c in rep["checks"] if c["kind"] == "judge"] and not _check(rep, "absolute", "faithfulness")["passed"]


def test_the_default_judge_named_is_the_default_judge(runs, tmp_path, capsys):
    """The lexical judge named (``"lexical"``, ``{"type": "lexical"}``, by the CLI or the API) is the
    judge scoring uses by default: the manifest records the same judge, so the run compares with
    the baseline and passes the gate's judge check."""
    from labkit.scoring import score_run

    default = json.loads((runs / "baseline" / "manifest.json").read_text())["scoring"]["judge"]
    assert default["type"] == "lexical" and "threshold" in default
    run = _copy(runs / "variant", tmp_path / "variant")
    for judge in ("lexical", {"type": "lexical"}, {"name": "lexical"}):
        score_run(run, judge=judge)
        assert json.loads((run / "manifest.json").read_text())["scoring"]["judge"] == default, judge
        assert main(["compare", str(runs / "baseline"), str(run)]) == 0
    assert main(["score", str(run), "--judge", "lexical"]) == 0
    assert json.loads((run / "manifest.json").read_text())["scoring"]["judge"] == default
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline"))
    assert code in (0, 1) and not [c for c in rep["checks"] if c["kind"] == "judge"], rep


# ---- V4: the baseline is another run ------------------------------------------------------------------


def test_the_baseline_cannot_be_the_candidate(runs, tmp_path, capsys):
    base = runs / "baseline"
    same = [str(base), str(base / ".." / "baseline")]
    copy = _copy(base, tmp_path / "copy")  # same run_id, same results
    for other in [*same, str(copy)]:
        capsys.readouterr()
        assert main(["gate", "--config", SHIPPED_GATE, str(base), "--baseline", other]) == 2, other
        err = _one_line_error(capsys)
        assert "baseline" in err and "same run" in err
    with pytest.raises(ConfigError, match="same run"):
        Gate.load(SHIPPED_GATE).evaluate(base, baseline=base)


def test_the_reference_run_is_judged_on_its_thresholds(runs):
    rep = Gate.load(SHIPPED_GATE).thresholds_only().evaluate(runs / "baseline")
    assert rep.passed and not [c for c in rep.checks if c.kind == "regression"]
    assert "thresholds only" in rep.summary().splitlines()[0]


# ---- V5: non-inferiority needs the whole interval within the margin ------------------------------------


def test_an_inconclusive_regression_does_not_pass(runs, tmp_path, capsys):
    run = _copy(runs / "variant", tmp_path / "variant")
    rows = _rows(run)
    for r in rows[:4]:
        r["latency_ms"] = 60000.0
    _write_rows(run, rows)
    assert main(["score", str(run)]) == 0
    gate = tmp_path / "g.yaml"
    gate.write_text("regression:\n  - {metric: latency_p95_ms, max_drop: 500}\n")
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--baseline", str(runs / "baseline"))
    lat = _check(rep, "regression", "latency_p95_ms")
    assert code == 1 and not lat["passed"] and lat["observed"] > 500
    assert "not wholly within +500" in lat["reason"]


def test_cache_claims_do_not_hide_slow_cases(runs, tmp_path, capsys):
    """A forger who marks the slow cases as cache hits, and rewrites the manifest's count of
    hits to match, no longer takes them out of the latency percentile unnoticed."""
    run = _copy(runs / "variant", tmp_path / "variant")
    rows = _rows(run)
    for r in rows[:4]:
        r.update(latency_ms=60000.0, from_cache=True, attempts=0,
                 cache_origin={"run_id": "earlier", "trace_id": r["trace_id"]})
    _write_rows(run, rows)
    man = json.loads((run / "manifest.json").read_text())
    man["counts"]["from_cache"] = 4
    (run / "manifest.json").write_text(json.dumps(man, indent=2))
    assert main(["score", str(run)]) == 0
    gate = tmp_path / "g.yaml"
    gate.write_text("checks:\n  - {metric: latency_p95_ms, op: '<=', threshold: 3500}\n")
    code, rep = _gate_json(capsys, "--config", str(gate), str(run))
    lat = _check(rep, "absolute", "latency_p95_ms")
    assert code == 1 and not lat["passed"] and "from_cache: 4" in lat["reason"]


def test_shipped_outcome_reference_passes_variant_fails(runs, capsys):
    base, var = str(runs / "baseline"), str(runs / "variant")
    assert Gate.load(SHIPPED_GATE).thresholds_only().evaluate(base).passed
    code, rep = _gate_json(capsys, "--config", SHIPPED_GATE, var, "--baseline", base)
    assert code == 1 and rep["cases"]["n_judged"] == 70
    failed = {(c["kind"], c["metric"]) for c in rep["checks"] if not c["passed"]}
    assert failed == {("absolute", "faithfulness"), ("regression", "faithfulness")}
    # the variant is faster and retrieves the same: those non-inferiority checks pass
    assert _check(rep, "regression", "latency_p95_ms")["passed"]
    assert _check(rep, "regression", "retrieval_hit_rate")["passed"]
    assert rep["pre_registration"]["status"] == "pre_registered"


# ---- the gate file itself ---------------------------------------------------------------------------


def test_the_gate_name_must_be_a_string(tmp_path, capsys):
    with pytest.raises(ConfigError) as ei:
        Gate.from_dict({"name": [1, 2], "checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}]})
    assert ei.value.field == "name"
    p = tmp_path / "g.yaml"
    p.write_text("name: [1, 2]\nchecks:\n  - {metric: mrr, op: '>=', threshold: 0.5}\n")
    capsys.readouterr()
    assert main(["gate", "lock", str(p)]) == 2
    err = _one_line_error(capsys)
    assert f"{p}:1" in err and "'name'" in err


@pytest.mark.parametrize(("text", "field"), [
    ("name: release sk-proj-GateNameKey0123456789abcdefXYZ\nchecks:\n  - {metric: mrr, op: '>=', threshold: 0.5}\n",
     "name"),
    ("checks:\n  - {metric: mrr, op: '>=', threshold: 0.5}\nslices:\n  - where: {category: owner alice@example.com}\n"
     "    checks:\n      - {metric: mrr, op: '>=', threshold: 0.5}\n", "slices[0].where.category"),
    ("checks:\n  - {metric: mrr, op: '>=', threshold: 0.5}\nreview:\n  required_for: {category: a@example.com}\n",
     "review.required_for.category"),
])
def test_a_gate_naming_what_redaction_hides_is_refused(tmp_path, capsys, text, field):
    """A gate's name went raw into gate.md, the JUnit XML, the JSON and the terminal (and MLflow's
    copies), and a slice's tag value into the reasons: a gate holding what redaction hides is
    refused when it is read, naming the field; the message shows it redacted."""
    p = tmp_path / "g.yaml"
    p.write_text(text)
    capsys.readouterr()
    assert main(["gate", "lock", str(p)]) == 2
    err = _one_line_error(capsys)
    assert f"{p}:" in err and f"'{field}'" in err and "redaction" in err, err
    assert "GateNameKey" not in err and "example.com" not in err, err


@pytest.mark.parametrize("where", ["lock", "manifest_gate", "manifest_scoring"])
def test_odd_json_shapes_in_lock_or_manifest_are_one_line_errors(runs, tmp_path, capsys, where):
    gate = tmp_path / "gate.yaml"
    shutil.copy(SHIPPED_GATE, gate)
    shutil.copy(SHIPPED_GATE + ".lock.json", tmp_path / "gate.yaml.lock.json")
    run = _copy(runs / "variant", tmp_path / "variant")
    if where == "lock":
        (tmp_path / "gate.yaml.lock.json").write_text("[1]\n")
    else:
        man = json.loads((run / "manifest.json").read_text())
        man["gate" if where == "manifest_gate" else "scoring"] = ["x"]
        (run / "manifest.json").write_text(json.dumps(man))
    code = main(["gate", "--config", str(gate), str(run), "--baseline", str(runs / "baseline")])
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err
    if where == "lock":
        assert code == 2 and "gate.yaml.lock.json" in err and "JSON object" in err


def _lenient(tmp_path: Path) -> Path:
    p = tmp_path / "lenient.yaml"
    p.write_text("{type: lexical, threshold: 0.01, min_content_words: 1}\n")
    return p


def test_deleting_what_scoring_recorded_of_its_judge_and_k_turns_no_check_off(runs, tmp_path, capsys):
    """The judge and k checks read the manifest's scoring record, which no hash covers: deleting
    `scoring.judge` (or `scoring.k`) there passed a leniently judged run, and compared a k=1 run
    with a k=5 one, while the hashes still verified. metrics.json (hashed) records both."""
    run = _copy(runs / "variant", tmp_path / "variant")
    assert main(["score", str(run), "--judge", str(_lenient(tmp_path))]) == 0
    man = json.loads((run / "manifest.json").read_text())
    del man["scoring"]["judge"]
    (run / "manifest.json").write_text(json.dumps(man))
    _, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--thresholds-only")
    assert any(c["kind"] == "judge" and not c["passed"] for c in rep["checks"]), rep["checks"]
    k1 = _copy(runs / "baseline", tmp_path / "baseline-k1")
    assert main(["score", str(k1), "--k", "1"]) == 0
    man = json.loads((k1 / "manifest.json").read_text())
    del man["scoring"]["k"]
    man.pop("score_k", None)
    (k1 / "manifest.json").write_text(json.dumps(man))
    capsys.readouterr()
    assert main(["compare", str(runs / "baseline"), str(k1)]) == 2
    assert "different cut-offs (k=5 vs k=1)" in _one_line_error(capsys)


def test_the_gate_declares_its_cut_off(runs, tmp_path, capsys):
    """A run rescored at another k than the gate's thresholds were set at (an absolute hit-rate
    check passed at k=5 and failed at k=1) fails the check 'scored at the cut-off the gate
    declares' (`k:`, 5 when the gate names none)."""
    gate = tmp_path / "gk.yaml"
    gate.write_text('version: 1\nname: k-gate\nchecks:\n  - {metric: retrieval_hit_rate, op: ">=", threshold: 0.5}\n')
    run = _copy(runs / "variant", tmp_path / "variant")
    assert main(["score", str(run), "--k", "1"]) == 0
    _, rep = _gate_json(capsys, "--config", str(gate), str(run))
    (k,) = [c for c in rep["checks"] if c["kind"] == "cut_off"]
    assert not k["passed"] and "k=1" in k["reason"] and "k=5" in k["reason"] and "--k 5" in k["reason"]
    gate.write_text(gate.read_text() + "k: 1\n")
    _, rep = _gate_json(capsys, "--config", str(gate), str(run))  # (another gate than the run's: not pre-registered)
    assert not [c for c in rep["checks"] if c["kind"] == "cut_off"] and _check(rep, "absolute", "retrieval_hit_rate")["passed"]


def test_a_rescore_keeps_the_judge_the_run_was_scored_by(runs, tmp_path, capsys):
    """`labkit score RUN` went back to the default judge: twins rescored alike were refused by
    compare as 'scored by different judges'."""
    a, b = _copy(runs / "variant", tmp_path / "a"), _copy(runs / "variant", tmp_path / "b")
    man = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    man["run_uuid"] = "another-run-of-the-same-lines"  # (a copy is the same run: compare refuses it)
    (b / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    for r in (a, b):
        assert main(["score", str(r), "--judge", str(_lenient(tmp_path))]) == 0
    assert main(["score", str(b)]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0, capsys.readouterr().err
    assert json.loads((b / "metrics.json").read_text())["judge"]["threshold"] == 0.01


def test_two_hand_made_runs_in_folders_of_one_name_are_two_runs(runs, tmp_path, capsys):
    """Recorded traffic scored by day (traffic/mon/run, traffic/tue/run): the gate took the two
    for one run (the same run_id, the folder's name) and refused the regression checks."""
    days = {}
    for day, src in (("mon", "baseline"), ("tue", "variant")):
        d = tmp_path / "traffic" / day / "run"
        d.mkdir(parents=True)
        shutil.copy(runs / src / "results.jsonl", d / "results.jsonl")
        assert main(["score", str(d), "--dataset", GOLDEN]) == 0
        days[day] = d
    capsys.readouterr()
    code = main(["gate", "--config", SHIPPED_GATE, str(days["tue"]), "--baseline", str(days["mon"])])
    assert code == 1, capsys.readouterr().err  # the variant's regression, judged


def test_a_hand_made_run_is_told_the_whole_command_that_scores_it(runs, tmp_path, capsys):
    """Recorded traffic (a folder with results.jsonl only): the gate said `labkit score hw`, which
    then failed for want of --dataset."""
    hw = tmp_path / "hw"
    hw.mkdir()
    shutil.copy(runs / "baseline" / "results.jsonl", hw / "results.jsonl")
    capsys.readouterr()
    assert main(["gate", "--config", SHIPPED_GATE, str(hw), "--thresholds-only"]) == 2
    assert f"labkit score {hw} --dataset DATASET" in _one_line_error(capsys)
    assert main(["score", str(hw), "--dataset", GOLDEN]) == 0
    (hw / "scores.csv").write_text((hw / "scores.csv").read_text() + "\n")
    capsys.readouterr()
    assert main(["gate", "--config", SHIPPED_GATE, str(hw), "--thresholds-only"]) == 2
    err = _one_line_error(capsys)  # (the dataset it was scored on is recorded now)
    assert f"rescore with labkit score {hw} " in err and "--dataset" not in err, err


def _rehashed_judge(run: Path, judge: dict) -> None:
    """metrics.json recording ``judge``, its hash in the scoring record rewritten (as labkit score
    --judge would leave it)."""
    from labkit.io import file_hash

    m = json.loads((run / "metrics.json").read_text())
    m["judge"] = judge
    (run / "metrics.json").write_text(json.dumps(m))
    man = json.loads((run / "manifest.json").read_text())
    man["scoring"]["sha256"]["metrics.json"] = file_hash(run / "metrics.json")
    (run / "manifest.json").write_text(json.dumps(man))


def test_a_resume_that_could_not_score_again_is_refused_before_a_case_runs(runs, tmp_path, capsys):
    """A run scored by a judge that calls a model, resumed: every case ran, then scoring refused
    to call the judge again, leaving results.jsonl whole and its scores stale."""
    run = _copy(runs / "variant", tmp_path / "variant")
    _rehashed_judge(run, {"type": "embedding", "base_url": "http://127.0.0.1:9/v1", "model": "m"})
    kept = (run / "results.jsonl").read_text().splitlines(keepends=True)[:10]
    (run / "results.jsonl").write_text("".join(kept))
    man = json.loads((run / "manifest.json").read_text())
    man.update(status="running", finished_at=None)
    (run / "manifest.json").write_text(json.dumps(man))
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "--judge" in err and "--no-score" in err, err
    assert (run / "results.jsonl").read_text() == "".join(kept)


def test_the_gate_tells_the_rescore_of_a_run_whose_dataset_is_not_where_it_was(runs, tmp_path, capsys, monkeypatch):
    """Scored with a relative --dataset, gated from another folder: the cut-off check said
    `labkit score RUN --k 5`, which then failed (the dataset not found); a hand-written manifest
    without a run_uuid got none, so a copy of the run counted twice."""
    hw = tmp_path / "hw"
    hw.mkdir()
    shutil.copy(runs / "baseline" / "results.jsonl", hw / "results.jsonl")
    (hw / "manifest.json").write_text('{"run_id": "x"}')
    assert main(["score", str(hw), "--dataset", GOLDEN, "--k", "1"]) == 0
    assert json.loads((hw / "manifest.json").read_text())["run_uuid"]
    gate = Path(SHIPPED_GATE).resolve()
    monkeypatch.chdir(tmp_path)
    _, rep = _gate_json(capsys, "--config", str(gate), str(hw), "--thresholds-only")
    (k,) = [c for c in rep["checks"] if c["kind"] == "cut_off"]
    assert f"labkit score {hw} --dataset DATASET --k 5" in k["reason"], k["reason"]


def test_a_judge_read_off_the_manifest_is_said_to_be(runs, tmp_path, capsys):
    """A metrics.json written before it recorded its judge: the judge check reads the manifest's
    record, which no hash covers; the report says so (an edit there would pass unseen)."""
    from labkit.io import file_hash

    run = _copy(runs / "variant", tmp_path / "variant")
    m = json.loads((run / "metrics.json").read_text())
    del m["judge"]
    (run / "metrics.json").write_text(json.dumps(m))
    man = json.loads((run / "manifest.json").read_text())
    man["scoring"]["sha256"]["metrics.json"] = file_hash(run / "metrics.json")
    (run / "manifest.json").write_text(json.dumps(man))
    _, rep = _gate_json(capsys, "--config", SHIPPED_GATE, str(run), "--thresholds-only")
    assert any("judge was read from the manifest" in n and f"labkit score {run}" in n for n in rep["notes"]), \
        rep["notes"]


# ---- the review check reads the cases the run was scored on ----------------------------------------


def _relabelled(tmp_path: Path) -> Path:
    p = tmp_path / "relabelled.jsonl"
    p.write_text(Path(GOLDEN).read_text(encoding="utf-8").replace('"risk": "high"', '"risk": "low"'), encoding="utf-8")
    return p


@pytest.mark.parametrize("how", ["unrelated", "relabelled", "own_dataset_edited"])
def test_a_dataset_other_than_the_one_scored_does_not_lift_the_review_requirement(runs, tmp_path, capsys, how):
    """``gate --dataset one.jsonl`` (or a copy with its risk=high tags relabelled, or the run's own
    dataset file edited after the run) found no risk=high case to review: the failing gate passed.
    The cases are the ones the run was scored on, or the command refuses (exit 2)."""
    run = _copy(runs / "baseline", tmp_path / "run")
    gate = tmp_path / "gate_full.yaml"
    shutil.copy("data/gate_full.yaml", gate)
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")
    assert code == 1 and not _check(rep, "review", None)["passed"]
    extra: list[str] = []
    if how == "unrelated":
        other = tmp_path / "one.jsonl"
        other.write_text('{"id": "zzz", "question": "unrelated"}\n')
        extra = ["--dataset", str(other)]
    elif how == "relabelled":
        extra = ["--dataset", str(_relabelled(tmp_path))]
    else:
        own = tmp_path / "golden.jsonl"
        shutil.copy(GOLDEN, own)
        man = json.loads((run / "manifest.json").read_text())
        for rec in (man["dataset"], man["scoring"]["dataset"]):
            rec["path"] = str(own)
        (run / "manifest.json").write_text(json.dumps(man))
        assert _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")[0] == 1
        shutil.copy(_relabelled(tmp_path), own)
    capsys.readouterr()
    assert main(["gate", "--config", str(gate), str(run), "--thresholds-only", *extra]) == 2
    err = _one_line_error(capsys)
    assert "not the dataset the run was scored on" in err and "fingerprint" in err, err
    rv = tmp_path / "reviews.jsonl"
    assert main(["review", str(run), "--gate", str(gate), "--reviews", str(rv), *extra]) == 2
    assert "not the dataset the run was scored on" in _one_line_error(capsys)


def test_a_backdated_lock_does_not_pre_register_a_gate_the_run_recorded_unlocked(runs, tmp_path, capsys):
    """The run recorded its gate unlocked (``gate.locked_at: null`` in its manifest); locking it after
    the run and rewriting the lock file's time to 2020 made ``labkit gate`` say pre_registered. The
    lock the run recorded is the one that counts."""
    gate = tmp_path / "newgate.yaml"
    shutil.copy(SHIPPED_GATE, gate)
    run = tmp_path / "u"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--quiet", "--gate", str(gate)]) == 0
    assert json.loads((run / "manifest.json").read_text())["gate"]["locked_at"] is None
    assert main(["gate", "lock", str(gate)]) == 0
    lock = tmp_path / "newgate.yaml.lock.json"
    lock.write_text(json.dumps({**json.loads(lock.read_text()), "locked_at": "2020-01-01T00:00:00+00:00"}))
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")
    assert code == 1 and rep["pre_registration"]["status"] == "locked_after_run", rep["pre_registration"]
    assert "not locked when the run started" in rep["pre_registration"]["detail"]



def test_a_gate_loosened_after_its_lock_and_locked_again_after_the_run_is_not_pre_registered(runs, tmp_path,
                                                                                             capsys):
    """A strict gate locked, loosened without a new lock, a run started under the loosened one (the
    run recorded the old lock's time beside the new hash), then locked again after the results:
    ``labkit gate`` said pre_registered, "locked at" the strict version's time. The version the run
    was made under was never locked before it."""
    gate = tmp_path / "g.yaml"
    shutil.copy(SHIPPED_GATE, gate)
    assert main(["gate", "lock", str(gate)]) == 0
    gate.write_text(gate.read_text().replace("threshold: 0.85", "threshold: 0.70"))
    run = tmp_path / "r"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/variant.yaml", "--out", str(run),
                 "--quiet", "--gate", str(gate)]) in (0, 1)
    rec = json.loads((run / "manifest.json").read_text())["gate"]
    assert rec["locked_at"] is not None and rec["locked_hash"] != rec["hash"]  # what the run saw
    assert main(["gate", "lock", str(gate)]) == 0  # after the results
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")
    assert code == 1 and rep["pre_registration"]["status"] == "locked_after_run", rep["pre_registration"]
    assert "changed since its lock" in rep["pre_registration"]["detail"]


@pytest.mark.parametrize("edit", ["blank", "number", "null", "removed"])
def test_a_runs_results_hash_blanked_or_removed_does_not_let_edited_results_be_rescored(runs, tmp_path, capsys,
                                                                                       edit):
    """The baseline's lines copied into the variant's results.jsonl and the manifest's
    ``results_sha256`` set to "" (or 7, or removed): `labkit score` rescored them and the gate passed
    8/8, pre_registered. A run the runner completed records the hash; one that does not is refused."""
    run = Path(shutil.copytree(runs / "variant", tmp_path / "v"))
    shutil.copy(runs / "baseline" / "results.jsonl", run / "results.jsonl")
    man = json.loads((run / "manifest.json").read_text())
    if edit == "removed":
        del man["results_sha256"]
    else:
        man["results_sha256"] = {"blank": "", "number": 7, "null": None}[edit]
    (run / "manifest.json").write_text(json.dumps(man))
    capsys.readouterr()
    assert main(["score", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "results_sha256" in err and "manifest.json" in err, err

def test_results_swapped_in_from_another_run_and_rescored_are_refused(runs, tmp_path, capsys):
    """The variant's results.jsonl replaced by the baseline's lines and rescored: the scoring record
    then covered the swapped file and the gate passed 8/8 for a run whose manifest names the
    variant. The run records the hash of the results it wrote; a rescore of other results is
    refused wherever a run's scores are trusted."""
    run = Path(shutil.copytree(runs / "variant", tmp_path / "swapped"))
    assert json.loads((run / "manifest.json").read_text())["results_sha256"] == _sha(run / "results.jsonl")
    shutil.copy(runs / "baseline" / "results.jsonl", run / "results.jsonl")
    capsys.readouterr()
    assert main(["score", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "not the results the run wrote" in err and "results.jsonl" in err, err
    for argv in (["gate", "--config", SHIPPED_GATE, str(run), "--baseline", str(runs / "baseline")],
                 ["compare", str(runs / "baseline"), str(run)]):
        assert main(argv) == 2  # (the file is not the one scoring recorded either)
        assert "results.jsonl" in _one_line_error(capsys)


def test_the_gate_declares_the_intervals_its_checks_read(runs, tmp_path, capsys):
    """`labkit score RUN --n-boot 1 --seed S` made a ci_low one bootstrap draw, and one seed of a
    few put it above the threshold: the failing gate passed. A run scored with other resamples or
    another seed than the gate declares (`n_boot:` and `seed:`, 2000 and 0 when it names none)
    fails the check 'scored with the intervals the gate declares', whatever its intervals read."""
    gate = tmp_path / "gi.yaml"
    gate.write_text('version: 1\nname: ci-gate\nchecks:\n'
                    '  - {metric: faithfulness, op: ">=", threshold: 0.0, statistic: ci_low}\n')
    run = _copy(runs / "variant", tmp_path / "variant")
    _, rep = _gate_json(capsys, "--config", str(gate), str(run))
    assert not [c for c in rep["checks"] if c["kind"] == "intervals"]
    for argv, shown in ((["--n-boot", "1"], "n_boot=1"), (["--seed", "2"], "seed=2")):
        assert main(["score", str(run), *argv]) == 0
        _, rep = _gate_json(capsys, "--config", str(gate), str(run))
        (iv,) = [c for c in rep["checks"] if c["kind"] == "intervals"]
        assert not iv["passed"] and not rep["passed"] and shown in iv["reason"], iv
        assert "n_boot=2000" in iv["reason"] and "seed=0" in iv["reason"], iv
    gate.write_text(gate.read_text() + "seed: 2\n")
    _, rep = _gate_json(capsys, "--config", str(gate), str(run))
    assert not [c for c in rep["checks"] if c["kind"] == "intervals"], rep
    with pytest.raises(ConfigError, match="n_boot"):
        Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.5}], "n_boot": 0})


def test_regression_intervals_are_drawn_with_the_seed_the_gate_declares(runs, tmp_path, capsys):
    """`labkit gate --seed S` chose the seed of the regression checks' paired bootstrap: a seed
    other than the gate's (`seed:`, 0 when it names none) fails the gate."""
    code, rep = _gate_json(capsys, "--config", str(runs / "gates" / "gate.yaml"), str(runs / "baseline"),
                           "--baseline", str(runs / "variant"), "--seed", "3")
    (iv,) = [c for c in rep["checks"] if c["kind"] == "intervals"]
    assert code == 1 and not iv["passed"] and "seed=3" in iv["reason"] and "seed=0" in iv["reason"], iv


def test_a_rescore_with_another_corpus_fails_the_gate(runs, tmp_path, capsys):
    """A pipeline whose retrieved items carry ids but no text is judged on its corpus's chunks:
    rescored with a corpus whose chunks say what the answers say, faithfulness 0 became 1 and the
    gate passed. The run records its corpus's fingerprint, metrics.json the one it was scored
    with, and a gate fails a run scored with another (or none)."""
    import shutil as sh

    corpus = tmp_path / "corpus"
    sh.copytree("data/corpus", corpus)
    mod = tmp_path / "idpipe_mod.py"
    mod.write_text('def answer(case):\n    return {"answer": "The moon is made of green cheese. Cats can fly at night.",'
                   ' "retrieved": [{"id": "security-runbook#0"}]}\n')
    gate = tmp_path / "gc.yaml"
    gate.write_text('version: 1\nname: corpus-gate\nchecks:\n  - {metric: faithfulness, op: ">=", threshold: 0.9}\n')
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "idpipe_mod:answer", "--out",
                     str(tmp_path / "rid"), "--corpus", str(corpus), "--quiet"]) == 0
    finally:
        sys.path.remove(str(tmp_path))
    run = tmp_path / "rid"
    code, rep = _gate_json(capsys, "--config", str(gate), str(run))
    assert code == 1 and not [c for c in rep["checks"] if c["kind"] == "corpus"]
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "security-runbook.md").write_text("# Security runbook\n\nThe moon is made of green cheese. "
                                              "Cats can fly at night.\n")
    assert main(["score", str(run), "--corpus", str(evil)]) == 0
    code, rep = _gate_json(capsys, "--config", str(gate), str(run))
    assert _check(rep, "absolute", "faithfulness")["passed"]  # (what the other corpus reads)
    (cc,) = [c for c in rep["checks"] if c["kind"] == "corpus"]
    assert code == 1 and not cc["passed"] and "--corpus" in cc["reason"], cc
    assert main(["score", str(run)]) == 0  # the run's own corpus again
    code, rep = _gate_json(capsys, "--config", str(gate), str(run))
    assert code == 1 and not [c for c in rep["checks"] if c["kind"] == "corpus"]
    (corpus / "security-runbook.md").write_text("# Security runbook\n\nThe moon is made of green cheese. "
                                                "Cats can fly at night.\n")  # edited in place
    assert main(["score", str(run)]) == 0
    code, rep = _gate_json(capsys, "--config", str(gate), str(run))
    (cc,) = [c for c in rep["checks"] if c["kind"] == "corpus"]
    assert code == 1 and not cc["passed"], cc


@pytest.mark.parametrize("status", ["running", "partial"])
def test_a_run_that_did_not_complete_fails_the_gate(runs, tmp_path, capsys, status):
    """A run cut short (its manifest still says running), or one whose manifest was set to another
    status with the record of its results deleted (its lines then edited and rescored as recorded
    traffic), passed a gate whose budget let its missing cases through, without a word: a gate
    fails a run whose manifest says it did not complete; recorded traffic written by hand (no
    status) is judged as it is."""
    run = tmp_path / "variant"
    shutil.copytree(runs / "baseline", run)
    man = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    man["status"] = status
    man.pop("results_sha256")
    (run / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    assert main(["score", str(run)]) == 0
    gate = runs / "gates" / "gate.yaml"
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")
    (done,) = [c for c in rep["checks"] if c["kind"] == "run_complete"]
    assert code == 1 and not done["passed"] and repr(status) in done["reason"] and "--resume" in done["reason"], done
    man.pop("status")
    (run / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    assert main(["score", str(run)]) == 0
    code, rep = _gate_json(capsys, "--config", str(gate), str(run), "--thresholds-only")
    assert not [c for c in rep["checks"] if c["kind"] == "run_complete"]
