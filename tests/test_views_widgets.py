"""ThresholdTuner: sliders drive the verdict, the per-check results and the cases passing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from labkit.display import VERDICT_MIME
from labkit.errors import ConfigError
from labkit.gate import Gate
from labkit.views.widgets import ThresholdTuner

# aggregates of a 20-case run (a gate check needs min_n cases); SCORES are four of its cases
METRICS = {"k": 5, "n_cases": 20, "metrics": {
    "faithfulness": {"stage": "generation", "value": 0.80, "ci_low": 0.7, "ci_high": 0.9, "n": 20, "unmeasured": 0},
    "retrieval_hit_rate": {"stage": "retrieval", "value": 0.75, "ci_low": 0.3, "ci_high": 0.95, "n": 20,
                           "unmeasured": 0},
    "latency_p95_ms": {"stage": "ops", "value": 3000.0, "n": 20, "unmeasured": 0},
}}
SCORES = pd.DataFrame({
    "case_id": ["a", "b", "c", "d"],
    "faithfulness": [1.0, 0.9, 0.6, float("nan")],  # d unmeasured
    "retrieval_hit_rate": [1.0, 1.0, 1.0, 0.0],
    "latency_ms": [1000.0, 2000.0, 2500.0, 3200.0],
})
GATE = Gate.from_dict({"name": "g", "checks": [
    {"metric": "faithfulness", "op": ">=", "threshold": 0.85},
    {"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.80},
    {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500},
]})


@pytest.fixture
def tuner(tmp_path: Path) -> ThresholdTuner:
    return ThresholdTuner(GATE, METRICS, scores=SCORES, out_path=tmp_path / "tuned.yaml")


def test_logic_without_widgets(tuner: ThresholdTuner) -> None:
    assert tuner.keys == ["faithfulness", "retrieval_hit_rate", "latency_p95_ms"]
    rep = tuner.evaluate()
    assert not rep.passed and [c.passed for c in rep.checks] == [False, False, True]
    # per case: a passes all; b passes; c fails faithfulness; d fails hit rate (faithfulness unmeasured)
    assert tuner.cases_passing() == (2, 4)
    tuner.set_thresholds({"faithfulness": 0.5, "retrieval_hit_rate": 0.7})
    assert tuner.evaluate().passed
    assert tuner.verdict().status == "pass"
    assert tuner.cases_passing() == (3, 4)
    tuner.set_threshold("latency_p95_ms", 1500)
    assert tuner.cases_passing() == (1, 4)
    v = tuner.verdict()
    assert v.status == "fail" and "latency_p95_ms" in v.detail and "1 of 4 cases" in v.detail


def test_sliders_drive_the_verdict(tuner: ThresholdTuner) -> None:
    box = tuner.widget()
    sliders = tuner.sliders
    assert set(sliders) == {"faithfulness", "retrieval_hit_rate", "latency_p95_ms"}
    assert sliders["faithfulness"].min == 0.0 and sliders["faithfulness"].max == 1.0
    assert sliders["latency_p95_ms"].max >= 3500
    view = tuner._view_widget
    assert view in box.children
    assert "FAIL" in view.value and "2 of 4" in view.value
    # move the sliders as a user would
    sliders["faithfulness"].value = 0.55
    sliders["retrieval_hit_rate"].value = 0.7
    assert tuner.thresholds["faithfulness"] == pytest.approx(0.55)
    assert tuner.verdict().status == "pass"
    assert "PASS" in view.value and "3 of 4" in view.value
    sliders["latency_p95_ms"].value = 2000
    assert tuner.verdict().status == "fail"
    assert "latency_p95_ms" in view.value and "FAIL" in view.value
    # setting a threshold in code moves its slider too
    tuner.set_threshold("latency_p95_ms", 3600)
    assert sliders["latency_p95_ms"].value == 3600
    assert tuner.verdict().status == "pass"


def test_save_button_writes_the_gate(tuner: ThresholdTuner, tmp_path: Path) -> None:
    box = tuner.widget()
    tuner.sliders["faithfulness"].value = 0.6
    button = box.children[-1].children[0]
    button.click()
    saved = Gate.load(tmp_path / "tuned.yaml")
    assert [c.threshold for c in saved.checks] == [pytest.approx(0.6), 0.8, 3500]
    assert "tuned.yaml" in tuner._status.value
    assert tuner.save(tmp_path / "other.yaml").is_file()


def test_static_view_matches_and_publishes_verdict(tuner: ThresholdTuner) -> None:
    tuner.set_thresholds({"faithfulness": 0.5, "retrieval_hit_rate": 0.5})
    view = tuner.show(interactive=False)
    bundle = view._repr_mimebundle_()
    assert bundle[VERDICT_MIME]["status"] == "pass"
    assert "PASS" in bundle["text/html"] and "3 of 4" in bundle["text/html"]
    assert "<table" in bundle["text/html"]
    chart = tuner.sweep_chart()
    assert chart.png.startswith(b"\x89PNG")


def test_the_live_widget_publishes_the_verdict_too(tuner: ThresholdTuner) -> None:
    """``show(interactive=True)`` displayed the widget alone: the notebook published no verdict, so
    ``labkit report --fail-on-verdict`` passed a release its own report said fails. The live view
    carries the verdict at the thresholds it starts from, and the static view for a reader with no
    widget state (the exported HTML)."""
    tuner.set_thresholds({"faithfulness": 0.99})
    bundle = tuner.show(interactive=True)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle[VERDICT_MIME] == tuner.verdict().to_dict() and bundle[VERDICT_MIME]["status"] == "fail"
    assert "FAIL" in bundle["text/html"] and "<table" in bundle["text/html"]


def test_unknown_threshold_lists_known(tuner: ThresholdTuner) -> None:
    with pytest.raises(ConfigError) as ei:
        tuner.set_threshold("nope", 1)
    assert ei.value.known == tuner.keys
    with pytest.raises(ConfigError):
        tuner.set_thresholds({"mrr": 0.5})
    with pytest.raises(ConfigError):
        tuner.set_threshold("faithfulness", float("nan"))


def test_thresholds_of_metrics_the_gate_does_not_check_can_be_left_out(tuner: ThresholdTuner) -> None:
    """Notebook 03 set its four threshold parameters on any gate: a gate of one's own without a
    cost check failed the notebook. ``unchecked="skip"`` sets the ones the gate checks and returns
    the others (the notebook says which it left out)."""
    left = tuner.set_thresholds({"faithfulness": 0.5, "mrr": 0.5}, unchecked="skip")
    assert left == ["mrr"] and tuner.thresholds["faithfulness"] == 0.5
    with pytest.raises(ConfigError):
        tuner.set_thresholds({"mrr": 0.5}, unchecked="nope")


def test_two_checks_on_one_metric_get_two_sliders() -> None:
    g = Gate.from_dict({"name": "g", "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": 0.85},
        {"metric": "faithfulness", "op": ">=", "threshold": 0.8, "statistic": "ci_low"},
    ]})
    t = ThresholdTuner(g, METRICS, scores=SCORES)
    assert t.keys == ["faithfulness", "faithfulness[ci_low]"]
    t.set_threshold("faithfulness[ci_low]", 0.6)
    rep = t.evaluate()
    assert [c.passed for c in rep.checks] == [False, True]
    t.set_thresholds({"faithfulness": 0.5})  # an exact slider key sets that slider only
    assert t.thresholds == {"faithfulness": 0.5, "faithfulness[ci_low]": 0.6}
    g2 = Gate.from_dict({"name": "g", "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": 0.8, "statistic": "ci_low"},
        {"metric": "faithfulness", "op": ">=", "threshold": 0.7, "statistic": "ci_high"},
    ]})
    t2 = ThresholdTuner(g2, METRICS, scores=SCORES)
    t2.set_thresholds({"faithfulness": 0.4})  # a metric name sets every check on that metric
    assert t2.thresholds == {"faithfulness[ci_low]": 0.4, "faithfulness[ci_high]": 0.4}


def _axes(fig, title: str):
    return next(ax for ax in fig.axes if ax.get_title(loc="left") == title)


def test_sweep_chart_marker_follows_the_slider(tuner: ThresholdTuner) -> None:
    box = tuner.widget()
    chart = tuner._chart_widget
    assert chart in box.children
    before = chart.value
    tuner.sliders["faithfulness"].value = 0.55
    ax = _axes(tuner.last_figure, "faithfulness")
    (marker,) = [ln for ln in ax.lines if ln.get_gid() == "marker"]
    (vline,) = [ln for ln in ax.lines if ln.get_gid() == "threshold"]
    # a, b, c are measured (1.0, 0.9, 0.6): all three meet 0.55
    assert list(marker.get_xdata()) == [pytest.approx(0.55)] and list(marker.get_ydata()) == [pytest.approx(1.0)]
    assert list(vline.get_xdata()) == [pytest.approx(0.55)] * 2
    assert chart.value != before  # the widget shows the re-drawn chart
    tuner.sliders["latency_p95_ms"].value = 2200
    (lat,) = [ln for ln in _axes(tuner.last_figure, "latency_p95_ms").lines if ln.get_gid() == "marker"]
    assert list(lat.get_xdata()) == [pytest.approx(2200)] and list(lat.get_ydata()) == [pytest.approx(0.5)]
    assert tuner.sweep_markers()["latency_p95_ms"] == (pytest.approx(2200), pytest.approx(0.5))


def test_saving_a_gate_the_release_fails_warns_by_how_much(tuner: ThresholdTuner) -> None:
    box = tuner.widget()
    button = box.children[-1].children[0]
    tuner.sliders["faithfulness"].value = 0.9  # observed 0.80
    tuner.sliders["retrieval_hit_rate"].value = 0.8  # observed 0.75
    button.click()
    status = tuner._status.value
    assert "Warning." in status and "FAILS this gate on 2 check(s)" in status
    assert "faithfulness &gt;= 0.9: observed 0.800, short by 0.100" in status
    assert "retrieval_hit_rate &gt;= 0.8: observed 0.750, short by 0.050" in status
    assert Gate.load(tuner.out_path).checks[0].threshold == pytest.approx(0.9)  # saved all the same
    tuner.sliders["faithfulness"].value = 0.5
    tuner.sliders["retrieval_hit_rate"].value = 0.5
    button.click()
    assert "Warning." not in tuner._status.value and "passes them" in tuner._status.value


def test_save_warning_names_a_check_failing_on_too_few_cases() -> None:
    few = {"metrics": {"faithfulness": {"value": 0.9, "n": 4, "unmeasured": 0}}}
    t = ThresholdTuner(Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.85}]}),
                       few, scores=SCORES)
    kind, text = t.save_message("g.yaml")
    assert kind == "warn" and "observed 0.900 meets it, but computed on 4 cases; min_n is 10" in text


def test_readouts_and_table_carry_units_and_n(tuner: ThresholdTuner) -> None:
    tuner.widget()
    assert tuner._readouts["latency_p95_ms"].value == "3,500 ms"
    assert tuner._readouts["faithfulness"].value == "0.850 (share, 0–1)"
    tuner.sliders["latency_p95_ms"].value = 2000
    assert tuner._readouts["latency_p95_ms"].value == "2,000 ms"
    page = tuner.view_html().replace("\xa0", " ")  # a count and its "(min n)" never break apart
    assert "lk-tuner" in page and "border-collapse" in page  # labkit's table look (views.elements.styler)
    for text in ("unit", "0–1", "ms", "20 (min 10)", "cases meeting it (n)", "2 of 3"):
        assert text in page, text


def test_check_table_number_cells_carry_their_kind(tuner: ThresholdTuner) -> None:
    from tests.number_cells import bad_number_cells, kinds_of

    page = tuner.table().to_html()
    assert bad_number_cells(page) == []
    assert {"score", "ms", "count"} <= kinds_of(page)
