"""``labkit compare BASELINE_RUN VARIANT_RUN [--json] [--align]``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``labkit compare BASELINE VARIANT [--json] [--align] [--seed N]``."""
    p = sub.add_parser(
        "compare",
        help="compare a variant run with a baseline run, paired by case id",
        description="Paired comparison of two scored runs: deltas with bootstrap intervals, "
        "Holm-adjusted p-values, verdicts, and the cases that flipped.",
    )
    p.add_argument("baseline", help="baseline run directory (with scores.csv)")
    p.add_argument("variant", help="variant run directory (with scores.csv)")
    p.add_argument("--json", action="store_true", help="print the compare JSON")
    p.add_argument("--align", action="store_true", help="pair the shared case ids of runs on different datasets")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutation tests")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm adjustment")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any metric regressed")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """Run the comparison and print it; 0, or 1 with --fail-on-regression and a regression."""
    from labkit.compare import compare_runs

    cmp = compare_runs(
        args.baseline, args.variant, align=bool(getattr(args, "align", False)),
        seed=int(getattr(args, "seed", 0)), n_boot=int(getattr(args, "n_boot", 2000)),
        alpha=float(getattr(args, "alpha", 0.05)),
    )
    print(cmp.to_json() if getattr(args, "json", False) else cmp.to_text())
    return 1 if getattr(args, "fail_on_regression", False) and cmp.regressed else 0
