"""The trace store: DuckDB (in memory) over the JSONL and Parquet files of runs.

No import step and no write lock: the ``traces`` view reads each run's
``traces.jsonl`` directly (``read_json`` with explicit columns,
``format='newline_delimited'``) every time it is queried, so a run that is
still appending can be queried; a last line still being written is skipped
(it does not parse and has no trace_id). Compacted runs are read from
``traces.parquet`` instead when that file is up to date with the JSONL
(:func:`labkit.trace.compaction.compact`).

The SQL side (column types, quoting, confinement, query errors) is
:mod:`labkit.trace.sql`; the views are created by :mod:`labkit.trace.schema`.

Tables and views every query can use (``labkit traces RUN_DIR... --sql``):

``traces``
    one row per trace record: the record's columns (nested ones as JSON),
    plus ``run_dir`` (directory name), ``input_tokens``, ``output_tokens``,
    ``n_retrieved``, ``n_tool_calls``, ``tool_error``, ``injection_flag``,
    ``pii_redacted``, ``n_violations``, ``final`` (last attempt of its case),
    every per-case metric column of ``<run>/scores.csv`` joined on
    (run, case_id) (named ``score_<metric>`` when it clashes with a trace
    column; ``faithfulness`` is the scored value when there is one), and the
    latest user feedback ``feedback_rating`` / ``feedback_comment``.
``feedback``
    every valid line of every ``<run>/feedback.jsonl`` (re-read when a file changes; a line that
    is no valid feedback is left out and named: :meth:`TraceStore.skipped_warning`).
``scores``
    the per-case rows of every ``scores.csv`` with ``run_dir``; a scores.csv that fails
    :func:`labkit.scoring.verify_scored` (edited after scoring) is refused when the store opens.
``runs``
    one row per run: run_dir, run_id, created_at, pipeline, dataset fingerprint,
    n_cases, path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.paths import has_torn_tail
from labkit.trace.joined import records_with_scores
from labkit.trace.schema import build_feedback, build_views, raw_select, shared_trace_ids
from labkit.trace.sql import (
    FEEDBACK_FILE,
    PARQUET_FILE,
    TRACE_COLUMNS,
    TRACES_FILE,
    duckdb_module,
    parquet_kv,
    parquet_source_bytes,
    run_query,
    sql_ident,
    sql_literal,
)
from labkit.trace.sql import confine as confine_to

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["STAGES", "TraceStore", "open_store", "records_with_scores"]

#: Pipeline order used to attribute a failure to its first failing stage.
STAGES = ("guardrail", "timeout", "error", "retrieval", "tool", "generation")


class TraceStore:
    """Queryable traces of one or many runs (or Parquet archives).

    ``sources`` are run directories, ``traces.jsonl`` files or ``.parquet``
    files written by :func:`labkit.trace.compaction.compact`. Every query re-reads the files, so
    results include lines appended since the store was opened.
    """

    def __init__(self, sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                 confine: bool = True) -> None:
        if isinstance(sources, str | os.PathLike):
            sources = [sources]
        self.sources = [Path(s) for s in sources]
        if not self.sources:
            raise ConfigError("no run directory given", field="run_dirs")
        self.run_dirs: list[Path] = []
        self.jsonl_files: list[Path] = []
        self.parquet_files: list[Path] = []
        #: per run directory, the file its traces are read from and why (:meth:`reading`)
        self.read_from: list[tuple[Path, str, str]] = []
        self._given: dict[Path, Path] = {}  # the traces each source names -> the source
        self._file_source: dict[str, Path] = {}  # each trace file read -> the source that named it
        duckdb = duckdb_module()
        # nothing leaves the machine: never download an extension (json and parquet are built in)
        self.con: Any = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
        for src in self.sources:
            self._add_source(src)
        self._metric_columns: list[str] = []
        self._feedback_seen: tuple[tuple[str, int, int, int], ...] | None = None
        #: (file, problems) of each feedback.jsonl with lines that are no valid feedback (left out)
        self.feedback_problems: list[tuple[Path, list[Problem]]] = []
        self._build()
        if len(self.sources) > 1:
            self._check_each_trace_once()
        if confine:
            confine_to(self.con, [*self.run_dirs, *(p.resolve().parent for p in self.parquet_files)])

    # ---------------------------------------------------------------- setup
    def _add_source(self, src: Path) -> None:
        # a run directory and its trace files name the same traces
        key = src.resolve().parent if src.is_file() and src.name in (TRACES_FILE, PARQUET_FILE) else src.resolve()
        if key in self._given:
            raise ConfigError(f"{src}: given twice (as {self._given[key]}): each trace once, or it is counted twice",
                              field="run_dirs")
        self._given[key] = src
        if src.is_dir():
            self.run_dirs.append(src)
            jl, pq = src / TRACES_FILE, src / PARQUET_FILE
            made_from = parquet_source_bytes(self.con, pq) if pq.exists() and jl.exists() else None
            size = jl.stat().st_size if jl.exists() else None
            self._file_source.update({str(jl): src, str(pq): src})
            if pq.exists() and (size is None or made_from == size):
                self.parquet_files.append(pq)
                self.read_from.append((src, PARQUET_FILE, "compacted, up to date"))
            elif jl.exists():
                self.jsonl_files.append(_trace_file(jl))
                why = (f"{PARQUET_FILE} is stale: made from {made_from:,} bytes, the JSONL has {size:,}"
                       if made_from is not None else
                       f"{PARQUET_FILE} records no source size" if pq.exists() else f"no {PARQUET_FILE}")
                self.read_from.append((src, TRACES_FILE, why))
            elif not (src / "results.jsonl").exists() and not (src / "manifest.json").exists():
                raise ConfigError(f"{src}: not a run directory (no {TRACES_FILE})", field="run_dirs")
        elif src.is_file():
            self._file_source[str(src)] = src
            if src.suffix == ".parquet":
                self.parquet_files.append(src)
            else:
                self.jsonl_files.append(_trace_file(src))
            if src.parent not in self.run_dirs and src.suffix != ".parquet":
                self.run_dirs.append(src.parent)
        else:
            raise ConfigError(f"{src}: no such run directory or trace file", field="run_dirs")

    def _check_each_trace_once(self) -> None:
        """A ConfigError when a source's traces are already loaded from another source (a copy of a
        run, an archive of it): two run directories recording one run_uuid, or trace ids in more
        than one trace file (counted in one query) where not both files belong to runs that record
        their uuids — two runs of one run id (the name of their folders) share their trace ids,
        which derive from it, and are still two runs. (The attempts of a case have trace ids of
        their own; a run's traces.parquet and traces.jsonl are one source, one of them read.)"""
        from labkit.runs import RunDir

        by_uid: dict[str, Path] = {}  # the run_uuid each run directory records -> the directory
        for src in self.run_dirs:
            uid = RunDir(src).manifest.get("run_uuid")
            if not isinstance(uid, str) or not uid:
                continue
            if uid in by_uid:
                raise ConfigError(f"{src}: the same run as {by_uid[uid]} (run_uuid {uid}: a copy?): each trace once, "
                                  "or it is counted twice", field="run_dirs")
            by_uid[uid] = src
        known = set(by_uid.values())
        if all(s in known for s in self.sources):
            return  # every source a run told apart by its uuid: no trace files to scan
        order = {s: i for i, s in enumerate(self.sources)}
        for a, b, n in shared_trace_ids(self.con, self.jsonl_files, self.parquet_files):
            pair = [self._file_source.get(f, Path(f)) for f in (a, b)]
            if all(s in known for s in pair):
                continue  # two runs, told apart by their uuids
            first, second = sorted(pair, key=lambda s: order.get(s, len(order)))
            raise ConfigError(f"{second}: {n:,} trace id(s) already loaded from {first} (a copy or an archive of the "
                              "same run?): each trace once, or it is counted twice", field="run_dirs")

    def reading(self) -> str:
        """One line saying where the runs' traces are read from: the compacted store (fast) or the
        JSONL, and why not the store (``labkit traces`` prints it)."""
        if not self.read_from:
            return "reading traces from the files given"
        n_pq = sum(1 for _, f, _ in self.read_from if f == PARQUET_FILE)
        if n_pq == len(self.read_from):
            return f"reading {n_pq} run(s) from {PARQUET_FILE} (compacted, up to date)"
        slow = "; ".join(f"{d.name}: {why}" for d, f, why in self.read_from if f != PARQUET_FILE)
        head = f"reading {n_pq} run(s) from {PARQUET_FILE}, " if n_pq else "reading "
        return f"{head}{len(self.read_from) - n_pq} run(s) from {TRACES_FILE} ({slow})"

    def _sync_feedback(self) -> None:
        """The ``feedback`` table made again from the runs' feedback.jsonl when one changed (size,
        time or file) since it was made: only valid lines, each other line in :attr:`feedback_problems`."""
        from labkit.trace.feedback import read_feedback_files

        files = [f for f in (d / FEEDBACK_FILE for d in self.run_dirs) if f.is_file()]
        seen = tuple((str(f), s.st_size, s.st_mtime_ns, s.st_ino) for f in files for s in (f.stat(),))
        if seen != self._feedback_seen:
            rows, self.feedback_problems = read_feedback_files(files)
            build_feedback(self.con, rows)
            self._feedback_seen = seen

    def _build(self) -> None:
        self._feedback_seen = None
        self._sync_feedback()
        self._metric_columns = build_views(self.con, run_dirs=self.run_dirs, jsonl_files=self.jsonl_files,
                                           parquet_files=self.parquet_files)

    # ---------------------------------------------------------------- queries
    @property
    def metric_columns(self) -> list[str]:
        """The per-case metric columns found in the runs' scores.csv files."""
        return list(self._metric_columns)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run SQL over ``traces``, ``feedback``, ``scores`` and ``runs``; a DataFrame."""
        self._sync_feedback()
        return run_query(self.con, sql, params)

    def refresh(self) -> None:
        """Pick up files created since opening (feedback.jsonl, scores.csv, new traces.jsonl)."""
        self.jsonl_files, self.parquet_files, self.read_from, self._given, self._file_source = [], [], [], {}, {}
        dirs, self.run_dirs = self.sources, []
        for src in dirs:
            self._add_source(src)
        self._build()

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM traces_raw").fetchone()[0])

    def skipped_lines(self) -> int:
        """Lines that did not parse as a trace (a line still being written, or invalid)."""
        # (fetched whole: a result left open would hold the connection)
        return int(self.con.execute("SELECT count(*) FROM traces_all WHERE trace_id IS NULL").fetchall()[0][0])

    def invalid_lines(self) -> list[tuple[Path, list[Problem]]]:
        """(file, problems) of each JSONL trace file with lines that are no valid trace (by the
        trace schema: :func:`labkit.trace.record.load_traces`); a last line still being written
        is none. Reads every line in Python: for a verdict, or once :meth:`skipped_lines` says so."""
        from labkit.trace.record import load_traces

        out: list[tuple[Path, list[Problem]]] = []
        for path in self.jsonl_files:
            try:
                load_traces(path)
            except DatasetError as e:
                out.append((path, list(e.problems)))
        return out

    def untimed_lines(self, shown: int = 5) -> list[tuple[Path, list[Problem]]]:
        """(file, problems) of each trace file holding traces with neither ts_end nor ts_start, which
        have no place in time (a verdict over time windows cannot count them): each line of a JSONL
        file, the trace ids of a Parquet archive (the first ``shown``). One query; a JSONL file is
        read in Python only when it holds some."""
        from labkit.io import loads_line
        from labkit.trace.record import iter_trace_lines

        rows = self.con.execute(
            f"SELECT source_file, count(*), list(trace_id ORDER BY trace_id)[:{int(shown)}] "
            f"FROM ({raw_select(self.jsonl_files, self.parquet_files, with_file=True)}) "
            "WHERE trace_id IS NOT NULL AND ts_end IS NULL AND ts_start IS NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
        jsonl = {str(f): f for f in self.jsonl_files}
        out: list[tuple[Path, list[Problem]]] = []
        why = "neither ts_end nor ts_start: no place in time, so no alert window can count"
        for file, n, ids in rows:
            if file not in jsonl:  # an archive: its rows have no lines
                more = f" and {n - len(ids)} more" if n > len(ids) else ""
                out.append((Path(file), [Problem(None, None, f"{n} trace(s) with {why} them: "
                                                             f"{', '.join(ids)}{more}")]))
                continue
            problems = []
            for line, raw in iter_trace_lines(jsonl[file]):
                try:
                    obj = loads_line(raw)
                except ValueError:
                    continue  # (not a trace: invalid_lines names it)
                if (isinstance(obj, Mapping) and obj.get("trace_id") is not None
                        and obj.get("ts_end") is None and obj.get("ts_start") is None):
                    problems.append(Problem(line, None, f"{why} the trace"))
            if problems:
                out.append((jsonl[file], problems))
        return out

    def refused_lines(self) -> int:
        """Rows holding a value the trace schema refuses (labkit.trace.fields), which queries read as
        null (an unknown status, an object where a text belongs, a NaN, a negative latency, a time past
        year 9999, a text where a number belongs). One count."""
        from labkit.trace.fields import SCHEMA_DIGEST

        # (an archive compacted through this schema holds none: its values were read through it)
        unchecked = [p for p in self.parquet_files if parquet_kv(self.con, p, "labkit_trace_schema") != SCHEMA_DIGEST]
        sql = f"SELECT count(*) FROM ({raw_select(self.jsonl_files, unchecked, with_refused=True)}) " \
              "WHERE trace_id IS NOT NULL AND refused"
        return int(self.con.execute(sql).fetchall()[0][0])

    def skipped_warning(self, shown: int = 3) -> str | None:
        """One line naming each trace file with lines that are no valid trace, how many, the first
        ``shown`` of them and what queries do with them (skip a line with no trace_id, read a value
        the trace schema refuses as null), and each feedback.jsonl with lines that are no valid
        feedback (left out); None when there are none. Trace lines are read in Python only when a
        count says some are skipped or hold such a value."""
        def some(problems: list[Problem], what: str) -> str:
            first = "; ".join(str(p) for p in problems[:shown]) + (" …" if len(problems) > shown else "")
            return f"{len({p.line for p in problems})} line(s) {what} ({first})"

        parts = []
        if self.jsonl_files and (self.skipped_lines() > sum(map(has_torn_tail, self.jsonl_files))
                                 or self.refused_lines()):  # (else none, or only last lines still being written)
            parts += [f"{path}: {some(problems, 'not valid traces')}: queries skip a line with no trace_id; "
                      "a field the trace schema refuses is read as null"
                      for path, problems in self.invalid_lines()]
        self._sync_feedback()
        parts += [f"{path}: {some(problems, 'not valid feedback')}: left out of the feedback table and "
                  "of traces.feedback_rating, feedback_comment and feedback_n" for path, problems in self.feedback_problems]
        return "warning: " + "; ".join(parts) if parts else None

    def summary(self) -> pd.DataFrame:
        """Per run: traces, error rate, p50/p95 latency, cost, feedback count."""
        return self.query(
            """
            SELECT run_dir, any_value(run_id) AS run_id, count(*) AS traces,
                   count(DISTINCT case_id) AS cases,
                   avg(CASE WHEN status NOT IN ('ok', 'pass') THEN 1 ELSE 0 END) AS error_rate,
                   quantile_cont(latency_ms, 0.5) AS latency_p50_ms,
                   quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
                   sum(cost_usd) AS total_cost_usd,
                   sum(feedback_n) AS feedback
            FROM traces GROUP BY run_dir ORDER BY min(ts_start) NULLS LAST, run_dir
            """
        )

    def sample(self, n: int = 3) -> list[dict[str, Any]]:
        """The first ``n`` trace records as stored (a structured log sample)."""
        df = self.query(f"SELECT * EXCLUDE (run_dir) FROM traces_raw LIMIT {int(n)}")
        out = []
        for rec in df.to_dict(orient="records"):
            clean: dict[str, Any] = {}
            for k, v in rec.items():
                if TRACE_COLUMNS.get(str(k)) == "JSON" and isinstance(v, str):
                    v = json.loads(v)
                elif hasattr(v, "tolist"):
                    v = v.tolist()
                elif isinstance(v, float) and v != v:
                    v = None
                clean[str(k)] = v
            out.append(clean)
        return out

    def failures_by_stage(self, faithfulness_threshold: float = 0.85) -> pd.DataFrame:
        """Each failed final trace attributed to its first failing stage, counted per run.

        Stages in order: guardrail (status blocked), timeout, error (other non-ok
        status), retrieval (scored ``retrieval_hit_rate`` = 0), tool (a tool call
        not ok, or ``tool_call_accuracy`` < 1), generation (faithfulness below
        the threshold, ``must_include_coverage`` < 1 or a
        ``must_not_include_violation``). Columns: run_dir, stage, failures,
        share (of the run's final traces), example_trace_ids.
        """
        cols = set(self._metric_columns) | {"faithfulness"}

        def col(name: str) -> str:
            alias = f"score_{name}" if name in TRACE_COLUMNS and name != "faithfulness" else name
            return sql_ident(alias) if name in cols else "NULL"

        sql = f"""
        WITH f AS (
            SELECT run_dir, trace_id,
              CASE
                WHEN status = 'blocked' THEN 'guardrail'
                WHEN status = 'timeout' THEN 'timeout'
                WHEN status NOT IN ('ok', 'pass') THEN 'error'
                WHEN {col('retrieval_hit_rate')} = 0 THEN 'retrieval'
                WHEN tool_error OR {col('tool_call_accuracy')} < 1 THEN 'tool'
                WHEN faithfulness < {float(faithfulness_threshold)}
                     OR {col('must_include_coverage')} < 1
                     OR {col('must_not_include_violation')} = 1 THEN 'generation'
                ELSE NULL END AS stage
            FROM traces WHERE final
        ), n AS (SELECT run_dir, count(*) AS n FROM f GROUP BY run_dir)
        SELECT f.run_dir, stage, count(*) AS failures, count(*) / any_value(n.n) AS share,
               string_agg(trace_id, ',' ORDER BY trace_id) FILTER (WHERE trace_id IS NOT NULL) AS trace_ids
        FROM f JOIN n USING (run_dir) WHERE stage IS NOT NULL
        GROUP BY f.run_dir, stage
        ORDER BY f.run_dir, failures DESC, stage
        """
        df = self.query(sql)
        df["example_trace_ids"] = df.pop("trace_ids").map(lambda s: ",".join(str(s).split(",")[:3]))
        return df

    def slowest(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` slowest traces (cache hits excluded)."""
        return self.query(
            f"""SELECT trace_id, run_dir, case_id, latency_ms, status, model, prompt_version,
                       n_retrieved, n_tool_calls, cost_usd
                FROM traces WHERE latency_ms IS NOT NULL AND NOT coalesce(from_cache, false)
                ORDER BY latency_ms DESC LIMIT {int(n)}"""
        )

    def cost_by_model(self) -> pd.DataFrame:
        """Traces, tokens, total and mean cost, p95 latency by model and prompt version."""
        return self.query(
            """SELECT coalesce(model, '(unknown)') AS model,
                      coalesce(prompt_version, '(unknown)') AS prompt_version,
                      count(*) AS traces, sum(input_tokens) AS input_tokens,
                      sum(output_tokens) AS output_tokens, sum(cost_usd) AS total_cost_usd,
                      avg(cost_usd) AS mean_cost_usd,
                      quantile_cont(latency_ms, 0.95) AS latency_p95_ms
               FROM traces GROUP BY ALL ORDER BY total_cost_usd DESC NULLS LAST, model"""
        )

    def latency_by_prompt_version(self, q: float = 0.95, raw: bool = False) -> pd.DataFrame:
        """Latency percentile ``q`` per prompt version (``raw`` skips the joins: fastest)."""
        table = "traces_raw" if raw else "traces"
        return self.query(
            f"""SELECT prompt_version, count(*) AS traces,
                       quantile_cont(latency_ms, {float(q)}) AS latency_ms
                FROM {table} GROUP BY prompt_version ORDER BY prompt_version"""
        )

    def metric_trends(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Per run (in start order), long form: run_dir, started, metric, value, n.

        Metrics: the mean of each per-case score column (final attempts), plus
        error_rate, latency_p95_ms and total_cost_usd from the traces.
        """
        wanted = list(metrics) if metrics is not None else ["faithfulness", *self._metric_columns]
        parts = []
        for m in dict.fromkeys(wanted):
            if m == "faithfulness" or m in self._metric_columns:
                alias = f"score_{m}" if (m in TRACE_COLUMNS and m != "faithfulness") else m
                parts.append(
                    f"SELECT run_dir, {sql_literal(m)} AS metric, avg({sql_ident(alias)}) AS value, "
                    f"count({sql_ident(alias)}) AS n FROM traces WHERE final GROUP BY run_dir"
                )
            elif m not in ("error_rate", "latency_p95_ms", "total_cost_usd"):
                known = ["faithfulness", *self._metric_columns, "error_rate", "latency_p95_ms", "total_cost_usd"]
                raise ConfigError(f"unknown metric {m!r}", field="metrics", known=known)
        ops = {
            "error_rate": "avg(CASE WHEN status NOT IN ('ok', 'pass') THEN 1.0 ELSE 0.0 END)",
            "latency_p95_ms": "quantile_cont(latency_ms, 0.95)",
            "total_cost_usd": "sum(cost_usd)",
        }
        for m, expr in ops.items():
            if metrics is None or m in wanted:
                parts.append(
                    f"SELECT run_dir, {sql_literal(m)} AS metric, {expr} AS value, count(*) AS n "
                    "FROM traces WHERE final GROUP BY run_dir"
                )
        body = " UNION ALL ".join(parts)
        return self.query(
            f"""WITH m AS ({body}),
                   st AS (SELECT run_dir, min(ts_start) AS started FROM traces GROUP BY run_dir)
                SELECT m.run_dir, coalesce(r.run_id, m.run_dir) AS run_id,
                       to_timestamp(st.started) AS started, m.metric, m.value, m.n
                FROM m LEFT JOIN st USING (run_dir) LEFT JOIN runs r USING (run_dir)
                WHERE m.value IS NOT NULL
                ORDER BY m.metric, st.started NULLS LAST, m.run_dir"""
        )

    def flagged_traces(
        self, comparison: Mapping[str, Any] | str | os.PathLike[str], *, only_regressed: bool = True
    ) -> pd.DataFrame:
        """The traces behind the cases a comparison flagged, baseline and variant side by side.

        ``comparison`` is the compare JSON (dict or path): its ``flipped`` list
        gives the cases; with ``only_regressed`` only pass→fail flips. Columns:
        case_id, flip, side (baseline|variant), run_id, trace_id, status,
        faithfulness, latency_ms, retrieved_chunks, output, regressed_metrics.
        """
        import pandas as pd

        comp = _load_comparison(comparison)
        flips = [f for f in comp.get("flipped") or [] if isinstance(f, Mapping) and f.get("case_id")]
        if only_regressed:
            flips = [f for f in flips if str(f.get("to")) == "fail"]
        regressed = sorted(
            m for m, v in (comp.get("metrics") or {}).items()
            if isinstance(v, Mapping) and v.get("verdict") == "regressed"
        )
        cols = ["case_id", "flip", "side", "run_id", "trace_id", "status", "faithfulness",
                "latency_ms", "retrieved_chunks", "output", "regressed_metrics"]
        if not flips:
            return pd.DataFrame(columns=cols)
        flip_df = pd.DataFrame(
            {"case_id": [str(f["case_id"]) for f in flips],
             "flip": [f"{f.get('from')}→{f.get('to')}" for f in flips]}
        )
        self.con.register("flips_df", flip_df)
        sides = {"baseline": str(comp.get("baseline") or ""), "variant": str(comp.get("variant") or "")}
        df = self.query(
            """WITH t AS (
                   SELECT t.*, [t.run_id, t.run_dir, r.run_id] AS names
                   FROM traces t LEFT JOIN runs r USING (run_dir) WHERE t.final)
               SELECT f.case_id, f.flip,
                      CASE WHEN list_contains(t.names, ?) THEN 'baseline' ELSE 'variant' END AS side,
                      coalesce(t.run_id, t.run_dir) AS run_id, t.trace_id, t.status, t.faithfulness,
                      t.latency_ms, t.retrieved_chunks, t.output
               FROM flips_df f JOIN t ON t.case_id = f.case_id
               WHERE list_contains(t.names, ?) OR list_contains(t.names, ?)
               ORDER BY f.case_id, side""",
            [sides["baseline"], sides["baseline"], sides["variant"]],
        )
        self.con.unregister("flips_df")
        df["regressed_metrics"] = ",".join(regressed)
        return df[cols]

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: keys that mark a peer tool's span or trace export (what `labkit import` reads), not a trace record
_PEER_KEYS = {"context.trace_id": "openinference", "resourceSpans": "openinference", "span_kind": "openinference",
              "traceId": "openinference", "observations": "langfuse"}


def _trace_file(path: Path) -> Path:
    """``path`` when its first record is a labkit trace record; a DatasetError naming line and
    field (and the import command) when it is something else, such as a Phoenix span export,
    which would otherwise read as no rows at all. Only the first record is read."""
    from labkit.io import iter_jsonl, loads_line

    for n, raw, complete in iter_jsonl(path):
        try:
            obj = loads_line(raw)
        except json.JSONDecodeError:
            if not complete:  # a first line still being written
                return path
            obj = None
        if isinstance(obj, dict) and "trace_id" in obj:
            return path
        fmt = next((f for k, f in _PEER_KEYS.items() if isinstance(obj, dict) and k in obj), None)
        if fmt is None and ((raw.lstrip()[:1] in ("[", "{") and obj is None) or path.suffix == ".json"):
            fmt = "FORMAT"  # a JSON document, not JSONL: an OTLP or Langfuse export
        hint = (f": it looks like a peer tool's export; import it with `labkit import {fmt} {path} --out DIR` "
                "(FORMAT openinference or langfuse) and query DIR/run") if fmt else ""
        raise DatasetError(str(path), [Problem(n, "trace_id", f"missing: not a labkit trace record{hint}")])
    return path


def _load_comparison(comparison: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any]:
    if isinstance(comparison, Mapping):
        return comparison
    p = Path(comparison)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: comparison file not found", field="comparison") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"malformed JSON: {e.msg}", path=str(p), line=e.lineno) from None
    if not isinstance(obj, Mapping):
        raise ConfigError("comparison must be a JSON object", path=str(p))
    return obj


def open_store(run_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> TraceStore:
    """A :class:`TraceStore` over run directories (or a comma-separated string of them)."""
    if isinstance(run_dirs, str) and "," in run_dirs:
        run_dirs = [s.strip() for s in run_dirs.split(",") if s.strip()]
    return TraceStore(run_dirs)
