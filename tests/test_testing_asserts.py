"""labkit.testing.assert_gate and assert_case: failing and passing, on dicts, runs and cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.cases import as_cases, load_cases
from labkit.errors import ConfigError
from labkit.gate import Gate
from labkit.runs import RunDir
from labkit.testing import assert_case, assert_gate, case_failures

GATE = {"version": 1, "name": "team-gate",
        "checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.85},
                   {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500}]}
CASE = {"id": "sec-001", "question": "How do I reset an expired API key?",
        "must_include": ["security portal", "identity verification"], "must_not_include": ["password"],
        "expected_tools": [{"name": "lookup_account", "args": {"user_id": "u-17"}}]}
GOOD = {"case_id": "sec-001", "status": "ok",
        "answer": "Open the Security Portal; after identity  verification a new key is shown.",
        "tool_calls": [{"name": "lookup_account", "args": {"user_id": "u-17"}, "status": "ok"}]}
SMALL = ("sec-001", "sec-002", "sup-001", "bil-001", "acc-006")


def test_assert_gate_passes_and_returns_the_report() -> None:
    rep = assert_gate({"faithfulness": 0.9, "latency_p95_ms": 3000}, Gate.from_dict(GATE))
    assert rep.passed and rep.gate == "team-gate"


def test_assert_gate_lists_each_failed_check_on_its_own_line() -> None:
    with pytest.raises(AssertionError) as e:
        assert_gate({"faithfulness": 0.7, "latency_p95_ms": 4000.5}, Gate.from_dict(GATE))
    lines = str(e.value).splitlines()
    assert lines[0] == "gate team-gate: FAIL (2 of 2 checks failed)"
    assert lines[1] == "  faithfulness: observed 0.7, required >= 0.85 — 0.7 is not >= 0.85"
    assert lines[2] == "  latency_p95_ms: observed 4000, required <= 3500 — 4000 is not <= 3500"


def test_assert_gate_names_an_unmeasured_metric() -> None:
    with pytest.raises(AssertionError) as e:
        assert_gate({"latency_p95_ms": 100}, Gate.from_dict(GATE))
    assert str(e.value).splitlines()[1:] == [
        "  faithfulness: observed —, required >= 0.85 — metric missing from the metrics given"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    from labkit.runner import run

    root = tmp_path_factory.mktemp("asserts")
    cases = [c for c in load_cases("data/golden.jsonl") if c.id in SMALL]
    ds = root / "small.jsonl"
    ds.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in cases))
    return run(ds, "data/pipelines/baseline.yaml", root / "run")


def test_assert_gate_takes_a_path_a_rundir_and_a_gate_file_and_passes_the_baseline(
        small_run: RunDir, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("version: 1\nname: small\n"
                    "checks:\n  - {metric: retrieval_hit_rate, op: '>=', threshold: 0.5, min_n: 1}\n"
                    "regression:\n  - {metric: retrieval_hit_rate, max_drop: 0.05, min_n: 1}\n")
    from labkit.runner import run

    # the baseline must be another run (a run is never its own baseline): the same pipeline again
    base = run(small_run.path.parent / "small.jsonl", "data/pipelines/baseline.yaml", tmp_path / "base")
    for target in (small_run, str(small_run.path), small_run.path):
        rep = assert_gate(target, gate, baseline=base.path)  # the same pipeline: no drop
        assert rep.passed and {c.kind for c in rep.checks} >= {"absolute", "regression"}
    with pytest.raises(ConfigError, match=r"give the baseline run \(baseline=RUN_DIR; labkit gate --baseline"):
        assert_gate(small_run, gate)  # a usage error, not a failed check, told in the caller's terms too


def test_assert_case_passes_a_good_result() -> None:
    assert_case(CASE, GOOD)  # phrases match case- and whitespace-insensitively, as scoring does
    assert case_failures(as_cases([CASE])[0], GOOD) == []


def test_assert_case_lists_every_failed_check() -> None:
    bad = {"case_id": "sec-001", "status": "ok", "answer": "Use the security portal; never share a password.",
           "tool_calls": []}
    with pytest.raises(AssertionError) as e:
        assert_case(CASE, bad)
    assert str(e.value).splitlines() == [
        "case sec-001: 3 check(s) failed",
        "  must_include: missing ['identity verification'] (coverage 0.50)",
        "  must_not_include: found ['password']",
        "  expected_tools: expected calls ['lookup_account'], called []",
    ]


def test_assert_case_tool_arguments_and_status() -> None:
    wrong_args = {**GOOD, "tool_calls": [{"name": "lookup_account", "args": {"user_id": "u-99"}}]}
    (line,) = case_failures(CASE, wrong_args)
    assert line.startswith("expected_tools: arguments match on 0.00 of the calls")
    assert "'u-99'" in line and "'u-17'" in line
    failed = case_failures(CASE, {"case_id": "sec-001", "status": "timeout", "answer": None,
                                  "error": "deadline 30 s", "tool_calls": []})
    assert failed[0] == "status: timeout (deadline 30 s)"
    assert failed[1].startswith("must_include: missing ['security portal', 'identity verification']")


def test_a_phrase_a_redaction_may_hide_fails_as_uncheckable() -> None:
    case = {"id": "c1", "question": "Who to call?", "must_include": ["555-0100"]}
    (line,) = case_failures(case, {"case_id": "c1", "status": "ok", "answer": "Call [PHONE] now."})
    assert line == "must_include: cannot be checked, a redaction placeholder may hide ['555-0100']"


def test_a_result_of_another_case_is_refused() -> None:
    with pytest.raises(ValueError, match="not 'sec-001'"):
        assert_case(CASE, {**GOOD, "case_id": "sec-002"})


def test_assert_case_agrees_with_task_success_in_scores(small_run: RunDir) -> None:
    cases = {c.id: c for c in load_cases(small_run.dataset_path() or "")}
    results = {r["case_id"]: r for r in small_run.results()}
    scores = small_run.scores().set_index("case_id")["task_success_rate"]
    verdicts = {cid: not case_failures(cases[cid], results[cid]) for cid in SMALL}
    assert verdicts == {cid: scores[cid] == 1.0 for cid in SMALL}
    assert set(verdicts.values()) == {True, False}  # the small run holds both kinds
