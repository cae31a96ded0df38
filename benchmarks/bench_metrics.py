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

Then a whole run's scoring and aggregation (``--agg-n``, default 20,000 and
100,000 cases): synthetic cases and results lines (seeded: 5 categories, 3
risks, 5 kinds, each of unequal sizes, 1-in-17 cases without gold, answers that quote the retrieved
text or not, lognormal latency, continuous cost, integer token counts, errors,
retries, cache hits), then ``score_cases`` (once: per-case Python, lexical
judge) and ``aggregate`` (metrics.json with all slices, 2,000 resamples; best
of --agg-repeat runs).

Usage: .venv/bin/python benchmarks/bench_metrics.py [--n 100000] [--repeat 3] [--agg-n 20000,100000]
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


WORDS = ["portal", "reset", "key", "invoice", "refund", "password", "token", "region", "quota",
         "limit", "owner", "billing", "cycle", "escalate", "ticket", "verify", "identity", "security",
         "export", "audit", "webhook", "retention"]


def make_run(n: int, seed: int = 0) -> tuple[list[Any], list[dict[str, Any]]]:
    """Synthetic eval cases and results lines for ``n`` cases (seeded)."""
    from labkit.cases import EvalCase

    rng = np.random.default_rng(seed)
    cats = ("billing", "security", "account", "product", "shipping")
    risks = ("low", "medium", "high")
    kinds = ("representative", "failure", "adversarial", "out_of_scope", "regression")
    u = rng.random((n, 6))
    latency = rng.lognormal(7.0, 0.5, n)
    cost = rng.gamma(2.0, 0.0005, n)
    tok_in = rng.integers(200, 1500, n)
    tok_out = rng.integers(10, 300, n)
    doc = rng.integers(0, 40, n)
    cat = rng.choice(len(cats), size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1])  # slices of unequal sizes
    risk = rng.choice(len(risks), size=n, p=[0.5, 0.3, 0.2])
    kind = rng.choice(len(kinds), size=n, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    retrieved_docs = rng.integers(0, 40, (n, 5))
    words = np.argsort(rng.random((n, len(WORDS))), axis=1)[:, :8]
    cases: list[Any] = []
    results: list[dict[str, Any]] = []
    for i in range(n):
        w = [WORDS[j] for j in words[i]]
        gold = f"doc{doc[i]}"
        case = EvalCase(
            id=f"case-{i:06d}", question=f"How do I {w[0]} the {w[1]} {w[2]} for {w[6]}?",
            expected_source=None if i % 17 == 0 else gold,
            must_include=(w[0],) if i % 5 else (), must_not_include=("password",) if i % 7 == 0 else (),
            tags={"category": cats[cat[i]], "risk": risks[risk[i]], "kind": kinds[kind[i]]},
        )
        status = "ok" if u[i, 0] > 0.04 else ("error" if u[i, 0] > 0.01 else "timeout")
        retrieved = [{"id": f"doc{d}#0", "source": f"doc{d}",
                      "text": f"To {w[0]} the {w[1]} {w[2]}, open the {w[3]} page and {w[4]} it."}
                     for d in retrieved_docs[i]]
        if u[i, 1] < 0.6:
            retrieved[int(u[i, 2] * 5)]["source"] = gold
        extra = f" Then {w[5]} the {w[4]} {w[7]} quickly." if u[i, 3] < 0.5 else ""
        answer = f"To {w[0]} the {w[1]} {w[2]}, open the {w[3]} page [{retrieved[0]['id']}].{extra}"
        results.append({
            "case_id": case.id, "status": status, "answer": answer if status == "ok" else None,
            "retrieved": retrieved, "citations": [retrieved[int(u[i, 4] * 5)]["id"]],
            "usage": {"input_tokens": int(tok_in[i]), "output_tokens": int(tok_out[i])},
            "cost_usd": float(cost[i]), "latency_ms": float(latency[i]),
            "attempts": 2 if u[i, 5] < 0.05 else 1, "from_cache": bool(u[i, 5] > 0.97),
        })
        cases.append(case)
    return cases, results


def bench_aggregate(n: int, repeat: int) -> dict[str, Any]:
    """score_cases once, aggregate best of ``repeat``, on a synthetic run of ``n`` cases."""
    from labkit.metrics import aggregate, score_cases

    cases, results = make_run(n)
    t = time.perf_counter()
    scores = score_cases(cases, results)
    t_score = time.perf_counter() - t
    t_agg, agg = best_of(lambda: aggregate(cases, scores), repeat)
    p95 = agg["metrics"]["latency_p95_ms"]
    print(f"run of {n:,} cases: score_cases {t_score:6.2f} s, aggregate (all metrics, "
          f"{len(agg['slices'])} slices, 2,000 resamples) {t_agg:6.2f} s; "
          f"latency_p95_ms {p95['value']:.1f} [{p95['ci_low']:.1f}, {p95['ci_high']:.1f}]")
    return {f"score_cases_{n}_s": round(t_score, 3), f"aggregate_{n}_s": round(t_agg, 3)}


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
    ap.add_argument("--agg-n", default="20000,100000",
                    help="comma-separated run sizes for score_cases + aggregate ('' to skip)")
    ap.add_argument("--agg-repeat", type=int, default=3)
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
    for size in (int(v) for v in args.agg_n.split(",") if v.strip()):
        result.update(bench_aggregate(size, args.agg_repeat))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
