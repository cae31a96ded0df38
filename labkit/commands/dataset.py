"""``labkit dataset validate|stats|build``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("dataset", help="validate, describe or build eval datasets (JSONL)")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    v = dsub.add_parser("validate", help="validate a JSONL dataset; exit 2 listing every bad line")
    v.add_argument("path")
    v.add_argument("--corpus", metavar="DIR", help="also check the gold against this corpus: every gold chunk and "
                   "document there, must_include phrases in the gold text (docs/dataset.md)")
    v.set_defaults(handler=_validate)

    s = dsub.add_parser("stats", help="counts by category, risk and kind")
    s.add_argument("path")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=_stats)

    b = dsub.add_parser("build", help="generate candidate cases from a corpus, for a human to curate")
    b.add_argument("--corpus", required=True, help="folder of markdown documents")
    b.add_argument("--out", required=True, help="JSONL file to write")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--per-doc", type=int, default=3, help="representative questions per document")
    b.set_defaults(handler=_build)


def _validate(args: argparse.Namespace) -> int:
    from labkit.cases import load_cases
    from labkit.errors import DatasetError
    from labkit.runs import refuse_secret_ids

    try:
        ds = load_cases(args.path)
    except DatasetError as e:  # every bad line in one error: the ids redaction hides too
        raise DatasetError(e.path, _with_secret_ids(args.path, e.problems)) from None
    refuse_secret_ids(ds, None)  # (as a run with the default redaction refuses them)
    if args.corpus:
        _check_gold(args.path, ds, args.corpus)
    print(f"{args.path}: {len(ds)} valid cases" + (f", gold found in {args.corpus}" if args.corpus else "")
          + f", fingerprint {ds.fingerprint[:16]}")
    return 0


def _with_secret_ids(path: str, problems: list[Any]) -> list[Any]:
    """``problems`` and a problem for each id of the file's readable lines that redaction would
    change (:func:`labkit.runs.secret_id_problems`), in line order."""
    from labkit.io import jsonl_objects
    from labkit.runs import secret_id_problems

    try:
        rows = [(n, obj["id"]) for n, obj in jsonl_objects(path, []) if isinstance(obj.get("id"), str)]
    except OSError:
        return problems
    found = {(p.line, p.field) for p in problems}
    extra = [p for p in secret_id_problems([cid for _, cid in rows], lambda i: rows[i][0], "id", None)
             if (p.line, p.field) not in found]
    return sorted([*problems, *extra], key=lambda p: p.line or 0)


def _check_gold(path: str, ds: Any, corpus_dir: str) -> None:
    """A DatasetError listing each gold problem (labkit.corpus.gold_problems) at its case's line."""
    from labkit.corpus import Corpus, gold_problems
    from labkit.errors import DatasetError, Problem

    problems = gold_problems(list(ds), Corpus.load(corpus_dir))
    if problems:
        raise DatasetError(path, [Problem(ds.lines[i], field, reason) for i, field, reason in problems])


def _stats(args: argparse.Namespace) -> int:
    from labkit.cases import dataset_stats, load_cases

    st = dataset_stats(load_cases(args.path))
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"{args.path}: {st['n_cases']} cases, fingerprint {st['fingerprint'][:16]}")
    for key in ("by_kind", "by_risk", "by_category"):
        print(f"  {key[3:]:<9} " + ", ".join(f"{k}={v}" for k, v in st[key].items()))
    for key in ("with_gold", "with_expected_chunks", "with_must_include", "with_must_not_include",
                "with_expected_tools"):
        print(f"  {key:<22} {st[key]}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from labkit.build import build_candidates
    from labkit.cases import save_cases
    from labkit.corpus import corpus_files
    from labkit.paths import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.out, {"--corpus": corpus_files(args.corpus)}, flag="--out")
    ds = build_candidates(args.corpus, seed=args.seed, n_per_doc=args.per_doc)
    save_cases(ds, args.out)
    print(f"wrote {len(ds)} candidate cases to {args.out} (seed {args.seed}); curate them before use")
    return 0
