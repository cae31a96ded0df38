"""Production traffic by arm: traces and feedback read through the trace store, per-arm figures.

A request is a *success* when its trace's status is ``ok`` and its user, when they rated it,
did not rate it 1 or 2 (docs/experiment.md). Failed means status error or timeout. A rating
counts from the time it was given (never before its request): a look, a window or a figure at
time t reads each request's latest rating given before t (:class:`Rated`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.io import jsonl_objects
from labkit.trace.sql import FEEDBACK_FILE

if TYPE_CHECKING:
    import pandas as pd

ARM_KEYS = ("prompt_version", "model", "config_hash")
BAD_RATING = 2  # a rating at or below this is a bad answer


@dataclass(frozen=True)
class Traffic:
    """The requests (one row each: trace_id, ts, arm, status, latency_ms, cost_usd, faithfulness,
    simulated, failed; in time order) and their ratings as given (:func:`ratings_in_time`)."""

    requests: pd.DataFrame
    ratings: pd.DataFrame


def read_traffic(sources: Iterable[str | os.PathLike[str]], *, arm_by: str,
                 environment: str | None = None) -> Traffic:
    """The final attempt of each case, with the feedback's ratings of them, read strictly."""
    from labkit.trace.store import TraceStore

    if arm_by not in ARM_KEYS:
        raise ConfigError(f"unknown arm key {arm_by!r}", field="--arm-by", known=ARM_KEYS)
    with TraceStore(list(sources)) as store:
        check_traffic_files(store.jsonl_files, [d / FEEDBACK_FILE for d in store.run_dirs])
        where = "final" + (" AND environment = ?" if environment else "")
        df = store.query(
            f"SELECT trace_id, ts_start AS ts, {arm_by} AS arm, status, latency_ms, cost_usd, "
            f"faithfulness, simulated FROM traces WHERE {where} ORDER BY ts_start, trace_id",
            [environment] if environment else None)
        given = store.query("SELECT trace_id, rating, ts FROM feedback WHERE rating IS NOT NULL")
    if df.empty:
        raise ConfigError("no traces" + (f" in environment {environment!r}" if environment else ""),
                          field="traces")
    missing = int(df["arm"].isna().sum())
    if missing:
        raise ConfigError(f"{missing} trace(s) record no {arm_by}: every request must name its arm",
                          field="--arm-by")
    if df["ts"].isna().any():
        raise ConfigError(f"{int(df['ts'].isna().sum())} trace(s) have no ts_start: the looks need each "
                          "request's time", field="ts_start")
    df["failed"] = df["status"].isin(["error", "timeout"])
    return Traffic(df, ratings_in_time(df, given))


def ratings_in_time(requests: pd.DataFrame, given: pd.DataFrame) -> pd.DataFrame:
    """The ratings of ``requests`` (trace_id, rating, ts as given; ts None when not recorded), in the
    order they count: by ``at``, the time a rating counts from (its ts, or its request's time when it
    is earlier or not recorded), then its ts (an untimed one first: any timed one is later news).
    ``timed`` says whether the rating recorded its time."""
    import pandas as pd

    when = requests.set_index("trace_id")["ts"]
    given = given[given["trace_id"].isin(when.index)]
    asked = given["trace_id"].map(when).to_numpy(dtype=float)
    ts = given["ts"].to_numpy(dtype=float)
    timed = ~np.isnan(ts)
    out = pd.DataFrame({"trace_id": given["trace_id"].to_numpy(), "rating": given["rating"].to_numpy(dtype=float),
                        "at": np.where(timed, np.maximum(ts, asked), asked), "ts": np.where(timed, ts, -np.inf),
                        "timed": timed})
    return out.sort_values(["at", "ts", "trace_id", "rating"], kind="stable").reset_index(drop=True)


class Rated:
    """Requests (a frame in time order) with their ratings as given: :meth:`at` any time, over any
    run of rows, in time proportional to the rows and their ratings (a look's windows, at every look)."""

    def __init__(self, rows: pd.DataFrame, ratings: pd.DataFrame) -> None:
        self.ok = (rows["status"] == "ok").to_numpy(dtype=bool)
        self.rows = rows.assign(rating=np.nan, success=self.ok)  # (the columns made once: each look sets them)
        position = _positions(rows["trace_id"])
        pos = ratings["trace_id"].map(position).to_numpy(dtype=float)
        keep = ~np.isnan(pos)  # (the ratings of these rows only)
        order = np.lexsort((np.arange(int(keep.sum())), ratings["at"].to_numpy(dtype=float)[keep], pos[keep]))
        self.pos = pos[keep].astype(np.int64)[order]  # by request, then in the order they count
        self.when = ratings["at"].to_numpy(dtype=float)[keep][order]
        self.rating = ratings["rating"].to_numpy(dtype=float)[keep][order]

    def at(self, t: float, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Rows ``start:stop`` with ``rating`` and ``success`` as the feedback given before time ``t``
        made them: each request's latest rating by then."""
        stop = len(self.rows) if stop is None else stop
        lo, hi = np.searchsorted(self.pos, [start, stop])
        given = np.flatnonzero(self.when[lo:hi] < t) + lo
        last = given[np.append(self.pos[given][1:] != self.pos[given][:-1], True)] if given.size else given
        rating = np.full(stop - start, np.nan)
        rating[self.pos[last] - start] = self.rating[last]
        bad = rating <= BAD_RATING  # (NaN, no rating: not bad)
        return self.rows.iloc[start:stop].assign(rating=rating, success=self.ok[start:stop] & ~bad)


def _positions(ids: pd.Series) -> pd.Series:
    """Each id's position (the ids are unique)."""
    import pandas as pd

    return pd.Series(np.arange(len(ids)), index=ids.to_numpy())


def success_changes(rows: pd.DataFrame, ratings: pd.DataFrame) -> tuple[Any, Any, Any]:
    """Each rating's change to its request's success, in time order: (the trace ids, the times they
    count from, success after minus success before; a request is a success before any rating when
    its status is ok)."""
    import pandas as pd

    ok = ratings["trace_id"].map(rows.set_index("trace_id")["status"].eq("ok")).to_numpy(dtype=bool)
    after = (ok & (ratings["rating"].to_numpy(dtype=float) > BAD_RATING)).astype(float)
    before = pd.Series(after).groupby(ratings["trace_id"].to_numpy()).shift(1).to_numpy(dtype=float)
    before = np.where(np.isnan(before), ok.astype(float), before)
    return ratings["trace_id"].to_numpy(), ratings["at"].to_numpy(dtype=float), after - before


def check_traffic_files(traces: Iterable[Path], feedback: Iterable[Path]) -> None:
    """A DatasetError naming file, line and field for what the experiment would otherwise average in
    or drop silently: a line that does not parse, a trace record the trace schema refuses (a negative,
    non-finite or out-of-range cost_usd, latency_ms or ts_start, ...), a trace_id recorded
    twice in a file, a feedback line its validator refuses (labkit.trace.feedback.feedback_problems:
    a rating that is not an integer from 1 to 5, a ts that is no finite number, ...). (A trace_id in two files,
    a copy or an archive of a run, the trace store refuses when it opens them:
    :class:`labkit.trace.store.TraceStore`.)"""
    from labkit.trace.feedback import feedback_rows
    from labkit.trace.record import normalize_trace

    for path in traces:
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for n, obj in jsonl_objects(path, problems):
            try:
                normalize_trace(obj, line=n, path=str(path))
            except DatasetError as e:
                problems += e.problems
                continue
            tid = obj["trace_id"]
            if tid in seen:
                problems.append(Problem(n, "trace_id", f"{tid!r} already recorded at line {seen[tid]}: each "
                                        "trace once, or it is counted twice"))
            else:
                seen[tid] = n
        if problems:
            raise DatasetError(str(path), problems)
    for path in feedback:
        problems = []
        if path.is_file():
            feedback_rows(path, problems, torn_tail_ok=False)
        if problems:
            raise DatasetError(str(path), problems)


def choose_arms(df: pd.DataFrame, control: str | None, candidate: str | None) -> tuple[str, str]:
    """(control, candidate): as named, else the arm with the most requests is the control and the
    other the candidate; more than two arms need both named."""
    if control is not None and control == candidate:
        raise ConfigError(f"the control and the candidate are the same arm {control!r}", field="--candidate")
    counts = df["arm"].value_counts()
    arms = [str(a) for a in counts.index]
    for name, fld in ((control, "--control"), (candidate, "--candidate")):
        if name is not None and name not in arms:
            raise ConfigError(f"no requests in arm {name!r}", field=fld, known=arms)
    if control and candidate:
        return control, candidate
    if len(arms) < 2:
        raise ConfigError(f"one arm only ({arms[0]}): an experiment needs two", field="--arm-by")
    rest = [a for a in arms if a not in (control, candidate)]
    if len(arms) > 2:
        raise ConfigError(f"{len(arms)} arms: name the --control and --candidate", field="--arm-by", known=arms)
    control = control or rest[0]
    candidate = candidate or next(a for a in rest if a != control)
    return control, candidate


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One per-arm figure with its fixed-n 95% interval and the n it stands on."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _f(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def arm_figures(rows: pd.DataFrame, *, seed: int = 0) -> dict[str, Figure]:
    """success_rate, user_rating, error_rate, latency_p50_ms, latency_p95_ms, cost_per_request_usd of
    one arm's requests, each with its 95% interval (Wilson for rates, bootstrap otherwise)."""
    from labkit import stats

    n = len(rows)
    out: dict[str, Figure] = {}
    for name, col in (("success_rate", "success"), ("error_rate", "failed")):
        k = int(rows[col].sum())
        lo, hi = stats.wilson_interval(k, n)
        out[name] = Figure(value=k / n if n else None, ci_low=lo, ci_high=hi, n=n)
    rating = rows["rating"].dropna().to_numpy(dtype=float)
    lo, hi = stats.bootstrap_ci(rating, rng=seed)
    out["user_rating"] = Figure(value=_f(rating.mean()) if len(rating) else None, ci_low=lo, ci_high=hi,
                                n=len(rating))
    lat = rows["latency_ms"].dropna().to_numpy(dtype=float)
    for q in (50, 95):
        val = float(np.percentile(lat, q, method="inverted_cdf")) if len(lat) else None
        lo, hi = stats.percentile_ci(lat, q, rng=seed) if len(lat) else (None, None)
        out[f"latency_p{q}_ms"] = Figure(value=val, ci_low=lo, ci_high=hi, n=len(lat))
    cost = rows["cost_usd"].fillna(0.0).to_numpy(dtype=float)
    lo, hi = stats.bootstrap_ci(cost, rng=seed)
    out["cost_per_request_usd"] = Figure(value=_f(cost.mean()) if n else None, ci_low=lo, ci_high=hi, n=n)
    return out


def window_value(rows: pd.DataFrame, metric: str, slos: Mapping[str, Any]) -> tuple[float | None, int]:
    """The value of a rollout trigger's metric over ``rows`` (a window of the candidate's requests),
    and the n it stands on; None when the traces do not carry what it needs."""
    n = len(rows)
    if n == 0:
        return None, 0
    lat = rows["latency_ms"].dropna().to_numpy(dtype=float)
    if metric == "error_rate":
        return float(rows["failed"].mean()), n
    if metric in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        q = int(metric.split("_")[1][1:])
        return (float(np.percentile(lat, q, method="inverted_cdf")), len(lat)) if len(lat) else (None, 0)
    if metric == "cost_per_success":
        k = int(rows["success"].sum())
        return (float(rows["cost_usd"].fillna(0.0).sum()) / k, n) if k else (None, n)
    if metric.startswith("burn_rate:"):
        return _burn(rows, slos.get(metric.split(":", 1)[1]), lat)
    col = rows[metric].dropna() if metric in rows.columns else None
    return (float(col.mean()), len(col)) if col is not None and len(col) else (None, 0)


def _burn(rows: pd.DataFrame, slo: Any, lat: np.ndarray) -> tuple[float | None, int]:
    """bad ratio over the window / the SLO's allowance (docs/readiness.md)."""
    if slo is None or not slo.allowance:
        return None, 0
    if slo.kind == "error_rate":
        return float(rows["failed"].mean()) / slo.allowance, len(rows)
    if slo.kind == "latency" and slo.threshold_ms is not None and len(lat):
        return float((lat > slo.threshold_ms).mean()) / slo.allowance, len(lat)
    if slo.kind == "cost_per_success":
        k = int(rows["success"].sum())
        return ((float(rows["cost_usd"].fillna(0.0).sum()) / k) / slo.allowance, len(rows)) if k else (None, 0)
    if slo.kind == "quality_floor" and slo.metric in rows.columns:
        col = rows[slo.metric].dropna()
        return ((1 - float(col.mean())) / slo.allowance, len(col)) if len(col) else (None, 0)
    return None, 0
