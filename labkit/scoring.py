"""Scoring a run directory: results.jsonl (+ dataset, corpus, judge) -> scores.csv and metrics.json.

The run directory (labkit.runs) only stores and reads; this module computes:
it pairs the results with the dataset, scores every case (labkit.metrics),
aggregates, writes both files atomically and records the scoring parameters
in the manifest, with the sha256 of the results.jsonl it scored and of the
scores.csv and metrics.json it wrote (``scoring.sha256``): :func:`verify_scored`
is how the gate and compare know they read what scoring wrote
(docs/formats.md, "The scoring record").
"""

from __future__ import annotations

import gc
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.cases import Dataset, EvalCase
from labkit.errors import DatasetError, Problem, RunDirError
from labkit.io import atomic_write_text, iter_jsonl
from labkit.runs import METRICS, RESULTS, SCORES, RunDir, csv_safe_frame, load_dataset

__all__ = ["SCORED_FILES", "file_hash", "resolve_corpus", "score_run", "verify_scored"]

#: The files of a run whose sha256 scoring records: what it read, and what it wrote.
SCORED_FILES = (RESULTS, SCORES, METRICS)


def file_hash(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_scored(run_dir: str | os.PathLike[str] | RunDir) -> str:
    """Check a run's files against the hashes its scoring recorded.

    Returns ``""`` when they match, and a note when the run records no hashes (scored
    before they were recorded, or never scored by labkit): such a run can still be judged,
    but not verified. Raises RunDirError when a file differs from its recorded hash.
    """
    rd = RunDir(run_dir)
    sc = rd.manifest.get("scoring")
    rec = sc.get("sha256") if isinstance(sc, Mapping) else None
    if not isinstance(rec, Mapping):
        return (f"run {rd.path} records no hashes of its scored files (scored before labkit recorded "
                f"them): its scores.csv and metrics.json cannot be verified; rescore with labkit score {rd.path}")
    changed = [name for name in SCORED_FILES
               if not (rd.path / name).is_file() or file_hash(rd.path / name) != rec.get(name)]
    if changed:
        raise RunDirError(f"{rd.path}: run files changed after scoring: rescore with labkit score {rd.path} "
                          f"({', '.join(changed)} differ from the hashes scoring recorded)")
    return ""


def resolve_corpus(corpus: Any, rd: RunDir) -> Any:
    """A Corpus from an argument (Corpus or folder) or the manifest's pipeline config."""
    from labkit.corpus import Corpus

    if corpus is not None:
        return corpus if not isinstance(corpus, (str, os.PathLike)) else Corpus.load(corpus)
    man = rd.manifest
    pipe = man.get("pipeline") or {}
    cfg = pipe.get("config") if isinstance(pipe, dict) else None
    explicit = pipe.get("corpus_dir") if isinstance(pipe, dict) else None
    cand = explicit or (cfg.get("corpus") if isinstance(cfg, dict) else None)
    if not isinstance(cand, str):
        return None
    bases: list[Path] = []
    spec_path = pipe.get("path") if isinstance(pipe, dict) else None
    if isinstance(spec_path, str):
        bases.append(Path(spec_path).parent)
    bases.append(Path.cwd())
    tries = [Path(cand)] if Path(cand).is_absolute() else [b / cand for b in bases]
    for p in tries:
        if p.is_dir():
            size = cfg.get("chunk_size") if isinstance(cfg, dict) else None
            return Corpus.load(p, chunk_size=size) if isinstance(size, int) else Corpus.load(p)
    warnings.warn(
        f"corpus {cand!r} named by the run's pipeline config was not found; "
        "chunks without text are scored without context",
        stacklevel=3,
    )
    return None


def _judge_info(judge: Any) -> Any:
    """What the manifest records of the judge: its ``describe()`` (type, model, prompt
    versions and hashes), the default lexical judge's when none was given."""
    if isinstance(judge, (str, dict)):
        return judge
    if judge is None:
        from labkit.judges import LexicalJudge

        judge = LexicalJudge()
    describe = getattr(judge, "describe", None)
    return describe() if callable(describe) else type(judge).__name__


def _redacted_slices(metrics: dict[str, Any]) -> dict[str, Any]:
    """Slice keys come from the dataset's tag values (``category=...``): they pass through the
    redaction like everything a run writes, so a secret pasted into a tag stays off disk."""
    from labkit.trace.redact import Redactor

    red = Redactor()
    slices = metrics.get("slices")
    if isinstance(slices, dict):
        metrics["slices"] = {red.redact_text(k)[0]: v for k, v in slices.items()}
    return metrics


def _lines_of(path: Path) -> dict[Any, int]:
    """The line of each case_id in a results file (read again only to name an error's lines)."""
    line_of = {}
    for n, raw, _ in iter_jsonl(path):
        try:
            cid = json.loads(raw).get("case_id")
        except (json.JSONDecodeError, AttributeError):
            continue
        line_of[cid] = n
    return line_of


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Python's cycle collector paused while a run is scored: scoring builds millions of small
    containers (the results, the columns) and no cycles, and each full collection would walk
    them all again (about a fifth of `labkit score`'s time at 100,000 results)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def score_run(
    run_dir: str | os.PathLike[str] | RunDir,
    dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str] | None = None,
    *,
    corpus: Any = None,
    k: int = 5,
    seed: int = 0,
    n_boot: int = 2000,
    judge: Any = None,
    results: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Recompute scores.csv and metrics.json from results.jsonl; returns the metrics dict.

    ``dataset`` defaults to the manifest's dataset (``--dataset`` overrides it);
    ``corpus`` (a Corpus or a folder) to the corpus of the manifest's pipeline
    config. Only the cases that have a result line are scored (recorded traffic
    may cover part of a dataset); the others are counted as ``n_missing`` in
    metrics.json, and a gate fails on them unless its unmeasured budget allows
    that share. A result whose case_id is not in the dataset is a DatasetError
    naming its line. Both files are written atomically, and
    the scoring parameters (k, seed, n_boot, judge, dataset) go into the manifest.
    ``results`` (validated lines, e.g. the runner's in-memory values before they
    were redacted for disk) are scored instead of reading results.jsonl.
    """
    from labkit.stats import check_options

    check_options(n_boot=n_boot)  # before anything is read or rewritten
    with _no_cycle_collector():
        return _score_run(run_dir, dataset, corpus=corpus, k=k, seed=seed, n_boot=n_boot, judge=judge,
                          results=results)


def _score_run(run_dir: str | os.PathLike[str] | RunDir, dataset: Dataset | Sequence[EvalCase] | str
               | os.PathLike[str] | None, *, corpus: Any, k: int, seed: int, n_boot: int, judge: Any,
               results: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    from labkit.metrics import aggregate, score_cases

    rd = RunDir(run_dir)
    if not rd.results_path.is_file():
        raise DatasetError(str(rd.results_path), [Problem(None, None, "file not found")])
    ds = load_dataset(dataset, rd)
    results = rd.results() if results is None else [dict(r) for r in results]
    by_id = ds.by_id()
    unknown = [r["case_id"] for r in results if r["case_id"] not in by_id]
    if unknown:
        line_of = _lines_of(rd.results_path)
        raise DatasetError(
            str(rd.results_path),
            [Problem(line_of.get(cid), "case_id", f"case {cid!r} is not in dataset {ds.path or '(in memory)'}")
             for cid in unknown],
        )
    have = {r["case_id"] for r in results}
    cases = [c for c in ds if c.id in have]
    order = {c.id: i for i, c in enumerate(cases)}
    results = sorted(results, key=lambda r: order[r["case_id"]])
    corp = resolve_corpus(corpus, rd)
    scores = score_cases(cases, results, k=k, corpus=corp, judge=judge)
    atomic_write_text(rd.scores_path, csv_safe_frame(scores).to_csv(index=False))
    missing = [c for c in ds if c.id not in have]
    metrics = _redacted_slices(aggregate(cases, scores, k=k, seed=seed, n_boot=n_boot, missing=missing))
    atomic_write_text(rd.metrics_path, json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    man = rd.manifest
    if not man:
        man = {"run_id": rd.path.name}
    man.setdefault("dataset", {"path": ds.path, "fingerprint": ds.fingerprint, "n_cases": len(ds)})
    man["scoring"] = {
        "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "seed": seed,
        "n_boot": n_boot,
        "judge": _judge_info(judge),
        "dataset": {"path": ds.path, "fingerprint": ds.fingerprint, "n_cases": len(ds)},
        "n_scored": len(cases),
        "n_missing": len(ds) - len(cases),
        "corpus": getattr(corp, "root", None),
        "sha256": {name: file_hash(rd.path / name) for name in SCORED_FILES},
    }
    rd.write_manifest(man)
    return metrics
