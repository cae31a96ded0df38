"""``labkit history RUNS... [--index FILE] [--gate FILE] [--metrics LIST] [--json]``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``labkit history``."""
    p = sub.add_parser(
        "history",
        help="the history of many runs: metrics with intervals by run time, regressions flagged",
        description="Index run directories in an embedded DuckDB file (incrementally: a run whose "
        "manifest and metrics are unchanged is not read again) and print each metric with its "
        "interval by run time, prompt version, model and config hash. Runs on different dataset "
        "fingerprints are separate series; a metric that regressed from the previous run of its "
        "series (the paired statistics of labkit compare) is flagged. Exits 1 with "
        "--fail-on-regression when a metric regressed, 2 on a usage error.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (e.g. outputs/runs/*/*)")
    p.add_argument("--index", metavar="FILE", default="outputs/history/history.duckdb",
                   help="the DuckDB index file (default: %(default)s)")
    p.add_argument("--gate", metavar="FILE", default=None,
                   help="release gate whose absolute checks are recorded per run (default: none)")
    p.add_argument("--metrics", metavar="LIST", default=None,
                   help="comma-separated metrics of the table (default: task_success_rate, faithfulness, "
                   "retrieval_hit_rate, latency_p95_ms, cost_per_success)")
    p.add_argument("--seed", type=int, default=0, help="seed of the paired comparisons")
    p.add_argument("--json", action="store_true", help="print the history as JSON")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any metric regressed, or a run or pair could not be checked")
    p.set_defaults(handler=cmd_history)


def cmd_history(args: argparse.Namespace) -> int:
    from labkit.errors import ConfigError
    from labkit.history import DEFAULT_METRICS, build_history
    from labkit.metrics import METRICS
    from labkit.paths import refuse_overwriting_inputs
    from labkit.runs import run_files

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else DEFAULT_METRICS
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}", field="--metrics", known=sorted(METRICS))
    refuse_overwriting_inputs(args.index, {"RUNS": [run_files(r) for r in args.runs], "--gate": args.gate},
                              flag="--index")
    h = build_history(args.runs, index=args.index, gate=args.gate, seed=args.seed)
    if h.runs.empty:  # nothing to judge is a mistake, never a pass (--fail-on-regression would exit 0)
        skipped = h.update.skipped if h.update is not None else {}
        why = "; ".join(f"{p}: {r}" for p, r in list(skipped.items())[:3])
        raise ConfigError(f"no scored run among the {len(args.runs)} path(s) given" + (f" ({why})" if why else ""),
                          field="RUNS")
    print(h.to_json() if args.json else h.to_text(metrics))
    return 1 if args.fail_on_regression and (h.regressions or h.unchecked) else 0
