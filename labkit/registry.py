"""The metric registry: each metric's name, stage, direction and kind.

It holds no numeric code and imports no numeric library, so the gate, the
CLI and the config checks can name and validate metrics without loading
numpy; ``labkit.metrics`` (scoring and aggregation) re-exports everything
here. Definitions and edge cases: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError

#: The latency percentile each percentile metric reports.
LATENCY_PERCENTILES = {"latency_p50_ms": 50.0, "latency_p95_ms": 95.0, "latency_p99_ms": 99.0}

if TYPE_CHECKING:
    from labkit.cases import EvalCase

STAGES = ("retrieval", "generation", "agent", "ops")
DIRECTIONS = ("higher", "lower")
KINDS = ("rate", "mean", "percentile", "ratio", "sum")
PER_CASE_KINDS = ("rate", "mean")

CaseMetricFn = Callable[["EvalCase", Mapping[str, Any]], "float | tuple[float | None, str] | None"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric's identity. ``kind`` decides how it aggregates:

    rate (0/1 per case, Wilson interval), mean (per-case values, bootstrap
    interval of the mean), percentile, ratio and sum (computed over the run
    from raw columns). ``fn`` is the per-case function of a user metric
    (``fn(case, result) -> value | None | (value | None, reason)``); built-in
    metrics are computed in bulk and have ``fn=None``.
    """

    name: str
    stage: str
    direction: str
    kind: str
    bounded: bool
    description: str
    fn: CaseMetricFn | None = None

    @property
    def per_case(self) -> bool:
        return self.kind in PER_CASE_KINDS


METRICS: dict[str, MetricSpec] = {}


def _add(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    if spec.stage not in STAGES:
        raise ConfigError(f"unknown stage {spec.stage!r}", field="stage", known=STAGES)
    if spec.direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {spec.direction!r}", field="direction", known=DIRECTIONS)
    if spec.kind not in KINDS:
        raise ConfigError(f"unknown kind {spec.kind!r}", field="kind", known=KINDS)
    if spec.name in METRICS and not replace:
        raise ConfigError(f"metric {spec.name!r} is already registered", field="name")
    METRICS[spec.name] = spec
    return spec


def register_metric(
    name: str,
    *,
    stage: str,
    direction: str = "higher",
    kind: str = "mean",
    bounded: bool = True,
    description: str = "",
    replace: bool = False,
) -> Callable[[CaseMetricFn], CaseMetricFn]:
    """Decorator: register a per-case metric ``fn(case, result)``.

    The function returns a float, ``None`` (unmeasured, reason ``unmeasured``)
    or ``(value_or_None, reason)``. ``kind`` must be ``rate`` (0/1) or ``mean``.
    score_cases computes it for every case and aggregate reports it.
    """
    if kind not in PER_CASE_KINDS:
        raise ConfigError(f"a registered metric must be per case, got kind {kind!r}", field="kind", known=PER_CASE_KINDS)

    def deco(fn: CaseMetricFn) -> CaseMetricFn:
        _add(MetricSpec(name, stage, direction, kind, bounded, description or (fn.__doc__ or "").strip(), fn), replace=replace)
        return fn

    return deco


def unregister_metric(name: str) -> None:
    """Remove a user metric (built-ins cannot be removed)."""
    spec = get_metric(name)
    if spec.fn is None:
        raise ConfigError(f"built-in metric {name!r} cannot be removed", field="name")
    del METRICS[name]


def get_metric(name: str) -> MetricSpec:
    """The spec of a metric; ConfigError listing the known names when unknown."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}", field="metric", known=sorted(METRICS)) from None


_BUILTIN = [
    ("retrieval_hit_rate", "retrieval", "higher", "rate", True, "1 if a gold id is in the first k retrieved, else 0"),
    ("mrr", "retrieval", "higher", "mean", True, "1 / rank of the first gold id within k, else 0"),
    ("recall_at_k", "retrieval", "higher", "mean", True, "gold ids in the first k / gold ids"),
    ("precision_at_k", "retrieval", "higher", "mean", True, "gold ids in the first k / k"),
    ("context_precision", "retrieval", "higher", "mean", True, "mean precision at each gold rank within k; 0 if no hit"),
    ("ndcg", "retrieval", "higher", "mean", True, "binary-gain nDCG at k"),
    ("faithfulness", "generation", "higher", "mean", True, "supported claims / claims (judge)"),
    ("must_include_coverage", "generation", "higher", "mean", True, "must_include phrases found / phrases"),
    ("must_not_include_violation", "generation", "lower", "rate", True, "1 if any must_not_include phrase is in the answer"),
    ("citation_validity", "generation", "higher", "mean", True, "cited ids that were retrieved / cited ids"),
    ("citation_accuracy", "generation", "higher", "mean", True, "cited ids that are gold / cited ids"),
    ("answer_relevance", "generation", "higher", "mean", True, "judge score of the answer to the question"),
    ("tool_call_accuracy", "agent", "higher", "mean", True, "tool sequence match, then mean exact args match"),
    ("task_success_rate", "agent", "higher", "rate", True, "ok, all must_include, no must_not_include, tools match"),
    ("retry_rate", "agent", "lower", "rate", True, "share of cases with more than one attempt"),
    ("latency_p50_ms", "ops", "lower", "percentile", False, "median latency (ms), cache hits excluded"),
    ("latency_p95_ms", "ops", "lower", "percentile", False, "95th percentile latency (ms), cache hits excluded"),
    ("latency_p99_ms", "ops", "lower", "percentile", False, "99th percentile latency (ms), cache hits excluded"),
    ("error_rate", "ops", "lower", "rate", True, "cases with status != ok / cases"),
    ("cost_per_success", "ops", "lower", "ratio", False, "total cost (USD) / successful cases"),
    ("total_cost_usd", "ops", "lower", "sum", False, "sum of cost_usd"),
    ("tokens_per_case", "ops", "lower", "mean", False, "mean input + output tokens per case"),
]
for _n, _s, _d, _k, _b, _desc in _BUILTIN:
    _add(MetricSpec(_n, _s, _d, _k, _b, _desc))

BUILTIN_METRICS = tuple(n for n, *_ in _BUILTIN)
RAW_COLUMNS = (
    "status",
    "latency_ms",
    "latency_ms_reason",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "attempts",
    "from_cache",
    "task_success",
)


def per_case_metrics() -> list[str]:
    """Names of the metrics that have a per-case column, in registry order."""
    return [n for n, s in METRICS.items() if s.per_case]


#: Unmeasured reason codes meaning "not applicable": the case carries no label for the metric
#: (``no_gold``, ``no_must_include``, ``no_must_not_include``, ``no_expected_tools``, a user
#: metric's ``no_label…``), or the answer makes no claim (``no_claims``: an abstention). A code is
#: not applicable when it starts with one of these; every other code (``not_ok``, ``no_answer``,
#: ``no_retrieval``, ``no_context``, ``from_cache``, ``judge_error``, ``no_result`` ... and any
#: unknown one) is a failure that counts against a gate's unmeasured budget (docs/metrics.md).
NOT_APPLICABLE_REASONS = ("no_gold", "no_must", "no_expected", "no_label", "no_claims")


def is_failure_reason(reason: str) -> bool:
    """Whether an unmeasured reason code counts against a gate's unmeasured budget."""
    return not str(reason).startswith(NOT_APPLICABLE_REASONS)


def failure_reasons(reasons: Mapping[str, Any]) -> dict[str, int]:
    """The failure part of an ``unmeasured_reasons`` mapping (code -> count), zero counts dropped."""
    out: dict[str, int] = {}
    for code, count in reasons.items():
        n = count if isinstance(count, int) and not isinstance(count, bool) else 0
        if n > 0 and is_failure_reason(code):
            out[str(code)] = n
    return out
