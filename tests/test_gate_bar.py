"""The bar recorded before the runs (labkit.gate.bar): written once, compared ever after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.gate import Gate
from labkit.gate.bar import record_bar


def _gate(faith: float, latency: float = 3500.0) -> Gate:
    return Gate.from_dict({"name": "quick-lab", "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": faith},
        {"metric": "latency_p95_ms", "op": "<=", "threshold": latency, "min_n": 10}]})


def _fake_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text('{"case_id": "a", "status": "ok"}\n')


def test_recorded_once_before_the_runs_then_compared(tmp_path: Path) -> None:
    first = record_bar(_gate(0.85), tmp_path, now="2026-12-02T01:00:00Z")
    assert first.status == "recorded" and first.honest
    _fake_run(tmp_path / "baseline")
    assert record_bar(_gate(0.85), tmp_path).status == "unchanged"
    moved = record_bar(_gate(0.80), tmp_path)
    assert moved.status == "moved" and not moved.honest
    assert moved.changes == ("faithfulness >= 0.85, now faithfulness >= 0.8",)
    assert "bar moved after results" in moved.sentence() and "2026-12-02T01:00:00Z" in moved.sentence()
    # the record is never overwritten: moving back and forth still compares with the first bar
    assert record_bar(_gate(0.80), tmp_path).status == "moved"
    assert json.loads((tmp_path / "bar.json").read_text())["gate"]["checks"][0]["threshold"] == 0.85
    assert record_bar(_gate(0.85), tmp_path).status == "unchanged"
    assert moved.recorded_gate().checks[0].threshold == 0.85


def test_added_removed_and_min_n_changes_are_named(tmp_path: Path) -> None:
    record_bar(_gate(0.85), tmp_path)
    fewer = Gate.from_dict({"checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.85},
                                       {"metric": "error_rate", "op": "<=", "threshold": 0.1}]})
    st = record_bar(fewer, tmp_path)
    assert st.status == "moved"
    assert "latency_p95_ms <= 3500, now removed" in st.changes and "no error_rate <= 0.1, now added" in st.changes


def test_recording_when_runs_already_exist_says_so(tmp_path: Path) -> None:
    _fake_run(tmp_path / "variant")
    st = record_bar(_gate(0.80), tmp_path)
    assert st.status == "recorded_after_runs" and not st.honest and "bar recorded after results" in st.sentence()
    # and it stays flagged on every later look
    assert record_bar(_gate(0.80), tmp_path).status == "recorded_after_runs"


def test_an_edited_record_is_refused(tmp_path: Path) -> None:
    record_bar(_gate(0.85), tmp_path)
    p = tmp_path / "bar.json"
    data = json.loads(p.read_text())
    data["gate"]["checks"][0]["threshold"] = 0.8
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="was edited") as ei:
        record_bar(_gate(0.80), tmp_path)
    assert ei.value.field == "sha256" and str(p) in str(ei.value)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="malformed JSON"):
        record_bar(_gate(0.80), tmp_path)
