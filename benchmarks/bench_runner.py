"""Runner throughput and overhead.

1. 2,000 cases through a pipeline that waits 20 ms (``asyncio.sleep``) at
   concurrency 64: achieved cases/s against the ideal concurrency / latency
   (64 / 0.02 = 3,200 cases/s), beside a bare asyncio loop doing the same waits in the same
   run; the target is at least 0.95 of ideal, or at least 0.98 of the bare loop's figure.
2. The runner's own cost per case with a zero-latency pipeline (async and sync):
   wall time of the whole run (manifest, traces, redaction, appends + flush per
   case, final reordering; scoring off) divided by the cases.
3. For context, in the same runs: the wall time of a run of one case, the fixed
   cost every run pays (manifest, final reordering, their atomic writes, each
   flushed to disk), which the figures above include.

Every run writes a real run directory under a temporary folder. The last line
printed is one JSON object with the figures (README, `make bench`).

    .venv/bin/python benchmarks/bench_runner.py [--cases 2000] [--concurrency 64] [--latency 0.02] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit.cases import EvalCase, as_cases, load_cases, save_cases
from labkit.runner import RunnerConfig, run


def make_cases(n: int) -> Any:
    return as_cases([{"id": f"b{i:05d}", "question": f"benchmark question number {i}"} for i in range(n)])


def timed_run(cases: Any, fn: Any, out: Path, concurrency: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, every thread) of one run."""
    cfg = RunnerConfig(concurrency=concurrency, progress=False, timeout_s=30.0)
    t, c = time.perf_counter(), time.process_time()
    rd = run(cases, fn, out, config=cfg, score=False)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    rows = rd.results()
    assert len(rows) == len(cases) and all(r["status"] == "ok" for r in rows), "benchmark run lost cases"
    return elapsed, cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest wall time of the runs, and the lowest CPU time (each the least disturbed figure)."""
    return min(w for w, _ in runs), min(c for _, c in runs)


def bare_asyncio(n: int, concurrency: int, latency: float) -> float:
    """The same workload with no runner at all: the event loop's own ceiling here."""

    async def go() -> float:
        it = iter(range(n))

        async def worker() -> None:
            for _ in it:
                await asyncio.sleep(latency)

        t = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        return time.perf_counter() - t

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.02, help="pipeline latency in seconds")
    ap.add_argument("--repeat", type=int, default=5, help="best of N")
    a = ap.parse_args()
    latency = a.latency

    async def sleepy_fn(case: EvalCase) -> dict[str, Any]:
        await asyncio.sleep(latency)
        return {"answer": "ok", "usage": {"input_tokens": 10, "output_tokens": 2}, "cost_usd": 0.0001}

    async def instant(case: EvalCase) -> dict[str, Any]:
        return {"answer": "ok", "usage": {"input_tokens": 10, "output_tokens": 2}, "cost_usd": 0.0001}

    def instant_sync(case: EvalCase) -> dict[str, Any]:
        return {"answer": "ok", "usage": {"input_tokens": 10, "output_tokens": 2}, "cost_usd": 0.0001}

    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        root = Path(tmp)
        cases = load_cases(save_cases(make_cases(a.cases), root / "cases.jsonl"))  # as with --dataset FILE
        timed_run(make_cases(50), instant, root / "warmup", a.concurrency)  # imports, caches
        one = load_cases(save_cases(make_cases(1), root / "one.jsonl"))
        bare, sleepy, zero, zsync, single = [], [], [], [], []
        for i in range(a.repeat):  # interleaved, so a busy spell of the machine hits all of them alike
            bare.append(bare_asyncio(len(cases), a.concurrency, latency))
            sleepy.append(timed_run(cases, sleepy_fn, root / f"sleepy{i}", a.concurrency))
            zero.append(timed_run(cases, instant, root / f"zero{i}", a.concurrency))
            zsync.append(timed_run(cases, instant_sync, root / f"zsync{i}", a.concurrency))
            single.append(timed_run(one, instant, root / f"one{i}", a.concurrency))
        bare_s = min(bare)
        single_s, _ = best(single)
        sleepy_s, _ = best(sleepy)
        zero_s, zero_cpu = best(zero)
        zero_sync_s, zero_sync_cpu = best(zsync)

    n = len(cases)
    cps = n / sleepy_s
    ideal = a.concurrency / latency
    ratio = cps / ideal
    over_us = zero_s / n * 1e6
    over_sync_us = zero_sync_s / n * 1e6
    cpu_us, cpu_sync_us = zero_cpu / n * 1e6, zero_sync_cpu / n * 1e6
    bare_eff = n / bare_s / ideal
    print(f"cases                     {n}")
    print(f"pipeline latency          {latency * 1000:.1f} ms (asyncio.sleep), concurrency {a.concurrency}")
    print(f"wall time                 {sleepy_s:.3f} s (best of {a.repeat}, files written, scoring off)")
    print(f"achieved                  {cps:,.1f} cases/s")
    print(f"ideal                     {ideal:,.1f} cases/s (concurrency / latency)")
    print(f"efficiency                {ratio:.3f} of ideal (target >= 0.95, or >= 0.98 of the bare loop's)")
    print(f"bare asyncio, no runner   {bare_eff:.3f} of ideal (this machine's event-loop ceiling, same run)")
    print(f"runner / bare loop        {ratio / bare_eff:.3f}")
    print(f"runner overhead per case  {over_us:.1f} us wall, {cpu_us:.1f} us CPU (async zero-latency pipeline;"
          " target < 100)")
    print(f"runner overhead per case  {over_sync_us:.1f} us wall, {cpu_sync_us:.1f} us CPU (sync zero-latency"
          " pipeline, thread pool; target < 100)")
    print(f"fixed cost of a run       {single_s * 1000:.1f} ms wall (a run of one case: manifest, final reordering,"
          f" atomic writes flushed to disk; {single_s / sleepy_s:.1%} of the 20 ms run)")
    print(json.dumps({
        "bench": "runner",
        "cases": n,
        "concurrency": a.concurrency,
        "latency_s": latency,
        "cases_per_s": round(cps, 1),
        "ideal_cases_per_s": round(ideal, 1),
        "efficiency": round(ratio, 4),
        "bare_asyncio_efficiency": round(bare_eff, 4),
        "efficiency_over_bare": round(ratio / bare_eff, 4),
        "overhead_us_per_case": round(over_us, 1),
        "overhead_us_per_case_sync": round(over_sync_us, 1),
        "overhead_cpu_us_per_case": round(cpu_us, 1),
        "overhead_cpu_us_per_case_sync": round(cpu_sync_us, 1),
        "fixed_ms_per_run": round(single_s * 1000, 2),
    }))


if __name__ == "__main__":
    main()
