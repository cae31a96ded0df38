"""Alert rules: parsing, threshold/factor spikes over time and count windows, multi-window
burn rate, the numbers that fired them; the shipped rules file; the measured checklist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import ConfigError, DatasetError
from labkit.trace.alerts import evaluate_alerts, load_rules, parse_rules
from labkit.trace.checklist import ITEMS, observability_checklist
from labkit.trace.feedback import record_feedback
from labkit.trace.synth import write_synthetic_run

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("time_bound")


def traces(n: int, *, lat: float = 1000.0, cost: float = 0.01, status: str = "ok", t0: float = 0.0,
           dt: float = 1.0) -> list[dict[str, Any]]:
    return [{"ts_end": t0 + i * dt, "latency_ms": lat, "cost_usd": cost, "status": status,
             "pipeline": "baseline"} for i in range(n)]


def rules(*rs: dict[str, Any]) -> Any:
    return parse_rules({"version": 1, "rules": list(rs)})


def test_latency_threshold_over_time_window_fires_once_with_numbers() -> None:
    hist = traces(600, lat=1000) + traces(120, lat=5000, t0=600) + traces(600, lat=1000, t0=720)
    r = rules({"name": "p95", "kind": "latency", "stat": "p95", "window": "1m", "threshold": 3500, "min_traces": 30})
    ev = evaluate_alerts(r, hist)
    assert len(ev) == 1
    e = ev[0]
    assert e["rule"] == "p95" and e["window"] == "1m" and e["threshold"] == 3500
    assert e["value"] == pytest.approx(5000.0) and e["n_traces"] >= 30 and e["evaluations"] >= 2
    assert e["fired_at"].startswith("1970-01-01T00:1")  # during the spike (600-720 s)
    assert evaluate_alerts(r, traces(600, lat=1000)) == []


def test_factor_against_previous_window_and_where() -> None:
    hist = traces(100, cost=0.01) + traces(100, cost=0.035, t0=100)
    r = rules({"name": "cost", "kind": "cost", "stat": "mean", "window": 50, "factor": 3.0},
              {"name": "cost-variant", "kind": "cost", "window": 50, "factor": 3.0, "where": {"pipeline": "variant"}})
    ev = evaluate_alerts(r, hist)
    assert [e["rule"] for e in ev] == ["cost"]
    assert ev[0]["reason"] == "factor" and ev[0]["value"] > 3.0 * ev[0]["baseline"]
    assert ev[0]["baseline"] == pytest.approx(0.01, rel=0.01)
    # a 2x rise does not trip a 3x factor
    assert evaluate_alerts(r, traces(100, cost=0.01) + traces(100, cost=0.02, t0=100)) == []


def test_error_rate_spike() -> None:
    hist = traces(100) + traces(10, status="error", t0=100) + traces(100, t0=110)
    ev = evaluate_alerts(rules({"name": "err", "kind": "error_rate", "window": 20, "threshold": 0.2}), hist)
    assert len(ev) == 1 and ev[0]["value"] >= 0.25 and ev[0]["stat"] == "rate"


def test_multiwindow_burn_rate() -> None:
    rule = {"name": "burn", "kind": "burn_rate", "slo": 0.99, "bad": "error",
            "windows": [{"long": "1h", "short": "5m", "burn_rate": 14.4}]}
    # 1 trace/s for 2 h, all fine, then 40 minutes at 30% errors: the long window
    # reaches 14.4 x budget (14.4% bad) after ~29 minutes
    ok = traces(7200)
    bad = [dict(t, status="error" if i % 10 < 3 else "ok") for i, t in enumerate(traces(2400, t0=7200))]
    ev = evaluate_alerts(rules(rule), ok + bad)
    assert len(ev) == 1
    assert "1970-01-01T02:2" <= ev[0]["fired_at"] < "1970-01-01T02:40"
    w = ev[0]["windows"][0]
    # short window burns at 0.3 / 0.01 = 30; the long one must also exceed 14.4 before firing
    assert w["short_burn_rate"] == pytest.approx(30.0, rel=0.05)
    assert w["long_burn_rate"] >= 14.4 and w["long_bad"] / w["long_traces"] / 0.01 == pytest.approx(w["long_burn_rate"], rel=1e-3)
    # a short blip alone (high short burn, low long burn) does not page
    blip = [dict(t, status="error") for t in traces(60, t0=7200)]
    assert evaluate_alerts(rules(rule), ok + blip + traces(600, t0=7260)) == []
    # bad: latency
    lat_rule = {"name": "lat-burn", "kind": "burn_rate", "slo": 0.9, "bad": "latency", "latency_ms": 2000,
                "windows": [{"long": 40, "short": 10, "burn_rate": 2}]}
    ev2 = evaluate_alerts(rules(lat_rule), traces(100) + traces(40, lat=3000, t0=100))
    assert ev2 and ev2[0]["windows"][0]["short_burn_rate"] == pytest.approx(10.0)



def test_burn_rate_fires_when_any_one_pair_burns() -> None:
    """6 h of healthy traffic, then a 10-minute outage: the fast pair (1h/5m) pages, the slow
    pair (6h/30m) has not burnt enough yet; the rule fires on the pair that does."""
    t0 = 1_700_000_000.0
    trs = [{"ts_end": t0 + i * 6.0, "status": "ok", "latency_ms": 100.0} for i in range(3600)]
    t1 = t0 + 3600 * 6.0
    trs += [{"ts_end": t1 + i * 6.0, "status": "error", "latency_ms": 100.0} for i in range(100)]
    rules = parse_rules({"rules": [{"name": "availability-burn", "kind": "burn_rate", "slo": 0.99,
                                    "bad": "error",
                                    "windows": [{"long": "1h", "short": "5m", "burn_rate": 14.4},
                                                {"long": "6h", "short": "30m", "burn_rate": 6}]}]})
    ev = evaluate_alerts(rules, trs)
    assert len(ev) == 1
    fast, slow = ev[0]["windows"]
    assert fast["fired"] and not slow["fired"]
    assert ev[0]["window"] == "1h/5m" and ev[0]["value"] == fast["short_burn_rate"]
    assert evaluate_alerts(rules, trs[:3600]) == []  # healthy traffic alone never pages

@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"kind": "latency_spike", "window": "5m", "threshold": 1}, "known"),
        ({"kind": "latency", "threshold": 1}, "window"),
        ({"kind": "latency", "window": "5 parsecs", "threshold": 1}, "bad window"),
        ({"kind": "latency", "window": "5m"}, "threshold"),
        ({"kind": "latency", "window": "5m", "threshold": 1, "stat": "p42"}, "known"),
        ({"kind": "burn_rate", "slo": 1.5, "windows": [{"long": "1h", "short": "5m", "burn_rate": 1}]}, "slo"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "1h"}]}, "long, short, burn_rate"),
        ({"kind": "cost", "window": "5m", "threshold": 1, "treshold": 2}, "unknown key"),
    ],
)
def test_rule_errors_name_the_field(rule: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_rules({"rules": [rule]})


BURN_PAIR = {"long": "1h", "short": "5m", "burn_rate": 14.4}


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"kind": "cost", "window": 20, "factor": -2.0}, "rules[0].factor"),
        ({"kind": "cost", "window": 20, "factor": 0}, "rules[0].factor"),
        ({"kind": "latency", "window": "5m", "threshold": 1, "factor": 0.5}, "rules[0].factor"),  # fires on flat traffic
        ({"kind": "latency", "window": "5m", "threshold": -1}, "rules[0].threshold"),  # fires on every window
        ({"kind": "latency", "window": "5m", "threshold": float("inf")}, "rules[0].threshold"),
        ({"kind": "error_rate", "window": 20, "threshold": 5}, "rules[0].threshold"),  # 5 %? a share is at most 1
        ({"kind": "latency", "window": "0m", "threshold": 1}, "rules[0].window"),
        ({"kind": "latency", "window": "0", "threshold": 1}, "rules[0].window"),
        ({"kind": "latency", "window": "0 traces", "threshold": 1}, "rules[0].window"),
        ({"kind": "latency", "window": -5, "threshold": 1}, "rules[0].window"),
        ({"kind": "latency", "window": "5m", "threshold": 1, "min_traces": 0}, "rules[0].min_traces"),
        ({"kind": "latency", "window": "5m", "threshold": 1, "min_traces": "many"}, "rules[0].min_traces"),
        ({"kind": "latency", "window": "5m", "threshold": 1, "min_traces": 2.5}, "rules[0].min_traces"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{**BURN_PAIR, "burn_rate": 0}]}, "rules[0].windows[0].burn_rate"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{**BURN_PAIR, "burn_rate": -1}]}, "rules[0].windows[0].burn_rate"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{**BURN_PAIR, "short": "0s"}]}, "rules[0].windows[0].short"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "5m", "short": "1h", "burn_rate": 14.4}]},
         "rules[0].windows[0].short"),  # the short window confirms the long one: it must be shorter
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": 50, "short": "50 traces", "burn_rate": 2}]},
         "rules[0].windows[0].short"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "1h", "short": 10, "burn_rate": 2}]},
         "rules[0].windows[0].short"),  # a duration and a count: no pair (the docs: two durations or two counts)
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": 100, "short": "5m", "burn_rate": 2}]},
         "rules[0].windows[0].short"),
        ({"kind": "burn_rate", "slo": 0.99, "bad": "latency", "latency_ms": "fast", "windows": [BURN_PAIR]},
         "rules[0].latency_ms"),
        ({"kind": "burn_rate", "slo": 0.99, "bad": "latency", "latency_ms": -1, "windows": [BURN_PAIR]},
         "rules[0].latency_ms"),
    ],
)
def test_nonsensical_rule_values_are_refused_naming_the_field(rule: dict[str, Any], field: str) -> None:
    """A negative factor or threshold fired on every window, a zero window or burn rate judged
    nothing or everything, and a min_traces or latency_ms that is no number was a traceback."""
    with pytest.raises(ConfigError) as e:
        parse_rules({"rules": [rule]}, "alerts.yaml")
    assert e.value.field == field and e.value.path == "alerts.yaml", e.value


def test_alerts_refuse_a_negative_factor_naming_file_and_field(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``factor: -2`` was taken: the rule fired over every window with a positive baseline."""
    from labkit.cli import main

    path = tmp_path / "alerts.yaml"
    path.write_text("version: 1\nrules:\n  - {name: cost, kind: cost, window: 10, factor: -2}\n")
    run = tmp_path / "run"
    write_synthetic_run(run, 30, seed=1)
    assert main(["alerts", "--rules", str(path), str(run)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(path) in err and "'rules[0].factor'" in err, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_shipped_rules_load_and_cover_latency_and_cost() -> None:
    rs = load_rules(ROOT / "data" / "alerts.yaml")
    kinds = {r.kind for r in rs}
    assert {"latency", "cost", "error_rate", "burn_rate"} <= kinds


def test_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("rules:\n  - kind: latency\n    window: [5m\n")
    with pytest.raises(ConfigError, match=r"a\.yaml:\d"):
        load_rules(p)


def test_checklist_is_measured(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_synthetic_run(run, 50, seed=3)
    res = {i["item"]: i for i in observability_checklist([run])}
    assert list(res) == list(ITEMS)
    assert res["Prompt version logged"]["status"] == "pass" and res["Prompt version logged"]["share"] == 1.0
    assert res["User feedback captured"]["status"] == "fail"
    assert res["Alerting for latency/cost spikes"]["status"] == "fail" and res["Alerting for latency/cost spikes"]["action"]
    # drop prompt_version from half the traces, add feedback and the shipped rules
    lines = (run / "traces.jsonl").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if i % 2:
            rec.pop("prompt_version")
        out.append(json.dumps(rec))
    (run / "traces.jsonl").write_text("\n".join(out) + "\n")
    record_feedback(run, json.loads(out[0])["trace_id"], 5)
    res = {i["item"]: i for i in observability_checklist([run], ROOT / "data" / "alerts.yaml")}
    assert res["Prompt version logged"]["status"] == "fail" and res["Prompt version logged"]["share"] == 0.5
    assert "25/50" in res["Prompt version logged"]["evidence"]
    assert res["User feedback captured"]["status"] == "pass"
    assert res["Alerting for latency/cost spikes"]["status"] == "pass"
    assert res["Alerting for latency/cost spikes"]["rules"] >= 2
    # no traces at all: unknown, not pass
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "traces.jsonl").touch()
    assert {i["status"] for i in observability_checklist([empty])[:5]} == {"unknown"}


def test_retrieved_context_is_logged_only_by_traces_that_name_a_chunk(tmp_path: Path) -> None:
    """A pipeline that logs no retrieval writes traces with ``retrieved_chunks: []``: the item
    counted the empty list as logged context and passed "10/10 traces (100%) carry the retrieved
    chunk ids; 0 with >=1 chunk", and the readiness scorecard inherited the pass. An answered
    trace carries context when it names a chunk; error traces are not counted; none answered is
    unknown."""
    run = tmp_path / "r"
    run.mkdir()
    rec = {"schema_version": 1, "run_id": "r", "attempt": 1, "ts_start": 1.0, "ts_end": 2.0,
           "latency_ms": 5.0, "prompt_version": "p1", "model": "m"}
    lines = [{**rec, "trace_id": f"t{i}", "case_id": f"c{i}", "status": "ok", "retrieved_chunks": []}
             for i in range(10)]
    (run / "traces.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    def item() -> dict[str, Any]:
        return {i["item"]: i for i in observability_checklist([run])}["Retrieved context logged"]

    got = item()
    assert got["status"] == "fail" and got["share"] == 0.0 and "0/10 answered traces" in got["evidence"], got
    lines = [{**x, "retrieved_chunks": ["doc#1"]} for x in lines[:9]] + [
        {**lines[9], "status": "error", "error_type": "Timeout"}]
    (run / "traces.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = item()
    assert got["status"] == "pass" and got["share"] == 1.0 and "9/9 answered traces" in got["evidence"], got
    (run / "traces.jsonl").write_text(json.dumps({**lines[9]}) + "\n")
    assert item()["status"] == "unknown"


def _traces_at(ts: list[float], latency: list[float | None], **extra: Any) -> list[dict[str, Any]]:
    return [{"schema_version": 1, "trace_id": f"{i:032x}", "run_id": "r", "case_id": f"c{i}", "attempt": 1,
             "ts_start": t, "ts_end": t + 0.5, "status": "ok", "latency_ms": lat, **extra}
            for i, (t, lat) in enumerate(zip(ts, latency, strict=True))]


def test_a_latency_burn_rate_counts_only_the_traces_whose_latency_is_measured() -> None:
    """Every measured trace at 5000 ms over a 3500 ms objective, and half the traces with no
    latency (imported traffic): the nulls were counted as good traces, the burn halved and the
    alert stayed silent. A null latency and a cache hit's are unmeasured, as for the latency rule."""
    rules = parse_rules({"version": 1, "rules": [{"name": "lat-burn", "kind": "burn_rate", "slo": 0.9,
                                                  "bad": "latency", "latency_ms": 3500,
                                                  "windows": [{"long": 10, "short": 4, "burn_rate": 8}]}]})
    measured = _traces_at([1000.0 + i for i in range(5)], [5000.0] * 5)
    with_nulls = _traces_at([1000.0 + i for i in range(10)], [None if i % 2 == 0 else 5000.0 for i in range(10)])
    with_hits = _traces_at([1000.0 + i for i in range(10)], [5000.0] * 10)
    for i in range(0, 10, 2):
        with_hits[i].update(from_cache=True, latency_ms=10.0)
    for traces in (measured, with_nulls, with_hits):
        (ev,) = evaluate_alerts(rules, traces)
        w = ev["windows"][0]
        assert ev["value"] == 10.0 and w["long_bad"] == w["long_traces"] and w["long_traces"] <= 5, ev


def test_a_duration_window_over_a_long_quiet_history_needs_no_grid_of_it() -> None:
    """One trace at 1970 and one now, a 1 s window: the evaluation grid of every quarter second
    between them was 50 GiB (a MemoryError traceback). The windows that hold traces are evaluated."""
    rules = parse_rules({"version": 1, "rules": [{"name": "lat", "kind": "latency", "stat": "p95",
                                                  "window": "1s", "threshold": 50}]})
    (ev,) = evaluate_alerts(rules, _traces_at([1.0, 1_700_000_000.0], [100.0, 100.0]))
    assert ev["evaluations"] == 2 and ev["value"] == 100.0


def test_alerts_refuse_a_bad_line_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A verdict computed without the lines it could not read: the burn rate left out an error."""
    from labkit.cli import main

    run = tmp_path / "r10"
    run.mkdir()
    (run / "traces.jsonl").write_text(
        '{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5,"ts_start":1,"ts_end":2}\nnot json\n'
        '{"trace_id":"t3","case_id":"c3","status":"error","latency_ms":"x","ts_start":3,"ts_end":4}\n'
        '{"trace_id":"t4","case_id":"c4","status":"error","latency_ms":7,"ts_start":5,"ts_end":6}\n'
        '{"trace_id":"t5', encoding="utf-8")  # the torn tail of a writer still at work is no error
    assert main(["alerts", "--rules", str(ROOT / "data" / "alerts.yaml"), str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / "traces.jsonl") in err and "line 2" in err and "line 3" in err and "latency_ms" in err, err
    assert "line 5" not in err and "Traceback" not in err and "2 invalid lines" in err


def test_alerts_refuse_a_run_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    run = tmp_path / "run"
    write_synthetic_run(run, 30, seed=1)
    assert main(["alerts", "--rules", str(ROOT / "data" / "alerts.yaml"), str(run), str(run)]) == 2
    err = capsys.readouterr().err
    assert "given twice" in err and len(err.strip().splitlines()) == 1, err


def test_alerts_refuse_a_run_given_again_as_its_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An archive of a run is another path: given with the run, every trace was counted twice."""
    from labkit.cli import main
    from labkit.trace.compaction import compact

    run, archive = tmp_path / "run", tmp_path / "archive" / "run.parquet"
    write_synthetic_run(run, 30, seed=1)
    archive.parent.mkdir()
    compact([run], archive)
    assert main(["alerts", "--rules", str(ROOT / "data" / "alerts.yaml"), str(run), str(archive)]) == 2
    err = capsys.readouterr().err
    assert "30 trace id(s)" in err and str(run) in err and str(archive) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_trace_without_an_end_is_placed_at_its_start() -> None:
    # imported traces whose file records no end: ts_end null, latency null (docs/interop.md)
    hist = traces(20, status="error")
    for t in hist:
        t["ts_start"], t["ts_end"], t["latency_ms"] = t["ts_end"], None, None
    err = rules({"name": "err", "kind": "error_rate", "window": 10, "threshold": 0.5})
    ev = evaluate_alerts(err, hist)
    assert len(ev) == 1 and ev[0]["n_traces"] == 10 and ev[0]["fired_at"] == "1970-01-01T00:00:09+00:00"
    lat = rules({"name": "p95", "kind": "latency", "stat": "p95", "window": 10, "threshold": 1})
    assert evaluate_alerts(lat, hist) == []  # no latency: unmeasured, never 0 or a spike


def test_a_trace_with_no_time_is_refused_not_left_out() -> None:
    """A trace with neither ts_end nor ts_start was left out of every rule without a word: the
    errors it held were not in any window, and the verdict said nothing of them."""
    hist = traces(20)
    hist[3] = {**hist[3], "ts_end": None, "ts_start": None, "status": "error", "trace_id": "untimed-a"}
    hist[7] = {k: v for k, v in hist[7].items() if k != "ts_end"}  # no ts_start either: no key at all
    err = rules({"name": "err", "kind": "error_rate", "window": 10, "threshold": 0.05})
    with pytest.raises(DatasetError) as e:
        evaluate_alerts(err, hist)
    msg = str(e.value)
    assert "2 trace(s)" in msg and "ts_end" in msg and "ts_start" in msg, msg
    assert "record 4 (trace untimed-a)" in msg and "record 8" in msg, msg


def test_alerts_refuse_a_trace_with_no_time_naming_file_and_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``labkit alerts`` said 'no alerts fired' over traces it had left out of every window."""
    from labkit.cli import main
    from labkit.trace.compaction import compact

    run = tmp_path / "r11"
    run.mkdir()
    (run / "traces.jsonl").write_text(
        '{"trace_id":"timed","case_id":"c1","status":"ok","latency_ms":5,"ts_start":1,"ts_end":2}\n'
        '{"trace_id":"untimed-a","case_id":"c2","status":"error","latency_ms":5}\n'
        '{"trace_id":"start-only","case_id":"c3","status":"error","latency_ms":null,"ts_start":3,"ts_end":null}\n'
        '{"trace_id":"untimed-b","case_id":"c4","status":"error","latency_ms":7,"ts_start":null,"ts_end":null}\n',
        encoding="utf-8")
    path = ROOT / "data" / "alerts.yaml"
    assert main(["alerts", "--rules", str(path), str(run)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(run / "traces.jsonl") in err and "2 invalid lines" in err, err
    assert "line 2" in err and "line 4" in err and "line 3" not in err and "ts_start" in err, err
    assert "Traceback" not in err, err
    archive = tmp_path / "archive" / "r11.parquet"
    archive.parent.mkdir()
    compact([run], archive)
    assert main(["alerts", "--rules", str(path), str(archive)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(archive) in err and "untimed-a" in err and "untimed-b" in err, err
    assert "start-only" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_checklist_says_it_could_not_place_a_trace_in_time(tmp_path: Path) -> None:
    """The checklist counted the alert events over the traces it could place, without a word of
    the ones it could not."""
    run = tmp_path / "r"
    write_synthetic_run(run, 20, seed=3)
    lines = (run / "traces.jsonl").read_text().splitlines()
    rec = json.loads(lines[4])
    rec["ts_start"] = rec["ts_end"] = None
    lines[4] = json.dumps(rec)
    (run / "traces.jsonl").write_text("\n".join(lines) + "\n")
    item = {i["item"]: i for i in observability_checklist([run], ROOT / "data" / "alerts.yaml")}[
        "Alerting for latency/cost spikes"]
    assert item["alerts_fired"] is None and "not evaluated" in item["evidence"], item
    assert "ts_start" in item["evidence"] and item["status"] == "pass", item
