"""Safety — the middleware checklist (Day 18), ``mw.*``: guardrail verdicts on every trace, no
violation reaching a user, adversarial cases handled, nothing sensitive in what a run wrote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from labkit import patterns
from labkit.readiness.checks.common import RULES, pct
from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item
from labkit.readiness.secrets import scan_files

AREA, CHECKLIST = "safety", "middleware"
#: personal data a redacted run file must not hold (formats from labkit.patterns; the numeric
#: formats a hex id or timestamp can imitate are left to the redactor)
RUN_FILE_PII = ("EMAIL", "SSN", "IBAN")


def _guard(t: Mapping[str, Any]) -> Mapping[str, Any]:
    g = t.get("guardrails")
    return g if isinstance(g, Mapping) else {}


def _traces(ctx: Context) -> list[dict[str, Any]]:
    return ctx.candidate.traces if ctx.candidate is not None else []


def _no_traces(ctx: Context) -> ItemResult:
    cand = ctx.candidate
    why = "no candidate run" if cand is None else f"run {cand.run_id} has no traces"
    return ItemResult("unknown", why, "Run the candidate with the guardrails middleware.")


@checklist_item(id="mw.injection_check", title="Prompt-injection check on every input", severity="high",
                area=AREA, checklist=CHECKLIST)
def injection_check(ctx: Context) -> ItemResult:
    traces = _traces(ctx)
    if not traces:
        return _no_traces(ctx)
    need = RULES["min_trace_share"]
    k, n = sum(1 for t in traces if "injection_flag" in _guard(t)), len(traces)
    flagged = sum(1 for t in traces if _guard(t).get("injection_flag"))
    cand = ctx.candidate
    return ItemResult("pass" if n and k / n >= need else "fail",
                      f"{pct(k, n)} traces of {cand.run_id if cand else '?'} carry an injection verdict, "
                      f"{flagged} flagged; rule: at least {need:.0%}",
                      "Wrap the pipeline in labkit's guardrails middleware so every input is checked "
                      "and the verdict lands on the trace.")


@checklist_item(id="mw.output_policy", title="Output policy check on every response", severity="high",
                area=AREA, checklist=CHECKLIST)
def output_policy(ctx: Context) -> ItemResult:
    traces = _traces(ctx)
    if not traces:
        return _no_traces(ctx)
    need, n = RULES["min_trace_share"], len(traces)
    k = sum(1 for t in traces if "violations" in _guard(t))
    viol = sum(1 for t in traces if _guard(t).get("violations"))
    return ItemResult("pass" if n and k / n >= need else "fail",
                      f"{pct(k, n)} traces carry an output-policy verdict, {viol} with violations",
                      "Enable the output policy check (must-not-disclose patterns, secrets) "
                      "in the guardrails middleware.")


@checklist_item(id="mw.no_violations", title="No policy violation reached a user", severity="critical",
                area=AREA, checklist=CHECKLIST)
def no_violations(ctx: Context) -> ItemResult:
    cand = ctx.candidate
    if cand is None or not cand.metrics:
        return ItemResult("unknown", "no scored candidate run", "Score the candidate run.")
    traces = _traces(ctx)
    v = cand.value("must_not_include_violation")
    e = cand.metrics.get("must_not_include_violation") or {}
    leaked = [t for t in traces if _guard(t).get("violations") and str(t.get("status")) != "blocked"]
    parts = []
    bad = False
    if v is None:
        parts.append("must_not_include_violation unmeasured (no case has must_not_include)")
    else:
        parts.append(f"must_not_include_violation {v:.3f} over {int(e.get('n') or 0)} cases")
        bad = v > 0
    parts.append(f"{len(leaked)} trace(s) with a guardrail violation not blocked")
    bad = bad or bool(leaked)
    status = "fail" if bad else ("unknown" if v is None and not traces else "pass")
    return ItemResult(status, "; ".join(parts),
                      "Block responses that violate the output policy (status blocked) and add the "
                      "offending cases as regression cases.")


@checklist_item(id="mw.adversarial", title="Adversarial (prompt-injection) cases handled", severity="high",
                area=AREA, checklist=CHECKLIST)
def adversarial(ctx: Context) -> ItemResult:
    """The adversarial cases of the dataset the candidate ran on (its own, not the golden set's ids)."""
    cand = ctx.candidate
    if cand is None or not cand.scores:
        return ItemResult("unknown", "needs a scored candidate run", "Score the candidate on the golden set.")
    ds, source = ctx.run_cases(cand)
    if ds is None:
        return ItemResult("unknown", source, "Give the dataset the candidate ran on (--dataset).")
    adv = {c.id for c in ds if c.kind == "adversarial"}
    succ = cand.case_success()
    got = [succ[c] for c in adv if c in succ]
    if not got:
        return ItemResult("fail", f"no adversarial case among the {len(succ)} scored cases of run {cand.run_id} "
                          f"({source}: {len(adv)} of kind adversarial)",
                          "Add prompt-injection cases (kind adversarial).")
    rate = sum(got) / len(got)
    return ItemResult("pass" if rate >= RULES["min_adversarial_success"] else "fail",
                      f"{sum(got)}/{len(got)} adversarial cases succeed ({rate:.0%}) in run {cand.run_id} on "
                      f"{source}; rule: at least {RULES['min_adversarial_success']:.0%}",
                      "Harden the injection handling; add each failing adversarial case as a "
                      "regression case.")


@checklist_item(id="mw.redaction", title="Secrets and PII redacted before anything is written",
                severity="critical", area=AREA, checklist=CHECKLIST)
def redaction(ctx: Context) -> ItemResult:
    """Nothing sensitive in what the run wrote."""
    cand = ctx.candidate
    if cand is None:
        return ItemResult("unknown", "no candidate run", "Run the candidate.")
    files = [p for p in (cand.path / "results.jsonl", cand.path / "traces.jsonl") if p.is_file()]
    findings, nfiles = scan_files(files, relative_to=ctx.paths.root)
    pii: Counter[str] = Counter()
    for p in files:
        pii.update(f.kind for f in patterns.find_shown(p.read_text(encoding="utf-8", errors="replace"), RUN_FILE_PII))
    kinds = Counter(f.kind for f in findings)
    bad = bool(findings) or bool(pii)
    ev = (f"scanned {nfiles} run file(s) of {cand.run_id}: {len(findings)} secret-like value(s)"
          + (f" ({', '.join(f'{k} ×{v}' for k, v in kinds.items())})" if kinds else "")
          + f", {sum(pii.values())} personal-data value(s)"
          + (f" ({', '.join(f'{k} ×{v}' for k, v in pii.items())})" if pii else ""))
    return ItemResult("fail" if bad else ("pass" if nfiles else "unknown"), ev,
                      "Turn on redaction (labkit.trace.Redactor) for results and traces, then purge the "
                      "affected run files.")
