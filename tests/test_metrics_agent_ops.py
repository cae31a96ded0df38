"""Agent and ops metrics, aggregation (metrics.json shape), slices, registry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase
from labkit.errors import ConfigError
from labkit.metrics import (
    METRICS,
    aggregate,
    get_metric,
    register_metric,
    score_cases,
    unregister_metric,
)
from labkit.metrics.agent import task_success, tool_call_accuracy
from labkit.metrics.ops import LATENCY_PERCENTILES

TOOLS = ({"name": "lookup_account", "args": {"user_id": "u-17"}}, {"name": "escalate_ticket", "args": {"p": 1}})


def test_tool_call_accuracy():
    assert tool_call_accuracy([], ()) == (None, "no_expected_tools")
    assert tool_call_accuracy([{"name": "escalate_ticket"}, {"name": "lookup_account"}], TOOLS) == (0.0, "")
    got = [{"name": "lookup_account", "args": {"user_id": "u-17"}, "status": "ok"},
           {"name": "escalate_ticket", "args": {"p": 2}}]
    assert tool_call_accuracy(got, TOOLS) == (0.5, "")
    assert tool_call_accuracy(got[:1], TOOLS) == (0.0, "")  # sequence differs
    assert tool_call_accuracy(None, TOOLS) == (0.0, "")


def test_task_success_rule():
    assert task_success("ok", None, None, None)
    assert not task_success("error", None, None, None)
    assert not task_success("ok", 0.5, None, None)
    assert not task_success("ok", 1.0, 1.0, None)
    assert not task_success("ok", 1.0, 0.0, 0.5)
    assert task_success("ok", 1.0, 0.0, 1.0)


def _cases(n=6):
    risks = ["high", "low", "medium"]
    return [
        EvalCase(id=f"c{i}", question=f"question {i}", expected_source="doc", must_include=("portal",),
                 tags={"risk": risks[i % 3], "category": "sec" if i % 2 else "bil"})
        for i in range(n)
    ]


def _results(cases):
    out = []
    for i, c in enumerate(cases):
        out.append({
            "case_id": c.id,
            "status": "error" if i == 0 else "ok",
            "answer": None if i == 0 else ("Use the portal." if i % 2 else "No idea."),
            "retrieved": [{"id": "doc#0", "source": "doc"}] if i % 3 else [],
            "latency_ms": 100.0 * (i + 1),
            "from_cache": i == 5,
            "attempts": 2 if i == 1 else 1,
            "cost_usd": 0.01,
            "usage": {"input_tokens": 10, "output_tokens": i},
        })
    return out


def test_ops_columns_and_aggregates():
    cases = _cases()
    df = score_cases(cases, _results(cases))
    assert df["error_rate"].tolist() == [1, 0, 0, 0, 0, 0]
    assert df["retry_rate"].tolist() == [0, 1, 0, 0, 0, 0]
    assert df["task_success"].tolist() == [False, True, False, True, False, True]
    assert df["tokens_per_case"].tolist() == [10, 11, 12, 13, 14, 15]
    agg = aggregate(cases, df, n_boot=200)
    m = agg["metrics"]
    # latency: cache hit (case 5, 600 ms) excluded; whatever the status, case 0 counts
    assert m["latency_p50_ms"]["value"] == pytest.approx(np.percentile([100, 200, 300, 400, 500], 50))
    assert m["latency_p95_ms"]["value"] == pytest.approx(np.percentile([100, 200, 300, 400, 500], 95))
    assert m["latency_p50_ms"]["unmeasured_reasons"] == {"from_cache": 1}
    assert m["cost_per_success"]["value"] == pytest.approx(0.06 / 3)
    assert m["total_cost_usd"]["value"] == pytest.approx(0.06)
    assert m["error_rate"]["value"] == pytest.approx(1 / 6)
    assert m["retry_rate"]["value"] == pytest.approx(1 / 6)
    assert m["task_success_rate"]["value"] == pytest.approx(0.5)
    assert m["faithfulness"]["unmeasured_reasons"]["not_ok"] == 1
    for entry in m.values():
        if entry["value"] is not None and entry["ci_low"] is not None:
            assert entry["ci_low"] <= entry["value"] + 1e-12 <= entry["ci_high"] + 2e-12
        assert entry["n"] + entry["unmeasured"] == 6
        assert sum(entry["unmeasured_reasons"].values()) == entry["unmeasured"]
    json.dumps(agg, allow_nan=False)
    assert set(agg) >= {"k", "n_cases", "seed", "n_boot", "metrics", "slices"}


def test_every_registered_metric_is_reported():
    cases = _cases()
    agg = aggregate(cases, score_cases(cases, _results(cases)), n_boot=100)  # the lexical judge
    judged_elsewhere = {n for n, s in METRICS.items() if s.judge_method}  # the embedding judge's two
    assert judged_elsewhere == {"semantic_similarity", "context_relevance"}
    assert set(agg["metrics"]) == set(METRICS) - judged_elsewhere
    for name, e in agg["metrics"].items():
        assert e["stage"] == METRICS[name].stage and e["direction"] == METRICS[name].direction


def test_nothing_measured_is_null():
    cases = [EvalCase(id="a", question="q")]
    df = score_cases(cases, [{"case_id": "a", "status": "ok", "answer": "x"}])
    agg = aggregate(cases, df, n_boot=50)
    e = agg["metrics"]["mrr"]
    assert e["value"] is None and e["ci_low"] is None and e["n"] == 0 and e["unmeasured"] == 1
    assert agg["metrics"]["latency_p95_ms"]["unmeasured_reasons"] == {"no_latency": 1}
    assert agg["metrics"]["cost_per_success"]["value"] is None
    assert agg["metrics"]["tokens_per_case"]["unmeasured_reasons"] == {"no_usage": 1}
    json.dumps(agg, allow_nan=False)


def test_no_success_cost_per_success_unmeasured():
    cases = [EvalCase(id="a", question="q")]
    df = score_cases(cases, [{"case_id": "a", "status": "error", "cost_usd": 0.1}])
    e = aggregate(cases, df, n_boot=50)["metrics"]["cost_per_success"]
    assert e["value"] is None and e["unmeasured_reasons"] == {"no_success": 1}


def test_slices_by_tag():
    cases = _cases()
    agg = aggregate(cases, score_cases(cases, _results(cases)), n_boot=100)
    assert set(agg["slices"]) == {"risk=high", "risk=low", "risk=medium", "category=sec", "category=bil"}
    high = agg["slices"]["risk=high"]["error_rate"]
    assert high["n"] == 2 and high["value"] == pytest.approx(0.5)  # c0 (error) and c3
    assert "kind" not in {k.split("=")[0] for k in agg["slices"]}  # no case has a kind tag


def test_same_seed_same_intervals_and_seed_in_output():
    cases = _cases()
    df = score_cases(cases, _results(cases))
    a = aggregate(cases, df, seed=3, n_boot=300)
    b = aggregate(cases, df, seed=3, n_boot=300)
    assert a == b and a["seed"] == 3


@given(st.randoms(use_true_random=False))
@settings(max_examples=15, deadline=None)
def test_case_order_shuffle_never_changes_aggregates(rnd):
    cases = _cases(9)
    results = _results(cases)
    df = score_cases(cases, results)
    ref = aggregate(cases, df, n_boot=200)
    perm = list(range(len(cases)))
    rnd.shuffle(perm)
    cases2 = [cases[i] for i in perm]
    results2 = [results[i] for i in perm]
    got = aggregate(cases2, score_cases(cases2, results2), n_boot=200)
    assert got == ref


def test_registry_unknown_and_custom_metric():
    with pytest.raises(ConfigError, match=r"known: .*faithfulness"):
        get_metric("faithfulnes")

    @register_metric("answer_length_ok", stage="generation", kind="rate", description="answer under 10 words")
    def _len_ok(case, result):
        ans = result.get("answer")
        if not ans:
            return None, "no_answer"
        return float(len(ans.split()) < 10)

    try:
        assert get_metric("answer_length_ok").stage == "generation"
        cases = _cases()
        df = score_cases(cases, _results(cases))
        assert df["answer_length_ok_reason"].tolist()[0] == "no_answer"
        assert df["answer_length_ok"].tolist()[1] == 1.0
        agg = aggregate(cases, df, n_boot=50)
        assert agg["metrics"]["answer_length_ok"]["n"] == 5
        with pytest.raises(ConfigError):
            register_metric("answer_length_ok", stage="generation")(_len_ok)
        with pytest.raises(ConfigError, match="kind"):
            register_metric("x_pct", stage="ops", kind="percentile")
        with pytest.raises(ConfigError, match="stage"):
            register_metric("x_bad", stage="nowhere")(_len_ok)
    finally:
        unregister_metric("answer_length_ok")
    assert "answer_length_ok" not in METRICS
    with pytest.raises(ConfigError):
        unregister_metric("mrr")


def test_scores_csv_roundtrip_aggregates_equal(tmp_path):
    from labkit.compare import read_scores

    cases = _cases()
    df = score_cases(cases, _results(cases))
    p = tmp_path / "scores.csv"
    df.to_csv(p, index=False)
    back = read_scores(p)
    assert math.isnan(back.loc[0, "faithfulness"])
    assert aggregate(cases, back, n_boot=100) == aggregate(cases, df, n_boot=100)


def _big_scores(n=3000, seed=0):
    """A scores frame like score_cases gives, with discrete per-case metrics (the
    multinomial path), continuous cost and latency (index path, order statistics)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    gold = rng.random(n) > 0.1
    df = pd.DataFrame({"case_id": [f"c{i:05d}" for i in rng.permutation(n)]})
    df["mrr"] = np.where(gold, rng.choice([0, 1, 1 / 2, 1 / 3, 1 / 4, 1 / 5], n), np.nan)
    df["mrr_reason"] = np.where(gold, "", "no_gold")
    df["retrieval_hit_rate"] = np.where(gold, (df["mrr"] > 0).astype(float), np.nan)
    df["faithfulness"] = np.where(rng.random(n) < 0.95, rng.integers(0, 4, n) / 3, np.nan)
    df["answer_relevance"] = np.where(rng.random(n) < 0.9, rng.random(n), np.nan)  # continuous
    df["tokens_per_case"] = rng.integers(100, 2000, n).astype(float)
    df["task_success_rate"] = (rng.random(n) < 0.8).astype(float)
    df["latency_ms"] = np.where(rng.random(n) < 0.97, rng.lognormal(7, 0.5, n), np.nan)
    df["from_cache"] = rng.random(n) < 0.03
    df["cost_usd"] = np.where(rng.random(n) < 0.99, rng.gamma(2, 0.001, n), np.nan)
    return df


def _plain_interval(name, df, seed, n_boot):
    """The per-metric reference: each metric bootstrapped alone with the plain index matrix."""
    from labkit import stats
    from labkit.metrics import ops

    df = df.sort_values("case_id").reset_index(drop=True)
    lat, cache = df["latency_ms"].to_numpy(), df["from_cache"].to_numpy()
    cost = df["cost_usd"].to_numpy()
    if name in LATENCY_PERCENTILES:
        return stats.percentile_ci(ops.latency_sample(lat, cache), LATENCY_PERCENTILES[name], n_boot=n_boot, rng=seed)
    if name == "cost_per_success":
        return stats.ratio_ci(np.nan_to_num(cost), df["task_success_rate"].to_numpy(), n_boot=n_boot, rng=seed)
    if name == "total_cost_usd":
        return stats.bootstrap_ci(cost[np.isfinite(cost)], stats.sum_stat, n_boot=n_boot, rng=seed)
    v = df[name].to_numpy()
    return stats.bootstrap_ci(v[np.isfinite(v)], n_boot=n_boot, rng=seed)


def test_fast_aggregate_matches_plain_per_metric_bootstrap():
    from labkit.metrics import aggregate_frame

    df = _big_scores()
    n_boot = 4000
    got = aggregate_frame(df, seed=1, n_boot=n_boot)
    assert got == aggregate_frame(df.sample(frac=1, random_state=3), seed=1, n_boot=n_boot)  # order-free
    checked = 0
    for name in ("mrr", "faithfulness", "answer_relevance", "tokens_per_case", "latency_p50_ms",
                 "latency_p95_ms", "latency_p99_ms", "cost_per_success", "total_cost_usd"):
        e = got[name]
        assert e["interval"] == "bootstrap"
        lo, hi = _plain_interval(name, df, seed=2, n_boot=n_boot)  # another seed: only the law must agree
        se = (hi - lo) / (2 * 1.96)
        # interval ends within Monte Carlo noise of the plain bootstrap's (4,000 resamples each)
        assert abs(e["ci_low"] - lo) <= 0.3 * se and abs(e["ci_high"] - hi) <= 0.3 * se, (name, e, lo, hi)
        assert e["ci_low"] <= e["value"] <= e["ci_high"]
        checked += 1
    assert checked == 9
    # the values are the plain ones, exactly
    s = df.sort_values("case_id")
    assert got["mrr"]["value"] == float(s["mrr"].dropna().mean())
    assert got["latency_p95_ms"]["value"] == float(np.percentile(s["latency_ms"][~s["from_cache"]].dropna(), 95))
    assert got["total_cost_usd"]["value"] == float(s["cost_usd"].dropna().sum())
    # a continuous sample that is every case takes the shared index path: the very resamples of
    # the plain bootstrap with the same seed
    same_seed = _plain_interval("tokens_per_case", df, seed=1, n_boot=n_boot)
    assert got["tokens_per_case"]["ci_low"] == pytest.approx(same_seed[0], rel=1e-12)
    assert got["tokens_per_case"]["ci_high"] == pytest.approx(same_seed[1], rel=1e-12)
    # one with unmeasured cases: the same resamples of every case, its mean over the drawn measured
    from labkit import stats

    idx = np.random.default_rng(1).integers(0, len(s), size=(n_boot, len(s)))  # the plain index matrix
    w = np.stack([np.bincount(row, minlength=len(s)) for row in idx]).astype(float)
    v = s["answer_relevance"].to_numpy()
    m = np.isfinite(v)
    lo, hi = stats.interval_from_distribution((w[:, m] @ v[m]) / w[:, m].sum(axis=1))
    assert got["answer_relevance"]["ci_low"] == pytest.approx(lo, rel=1e-12)
    assert got["answer_relevance"]["ci_high"] == pytest.approx(hi, rel=1e-12)


def _but_bootstrap_intervals(block):
    return {name: {f: v for f, v in e.items() if e["interval"] != "bootstrap" or f not in ("ci_low", "ci_high")}
            for name, e in block.items()}


def test_aggregate_slices_equal_aggregate_frame_of_the_slice():
    from labkit.metrics import aggregate_frame

    cases = _cases(40)
    df = score_cases(cases, _results(cases))
    agg = aggregate(cases, df, n_boot=300, seed=4)
    sub = df[df["case_id"].isin([c.id for c in cases if c.tags["risk"] == "high"])]
    # values, counts, reasons and Wilson intervals are the slice's own frame's
    got, want = agg["slices"]["risk=high"], aggregate_frame(sub, seed=4, n_boot=300)
    assert _but_bootstrap_intervals(got) == _but_bootstrap_intervals(want)
    assert _but_bootstrap_intervals(agg["metrics"]) == _but_bootstrap_intervals(aggregate_frame(df, seed=4, n_boot=300))
    # bootstrap intervals resample the whole run's cases (tests/test_aggregate_intervals.py checks
    # them against a plain whole-run bootstrap); without slices the run is one block
    for block in (got, agg["metrics"]):
        for e in block.values():
            if e["interval"] == "bootstrap" and e["ci_low"] is not None:
                assert e["ci_low"] <= e["value"] + 1e-12 and e["value"] <= e["ci_high"] + 1e-12
    assert aggregate(cases, df, n_boot=300, seed=4, slice_tags=())["metrics"] == aggregate_frame(df, seed=4, n_boot=300)


def test_every_metric_is_one_declaration_with_its_function():
    from labkit.metrics import BUILTIN_METRICS, RUN_KINDS

    assert len(BUILTIN_METRICS) == 25  # with exact_match, token_f1, rouge_l
    for name in BUILTIN_METRICS:
        spec = METRICS[name]
        if spec.per_case:
            assert callable(spec.fn), name  # the per-case function is in the declaration
        else:
            assert spec.kind in RUN_KINDS and spec.raw, name  # a run-level metric names its raw column
    assert METRICS["latency_p95_ms"].q == 95.0 and METRICS["cost_per_success"].per == "task_success_rate"


def test_a_run_level_metric_is_declared_by_its_raw_column():
    from labkit.metrics import run_metric

    cases = _cases()
    df = score_cases(cases, _results(cases))
    run_metric(name="total_input_tokens", stage="ops", kind="sum", raw="input_tokens", missing="no_usage",
               description="sum of input tokens")
    try:
        entry = aggregate(cases, df, n_boot=50)["metrics"]["total_input_tokens"]
        assert entry["value"] == float(df["input_tokens"].dropna().sum())
        assert entry["n"] == int(df["input_tokens"].notna().sum()) and entry["interval"] == "bootstrap"
        with pytest.raises(ConfigError, match="q"):
            run_metric(name="x_p90", stage="ops", kind="percentile", raw="latency_ms")
        with pytest.raises(ConfigError, match="kind"):
            run_metric(name="x_mean", stage="ops", kind="mean", raw="latency_ms")
    finally:
        unregister_metric("total_input_tokens")


def test_metrics_json_carries_its_schema_version():
    from labkit.metrics import SCHEMA_VERSION, metrics_schema_version

    cases = _cases()
    agg = aggregate(cases, score_cases(cases, _results(cases)), n_boot=50)
    assert agg["schema_version"] == SCHEMA_VERSION == 1 and metrics_schema_version(agg) == 1
    assert metrics_schema_version({"metrics": {}}) == 0  # a first-landing file


def test_task_success_is_not_known_when_only_a_hidden_phrase_could_decide_it():
    assert task_success("ok", None, None, None, redacted=True) is None
    assert task_success("ok", 1.0, 0.0, None, redacted=True) is None
    assert task_success("ok", 0.5, None, None, redacted=True) is False  # a check that fails decides
    assert task_success("error", None, None, None, redacted=True) is False


@pytest.mark.parametrize(("returned", "want"), [
    ((np.float32("nan"), "too_short"), (None, "too_short")),  # a numpy NaN is unmeasured too
    (np.float64(0.25), (0.25, "")),
    ((True, ""), (1.0, "")),
])
def test_a_user_metric_value_is_read_whatever_its_number_type(returned, want):
    from labkit.metrics.percase import normalize_score

    assert normalize_score(returned) == want


@pytest.mark.parametrize("returned", [(0.5, ["a", "list"]), "high", (math.inf, ""), (None, 3)])
def test_a_user_metric_returning_what_is_no_score_is_a_config_error_naming_it(returned):
    @register_metric("odd_metric", stage="generation", description="returns what is no score")
    def _odd(case, result):
        return returned

    try:
        cases = _cases()
        with pytest.raises(ConfigError, match="odd_metric"):
            score_cases(cases, _results(cases))
    finally:
        unregister_metric("odd_metric")


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\")", "with space", "", "1st", "a-b"])
def test_a_metric_name_is_an_identifier(name):
    """A metric's name becomes a scores.csv column, a metrics.json key and a gate's field: a name
    that is no identifier (a formula, a blank) is refused when it is registered."""
    with pytest.raises(ConfigError, match="name"):
        register_metric(name, stage="generation")(lambda case, result: 1.0)
    assert name not in METRICS


def test_an_empty_answer_is_no_task_success():
    """A blank answer with status ok counted as a task success (and in cost_per_success's
    denominator) on a case with no must_include, while it is `no_answer` for every judge."""
    from labkit.cases import EvalCase
    from labkit.metrics import score_cases

    cases = [EvalCase(id="a", question="What is the refund window?"),
             EvalCase(id="b", question="What is the refund window?", must_not_include=("password",)),
             EvalCase(id="c", question="What is the refund window?")]
    rows = [{"case_id": "a", "status": "ok", "answer": ""}, {"case_id": "b", "status": "ok", "answer": "  "},
            {"case_id": "c", "status": "ok", "answer": "Thirty days."}]
    assert score_cases(cases, rows)["task_success_rate"].tolist() == [0.0, 0.0, 1.0]
