"""labkit.commands.traces: what a trace query prints is held to what a run may write."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labkit.cli import main
from labkit.commands.traces import _redacted


def test_a_column_named_by_a_secret_is_redacted_and_keeps_its_values() -> None:
    """A PIVOT names columns by the values it spreads: a secret there printed as the header, and
    the column's values came back empty."""
    key = "sk-proj-PLANTEDabcdefghijklmnop0123"
    df = pd.DataFrame({"trace_id": ["t1", "t2"], key: ["ok", "mail jane.doe@example.com"], "n": [1, 2],
                       "AKIAPLANTED123456789": ["x", "y"], "AKIAPLANTED123456780": ["z", "w"]})
    out = _redacted(df)
    names = [str(c) for c in out.columns]
    assert not [n for n in names if "PLANTED" in n] and len(set(names)) == 5, names
    assert out.iloc[:, 1].tolist() == ["ok", "mail [EMAIL]"] and out["n"].tolist() == [1, 2]
    assert out.iloc[:, 3].tolist() == ["x", "y"] and out["trace_id"].tolist() == ["t1", "t2"]


def _one_run(tmp_path, line: str):
    run = tmp_path / "r1"
    run.mkdir()
    (run / "traces.jsonl").write_text(line + "\n", encoding="utf-8")
    return run


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_list_and_struct_values_of_a_query_are_redacted_at_any_depth(tmp_path, capsys, fmt: str) -> None:
    """DuckDB gives a list cell as a numpy array, which the redaction did not walk: the key inside
    a list, the addresses in a list and in a struct inside a list printed raw."""
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234abcd"
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "input": f"my key {key}",
                                         "status": "ok", "latency_ms": 5}))
    sql = ("select input, list(input) as l, ['bob@example.com'] as m, [{'a': 'carol@example.com'}] as s, "
           "[[['dan@example.com']]] as deep, {'x': [{'y': ['erin@example.com']}]} as st, [1, 2] as n "
           "from traces group by input")
    assert main(["traces", str(run), "--format", fmt, "--sql", sql]) == 0
    out = capsys.readouterr().out
    assert "ABCDEFGH" not in out and "@example.com" not in out, out
    assert out.count("[EMAIL]") == 4 and out.count("[API_KEY]") == 2, out
    if fmt == "json":
        (row,) = json.loads(out)
        assert row["n"] == [1, 2] and row["s"] == [{"a": "[EMAIL]"}] and row["deep"] == [[["[EMAIL]"]]]


def test_a_query_warns_of_the_lines_it_skipped_naming_file_and_lines(tmp_path, capsys) -> None:
    """Bad lines of traces.jsonl were dropped from every query without a word."""
    run = _one_run(tmp_path, '{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5}\nnot json\n'
                             '{"trace_id":"t4","case_id":"c4","status":"error","latency_ms":7}')
    assert main(["traces", str(run), "--sql", "select trace_id from traces", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == ["trace_id", "t1", "t4"]
    (warning,) = [x for x in err.splitlines() if "warning" in x]
    assert str(run / "traces.jsonl") in warning and "1 line(s)" in warning and "line 2" in warning, err


def test_compact_refuses_an_archive_over_its_own_input(tmp_path, capsys) -> None:
    """``traces compact r3 --out r3/traces.jsonl`` wrote Parquet bytes over the JSONL it read."""
    from labkit.cli import main

    run = tmp_path / "r3"
    run.mkdir()
    line = '{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5}\n'
    (run / "traces.jsonl").write_text(line)
    assert main(["traces", "compact", str(run), "--out", str(run / "traces.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"--out {run / 'traces.jsonl'}" in err and f"RUN_DIR {run}" in err and "Traceback" not in err
    assert (run / "traces.jsonl").read_text() == line and sorted(p.name for p in run.iterdir()) == ["traces.jsonl"]


def test_a_query_refuses_a_copy_of_a_run_given_with_it(tmp_path, capsys) -> None:
    """A copied run folder is another path: a query over both counted each trace twice."""
    import shutil

    lines = "".join(json.dumps({"trace_id": f"t{k}", "case_id": f"c{k}", "status": "ok", "latency_ms": 5}) + "\n"
                    for k in range(4))
    run = _one_run(tmp_path, lines.rstrip("\n"))
    copy = shutil.copytree(run, tmp_path / "r1_copy")
    assert main(["traces", str(run), str(copy), "--sql", "select count(*) n from traces"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "4 trace id(s)" in err and str(run) in err and str(copy) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("limit", ["-1", "-50"])
def test_a_negative_limit_is_one_usage_error(tmp_path, capsys, limit: str) -> None:
    """``--limit -1`` was taken as pandas' head(-1): the table printed all rows but the last, then
    '... 1 more rows' (over one row, '(no rows)' and '... 1 more rows'), and exited 0."""
    lines = "\n".join(json.dumps({"trace_id": f"t{k}", "case_id": f"c{k}", "status": "ok", "latency_ms": 5})
                      for k in range(2))
    run = _one_run(tmp_path, lines)
    assert main(["traces", str(run), "--sql", "select trace_id from traces", "--limit", limit]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err, (out, err)
    (error,) = [x for x in err.splitlines() if "error" in x]
    assert "--limit" in error and repr(limit) in error, err
    assert main(["traces", str(run), "--sql", "select trace_id from traces", "--limit", "0"]) == 0  # 0 = all
    assert capsys.readouterr().out.split() == ["trace_id", "t0", "t1"]


@pytest.mark.parametrize("sql", [
    "/* /* */ SELECT */ COPY (SELECT 'gone' AS x) TO '{out}' (FORMAT csv, HEADER false)",
    "/* /* */ SELECT */ COPY (SELECT 'gone' AS x) TO '{out}' (FORMAT csv, HEADER false);",
    "WITH x AS (SELECT 1) SELECT 1; COPY (SELECT 'gone' AS x) TO '{out}' (FORMAT csv, HEADER false)",
    "EXPLAIN ANALYZE COPY (SELECT 'gone' AS x) TO '{out}' (FORMAT csv, HEADER false)",
    "/* /* */ PIVOT */ INSERT INTO traces_raw SELECT * FROM traces_raw",
])
def test_a_write_hidden_behind_nested_comments_is_refused_and_the_run_unchanged(tmp_path, capsys, sql: str) -> None:
    """``--sql "/* /* */ SELECT */ COPY ... TO 'RUN/results.jsonl'"``: the check read a SELECT after
    the first ``*/``; the database nests block comments and ran a COPY over the run's own results
    (an alert silenced by rewriting traces.jsonl the same way). Refused in one line, exit 2."""
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "status": "ok", "latency_ms": 5}))
    target = run / "results.jsonl"
    target.write_text('{"case_id": "c1"}\n')
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["traces", str(run), "--sql", sql.format(out=target)]) == 2
    err = capsys.readouterr().err
    assert "only one read-only statement" in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_read_the_database_parses_as_one_select_is_run(tmp_path, capsys) -> None:
    """Comments (nested too), a PIVOT, a WITH, a trailing semicolon: each one read, as written."""
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "status": "ok", "latency_ms": 5}))
    for sql in ("/* a /* nested */ comment */ SELECT count(*) AS n FROM traces;",
                "-- by status\nWITH s AS (SELECT status FROM traces) PIVOT s ON status USING count(*)",
                "FROM traces SELECT case_id"):
        assert main(["traces", str(run), "--sql", sql, "--format", "csv"]) == 0, sql
    out = capsys.readouterr().out
    assert "n\n1\n" in out and "ok\n1\n" in out and "case_id\nc1\n" in out, out


def test_a_query_the_database_cannot_parse_names_its_error(tmp_path, capsys) -> None:
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "status": "ok", "latency_ms": 5}))
    assert main(["traces", str(run), "--sql", "select * frm traces"]) == 2
    err = capsys.readouterr().err
    assert "syntax error" in err and "Traceback" not in err and err.strip().count("\n") <= 1, err


@pytest.mark.parametrize(("args", "flag", "action"), [
    (["{run}", "--otlp", "http://127.0.0.1:9"], "--otlp", "export"),
    (["{run}", "--capture-content"], "--capture-content", "export"),
    (["{run}", "--timeout", "1"], "--timeout", "export"),
    (["{run}", "--rules", "data/alerts.yaml"], "--rules", "checklist"),
    (["compact", "{run}", "--otlp", "http://127.0.0.1:9"], "--otlp", "export"),
    (["export", "{run}", "--otlp", "http://127.0.0.1:9", "--sql", "select 1"], "--sql", "a query"),
    (["checklist", "{run}", "--out", "x.parquet"], "--out", "compact"),
])
def test_an_option_of_another_action_is_a_usage_error(tmp_path, capsys, args: list[str], flag: str,
                                                      action: str) -> None:
    """``labkit traces RUN --otlp URL`` (without ``export``) printed the summary and exited 0: a CI
    step took the traces for exported. An option is used by its action only; given to another it
    is a usage error naming it, before anything is read or sent."""
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "status": "ok", "latency_ms": 5}))
    assert main(["traces", *(a.format(run=run) for a in args)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} is an option of {action}" in err and "Traceback" not in err and err.count("\n") == 1, err


_OUT_OF_RANGE = ('{"trace_id":"t1","case_id":"c1","status":"ok","latency_ms":5,"ts_start":10}\n'
                 '{"trace_id":"n1","case_id":"x1","status":"ok","latency_ms":NaN,"ts_start":11}\n'
                 '{"trace_id":"n2","case_id":"x2","status":"ok","latency_ms":-5,"ts_start":"yesterday"}\n'
                 '{"trace_id":"n3","case_id":"x3","status":"ok","latency_ms":1e300,"ts_start":1e308}\n'
                 '{"trace_id":"n4","case_id":"x4","status":"ok","latency_ms":"7","ts_start":"2024-01-01T00:00:00Z"}\n'
                 '{"trace_id":"n5","case_id":"x5","status":"ok","latency_ms":1e999,"cost_usd":-1,"ts_start":12}\n')


def test_a_number_the_trace_schema_refuses_is_null_in_the_view_and_its_line_named(tmp_path, capsys) -> None:
    """Lines listed as invalid (a NaN, a negative latency) still gave max NaN and min -5.0; a string
    latency read as 7, a start in year 10000 and 1e300 ms as values, and none of it was warned of."""
    run = _one_run(tmp_path, _OUT_OF_RANGE.rstrip("\n"))
    sql = ("select count(*) n, count(latency_ms) lat, max(latency_ms) mx, min(latency_ms) mn, count(ts_start) ts, "
           "max(ts_start) mts, count(cost_usd) cost, count(*) filter (where isnan(latency_ms)) nan from traces")
    assert main(["traces", str(run), "--sql", sql, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [{"n": 6, "lat": 1, "mx": 5.0, "mn": 5.0, "ts": 3, "mts": 12.0, "cost": 0, "nan": 0}]
    (warning,) = [x for x in err.splitlines() if "warning" in x]
    assert str(run / "traces.jsonl") in warning and "5 line(s)" in warning, err
    assert "read as null" in warning and "line 2" in warning and "line 3" in warning, err
    assert "skipped or read with empty fields" not in warning


def test_compaction_keeps_no_number_the_trace_schema_refuses(tmp_path, capsys) -> None:
    run = _one_run(tmp_path, _OUT_OF_RANGE.rstrip("\n"))
    assert main(["traces", "compact", str(run)]) == 0
    import duckdb

    got = duckdb.sql(f"select count(latency_ms), count(ts_start), max(latency_ms) from "
                     f"read_parquet('{run / 'traces.parquet'}')").fetchall()
    assert got == [(1, 3, 5.0)]


_WRONG_SHAPES = ('{"trace_id":"t1","case_id":"c1","status":"ok","model":"m1","attempt":1,"retrieved_chunks":["a"],'
                 '"tool_calls":[{"name":"lookup"}],"usage":{"input_tokens":3,"output_tokens":4},"from_cache":false,'
                 '"guardrails":{"injection_flag":true,"violations":["pii:email"]},"tags":{"k":"v"},"citations":["a"]}\n'
                 '{"trace_id":"s1","case_id":"x1","status":"exploded","model":{"name":"m2"}}\n'
                 '{"trace_id":"s2","case_id":"x2","status":"ok","prompt_version":["v1"],"retrieved_chunks":[1,2],'
                 '"from_cache":"yes"}\n'
                 '{"trace_id":"s3","case_id":"x3","status":"error","tool_calls":{"name":"t"},'
                 '"usage":{"input_tokens":"many","output_tokens":-3},"attempt":"two"}\n'
                 '{"trace_id":"s4","case_id":"x4","status":"ok","guardrails":{"injection_flag":"yes","violations":"pii"},'
                 '"tags":["a"],"citations":[{"id":1}],"tool_calls":[{"args":{}}]}\n')

_SHAPES_SQL = ("select count(*) n, count(status) st, count(*) filter (where status = 'exploded') bad, "
               "count(model) model, count(prompt_version) pv, count(retrieved_chunks) rc, count(from_cache) fc, "
               "sum(n_tool_calls) ntc, count(input_tokens) it, count(output_tokens) ot, count(attempt) att, "
               "count(*) filter (where injection_flag) inj, sum(n_violations) nv, count(tags) tags, "
               "count(citations) cit from traces")
_SHAPES_READ = [{"n": 5, "st": 4, "bad": 0, "model": 1, "pv": 0, "rc": 1, "fc": 1, "ntc": 1, "it": 1, "ot": 1,
                 "att": 1, "inj": 1, "nv": 1, "tags": 1, "cit": 1}]


def test_a_field_of_a_value_the_trace_schema_refuses_is_null_in_the_views_and_its_line_named(tmp_path, capsys) -> None:
    """Only numbers were held to the trace schema: an unknown status was counted as a status, an
    object where the model's name belongs read as its JSON text, a list of numbers as chunk ids, a
    text as from_cache, and the warning said the other fields were read as written."""
    run = _one_run(tmp_path, _WRONG_SHAPES.rstrip("\n"))
    assert main(["traces", str(run), "--sql", _SHAPES_SQL, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == _SHAPES_READ
    (warning,) = [x for x in err.splitlines() if "warning" in x]
    assert str(run / "traces.jsonl") in warning and "4 line(s)" in warning, err
    assert "line 2 field 'status': unknown status 'exploded'" in warning and "line 2 field 'model'" in warning, err
    assert "a field the trace schema refuses is read as null" in warning, err
    assert main(["traces", "compact", str(run)]) == 0  # an archive keeps none of them either
    capsys.readouterr()
    (run / "traces.jsonl").unlink()
    assert main(["traces", str(run), "--sql", _SHAPES_SQL, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == _SHAPES_READ


def test_an_archive_compacted_before_the_schema_held_its_fields_is_read_under_it(tmp_path, capsys) -> None:
    """A traces.parquet written by an earlier compaction (no schema digest in its metadata) may hold
    an unknown status or a negative token count: the views read them as null too."""
    import duckdb

    run = _one_run(tmp_path, _WRONG_SHAPES.splitlines()[0] + "\n" + _WRONG_SHAPES.splitlines()[0].replace("t1", "t2"))
    assert main(["traces", "compact", str(run)]) == 0
    pq, old = run / "traces.parquet", tmp_path / "old.parquet"
    duckdb.sql(f"COPY (SELECT * REPLACE (CASE WHEN trace_id = 't2' THEN 'exploded' ELSE status END AS status, "
               "CASE WHEN trace_id = 't2' THEN {'input_tokens': -3, 'output_tokens': 1} ELSE usage END AS usage, "
               "CASE WHEN trace_id = 't2' THEN '{\"name\": \"a\"}'::JSON ELSE tool_calls END AS tool_calls) "
               f"FROM read_parquet('{pq}')) TO '{old}' (FORMAT parquet)")
    old.replace(pq)
    (run / "traces.jsonl").unlink()
    capsys.readouterr()
    sql = "select count(*) n, count(status) st, count(input_tokens) it, sum(n_tool_calls) ntc from traces"
    assert main(["traces", str(run), "--sql", sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2, "st": 1, "it": 1, "ntc": 1}]


def test_the_warning_naming_a_refused_value_quotes_no_secret(tmp_path, capsys) -> None:
    """The warning quotes the value it refuses (an unknown status), and it was printed as read."""
    key = "sk-proj-PLANTEDabcdefghijklmnop0123"
    run = _one_run(tmp_path, json.dumps({"trace_id": "t1", "case_id": "c1", "status": key, "latency_ms": 5}))
    assert main(["traces", str(run), "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert "line 1 field 'status': unknown status" in err and "PLANTED" not in err, err
