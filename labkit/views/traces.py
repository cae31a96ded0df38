"""Notebook views of traces: each function is one cell's call and returns something that
displays itself (a :class:`~labkit.views.elements.Chart`, an HTML fragment or a DataFrame styler).

matplotlib and pandas are imported inside the functions.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.display import (
    FAIL_COLOUR,
    INK,
    STATUS_COLOURS,
    Html,
    Verdict,
    colour_for,
    fmt_value,
    is_nan,
)
from labkit.trace.store import TraceStore
from labkit.views.elements import (
    NOWRAP,
    Chart,
    callout,
    chart_style,
    id_html,
    kind_classes,
    new_figure,
    styler,
    unbreakable,
    with_caption,
)

#: Colour of an observability checklist status.
CHECK_COLOURS = {"pass": STATUS_COLOURS["pass"], "fail": STATUS_COLOURS["fail"], "unknown": STATUS_COLOURS["warn"]}


def ensure_runs(
    run_dirs: str,
    dataset: str | os.PathLike[str],
    configs: Sequence[str | os.PathLike[str]],
    runs_dir: str | os.PathLike[str],
) -> list[Path]:
    """The run directories to explore.

    ``run_dirs`` (comma-separated) when given; otherwise ``<runs_dir>/<config name>``
    for each pipeline config, reused when current and made again otherwise
    (:func:`labkit.runner.ensure_run`).
    """
    from labkit.errors import ConfigError

    given = [Path(s.strip()) for s in run_dirs.split(",") if s.strip()]
    if given:
        missing = [str(p) for p in given if not p.is_dir()]
        if missing:
            raise ConfigError(f"run directory not found: {', '.join(missing)}", field="run_dirs")
        return given
    from labkit.runner import ensure_run

    return [ensure_run(dataset, cfg, Path(runs_dir) / Path(cfg).stem).path for cfg in configs]


#: columns of the trace tables that count things
COUNT_COLUMNS = frozenset({"traces", "cases", "failures", "feedback", "n_retrieved", "n_tool_calls", "n_traces",
                           "evaluations"})
#: the unit an alert's value, threshold and baseline are in, by rule kind
ALERT_KINDS = {"latency": "latency_ms", "cost": "cost_usd", "error_rate": "share", "burn_rate": "burn_rate"}


def column_format(col: str) -> tuple[Any, str] | None:
    """(formatter, number kind) of a trace-table column by its name, or None for text."""
    if col in COUNT_COLUMNS:
        return (lambda v: f"{int(v):,}"), "count"
    if col.endswith("_ms"):
        return (lambda v: fmt_value("latency_ms", v)), "ms"
    if "cost" in col or col.endswith("_usd"):
        return (lambda v: f"${v:,.5f}" if abs(v) < 0.01 else fmt_value("cost_usd", v)), "usd"
    if "tokens" in col:
        return (lambda v: f"{v:,.0f} tokens"), "tokens"
    if col in ("share", "error_rate"):
        return (lambda v: f"{v:.1%}"), "pct"
    if col == "burn_rate":
        return (lambda v: f"{v:.2f}×"), "ratio"
    if col in ("faithfulness", "score"):
        return (lambda v: f"{v:.2f} (0–1)"), "score"
    if col in ("fired_at", "last_at", "ts_start", "ts_end"):
        return (lambda v: str(v).replace("T", " ").replace("+00:00", " UTC")), "time"
    return None


def _or_dash(f: Any) -> Any:
    """``f`` for a value, '—' for a missing one."""
    return lambda v: "—" if v is None or is_nan(v) else unbreakable(f(v))


def _table(df: Any, caption: str = "", units: Mapping[str, Sequence[str]] | None = None) -> Any:
    """A trace table in the views' look: each number with its unit (by column name, or by
    ``units``: column → a column name of :func:`column_format` per row), ids cut with the full id
    on hover, a comma list of ids likewise."""
    kinds: dict[str, Any] = {}
    fmts: dict[str, Any] = {}
    for col in df.columns:
        spec = column_format(str(col))
        if spec is not None:
            fmts[col], kinds[col] = spec
    sty = styler(df, kinds)
    short = [c for c in df.columns if c not in kinds and df[c].astype(str).str.len().max() <= 24]
    if short:
        sty = sty.map(lambda _: NOWRAP, subset=short)
    for col, f in fmts.items():
        sty = sty.format(_or_dash(f), subset=[col], escape="html")
    for col, per_row in (units or {}).items():
        specs = [column_format(u) or column_format("score") for u in per_row]
        kinds[col] = [sp[1] for sp in specs if sp is not None]
        for i, sp in enumerate(specs):
            if sp is not None:
                sty = sty.format(_or_dash(sp[0]), subset=([df.index[i]], [col]), escape="html")
    if units:
        sty = sty.set_td_classes(kind_classes(df, kinds))
    ids = [c for c in df.columns if str(c).startswith("example_") and str(c).endswith("_ids")]
    for col in ids:
        sty = sty.format(lambda v: " ".join(id_html(x.strip(), 12) for x in str(v).split(",") if x.strip()),
                         subset=[col], escape=None)
    return with_caption(sty, caption) if caption else sty


def _truncate(obj: Any, limit: int) -> Any:
    if isinstance(obj, str):
        return obj if len(obj) <= limit else obj[:limit] + f"… ({len(obj)} chars)"
    if isinstance(obj, list):
        return [_truncate(x, limit) for x in obj]
    if isinstance(obj, dict):
        return {k: _truncate(v, limit) for k, v in obj.items()}
    return obj


def log_sample(store: TraceStore, n: int = 1, text_limit: int = 160) -> Any:
    """A structured log sample: the first ``n`` trace records as stored (long text cut)."""
    recs = [_truncate(r, text_limit) for r in store.sample(n)]
    text = json.dumps(recs if n > 1 else recs[0] if recs else {}, indent=2, ensure_ascii=False, default=str)
    return Html(
        '<details open><summary>trace record (traces.jsonl, redacted before write)</summary>'
        f'<pre style="max-height:520px;overflow:auto;font-size:.82rem">{html.escape(text)}</pre>'
        f'{_kept_numbers_note(text)}</details>'
    )


def _kept_numbers_note(text: str) -> str:
    """Say which card-shaped numbers were kept: a number failing the card checksum is not a card."""
    from labkit.patterns import patterns_of

    kept = [m.group(0).strip() for p in patterns_of(["CARD"]) for m in p.regex.finditer(text) if not p.valid(m)]
    if not kept:
        return ""
    shown = ", ".join(f"<code>{html.escape(k)}</code>" for k in dict.fromkeys(kept))
    return (f'<p style="font-size:.88rem">Kept as written, not redacted: {shown}. A number is a card only if '
            "it passes the card checksum (Luhn); these fail it, so they are not card numbers. A real "
            "card number always passes and is masked as <code>[CARD]</code>.</p>")


def summary_table(store: TraceStore) -> Any:
    """Traces per run; the caption names the trace lines that are no valid trace and what the counts
    do with them (the warning ``labkit traces`` prints: :meth:`TraceStore.skipped_warning`), redacted."""
    from labkit.trace.redact import Redactor

    warning = store.skipped_warning()
    note = f" {Redactor().redact_text(warning)[0].replace('warning: ', 'Not counted as written: ', 1)}" if warning else ""
    return _table(store.summary(), f"Traces per run: error rate, latency percentiles, cost, feedback.{note}")


def failures_table(store: TraceStore, faithfulness_threshold: float = 0.85) -> Any:
    return _table(store.failures_by_stage(faithfulness_threshold),
                  "Failed traces by their first failing stage (guardrail, timeout, error, retrieval, tool, "
                  "generation).")


def failures_chart(store: TraceStore, faithfulness_threshold: float = 0.85) -> Any:
    df = store.failures_by_stage(faithfulness_threshold)
    with chart_style():
        fig = new_figure(7.5, 3.2)
        ax = fig.add_subplot(1, 1, 1)
        if df.empty:
            ax.text(0.5, 0.5, "no failures", ha="center", va="center")
        else:
            piv = df.pivot_table(index="run_dir", columns="stage", values="share", fill_value=0.0)
            left = None
            for i, stage in enumerate(piv.columns):
                vals = piv[stage].to_numpy()
                ax.barh(piv.index, vals, left=left, label=stage, color=colour_for(stage, i))
                left = vals if left is None else left + vals
            ax.set_xlabel("share of the run's traces")
            ax.legend(loc="lower right", fontsize=8, ncol=3)
        ax.set_title("Failures by stage", loc="left")
    return Chart.from_figure(fig, "Share of each run's traces failing, by the first stage that failed.",
                                 alt="failures by stage per run")


def slowest_table(store: TraceStore, n: int = 10) -> Any:
    return _table(store.slowest(n), f"The {n} slowest traces (cache hits excluded).")


def cost_table(store: TraceStore) -> Any:
    return _table(store.cost_by_model(), "Cost, tokens and p95 latency by model and prompt version.")


def cost_chart(store: TraceStore) -> Any:
    df = store.cost_by_model()
    with chart_style():
        fig = new_figure(7.5, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        labels = [f"{m}\n{p}" for m, p in zip(df["model"], df["prompt_version"], strict=False)]
        ax.bar(labels, df["mean_cost_usd"], color=[colour_for(lbl, i) for i, lbl in enumerate(labels)])
        ax.set_ylabel("mean cost per trace (USD)")
        ax.set_title("Cost by model and prompt version", loc="left")
    return Chart.from_figure(fig, "Mean cost per trace for each model and prompt version.",
                                 alt="mean cost per trace by model and prompt version")


def latency_chart(store: TraceStore) -> Any:
    df = store.query("SELECT prompt_version, latency_ms FROM traces WHERE latency_ms IS NOT NULL "
                     "AND NOT coalesce(from_cache, false) ORDER BY prompt_version")
    with chart_style():
        fig = new_figure(7.5, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        groups = [(str(k), g["latency_ms"].to_numpy()) for k, g in df.groupby("prompt_version", dropna=False)]
        if groups:
            ax.boxplot([g for _, g in groups], vert=False, whis=(5, 95), showfliers=True, patch_artist=True,
                       boxprops={"facecolor": colour_for("baseline"), "alpha": 0.6},
                       medianprops={"color": INK})
            ax.set_yticks(range(1, len(groups) + 1), [k for k, _ in groups])
            p95 = store.latency_by_prompt_version()
            for i, v in enumerate(p95["latency_ms"], start=1):
                ax.plot([v], [i], marker="|", markersize=18, color=FAIL_COLOUR)
        ax.set_xlabel("latency (ms)")
        ax.set_title("Latency by prompt version", loc="left")
    return Chart.from_figure(fig, "Latency per prompt version: box = quartiles, whiskers = p5–p95, "
                                      "red tick = p95.", alt="latency distribution by prompt version")


def trends_chart(store: TraceStore, metrics: Sequence[str] = ("faithfulness", "retrieval_hit_rate",
                                                              "must_include_coverage", "error_rate")) -> Any:
    known = {"faithfulness", "error_rate", "latency_p95_ms", "total_cost_usd", *store.metric_columns}
    wanted = [m for m in metrics if m in known]
    df = store.metric_trends(wanted)
    with chart_style():
        fig = new_figure(7.5, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        for i, (m, g) in enumerate(df.groupby("metric", sort=False)):
            ax.plot(list(g["run_dir"]), list(g["value"]), marker="o", label=str(m), color=colour_for(str(m), i))
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("mean over the run's cases")
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title("Metric trends across runs", loc="left")
    return Chart.from_figure(fig, "Per-run means of per-case metrics (scores.csv joined to traces), in run "
                                      "start order.", alt="metric trends across runs")


def checklist_table(items: Sequence[Mapping[str, Any]]) -> Any:
    import pandas as pd

    df = pd.DataFrame(items)[["item", "status", "evidence", "action"]]

    def colour(v: Any) -> str:
        return f"color: {CHECK_COLOURS.get(str(v), INK)}; font-weight: 600"

    return _table(df, "Observability checklist, measured from the traces and the alert rules.").map(
        colour, subset=["status"])


def alerts_table(events: Sequence[Mapping[str, Any]]) -> Any:
    import pandas as pd

    if not events:
        return callout("No alert fired over these traces.", kind="pass")
    cols = ["rule", "kind", "severity", "window", "fired_at", "evaluations", "value", "threshold", "baseline",
            "n_traces"]
    df = pd.DataFrame(list(events))
    df = df[[c for c in cols if c in df]].reset_index(drop=True)
    per_row = [ALERT_KINDS.get(str(k), "score") for k in df.get("kind", [])]
    units = {c: per_row for c in ("value", "threshold", "baseline") if c in df}
    return _table(df, "Alert events and the numbers that fired them, each in its rule's unit.", units)


def guardrail_table(dataset: str | os.PathLike[str], policy: Mapping[str, Any] | None = None,
                    kinds: Sequence[str] = ("adversarial", "out_of_scope")) -> Any:
    """The input check of the guardrails middleware on the dataset's adversarial questions."""
    import pandas as pd

    from labkit.cases import load_cases
    from labkit.trace.guardrails import GuardrailPolicy

    pol = GuardrailPolicy.from_config(policy)
    rows = []
    for c in load_cases(dataset):
        if kinds and c.kind not in kinds:
            continue
        flags = pol.check_input(c.question)
        rows.append({"case_id": c.id, "kind": c.kind, "question": _truncate(c.question, 110),
                     "injection_flags": ", ".join(flags) or "—",
                     "verdict": "block" if flags and pol.block_on_injection else "pass"})
    df = pd.DataFrame(rows, columns=["case_id", "kind", "question", "injection_flags", "verdict"])
    return _table(df, "Guardrails input check on the dataset's adversarial and out-of-scope questions.")


def observability_verdict(items: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]] = ()) -> Any:
    """The notebook's verdict: PASS when every checklist item passes and no page-severity
    alert fired; FAIL when an item fails; WARN otherwise (unknown items, ticket alerts)."""
    failed = [str(i["item"]) for i in items if i.get("status") == "fail"]
    unknown = [str(i["item"]) for i in items if i.get("status") == "unknown"]
    pages = [str(e["rule"]) for e in events if str(e.get("severity")) == "page"]
    others = [str(e["rule"]) for e in events if str(e.get("severity")) != "page"]
    parts = []
    if failed:
        parts.append("failing: " + ", ".join(failed))
    if unknown:
        parts.append("not measurable: " + ", ".join(unknown))
    if events:
        parts.append(f"{len(events)} alert event(s): " + ", ".join(dict.fromkeys(pages + others)))
    detail = "; ".join(parts)
    n = len(items)
    if failed:
        return Verdict("fail", f"Observability: {len(failed)} of {n} checklist items fail", detail)
    if unknown or pages or others:
        status = "fail" if pages else "warn"
        title = (f"Observability: checklist met, {len(pages)} paging alert(s) fired" if pages
                 else f"Observability: {n - len(unknown)} of {n} checklist items pass")
        return Verdict(status, title, detail)
    return Verdict("pass", f"Observability: all {n} checklist items pass, no alert fired", "")


def observability_why(items: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]] = ()) -> Html:
    """Why the observability verdict: each failing or unmeasurable item with its evidence, and
    the alerts that fired (rule, severity, how often)."""
    from collections import Counter

    from labkit.views.verdicts import why

    bad = [i for i in items if i.get("status") in ("fail", "unknown")]
    text = f"{len(items) - len(bad)} of {len(items)} checklist items pass, measured from the traces."
    for i in bad:
        text += f" {i['item']} is {'failing' if i.get('status') == 'fail' else 'not measurable'}: {i.get('evidence')}."
    fired = Counter((str(e.get("rule")), str(e.get("severity"))) for e in events)
    if fired:
        text += " Alerts fired: " + "; ".join(f"{r} ({s}) {n}×" for (r, s), n in fired.items()) + "."
    else:
        text += " No alert fired."
    return why(text)
