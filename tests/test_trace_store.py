"""Trace store: DuckDB over the JSONL of runs, joins, explorer queries, compaction,
and querying while another process is still appending."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from labkit.errors import ConfigError, QueryError
from labkit.trace.compaction import compact
from labkit.trace.feedback import record_feedback
from labkit.trace.record import dumps_trace
from labkit.trace.sql import check_read_only
from labkit.trace.store import TraceStore
from labkit.trace.synth import synthetic_traces, write_synthetic_run

pytestmark = pytest.mark.usefixtures("time_bound")
TIME_BOUND_S = 90


def _scores(run: Path, rows: list[dict[str, object]]) -> None:
    """A hand-made scores.csv with the scoring record labkit score writes (the hashes of the run's
    scored files), which the store verifies before it serves the scores."""
    from labkit.io import file_hash
    from labkit.scoring import SCORED_FILES

    cols = ["case_id", "faithfulness", "faithfulness_reason", "retrieval_hit_rate", "retrieval_hit_rate_reason",
            "latency_ms", "task_success"]
    with open(run / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    for name in ("results.jsonl", "metrics.json"):
        if not (run / name).exists():
            (run / name).write_text("")
    man = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").exists() else {}
    man["scoring"] = {"sha256": {name: file_hash(run / name) for name in SCORED_FILES}}
    (run / "manifest.json").write_text(json.dumps(man))


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "base", tmp_path / "var"
    write_synthetic_run(a, 100, seed=1)
    write_synthetic_run(b, 100, seed=2)
    (a / "manifest.json").write_text(json.dumps({"run_id": "base-run", "created_at": "2026-01-01T00:00:00+00:00",
                                                 "pipeline": {"name": "baseline"}}))
    _scores(a, [{"case_id": f"case-{k:07d}", "faithfulness": "" if k == 0 else (1.0 if k % 2 else 0.5),
                 "faithfulness_reason": "no_claims" if k == 0 else "", "retrieval_hit_rate": 0 if k % 10 == 3 else 1,
                 "latency_ms": 5, "task_success": "True" if k % 2 else "False"} for k in range(100)])
    return a, b


def test_counts_summary_and_scores_join(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    with TraceStore([a, b]) as st:
        assert st.count() == 200 and st.skipped_lines() == 0
        s = st.summary()
        assert list(s["run_dir"]) == ["base", "var"] and list(s["traces"]) == [100, 100]
        df = st.query("SELECT case_id, faithfulness, retrieval_hit_rate, score_latency_ms, latency_ms, task_success "
                      "FROM traces WHERE run_dir = 'base' ORDER BY case_id")
        assert df["faithfulness"].isna().iloc[0]  # unmeasured stays empty, not 0
        assert df["faithfulness"].iloc[1] == 1.0 and df["faithfulness"].iloc[2] == 0.5
        assert (df["score_latency_ms"] == 5).all() and (df["latency_ms"] > 5).all()  # clash renamed
        assert df["task_success"].iloc[1] == 1.0 and df["task_success"].iloc[2] == 0.0
        assert st.query("SELECT count(faithfulness) AS n FROM traces WHERE run_dir = 'var'")["n"][0] == 0
        assert st.query("SELECT run_id FROM runs WHERE run_dir = 'base'")["run_id"][0] == "base-run"


def test_explorer_views(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    with TraceStore([a, b]) as st:
        f = st.failures_by_stage()
        base = f[f.run_dir == "base"].set_index("stage")
        n_status = st.query("SELECT count(*) AS n FROM traces WHERE run_dir='base' AND status <> 'ok'")["n"][0]
        assert base.loc[[s for s in ("timeout", "error") if s in base.index], "failures"].sum() == n_status
        assert base.loc["retrieval", "failures"] == st.query(
            "SELECT count(*) AS n FROM traces WHERE run_dir='base' AND status='ok' AND retrieval_hit_rate=0")["n"][0]
        assert "generation" in base.index  # faithfulness 0.5 < 0.85
        slow = st.slowest(5)
        assert list(slow["latency_ms"]) == sorted(slow["latency_ms"], reverse=True)
        assert slow["latency_ms"].iloc[0] == st.query("SELECT max(latency_ms) AS m FROM traces")["m"][0]
        cost = st.cost_by_model()
        assert cost["traces"].sum() == 200
        assert cost["total_cost_usd"].sum() == pytest.approx(st.query("SELECT sum(cost_usd) AS c FROM traces")["c"][0])
        lat = st.latency_by_prompt_version()
        assert set(lat["prompt_version"]) == {"rag-v1", "rag-v2", "rag-v3"}
        tr = st.metric_trends()
        faith = tr[tr.metric == "faithfulness"]
        assert list(faith["run_dir"]) == ["base"] and faith["n"].iloc[0] == 99
        assert set(tr[tr.metric == "error_rate"]["run_dir"]) == {"base", "var"}
        with pytest.raises(ConfigError, match="known"):
            st.metric_trends(["nope"])
        sample = st.sample(2)
        assert len(sample) == 2 and isinstance(sample[0]["spans"], list) and sample[0]["schema_version"] == 1


def test_flagged_traces_of_a_comparison(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    comp = {"baseline": "base-run", "variant": "var", "n_paired": 100,
            "metrics": {"faithfulness": {"verdict": "regressed"}, "mrr": {"verdict": "no_change"}},
            "flipped": [{"case_id": "case-0000004", "from": "pass", "to": "fail"},
                        {"case_id": "case-0000007", "from": "fail", "to": "pass"}]}
    p = tmp_path / "cmp.json"
    p.write_text(json.dumps(comp))
    with TraceStore([a, b]) as st:
        df = st.flagged_traces(p)
        assert list(df["case_id"]) == ["case-0000004", "case-0000004"]
        assert list(df["side"]) == ["baseline", "variant"]
        assert set(df["regressed_metrics"]) == {"faithfulness"}
        assert len(st.flagged_traces(comp, only_regressed=False)) == 4


def test_feedback_table_and_join(two_runs: tuple[Path, Path]) -> None:
    a, _ = two_runs
    tid = json.loads((a / "traces.jsonl").read_text().splitlines()[5])["trace_id"]
    record_feedback(a, tid, 2, "cited the wrong doc", ts=1.0)
    record_feedback(a, tid, 4, "better after retry", ts=2.0)
    with TraceStore([a]) as st:
        fb = st.query("SELECT * FROM feedback ORDER BY ts")
        assert list(fb["rating"]) == [2, 4] and fb["case_id"][0] == "case-0000005"
        row = st.query(f"SELECT feedback_rating, feedback_comment, feedback_n FROM traces WHERE trace_id = '{tid}'")
        assert row.iloc[0].tolist() == [4.0, "better after retry", 2]


def test_flat_records_and_missing_files(tmp_path: Path) -> None:
    run = tmp_path / "prod"
    run.mkdir()
    (run / "traces.jsonl").write_text(json.dumps(
        {"trace_id": "trace-1042", "prompt_version": "rag-v3", "model": "gpt-4.1-mini",
         "retrieved_chunks": ["policy-0", "runbook-1"], "tool_calls": [], "faithfulness": 0.9,
         "latency_ms": 1840, "status": "pass"}) + "\n")
    with TraceStore(run) as st:
        row = st.query("SELECT run_dir, faithfulness, n_retrieved, status, final FROM traces").iloc[0]
        assert row.tolist() == ["prod", 0.9, 2, "pass", True]
    with pytest.raises(ConfigError, match="no such run directory"):
        TraceStore(tmp_path / "nope")
    with TraceStore(run) as st, pytest.raises(QueryError, match="trace query failed"):
        st.query("SELECT no_such_column FROM traces")
    for read in ("select 1", "WITH x AS (SELECT 1) SELECT * FROM x;",
                 # a query that opens with comments is still one read (a saved query usually says what it is)
                 "-- p95 by prompt version\nSELECT 1", "/* a\n b */ -- c\n  WITH x AS (SELECT 1) FROM x"):
        check_read_only(read)
    for write in ("DROP TABLE traces", "SELECT 1; DROP TABLE x", "-- SELECT\nDROP TABLE traces",
                  "/* SELECT */ DELETE FROM traces", "-- only a comment", "/* /* */ SELECT */ DELETE FROM traces",
                  "CREATE TABLE u AS PIVOT traces ON status", "SET threads = 1"):
        with pytest.raises(ConfigError, match="only one read-only statement"):
            check_read_only(write)


def test_compaction_to_parquet_and_staleness(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    with TraceStore([a, b]) as st:
        before = st.query("SELECT trace_id, latency_ms, faithfulness FROM traces ORDER BY trace_id")
    written = compact([a, b])
    assert [p.name for p in written] == ["traces.parquet", "traces.parquet"]
    with TraceStore([a, b]) as st:
        assert len(st.parquet_files) == 2 and not st.jsonl_files
        after = st.query("SELECT trace_id, latency_ms, faithfulness FROM traces ORDER BY trace_id")
    assert before.equals(after)
    # appending makes the Parquet stale: the store goes back to the JSONL
    with open(a / "traces.jsonl", "a") as f:
        f.write(dumps_trace(next(synthetic_traces(1, run_id="base", seed=9, ts0=2e9))))
    with TraceStore([a]) as st:
        assert st.jsonl_files and st.count() == 101
    archive = compact([a, b], tmp_path / "history.parquet")[0]
    with TraceStore(archive) as st:
        assert st.count() == 201
        assert set(st.query("SELECT DISTINCT run_dir FROM traces")["run_dir"]) == {"base", "var"}


APPENDER = textwrap.dedent(
    """
    import sys, time
    from labkit.trace.record import dumps_trace
    from labkit.trace.synth import synthetic_traces
    path, n = sys.argv[1], int(sys.argv[2])
    with open(path, "a", encoding="utf-8") as f:
        for i, rec in enumerate(synthetic_traces(n, run_id="live", seed=3)):
            line = dumps_trace(rec)
            cut = len(line) // 2
            f.write(line[:cut]); f.flush()      # half a record on disk ...
            time.sleep(0.002)
            f.write(line[cut:]); f.flush()      # ... then the rest
    print("done", flush=True)
    """
)


def test_query_while_another_process_appends(tmp_path: Path) -> None:
    run = tmp_path / "live"
    run.mkdir()
    path = run / "traces.jsonl"
    path.touch()
    n = 1500
    proc = subprocess.Popen([sys.executable, "-c", APPENDER, str(path), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    torn = 0
    try:
        with TraceStore(run) as st:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                c = st.count()
                seen.append(c)
                torn += st.skipped_lines()
                ok = st.query("SELECT count(*) AS n FROM traces WHERE trace_id IS NULL OR latency_ms IS NULL")
                assert ok["n"][0] == 0  # every row a whole record
                time.sleep(0.01)
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert st.count() == n and st.skipped_lines() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(seen) >= 3, "the appender finished before the store could query it"
    assert seen == sorted(seen) and 0 < max(seen) <= n
    assert any(0 < c < n for c in seen)  # queried mid-run


def _p_by_version(st: TraceStore, table: str, q: float) -> list[tuple[object, ...]]:
    df = st.query(f"""SELECT prompt_version, count(*) AS traces, quantile_cont(latency_ms, {q}) AS latency_ms
                      FROM {table} GROUP BY prompt_version ORDER BY prompt_version""")
    return [tuple(r) for r in df.itertuples(index=False)]


def test_latency_by_prompt_version_equals_the_views_on_messy_files(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    # records another system wrote: wrong types, no trace_id, not objects, a torn last line
    with open(b / "traces.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"trace_id": "x1", "prompt_version": "rag-v1", "latency_ms": 5.0, "attempt": "two"}) + "\n")
        f.write(json.dumps({"trace_id": "x2", "prompt_version": "rag-v2", "latency_ms": "slow"}) + "\n")
        f.write(json.dumps({"trace_id": "x3", "latency_ms": 1.0, "usage": {"input_tokens": "many"}}) + "\n")
        f.write(json.dumps({"prompt_version": "rag-v1", "latency_ms": 99999.0}) + "\n")
        f.write('[1, 2]\n"text"\n')
        f.write(dumps_trace(next(synthetic_traces(1, run_id="var", seed=5)))[:70])  # still being written
    compact([a])  # one run from Parquet, the other from JSONL
    with TraceStore([a, b]) as st:
        assert st.parquet_files and st.jsonl_files and st.skipped_lines() == 4
        for q in (0.5, 0.95):
            got = [tuple(r) for r in st.latency_by_prompt_version(q).itertuples(index=False)]
            assert got == _p_by_version(st, "traces_raw", q) == _p_by_version(st, "traces", q)
            assert got == [tuple(r) for r in st.latency_by_prompt_version(q, raw=True).itertuples(index=False)]
        # a read of only the columns the query needs (benchmarks/bench_traces.py times it) gives the same
        files = ", ".join(f"'{p}'" for p in st.jsonl_files)
        narrow = st.query(
            "SELECT prompt_version, count(*) AS traces, quantile_cont(latency_ms, 0.95) AS latency_ms FROM ("
            f"SELECT * FROM read_json([{files}], columns={{'trace_id': 'VARCHAR', 'prompt_version': 'VARCHAR', "
            "'latency_ms': 'DOUBLE'}, format='newline_delimited', ignore_errors=true) UNION ALL "
            f"SELECT trace_id, prompt_version, latency_ms FROM read_parquet('{st.parquet_files[0]}')) "
            "WHERE trace_id IS NOT NULL GROUP BY prompt_version ORDER BY prompt_version")
        assert [tuple(r) for r in narrow.itertuples(index=False)] == _p_by_version(st, "traces_raw", 0.95)
        assert sum(t for _, t, _ in got) == 200 + 3
    with TraceStore([b]) as st:
        got = [tuple(r) for r in st.latency_by_prompt_version().itertuples(index=False)]
        assert got == _p_by_version(st, "traces_raw", 0.95)
    empty = tmp_path / "no-traces"
    empty.mkdir()
    (empty / "manifest.json").write_text("{}")
    with TraceStore(empty) as st:
        assert st.latency_by_prompt_version().empty


def test_store_never_downloads_an_extension(tmp_path: Path) -> None:
    """Nothing leaves the machine: a query that would need a downloadable extension fails here."""
    from labkit.trace.store import TraceStore

    run = tmp_path / "run"
    run.mkdir()
    (run / "traces.jsonl").write_text("")
    with TraceStore([run]) as st:
        assert st.con.execute("select current_setting('autoinstall_known_extensions')").fetchone() == (False,)


SECRET = "sk-proj-" + "Zq7" * 12  # an OpenAI-style key


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd', sep=':')",
    "SELECT * FROM read_text('{secret_file}')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_text('{run}/../planted.txt')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
])
def test_sql_cannot_read_files_outside_the_runs(two_runs: tuple[Path, Path], tmp_path: Path, sql: str) -> None:
    secret_file = tmp_path / "planted.txt"
    secret_file.write_text(f"OPENAI_API_KEY={SECRET}\n")
    with TraceStore(list(two_runs)) as st:
        assert st.count() == 200  # the runs themselves stay readable
        with pytest.raises(QueryError) as ei:
            st.query(sql.format(secret_file=secret_file, run=two_runs[0]))
    assert "outside the runs" in str(ei.value) and SECRET not in str(ei.value)


def test_sql_cannot_lift_the_confinement(two_runs: tuple[Path, Path]) -> None:
    with TraceStore(list(two_runs)) as st:
        for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                    "RESET lock_configuration"):
            with pytest.raises(QueryError):
                st.query(sql)
        st.refresh()  # picking up new files still works once confined
        assert st.count() == 200


def test_cli_sql_reading_a_secret_file_exits_2_and_prints_it_nowhere(two_runs: tuple[Path, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    secret_file = tmp_path / "planted.txt"
    secret_file.write_text(f"OPENAI_API_KEY={SECRET}\n")
    code = main(["traces", str(two_runs[0]), "--sql", f"SELECT * FROM read_text('{secret_file}')"])
    out, err = capsys.readouterr()
    assert code == 2 and "outside the runs" in err and SECRET not in out + err and "Traceback" not in err


def test_cli_sql_output_is_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    run = tmp_path / "r"
    write_synthetic_run(run, 3, seed=1)
    lines = (run / "traces.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["error"] = f"upstream said: key {SECRET} rejected; mail ops@example.com"
    lines[0] = json.dumps(rec)
    (run / "traces.jsonl").write_text("\n".join(lines) + "\n")
    for fmt in ("table", "csv", "json"):
        assert main(["traces", str(run), "--sql", "SELECT trace_id, error FROM traces WHERE error IS NOT NULL",
                     "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert SECRET not in out and "ops@example.com" not in out, fmt
        assert "upstream said" in out and rec["trace_id"] in out, fmt  # the rest, and ids, stay readable


FORMULA_LIKE_IDS = ["-refund", "=SUM(A1)", "+1 555", "@ops", "'-quoted", "plain"]


@pytest.fixture()
def formula_like_run(tmp_path: Path) -> Path:
    """A real run (the runner, then scoring) of cases whose ids a spreadsheet would run as
    formulas: scores.csv holds them csv-safe (a ``'`` in front)."""
    from labkit.cases import as_cases
    from labkit.runner import RunnerConfig, run

    cases = as_cases([{"id": cid, "question": f"What is {cid}?", "must_include": ["answer"]}
                      for cid in FORMULA_LIKE_IDS])
    rd = run(cases, lambda case: {"answer": f"The answer for {case.id}."}, tmp_path / "run",
             config=RunnerConfig(progress=False))
    assert "'-refund" in (rd.path / "scores.csv").read_text()  # as written: csv-safe
    return rd.path


def test_scores_of_formula_like_case_ids_join_their_traces(formula_like_run: Path) -> None:
    with TraceStore([formula_like_run]) as st:
        ids = st.query("SELECT case_id FROM scores ORDER BY case_id")["case_id"].tolist()
        assert ids == sorted(FORMULA_LIKE_IDS)
        joined = st.query("SELECT case_id, must_include_coverage FROM traces ORDER BY case_id")
        assert joined["case_id"].tolist() == sorted(FORMULA_LIKE_IDS)
        assert (joined["must_include_coverage"] == 1.0).all(), joined


def test_records_with_scores_reads_formula_like_case_ids_as_scored(formula_like_run: Path) -> None:
    from labkit.trace.store import records_with_scores

    recs = records_with_scores(formula_like_run)
    assert sorted(r["case_id"] for r in recs) == sorted(FORMULA_LIKE_IDS)
    assert all(r["scores"].get("must_include_coverage") == 1.0 for r in recs), recs


_BAD_LINES = ('{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5,"ts_start":1,"ts_end":2}\n'
              'not json\n'
              '{"trace_id":"t3","case_id":"c3","status":"error","latency_ms":"x","ts_start":3,"ts_end":4}\n'
              '{"trace_id":"t4","case_id":"c4","status":"error","latency_ms":7,"ts_start":5,"ts_end":6}\n')


def test_a_run_given_twice_is_refused_each_trace_once(two_runs: tuple[Path, Path]) -> None:
    """A run given twice was read twice: every count and alert counted its traces twice."""
    a, b = two_runs
    for sources in ([a, a], [a, b, a / ".." / a.name], [a, a / "traces.jsonl"]):
        with pytest.raises(ConfigError, match=r"given twice.*counted twice"):
            TraceStore(sources)
    with TraceStore([a, b]) as st:
        assert st.count() == 200


def test_a_source_whose_traces_are_already_loaded_is_refused(two_runs: tuple[Path, Path]) -> None:
    """A copy of a run, or an archive of it, was another path: the same traces were counted twice."""
    import shutil

    a, b = two_runs
    copy = shutil.copytree(a, a.parent / "base_copy")
    archive = a.parent / "archive" / "base.parquet"
    archive.parent.mkdir()
    compact([a], archive)
    for sources, second in (([a, b, copy], copy), ([archive, b, a], a)):
        with pytest.raises(ConfigError, match=r"100 trace id\(s\)") as e:
            TraceStore(sources)
        msg = str(e.value)
        assert str(second) in msg and str(sources[0]) in msg and "\n" not in msg, msg
    part = a.parent / "part"
    part.mkdir()
    lines = (a / "traces.jsonl").read_text().splitlines(keepends=True)
    (part / "traces.jsonl").write_text("".join(lines[:3]))
    with pytest.raises(ConfigError, match=r"3 trace id\(s\)"):
        TraceStore([b, part, a])
    compact([a])  # a run's own traces.parquet beside its traces.jsonl is one source: read once
    with TraceStore([a, b]) as st:
        assert st.count() == 200


def test_the_attempts_of_one_case_are_distinct_traces_not_a_duplicate(tmp_path: Path) -> None:
    from labkit.trace.record import trace_id_for

    runs = []
    for name in ("r1", "r2"):
        run = tmp_path / name
        run.mkdir()
        (run / "traces.jsonl").write_text("".join(
            json.dumps({"trace_id": trace_id_for(name, "c1", k), "case_id": "c1", "attempt": k, "status": "ok",
                        "latency_ms": 5}) + "\n" for k in (1, 2)))
        runs.append(run)
    with TraceStore(runs) as st:
        assert st.count() == 4


def test_untimed_lines_name_each_trace_with_no_time_by_line_or_id(tmp_path: Path) -> None:
    """A trace with neither ts_end nor ts_start is named by its line (JSONL) or its id (an archive);
    one with a start only is placed there, and a torn tail is no trace."""
    run = tmp_path / "r12"
    run.mkdir()
    (run / "traces.jsonl").write_text(
        '{"trace_id":"timed","status":"ok","ts_start":1,"ts_end":2}\n'
        '{"trace_id":"untimed","status":"ok"}\n'
        '{"trace_id":"start-only","status":"ok","ts_start":3,"ts_end":null}\n'
        '{"trace_id": "torn', encoding="utf-8")
    with TraceStore([run]) as st:
        ((path, problems),) = st.untimed_lines()
        assert path == run / "traces.jsonl" and [p.line for p in problems] == [2], problems
        assert "ts_start" in problems[0].reason
    archive = tmp_path / "a.parquet"
    compact([run], archive)
    with TraceStore([archive]) as st:
        ((path, (problem,)),) = st.untimed_lines()
        assert path == archive and problem.line is None and "1 trace(s)" in problem.reason
        assert "untimed" in problem.reason and "start-only" not in problem.reason
    synth = tmp_path / "synth"
    write_synthetic_run(synth, 10, seed=2)
    with TraceStore([synth]) as st:
        assert st.untimed_lines() == []


def test_skipped_lines_are_named_by_file_and_line(tmp_path: Path) -> None:
    run = tmp_path / "r10"
    run.mkdir()
    (run / "traces.jsonl").write_text(_BAD_LINES + '{"trace_id": "t5', encoding="utf-8")  # a torn tail too
    with TraceStore([run]) as st:
        ((path, problems),) = st.invalid_lines()
        assert path == run / "traces.jsonl" and [p.line for p in problems] == [2, 3]
        warning = st.skipped_warning()
        assert warning is not None and str(run / "traces.jsonl") in warning and "2 line(s)" in warning
        assert "line 2" in warning and "line 3" in warning
    good = tmp_path / "good"
    good.mkdir()
    (good / "traces.jsonl").write_text(_BAD_LINES.splitlines(keepends=True)[0] + '{"trace_id": "t5')
    with TraceStore([good]) as st:
        assert st.invalid_lines() == [] and st.skipped_warning() is None  # a line still being written


def test_compaction_writes_no_folder_name_redaction_would_change(tmp_path: Path) -> None:
    """A run kept in a folder named by an e-mail address: the run's own traces.parquet holds no
    run_dir (the store takes it from the folder, as for the JSONL, so scores still join), and an
    archive holds the folder's redacted name and a hash of the real one, never the address."""
    import duckdb

    address = "ops.lead@example.com"
    write_synthetic_run(tmp_path / "r1", 20, seed=4)
    run = (tmp_path / "r1").rename(tmp_path / address)  # (moved there: the traces hold run id r1)
    _scores(run, [{"case_id": f"case-{k:07d}", "faithfulness": 1.0, "retrieval_hit_rate": 1, "latency_ms": 5,
                   "task_success": "True"} for k in range(20)])
    own = compact([run], compression="uncompressed")[0]
    archive = compact([run], tmp_path / "archive.parquet", compression="uncompressed")[0]
    for f in (own, archive):
        assert address.encode() not in f.read_bytes(), f
    stored = duckdb.sql(f"SELECT DISTINCT run_dir FROM read_parquet('{own}')").fetchall()
    assert stored == [(None,)]
    with TraceStore(run) as st:
        assert st.parquet_files and not st.jsonl_files
        df = st.query("SELECT DISTINCT run_dir, count(faithfulness) AS scored FROM traces GROUP BY run_dir")
    assert df.to_dict("records") == [{"run_dir": address, "scored": 20}]
    with TraceStore(archive) as st:
        names = st.query("SELECT DISTINCT run_dir FROM traces")["run_dir"].tolist()
    assert len(names) == 1 and names[0].startswith("[EMAIL]#") and len(names[0]) == len("[EMAIL]#") + 16


def test_a_run_folder_renamed_after_compaction_is_named_as_it_is_now(tmp_path: Path) -> None:
    """A run's own Parquet takes run_dir from its folder, as the JSONL does: a folder renamed after
    its traces were compacted is named by its new name, not the one compaction saw."""
    write_synthetic_run(tmp_path / "before", 5, seed=5)
    compact([tmp_path / "before"])
    run = (tmp_path / "before").rename(tmp_path / "after")
    with TraceStore(run) as st:
        assert st.parquet_files and not st.jsonl_files
        assert st.query("SELECT DISTINCT run_dir FROM traces")["run_dir"].tolist() == ["after"]


def test_a_scores_csv_edited_after_scoring_is_refused_with_the_reason(formula_like_run: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The scores view read a tampered scores.csv (its average 0.0, no warning) where gate, compare
    and the rest refuse it by its scoring record (labkit.scoring.verify_scored)."""
    from labkit.cli import main
    from labkit.errors import RunDirError

    with TraceStore([formula_like_run]) as st:  # as scored: served
        assert st.query("SELECT avg(task_success_rate) AS m FROM scores")["m"][0] == 1.0
    p = formula_like_run / "scores.csv"
    p.write_text(p.read_text().replace(",1.0,", ",0.0,").replace(",1,", ",0,"))
    with pytest.raises(RunDirError, match=r"changed after scoring.*scores\.csv"):
        TraceStore([formula_like_run])
    assert main(["traces", str(formula_like_run), "--sql", "select avg(task_success_rate) from scores"]) == 2
    out, err = capsys.readouterr()
    (line,) = [x for x in err.splitlines() if x.strip()][-1:]
    assert out == "" and "changed after scoring" in line and "labkit score" in line, err
