"""Benchmark: write and query 1,000,000 trace records.

Write path = what the runner does per case attempt: ``make_trace`` (building the
record from the case, its result line and the pipeline) → its redacted JSON line
(``Redactor.dumps_line``: exactly ``dumps_trace(redact(record))``, without the walk
when nothing in the record can change) appended to ``traces.jsonl``, in batches of
1,000 with one write and one flush each (as the runner's hand-over does). The
attempts themselves (cases, result lines: what the pipeline would have returned) are
made by ``synthetic_attempts`` a batch at a time outside the timed sections, as the
runner has them before it builds a trace; their cost is printed apart. Records are
written by one process per CPU, each into its own run directory (as concurrent runs
do); records/s is total records over the timed wall time of the slowest process. Each
process also reports the rate of the writer alone (redaction, JSON, append: building
the records timed apart) and its CPU time per record (the figures a busy machine
disturbs least). Target: at least 50,000 records/s.

When a shard's writing ends, the shard's run "ends" the way a run does
(:func:`labkit.runner.session.compact_traces` with the default threshold): its
traces are compacted to ``traces.parquet``, so the default store reads them
from there. Query: p95 latency by prompt version over all records, best of
``--repeat`` runs on a fresh store, (a) from the default store (the compacted
Parquet the runs wrote) and (b) straight from the JSONL files. Target: under 0.5 s.

    .venv/bin/python benchmarks/bench_traces.py [--n 1000000] [--out DIR] [--keep]

The last line is one JSON object (README, `make bench`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

WRITE_TARGET = 50_000.0
QUERY_TARGET_S = 0.5


def _write_shard(args: tuple[str, int, int]) -> dict[str, float]:
    run_dir, n, seed = args
    from labkit.runner.config import DEFAULT_COMPACT_TRACES_BYTES
    from labkit.runner.session import compact_traces
    from labkit.runs import RunDir
    from labkit.trace.record import make_trace
    from labkit.trace.redact import Redactor
    from labkit.trace.synth import synthetic_attempts

    red = Redactor()
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    wall = build = write = inputs = 0.0
    with open(d / "traces.jsonl", "a", encoding="utf-8") as f:
        gen = synthetic_attempts(n, run_id=d.name, seed=seed)
        left = n
        while left:
            k = min(1000, left)
            c = time.process_time()
            attempts = [next(gen) for _ in range(k)]  # what the pipeline returned: not timed
            t, c0 = time.perf_counter(), time.process_time()
            batch = [make_trace(**a) for a in attempts]
            c1 = time.process_time()
            f.write("".join(red.dumps_line(rec) for rec in batch))  # == dumps_trace(red.redact(rec))
            f.flush()
            c2 = time.process_time()
            wall += time.perf_counter() - t
            inputs, build, write, left = inputs + c0 - c, build + c1 - c0, write + c2 - c1, left - k
    t = time.perf_counter()
    store = compact_traces(RunDir(d), DEFAULT_COMPACT_TRACES_BYTES)  # what a run does when it ends
    return {"n": n, "wall": wall, "cpu": build + write, "build_cpu": build, "write_cpu": write,
            "inputs_cpu": inputs, "compact_s": time.perf_counter() - t,
            "compacted": float(bool(store and store.get("file")))}


def _p95(sources: list[Path], repeat: int) -> tuple[float, Any, str]:
    """Best of ``repeat`` (a fresh store each time): p95 latency by prompt version, and where it read."""
    from labkit.trace.store import TraceStore

    best, df, reading = float("inf"), None, ""
    for _ in range(repeat):
        with TraceStore(sources) as st:
            t = time.perf_counter()
            df = st.latency_by_prompt_version(0.95, raw=True)
            best = min(best, time.perf_counter() - t)
            reading = st.reading()
    return best, df, reading


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="trace records to write")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="writer processes")
    ap.add_argument("--repeat", type=int, default=5, help="query repetitions (best is reported)")
    ap.add_argument("--out", help="directory for the runs (default: a temp dir, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the written runs")
    args = ap.parse_args(argv)

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="labkit-bench-traces-"))
    root.mkdir(parents=True, exist_ok=True)
    w = max(1, args.workers)
    sizes = [args.n // w + (1 if i < args.n % w else 0) for i in range(w)]
    shards = [(str(root / f"run-{i:02d}"), sizes[i], i) for i in range(w)]
    try:
        t0 = time.perf_counter()
        if w == 1:
            outs = [_write_shard(shards[0])]
        else:
            with mp.get_context("spawn").Pool(w) as pool:
                outs = pool.map(_write_shard, shards)
        t_total = time.perf_counter() - t0
        written = int(sum(o["n"] for o in outs))
        t_write = max(o["wall"] for o in outs)  # building and writing: no start-up, inputs or compaction
        rate = written / t_write
        writer_rate = sum(o["n"] / o["write_cpu"] for o in outs)  # writer alone, CPU time, all processes
        cpu_us = sum(o["cpu"] for o in outs) / written * 1e6
        build_us = sum(o["build_cpu"] for o in outs) / written * 1e6
        write_us = sum(o["write_cpu"] for o in outs) / written * 1e6
        inputs_us = sum(o["inputs_cpu"] for o in outs) / written * 1e6
        dirs = [Path(d) for d, _, _ in shards]
        size = sum((d / "traces.jsonl").stat().st_size for d in dirs)
        t_compact = max(o["compact_s"] for o in outs)
        print(f"wrote {written:,} trace records ({size / 1e9:.2f} GB JSONL) with {w} process(es) in "
              f"{t_write:.1f} s: {rate:,.0f} records/s (target >= {WRITE_TARGET:,.0f})")
        print(f"CPU per record {cpu_us:.1f} us: building it (make_trace) {build_us:.1f} us, writing it "
              f"(redaction, JSON, append) {write_us:.1f} us; the writer alone: {writer_rate:,.0f} records/s "
              f"of CPU time over {w} process(es); making the attempts (not timed) {inputs_us:.1f} us")
        print(f"each run compacted its traces when it ended: {t_compact:.1f} s "
              f"({sum(o['compacted'] for o in outs):.0f} of {w} runs; {t_total:.1f} s in all)")

        t_store, df, reading = _p95(dirs, args.repeat)
        assert int(df["traces"].sum()) == written, "query did not see every record"
        print(f"p95 latency by prompt version, default store ({reading}): {t_store:.3f} s "
              f"(target < {QUERY_TARGET_S})")
        print(df.to_string(index=False))
        t_jsonl, df_j, _ = _p95([d / "traces.jsonl" for d in dirs], args.repeat)
        assert df_j["traces"].equals(df["traces"]), "JSONL and compacted store disagree"
        print(f"p95 latency by prompt version straight from the JSONL: {t_jsonl:.3f} s")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "bench": "traces",
        "records": written,
        "writers": w,
        "write_s": round(t_write, 2),
        "records_per_s": round(rate, 1),
        "write_target_records_per_s": WRITE_TARGET,
        "write_meets_target": bool(rate >= WRITE_TARGET),
        "cpu_us_per_record": round(cpu_us, 1),
        "build_cpu_us_per_record": round(build_us, 1),
        "write_cpu_us_per_record": round(write_us, 1),
        "inputs_cpu_us_per_record": round(inputs_us, 1),
        "writer_records_per_cpu_s": round(writer_rate, 1),
        "jsonl_gb": round(size / 1e9, 3),
        "compact_s": round(t_compact, 2),
        "store_read": "parquet" if "from traces.parquet (compacted" in reading else "jsonl",
        "p95_by_prompt_version_store_s": round(t_store, 3),
        "p95_by_prompt_version_jsonl_s": round(t_jsonl, 3),
        "query_target_s": QUERY_TARGET_S,
        "query_under_target": bool(t_store < QUERY_TARGET_S),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
