"""The checklists, each item evaluated from artifacts (or marked unknown for attestation).

Areas and their items (ids are stable; the attestation file and the tests use them):

* evaluation coverage — ``eval.*``: dataset size and validity, case kinds, high-risk
  cases, per-stage metrics, unmeasured share, a paired regression run;
* release gate — ``gate.*``: defined, locked, pre-registered before the run,
  passed by the candidate, human review of high-risk cases;
* safety (the middleware checklist, Day 18) — ``mw.*``;
* reliability (the baseline reliability checklist) — ``rel.*`` and the deployment
  items ``dep.config_separate``, ``dep.least_privilege``, ``dep.secret_manager``;
* observability — ``obs.*``, from :func:`labkit.trace.checklist.observability_checklist`;
* SLOs and rollout — ``slo.*`` and ``rollout.*`` (see :mod:`labkit.readiness.slo`);
* incident readiness — ``inc.*``.

The deployment checklist (``dep.*``) is rendered from the same evidence: its
composite items summarise the items above and are not counted twice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit import patterns
from labkit.readiness.context import Context, PipelineConfig, read_yaml_file, rule_name, rule_text
from labkit.readiness.model import CheckItem, as_mapping, composite, fmt_num, item
from labkit.readiness.runview import num
from labkit.readiness.secrets import config_files, scan_files

#: Thresholds of the automated rules, stated in docs/readiness.md.
RULES: dict[str, float] = {
    "min_cases": 40,  # golden set size
    "min_high_risk": 5,  # high-risk cases in the golden set
    "max_unmeasured_rate": 0.05,  # share of unmeasured cases per gated metric
    "min_trace_share": 0.95,  # share of traces that must carry a guardrail verdict
    "min_adversarial_success": 0.9,  # adversarial cases handled (task success)
}

#: unmeasured reasons that mean "the case has no label for this metric" (not applicable, not missing)
NOT_APPLICABLE = ("no_gold", "no_must", "no_expected", "no_label", "no_claims")
FAILURE_KINDS = ("failure", "adversarial", "out_of_scope")
STAGES = ("retrieval", "generation", "agent", "ops")
SIDE_EFFECT_VERBS = ("create", "update", "delete", "remove", "send", "escalate", "refund", "cancel",
                     "transfer", "reset", "issue", "close", "charge", "post", "write", "submit", "book")
#: personal data a redacted run file must not hold (formats from labkit.patterns; the numeric
#: formats a hex id or timestamp can imitate are left to the redactor)
RUN_FILE_PII = ("EMAIL", "SSN", "IBAN")


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "0/0"


# ---- evaluation coverage ----------------------------------------------------------------------

def evaluation_items(ctx: Context) -> list[CheckItem]:
    A, C = "evaluation coverage", "evaluation"
    out: list[CheckItem] = []
    ds, err = ctx.dataset()
    path = ctx.paths.dataset
    if ds is None:
        out.append(item("eval.dataset", A, C, "Golden dataset with representative and failure cases", "fail",
                        f"{path}: {err}", f"Create or fix {path} (labkit dataset validate {path}).", "critical"))
        out.append(item("eval.case_kinds", A, C, "Failure, adversarial and out-of-scope cases present",
                        "unknown", "no dataset", "Add failure cases to the golden set.", "medium"))
        out.append(item("eval.high_risk", A, C, "High-risk cases present", "unknown", "no dataset",
                        "Tag high-risk cases (tags.risk: high).", "medium"))
    else:
        from labkit.cases import dataset_stats

        st = dataset_stats(ds)
        n = st["n_cases"]
        ok = n >= RULES["min_cases"]
        out.append(item("eval.dataset", A, C, "Golden dataset with representative and failure cases",
                        "pass" if ok else "fail",
                        f"{path}: {n} valid cases (fingerprint {st['fingerprint'][:12]}), "
                        f"{st['with_gold']} with gold ids, {st['with_must_include']} with must_include; "
                        f"rule: at least {RULES['min_cases']:g}",
                        f"Grow the golden set to at least {RULES['min_cases']:g} cases.", "critical"))
        kinds = st["by_kind"]
        missing = [k for k in ("representative", *FAILURE_KINDS) if not kinds.get(k)]
        out.append(item("eval.case_kinds", A, C, "Failure, adversarial and out-of-scope cases present",
                        "fail" if missing else "pass",
                        "kinds: " + ", ".join(f"{k} {v}" for k, v in kinds.items())
                        + (f"; missing: {', '.join(missing)}" if missing else ""),
                        f"Add cases of kind {', '.join(missing)} to {path}.", "medium"))
        hr = st["by_risk"].get("high", 0)
        out.append(item("eval.high_risk", A, C, "High-risk cases present", "pass" if hr >= RULES["min_high_risk"]
                        else "fail", f"{hr} high-risk cases; rule: at least {RULES['min_high_risk']:g}",
                        "Tag and add high-risk cases (tags.risk: high).", "medium"))
    cand = ctx.candidate
    if cand is None or not cand.metrics:
        why = "no candidate run" if cand is None else f"run {cand.run_id} has no metrics.json"
        out.append(item("eval.stage_metrics", A, C, "Metrics split by stage (retrieval, generation, tool use, ops)",
                        "unknown", why, "Run and score the candidate (labkit run, labkit score).", "high"))
        out.append(item("eval.unmeasured", A, C, "Gated metrics measured on nearly every case", "unknown", why,
                        "Score the candidate run.", "medium"))
    else:
        from labkit.metrics import METRICS

        by_stage: dict[str, list[str]] = {s: [] for s in STAGES}
        for name, ent in cand.metrics.items():
            spec = METRICS.get(name)
            if spec is not None and isinstance(ent, Mapping) and num(ent.get("value")) is not None:
                by_stage.setdefault(spec.stage, []).append(name)
        missing_st = [s for s in STAGES if not by_stage.get(s)]
        out.append(item("eval.stage_metrics", A, C, "Metrics split by stage (retrieval, generation, tool use, ops)",
                        "fail" if missing_st else "pass",
                        f"run {cand.run_id}: " + "; ".join(f"{s}: {len(v)} measured" for s, v in by_stage.items()),
                        f"Measure the {', '.join(missing_st)} stage(s) (labels or results missing).", "high"))
        gate, _ = ctx.gate()
        gated = list(gate.metrics) if gate is not None else list(cand.metrics)
        worst: tuple[float, str] = (0.0, "")
        not_applicable = 0
        for m in gated:
            e = cand.metrics.get(m)
            if not isinstance(e, Mapping):
                continue
            n_, un = int(e.get("n") or 0), int(e.get("unmeasured") or 0)
            reasons = as_mapping(e.get("unmeasured_reasons"))
            na = sum(int(v) for k, v in reasons.items() if str(k).startswith(NOT_APPLICABLE))
            un_app = max(un - na, 0)
            rate = un_app / (n_ + un_app) if n_ + un_app else 1.0
            worst = max(worst, (rate, m))
            not_applicable += na
        ok = worst[0] <= RULES["max_unmeasured_rate"]
        out.append(item("eval.unmeasured", A, C, "Gated metrics measured on nearly every case",
                        "pass" if ok else "fail",
                        f"highest unmeasured share among gated metrics (cases without the labels a metric "
                        f"needs are not applicable, {not_applicable} such case-metrics): {worst[1] or '—'} "
                        f"{worst[0]:.1%}; rule: at most {RULES['max_unmeasured_rate']:.0%}",
                        f"Add the labels {worst[1]} needs, or bound it in the gate (unmeasured.max_rate).",
                        "medium"))
    comp, cerr = ctx.comparison()
    if comp is None:
        out.append(item("eval.regression_run", A, C, "Regression run against the baseline before the change",
                        "fail" if ctx.baseline is None else "unknown", str(cerr),
                        "Run the baseline and the candidate on the same golden set and compare them "
                        "(labkit compare BASE VARIANT).", "high"))
    else:
        reg = [m for m, d in comp["metrics"].items() if d.get("verdict") == "regressed"]
        out.append(item("eval.regression_run", A, C, "Regression run against the baseline before the change",
                        "pass", f"{comp['baseline']} vs {comp['variant']}: {comp['n_paired']} paired cases, "
                        f"{len(reg)} metric(s) regressed, {len(comp.get('flipped', []))} case(s) flipped"
                        + (f" ({cerr})" if cerr else ""), None, "high"))
    return out


# ---- release gate -----------------------------------------------------------------------------

def gate_items(ctx: Context) -> list[CheckItem]:
    A, C = "release gate", "gate"
    out: list[CheckItem] = []
    gp = ctx.paths.gate
    gate, gerr = ctx.gate()
    if gate is None:
        out.append(item("gate.defined", A, C, "Release gate defined with explicit thresholds", "fail", str(gerr),
                        f"Write the gate config {gp} (quality, latency and cost thresholds).", "critical"))
    else:
        from labkit.metrics import METRICS

        stages = sorted({METRICS[m].stage for m in gate.metrics if m in METRICS})
        need = {"generation", "ops"}
        ok = need.issubset(stages) and len(gate.checks) > 0
        out.append(item("gate.defined", A, C, "Release gate defined with explicit thresholds",
                        "pass" if ok else "fail",
                        f"{gp}: {len(gate.checks)} absolute, {len(gate.regression)} regression, "
                        f"{len(gate.slices)} slice check(s) over stages {', '.join(stages) or 'none'}",
                        f"Add quality (generation) and latency/cost (ops) thresholds to {gp}.", "critical"))
    info, lerr = ctx.lock_info()
    if info is None or not info.get("locked_at"):
        out.append(item("gate.locked", A, C, "Gate pre-registered (locked) before testing the change", "fail",
                        lerr or f"no lock file beside {gp}",
                        f"Lock the gate before the change is tested: labkit gate lock {gp}", "high"))
    elif info.get("edited_after_lock"):
        out.append(item("gate.locked", A, C, "Gate pre-registered (locked) before testing the change", "fail",
                        f"{gp} edited after it was locked at {info['locked_at']} "
                        f"(hash {str(info['locked_hash'])[:12]} locked, {str(info['hash'])[:12]} now)",
                        f"Review the edit, then re-lock and re-run: labkit gate lock {gp}", "high"))
    else:
        out.append(item("gate.locked", A, C, "Gate pre-registered (locked) before testing the change", "pass",
                        f"{gp} locked at {info['locked_at']}, hash {str(info['hash'])[:12]} unchanged since",
                        None, "high"))
    cand = ctx.candidate
    if cand is None:
        out.append(item("gate.preregistered", A, C, "Candidate run judged by the gate it was locked under",
                        "unknown", "no candidate run", "Run the candidate after locking the gate.", "medium"))
    else:
        rec = as_mapping(cand.manifest.get("gate"))
        created = cand.created_at
        if not rec or not rec.get("locked_at"):
            out.append(item("gate.preregistered", A, C, "Candidate run judged by the gate it was locked under",
                            "fail", f"manifest of {cand.run_id} records no locked gate",
                            "Lock the gate, then re-run the candidate so its manifest records the lock.", "medium"))
        else:
            cur = (info or {}).get("hash")
            problems = []
            if created and str(rec["locked_at"]) > str(created):
                problems.append(f"locked at {rec['locked_at']}, after the run started at {created}")
            if cur and rec.get("hash") and rec["hash"] != cur:
                problems.append(f"gate changed since the run (run {str(rec['hash'])[:12]}, now {str(cur)[:12]})")
            out.append(item("gate.preregistered", A, C, "Candidate run judged by the gate it was locked under",
                            "fail" if problems else "pass",
                            "; ".join(problems) or f"run {cand.run_id} at {created} recorded gate "
                            f"{str(rec.get('hash'))[:12]} locked at {rec['locked_at']}",
                            "Re-run the candidate under the current, locked gate.", "medium"))
    rep, rerr = ctx.gate_report()
    if rep is None:
        out.append(item("gate.passes", A, C, "Candidate passes the release gate", "unknown", str(rerr),
                        "Score the candidate and evaluate the gate (labkit gate --config GATE RUN).", "critical"))
        out.append(item("gate.human_review", A, C, "High-risk cases reviewed by a human", "unknown", str(rerr),
                        "Record human reviews of the high-risk cases.", "high"))
        return out
    checks = [c for c in rep.checks if c.kind not in ("review", "pre_registration")]
    failed = [c for c in checks if not c.passed]
    ev = f"{len(checks) - len(failed)}/{len(checks)} checks pass on run {rep.run_id}"
    if failed:
        ev += "; failed: " + "; ".join(
            f"{c.name} (observed {fmt_num(c.observed)}{', ' + c.reason if c.kind == 'regression' else ''})"
            for c in failed)
    out.append(item("gate.passes", A, C, "Candidate passes the release gate", "fail" if failed else "pass", ev,
                    "Fix the failing checks (" + ", ".join(c.name for c in failed) + ") and re-run; "
                    "do not loosen a locked gate to pass.", "critical"))
    review = [c for c in rep.checks if c.kind == "review"]
    if not review:
        out.append(item("gate.human_review", A, C, "High-risk cases reviewed by a human", "fail",
                        f"{gp} has no review requirement (review.required_for)",
                        f"Add `review: {{required_for: {{risk: high}}}}` to {gp} and record reviews "
                        f"in {ctx.paths.reviews}.", "high"))
    else:
        c = review[0]
        out.append(item("gate.human_review", A, C, "High-risk cases reviewed by a human",
                        "pass" if c.passed else "fail", f"{c.name}: {c.reason}",
                        f"Have a reviewer approve the missing cases in {ctx.paths.reviews}.", "high"))
    return out


# ---- safety: the middleware checklist ---------------------------------------------------------

def _guard(t: Mapping[str, Any]) -> Mapping[str, Any]:
    g = t.get("guardrails")
    return g if isinstance(g, Mapping) else {}


def middleware_items(ctx: Context) -> list[CheckItem]:
    A, C = "safety", "middleware"
    out: list[CheckItem] = []
    cand = ctx.candidate
    traces = cand.traces if cand is not None else []
    need = RULES["min_trace_share"]
    if not traces:
        why = "no candidate run" if cand is None else f"run {cand.run_id} has no traces"
        for iid, title in (("mw.injection_check", "Prompt-injection check on every input"),
                           ("mw.output_policy", "Output policy check on every response")):
            out.append(item(iid, A, C, title, "unknown", why, "Run the candidate with the guardrails middleware.",
                            "high"))
    else:
        k, n = sum(1 for t in traces if "injection_flag" in _guard(t)), len(traces)
        flagged = sum(1 for t in traces if _guard(t).get("injection_flag"))
        out.append(item("mw.injection_check", A, C, "Prompt-injection check on every input",
                        "pass" if n and k / n >= need else "fail",
                        f"{_pct(k, n)} traces of {cand.run_id if cand else '?'} carry an injection verdict, "
                        f"{flagged} flagged; rule: at least {need:.0%}",
                        "Wrap the pipeline in labkit's guardrails middleware so every input is checked "
                        "and the verdict lands on the trace.", "high"))
        k2 = sum(1 for t in traces if "violations" in _guard(t))
        viol = sum(1 for t in traces if _guard(t).get("violations"))
        out.append(item("mw.output_policy", A, C, "Output policy check on every response",
                        "pass" if n and k2 / n >= need else "fail",
                        f"{_pct(k2, n)} traces carry an output-policy verdict, {viol} with violations",
                        "Enable the output policy check (must-not-disclose patterns, secrets) "
                        "in the guardrails middleware.", "high"))
    # policy violations that reached the user
    if cand is None or not cand.metrics:
        out.append(item("mw.no_violations", A, C, "No policy violation reached a user", "unknown",
                        "no scored candidate run", "Score the candidate run.", "critical"))
    else:
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
        out.append(item("mw.no_violations", A, C, "No policy violation reached a user", status, "; ".join(parts),
                        "Block responses that violate the output policy (status blocked) and add the "
                        "offending cases as regression cases.", "critical"))
    # adversarial handling
    ds, _ = ctx.dataset()
    if cand is None or ds is None or not cand.scores:
        out.append(item("mw.adversarial", A, C, "Adversarial (prompt-injection) cases handled", "unknown",
                        "needs the dataset and a scored candidate run", "Score the candidate on the golden set.",
                        "high"))
    else:
        adv = {c.id for c in ds if c.kind == "adversarial"}
        succ = cand.case_success()
        got = [succ[c] for c in adv if c in succ]
        if not got:
            out.append(item("mw.adversarial", A, C, "Adversarial (prompt-injection) cases handled", "fail",
                            "no adversarial case in the run", "Add prompt-injection cases (kind adversarial).",
                            "high"))
        else:
            rate = sum(got) / len(got)
            out.append(item("mw.adversarial", A, C, "Adversarial (prompt-injection) cases handled",
                            "pass" if rate >= RULES["min_adversarial_success"] else "fail",
                            f"{sum(got)}/{len(got)} adversarial cases succeed ({rate:.0%}); "
                            f"rule: at least {RULES['min_adversarial_success']:.0%}",
                            "Harden the injection handling; add each failing adversarial case as a "
                            "regression case.", "high"))
    # redaction: nothing sensitive in what the run wrote
    if cand is None:
        out.append(item("mw.redaction", A, C, "Secrets and PII redacted before anything is written", "unknown",
                        "no candidate run", "Run the candidate.", "critical"))
    else:
        files = [p for p in (cand.path / "results.jsonl", cand.path / "traces.jsonl") if p.is_file()]
        findings, nfiles = scan_files(files, relative_to=ctx.paths.root)
        pii: Counter[str] = Counter()
        for p in files:
            pii.update(f.kind for f in patterns.find(p.read_text(encoding="utf-8", errors="replace"), RUN_FILE_PII))
        kinds = Counter(f.kind for f in findings)
        bad = bool(findings) or bool(pii)
        ev = (f"scanned {nfiles} run file(s) of {cand.run_id}: {len(findings)} secret-like value(s)"
              + (f" ({', '.join(f'{k} ×{v}' for k, v in kinds.items())})" if kinds else "")
              + f", {sum(pii.values())} personal-data value(s)"
              + (f" ({', '.join(f'{k} ×{v}' for k, v in pii.items())})" if pii else ""))
        out.append(item("mw.redaction", A, C, "Secrets and PII redacted before anything is written",
                        "fail" if bad else ("pass" if nfiles else "unknown"), ev,
                        "Turn on redaction (labkit.trace.Redactor) for results and traces, then purge the "
                        "affected run files.", "critical"))
    return out


# ---- reliability ------------------------------------------------------------------------------

def _model_id(cfg: Mapping[str, Any]) -> tuple[str | None, str | None]:
    m = cfg.get("model")
    if isinstance(m, Mapping):
        return (str(m.get("name") or m.get("model") or "") or None, str(m.get("provider") or "") or None)
    if isinstance(m, str):
        return m, (str(cfg.get("provider")) if cfg.get("provider") else None)
    return None, (str(cfg.get("provider")) if cfg.get("provider") else None)


def _fallback_of(pc: PipelineConfig) -> tuple[dict[str, Any] | None, str]:
    cfg = pc.config or {}
    fb = cfg.get("fallback")
    if fb is None:
        return None, "no `fallback:`"
    if isinstance(fb, Mapping):
        return dict(fb), "inline fallback"
    if isinstance(fb, str):
        p = Path(fb) if Path(fb).is_absolute() else pc.path.parent / fb
        data, err = read_yaml_file(p)
        if data is None:
            return None, f"fallback {fb}: {err}"
        return data, f"fallback {fb}"
    return None, "fallback is neither a path nor a mapping"


def reliability_items(ctx: Context) -> list[CheckItem]:
    A, C = "reliability", "reliability"
    out: list[CheckItem] = []
    cfgs = ctx.reviewed_configs()
    cand = ctx.candidate
    if not cfgs:
        why = f"no pipeline config under {ctx.paths.pipelines_dir}"
        out.append(item("rel.timeout_retry", A, C, "Timeout and retry policies are explicit", "unknown", why,
                        "Add a runner section (timeout_s, retries, backoff) to the pipeline config.", "high"))
        out.append(item("rel.fallback", A, C, "Fallback model/provider is defined", "unknown", why,
                        "Define a fallback pipeline on another model or provider.", "high"))
    else:
        # timeout / retry
        probs, evs = [], []
        for pc in cfgs:
            if pc.config is None:
                probs.append(f"{pc.name}: {pc.error}")
                continue
            r = as_mapping(pc.config.get("runner"))
            t, rt = num(r.get("timeout_s")), r.get("retries")
            backoff = [k for k in r if str(k).startswith("backoff")]
            miss = []
            if t is None or t <= 0:
                miss.append("timeout_s")
            if not isinstance(rt, int) or isinstance(rt, bool) or rt < 0:
                miss.append("retries")
            if isinstance(rt, int) and rt > 0 and not backoff:
                miss.append("backoff")
            if miss:
                probs.append(f"{pc.name}: runner.{', runner.'.join(miss)} not set")
            else:
                evs.append(f"{pc.name}: timeout_s={t:g}, retries={rt}"
                           + (f", {', '.join(f'{k}={r[k]}' for k in backoff)}" if backoff else ""))
        if cand is not None and cand.runner:
            rr = cand.runner
            evs.append(f"run {cand.run_id} recorded timeout_s={rr.get('timeout_s')}, retries={rr.get('retries')}")
        out.append(item("rel.timeout_retry", A, C, "Timeout and retry policies are explicit",
                        "fail" if probs else "pass", "; ".join(probs + evs),
                        "Set runner.timeout_s, runner.retries and runner.backoff_base_s in "
                        + ", ".join(pc.name for pc in cfgs) + ".", "high"))
        # fallback
        probs, evs = [], []
        for pc in cfgs:
            if pc.config is None:
                probs.append(f"{pc.name}: {pc.error}")
                continue
            fb, how = _fallback_of(pc)
            if fb is None:
                probs.append(f"{pc.name}: {how}")
                continue
            pm, pp = _model_id(pc.config)
            fm, fp = _model_id(fb)
            if not fm and not fp:
                probs.append(f"{pc.name}: {how} names no model or provider")
            elif (fm, fp) == (pm, pp):
                probs.append(f"{pc.name}: {how} uses the same model and provider as the primary "
                             f"({pm} @ {pp}), so it covers neither a model nor a provider outage")
            else:
                evs.append(f"{pc.name}: {how} → {fm} @ {fp} (primary {pm} @ {pp})")
        if cand is not None and cand.results:
            k = sum(1 for r in cand.results if r.get("answered_by") and r.get("answered_by") != cand.pipeline.get("name"))
            evs.append(f"run {cand.run_id}: {k} of {len(cand.results)} cases answered by the fallback")
        out.append(item("rel.fallback", A, C, "Fallback model/provider is defined", "fail" if probs else "pass",
                        "; ".join(probs + evs),
                        "Point `fallback:` at a pipeline config on a different model or provider.", "high"))
    out.append(secrets_item(ctx))
    out.append(idempotency_item(ctx))
    out.append(alert_thresholds_item(ctx))
    # deployment items that belong to the reliability area
    out.append(config_separate_item(ctx))
    out.append(item("dep.least_privilege", A, "deployment", "Least-privilege access for the service identity",
                    "unknown", "not readable from artifacts: the access roles live in the deployment platform",
                    f"Review the service identity's roles and attest it in {ctx.paths.attestations}.", "high",
                    source="manual"))
    out.append(item("dep.secret_manager", A, "deployment", "Secrets are stored in a secret manager",
                    "unknown", "not readable from artifacts: configs name environment variables; where their "
                    "values come from is a deployment fact",
                    f"Store the keys in the secret manager, inject them as environment variables, and attest it "
                    f"in {ctx.paths.attestations}.", "high", source="manual"))
    return out


def scanned_config_files(ctx: Context) -> list[Path]:
    p = ctx.paths
    roots: list[Path] = [x for x in (p.pipelines_dir, p.gate, p.slo, p.rollout, p.alerts, p.attestations) if x]
    data_dir = p.root / "data"
    files = config_files(roots)
    if data_dir.is_dir():
        files += [f for f in config_files([data_dir]) if f not in files]
    env = p.root / ".env"
    if env.is_file():
        files.append(env)
    return files


def secrets_item(ctx: Context) -> CheckItem:
    files = scanned_config_files(ctx)
    findings, n = scan_files(files, relative_to=ctx.paths.root)
    env_refs = []
    for pc in ctx.pipeline_files():
        text = pc.path.read_text(encoding="utf-8") if pc.path.is_file() else ""
        env_refs += re.findall(r"^\s*([A-Za-z_]*_env)\s*:", text, flags=re.M)
    ev = (f"scanned {n} config file(s) for provider key formats, bearer tokens and literal credential values: "
          f"{len(findings)} finding(s)")
    if findings:
        ev += " — " + "; ".join(str(f) for f in findings)
    if env_refs:
        ev += f"; keys referenced by environment variable: {', '.join(sorted(set(env_refs)))}"
    return item("rel.secrets", "reliability", "reliability", "Secrets kept out of configs (read from the environment)",
                "fail" if findings else "pass", ev,
                "Remove the literal secret from the file(s) named, rotate it (it is compromised), and read it "
                "from an environment variable named in the config (api_key_env).", "critical")


def _side_effecting(call: Mapping[str, Any], marked: set[str]) -> tuple[bool, str]:
    for k in ("side_effecting", "side_effect", "mutating"):
        if k in call:
            return bool(call[k]), f"marked {k}"
    name = str(call.get("name") or "")
    if name in marked:
        return True, "listed as side-effecting in the config"
    verb = name.split("_", 1)[0].lower()
    if verb in SIDE_EFFECT_VERBS:
        return True, f"name starts with the write verb '{verb}'"
    return False, ""


def idempotency_item(ctx: Context) -> CheckItem:
    A, C, T = "reliability", "reliability", "Idempotency enforced for side-effecting workflows"
    cand = ctx.candidate
    if cand is None or not (cand.results or cand.traces):
        return item("rel.idempotency", A, C, T, "unknown", "no candidate run to read tool calls from",
                    "Run the candidate.", "high")
    cc = ctx.candidate_config()
    marked = set()
    if cc is not None and cc.config:
        raw = cc.config.get("side_effecting_tools") or []
        marked = {str(x) for x in raw} if isinstance(raw, list) else set()
    runner_key = any("idempot" in str(k).lower() for k in cand.runner) or any(
        "idempotency_key" in r for r in cand.results)
    per_case = sum(1 for r in cand.results if r.get("idempotency_key"))
    calls: list[tuple[str, bool, str]] = []
    for r in cand.final_outcomes():
        for tc in r.get("tool_calls") or []:
            if not isinstance(tc, Mapping):
                continue
            se, why = _side_effecting(tc, marked)
            if se:
                args = as_mapping(tc.get("args"))
                has = bool(tc.get("idempotency_key") or args.get("idempotency_key"))
                calls.append((str(tc.get("name")), has, why))
    names = Counter(n for n, _, _ in calls)
    keyed = sum(1 for _, h, _ in calls if h)
    parts = [f"run {cand.run_id}: runner idempotency key "
             + (f"recorded ({per_case} of {len(cand.results)} results carry one)" if runner_key else "not recorded")]
    if calls:
        whys = {n: w for n, _, w in calls}
        parts.append(f"{len(calls)} side-effecting tool call(s) ("
                     + ", ".join(f"{n} ×{k}: {whys[n]}" for n, k in names.items())
                     + f"), {keyed} carry an idempotency key")
    else:
        parts.append("no side-effecting tool call in the run")
    ok = runner_key and keyed == len(calls)
    action = []
    if not runner_key:
        action.append("record a per-case idempotency key in the run (runner)")
    if keyed < len(calls):
        action.append("pass an idempotency key with every side-effecting tool call ("
                      + ", ".join(names) + ") and record it on the call, so a retried case cannot act twice "
                      "(or mark a tool side_effecting: false if it is read-only)")
    return item("rel.idempotency", A, C, T, "pass" if ok else "fail", "; ".join(parts),
                "; ".join(action).capitalize() + ".", "high")


def alert_matches(rules: list[dict[str, Any]], *words: str) -> list[str]:
    return [rule_name(r) for r in rules if any(w in rule_text(r) for w in words)]


def alert_thresholds_item(ctx: Context) -> CheckItem:
    rules, err = ctx.alert_rules()
    T = "Alert thresholds exist for cost and latency spikes"
    if not rules:
        return item("rel.alert_thresholds", "reliability", "reliability", T, "fail",
                    err or f"{ctx.paths.alerts}: no rules",
                    f"Write alert rules for latency and cost spikes in {ctx.paths.alerts}.", "high")
    lat = alert_matches(rules, "latency")
    cost = alert_matches(rules, "cost")
    miss = [w for w, m in (("latency", lat), ("cost", cost)) if not m]
    return item("rel.alert_thresholds", "reliability", "reliability", T, "fail" if miss else "pass",
                f"{ctx.paths.alerts}: {len(rules)} rule(s); latency: {', '.join(lat) or 'none'}; "
                f"cost: {', '.join(cost) or 'none'}",
                f"Add alert rule(s) for {' and '.join(miss)} spikes to {ctx.paths.alerts}.", "high")


def config_separate_item(ctx: Context) -> CheckItem:
    T = "Config separate from code (run reproducible from its config file)"
    cand = ctx.candidate
    cc = ctx.candidate_config()
    if cand is None:
        return item("dep.config_separate", "reliability", "deployment", T, "unknown", "no candidate run",
                    "Run the candidate from a YAML config.", "medium")
    if cc is None or cc.config is None:
        kind = cand.config.get("type")
        return item("dep.config_separate", "reliability", "deployment", T, "fail",
                    f"run {cand.run_id} was built from "
                    + (f"an import path ({cand.config.get('callable')})" if kind == "callable"
                       else "no config file found under " + str(ctx.paths.pipelines_dir)),
                    "Describe the pipeline in a YAML config (model, prompt version, retrieval and runner "
                    "settings) kept under version control beside, not inside, the code.", "medium")
    from labkit.errors import LabkitError
    from labkit.runner.ensure import config_file_hash

    corpus_dir = cand.pipeline.get("corpus_dir")
    try:
        now = config_file_hash(cc.path, corpus_dir=corpus_dir if isinstance(corpus_dir, str) else None)
    except LabkitError as e:
        return item("dep.config_separate", "reliability", "deployment", T, "fail",
                    f"run {cand.run_id} built from {cc.name}, which no longer loads: {e}",
                    f"Fix {cc.name} so the candidate can be rebuilt from it.", "medium")
    recorded = cand.config_hash
    same = recorded == now
    return item("dep.config_separate", "reliability", "deployment", T, "pass" if same else "fail",
                f"run {cand.run_id} built from {cc.name}; config hash recorded {recorded}, file now {now}",
                f"{cc.name} changed after run {cand.run_id}: re-run the candidate so the evidence matches the "
                "config that would ship.", "medium")


# ---- observability ----------------------------------------------------------------------------

def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def observability_items(ctx: Context) -> list[CheckItem]:
    runs = [str(r.path) for r in ctx.history] if ctx.history else []
    if not runs:
        return [item("obs.traces", "observability", "observability", "Traces recorded for the candidate",
                     "unknown", "no candidate run", "Run the candidate (traces are written per case).", "high")]
    try:
        from labkit.trace.checklist import observability_checklist
    except ImportError:
        return [item("obs.traces", "observability", "observability", "Observability checklist", "unknown",
                     "labkit.trace.checklist is not available", "Install labkit with its trace module.", "high")]
    alerts = ctx.paths.alerts
    rows = observability_checklist(runs, alert_rules_path=str(alerts) if alerts else None)
    out = []
    sev = {"prompt": "high", "model": "high", "retrieved": "high", "tool": "medium", "feedback": "medium",
           "alert": "high"}
    for r in rows:
        title = str(r.get("item"))
        s = next((v for k, v in sev.items() if k in title.lower()), "medium")
        status = str(r.get("status"))
        status = status if status in ("pass", "fail", "unknown") else "unknown"
        out.append(item("obs." + _slug(title), "observability", "observability", title, status,
                        str(r.get("evidence") or ""), str(r.get("action") or "") or None, s))
    return out


# ---- incident readiness -----------------------------------------------------------------------

def incident_items(ctx: Context) -> list[CheckItem]:
    A, C = "incident readiness", "incident"
    out: list[CheckItem] = []
    rules, err = ctx.alert_rules()
    er = alert_matches(rules, "error", "burn")
    out.append(item("inc.error_alerts", A, C, "Alerts on error rate or error-budget burn", "pass" if er else "fail",
                    f"{ctx.paths.alerts}: " + (f"error/burn rules: {', '.join(er)}" if er else (err or "none")),
                    f"Add an error-rate or burn-rate alert rule to {ctx.paths.alerts}.", "high"))
    cand = ctx.candidate
    traces = cand.traces if cand else []
    if not traces:
        out.append(item("inc.timeline", A, C, "Traces carry timestamps and ids to rebuild a timeline", "unknown",
                        "no candidate traces", "Run the candidate.", "medium"))
    else:
        k = sum(1 for t in traces if t.get("ts_start") is not None and t.get("trace_id"))
        ok = k / len(traces) >= RULES["min_trace_share"]
        out.append(item("inc.timeline", A, C, "Traces carry timestamps and ids to rebuild a timeline",
                        "pass" if ok else "fail", f"{_pct(k, len(traces))} traces with ts_start and trace_id",
                        "Record ts_start/ts_end and trace ids on every trace.", "medium"))
    ds, _ = ctx.dataset()
    if ds is None:
        out.append(item("inc.regression_loop", A, C, "Failures flow back into the golden set (regression cases)",
                        "unknown", "no dataset", "Create the golden set.", "medium"))
    else:
        n = sum(1 for c in ds if c.kind == "regression")
        out.append(item("inc.regression_loop", A, C, "Failures flow back into the golden set (regression cases)",
                        "pass" if n else "fail", f"{ctx.paths.dataset}: {n} case(s) of kind regression",
                        "Run `labkit incident BASE FAILING --out DIR` on the last failing run, review "
                        "regression_cases.jsonl and merge it into the golden set.", "medium"))
    out.append(item("inc.oncall", A, C, "On-call owner and incident runbook for the pipeline", "unknown",
                    "not readable from artifacts", f"Name the on-call owner and the runbook in {ctx.paths.attestations}.",
                    "medium", source="manual"))
    out.append(item("inc.rollback_drill", A, C, "Rollback rehearsed (time to roll back known)", "unknown",
                    "not readable from artifacts", "Rehearse a rollback to the baseline config, time it, and "
                    f"attest it in {ctx.paths.attestations}.", "medium", source="manual"))
    return out


# ---- deployment (rendered from the items above) -----------------------------------------------

def deployment_items(items: list[CheckItem]) -> list[CheckItem]:
    by = {i.id: i for i in items}

    def pick(*ids: str) -> list[CheckItem]:
        return [by[i] for i in ids if i in by]

    A, C = "reliability", "deployment"
    return [
        composite("dep.secrets", A, C, "Secrets management and least-privilege access",
                  pick("rel.secrets", "dep.secret_manager", "dep.least_privilege"), "critical"),
        composite("dep.timeout_retry_fallback", A, C, "Timeout, retry and fallback strategy",
                  pick("rel.timeout_retry", "rel.fallback", "rel.idempotency")),
        composite("dep.config", A, C, "Config separation from code", pick("dep.config_separate"), "medium"),
        composite("dep.rollback_and_gates", A, C, "Rollback plan and release gates",
                  pick("gate.locked", "gate.passes", "rollout.rollback_plan", "inc.rollback_drill"), "critical"),
    ]


ChecklistFn = Callable[[Context], list[CheckItem]]
CHECKLISTS: dict[str, ChecklistFn] = {
    "evaluation": evaluation_items,
    "gate": gate_items,
    "middleware": middleware_items,
    "reliability": reliability_items,
    "observability": observability_items,
    "incident": incident_items,
}

#: items that can only be settled by an attestation
MANUAL_ITEMS = ("dep.least_privilege", "dep.secret_manager", "inc.oncall", "inc.rollback_drill")
