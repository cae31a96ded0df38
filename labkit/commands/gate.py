"""``labkit gate --config GATE RUN_DIR`` and ``labkit gate lock GATE``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from labkit.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "gate",
        help="judge a run against a gate (exit 0 pass, 1 fail); `gate lock GATE` pre-registers it",
        description="labkit gate --config GATE RUN_DIR [options]  |  labkit gate lock GATE",
        usage="labkit gate --config GATE RUN_DIR [options] | labkit gate lock GATE",  # (one run: not RUN_DIR ...)
    )
    p.add_argument("target", nargs="+", metavar="RUN_DIR", help="run directory (or: lock GATE)")
    p.add_argument("--config", help="gate YAML")
    p.add_argument("--baseline", help="baseline run directory for regression checks (another run)")
    p.add_argument("--thresholds-only", action="store_true",
                   help="judge a reference run on what its own metrics show: no regression checks "
                        "(the report says so); not a release verdict")
    p.add_argument("--reviews", help="human review records (JSONL written by `labkit review`; a review counts for the "
                        "answer it judged)")
    p.add_argument("--dataset", help="dataset for review coverage (default: the run's)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the regression checks' paired bootstrap: the gate's (seed:, default 0); "
                        "another fails the gate (its intervals are the ones declared)")
    p.add_argument("--json", action="store_true", help="print the per-check report as JSON")
    p.add_argument("--junit", metavar="PATH", help="write a JUnit XML report (one test case per check)")
    p.add_argument("--markdown", metavar="PATH", help="write a markdown summary table")
    p.set_defaults(handler=_gate)


def _gate(args: argparse.Namespace) -> int:
    from labkit.gate import Gate, lock_gate
    from labkit.io import atomic_write_text
    from labkit.paths import refuse_overwriting_inputs, refuse_shared_outputs

    if args.target[0] == "lock":
        if len(args.target) != 2:
            raise ConfigError("usage: labkit gate lock GATE")
        info = lock_gate(args.target[1])
        print(f"locked {info['gate']}: sha256 {info['hash'][:16]} at {info['locked_at']}")
        return 0
    if len(args.target) != 1:
        raise ConfigError("give exactly one RUN_DIR")
    if not args.config:
        raise ConfigError("--config GATE is required")
    if args.seed is not None:
        from labkit.stats import check_options

        check_options(seed=args.seed)
    gate = Gate.load(args.config)
    if args.thresholds_only:
        if args.baseline:
            raise ConfigError("--thresholds-only judges no regression checks: drop --baseline")
        gate = gate.thresholds_only()
    if args.baseline and not gate.regression:
        raise ConfigError("the gate has no regression checks, so --baseline would be ignored: add a "
                          "`regression:` section or drop --baseline", path=args.config, field="regression")
    for flag in ("--junit", "--markdown"):  # before anything is judged or written
        out = getattr(args, flag[2:])
        if out:
            refuse_overwriting_inputs(out, _inputs(args), flag=flag)
    refuse_shared_outputs({"--junit": args.junit or None, "--markdown": args.markdown or None})
    rep = gate.evaluate(args.target[0], baseline=args.baseline, reviews=args.reviews,
                        dataset=args.dataset, seed=args.seed)
    if args.junit:
        atomic_write_text(args.junit, rep.to_junit())
    if args.markdown:
        atomic_write_text(args.markdown, rep.to_markdown())
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep.summary())
    return 0 if rep.passed else 1


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """What ``labkit gate`` reads, by the flag that gave it: a report written over one is refused
    (labkit.paths.refuse_overwriting_inputs)."""
    from labkit.prereg import lock_path
    from labkit.rundata import dataset_input
    from labkit.runs import run_files

    return {"--config": [args.config, lock_path(args.config)], "RUN_DIR": run_files(args.target[0]),
            "--baseline": args.baseline and run_files(args.baseline), "--reviews": args.reviews,
            "--dataset": dataset_input(args.target[0], args.dataset)}
