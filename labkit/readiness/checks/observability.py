"""Observability — ``obs.*``: the observability checklist of :mod:`labkit.trace.checklist`,
measured over the candidate's run history."""

from __future__ import annotations

from typing import Any

from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item
from labkit.trace import checklist as trace_checklist

AREA, CHECKLIST = "observability", "observability"


def _history(ctx: Context) -> list[str]:
    return [str(r.path) for r in ctx.history] if ctx.history else []


@checklist_item(id="obs.traces", title="Traces recorded for the candidate", severity="high", area=AREA,
                checklist=CHECKLIST)
def traces_recorded(ctx: Context) -> ItemResult | None:
    """Stands in for the measured items when there is no run to measure them on."""
    if _history(ctx):
        return None
    return ItemResult("unknown", "no candidate run", "Run the candidate (traces are written per case).")


def _rows(ctx: Context) -> dict[str, dict[str, Any]]:
    """The rows of the observability checklist over the history, by item name (measured once)."""

    def compute() -> dict[str, dict[str, Any]]:
        alerts = ctx.paths.alerts
        rows = trace_checklist.observability_checklist(_history(ctx),
                                                        alert_rules_path=str(alerts) if alerts else None)
        return {str(r.get("item")): r for r in rows}

    return ctx.memo("observability_rows", compute)


def _measured(row_name: str) -> Any:
    """The evaluator of one measured item: the trace checklist's row ``row_name``."""

    def evaluate(ctx: Context) -> ItemResult | None:
        if not _history(ctx):
            return None
        r = _rows(ctx).get(row_name)
        if r is None:
            return ItemResult("unknown", f"the observability checklist has no row {row_name!r}", None)
        status = str(r.get("status"))
        return ItemResult(status if status in ("pass", "fail", "unknown") else "unknown",
                          str(r.get("evidence") or ""), str(r.get("action") or "") or None)

    return evaluate


checklist_item(id="obs.prompt_version_logged", title=trace_checklist.PROMPT_VERSION, severity="high",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.PROMPT_VERSION))
checklist_item(id="obs.model_version_logged", title=trace_checklist.MODEL_VERSION, severity="high",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.MODEL_VERSION))
checklist_item(id="obs.retrieved_context_logged", title=trace_checklist.RETRIEVED_CONTEXT, severity="high",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.RETRIEVED_CONTEXT))
checklist_item(id="obs.tool_inputs_outputs_logged", title=trace_checklist.TOOL_IO, severity="medium",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.TOOL_IO))
checklist_item(id="obs.user_feedback_captured", title=trace_checklist.USER_FEEDBACK, severity="medium",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.USER_FEEDBACK))
checklist_item(id="obs.alerting_for_latency_cost_spikes", title=trace_checklist.ALERTING, severity="high",
               area=AREA, checklist=CHECKLIST)(_measured(trace_checklist.ALERTING))
