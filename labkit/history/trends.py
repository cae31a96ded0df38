"""The history of runs: series by dataset, consecutive-run regressions, the text table.

Runs are ordered by their manifest's ``created_at`` (:data:`labkit.history.index.RUN_ORDER`: runs
that record none come last, by run id). A *series* is the runs on one dataset
fingerprint: runs on different datasets are never one series (their metrics are not
comparable), so each fingerprint is its own series and a run that starts a new one is
marked. Within a series, each run is compared with the previous one by
:func:`labkit.compare.compare_runs` (paired by case id, Holm-adjusted, the same statistics
as ``labkit compare``); a metric whose verdict is ``regressed`` is flagged on that run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError
from labkit.history.index import (
    IndexUpdate,
    cached_comparison,
    pair_key,
    read_index,
    store_comparison,
    update_index,
)

if TYPE_CHECKING:
    import pandas as pd

#: the metrics the text table shows unless told otherwise
DEFAULT_METRICS = ("task_success_rate", "faithfulness", "retrieval_hit_rate", "latency_p95_ms", "cost_per_success")
DEFAULT_INDEX = "outputs/history/history.duckdb"


@dataclass(frozen=True, kw_only=True)
class Regression:
    """A metric that regressed from the previous run of the same series (``run_id`` and
    ``baseline_run_id`` are the runs' labels: the run id, or ``parent/folder`` when ids repeat)."""

    run_id: str
    path: str
    baseline_run_id: str
    metric: str
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_adjusted: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class History:
    """Runs (one row each, in time order, with ``series`` and ``new_series``), their metrics
    (long: path, metric, value, ci_low, ci_high, n), the regressions and notes; ``unchecked``:
    what the history could not judge (a run refused, a pair not compared), so it gives no
    verdict of "no regression" for them."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    regressions: list[Regression] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    update: IndexUpdate | None = None
    index_path: str | None = None

    @property
    def series(self) -> list[str]:
        return list(dict.fromkeys(self.runs["series"].tolist())) if len(self.runs) else []

    def value(self, path: str, metric: str) -> dict[str, Any] | None:
        """The metrics.json entry (value, ci_low, ci_high, n, ...) of a run, None when not recorded."""
        from labkit.history.table import clean

        m = self.metrics
        hit = m[(m["path"] == path) & (m["metric"] == metric)]
        return None if hit.empty else {str(k): clean(v) for k, v in hit.iloc[0].to_dict().items()}

    def regressed(self, path: str) -> list[str]:
        return [r.metric for r in self.regressions if r.path == path]

    def to_dict(self) -> dict[str, Any]:
        from labkit.history.table import history_dict

        return history_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)

    def to_text(self, metrics: Sequence[str] = DEFAULT_METRICS) -> str:
        from labkit.history.table import history_text

        return history_text(self, metrics)


def series_label(fingerprint: Any, dataset_path: Any) -> str:
    """``golden.jsonl@b7b722b7``: the dataset file name and the fingerprint's first 8 characters."""
    name = Path(str(dataset_path)).name if isinstance(dataset_path, str) and dataset_path else "dataset"
    fp = str(fingerprint)[:8] if isinstance(fingerprint, str) and fingerprint else "no-fingerprint"
    return f"{name}@{fp}"


def _labels(runs: pd.DataFrame) -> list[str]:
    """Each run's label: its run id, or ``parent/folder`` when several runs share the id."""
    ids = runs["run_id"].tolist()
    return [rid if ids.count(rid) == 1 else f"{Path(p).parent.name}/{Path(p).name}"
            for rid, p in zip(ids, runs["path"], strict=True)]


def _assign_series(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    runs["run"] = _labels(runs)
    runs["series"] = [series_label(f, p) if isinstance(f, str) else f"{series_label(None, p)}:{rid}"
                      for f, p, rid in zip(runs["dataset_fingerprint"], runs["dataset_path"], runs["run_id"],
                                           strict=True)]
    prev: str | None = None
    new = []
    for s in runs["series"]:  # a run whose dataset differs from the run before it starts (or resumes) a series
        new.append(prev is not None and s != prev)
        prev = s
    runs["new_series"] = new
    return runs


def _compare_rows(base: str, cur: str, seed: int) -> list[dict[str, Any]]:
    from labkit.compare import compare_runs

    comp = compare_runs(base, cur, seed=seed)
    return [{"base_path": base, "path": cur, "metric": name, "verdict": m.verdict, "delta": m.delta,
             "ci_low": m.ci_low, "ci_high": m.ci_high, "p_adjusted": m.p_adjusted, "n": m.n}
            for name, m in comp.metrics.items()]


def _regressions(runs: pd.DataFrame, index: str, seed: int, unchecked: list[str]) -> list[Regression]:
    out: list[Regression] = []
    for _, group in runs.groupby("series", sort=False):
        rows = group.to_dict("records")
        for prev, cur in pairwise(rows):
            key = pair_key(prev["files_hash"], cur["files_hash"], seed)
            got = cached_comparison(index, key)
            if got is None:
                try:
                    got = _compare_rows(prev["path"], cur["path"], seed)
                except LabkitError as e:
                    unchecked.append(f"{cur['run']}: not compared with {prev['run']}: {e}")
                    continue
                store_comparison(index, key, got)
            out += [Regression(run_id=cur["run"], path=cur["path"], baseline_run_id=prev["run"],
                               metric=r["metric"], delta=r["delta"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                               p_adjusted=r["p_adjusted"], n=int(r["n"] or 0))
                    for r in got if r["verdict"] == "regressed"]
    return out


def build_history(
    run_dirs: Iterable[str | os.PathLike[str]],
    *,
    index: str | os.PathLike[str] = DEFAULT_INDEX,
    gate: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> History:
    """Index ``run_dirs`` (incrementally) and read back their history: series by dataset
    fingerprint and the metrics that regressed between consecutive runs of a series."""
    upd = update_index(run_dirs, index, gate=gate)
    runs, metrics = read_index(index, upd.paths)
    runs = _assign_series(runs)
    notes = [f"skipped {p}: {why}" for p, why in upd.skipped.items()]
    if len(set(runs["series"])) > 1:
        notes.append(f"{len(set(runs['series']))} datasets: each is its own series, never one line "
                     "(metrics on different datasets are not comparable)")
    notes += _incomplete(runs)
    notes += [f"{r['run']}: created_at {r['created_at_given']!r} is no ISO time: placed after every dated run"
              for r in runs.to_dict("records") if isinstance(r.get("created_at_given"), str)]
    unchecked = [f"refused {why}" for why in upd.refused.values()]
    regs = _regressions(runs, str(index), seed, unchecked)
    return History(runs=runs, metrics=metrics, regressions=regs, notes=notes, unchecked=unchecked, update=upd,
                   index_path=str(index))


def _incomplete(runs: pd.DataFrame) -> list[str]:
    """A note for each run its manifest says did not finish, or that is scored on part of its
    dataset: its metrics stand on fewer cases, the rest counted missing."""
    out = []
    for r in runs.to_dict("records"):
        status = r.get("status") if isinstance(r.get("status"), str) else None
        missing = r.get("n_missing")
        missing = int(missing) if isinstance(missing, int | float) and missing == missing else 0
        if (status not in (None, "complete")) or missing:
            total = r.get("n_cases")
            of = f" of {int(total)}" if isinstance(total, int | float) and total == total else ""
            out.append(f"{r['run']} is incomplete: status {status or 'unrecorded'}, {missing}{of} cases without a "
                       "result (counted missing in its metrics)")
    return out
