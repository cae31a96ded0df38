"""``labkit run`` and ``labkit score``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError


def register(sub: Any) -> None:
    r = sub.add_parser("run", help="run a dataset through a pipeline into a run directory")
    r.add_argument("--dataset", help="eval dataset (JSONL)")
    r.add_argument("--pipeline", help="pipeline YAML config or import path package.module:callable")
    r.add_argument("--corpus", help="corpus folder (overrides the pipeline config's)")
    r.add_argument("--out", help="run directory to write")
    r.add_argument("--run-id", help="run id (default: the --out folder's name)")
    r.add_argument("--gate", help="gate YAML whose lock the manifest records (pre-registration)")
    r.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: skip finished cases")
    r.add_argument("--concurrency", type=int, help="max cases in flight (1 to 10,000)")
    r.add_argument("--rate-limit", type=float, help="max requests per second (token bucket; at least 0.001)")
    r.add_argument("--timeout", type=float, help="per-case timeout in seconds")
    r.add_argument("--retries", type=int, help="retries for retryable errors")
    r.add_argument("--cache", metavar="DIR", help="on-disk result cache folder (opt-in)")
    r.add_argument("--executor", choices=["local", "dask"], help="where cases run")
    r.add_argument("--scheduler", help="Dask scheduler address (with --executor dask)")
    r.add_argument("--batch-size", type=int, help="cases per Dask task (with --executor dask)")
    r.add_argument("--redact-types", metavar="T1,T2", help="built-in redaction types to apply "
                   "(API_KEY,TOKEN,EMAIL,CARD,IP,PHONE ...; default all; at least one: "
                   "--no-redaction turns redaction off)")
    r.add_argument("--redact-pattern", action="append", metavar="NAME=REGEX",
                   help="extra redaction pattern, replaced by [NAME] (repeatable)")
    r.add_argument("--no-content", action="store_true", help="write ids, hashes, lengths and scores, not text")
    r.add_argument("--no-redaction", action="store_true", help="no pattern redaction (content is written as is)")
    r.add_argument("--max-output-chars", type=int, help="cut every string of a result to this many characters")
    r.add_argument("--k", type=int, help="cut-off for the retrieval metrics (default 5; with --resume: the "
                   "manifest's score_k)")
    r.add_argument("--no-score", action="store_true", help="skip scores.csv and metrics.json")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(handler=_run)

    s = sub.add_parser("score", help="recompute scores.csv and metrics.json of a run directory")
    s.add_argument("run_dir")
    s.add_argument("--dataset", help="dataset (default: the run manifest's)")
    s.add_argument("--corpus", help="corpus folder for chunk text (default: the pipeline config's)")
    s.add_argument("--k", type=int, default=None,
                   help="cut-off for the retrieval metrics (default: the run's, else 5)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    s.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    s.add_argument("--judge", metavar="NAME|FILE",
                   help="the judge: a name (lexical, the default) or a YAML file with its config, e.g. "
                        "{type: embedding, base_url: ..., model: ...} (docs/metrics.md)")
    s.set_defaults(handler=_score)


def _runner_config(args: argparse.Namespace) -> dict[str, Any]:
    from labkit.runner.config import RunnerConfig
    from labkit.runner.redaction import redaction_from_flags

    overrides = {
        "concurrency": args.concurrency,
        "rate_limit": args.rate_limit,
        "timeout_s": args.timeout,
        "retries": args.retries,
        "cache_dir": args.cache,
        "executor": args.executor,
        "scheduler": args.scheduler,
        "batch_size": args.batch_size,
        "max_output_chars": args.max_output_chars,
        "progress": False if args.quiet else None,
        "redaction": redaction_from_flags(types=args.redact_types, patterns=args.redact_pattern,
                                          no_content=args.no_content, disabled=args.no_redaction),
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    try:  # (checked here, so an error names the flag, not the pipeline file the run also reads)
        RunnerConfig.from_dict(given)
    except ConfigError as e:
        key = (e.field or "").removeprefix("runner.").split(".")[0]
        raise ConfigError(e.message, field=_FLAGS.get(key, e.field), known=e.known) from None
    return given


#: The runner option each flag of ``labkit run`` sets (the redaction flags set ``redaction``).
_FLAGS = {"concurrency": "--concurrency", "rate_limit": "--rate-limit", "timeout_s": "--timeout",
          "retries": "--retries", "cache_dir": "--cache", "executor": "--executor", "scheduler": "--scheduler",
          "batch_size": "--batch-size", "max_output_chars": "--max-output-chars",
          "redaction": "--redact-types/--redact-pattern"}


def _run(args: argparse.Namespace) -> int:
    from labkit import runner
    from labkit.scoring import DEFAULT_K

    overrides = _runner_config(args)
    if args.resume:
        pipeline = _check_resume_flags(args)
        rd = runner.resume(args.resume, overrides=overrides, pipeline=pipeline, score=not args.no_score, k=args.k)
        from labkit.runner.resuming import changed_settings

        changed = changed_settings(rd.manifest)
        if changed:
            print(f"labkit: note: this resume ran with other settings than the run before it ({'; '.join(changed)}); "
                  "the manifest keeps the earlier ones (runner_before)", file=sys.stderr)
    else:
        missing = [f"--{n}" for n in ("dataset", "pipeline", "out") if not getattr(args, n)]
        if missing:
            raise ConfigError(f"missing {', '.join(missing)} (or use --resume RUN_DIR)")
        _refuse_inputs_in_run_dir(args)
        rd = runner.run(args.dataset, args.pipeline, args.out, overrides=overrides, run_id=args.run_id,
                        corpus_dir=args.corpus, gate_path=args.gate, score=not args.no_score,
                        k=DEFAULT_K if args.k is None else args.k)
    print(rd.summary())
    if not args.no_score and (rd.manifest.get("runner") or {}).get("mlflow"):  # the mlflow: run option
        from labkit.commands.mlflow import log_after_run

        if log_after_run(rd.path, args.pipeline or (rd.manifest.get("pipeline") or {}).get("path")):
            return 1
    results = rd.results()
    failed = [r for r in results if r["status"] in ("error", "timeout")]
    if results and len(failed) == len(results):
        kinds = sorted({str(r.get("error_type") or r["status"]) for r in failed})
        first = " ".join(str(failed[0].get("error")).split())[:300]
        print(f"labkit: error: every case failed ({len(failed)} of {len(results)}: {', '.join(kinds)}); "
              f"first error (case {failed[0]['case_id']}): {first}", file=sys.stderr)
        return 1
    return 0


def _same_path(given: str, recorded: Any) -> bool:
    return isinstance(recorded, str) and Path(given).resolve() == Path(recorded).resolve()


def _refuse_inputs_in_run_dir(args: argparse.Namespace) -> None:
    """No file a fresh run writes in ``--out`` may be one of its inputs (the snapshot of the
    cases, cases.jsonl, replaced a dataset of that name)."""
    from labkit.corpus import corpus_files
    from labkit.paths import refuse_overwriting_inputs
    from labkit.runs import run_files

    inputs = {"--dataset": args.dataset, "--pipeline": args.pipeline, "--gate": args.gate,
              "--corpus": args.corpus and corpus_files(args.corpus)}
    for out in run_files(args.out).files:
        refuse_overwriting_inputs(out, inputs, flag="--out")


def _check_resume_flags(args: argparse.Namespace) -> str | None:
    """``--resume`` takes the dataset, pipeline, corpus and k from the manifest: a flag that
    names another one is an error, not ignored. Returns the ``--pipeline`` to pass on
    when the run's own pipeline was an in-memory callable (the manifest has no spec)."""
    from labkit.runner.manifest import resume_k
    from labkit.runs import RunDir

    rd = RunDir(args.resume)
    man = rd.manifest
    if not man:
        return None  # resume says what is wrong
    where = str(rd.manifest_path)
    resume_k(man, args.k, flag="--k", where=where)
    ds = (man.get("dataset") or {}).get("path") or rd.dataset_path()
    if args.dataset and not _same_path(args.dataset, ds):
        raise ConfigError(f"--dataset {args.dataset} is not the run's dataset {ds}; --resume takes it from the "
                          "manifest (leave --dataset out)", path=where, field="dataset.path")
    pm = man.get("pipeline") or {}
    recorded = pm.get("spec") or pm.get("path")
    if args.pipeline and recorded is not None:
        is_file = Path(args.pipeline).is_file() or args.pipeline.endswith((".yaml", ".yml"))
        if not (_same_path(args.pipeline, recorded) if is_file else args.pipeline == recorded):
            raise ConfigError(f"--pipeline {args.pipeline} is not the run's pipeline {recorded}; --resume takes it "
                              "from the manifest (leave --pipeline out)", path=where, field="pipeline.spec")
    if args.corpus and not _same_path(args.corpus, pm.get("corpus_dir")):
        raise ConfigError(f"--corpus {args.corpus} is not the run's corpus {pm.get('corpus_dir')}; --resume takes "
                          "it from the manifest (leave --corpus out)", path=where, field="pipeline.corpus_dir")
    return args.pipeline if recorded is None else None


def _judge(spec: str | None) -> Any:
    """``--judge``: None (the lexical default), a judge name, or a YAML/JSON file holding its config."""
    if spec is None:
        return None
    from labkit.judges import get_judge

    if Path(spec).suffix.lower() in (".yaml", ".yml", ".json") or Path(spec).is_file():
        from labkit.config import read_yaml

        cfg = read_yaml(spec, what="judge file")
        try:
            return get_judge(cfg)
        except ConfigError as e:  # (named at the file that holds the option)
            if e.path is not None:
                raise
            raise ConfigError(e.message, path=spec, field=e.field, known=e.known) from None
    return get_judge(spec)


def _score(args: argparse.Namespace) -> int:
    from labkit.runner.lock import RunLock
    from labkit.runs import RunDir
    from labkit.scoring import score_run

    rd = RunDir(args.run_dir)
    judge = _judge(args.judge)
    opts = {"corpus": args.corpus, "k": args.k, "seed": args.seed, "n_boot": args.n_boot, "judge": judge}
    if rd.path.is_dir():  # it writes scores.csv, metrics.json and the manifest: one writer at a time
        with RunLock(rd.path):
            m = score_run(rd, args.dataset, **opts)
    else:
        m = score_run(rd, args.dataset, **opts)
    total = m["n_cases"] + m.get("n_missing", 0)
    gone = f" ({m['n_missing']} without a result line: missing)" if m.get("n_missing") else ""
    print(f"scored {m['n_cases']} of {total} cases{gone} into {rd.path}/scores.csv and metrics.json")
    for name, e in m["metrics"].items():
        val = "unmeasured" if e["value"] is None else f"{e['value']:.4g}"
        print(f"  {e['stage']:<10} {name:<28} {val:>12}  (n={e['n']}, unmeasured={e['unmeasured']}, "
              f"missing={e.get('n_missing', 0)})")
    return 0
