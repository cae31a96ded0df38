"""Metrics by stage, the metric registry, per-case scoring and aggregation.

Scoring one case is separate from aggregating many:

- :func:`score_cases` turns cases + results lines into one row per case:
  each per-case metric's value (NaN = unmeasured) and ``<metric>_reason``
  (a reason code, ``""`` when measured), plus the raw ops columns.
- :func:`aggregate` turns that frame into the metrics.json shape: value,
  95% interval, n measured, unmeasured count with reasons, per slice.

Definitions and edge cases: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.cases import EvalCase
from labkit.errors import ConfigError, DatasetError, Problem
from labkit.metrics import agent, generation, ops, retrieval
from labkit.registry import (
    BUILTIN_METRICS,
    DIRECTIONS,
    KINDS,
    LATENCY_PERCENTILES,
    METRICS,
    PER_CASE_KINDS,
    RAW_COLUMNS,
    STAGES,
    CaseMetricFn,
    MetricSpec,
    get_metric,
    per_case_metrics,
    register_metric,
    unregister_metric,
)

if TYPE_CHECKING:
    import pandas as pd

# --- scoring ---------------------------------------------------------------------------


def _pair(cases: Sequence[EvalCase], results: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    by_id: dict[str, Mapping[str, Any]] = {}
    for r in results:
        cid = r.get("case_id")
        if isinstance(cid, str):
            by_id[cid] = r  # the last line for a case wins (resumed runs)
    missing = [c.id for c in cases if c.id not in by_id]
    if missing:
        raise DatasetError(
            None, [Problem(None, "case_id", f"no result line for case {cid!r}") for cid in missing]
        )
    return [by_id[c.id] for c in cases]


def _contexts(items: Sequence[Any], corpus: Any) -> list[str]:
    out: list[str] = []
    for it in items:
        if not isinstance(it, Mapping):
            it = {"id": it} if isinstance(it, str) else {}
        text = it.get("text")
        if isinstance(text, str) and text.strip():
            out.append(text)
            continue
        cid = it.get("id")
        if corpus is not None and isinstance(cid, str):
            ch = corpus.chunk(cid)
            if ch is not None and isinstance(getattr(ch, "text", None), str):
                out.append(ch.text)
    return out


def _custom(fn: CaseMetricFn, case: EvalCase, result: Mapping[str, Any]) -> tuple[float | None, str]:
    got = fn(case, result)
    if isinstance(got, tuple):
        val, reason = got
    else:
        val, reason = got, ""
    if val is None or (isinstance(val, float) and math.isnan(val)):
        return None, reason or "unmeasured"
    return float(val), ""


def score_cases(
    cases: Sequence[EvalCase],
    results: Sequence[Mapping[str, Any]],
    *,
    k: int = 5,
    corpus: Any = None,
    judge: Any = None,
) -> pd.DataFrame:
    """One row per case (in ``cases`` order) with every per-case metric and its reason.

    ``results`` are results lines (paired by case_id; the last line of a case
    wins; a case without a line raises DatasetError naming it). ``corpus``
    (a labkit Corpus) supplies chunk text for retrieved items without
    ``text``. ``judge`` is a judge, a judge name or config (default lexical).
    """
    import pandas as pd

    from labkit.judges import get_judge

    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", field="k")
    jd = get_judge(judge)
    paired = _pair(cases, results)
    retrieved: list[list[Any]] = []
    for r in paired:
        got = r.get("retrieved")
        retrieved.append(list(got) if isinstance(got, list) else [])
    rel, n_gold = retrieval.relevance_matrix(retrieved, [c.gold for c in cases], [c.gold_level for c in cases], k)
    ret = retrieval.retrieval_metrics_from_matrix(rel, n_gold, k=k)
    custom = {n: s.fn for n, s in METRICS.items() if s.fn is not None and s.per_case}

    cols: dict[str, list[Any]] = {"case_id": [c.id for c in cases]}
    for name in per_case_metrics():
        cols[name] = []
        cols[name + "_reason"] = []
    for name in RAW_COLUMNS:
        cols[name] = []

    def put(name: str, val: float | None, reason: str) -> None:
        cols[name].append(math.nan if val is None else float(val))
        cols[name + "_reason"].append("" if val is not None else (reason or "unmeasured"))

    for i, (case, res, items) in enumerate(zip(cases, paired, retrieved, strict=True)):
        raw = ops.raw_ops(res)
        status = raw["status"]
        # an answered case whose pipeline logs no retrieval says nothing about retrieval
        unlogged = status == "ok" and res.get("retrieval_logged") is False
        for name in retrieval.RETRIEVAL_METRICS:
            v = float(ret[name][i])
            if unlogged and not math.isnan(v):
                put(name, None, "no_retrieval")
            else:
                put(name, None if math.isnan(v) else v, "no_gold")
        ans = res.get("answer")
        answer = ans if isinstance(ans, str) and status == "ok" else None
        no_answer = "not_ok" if status != "ok" else "no_answer"
        level = case.gold_level if case.gold else "chunk"

        if answer is None or not answer.strip():
            put("faithfulness", None, no_answer)
            put("answer_relevance", None, no_answer)
            put("citation_validity", None, no_answer)
        else:
            put("faithfulness", *generation.faithfulness(jd, answer, _contexts(items, corpus)))
            put("answer_relevance", *generation.answer_relevance(jd, case.question, answer))
            if unlogged:
                put("citation_validity", None, "no_retrieval")
            else:
                put("citation_validity", *generation.citation_validity(res.get("citations"), items, level))
        cov = generation.must_include_coverage(answer, case.must_include)
        vio = generation.must_not_include_violation(answer, case.must_not_include)
        put("must_include_coverage", *cov)
        put("must_not_include_violation", *vio)
        put("citation_accuracy", *generation.citation_accuracy(res.get("citations"), case.gold, level, items))

        tools = agent.tool_call_accuracy(res.get("tool_calls"), case.expected_tools)
        put("tool_call_accuracy", *tools)
        success = agent.task_success(status, cov[0], vio[0], tools[0])
        put("task_success_rate", 1.0 if success else 0.0, "")
        put("retry_rate", 1.0 if agent.retried(res.get("attempts")) else 0.0, "")
        put("error_rate", 0.0 if status == "ok" else 1.0, "")
        put("tokens_per_case", *ops.tokens(raw["input_tokens"], raw["output_tokens"]))
        for name, fn in custom.items():
            put(name, *_custom(fn, case, res))

        lat_reason = "no_latency" if math.isnan(raw["latency_ms"]) else ("from_cache" if raw["from_cache"] else "")
        for name in RAW_COLUMNS:
            if name == "latency_ms_reason":
                cols[name].append(lat_reason)
            elif name == "task_success":
                cols[name].append(success)
            else:
                cols[name].append(raw[name])
    return pd.DataFrame(cols)


# --- aggregation -----------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _col(df: pd.DataFrame, name: str, default: float = math.nan) -> np.ndarray:
    import pandas as pd

    if name not in df.columns:
        return np.full(len(df), default)
    return np.asarray(pd.to_numeric(df[name], errors="coerce"), dtype=float)


def _reasons(df: pd.DataFrame, name: str, mask: np.ndarray) -> dict[str, int]:
    col = name + "_reason"
    if col not in df.columns:
        n = int(mask.sum())
        return {"unmeasured": n} if n else {}
    counts: Counter[str] = Counter()
    if mask.any():
        for r, c in df[col][mask].value_counts(dropna=False).items():
            counts["unmeasured" if not isinstance(r, str) or not r else r] += int(c)
    return dict(sorted(counts.items()))


def _bools(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.zeros(len(df), dtype=bool)
    col = df[name]
    if col.dtype == bool:
        return col.to_numpy(dtype=bool)
    return np.array([str(v).strip().lower() in ("true", "1", "1.0") for v in col], dtype=bool)


@dataclass(frozen=True)
class _Boot:
    """The bootstrap an aggregate entry still needs: ``stat`` of resamples of
    ``sample`` (mean, sum, ratio of its two column sums, or percentile ``q``)."""

    sample: np.ndarray
    stat: str
    q: float = 50.0


def _plan_metric(spec: MetricSpec, df: pd.DataFrame) -> tuple[dict[str, Any], _Boot | None] | None:
    """A metric's entry with its value and, when the interval is a bootstrap, what to resample."""
    from labkit import stats

    n_rows = len(df)
    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    reasons: dict[str, int] = {}
    method = "none"
    boot: _Boot | None = None
    if spec.per_case:
        if spec.name not in df.columns:
            return None
        x = _col(df, spec.name)
        measured = np.isfinite(x)
        v = x[measured]
        n = int(v.size)
        reasons = _reasons(df, spec.name, ~measured)
        if n:
            value = float(v.mean())
            if spec.kind == "rate":
                lo, hi = stats.wilson_interval(int(np.sum(v > 0.5)), n)
                method = "wilson"
            else:
                boot = _Boot(v, "mean")
                method = "bootstrap"
    elif spec.kind == "percentile":
        q = LATENCY_PERCENTILES[spec.name]
        lat = _col(df, "latency_ms")
        cache = _bools(df, "from_cache")
        sample = ops.latency_sample(lat, cache)
        n = int(sample.size)
        um = ~(np.isfinite(lat) & ~cache)
        reasons = dict(sorted(Counter("no_latency" if not np.isfinite(a) else "from_cache" for a in lat[um]).items()))
        if n:
            value = float(np.percentile(sample, q))
            boot = _Boot(sample, "percentile", q)
            method = "bootstrap"
    elif spec.kind == "ratio":
        cost = _col(df, "cost_usd")
        succ = _col(df, "task_success_rate", 0.0) > 0.5
        if not np.any(np.isfinite(cost)):
            n, reasons = 0, ({"no_cost": n_rows} if n_rows else {})
        elif not succ.any():
            n, reasons = 0, {"no_success": n_rows}
        else:
            n = n_rows
            value = ops.cost_per_success(cost, succ)
            boot = _Boot(np.column_stack([np.nan_to_num(cost), succ.astype(float)]), "ratio")
            method = "bootstrap"
    else:  # sum
        cost = _col(df, "cost_usd")
        rec = np.isfinite(cost)
        n = int(rec.sum())
        reasons = {"no_cost": n_rows - n} if n_rows - n else {}
        if n:
            value = float(cost[rec].sum())
            boot = _Boot(cost[rec], "sum")
            method = "bootstrap"
    entry = {
        "stage": spec.stage,
        "value": _num(value),
        "ci_low": _num(lo),
        "ci_high": _num(hi),
        "n": n,
        "unmeasured": n_rows - n,
        "unmeasured_reasons": reasons,
        "direction": spec.direction,
        "interval": method,
    }
    return entry, boot


def _from_sums(boot: _Boot, sums: np.ndarray) -> np.ndarray:
    """The statistic of each resample from its column sums."""
    if boot.stat == "mean":
        return sums / boot.sample.shape[0]
    if boot.stat == "ratio":
        num, den = sums[:, 0], sums[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return sums


def _run_boots(planned: Sequence[tuple[dict[str, Any], _Boot | None]], *, seed: int, n_boot: int) -> None:
    """Fill in the bootstrap intervals of planned entries, all resamples of sums drawn
    together (one count matrix per sample size, W @ x for every metric of that size)."""
    from labkit import stats

    sum_jobs = [(entry, b) for entry, b in planned if b is not None and b.stat != "percentile"]
    all_sums = stats.resampled_sums([b.sample for _, b in sum_jobs], n_boot=n_boot, seed=seed)
    dists = [(entry, _from_sums(b, sums)) for (entry, b), sums in zip(sum_jobs, all_sums, strict=True)]
    for entry, b in planned:
        if b is not None and b.stat == "percentile":
            dists.append((entry, stats.percentile_distribution(b.sample, b.q, n_boot=n_boot, rng=seed)))
    for entry, dist in dists:
        lo, hi = stats.interval_from_distribution(dist)
        entry["ci_low"], entry["ci_high"] = _num(lo), _num(hi)


def aggregate_metric(spec: MetricSpec, df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000) -> dict[str, Any] | None:
    """One metrics.json entry for one metric over the rows of ``df`` (None if the frame lacks it).

    Rows are used in the frame's order (:func:`aggregate_frame` sorts them by case_id first).
    """
    planned = _plan_metric(spec, df)
    if planned is None:
        return None
    _run_boots([planned], seed=seed, n_boot=n_boot)
    return planned[0]


def aggregate_frame(df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000,
                    n_missing: int = 0) -> dict[str, dict[str, Any]]:
    """metrics.json ``metrics`` block for a scores frame (rows sorted by case_id first,
    so the result never depends on row order); ``n_missing`` cases had no result."""
    planned: list[tuple[dict[str, Any], _Boot | None]] = []
    out = _count_missing(_plan_frame(df, planned), n_missing)
    _run_boots(planned, seed=seed, n_boot=n_boot)
    return out


def _plan_frame(df: pd.DataFrame, planned: list[tuple[dict[str, Any], _Boot | None]]) -> dict[str, dict[str, Any]]:
    """A frame's entries, intervals still to compute (appended to ``planned``)."""
    if "case_id" in df.columns and not df["case_id"].is_monotonic_increasing:
        df = df.sort_values("case_id", kind="mergesort").reset_index(drop=True)
    out: dict[str, dict[str, Any]] = {}
    for spec in METRICS.values():
        got = _plan_metric(spec, df)
        if got is not None:
            out[spec.name] = got[0]
            planned.append(got)
    return out


def aggregate(
    cases: Sequence[EvalCase],
    scores: pd.DataFrame,
    *,
    k: int = 5,
    seed: int = 0,
    n_boot: int = 2000,
    slice_tags: Sequence[str] = ("category", "risk", "kind"),
    missing: Sequence[EvalCase] = (),
) -> dict[str, Any]:
    """Aggregate a score_cases frame into the metrics.json shape (JSON-safe: no NaN).

    Rows are matched to ``cases`` by case_id (a case without a row is a
    DatasetError); slices ``"tag=value"`` are built for every tag in
    ``slice_tags`` from the cases' tags. ``missing`` are the dataset's cases
    that have no result at all: they are counted (``n_missing`` at the top, in
    every metric entry and in every slice's entries), never scored.
    """
    if "case_id" not in scores.columns:
        raise DatasetError(None, [Problem(None, "case_id", "scores have no case_id column")])
    ids = scores["case_id"].astype(str)
    present = set(ids)
    unscored = [c.id for c in cases if c.id not in present]
    if unscored:
        raise DatasetError(None, [Problem(None, "case_id", f"no scores for case {cid!r}") for cid in unscored])
    wanted = {c.id for c in cases}
    keep = np.fromiter((i in wanted for i in ids.tolist()), dtype=bool, count=len(ids))
    df = scores[keep].drop_duplicates("case_id", keep="last")
    df = df.sort_values("case_id", kind="mergesort").reset_index(drop=True)
    planned: list[tuple[dict[str, Any], _Boot | None]] = []
    out: dict[str, Any] = {
        "k": int(k),
        "n_cases": len(df),
        "n_missing": len(missing),
        "seed": int(seed),
        "n_boot": int(n_boot),
        "metrics": _plan_frame(df, planned),
        "slices": {},
    }
    _count_missing(out["metrics"], len(missing))
    row_of = {cid: i for i, cid in enumerate(df["case_id"].astype(str).tolist())}
    for tag in slice_tags:
        rows: dict[str, list[int]] = {}
        for c in cases:
            if tag in c.tags and c.id in row_of:
                rows.setdefault(c.tags[tag], []).append(row_of[c.id])
        gone = Counter(c.tags[tag] for c in missing if tag in c.tags)
        for val in sorted({c.tags[tag] for c in (*cases, *missing) if tag in c.tags}):
            sub = df.iloc[sorted(set(rows.get(val, [])))]  # rows stay in case_id order
            out["slices"][f"{tag}={val}"] = _count_missing(_plan_frame(sub, planned), gone[val])
    _run_boots(planned, seed=seed, n_boot=n_boot)  # every frame's resamples in one pass
    return out


def _count_missing(entries: dict[str, dict[str, Any]], n_missing: int) -> dict[str, dict[str, Any]]:
    """Put ``n_missing`` (cases without a result) beside ``n`` and ``unmeasured`` of each entry."""
    for e in entries.values():
        e["n_missing"] = int(n_missing)
    return entries


__all__ = [
    "BUILTIN_METRICS",
    "DIRECTIONS",
    "KINDS",
    "METRICS",
    "PER_CASE_KINDS",
    "RAW_COLUMNS",
    "STAGES",
    "CaseMetricFn",
    "MetricSpec",
    "aggregate",
    "aggregate_frame",
    "aggregate_metric",
    "get_metric",
    "per_case_metrics",
    "register_metric",
    "score_cases",
    "unregister_metric",
]
