"""labkit.views.traces: the observability verdict and the checklist table's colours."""

from __future__ import annotations

from labkit import display
from labkit.views import traces as views


def test_observability_verdict_pass_warn_fail() -> None:
    ok = [{"item": "a", "status": "pass"}, {"item": "b", "status": "pass"}]
    assert views.observability_verdict(ok).status == "pass"
    unknown = [*ok, {"item": "c", "status": "unknown"}]
    v = views.observability_verdict(unknown)
    assert v.status == "warn" and "not measurable: c" in v.detail
    assert views.observability_verdict(ok, [{"rule": "p95", "severity": "page"}]).status == "fail"
    assert views.observability_verdict([*ok, {"item": "d", "status": "fail"}]).status == "fail"


def test_checklist_table_colours_come_from_the_palette() -> None:
    items = [{"item": "x", "status": s, "evidence": "e", "action": "a"} for s in ("pass", "fail", "unknown")]
    html = views.checklist_table(items).to_html()
    for colour in (display.PASS_COLOUR, display.FAIL_COLOUR, display.WARN_COLOUR):
        assert colour in html


class _Store:
    def __init__(self, recs: list[dict]) -> None:
        self.recs = recs

    def sample(self, n: int = 1) -> list[dict]:
        return self.recs[:n]


def test_log_sample_says_a_number_failing_the_card_checksum_is_kept() -> None:
    # the shipped golden set's made-up card number fails Luhn, so redaction keeps it;
    # the sample must say so instead of implying every card-like number was masked
    kept = views.log_sample(_Store([{"question": "save my card number 4929 0000 1234 5678 please"}]))
    text = str(kept)
    assert "4929 0000 1234 5678" in text
    assert "card checksum" in text and "not redacted" in text
    clean = str(views.log_sample(_Store([{"question": "reset my key"}])))
    assert "card checksum" not in clean


def test_trace_tables_show_units_and_cut_ids() -> None:
    import pandas as pd

    df = pd.DataFrame([{"trace_id": "fae3834721d3394c9cb1a273bb5e6f42", "latency_ms": 3206.095, "cost_usd": 0.00872,
                        "input_tokens": 35063.0, "share": 0.357, "traces": 70, "model": "sim-gen-large"}])
    html = views._table(df, "t").to_html().replace("\xa0", " ")
    for shown in ("3,206 ms", "$0.00872", "35,063 tokens", "35.7%", ">70<"):
        assert shown in html, shown
    assert "35063.0" not in html and "3206.095" not in html
    assert 'title="fae3834721d3394c9cb1a273bb5e6f42"' in html
    for kind in ("ms", "usd", "tokens", "pct", "count"):
        assert f"lk-num lk-k-{kind}" in html, kind


def test_alert_values_take_their_rule_unit() -> None:
    events = [{"rule": "p95", "kind": "latency", "severity": "page", "window": "20 traces", "value": 3505.9,
               "threshold": 3500.0, "baseline": 2472.4, "n_traces": 20},
              {"rule": "burn", "kind": "burn_rate", "severity": "ticket", "window": "1h", "value": 15.2,
               "threshold": 14.4, "baseline": None, "n_traces": 120}]
    html = views.alerts_table(events).to_html().replace("\xa0", " ")
    assert "3,506 ms" in html and "3,500 ms" in html and "15.20×" in html and "14.40×" in html
    assert "lk-num lk-k-ratio" in html and "lk-num lk-k-ms" in html


def test_observability_why_names_failing_items_and_alerts() -> None:
    items = [{"item": "a", "status": "pass"}, {"item": "feedback", "status": "fail", "evidence": "0 records"}]
    text = str(views.observability_why(items, [{"rule": "p95", "severity": "page"}] * 2))
    assert "1 of 2 checklist items pass" in text and "feedback is failing: 0 records" in text
    assert "p95 (page) 2×" in text


def test_the_summary_table_names_the_lines_that_are_no_valid_trace(tmp_path) -> None:
    """The notebook's summary counted the traces of a file with invalid lines without a word: a
    line with no trace_id was left out and a refused status read as null, and only the command
    line said so."""
    from labkit.trace.store import TraceStore

    run = tmp_path / "r1"
    run.mkdir()
    (run / "traces.jsonl").write_text('{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5}\n'
                                      '{"trace_id":"t2","case_id":"c2","status":"exploded","latency_ms":6}\n'
                                      'not json\n', encoding="utf-8")
    with TraceStore([run]) as st:
        html = views.summary_table(st).to_html()
    assert str(run / "traces.jsonl") in html and "2 line(s) not valid traces" in html, html
    assert "line 2 field &#x27;status&#x27;" in html or "line 2 field 'status'" in html, html
    assert "line 3: malformed JSON" in html and "read as null" in html, html
