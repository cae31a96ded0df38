"""Retrieval metrics: hand-computed cases, agreement with ranx/pytrec_eval, properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase
from labkit.errors import DatasetError
from labkit.metrics import score_cases
from labkit.metrics.retrieval import (
    RETRIEVAL_METRICS,
    relevance_matrix,
    retrieval_metrics_from_matrix,
)


def one(retrieved: list[str], gold: list[str], k: int = 5) -> dict[str, float]:
    rel, ng = relevance_matrix([retrieved], [gold], ["chunk"], k)
    return {m: float(v[0]) for m, v in retrieval_metrics_from_matrix(rel, ng, k=k).items()}


def test_hand_computed_second_rank():
    m = one(["x", "a", "y"], ["a"])
    assert m["retrieval_hit_rate"] == 1.0
    assert m["mrr"] == 0.5
    assert m["recall_at_k"] == 1.0
    assert m["precision_at_k"] == pytest.approx(1 / 5)  # divided by k, not by the list length
    assert m["context_precision"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx(1 / math.log2(3))


def test_hand_computed_two_gold():
    # gold a, b at ranks 1 and 3 of k=3: cp = (1/1 + 2/3) / 2
    m = one(["a", "x", "b"], ["a", "b", "c"], k=3)
    assert m["recall_at_k"] == pytest.approx(2 / 3)
    assert m["precision_at_k"] == pytest.approx(2 / 3)
    assert m["context_precision"] == pytest.approx((1 + 2 / 3) / 2)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m["mrr"] == 1.0


def test_ndcg_ideal_capped_at_k():
    # |G| = 4 > k = 2, both top-2 relevant: ideal DCG uses min(|G|, k) = 2 -> ndcg 1
    m = one(["a", "b"], ["a", "b", "c", "d"], k=2)
    assert m["ndcg"] == pytest.approx(1.0)
    assert m["recall_at_k"] == pytest.approx(0.5)


def test_no_hit_is_zero_not_nan():
    m = one(["x", "y"], ["a"])
    assert all(m[name] == 0.0 for name in RETRIEVAL_METRICS)


def test_empty_retrieved_is_zero():
    m = one([], ["a"])
    assert all(m[name] == 0.0 for name in RETRIEVAL_METRICS)


def test_no_gold_is_unmeasured():
    m = one(["a"], [])
    assert all(math.isnan(m[name]) for name in RETRIEVAL_METRICS)


def test_k_smaller_than_list_cuts():
    m = one(["x1", "x2", "x3", "x4", "x5", "a"], ["a"], k=5)
    assert m["retrieval_hit_rate"] == 0.0
    m6 = one(["x1", "x2", "x3", "x4", "x5", "a"], ["a"], k=6)
    assert m6["mrr"] == pytest.approx(1 / 6)


def test_k_larger_than_list_pads():
    m = one(["a"], ["a"], k=10)
    assert m["precision_at_k"] == pytest.approx(0.1)
    assert m["context_precision"] == 1.0 and m["ndcg"] == 1.0


def test_duplicates_kept_at_first_rank():
    # at chunk level a repeated id counts once, and later items move up
    m = one(["a", "a", "b"], ["a", "b"], k=2)
    assert m["recall_at_k"] == 1.0 and m["precision_at_k"] == 1.0


def test_source_level_dedupe_and_mapping():
    items = [
        {"id": "doc1#0", "source": "doc1"},
        {"id": "doc1#3", "source": "doc1"},
        {"id": "doc2#1", "source": "doc2"},
    ]
    rel, ng = relevance_matrix([items], [["doc2"]], ["source"], 5)
    assert rel[0].tolist() == [False, True, False, False, False]
    assert ng.tolist() == [1]


def test_ties_keep_list_order():
    # equal scores: rank order is the list order, scores are not used
    items = [{"id": "x", "source": "x", "score": 1.0}, {"id": "a", "source": "a", "score": 1.0}]
    rel, ng = relevance_matrix([items], [["a"]], ["chunk"], 5)
    assert retrieval_metrics_from_matrix(rel, ng, k=5)["mrr"][0] == 0.5


def test_matrix_api_empty_and_errors():
    out = retrieval_metrics_from_matrix(np.zeros((0, 5), bool), np.zeros(0), k=5)
    assert all(v.shape == (0,) for v in out.values())
    with pytest.raises(ValueError):
        retrieval_metrics_from_matrix(np.zeros(5, bool), np.zeros(5))
    with pytest.raises(ValueError):
        retrieval_metrics_from_matrix(np.zeros((2, 5), bool), np.zeros(3))


# --- agreement with established IR libraries -------------------------------------------


def _random_queries(n: int, seed: int) -> tuple[list[list[str]], list[list[str]], list[int]]:
    rng = np.random.default_rng(seed)
    retrieved, gold, ks = [], [], []
    for _ in range(n):
        pool = [f"d{j}" for j in range(rng.integers(3, 25))]
        n_ret = int(rng.integers(1, min(len(pool), 15) + 1))
        n_gold = int(rng.integers(1, min(len(pool), 6) + 1))
        retrieved.append(list(rng.choice(pool, size=n_ret, replace=False)))
        gold.append(list(rng.choice(pool, size=n_gold, replace=False)))
        ks.append(int(rng.integers(1, 12)))
    return retrieved, gold, ks


def test_agrees_with_ranx_on_random_queries():
    import ranx

    warnings.filterwarnings("ignore", message=".*unsafe cast.*")
    retrieved, gold, ks = _random_queries(1200, seed=7)
    checked = 0
    for k in sorted(set(ks)):
        idx = [i for i, kk in enumerate(ks) if kk == k]
        rs = [retrieved[i] for i in idx]
        gs = [gold[i] for i in idx]
        rel, ng = relevance_matrix(rs, gs, ["chunk"] * len(rs), k)
        ours = retrieval_metrics_from_matrix(rel, ng, k=k)
        qids = [f"q{j:05d}" for j in range(len(rs))]  # sortable ids: ranx returns sorted order
        run = ranx.Run({q: {d: float(100 - r) for r, d in enumerate(lst)} for q, lst in zip(qids, rs, strict=True)})
        qrels = ranx.Qrels({q: {d: 1 for d in g} for q, g in zip(qids, gs, strict=True)})
        names = {
            "retrieval_hit_rate": f"hit_rate@{k}",
            "mrr": f"mrr@{k}",
            "recall_at_k": f"recall@{k}",
            "precision_at_k": f"precision@{k}",
            "ndcg": f"ndcg@{k}",
        }
        got = ranx.evaluate(qrels, run, list(names.values()), return_mean=False)
        for ours_name, theirs in names.items():
            np.testing.assert_allclose(ours[ours_name], np.asarray(got[theirs]), rtol=0, atol=1e-9)
        # context_precision = average precision with the gold restricted to the
        # relevant items within the top k (no hit: AP is 0 whatever the gold set)
        restricted = {}
        for q, lst, g in zip(qids, rs, gs, strict=True):
            top = [d for d in lst[:k] if d in set(g)]
            restricted[q] = {d: 1 for d in (top or g)}
        ap = ranx.evaluate(ranx.Qrels(restricted), run, f"map@{k}", return_mean=False)
        np.testing.assert_allclose(ours["context_precision"], np.asarray(ap), rtol=0, atol=1e-9)
        checked += len(rs)
    assert checked >= 1000


def test_agrees_with_pytrec_eval():
    import pytrec_eval

    retrieved, gold, _ = _random_queries(1000, seed=11)
    k = 10
    qrels = {f"q{i}": {d: 1 for d in g} for i, g in enumerate(gold)}
    run = {f"q{i}": {d: float(100 - r) for r, d in enumerate(lst)} for i, lst in enumerate(retrieved)}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"P_10", "recall_10", "ndcg_cut_10", "success_10"})
    res = ev.evaluate(run)
    rel, ng = relevance_matrix(retrieved, gold, ["chunk"] * len(retrieved), k)
    ours = retrieval_metrics_from_matrix(rel, ng, k=k)
    for i in range(len(retrieved)):
        r = res[f"q{i}"]
        assert abs(ours["precision_at_k"][i] - r["P_10"]) < 1e-9
        assert abs(ours["recall_at_k"][i] - r["recall_10"]) < 1e-9
        assert abs(ours["ndcg"][i] - r["ndcg_cut_10"]) < 1e-9
        assert abs(ours["retrieval_hit_rate"][i] - r["success_10"]) < 1e-9


# --- properties -------------------------------------------------------------------------

rows = st.integers(1, 8).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(st.lists(st.booleans(), min_size=k, max_size=k), min_size=1, max_size=20),
        st.integers(0, 12),
    )
)


@given(rows)
@settings(max_examples=200, deadline=None)
def test_bounded_in_unit_interval(data):
    k, rel_rows, extra_gold = data
    rel = np.array(rel_rows, dtype=bool)
    n_gold = rel.sum(axis=1) + extra_gold  # gold set at least the hits
    out = retrieval_metrics_from_matrix(rel, n_gold, k=k)
    for name, v in out.items():
        m = n_gold > 0
        assert np.all(np.isnan(v[~m]))
        assert np.all((v[m] >= 0) & (v[m] <= 1 + 1e-12)), name


@given(st.lists(st.booleans(), min_size=1, max_size=12), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_cp_invariant_to_irrelevant_below_last_relevant(flags, rnd):
    ids = [f"{'g' if f else 'x'}{i}" for i, f in enumerate(flags)]
    gold = [d for d in ids if d.startswith("g")] or ["zzz"]
    last = max((i for i, d in enumerate(ids) if d.startswith("g")), default=-1)
    tail = ids[last + 1 :]
    rnd.shuffle(tail)
    permuted = ids[: last + 1] + tail
    k = len(ids)
    assert one(ids, gold, k)["context_precision"] == one(permuted, gold, k)["context_precision"]


# --- through score_cases ----------------------------------------------------------------


def test_score_cases_granularity_and_reasons():
    cases = [
        EvalCase(id="c1", question="q one", expected_chunks=("doc#2",)),
        EvalCase(id="c2", question="q two", expected_source="doc"),
        EvalCase(id="c3", question="q three"),
    ]
    items = [{"id": "doc#1", "source": "doc"}, {"id": "doc#2", "source": "doc"}]
    results = [{"case_id": c.id, "status": "ok", "answer": "x", "retrieved": items} for c in cases]
    df = score_cases(cases, results, k=5)
    assert df["case_id"].tolist() == ["c1", "c2", "c3"]
    assert df.loc[0, "mrr"] == 0.5  # chunk-level gold
    assert df.loc[1, "mrr"] == 1.0  # source-level gold: doc at rank 1
    assert math.isnan(df.loc[2, "mrr"]) and df.loc[2, "mrr_reason"] == "no_gold"
    assert df.loc[0, "mrr_reason"] == ""


def test_score_cases_missing_result_names_case():
    cases = [EvalCase(id="a", question="q"), EvalCase(id="b", question="q2")]
    with pytest.raises(DatasetError, match="'b'"):
        score_cases(cases, [{"case_id": "a", "status": "ok", "answer": "x"}])


def test_score_cases_results_order_and_last_line_wins():
    cases = [EvalCase(id="a", question="q", expected_source="s"), EvalCase(id="b", question="q2")]
    results = [
        {"case_id": "b", "status": "ok", "answer": "x"},
        {"case_id": "a", "status": "error", "answer": None},
        {"case_id": "a", "status": "ok", "answer": "x", "retrieved": [{"id": "s#0", "source": "s"}]},
    ]
    df = score_cases(cases, results)
    assert df["case_id"].tolist() == ["a", "b"]
    assert df.loc[0, "status"] == "ok" and df.loc[0, "retrieval_hit_rate"] == 1.0
