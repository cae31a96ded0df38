"""The Dask executor on a local cluster started by the test: same result files as local."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest

from labkit.cases import EvalCase, as_cases
from labkit.openai_compat import ServerError
from labkit.runner import RunnerConfig, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as c:
        yield c


async def dpipe(case: EvalCase) -> dict:
    await asyncio.sleep(0.001)
    if case.id.endswith("7"):
        raise ValueError("bug on sevens")
    return {"answer": f"answer to {case.question}", "cost_usd": 0.002,
            "retrieved": [{"id": "doc#1", "source": "doc", "score": 1.0}]}


def flaky(case: EvalCase) -> dict:
    raise ServerError("always down")


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]


def test_dask_executor_writes_the_same_results_as_local(tmp_path: Path, cluster: Any) -> None:
    ds = as_cases([{"id": f"d{i:03d}", "question": f"q {i}"} for i in range(50)])
    local = run(ds, dpipe, tmp_path / "local", config=RunnerConfig(progress=False), run_id="x", score=False)
    cfg = RunnerConfig(executor="dask", scheduler=cluster.scheduler_address, batch_size=8, progress=False)
    rd = run(ds, dpipe, tmp_path / "dask", config=cfg, run_id="x")
    assert strip(rd.results()) == strip(local.results())
    assert [r["case_id"] for r in rd.results()] == [c.id for c in ds]
    statuses = [r["status"] for r in rd.results()]
    assert statuses.count("error") == 5
    traces = [json.loads(line) for line in rd.traces_path.read_text().splitlines()]
    assert len(traces) == 50
    assert rd.manifest["runner"]["executor"] == "dask"
    assert rd.manifest["pipeline_calls"] == 50
    assert rd.metrics()["n_cases"] == 50


def test_dask_retries_and_cache(tmp_path: Path, cluster: Any) -> None:
    ds = as_cases([{"id": f"e{i}", "question": f"q {i}"} for i in range(6)])
    cfg = RunnerConfig(executor="dask", scheduler=cluster.scheduler_address, batch_size=4, retries=1,
                       backoff_base_s=0.0, progress=False, cache_dir=str(tmp_path / "cache"))
    rd = run(ds, flaky, tmp_path / "a", config=cfg, score=False)
    assert all(r["status"] == "error" and r["attempts"] == 2 for r in rd.results())
    ok = run(ds, dpipe, tmp_path / "b", config=cfg, score=False)
    again = run(ds, dpipe, tmp_path / "c", config=cfg, score=False)
    assert ok.manifest["pipeline_calls"] == 6 and again.manifest["pipeline_calls"] == 0
    assert all(r["from_cache"] for r in again.results())


def test_worker_processes_run_the_shipped_pipeline_like_local(tmp_path: Path) -> None:
    """Real scale-out: the pipeline is pickled to separate worker processes."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as procs:
        cfg = RunnerConfig(executor="dask", scheduler=procs.scheduler_address, batch_size=4, progress=False)
        rd = run("data/quick_lab.jsonl", "data/pipelines/baseline.yaml", tmp_path / "dask", config=cfg,
                 run_id="p")
    local = run("data/quick_lab.jsonl", "data/pipelines/baseline.yaml", tmp_path / "local",
                config=RunnerConfig(progress=False), run_id="p")
    assert rd.manifest["pipeline_calls"] == 10
    assert rd.results() == local.results()  # the simulated latency is modelled, so even timings agree
