"""Readiness building blocks: attestations, SLO budgets and burn rates, rollout rules, shipped configs."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import ConfigError
from labkit.readiness import (
    evaluate_rollout,
    evaluate_slos,
    load_attestations,
    load_rollout,
    load_slos,
)
from labkit.readiness.model import apply_attestations, item
from labkit.readiness.runview import RunView

REPO = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 11, 27)


def test_import_stays_light() -> None:
    code = ("import sys, labkit.readiness, labkit.commands.readiness; "
            "print([m for m in ('pandas', 'duckdb', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shipped_configs_load() -> None:
    slos = load_slos(REPO / "data/slo.yaml")
    assert {s.kind for s in slos.slos} == {"error_rate", "latency", "cost_per_success", "quality_floor"}
    plan = load_rollout(REPO / "data/rollout.yaml", [s.name for s in slos.slos])
    assert [s.traffic_percent for s in plan.stages] == [0, 5, 25, 100]
    assert all(s.requires and s.rollback_triggers for s in plan.stages)
    atts = load_attestations(REPO / "data/attestations.yaml")
    assert atts and all(a.owner and a.evidence and a.date for a in atts)


def _att(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "att.yaml"
    p.write_text("attestations:\n" + body)
    return p


def test_attestation_never_overrides_an_automated_result(tmp_path: Path) -> None:
    p = _att(tmp_path, """  - {item: rel.fallback, status: attested, owner: me, evidence: https://x.example/a, date: 2026-11-01}
  - {item: inc.oncall, status: attested, owner: me, evidence: https://x.example/b, date: 2026-11-01}
  - {item: obs.x, status: attested, owner: me, evidence: https://x.example/c, date: 2026-11-01}
""")
    items = [item("rel.fallback", area="reliability", checklist="reliability", title="t", status="fail",
                  evidence="no fallback", action="add one", severity="high"),
             item("inc.oncall", area="incident readiness", checklist="incident", title="t", status="unknown",
                  evidence="manual", action="attest", severity="medium"),
             item("obs.x", area="observability", checklist="observability", title="t", status="pass",
                  evidence="measured", severity="high")]
    out = {i.id: i for i in apply_attestations(items, load_attestations(p), today=TODAY)}
    assert out["rel.fallback"].status == "fail" and "never overrides" in out["rel.fallback"].evidence
    assert out["inc.oncall"].status == "attested" and out["inc.oncall"].action is None
    assert out["obs.x"].status == "pass" and out["obs.x"].source == "automated"


def test_stale_or_future_attestations_are_ignored(tmp_path: Path) -> None:
    p = _att(tmp_path, """  - {item: a, status: attested, owner: me, evidence: https://x.example/a, date: 2025-01-01}
  - {item: b, status: attested, owner: me, evidence: https://x.example/b, date: 2027-01-01}
""")
    items = [item(i, area="incident readiness", checklist="incident", title="t", status="unknown", evidence="manual",
                  action="attest", severity="medium") for i in "ab"]
    out = apply_attestations(items, load_attestations(p), today=TODAY)
    assert [i.status for i in out] == ["unknown", "unknown"]
    assert "older than" in out[0].evidence and "future" in out[1].evidence


@pytest.mark.parametrize("body, field", [
    ("  - {item: zzz, status: attested, owner: me, evidence: https://x.example, date: 2026-11-01}\n", "item"),
    ("  - {item: a, status: maybe, owner: me, evidence: https://x.example, date: 2026-11-01}\n", "status"),
    ("  - {item: a, status: attested, evidence: https://x.example, date: 2026-11-01}\n", "owner"),
    ("  - {item: a, status: attested, owner: me, evidence: trust me, date: 2026-11-01}\n", "evidence"),
    ("  - {item: a, status: attested, owner: me, evidence: https://x.example, date: soon}\n", "date"),
])
def test_bad_attestations_are_config_errors(tmp_path: Path, body: str, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_attestations(_att(tmp_path, body), known=["a"])
    assert field in str(e.value.field)


def _hand_run(root: Path, name: str, rows: list[dict[str, object]], faith: list[float]) -> RunView:
    d = root / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"run_id": name, "created_at": f"2026-11-0{len(name)}T00:00:00+00:00",
                                                 "pipeline": {"name": "p", "config_hash": "h"}}))
    (d / "results.jsonl").write_text("".join(json.dumps({"case_id": f"c{i}", **r}) + "\n" for i, r in enumerate(rows)))
    lines = ["case_id,task_success_rate,faithfulness"]
    lines += [f"c{i},{1 if r['status'] == 'ok' else 0},{f}" for i, (r, f) in enumerate(zip(rows, faith, strict=True))]
    (d / "scores.csv").write_text("\n".join(lines) + "\n")
    return RunView(d)


def test_slo_budget_and_burn_rate_by_hand(tmp_path: Path) -> None:
    slo = tmp_path / "slo.yaml"
    slo.write_text("""slos:
  - {name: avail, kind: error_rate, objective: 0.9}
  - {name: lat, kind: latency, percentile: 50, threshold_ms: 1000}
  - {name: cost, kind: cost_per_success, max_usd: 0.5}
  - {name: faith, kind: quality_floor, metric: faithfulness, floor: 0.8}
""")
    # old run: 10 cases, 0 errors, latencies 100..1000; recent run: 10 cases, 2 errors, all 2000 ms
    old = _hand_run(tmp_path, "a", [{"status": "ok", "latency_ms": 100.0 * (i + 1), "cost_usd": 0.1}
                                    for i in range(10)], [1.0] * 10)
    new = _hand_run(tmp_path, "bb", [{"status": "error" if i < 2 else "ok", "latency_ms": 2000.0, "cost_usd": 0.1}
                                     for i in range(10)], [0.7] * 8 + [0.7, 0.7])
    st = {s.name: s for s in evaluate_slos(load_slos(slo), [old, new])}
    a = st["avail"]  # history: 2 bad / 20 = 0.1 → consumed 1.0 (met, exactly); recent: 0.2 / 0.1 = 2.0
    assert a.bad_ratio == pytest.approx(0.1) and a.budget_remaining == pytest.approx(0.0)
    assert a.burn_rate == pytest.approx(2.0) and a.status == "at_risk"
    lat = st["lat"]  # 10 of 20 slower than 1000 ms (the recent run) → 0.5 / 0.5 = 1.0; recent 1.0/0.5 = 2
    assert lat.budget_consumed == pytest.approx(1.0) and lat.burn_rate == pytest.approx(2.0)
    # the observed p50 is an observed latency, within the threshold exactly when the budget holds
    assert lat.observed == 1000.0 and lat.status != "violated"
    c = st["cost"]  # 2.0 USD / 18 successes
    assert c.observed == pytest.approx(2.0 / 18) and c.budget_consumed == pytest.approx(2.0 / 18 / 0.5)
    f = st["faith"]  # mean 0.85 over 20 → bad 0.15 / 0.2 = 0.75; recent 0.3 / 0.2 = 1.5
    assert f.budget_remaining == pytest.approx(0.25) and f.burn_rate == pytest.approx(1.5)
    only_new = {s.name: s for s in evaluate_slos(load_slos(slo), [new])}
    assert only_new["avail"].status == "violated" and only_new["faith"].status == "violated"


def test_slo_config_errors_name_the_field(tmp_path: Path) -> None:
    p = tmp_path / "slo.yaml"
    p.write_text("slos:\n  - {name: x, kind: quality_floor, metric: latency_p95_ms, floor: 0.9}\n")
    with pytest.raises(ConfigError) as e:
        load_slos(p)
    assert e.value.field == "slos[0].metric" and e.value.known and "faithfulness" in e.value.known
    p.write_text("slos:\n  - {name: x, kind: uptime}\n")
    with pytest.raises(ConfigError, match="unknown kind"):
        load_slos(p)


@pytest.mark.parametrize(("line", "field", "says"), [
    ("{name: x, kind: latency, threshold_ms: .inf, percentile: 95}", "slos[0].threshold_ms", "finite"),
    ("{name: x, kind: cost_per_success, max_usd: .inf}", "slos[0].max_usd", "finite"),
    ("{name: x, kind: latency, threshold_ms: -1, percentile: 95}", "slos[0].threshold_ms", "above 0"),
])
def test_an_slo_number_that_is_no_bound_is_refused(tmp_path: Path, line: str, field: str, says: str) -> None:
    """threshold_ms: .inf was accepted (an SLO always met), and a range error read "(0.0, None)"."""
    p = tmp_path / "slo.yaml"
    p.write_text(f"slos:\n  - {line}\n")
    with pytest.raises(ConfigError) as e:
        load_slos(p)
    assert e.value.field == field and says in e.value.message and "None" not in e.value.message, e.value.message


def test_a_duplicate_slo_name_is_named_at_its_own_line(tmp_path: Path) -> None:
    p = tmp_path / "slo.yaml"
    p.write_text("slos:\n  - name: avail\n    kind: error_rate\n    objective: 0.99\n"
                 "  - name: avail\n    kind: error_rate\n    objective: 0.9\n")
    with pytest.raises(ConfigError, match="duplicate") as e:
        load_slos(p)
    assert e.value.line == 5 and e.value.field == "slos[1].name"


def test_rollout_stage_needs_every_earlier_stage_and_quiet_triggers(tmp_path: Path) -> None:
    p = tmp_path / "rollout.yaml"
    p.write_text("""stages:
  - {name: shadow, traffic_percent: 0, requires: [{require: gate_locked}],
     rollback_triggers: [{metric: error_rate, op: ">", threshold: 0.05}]}
  - {name: canary, traffic_percent: 5, requires: [{require: gate_passed}],
     rollback_triggers: [{metric: latency_p95_ms, op: ">", threshold: 3000}]}
  - {name: full, traffic_percent: 100, requires: [{require: gate_locked}], rollback_triggers: []}
""")
    plan = load_rollout(p)

    class It:
        def __init__(self, status: str) -> None:
            self.status, self.severity, self.is_gap = status, "high", status != "pass"

    items = {"gate.locked": It("pass"), "gate.passes": It("pass")}
    ok = evaluate_rollout(plan, items=items, slos=[], metrics={"latency_p95_ms": {"value": 2000}}, history=[])
    assert ok.supported_stage == "full"
    slow = evaluate_rollout(plan, items=items, slos=[], metrics={"latency_p95_ms": {"value": 3200}}, history=[])
    assert slow.supported_stage == "shadow"  # canary's trigger would fire, so full is out too
    assert slow.stages[1].triggers[0]["would_fire"] and not slow.stages[2].supported
    p.write_text("stages:\n  - {name: s, traffic_percent: 0, requires: [{require: vibes}], rollback_triggers: []}\n")
    with pytest.raises(ConfigError) as e:
        load_rollout(p)
    assert e.value.known and "gate_passed" in e.value.known


def test_composite_takes_the_severity_of_the_gaps_it_summarises() -> None:
    from labkit.readiness.model import composite

    ok = item("a", area="x", checklist="x", title="A", status="pass", evidence="fine", severity="critical")
    drill = item("b", area="x", checklist="x", title="B", status="fail", evidence="not rehearsed", action="rehearse",
                 severity="medium")
    comp = composite("c", area="x", checklist="x", title="C", parts=[ok, drill], severity="critical")
    assert comp.status == "fail" and comp.severity == "medium" and not comp.is_gap
    assert composite("d", area="x", checklist="x", title="D", parts=[ok], severity="critical").severity == "critical"


@pytest.mark.parametrize("req, field", [
    ("{require: budget_remaining, min: 1.5}", "stages[0].requires[0].min"),
    ("{require: budget_remaining, min: -0.1}", "stages[0].requires[0].min"),
    ("{require: traces, environment: canary, min: -5}", "stages[0].requires[0].min"),
    ("{require: traces, environment: canary, min: lots}", "stages[0].requires[0].min"),
])
def test_rollout_requirement_out_of_range_is_a_config_error(tmp_path: Path, req: str, field: str) -> None:
    p = tmp_path / "rollout.yaml"
    p.write_text(f"stages:\n  - name: shadow-x\n    traffic_percent: 0\n    requires: [{req}]\n"
                 "    rollback_triggers: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_rollout(p)
    assert e.value.field == field and e.value.path == str(p) and e.value.line == 2


# ---- checklist items as declarations ----------------------------------------------------------

def _doc_example() -> str:
    """The fenced python block under "Adding a checklist item" in docs/readiness.md."""
    text = (REPO / "docs" / "readiness.md").read_text(encoding="utf-8")
    section = text.split("### Adding a checklist item", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_item_is_one_declaration_and_scored(tmp_path: Path) -> None:
    from labkit.readiness import build_scorecard
    from labkit.readiness.items import REGISTRY

    exec(compile(_doc_example(), "docs/readiness.md", "exec"), {"__name__": "doc_example"})
    try:
        spec = REGISTRY.get("rel.concurrency_bounded")
        assert spec is not None and spec.severity == "medium" and spec.area == "reliability"
        sc = build_scorecard(root=REPO, today=TODAY)  # no run: every deployable shipped config is reviewed
        it = sc.by_id["rel.concurrency_bounded"]
        assert (it.status, it.severity, it.checklist) == ("pass", "medium", "reliability")
        assert "baseline.yaml: runner.concurrency=" in it.evidence and it.action is None
        assert sc.areas["reliability"]["n_items"] == build_scorecard(root=REPO, today=TODAY).areas[
            "reliability"]["n_items"]
        # a config without a bound fails the item and opens its gap, with the action from the declaration
        (tmp_path / "p.yaml").write_text("name: p\ntype: rag\nrunner: {timeout_s: 5}\n", encoding="utf-8")
        sc = build_scorecard(root=REPO, today=TODAY, pipelines_dir=tmp_path)
        it = sc.by_id["rel.concurrency_bounded"]
        assert it.status == "fail" and it.evidence == "p.yaml: runner.concurrency=None"
        gap = next(g for g in sc.gaps if g["item"] == "rel.concurrency_bounded")
        assert gap["action"] == "Set runner.concurrency (a whole number, at least 1) in p.yaml."
    finally:
        REGISTRY.remove("rel.concurrency_bounded")
    assert "rel.concurrency_bounded" not in REGISTRY


def test_a_declaration_is_checked_when_it_is_made() -> None:
    from labkit.readiness.items import ItemResult, Registry, checklist_item

    reg = Registry()

    def ok(ctx: object) -> ItemResult:
        return ItemResult("pass", "fine")

    checklist_item(id="x.one", title="One", severity="low", area="reliability", checklist="c", registry=reg)(ok)
    with pytest.raises(ValueError, match="declared twice"):
        checklist_item(id="x.one", title="Again", severity="low", area="reliability", checklist="c",
                       registry=reg)(ok)
    with pytest.raises(ValueError, match="unknown area"):
        checklist_item(id="x.two", title="Two", severity="low", area="vibes", checklist="c", registry=reg)(ok)
    with pytest.raises(ValueError, match="bad severity"):
        checklist_item(id="x.three", title="Three", severity="urgent", area="reliability", checklist="c",
                       registry=reg)(ok)
    with pytest.raises(ValueError, match="bad status"):
        ItemResult("maybe", "")
    assert [s.id for s in reg] == ["x.one"]


def test_every_declared_item_is_in_the_items_table_of_the_docs() -> None:
    from labkit.readiness.items import REGISTRY

    text = (REPO / "docs" / "readiness.md").read_text(encoding="utf-8")
    table = text.split("## Items, statuses and evidence", 1)[1].split("### Adding a checklist item", 1)[0]
    documented = set(re.findall(r"`([a-z]+\.[a-z_*<>]+)`", table))
    ids = [s.id for s in REGISTRY] + [c.id for c in REGISTRY.composites]
    missing = [i for i in ids if i not in documented and f"{i.split('.')[0]}.*" not in documented]
    assert missing == []
    assert set(REGISTRY.manual_ids) == {"dep.least_privilege", "dep.secret_manager", "inc.oncall",
                                        "inc.rollback_drill"}


def test_a_run_view_reads_formula_like_case_ids_as_scored(tmp_path: Path) -> None:
    """scores.csv holds a case id a spreadsheet would run (``-refund``) csv-safe (``'-refund``):
    the readiness checks read it back as the case it is, matched to its results line."""
    from labkit.cases import as_cases
    from labkit.runner import RunnerConfig, run

    ids = ["-refund", "=SUM(A1)", "@ops", "plain"]
    cases = as_cases([{"id": cid, "question": f"What is {cid}?", "must_include": ["answer"]} for cid in ids])
    rd = run(cases, lambda case: {"answer": f"The answer for {case.id}."}, tmp_path / "run",
             config=RunnerConfig(progress=False))
    view = RunView(rd.path)
    assert sorted(view.score_column("must_include_coverage")) == sorted(ids)
    assert view.case_success() == {cid: True for cid in ids}


def _scored_run(root: Path, name: str, *, covered: bool, created_at: str | None) -> Path:
    """A run scored by the runner (so its scoring record holds), its start time set by hand
    (manifest.json is not among the scored files)."""
    from labkit.cases import as_cases
    from labkit.runner import RunnerConfig, run

    cases = as_cases([{"id": f"c{i}", "question": f"q{i}?", "must_include": ["answer"]} for i in range(4)])
    rd = run(cases, lambda case: {"answer": "the answer" if covered else "nothing"}, root / name,
             config=RunnerConfig(progress=False))
    man_path = Path(rd.path) / "manifest.json"
    man = json.loads(man_path.read_text())
    if created_at is None:
        man.pop("created_at", None)
    else:
        man["created_at"] = created_at
    man_path.write_text(json.dumps(man))
    return Path(rd.path)


@pytest.fixture
def slo_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An SLO file and two runs: run-10 the older (covered), run-9 the newer (not covered), so a
    glob lists them newest first."""
    slo = tmp_path / "slo.yaml"
    slo.write_text("slos:\n  - {name: cover, kind: quality_floor, metric: must_include_coverage, floor: 0.5}\n")
    old = _scored_run(tmp_path / "runs", "run-10", covered=True, created_at="2026-11-01T00:00:00+00:00")
    new = _scored_run(tmp_path / "runs", "run-9", covered=False, created_at="2026-11-02T00:00:00+00:00")
    return slo, old, new


def _slo_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    from labkit.cli import main

    rc = main(["slo", *argv, "--json"])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc in (0, 1) else err)


def test_slo_orders_runs_by_start_time_not_argument_order(slo_runs: tuple[Path, Path, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    slo, old, new = slo_runs
    rc1, a = _slo_cli(capsys, str(new), str(old), "--slo", str(slo))
    rc2, b = _slo_cli(capsys, str(old), str(new), "--slo", str(slo))
    assert a == b and rc1 == rc2 == 1
    assert a[0]["status"] == "at_risk" and a[0]["burn_rate"] == pytest.approx(2.0)  # the newer run is recent
    assert a[0]["runs"] == ["run-10", "run-9"]


def test_history_order_puts_runs_without_a_start_time_last_by_run_id(tmp_path: Path) -> None:
    from labkit.readiness.runview import chronological

    def view(name: str, created: str | None) -> RunView:
        d = tmp_path / name
        d.mkdir()
        man = {"run_id": name} | ({"created_at": created} if created else {})
        (d / "manifest.json").write_text(json.dumps(man))
        return RunView(d)

    runs = [view("z", None), view("b", "2026-11-02T00:00:00+00:00"), view("y", None),
            view("c", "2026-11-01T00:00:00+00:00"), view("a", "2026-11-02T00:00:00+00:00")]
    assert [r.run_id for r in chronological(runs)] == ["c", "a", "b", "y", "z"]


def test_runs_without_a_start_time_and_one_run_id_are_in_one_order_whatever_the_argument_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two hand-made runs that record no created_at under one run id were ordered as given, so
    which was the recent window (and the burn rate) followed the argument order. They are ordered
    by path, as labkit history orders them; a created_at that is no timestamp text (a number) is
    no start time, as labkit history reads it (it sorted before every dated run)."""
    from labkit.readiness.runview import chronological

    slo = tmp_path / "slo.yaml"
    slo.write_text("slos:\n  - {name: cover, kind: quality_floor, metric: must_include_coverage, floor: 0.5}\n")
    a = _scored_run(tmp_path / "a", "run", covered=True, created_at=None)
    b = _scored_run(tmp_path / "b", "run", covered=False, created_at=None)
    for d in (a, b):
        man = json.loads((d / "manifest.json").read_text())
        (d / "manifest.json").write_text(json.dumps({**man, "run_id": "hand-made"}))
    rc1, one = _slo_cli(capsys, str(a), str(b), "--slo", str(slo))
    rc2, other = _slo_cli(capsys, str(b), str(a), "--slo", str(slo))
    assert rc1 == rc2 == 1 and one == other, (one, other)
    assert one[0]["burn_rate"] == pytest.approx(2.0) and "nan" not in json.dumps(one).lower()  # b is recent
    dated = _scored_run(tmp_path / "c", "dated", covered=True, created_at="2026-11-01T00:00:00+00:00")
    man = json.loads((a / "manifest.json").read_text())
    (a / "manifest.json").write_text(json.dumps({**man, "created_at": 20261102}))
    assert RunView(a).created_at is None
    assert [r.path for r in chronological([RunView(b), RunView(a), RunView(dated)])] == [dated, a, b]


def test_slo_refuses_a_run_given_twice(slo_runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    slo, old, new = slo_runs
    monkeypatch.chdir(old.parent)
    rc, err = _slo_cli(capsys, str(new), str(old), f"./{old.name}", "--slo", str(slo))
    assert rc == 2 and "given twice" in err and old.name in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_slo_refuses_a_copy_of_a_run_given_with_it(slo_runs: tuple[Path, Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A copied run folder is another path but the same run (its run_uuid): its cases counted twice."""
    import shutil

    slo, old, new = slo_runs
    copy = shutil.copytree(old, old.parent / "run-10-copy")
    rc, err = _slo_cli(capsys, str(old), str(new), str(copy), "--slo", str(slo))
    assert rc == 2 and "given twice" in err and str(old) in err and str(copy) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edit", ["scores", "results_bad_line", "results_duplicate", "no_record"])
def test_slo_refuses_a_run_changed_after_scoring(slo_runs: tuple[Path, Path, Path], edit: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    slo, old, new = slo_runs
    if edit == "scores":  # every cell of the metric set to its best
        p = new / "scores.csv"
        p.write_text(re.sub(r",0(\.0)?(?=,|$)", ",1.0", p.read_text(), flags=re.M))
    elif edit.startswith("results"):
        p = new / "results.jsonl"
        lines = p.read_text().splitlines(keepends=True)
        lines.insert(2, "{not json\n" if edit == "results_bad_line" else lines[1])
        p.write_text("".join(lines))
    else:
        man = json.loads((new / "manifest.json").read_text())
        del man["scoring"]
        (new / "manifest.json").write_text(json.dumps(man))
    rc, err = _slo_cli(capsys, str(old), str(new), "--slo", str(slo))
    assert rc == 2 and str(new) in err and "Traceback" not in err


def test_a_run_view_refuses_a_bad_results_line_and_tolerates_only_a_torn_last_trace_line(tmp_path: Path) -> None:
    from labkit.errors import DatasetError

    d = _scored_run(tmp_path, "r", covered=True, created_at=None)
    res = d / "results.jsonl"
    lines = res.read_text().splitlines(keepends=True)
    res.write_text("".join([lines[0], "{not json\n", *lines[1:]]))
    with pytest.raises(DatasetError, match=r"results\.jsonl.*line 2"):
        _ = RunView(d).results
    res.write_text("".join([*lines, lines[0]]))  # a case counted twice
    with pytest.raises(DatasetError, match="line 5"):
        _ = RunView(d).results
    tr = d / "traces.jsonl"
    tlines = tr.read_text().splitlines(keepends=True)
    tr.write_text("".join(tlines) + tlines[0][:20])  # a writer still appending
    assert len(RunView(d).traces) == len(tlines)
    tr.write_text("".join([tlines[0], "{not json\n", *tlines[1:]]))
    with pytest.raises(DatasetError, match=r"traces\.jsonl.*line 2"):
        _ = RunView(d).traces


def test_gate_passes_evidence_gives_the_gates_reason_for_too_few_cases() -> None:
    from types import SimpleNamespace as NS

    from labkit.gate import Gate
    from labkit.readiness.checks.release_gate import passes

    gate = Gate.from_dict({"name": "g", "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": 0.85, "min_n": 9},
        {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500}]})
    entry = {"stage": "generation", "ci_low": 1.0, "ci_high": 1.0, "n": 2, "unmeasured": 0}
    metrics = {"k": 5, "n_cases": 2, "n_missing": 0, "metrics": {
        "faithfulness": {**entry, "value": 1.0}, "latency_p95_ms": {**entry, "stage": "ops", "value": 4000.0}}}
    rep = gate.evaluate(metrics)
    res = passes(NS(gate_report=lambda: (rep, None)))  # type: ignore[arg-type]
    assert res.status == "fail"
    assert "faithfulness >= 0.85: computed on 2 cases; min_n is 9: too few cases to judge" in res.evidence
    assert "observed 1)" not in res.evidence and "(observed 1," not in res.evidence
    # a real threshold miss with too few cases is still first of all too few cases
    assert "latency_p95_ms <= 3500: computed on 2 cases; min_n is 20: too few cases to judge" in res.evidence


def test_adversarial_item_judges_the_adversarial_cases_of_the_runs_own_dataset(tmp_path: Path) -> None:
    """The quick-lab run holds one adversarial case (ql-09); the golden set's adversarial ids are
    others: the item must judge ql-09, not say the run has none."""
    import labkit
    from labkit.readiness.checks.safety import adversarial
    from labkit.readiness.context import Context

    cases = labkit.load_cases(REPO / "data" / "quick_lab.jsonl")
    assert [c.id for c in cases if c.kind == "adversarial"] == ["ql-09"]
    run = labkit.run(cases, REPO / "data/pipelines/baseline.yaml", tmp_path / "ql", overrides={"progress": False})
    ctx = Context.collect(root=REPO, variant=run.path)  # the golden set is the review's default dataset
    res = adversarial(ctx)
    ok = labkit.RunDir(run.path).scores().set_index("case_id").loc["ql-09", "task_success"]
    assert res.status in ("pass", "fail") and f"{int(bool(ok))}/1 adversarial cases succeed" in res.evidence
    assert "quick_lab.jsonl" in res.evidence  # the dataset whose adversarial cases were judged
