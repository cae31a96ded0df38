"""Aggregation: a scores frame -> the metrics.json shape (value, 95% interval, n, unmeasured, slices).

Each entry is planned from its registry declaration (labkit.registry.MetricSpec):
per-case kinds over their column, run-level kinds over their raw column. The
bootstrap intervals of every entry (and every slice) are then drawn together.
Definitions: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.cases import EvalCase
from labkit.errors import DatasetError, Problem
from labkit.metrics.schema import SCHEMA_VERSION
from labkit.registry import METRICS, MetricSpec

if TYPE_CHECKING:
    import pandas as pd

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


#: (value, interval low, high, n measured, unmeasured reasons, interval method, bootstrap to run)
_Plan = tuple[float | None, float | None, float | None, int, dict[str, int], str, _Boot | None]


def _plan_per_case(spec: MetricSpec, df: pd.DataFrame) -> _Plan:
    """A rate (Wilson interval) or mean (bootstrap) over the column's measured cases."""
    from labkit import stats

    x = _col(df, spec.name)
    measured = np.isfinite(x)
    v = x[measured]
    n = int(v.size)
    reasons = _reasons(df, spec.name, ~measured)
    if not n:
        return None, None, None, 0, reasons, "none", None
    if spec.kind == "rate":
        lo, hi = stats.wilson_interval(int(np.sum(v > 0.5)), n)
        return float(v.mean()), lo, hi, n, reasons, "wilson", None
    return float(v.mean()), None, None, n, reasons, "bootstrap", _Boot(v, "mean")


def _plan_percentile(spec: MetricSpec, df: pd.DataFrame) -> _Plan:
    """The q-th percentile of the raw column over its recorded rows not excluded."""
    assert spec.raw is not None and spec.q is not None
    x = _col(df, spec.raw)
    excluded = _bools(df, spec.exclude) if spec.exclude else np.zeros(len(df), dtype=bool)
    counted = np.isfinite(x) & ~excluded
    sample = x[counted]
    n = int(sample.size)
    reasons = dict(sorted(Counter(spec.missing if not np.isfinite(a) else str(spec.exclude)
                                  for a in x[~counted]).items()))
    if not n:
        return None, None, None, 0, reasons, "none", None
    return (float(np.percentile(sample, spec.q)), None, None, n, reasons, "bootstrap",
            _Boot(sample, "percentile", spec.q))


def _plan_ratio(spec: MetricSpec, df: pd.DataFrame) -> _Plan:
    """Sum of the raw column / cases where the ``per`` rate is 1, over every case. A case with no
    recorded value adds 0 to the sum and is counted unmeasured (``spec.missing``): a total that
    leaves cases out is not the run's total, so a gate's unmeasured budget sees it."""
    assert spec.raw is not None and spec.per is not None
    n_rows = len(df)
    x = _col(df, spec.raw)
    per = _col(df, spec.per, 0.0) > 0.5
    known = np.isfinite(x)
    if not np.any(known):
        return None, None, None, 0, ({spec.missing: n_rows} if n_rows else {}), "none", None
    if not per.any():
        return None, None, None, 0, {spec.per_missing: n_rows}, "none", None
    value = float(np.nansum(x)) / int(per.sum())
    n_known = int(known.sum())
    reasons = {spec.missing: n_rows - n_known} if n_known < n_rows else {}
    return value, None, None, n_known, reasons, "bootstrap", _Boot(
        np.column_stack([np.nan_to_num(x), per.astype(float)]), "ratio")


def _plan_sum(spec: MetricSpec, df: pd.DataFrame) -> _Plan:
    """Sum of the recorded values of the raw column."""
    assert spec.raw is not None
    x = _col(df, spec.raw)
    rec = np.isfinite(x)
    n = int(rec.sum())
    reasons = {spec.missing: len(df) - n} if len(df) - n else {}
    if not n:
        return None, None, None, 0, reasons, "none", None
    return float(x[rec].sum()), None, None, n, reasons, "bootstrap", _Boot(x[rec], "sum")


_PLANS = {"rate": _plan_per_case, "mean": _plan_per_case, "percentile": _plan_percentile,
          "ratio": _plan_ratio, "sum": _plan_sum}


def _plan_metric(spec: MetricSpec, df: pd.DataFrame) -> tuple[dict[str, Any], _Boot | None] | None:
    """A metric's entry with its value and, when the interval is a bootstrap, what to resample."""
    if spec.per_case and spec.name not in df.columns:
        return None
    value, lo, hi, n, reasons, method, boot = _PLANS[spec.kind](spec, df)
    entry = {
        "stage": spec.stage,
        "value": _num(value),
        "ci_low": _num(lo),
        "ci_high": _num(hi),
        "n": n,
        "unmeasured": len(df) - n,
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
        "schema_version": SCHEMA_VERSION,
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
