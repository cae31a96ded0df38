"""Evaluation coverage — ``eval.*``: dataset size and validity, case kinds, high-risk cases,
per-stage metrics, unmeasured share, a paired regression run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.readiness.checks.common import RULES
from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item
from labkit.readiness.model import as_mapping
from labkit.readiness.runview import num
from labkit.registry import not_applicable

AREA, CHECKLIST = "evaluation coverage", "evaluation"
FAILURE_KINDS = ("failure", "adversarial", "out_of_scope")
STAGES = ("retrieval", "generation", "agent", "ops")


def _stats(ctx: Context) -> dict[str, Any] | None:
    """``dataset_stats`` of the golden set, or None when it does not load."""

    def compute() -> dict[str, Any] | None:
        ds, _ = ctx.dataset()
        if ds is None:
            return None
        from labkit.cases import dataset_stats

        return dataset_stats(ds)

    return ctx.memo("dataset_stats", compute)


@checklist_item(id="eval.dataset", title="Golden dataset with representative and failure cases",
                severity="critical", area=AREA, checklist=CHECKLIST)
def dataset_size(ctx: Context) -> ItemResult:
    path = ctx.paths.dataset
    st = _stats(ctx)
    if st is None:
        _, err = ctx.dataset()
        return ItemResult("fail", f"{path}: {err}", f"Create or fix {path} (labkit dataset validate {path}).")
    n = st["n_cases"]
    other = _scored_elsewhere(ctx, st["fingerprint"])
    if other:
        return ItemResult("fail", f"{path}: {n} valid cases (fingerprint {st['fingerprint'][:12]}); {other}: "
                          "not the golden set, so its metrics do not stand for it",
                          f"Run and score the candidate and the baseline on {path}.")
    return ItemResult("pass" if n >= RULES["min_cases"] else "fail",
                      f"{path}: {n} valid cases (fingerprint {st['fingerprint'][:12]}), "
                      f"{st['with_gold']} with gold ids, {st['with_must_include']} with must_include; "
                      f"rule: at least {RULES['min_cases']:g}",
                      f"Grow the golden set to at least {RULES['min_cases']:g} cases.")


def _scored_elsewhere(ctx: Context, fingerprint: str) -> str | None:
    """Which of the reviewed runs was scored on another dataset than the golden set, or None (a run
    that records no fingerprint is not judged on it)."""
    from labkit.runs import RunDir

    for role, view in (("the candidate", ctx.candidate), ("the baseline", ctx.baseline)):
        if view is None:
            continue
        rec = RunDir(view.path).scored_dataset
        fp = rec.get("fingerprint")
        if isinstance(fp, str) and fp and fp != fingerprint:
            return (f"{role} {view.run_id} was scored on {rec.get('path') or 'another dataset'} "
                    f"({rec.get('n_cases', '?')} cases, fingerprint {fp[:12]})")
    return None


@checklist_item(id="eval.case_kinds", title="Failure, adversarial and out-of-scope cases present",
                severity="medium", area=AREA, checklist=CHECKLIST)
def case_kinds(ctx: Context) -> ItemResult:
    st = _stats(ctx)
    if st is None:
        return ItemResult("unknown", "no dataset", "Add failure cases to the golden set.")
    kinds = st["by_kind"]
    missing = [k for k in ("representative", *FAILURE_KINDS) if not kinds.get(k)]
    return ItemResult("fail" if missing else "pass",
                      "kinds: " + ", ".join(f"{k} {v}" for k, v in kinds.items())
                      + (f"; missing: {', '.join(missing)}" if missing else ""),
                      f"Add cases of kind {', '.join(missing)} to {ctx.paths.dataset}.")


@checklist_item(id="eval.high_risk", title="High-risk cases present", severity="medium", area=AREA,
                checklist=CHECKLIST)
def high_risk(ctx: Context) -> ItemResult:
    st = _stats(ctx)
    if st is None:
        return ItemResult("unknown", "no dataset", "Tag high-risk cases (tags.risk: high).")
    hr = st["by_risk"].get("high", 0)
    return ItemResult("pass" if hr >= RULES["min_high_risk"] else "fail",
                      f"{hr} high-risk cases; rule: at least {RULES['min_high_risk']:g}",
                      "Tag and add high-risk cases (tags.risk: high).")


def _no_metrics(ctx: Context) -> str | None:
    """Why the candidate's metrics cannot be read, or None."""
    cand = ctx.candidate
    if cand is None:
        return "no candidate run"
    return None if cand.metrics else f"run {cand.run_id} has no metrics.json"


@checklist_item(id="eval.stage_metrics", title="Metrics split by stage (retrieval, generation, tool use, ops)",
                severity="high", area=AREA, checklist=CHECKLIST)
def stage_metrics(ctx: Context) -> ItemResult:
    why = _no_metrics(ctx)
    cand = ctx.candidate
    if why is not None or cand is None:
        return ItemResult("unknown", str(why), "Run and score the candidate (labkit run, labkit score).")
    from labkit.metrics import METRICS

    by_stage: dict[str, list[str]] = {s: [] for s in STAGES}
    for name, ent in cand.metrics.items():
        spec = METRICS.get(name)
        if spec is not None and isinstance(ent, Mapping) and num(ent.get("value")) is not None:
            by_stage.setdefault(spec.stage, []).append(name)
    missing = [s for s in STAGES if not by_stage.get(s)]
    return ItemResult("fail" if missing else "pass",
                      f"run {cand.run_id}: " + "; ".join(f"{s}: {len(v)} measured" for s, v in by_stage.items()),
                      f"Measure the {', '.join(missing)} stage(s) (labels or results missing).")


def _unmeasured_share(entry: Mapping[str, Any]) -> tuple[float, int]:
    """(share of applicable cases left unmeasured, cases not applicable) of one metrics.json entry."""
    n, un = int(entry.get("n") or 0), int(entry.get("unmeasured") or 0)
    reasons = as_mapping(entry.get("unmeasured_reasons"))
    na = sum(int(v) for k, v in reasons.items() if not_applicable(str(k)))
    un_app = max(un - na, 0)
    return (un_app / (n + un_app) if n + un_app else 1.0), na


@checklist_item(id="eval.unmeasured", title="Gated metrics measured on nearly every case", severity="medium",
                area=AREA, checklist=CHECKLIST)
def unmeasured(ctx: Context) -> ItemResult:
    why = _no_metrics(ctx)
    cand = ctx.candidate
    if why is not None or cand is None:
        return ItemResult("unknown", str(why), "Score the candidate run.")
    gate, _ = ctx.gate()
    gated = list(gate.metrics) if gate is not None else list(cand.metrics)
    worst: tuple[float, str] = (0.0, "")
    n_not_applicable = 0
    for m in gated:
        e = cand.metrics.get(m)
        if not isinstance(e, Mapping):
            continue
        rate, na = _unmeasured_share(e)
        worst = max(worst, (rate, m))
        n_not_applicable += na
    return ItemResult("pass" if worst[0] <= RULES["max_unmeasured_rate"] else "fail",
                      f"highest unmeasured share among gated metrics (cases without the labels a metric "
                      f"needs are not applicable, {n_not_applicable} such case-metrics): {worst[1] or '—'} "
                      f"{worst[0]:.1%}; rule: at most {RULES['max_unmeasured_rate']:.0%}",
                      f"Add the labels {worst[1]} needs, or bound it in the gate (unmeasured.max_rate).")


@checklist_item(id="eval.regression_run", title="Regression run against the baseline before the change",
                severity="high", area=AREA, checklist=CHECKLIST)
def regression_run(ctx: Context) -> ItemResult:
    comp, cerr = ctx.comparison()
    if comp is None:
        return ItemResult("fail" if ctx.baseline is None else "unknown", str(cerr),
                          "Run the baseline and the candidate on the same golden set and compare them "
                          "(labkit compare BASE VARIANT).")
    reg = [m for m, d in comp["metrics"].items() if d.get("verdict") == "regressed"]
    return ItemResult("pass", f"{comp['baseline']} vs {comp['variant']}: {comp['n_paired']} paired cases, "
                      f"{len(reg)} metric(s) regressed, {len(comp.get('flipped', []))} case(s) flipped"
                      + (f" ({cerr})" if cerr else ""))
