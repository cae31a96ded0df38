import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labkit.errors import ConfigError, GateFailed
from labkit.gate import MODULE_GATE, Gate, gate_lock_info, lock_gate, release_gate

# the shipped gate's absolute checks (its regression section needs a baseline run)
GATE_TEXT = Path("data/gate.yaml").read_text().split("regression:")[0]
MODULE_BASELINE = {"faithfulness": 0.88, "retrieval_hit_rate": 0.82, "latency_p95_ms": 3100,
                   "cost_per_success": 0.06}


def metrics_json(**vals):
    out = {"k": 5, "n_cases": 10, "n_missing": 0, "seed": 0, "n_boot": 2000, "metrics": {}, "slices": {}}
    for name, v in vals.items():
        value, lo, hi, n, un = v
        out["metrics"][name] = {"stage": "x", "value": value, "ci_low": lo, "ci_high": hi, "n": n,
                                "unmeasured": un}
    return out


def test_module_release_gate_on_plain_dict():
    assert release_gate(MODULE_BASELINE) is True
    assert release_gate({**MODULE_BASELINE, "retrieval_hit_rate": 0.79}) is False
    assert release_gate({**MODULE_BASELINE, "latency_p95_ms": 3500}) is True   # <= is inclusive
    assert release_gate({**MODULE_BASELINE, "latency_p95_ms": 3500.1}) is False
    missing = MODULE_GATE.evaluate({"faithfulness": 0.9})
    assert not missing.passed
    assert {c.metric for c in missing.failed} == {"retrieval_hit_rate", "latency_p95_ms", "cost_per_success"}


def test_shipped_gate_file_equals_module_gate():
    g = Gate.load("data/gate.yaml")
    assert g.checks == MODULE_GATE.checks


def test_report_lists_each_check_with_observed_and_reason():
    rep = MODULE_GATE.evaluate({**MODULE_BASELINE, "faithfulness": 0.80})
    d = rep.to_dict()
    assert d["verdict"] == "fail" and d["n_failed"] == 1
    faith = next(c for c in d["checks"] if c["metric"] == "faithfulness")
    assert faith == {**faith, "op": ">=", "threshold": 0.85, "observed": 0.80, "passed": False}
    assert "is not >=" in faith["reason"]
    json.dumps(d, allow_nan=False)


def test_statistic_ci_low_and_unmeasured_value():
    g = Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.8,
                                    "statistic": "ci_low"},
                                   {"metric": "mrr", "op": ">=", "threshold": 0.1}]})
    m = metrics_json(faithfulness=(0.9, 0.78, 0.95, 10, 0), mrr=(None, None, None, 0, 10))
    rep = g.evaluate(m)
    assert [c.kind for c in rep.checks] == ["absolute", "absolute", "coverage"]
    assert [c.passed for c in rep.checks] == [False, False, True]
    assert rep.checks[0].observed == 0.78
    assert "unmeasured" in rep.checks[1].reason
    with pytest.raises(GateFailed) as ei:
        g.enforce(m)
    assert ei.value.report is not None


def test_slices_and_unmeasured_budget():
    g = Gate.from_dict({
        "checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.5}],
        "slices": [{"where": {"risk": "high"}, "checks": [
            {"metric": "must_include_coverage", "op": ">=", "threshold": 1.0}]}],
        "unmeasured": {"max_rate": 0.05},
    })
    m = metrics_json(faithfulness=(0.9, 0.8, 0.95, 90, 10))
    m["slices"]["risk=high"] = {"must_include_coverage": {"value": 1.0, "n": 12, "unmeasured": 0}}
    rep = g.evaluate(m)
    by_kind = {c.kind: c for c in rep.checks}
    assert by_kind["slice"].passed and by_kind["slice"].slice == "risk=high"
    assert not by_kind["unmeasured"].passed and by_kind["unmeasured"].observed == pytest.approx(0.1)
    m["slices"]["risk=high"]["must_include_coverage"]["n"] = 4  # a slice of a handful of cases
    few = next(c for c in g.evaluate(m).checks if c.kind == "slice")
    assert not few.passed and "min_n is 10" in few.reason
    m["slices"] = {}
    assert not next(c for c in g.evaluate(m).checks if c.kind == "slice").passed


def test_a_run_whose_metrics_do_not_count_missing_cases_is_not_judged_blind(tmp_path):
    run = _hand_run(tmp_path, "2999-01-01T00:00:00+00:00")
    m = json.loads((run / "metrics.json").read_text())
    del m["n_missing"]  # written by hand, or by a labkit that did not count them
    (run / "metrics.json").write_text(json.dumps(m))
    _recorded(run)
    cov = next(c for c in MODULE_GATE.evaluate(run).checks if c.kind == "coverage")
    assert not cov.passed and "labkit score" in cov.reason


@pytest.mark.parametrize("cfg, field", [
    ({"checks": [{"metric": "faithfullness", "op": ">=", "threshold": 1}]}, "checks[0].metric"),
    ({"checks": [{"metric": "mrr", "op": "=>", "threshold": 1}]}, "checks[0].op"),
    ({"checks": [{"metric": "mrr", "op": ">=", "threshold": "high"}]}, "checks[0].threshold"),
    ({"checks": [{"metric": "mrr", "op": ">=", "threshold": 1, "statistic": "median"}]}, "checks[0].statistic"),
    ({"checkz": []}, "checkz"),
    ({"regression": [{"metric": "mrr", "max_drop": -1}]}, "regression[0].max_drop"),
    ({"checks": []}, "checks"),
])
def test_config_errors_name_field_and_known_names(cfg, field):
    with pytest.raises(ConfigError) as ei:
        Gate.from_dict(cfg, path="g.yaml")
    assert ei.value.field == field and "g.yaml" in str(ei.value)
    if field.endswith(".metric"):
        assert "faithfulness" in ei.value.known


def test_yaml_errors_name_line(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text("checks:\n  - {metric: mrr, op: '>=', threshold: 1\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert ei.value.line is not None and str(p) in str(ei.value)


def test_with_thresholds_and_yaml_roundtrip(tmp_path):
    g = Gate.load("data/gate.yaml").with_thresholds({"faithfulness": 0.9, "latency_p95_ms": 3000})
    path = g.to_yaml(tmp_path / "tuned.yaml")
    again = Gate.load(path)
    assert {c.metric: c.threshold for c in again.checks}["faithfulness"] == 0.9
    assert {c.metric: c.threshold for c in again.checks}["latency_p95_ms"] == 3000


def test_junit_is_well_formed_whatever_a_check_says():
    """A reason or name holding a character XML 1.0 cannot hold (ESC, BEL) made the JUnit file
    not well-formed, and CI reporters refused it: such characters are written as their escapes."""
    from labkit.gate.report import CheckResult

    rep = MODULE_GATE.evaluate({**MODULE_BASELINE, "cost_per_success": 0.5})
    rep.checks.append(CheckResult(name="case \x1b[2Kx\x07", kind="review", metric=None, op=None, threshold=None,
                                  observed=None, passed=False, reason="sec-001\x1b[2K\r"))
    root = ET.fromstring(rep.to_junit())
    assert any("\\x1b" in (tc.get("name") or "") for tc in root.iter("testcase"))


def test_junit_and_markdown():
    rep = MODULE_GATE.evaluate({**MODULE_BASELINE, "cost_per_success": 0.5})
    root = ET.fromstring(rep.to_junit())
    assert root.get("tests") == "4" and root.get("failures") == "1"
    failed = [tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["cost_per_success <= 0.08"]
    md = rep.to_markdown()
    assert "**FAIL**" in md and md.count("\n| ") == 5


def test_lock_records_hash_and_flags_edits(tmp_path):
    gp = tmp_path / "gate.yaml"
    gp.write_text(GATE_TEXT)
    assert gate_lock_info(gp)["locked_at"] is None
    assert Gate.load(gp).pre_registration(None)["status"] == "not_locked"
    info = lock_gate(gp)
    assert gate_lock_info(gp)["locked_hash"] == info["hash"]
    # metrics without a run carry no start time: the lock cannot be shown to come first
    assert Gate.load(gp).pre_registration(None)["status"] == "unverifiable"
    # locking the unchanged gate again keeps the original time
    (gp.parent / "gate.yaml.lock.json").write_text(json.dumps({**info, "locked_at": "2020-01-01T00:00:00+00:00"}))
    again = lock_gate(gp)
    assert again["already_locked"] and again["locked_at"] == "2020-01-01T00:00:00+00:00"
    gp.write_text(gp.read_text().replace("0.85", "0.70"))
    st = Gate.load(gp).pre_registration(None)
    assert st["status"] == "edited_after_lock"
    rep = Gate.load(gp).evaluate(MODULE_BASELINE)
    assert not rep.passed and rep.failed[-1].kind == "pre_registration"


def _hand_run(tmp_path, created_at, gate_hash=None):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    man = {"run_id": "r1", "created_at": created_at}
    if gate_hash:
        man["gate"] = {"hash": gate_hash}
    (run / "manifest.json").write_text(json.dumps(man))
    (run / "metrics.json").write_text(json.dumps(metrics_json(
        faithfulness=(0.9, 0.85, 0.95, 20, 0), retrieval_hit_rate=(0.9, 0.8, 1.0, 20, 0),
        latency_p95_ms=(3000, 2800, 3200, 20, 0), cost_per_success=(0.01, 0.008, 0.012, 20, 0))))
    return _recorded(run)


def _recorded(run):
    """A run of hand-made metrics with the scoring record labkit score writes (the hashes of its
    files, the judge the gate declares none of): what a gate verifies before it judges, simulated
    here so that the gate's own logic is tested on chosen figures."""
    from labkit.io import file_hash
    from labkit.scoring import SCORED_FILES, judge_info

    for name in ("results.jsonl", "scores.csv"):
        if not (run / name).exists():
            (run / name).write_text("")
    man = json.loads((run / "manifest.json").read_text())
    man["scoring"] = {"sha256": {name: file_hash(run / name) for name in SCORED_FILES}, "k": 5,
                      "judge": judge_info(None)}
    (run / "manifest.json").write_text(json.dumps(man))
    return run


def test_lock_after_run_is_flagged(tmp_path):
    gp = tmp_path / "gate.yaml"
    gp.write_text(GATE_TEXT)
    run = _hand_run(tmp_path, "2020-01-01T00:00:00+00:00")
    lock_gate(gp)
    rep = Gate.load(gp).evaluate(run)
    assert rep.pre_registration["status"] == "locked_after_run" and not rep.passed
    run = _hand_run(tmp_path, "2999-01-01T00:00:00+00:00", gate_hash=gate_lock_info(gp)["hash"])
    rep = Gate.load(gp).evaluate(run)
    assert rep.passed and rep.pre_registration["status"] == "pre_registered" and rep.run_id == "r1"


def test_require_lock(tmp_path):
    gp = tmp_path / "gate.yaml"
    gp.write_text(GATE_TEXT + "require_lock: true\n")
    run = _hand_run(tmp_path, "2999-01-01T00:00:00+00:00")
    assert not Gate.load(gp).evaluate(run).passed  # not locked
    lock_gate(gp)
    assert Gate.load(gp).evaluate(run).passed
    assert not Gate.load(gp).evaluate(MODULE_BASELINE).passed  # a plain dict has no start time
    man = json.loads((run / "manifest.json").read_text())
    del man["created_at"]  # recorded traffic scored by hand: nothing dates it
    (run / "manifest.json").write_text(json.dumps(man))
    rep = Gate.load(gp).evaluate(run)
    assert not rep.passed and rep.pre_registration["status"] == "unverifiable"


def test_config_typos_are_config_errors_not_failing_checks(tmp_path):
    with pytest.raises(ConfigError) as ei:
        Gate.from_dict({"slices": [{"where": {"risk": "hgh"}, "checks": [
            {"metric": "mrr", "op": ">=", "threshold": 0.5}]}]})
    assert ei.value.field == "slices[0].where.risk" and "high" in ei.value.known
    with pytest.raises(ConfigError, match="can never be met"):
        Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 1.5}]})
    g = Gate.from_dict({"regression": [{"metric": "faithfulness", "max_drop": 0.02}]})
    run = _hand_run(tmp_path, "2999-01-01T00:00:00+00:00")
    with pytest.raises(ConfigError, match="--baseline"):
        g.evaluate(run)


def test_a_threshold_no_value_of_its_metric_can_meet_is_a_config_error(tmp_path):
    """Latency, cost and tokens are never negative: a negative threshold can never be met as
    meant (``<= -5`` fails every run, ``>= -5`` passes every one)."""
    for metric, op in (("latency_p95_ms", "<="), ("cost_per_success", ">="), ("tokens_per_case", "<")):
        with pytest.raises(ConfigError, match="never negative") as ei:
            Gate.from_dict({"checks": [{"metric": metric, "op": op, "threshold": -5}]})
        assert ei.value.field == "checks[0].threshold"
    path = tmp_path / "gate.yaml"
    path.write_text("checks:\n  - {metric: faithfulness, op: '>=', threshold: 0.8}\n"
                    "  - {metric: latency_p95_ms, op: '<=', threshold: -1}\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(path)
    assert ei.value.line == 3 and ei.value.path == str(path)
    assert Gate.from_dict({"checks": [{"metric": "latency_p95_ms", "op": "<=", "threshold": 0}]}).checks


def test_the_gate_declares_its_judge(tmp_path):
    """``judge:`` names the judge the thresholds are measured with (as ``labkit score --judge``
    takes it: a name or a mapping); none declared is the default lexical judge. An unknown judge
    or options are config errors at the line of the gate file."""
    from labkit.judges import LexicalJudge

    assert MODULE_GATE.judge_identity == LexicalJudge().describe()
    g = Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.8}],
                        "judge": {"type": "lexical", "threshold": 0.5}})
    assert g.judge_identity == LexicalJudge(threshold=0.5).describe()
    assert Gate.from_dict(g.to_dict()).judge_identity == g.judge_identity  # kept when written back
    assert Gate.from_dict({"checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}],
                           "judge": "lexical"}).judge_identity == LexicalJudge().describe()
    for bad, match in (("oracle", "unknown judge 'oracle'"), ({"type": "lexical", "treshold": 0.5}, "treshold"),
                       (3, "judge")):
        path = tmp_path / "gate.yaml"
        path.write_text("checks:\n  - {metric: faithfulness, op: '>=', threshold: 0.8}\n"
                        + f"judge: {json.dumps(bad)}\n")
        with pytest.raises(ConfigError, match=match) as ei:
            Gate.load(path)
        assert ei.value.field == "judge" and ei.value.line == 3 and ei.value.path == str(path), ei.value


def test_unscored_run_is_a_clear_error(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(ConfigError, match="labkit score"):
        MODULE_GATE.evaluate(tmp_path / "r")
    with pytest.raises(ConfigError, match="not found"):
        MODULE_GATE.evaluate(os.fspath(tmp_path / "missing"))


def test_review_coverage(tmp_path):
    ds = tmp_path / "d.jsonl"
    ds.write_text("\n".join(json.dumps(x) for x in [
        {"id": "h1", "question": "a", "tags": {"risk": "high"}},
        {"id": "h2", "question": "b", "tags": {"risk": "high"}},
        {"id": "l1", "question": "c", "tags": {"risk": "low"}}]) + "\n")
    g = Gate.from_dict({"review": {"required_for": {"risk": "high"}}})
    rv = tmp_path / "reviews.jsonl"
    rv.write_text(json.dumps({"case_id": "h1", "reviewer": "r", "verdict": "approved", "at": "2026-01-01"}) + "\n")
    rep = g.evaluate({}, reviews=rv, dataset=str(ds))
    (c,) = rep.checks
    assert not c.passed and c.observed == 0.5 and "h2" in c.reason
    with rv.open("a") as f:
        f.write(json.dumps({"case_id": "h2", "reviewer": "r", "verdict": "approved", "at": "2026-01-02"}) + "\n")
    assert g.evaluate({}, reviews=rv, dataset=str(ds)).passed
    rv.write_text('{"case_id": "h1"}\n')
    from labkit.errors import DatasetError
    with pytest.raises(DatasetError) as ei:
        g.evaluate({}, reviews=rv, dataset=str(ds))
    assert {p.field for p in ei.value.problems} == {"reviewer", "verdict", "at"}


def test_config_errors_from_a_file_name_the_line(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text("version: 1\nchecks:\n  - {metric: faithfulness, op: '>=', threshold: 0.8}\n"
                 "  - {metric: faithfullness, op: '>=', threshold: 0.8}\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert ei.value.line == 4 and f"{p}:4" in str(ei.value) and ei.value.field == "checks[1].metric"
    p.write_text("version: 1\nchecks:\n  - {metric: mrr, op: '>=', threshold: 0.5}\nunmeasured: {max_rate: x}\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert ei.value.line == 4


def test_lock_and_run_in_the_same_second_are_ordered(tmp_path):
    from datetime import UTC, datetime, timedelta

    gp = tmp_path / "gate.yaml"
    gp.write_text(GATE_TEXT)
    info = lock_gate(gp)
    locked = datetime.fromisoformat(info["locked_at"])
    before = (locked - timedelta(microseconds=300)).isoformat()
    after = (locked + timedelta(microseconds=300)).isoformat()
    assert Gate.load(gp).evaluate(_hand_run(tmp_path, after)).pre_registration["status"] == "pre_registered"
    assert Gate.load(gp).evaluate(_hand_run(tmp_path, before)).pre_registration["status"] == "locked_after_run"
    # a lock stamped to the second still compares by time against a finer run stamp
    (tmp_path / "gate.yaml.lock.json").write_text(json.dumps({**info, "locked_at": "2026-01-01T00:00:00+00:00"}))
    run = _hand_run(tmp_path, datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC).isoformat())
    assert Gate.load(gp).evaluate(run).pre_registration["status"] == "pre_registered"



def test_a_start_or_lock_time_that_is_no_time_is_named_at_its_own_file_and_field(tmp_path):
    """A run's created_at that is no ISO time was reported as the lock's field (locked_at), with no
    file: each stamp is named at the file and field it came from."""
    gp = tmp_path / "gate.yaml"
    gp.write_text(GATE_TEXT)
    info = lock_gate(gp)
    run = _hand_run(tmp_path, "yesterday")
    with pytest.raises(ConfigError) as ei:
        Gate.load(gp).evaluate(run)
    assert ei.value.field == "created_at" and ei.value.path == str(Path(run) / "manifest.json"), ei.value
    assert "'yesterday'" in str(ei.value)
    (tmp_path / "gate.yaml.lock.json").write_text(json.dumps({**info, "locked_at": "last week"}))
    with pytest.raises(ConfigError) as ei:
        Gate.load(gp).evaluate(_hand_run(tmp_path, "2026-01-01T00:00:00+00:00"))
    assert ei.value.field == "locked_at" and ei.value.path == str(tmp_path / "gate.yaml.lock.json"), ei.value

# ---- the verdict judges the whole dataset, on enough cases --------------------------------------

GOLDEN = "data/golden.jsonl"


@pytest.fixture(scope="module")
def shipped_runs(tmp_path_factory):
    from labkit.cli import main

    root = tmp_path_factory.mktemp("gate_runs")
    for name in ("baseline", "variant"):
        assert main(["run", "--dataset", GOLDEN, "--pipeline", f"data/pipelines/{name}.yaml",
                     "--out", str(root / name), "--quiet", "--gate", "data/gate.yaml"]) == 0
    return root


def _copy_run(src, dst):
    """A copy of a run as recorded traffic (no ``results_sha256`` and no ``pipeline_calls``, as a
    manifest written by hand: the tests edit its lines, as a team edits recorded lines; a runner's
    own run refuses edited lines: tests/test_gate_integrity.py)."""
    import shutil

    shutil.copytree(src, dst)
    man = json.loads((dst / "manifest.json").read_text())
    man.pop("results_sha256", None)
    man.pop("pipeline_calls", None)
    (dst / "manifest.json").write_text(json.dumps(man, indent=2))
    return dst


def _drop_least_faithful(run, n):
    import pandas as pd

    scores = pd.read_csv(run / "scores.csv", dtype={"case_id": str})
    worst = set(scores.sort_values("faithfulness", na_position="last")["case_id"].head(n))
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if json.loads(ln)["case_id"] not in worst]
    (run / "results.jsonl").write_text("".join(kept))
    return worst


def test_deleting_the_least_faithful_results_does_not_turn_fail_into_pass(shipped_runs, tmp_path, capsys):
    from labkit.cli import main

    run = _copy_run(shipped_runs / "variant", tmp_path / "variant")
    base = str(shipped_runs / "baseline")
    _drop_least_faithful(run, 25)
    assert main(["score", str(run)]) == 0
    out = capsys.readouterr().out
    assert "45 of 70" in out
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_cases"] == 45 and m["n_missing"] == 25
    assert m["metrics"]["faithfulness"]["n_missing"] == 25
    assert sum(e["faithfulness"]["n_missing"] for k, e in m["slices"].items() if k.startswith("risk=")) == 25
    junit, md = tmp_path / "g.xml", tmp_path / "g.md"
    code = main(["gate", "--config", "data/gate.yaml", str(run), "--baseline", base, "--json",
                 "--junit", str(junit), "--markdown", str(md)])
    rep = json.loads(capsys.readouterr().out)
    assert code == 1 and rep["verdict"] == "fail"
    cov = next(c for c in rep["checks"] if c["kind"] == "coverage")
    assert not cov["passed"] and "25 of 70" in cov["reason"]
    assert rep["cases"] == {"n_judged": 45, "n_dataset": 70, "n_missing": 25}
    assert "45 of 70" in md.read_text()
    root = ET.fromstring(junit.read_text())
    assert any(tc.find("failure") is not None for tc in root.iter("testcase")
               if tc.get("classname") == "labkit.gate.coverage")
    assert "45 of 70" in ET.tostring(root, encoding="unicode")
    main(["gate", "--config", "data/gate.yaml", str(run), "--baseline", base])
    assert "judged 45 of 70 cases" in capsys.readouterr().out


def test_the_unmeasured_budget_can_explicitly_allow_missing_cases(shipped_runs, tmp_path):
    run = _copy_run(shipped_runs / "baseline", tmp_path / "baseline")
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text("".join(lines[:-3]))  # 3 of 70 cases missing (4.3%)
    from labkit.scoring import score_run

    score_run(run)
    checks = [{"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.8}]
    strict = Gate.from_dict({"checks": checks}).evaluate(run)
    assert not strict.passed and [c.kind for c in strict.failed] == ["coverage"]
    loose = Gate.from_dict({"checks": checks, "unmeasured": {"max_rate": 0.2}}).evaluate(run)
    cov = next(c for c in loose.checks if c.kind == "coverage")
    assert cov.passed and cov.observed == pytest.approx(3 / 70)
    # the observed value is the share of cases missing, and says so ("observed 0" read as 0 judged)
    assert "every case of the dataset judged: observed 4.3% missing — " in loose.summary()
    assert "| every case of the dataset judged | 4.3% missing |" in loose.to_markdown()
    # a missing case is unmeasured on every gated metric
    um = next(c for c in loose.checks if c.kind == "unmeasured")
    assert "of 70 cases" in um.reason
    tight = Gate.from_dict({"checks": checks, "unmeasured": {"max_rate": 0.04}}).evaluate(run)
    assert not next(c for c in tight.checks if c.kind == "coverage").passed


def test_a_result_for_a_case_not_in_the_dataset_is_an_input_error(shipped_runs, tmp_path, capsys):
    from labkit.cli import main

    run = _copy_run(shipped_runs / "baseline", tmp_path / "baseline")
    with (run / "results.jsonl").open("a") as f:
        f.write(json.dumps({"case_id": "not-a-case", "status": "ok", "answer": "x"}) + "\n")
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl" in err and "line 71" in err and "'not-a-case'" in err
    assert "Traceback" not in err


def test_forged_cache_claims_are_an_input_error(shipped_runs, tmp_path, capsys):
    from labkit.cli import main

    run = _copy_run(shipped_runs / "baseline", tmp_path / "forged")
    rows = [json.loads(ln) for ln in (run / "results.jsonl").read_text().splitlines()]
    for r in rows[1:]:
        r["from_cache"] = True
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl" in err and "line 2 field" in err and "cache_origin" in err


def test_a_percentile_of_one_uncached_case_does_not_pass_silently(tmp_path, capsys):
    """A real cache serving all but one case leaves the latency percentile on one case."""
    from labkit.cli import main

    cache = tmp_path / "cache"
    common = ["--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml", "--quiet", "--cache", str(cache)]
    assert main(["run", *common, "--out", str(tmp_path / "first")]) == 0
    entries = sorted(cache.rglob("*.json"))
    assert len(entries) == 70
    entries[0].unlink()
    run = tmp_path / "cached"
    assert main(["run", *common, "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["metrics"]["latency_p95_ms"]["n"] == 1
    capsys.readouterr()
    gate = tmp_path / "g.yaml"
    gate.write_text("checks:\n  - {metric: latency_p95_ms, op: '<=', threshold: 3500}\n"
                    "  - {metric: faithfulness, op: '>=', threshold: 0.5}\n")
    assert main(["gate", "--config", str(gate), str(run), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    lat, faith = rep["checks"][0], rep["checks"][1]
    assert not lat["passed"] and lat["n"] == 1 and lat["min_n"] == 20 and "1 case" in lat["reason"]
    assert faith["passed"] and faith["n"] == m["metrics"]["faithfulness"]["n"] and faith["min_n"] == 10
    # an explicit min_n (and a budget for the 69 cache hits the percentile leaves out) is the
    # gate author's choice, and is reported as such
    gate.write_text("checks:\n  - {metric: latency_p95_ms, op: '<=', threshold: 3500, min_n: 1}\n"
                    "unmeasured: {max_rate: 1.0}\n")
    assert main(["gate", "--config", str(gate), str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checks"][0]["min_n"] == 1


def test_min_n_defaults_follow_the_metric_kind():
    from labkit.gate import default_min_n

    assert default_min_n("faithfulness") == 10 and default_min_n("error_rate") == 10
    assert default_min_n("latency_p50_ms") == 10
    assert default_min_n("latency_p95_ms") == 20 and default_min_n("latency_p99_ms") == 100
    with pytest.raises(ConfigError):
        Gate.from_dict({"checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5, "min_n": 0}]})
    g = Gate.from_dict({"checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}],
                        "regression": [{"metric": "mrr", "max_drop": 0.1, "min_n": 30}]})
    assert g.regression[0].min_n == 30 and Gate.from_dict(g.to_dict()).regression[0].min_n == 30
    few = metrics_json(mrr=(0.9, 0.5, 1.0, 3, 0))
    c = Gate.from_dict({"checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}]}).evaluate(few).checks[0]
    assert not c.passed and c.n == 3 and c.min_n == 10


def test_shipped_gate_checks_non_inferiority_and_is_locked():
    g = Gate.load("data/gate.yaml")
    assert {r.metric for r in g.regression} >= {"faithfulness"}
    assert gate_lock_info("data/gate.yaml")["edited_after_lock"] is False


def test_shipped_outcome_baseline_passes_variant_fails(shipped_runs):
    g = Gate.load("data/gate.yaml")
    base, var = shipped_runs / "baseline", shipped_runs / "variant"
    assert g.thresholds_only().evaluate(base).passed  # the reference, on its thresholds
    rep = g.evaluate(var, baseline=base)
    assert not rep.passed
    assert {c.kind for c in rep.failed} == {"absolute", "regression"}


def test_baseline_given_to_a_gate_without_regression_checks_says_so(shipped_runs, tmp_path, capsys):
    from labkit.cli import main

    gate = tmp_path / "g.yaml"
    gate.write_text("checks:\n  - {metric: faithfulness, op: '>=', threshold: 0.5}\n")
    base = str(shipped_runs / "baseline")
    assert main(["gate", "--config", str(gate), base, "--baseline", base]) == 2
    err = capsys.readouterr().err
    assert "no regression checks" in err and "--baseline" in err and err.count("\n") == 1
    rep = Gate.load(gate).evaluate(base, baseline=base)
    assert any("no regression checks" in n for n in rep.notes)


@pytest.mark.parametrize("rate", [1.5, -0.1])
def test_unmeasured_budget_rate_outside_0_1_is_a_config_error(tmp_path, rate):
    p = tmp_path / "g.yaml"
    p.write_text(f"checks:\n  - {{metric: faithfulness, op: '>=', threshold: 0.8}}\nunmeasured: {{max_rate: {rate}}}\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert ei.value.field == "unmeasured.max_rate" and str(p) in str(ei.value)


# ---- metrics.json schema_version and keyword-only result objects ----------------------------------


def test_gate_report_says_which_metrics_schema_version_it_read(tmp_path):
    gate = Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.8}]})
    first_landing = metrics_json(faithfulness=(0.9, 0.85, 0.95, 40, 0))  # no schema_version key
    assert gate.evaluate(first_landing).metrics_schema_version == 0
    assert gate.evaluate({**first_landing, "schema_version": 1}).to_dict()["metrics_schema_version"] == 1
    assert gate.evaluate({"faithfulness": 0.9}).metrics_schema_version is None  # a plain dict has no layout
    with pytest.raises(ConfigError, match="schema_version 7 is newer"):
        gate.evaluate({**first_landing, "schema_version": 7})


def test_result_objects_are_keyword_only():
    from labkit.gate import CheckResult, GateReport

    with pytest.raises(TypeError):
        CheckResult("c", "absolute", "faithfulness", ">=", 0.8, 0.9, True, "ok")  # type: ignore[misc]
    with pytest.raises(TypeError):
        GateReport("g", True, [])  # type: ignore[misc]
    r = CheckResult(name="c", kind="absolute", metric="faithfulness", op=">=", threshold=0.8, observed=0.9,
                    passed=True, reason="ok")
    assert GateReport(gate="g", passed=True, checks=[r]).to_dict()["n_checks"] == 1


def test_a_gate_cut_off_is_held_to_the_bounds_scoring_holds_it_to():
    """One check of k (labkit.registry.check_k): a gate's ``k: 1000000`` loaded, though no run can be
    scored at it."""
    for bad in (0, 10_001, 10**6, True, "5"):
        with pytest.raises(ConfigError) as ei:
            Gate.from_dict({"k": bad, "checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}]})
        assert ei.value.field == "k" and "1 to 10,000" in str(ei.value), ei.value
    assert Gate.from_dict({"k": 10_000, "checks": [{"metric": "mrr", "op": ">=", "threshold": 0.5}]}).k == 10_000


def test_locking_a_gate_whose_lock_holds_no_time_is_refused_naming_it(tmp_path, capsys):
    """`labkit gate lock` kept an existing lock whose locked_at was "yesterday" and printed "at
    yesterday": a lock that holds no time pre-registers nothing, and is named."""
    import shutil

    from labkit.cli import main

    gate = tmp_path / "g.yaml"
    shutil.copy("data/gate.yaml", gate)
    assert main(["gate", "lock", str(gate)]) == 0
    lock = tmp_path / "g.yaml.lock.json"
    lock.write_text(json.dumps({**json.loads(lock.read_text()), "locked_at": "yesterday"}))
    capsys.readouterr()
    assert main(["gate", "lock", str(gate)]) == 2
    err = capsys.readouterr().err
    assert "g.yaml.lock.json" in err and "locked_at" in err and "yesterday" in err, err


_PRINTED_GATE = """version: 1
name: {name}
checks:
  - {{metric: faithfulness, op: '>=', threshold: 0.8}}
slices:
  - where: {where}
    checks: [{{metric: faithfulness, op: '>=', threshold: 0.5}}]
review: {{required_for: {review}}}
"""


@pytest.mark.parametrize("name, where, review, field, line", [
    ('"nightly\\r\\e[2Kgate: PASS"', "{topic: billing}", "{topic: billing}", "name", 2),
    ('"gate \\u202eSSAP"', "{topic: billing}", "{topic: billing}", "name", 2),
    ("nightly", '{topic: "billing\\e[31m"}', "{topic: billing}", "slices[0].where.topic", 6),
    ("nightly", '{"top\\u202eic": billing}', "{topic: billing}", "slices[0].where", 6),
    ("nightly", "{topic: billing}", '{topic: "bill\\ring"}', "review.required_for.topic", 8),
    ("nightly", "{topic: billing}", '{"topic\\e]0;x\\a": billing}', "review.required_for", 8),
])
def test_a_gate_text_the_verdict_prints_may_not_hold_a_control_or_direction_character(
        tmp_path, capsys, name, where, review, field, line):
    """A gate's name, a slice's tag and value and the review's were printed raw in the verdict:
    ``name: "nightly\\r\\e[2Kgate: PASS"`` showed a CI log "gate: PASS" over the FAIL line. They are
    refused when the gate is loaded, at the file, line and field, as a case id holding one is."""
    from labkit.cli import main

    p = tmp_path / "g.yaml"
    p.write_text(_PRINTED_GATE.format(name=name, where=where, review=review))
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert (ei.value.path, ei.value.line, ei.value.field) == (str(p), line, field)
    assert "control or direction character" in ei.value.message
    assert main(["gate", "--config", str(p), str(tmp_path / "no-run")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"{p}:{line}" in err and repr(field) in err, err
    assert not any(ch in err for ch in "\r\x1b\x07\u202e"), err


def test_the_verdict_line_shows_a_control_character_of_the_gate_file_name_as_its_escape(tmp_path):
    """A gate without ``name:`` is named by its file, whose name is the user's path, not the gate's
    text: the text summary shows a control character of it as its escape, as gate.md does."""
    p = tmp_path / "nightly\r\x1b[2K.yaml"
    p.write_text("version: 1\nchecks:\n  - {metric: faithfulness, op: '>=', threshold: 0.8}\n")
    summary = Gate.load(p).evaluate({"faithfulness": 0.5}).summary()
    assert summary.startswith("gate nightly\\r\\x1b[2K: FAIL") and "\x1b" not in summary and "\r" not in summary
