"""What the views read from runs: metrics.json mappings, long frames of metrics and slices,
and a gate's thresholds and per-run results.

Every function takes a run directory (object or path) or a metrics.json mapping.
pandas is imported inside the functions that use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.display import unit_of

if TYPE_CHECKING:
    import pandas as pd

#: Stages in the order tables and charts show them.
STAGES = ("retrieval", "generation", "agent", "ops")

RunLike = Any  # RunDir | str | PathLike | metrics.json mapping


def metric_spec(metric: str) -> tuple[str, str, bool]:
    """(stage, direction, bounded) from the metric registry, with a safe fallback."""
    try:
        from labkit.metrics import METRICS

        s = METRICS.get(metric)
        if s is not None:
            return s.stage, s.direction, s.bounded
    except ImportError:  # pragma: no cover - registry always present in the package
        pass
    lower = metric.endswith("_ms") or "cost" in metric or "error" in metric or "violation" in metric
    return "ops" if unit_of(metric) != "0–1" else "generation", "lower" if lower else "higher", (
        unit_of(metric) == "0–1"
    )


def metrics_of(run: RunLike) -> dict[str, Any]:
    """The metrics.json mapping of a run directory (object or path) or a mapping as is."""
    if isinstance(run, Mapping):
        return dict(run)
    if hasattr(run, "metrics") and callable(run.metrics):
        return dict(run.metrics())
    from labkit.runs import RunDir

    return dict(RunDir(run).metrics())


def _entries(m: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = m.get("metrics")
    if isinstance(inner, Mapping):
        return inner
    # a plain {metric: value} dict
    return {k: {"value": v} for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def metrics_frame(runs: Mapping[str, RunLike], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table: one row per (run, metric) with stage, unit, value, interval, n, unmeasured."""
    import pandas as pd

    rows = []
    for label, run in runs.items():
        ent = _entries(metrics_of(run))
        for name in metrics or list(ent):
            e = ent.get(name) or {}
            stage, direction, bounded = metric_spec(name)
            rows.append({
                "run": label, "metric": name, "stage": e.get("stage", stage), "direction": direction,
                "bounded": bounded, "unit": unit_of(name), "value": e.get("value"),
                "ci_low": e.get("ci_low"), "ci_high": e.get("ci_high"), "n": e.get("n"),
                "unmeasured": e.get("unmeasured", 0),
            })
    df = pd.DataFrame(rows, columns=["run", "metric", "stage", "direction", "bounded", "unit", "value",
                                     "ci_low", "ci_high", "n", "unmeasured"])
    order = {s: i for i, s in enumerate(STAGES)}
    df["_o"] = df["stage"].map(lambda s: order.get(s, 99))
    return df.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def slices_frame(runs: Mapping[str, RunLike], metric: str, tag: str | None = None) -> pd.DataFrame:
    """Per-slice values of one metric: rows slice, columns run (value, interval, n)."""
    import pandas as pd

    rows = []
    for label, run in runs.items():
        for key, ms in (metrics_of(run).get("slices") or {}).items():
            if tag and not key.startswith(f"{tag}="):
                continue
            e = (ms or {}).get(metric)
            if not e:
                continue
            rows.append({"slice": key, "run": label, "value": e.get("value"), "ci_low": e.get("ci_low"),
                         "ci_high": e.get("ci_high"), "n": e.get("n")})
    return pd.DataFrame(rows, columns=["slice", "run", "value", "ci_low", "ci_high", "n"])


def gate_results(gate: Any, runs: Mapping[str, RunLike]) -> dict[str, dict[str, bool]]:
    """{run label: {metric: passed}} for the gate's absolute checks."""
    if gate is None:
        return {}
    g = as_gate(gate).thresholds_only()
    out: dict[str, dict[str, bool]] = {}
    for label, run in runs.items():
        rep = g.evaluate(metrics_of(run))
        res: dict[str, bool] = {}
        for c in rep.checks:
            if getattr(c, "kind", "absolute") == "absolute" and c.metric:
                res[c.metric] = res.get(c.metric, True) and bool(c.passed)
        out[label] = res
    return out


def as_gate(gate: Any) -> Any:
    if isinstance(gate, str | os.PathLike):
        from labkit.gate import Gate

        return Gate.load(gate)
    return gate


def gate_thresholds(gate: Any) -> dict[str, tuple[str, float]]:
    if gate is None:
        return {}
    g = as_gate(gate)
    return {c.metric: (c.op, float(c.threshold)) for c in g.checks if c.statistic == "value"}

