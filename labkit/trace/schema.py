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
from labkit.trace.record import NUMBER_RANGES
from labkit.trace.sql import (
    FEEDBACK_COLUMNS,
    SCORES_FILE,
    TRACE_COLUMNS,
    sql_ident,
    sql_literal,
    sql_struct,
)


def _number(col: str, *, json: bool) -> str:
    """The SQL of a number of :data:`~labkit.trace.record.NUMBER_RANGES` as the views read it: the
    value when the trace schema accepts it, else null (NaN, an infinity, a value out of its range;
    ``json``: a column read as JSON, whose text, boolean or object is no number either)."""
    lo, hi, _ = NUMBER_RANGES[col]
    c = sql_ident(col)
    v = f"CAST({c} AS DOUBLE)"
    typed = f"json_type({c}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND " if json else ""
    return f"CASE WHEN {typed}isfinite({v}) AND {v} BETWEEN {lo!r} AND {hi!r} THEN {v} END"


def _refused(*, json: bool) -> str:
    """The SQL of whether a row holds a number the trace schema refuses (read as null by the views)."""
    given = "{c} IS NOT NULL AND json_type({c}) <> 'NULL'" if json else "{c} IS NOT NULL"
    return "(" + " OR ".join(f"({given.format(c=sql_ident(c))} AND {_number(c, json=json)} IS NULL)"
                             for c in NUMBER_RANGES) + ")"


def raw_select(jsonl_files: Sequence[Path], parquet_files: Sequence[Path], *, with_file: bool = False,
               with_refused: bool = False) -> str:
    """The union of every trace file as rows of TRACE_COLUMNS plus ``run_dir`` (and, ``with_file``,
    ``source_file``: the file each row was read from, as given; ``with_refused``, ``refused``: whether
    the row held a number the trace schema refuses). A number of NUMBER_RANGES is read as null unless
    the trace schema accepts it: no NaN, infinity, negative latency or year past 9999 in any view."""
    parts: list[str] = []

    def cols(json: bool) -> str:
        return ", ".join(
            f"{_number(c, json=json) if c in NUMBER_RANGES else f'CAST({sql_ident(c)} AS {t})'} AS {sql_ident(c)}"
            for c, t in TRACE_COLUMNS.items()
        ) + (", filename AS source_file" if with_file else "") + (
            f", {_refused(json=json)} AS refused" if with_refused else "")

    run_dir = r"regexp_extract(filename, '([^/\\]+)[/\\][^/\\]+$', 1)"
    if jsonl_files:
        files = "[" + ", ".join(sql_literal(str(p)) for p in jsonl_files) + "]"
        read = {c: "JSON" if c in NUMBER_RANGES else t for c, t in TRACE_COLUMNS.items()}  # (typed by _number)
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
