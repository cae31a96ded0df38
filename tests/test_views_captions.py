"""Table captions of the HTML views hold user text (a gate's name, a run's id, a review's
selection): pandas writes a Styler's caption as HTML, so each is escaped where it is set."""

from __future__ import annotations

from pathlib import Path

import pytest

import labkit
from labkit.gate import Gate
from labkit.gate.review_queue import build_queue
from labkit.views import answers, decision, review, tables, traces

ROOT = Path(__file__).resolve().parents[1]
GATE_NAME = '<script>alert("gate")</script>'
RUN_NAME = "<img src=x onerror=alert(1)>"
WHERE = "<img src=y onerror=alert(2)>"
CHECKS = [{"metric": "faithfulness", "op": ">=", "threshold": 0.85}]
METRICS = {"n_cases": 2, "n_missing": 0, "metrics": {
    "faithfulness": {"stage": "generation", "value": 0.9, "ci_low": 0.8, "ci_high": 1.0, "n": 2, "unmeasured": 0}}}


def _assert_escaped(html: str, raw: str) -> None:
    assert "<script" not in html and "<img" not in html, html
    assert raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in html, html


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> labkit.RunDir:
    """A run of the quick-lab set in a folder whose name (the run's id) is markup."""
    cases = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    out = tmp_path_factory.mktemp("runs") / RUN_NAME
    rd = labkit.run(cases, ROOT / "data/pipelines/baseline.yaml", out, overrides={"progress": False})
    assert rd.run_id == RUN_NAME
    return rd


def test_a_gates_name_in_the_thresholds_and_gate_tables_is_escaped() -> None:
    g = Gate.from_dict({"name": GATE_NAME, "checks": CHECKS})
    _assert_escaped(tables.thresholds_table(g).to_html(), GATE_NAME)
    _assert_escaped(tables.gate_table(g.evaluate(METRICS)).to_html(), GATE_NAME)


def test_a_run_id_in_the_unsupported_and_answers_tables_is_escaped(hostile_run: labkit.RunDir) -> None:
    _assert_escaped(decision.unsupported_table(hostile_run).to_html(), RUN_NAME)
    ds = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    _assert_escaped(answers.answers_table(hostile_run, ds).to_html(), RUN_NAME)


def test_a_run_id_and_a_review_selection_in_the_queue_table_are_escaped(hostile_run: labkit.RunDir,
                                                                        tmp_path: Path) -> None:
    g = Gate.from_dict({"name": "reviewed", "review": {"required_for": {"category": WHERE}}})
    queue = build_queue(hostile_run.path, g, reviews=tmp_path / "reviews.jsonl")
    html = review.queue_table(queue).to_html()
    _assert_escaped(html, RUN_NAME)
    _assert_escaped(html, f"category={WHERE}")


def test_a_caption_given_by_the_caller_and_a_metrics_name_are_escaped() -> None:
    g = Gate.from_dict({"name": "g", "checks": CHECKS})
    _assert_escaped(tables.gate_table(g.evaluate(METRICS), caption=GATE_NAME).to_html(), GATE_NAME)
    _assert_escaped(tables.metrics_table({"run": METRICS}, caption=GATE_NAME).to_html(), GATE_NAME)
    sl = {**METRICS, "slices": {"risk=high": {RUN_NAME: METRICS["metrics"]["faithfulness"]}}}
    _assert_escaped(tables.slice_table({"run": sl}, RUN_NAME).to_html(), RUN_NAME)


def test_a_trace_tables_time_cell_is_escaped() -> None:
    import pandas as pd

    df = pd.DataFrame([{"trace_id": "t1", "ts_start": RUN_NAME, "latency_ms": 12.0}])
    _assert_escaped(traces._table(df, caption="Traces.").to_html(), RUN_NAME)


def test_every_caption_is_set_through_the_one_escaping_helper() -> None:
    """A table added later that sets its caption with pandas' own call would write it unescaped."""
    setters = [str(p.relative_to(ROOT)) for p in (ROOT / "labkit").rglob("*.py")
               if ".set_caption(" in p.read_text(encoding="utf-8")]
    assert setters == ["labkit/views/elements.py"]
