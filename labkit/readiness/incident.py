"""Incident review (Day 20): from a failing run and its baseline, a note, regression cases and a backlog.

``incident_review(baseline_run, failing_run, out_dir)`` writes:

* ``incident.md`` — summary, impact (with numbers), timeline from the traces,
  the stage where quality moved (computed from per-stage deltas), contributing
  factors and action items;
* ``regression_cases.jsonl`` — each case that fails in the failing run, as a
  proposed eval case with ``tags.kind: regression`` (valid for ``load_cases``); the cases
  it leaves out are named in the notes, with the reason (:mod:`labkit.readiness.incident_cases`);
* ``backlog.csv`` — the action items with empty owner and due-date columns.

Where quality moved: for every metric of the paired comparison, the
direction-adjusted delta (positive = better) is normalised — as is for metrics
bounded in [0, 1], relative to the baseline value for the others (latency,
cost). A stage's delta is the mean over its measured metrics (the end-to-end
outcome ``task_success_rate`` is left out: it falls whichever stage failed); a stage
*regressed* when at least one of its metrics has the verdict ``regressed``. The
stage named is the regressed stage with the most negative stage delta (ties go
to the earlier stage: retrieval, generation, agent, ops). When nothing
regressed, the note says so and names no stage.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import patterns
from labkit.cases import EvalCase, save_cases
from labkit.display import unit_of
from labkit.errors import ConfigError, LabkitError
from labkit.io import atomic_write_text
from labkit.readiness.context import compare
from labkit.readiness.incident_cases import (
    Proposal,
    case_stage,
    failure_reasons,
    named,
    propose_cases,
)
from labkit.readiness.model import as_mapping
from labkit.readiness.runview import RunView, num
from labkit.registry import not_applicable
from labkit.text import md_text

STAGE_ORDER = ("retrieval", "generation", "agent", "ops")
STAGE_LABEL = {"retrieval": "retrieval", "generation": "generation", "agent": "tool use (agent)",
               "ops": "operations"}
#: config keys and the stage they act on (for contributing factors)
CONFIG_STAGE = {
    "top_k": "retrieval", "chunk_size": "retrieval", "min_score": "retrieval", "min_coverage": "retrieval",
    "retriever": "retrieval", "corpus": "retrieval", "embedding": "retrieval",
    "model": "generation", "prompt_version": "generation", "answer_sentences": "generation",
    "prompt": "generation", "temperature": "generation", "generator": "generation",
    "tools": "agent", "runner": "ops", "fallback": "ops",
}
#: end-to-end outcome metrics: reported in the impact, not used to locate a stage (task success
#: falls whichever stage failed, so it would point at the agent stage for a generation regression)
OUTCOME_METRICS = ("task_success_rate",)
BACKLOG_COLUMNS = ("id", "action", "stage", "severity", "source", "evidence", "owner", "due_date", "status")
#: The files :func:`incident_review` writes into its folder.
INCIDENT_FILES = ("incident.md", "regression_cases.jsonl", "backlog.csv", "incident.json")


@dataclass(kw_only=True)
class IncidentReview:
    baseline_run: str
    failing_run: str
    out_dir: Path
    summary: str
    stage: str | None
    stage_deltas: dict[str, dict[str, Any]]
    impact: dict[str, Any]
    timeline: list[tuple[str, str]]
    factors: list[str]
    actions: list[dict[str, str]]
    regression_cases: list[EvalCase] = field(default_factory=list)
    not_proposed: list[str] = field(default_factory=list)  # failing cases left out (the notes say why)
    notes: list[str] = field(default_factory=list)

    @property
    def note_path(self) -> Path:
        return self.out_dir / "incident.md"

    @property
    def cases_path(self) -> Path:
        return self.out_dir / "regression_cases.jsonl"

    @property
    def backlog_path(self) -> Path:
        return self.out_dir / "backlog.csv"

    def summary_dict(self) -> dict[str, Any]:
        return {"baseline_run": self.baseline_run, "failing_run": self.failing_run, "summary": self.summary,
                "stage": self.stage, "stage_deltas": self.stage_deltas, "impact": self.impact,
                "n_regression_cases": len(self.regression_cases), "n_not_proposed": len(self.not_proposed),
                "n_actions": len(self.actions),
                "note": str(self.note_path), "regression_cases": str(self.cases_path),
                "backlog": str(self.backlog_path)}

    def to_markdown(self) -> str:
        return self.note_path.read_text(encoding="utf-8") if self.note_path.is_file() else _render(self)


# ---- where quality moved ----------------------------------------------------------------------

def stage_deltas(comparison: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per stage: mean normalised direction-adjusted delta, and its regressed/improved metrics."""
    from labkit.metrics import METRICS

    out: dict[str, dict[str, Any]] = {}
    for name, d in comparison.get("metrics", {}).items():
        spec = METRICS.get(name)
        delta = num(d.get("delta"))
        if spec is None or delta is None or name in OUTCOME_METRICS:
            continue
        sign = 1.0 if spec.direction == "higher" else -1.0
        if spec.bounded:
            norm = sign * delta
        else:
            base = num(d.get("baseline"))
            if not base:
                continue
            norm = sign * delta / abs(base)
        s = out.setdefault(spec.stage, {"delta": 0.0, "metrics": {}, "regressed": [], "improved": []})
        s["metrics"][name] = round(norm, 6)
        if d.get("verdict") == "regressed":
            s["regressed"].append(name)
        elif d.get("verdict") == "improved":
            s["improved"].append(name)
    for s in out.values():
        vals = list(s["metrics"].values())
        s["delta"] = round(sum(vals) / len(vals), 6) if vals else 0.0
    return {k: out[k] for k in sorted(out, key=lambda k: STAGE_ORDER.index(k) if k in STAGE_ORDER else 9)}


def regressed_stage(deltas: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The regressed stage with the most negative stage delta; None when no stage regressed."""
    cands = [(float(v["delta"]), STAGE_ORDER.index(k) if k in STAGE_ORDER else 9, k)
             for k, v in deltas.items() if v["regressed"]]
    return min(cands)[2] if cands else None


# ---- helpers ----------------------------------------------------------------------------------

def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = d
    return out


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Changed keys between two configs (credential-like keys listed without their values)."""
    fa, fb = _flatten(a), _flatten(b)
    out = []
    for k in sorted(set(fa) | set(fb)):
        if k in ("name", "description"):
            continue
        if fa.get(k) != fb.get(k):
            if patterns.is_credential_key(k.rsplit(".", 1)[-1]):
                out.append((k, "(hidden)", "(hidden)"))
            else:
                out.append((k, fa.get(k, "—"), fb.get(k, "—")))
    return out


def _iso(ts: Any) -> str | None:
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).isoformat(timespec="seconds")
    if isinstance(ts, str) and ts:
        return ts
    return None


# ---- the review -------------------------------------------------------------------------------

@dataclass
class _Pairing:
    """What the paired comparison of the failing run with its baseline says, case by case."""

    base: RunView
    var: RunView
    comp: Mapping[str, Any]
    shared: list[str]
    failed: list[str]  # cases failing (task success 0) in the failing run
    regressed_cases: list[str]  # pass in the baseline, fail in the failing run
    fixed: list[str]
    results: dict[str, dict[str, Any]]  # the failing run's results by case id
    attribution: Counter[str]  # regressed cases by the first stage that got worse
    reg_metrics: list[tuple[str, Mapping[str, Any]]]
    errors: Counter[str]
    slice_rows: list[tuple[float, str, float, float]]  # (delta, slice, baseline, failing), worst first

    @classmethod
    def of(cls, base: RunView, var: RunView, comp: Mapping[str, Any]) -> _Pairing:
        bsucc, vsucc = base.case_success(), var.case_success()
        shared = sorted(set(bsucc) & set(vsucc))
        regressed = [c for c in shared if bsucc[c] and not vsucc[c]]
        vres = {str(r.get("case_id")): r for r in var.results}
        return cls(
            base=base, var=var, comp=comp, shared=shared,
            failed=[c for c in sorted(vsucc) if not vsucc[c]],
            regressed_cases=regressed,
            fixed=[c for c in shared if not bsucc[c] and vsucc[c]],
            results=vres,
            attribution=Counter(case_stage(base, var, c, vres.get(c)) for c in regressed),
            reg_metrics=[(m, d) for m, d in comp["metrics"].items() if d.get("verdict") == "regressed"],
            errors=Counter(str(r.get("status")) for r in var.results if str(r.get("status")) in ("error", "timeout")),
            slice_rows=_slices_hit(base, var),
        )


def _slices_hit(base: RunView, var: RunView) -> list[tuple[float, str, float, float]]:
    """Slices whose task success fell, worst first."""
    rows = []
    bsl, vsl = base.metrics_doc.get("slices") or {}, var.metrics_doc.get("slices") or {}
    for key in sorted(set(bsl) & set(vsl)):
        a = num((bsl[key].get("task_success_rate") or {}).get("value"))
        b = num((vsl[key].get("task_success_rate") or {}).get("value"))
        if a is not None and b is not None and b < a:
            rows.append((b - a, key, a, b))
    rows.sort()
    return rows


def _impact(p: _Pairing) -> dict[str, Any]:
    bsucc, vsucc = p.base.case_success(), p.var.case_success()
    return {
        "n_paired": p.comp["n_paired"],
        "failed_baseline": sum(1 for c in p.shared if not bsucc[c]),
        "failed_failing_run": sum(1 for c in p.shared if not vsucc[c]),
        "regressed_cases": len(p.regressed_cases),
        "fixed_cases": len(p.fixed),
        "errors": dict(p.errors),
        "regressed_metrics": {m: {k: d.get(k) for k in ("baseline", "variant", "delta", "ci_low", "ci_high",
                                                         "p_adjusted", "stage")} for m, d in p.reg_metrics},
        "improved_metrics": [m for m, d in p.comp["metrics"].items() if d.get("verdict") == "improved"],
        "slices": [{"slice": k, "baseline": a, "failing": b, "delta": round(d, 4)} for d, k, a, b in p.slice_rows[:5]],
        "attribution": dict(p.attribution),
    }


def _summary(p: _Pairing, stage: str | None) -> str:
    base, var, comp = p.base, p.var, p.comp
    if stage is None:
        return (f"Run {var.run_id} shows no metric regressed against {base.run_id} "
                f"({comp['n_paired']} paired cases); {len(p.regressed_cases)} case(s) flipped pass→fail.")
    at_stage = [(m, d) for m, d in p.reg_metrics if (d.get("stage") or "") == stage]
    top = ", ".join(f"{m} {d['baseline']:.3g}→{d['variant']:.3g}" for m, d in at_stage)
    others = [m for m, d in p.reg_metrics if (d.get("stage") or "") != stage]
    elsewhere = f", and {len(others)} more elsewhere ({', '.join(others)})" if others else ""
    return (f"Quality moved at the {STAGE_LABEL.get(stage, stage)} stage: run {var.run_id} regressed against "
            f"{base.run_id} on {len(at_stage)} metric(s) of that stage ({top}){elsewhere}; "
            f"{len(p.regressed_cases)} of {comp['n_paired']} cases went from pass to fail, "
            f"{len(p.fixed)} the other way.")


def _run_desc(r: RunView) -> str:
    cfg = r.config
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    return (f"pipeline {r.pipeline.get('name')}, prompt_version {cfg.get('prompt_version')}, "
            f"model {model.get('name') if model else cfg.get('model')}, config {r.config_hash}")


def _trace_events(p: _Pairing, traces: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Timeline events read from the failing run's traces (sorted by start)."""
    first, last = traces[0], traces[-1]
    tl = [(_iso(first["ts_start"]) or "?", f"first trace {first.get('trace_id')} (case {first.get('case_id')})")]
    reg_set = set(p.regressed_cases)
    bad = [t for t in traces if t.get("case_id") in reg_set]
    if bad:
        tl.append((_iso(bad[0]["ts_start"]) or "?", f"first regressed case {bad[0].get('case_id')} "
                   f"(trace {bad[0].get('trace_id')}); {len(bad)} trace(s) of regressed cases in all"))
    errs = [t for t in traces if str(t.get("status")) in ("error", "timeout")]
    if errs:
        tl.append((_iso(errs[0]["ts_start"]) or "?", f"first {errs[0].get('status')} "
                   f"({errs[0].get('error_type')}) on case {errs[0].get('case_id')}; {len(errs)} in all"))
    fb = [t for t in traces if t.get("answered_by") and t.get("answered_by") != p.var.pipeline.get("name")]
    if fb:
        tl.append((_iso(fb[0]["ts_start"]) or "?", f"fallback answered case {fb[0].get('case_id')}; "
                   f"{len(fb)} case(s) in all"))
    tl.append((_iso(last.get("ts_end") or last["ts_start"]) or "?", f"last trace {last.get('trace_id')} "
               f"({len(traces)} traces)"))
    return tl


def _timeline(p: _Pairing, notes: list[str]) -> list[tuple[str, str]]:
    """The incident's events in UTC, from the manifests, the traces and the scoring."""
    base, var = p.base, p.var
    tl: list[tuple[str, str]] = []
    if base.created_at:
        tl.append((base.created_at, f"baseline run {base.run_id} started ({_run_desc(base)})"))
    g = as_mapping(var.manifest.get("gate"))
    if g and g.get("locked_at"):
        tl.append((str(g["locked_at"]), f"gate {g.get('path')} locked (hash {str(g.get('hash'))[:12]})"))
    if var.created_at:
        tl.append((var.created_at, f"failing run {var.run_id} started ({_run_desc(var)})"))
    traces = [t for t in var.traces if t.get("ts_start") is not None]
    traces.sort(key=lambda t: float(t["ts_start"]))
    if traces:
        tl += _trace_events(p, traces)
    else:
        notes.append("the failing run has no traces with timestamps: timeline from manifests only")
    scored = (var.path / "metrics.json")
    if scored.is_file():
        tl.append((_iso(scored.stat().st_mtime) or "?", f"failing run scored: {len(p.reg_metrics)} metric(s) "
                   f"regressed, {len(p.regressed_cases)} case(s) flipped"))
    tl.sort(key=lambda e: e[0])
    return tl


def _factors(p: _Pairing, diff: list[tuple[str, Any, Any]]) -> list[str]:
    """Contributing factors: config changes, attribution, unmeasured reasons, errors, slices."""
    factors: list[str] = []
    for k, a, b in diff:
        st = CONFIG_STAGE.get(k.split(".", 1)[0], "other")
        factors.append(f"config change {k}: {a} → {b} (acts on {STAGE_LABEL.get(st, st)})")
    if p.attribution:
        factors.append("regressed cases by the first stage that got worse: " + ", ".join(
            f"{STAGE_LABEL.get(s, s)} {n}" for s, n in p.attribution.most_common()))
    reasons = Counter(r for c in p.failed for r in failure_reasons(p.var, c)
                      if not not_applicable(r.split(":", 1)[1].strip()))
    if reasons:
        factors.append("unmeasured reasons on failed cases: " + ", ".join(f"{r} ×{n}" for r, n in reasons.most_common(5)))
    if p.errors:
        factors.append("errors in the failing run: " + ", ".join(f"{k} ×{n}" for k, n in p.errors.items()))
    for _d, k, a, b in p.slice_rows[:3]:
        factors.append(f"slice {k}: task success {a:.2f} → {b:.2f}")
    return factors


class _Backlog:
    """The action items, numbered A1, A2 ... in the order they are added."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[dict[str, str]] = []

    def add(self, text: str, stage: str, severity: str, evidence: str) -> None:
        self.rows.append({"id": f"A{len(self.rows) + 1}", "action": text, "stage": stage, "severity": severity,
                          "source": self.source, "evidence": evidence, "owner": "", "due_date": "",
                          "status": "open"})


def _stage_actions(p: _Pairing, backlog: _Backlog, *, stage: str | None, deltas: Mapping[str, Mapping[str, Any]],
                   diff: list[tuple[str, Any, Any]]) -> None:
    """Fix the stage where quality moved first; check the other regressed stages after."""
    if stage is not None:
        keys = [k for k, _, _ in diff if CONFIG_STAGE.get(k.split(".", 1)[0]) == stage]
        names = ", ".join(f"{m} ({d['delta']:+.3g})" for m, d in p.reg_metrics if d.get("stage") == stage)
        if keys:
            backlog.add(f"Revert or rework the {STAGE_LABEL[stage]} change(s) ({', '.join(keys)}) and re-run against "
                        f"{p.base.run_id}", stage, "high", names)
        else:
            backlog.add(f"Find what moved the {STAGE_LABEL[stage]} stage: compare the traces of the regressed cases "
                        f"(labkit traces {p.base.path} {p.var.path})", stage, "high", names)
    for s, v in deltas.items():
        if s != stage and v["regressed"]:
            backlog.add(f"Check the {STAGE_LABEL.get(s, s)} regression ({', '.join(v['regressed'])}) once the "
                        f"{STAGE_LABEL.get(stage or '', stage or '')} fix lands: it may be downstream of it", s,
                        "medium", f"stage delta {v['delta']:+.3f}")


def _gate_actions(p: _Pairing, backlog: _Backlog, *, gate_path: Path | None, notes: list[str]) -> None:
    """Gate the regressed metrics that were not gated; add regression checks when the gate has none."""
    if gate_path is None or not gate_path.is_file():
        return
    try:
        from labkit.gate import Gate

        gobj = Gate.load(gate_path)
        gated = set(gobj.metrics)
        ungated = [m for m, _ in p.reg_metrics if m not in gated]
        if ungated:
            backlog.add(f"Add gate checks for {', '.join(ungated)} (regressed, but not gated) to {gate_path}",
                        "evaluation", "medium", "regressed metrics not in the gate")
        if not gobj.regression:
            backlog.add(f"Add non-inferiority regression checks against the baseline to {gate_path}", "evaluation",
                        "medium", "the gate has no regression section")
    except LabkitError as e:
        notes.append(f"gate not read: {e}")


def _case_actions(p: _Pairing, backlog: _Backlog, prop: Proposal, stage: str | None) -> None:
    """Review the proposed cases; add by hand those whose labels redaction would change."""
    if prop.cases:
        backlog.add(f"Review the {len(prop.cases)} proposed regression case(s) in regression_cases.jsonl and merge "
                    "the accepted ones into the golden set", stage or "evaluation", "medium",
                    f"{len(p.regressed_cases)} flipped pass→fail")
    if prop.held_back:
        held = [f"{cid} ({', '.join(f)})" for cid, f in prop.held_back.items()]
        backlog.add(f"Add case(s) {named(held)} to the golden set by hand from {prop.dataset_path}: their labels "
                    "hold what redaction hides, so regression_cases.jsonl leaves them out", "evaluation", "medium",
                    f"{len(held)} failing case(s) not proposed")
    if prop.no_result:
        backlog.add(f"{len(prop.no_result)} case(s) have no result in the failing run: {named(prop.no_result)}; run "
                    "them (or record their traffic) and rescore before closing the incident", "evaluation", "medium",
                    f"no result line in {p.var.run_id}/results.jsonl: unmeasured, not proposed")


def _actions(p: _Pairing, prop: Proposal, *, stage: str | None, deltas: Mapping[str, Mapping[str, Any]],
             diff: list[tuple[str, Any, Any]], gate: str | os.PathLike[str] | None,
             notes: list[str]) -> list[dict[str, str]]:
    """The action items of the backlog, most pressing first."""
    backlog = _Backlog(f"incident {p.var.run_id}")
    _stage_actions(p, backlog, stage=stage, deltas=deltas, diff=diff)
    _case_actions(p, backlog, prop, stage)
    g = as_mapping(p.var.manifest.get("gate"))
    gate_path = Path(gate) if gate else (Path(str(g.get("path"))) if g and g.get("path") else None)
    _gate_actions(p, backlog, gate_path=gate_path, notes=notes)
    if p.errors:
        backlog.add("Investigate the errors and timeouts (" + ", ".join(p.errors) + ") in the failing run's traces",
                    "ops", "high", f"{sum(p.errors.values())} case(s)")
    return backlog.rows


def _write(rev: IncidentReview, comp: Mapping[str, Any]) -> None:
    """incident.md, regression_cases.jsonl, backlog.csv and incident.json under ``rev.out_dir``."""
    rev.out_dir.mkdir(parents=True, exist_ok=True)
    save_cases(rev.regression_cases, rev.cases_path)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BACKLOG_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rev.actions:
        w.writerow(row)
    atomic_write_text(rev.backlog_path, buf.getvalue())
    atomic_write_text(rev.note_path, _render(rev, comp))
    extra = {"timeline": rev.timeline, "factors": rev.factors, "actions": rev.actions, "notes": rev.notes}
    atomic_write_text(rev.out_dir / "incident.json",
                      json.dumps(rev.summary_dict() | extra, indent=2, default=str) + "\n")


def incident_review(
    baseline_run: str | os.PathLike[str] | RunView,
    failing_run: str | os.PathLike[str] | RunView,
    out_dir: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] | None = None,
    gate: str | os.PathLike[str] | None = None,
) -> IncidentReview:
    """Compare the failing run with its baseline and write incident.md, regression_cases.jsonl, backlog.csv."""
    if gate is not None:  # a gate named by the user that does not load is their mistake (ConfigError)
        from labkit.gate import Gate

        Gate.load(gate)
    base, var = RunView.verified(baseline_run), RunView.verified(failing_run)
    comp, why = compare(base, var)
    if comp is None:
        raise ConfigError(f"cannot review: {why}", path=str(var.path))
    notes = [why] if why else []
    deltas = stage_deltas(comp)
    stage = regressed_stage(deltas)
    p = _Pairing.of(base, var, comp)
    diff = config_diff(base.config, var.config)
    timeline = _timeline(p, notes)
    prop = propose_cases(base, var, failed=p.failed, regressed=p.regressed_cases, results=p.results,
                         dataset=dataset)
    actions = _actions(p, prop, stage=stage, deltas=deltas, diff=diff, gate=gate, notes=notes)
    rev = IncidentReview(
        baseline_run=base.run_id, failing_run=var.run_id, out_dir=Path(out_dir), summary=_summary(p, stage),
        stage=stage, stage_deltas=deltas, impact={**_impact(p), "no_result_cases": prop.no_result},
        timeline=timeline, factors=_factors(p, diff),
        actions=actions, regression_cases=prop.cases, not_proposed=prop.not_proposed, notes=notes + prop.notes())
    _write(rev, comp)
    return rev


def _f(x: Any, d: int = 3) -> str:
    v = num(x)
    return "—" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.{d}g}")


def _render(rev: IncidentReview, comp: Mapping[str, Any] | None = None) -> str:
    """incident.md: every run id, case id, tag value and text quoting one written by ``md`` (shown as text)."""
    md = md_text
    L = [f"# Incident review: {md(rev.failing_run)} against {md(rev.baseline_run)}", "",
         "_Blameless review generated by labkit from the two run directories; edit before circulating._", "",
         "## Summary", "", md(rev.summary), ""]
    im = rev.impact
    L += ["## Impact", "",
          f"- Paired cases: {im['n_paired']}; failing (task success = 0): {im['failed_baseline']} in the baseline, "
          f"{im['failed_failing_run']} in the failing run.",
          f"- Cases that went from pass to fail: **{im['regressed_cases']}**; from fail to pass: {im['fixed_cases']}.",
          ]
    if im.get("no_result_cases"):
        gone = im["no_result_cases"]
        L.append(f"- Cases of the dataset with no result in the failing run: {len(gone)} ({md(named(gone))}): unmeasured, "
                 "so neither counted above nor proposed as regression cases.")
    if im["errors"]:
        L.append("- Errors: " + md(", ".join(f"{k} {v}" for k, v in im["errors"].items())) + ".")
    if im["regressed_metrics"]:
        L += ["", "| metric | stage | unit | baseline | failing | delta | 95% CI of delta | p (Holm) |",
              "|---|---|---|---|---|---|---|---|"]
        for m, d in im["regressed_metrics"].items():
            L.append(f"| {md(m)} | {md(str(d.get('stage')))} | {unit_of(m)} | {_f(d['baseline'])} | {_f(d['variant'])} | {_f(d['delta'])} | "
                     f"[{_f(d['ci_low'])}, {_f(d['ci_high'])}] | {_f(d['p_adjusted'])} |")
    if im["improved_metrics"]:
        L += ["", "Improved: " + md(", ".join(im["improved_metrics"])) + "."]
    if im["slices"]:
        L += ["", "Slices hit hardest (task success): " + "; ".join(
            f"{md(s['slice'])} {s['baseline']:.2f} → {s['failing']:.2f}" for s in im["slices"]) + "."]
    L += ["", "## Timeline (UTC)", ""]
    L += [f"- {md(t)} — {md(e)}" for t, e in rev.timeline] or ["- no timestamps recorded"]
    L += ["", "## Where quality moved", "",
          "Per stage: mean of the direction-adjusted, normalised deltas of its metrics (negative = worse; "
          "bounded metrics as is, latency and cost relative to the baseline; task_success_rate, an end-to-end "
          "outcome, left out). The stage named is the regressed "
          "stage (at least one metric with verdict regressed) with the most negative delta.", "",
          "| stage | delta (normalised) | regressed | improved |", "|---|---|---|---|"]
    for s, v in rev.stage_deltas.items():
        mark = " ◀" if s == rev.stage else ""
        L.append(f"| {md(STAGE_LABEL.get(s, s))}{mark} | {v['delta']:+.3f} | {md(', '.join(v['regressed']) or '—')} | "
                 f"{md(', '.join(v['improved']) or '—')} |")
    L += ["", f"**Stage: {md(STAGE_LABEL.get(rev.stage, rev.stage)) if rev.stage else 'none (no metric regressed)'}**", ""]
    L += ["## Contributing factors", ""] + ([f"- {md(f)}" for f in rev.factors] or ["- none identified"])
    L += ["", "## Action items", "", "| id | action | stage | severity | owner | due |", "|---|---|---|---|---|---|"]
    L += [f"| {md(a['id'])} | {md(a['action'])} | {md(a['stage'])} | {md(a['severity'])} | _to fill_ | _to fill_ |"
          for a in rev.actions]
    L += ["", "## Regression cases", "",
          f"{len(rev.regression_cases)} proposed case(s) in `regression_cases.jsonl` (tags.kind = regression); "
          "the backlog is in `backlog.csv` (owner and due date to fill)."
          + (f" {len(rev.not_proposed)} failing case(s) not proposed: see the notes." if rev.not_proposed else "")]
    if rev.notes:
        L += ["", "## Notes", ""] + [f"- {md(n)}" for n in rev.notes]
    return "\n".join(L) + "\n"


def regressed_case_ids(comparison: Mapping[str, Any]) -> list[str]:
    return [f["case_id"] for f in comparison.get("flipped", []) if f.get("to") == "fail"]


__all__: Sequence[str] = ("IncidentReview", "incident_review", "regressed_stage", "stage_deltas")
