"""The online experiment: the mSPRT and its always-valid interval, the A/A error rate at hourly looks,
the SIMULATED canary (labelled, reproducible), the decision tied to data/rollout.yaml, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.experiment import (
    CanarySpec,
    analyse_experiment,
    simulate_experiments,
    write_simulated_canary,
)
from labkit.experiment.decision import ROLL_BACK, first_decision, rollout_rules
from labkit.experiment.sequential import MIN_N, msprt

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "canary" / "simulated-canary"
TIME_BOUND_S = 60


def test_likelihood_ratio_is_the_normal_mixture_integral() -> None:
    """Λ equals ∫ exp(θΔ/V − θ²/(2V)) dN(0, τ²)(θ), integrated numerically."""
    delta, v, tau = -0.04, 0.0003, 0.05
    got = msprt(0.9, v / 2 * 200, 200, 0.9 + delta, v / 2 * 200, 200, tau=tau, min_n=1)
    theta = np.linspace(-1, 1, 400_001)
    dens = np.exp(-theta ** 2 / (2 * tau ** 2)) / math.sqrt(2 * math.pi * tau ** 2)
    integrand = np.exp(theta * delta / v - theta ** 2 / (2 * v)) * dens
    want = float(np.sum(integrand) * (theta[1] - theta[0]))
    assert float(got.likelihood_ratio) == pytest.approx(want, rel=1e-4)


def test_interval_is_where_the_test_does_not_reject() -> None:
    """The always-valid interval is the inversion of the test: at its edge Λ(θ0) = 1/α."""
    r = msprt(0.9, 0.09, 400, 0.85, 0.1275, 300, tau=0.05, alpha=0.05, min_n=1)
    v = 0.09 / 400 + 0.1275 / 300
    for edge in (float(r.ci_low), float(r.ci_high)):
        d = -0.05 - edge  # the difference measured from θ0 = edge
        lr = math.sqrt(v / (v + 0.0025)) * math.exp(0.0025 * d * d / (2 * v * (v + 0.0025)))
        assert lr == pytest.approx(20.0, rel=1e-9)
    assert bool(r.rejects) == (float(r.ci_high) < 0 or float(r.ci_low) > 0)


def test_no_test_before_min_n_per_arm() -> None:
    r = msprt([0.9, 0.9], [0.09, 0.09], [MIN_N - 1, 500], [0.5, 0.5], [0.25, 0.25], [500, MIN_N - 1], tau=0.05)
    assert not r.rejects.any() and np.isinf(r.ci_low).all() and (r.p_value == 1).all()
    with pytest.raises(ConfigError, match="alpha"):
        msprt(0.9, 0.09, 500, 0.8, 0.16, 500, tau=0.05, alpha=1.5)


def test_aa_error_rate_holds_with_hourly_looks() -> None:
    """1,000 seeded A/A canaries, looked at every hour for 72 hours: the always-valid interval
    excludes 0 (a false rejection) in no more than 5% of them."""
    res = simulate_experiments(CanarySpec().aa(), n_experiments=1000, hours=72, seed=7)
    print(f"\nA/A: {res.n_experiments} experiments x {res.hours} hourly looks: rejection rate {res.reject_rate:.3f}; "
          f"rolled back {res.rollback_rate:.3f}, promoted (not worse by the margin) {res.promote_rate:.3f}")
    assert res.n_experiments == 1000 and res.hours == 72
    assert res.reject_rate <= 0.05
    assert res.rollback_rate <= res.reject_rate


def test_naive_fixed_n_test_at_hourly_looks_would_not_hold() -> None:
    """The check above can fail: a 95% fixed-n interval looked at every hour rejects far more often."""
    from statistics import NormalDist

    spec = CanarySpec().aa()
    rng = np.random.default_rng(7)
    z = NormalDist().inv_cdf(0.975)
    rejected = 0
    for _ in range(300):
        ha, hb = rng.poisson(75, 72), rng.poisson(25, 72)
        na, nb = ha.cumsum(), hb.cumsum()
        pa = rng.binomial(ha, spec.control.success_prob).cumsum() / np.maximum(na, 1)
        pb = rng.binomial(hb, spec.candidate.success_prob).cumsum() / np.maximum(nb, 1)
        se = np.sqrt(pa * (1 - pa) / np.maximum(na, 1) + pb * (1 - pb) / np.maximum(nb, 1))
        rejected += bool((np.abs(pb - pa) > z * se)[(na >= MIN_N) & (nb >= MIN_N)].any())
    assert rejected / 300 > 0.10


def test_planted_difference_is_found() -> None:
    res = simulate_experiments(CanarySpec(), n_experiments=1000, seed=7)
    print(f"\nplanted difference {CanarySpec().candidate.success_prob - CanarySpec().control.success_prob:+.3f}: "
          f"rolled back in {res.rollback_rate:.3f} of {res.n_experiments}; median time to decision "
          f"{res.median_hours_to_decision:g} h")
    assert res.rollback_rate >= 0.9 and res.promote_rate == 0
    assert res.median_hours_to_decision is not None and res.median_hours_to_decision <= 24


def test_first_decision() -> None:
    acts = np.array([[0, 0, 3, 2], [0, 0, 0, 0]])
    idx, act = first_decision(acts)
    assert idx.tolist() == [2, -1] and act.tolist() == [ROLL_BACK, 0]


# ---------------------------------------------------------------------------- the shipped canary


def test_shipped_canary_is_labelled_simulated_and_reproduced_by_its_script(tmp_path: Path) -> None:
    meta = json.loads((SHIPPED / "canary.json").read_text())
    assert meta["simulated"] is True and "SIMULATED" in meta["label"]
    assert "simulated" in SHIPPED.name
    traces = [json.loads(x) for x in (SHIPPED / "traces.jsonl").read_text().splitlines()]
    assert traces and all(t["simulated"] is True for t in traces)
    assert {t["prompt_version"] for t in traces} == {"rag-v3", "rag-v4-lean"}
    assert meta["planted_difference"]["success_rate"] < 0
    out = tmp_path / "simulated-canary"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_simulated_canary.py"), str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert r.returncode == 0, r.stderr
    for name in ("traces.jsonl", "feedback.jsonl", "canary.json"):
        assert (out / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_shipped_canary_is_rolled_back() -> None:
    e = analyse_experiment([SHIPPED], arm_by="prompt_version")
    assert e.simulated and (e.control, e.candidate) == ("rag-v3", "rag-v4-lean")
    assert e.action == "roll back" and e.decided_at_hour is not None and e.decided_at_hour <= 24
    assert "below 0" in e.reason and "data/pipelines/baseline.yaml" in e.reason
    assert e.rules.stage == "canary-5" and e.rules.min_traces == 500  # canary-25 requires 500 canary traces
    c, v = e.figures["rag-v3"], e.figures["rag-v4-lean"]
    assert v["success_rate"].value < c["success_rate"].value
    assert v["cost_per_request_usd"].value < c["cost_per_request_usd"].value
    for f in (*c.values(), *v.values()):
        assert f.n > 0 and f.ci_low is not None and f.ci_low <= f.value <= f.ci_high
    assert e.to_dict()["looks"][0]["ci_low"] is None  # no test before MIN_N per arm: null, never NaN
    text = e.to_text()
    assert text.startswith("SIMULATED canary traffic") and "ROLL BACK" in text
    # the same arms by model or by config hash
    assert analyse_experiment([SHIPPED], arm_by="model").action == "roll back"


def _canary(tmp: Path, **changes: object) -> Path:
    spec = CanarySpec()
    cand = replace(spec.candidate, **{k: v for k, v in changes.items() if k in spec.candidate.__dict__})
    rest = {k: v for k, v in changes.items() if k not in spec.candidate.__dict__}
    return write_simulated_canary(tmp / "simulated-canary", replace(spec, candidate=cand, **rest))  # type: ignore[arg-type]


def test_a_rollback_trigger_of_the_stage_rolls_back(tmp_path: Path) -> None:
    d = _canary(tmp_path, good_rate=0.92, latency_median_ms=4200.0)  # as good, but slow
    e = analyse_experiment([d], arm_by="prompt_version")
    assert e.action == "roll back" and "latency_p95_ms > 3500" in e.reason
    assert e.decided_at_hour == 1.0


def test_a_candidate_not_worse_is_promoted_after_the_next_stage_traffic(tmp_path: Path) -> None:
    d = _canary(tmp_path, good_rate=0.97, hours=48)
    e = analyse_experiment([d], arm_by="prompt_version")
    assert e.action == "promote" and "canary-25" in e.reason
    row = e.looks[e.looks["hours"] == e.decided_at_hour].iloc[0]
    assert row["n_candidate"] >= 500 and row["ci_low"] > -e.margin


def test_horizon_stops_and_short_data_continues(tmp_path: Path) -> None:
    d = _canary(tmp_path, hours=3)
    e = analyse_experiment([d], arm_by="prompt_version", max_hours=2)
    assert e.action == "stop" and e.decided_at_hour == 2.0
    e = analyse_experiment([d], arm_by="prompt_version")
    assert e.action == "continue" and e.decided_at_hour is None and "keep looking" in " ".join(e.notes)


def _with_trace(tmp: Path, src: Path, **change: Any) -> Path:
    """A copy of the canary ``src`` with one more trace: the first control trace, changed."""
    import shutil

    d = tmp / "canary"
    shutil.copytree(src, d)
    lines = (d / "traces.jsonl").read_text().splitlines()
    first = next(json.loads(x) for x in lines if json.loads(x)["prompt_version"] == "rag-v3")
    extra = {**first, "trace_id": "f" * 32, "case_id": "control-early", **change}
    (d / "traces.jsonl").write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    return d


def test_a_stray_request_before_the_canary_began_does_not_move_its_horizon(tmp_path: Path) -> None:
    """One control trace 73 h before the rest (a host with a wrong clock, a smoke test) moved the
    horizon before the canary's traffic: every candidate request was "after the horizon", and the
    ROLL BACK became CONTINUE ("keep looking"), so --fail-on-rollback exited 0. The experiment
    begins at the candidate's first request; what came before is noted, not analysed."""
    first = json.loads((SHIPPED / "traces.jsonl").read_text().splitlines()[0])["ts_start"]
    d = _with_trace(tmp_path, SHIPPED, ts_start=first - 73 * 3600, ts_end=first - 73 * 3600 + 1.6)
    want = analyse_experiment([SHIPPED], arm_by="prompt_version")
    got = analyse_experiment([d], arm_by="prompt_version")
    assert (got.action, got.decided_at_hour) == (want.action, want.decided_at_hour) == ("roll back", want.decided_at_hour)
    before = [n.split()[0] for n in (*want.notes, *got.notes) if "before the candidate's first request" in n]
    assert len(before) == 2 and int(before[1]) == int(before[0]) + 1, (want.notes, got.notes)  # (and the stray one)


def test_requests_after_the_horizon_mean_the_horizon_was_reached(tmp_path: Path) -> None:
    """The last look was the last with traffic, so with requests cut after the horizon the
    experiment could never reach the horizon's stop: it said "continue" past its own horizon."""
    d = _canary(tmp_path, hours=3)
    last = max(json.loads(x)["ts_start"] for x in (d / "traces.jsonl").read_text().splitlines())
    late = _with_trace(tmp_path, d, ts_start=last + 10 * 3600, ts_end=last + 10 * 3600 + 1.0)
    e = analyse_experiment([late], arm_by="prompt_version", max_hours=5)
    assert e.action == "stop" and e.decided_at_hour == 5.0, (e.action, e.decided_at_hour)
    assert any("after the 5 h horizon" in n for n in e.notes)


def _with_late_ratings(tmp: Path, src: Path, *, before_h: float, at_h: float, rating: int) -> Path:
    """A copy of the canary ``src`` with one more rating of every candidate request of its first
    ``before_h`` hours, given at hour ``at_h`` of the canary."""
    import shutil

    d = tmp / "late-ratings"
    shutil.copytree(src, d)
    traces = [json.loads(x) for x in (d / "traces.jsonl").read_text().splitlines()]
    t0 = min(t["ts_start"] for t in traces)
    late = [{"feedback_id": f"late-{t['trace_id']}", "trace_id": t["trace_id"], "run_id": t["run_id"],
             "case_id": t["case_id"], "rating": rating, "comment": None, "user": "simulated",
             "ts": t0 + at_h * 3600} for t in traces
            if t["prompt_version"] == "rag-v4-lean" and t["ts_start"] < t0 + before_h * 3600]
    with (d / "feedback.jsonl").open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in late)
    return d


def test_a_look_reads_the_ratings_given_by_its_end_only(tmp_path: Path) -> None:
    """A look read every rating on file, whenever given: bad ratings of the first ten hours'
    candidate requests, given at hour 47, turned the PROMOTE taken at its hour into another
    decision, so a re-analysis moved a past decision and told of one no one could have taken then.
    A look now reads each request's latest rating given by the look's end."""
    base = _canary(tmp_path, good_rate=0.97, hours=48)
    want = analyse_experiment([base], arm_by="prompt_version")
    assert want.action == "promote" and want.decided_at_hour is not None and want.decided_at_hour < 40
    got = analyse_experiment([_with_late_ratings(tmp_path, base, before_h=10, at_h=46.5, rating=1)],
                             arm_by="prompt_version")
    assert (got.action, got.decided_at_hour, got.reason) == (want.action, want.decided_at_hour, want.reason)
    early_w, early_g = (e.looks[e.looks["hours"] <= 46] for e in (want, got))
    assert early_g.equals(early_w)  # every look before the late ratings: as without them
    assert {a: {k: f.to_dict() for k, f in fig.items()} for a, fig in got.figures.items()} == \
        {a: {k: f.to_dict() for k, f in fig.items()} for a, fig in want.figures.items()}
    last_w, last_g = (e.looks[e.looks["hours"] == 47].iloc[0] for e in (want, got))
    assert last_g["success_candidate"] < last_w["success_candidate"] - 0.05  # they count from hour 47
    assert last_g["n_candidate"] == last_w["n_candidate"]


def test_a_rating_without_a_time_counts_from_its_request(tmp_path: Path) -> None:
    """A rating that records no time is read as given with its request (the earliest it can
    have been), and the notes say how many there were."""
    base = _canary(tmp_path, good_rate=0.97, hours=48)
    d = _with_late_ratings(tmp_path, base, before_h=10, at_h=46.5, rating=1)
    lines = (d / "feedback.jsonl").read_text().splitlines()
    untimed = [{**json.loads(x), "ts": None} if x.startswith('{"feedback_id": "late-') else json.loads(x)
               for x in lines]
    (d / "feedback.jsonl").write_text("".join(json.dumps(r) + "\n" for r in untimed))
    n = sum(r["ts"] is None for r in untimed)
    e = analyse_experiment([d], arm_by="prompt_version")
    first = e.looks.iloc[-1]
    w = analyse_experiment([base], arm_by="prompt_version").looks
    assert (e.looks["success_candidate"] <= w["success_candidate"]).all()
    assert e.looks[e.looks["hours"] == 10].iloc[0]["success_candidate"] < \
        w[w["hours"] == 10].iloc[0]["success_candidate"] - 0.05  # counted from their requests' hours
    assert first["n_candidate"] == w.iloc[-1]["n_candidate"]
    assert any(n > 0 and n_note.startswith(f"{n} rating(s) record no time") for n_note in e.notes), e.notes


def test_rollout_rules_come_from_the_rollout_file(tmp_path: Path) -> None:
    r = rollout_rules("data/rollout.yaml", slo="data/slo.yaml")
    assert r.stage == "canary-5" and r.next_stage == "canary-25" and r.traffic_percent == 5
    assert any(t.metric == "burn_rate:availability" for t in r.triggers)
    assert rollout_rules("data/rollout.yaml", stage="canary-25").min_traces == 2000
    with pytest.raises(ConfigError, match="unknown stage"):
        rollout_rules("data/rollout.yaml", stage="nope")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", "--fail-on-rollback"]) == 1
    assert "decision: ROLL BACK" in capsys.readouterr().out
    assert main(["experiment", str(SHIPPED), "--arm-by", "config_hash", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["simulated"] is True and data["decision"] == "roll back" and data["schema_version"] == 1
    assert set(data["arms"]["616a19098afeb1e6"]) >= {"success_rate", "user_rating", "error_rate",
                                                     "latency_p95_ms", "cost_per_request_usd"}
    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", "--control", "rag-v9"]) == 2
    assert "rag-v9" in capsys.readouterr().err
    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", "--alpha", "2"]) == 2
    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", "--environment", "prod"]) == 2
    assert "no traces" in capsys.readouterr().err


def test_traces_without_an_arm_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    rows = [{"trace_id": f"t{i}", "case_id": f"c{i}", "ts_start": 1.0 + i, "status": "ok",
             "prompt_version": None if i == 3 else "a"} for i in range(5)]
    (d / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match="record no prompt_version"):
        analyse_experiment([d], arm_by="prompt_version")


def test_views_render() -> None:
    from labkit.views import experiment as ev

    e = analyse_experiment([SHIPPED], arm_by="prompt_version")
    assert "SIMULATED" in ev.simulated_canary_notice(e).html
    assert "ROLL BACK" in ev.experiment_decision(e).html
    assert "rag-v4-lean" in ev.arms_table(e).to_html()
    assert ev.looks_chart(e).png.startswith(b"\x89PNG")
    aa = simulate_experiments(CanarySpec().aa(), n_experiments=50, hours=10)
    assert "A/A" in ev.simulation_table(aa, aa).to_html()


def test_arms_must_be_named_when_there_are_more_than_two(tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    rows = [{"trace_id": f"t{i}", "case_id": f"c{i}", "ts_start": 1.0 + i, "status": "ok",
             "prompt_version": "abc"[i % 3]} for i in range(30)]
    (d / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for kw in ({}, {"control": "a"}):
        with pytest.raises(ConfigError, match="3 arms"):
            analyse_experiment([d], arm_by="prompt_version", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="same arm"):
        analyse_experiment([d], arm_by="prompt_version", control="a", candidate="a")
    e = analyse_experiment([d], arm_by="prompt_version", control="a", candidate="c")
    assert (e.control, e.candidate, e.action) == ("a", "c", "continue")


def test_canary_tables_number_cells_carry_their_kind() -> None:
    from labkit.views import experiment as ev
    from tests.number_cells import bad_number_cells, kinds_of

    e = analyse_experiment([SHIPPED], arm_by="prompt_version")
    arms = ev.arms_table(e).to_html()
    assert bad_number_cells(arms) == []
    assert {"score", "rating", "ms", "usd", "count"} <= kinds_of(arms)
    aa = simulate_experiments(CanarySpec().aa(), n_experiments=50, hours=10)
    sims = ev.simulation_table(aa, aa).to_html()
    assert bad_number_cells(sims) == []
    assert {"score", "count"} <= kinds_of(sims)


# ---------------------------------------------------------------------------- refused options and inputs


@pytest.mark.parametrize(("option", "value"), [("--look-hours", "nan"), ("--max-hours", "inf"),
                                               ("--margin", "nan"), ("--tau", "inf"), ("--alpha", "nan")])
def test_non_finite_options_are_refused(option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option.lstrip("-") in err and "Traceback" not in err


def test_too_many_looks_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    assert main(["experiment", str(SHIPPED), "--arm-by", "prompt_version", "--look-hours", "1e-9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "look-hours" in err and "looks" in err


def _shipped_copy(tmp: Path, change: Any = None) -> Path:
    d = tmp / "canary"
    d.mkdir()
    traces = [json.loads(x) for x in (SHIPPED / "traces.jsonl").read_text().splitlines()]
    if change is not None:
        change(traces)
    (d / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    (d / "feedback.jsonl").write_bytes((SHIPPED / "feedback.jsonl").read_bytes())
    return d


def test_a_far_future_trace_does_not_stretch_the_looks_past_the_horizon(tmp_path: Path) -> None:
    def far(traces: list[dict[str, Any]]) -> None:
        traces[-1]["ts_start"], traces[-1]["ts_end"] = 4e9, 4e9 + 1

    d = _shipped_copy(tmp_path, far)
    e = analyse_experiment([d], arm_by="prompt_version", max_hours=72)
    assert len(e.looks) <= 72
    assert e.action == "roll back"
    assert any("after the 72 h horizon" in n for n in e.notes)


def _refused(d: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from labkit.cli import main

    assert main(["experiment", str(d), "--arm-by", "prompt_version"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit: error: ") and "Traceback" not in err  # then one line per bad line
    return err


def test_a_truncated_last_trace_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _shipped_copy(tmp_path)
    p = d / "traces.jsonl"
    p.write_bytes(p.read_bytes()[:-40])
    n = len(p.read_text().splitlines())
    err = _refused(d, capsys)
    assert "traces.jsonl" in err and f"line {n}" in err


@pytest.mark.parametrize("field", ["cost_usd", "latency_ms"])
def test_a_negative_cost_or_latency_is_refused(field: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def negative(traces: list[dict[str, Any]]) -> None:
        traces[9][field] = -5.0

    err = _refused(_shipped_copy(tmp_path, negative), capsys)
    assert "line 10" in err and field in err


@pytest.mark.parametrize("rating", [7, "five", 0, True, 2.5])
def test_a_rating_outside_1_to_5_is_refused(rating: object, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    d = _shipped_copy(tmp_path)
    lines = (d / "feedback.jsonl").read_text().splitlines()
    fb = json.loads(lines[4])
    fb["rating"] = rating
    lines[4] = json.dumps(fb)
    (d / "feedback.jsonl").write_text("\n".join(lines) + "\n")
    err = _refused(d, capsys)
    assert "feedback.jsonl" in err and "line 5" in err and "rating" in err



@pytest.mark.parametrize("ts", ["yesterday", True, 1e999])
def test_a_rating_time_that_is_no_time_is_refused(ts: object, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A rating counts from the time it was given: a ts of text was a line the trace store's reader
    dropped, and the rating with it."""
    d = _shipped_copy(tmp_path)
    lines = (d / "feedback.jsonl").read_text().splitlines()
    lines[4] = lines[4].replace(f'"ts":{json.loads(lines[4])["ts"]}', f'"ts":{json.dumps(ts) if ts != 1e999 else "1e999"}')
    assert lines[4] != (SHIPPED / "feedback.jsonl").read_text().splitlines()[4]
    (d / "feedback.jsonl").write_text("\n".join(lines) + "\n")
    err = _refused(d, capsys)
    assert "feedback.jsonl" in err and "line 5" in err and "ts" in err and "finite number" in err

def test_a_trace_recorded_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def twice(traces: list[dict[str, Any]]) -> None:
        traces[:] = [t for t in traces for _ in range(2)]

    err = _refused(_shipped_copy(tmp_path, twice), capsys)
    assert "2981 invalid lines" in err and "line 2 field 'trace_id'" in err and "trace_id" in err and "line 1" in err


def test_traffic_given_again_as_a_copy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trace in two files (the traffic and a copy of it) is refused by the trace store, naming both."""
    import shutil

    from labkit.cli import main

    d = _shipped_copy(tmp_path)
    copy = shutil.copytree(d, tmp_path / "canary_copy")
    assert main(["experiment", str(d), str(copy), "--arm-by", "prompt_version"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(d) in err and str(copy) in err and "trace id(s) already loaded" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


def test_an_infinite_latency_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _shipped_copy(tmp_path)
    lines = (d / "traces.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"latency_ms": ', '"latency_ms": 1e999, "x": ', 1)
    (d / "traces.jsonl").write_text("".join(lines))
    err = _refused(d, capsys)
    assert "line 3 field 'latency_ms'" in err and "finite" in err
