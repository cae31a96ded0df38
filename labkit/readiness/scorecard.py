"""The readiness scorecard: one score per area, a verdict with its rule, gaps ranked by severity."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.readiness import checks  # noqa: F401  (declares the built-in items)
from labkit.readiness.checks.slo_rollout import rollout_plan, slo_statuses
from labkit.readiness.context import Context, RunLike
from labkit.readiness.items import REGISTRY
from labkit.readiness.model import (
    AREAS,
    SEVERITIES,
    SEVERITY_WEIGHT,
    STATUS_CREDIT,
    CheckItem,
    apply_attestations,
    load_attestations,
)
from labkit.readiness.slo import RolloutStatus, SLOStatus, evaluate_rollout
from labkit.text import md_text

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


@dataclass(kw_only=True)
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
        """The scorecard as JSON, redacted as every file labkit writes is (an attestation's owner,
        evidence and note are the user's text, and may hold an address or a pasted secret)."""
        from labkit.trace.redact import Redactor

        return json.dumps(Redactor().redact(self.to_dict()), indent=2, ensure_ascii=False, allow_nan=False,
                          default=str)

    def save(self, path: str | os.PathLike[str]) -> Path:
        from labkit.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    def deployment_checklist(self) -> str:
        """:func:`render_deployment_checklist`, redacted as :meth:`to_json` is."""
        from labkit.trace.redact import Redactor

        return Redactor().redact_text(render_deployment_checklist(self))[0]


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


def _gap_key(g: dict[str, Any]) -> tuple[int, int, int, str]:
    return (SEVERITIES.index(g["severity"]), 0 if g["status"] == "fail" else 1,
            AREAS.index(g["area"]) if g["area"] in AREAS else 99, g["item"])


def evaluate_items(ctx: Context) -> list[CheckItem]:
    """Every declared item, settled by the attestations, then the composite items over them.

    An attestation file that does not load (an entry malformed, an item id that is no known
    item) is the ConfigError of :func:`load_attestations`, not a note: a person's word that is
    dropped must not leave the review looking as if nobody had vouched."""
    items = REGISTRY.evaluate(ctx)
    assert ctx.paths.attestations is not None
    atts = load_attestations(ctx.paths.attestations, known=[i.id for i in items])
    items = apply_attestations(items, atts, today=ctx.today)
    return items + REGISTRY.summarise(items)


def area_scores(items: list[CheckItem]) -> dict[str, dict[str, Any]]:
    """Per area: the severity-weighted share of credit (0–100, None without items) and status counts."""
    areas: dict[str, dict[str, Any]] = {}
    for a in AREAS:
        its = [i for i in items if i.area == a and not i.refs]
        w = sum(SEVERITY_WEIGHT[i.severity] for i in its)
        score = round(100 * sum(SEVERITY_WEIGHT[i.severity] * STATUS_CREDIT[i.status] for i in its) / w) if w else None
        counts = {s: sum(1 for i in its if i.status == s) for s in ("pass", "attested", "fail", "unknown")}
        areas[a] = {"score": score, "n_items": len(its), **counts}
    return areas


def ranked_gaps(items: list[CheckItem]) -> list[dict[str, Any]]:
    """Every item that does not pass (composites excepted), ranked by severity, status, area, id."""
    manual = set(REGISTRY.manual_ids)
    gaps: list[dict[str, Any]] = [
        {"item": i.id, "area": i.area, "severity": i.severity, "status": i.status, "title": i.title,
         "evidence": i.evidence, "action": i.action or "", "manual": i.id in manual}
        for i in items if i.is_gap]
    gaps.sort(key=_gap_key)
    for n, g in enumerate(gaps, 1):
        g["rank"] = n
    return gaps


def decide(gaps: list[dict[str, Any]], areas: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """(verdict, the note saying why) by :data:`VERDICT_RULE`."""
    crit = [g for g in gaps if g["severity"] == "critical"]
    low_areas = [a for a, v in areas.items() if v["score"] is not None and v["score"] < AREA_FLOOR]
    if crit or low_areas:
        why = []
        if crit:
            why.append(f"{len(crit)} critical gap(s): {', '.join(g['item'] for g in crit)}")
        if low_areas:
            why.append(f"area(s) below {AREA_FLOOR}: {', '.join(low_areas)}")
        return "not ready", "; ".join(why)
    if gaps:
        return "ready with conditions", f"{len(gaps)} condition(s): {', '.join(g['item'] for g in gaps)}"
    return "ready", None


def _rollout_status(ctx: Context, items: list[CheckItem]) -> RolloutStatus | None:
    plan, _ = rollout_plan(ctx)
    if plan is None:
        return None
    return evaluate_rollout(plan, items={i.id: i for i in items}, slos=slo_statuses(ctx),
                            metrics=ctx.candidate.metrics if ctx.candidate else {}, history=ctx.history)


def _gate_summary(ctx: Context) -> dict[str, Any] | None:
    rep, rerr = ctx.gate_report()
    if rep is not None:
        gate: dict[str, Any] = rep.to_dict()
        return gate
    return {"error": rerr} if rerr else None


def key_metrics(ctx: Context) -> list[dict[str, Any]]:
    """The candidate's key metrics: value, interval, n, the baseline's value and the paired delta."""
    cand = ctx.candidate
    if cand is None:
        return []
    from labkit.metrics import METRICS

    comp, _ = ctx.comparison()
    rows = []
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
        rows.append(row)
    return rows


def _incident(ctx: Context, incident_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The incident review, written to ``incident_dir`` when the candidate regressed against the baseline."""
    comp, _ = ctx.comparison()
    cand = ctx.candidate
    if incident_dir is None or ctx.baseline is None or cand is None or comp is None:
        return None
    if not (any(d.get("verdict") == "regressed" for d in comp["metrics"].values()) or comp.get("flipped")):
        return None
    from labkit.readiness.incident import incident_review

    rev = incident_review(ctx.baseline.path, cand.path, incident_dir, dataset=ctx.paths.dataset)
    return rev.summary_dict()


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
    items = evaluate_items(ctx)
    rollout = _rollout_status(ctx, items)
    areas = area_scores(items)
    gaps = ranked_gaps(items)
    verdict, why = decide(gaps, areas)
    notes = [why] if why is not None else []
    return Scorecard(
        verdict=verdict, rule=VERDICT_RULE, areas=areas, items=items, gaps=gaps, gate=_gate_summary(ctx),
        key_metrics=key_metrics(ctx), slos=slo_statuses(ctx), rollout=rollout, candidate=_run_info(ctx.candidate),
        baseline=_run_info(ctx.baseline), inputs=ctx.paths.to_dict(),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), incident=_incident(ctx, incident_dir),
        notes=notes)


def render_deployment_checklist(sc: Scorecard) -> str:
    """The Day 19 deployment checklist as markdown: items, SLOs, and the stage the evidence supports.
    Every title, evidence, action and name is written by ``md`` (an attestation's owner, note and
    link, an SLO's or a stage's name show as text)."""
    md = md_text
    mark = {"pass": "[x]", "attested": "[x] (attested)", "fail": "[ ]", "unknown": "[?]"}
    lines = ["## Deployment checklist", ""]
    for i in sc.checklist("deployment"):
        if i.refs:
            lines.append(f"- {mark[i.status]} **{md(i.title)}** — {i.status}")
            for r in i.refs:
                sub = sc.by_id.get(r)
                if sub is not None:
                    lines.append(f"    - {mark[sub.status]} {md(sub.title)}: {md(sub.evidence)}"
                                 + (f" → *{md(sub.action)}*" if sub.action else ""))
    lines += ["", "## SLOs", "", "| SLO | target | status | budget remaining | burn rate |", "|---|---|---|---|---|"]
    for s in sc.slos:
        rem = "—" if s.budget_remaining is None else f"{s.budget_remaining:.0%}"
        burn = "—" if s.burn_rate is None else f"{s.burn_rate:.2f}"
        lines.append(f"| {md(s.name)} | {md(s.target)} | {md(s.status)} | {rem} | {burn} |")
    lines += ["", "## Rollout", ""]
    if sc.rollout is None:
        lines.append("No rollout plan.")
    else:
        for st in sc.rollout.stages:
            lines.append(f"- {'[x]' if st.supported else '[ ]'} **{md(st.name)}** "
                         f"({st.traffic_percent:g}% of traffic)")
            for req in st.requirements:
                lines.append(f"    - {'ok' if req['passed'] else 'MISSING'}: {md(str(req['require']))} — "
                             f"{md(str(req['evidence']))}")
            for t in st.triggers:
                obs = "—" if t["observed"] is None else f"{t['observed']:.4g}"
                fire = ", WOULD FIRE" if t["would_fire"] else ""
                lines.append(f"    - rollback if {md(str(t['trigger']))} (now {obs}{fire})")
        lines += ["", f"**The evidence supports: {md(sc.rollout.supported_stage or 'no stage')}.** "
                  f"Rollback target: {md(sc.rollout.rollback_to or 'none')}."]
    return "\n".join(lines) + "\n"
