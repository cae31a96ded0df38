"""SLOs and rollout — ``slo.*`` and ``rollout.*``: the SLO file and each SLO over the run
history (one item per SLO, declared by the file), the rollout stages and the rollback plan.

The loaded SLO file, the SLO statuses and the rollout plan are kept on the review's context:
the scorecard reads them too (:func:`slo_config`, :func:`slo_statuses`, :func:`rollout_plan`)."""

from __future__ import annotations

from pathlib import Path

from labkit.errors import LabkitError
from labkit.readiness.context import Context
from labkit.readiness.items import FamilyItem, ItemResult, checklist_family, checklist_item
from labkit.readiness.slo import (
    RolloutPlan,
    SLOConfig,
    SLOStatus,
    evaluate_slos,
    load_rollout,
    load_slos,
)

AREA = "SLOs and rollout"
SLO_KINDS_NEEDED = ("error_rate", "latency", "cost_per_success", "quality_floor")


def slo_config(ctx: Context) -> tuple[SLOConfig | None, str | None]:
    """(the SLO file, None), or (None, why it is missing or invalid)."""

    def compute() -> tuple[SLOConfig | None, str | None]:
        path = ctx.paths.slo
        assert path is not None
        if not path.is_file():
            return None, f"{path} not found"
        try:
            return load_slos(path), None
        except LabkitError as e:
            return None, str(e)

    return ctx.memo("slo_config", compute)


def slo_statuses(ctx: Context) -> list[SLOStatus]:
    """Each SLO over the candidate's run history ([] without an SLO file or a history)."""

    def compute() -> list[SLOStatus]:
        cfg, _ = slo_config(ctx)
        return evaluate_slos(cfg, ctx.history) if cfg is not None and ctx.history else []

    return ctx.memo("slo_statuses", compute)


def rollout_plan(ctx: Context) -> tuple[RolloutPlan | None, str | None]:
    """(the rollout file, checked against the SLO names, None), or (None, why not)."""

    def compute() -> tuple[RolloutPlan | None, str | None]:
        path = ctx.paths.rollout
        assert path is not None
        if not path.is_file():
            return None, f"{path} not found"
        cfg, _ = slo_config(ctx)
        try:
            return load_rollout(path, [s.name for s in cfg.slos] if cfg else []), None
        except LabkitError as e:
            return None, str(e)

    return ctx.memo("rollout_plan", compute)


@checklist_item(id="slo.defined", title="SLOs defined (error rate, latency, cost, quality floors)", severity="high",
                area=AREA, checklist="slo")
def slos_defined(ctx: Context) -> ItemResult:
    path = ctx.paths.slo
    cfg, err = slo_config(ctx)
    if cfg is None:
        missing_file = not (path is not None and path.is_file())
        return ItemResult("fail", str(err),
                          f"Write SLOs in {path} (see docs/readiness.md)." if missing_file else f"Fix {path}.")
    kinds = {s.kind for s in cfg.slos}
    missing = [k for k in SLO_KINDS_NEEDED if k not in kinds]
    return ItemResult("fail" if missing else "pass",
                      f"{path}: {len(cfg.slos)} SLO(s): " + "; ".join(f"{s.name} ({s.target})" for s in cfg.slos)
                      + (f"; missing kinds: {', '.join(missing)}" if missing else ""),
                      f"Add SLOs of kind {', '.join(missing)} to {path}.")


@checklist_family(id="slo.<name>", area=AREA, checklist="slo")
def each_slo(ctx: Context) -> list[FamilyItem]:
    """One item per SLO of the SLO file: met, violated, at risk, or not measured."""
    cfg, _ = slo_config(ctx)
    if cfg is None:
        return []
    statuses = slo_statuses(ctx)
    out = []
    for s in cfg.slos:
        st = next((x for x in statuses if x.name == s.name), None)
        title, sev = f"SLO {s.name}: {s.target}", s.severity
        if st is None or st.status == "no_data":
            res = ItemResult("unknown", st.evidence if st else "no run history", "Run the candidate to measure it.")
        elif st.status == "met":
            res = ItemResult("pass", st.evidence)
        elif st.status == "violated":
            res = ItemResult("fail", f"{st.status}: {st.evidence}",
                             f"{s.name} is violated: fix it before rollout (see the gaps of the stage it belongs to)")
        else:  # at risk: met so far, but burning its budget early — a warning, not the SLO's own severity
            sev = "medium"
            res = ItemResult("fail", f"{st.status}: {st.evidence}",
                             f"{s.name} burns its budget faster than 1× in the recent window: find the cause before "
                             "widening the rollout")
        out.append(FamilyItem(f"slo.{s.name}", title, sev, res))
    return out


@checklist_item(id="rollout.defined", title="Rollout stages, each with its gate and rollback trigger",
                severity="high", area=AREA, checklist="rollout")
def rollout_defined(ctx: Context) -> ItemResult:
    path = ctx.paths.rollout
    plan, err = rollout_plan(ctx)
    if plan is None:
        missing_file = not (path is not None and path.is_file())
        return ItemResult("fail", str(err),
                          f"Write the rollout stages in {path}." if missing_file else f"Fix {path}.")
    no_gate = [s.name for s in plan.stages if not s.requires]
    no_trig = [s.name for s in plan.stages if not s.rollback_triggers]
    probs = ([f"stage(s) without a gate: {', '.join(no_gate)}"] if no_gate else []) + (
        [f"stage(s) without a rollback trigger: {', '.join(no_trig)}"] if no_trig else [])
    return ItemResult("fail" if probs else "pass",
                      "; ".join(probs) or f"{path}: " + " → ".join(f"{s.name} ({s.traffic_percent:g}%)"
                                                                     for s in plan.stages),
                      f"Give every stage in {path} its requirements and rollback triggers.")


@checklist_item(id="rollout.rollback_plan", title="Rollback plan: known-good target and triggers", severity="high",
                area=AREA, checklist="rollout")
def rollback_plan(ctx: Context) -> ItemResult:
    path = ctx.paths.rollout
    plan, err = rollout_plan(ctx)
    if plan is None:
        if not (path is not None and path.is_file()):
            return ItemResult("fail", str(err), f"Name the rollback target and triggers in {path}.")
        return ItemResult("unknown", "rollout file invalid", f"Fix {path}.")
    target = plan.rollback_to
    if not target:
        return ItemResult("fail", f"{path} names no rollback target (rollback.to)",
                          f"Set rollback.to in {path} to the config now in production.")
    tp = Path(target)
    if not (tp if tp.is_absolute() else ctx.paths.root / tp).is_file():
        return ItemResult("fail", f"rollback target {target} not found", "Point rollback.to at an existing config.")
    no_trig = [s.name for s in plan.stages if not s.rollback_triggers]
    n_trig = sum(len(s.rollback_triggers) for s in plan.stages)
    return ItemResult("fail" if no_trig else "pass",
                      f"rollback to {target} (exists); {n_trig} rollback trigger(s) over {len(plan.stages)} stage(s)",
                      "Add rollback triggers to every stage.")
