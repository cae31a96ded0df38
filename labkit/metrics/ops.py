"""Ops metrics: latency percentiles, error rate, cost and tokens.

Per case: ``error_rate`` (status != ok) and ``tokens_per_case`` (input +
output tokens, unmeasured without usage). Over a run: latency percentiles over
every case with a recorded latency whatever its status, cache hits excluded
(numpy's linear interpolation); ``cost_per_success`` = total cost of all cases
/ successful cases; ``total_cost_usd`` = sum of recorded costs.

The run-level metrics are declared by their raw column and aggregate kind
(``run_metric``), the per-case ones by ``@metric`` on their function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit.metrics.columns import (
    Column,
    column,
    column_from_array,
    line_status,
    reads_column,
    statuses,
    values,
)
from labkit.registry import METRICS, metric, run_metric

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from labkit.metrics.percase import CaseResult, CaseRun

#: The raw columns of scores.csv, after the metric columns (docs/formats.md).
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


def _float(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return math.nan
    return float(x)


def raw_ops(result: Mapping[str, Any]) -> dict[str, Any]:
    """The per-case raw ops columns of a results line (NaN when absent)."""
    usage = result.get("usage") if isinstance(result.get("usage"), Mapping) else {}
    assert isinstance(usage, Mapping)
    inp = _float(usage.get("input_tokens"))
    out = _float(usage.get("output_tokens"))
    attempts = result.get("attempts")
    return {
        "status": line_status(result),
        "latency_ms": _float(result.get("latency_ms")),
        "cost_usd": _float(result.get("cost_usd")),
        "input_tokens": inp,
        "output_tokens": out,
        "attempts": int(attempts) if isinstance(attempts, int) and not isinstance(attempts, bool) else 1,
        "from_cache": bool(result.get("from_cache") or False),
    }


def tokens(inp: float, out: float) -> tuple[float | None, str]:
    """Input + output tokens; a missing side counts 0; unmeasured (no_usage) when both missing."""
    if math.isnan(inp) and math.isnan(out):
        return None, "no_usage"
    return (0.0 if math.isnan(inp) else inp) + (0.0 if math.isnan(out) else out), ""


def latency_sample(latency_ms: NDArray[Any], from_cache: NDArray[Any]) -> NDArray[np.float64]:
    """The latencies that count: recorded (finite) and not served from cache."""
    import numpy as np

    lat = np.asarray(latency_ms, dtype=float)
    mask = np.isfinite(lat) & ~np.asarray(from_cache, dtype=bool)
    return lat[mask]


def _raw_ops_column(run: CaseRun) -> dict[str, list[Any]]:
    """Every case's :func:`raw_ops`, read once per run as columns (the raw columns, tokens_per_case
    and error_rate share it): ``column[name][i]`` is ``raw_ops(run.rows[i])[name]``."""
    rows = run.rows
    usage = [u if type(u := r.get("usage")) is dict or isinstance(u, Mapping) else _NO_USAGE for r in rows]
    attempts = [r.get("attempts") for r in rows]
    return {
        "status": run.batch(statuses),
        "latency_ms": _floats([r.get("latency_ms") for r in rows]),
        "cost_usd": _floats([r.get("cost_usd") for r in rows]),
        "input_tokens": _floats([u.get("input_tokens") for u in usage]),
        "output_tokens": _floats([u.get("output_tokens") for u in usage]),
        "attempts": [a if type(a) is int else (int(a) if isinstance(a, int) and not isinstance(a, bool) else 1)
                     for a in attempts],
        "from_cache": [bool(r.get("from_cache") or False) for r in rows],
    }


_NO_USAGE: Mapping[str, Any] = {}


def _floats(xs: list[Any]) -> list[float]:
    """:func:`_float` of each value."""
    return [x if type(x) is float else float(x) if type(x) is int else _float(x) for x in xs]


def raw_columns(result: CaseResult) -> dict[str, Any]:
    """A case's raw columns of scores.csv (:data:`RAW_COLUMNS`, in that order)."""
    raw = {name: col[result.index] for name, col in result.batch(_raw_ops_column).items()}
    lat_reason = "no_latency" if math.isnan(raw["latency_ms"]) else ("from_cache" if raw["from_cache"] else "")
    success = result.score("task_success_rate")
    out = {**raw, "latency_ms_reason": lat_reason, "task_success": success is not None and success > 0.5}
    return {name: out[name] for name in RAW_COLUMNS}


def raw_table(run: CaseRun) -> dict[str, list[Any]]:
    """The raw columns of scores.csv for every case of the run (:data:`RAW_COLUMNS`, in that order)."""
    raws = run.batch(_raw_ops_column)
    col = column(run, "task_success_rate")
    success = ([v > 0.5 for v in col.values.tolist()] if col is not None else  # NaN > 0.5 is False
               [v is not None and v > 0.5 for v in values(run, "task_success_rate")])
    out: dict[str, list[Any]] = {}
    for name in RAW_COLUMNS:
        if name == "latency_ms_reason":
            out[name] = ["no_latency" if lat != lat else ("from_cache" if cached else "")
                         for lat, cached in zip(raws["latency_ms"], raws["from_cache"], strict=True)]
        elif name == "task_success":
            out[name] = success
        else:
            out[name] = list(raws[name])
    return out


# --- the declarations --------------------------------------------------------------------

run_metric(name="latency_p50_ms", stage="ops", kind="percentile", raw="latency_ms", q=50.0, exclude="from_cache",
           missing="no_latency", builtin=True, description="median latency (ms), cache hits excluded")
run_metric(name="latency_p95_ms", stage="ops", kind="percentile", raw="latency_ms", q=95.0, exclude="from_cache",
           missing="no_latency", builtin=True, description="95th percentile latency (ms), cache hits excluded")
run_metric(name="latency_p99_ms", stage="ops", kind="percentile", raw="latency_ms", q=99.0, exclude="from_cache",
           missing="no_latency", builtin=True, description="99th percentile latency (ms), cache hits excluded")


def _error_rate(run: CaseRun) -> Column:
    """1 for a case whose status is not ok, else 0."""
    return column_from_array([0.0 if status == "ok" else 1.0 for status in run.batch(_raw_ops_column)["status"]])


metric(name="error_rate", stage="ops", direction="lower", kind="rate", builtin=True,
       description="cases with status != ok / cases")(reads_column(_error_rate))


run_metric(name="cost_per_success", stage="ops", kind="ratio", raw="cost_usd", per="task_success_rate",
           missing="no_cost", builtin=True, description="total cost (USD) / successful cases")
run_metric(name="total_cost_usd", stage="ops", kind="sum", raw="cost_usd", missing="no_cost", builtin=True,
           description="sum of cost_usd")


def _tokens_per_case(run: CaseRun) -> Column:
    """Input + output tokens of each case (unmeasured no_usage without either): :func:`tokens` of
    every case at once, the same float additions."""
    import numpy as np

    raws = run.batch(_raw_ops_column)
    inp = np.asarray(raws["input_tokens"], dtype=np.float64)
    out = np.asarray(raws["output_tokens"], dtype=np.float64)
    no_inp, no_out = np.isnan(inp), np.isnan(out)
    total = np.where(no_inp, 0.0, inp) + np.where(no_out, 0.0, out)
    neither = no_inp & no_out
    total[neither] = np.nan
    return column_from_array(total, np.where(neither, "no_usage", "").tolist() if neither.any() else None)


metric(name="tokens_per_case", stage="ops", direction="lower", bounded=False, builtin=True,
       description="mean input + output tokens per case")(reads_column(_tokens_per_case))


OPS_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "ops" and s.builtin)
#: The latency percentile each percentile metric reports.
LATENCY_PERCENTILES = {n: s.q for n, s in METRICS.items() if s.kind == "percentile" and s.q is not None}
