"""A run into a run directory: :func:`run` starts one; :class:`Session` executes the cases
still to run (local or Dask), serves cache hits, writes and orders the files; :func:`complete`
records the end in the manifest and scores the run. :func:`labkit.runner.resuming.resume`
finishes an interrupted run through the same :func:`complete`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.cases import Dataset, EvalCase
from labkit.corpus import named_corpus
from labkit.errors import ConfigError
from labkit.io import atomic_write_text, iter_jsonl, settle
from labkit.resultline import SCORED_UNREDACTED, check_line
from labkit.runner.cache import ResultCache
from labkit.runner.config import RunnerConfig, merge_config
from labkit.runner.dask import require_executor, run_dask
from labkit.runner.executor import CaseExecutor, CaseOutcome
from labkit.runner.folder import refuse_existing_run, refuse_other_folder
from labkit.runner.local import run_local
from labkit.runner.lock import RunLock
from labkit.runner.manifest import build_manifest, gate_info, spec_of
from labkit.runner.progress import Progress
from labkit.runner.redaction import redactor
from labkit.runner.writer import Writer, line_head
from labkit.runs import (
    SNAPSHOT,
    RunDir,
    load_dataset,
    read_results,
    redact_manifest,
    refuse_secret_ids,
    refuse_secret_names,
)
from labkit.scoring import DEFAULT_K, score_run

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline
    from labkit.trace.redact import Redactor

__all__ = ["Session", "compact_traces", "complete", "load_pipeline", "run"]


def load_pipeline(spec: Any, corpus_dir: str | None) -> LoadedPipeline:
    from labkit.pipelines import LoadedPipeline, load_pipeline

    if isinstance(spec, LoadedPipeline):
        return spec
    return load_pipeline(spec, corpus_dir=corpus_dir)


class Session:
    """One execution of (part of) a run into a run directory."""

    def __init__(self, rd: RunDir, ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, run_id: str, *,
                 red: Redactor, scored: bool = True) -> None:
        self.rd = rd
        self.ds = ds
        self.pipe = pipe
        self.cfg = cfg
        self.run_id = run_id
        self.redactor = red  # the run's, built from ``cfg.redaction`` before the first case (it checked the ids)
        self.cache = ResultCache(cfg.cache_dir, max_output_chars=cfg.max_output_chars) if cfg.cache_dir else None
        #: this session's results as the pipeline returned them (before redaction): what is scored;
        #: None when the run is not scored (they are not kept)
        self.unredacted: dict[str, dict[str, Any]] | None = {} if scored else None
        self.calls = 0
        self.writer: Writer | None = None
        self.resumed = False
        self._cases = {c.id: c for c in ds}
        snapshot = (rd.manifest.get("dataset") or {}).get("snapshot")
        #: the cases a rescore reads redacted (from the run's snapshot): their lines record what they measured
        self._redacted_cases = {c.id for c in ds if red.redact(d := c.to_dict()) != d} if snapshot else set()

    def _measured_before(self, raw: Mapping[str, Any], written: Mapping[str, Any]) -> dict[str, Any] | None:
        """What a line records of its scores before redaction (labkit.metrics.restore): for a line
        whose answer redaction changed, or whose case a rescore reads redacted; else None."""
        cid = raw["case_id"]
        if SCORED_UNREDACTED in raw:  # (a cache hit: what its first run measured)
            return dict(raw[SCORED_UNREDACTED])
        if raw.get("answer") == written.get("answer") and cid not in self._redacted_cases:
            return None
        from labkit.metrics.restore import measured_before

        return measured_before(self._cases[cid], raw, redaction=self.cfg.redaction)

    def execute(self, finished: set[str]) -> None:
        todo = [c for c in self.ds if c.id not in finished]
        progress = Progress(len(self.ds), len(self.ds) - len(todo), self.cfg.show_progress(),
                            desc=f"run {self.run_id}")
        writer = Writer(self.rd, self.redactor, restore=self._measured_before)
        self.writer = writer
        self.resumed = bool(finished)
        ex = CaseExecutor(self.pipe, self.cfg, self.run_id)
        try:
            if self.cache is not None:
                todo = self._serve_cached(todo, ex, writer, progress)

            def counted(o: CaseOutcome, red: dict[str, Any]) -> None:  # its lines are written and flushed
                self.calls += o.calls
                if self.unredacted is not None:
                    self.unredacted[o.case_id] = o.result
                if self.cache is not None and o.result["status"] == "ok":
                    self.cache.put(o.result["idempotency_key"], red, run_id=self.run_id)
                progress.update(o.result)

            def done(o: CaseOutcome) -> None:
                counted(o, writer.write(o.result, o.traces))

            def done_many(outcomes: list[CaseOutcome]) -> None:
                for o, red in zip(outcomes, writer.write_many([(o.result, o.traces) for o in outcomes]), strict=True):
                    counted(o, red)

            if todo:
                if self.cfg.executor == "dask":
                    run_dask(todo, self.pipe, self.cfg, self.run_id, done)
                else:
                    run_local(ex, todo, done, done_many=done_many)
        finally:
            writer.close()
            progress.close()

    def _serve_cached(self, todo: list[EvalCase], ex: CaseExecutor, writer: Writer,
                      progress: Progress) -> list[EvalCase]:
        assert self.cache is not None
        rest: list[EvalCase] = []
        for c in todo:
            key = ex.key(c)
            hit = self.cache.get(key)
            if hit is None:
                rest.append(c)
                continue
            res = dict(hit)
            res.update(case_id=c.id, from_cache=True, attempts=0, error=None, error_type=None,
                       trace_id=ex.trace_id_for(self.run_id, c.id, 0), idempotency_key=key)
            if check_line(res, None, []) is None:  # cannot happen for a validated entry; a miss if it does
                rest.append(c)
                continue
            writer.write(res, [ex.cached_trace(c, res)])
            if self.unredacted is not None:
                self.unredacted[c.id] = res
            progress.update(res)
        return rest

    def scored_results(self) -> list[dict[str, Any]]:
        """What the run scores: this session's results as the pipeline returned them, and the
        lines of earlier sessions (a resumed run) as they are on disk."""
        if self.unredacted is None:
            raise RuntimeError("a Session made with scored=False keeps no results to score")
        rows: dict[str, dict[str, Any]] = {}
        if self.resumed:
            rows = {r["case_id"]: r for r in read_results(self.rd.results_path)}
        for cid, res in self.unredacted.items():
            line = check_line(res, None, [])
            if line is not None:
                rows[cid] = line
        return [rows[c.id] for c in self.ds if c.id in rows]

    def finish(self) -> dict[str, int]:
        """Put results.jsonl in dataset order, atomically, flushed to disk; return status counts."""
        rows: dict[str, tuple[str, str, bool]] = {}
        mem = self.writer.lines if self.writer is not None else None
        if mem is not None and not self.resumed:
            rows = mem  # every line of the file was written by this session
        else:
            for _, raw, complete_line in iter_jsonl(self.rd.results_path):
                if complete_line:
                    cid, status, cached = line_head(raw)
                    rows[cid] = (raw, status, cached)
        ids = [c.id for c in self.ds if c.id in rows]
        ordered = [rows[i] for i in ids]
        if self.writer is not None and self.writer.holds_exactly(ids):
            settle(self.rd.results_path)  # in dataset order already: left as the rewrite would leave it
        else:
            atomic_write_text(self.rd.results_path, "".join(raw for raw, _, _ in ordered))
        counts = {"ok": 0, "error": 0, "timeout": 0, "from_cache": 0}
        for _, status, cached in ordered:
            counts[status] = counts.get(status, 0) + 1
            counts["from_cache"] += cached
        counts["missing"] = len(self.ds) - len(ordered)
        return counts


def run(
    dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str],
    pipeline: LoadedPipeline | str | os.PathLike[str] | Callable[..., Any],
    out_dir: str | os.PathLike[str],
    *,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    corpus_dir: str | None = None,
    gate_path: str | None = None,
    score: bool = True,
    k: int = DEFAULT_K,
) -> RunDir:
    """Run ``dataset`` through ``pipeline`` into the run directory ``out_dir``.

    ``pipeline`` is a LoadedPipeline, a YAML config path, a ``module:callable``
    import path or a callable. Runner settings: the pipeline config's ``runner:``
    section, overridden by ``config`` (its non-default fields) and ``overrides``.
    ``out_dir`` must not already hold a run (use :func:`labkit.runner.resume`). Returns
    the RunDir, scored (scores.csv, metrics.json) at cut-off ``k`` unless ``score=False``;
    the manifest records ``k`` (``score_k``) when the run starts, and a resume scores at it.
    """
    ds = load_dataset(dataset)
    pipe = load_pipeline(pipeline, corpus_dir)
    cfg = merge_config(pipe.runner, config, overrides, path=pipe.path)
    require_executor(cfg)
    red = redactor(cfg.redaction)
    refuse_secret_ids(ds, red)  # (before anything is written)
    if run_id is not None:
        _check_run_id(run_id)
    refuse_secret_names([("--run-id" if run_id else "--out (the run id)", run_id or Path(out_dir).name)], red)
    refuse_secret_names(pipeline_names(pipe), red, path=pipe.path)
    out = Path(out_dir)
    rd = RunDir(out)
    refuse_other_folder(out)  # (before anything is written: the lock's file too)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):  # held until the run is written and scored (docs/runner.md "The run lock")
        refuse_existing_run(out)  # again under the lock: two fresh runs into one folder cannot both pass
        rid = run_id or out.name
        gate = gate_info(gate_path)
        manifest = build_manifest(ds, pipe, cfg, rid, spec=spec_of(pipeline, pipe), corpus_dir=corpus_dir,
                                  gate=gate, k=k)
        corpus = named_corpus(manifest)[0]  # (what scoring reads retrieved ids in: a gate checks it is the one)
        manifest["pipeline"]["corpus_fingerprint"] = None if corpus is None else corpus.fingerprint
        if _keeps_snapshot(manifest, cfg.redaction):  # redacted like every file the run writes
            from labkit.runner.redaction import redact_snapshot

            atomic_write_text(out / SNAPSHOT, redact_snapshot([c.to_dict() for c in ds], red))
            manifest["dataset"]["snapshot"] = SNAPSHOT
        rd.write_manifest(manifest)
        rd.results_path.touch(mode=0o600)
        rd.traces_path.touch(mode=0o600)
        return complete(rd, ds, pipe, cfg, rid, finished=set(), score=score, k=k, corpus_dir=corpus_dir, red=red)


def _check_run_id(rid: str) -> None:
    """A run id names the run (traces, caches, history, exports): a name, not a path nor blank."""
    from labkit.text import unprintable_at

    if not rid.strip() or rid != rid.strip() or rid in (".", "..") or any(ch in rid for ch in "/\\") \
            or unprintable_at(rid) is not None:
        raise ConfigError(f"must be a name (no slash, no control character, not blank nor . or ..), got {rid!r}",
                          field="--run-id")


def pipeline_names(pipe: LoadedPipeline) -> list[tuple[str, str]]:
    """(field, name) of the pipeline and of each fallback after it: what a result's ``answered_by`` names."""
    out: list[tuple[str, str]] = []
    field: str = "name"
    p: LoadedPipeline | None = pipe
    while p is not None:
        out.append((field, p.name))
        field, p = "fallback." + field, p.fallback
    return out


def _keeps_snapshot(manifest: Mapping[str, Any], settings: Any) -> bool:
    """Whether a run keeps its cases beside it (cases.jsonl), where a rescore and a resume find
    them: a dataset in memory, and a file whose path its manifest can name only redacted (a
    folder named by an e-mail address)."""
    path = manifest["dataset"]["path"]
    return path is None or redact_manifest({"dataset": {"path": path}}, settings)["dataset"]["path"] != path


def compact_traces(rd: RunDir, min_bytes: int | None) -> dict[str, Any] | None:
    """Compact the run's traces.jsonl to traces.parquet when it holds at least ``min_bytes`` (None:
    never), so that queries read the compacted store by default (docs/runner.md "Trace
    compaction"). What happened, for the manifest; a failure leaves the JSONL, which queries
    then read (the store says so), and is recorded, never raised: the run itself is complete."""
    size = rd.traces_path.stat().st_size if rd.traces_path.exists() else 0
    if min_bytes is None or size == 0 or size < min_bytes:
        return None
    from labkit.trace.compaction import compact
    from labkit.trace.sql import PARQUET_FILE

    t = time.perf_counter()
    try:
        compact([rd.path])
    except Exception as e:  # the JSONL is the record; the store falls back to it
        return {"file": None, "error": f"{type(e).__name__}: {e}"[:500], "source_bytes": size}
    return {"file": PARQUET_FILE, "source_bytes": size, "seconds": round(time.perf_counter() - t, 3)}


def complete(
    rd: RunDir, ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, rid: str, *,
    finished: set[str], score: bool, k: int, corpus_dir: str | None, red: Redactor,
) -> RunDir:
    """Run the cases not in ``finished``, order the results, record the end, score (``red``: the
    run's redactor)."""
    sess = Session(rd, ds, pipe, cfg, rid, red=red, scored=score)
    sess.execute(finished)
    counts = sess.finish()
    extra = {"cache": dict(sess.cache.stats)} if sess.cache is not None else {}
    compacted = compact_traces(rd, cfg.compact_traces_bytes)
    if compacted is not None:
        extra["traces_store"] = compacted
    from labkit.io import file_hash

    rd.update_manifest(finished_at=datetime.now(UTC).isoformat(timespec="seconds"), status="complete",
                       counts=counts, pipeline_calls=sess.calls, results_sha256=file_hash(rd.results_path), **extra)
    if score:
        score_run(rd, ds, corpus=corpus_dir, k=k, results=sess.scored_results())
    return rd
