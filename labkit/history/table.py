"""The history as a frame, as text (``labkit history``) and as a JSON-ready dict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.display import fmt_interval, fmt_value, is_nan

if TYPE_CHECKING:
    import pandas as pd

    from labkit.history.trends import History

#: the history JSON layout (``labkit history --json``)
HISTORY_JSON_VERSION = 1


def clean(v: Any) -> Any:
    """None for a missing value (pandas NaN/NaT/NA), else the value as a plain Python object."""
    if v is None or is_nan(v):
        return None
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    return v.item() if hasattr(v, "item") else v


def metric_cell(h: History, path: str, metric: str) -> str:
    e = h.value(path, metric)
    if e is None:
        return "— (not recorded)"
    n = f" n={e['n']}" if e.get("n") is not None else ""
    return fmt_interval(metric, e) + n


def when_cell(created_at: Any) -> str:
    """The manifest's created_at to the second, ``—`` for a run that records none (pandas gives
    such a cell as NaN, which must not print as ``nan``)."""
    v = clean(created_at)
    return str(v)[:19].replace("T", " ") if v else "—"


def gate_cell(row: Mapping[Any, Any]) -> str:
    passed = clean(row.get("gate_passed"))
    if passed is None:
        return "—"
    return "pass" if passed else f"FAIL ({row.get('gate_failed') or ''})"


def history_frame(h: History, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per run in time order: when, which dataset series, prompt, model, config, gate,
    each metric with its 95% interval and n, and the metrics flagged as regressed."""
    import pandas as pd

    rows = []
    seen: set[str] = set()
    for r in h.runs.to_dict("records"):
        change = (" (back to this series)" if r["series"] in seen else " (new series)") if r["new_series"] else ""
        seen.add(r["series"])
        row = {"created_at (UTC)": when_cell(r["created_at"]), "run": r["run"],
               "dataset series": r["series"] + change,
               "prompt_version": clean(r["prompt_version"]) or "—", "model": clean(r["model"]) or "—",
               "config_hash": clean(r["config_hash"]) or "—", "gate (absolute checks)": gate_cell(r)}
        for m in metrics:
            row[m] = metric_cell(h, r["path"], m)
        row["regressed vs previous run"] = ", ".join(h.regressed(r["path"])) or "—"
        rows.append(row)
    return pd.DataFrame(rows)


def history_text(h: History, metrics: Sequence[str]) -> str:
    """The table ``labkit history`` prints: one block per dataset series, then the flags."""
    lines = [f"history of {len(h.runs)} run(s) on {len(h.series)} dataset series"
             + (f"; {h.update.summary()}" if h.update else "")]
    if len(h.runs) == 0:
        return "\n".join([*lines, *h.notes, *h.unchecked])
    df = history_frame(h, metrics)
    for s in h.series:
        part = df[h.runs["series"].to_numpy() == s].drop(columns=["dataset series"])
        lines += ["", f"series {s} ({len(part)} run(s)); values are value [95% interval] n=cases"]
        lines.append(part.to_string(index=False))
    lines.append("")
    if h.regressions:
        lines.append(f"regressions between consecutive runs of a series ({len(h.regressions)}; paired, "
                     "Holm-adjusted, as labkit compare):")
        for g in h.regressions:
            lines.append(f"  {g.run_id} vs {g.baseline_run_id}: {g.metric} delta {fmt_value(g.metric, g.delta)} "
                         f"[{fmt_value(g.metric, g.ci_low)} – {fmt_value(g.metric, g.ci_high)}], "
                         f"p_adj {g.p_adjusted:.2g}, n={g.n}" if g.p_adjusted is not None else
                         f"  {g.run_id} vs {g.baseline_run_id}: {g.metric}")
    elif h.unchecked:
        lines.append(f"no verdict: {len(h.unchecked)} run(s) or pair(s) could not be checked (below)")
    else:
        lines.append("no metric regressed between consecutive runs of a series")
    return "\n".join([*lines, *h.notes, *h.unchecked])


def history_dict(h: History) -> dict[str, Any]:
    runs = []
    for r in h.runs.to_dict("records"):
        m = h.metrics[h.metrics["path"] == r["path"]]
        runs.append({**{k: clean(v) for k, v in r.items()},
                     "metrics": {x["metric"]: {k: clean(x[k]) for k in ("value", "ci_low", "ci_high", "n")}
                                 for x in m.to_dict("records")},
                     "regressed": h.regressed(r["path"])})
    return {"schema_version": HISTORY_JSON_VERSION, "index": h.index_path, "series": h.series, "runs": runs,
            "regressions": [g.to_dict() for g in h.regressions], "notes": list(h.notes),
            "unchecked": list(h.unchecked),
            "update": None if h.update is None else {"added": h.update.added, "updated": h.update.updated,
                                                    "unchanged": h.update.unchanged, "skipped": h.update.skipped,
                                                    "refused": h.update.refused}}
