"""``labkit report``: execute the notebooks and export offline HTML reports."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, require_extra


def register(subparsers: Any) -> None:
    """Add the ``report`` command to the ``labkit`` parser."""
    p = subparsers.add_parser(
        "report",
        help="execute the notebooks with papermill and export offline HTML reports",
        description=(
            "Execute notebooks/NN_*.ipynb (two at a time), export each to one self-contained "
            "HTML file and write index.html with every report's verdict. Exits 1 when a "
            "notebook fails (naming the notebook, cell and error) or, with --fail-on-verdict, "
            "when a report's verdict is FAIL; 2 on a usage or config error."
        ),
    )
    p.add_argument("--params", metavar="FILE", help="YAML/JSON parameters: {all: {...}, <notebook>: {...}}")
    p.add_argument(
        "--only",
        metavar="NAMES",
        action="append",
        help="notebooks to run, by name or NN prefix, comma-separated (repeatable)",
    )
    p.add_argument("--out", metavar="DIR", default="outputs/reports", help="report folder (default: %(default)s)")
    p.add_argument("--notebooks", metavar="DIR", default="notebooks", help="notebook folder (default: %(default)s)")
    p.add_argument("--timeout", metavar="S", type=float, default=600.0, help="per-notebook timeout in seconds")
    p.add_argument("--workers", metavar="N", type=int, default=2, help="notebooks run at once (default: 2)")
    p.add_argument("--pdf", action="store_true",
                   help="also print each report to <name>.pdf beside its HTML (headless Chromium)")
    p.add_argument("--fail-on-verdict", action="store_true",
                   help="exit 1 when any report's verdict is FAIL (for a CI job that gates a build)")
    p.set_defaults(func=run_report, handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    require_extra("lab", "labkit report")
    from labkit.report.engine import build_reports
    from labkit.report.params import load_params

    if args.timeout <= 0:
        raise ConfigError("must be a positive number of seconds", field="--timeout")
    if args.workers < 1:
        raise ConfigError("must be at least 1", field="--workers")
    from labkit.paths import FolderInput, refuse_overwriting_inputs
    from labkit.report.engine import discover

    notebooks = discover(args.notebooks)
    for nb in notebooks:  # (each executed copy is written to --out/executed/<its name>)
        refuse_overwriting_inputs(Path(args.out) / "executed" / nb.name,
                                  {"--notebooks": FolderInput(args.notebooks, tuple(notebooks))}, flag="--out")
    params = load_params(args.params) if args.params else None
    t0 = time.perf_counter()
    index = build_reports(
        notebooks_dir=args.notebooks,
        out_dir=args.out,
        params=params,
        only=args.only,
        timeout_s=args.timeout,
        workers=args.workers,
        pdf=args.pdf,
    )
    print(index.summary())
    if args.pdf:
        pdfs = [e.html.with_suffix(".pdf") for e in index.entries if e.html is not None]
        print(f"pdf: {sum(p.is_file() for p in pdfs)} file(s) beside the HTML")
    for failure in index.failures:
        print(f"labkit report: notebook failed: {failure}", file=sys.stderr)
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    if not index.ok:
        return 1
    failed = [e.name for e in index.entries if e.verdict is not None and e.verdict.status == "fail"]
    silent = [e.name for e in index.entries if e.verdict is None]
    if args.fail_on_verdict and silent:
        print(f"labkit report: no verdict published by {', '.join(silent)}: --fail-on-verdict judges only "
              "the verdicts notebooks publish", file=sys.stderr)
    if args.fail_on_verdict and failed:
        print(f"labkit report: verdict FAIL in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
