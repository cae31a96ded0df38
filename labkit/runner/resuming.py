"""Finishing an interrupted run: :func:`resume` keeps the finished cases and runs the rest.

A run killed at any moment (SIGKILL included) resumes to the same results: the torn
last lines are cut, results lines whose idempotency key still matches are kept, the
traces of the cases that run again are dropped (docs/runner.md "Crash safety and resume").
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from labkit.cases import Dataset, load_cases
from labkit.errors import ConfigError, DatasetError, PipelineError, Problem
from labkit.io import atomic_write_text, iter_jsonl
from labkit.runner.config import RunnerConfig, merge_config
from labkit.runner.dask import require_executor
from labkit.runner.keys import case_key, pipeline_key_hashes
from labkit.runner.lock import RunLock
from labkit.runner.manifest import resume_k
from labkit.runner.redaction import redactor
from labkit.runner.session import complete, load_pipeline, pipeline_names
from labkit.runner.writer import truncate_torn_tail
from labkit.runs import (
    RunDir,
    read_results,
    read_results_part,
    refuse_secret_ids,
    refuse_secret_names,
)

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["resume"]


def resume(
    run_dir: str | os.PathLike[str] | RunDir,
    *,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    pipeline: LoadedPipeline | str | Callable[..., Any] | None = None,
    score: bool = True,
    k: int | None = None,
) -> RunDir:
    """Finish an interrupted run: keep its finished cases, run the rest, then order and score.

    The dataset, pipeline and runner settings come from the manifest (``config``
    and ``overrides`` may change execution settings such as concurrency; they
    never change what a case computes). A changed dataset or pipeline config is
    refused. The run is scored at the cut-off its manifest records (``score_k``); a ``k``
    other than that one is refused. ``pipeline`` is needed only when the run was started with an
    in-memory callable that cannot be re-imported. The run lock is held from
    before the manifest is read until the run is scored.
    """
    rd = RunDir(run_dir)
    if not rd.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", path=str(rd.path))
    with RunLock(rd.path):
        return _resume_locked(rd, config=config, overrides=overrides, pipeline=pipeline, score=score, k=k)


def _dataset_of(rd: RunDir, man: Mapping[str, Any]) -> Dataset:
    """The run's dataset, refused when it changed since the run started."""
    ds_path = rd.dataset_path()
    if ds_path is None:
        raise ConfigError("the manifest names no dataset to resume", path=str(rd.manifest_path), field="dataset")
    ds = load_cases(ds_path)
    want_fp = (man.get("dataset") or {}).get("fingerprint")
    if want_fp and ds.fingerprint != want_fp:
        raise ConfigError(
            f"dataset {ds_path} changed since the run started (fingerprint {want_fp[:12]} -> {ds.fingerprint[:12]})",
            path=str(rd.manifest_path), field="dataset.fingerprint",
        )
    return ds


def _pipeline_of(rd: RunDir, pm: Mapping[str, Any], pipeline: Any) -> LoadedPipeline:
    """The run's pipeline, refused when its config changed since the run started."""
    spec = pipeline if pipeline is not None else (pm.get("spec") or pm.get("path"))
    if spec is None:
        raise PipelineError(
            f"{rd.path}: the run's pipeline was an in-memory callable; pass it again: resume(..., pipeline=fn)"
        )
    pipe = load_pipeline(spec, pm.get("corpus_dir"))
    if pm.get("config_hash") and pipe.config_hash != pm["config_hash"]:
        raise ConfigError(
            f"pipeline config changed since the run started (hash {pm['config_hash']} -> {pipe.config_hash})",
            path=str(rd.manifest_path), field="pipeline.config_hash",
        )
    return pipe


def _resume_locked(
    rd: RunDir, *, config: RunnerConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any] | None,
    pipeline: LoadedPipeline | str | Callable[..., Any] | None, score: bool, k: int | None,
) -> RunDir:
    man = rd.manifest
    if not man:
        raise ConfigError("not a run directory (no manifest.json)", path=str(rd.path))
    k = resume_k(man, k, flag="k", where=str(rd.manifest_path))
    if score:
        from labkit.scoring import kept_judge

        kept_judge(rd)  # (a judge it cannot score with again is refused before a case runs)
    ds = _dataset_of(rd, man)
    pm = man.get("pipeline") or {}
    pipe = _pipeline_of(rd, pm, pipeline)
    base = dict(pipe.runner)
    base.update(man.get("runner") or {})
    cfg = merge_config(base, config, overrides, path=str(rd.manifest_path))
    require_executor(cfg)  # (before the run's files are touched)
    red = redactor(cfg.redaction)
    refuse_secret_ids(ds, red)  # (a run begun before ids were checked: before it writes more)
    refuse_secret_names(pipeline_names(pipe), red, path=pipe.path)
    rid = str(man.get("run_id") or rd.path.name)

    truncate_torn_tail(rd.results_path)
    truncate_torn_tail(rd.traces_path)
    rd.results_path.touch(mode=0o600)
    rows = read_results(rd.results_path)
    keys = {c.id: case_key(c, *pipeline_key_hashes(pipe)) for c in ds}
    if any(r["case_id"] not in keys for r in rows):  # (a line it cannot run again: it would be dropped)
        part = read_results_part(rd.results_path)
        raise DatasetError(str(rd.results_path), [
            Problem(n, "case_id", f"case {r['case_id']!r} is not in the run's dataset: a resume cannot run it again")
            for r, n in zip(part.rows, part.lines, strict=True) if r["case_id"] not in keys])
    finished = {r["case_id"] for r in rows if keys.get(r["case_id"]) == r.get("idempotency_key")}
    stale = [r["case_id"] for r in rows if r["case_id"] not in finished]
    if stale:  # lines of another config or dataset version: run those cases again
        atomic_write_text(rd.results_path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                   for r in rows if r["case_id"] in finished))
    _keep_traces(rd, finished)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rd.update_manifest(runner=cfg.to_dict(), status="running", finished_at=None, score_k=k,
                       resumed_at=[*(man.get("resumed_at") or []), now], **_earlier_settings(man, cfg, now))
    return complete(rd, ds, pipe, cfg, rid, finished=finished, score=score, k=k, corpus_dir=pm.get("corpus_dir"),
                    red=red)


def _earlier_settings(man: Mapping[str, Any], cfg: RunnerConfig, now: str) -> dict[str, Any]:
    """The manifest's ``runner_before`` when this resume runs with other settings than the sessions
    before it (a timeout, retries, a concurrency changed): each earlier setting kept with the time
    it ended, so the run says which of its cases ran under which."""
    prev = man.get("runner")
    if not isinstance(prev, dict) or prev == cfg.to_dict():
        return {}
    resume = len(man.get("resumed_at") or []) + 1  # (this resume's number: it changed them)
    return {"runner_before": [*(man.get("runner_before") or []), {"until": now, "resume": resume, "runner": prev}]}


def changed_settings(man: Mapping[str, Any]) -> list[str]:
    """``key: before -> now`` of each setting the last resume changed (none when it changed none)."""
    before = man.get("runner_before")
    resumed = man.get("resumed_at")
    if not (isinstance(before, list) and before and isinstance(resumed, list)
            and isinstance(before[-1], dict) and before[-1].get("resume") == len(resumed)):
        return []
    old, new = before[-1].get("runner") or {}, man.get("runner") or {}
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _keep_traces(rd: RunDir, finished: set[str]) -> None:
    """Drop the traces of cases that will run again (their attempts are re-recorded)."""
    if not rd.traces_path.is_file():
        return
    keep: list[str] = []
    dropped = 0
    for _, raw, complete_line in iter_jsonl(rd.traces_path):
        try:
            cid = json.loads(raw).get("case_id") if complete_line else None
        except json.JSONDecodeError:
            cid = None
        if cid in finished:
            keep.append(raw)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(rd.traces_path, "".join(keep))
