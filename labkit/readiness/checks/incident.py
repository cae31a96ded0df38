"""Incident readiness — ``inc.*``: error alerts, a timeline from traces, failures fed back into
the golden set, an on-call owner and a rehearsed rollback."""

from __future__ import annotations

from labkit.readiness.checks.common import RULES, alert_matches, pct
from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item

AREA, CHECKLIST = "incident readiness", "incident"


@checklist_item(id="inc.error_alerts", title="Alerts on error rate or error-budget burn", severity="high",
                area=AREA, checklist=CHECKLIST)
def error_alerts(ctx: Context) -> ItemResult:
    rules, err = ctx.alert_rules()
    er = alert_matches(rules, "error", "burn")
    return ItemResult("pass" if er else "fail",
                      f"{ctx.paths.alerts}: " + (f"error/burn rules: {', '.join(er)}" if er else (err or "none")),
                      f"Add an error-rate or burn-rate alert rule to {ctx.paths.alerts}.")


@checklist_item(id="inc.timeline", title="Traces carry timestamps and ids to rebuild a timeline", severity="medium",
                area=AREA, checklist=CHECKLIST)
def timeline(ctx: Context) -> ItemResult:
    traces = ctx.candidate.traces if ctx.candidate else []
    if not traces:
        return ItemResult("unknown", "no candidate traces", "Run the candidate.")
    k = sum(1 for t in traces if t.get("ts_start") is not None and t.get("trace_id"))
    return ItemResult("pass" if k / len(traces) >= RULES["min_trace_share"] else "fail",
                      f"{pct(k, len(traces))} traces with ts_start and trace_id",
                      "Record ts_start/ts_end and trace ids on every trace.")


@checklist_item(id="inc.regression_loop", title="Failures flow back into the golden set (regression cases)",
                severity="medium", area=AREA, checklist=CHECKLIST)
def regression_loop(ctx: Context) -> ItemResult:
    ds, _ = ctx.dataset()
    if ds is None:
        return ItemResult("unknown", "no dataset", "Create the golden set.")
    n = sum(1 for c in ds if c.kind == "regression")
    return ItemResult("pass" if n else "fail", f"{ctx.paths.dataset}: {n} case(s) of kind regression",
                      "Run `labkit incident BASE FAILING --out DIR` on the last failing run, review "
                      "regression_cases.jsonl and merge it into the golden set.")


@checklist_item(id="inc.oncall", title="On-call owner and incident runbook for the pipeline", severity="medium",
                area=AREA, checklist=CHECKLIST, source="manual")
def oncall(ctx: Context) -> ItemResult:
    return ItemResult("unknown", "not readable from artifacts",
                      f"Name the on-call owner and the runbook in {ctx.paths.attestations}.")


@checklist_item(id="inc.rollback_drill", title="Rollback rehearsed (time to roll back known)", severity="medium",
                area=AREA, checklist=CHECKLIST, source="manual")
def rollback_drill(ctx: Context) -> ItemResult:
    return ItemResult("unknown", "not readable from artifacts", "Rehearse a rollback to the baseline config, "
                      f"time it, and attest it in {ctx.paths.attestations}.")
