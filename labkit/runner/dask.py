"""The Dask backend: batches of cases on a Dask distributed cluster (``executor: dask``).

Each batch runs on a worker through the same asyncio core (:func:`labkit.runner.local.run_cases`);
outcomes come back to the driver, which alone redacts, writes, caches and shows progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from labkit.cases import EvalCase
from labkit.errors import ConfigError
from labkit.resultline import make_line
from labkit.runner.config import RunnerConfig
from labkit.runner.executor import CaseOutcome
from labkit.runner.keys import case_key, pipeline_key_hashes
from labkit.runner.local import run_cases

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["dask_batch", "require_executor", "run_dask"]


def dask_batch(pipeline: LoadedPipeline, cfg: dict[str, Any], run_id: str, cases: list[EvalCase]) -> list[CaseOutcome]:
    """One batch on a Dask worker: the same asyncio core, outcomes back to the driver."""
    local = RunnerConfig.from_dict({**cfg, "executor": "local", "progress": False, "cache_dir": None})
    return run_cases(cases, pipeline, local, run_id=run_id)


def require_executor(cfg: RunnerConfig) -> None:
    """A MissingDependencyError when ``cfg`` runs on Dask and the extra is not installed: checked
    before a run writes anything (a run begun and refused would hold a manifest and refuse its retry)."""
    if cfg.executor == "dask":
        _distributed()


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        from labkit.errors import MissingDependencyError

        raise MissingDependencyError("dask[distributed]", extra="dask", feature="executor: dask") from None
    return distributed


def _client(cfg: RunnerConfig) -> tuple[Any, list[Any]]:
    """The Dask client to use, and what this run started (to close at its end)."""
    distributed = _distributed()
    if cfg.scheduler:
        try:
            client = distributed.Client(cfg.scheduler, timeout=30)
        except OSError as e:
            raise ConfigError(f"cannot reach Dask scheduler {cfg.scheduler!r}: {e}", field="runner.scheduler") from None
        return client, [client]
    try:
        return distributed.get_client(), []
    except ValueError:
        cluster = distributed.LocalCluster(processes=False, dashboard_address=None)
        client = distributed.Client(cluster)
        return client, [client, cluster]


def _failed_batch(batch: list[EvalCase], pipe: LoadedPipeline, run_id: str, e: Exception) -> list[CaseOutcome]:
    """The batch itself failed: its cases are errors, the run goes on."""
    from labkit.trace.record import trace_id_for

    outs = []
    for c in batch:
        key = case_key(c, *pipeline_key_hashes(pipe))
        res = make_line(c.id, "error", None, latency_ms=None, attempts=0,
                        error=f"dask batch failed: {type(e).__name__}: {e}",
                        error_type=type(e).__name__, trace_id=trace_id_for(run_id, c.id, 0),
                        answered_by=None, key=key)
        outs.append(CaseOutcome(c.id, res, [], 0))
    return outs


def run_dask(
    todo: Sequence[EvalCase],
    pipe: LoadedPipeline,
    cfg: RunnerConfig,
    run_id: str,
    done: Callable[[CaseOutcome], None],
) -> None:
    """Run ``todo`` in batches of ``batch_size`` on a Dask cluster; ``done`` is called on the
    driver for each case as its batch completes (the driver writes every file)."""
    client, owned = _client(cfg)  # first: a missing dask is a MissingDependencyError
    import distributed

    try:
        pfut = client.scatter(pipe, broadcast=True, hash=False)
        cfg_d = cfg.to_dict()
        batches = [list(todo[i : i + cfg.batch_size]) for i in range(0, len(todo), cfg.batch_size)]
        futs = {client.submit(dask_batch, pfut, cfg_d, run_id, b, pure=False): b for b in batches}
        for fut in distributed.as_completed(list(futs)):
            try:
                outs: list[CaseOutcome] = fut.result()
            except Exception as e:
                outs = _failed_batch(futs[fut], pipe, run_id, e)
            for o in outs:
                done(o)
    finally:
        for obj in owned:
            with contextlib.suppress(Exception):
                obj.close()
