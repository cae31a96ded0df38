"""Ops metrics: latency percentiles, error rate, cost and tokens.

Per case: ``error_rate`` (status != ok) and ``tokens_per_case`` (input +
output tokens, unmeasured without usage). Over a run: latency percentiles over
every case with a recorded latency whatever its status, cache hits excluded
(numpy's linear interpolation); ``cost_per_success`` = total cost of all cases
/ successful cases; ``total_cost_usd`` = sum of recorded costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

OPS_METRICS = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "cost_per_success",
    "total_cost_usd",
    "tokens_per_case",
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
        "status": str(result.get("status") or "ok"),
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
    lat = np.asarray(latency_ms, dtype=float)
    mask = np.isfinite(lat) & ~np.asarray(from_cache, dtype=bool)
    return lat[mask]


def latency_percentile(latency_ms: NDArray[Any], from_cache: NDArray[Any], q: float) -> float | None:
    """The q-th percentile of the counted latencies; None when there is none."""
    s = latency_sample(latency_ms, from_cache)
    return float(np.percentile(s, q)) if s.size else None


def cost_per_success(cost_usd: NDArray[Any], success: NDArray[Any]) -> float | None:
    """Total cost of all cases (missing = 0) / number of successful cases; None without success."""
    succ = int(np.sum(np.asarray(success, dtype=bool)))
    if succ == 0:
        return None
    return float(np.nansum(np.asarray(cost_usd, dtype=float))) / succ
