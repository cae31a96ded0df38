"""`labkit score` end to end on recorded results, beside ranx end to end on the same files.

Data (seeded, written once per size under --dir): a dataset JSONL of N cases (5 categories,
3 risks, 5 kinds of unequal sizes; gold at source level, one case in 11 at chunk level, one in
17 without gold; must_include / must_not_include phrases; a reference answer on one case in
three) and a run directory whose results.jsonl holds one recorded result per case: 8
retrieved items with text (distinct ids at the gold level), answers quoting the context or
not, citations, usage, cost, lognormal latency, errors, retries and cache hits.

Timed, each as its own process (wall time; peak memory: ranx's peak RSS, and for labkit, whose
worker processes share the dataset's pages with it, the summed proportional set size of the
process tree sampled every 20 ms in a second run of the same command, not timed: sampling
stalls a large process):

- ``labkit score RUN --dataset DS`` (default metrics, k=5, 2,000 resamples, every slice);
- ranx end to end: parse both files with the standard json module, build Qrels and Run,
  evaluate its five metrics hit_rate, mrr, recall, precision, ndcg @5 (numba compiled once
  on a tiny input before, so its cache is warm and compiling is not counted).

Then labkit's scores.csv is compared with ranx's per-query values on every case with gold
(max absolute difference per metric; the target is 1e-9).

Each side is timed ``--repeat`` times (default 3), the two alternated so that a busy spell of
a shared machine hits both alike, and each side's fastest run is kept (the least disturbed).

Usage: .venv/bin/python benchmarks/bench_score.py [--sizes 100000] [--dir /tmp/labkit-bench-score]
[--repeat 3] (``--sizes 100000,1000000`` for the million: see docs/metrics.md for how its memory grows).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
K = 5
N_RETRIEVED = 8
WORDS = ["portal", "reset", "key", "invoice", "refund", "password", "token", "region", "quota",
         "limit", "owner", "billing", "cycle", "escalate", "ticket", "verify", "identity", "security",
         "export", "audit", "webhook", "retention"]
CATS = ("billing", "security", "account", "product", "shipping")
RISKS = ("low", "medium", "high")
KINDS = ("representative", "failure", "adversarial", "out_of_scope", "regression")
N_DOCS = 60


def _case(i: int, w: list[str], gold: int, cat: str, risk: str, kind: str) -> dict[str, Any]:
    case: dict[str, Any] = {"id": f"case-{i:07d}", "question": f"How do I {w[0]} the {w[1]} {w[2]} for {w[6]}?",
                            "tags": {"category": cat, "risk": risk, "kind": kind}}
    if i % 17:
        if i % 11 == 0:
            case["expected_chunks"] = [f"doc{gold}#0", f"doc{gold}#1"]
        else:
            case["expected_source"] = f"doc{gold}"
    if i % 5:
        case["must_include"] = [w[0]]
    if i % 7 == 0:
        case["must_not_include"] = ["password"]
    if i % 3 == 0:
        case["reference_answer"] = f"Open the {w[3]} page to {w[0]} the {w[1]} {w[2]}."
    return case


def write_data(n: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The dataset and a run directory of ``n`` recorded results (seeded); written once."""
    ds, run = folder / f"dataset-{n}.jsonl", folder / f"run-{n}"
    if (run / "results.jsonl").is_file() and ds.is_file():
        return ds, run
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    u = rng.random((n, 6))
    latency, cost = rng.lognormal(7.0, 0.5, n), rng.gamma(2.0, 0.0005, n)
    tok_in, tok_out = rng.integers(200, 1500, n), rng.integers(10, 300, n)
    docs = np.argsort(rng.random((n, N_DOCS)), axis=1)[:, :N_RETRIEVED]  # distinct sources per case
    gold_at = rng.integers(0, N_RETRIEVED, n)
    gold_other = rng.integers(0, N_DOCS, n)
    cat = rng.choice(len(CATS), size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    risk = rng.choice(len(RISKS), size=n, p=[0.5, 0.3, 0.2])
    kind = rng.choice(len(KINDS), size=n, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    words = np.argsort(rng.random((n, len(WORDS))), axis=1)[:, :8]
    with open(ds, "w", encoding="utf-8") as fd, open(run / "results.jsonl", "w", encoding="utf-8") as fr:
        for i in range(n):
            w = [WORDS[j] for j in words[i]]
            row = docs[i].tolist()
            gold = row[gold_at[i]] if u[i, 1] < 0.6 else int(gold_other[i])
            fd.write(json.dumps(_case(i, w, gold, CATS[cat[i]], RISKS[risk[i]], KINDS[kind[i]])) + "\n")
            status = "ok" if u[i, 0] > 0.04 else ("error" if u[i, 0] > 0.01 else "timeout")
            retrieved = [{"id": f"doc{d}#{j % 2}", "source": f"doc{d}", "score": round(1.0 - j / 10, 3),
                          "text": f"To {w[0]} the {w[1]} {w[2]}, open the {w[3]} page and {w[4]} it."}
                         for j, d in enumerate(row)] if status == "ok" else []
            extra = f" Then {w[5]} the {w[4]} {w[7]} quickly." if u[i, 3] < 0.5 else ""
            cited = retrieved[int(u[i, 4] * N_RETRIEVED)]["id"] if retrieved else None
            res = {"case_id": f"case-{i:07d}", "status": status,
                   "answer": f"To {w[0]} the {w[1]} {w[2]}, open the {w[3]} page [{cited}].{extra}"
                   if status == "ok" else None,
                   "retrieved": retrieved, "citations": [cited] if cited else [],
                   "usage": {"input_tokens": int(tok_in[i]), "output_tokens": int(tok_out[i])},
                   "cost_usd": float(cost[i]), "latency_ms": float(latency[i]),
                   "attempts": 2 if u[i, 5] < 0.05 else 1, "error": None if status == "ok" else "upstream failed"}
            if u[i, 5] > 0.97 and status == "ok":
                res.update(from_cache=True, attempts=0, cache_origin={"run_id": "r0", "trace_id": f"t{i}"})
            fr.write(json.dumps(res) + "\n")
    (run / "manifest.json").write_text(json.dumps({"run_id": run.name, "dataset": {"path": str(ds)}}) + "\n")
    return ds, run


RANX = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import ranx
ds, results, k, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
gold, level = {}, {}
with open(ds, encoding="utf-8") as f:
    for line in f:
        c = json.loads(line)
        g = c.get("expected_chunks") or ([c["expected_source"]] if c.get("expected_source") else [])
        if g:
            gold[c["id"]] = {x: 1 for x in g}
            level[c["id"]] = "chunk" if c.get("expected_chunks") else "source"
run = {}
with open(results, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        cid = r["case_id"]
        if cid not in gold:
            continue
        key = "id" if level[cid] == "chunk" else "source"
        docs = {}
        for j, it in enumerate(r.get("retrieved") or []):
            docs.setdefault(it[key], float(100 - j))
        run[cid] = docs or {"__none__": 0.0}
metrics = [f"hit_rate@{k}", f"mrr@{k}", f"recall@{k}", f"precision@{k}", f"ndcg@{k}"]
got = ranx.evaluate(ranx.Qrels(gold), ranx.Run(run), metrics, return_mean=False)
if out != "-":
    ids = sorted(gold)
    with open(out, "w") as f:
        json.dump({"ids": ids, **{m: [float(v) for v in got[m]] for m in metrics}}, f)
'''


def _tree_memory(pid: int) -> int:
    """Bytes of memory process ``pid`` and all its descendants hold now: the sum of their
    proportional set sizes (a page shared by a parent and its forked workers counts once,
    where summed RSS would count it in each); 0 once the process is gone."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup", encoding="ascii", errors="replace") as f:
                total += next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def timed(cmd: list[str], *, sample: bool = False) -> tuple[float, float, str]:
    """Wall seconds and peak memory (MiB) of a child process: its own peak RSS and, when
    ``sample``, the highest of its tree's summed proportional set sizes (with its worker
    processes, sampled every 20 ms); its stdout+stderr tail on failure. A sampled run is not
    timed: reading a large process's page tables for its PSS stalls it (at a million results,
    98 s unsampled against 142 s sampled every 50 ms)."""
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    peak = [0]
    with tempfile.TemporaryFile() as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sampled() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _tree_memory(p.pid))

        sampler = threading.Thread(target=sampled, daemon=True) if sample else None
        if sampler is not None:
            sampler.start()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        done.set()
        if sampler is not None:
            sampler.join()
        p.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{text[-3000:]}")
    return wall, max(peak[0] / 2**20, usage.ru_maxrss / 1024), text


def compare(run: Path, ranx_out: Path) -> dict[str, float]:
    """Max |labkit - ranx| per metric over the cases both measure."""
    import pandas as pd

    theirs = json.loads(ranx_out.read_text())
    ours = pd.read_csv(run / "scores.csv", usecols=["case_id", "retrieval_hit_rate", "mrr", "recall_at_k",
                                                    "precision_at_k", "ndcg"]).set_index("case_id")
    ours = ours.loc[theirs["ids"]]
    pairs = {"retrieval_hit_rate": "hit_rate", "mrr": "mrr", "recall_at_k": "recall",
             "precision_at_k": "precision", "ndcg": "ndcg"}
    out = {}
    for name, m in pairs.items():
        a, b = ours[name].to_numpy(dtype=float), np.asarray(theirs[f"{m}@{K}"])
        both = np.isfinite(a)
        out[name] = float(np.max(np.abs(a[both] - b[both]))) if both.any() else float("nan")
    return out


def bench_size(n: int, folder: Path, repeat: int = 1) -> dict[str, Any]:
    t = time.perf_counter()
    ds, run = write_data(n, folder)
    print(f"data for {n:,} cases in {folder} ({time.perf_counter() - t:.1f} s to make or find)")
    py = sys.executable
    score = [py, "-m", "labkit.cli", "score", str(run), "--dataset", str(ds)]
    script = folder / "ranx_end_to_end.py"
    script.write_text(RANX)
    ranx_out = folder / f"ranx-{n}.json"
    ranx = [py, str(script), str(ds), str(run / "results.jsonl"), str(K), str(ranx_out)]
    labs: list[float] = []
    ranxs: list[tuple[float, float]] = []
    for _ in range(repeat):  # alternated, so a busy spell of the machine hits both alike
        labs.append(timed(score)[0])
        ranxs.append(timed(ranx)[:2])
    _, lab_mb, _ = timed(score, sample=True)  # the same command again, for the memory of its workers
    lab_s, (ranx_s, ranx_mb) = min(labs), min(ranxs)
    diff = compare(run, ranx_out)
    ratio = ranx_s / lab_s
    runs = f" (best of {repeat}: labkit {', '.join(f'{v:.2f}' for v in labs)} s; ranx " \
           f"{', '.join(f'{v:.2f}' for v, _ in ranxs)} s)" if repeat > 1 else ""
    print(f"{n:>9,} cases: labkit score {lab_s:6.2f} s ({lab_mb:,.0f} MiB peak memory); ranx end to end "
          f"{ranx_s:6.2f} s ({ranx_mb:,.0f} MiB); ranx / labkit {ratio:.2f}x; "
          f"max |labkit - ranx| {max(diff.values()):.1e}{runs}")
    out = {f"labkit_score_{n}_s": round(lab_s, 3), f"labkit_score_{n}_rss_mib": round(lab_mb),
           f"ranx_{n}_s": round(ranx_s, 3), f"ranx_{n}_rss_mib": round(ranx_mb),
           f"ranx_over_labkit_{n}": round(ratio, 2), f"maxdiff_vs_ranx_{n}": max(diff.values())}
    if n in TARGETS:  # the targets: seconds, ranx / labkit at least, peak memory (MiB) at most
        secs, times, mib = TARGETS[n]
        out[f"targets_met_{n}"] = bool(lab_s < secs and ratio >= times and lab_mb <= mib)
    return out


#: Per size: under this many seconds, at least this many times faster than ranx, within this memory (MiB).
TARGETS = {100_000: (5.0, 3.0, float("inf")), 1_000_000: (60.0, 0.0, 4000 / 1.048576)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000", help="comma-separated numbers of recorded results")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "labkit-bench-score"),
                    help="where the generated files are kept (reused by the next run)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="time each side this many times, alternated, and keep each one's fastest run")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    warm_ds, warm_run = write_data(50, folder)  # numba's compile cache for ranx, not timed
    (folder / "ranx_end_to_end.py").write_text(RANX)
    timed([sys.executable, str(folder / "ranx_end_to_end.py"), str(warm_ds), str(warm_run / "results.jsonl"),
           str(K), "-"])
    result: dict[str, Any] = {"bench": "score", "k": K}
    for n in (int(v) for v in args.sizes.split(",") if v.strip()):
        result.update(bench_size(n, folder, args.repeat))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
