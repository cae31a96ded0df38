"""The course module's observability checklist, measured from traces and alert config.

Each item is evaluated from data, never ticked by hand:

==============================  ===============================================
item                            measured as
==============================  ===============================================
Prompt version logged           share of traces with a prompt_version
Model version logged            share of traces with a model
Retrieved context logged        share of answered traces naming >= 1 retrieved
                                chunk (text share reported as evidence)
Tool inputs/outputs logged      share of tool calls with args and with output
User feedback captured          feedback lines joined to traces
Alerting for latency/cost       rules file loads, has ≥1 latency and ≥1 cost
spikes                          rule; events fired over the traces reported
==============================  ===============================================

A share passes at :data:`PASS_SHARE` or above. ``unknown`` means there is
no evidence either way (no traces; no tool calls to judge).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.errors import DatasetError, LabkitError

PASS_SHARE = 0.99

#: the items, by the name each row carries under ``item`` (stable: readers key on it)
PROMPT_VERSION = "Prompt version logged"
MODEL_VERSION = "Model version logged"
RETRIEVED_CONTEXT = "Retrieved context logged"
TOOL_IO = "Tool inputs/outputs logged"
USER_FEEDBACK = "User feedback captured"
ALERTING = "Alerting for latency/cost spikes"
ITEMS = (PROMPT_VERSION, MODEL_VERSION, RETRIEVED_CONTEXT, TOOL_IO, USER_FEEDBACK, ALERTING)


def _item(item: str, status: str, evidence: str, action: str, **measures: Any) -> dict[str, Any]:
    return {"item": item, "status": status, "evidence": evidence, "action": action if status != "pass" else "",
            **measures}


def _share_item(item: str, *, n_with: int, n: int, what: str, action: str, of: str = "traces") -> dict[str, Any]:
    if n == 0:
        return _item(item, "unknown", f"no {of} found", "run the pipeline and write traces", share=None, n=0)
    share = n_with / n
    status = "pass" if share >= PASS_SHARE else "fail"
    return _item(item, status, f"{n_with}/{n} {of} ({share:.0%}) carry {what}", action, share=round(share, 4), n=n)


#: A trace of an answer (not an error, a timeout or a blocked input, which retrieve nothing to log).
_ANSWERED = "(status IS NULL OR status NOT IN ('error', 'timeout', 'blocked'))"


def observability_checklist(
    run_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    alert_rules_path: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """The six checklist items: ``{item, status: pass|fail|unknown, evidence, action, ...}``.

    ``run_dirs``: run directories (or a comma-separated string). Extra keys per
    item: ``share`` and ``n`` for the measured shares, ``rules`` and
    ``alerts_fired`` for alerting.
    """
    from labkit.trace.store import open_store

    if isinstance(run_dirs, str | os.PathLike) and not (isinstance(run_dirs, str) and "," in run_dirs):
        run_dirs = [run_dirs]
    with open_store(run_dirs if isinstance(run_dirs, str) else list(run_dirs)) as st:
        counts = st.query(
            f"""SELECT count(*) AS n,
                      count(prompt_version) AS with_prompt,
                      count(model) AS with_model,
                      count(*) FILTER (WHERE {_ANSWERED}) AS answered,
                      count(*) FILTER (WHERE {_ANSWERED} AND n_retrieved > 0) AS with_chunks,
                      count(*) FILTER (WHERE {_ANSWERED} AND json_array_length(retrieved) > 0 AND
                          json_extract(retrieved, '$[0].text') IS NOT NULL) AS with_text,
                      count(*) FILTER (WHERE feedback_n > 0) AS with_feedback
               FROM traces"""
        ).iloc[0]
        tools = st.query(
            """SELECT count(*) AS calls,
                      count(*) FILTER (WHERE json_exists(tc, '$.args')) AS with_args,
                      count(*) FILTER (WHERE json_exists(tc, '$.output')) AS with_output
               FROM (SELECT unnest(CAST(tool_calls AS JSON[])) AS tc FROM traces_raw)"""
        ).iloc[0]
        n_feedback = int(st.query("SELECT count(*) AS n FROM feedback").iloc[0]["n"])
        bad_feedback = [f"{path}: {p}" for path, problems in st.feedback_problems for p in problems]
        frame = st.query("SELECT ts_start, ts_end, latency_ms, cost_usd, status, from_cache, "
                         "model, prompt_version, pipeline, run_dir FROM traces") if alert_rules_path else None

    n = int(counts["n"])
    out = [
        _share_item(PROMPT_VERSION, n_with=int(counts["with_prompt"]), n=n, what="a prompt_version",
                    action="set prompt_version in the pipeline config so every trace records it"),
        _share_item(MODEL_VERSION, n_with=int(counts["with_model"]), n=n, what="a model",
                    action="set model.name (with its version or snapshot) in the pipeline config"),
    ]
    # an empty list names no chunk: a pipeline that logs no retrieval writes one on every trace
    ctx = _share_item(RETRIEVED_CONTEXT, n_with=int(counts["with_chunks"]), n=int(counts["answered"]),
                      what="the ids of the chunks retrieved", of="answered traces",
                      action="record the retrieved chunks (ids, scores, text) on each trace")
    if counts["answered"]:
        ctx["evidence"] += f"; {int(counts['with_text'])} with chunk text"
    out.append(ctx)

    calls = int(tools["calls"])
    if calls == 0:
        out.append(_item(TOOL_IO, "unknown",
                         f"no tool calls in {n} traces: nothing to judge",
                         "run cases that exercise tools (expected_tools) to measure this", share=None, n=0))
    else:
        wa, wo = int(tools["with_args"]), int(tools["with_output"])
        share = min(wa, wo) / calls
        out.append(_item(TOOL_IO, "pass" if share >= PASS_SHARE else "fail",
                         f"{calls} tool calls: {wa} with args ({wa / calls:.0%}), {wo} with output ({wo / calls:.0%})",
                         "record each tool call's args and output (redacted) in tool_calls",
                         share=round(share, 4), n=calls))

    if n == 0:
        out.append(_item(USER_FEEDBACK, "unknown", "no traces found",
                         "record feedback with labkit feedback TRACE_ID --run RUN_DIR --rating N", share=None, n=0))
    else:
        wf = int(counts["with_feedback"])
        n_bad = sum(len({p.line for p in problems}) for _, problems in st.feedback_problems)
        bad = (f"; {n_bad} feedback line(s) not valid, not counted ({'; '.join(bad_feedback[:3])}"
               f"{' …' if len(bad_feedback) > 3 else ''})") if bad_feedback else ""
        out.append(_item(USER_FEEDBACK, "pass" if n_feedback > 0 else "fail",
                         f"{n_feedback} feedback records on {wf}/{n} traces ({wf / n:.0%}){bad}",
                         "capture user ratings: labkit feedback TRACE_ID --run RUN_DIR --rating N",
                         share=round(wf / n, 4), n=n))

    out.append(_alerting_item(alert_rules_path, frame))
    return out


def _alerting_item(path: str | os.PathLike[str] | None, frame: Any) -> dict[str, Any]:
    item = ALERTING
    action = "add latency and cost spike rules (see data/alerts.yaml) and evaluate them with labkit alerts"
    if path is None:
        return _item(item, "fail", "no alert rules file given", action, rules=0, alerts_fired=None)
    from labkit.trace.alerts import evaluate_alerts, load_rules, rules_summary

    if not Path(path).exists():
        return _item(item, "fail", f"{path}: alert rules file not found", action, rules=0, alerts_fired=None)
    try:
        rules = load_rules(path)
    except LabkitError as e:
        return _item(item, "fail", f"alert rules do not load: {e}", "fix the rules file", rules=0, alerts_fired=None)
    kinds = rules_summary(rules)
    has_latency = bool(kinds["latency"]) or any(r.kind == "burn_rate" and r.bad == "latency" for r in rules)
    has_cost = bool(kinds["cost"])
    fired: int | None = None
    try:
        fired = len(evaluate_alerts(rules, frame)) if frame is not None and len(frame) else 0
        events = f"{fired} alert events over the traces"
    except DatasetError as e:  # a trace with no place in time: no count over windows that leave it out
        events = f"alert events not evaluated: {e}"
    ev = (f"{len(rules)} rules in {path}: latency {kinds['latency'] or '-'}, cost {kinds['cost'] or '-'}, "
          f"error_rate {kinds['error_rate'] or '-'}, burn_rate {kinds['burn_rate'] or '-'}; {events}")
    missing = [w for w, ok in (("latency", has_latency), ("cost", has_cost)) if not ok]
    status = "pass" if not missing else "fail"
    act = f"add a {' and a '.join(missing)} rule" if missing else ""
    return _item(item, status, ev, act or action, rules=len(rules), alerts_fired=fired)
