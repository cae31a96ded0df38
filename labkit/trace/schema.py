"""The views of the trace store, created on its DuckDB connection: ``traces`` (records joined
with scores and feedback), ``traces_raw``, ``traces_all``, ``feedback``, ``scores``,
``scores_wide`` and ``runs``. See :mod:`labkit.trace.store` for what each holds.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.errors import DatasetError, LabkitError, Problem
from labkit.runs import RunDir, csv_unsafe_sql
from labkit.trace.fields import (
    FIELD_KINDS,
    GUARDRAIL_FLAGS,
    INTEGER_RANGES,
    NUMBER_RANGES,
    STATUSES,
    USAGE_KEYS,
)
from labkit.trace.sql import (
    FEEDBACK_COLUMNS,
    SCORES_FILE,
    TRACE_COLUMNS,
    sql_ident,
    sql_literal,
    sql_struct,
)


def _every(j: str, path: str, types: str) -> str:
    """SQL: every value at ``path`` (a wildcard) of the JSON ``j`` is of one of ``types``."""
    return f"len(list_filter(json_type({j}, '{path}'), lambda x: x NOT IN ({types}))) = 0"


_NUMERIC = "'BIGINT', 'UBIGINT', 'DOUBLE'"


def _accepted(col: str, j: str) -> tuple[str, str]:
    """(condition, value): the SQL of whether the trace schema accepts the JSON ``j`` as the value of
    field ``col`` (:data:`~labkit.trace.fields.FIELD_KINDS`), and of that value typed as its column."""
    kind, t, text = FIELD_KINDS[col], f"json_type({j})", f"({j} ->> '$')"
    if kind in ("number", "integer"):
        lo, hi, _ = NUMBER_RANGES[col] if kind == "number" else INTEGER_RANGES[col]
        v = f"TRY_CAST({j} AS DOUBLE)"
        typed = _NUMERIC if kind == "number" else "'BIGINT', 'UBIGINT'"
        return f"{t} IN ({typed}) AND isfinite({v}) AND {v} BETWEEN {lo!r} AND {hi!r}", f"TRY_CAST({j} AS DOUBLE)"
    objects = f"{t} = 'ARRAY' AND {_every(j, '$[*]', repr('OBJECT'))}"
    usage = " AND ".join(f"coalesce(json_type({j}, '$.{k}'), 'NULL') IN ('UBIGINT', 'NULL')" for k in USAGE_KEYS)
    flags = " AND ".join(f"coalesce(json_type({j}, '$.{k}'), 'NULL') IN ('BOOLEAN', 'NULL')" for k in GUARDRAIL_FLAGS)
    violations = (f"(coalesce(json_type({j}, '$.violations'), 'NULL') = 'NULL' OR (json_type({j}, '$.violations') = "
                  f"'ARRAY' AND {_every(j, '$.violations[*]', repr('VARCHAR'))}))")
    cond = {
        "id": f"{t} = 'VARCHAR' AND trim({text}) <> ''",
        "string": f"{t} = 'VARCHAR'",
        "status": f"{t} = 'VARCHAR' AND {text} IN ({', '.join(map(sql_literal, STATUSES))})",
        "boolean": f"{t} = 'BOOLEAN'",
        "strings": f"{t} = 'ARRAY' AND {_every(j, '$[*]', repr('VARCHAR'))}",
        "objects": objects,
        "tool_calls": f"{objects} AND len(list_filter(json_type({j}, '$[*].name'), lambda x: x = 'VARCHAR')) "
                      f"= json_array_length({j})",
        "object": f"{t} = 'OBJECT'",
        "scores": f"{t} = 'OBJECT' AND {_every(j, '$.*', _NUMERIC + ', ' + repr('NULL'))}",
        "usage": f"{t} = 'OBJECT' AND {usage}",
        "guardrails": f"{t} = 'OBJECT' AND {flags} AND {violations}",
    }.get(kind, "true")  # (any)
    if kind == "usage":
        parts = ", ".join(f"{sql_literal(k)}: TRY_CAST({j} -> '$.{k}' AS BIGINT)" for k in USAGE_KEYS)
        return cond, f"{{{parts}}}"
    return cond, text if kind in ("id", "string", "status") else j


def _typed(col: str) -> str | None:
    """The SQL of whether the trace schema accepts the value of field ``col`` of a Parquet archive, whose
    columns are typed (TRACE_COLUMNS): a text column holds a text, a list of texts a list of texts, a
    boolean a boolean; what is left to check is a status, a number's range, a token count's sign and
    a JSON column's shape. None: every value of its type is accepted."""
    kind, c = FIELD_KINDS[col], sql_ident(col)
    if kind == "status":
        return f"{c} IN ({', '.join(map(sql_literal, STATUSES))})"
    if kind in ("number", "integer"):
        lo, hi, _ = NUMBER_RANGES[col] if kind == "number" else INTEGER_RANGES[col]
        return f"isfinite(CAST({c} AS DOUBLE)) AND CAST({c} AS DOUBLE) BETWEEN {lo!r} AND {hi!r}"
    if kind == "usage":
        return " AND ".join(f"coalesce({c}.{k} >= 0, true)" for k in USAGE_KEYS)
    if TRACE_COLUMNS[col] == "JSON" and kind != "any":
        return _accepted(col, c)[0]
    return None


def _read(col: str, *, json: bool) -> str:
    """The SQL of field ``col`` as the views read it: its value when the trace schema accepts it, else
    null (an unknown status, an object where a string belongs, a list of numbers as chunk ids, a
    number out of its range, NaN). ``json``: the column is read as JSON (a JSONL file); else it is
    typed (a Parquet archive: :func:`_typed`)."""
    c, typ = sql_ident(col), TRACE_COLUMNS[col]
    if json:
        cond, value = _accepted(col, c)
        return f"CASE WHEN {cond} THEN CAST({value} AS {typ}) END"
    check = _typed(col)
    return f"CAST({c} AS {typ})" if check is None else f"CASE WHEN {check} THEN CAST({c} AS {typ}) END"


def _refused(*, json: bool) -> str:
    """The SQL of whether a row holds a value the trace schema refuses (read as null by the views)."""
    given = "{c} IS NOT NULL AND json_type({c}) <> 'NULL'" if json else "{c} IS NOT NULL"
    return "(" + " OR ".join(f"({given.format(c=sql_ident(c))} AND {_read(c, json=json)} IS NULL)"
                             for c, kind in FIELD_KINDS.items()
                             if kind not in ("id", "any") and (json or _typed(c) is not None)) + ")"


def raw_select(jsonl_files: Sequence[Path], parquet_files: Sequence[Path], *, with_file: bool = False,
               with_refused: bool = False) -> str:
    """The union of every trace file as rows of TRACE_COLUMNS plus ``run_dir`` (and, ``with_file``,
    ``source_file``: the file each row was read from, as given; ``with_refused``, ``refused``: whether
    the row held a value the trace schema refuses). Each field is read as null unless the trace schema
    (labkit.trace.fields) accepts its value: no unknown status, object as a model name, NaN, negative
    latency or year past 9999 in any view."""
    parts: list[str] = []

    def cols(json: bool) -> str:
        return ", ".join(
            f"{_read(c, json=json)} AS {sql_ident(c)}" for c in TRACE_COLUMNS
        ) + (", filename AS source_file" if with_file else "") + (
            f", {_refused(json=json)} AS refused" if with_refused else "")

    run_dir = r"regexp_extract(filename, '([^/\\]+)[/\\][^/\\]+$', 1)"
    if jsonl_files:
        files = "[" + ", ".join(sql_literal(str(p)) for p in jsonl_files) + "]"
        read = dict.fromkeys(TRACE_COLUMNS, "JSON")  # (each typed by _read, as the trace schema holds it)
        parts.append(
            f"SELECT {cols(True)}, {run_dir} AS run_dir FROM read_json({files}, "
            f"columns={sql_struct(read)}, format='newline_delimited', "
            "ignore_errors=true, filename=true, maximum_object_size=67108864)"
        )
    if parquet_files:
        files = "[" + ", ".join(sql_literal(str(p)) for p in parquet_files) + "]"
        parts.append(
            f"SELECT {cols(False)}, coalesce(run_dir, {run_dir}) AS run_dir "
            f"FROM read_parquet({files}, filename=true, union_by_name=true)"
        )
    if not parts:
        empty = ", ".join(f"CAST(NULL AS {t}) AS {sql_ident(c)}" for c, t in TRACE_COLUMNS.items())
        file = ", CAST(NULL AS VARCHAR) AS source_file" if with_file else ""
        flag = ", false AS refused" if with_refused else ""
        return f"SELECT {empty}{file}{flag}, CAST(NULL AS VARCHAR) AS run_dir WHERE false"
    return " UNION ALL ".join(parts)


def shared_trace_ids(con: Any, jsonl_files: Sequence[Path], parquet_files: Sequence[Path]) -> list[tuple[str, str, int]]:
    """(file, other file, how many trace ids both hold) for each two trace files that share trace
    ids (a copy of a run, an archive of it), most first; empty when each trace id is in one file
    only. One query."""
    row = con.execute(
        f"""WITH f AS (SELECT DISTINCT trace_id, source_file
                       FROM ({raw_select(jsonl_files, parquet_files, with_file=True)}) WHERE trace_id IS NOT NULL),
                 d AS (SELECT list(source_file ORDER BY source_file) AS files FROM f GROUP BY trace_id
                       HAVING count(*) > 1)
            SELECT files[1], files[2], count(*) AS n FROM d GROUP BY ALL ORDER BY n DESC, 1, 2"""
    ).fetchall()
    return [(str(a), str(b), int(n)) for a, b, n in row]


def build_views(con: Any, *, run_dirs: Sequence[Path], jsonl_files: Sequence[Path],
                parquet_files: Sequence[Path]) -> list[str]:
    """Create the views ``traces_all``, ``traces_raw``, ``scores``, ``scores_wide``, ``runs`` and
    ``traces`` on ``con`` (the ``feedback`` table made first: :func:`build_feedback`); returns the
    per-case metric columns of the scores files."""
    # raw records (lines that did not parse have no trace_id and are dropped)
    con.execute(f"CREATE OR REPLACE VIEW traces_all AS {raw_select(jsonl_files, parquet_files)}")
    con.execute("CREATE OR REPLACE VIEW traces_raw AS SELECT * FROM traces_all WHERE trace_id IS NOT NULL")
    metric_columns = build_scores(con, run_dirs)
    build_runs(con, run_dirs)
    score_cols: list[str] = []
    taken = set(TRACE_COLUMNS) | {"run_dir", "final", "feedback_rating", "feedback_comment"}
    for m in metric_columns:
        if m == "faithfulness":
            continue
        alias = f"score_{m}" if m in taken else m
        score_cols.append(f"s.{sql_ident(m)} AS {sql_ident(alias)}")
    faith = "coalesce(s.faithfulness, t.faithfulness)" if "faithfulness" in metric_columns else "t.faithfulness"
    extra = (", " + ", ".join(score_cols)) if score_cols else ""
    t_cols = ", ".join(f"t.{sql_ident(c)}" for c in TRACE_COLUMNS if c != "faithfulness")
    con.execute(
        f"""
        CREATE OR REPLACE VIEW traces AS
        WITH t AS (
            SELECT *,
                coalesce(run_id, run_dir) AS run_key,
                coalesce(attempt, 1) = max(coalesce(attempt, 1))
                    OVER (PARTITION BY run_dir, coalesce(case_id, trace_id)) AS final
            FROM traces_raw
        ),
        fb AS (
            SELECT trace_id, arg_max(rating, coalesce(ts, 0)) AS feedback_rating,
                   arg_max(comment, coalesce(ts, 0)) AS feedback_comment,
                   count(*) AS feedback_n
            FROM feedback GROUP BY trace_id
        )
        SELECT {t_cols}, {faith} AS faithfulness,
            t.run_dir, t.final,
            t.usage.input_tokens AS input_tokens,
            t.usage.output_tokens AS output_tokens,
            CAST(coalesce(json_array_length(t.retrieved), len(t.retrieved_chunks), 0) AS BIGINT) AS n_retrieved,
            coalesce(json_array_length(t.tool_calls), 0) AS n_tool_calls,
            coalesce(list_bool_or(list_transform(
                CAST(json_extract_string(t.tool_calls, '$[*].status') AS VARCHAR[]),
                lambda x: x IS NOT NULL AND x <> 'ok')), false) AS tool_error,
            coalesce(CAST(json_extract(t.guardrails, '$.injection_flag') AS BOOLEAN), false) AS injection_flag,
            coalesce(CAST(json_extract(t.guardrails, '$.pii_redacted') AS BOOLEAN), false) AS pii_redacted,
            coalesce(json_array_length(json_extract(t.guardrails, '$.violations')), 0) AS n_violations,
            fb.feedback_rating, fb.feedback_comment, coalesce(fb.feedback_n, 0) AS feedback_n
            {extra}
        FROM t
        LEFT JOIN scores_wide s ON s.run_dir = t.run_dir AND s.case_id = t.case_id
        LEFT JOIN fb ON fb.trace_id = t.trace_id
        """
    )
    return metric_columns


def build_feedback(con: Any, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """The ``feedback`` table: ``rows``, (run folder name, feedback line) of each valid line of the
    runs' feedback.jsonl (labkit.trace.feedback.read_feedback_files: a line that is no valid feedback
    is not one of them), typed as FEEDBACK_COLUMNS."""
    import pandas as pd

    df = pd.DataFrame([{**{c: obj.get(c) for c in FEEDBACK_COLUMNS}, "run_dir": run_dir} for run_dir, obj in rows],
                      columns=[*FEEDBACK_COLUMNS, "run_dir"], dtype=object)
    cols = ", ".join(f"CAST({sql_ident(c)} AS {t}) AS {sql_ident(c)}" for c, t in FEEDBACK_COLUMNS.items())
    con.register("feedback_df", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE feedback AS SELECT {cols}, CAST(run_dir AS VARCHAR) AS run_dir "
                    "FROM feedback_df")
    finally:
        con.unregister("feedback_df")


def build_scores(con: Any, run_dirs: Sequence[Path]) -> list[str]:
    """The ``scores`` and ``scores_wide`` views over the runs' scores.csv; returns the metric columns.
    A scores.csv that is not the one its run's scoring wrote is refused (labkit.scoring.verify_scored:
    a RunDirError with its one-line reason), as a gate or a comparison refuses it."""
    from labkit.scoring import verify_scored

    metrics: list[str] = []
    selects: list[str] = []
    for d in run_dirs:
        p = d / SCORES_FILE
        if not p.exists():
            continue
        verify_scored(d)
        with open(p, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if "case_id" not in header:
            raise DatasetError(str(p), [Problem(1, "case_id", "scores.csv has no case_id column")])
        types: dict[str, str] = {}
        for col in header:
            if col == "case_id" or col.endswith("_reason") or col in ("run_id", "status"):
                types[col] = "VARCHAR"
            else:
                types[col] = "VARCHAR"  # read as text, TRY_CAST below: empty = unmeasured
                if col not in metrics:
                    metrics.append(col)
        sel = ", ".join(
            (
                f"coalesce(TRY_CAST(NULLIF({sql_ident(c)}, '') AS DOUBLE), CASE lower({sql_ident(c)}) "
                f"WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END) AS {sql_ident(c)}"
                if c in metrics
                else f"{csv_unsafe_sql(sql_ident(c))} AS {sql_ident(c)}"  # each text as it was scored
            )
            for c in header
        )
        selects.append(
            f"SELECT {sel}, {sql_literal(d.name)} AS run_dir FROM read_csv({sql_literal(str(p))}, header=true, "
            f"columns={sql_struct(types)}, auto_detect=false, all_varchar=true)"
        )
    if selects:
        body = " UNION ALL BY NAME ".join(selects)
        con.execute(f"CREATE OR REPLACE VIEW scores AS {body}")
    else:
        con.execute(
            "CREATE OR REPLACE VIEW scores AS SELECT CAST(NULL AS VARCHAR) AS case_id, "
            "CAST(NULL AS VARCHAR) AS run_dir WHERE false"
        )
    # one row per (run_dir, case_id): scores.csv may be rewritten but never has duplicates
    mcols = ", ".join(f"any_value({sql_ident(m)}) AS {sql_ident(m)}" for m in metrics)
    con.execute(
        "CREATE OR REPLACE VIEW scores_wide AS SELECT run_dir, case_id"
        + (f", {mcols}" if mcols else "")
        + " FROM scores GROUP BY run_dir, case_id"
    )
    return metrics


def build_runs(con: Any, run_dirs: Sequence[Path]) -> None:
    """The ``runs`` view: one row per run from its manifest."""
    import pandas as pd

    rows = []
    for d in run_dirs:
        try:  # (by the one reader of manifest.json; one it cannot read leaves the row's fields empty)
            man = RunDir(d).manifest
        except (OSError, LabkitError):
            man = {}
        pipe: Mapping[str, Any] = man["pipeline"] if isinstance(man.get("pipeline"), Mapping) else {}
        ds: Mapping[str, Any] = man["dataset"] if isinstance(man.get("dataset"), Mapping) else {}
        rows.append(
            {
                "run_dir": d.name,
                "run_id": str(man.get("run_id") or d.name),
                "created_at": str(man.get("created_at") or ""),
                "pipeline": str(pipe.get("name") or ""),
                "fingerprint": str(ds.get("fingerprint") or ""),
                "n_cases": int(ds.get("n_cases") or 0),
                "path": str(d),
            }
        )
    df = pd.DataFrame(
        rows, columns=["run_dir", "run_id", "created_at", "pipeline", "fingerprint", "n_cases", "path"]
    )
    con.register("runs_df", df)
    con.execute("CREATE OR REPLACE VIEW runs AS SELECT * FROM runs_df")
