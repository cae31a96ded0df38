"""Run history: a DuckDB index over run directories, series by dataset, regressions flagged.

* :func:`build_history` — index run directories (incrementally) and read back the
  :class:`History`: runs in time order, each metric with its interval, one series per
  dataset fingerprint, and the metrics that regressed between consecutive runs of a series
  (the paired statistics of :func:`labkit.compare.compare_runs`).
* :func:`update_index` — only the incremental index update.
* :func:`make_reference_history` — the shipped history (data/history.yaml).

docs/history.md describes the index and the rules.
"""

from __future__ import annotations

from labkit.history.index import INDEX_SCHEMA_VERSION, IndexUpdate, update_index
from labkit.history.reference import make_reference_history
from labkit.history.trends import DEFAULT_INDEX, DEFAULT_METRICS, History, Regression, build_history

__all__ = [
    "DEFAULT_INDEX",
    "DEFAULT_METRICS",
    "INDEX_SCHEMA_VERSION",
    "History",
    "IndexUpdate",
    "Regression",
    "build_history",
    "make_reference_history",
    "update_index",
]
