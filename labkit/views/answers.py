"""What runs did on single cases: answers, the cases that flipped, and their traces side by side.

Every piece of user text (questions, answers, ids) is HTML-escaped. ``flipped_table``
links each flip to the anchor of its block in ``trace_details``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_COLOUR,
    MUTED_COLOUR,
    PASS_COLOUR,
    SOFT,
    Html,
    colour_for,
    fmt_value,
    shorten,
)
from labkit.views.elements import NOWRAP, styler
from labkit.views.frames import RunLike

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler


def trace_anchor(run_label: str, case_id: str) -> str:
    import hashlib

    return "trace-" + hashlib.sha256(f"{run_label}\x00{case_id}".encode()).hexdigest()[:12]


def flipped_table(comparison: Any, dataset: Any = None, *, limit: int = 30) -> Html:
    """The cases whose pass/fail flipped between runs, each linking to its traces below."""
    d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    flips = list(d.get("flipped") or [])
    by_id = dataset.by_id() if dataset is not None and hasattr(dataset, "by_id") else {}
    if not flips:
        return Html("<p><em>No case changed from pass to fail or back.</em></p>")
    rows = []
    for f in flips[:limit]:
        cid = str(f.get("case_id"))
        case = by_id.get(cid)
        q = shorten(case.question, 120) if case is not None else ""
        direction = f"{f.get('from')} → {f.get('to')}"
        col = FAIL_COLOUR if f.get("to") == "fail" else PASS_COLOUR
        metric = f.get("metric") or ""
        if f.get("cause"):
            metric = f"{metric} ({f['cause']})" if metric else str(f["cause"])
        rows.append(
            f"<tr><td style='{NOWRAP}'><code class='lk-id'>{html.escape(cid)}</code></td><td>{html.escape(q)}</td>"
            f"<td>{html.escape(str(metric))}</td>"
            f"<td style='color:{col};font-weight:700'>{html.escape(direction)}</td>"
            f"<td><a href='#{trace_anchor('baseline', cid)}'>baseline</a> · "
            f"<a href='#{trace_anchor('variant', cid)}'>variant</a></td></tr>"
        )
    more = f"<p><em>{len(flips) - limit} more not shown.</em></p>" if len(flips) > limit else ""
    return Html(
        "<table class='lk-flips'><thead><tr><th>case</th><th>question</th><th>metric</th>"
        "<th>change</th><th>traces</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + more
    )


def trace_details(runs: Mapping[str, RunLike], cases_or_comparison: Any, dataset: Any = None,
                  *, limit: int = 30) -> Html:
    """What each run did on the given cases: answer, retrieved ids, citations, status, latency.

    ``cases_or_comparison`` is a list of case ids or a comparison (its flipped
    cases). Each block has the anchor ``flipped_table`` links to. Text is escaped.
    """
    from labkit.runs import RunDir

    if isinstance(cases_or_comparison, str):
        case_ids: list[str] = [cases_or_comparison]
    elif hasattr(cases_or_comparison, "to_dict") or isinstance(cases_or_comparison, Mapping):
        d = cases_or_comparison.to_dict() if hasattr(cases_or_comparison, "to_dict") else cases_or_comparison
        case_ids = list(dict.fromkeys(str(f.get("case_id")) for f in d.get("flipped") or []))
    else:
        case_ids = [str(c) for c in cases_or_comparison]
    case_ids = case_ids[:limit]

    by_id = dataset.by_id() if dataset is not None and hasattr(dataset, "by_id") else {}
    results: dict[str, dict[str, Any]] = {}
    for label, run in runs.items():
        rd = run if isinstance(run, RunDir) else RunDir(run)
        results[label] = {r["case_id"]: r for r in rd.results()}
    blocks = []
    for cid in case_ids:
        case = by_id.get(cid)
        head = f"<h4 style='margin:.8rem 0 .2rem'><code>{html.escape(cid)}</code>"
        if case is not None:
            head += f" — {html.escape(shorten(case.question, 160))}"
        head += "</h4>"
        parts = [head]
        for label, res in results.items():
            r = res.get(cid)
            anchor = trace_anchor(label, cid)
            if r is None:
                parts.append(f"<div id='{anchor}'><strong>{html.escape(label)}</strong>: no result</div>")
                continue
            retrieved = ", ".join(str(x.get("id")) for x in (r.get("retrieved") or [])[:5]) or "—"
            cites = ", ".join(map(str, r.get("citations") or [])) or "—"
            lat = r.get("latency_ms")
            parts.append(
                f"<div id='{anchor}' class='lk-trace' style='border-left:4px solid {colour_for(label)};"
                f"padding:4px 10px;margin:4px 0;background:{SOFT}'>"
                f"<strong>{html.escape(label)}</strong> · status {html.escape(str(r.get('status')))} · "
                f"latency {html.escape(fmt_value('latency_ms', lat))} · trace "
                f"<code>{html.escape(str(r.get('trace_id') or '—'))}</code><br>"
                f"<span style='color:{MUTED_COLOUR}'>retrieved:</span> {html.escape(retrieved)}<br>"
                f"<span style='color:{MUTED_COLOUR}'>cited:</span> {html.escape(cites)}<br>"
                f"<span style='color:{MUTED_COLOUR}'>answer:</span> {html.escape(shorten(r.get('answer'), 600))}</div>"
            )
        blocks.append("".join(parts))
    if not blocks:
        return Html("<p><em>No traces to show.</em></p>")
    return Html("<div class='lk-traces'>" + "".join(blocks) + "</div>")


def answers_table(run: RunLike, dataset: Any, *, limit: int | None = None) -> Styler:
    """Question, answer, status and citations per case of one run (escaped)."""
    import pandas as pd

    from labkit.runs import RunDir

    rd = run if isinstance(run, RunDir) else RunDir(run)
    res = {r["case_id"]: r for r in rd.results()}
    rows = []
    for c in list(dataset)[: limit or None]:
        r = res.get(c.id, {})
        rows.append({"id": c.id, "question": shorten(c.question, 120), "status": r.get("status", "—"),
                     "answer": shorten(r.get("answer"), 220), "cited": ", ".join(r.get("citations") or []) or "—"})
    df = pd.DataFrame(rows, columns=["id", "question", "status", "answer", "cited"])
    return styler(df).set_caption(f"Answers of run {rd.run_id} (first {len(rows)} cases).")

