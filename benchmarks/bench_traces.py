"""Benchmark: write and query 1,000,000 trace records.

Write path = what the runner does per case attempt: ``make_trace`` →
``Redactor.redact`` → one JSON line appended to ``traces.jsonl``. Records are
written by one process per CPU, each into its own run directory (as concurrent
runs do); records/s is total records over wall time, and the single-process
rate is reported beside it.

Query: p95 latency by prompt version over all records, (a) straight from the
JSONL files and (b) after compaction to Parquet (``labkit traces compact``);
each the best of ``--repeat`` runs on a fresh store. Target: under 1 s.
Straight from the JSONL it is timed two ways, alternating in the same runs:
``latency_by_prompt_version(raw=True)`` (the ``traces_raw`` view, every column
typed) and a narrow ``read_json`` of only trace_id, prompt_version and
latency_ms (docs/traces.md, Benchmark: the lines are parsed whole either way).

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


def _write_shard(args: tuple[str, int, int]) -> tuple[int, float]:
    run_dir, n, seed = args
    from labkit.trace.record import dumps_trace
    from labkit.trace.redact import Redactor
    from labkit.trace.synth import synthetic_traces

    red = Redactor()
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(d / "traces.jsonl", "a", encoding="utf-8") as f:
        buf: list[str] = []
        for rec in synthetic_traces(n, run_id=d.name, seed=seed):
            buf.append(dumps_trace(red.redact(rec)))
            if len(buf) >= 1000:
                f.write("".join(buf))
                f.flush()
                buf.clear()
        f.write("".join(buf))
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="trace records to write")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="writer processes")
    ap.add_argument("--repeat", type=int, default=5, help="query repetitions (best is reported)")
    ap.add_argument("--out", help="directory for the runs (default: a temp dir, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the written runs")
    args = ap.parse_args(argv)

    from labkit.trace.compaction import compact
    from labkit.trace.store import TraceStore

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
        t_write = time.perf_counter() - t0
        written = sum(n for n, _ in outs)
        per_proc = sum(n / s for n, s in outs) / len(outs)
        size = sum((Path(d) / "traces.jsonl").stat().st_size for d, _, _ in shards)
        print(f"wrote {written:,} trace records ({size / 1e9:.2f} GB JSONL) with {w} processes "
              f"in {t_write:.1f} s: {written / t_write:,.0f} records/s ({per_proc:,.0f} records/s per process)")

        dirs = [d for d, _, _ in shards]

        files = ", ".join(f"'{d}/traces.jsonl'" for d in dirs)
        narrow_sql = (
            "SELECT prompt_version, count(*) AS traces, quantile_cont(latency_ms, 0.95) AS latency_ms "
            f"FROM read_json([{files}], columns={{'trace_id': 'VARCHAR', 'prompt_version': 'VARCHAR', "
            "'latency_ms': 'DOUBLE'}, format='newline_delimited', ignore_errors=true, "
            "maximum_object_size=67108864) WHERE trace_id IS NOT NULL GROUP BY prompt_version ORDER BY prompt_version"
        )

        def p95_query(with_narrow: bool = False) -> tuple[float, Any, float]:
            """Best of --repeat: latency_by_prompt_version(raw=True) (the traces_raw view:
            every column typed) and, alternating with it, the narrow read of 3 columns."""
            best, df, best_narrow, ref = float("inf"), None, float("inf"), None
            for i in range(args.repeat):
                with TraceStore(dirs) as st:
                    for which in ("narrow", "view") if with_narrow and i % 2 else ("view", "narrow"):
                        if which == "narrow" and not with_narrow:
                            continue
                        t = time.perf_counter()
                        if which == "view":
                            df = st.latency_by_prompt_version(0.95, raw=True)
                            best = min(best, time.perf_counter() - t)
                        else:
                            ref = st.query(narrow_sql)
                            best_narrow = min(best_narrow, time.perf_counter() - t)
            if with_narrow:
                assert ref is not None and ref.equals(df), "narrow read and view disagree"
            return best, df, best_narrow

        t_jsonl, df, t_narrow = p95_query(with_narrow=True)
        n_rows = int(df["traces"].sum())
        print(f"p95 latency by prompt version over the JSONL ({n_rows:,} rows): {t_jsonl:.3f} s "
              f"(reading only trace_id, prompt_version, latency_ms instead: {t_narrow:.3f} s)")
        t0 = time.perf_counter()
        compact(dirs)
        t_compact = time.perf_counter() - t0
        pq = sum((Path(d) / "traces.parquet").stat().st_size for d in dirs)
        print(f"compacted to Parquet in {t_compact:.1f} s ({pq / 1e6:.0f} MB)")
        t_parquet, df, _ = p95_query()
        assert int(df["traces"].sum()) == written, "query did not see every record"
        print(f"p95 latency by prompt version over Parquet: {t_parquet:.3f} s")
        print(df.to_string(index=False))
        with TraceStore(dirs) as st:
            t = time.perf_counter()
            st.query("SELECT count(*) FROM traces")
            t_joined = time.perf_counter() - t
        print(f"count(*) through the joined traces view (scores, feedback, final-attempt window): {t_joined:.3f} s")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "bench": "traces",
        "records": written,
        "writers": w,
        "write_s": round(t_write, 2),
        "records_per_s": round(written / t_write, 1),
        "records_per_s_per_process": round(per_proc, 1),
        "jsonl_gb": round(size / 1e9, 3),
        "p95_by_prompt_version_jsonl_s": round(t_jsonl, 3),
        "p95_by_prompt_version_jsonl_narrow_s": round(t_narrow, 3),
        "jsonl_under_target": bool(t_jsonl < 1.0),
        "jsonl_narrow_under_target": bool(t_narrow < 1.0),
        "ratio_view_over_narrow_jsonl": round(t_jsonl / t_narrow, 2),
        "compact_s": round(t_compact, 2),
        "p95_by_prompt_version_parquet_s": round(t_parquet, 3),
        "target_s": 1.0,
        "under_target": bool(t_parquet < 1.0),
        "ratio_target_over_parquet": round(1.0 / t_parquet, 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
