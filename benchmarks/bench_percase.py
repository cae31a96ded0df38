"""The per-case part of `labkit score`: ``score_cases`` on recorded results, in one process.

Data: the recorded results of benchmarks/bench_score.py (``write_data``: N cases, 8 retrieved
items with text each, answers with citations, a reference answer on a third of the cases).
The results and the dataset are read first (not timed) and paired in dataset order; then
``score_cases(cases, results, k=5)`` is timed, wall and CPU seconds of this process, best of
``--repeat``, with the cycle collector on (as a caller gets it) and paused (as ``labkit score``
runs it). Each measurement is a process of its own.

``--baseline DIR``: another labkit source tree (e.g. ``git archive <commit> | tar -x -C DIR``) is
timed the same way, alternating with this one, and both frames are compared bit for bit
(values, reasons, raw columns): the ratio baseline / this one is printed.

Usage: .venv/bin/python benchmarks/bench_percase.py [--n 100000] [--repeat 3] [--baseline DIR]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: score_cases at 100,000 recorded results, wall seconds (cycle collector on).
TARGET_S = {100_000: 3.0}

CHILD = r'''
import gc, json, pickle, sys, time

def main():
    from labkit.cases import load_cases
    from labkit.metrics import score_cases
    from labkit.runs import read_results

    ds, results_path, repeat, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cases = list(load_cases(ds))
    by_id = {r["case_id"]: r for r in read_results(results_path)}
    results = [by_id[c.id] for c in cases]
    score_cases(cases[:50], results[:50], k=5)  # first use: lazy imports (pandas), not timed
    figures = {}
    for mode in ("gc_on", "gc_paused"):
        best_wall = best_cpu = float("inf")
        for _ in range(repeat):
            if mode == "gc_paused":
                gc.disable()
            t, c = time.perf_counter(), time.process_time()
            frame = score_cases(cases, results, k=5)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            gc.enable()
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        figures[mode] = {"wall_s": round(best_wall, 3), "cpu_s": round(best_cpu, 3)}
    if out != "-":
        frame.to_pickle(out)
    print(json.dumps(figures))

if __name__ == "__main__":
    main()
'''


def measure(tree: Path, ds: Path, results: Path, repeat: int, out: str) -> dict[str, Any]:
    """score_cases of the labkit in ``tree``, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
    try:
        r = subprocess.run([sys.executable, f.name, str(ds), str(results), str(repeat), out], cwd=tree, env=env,
                           capture_output=True, text=True, timeout=3600)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise SystemExit(f"score_cases in {tree} failed:\n{r.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return figures


def identical(a_path: str, b_path: str) -> bool:
    """Whether two score frames hold the same columns, dtypes and values bit for bit (NaN = NaN)."""
    import numpy as np
    import pandas as pd

    a, b = pd.read_pickle(a_path), pd.read_pickle(b_path)
    if list(a.columns) != list(b.columns) or list(a.dtypes) != list(b.dtypes):
        return False
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype == np.float64:
            if not np.array_equal(x.view(np.int64), y.view(np.int64)):
                return False
        elif x.tolist() != y.tolist():
            return False
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="recorded results")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per measurement (best is kept)")
    ap.add_argument("--baseline", type=Path, default=None, help="another labkit source tree to time beside")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "labkit-bench-score"),
                    help="where the generated files are kept (shared with bench_score.py)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_score

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    ds, run = bench_score.write_data(args.n, folder)
    results = run / "results.jsonl"
    result: dict[str, Any] = {"bench": "percase", "n": args.n, "k": 5}
    with tempfile.TemporaryDirectory() as tmp:
        ours_out, base_out = os.path.join(tmp, "ours.pkl"), os.path.join(tmp, "base.pkl")
        ours = measure(ROOT, ds, results, args.repeat, ours_out)
        line = (f"{args.n:,} cases: score_cases {ours['gc_on']['wall_s']:.2f} s wall "
                f"({ours['gc_on']['cpu_s']:.2f} s CPU), collector paused {ours['gc_paused']['wall_s']:.2f} s")
        result.update({f"score_cases_{m}_{k}": v for m, fig in ours.items() for k, v in fig.items()})
        if args.baseline is not None:
            base = measure(args.baseline, ds, results, args.repeat, base_out)
            ours2 = measure(ROOT, ds, results, args.repeat, "-")  # alternate: base between two of ours
            for m in ours:
                for k in ours[m]:
                    ours[m][k] = min(ours[m][k], ours2[m][k])
            result.update({f"score_cases_{m}_{k}": v for m, fig in ours.items() for k, v in fig.items()})
            result.update({f"baseline_{m}_{k}": v for m, fig in base.items() for k, v in fig.items()})
            ratio = base["gc_on"]["wall_s"] / ours["gc_on"]["wall_s"]
            result["baseline_over_ours_gc_on"] = round(ratio, 2)
            result["baseline_over_ours_gc_paused"] = round(base["gc_paused"]["wall_s"] / ours["gc_paused"]["wall_s"], 2)
            result["identical_to_baseline"] = identical(ours_out, base_out)
            line += (f"; baseline {base['gc_on']['wall_s']:.2f} s ({base['gc_paused']['wall_s']:.2f} s paused): "
                     f"{ratio:.1f}x faster, identical frames: {result['identical_to_baseline']}")
    print(line)
    if args.n in TARGET_S:
        result[f"target_met_{args.n}"] = bool(ours["gc_on"]["wall_s"] < TARGET_S[args.n])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
