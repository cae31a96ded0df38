"""User feedback: Python API and `labkit feedback`, stored beside the traces, shown in queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.trace.feedback import load_feedback, record_feedback
from labkit.trace.synth import write_synthetic_run

pytestmark = pytest.mark.usefixtures("time_bound")


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    d = tmp_path / "run1"
    write_synthetic_run(d, 10, seed=1)
    return d


def _tid(run: Path, i: int = 0) -> str:
    return str(json.loads((run / "traces.jsonl").read_text().splitlines()[i])["trace_id"])


def test_record_and_load(run: Path) -> None:
    tid = _tid(run, 3)
    line = record_feedback(run, tid, 1, "wrong answer, call me on 415-555-0133", user="alice")
    assert line["case_id"] == "case-0000003" and line["run_id"] == "run1" and line["rating"] == 1
    assert line["comment"] == "wrong answer, call me on [PHONE]"
    stored = load_feedback(run)
    assert stored == [line]
    assert "415-555" not in (run / "feedback.jsonl").read_text()


@pytest.mark.parametrize("rating", [0, 6, -1, 2.5, True])
def test_rating_range(run: Path, rating: object) -> None:
    with pytest.raises(ConfigError, match="rating"):
        record_feedback(run, _tid(run), rating)  # type: ignore[arg-type]


def test_unknown_trace_and_run(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no trace with id"):
        record_feedback(run, "deadbeef", 3)
    with pytest.raises(ConfigError, match="no such run"):
        record_feedback(tmp_path / "nope", "x", 3)
    assert not (run / "feedback.jsonl").exists()


def test_cli_feedback_then_query(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    tid = _tid(run, 2)
    assert main(["feedback", tid, "--run", str(run), "--rating", "4", "--comment", "good", "--user", "bob"]) == 0
    assert "recorded fb-" in capsys.readouterr().out
    assert main(["feedback", tid, "--run", str(run), "--rating", "9"]) == 2
    assert "rating" in capsys.readouterr().err
    assert main(["traces", str(run), "--sql", "SELECT trace_id, feedback_rating, feedback_comment FROM traces "
                 "WHERE feedback_n > 0", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"trace_id": tid, "feedback_rating": 4.0, "feedback_comment": "good"}]
    assert main(["traces", str(run), "--sql", "SELECT user, rating FROM feedback", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["user,rating", "bob,4.0"]


def test_cli_traces_views_and_errors(run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from labkit.cli import main

    for view in ("summary", "failures", "slowest", "cost", "latency", "trends", "sample"):
        assert main(["traces", str(run), "--view", view]) == 0, view
    capsys.readouterr()
    assert main(["traces", str(run), "--sql", "DELETE FROM traces"]) == 2
    assert main(["traces", str(run), "--sql", "SELECT nope FROM traces"]) == 2
    assert "trace query failed" in capsys.readouterr().err
    assert main(["traces", str(tmp_path / "missing")]) == 2
    assert main(["traces", str(run), "--view", "flagged"]) == 2
    cmp = tmp_path / "cmp.json"
    cmp.write_text(json.dumps({"baseline": "run1", "variant": "other",
                               "flipped": [{"case_id": "case-0000001", "from": "pass", "to": "fail"}]}))
    capsys.readouterr()
    assert main(["traces", str(run), "--view", "flagged", "--comparison", str(cmp), "--format", "json"]) == 0
    assert [r["case_id"] for r in json.loads(capsys.readouterr().out)] == ["case-0000001"]
    assert main(["traces", "compact", str(run)]) == 0 and (run / "traces.parquet").exists()
    assert main(["traces", "checklist", str(run), "--format", "json"]) == 0
    capsys.readouterr()
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {name: slow, kind: latency, stat: max, window: 5, threshold: 1}\n")
    assert main(["alerts", "--rules", str(rules), str(run), "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert events and events[0]["rule"] == "slow" and events[0]["value"] > 1
    assert main(["alerts", "--rules", str(rules), str(run), "--fail-on-alert"]) == 1


def test_feedback_after_a_torn_last_line_is_a_line_of_its_own(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer killed mid-line leaves a fragment: the next feedback was glued to it and lost."""
    from labkit.cli import main

    tid = _tid(run, 1)
    assert main(["feedback", tid, "--run", str(run), "--rating", "4"]) == 0
    with open(run / "feedback.jsonl", "a", encoding="utf-8") as f:
        f.write('{"feedback_id": "fb-x", "trace_id": "' + tid + '", "rating": 3')
    assert main(["feedback", tid, "--run", str(run), "--rating", "1", "--comment", "after"]) == 0
    lines = (run / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["rating"] for x in lines] == [4, 1]
    assert [(r["rating"], r["comment"]) for r in load_feedback(run)] == [(4, None), (1, "after")]
    capsys.readouterr()
    assert main(["traces", str(run), "--sql", "SELECT rating, comment FROM feedback", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"rating": 4.0, "comment": None},
                                                   {"rating": 1.0, "comment": "after"}]


@pytest.mark.parametrize("option", ["--comment", "--user"])
def test_an_argument_byte_that_is_not_utf8_is_one_line_naming_the_option(
        run: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    """A byte that is not UTF-8 in argv arrives as a lone surrogate: writing it was a traceback."""
    from labkit.cli import main

    assert main(["feedback", _tid(run), "--run", str(run), "--rating", "2", option, "bad \udcff"]) == 2
    err = capsys.readouterr().err
    assert option in err and "lone surrogate" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (run / "feedback.jsonl").exists()


def test_cli_feedback_takes_a_thumb_as_the_docs_say(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """traces.md: thumbs map to 1 and 5; ``--rating up`` was "invalid int value"."""
    from labkit.cli import main

    tid = _tid(run, 3)
    assert main(["feedback", tid, "--run", str(run), "--rating", "up"]) == 0
    assert main(["feedback", tid, "--run", str(run), "--rating", "Down"]) == 0
    capsys.readouterr()
    assert main(["feedback", tid, "--run", str(run), "--rating", "sideways"]) == 2  # (a usage error)
    assert "not a rating: 'sideways'" in capsys.readouterr().err
    assert main(["traces", str(run), "--sql", f"SELECT rating FROM feedback WHERE trace_id = '{tid}'",
                 "--format", "json"]) == 0
    assert sorted(r["rating"] for r in json.loads(capsys.readouterr().out)) == [1, 5]


@pytest.mark.parametrize("text", ["５", "٥", "4.0", "1_0", " 3x"])
def test_cli_feedback_rating_is_an_ascii_whole_number(run: Path, capsys: pytest.CaptureFixture[str],
                                                      text: str) -> None:
    """A full-width or Arabic-Indic digit was recorded as 5 (``int()`` reads any decimal digit);
    a rating is written in ASCII digits, or given as a thumb."""
    from labkit.cli import main

    assert main(["feedback", _tid(run, 4), "--run", str(run), "--rating", text]) == 2
    assert f"not a rating: {text!r}" in capsys.readouterr().err
    assert not (run / "feedback.jsonl").exists() or _tid(run, 4) not in (run / "feedback.jsonl").read_text()


def _tampered(run: Path) -> str:
    """One recorded rating (4), then the lines another writer appended by hand."""
    tid = _tid(run)
    record_feedback(run, tid, 4, "ok", ts=5.0)
    with open(run / "feedback.jsonl", "a", encoding="utf-8") as f:
        f.write(f'{{"feedback_id":"fb-z","trace_id":"{tid}","rating":99,"ts":1.0}}\n'
                f'{{"feedback_id":"fb-w","trace_id":"{tid}","rating":-50}}\n'
                f'{{"trace_id":"{tid}","rating":"5","ts":"yesterday"}}\n'
                "not json\n"
                f'{{"rating":3,"rating":1,"trace_id":"{tid}"}}\n'
                '{"rating":2,"ts":3.0}\n')
    return tid


def test_a_query_leaves_out_each_invalid_feedback_line_and_names_it(run: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Out-of-range and string ratings were counted (avg 10.67 of ratings 1 to 5), a line that did not
    parse was dropped, a duplicate key read as its first value: all without a word."""
    from labkit.cli import main

    tid = _tampered(run)
    sql = "select count(*) n, avg(rating) a, min(rating) mn, max(rating) mx from feedback"
    assert main(["traces", str(run), "--sql", sql, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [{"n": 1, "a": 4.0, "mn": 4.0, "mx": 4.0}]
    (warning,) = [x for x in err.splitlines() if "feedback.jsonl" in x]
    assert str(run / "feedback.jsonl") in warning and "6 line(s)" in warning, err
    for needle in ("line 2 field 'rating'", "line 3 field 'rating'", "line 4 field 'rating'", "left out"):
        assert needle in warning, (needle, warning)
    assert main(["traces", str(run), "--sql", f"select feedback_n, feedback_rating from traces where trace_id = '{tid}'",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"feedback_n": 1, "feedback_rating": 4.0}]
    assert main(["traces", "checklist", str(run)]) == 0
    out = capsys.readouterr().out
    assert "1 feedback records" in out and "6 feedback line(s) not valid" in out, out


def test_load_feedback_refuses_an_invalid_line_naming_file_line_and_field(run: Path) -> None:
    """load_feedback skipped a line that did not parse and returned an out-of-range rating as given."""
    from labkit.errors import DatasetError

    _tampered(run)
    with pytest.raises(DatasetError) as ei:
        load_feedback(run)
    assert ei.value.path == str(run / "feedback.jsonl")
    got = [(p.line, p.field) for p in ei.value.problems]
    assert got == [(2, "rating"), (3, "rating"), (4, "rating"), (4, "ts"), (5, None), (6, None), (7, "trace_id")], got
