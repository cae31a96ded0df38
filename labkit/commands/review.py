"""``labkit review RUN_DIR --gate GATE``: the human review queue of a run, and recording a decision.

Lists the cases the gate's ``review.required_for`` selects, with their decision and the review
coverage; ``--decide CASE --decision approve|reject|needs_fix --reviewer NAME [--note TEXT]``
appends one review of the run's current answer to the reviews JSONL the gate reads
(labkit.gate.reviews); a rejected case is also proposed as a regression case.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

DEFAULT_REVIEWS = "data/reviews.jsonl"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "review",
        help="list a run's human review queue and coverage; --decide CASE records a review",
        description="labkit review RUN_DIR --gate GATE [--decide CASE --decision D --reviewer NAME --note TEXT]",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory whose answers are reviewed")
    p.add_argument("--gate", required=True, help="gate YAML with a review section (review.required_for)")
    p.add_argument("--reviews", default=DEFAULT_REVIEWS,
                   help=f"the reviews JSONL the gate reads (default {DEFAULT_REVIEWS})")
    p.add_argument("--proposals", help="where a rejected case is proposed as a regression case "
                                       "(default: regression_proposals.jsonl beside the reviews)")
    p.add_argument("--dataset", help="dataset of the run (default: the run's)")
    p.add_argument("--show", metavar="CASE", help="print one case in full: question, answer (unsupported "
                                                  "sentences marked), retrieved context, metrics, trace")
    p.add_argument("--decide", metavar="CASE", help="record a review of this case's current answer")
    p.add_argument("--decision", choices=("approve", "reject", "needs_fix"))
    p.add_argument("--reviewer", help="who reviewed (recorded with the decision)")
    p.add_argument("--note", default="", help="why (redacted before it is written)")
    p.set_defaults(handler=_review)


def _review(args: argparse.Namespace) -> int:
    from labkit.gate.review_queue import build_queue
    from labkit.gate.reviews import review_redactor
    from labkit.runs import RunDir
    from labkit.text import terminal_safe

    if args.decide:
        if not args.decision or not args.reviewer:
            raise ConfigError("--decide CASE needs --decision approve|reject|needs_fix and --reviewer NAME",
                              field="decision" if not args.decision else "reviewer")
        _decide(args)
    elif args.decision or args.reviewer:
        raise ConfigError("--decision and --reviewer record a review: give the case with --decide CASE",
                          field="decide")
    q = build_queue(args.run_dir, args.gate, reviews=args.reviews, dataset=args.dataset)
    lines = _queue_lines(q)
    if args.show:
        lines += _shown(q.item(args.show))
    # what is printed is masked as the reviews and proposals written are: the questions come
    # from the dataset and the contexts may from the corpus, as they are (a CI log keeps stdout)
    print(terminal_safe(review_redactor(RunDir(args.run_dir).redaction).redact_text("\n".join(lines))[0]))
    return 0


def _queue_lines(q: Any) -> list[str]:
    cov = q.coverage
    lines = [f"review queue of run {q.run_id}: {len(q.items)} {q.where} case(s); "
             f"coverage {len(cov.approved)}/{len(cov.need)} approved ({cov.share:.0%}) in {q.reviews_path}"]
    for it in q.items:
        lines.append(f"  {it.case_id:<16} {it.decision:<28} {it.judgement}; {it.case.question[:70]}")
    return lines + [f"  note: {n}" for n in q.notes]


def _shown(it: Any) -> list[str]:
    from labkit.display import fmt_value, shorten, unit_of

    lines = [f"\n{it.case_id} ({it.decision})", f"question: {it.case.question}",
             f"answer (status {it.status}, sha256 {it.answer_sha256[:12]}): {it.answer or '(none)'}"]
    if it.unjudged:
        lines.append(f"  {it.judgement}: faithfulness unmeasured")
    else:
        lines += [f"  {'supported  ' if ok else 'UNSUPPORTED'} | {s}" for s, ok in it.claims]
    lines.append("retrieved context:")
    lines += [f"  {cid}: {shorten(' '.join(text.split()), 160)}" for cid, text in it.contexts]
    lines.append("metrics: " + ", ".join(f"{k} {fmt_value(k, v)}" + (" (0–1)" if unit_of(k) == "0–1" else "")
                                         for k, v in it.metrics.items()))
    lines.append("trace:")
    lines += [f"  {t.get('operation')} {t.get('model') or ''} {t.get('status')} "
              f"{fmt_value('latency_ms', t.get('latency_ms'))} {t.get('trace_id')}" for t in it.trace]
    return lines


def _decide(args: argparse.Namespace) -> None:
    from labkit.gate.review_queue import build_queue
    from labkit.gate.reviews import proposals_path, propose_regression_case, record_review

    out = proposals_path(args.reviews, args.proposals)  # (refused before anything is written)
    _refuse_appending_to_inputs(args, out)
    q = build_queue(args.run_dir, args.gate, reviews=args.reviews, dataset=args.dataset)
    it = q.item(args.decide)
    rec = record_review(args.reviews, args.run_dir, it.case_id, decision=args.decision, reviewer=args.reviewer,
                        note=args.note)
    print(f"recorded {rec['decision']} of {it.case_id} (answer {rec['answer_sha256'][:12]}) by "
          f"{rec['reviewer']} in {args.reviews}")
    if rec["decision"] == "reject":
        from labkit.runs import RunDir

        new = propose_regression_case(out, it.case, rec, redactor=RunDir(args.run_dir).redaction)
        print(f"proposed regression case reg-review-{it.case_id} in {out}" if new
              else f"reg-review-{it.case_id} is proposed already in {out}")


def _refuse_appending_to_inputs(args: argparse.Namespace, proposals: Path) -> None:
    """A decision is appended to the reviews file and may be to the proposals file: neither may be
    a file the command reads (the run's files, the gate, the dataset; the reviews, for the proposals)."""
    from labkit.paths import refuse_overwriting_inputs
    from labkit.rundata import dataset_input
    from labkit.runs import run_files

    inputs: dict[str, Any] = {"RUN_DIR": run_files(args.run_dir), "--gate": args.gate,
                              "--dataset": dataset_input(args.run_dir, args.dataset)}
    refuse_overwriting_inputs(args.reviews, inputs, flag="--reviews", verb="write into")
    refuse_overwriting_inputs(proposals, inputs, flag="--proposals", verb="write into")
