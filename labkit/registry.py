"""The metric registry: a metric is ONE declaration, its spec and its function together.

A per-case metric is a function ``fn(case, result)`` under the decorator
:func:`metric` (built-ins in ``labkit/metrics/<stage>.py``, user metrics
anywhere, through :func:`register_metric`); a run-level metric (percentile,
ratio, sum) aggregates a raw column and is declared by :func:`run_metric`.
``score_cases`` and ``aggregate`` iterate over :data:`METRICS`; nothing else
lists metric names.

This module holds no numeric code and imports no numeric library, so the gate,
the CLI and the config checks can name and validate metrics without loading
numpy. The built-ins are declared when ``labkit.metrics`` is imported (its
stage modules load no numpy either). Definitions: docs/metrics.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError

if TYPE_CHECKING:
    from labkit.cases import EvalCase

STAGES = ("retrieval", "generation", "agent", "ops")
DIRECTIONS = ("higher", "lower")
KINDS = ("rate", "mean", "percentile", "ratio", "sum")
PER_CASE_KINDS = ("rate", "mean")
RUN_KINDS = ("percentile", "ratio", "sum")

CaseMetricFn = Callable[["EvalCase", Any], "float | tuple[float | None, str] | None"]

#: The resamples an interval is drawn from, and the seed, when nothing names others: what scoring
#: draws with and what a gate that declares none holds a run to (here, below numpy: a gate reads it).
DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """A metric's identity and how it is computed. ``kind`` decides how it aggregates:

    rate (0/1 per case, Wilson interval) and mean (per-case values, bootstrap
    interval of the mean) carry ``fn(case, result) -> value | None | (value |
    None, reason)``; percentile, ratio and sum are computed over the run from
    the raw column ``raw`` of the scores (bootstrap interval):

    * percentile: the ``q``-th percentile of ``raw`` over the rows where it is
      recorded and the boolean column ``exclude`` (if any) is false;
    * ratio: the sum of ``raw`` (missing = 0) / the cases where the rate metric
      ``per`` is 1 (unmeasured ``per_missing`` when none);
    * sum: the sum of the recorded ``raw`` values.

    ``missing`` is the reason of a row whose ``raw`` is not recorded. ``judge_method`` names the
    judge method a metric needs (a metric only one judge measures, such as the embedding judge's
    ``semantic_similarity``): a run scored by a judge without it has no such column, while the
    gate still knows the metric wherever it runs.
    """

    name: str
    stage: str
    direction: str
    kind: str
    bounded: bool
    description: str
    fn: CaseMetricFn | None = None
    raw: str | None = None
    q: float | None = None
    exclude: str | None = None
    per: str | None = None
    missing: str = "unmeasured"
    per_missing: str = "no_success"
    builtin: bool = False
    judge_method: str | None = None

    @property
    def per_case(self) -> bool:
        return self.kind in PER_CASE_KINDS

    def measured_by(self, judge: object) -> bool:
        """Whether a run scored by ``judge`` measures this metric (has its column)."""
        return self.judge_method is None or callable(getattr(judge, self.judge_method, None))


#: Every declared metric: the built-ins in stage order (declaration order within a stage), then
#: user metrics in the order registered. scores.csv columns and metrics.json entries follow it.
METRICS: dict[str, MetricSpec] = {}


#: A metric's name: it becomes a scores.csv column, a metrics.json key and a gate's field.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check(name: str, stage: str, direction: str, kind: str, known_kinds: tuple[str, ...]) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"a metric's name is letters, digits and _ (not first a digit), got {name!r:.60}",
                          field="name")
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", field="stage", known=STAGES)
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}", field="direction", known=DIRECTIONS)
    if kind not in known_kinds:
        what = "a per-case metric" if known_kinds == PER_CASE_KINDS else "a run-level metric"
        raise ConfigError(f"{what} has kind {' or '.join(known_kinds)}, got kind {kind!r}", field="kind",
                          known=known_kinds)


def _add(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    if spec.name in METRICS and not replace:
        raise ConfigError(f"metric {spec.name!r} is already registered", field="name")
    METRICS[spec.name] = spec
    if spec.builtin:  # the built-ins in stage order whatever the import order, then user metrics as added
        order = sorted(METRICS.values(), key=lambda m: (not m.builtin, STAGES.index(m.stage) if m.builtin else 0))
        METRICS.clear()
        METRICS.update((m.name, m) for m in order)
    return spec


def metric(
    *,
    name: str,
    stage: str,
    direction: str = "higher",
    kind: str = "mean",
    bounded: bool = True,
    description: str = "",
    replace: bool = False,
    builtin: bool = False,
    judge_method: str | None = None,
) -> Callable[[CaseMetricFn], CaseMetricFn]:
    """Decorator: declare the per-case metric ``name`` computed by the decorated ``fn(case, result)``.

    ``fn`` returns a float, ``None`` (unmeasured, reason ``unmeasured``) or
    ``(value_or_None, reason)``; ``result`` is the case's results line (a dict,
    with the scoring context as attributes: see ``labkit.metrics.percase.CaseResult``).
    ``kind`` is ``rate`` (0/1) or ``mean``. score_cases computes it for every
    case (a column and its ``_reason``) and aggregate reports it.
    """
    _check(name, stage, direction, kind, PER_CASE_KINDS)

    def deco(fn: CaseMetricFn) -> CaseMetricFn:
        desc = description or (fn.__doc__ or "").strip()
        _add(MetricSpec(name=name, stage=stage, direction=direction, kind=kind, bounded=bounded,
                        description=desc, fn=fn, builtin=builtin, judge_method=judge_method), replace=replace)
        return fn

    return deco


def run_metric(
    *,
    name: str,
    stage: str,
    kind: str,
    raw: str,
    direction: str = "lower",
    bounded: bool = False,
    description: str = "",
    q: float | None = None,
    exclude: str | None = None,
    per: str | None = None,
    missing: str = "unmeasured",
    builtin: bool = False,
) -> MetricSpec:
    """Declare a run-level metric: ``kind`` percentile (needs ``q``), ratio (needs ``per``) or sum of ``raw``."""
    _check(name, stage, direction, kind, RUN_KINDS)
    if kind == "percentile" and (q is None or not 0.0 < q < 100.0):
        raise ConfigError(f"a percentile metric needs q in (0, 100), got {q!r}", field="q")
    if kind == "ratio" and per is None:
        raise ConfigError("a ratio metric needs `per`, the rate metric that counts its denominator", field="per")
    return _add(MetricSpec(name=name, stage=stage, direction=direction, kind=kind, bounded=bounded,
                           description=description, raw=raw, q=q, exclude=exclude, per=per, missing=missing,
                           builtin=builtin))


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
    """Decorator: register a user's per-case metric ``fn(case, result)`` (:func:`metric`)."""
    return metric(name=name, stage=stage, direction=direction, kind=kind, bounded=bounded,
                  description=description, replace=replace)


def unregister_metric(name: str) -> None:
    """Remove a user metric (built-ins cannot be removed)."""
    spec = get_metric(name)
    if spec.builtin:
        raise ConfigError(f"built-in metric {name!r} cannot be removed", field="name")
    del METRICS[name]


def get_metric(name: str) -> MetricSpec:
    """The spec of a metric; ConfigError listing the known names when unknown."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}", field="metric", known=sorted(METRICS)) from None


def per_case_metrics() -> list[str]:
    """Names of the metrics that have a per-case column, in registry order."""
    return [n for n, s in METRICS.items() if s.per_case]


#: Unmeasured reason codes meaning "not applicable": the case carries no label for the metric
#: (``no_gold``, ``no_must_include``, ``no_must_not_include``, ``no_expected_tools``, a user
#: metric's ``no_label…``), or the answer makes no claim (``no_claims``: an abstention). A code is
#: not applicable when it starts with one of these; every other code (``not_ok``, ``no_answer``,
#: ``no_retrieval``, ``no_context``, ``from_cache``, ``judge_error``, ``no_result`` ... and any
#: unknown one) is a failure that counts against a gate's unmeasured budget (docs/metrics.md).
NOT_APPLICABLE_REASONS = ("no_gold", "no_must", "no_expected", "no_label", "no_claims", "no_reference")


def not_applicable(reason: str) -> bool:
    """Whether an unmeasured reason code means the metric does not apply to the case (it carries
    no label for it: no gold chunks, no phrases, no expected tools, no reference answer, an answer
    that makes no claim), as opposed to a measurement that failed (``not_ok``, ``redacted`` ...)."""
    return str(reason).startswith(NOT_APPLICABLE_REASONS)


def is_failure_reason(reason: str) -> bool:
    """Whether an unmeasured reason code counts against a gate's unmeasured budget."""
    return not not_applicable(reason)


def failure_reasons(reasons: Mapping[str, Any]) -> dict[str, int]:
    """The failure part of an ``unmeasured_reasons`` mapping (code -> count), zero counts dropped."""
    out: dict[str, int] = {}
    for code, count in reasons.items():
        n = count if isinstance(count, int) and not isinstance(count, bool) else 0
        if n > 0 and is_failure_reason(code):
            out[str(code)] = n
    return out


#: The largest retrieval cut-off (the relevance matrix holds k columns a case).
MAX_K = 10_000


def check_k(k: Any, *, path: str | None = None) -> int:
    """``k``, the retrieval cut-off, when it is a whole number from 1 to :data:`MAX_K`; else a
    ConfigError naming ``k`` (and ``path``, the file that gave it). The one check of scoring and of
    a gate's ``k:``."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be a whole number from 1 to {MAX_K:,} (the retrieval cut-off), got {k!r}",
                          path=path, field="k")
    return k
