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
from labkit.errors import ConfigError, DatasetError, Problem
from labkit.metrics.schema import SCHEMA_VERSION
from labkit.registry import METRICS, MetricSpec

if TYPE_CHECKING:
    import pandas as pd

def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


class _Table:
    """A scores frame's columns as arrays, each read once (rows in the frame's order)."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.n = len(df)
        self._num: dict[str, np.ndarray] = {}
        self._bools: dict[str, np.ndarray] = {}
        self._reasons: dict[str, tuple[np.ndarray, list[str]]] = {}

    def num(self, name: str) -> np.ndarray:
        import pandas as pd

        if name not in self._num:
            self._num[name] = np.asarray(pd.to_numeric(self.df[name], errors="coerce"), dtype=float)
        return self._num[name]

    def bools(self, name: str) -> np.ndarray:
        if name not in self._bools:
            col = self.df[name]
            self._bools[name] = (col.to_numpy(dtype=bool) if col.dtype == bool else np.array(
                [str(v).strip().lower() in ("true", "1", "1.0") for v in col], dtype=bool))
        return self._bools[name]

    def reasons(self, name: str) -> tuple[np.ndarray, list[str]]:
        """Codes of a reason column (0 = no reason given) and the reason of each code."""
        import pandas as pd

        if name not in self._reasons:
            codes, uniques = pd.factorize(self.df[name], use_na_sentinel=True)
            labels = ["unmeasured"] + ["unmeasured" if not isinstance(r, str) or not r else r for r in uniques]
            self._reasons[name] = (np.asarray(codes, dtype=np.int64) + 1, labels)
        return self._reasons[name]


class _Frame:
    """The rows ``rows`` of a :class:`_Table` (all of them when None): one block of metrics.json."""

    def __init__(self, table: _Table, rows: np.ndarray | None = None) -> None:
        self.table = table
        self.rows = rows
        self.columns = table.df.columns

    def __len__(self) -> int:
        return self.table.n if self.rows is None else int(self.rows.size)

    def run_rows(self, mask: np.ndarray) -> np.ndarray:
        """The table rows of this frame's rows where ``mask`` holds."""
        return np.flatnonzero(mask) if self.rows is None else self.rows[mask]

    def _take(self, a: np.ndarray) -> np.ndarray:
        return a if self.rows is None else a[self.rows]


def _col(df: _Frame, name: str, default: float = math.nan) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default)
    return df._take(df.table.num(name))


def _reasons(df: _Frame, name: str, mask: np.ndarray) -> dict[str, int]:
    col = name + "_reason"
    if col not in df.columns:
        n = int(mask.sum())
        return {"unmeasured": n} if n else {}
    counts: Counter[str] = Counter()
    if mask.any():
        codes, labels = df.table.reasons(col)  # read at the rows counted only (not the whole block)
        for code, c in enumerate(np.bincount(codes[df.run_rows(mask)], minlength=len(labels)).tolist()):
            if c:
                counts[labels[code]] += c
    return dict(sorted(counts.items()))


def _bools(df: _Frame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return df._take(df.table.bools(name))


@dataclass(frozen=True)
class _Boot:
    """The bootstrap an aggregate entry still needs: ``stat`` of resamples of
    ``sample`` (mean, sum, ratio of its two column sums, or percentile ``q``), the
    values of the table rows ``rows`` for the metric ``metric``."""

    sample: np.ndarray
    stat: str
    metric: str
    rows: np.ndarray
    q: float = 50.0


#: (value, interval low, high, n measured, unmeasured reasons, interval method, bootstrap to run)
_Plan = tuple[float | None, float | None, float | None, int, dict[str, int], str, _Boot | None]


#: whether numpy's long double carries more digits than a float (x86: 64 bits against 53)
_WIDE = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def _mean(v: np.ndarray) -> float:
    """The mean of ``v`` as its exact value rounds (20 cases of 0.6 are 0.6, where np.mean gives
    0.5999999999999999 and a gate ">= 0.6" failed): summed pairwise in long double where it is wider
    than a float (error far below a float's last digit up to millions of values), else by fsum."""
    if _WIDE:
        return float(np.sum(v, dtype=np.longdouble) / v.size)
    return math.fsum(v.tolist()) / v.size


def _plan_per_case(spec: MetricSpec, df: _Frame) -> _Plan:
    """A rate (Wilson interval) or mean (bootstrap) over the column's measured cases."""
    from labkit import stats

    x = _col(df, spec.name)
    measured = np.isfinite(x)
    v = x[measured]
    n = int(v.size)
    reasons = _reasons(df, spec.name, ~measured)
    if not n:
        return None, None, None, 0, reasons, "none", None
    mean = _mean(v)
    if spec.kind == "rate":
        odd = v[(v != 0.0) & (v != 1.0)]
        if odd.size:
            raise ConfigError(f"metric {spec.name!r} is a rate (kind 'rate': 0 or 1 a case) but gave {float(odd[0])!r} "
                              f"for {odd.size} case(s): register it with kind 'mean'", field="metric")
        lo, hi = stats.wilson_interval(int(np.sum(v)), n)
        return mean, lo, hi, n, reasons, "wilson", None
    return mean, None, None, n, reasons, "bootstrap", _Boot(v, "mean", spec.name, df.run_rows(measured))


def _plan_percentile(spec: MetricSpec, df: _Frame) -> _Plan:
    """The q-th percentile of the raw column over its recorded rows not excluded."""
    assert spec.raw is not None and spec.q is not None
    x = _col(df, spec.raw)
    excluded = _bools(df, spec.exclude) if spec.exclude else np.zeros(len(df), dtype=bool)
    counted = np.isfinite(x) & ~excluded
    sample = x[counted]
    n = int(sample.size)
    unrecorded = int(np.count_nonzero(~np.isfinite(x)))
    counts = Counter({spec.missing: unrecorded}) + Counter({str(spec.exclude): int((~counted).sum()) - unrecorded})
    reasons = dict(sorted(counts.items()))
    if not n:
        return None, None, None, 0, reasons, "none", None
    return (float(np.percentile(sample, spec.q)), None, None, n, reasons, "bootstrap",
            _Boot(sample, "percentile", spec.name, df.run_rows(counted), spec.q))


def _plan_ratio(spec: MetricSpec, df: _Frame) -> _Plan:
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
        np.column_stack([np.nan_to_num(x), per.astype(float)]), "ratio", spec.name,
        df.run_rows(np.ones(n_rows, dtype=bool)))


def _plan_sum(spec: MetricSpec, df: _Frame) -> _Plan:
    """Sum of the recorded values of the raw column."""
    assert spec.raw is not None
    x = _col(df, spec.raw)
    rec = np.isfinite(x)
    n = int(rec.sum())
    reasons = {spec.missing: len(df) - n} if len(df) - n else {}
    if not n:
        return None, None, None, 0, reasons, "none", None
    return float(x[rec].sum()), None, None, n, reasons, "bootstrap", _Boot(x[rec], "sum", spec.name,
                                                                                        df.run_rows(rec))


_PLANS = {"rate": _plan_per_case, "mean": _plan_per_case, "percentile": _plan_percentile,
          "ratio": _plan_ratio, "sum": _plan_sum}


def _plan_metric(spec: MetricSpec, df: _Frame) -> tuple[dict[str, Any], _Boot | None] | None:
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


def _from_sums(stat: str, sums: np.ndarray, size: int | np.ndarray) -> np.ndarray:
    """The statistic of each resample from its column sums ``[n_boot, m]`` and the number of the
    sample's cases it drew (NaN when a mean or ratio has nothing to divide by)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if stat == "mean":
            return np.where(np.asarray(size) > 0, sums[:, 0] / size, np.nan)
        if stat == "ratio":
            num, den = sums[:, 0], sums[:, 1]
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return sums[:, 0]


@dataclass(frozen=True)
class _Cells:
    """The blocks of an aggregate (block 0: every row; then each slice) cut into cells: the rows
    that belong to the same blocks. Each block is a union of cells."""

    n: int
    order: np.ndarray  # table rows sorted by cell (then by row)
    starts: np.ndarray  # first position of each cell in ``order``, and n
    of_group: list[np.ndarray]  # the cells of each block


def _cells(n: int, slices: Sequence[np.ndarray]) -> _Cells:
    """Cells of the whole table (block 0) and of the blocks with rows ``slices``."""
    words = max(1, -(-len(slices) // 64))
    key = np.zeros((n, words), dtype=np.uint64)
    for j, rows in enumerate(slices):
        key[rows, j // 64] |= np.uint64(1) << np.uint64(j % 64)
    if words == 1:
        flat_keys, cell = np.unique(key[:, 0], return_inverse=True)
        cell_keys = flat_keys[:, None]
    else:
        cell_keys, cell = np.unique(key, axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    n_cells = cell_keys.shape[0]
    starts = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=n_cells))]).astype(np.int64)
    bit = [np.uint64(1) << np.uint64(j % 64) for j in range(len(slices))]
    of_group = [np.arange(n_cells)] + [np.flatnonzero(cell_keys[:, j // 64] & bit[j])
                                       for j in range(len(slices))]
    return _Cells(n, np.argsort(cell, kind="stable"), starts, of_group)


#: A planned entry: the entry, the bootstrap it still needs, its block (0: the whole table).
_Planned = tuple[dict[str, Any], _Boot | None, int]


def _run_boots(planned: Sequence[_Planned], cells: _Cells, *, seed: int, n_boot: int) -> None:
    """Fill in the bootstrap intervals of planned entries. Every block's statistic is taken on
    resamples of the whole table's n cases (docs/metrics.md, "Aggregates and intervals"): a
    percentile by its order statistics, a sample with few distinct rows by multinomial counts,
    and every other column through one shared count matrix, summed per cell."""
    from labkit import stats

    jobs: dict[str, list[tuple[dict[str, Any], _Boot, int]]] = {}
    for entry, b, group in planned:
        if b is not None:
            jobs.setdefault(b.metric, []).append((entry, b, group))
    dists: list[tuple[dict[str, Any], np.ndarray]] = []
    columns: dict[bytes, int] = {}  # identical columns (the same cost in two metrics) summed once
    stacked: list[np.ndarray] = []
    shared: list[tuple[dict[str, Any], str, int, list[int]]] = []
    n = cells.n
    for metric_jobs in jobs.values():
        run = max((b for _, b, _ in metric_jobs), key=lambda b: b.rows.size)  # block 0's: all others' rows
        if run.stat == "percentile":
            dists += [(e, stats.percentile_distribution(b.sample, b.q, n_boot=n_boot, rng=seed, n_total=n))
                      for e, b, _ in metric_jobs]
            continue
        x = run.sample.reshape(run.rows.size, -1)
        # multinomial counts cost about d binomial draws per block and resample, the shared
        # matrix a fraction of a nanosecond per case and resample for one more column
        few = stats._distinct_rows(x, n // (stats._DISTINCT_FACTOR * len(metric_jobs)))
        if few is not None:
            rows, _, inv = few
            label = np.full(n, -1, dtype=np.intp)
            label[run.rows] = inv
            for e, b, _ in metric_jobs:
                counts = np.bincount(label[b.rows], minlength=rows.shape[0])
                nz = counts > 0
                sums, size = stats.multinomial_sums(rows[nz], counts[nz], n_total=n, n_boot=n_boot, seed=seed)
                dists.append((e, _from_sums(b.stat, sums, size)))
            continue
        full = np.zeros((n, x.shape[1] + 1))
        full[run.rows, :-1] = x
        full[run.rows, -1] = 1.0  # counts the sample's cases drawn
        cols = []
        for j in range(full.shape[1]):
            c = full[cells.order, j]
            cols.append(columns.setdefault(c.tobytes(), len(columns)))
            if cols[-1] == len(stacked):
                stacked.append(c)
        shared += [(e, b.stat, group, cols) for e, b, group in metric_jobs]
    if shared:
        sums = stats._index_counts_sums(np.column_stack(stacked), n_boot, seed, cells.starts)
        for e, stat, group, cols in shared:
            s = sums[:, cells.of_group[group]][:, :, cols].sum(axis=1)
            dists.append((e, _from_sums(stat, s[:, :-1], s[:, -1])))
    for entry, dist in dists:
        lo, hi = stats.interval_from_distribution(dist)
        entry["ci_low"], entry["ci_high"] = _num(lo), _num(hi)


def aggregate_metric(spec: MetricSpec, df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000) -> dict[str, Any] | None:
    """One metrics.json entry for one metric over the rows of ``df`` (None if the frame lacks it).

    Rows are used in the frame's order (:func:`aggregate_frame` sorts them by case_id first).
    """
    planned = _plan_metric(spec, _Frame(_Table(df)))
    if planned is None:
        return None
    _run_boots([(*planned, 0)], _cells(len(df), []), seed=seed, n_boot=n_boot)
    return planned[0]


def aggregate_frame(df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000,
                    n_missing: int = 0) -> dict[str, dict[str, Any]]:
    """metrics.json ``metrics`` block for a scores frame (rows sorted by case_id first,
    so the result never depends on row order); ``n_missing`` cases had no result."""
    if "case_id" in df.columns and not df["case_id"].is_monotonic_increasing:
        df = df.sort_values("case_id", kind="mergesort").reset_index(drop=True)
    planned: list[_Planned] = []
    out = _count_missing(_plan_frame(_Frame(_Table(df)), planned, 0), n_missing)
    _run_boots(planned, _cells(len(df), []), seed=seed, n_boot=n_boot)
    return out


def _plan_frame(df: _Frame, planned: list[_Planned], group: int) -> dict[str, dict[str, Any]]:
    """A block's entries, intervals still to compute (appended to ``planned``)."""
    out: dict[str, dict[str, Any]] = {}
    for spec in METRICS.values():
        got = _plan_metric(spec, df)
        if got is not None:
            out[spec.name] = got[0]
            planned.append((*got, group))
    return out


def _ids(df: pd.DataFrame) -> np.ndarray:
    """The frame's case ids as an array of str objects (quick to hash)."""
    return df["case_id"].astype(str).to_numpy(dtype=object)


def _slice_rows(cases: Sequence[EvalCase], case_ids: list[str], missing: Sequence[EvalCase],
                row_of: pd.Index, tags: Sequence[str]) -> dict[str, tuple[np.ndarray, int]]:
    """``"tag=value"`` -> (the rows of the cases carrying it, in row order; its missing cases)."""
    import pandas as pd

    n = max(len(row_of), 1)
    pos = np.asarray(row_of.get_indexer(pd.Index(case_ids, dtype=object)), dtype=np.int64)
    out: dict[str, tuple[np.ndarray, int]] = {}
    tag_maps = [c.tags for c in cases]
    for tag in tags:
        found, uniques = pd.factorize(np.array([t.get(tag) for t in tag_maps], dtype=object))
        gone = Counter(c.tags[tag] for c in missing if tag in c.tags)
        names = sorted(set(uniques.tolist()) | set(gone))
        rank = np.array([names.index(v) for v in uniques.tolist()] + [-1], dtype=np.int64)
        codes = rank[found]  # the value's place among the sorted names (-1: no such tag)
        have = (codes >= 0) & (pos >= 0)
        pairs = np.sort(codes[have] * n + pos[have])  # by value, then row
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if pairs.size else pairs  # a row once per value
        split = np.searchsorted(pairs // n, np.arange(len(names) + 1))
        for i, v in enumerate(names):
            out[f"{tag}={v}"] = (pairs[split[i]:split[i + 1]] % n, gone[v])
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
    import pandas as pd

    if "case_id" not in scores.columns:
        raise DatasetError(None, [Problem(None, "case_id", "scores have no case_id column")])
    ids = _ids(scores)
    case_ids = [c.id for c in cases]
    unscored = pd.Index(ids, dtype=object).unique().get_indexer(pd.Index(case_ids, dtype=object)) < 0
    if unscored.any():
        raise DatasetError(None, [Problem(None, "case_id", f"no scores for case {case_ids[i]!r}")
                                  for i in np.flatnonzero(unscored).tolist()])
    keep = pd.Index(case_ids, dtype=object).unique().get_indexer(pd.Index(ids, dtype=object)) >= 0
    df = scores[keep].drop_duplicates("case_id", keep="last")
    if not df["case_id"].is_monotonic_increasing:
        df = df.sort_values("case_id", kind="mergesort")
    df = df.reset_index(drop=True)
    table = _Table(df)
    planned: list[_Planned] = []
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "k": int(k),
        "n_cases": len(df),
        "n_missing": len(missing),
        "seed": int(seed),
        "n_boot": int(n_boot),
        "metrics": _plan_frame(_Frame(table), planned, 0),
        "slices": {},
    }
    _count_missing(out["metrics"], len(missing))
    blocks = _slice_rows(cases, case_ids, missing, pd.Index(_ids(df), dtype=object), slice_tags)
    for group, (name, (rows, gone)) in enumerate(blocks.items(), start=1):
        out["slices"][name] = _count_missing(_plan_frame(_Frame(table, rows), planned, group), gone)
    cells = _cells(len(df), [rows for rows, _ in blocks.values()])
    _run_boots(planned, cells, seed=seed, n_boot=n_boot)  # every block's resamples in one pass
    return out


def _count_missing(entries: dict[str, dict[str, Any]], n_missing: int) -> dict[str, dict[str, Any]]:
    """Put ``n_missing`` (cases without a result) beside ``n`` and ``unmeasured`` of each entry."""
    for e in entries.values():
        e["n_missing"] = int(n_missing)
    return entries
