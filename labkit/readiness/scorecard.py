"""The readiness scorecard: one score per area, a verdict with its rule, gaps ranked by severity."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.readiness.checklists import CHECKLISTS, MANUAL_ITEMS, deployment_items
from labkit.readiness.context import Context, RunLike
from labkit.readiness.model import (
    AREAS,
    SEVERITIES,
    SEVERITY_WEIGHT,
    STATUS_CREDIT,
    CheckItem,
    apply_attestations,
    item,
    load_attestations,
)
from labkit.readiness.slo import (
    RolloutStatus,
    SLOStatus,
    evaluate_rollout,
    evaluate_slos,
    load_rollout,
    load_slos,
)

VERDICTS = ("ready", "ready with conditions", "not ready")
AREA_FLOOR = 50
VERDICT_RULE = (
    "not ready if any critical item fails or is unknown, or any area scores below "
    f"{AREA_FLOOR}; ready with conditions if no critical gap and every area scores at least {AREA_FLOOR} "
    "but gaps remain (each is a condition); ready when no gap remains. Area score = severity-weighted "
    "share of credit (pass 1, attested 0.75, fail or unknown 0; weights critical 4, high 3, medium 2, low 1)."
)
KEY_METRICS = (
    "retrieval_hit_rate", "mrr", "context_precision", "faithfulness", "must_include_coverage",
    "citation_accuracy", "must_not_include_violation", "task_success_rate", "tool_call_accuracy",
    "latency_p95_ms", "error_rate", "cost_per_success",
)


@dataclass
class Scorecard:
    verdict: str
    rule: str
    areas: dict[str, dict[str, Any]]
    items: list[CheckItem]
    gaps: list[dict[str, Any]]
    gate: dict[str, Any] | None
    key_metrics: list[dict[str, Any]]
    slos: list[SLOStatus]
    rollout: RolloutStatus | None
    candidate: dict[str, Any] | None
    baseline: dict[str, Any] | None
    inputs: dict[str, str]
    generated_at: str
    incident: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def by_id(self) -> dict[str, CheckItem]:
        return {i.id: i for i in self.items}

    def checklist(self, name: str) -> list[CheckItem]:
        return [i for i in self.items if i.checklist == name]

    @property
    def verdict_status(self) -> str:
        return {"ready": "pass", "ready with conditions": "warn", "not ready": "fail"}[self.verdict]

    def headline(self) -> str:
        n = len(self.gaps)
        crit = sum(1 for g in self.gaps if g["severity"] == "critical")
        stage = self.rollout.supported_stage if self.rollout else None
        cases = (self.gate or {}).get("cases")
        judged = (f"; gate judged {cases['n_judged']} of {cases['n_dataset']} cases"
                  if isinstance(cases, dict) else "")
        return (f"{self.verdict.upper()}: {n} gap(s), {crit} critical; evidence supports rollout stage "
                f"{stage or 'none'}{judged}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "rule": self.rule,
            "headline": self.headline(),
            "generated_at": self.generated_at,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "areas": self.areas,
            "gaps": self.gaps,
            "gate": self.gate,
            "key_metrics": self.key_metrics,
            "slos": [s.to_dict() for s in self.slos],
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "checklists": {c: [i.to_dict() for i in self.items if i.checklist == c]
                           for c in dict.fromkeys(i.checklist for i in self.items)},
            "incident": self.incident,
            "inputs": self.inputs,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False, default=str)

    def save(self, path: str | os.PathLike[str]) -> Path:
        from labkit.cases import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    def deployment_checklist(self) -> str:
        return render_deployment_checklist(self)


def _run_info(ctx_run: Any) -> dict[str, Any] | None:
    if ctx_run is None:
        return None
    cfg = ctx_run.config
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    return {"run_id": ctx_run.run_id, "path": str(ctx_run.path), "created_at": ctx_run.created_at,
            "pipeline": ctx_run.pipeline.get("name"), "config_hash": ctx_run.config_hash,
            "prompt_version": cfg.get("prompt_version"), "model": model.get("name") if model else cfg.get("model"),
            "dataset_fingerprint": ctx_run.dataset_info.get("fingerprint"),
            "n_cases": ctx_run.metrics_doc.get("n_cases") or len(ctx_run.results)}


def slo_items(ctx: Context) -> tuple[list[CheckItem], list[SLOStatus], Any]:
    A, C = "SLOs and rollout", "slo"
    path = ctx.paths.slo
    assert path is not None
    if not path.is_file():
        return [item("slo.defined", A, C, "SLOs defined (error rate, latency, cost, quality floors)", "fail",
                     f"{path} not found", f"Write SLOs in {path} (see docs/readiness.md).", "high")], [], None
    try:
        cfg = load_slos(path)
    except LabkitError as e:
        return [item("slo.defined", A, C, "SLOs defined (error rate, latency, cost, quality floors)", "fail",
                     str(e), f"Fix {path}.", "high")], [], None
    kinds = {s.kind for s in cfg.slos}
    missing = [k for k in ("error_rate", "latency", "cost_per_success", "quality_floor") if k not in kinds]
    out = [item("slo.defined", A, C, "SLOs defined (error rate, latency, cost, quality floors)",
                "fail" if missing else "pass",
                f"{path}: {len(cfg.slos)} SLO(s): " + "; ".join(f"{s.name} ({s.target})" for s in cfg.slos)
                + (f"; missing kinds: {', '.join(missing)}" if missing else ""),
                f"Add SLOs of kind {', '.join(missing)} to {path}.", "high")]
    statuses = evaluate_slos(cfg, ctx.history) if ctx.history else []
    for s in cfg.slos:
        st = next((x for x in statuses if x.name == s.name), None)
        if st is None or st.status == "no_data":
            out.append(item(f"slo.{s.name}", A, C, f"SLO {s.name}: {s.target}", "unknown",
                            st.evidence if st else "no run history", "Run the candidate to measure it.", s.severity))
        elif st.status == "met":
            out.append(item(f"slo.{s.name}", A, C, f"SLO {s.name}: {s.target}", "pass", st.evidence, None, s.severity))
        else:
            sev = s.severity if st.status == "violated" else "medium"
            act = (f"{s.name} is violated: fix it before rollout (see the gaps of the stage it belongs to)"
                   if st.status == "violated" else
                   f"{s.name} burns its budget faster than 1× in the recent window: find the cause before "
                   "widening the rollout")
            out.append(item(f"slo.{s.name}", A, C, f"SLO {s.name}: {s.target}", "fail",
                            f"{st.status}: {st.evidence}", act, sev))
    return out, statuses, cfg


def rollout_items(ctx: Context, slo_names: Sequence[str]) -> tuple[list[CheckItem], Any]:
    A, C = "SLOs and rollout", "rollout"
    path = ctx.paths.rollout
    assert path is not None
    if not path.is_file():
        return [item("rollout.defined", A, C, "Rollout stages, each with its gate and rollback trigger", "fail",
                     f"{path} not found", f"Write the rollout stages in {path}.", "high"),
                item("rollout.rollback_plan", A, C, "Rollback plan: known-good target and triggers", "fail",
                     f"{path} not found", f"Name the rollback target and triggers in {path}.", "high")], None
    try:
        plan = load_rollout(path, slo_names)
    except LabkitError as e:
        return [item("rollout.defined", A, C, "Rollout stages, each with its gate and rollback trigger", "fail",
                     str(e), f"Fix {path}.", "high"),
                item("rollout.rollback_plan", A, C, "Rollback plan: known-good target and triggers", "unknown",
                     "rollout file invalid", f"Fix {path}.", "high")], None
    no_gate = [s.name for s in plan.stages if not s.requires]
    no_trig = [s.name for s in plan.stages if not s.rollback_triggers]
    probs = ([f"stage(s) without a gate: {', '.join(no_gate)}"] if no_gate else []) + (
        [f"stage(s) without a rollback trigger: {', '.join(no_trig)}"] if no_trig else [])
    out = [item("rollout.defined", A, C, "Rollout stages, each with its gate and rollback trigger",
                "fail" if probs else "pass",
                "; ".join(probs) or f"{path}: " + " → ".join(f"{s.name} ({s.traffic_percent:g}%)" for s in plan.stages),
                f"Give every stage in {path} its requirements and rollback triggers.", "high")]
    target = plan.rollback_to
    tpath = None
    if target:
        tp = Path(target)
        tpath = tp if tp.is_absolute() else (ctx.paths.root / tp)
    if not target:
        out.append(item("rollout.rollback_plan", A, C, "Rollback plan: known-good target and triggers", "fail",
                        f"{path} names no rollback target (rollback.to)",
                        f"Set rollback.to in {path} to the config now in production.", "high"))
    elif tpath is None or not tpath.is_file():
        out.append(item("rollout.rollback_plan", A, C, "Rollback plan: known-good target and triggers", "fail",
                        f"rollback target {target} not found", "Point rollback.to at an existing config.", "high"))
    else:
        n_trig = sum(len(s.rollback_triggers) for s in plan.stages)
        out.append(item("rollout.rollback_plan", A, C, "Rollback plan: known-good target and triggers",
                        "fail" if no_trig else "pass",
                        f"rollback to {target} (exists); {n_trig} rollback trigger(s) over {len(plan.stages)} stage(s)",
                        "Add rollback triggers to every stage.", "high"))
    return out, plan


def _gap_key(g: dict[str, Any]) -> tuple[int, int, int, str]:
    return (SEVERITIES.index(g["severity"]), 0 if g["status"] == "fail" else 1,
            AREAS.index(g["area"]) if g["area"] in AREAS else 99, g["item"])


def build_scorecard(
    baseline: RunLike | None = None,
    variant: RunLike | None = None,
    *,
    root: str | os.PathLike[str] = ".",
    incident_dir: str | os.PathLike[str] | None = None,
    today: dt.date | None = None,
    **paths: Any,
) -> Scorecard:
    """Evaluate every checklist, the SLOs and rollout, and score the candidate.

    The candidate is ``variant`` when given, else ``baseline``. Paths default to
    the shipped layout under ``root`` (``data/gate.yaml``, ``data/slo.yaml``,
    ``data/rollout.yaml``, ``data/alerts.yaml``, ``data/attestations.yaml``,
    ``data/golden.jsonl``, ``data/pipelines/``, ``outputs/runs/``); override any
    of them by keyword (``gate=``, ``slo=``, ``rollout=``, ``alerts=``,
    ``attestations=``, ``dataset=``, ``reviews=``, ``pipelines_dir=``, ``runs_dir=``).
    With ``incident_dir`` and a candidate that regressed against the baseline,
    the incident review is written there and summarised on the scorecard.
    """
    ctx = Context.collect(root=root, baseline=baseline, variant=variant, today=today, **paths)
    items: list[CheckItem] = []
    for fn in CHECKLISTS.values():
        items.extend(fn(ctx))
    s_items, slo_status, slo_cfg = slo_items(ctx)
    items.extend(s_items)
    r_items, plan = rollout_items(ctx, [s.name for s in slo_cfg.slos] if slo_cfg else [])
    items.extend(r_items)
    notes: list[str] = []
    assert ctx.paths.attestations is not None
    try:
        atts = load_attestations(ctx.paths.attestations, known=[i.id for i in items])
    except LabkitError as e:
        atts = []
        notes.append(f"attestations ignored: {e}")
    items = apply_attestations(items, atts, today=ctx.today)
    items.extend(deployment_items(items))
    by_id = {i.id: i for i in items}

    rollout = None
    if plan is not None:
        rollout = evaluate_rollout(plan, items=by_id, slos=slo_status,
                                   metrics=ctx.candidate.metrics if ctx.candidate else {}, history=ctx.history)

    areas: dict[str, dict[str, Any]] = {}
    for a in AREAS:
        its = [i for i in items if i.area == a and not i.refs]
        w = sum(SEVERITY_WEIGHT[i.severity] for i in its)
        score = round(100 * sum(SEVERITY_WEIGHT[i.severity] * STATUS_CREDIT[i.status] for i in its) / w) if w else None
        counts = {s: sum(1 for i in its if i.status == s) for s in ("pass", "attested", "fail", "unknown")}
        areas[a] = {"score": score, "n_items": len(its), **counts}

    gaps: list[dict[str, Any]] = [{"item": i.id, "area": i.area, "severity": i.severity, "status": i.status, "title": i.title,
             "evidence": i.evidence, "action": i.action or "", "manual": i.id in MANUAL_ITEMS}
            for i in items if i.is_gap]
    gaps.sort(key=_gap_key)
    for n, g in enumerate(gaps, 1):
        g["rank"] = n
    crit = [g for g in gaps if g["severity"] == "critical"]
    low_areas = [a for a, v in areas.items() if v["score"] is not None and v["score"] < AREA_FLOOR]
    if crit or low_areas:
        verdict = "not ready"
        why = []
        if crit:
            why.append(f"{len(crit)} critical gap(s): {', '.join(g['item'] for g in crit)}")
        if low_areas:
            why.append(f"area(s) below {AREA_FLOOR}: {', '.join(low_areas)}")
        notes.insert(0, "; ".join(why))
    elif gaps:
        verdict = "ready with conditions"
        notes.insert(0, f"{len(gaps)} condition(s): {', '.join(g['item'] for g in gaps)}")
    else:
        verdict = "ready"

    gate_d = None
    rep, rerr = ctx.gate_report()
    if rep is not None:
        gate_d = rep.to_dict()
    elif rerr:
        gate_d = {"error": rerr}

    comp, _ = ctx.comparison()
    key = []
    cand = ctx.candidate
    if cand is not None:
        from labkit.metrics import METRICS

        for m in KEY_METRICS:
            me: Any = cand.metrics.get(m)
            if not isinstance(me, Mapping):
                continue
            row = {"metric": m, "stage": METRICS[m].stage if m in METRICS else None,
                   "value": me.get("value"), "ci_low": me.get("ci_low"), "ci_high": me.get("ci_high"),
                   "n": me.get("n"), "unmeasured": me.get("unmeasured")}
            if ctx.baseline is not None:
                row["baseline"] = ctx.baseline.value(m)
            if comp is not None and m in comp["metrics"]:
                d = comp["metrics"][m]
                row.update({"delta": d.get("delta"), "delta_ci_low": d.get("ci_low"),
                            "delta_ci_high": d.get("ci_high"), "verdict": d.get("verdict")})
            key.append(row)

    incident = None
    if incident_dir is not None and ctx.baseline is not None and cand is not None and comp is not None and (
            any(d.get("verdict") == "regressed" for d in comp["metrics"].values()) or comp.get("flipped")):
        from labkit.readiness.incident import incident_review

        rev = incident_review(ctx.baseline.path, cand.path, incident_dir, dataset=ctx.paths.dataset)
        incident = rev.summary_dict()

    return Scorecard(verdict, VERDICT_RULE, areas, items, gaps, gate_d, key, slo_status, rollout,
                     _run_info(cand), _run_info(ctx.baseline), ctx.paths.to_dict(),
                     dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), incident, notes)


def render_deployment_checklist(sc: Scorecard) -> str:
    """The Day 19 deployment checklist as markdown: items, SLOs, and the stage the evidence supports."""
    mark = {"pass": "[x]", "attested": "[x] (attested)", "fail": "[ ]", "unknown": "[?]"}
    lines = ["## Deployment checklist", ""]
    for i in sc.checklist("deployment"):
        if i.refs:
            lines.append(f"- {mark[i.status]} **{i.title}** — {i.status}")
            for r in i.refs:
                sub = sc.by_id.get(r)
                if sub is not None:
                    lines.append(f"    - {mark[sub.status]} {sub.title}: {sub.evidence}"
                                 + (f" → *{sub.action}*" if sub.action else ""))
    lines += ["", "## SLOs", "", "| SLO | target | status | budget remaining | burn rate |", "|---|---|---|---|---|"]
    for s in sc.slos:
        rem = "—" if s.budget_remaining is None else f"{s.budget_remaining:.0%}"
        burn = "—" if s.burn_rate is None else f"{s.burn_rate:.2f}"
        lines.append(f"| {s.name} | {s.target} | {s.status} | {rem} | {burn} |")
    lines += ["", "## Rollout", ""]
    if sc.rollout is None:
        lines.append("No rollout plan.")
    else:
        for st in sc.rollout.stages:
            lines.append(f"- {'[x]' if st.supported else '[ ]'} **{st.name}** ({st.traffic_percent:g}% of traffic)")
            for req in st.requirements:
                lines.append(f"    - {'ok' if req['passed'] else 'MISSING'}: {req['require']} — {req['evidence']}")
            for t in st.triggers:
                obs = "—" if t["observed"] is None else f"{t['observed']:.4g}"
                lines.append(f"    - rollback if {t['trigger']} (now {obs}{', WOULD FIRE' if t['would_fire'] else ''})")
        lines += ["", f"**The evidence supports: {sc.rollout.supported_stage or 'no stage'}.** "
                  f"Rollback target: {sc.rollout.rollback_to or 'none'}."]
    return "\n".join(lines) + "\n"
