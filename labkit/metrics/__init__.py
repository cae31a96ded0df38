"""Metrics by stage, per-case scoring and aggregation.

Every metric is one declaration in its stage module (``retrieval``,
``generation``, ``agent``, ``ops``): ``@metric(...)`` on its per-case
function, or ``run_metric(...)`` with the raw column a percentile, ratio or
sum aggregates. Importing this package declares them all in the registry
(labkit.registry.METRICS), without loading numpy.

- :func:`score_cases` (labkit.metrics.percase) turns cases + results lines
  into one row per case: each per-case metric's value (NaN = unmeasured) and
  ``<metric>_reason``, plus the raw ops columns.
- :func:`aggregate` (labkit.metrics.aggregation, loads numpy) turns that frame
  into the metrics.json shape: value, 95% interval, n measured, unmeasured
  count with reasons, per slice.

Definitions and edge cases: docs/metrics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit import embedjudge  # noqa: F401  (declares the metrics only the embedding judge measures)
from labkit.metrics import agent, generation, ops, retrieval
from labkit.metrics.ops import RAW_COLUMNS
from labkit.metrics.percase import CaseResult, score_cases
from labkit.metrics.schema import SCHEMA_VERSION, metrics_schema_version
from labkit.registry import (
    DIRECTIONS,
    KINDS,
    METRICS,
    PER_CASE_KINDS,
    RUN_KINDS,
    STAGES,
    CaseMetricFn,
    MetricSpec,
    get_metric,
    metric,
    per_case_metrics,
    register_metric,
    run_metric,
    unregister_metric,
)

if TYPE_CHECKING:
    from labkit.metrics.aggregation import (
        aggregate,
        aggregate_frame,
        aggregate_metric,
    )

#: The built-in metrics, in registry order.
BUILTIN_METRICS = tuple(n for n, s in METRICS.items() if s.builtin)

_AGGREGATION = ("aggregate", "aggregate_frame", "aggregate_metric")


def __getattr__(name: str) -> Any:
    """The aggregation names, loaded (with numpy) on first use."""
    if name in _AGGREGATION:
        from labkit.metrics import aggregation

        return getattr(aggregation, name)
    raise AttributeError(f"module 'labkit.metrics' has no attribute {name!r}")


__all__ = [
    "BUILTIN_METRICS",
    "DIRECTIONS",
    "KINDS",
    "METRICS",
    "PER_CASE_KINDS",
    "RAW_COLUMNS",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "STAGES",
    "CaseMetricFn",
    "CaseResult",
    "MetricSpec",
    "agent",
    "aggregate",
    "aggregate_frame",
    "aggregate_metric",
    "generation",
    "get_metric",
    "metric",
    "metrics_schema_version",
    "ops",
    "per_case_metrics",
    "register_metric",
    "retrieval",
    "run_metric",
    "score_cases",
    "unregister_metric",
]
