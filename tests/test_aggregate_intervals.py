"""The intervals of aggregate against a plain bootstrap of the whole run, written here from the
definition: draw n case indices with replacement, compute every block's statistic (the run and
each slice) on the drawn cases, take the 2.5% and 97.5% percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import stats
from labkit.cases import EvalCase
from labkit.metrics import aggregate

TAGS = {"category": ("billing", "security", "account"), "risk": ("low", "high")}


def _run(n, seed=0):
    """Cases with two slice tags and a scores frame: discrete and continuous per-case means,
    unmeasured cases, cost with gaps, success, latency with cache hits."""
    rng = np.random.default_rng(seed)
    cases = [EvalCase(id=f"c{i:05d}", question="q", tags={t: vals[rng.integers(len(vals))] for t, vals in TAGS.items()})
             for i in range(n)]
    measured = rng.random(n) < 0.85
    df = pd.DataFrame({
        "case_id": [c.id for c in cases],
        "mrr": np.where(measured, rng.choice([0, 1 / 3, 1 / 2, 1], n), np.nan),
        "mrr_reason": np.where(measured, "", "no_gold"),
        "answer_relevance": np.where(rng.random(n) < 0.9, rng.random(n), np.nan),
        "tokens_per_case": rng.integers(100, 2000, n).astype(float),
        "task_success_rate": (rng.random(n) < 0.7).astype(float),
        "latency_ms": np.where(rng.random(n) < 0.97, rng.lognormal(7, 0.5, n), np.nan),
        "from_cache": rng.random(n) < 0.05,
        "cost_usd": np.where(rng.random(n) < 0.95, rng.gamma(2, 0.001, n), np.nan),
    })
    return cases, df.iloc[rng.permutation(n)].reset_index(drop=True)


def _blocks(cases, agg):
    """Block name -> boolean mask over the cases sorted by id (the rows aggregate uses)."""
    ids = sorted(c.id for c in cases)
    tags = {c.id: c.tags for c in cases}
    out = {"": np.ones(len(ids), dtype=bool)}
    for name in agg["slices"]:
        tag, val = name.split("=", 1)
        out[name] = np.array([tags[i].get(tag) == val for i in ids])
    return out


def _stat(name, cols, drawn):
    """The metric ``name`` on the drawn rows (rows in case_id order), plainly."""
    if name == "total_cost_usd":
        return float(np.nansum(cols["cost_usd"][drawn]))
    if name == "cost_per_success":
        s = cols["task_success_rate"][drawn].sum()
        return float(np.nan_to_num(cols["cost_usd"][drawn]).sum() / s) if s > 0 else np.nan
    if name.startswith("latency_p"):
        v = cols["latency_ms"][drawn][~cols["from_cache"][drawn]]
        v = v[np.isfinite(v)]
        return float(np.percentile(v, float(name[9:11]))) if len(v) else np.nan
    v = cols[name][drawn]
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else np.nan


def _naive(cases, df, agg, names, idx):
    """Every block's interval of each metric over the resamples ``idx`` (rows into the cases
    sorted by id), with its resampled values."""
    df = df.sort_values("case_id").reset_index(drop=True)
    cols = {c: df[c].to_numpy() for c in df.columns if c != "case_id"}
    out = {}
    for block, mask in _blocks(cases, agg).items():
        for name in names:
            dist = np.array([_stat(name, cols, row[mask[row]]) for row in idx])
            out[block, name] = (stats.interval_from_distribution(dist), dist)
    return out


def _entry(agg, block, name):
    return agg["metrics"][name] if not block else agg["slices"][block][name]


def test_every_block_is_the_plain_whole_run_bootstrap_with_the_same_draws():
    """Below 128 cases per block every sum, mean and ratio takes the shared count matrix:
    the seeded index matrix over the cases in cell order (the blocks each belongs to, then
    case id), so aggregate and the plain bootstrap of the whole run draw the same cases."""
    cases, df = _run(90)
    n_boot, seed = 400, 3
    agg = aggregate(cases, df, n_boot=n_boot, seed=seed, slice_tags=tuple(TAGS))
    blocks = _blocks(cases, agg)
    key = sum(m.astype(np.int64) << j for j, m in enumerate(list(blocks.values())[1:]))
    order = np.argsort(key, kind="stable")  # cases in cell order
    idx = order[np.random.default_rng(seed).integers(0, len(cases), size=(n_boot, len(cases)))]
    names = ("mrr", "answer_relevance", "tokens_per_case", "cost_per_success", "total_cost_usd")
    checked = 0
    for (block, name), ((lo, hi), _) in _naive(cases, df, agg, names, idx).items():
        e = _entry(agg, block, name)
        assert e["interval"] == "bootstrap"
        assert e["ci_low"] == pytest.approx(lo, rel=1e-9) and e["ci_high"] == pytest.approx(hi, rel=1e-9), (block, name)
        checked += 1
    assert checked == 5 * 6


@pytest.mark.parametrize("name", ["mrr", "latency_p50_ms", "latency_p95_ms", "tokens_per_case",
                                  "answer_relevance", "cost_per_success", "total_cost_usd"])
def test_every_block_agrees_with_the_plain_whole_run_bootstrap_within_monte_carlo_error(name):
    """Multinomial counts over few distinct values and order statistics are other draws of the
    same law: interval ends within Monte Carlo noise of the plain bootstrap's (another seed)."""
    cases, df = _run(3000, seed=1)
    n_boot = 3000
    agg = aggregate(cases, df, n_boot=n_boot, seed=5, slice_tags=tuple(TAGS))
    idx = np.random.default_rng(6).integers(0, len(cases), size=(n_boot, len(cases)))
    for (block, _), ((lo, hi), dist) in _naive(cases, df, agg, [name], idx).items():
        e = _entry(agg, block, name)
        sd = float(np.nanstd(dist))
        assert abs(e["ci_low"] - lo) <= 0.3 * sd and abs(e["ci_high"] - hi) <= 0.3 * sd, (block, e, lo, hi, sd)
        assert e["ci_low"] <= e["value"] <= e["ci_high"]


def test_a_slice_total_varies_with_the_slice_size():
    """The sum over a slice, when cases are resampled, carries the variance of how many of the
    slice's cases are drawn: wider than resampling the slice alone at its fixed size."""
    cases, df = _run(3000, seed=2)
    agg = aggregate(cases, df, n_boot=2000, seed=0, slice_tags=("risk",))
    high = df[df["case_id"].isin([c.id for c in cases if c.tags["risk"] == "high"])]
    cost = high["cost_usd"].dropna().to_numpy()
    lo, hi = stats.bootstrap_ci(cost, stats.sum_stat, n_boot=2000, rng=0)
    e = agg["slices"]["risk=high"]["total_cost_usd"]
    assert (e["ci_high"] - e["ci_low"]) > 1.2 * (hi - lo)


def test_a_mean_exactly_at_its_threshold_is_the_threshold():
    """Twenty cases each covering 3 of 5 phrases: the mean was np.mean's 0.5999999999999999, and a
    gate `must_include_coverage >= 0.6` failed with "0.6 is not >= 0.6". The mean is the exact sum's."""
    from labkit.cases import EvalCase
    from labkit.gate import Gate
    from labkit.metrics import aggregate, score_cases

    phrases = ("alpha", "bravo", "charlie", "delta", "echo")
    cases = [EvalCase(id=f"c{i}", question="q?", must_include=phrases) for i in range(20)]
    rows = [{"case_id": c.id, "status": "ok", "answer": "alpha bravo charlie"} for c in cases]
    m = aggregate(cases, score_cases(cases, rows), n_boot=200)
    assert m["metrics"]["must_include_coverage"]["value"] == 0.6
    gate = Gate.from_dict({"version": 1, "name": "g", "checks": [
        {"metric": "must_include_coverage", "op": ">=", "threshold": 0.6}]})
    assert gate.evaluate(m).checks[0].passed


def test_a_rate_metric_that_gives_a_value_other_than_0_or_1_is_refused_naming_it():
    """A metric registered as a rate that gave 0.6 a case had the mean 0.6 as its value and the
    Wilson interval of 20 successes in 20, [0.839, 1.0], which excluded it."""
    from labkit.cases import EvalCase
    from labkit.errors import ConfigError
    from labkit.metrics import aggregate, register_metric, score_cases, unregister_metric

    @register_metric("grounded_rate_x", stage="generation", kind="rate", direction="higher", description="x")
    def grounded(case, result):
        return 0.6

    try:
        cases = [EvalCase(id=f"c{i}", question="q?") for i in range(20)]
        rows = [{"case_id": c.id, "status": "ok", "answer": "a"} for c in cases]
        with pytest.raises(ConfigError, match=r"grounded_rate_x.*0 or 1"):
            aggregate(cases, score_cases(cases, rows), n_boot=200)
    finally:
        unregister_metric("grounded_rate_x")
