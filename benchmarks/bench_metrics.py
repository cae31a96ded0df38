"""Retrieval metrics: labkit's vectorized path vs established IR libraries on the same data.

Data: N queries (default 100,000) x 10 retrieved distinct ids, 1-5 gold ids per
query drawn from a pool of 30 ids, seeded. All six retrieval metrics at k=10.

Timed (best of --repeat runs, seconds):
- labkit_matrix: ``retrieval_metrics_from_matrix(rel, n_gold)`` — the array API.
- labkit_from_lists: ``relevance_matrix`` (id lists -> matrix, the per-case
  Python part of score_cases) + the array API.
- ranx: ``ranx.evaluate`` on prebuilt Qrels/Run (numba, warmed up first on a
  small sample and once on the full data; its timed call still includes its own
  conversion of the Qrels/Run to numba structures), metrics hit_rate, mrr, recall, precision, map, ndcg @10.
- pytrec_eval: ``RelevanceEvaluator.evaluate`` on prebuilt dicts (evaluator
  construction excluded), measures success_10, recip_rank, P_10, recall_10,
  map_cut_10, ndcg_cut_10.
Building the libraries' input dicts is not timed. The script also checks that
labkit's numbers agree with ranx's on every query.

Usage: .venv/bin/python benchmarks/bench_metrics.py [--n 100000] [--repeat 3]
Last line: one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit.metrics.retrieval import relevance_matrix, retrieval_metrics_from_matrix

K = 10


def make_data(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    pool = 30
    perm = np.argsort(rng.random((n, pool)), axis=1)
    retrieved_idx = perm[:, :K]
    n_gold = rng.integers(1, 6, size=n)
    gold_perm = np.argsort(rng.random((n, pool)), axis=1)
    retrieved = [[f"d{j}" for j in row] for row in retrieved_idx.tolist()]
    gold = [[f"d{j}" for j in gold_perm[i, : n_gold[i]].tolist()] for i in range(n)]
    return retrieved, gold


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.n
    retrieved, gold = make_data(n)
    levels = ["chunk"] * n
    rel, n_gold = relevance_matrix(retrieved, gold, levels, K)
    print(f"data: {n} queries x {K} retrieved, {int(n_gold.sum())} gold ids, {int(rel.sum())} hits")

    t_mat, ours = best_of(lambda: retrieval_metrics_from_matrix(rel, n_gold, k=K), args.repeat)
    print(f"labkit matrix API (6 metrics):        {t_mat * 1000:9.1f} ms")
    t_lists, _ = best_of(
        lambda: retrieval_metrics_from_matrix(*relevance_matrix(retrieved, gold, levels, K), k=K), args.repeat
    )
    print(f"labkit from id lists (build + score): {t_lists * 1000:9.1f} ms")

    qrels_d = {f"q{i}": {g: 1 for g in gs} for i, gs in enumerate(gold)}
    run_d = {f"q{i}": {d: float(K - j) for j, d in enumerate(rs)} for i, rs in enumerate(retrieved)}

    result: dict[str, Any] = {"bench": "metrics", "n_queries": n, "k": K,
                              "labkit_matrix_s": round(t_mat, 5), "labkit_from_lists_s": round(t_lists, 5)}

    try:
        import ranx

        warnings.filterwarnings("ignore", module="ranx")
        warnings.filterwarnings("ignore", message=".*unsafe cast.*")

        metrics = [f"hit_rate@{K}", f"mrr@{K}", f"recall@{K}", f"precision@{K}", f"map@{K}", f"ndcg@{K}"]
        small_q = ranx.Qrels({k: qrels_d[k] for k in list(qrels_d)[:100]})
        small_r = ranx.Run({k: run_d[k] for k in list(run_d)[:100]})
        ranx.evaluate(small_q, small_r, metrics, return_mean=False)  # numba warm-up (compile)
        qrels, run = ranx.Qrels(qrels_d), ranx.Run(run_d)
        ranx.evaluate(qrels, run, metrics, return_mean=False)  # warm the big inputs' conversion too

        def do_ranx() -> Any:
            return ranx.evaluate(qrels, run, metrics, return_mean=False)

        t_ranx, got = best_of(do_ranx, args.repeat)
        print(f"ranx.evaluate (6 metrics, warm):      {t_ranx * 1000:9.1f} ms")
        result["ranx_s"] = round(t_ranx, 5)
        result["speedup_vs_ranx"] = round(t_ranx / t_mat, 2)
        ids = [f"q{i}" for i in range(n)]
        pos = {q: j for j, q in enumerate(sorted(ids))}
        idx = np.array([pos[q] for q in ids])
        for ours_name, theirs in (("retrieval_hit_rate", metrics[0]), ("mrr", metrics[1]),
                                  ("recall_at_k", metrics[2]), ("precision_at_k", metrics[3]),
                                  ("ndcg", metrics[5])):
            diff = float(np.max(np.abs(np.asarray(got[theirs])[idx] - ours[ours_name])))
            print(f"  max |labkit - ranx| {ours_name:<20} {diff:.2e}")
            result[f"maxdiff_{ours_name}"] = diff
    except ImportError:
        print("ranx not installed: skipped")

    try:
        import pytrec_eval

        measures = {f"success_{K}", "recip_rank", f"P_{K}", f"recall_{K}", f"map_cut_{K}", f"ndcg_cut_{K}"}
        ev = pytrec_eval.RelevanceEvaluator(qrels_d, measures)
        t_trec, _ = best_of(lambda: ev.evaluate(run_d), args.repeat)
        print(f"pytrec_eval evaluate (6 measures):    {t_trec * 1000:9.1f} ms")
        result["pytrec_eval_s"] = round(t_trec, 5)
        result["speedup_vs_pytrec_eval"] = round(t_trec / t_mat, 2)
    except ImportError:
        print("pytrec_eval not installed: skipped")

    lib_times = [result[k] for k in ("ranx_s", "pytrec_eval_s") if k in result]
    if lib_times:
        fastest = min(lib_times)
        result["fastest_library_s"] = fastest
        result["ratio_fastest_library_over_labkit"] = round(fastest / t_mat, 2)
        result["ratio_fastest_library_over_labkit_from_lists"] = round(fastest / t_lists, 2)
        print(f"fastest library / labkit matrix API: {fastest / t_mat:.1f}x;"
              f" / labkit from id lists: {fastest / t_lists:.2f}x")
    result["under_1s"] = bool(t_mat < 1.0)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
