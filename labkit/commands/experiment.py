"""``labkit experiment TRACES... --arm-by prompt_version|model|config_hash``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``labkit experiment``."""
    p = sub.add_parser(
        "experiment",
        help="the online experiment after deploy: a canary's arms from traces and feedback, a sequential test",
        description="Analyse a rollout's canary from production traces and user feedback: per-arm success "
        "rate, user rating, error rate, latency and cost with 95% intervals; an mSPRT on the success-rate "
        "difference that stays valid however often it is looked at (every --look-hours); and the "
        "continue / stop / promote / roll back decision the canary stage of the rollout file supports "
        "(docs/experiment.md). Exits 1 with --fail-on-rollback when the decision is roll back, 2 on a "
        "usage error.",
    )
    p.add_argument("traces", nargs="+", metavar="TRACES", help="run directories or traces.jsonl files "
                   "(feedback.jsonl beside them is read too)")
    p.add_argument("--arm-by", required=True, choices=("prompt_version", "model", "config_hash"),
                   help="the trace field that names each request's arm")
    p.add_argument("--control", default=None, help="the control arm (default: the arm with the most requests)")
    p.add_argument("--candidate", default=None, help="the candidate arm (default: the other arm)")
    p.add_argument("--rollout", default="data/rollout.yaml", help="rollout plan (default: %(default)s)")
    p.add_argument("--slo", default="data/slo.yaml", help="SLOs its burn-rate triggers name (default: %(default)s)")
    p.add_argument("--stage", default=None, help="the rollout stage (default: the first with 0 < traffic < 100)")
    p.add_argument("--environment", default=None, help="only traces of this environment (e.g. canary)")
    p.add_argument("--alpha", type=float, default=0.05, help="error rate of the sequential test (default: 0.05)")
    p.add_argument("--tau", type=float, default=0.05,
                   help="mixture scale: the success-rate difference the test is tuned to (default: 0.05)")
    p.add_argument("--margin", type=float, default=0.02,
                   help="promote when the candidate is not worse than this (default: 0.02)")
    p.add_argument("--look-hours", type=float, default=1.0, help="hours between looks (default: 1)")
    p.add_argument("--max-hours", type=float, default=72.0, help="horizon: stop undecided after (default: 72)")
    p.add_argument("--json", action="store_true", help="print the experiment as JSON")
    p.add_argument("--fail-on-rollback", action="store_true", help="exit 1 when the decision is roll back")
    p.set_defaults(handler=cmd_experiment)


def cmd_experiment(args: argparse.Namespace) -> int:
    from labkit.experiment import analyse_experiment
    from labkit.experiment.sequential import check_test_options

    check_test_options(alpha=args.alpha, tau=args.tau)
    e = analyse_experiment(
        args.traces, arm_by=args.arm_by, control=args.control, candidate=args.candidate, rollout=args.rollout,
        slo=args.slo, stage=args.stage, environment=args.environment, alpha=args.alpha, tau=args.tau,
        margin=args.margin, look_hours=args.look_hours, max_hours=args.max_hours,
    )
    print(e.to_json() if args.json else e.to_text())
    return 1 if args.fail_on_rollback and e.action == "roll back" else 0
