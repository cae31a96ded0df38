"""``labkit import FORMAT FILE --out DIR`` and ``labkit export FORMAT --dataset D [--run R] --out FILE``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from labkit.errors import ConfigError

_FORMATS = ("ragas", "deepeval", "promptfoo", "openinference", "langfuse", "csv")


def register(sub: Any) -> None:
    i = sub.add_parser("import", help="import a Ragas, DeepEval, promptfoo, OpenInference, Langfuse or CSV file "
                                      "as a dataset (and a run directory when it carries outputs)")
    i.add_argument("format", choices=_FORMATS)
    i.add_argument("file")
    i.add_argument("--out", required=True, help="folder for dataset.jsonl and run/")
    i.add_argument("--corpus", help="corpus folder: reference and retrieved texts are matched to its chunk ids")
    i.add_argument("--threshold", type=float, help="least token-overlap share for a text-to-chunk match (0.8)")
    i.add_argument("--map", dest="mapping", help="csv: labkit_field=Column,... or a YAML file of the same")
    i.add_argument("--question-var", help="promptfoo: the test variable that holds the question")
    i.add_argument("--provider", help="promptfoo eval output: the provider id whose outputs to import")
    i.add_argument("--score", action="store_true",
                   help="score the run directory at once, on the answers as read (as labkit run scores its "
                        "own); the files on disk are redacted, so a later labkit score reads those")
    i.add_argument("--json", action="store_true", help="print the mapping summary as JSON")
    i.set_defaults(handler=_import)

    e = sub.add_parser("export", help="write a labkit dataset (and run) as a Ragas or DeepEval file")
    e.add_argument("format", choices=("ragas", "deepeval"))
    e.add_argument("--dataset", required=True, help="labkit dataset (JSONL)")
    e.add_argument("--run", help="run directory whose answers and retrieved texts to include")
    e.add_argument("--corpus", help="corpus folder: chunk ids written as their texts")
    e.add_argument("--out", required=True, help="file to write (.jsonl or .json)")
    e.set_defaults(handler=_export)


def _import(args: argparse.Namespace) -> int:
    from labkit.interop import import_file

    if args.threshold is not None and not 0.0 < args.threshold <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {args.threshold}", field="--threshold")
    opts = {k: v for k, v in (("mapping", args.mapping), ("question_var", args.question_var),
                              ("provider", args.provider)) if v is not None}
    from labkit.trace.redact import Redactor

    outcome = import_file(args.format, args.file, args.out, corpus=args.corpus, threshold=args.threshold, **opts)
    red = Redactor()  # the summary names source fields, and a field name can hold a secret
    if args.json:
        print(json.dumps(red.redact({"dataset": str(outcome.dataset_path), "run": str(outcome.run_dir)
                                     if outcome.run_dir else None, "n_cases": outcome.n_cases,
                                     "n_results": outcome.n_results, "gold_from_text": outcome.gold,
                                     **outcome.log.to_dict()}), indent=2))
    else:
        print(red.redact_text("\n".join(outcome.summary()))[0])
    if args.score and outcome.run_dir is not None:
        from labkit.scoring import score_run

        metrics = score_run(outcome.run_dir, corpus=args.corpus, results=list(outcome.results))
        print(f"scored {metrics['n_cases']} cases into {outcome.run_dir}/scores.csv and metrics.json")
    return 0


def _export(args: argparse.Namespace) -> int:
    from labkit.corpus import corpus_files
    from labkit.interop.export import export
    from labkit.paths import refuse_overwriting_inputs
    from labkit.runs import run_files

    refuse_overwriting_inputs(args.out, {"--dataset": args.dataset, "--run": args.run and run_files(args.run),
                                         "--corpus": args.corpus and corpus_files(args.corpus)}, flag="--out")
    unmatched: dict[str, int] = {}
    n = export(args.format, args.dataset, args.out, run_dir=args.run, corpus=args.corpus, unmatched=unmatched)
    print(f"wrote {n} {args.format} records to {args.out}")
    if unmatched.get("cases_without_result") or unmatched.get("results_without_case"):
        print(f"note: {unmatched['cases_without_result']} case(s) had no result in the run, "
              f"{unmatched['results_without_case']} result(s) had no case in the dataset (is it the run's dataset?)")
    return 0
