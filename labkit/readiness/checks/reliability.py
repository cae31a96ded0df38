"""Reliability — the baseline reliability checklist, ``rel.*``: timeouts and retries, a real
fallback, secrets out of configs, idempotent side effects, alert thresholds."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.readiness.checks.common import alert_matches
from labkit.readiness.context import Context, PipelineConfig, read_yaml_file
from labkit.readiness.items import ItemResult, checklist_item
from labkit.readiness.model import as_mapping
from labkit.readiness.runview import num
from labkit.readiness.secrets import config_files, scan_files

AREA, CHECKLIST = "reliability", "reliability"
SIDE_EFFECT_VERBS = ("create", "update", "delete", "remove", "send", "escalate", "refund", "cancel",
                     "transfer", "reset", "issue", "close", "charge", "post", "write", "submit", "book")


def _no_configs(ctx: Context) -> str:
    return f"no pipeline config under {ctx.paths.pipelines_dir}"


def _runner_policy(pc: PipelineConfig) -> tuple[str | None, str | None]:
    """(problem, evidence) of one config's runner section: timeout, retries, backoff when retrying."""
    assert pc.config is not None
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
        return f"{pc.name}: runner.{', runner.'.join(miss)} not set", None
    assert t is not None
    return None, (f"{pc.name}: timeout_s={t:g}, retries={rt}"
                  + (f", {', '.join(f'{k}={r[k]}' for k in backoff)}" if backoff else ""))


@checklist_item(id="rel.timeout_retry", title="Timeout and retry policies are explicit", severity="high",
                area=AREA, checklist=CHECKLIST)
def timeout_retry(ctx: Context) -> ItemResult:
    cfgs = ctx.reviewed_configs()
    if not cfgs:
        return ItemResult("unknown", _no_configs(ctx),
                          "Add a runner section (timeout_s, retries, backoff) to the pipeline config.")
    probs, evs = [], []
    for pc in cfgs:
        prob, ev = (f"{pc.name}: {pc.error}", None) if pc.config is None else _runner_policy(pc)
        probs += [prob] if prob else []
        evs += [ev] if ev else []
    cand = ctx.candidate
    if cand is not None and cand.runner:
        rr = cand.runner
        evs.append(f"run {cand.run_id} recorded timeout_s={rr.get('timeout_s')}, retries={rr.get('retries')}")
    return ItemResult("fail" if probs else "pass", "; ".join(probs + evs),
                      "Set runner.timeout_s, runner.retries and runner.backoff_base_s in "
                      + ", ".join(pc.name for pc in cfgs) + ".")


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


def _fallback_check(pc: PipelineConfig) -> tuple[str | None, str | None]:
    """(problem, evidence) of one config's fallback: it must name another model or provider."""
    if pc.config is None:
        return f"{pc.name}: {pc.error}", None
    fb, how = _fallback_of(pc)
    if fb is None:
        return f"{pc.name}: {how}", None
    pm, pp = _model_id(pc.config)
    fm, fp = _model_id(fb)
    if not fm and not fp:
        return f"{pc.name}: {how} names no model or provider", None
    if (fm, fp) == (pm, pp):
        return (f"{pc.name}: {how} uses the same model and provider as the primary "
                f"({pm} @ {pp}), so it covers neither a model nor a provider outage"), None
    return None, f"{pc.name}: {how} → {fm} @ {fp} (primary {pm} @ {pp})"


@checklist_item(id="rel.fallback", title="Fallback model/provider is defined", severity="high", area=AREA,
                checklist=CHECKLIST)
def fallback(ctx: Context) -> ItemResult:
    cfgs = ctx.reviewed_configs()
    if not cfgs:
        return ItemResult("unknown", _no_configs(ctx), "Define a fallback pipeline on another model or provider.")
    probs, evs = [], []
    for pc in cfgs:
        prob, ev = _fallback_check(pc)
        probs += [prob] if prob else []
        evs += [ev] if ev else []
    cand = ctx.candidate
    if cand is not None and cand.results:
        k = sum(1 for r in cand.results if r.get("answered_by") and r.get("answered_by") != cand.pipeline.get("name"))
        evs.append(f"run {cand.run_id}: {k} of {len(cand.results)} cases answered by the fallback")
    return ItemResult("fail" if probs else "pass", "; ".join(probs + evs),
                      "Point `fallback:` at a pipeline config on a different model or provider.")


def scanned_config_files(ctx: Context) -> list[Path]:
    """The config files the secrets scan reads: every evidence file, data/ and a root .env."""
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


@checklist_item(id="rel.secrets", title="Secrets kept out of configs (read from the environment)",
                severity="critical", area=AREA, checklist=CHECKLIST)
def secrets(ctx: Context) -> ItemResult:
    findings, n = scan_files(scanned_config_files(ctx), relative_to=ctx.paths.root)
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
    return ItemResult("fail" if findings else "pass", ev,
                      "Remove the literal secret from the file(s) named, rotate it (it is compromised), and read it "
                      "from an environment variable named in the config (api_key_env).")


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


def _marked_side_effecting(ctx: Context) -> set[str]:
    cc = ctx.candidate_config()
    if cc is None or not cc.config:
        return set()
    raw = cc.config.get("side_effecting_tools") or []
    return {str(x) for x in raw} if isinstance(raw, list) else set()


def _side_effecting_calls(outcomes: list[dict[str, Any]], marked: set[str]) -> list[tuple[str, bool, str]]:
    """(tool name, carries an idempotency key, why it is side-effecting) for each side-effecting call."""
    calls: list[tuple[str, bool, str]] = []
    for r in outcomes:
        for tc in r.get("tool_calls") or []:
            if not isinstance(tc, Mapping):
                continue
            se, why = _side_effecting(tc, marked)
            if se:
                args = as_mapping(tc.get("args"))
                has = bool(tc.get("idempotency_key") or args.get("idempotency_key"))
                calls.append((str(tc.get("name")), has, why))
    return calls


@checklist_item(id="rel.idempotency", title="Idempotency enforced for side-effecting workflows", severity="high",
                area=AREA, checklist=CHECKLIST)
def idempotency(ctx: Context) -> ItemResult:
    cand = ctx.candidate
    if cand is None or not (cand.results or cand.traces):
        return ItemResult("unknown", "no candidate run to read tool calls from", "Run the candidate.")
    runner_key = any("idempot" in str(k).lower() for k in cand.runner) or any(
        "idempotency_key" in r for r in cand.results)
    per_case = sum(1 for r in cand.results if r.get("idempotency_key"))
    calls = _side_effecting_calls(cand.final_outcomes(), _marked_side_effecting(ctx))
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
    action = []
    if not runner_key:
        action.append("record a per-case idempotency key in the run (runner)")
    if keyed < len(calls):
        action.append("pass an idempotency key with every side-effecting tool call ("
                      + ", ".join(names) + ") and record it on the call, so a retried case cannot act twice "
                      "(or mark a tool side_effecting: false if it is read-only)")
    return ItemResult("pass" if runner_key and keyed == len(calls) else "fail", "; ".join(parts),
                      "; ".join(action).capitalize() + ".")


@checklist_item(id="rel.alert_thresholds", title="Alert thresholds exist for cost and latency spikes",
                severity="high", area=AREA, checklist=CHECKLIST)
def alert_thresholds(ctx: Context) -> ItemResult:
    rules, err = ctx.alert_rules()
    if not rules:
        return ItemResult("fail", err or f"{ctx.paths.alerts}: no rules",
                          f"Write alert rules for latency and cost spikes in {ctx.paths.alerts}.")
    lat = alert_matches(rules, "latency")
    cost = alert_matches(rules, "cost")
    miss = [w for w, m in (("latency", lat), ("cost", cost)) if not m]
    return ItemResult("fail" if miss else "pass",
                      f"{ctx.paths.alerts}: {len(rules)} rule(s); latency: {', '.join(lat) or 'none'}; "
                      f"cost: {', '.join(cost) or 'none'}",
                      f"Add alert rule(s) for {' and '.join(miss)} spikes to {ctx.paths.alerts}.")
