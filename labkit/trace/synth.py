"""Synthetic trace records, for tests, benchmarks and demos of the store.

The records are full trace records (``schema_version`` 1) built with
:func:`labkit.trace.record.make_trace` from generated cases and results, so
they exercise the same code path as the runner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit.cases import EvalCase
from labkit.paths import owner_only
from labkit.trace.record import dumps_trace, make_trace, trace_environment


@dataclass(frozen=True)
class _Pipe:
    name: str
    config: dict[str, Any]
    config_hash: str


PROMPT_VERSIONS = ("rag-v1", "rag-v2", "rag-v3")
MODELS = (("sim-small", "labkit"), ("sim-large", "labkit"))


def synthetic_traces(
    n: int, *, run_id: str = "synthetic", seed: int = 0, ts0: float = 1_700_000_000.0
) -> Iterator[dict[str, Any]]:
    """``n`` plausible trace records: mixed prompt versions, models, statuses, tools."""
    for attempt in synthetic_attempts(n, run_id=run_id, seed=seed, ts0=ts0):
        yield make_trace(**attempt)


def synthetic_attempts(
    n: int, *, run_id: str = "synthetic", seed: int = 0, ts0: float = 1_700_000_000.0
) -> Iterator[dict[str, Any]]:
    """What the runner holds of each of ``n`` plausible case attempts when it builds its trace:
    the :func:`~labkit.trace.record.make_trace` arguments (case, result line, pipeline, times)."""
    rng = np.random.default_rng(seed)
    draws = (rng.integers(0, len(PROMPT_VERSIONS), n), rng.integers(0, len(MODELS), n),
             rng.lognormal(mean=6.8, sigma=0.5, size=n), rng.random(n), rng.random(n))
    pipes = {
        (i, j): _Pipe(
            name=f"rag-{PROMPT_VERSIONS[i]}",
            config={"prompt_version": PROMPT_VERSIONS[i], "model": {"name": MODELS[j][0], "provider": MODELS[j][1]}},
            config_hash=f"{i}{j}" * 8,
        )
        for i in range(len(PROMPT_VERSIONS))
        for j in range(len(MODELS))
    }
    envs = {key: trace_environment(p.config) for key, p in pipes.items()}  # read once, as a run does
    t = ts0
    for k, pv, md, lat, st, tools in _numbers(draws):
        cid = f"case-{k:07d}"
        case = EvalCase(id=cid, question=f"How do I handle request {k}?", tags={"risk": "low"})
        status = "ok" if st > 0.04 else ("timeout" if st > 0.02 else "error")
        doc = f"doc-{k % 7}"
        result: dict[str, Any] = {
            "case_id": cid,
            "status": status,
            "answer": f"Follow the runbook [{doc}#1]." if status == "ok" else None,
            "retrieved": [{"id": f"{doc}#1", "source": doc, "score": 7.0}, {"id": f"{doc}#2", "source": doc, "score": 5.5}],
            "citations": [f"{doc}#1"] if status == "ok" else [],
            "tool_calls": [{"name": "lookup_account", "args": {"user_id": f"u-{k % 97}"}, "status": "ok", "output": "found"}]
            if tools < 0.2
            else [],
            "usage": {"input_tokens": 400 + k % 300, "output_tokens": 40 + k % 60},
            "cost_usd": round((400 + k % 300) * 1.5e-7 + (40 + k % 60) * 6e-7, 8),
            "latency_ms": round(lat, 3),
            "attempts": 1,
            "error": None if status == "ok" else ("TimeoutError: deadline" if status == "timeout" else "PipelineError: boom"),
            "trace_id": None,
            "from_cache": False,
        }
        dur = lat / 1000.0
        yield {"run_id": run_id, "case": case, "result": result, "pipeline": pipes[(pv, md)], "attempt": 1,
               "ts_start": t, "ts_end": t + dur, "environment": envs[(pv, md)]}
        t += 0.05


def _numbers(draws: tuple[np.ndarray, ...], block: int = 4096) -> Iterator[tuple[Any, ...]]:
    """``(k, *the k-th draw of each array)`` as Python numbers, a block at a time (indexing an
    array makes a NumPy scalar per item; converting all of it at once, lists the collector walks)."""
    n = len(draws[0])
    for base in range(0, n, block):
        yield from zip(range(base, min(n, base + block)), *(d[base:base + block].tolist() for d in draws), strict=True)


def write_synthetic_run(run_dir: str | os.PathLike[str], n: int, *, seed: int = 0) -> Path:
    """Write ``n`` synthetic records to ``run_dir/traces.jsonl``; returns the file."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    p = d / "traces.jsonl"
    with open(p, "a", encoding="utf-8", opener=owner_only) as f:
        for rec in synthetic_traces(n, run_id=d.name, seed=seed):
            f.write(dumps_trace(rec))
    return p
