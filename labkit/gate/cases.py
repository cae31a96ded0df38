"""What a gate's verdict stands on: the cases of the dataset it judged, and the n of each check.

* **Coverage.** A gate judges the whole dataset a run was made on. metrics.json
  counts the dataset's cases that have no result (``n_missing``); the coverage
  check fails when any is missing, unless the gate's ``unmeasured: {max_rate}``
  budget allows that share (a missing case is unmeasured on every metric).
* **Failed cases.** A case with a result that a gated metric could not measure for a
  failure reason (error, timeout, guardrail block, no answer, no retrieval logged ...;
  not the not-applicable reasons such as ``no_gold`` or ``no_claims``:
  labkit.registry) counts against the same budget, 0 unless the gate declares one, so
  turning the worst cases into failures cannot lift a check on the rest.
* **Minimum n.** A check whose statistic was computed on fewer than ``min_n``
  cases fails as "too few cases to judge" instead of passing on a handful.
  The default (:func:`default_min_n`) is 10 for rates, means, ratios and sums,
  and for a percentile q at least ``1 / (1 − q)`` cases (20 for p95, 100 for
  p99) so that it is not just the largest value of a small sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from labkit.errors import ConfigError
from labkit.gate.report import CheckResult

#: The default minimum n of a check on a rate, mean, ratio or sum.
MIN_N = 10


def default_min_n(metric: str) -> int:
    """The fewest cases a check on ``metric`` accepts by default (docs/metrics.md, "Minimum n")."""
    from labkit.metrics import METRICS

    spec = METRICS.get(metric)
    if spec is not None and spec.kind == "percentile" and spec.q is not None:
        q = spec.q / 100.0
        return max(MIN_N, math.ceil(round(1.0 / (1.0 - q), 9)))
    return MIN_N


def parse_min_n(d: Mapping[str, Any], path: str | None, fld: str) -> int | None:
    """A check's optional ``min_n``: a positive integer."""
    v = d.get("min_n")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"must be a positive integer, got {v!r}", path=path, field=f"{fld}.min_n")
    return v


def too_few(n: int | None, min_n: int) -> str:
    """The reason a check fails on too few cases, or '' when ``n`` is enough."""
    if n is None:
        return "the metrics do not say how many cases this was computed on (n)"
    if n < min_n:
        return f"computed on {n} case{'s' if n != 1 else ''}; min_n is {min_n}: too few cases to judge"
    return ""


def _count(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def failed_cases(entry: Mapping[str, Any]) -> dict[str, int]:
    """The scored cases a metrics.json entry could not measure for a failure reason, by reason;
    an unmeasured count its reasons do not explain counts as ``unmeasured`` (fail closed)."""
    from labkit.registry import failure_reasons

    raw = entry.get("unmeasured_reasons")
    reasons = raw if isinstance(raw, Mapping) else {}
    out = failure_reasons(reasons)
    unexplained = _count(entry.get("unmeasured")) - sum(_count(v) for v in reasons.values())
    if unexplained > 0:
        out["unmeasured"] = out.get("unmeasured", 0) + unexplained
    return out


def over_budget(entry: Mapping[str, Any], budget: float) -> str:
    """Why a check on ``entry`` fails for its failed cases ('' when their share of all the cases,
    missing ones included, is within ``budget``)."""
    failed = failed_cases(entry)
    k = sum(failed.values())
    total = _count(entry.get("n")) + _count(entry.get("unmeasured")) + _count(entry.get("n_missing"))
    if not k or (total and k / total <= budget):
        return ""
    why = ", ".join(f"{code}: {v}" for code, v in sorted(failed.items()))
    return (f"{k} of {total} cases not measured for a failure reason ({why}): "
            f"beyond the unmeasured budget {budget:g}")


def case_counts(metrics: Mapping[str, Any], run: Any) -> dict[str, int] | None:
    """{n_judged, n_dataset, n_missing} from metrics.json (else the run's scoring record); None if unknown."""
    judged, missing = metrics.get("n_cases"), metrics.get("n_missing")
    if not (isinstance(judged, int) and isinstance(missing, int)) and run is not None:
        sc = run.manifest.get("scoring")
        if isinstance(sc, Mapping):
            judged, missing = sc.get("n_scored"), sc.get("n_missing")
    if isinstance(judged, int) and isinstance(missing, int) and judged >= 0 and missing >= 0:
        return {"n_judged": judged, "n_dataset": judged + missing, "n_missing": missing}
    return None


def _other_dataset(run: Any) -> str:
    """Why the run's scores are not of the dataset it ran on, or ''."""
    if run is None:
        return ""
    man = run.manifest
    scoring = man.get("scoring") or {}
    ran, scored = man.get("dataset"), scoring.get("dataset") if isinstance(scoring, Mapping) else None
    if not isinstance(ran, Mapping) or not isinstance(scored, Mapping):
        return ""
    a, b = ran.get("fingerprint"), scored.get("fingerprint")
    if a and b and a != b:
        return (f"scored on dataset {scored.get('path')} ({str(b)[:12]}), but the run was made on "
                f"{ran.get('path')} ({str(a)[:12]}): rescore with the run's dataset")
    return ""


def coverage_check(metrics: Mapping[str, Any], run: Any, budget: float | None) -> CheckResult | None:
    """The check that every case of the dataset was judged (None for a plain dict of values)."""
    limit = 0.0 if budget is None else budget

    def result(observed: float | None, passed: bool, reason: str) -> CheckResult:
        return CheckResult(name="every case of the dataset judged", kind="coverage", metric=None, op="<=",
                           threshold=limit, observed=observed, passed=passed, reason=reason)

    counts = case_counts(metrics, run)
    if counts is None:
        if run is None:
            return None
        return result(None, False, "metrics.json does not say how many cases of the dataset have no result: "
                      f"rescore the run ({run.score_command})")
    other = _other_dataset(run)
    total, miss = counts["n_dataset"], counts["n_missing"]
    share = miss / total if total else 1.0
    judged = f"{counts['n_judged']} of {total} cases judged"
    if other:
        return result(share, False, f"{judged}; {other}")
    if not miss:
        return result(0.0, True, judged)
    ok = share <= limit
    gone = f"{judged}; {miss} of {total} missing ({share:.1%}, no result line)"
    why = (f"within the unmeasured budget {limit:g}" if ok else
           "no missing case is allowed without an unmeasured budget" if budget is None else
           f"beyond the unmeasured budget {limit:g}")
    return result(share, ok, f"{gone}; {why}")
