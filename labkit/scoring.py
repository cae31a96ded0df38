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

import contextlib
import gc
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from labkit.cases import Dataset, EvalCase
from labkit.errors import ConfigError, DatasetError, Problem, RunDirError
from labkit.io import atomic_write_text, file_hash
from labkit.runs import METRICS, RESULTS, SCORES, RunDir, load_dataset, write_scores_csv

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pandas as pd

__all__ = ["SCORED_FILES", "resolve_corpus", "score_results", "score_run", "verify_scored"]

#: The files of a run whose sha256 scoring records: what it read, and what it wrote.
SCORED_FILES = (RESULTS, SCORES, METRICS)


#: The retrieval cut-off a run is scored at when neither the caller nor the run names one.
DEFAULT_K = 5


class ScoredWith(NamedTuple):
    """What a run was scored with: its judge (as :func:`judge_info` reads it) and cut-off k;
    None when the run records none. ``judge_unhashed``: the judge was read off the manifest (a
    metrics.json written before it recorded its judge), which no hash covers."""

    judge: Any
    k: int | None
    judge_unhashed: bool = False


def scored_with(rd: RunDir, metrics: Mapping[str, Any] | None = None) -> ScoredWith:
    """What a run was scored with, read off its metrics.json (a file the scoring record's hash
    covers: an edit of the manifest cannot change it; ``metrics``: that file already read), else
    off the manifest's scoring record (a metrics.json written before it held the judge)."""
    from labkit.errors import LabkitError

    m: Any = metrics
    if m is None:
        try:
            m = rd.metrics() if rd.metrics_path.is_file() else {}
        except LabkitError:  # (unreadable: the record is what there is)
            m = {}
    sc = rd.manifest.get("scoring")
    rec: Mapping[str, Any] = sc if isinstance(sc, Mapping) else {}
    hashed = isinstance(m, Mapping) and "judge" in m
    judge = m["judge"] if hashed else rec.get("judge")
    k = m.get("k", rec.get("k")) if isinstance(m, Mapping) else rec.get("k")
    return ScoredWith(None if judge is None else judge_info(judge),
                      k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else None,
                      judge_unhashed=not hashed and judge is not None)


def kept_judge(rd: RunDir, recorded: Any = None) -> Any:
    """The judge a rescore of ``rd`` keeps when none is given: the one the run was scored by
    (``recorded``, else :func:`scored_with`; None: the default). A judge that calls a model is
    not called again unasked: a ConfigError asks for it (checked by a resume before it runs a case)."""
    if recorded is None:
        recorded = scored_with(rd).judge
    if recorded is None or recorded == judge_info(None):
        return None
    if isinstance(recorded, Mapping) and recorded.get("type") == "lexical":
        return dict(recorded)
    raise ConfigError(f"the run was scored by the judge {json.dumps(recorded, sort_keys=True)}: rescore it naming "
                      f"the judge ({rd.score_command} --judge FILE; judge= in Python), the same one to keep it "
                      "comparable with its earlier scores (a resume scores at its end: resume with --no-score, "
                      "then rescore)", path=str(rd.path), field="judge")


def refuse_foreign_results(rd: RunDir, recorded: str | None = None) -> str | None:
    """A RunDirError when the run records the hash of the results.jsonl it wrote (``results_sha256``,
    docs/formats.md) and its results.jsonl (or the one scoring recorded, ``recorded``) is another:
    lines swapped in from another run, or edited, and rescored would be judged as this run's.
    Returns that hash when the file was checked against it (None: the run records none)."""
    man = rd.manifest
    wrote = man.get("results_sha256")
    if wrote is None and not (man.get("status") == "complete" and "pipeline_calls" in man):
        return None  # (recorded traffic: a manifest written by hand; the runner and the importer record it)
    if not (isinstance(wrote, str) and re.fullmatch(r"[0-9a-f]{64}", wrote)):
        raise RunDirError(f"{rd.path / 'manifest.json'}: field results_sha256: "
                          + (f"must be the sha256 of the results.jsonl the run wrote, got {wrote!r}" if wrote is not None
                             else "missing from a run the runner completed (it records the hash of the results it "
                                  "wrote)")
                          + ": a run whose record of its results is gone cannot vouch for its lines; make a new run, "
                            "or import the lines as recorded traffic (labkit import)")
    if (recorded or file_hash(rd.results_path)) != wrote:
        raise RunDirError(f"{rd.results_path}: not the results the run wrote (its manifest records "
                          f"{wrote[:12]}): results swapped in or edited after the run are not its evidence; "
                          "make a new run, resume this one if a resume of it was cut short (labkit run --resume), "
                          "or import the lines as recorded traffic (labkit import)")
    return wrote


def verify_scored(run_dir: str | os.PathLike[str] | RunDir) -> None:
    """Check a run's files against the hashes its scoring recorded (docs/formats.md "The scoring
    record").

    Raises RunDirError when a file differs from its recorded hash, and when the run records no
    hashes at all (the record or the whole manifest deleted, or a run written by hand): forged
    scores.csv and metrics.json would be judged as scored. ``labkit score RUN`` writes the record.
    """
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise RunDirError(f"{rd.path}: not a run directory")
    man = rd.manifest
    sc = man.get("scoring")
    rec = sc.get("sha256") if isinstance(sc, Mapping) else None
    if not isinstance(rec, Mapping):
        why = ("its manifest records no hashes of its scored files (the record was deleted)" if man else
               "it has no manifest recording its scoring (written by hand, or its manifest deleted)")
        raise RunDirError(f"{rd.path}: {why}: its scores.csv and metrics.json cannot be verified; "
                          f"rescore with {rd.score_command}")
    changed = [name for name in SCORED_FILES
               if not (rd.path / name).is_file() or file_hash(rd.path / name) != rec.get(name)]
    if changed:
        raise RunDirError(f"{rd.path}: run files changed after scoring: rescore with {rd.score_command} "
                          f"({', '.join(changed)} differ from the hashes scoring recorded)")
    refuse_foreign_results(rd, rec.get(RESULTS))


def resolve_corpus(corpus: Any, rd: RunDir) -> Any:
    """A Corpus from an argument (Corpus or folder) or the manifest's pipeline config."""
    from labkit.corpus import Corpus

    if corpus is not None:
        return corpus if not isinstance(corpus, (str, os.PathLike)) else Corpus.load(corpus)
    from labkit.corpus import named_corpus

    found, cand = named_corpus(rd.manifest)
    if found is None and cand is not None:
        warnings.warn(f"corpus {cand!r} named by the run's pipeline config was not found; "
                      "chunks without text are scored without context", stacklevel=3)
    return found


def judge_info(judge: Any) -> Any:
    """What a manifest records of a judge, and how a recorded one is read back (one form for
    both: a run scored with ``"lexical"`` and one scored by default record the same judge): the
    ``describe()`` (type, options, model, prompt versions and hashes) of the judge a name, a
    config mapping or a judge object stands for, the default lexical judge's for None; a
    recorded description this labkit cannot build a judge from is kept as it is."""
    from labkit.judges import get_judge

    try:
        jd = get_judge(judge)
    except (ConfigError, TypeError, ValueError):  # (a judge's own options check raises either)
        return judge
    describe = getattr(jd, "describe", None)
    return describe() if callable(describe) else type(jd).__name__


def _with_judge(metrics: dict[str, Any], judge: Any, corpus: Any) -> dict[str, Any]:
    """metrics.json with the judge its scores were measured by and the fingerprint of the corpus
    its retrieved ids were read in (None: none) after its ``k`` (in the file the scoring record's
    hash covers, read back by :func:`scored_with` and the gate)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        out[key] = value
        if key == "k":
            out["judge"] = judge
            out["corpus"] = getattr(corpus, "fingerprint", None)
    return out


def _redacted_slices(metrics: dict[str, Any], settings: Any) -> dict[str, Any]:
    """Slice keys come from the dataset's tag values (``category=...``): they pass through the
    run's record redactor (the catalogue and the run's extra patterns, ``settings``: its
    redaction option), so a secret pasted into a tag stays off disk; two that it writes alike stay
    two slices, the later in order numbered (``category=owner [EMAIL] (2)``)."""
    from labkit.runs import record_redactor

    red = record_redactor(settings)
    slices = metrics.get("slices")
    if isinstance(slices, dict):
        out: dict[str, Any] = {}
        for key, v in slices.items():  # two values written alike stay two slices: the later numbered
            name = red.redact_text(key)[0]
            n = 1
            while (shown := name if n == 1 else f"{name} ({n})") in out or (n > 1 and shown in slices):
                n += 1
            out[shown] = v
        metrics["slices"] = out
    return metrics


#: results.jsonl is read, validated and scored in parts of about this many bytes, each let go
#: once scored: memory grows with the part and the per-case scores, not with the lines read.
PART_BYTES = 4 * 2**20
#: From this many parts on (and with the lexical judge), the parts are scored in worker
#: processes, one per CPU: each part's scores are what one process gives.
PARALLEL_MIN_PARTS = 4


class _Scores(NamedTuple):
    """A part's score_cases columns as they travel back from a worker: the reason columns as
    codes and the part's few distinct reasons (each distinct reason sent once, not once a case:
    as text, each cell would come back a string of its own), the others as a frame, and the
    columns' order."""

    frame: pd.DataFrame
    reasons: dict[str, tuple[Any, list[str]]]
    order: list[str]


class _Part(NamedTuple):
    """One part of results.jsonl scored: the dataset position and line of each valid line (in
    file order), its lines claiming a cache hit, its per-case scores (None when any line of the
    part is wrong), every problem, the case ids not in the dataset, and its line count."""

    positions: list[int]
    lines: list[int]
    cache_lines: list[int]
    scores: _Scores | None
    problems: list[Problem]
    unknown: list[tuple[int, str]]
    n_lines: int


def _forked_part(token: int, span: tuple[int, int]) -> _Part:
    """In a worker forked by :func:`labkit.forks.forked_pool`: the part scored with what it
    inherited (the dataset is not sent)."""
    from labkit.forks import forked_job

    return _score_part(forked_job(token), span)


def _score_part(w: Mapping[str, Any], span: tuple[int, int]) -> _Part:
    """The part ``span`` of results.jsonl scored with ``w`` (path, index, cases, k, corpus, judge,
    redaction)."""
    from labkit.io import count_lines
    from labkit.metrics.percase import score_columns
    from labkit.runs import read_results_part, secret_id_problems

    part = read_results_part(w["path"], span)
    problems = part.problems + secret_id_problems([r["case_id"] for r in part.rows], part.lines.__getitem__,
                                                  "case_id", w["redaction"])
    index: dict[str, int] = w["index"]
    positions: list[int] = []
    unknown: list[tuple[int, str]] = []
    for r, n in zip(part.rows, part.lines, strict=True):
        pos = index.get(r["case_id"])
        if pos is None:
            unknown.append((n, r["case_id"]))
        positions.append(-1 if pos is None else pos)
    cache_lines = [n for r, n in zip(part.rows, part.lines, strict=True) if r["from_cache"]]
    scores = None  # (also for a part of blank lines or a torn last line only: nothing to join)
    if part.rows and not problems and not unknown and len(set(positions)) == len(positions):
        cases = [w["cases"][i] for i in positions]
        scores = _compact(score_columns(cases, part.rows, k=w["k"], corpus=w["corpus"], judge=w["judge"],
                                        redaction=w["redaction"], restores=w["restores"]))
    return _Part(positions, part.lines, cache_lines, scores, problems, unknown, count_lines(w["path"], span))


def _compact(cols: dict[str, Any]) -> _Scores:
    """A part's score_cases columns as :class:`_Scores`."""
    import numpy as np
    import pandas as pd

    reasons: dict[str, tuple[Any, list[str]]] = {}
    for name, col in cols.items():
        if name.endswith("_reason") and isinstance(col, list):
            if any(col):  # (hashed, in order of appearance: sorting the few reasons would cost more)
                codes, distinct = pd.factorize(np.asarray(col, dtype=object))
                reasons[name] = (codes.astype(np.min_scalar_type(len(distinct))), distinct.tolist())  # (a byte a
                # case for a part's few reasons, not eight: the parts wait in the parent until the join)
            else:  # measured everywhere: one code
                reasons[name] = (np.zeros(len(col), dtype=np.int8), [""])
    frame = pd.DataFrame({name: col for name, col in cols.items() if name not in reasons})
    return _Scores(frame, reasons, list(cols))


def _frame(parts: list[_Part]) -> pd.DataFrame | None:
    """The parts' scores as one frame in file order (reason columns as text: a part's distinct
    reasons one string object each); None when no part has scores."""
    import numpy as np
    import pandas as pd

    packed = [part.scores for part in parts if part.scores is not None]
    if not packed:
        return None
    out = pd.concat([s.frame for s in packed], ignore_index=True)
    for at, name in enumerate(packed[0].order):  # (inserted in place: the other columns are not copied)
        if name not in packed[0].reasons:
            continue
        known: dict[str, int] = {}  # one list of the distinct reasons, each part's codes mapped into it
        codes = [np.asarray([known.setdefault(r, len(known)) for r in distinct], dtype=np.int64)[c]
                 for c, distinct in (s.reasons[name] for s in packed)]
        labels = np.empty(len(known), dtype=object)
        labels[:] = list(known)
        out.insert(at, name, pd.Series(labels[np.concatenate(codes)], index=out.index, dtype=object))
    return out


def _parts(w: Mapping[str, Any]) -> list[_Part]:
    """Every part of results.jsonl scored with ``w``, in file order, in worker processes when it pays."""
    import functools
    from concurrent.futures.process import BrokenProcessPool

    from labkit.forks import can_fork, forked_pool, usable_cpus
    from labkit.io import line_spans
    from labkit.judges import LexicalJudge
    from labkit.metrics import score_cases

    spans = line_spans(w["path"], PART_BYTES)
    if len(spans) < PARALLEL_MIN_PARTS or not can_fork() or not isinstance(w["judge"], LexicalJudge):
        return [_score_part(w, sp) for sp in spans]
    # no case scored once here: the modules scoring imports are loaded before the fork
    # (about 0.3 s in each worker otherwise)
    score_cases([], [], k=w["k"], corpus=w["corpus"], judge=w["judge"], redaction=w["redaction"])
    gc.freeze()  # the dataset's objects out of the collector's reach: workers share their pages longer
    try:
        with forked_pool(min(usable_cpus(), len(spans)), w) as (pool, token):
            return list(pool.map(functools.partial(_forked_part, token), spans))
    except (OSError, BrokenProcessPool):  # no fork (no memory for one), or a worker lost: scored here
        return [_score_part(w, sp) for sp in spans]
    finally:
        gc.unfreeze()


def _import_scoring() -> None:
    """The modules scoring needs imported (pandas, the metrics, the lexical judge: about 0.5 s),
    by scoring no case: done while a large dataset is parsed in a forked process."""
    from labkit.metrics import score_cases

    score_cases([], [])


def score_results(rd: RunDir, ds: Dataset, *, k: int, corpus: Any, judge: Any,
                  results: Sequence[Mapping[str, Any]] | None = None) -> tuple[list[EvalCase], pd.DataFrame]:
    """The cases that have a result line (in dataset order) and their score_cases frame.

    results.jsonl is read, validated and scored part by part (:data:`PART_BYTES`): every bad
    line of the file is named in one DatasetError (its own problems, then, when every line is
    valid, case ids the dataset does not hold, then repeated case ids and cache claims beyond
    the run's count), and nothing is scored. ``results`` (validated lines in memory) are
    scored instead of the file, as one part. A phrase the run's redaction placeholders may
    hide is unmeasured (its manifest's ``runner.redaction``: :attr:`RunDir.redaction`).
    """
    from labkit.judges import get_judge
    from labkit.metrics import score_cases
    from labkit.metrics.restore import own_cases
    from labkit.trace.redact import Redactor

    jd = get_judge(judge)
    red = Redactor.from_config(rd.redaction)
    cases_all = list(ds)
    index = {c.id: i for i, c in enumerate(cases_all)}
    if results is not None:
        from labkit.runs import duplicate_ids, secret_id_problems

        rows = [dict(r) for r in results]
        secret = secret_id_problems([r["case_id"] for r in rows], lambda i: i + 1, "case_id", red)  # (the n-th given)
        if secret:
            raise DatasetError(str(rd.results_path), secret)
        unknown = [r["case_id"] for r in rows if r["case_id"] not in index]
        if unknown:
            raise DatasetError(str(rd.results_path), [_not_in(None, cid, ds) for cid in unknown])
        repeated = duplicate_ids([r["case_id"] for r in rows], range(1, len(rows) + 1))[1]  # (the n-th given)
        if repeated:
            raise DatasetError(str(rd.results_path), repeated)
        rows.sort(key=lambda r: index[r["case_id"]])
        cases = [cases_all[index[r["case_id"]]] for r in rows]
        return cases, score_cases(cases, rows, k=k, corpus=corpus, judge=jd, redaction=red,
                                  restores=own_cases(rd, ds))
    parts = _parts({"path": rd.results_path, "index": index, "cases": cases_all, "k": k, "corpus": corpus,
                    "judge": jd, "redaction": red, "restores": own_cases(rd, ds)})
    return _joined(parts, rd, ds, cases_all)


def _not_in(line: int | None, cid: str, ds: Dataset) -> Problem:
    return Problem(line, "case_id", f"case {cid!r} is not in dataset {ds.path or '(in memory)'}")


def _joined(parts: list[_Part], rd: RunDir, ds: Dataset,
            cases_all: list[EvalCase]) -> tuple[list[EvalCase], pd.DataFrame]:
    """The parts as one frame in dataset order, or one DatasetError naming every bad line."""
    import numpy as np

    from labkit.runs import cache_claim_problem, duplicate_ids

    problems: list[Problem] = []
    unknown: list[Problem] = []
    lines: list[int] = []
    cache_lines: list[int] = []
    offset = 0
    for part in parts:
        problems += [Problem(pr.line + offset if pr.line is not None else None, pr.field, pr.reason)
                     for pr in part.problems]
        unknown += [_not_in(n + offset, cid, ds) for n, cid in part.unknown]
        lines += [n + offset for n in part.lines]
        cache_lines += [n + offset for n in part.cache_lines]
        offset += part.n_lines
    positions = np.fromiter((p for part in parts for p in part.positions), dtype=np.int64, count=len(lines))
    if not problems and unknown:
        raise DatasetError(str(rd.results_path), unknown)
    in_order = positions.size < 2 or bool(np.all(positions[1:] > positions[:-1]))  # (then no case twice)
    if problems or (not in_order and len(np.unique(positions)) < len(positions)):
        known = [(cases_all[p].id, n) for p, n in zip(positions.tolist(), lines, strict=True) if p >= 0]
        repeated = duplicate_ids([cid for cid, _ in known], [n for _, n in known])[1]
        problems = sorted(problems + repeated, key=lambda pr: pr.line or 0)
    claim = cache_claim_problem(rd.manifest, cache_lines)
    if claim is not None and not problems:
        problems.append(claim)
    if problems:
        raise DatasetError(str(rd.results_path), problems)
    scores = _frame(parts)
    parts.clear()
    if scores is None:
        raise DatasetError(str(rd.results_path), [Problem(None, None, "no result line")])
    if not in_order:
        order = np.argsort(positions, kind="stable")
        scores, positions = scores.take(order).reset_index(drop=True), positions[order]
    return [cases_all[p] for p in positions.tolist()], scores


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


def _write_scores(rd: RunDir, scores: pd.DataFrame, ds: Dataset,
                  results_hash: str | None) -> tuple[dict[str, str], str]:
    """scores.csv written; the sha256 of it and of the results.jsonl that was scored (``results_hash``
    when it is known already: the file is not read again), and the dataset's fingerprint (for
    the manifest: worked out here, beside the draws)."""
    write_scores_csv(scores, rd.scores_path)
    return {RESULTS: results_hash or file_hash(rd.results_path), SCORES: file_hash(rd.scores_path)}, ds.fingerprint


#: From ``FORKED_WRITE_MIN`` to ``FORKED_WRITE_MAX`` scored cases (and with a CPU to spare),
#: scores.csv is written by a forked process while the intervals are drawn: in a thread, the
#: writer and the draws take turns at the interpreter and end no sooner than one after the
#: other (at 100,000 cases the fork saves about 0.25 s of 5). Past the bound the pages both
#: processes touch while the writer lives are copied (about 0.8 GB at 1,000,000 cases, over
#: the memory budget), and the thread writes.
FORKED_WRITE_MIN, FORKED_WRITE_MAX = 20_000, 250_000
def _forked_write(token: int) -> tuple[dict[str, str], str]:
    """In the writer forked by :func:`labkit.forks.forked_pool`: :func:`_write_scores` of what it
    inherited (the frame is not sent)."""
    from labkit.forks import forked_job

    return _write_scores(*forked_job(token))


@contextmanager
def _scores_writer(rd: RunDir, scores: pd.DataFrame, ds: Dataset,
                   results_hash: str | None) -> Iterator[Callable[[], tuple[dict[str, str], str]]]:
    """:func:`_write_scores` of ``scores`` under way, in a forked process for a large frame, else in a
    thread: yields the function that waits for it and returns what it returns (a fork refused, or
    the process lost, and this process writes)."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from labkit.forks import can_fork, forked_pool

    fut: Future[tuple[dict[str, str], str]] | None = None
    with contextlib.ExitStack() as stack:
        if FORKED_WRITE_MIN <= len(scores) <= FORKED_WRITE_MAX and can_fork():
            try:
                pool, token = stack.enter_context(forked_pool(1, (rd, scores, ds, results_hash)))
                fut = pool.submit(_forked_write, token)  # (forked here)
            except OSError:  # no fork (no memory for one): written here
                fut = None
        else:
            fut = stack.enter_context(ThreadPoolExecutor(max_workers=1)).submit(
                _write_scores, rd, scores.copy(deep=False), ds, results_hash)

        def written() -> tuple[dict[str, str], str]:
            try:
                if fut is not None:
                    return fut.result()
            except BrokenProcessPool:  # the writer lost (killed): written here
                pass
            return _write_scores(rd, scores, ds, results_hash)

        yield written


def score_run(
    run_dir: str | os.PathLike[str] | RunDir,
    dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str] | None = None,
    *,
    corpus: Any = None,
    k: int | None = None,
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
    ``k`` and ``judge`` default to what the run was scored with (:func:`scored_with`; for k,
    else the ``score_k`` it started with, else :data:`DEFAULT_K`): a rescore keeps them.
    ``results`` (validated lines, e.g. the runner's in-memory values before they
    were redacted for disk) are scored instead of reading results.jsonl.
    """
    from labkit.stats import check_options

    check_options(n_boot=n_boot, seed=seed)  # before anything is read or rewritten
    if k is not None:
        from labkit.registry import check_k

        check_k(k)
    if k is None or judge is None:
        rd = RunDir(run_dir)
        rec = scored_with(rd)
        start_k = rd.manifest.get("score_k")
        k = k if k is not None else rec.k or (start_k if isinstance(start_k, int) and start_k > 0 else DEFAULT_K)
        judge = judge if judge is not None else kept_judge(rd, rec.judge)
    with _no_cycle_collector():
        return _score_run(run_dir, dataset, corpus=corpus, k=k, seed=seed, n_boot=n_boot, judge=judge,
                          results=results)


def _score_run(run_dir: str | os.PathLike[str] | RunDir, dataset: Dataset | Sequence[EvalCase] | str
               | os.PathLike[str] | None, *, corpus: Any, k: int, seed: int, n_boot: int, judge: Any,
               results: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    from labkit.metrics import aggregate

    rd = RunDir(run_dir)
    if not rd.results_path.is_file():
        raise DatasetError(str(rd.results_path), [Problem(None, None, "file not found")])
    # the runner's in-run scoring (``results`` given) has just written the file and recorded its hash
    known = refuse_foreign_results(rd) if results is None else rd.manifest.get("results_sha256")
    ds = load_dataset(dataset, rd, meanwhile=_import_scoring)
    corp = resolve_corpus(corpus, rd)
    cases, scores = score_results(rd, ds, k=k, corpus=corp, judge=judge, results=results)
    with _scores_writer(rd, scores, ds, known if isinstance(known, str) else None) as written:  # written while the intervals are drawn
        have = {c.id for c in cases}
        missing = [c for c in ds if c.id not in have]
        metrics = _redacted_slices(aggregate(cases, scores, k=k, seed=seed, n_boot=n_boot, missing=missing),
                                   rd.redaction)
        metrics = _with_judge(metrics, judge_info(judge), corp)
        hashes, fingerprint = written()
    atomic_write_text(rd.metrics_path, json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    hashes[METRICS] = file_hash(rd.metrics_path)
    man = rd.manifest
    if not man.get("run_uuid") and not man.get("created_at"):  # (written by hand: one run, not any of its name)
        import uuid

        man = {"run_id": rd.path.name, **man, "run_uuid": str(uuid.uuid4())}
    man.setdefault("dataset", {"path": ds.path, "fingerprint": fingerprint, "n_cases": len(ds)})
    man["scoring"] = {
        "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "seed": seed,
        "n_boot": n_boot,
        "judge": judge_info(judge),
        "dataset": {"path": ds.path, "fingerprint": fingerprint, "n_cases": len(ds)},
        "n_scored": len(cases),
        "n_missing": len(ds) - len(cases),
        "corpus": getattr(corp, "root", None),
        "sha256": {name: hashes[name] for name in SCORED_FILES},
    }
    rd.write_manifest(man)
    return metrics
