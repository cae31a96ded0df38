"""aggregate (every metric, every slice, 2,000 resamples) now vs before the whole-run resampling.

Data: a synthetic scores frame with the columns score_cases writes (per-case metrics with few
distinct values and unmeasured cases, integer token counts, lognormal latency with cache hits,
continuous cost, success, status), seeded, and cases tagged with 5 categories, 3 risks and
5 kinds of unequal sizes (13 slices).

Each figure comes from its own process (``--worker``): the frame is built, then ``aggregate``
runs once and the process reports its seconds (wall and CPU: the machine may be shared) and
the peak RSS above what the frame took.
"before" is labkit as it was just before the whole-run resampling (the parent of the commit
that added ``_cell_sums`` to labkit/stats.py, extracted with ``git archive``), "now" this tree;
both on the same data in the same run. Results are also compared: values, n and reasons must
be identical; intervals agree within Monte Carlo error.

Usage: .venv/bin/python benchmarks/bench_intervals.py [--n 100000,1000000] [--old-n 100000,1000000]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CATS = ("billing", "security", "account", "product", "shipping")
RISKS = ("low", "medium", "high")
KINDS = ("representative", "failure", "adversarial", "out_of_scope", "regression")


def synthetic(n: int, seed: int = 0) -> tuple[list[Any], Any]:
    """Cases and a scores frame like score_cases gives for ``n`` cases."""
    import pandas as pd

    from labkit.cases import EvalCase

    rng = np.random.default_rng(seed)
    ids = [f"case-{i:07d}" for i in range(n)]
    cat = rng.choice(5, size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1]).tolist()
    risk = rng.choice(3, size=n, p=[0.5, 0.3, 0.2]).tolist()
    kind = rng.choice(5, size=n, p=[0.6, 0.15, 0.1, 0.1, 0.05]).tolist()
    cases = [EvalCase(id=i, question="q", tags={"category": CATS[a], "risk": RISKS[b], "kind": KINDS[c]})
             for i, a, b, c in zip(ids, cat, risk, kind, strict=True)]
    u = rng.random((n, 6))
    ok = u[:, 0] > 0.04
    gold = np.arange(n) % 17 != 0
    cols: dict[str, Any] = {"case_id": ids}

    def put(name: str, vals: Any, measured: Any, reason: str) -> None:
        cols[name] = np.where(measured, vals, np.nan)
        cols[name + "_reason"] = np.where(measured, "", reason)

    hit = (u[:, 1] < 0.6).astype(float)
    rank = rng.integers(1, 6, n)
    put("retrieval_hit_rate", hit, gold, "no_gold")
    put("mrr", hit / rank, gold, "no_gold")
    put("recall_at_k", hit, gold, "no_gold")
    put("precision_at_k", hit / 5, gold, "no_gold")
    put("context_precision", hit / rank, gold, "no_gold")
    put("ndcg", hit / np.log2(rank + 1), gold, "no_gold")
    put("faithfulness", (u[:, 3] < 0.5).astype(float), ok, "not_ok")
    put("must_include_coverage", (u[:, 2] < 0.8).astype(float), ok & (np.arange(n) % 5 != 0), "no_must_include")
    put("must_not_include_violation", np.zeros(n), ok & (np.arange(n) % 7 == 0), "no_must_not_include")
    put("citation_validity", np.ones(n), ok, "not_ok")
    put("citation_accuracy", (u[:, 4] < 0.6).astype(float), ok & gold, "not_ok")
    put("answer_relevance", np.round(u[:, 2], 1), ok, "not_ok")
    for name in ("exact_match", "token_f1", "rouge_l", "tool_call_accuracy"):
        put(name, np.zeros(n), np.zeros(n, bool), "no_reference")
    put("task_success_rate", (ok & (u[:, 3] < 0.5)).astype(float), np.ones(n, bool), "")
    put("retry_rate", (u[:, 5] < 0.05).astype(float), np.ones(n, bool), "")
    put("error_rate", (~ok).astype(float), np.ones(n, bool), "")
    tin = rng.integers(200, 1500, n).astype(float)
    tout = rng.integers(10, 300, n).astype(float)
    put("tokens_per_case", tin + tout, np.ones(n, bool), "")
    cols["status"] = np.where(ok, "ok", np.where(u[:, 0] > 0.01, "error", "timeout"))
    cols["latency_ms"] = rng.lognormal(7.0, 0.5, n)
    cols["latency_ms_reason"] = np.full(n, "")
    cols["cost_usd"] = np.where(u[:, 4] < 0.99, rng.gamma(2.0, 0.0005, n), np.nan)
    cols["input_tokens"] = tin
    cols["output_tokens"] = tout
    cols["attempts"] = np.where(u[:, 5] < 0.05, 2, 1)
    cols["from_cache"] = u[:, 5] > 0.97
    cols["task_success"] = cols["task_success_rate"] > 0.5
    return cases, pd.DataFrame(cols)


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(n: int, out: str) -> None:
    """Build the frame, aggregate once, write seconds, peak RSS and the result to ``out``."""
    from labkit.metrics import aggregate

    cases, df = synthetic(n)
    base = _max_rss_mib()
    t, cpu = time.perf_counter(), time.process_time()
    agg = aggregate(cases, df)
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    Path(out).write_text(json.dumps({"s": took, "cpu_s": cpu, "rss_before_mib": base,
                                     "rss_peak_mib": _max_rss_mib(), "agg": agg}), encoding="utf-8")


def old_tree(tmp: str) -> tuple[str, str]:
    """labkit just before the whole-run resampling, extracted into ``tmp``; (path, commit)."""
    added = subprocess.run(["git", "log", "--format=%H", "-S", "def _cell_sums", "--", "labkit/stats.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    ref = f"{added[-1]}^"
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "labkit"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
    return tmp, commit


def run(tree: str, n: int, tmp: str) -> dict[str, Any]:
    out = os.path.join(tmp, f"out-{n}-{abs(hash(tree))}.json")
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([sys.executable, __file__, "--worker", str(n), "--out", out], env=env, check=True)
    return dict(json.loads(Path(out).read_text(encoding="utf-8")))


def compare(new: dict[str, Any], old: dict[str, Any]) -> tuple[bool, float]:
    """(values, n and reasons identical everywhere; largest interval-end difference in interval widths)."""
    same, worst = True, 0.0
    blocks = [(new["metrics"], old["metrics"])] + [(new["slices"][k], old["slices"][k]) for k in old["slices"]]
    for a, b in blocks:
        for name, e in b.items():
            f = a[name]
            same &= all(f[k] == e[k] for k in ("value", "n", "unmeasured", "unmeasured_reasons", "interval"))
            if e["interval"] == "wilson":
                same &= (f["ci_low"], f["ci_high"]) == (e["ci_low"], e["ci_high"])
            elif e["ci_low"] is not None and e["ci_high"] > e["ci_low"]:
                width = e["ci_high"] - e["ci_low"]
                worst = max(worst, abs(f["ci_low"] - e["ci_low"]) / width, abs(f["ci_high"] - e["ci_high"]) / width)
    return bool(same), worst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100000,1000000", help="run sizes for the current aggregate")
    ap.add_argument("--old-n", default="100000,1000000", help="run sizes for the previous one ('' to skip)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.out)
        return {}
    result: dict[str, Any] = {"bench": "intervals", "n_boot": 2000, "slices": 13}
    with tempfile.TemporaryDirectory() as tmp:
        old_sizes = [int(v) for v in args.old_n.split(",") if v.strip()]
        tree, commit = old_tree(tmp) if old_sizes else ("", "")
        result["before_commit"] = commit
        for n in (int(v) for v in args.n.split(",") if v.strip()):
            new = run(str(ROOT), n, tmp)
            line = (f"n={n:>9,}: aggregate now {new['s']:7.2f} s ({new['cpu_s']:.2f} s CPU), peak RSS +{new['rss_peak_mib'] - new['rss_before_mib']:6.0f}"
                    f" MiB (frame {new['rss_before_mib']:.0f} MiB, peak {new['rss_peak_mib']:.0f} MiB)")
            result.update({f"now_{n}_s": round(new["s"], 3), f"now_{n}_cpu_s": round(new["cpu_s"], 3),
                           f"now_{n}_peak_rss_mib": round(new["rss_peak_mib"]),
                           f"now_{n}_extra_rss_mib": round(new["rss_peak_mib"] - new["rss_before_mib"])})
            if n in old_sizes:
                old = run(tree, n, tmp)
                same, worst = compare(new["agg"], old["agg"])
                line += (f"; before {old['s']:7.2f} s ({old['cpu_s']:.2f} s CPU, peak RSS +{old['rss_peak_mib'] - old['rss_before_mib']:.0f} MiB):"
                         f" {old['s'] / new['s']:.1f}x; values/n/reasons/Wilson identical: {same};"
                         f" largest interval-end move {worst:.2f} of the interval's width")
                result.update({f"before_{n}_s": round(old["s"], 3), f"before_{n}_cpu_s": round(old["cpu_s"], 3),
                               f"speedup_{n}": round(old["s"] / new["s"], 2),
                               f"before_{n}_extra_rss_mib": round(old["rss_peak_mib"] - old["rss_before_mib"]),
                               f"identical_values_{n}": same, f"max_interval_move_{n}": round(worst, 3)})
            print(line, flush=True)
    result["under_1s_at_100000"] = bool(result.get("now_100000_s", 1e9) < 1.0)
    result["under_15s_at_1000000"] = bool(result.get("now_1000000_s", 1e9) < 15.0)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
