"""The run directory: reading results (validated), and scoring a hand-written run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from labkit.cases import as_cases, save_cases
from labkit.errors import ConfigError, DatasetError
from labkit.runs import RunDir, read_results
from labkit.scoring import score_run

ROOT = Path(__file__).resolve().parents[1]

CASES: list[dict[str, Any]] = [
    {"id": "a", "question": "How do I reset an API key?", "expected_source": "security-runbook",
     "must_include": ["security portal"]},
    {"id": "b", "question": "What is the refund window?", "expected_source": "billing",
     "must_include": ["30 days"]},
    {"id": "c", "question": "Tell me a joke"},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    p = tmp_path / "ds.jsonl"
    save_cases(as_cases(CASES), p)
    return p


def test_hand_written_run_dir_is_read_with_defaults(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "traffic")
    rd.path.mkdir()
    write_jsonl(rd.results_path, [
        {"case_id": "a", "answer": "Use the security portal.", "retrieved": ["security-runbook#1"]},
        {"case_id": "b", "status": "error", "error": "upstream 500"},
    ])
    assert rd.manifest == {}
    assert rd.run_id == "traffic"
    assert rd.metrics() == {}
    rows = rd.results()
    assert rows[0]["status"] == "ok" and rows[0]["retrieved"] == [{"id": "security-runbook#1"}]
    assert rows[0]["citations"] == [] and rows[0]["from_cache"] is False and rows[0]["attempts"] == 1
    assert rows[1]["answer"] is None and rows[1]["latency_ms"] is None
    with pytest.raises(FileNotFoundError, match="not scored"):
        rd.scores()


def test_bad_result_lines_name_file_line_and_field(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "results.jsonl", [
        {"case_id": "a", "answer": "fine"},
        "{not json",
        {"answer": "no id"},
        {"case_id": "b", "status": "done"},
        {"case_id": "c", "latency_ms": -3},
        {"case_id": "d", "retrieved": [{"score": 1}]},
        {"case_id": "a", "answer": "again"},
        {"case_id": "e", "usage": {"input_tokens": "many"}},
    ])
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    err = ei.value
    assert err.path == str(p)
    got = {(pr.line, pr.field) for pr in err.problems}
    assert got == {(2, None), (3, "case_id"), (4, "status"), (5, "latency_ms"), (6, "retrieved[0]"),
                   (7, "case_id"), (8, "usage.input_tokens")}
    assert "line 4 field 'status'" in str(err)


def test_torn_last_line_is_skipped_but_torn_middle_is_not(tmp_path: Path) -> None:
    p = tmp_path / "results.jsonl"
    p.write_text(json.dumps({"case_id": "a", "answer": "x"}) + '\n{"case_id": "b", "ans')
    assert [r["case_id"] for r in read_results(p)] == ["a"]
    p.write_text('{"case_id": "b", "ans\n' + json.dumps({"case_id": "a", "answer": "x"}) + "\n")
    with pytest.raises(DatasetError):
        read_results(p)


def test_score_hand_written_results_with_dataset(tmp_path: Path, dataset: Path) -> None:
    rd = RunDir(tmp_path / "traffic")
    rd.path.mkdir()
    write_jsonl(rd.results_path, [
        {"case_id": "b", "answer": "Refunds within 30 days.", "retrieved": [{"id": "billing#1", "source": "billing"}],
         "latency_ms": 900, "cost_usd": 0.01},
        {"case_id": "a", "status": "timeout", "error": "no reply", "latency_ms": 5000},
    ])
    m = score_run(rd, dataset, corpus=ROOT / "data" / "corpus", n_boot=200)
    assert m == rd.metrics()
    assert m["n_cases"] == 2  # only the cases with results are scored
    assert m["metrics"]["error_rate"]["value"] == pytest.approx(0.5)
    assert m["metrics"]["retrieval_hit_rate"]["value"] == pytest.approx(0.5)
    df = rd.scores()
    assert list(df["case_id"]) == ["a", "b"]  # dataset order
    faith = df["faithfulness"].tolist()
    reasons = df["faithfulness_reason"].tolist()
    assert math.isnan(faith[0]) and isinstance(reasons[0], str) and reasons[0]  # the timeout: unmeasured
    man = rd.manifest
    assert man["scoring"]["n_scored"] == 2 and man["scoring"]["n_missing"] == 1
    assert man["dataset"]["fingerprint"] and man["scoring"]["seed"] == 0
    assert not list(rd.path.glob(".*.tmp"))  # atomic writes leave no temp files
    # the manifest now names the dataset: rescoring needs no --dataset
    m2 = score_run(rd, n_boot=200)
    assert m2["metrics"]["error_rate"] == m["metrics"]["error_rate"]


def test_score_rejects_unknown_case_and_missing_dataset(tmp_path: Path, dataset: Path) -> None:
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    write_jsonl(rd.results_path, [{"case_id": "a", "answer": "x"}, {"case_id": "zzz", "answer": "y"}])
    with pytest.raises(DatasetError) as ei:
        score_run(rd, dataset)
    assert [(p.line, p.field) for p in ei.value.problems] == [(2, "case_id")]
    assert "zzz" in str(ei.value)
    with pytest.raises(ConfigError, match="--dataset"):
        score_run(rd)
    with pytest.raises(DatasetError, match="file not found"):
        score_run(tmp_path / "nothing", dataset)


def test_a_line_torn_inside_a_character_is_skipped_not_fatal(tmp_path: Path) -> None:
    """A writer killed mid-line can cut a UTF-8 character in two: resume must still read the file."""
    from labkit.runs import read_results

    whole = json.dumps({"case_id": "a", "status": "ok", "answer": "café → ok"}, ensure_ascii=False) + "\n"
    torn = json.dumps({"case_id": "b", "status": "ok", "answer": "naïve → cut"}, ensure_ascii=False)
    data = whole.encode() + torn.encode()[: torn.encode().index("→".encode()) + 1]  # ends mid-character
    p = tmp_path / "results.jsonl"
    p.write_bytes(data)
    assert [r["case_id"] for r in read_results(p)] == ["a"]
    p.write_bytes(b'{"case_id": "a", "answer": "\xff"}\n')  # a complete line that is not UTF-8
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    assert ei.value.problems[0].line == 1 and "UTF-8" in ei.value.problems[0].reason


def test_scores_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    import csv

    ids = ["=cmd|' /C calc'!A0", "+SUM(1)", "-2+3", "@SUM(A1)", "'=quoted", "plain"]
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": i, "question": f"q {n}", "must_include": ["x"]} for n, i in enumerate(ids)]), ds)
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    write_jsonl(rd.results_path, [{"case_id": i, "answer": "x"} for i in ids])
    score_run(rd, ds, n_boot=50)
    with rd.scores_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    for row in rows:
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # only a number may start like a formula
    assert {r[0] for r in rows[1:]} == {"'=cmd|' /C calc'!A0", "'+SUM(1)", "'-2+3", "'@SUM(A1)", "''=quoted", "plain"}
    assert list(rd.scores()["case_id"]) == ids  # read back as written


def test_manifest_version_says_which_format_was_read(tmp_path: Path) -> None:
    """A run the runner writes now is version 1; the first landing's manifests (no
    schema_version) read as version 0; an unknown version is an error naming the field."""
    from labkit.runner import RunnerConfig, run
    from labkit.runs import MANIFEST_SCHEMA_VERSION

    rd = run(as_cases(CASES), lambda c: {"answer": "x"}, tmp_path / "new", config=RunnerConfig(progress=False),
             score=False)
    assert rd.manifest["schema_version"] == MANIFEST_SCHEMA_VERSION == rd.manifest_version == 1
    old = RunDir(tmp_path / "old")
    old.path.mkdir()
    old.write_manifest({k: v for k, v in rd.manifest.items() if k != "schema_version"})
    assert old.manifest_version == 0 and old.run_id == rd.run_id
    assert RunDir(tmp_path / "none").manifest_version == 0
    base = old.manifest
    for bad in (2, "1", True, -1):
        old.write_manifest({**base, "schema_version": bad})
        for read in ("manifest_version", "manifest", "run_id"):  # (every reader: the manifest's one reader checks)
            with pytest.raises(ConfigError, match="unsupported manifest version") as ei:
                getattr(old, read)
            assert ei.value.field == "schema_version" and ei.value.path == str(old.manifest_path)


def test_one_dataset_loader_for_runner_and_scoring(tmp_path: Path, dataset: Path) -> None:
    from labkit.runs import load_dataset

    rd = RunDir(tmp_path / "r")
    assert [c.id for c in load_dataset(str(dataset))] == ["a", "b", "c"]
    assert load_dataset(as_cases(CASES)).path is None
    with pytest.raises(ConfigError, match="names none"):
        load_dataset(None, rd)
    rd.path.mkdir()
    rd.write_manifest({"dataset": {"path": str(dataset)}})
    assert load_dataset(None, rd).fingerprint == load_dataset(dataset).fingerprint


# --- scores.csv: written by DuckDB, the bytes pandas writes ---------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_cells = st.text(alphabet=st.sampled_from(list("ab ,\"'\n\t=+-@;é0\\")), max_size=6)


def _pandas_scores_csv(df: pd.DataFrame) -> str:
    """The writer scores.csv had: every text cell through csv_safe, then pandas' to_csv."""
    from labkit.runs import csv_safe

    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind not in "fiub":
            out[col] = out[col].map(csv_safe)
    return out.to_csv(index=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_cells, st.one_of(st.none(), _cells),
                          st.floats(allow_infinity=False) | st.sampled_from([1e16, 1e-5, -0.0, 5e-324]),
                          st.booleans(), st.integers(-(2**62), 2**62)), max_size=8),
       st.sampled_from([["case_id", "x_reason", "x", "from_cache", "attempts"],  # written by DuckDB whole
                        ["case id", "x,reason", 'x"1', "from_cache", "é\nn"]]))  # the header written apart
def test_scores_csv_holds_the_bytes_pandas_writes(tmp_path_factory: pytest.TempPathFactory, rows, names) -> None:
    from labkit.runs import write_scores_csv

    df = pd.DataFrame(rows, columns=names)
    if not rows:
        df = df.astype({names[2]: float, names[3]: bool, names[4]: int})
    path = tmp_path_factory.mktemp("csv") / "scores.csv"
    write_scores_csv(df, path)
    assert path.read_text(encoding="utf-8") == _pandas_scores_csv(df)


def test_a_carriage_return_in_a_text_cell_reads_back(tmp_path: Path) -> None:
    from labkit.runs import write_scores_csv

    df = pd.DataFrame({"case_id": ["a\rb", "c"], "x": [1.0, float("nan")], "x_reason": ["", "not\rok"]})
    rd = RunDir(tmp_path)
    write_scores_csv(df, rd.scores_path)
    back = rd.scores()
    assert back["case_id"].tolist() == ["a\rb", "c"] and back["x_reason"].fillna("").tolist() == ["", "not\rok"]
    assert not [p for p in tmp_path.iterdir() if p.name != "scores.csv"]  # no temporary file left


def test_a_line_that_is_not_utf8_is_named_beside_every_other_bad_line(tmp_path: Path) -> None:
    """One DatasetError names every bad line: a line that is not UTF-8 does not hide the others."""
    from labkit.runs import read_results

    p = tmp_path / "results.jsonl"
    p.write_bytes(b'{bad json\n{"case_id": "a", "answer": "caf\xc3 ok"}\n{"case_id": "b", "latency_ms": -1}\n')
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    assert [(pr.line, pr.field) for pr in ei.value.problems] == [(1, None), (2, None), (3, "latency_ms")]
    assert "UTF-8" in ei.value.problems[1].reason


def test_a_last_line_with_bytes_that_are_not_utf8_is_not_scored(tmp_path: Path) -> None:
    """A last line without its newline is tolerated as torn only when it is cut inside its last
    character; bytes that are not UTF-8 inside it make it a bad line, as with its newline."""
    from labkit.runs import read_results

    p = tmp_path / "results.jsonl"
    p.write_bytes(b'{"case_id": "a", "answer": "ok"}\n{"case_id": "b", "answer": "caf\xc3 ok"}')
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    assert [pr.line for pr in ei.value.problems] == [2] and "UTF-8" in ei.value.problems[0].reason


def test_scores_csv_reads_back_every_case_id_as_written(tmp_path: Path) -> None:
    """Case ids that read like missing values (NA, null, None, nan, N/A) or that scores.csv made
    csv-safe come back as they were scored, by RunDir.scores and compare's reader alike."""
    from labkit.compare import read_scores

    ids = ["NA", "null", "None", "nan", "N/A", "#N/A", "n/a", "NULL", "@alice-q1", "plain"]
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": i, "question": "q?"} for i in ids]), ds)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps({"case_id": i, "answer": "a"}) + "\n" for i in ids))
    from labkit.scoring import score_run

    score_run(run, ds, n_boot=50)
    back = RunDir(run).scores()
    assert sorted(back["case_id"]) == sorted(ids)
    pd.testing.assert_frame_equal(read_scores(run / "scores.csv"), back)


@pytest.mark.parametrize(("recorded", "want"), [(1, [6]), (-1, [5]), (True, []), (2, [])])
def test_a_cache_claim_beyond_the_recorded_count_is_named_at_its_line_as_scoring_names_it(
        tmp_path: Path, recorded: object, want: list[int]) -> None:
    from labkit.scoring import score_run

    hit = {"from_cache": True, "attempts": 0, "cache_origin": {"run_id": "r0", "trace_id": "t0"}}
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": i, "question": "q?"} for i in "abc"]), ds)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("\n\n" + json.dumps({"case_id": "a", "answer": "x"}) + "\n\n"
                                       + "".join(json.dumps({"case_id": c, "answer": "x", **hit}) + "\n" for c in "bc"))
    RunDir(run).write_manifest({"run_id": "run", "status": "complete", "counts": {"from_cache": recorded}})
    for read in (lambda: RunDir(run).results(), lambda: score_run(run, ds, n_boot=20)):
        if not want:
            read()
            continue
        with pytest.raises(DatasetError) as ei:
            read()
        assert [(p.line, p.field) for p in ei.value.problems] == [(n, "from_cache") for n in want]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["'", "=", "+", "-", "@", "\t", "\r", "a", "é", " ", "1", "\n"]), max_size=8)
       | st.text(max_size=6))
def test_the_sql_form_of_csv_unsafe_is_csv_unsafe(text: str) -> None:
    """The trace store reads scores.csv in SQL: its texts come back as :func:`csv_unsafe` gives them."""
    import duckdb

    from labkit.runs import csv_unsafe, csv_unsafe_sql

    with duckdb.connect() as con:
        got = con.execute(f"SELECT {csv_unsafe_sql('$t')}", {"t": text}).fetchone()
    assert got is not None and got[0] == csv_unsafe(text)


def test_a_results_line_holding_a_lone_surrogate_is_refused_at_its_line_and_field(tmp_path):
    """As a dataset line is: no UTF-8 text holds one, so every command printing or writing the
    answer failed on it (review, export) after scoring took it."""
    from labkit.errors import DatasetError
    from labkit.runs import read_results

    p = tmp_path / "results.jsonl"
    p.write_text('{"case_id": "a", "answer": "fine"}\n{"case_id": "b", "answer": "\\udc80Pass"}\n'
                 '{"case_id": "c", "retrieved": [{"id": "d\\ud800"}]}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    assert [(pr.line, pr.field) for pr in ei.value.problems] == [(2, "answer"), (3, "retrieved[0].id")]
    assert all("surrogate" in pr.reason for pr in ei.value.problems)
