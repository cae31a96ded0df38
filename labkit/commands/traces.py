"""``labkit traces``, ``labkit feedback`` and ``labkit alerts``.

    labkit traces RUN_DIR... [--sql QUERY | --view NAME] [--format table|csv|json]
    labkit traces compact RUN_DIR... [--out FILE.parquet]
    labkit traces export RUN_DIR... --otlp URL [--capture-content] [--skip-invalid]
    labkit traces checklist RUN_DIR... [--rules FILE]
    labkit feedback TRACE_ID --run RUN_DIR --rating N [--comment TEXT] [--user NAME]
    labkit alerts --rules FILE RUN_DIR... [--format ...] [--fail-on-alert]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError

VIEWS = ("summary", "failures", "slowest", "cost", "latency", "trends", "sample", "flagged")
FORMATS = ("table", "csv", "json")


def _positive_seconds(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return v


def _row_limit(text: str) -> int:
    """A count of rows, 0 for all: a negative one was pandas' ``head(-n)``, every row but the last n."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a number of rows >= 0 (0 = all), got {text!r}")
    return v


def register(sub: Any) -> None:
    p = sub.add_parser(
        "traces",
        help="query the traces of runs (DuckDB SQL over tables traces, feedback, scores, runs)",
        description=(
            "labkit traces RUN_DIR... [--sql QUERY | --view NAME]  |  labkit traces compact RUN_DIR... "
            "[--out FILE]  |  labkit traces export RUN_DIR... --otlp URL  |  labkit traces checklist RUN_DIR..."
        ),
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories (or: compact | export | checklist, then run directories)")
    p.add_argument("--sql", help="a read-only SQL query over traces, feedback, scores, runs")
    p.add_argument("--view", choices=VIEWS, default=None, help="a canned view (default: summary)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--limit", type=_row_limit, default=50, metavar="N",
                   help="rows shown in table format (0 = all)")
    p.add_argument("--out", help="compact: one Parquet file for all runs (default: traces.parquet per run)")
    p.add_argument("--otlp", help="export: OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318")
    p.add_argument("--timeout", type=_positive_seconds, default=None, metavar="S",
                   help="export: the most seconds the whole export may take, every batch and retry "
                        "included, however slowly the endpoint answers (default 10)")
    p.add_argument("--capture-content", action="store_true", help="export: include (redacted) text content")
    p.add_argument("--skip-invalid", action="store_true",
                   help="export: leave out trace lines that are not valid traces, each named on stderr "
                        "(without it such a line stops the export before anything is sent)")
    p.add_argument("--rules", help="checklist: alert rules YAML")
    p.add_argument("--comparison", help="view flagged: compare JSON (labkit compare --json) whose flipped cases to show")
    p.set_defaults(handler=_traces)

    f = sub.add_parser("feedback", help="record a user rating (1-5) and comment against a trace")
    f.add_argument("trace_id", metavar="TRACE_ID")
    f.add_argument("--run", required=True, metavar="RUN_DIR", help="the run directory holding the trace")
    f.add_argument("--rating", required=True, type=_rating, help="1 (bad) .. 5 (good); up and down are 5 and 1")
    f.add_argument("--comment", help="free text (redacted before it is written)")
    f.add_argument("--user", help="who gave the feedback")
    f.set_defaults(handler=_feedback)

    a = sub.add_parser("alerts", help="evaluate alert rules over the traces of runs; print alert events")
    a.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    a.add_argument("--rules", required=True, help="alert rules YAML")
    a.add_argument("--format", choices=FORMATS, default="table")
    a.add_argument("--fail-on-alert", action="store_true", help="exit 1 when any alert fires")
    a.set_defaults(handler=_alerts)


def _plain(value: Any) -> Any:
    """A query cell as plain values: DuckDB gives a list as a numpy array (of arrays, of dicts),
    which the redaction would pass by; lists and dicts inside, at any depth, become lists and dicts."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _redacted(df: Any) -> Any:
    """The frame with every text value (nested ones too) through the trace redaction: what
    a query prints is held to what a run may write. Id columns keep their values."""
    import pandas as pd

    from labkit.trace.redact import Redactor

    red = Redactor()
    out = df.copy()
    texts = [i for i, c in enumerate(df.columns) if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype)]
    for i in texts:  # by position, each under its name (an id column keeps its values); the names apart
        cells = [_plain(v) for v in df.iloc[:, i].tolist()]
        (values,) = red.redact({str(df.columns[i]): cells}).values()
        out.isetitem(i, pd.Series(values, index=df.index, dtype=object))
    seen: dict[str, int] = {}
    names = []
    for c in df.columns:  # (a PIVOT names columns by the values it spreads)
        name = red.redact_text(str(c))[0]
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    out.columns = names
    return out


def _emit(df: Any, fmt: str, limit: int = 0) -> None:
    import pandas as pd

    df = _redacted(df)

    if fmt == "json":
        print(df.to_json(orient="records", date_format="iso", default_handler=str))
    elif fmt == "csv":
        df.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200,
                               "display.max_colwidth", 60):
            shown = df if not limit or len(df) <= limit else df.head(limit)
            print(shown.to_string(index=False) if len(shown) else "(no rows)")
            if len(shown) < len(df):
                print(f"... {len(df) - len(shown)} more rows (use --limit 0 or --format csv)")


#: The actions of ``labkit traces`` (a query of runs when the first word names none) and how to call each.
_ACTIONS = {"query": "a query (labkit traces RUN_DIR... --sql QUERY | --view NAME)",
            "compact": "compact (labkit traces compact RUN_DIR... --out FILE)",
            "export": "export (labkit traces export RUN_DIR... --otlp URL)",
            "checklist": "checklist (labkit traces checklist RUN_DIR... --rules FILE)"}
#: The options that only one action uses: the flag, its attribute, its action.
_ACTION_OPTIONS = (("--sql", "sql", "query"), ("--view", "view", "query"), ("--comparison", "comparison", "query"),
                   ("--out", "out", "compact"), ("--otlp", "otlp", "export"), ("--timeout", "timeout", "export"),
                   ("--capture-content", "capture_content", "export"),
                   ("--skip-invalid", "skip_invalid", "export"), ("--rules", "rules", "checklist"))


def _refuse_options_of_other_actions(args: argparse.Namespace, action: str) -> None:
    """A usage error for an option ``action`` does not use (``labkit traces RUN --otlp URL`` printed
    the summary and exited 0: nothing was exported)."""
    for flag, attr, owner in _ACTION_OPTIONS:
        if owner != action and getattr(args, attr) not in (None, False):
            raise ConfigError(f"{flag} is an option of {_ACTIONS[owner]}, not of {action}", field=flag.lstrip("-"))


def _traces(args: argparse.Namespace) -> int:
    from labkit.trace.compaction import compact
    from labkit.trace.sql import check_read_only
    from labkit.trace.store import TraceStore

    head = args.run_dirs[0]
    _refuse_options_of_other_actions(args, head if head in _ACTIONS and not Path(head).is_dir() else "query")
    if head in ("compact", "export", "checklist") and not Path(head).is_dir():
        rest = args.run_dirs[1:]
        if not rest:
            raise ConfigError(f"usage: labkit traces {head} RUN_DIR...")
        if head == "compact":
            if args.out:
                from labkit.paths import refuse_overwriting_inputs
                from labkit.runs import run_files

                refuse_overwriting_inputs(args.out, {"RUN_DIR": [run_files(r) for r in rest]}, flag="--out")
            for p in compact(rest, args.out):
                print(f"wrote {p}")
            return 0
        if head == "export":
            if not args.otlp:
                raise ConfigError("--otlp URL is required", field="otlp")
            return _export(rest, args)
        import pandas as pd

        from labkit.trace.checklist import observability_checklist

        items = observability_checklist(rest, args.rules)
        _emit(pd.DataFrame(items)[["item", "status", "evidence", "action"]], args.format)
        return 0
    if args.sql and args.view:
        raise ConfigError("give --sql or --view, not both")
    with TraceStore(args.run_dirs) as st:
        print(st.reading(), file=sys.stderr)
        if (warning := st.skipped_warning()) is not None:
            _warn(warning)
        if args.sql:
            check_read_only(args.sql)
            df = st.query(args.sql)
        else:
            view = args.view or "summary"
            if view == "summary":
                df = st.summary()
            elif view == "failures":
                df = st.failures_by_stage()
            elif view == "slowest":
                df = st.slowest(10)
            elif view == "cost":
                df = st.cost_by_model()
            elif view == "latency":
                df = st.latency_by_prompt_version()
            elif view == "trends":
                df = st.metric_trends()
            elif view == "flagged":
                if not args.comparison:
                    raise ConfigError("--view flagged needs --comparison COMPARE.json", field="comparison")
                df = st.flagged_traces(args.comparison)
            else:
                print(json.dumps(st.sample(1), indent=2, default=str))
                return 0
    _emit(df, args.format, args.limit)
    return 0


def _warn(text: str) -> None:
    """A warning on stderr, redacted as the trace redaction holds a run's files: it quotes the values
    of trace lines it names, which another system may have written unredacted."""
    from labkit.trace.redact import Redactor

    print(f"labkit: {Redactor().redact_text(text)[0]}", file=sys.stderr)


def _export(run_dirs: list[str], args: argparse.Namespace) -> int:
    """``labkit traces export``: every trace of the runs sent, or nothing. A line that is no valid
    trace is refused, naming file, line and field, before anything is sent (exit 2), unless
    ``--skip-invalid`` leaves it out: then a warning names each such line and the last line says
    how many were left out."""
    from labkit.openai_compat import scrub
    from labkit.trace.otel import ExportFailed, export_traces, run_records

    try:
        recs, skipped = run_records(run_dirs, skip_invalid=args.skip_invalid)
    except DatasetError:
        print("labkit: nothing exported: lines of the traces are not valid traces (fix them, or leave "
              "them out with --skip-invalid)", file=sys.stderr)
        raise
    for path, problems in skipped:
        _warn(f"warning: {path}: skipped {len({p.line for p in problems})} line(s) that are not valid traces: "
              f"{'; '.join(map(str, problems))}")
    try:
        n = export_traces(recs, endpoint=args.otlp, capture_content=args.capture_content,
                          timeout_s=10.0 if args.timeout is None else args.timeout)
    except ExportFailed as e:
        print(f"labkit: error: {e}", file=sys.stderr)
        return 1
    n_skipped = sum(len({p.line for p in problems}) for _, problems in skipped)
    left = f" ({n_skipped} invalid line(s) skipped, named above)" if n_skipped else ""
    print(f"exported {n} spans to {scrub(args.otlp)}{left}")  # (a URL's credentials masked)
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from labkit.trace.feedback import record_feedback

    line = record_feedback(args.run, args.trace_id, args.rating, args.comment, user=args.user)
    print(f"recorded {line['feedback_id']}: rating {line['rating']} on trace {line['trace_id']}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    import pandas as pd

    from labkit.trace.alerts import evaluate_alerts, load_rules
    from labkit.trace.store import TraceStore

    rules = load_rules(args.rules)
    with TraceStore(args.run_dirs) as st:
        for path, problems in st.invalid_lines():  # a verdict counts every line, or says which it cannot
            raise DatasetError(str(path), problems)
        frame = st.query("SELECT ts_start, ts_end, latency_ms, cost_usd, status, from_cache, model, "
                         "prompt_version, pipeline, run_dir, environment FROM traces")
        if len(frame) and bool(frame[["ts_start", "ts_end"]].isna().all(axis=1).any()):  # (then the files are read)
            for path, problems in st.untimed_lines():  # every trace in a window: one with no time fits none
                raise DatasetError(str(path), problems)
    events = evaluate_alerts(rules, frame)
    if args.format == "json":
        print(json.dumps(events, indent=2, default=str))
    elif not events:
        print(f"no alerts fired ({len(rules)} rules over {len(frame)} traces)")
    else:
        cols = ["rule", "kind", "severity", "window", "fired_at", "evaluations", "value", "threshold",
                "baseline", "n_traces"]
        df = pd.DataFrame(events)
        _emit(df[[c for c in cols if c in df]], args.format)
    return 1 if (events and args.fail_on_alert) else 0


def _rating(text: str) -> int:
    """``--rating``: an integer (checked 1 to 5 where it is recorded), or a thumb: up 5, down 1."""
    thumb = {"up": 5, "down": 1}.get(text.strip().lower())
    if thumb is not None:
        return thumb
    digits = text.strip()
    if not (digits.isascii() and digits.lstrip("-").isdigit()):  # (int() reads any script's digits, and 1_0)
        raise argparse.ArgumentTypeError(f"not a rating: {text!r} (1 to 5, or up / down)")
    return int(digits)
