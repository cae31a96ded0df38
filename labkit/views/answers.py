"""What runs did on single cases: answers, the cases that flipped, and their traces side by side.

Every piece of user text (questions, answers, ids) is HTML-escaped. ``flipped_table``
links each flip to the anchor of its block in ``trace_details``; ``flipped_diff`` shows each
flip as a diff of the two runs (chunks added and removed, answers with unsupported sentences
marked, status, the metric that flipped).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_BG,
    FAIL_COLOUR,
    LINE,
    MUTED_COLOUR,
    PASS_COLOUR,
    SOFT,
    Html,
    colour_for,
    fmt_value,
    shorten,
)
from labkit.views.elements import NOWRAP, id_html, styler, with_caption
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
    return with_caption(styler(df), f"Answers of run {rd.run_id} (first {len(rows)} cases).")



def unjudged_reason(reasons: Mapping[str, str] | None, case_id: str, contexts: Any) -> str:
    """Why one answer was not judged against its retrieved context ('' when it was): the run's
    scores say (:func:`labkit.rundata.unjudged_reasons`); a run without scores has no context to judge against
    when no retrieved item has text (``no_context``, the rule of the faithfulness metric)."""
    if reasons is not None:
        return reasons.get(case_id, "")
    return "" if any(contexts) else "no_context"


@dataclass(frozen=True)
class _Judged:
    """What the diff reads of one run: its results by case id, the judge that scored it when it can
    mark sentences, the cases its scores did not judge (:func:`labkit.rundata.unjudged_reasons`), and its corpus
    (a chunk's text when a results line names the chunk only, as scoring reads it)."""

    results: dict[str, dict[str, Any]]
    judge: Any
    reasons: dict[str, str] | None
    corpus: Any

    def contexts(self, r: Mapping[str, Any]) -> list[str]:
        from labkit.metrics.generation import contexts

        return contexts(r.get("retrieved") or [], self.corpus)


def _results(run: RunLike) -> _Judged:
    from labkit.gate.review_queue import claim_judge
    from labkit.rundata import unjudged_reasons
    from labkit.runs import RunDir
    from labkit.scoring import resolve_corpus

    rd = run if isinstance(run, RunDir) else RunDir(run)
    judge, other = claim_judge(rd)  # (a run another kind of judge scored: its sentences are not marked here)
    return _Judged({str(r["case_id"]): r for r in rd.results()}, None if other else judge, unjudged_reasons(rd),
                   resolve_corpus(None, rd))


def marked_answer(answer: Any, contexts: list[str], judge: Any) -> tuple[str, int]:
    """The answer as HTML, each sentence holding a claim the retrieved context does not support
    inside ``<mark class="lk-unsupported">``; and how many sentences were marked. Without a
    judge that explains per claim, the answer is shown escaped and unmarked."""
    from labkit.text import sentences

    text = "" if answer is None else str(answer)
    if judge is None or not hasattr(judge, "explain"):
        return html.escape(text), 0
    out, marked = [], 0
    for s in _with_citations(sentences(text)):
        verdicts = judge.explain(s, contexts)
        if any(not v.supported for v in verdicts):
            marked += 1
            out.append(f"<mark class='lk-unsupported' title='not supported by the retrieved context' "
                       f"style='background:{FAIL_BG};color:{FAIL_COLOUR};text-decoration:underline wavy'>"
                       f"{html.escape(s)}</mark>")
        else:
            out.append(html.escape(s))
    return " ".join(out), marked


_LEADING_CITE = re.compile(r"^((?:\[[^\]]*\]\s*)+)")


def _with_citations(parts: list[str]) -> list[str]:
    """Sentences with a citation that opens one (``UTC. [doc#3] Every…``) given back to the
    sentence before it, which it cites."""
    out: list[str] = []
    for s in parts:
        m = _LEADING_CITE.match(s)
        if m and out:
            out[-1] += " " + m.group(1).strip()
            s = s[m.end():].strip()
        if s:
            out.append(s)
    return out


def _chunk_diff(base: dict[str, Any], var: dict[str, Any]) -> str:
    before = [str(x.get("id")) for x in base.get("retrieved") or []]
    after = [str(x.get("id")) for x in var.get("retrieved") or []]
    added = [c for c in after if c not in before]
    removed = [c for c in before if c not in after]
    kept = len([c for c in after if c in before])
    parts = [f"<span class='lk-added' style='color:{PASS_COLOUR}'>+ {id_html(c, 40)}</span>" for c in added]
    parts += [f"<span class='lk-removed' style='color:{FAIL_COLOUR}'>− {id_html(c, 40)}</span>" for c in removed]
    same = f"{kept} kept" + (" in the same order" if before == after else "")
    return (" ".join(parts) + f" <span style='color:{MUTED_COLOUR}'>({same})</span>") if parts else (
        f"<span style='color:{MUTED_COLOUR}'>no change: {same}</span>")


def _side(label: str, r: dict[str, Any] | None, run: _Judged) -> str:
    if r is None:
        return f"<div class='lk-side'><strong>{html.escape(label)}</strong>: no result</div>"
    judge, contexts = run.judge, run.contexts(r)
    unjudged = unjudged_reason(run.reasons, str(r.get("case_id")), contexts)
    body, n = marked_answer(r.get("answer"), contexts, None if unjudged else judge)
    if unjudged:
        from labkit.rundata import not_judged

        note = f"{not_judged(unjudged)}: faithfulness unmeasured"
    else:
        note = (f"{n} sentence(s) not supported by the retrieved context" if n else
                ("every sentence supported" if judge is not None else "no per-sentence judge"))
    return (f"<div class='lk-side' style='border-left:4px solid {colour_for(label)};padding:4px 10px;"
            f"background:{SOFT};min-width:0;overflow-wrap:anywhere'>"
            f"<strong>{html.escape(label)}</strong> · status {html.escape(str(r.get('status')))} · "
            f"{html.escape(fmt_value('latency_ms', r.get('latency_ms')))} · trace {id_html(r.get('trace_id'), 12)}"
            f"<div style='color:{MUTED_COLOUR};font-size:.85rem'>{html.escape(note)}</div><div>{body}</div></div>")


def _missing(case: Any, r: dict[str, Any] | None) -> list[str]:
    """The case's must_include phrases the answer lacks (case-insensitive)."""
    if case is None or r is None:
        return []
    answer = str(r.get("answer") or "").lower()
    return [p for p in getattr(case, "must_include", ()) or () if str(p).lower() not in answer]


def flipped_diff(runs: Mapping[str, RunLike], comparison: Any, dataset: Any = None, *, limit: int = 30) -> Html:
    """Each case whose pass/fail flipped, as a diff of what changed between the two runs
    (baseline first, variant second): the metric that flipped and why, the status, the retrieved
    chunks added (+) and removed (−), and both answers with the sentences the retrieved context
    does not support marked (an answer whose faithfulness is unmeasured, e.g. no context, is
    shown "not judged", never as unsupported)."""
    d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    flips = list(d.get("flipped") or [])
    if not flips:
        return Html("<p><em>No case changed from pass to fail or back.</em></p>")
    (b_label, b_run), (v_label, v_run) = list(runs.items())[:2]
    b_side, v_side = _results(b_run), _results(v_run)
    by_id = dataset.by_id() if dataset is not None and hasattr(dataset, "by_id") else {}
    blocks = []
    for f in flips[:limit]:
        cid = str(f.get("case_id"))
        b, v = b_side.results.get(cid), v_side.results.get(cid)
        case = by_id.get(cid)
        col = FAIL_COLOUR if f.get("to") == "fail" else PASS_COLOUR
        why = html.escape(str(f.get("metric") or "")) + (f" ({html.escape(str(f['cause']))})" if f.get("cause") else "")
        status = f"{(b or {}).get('status', '—')} → {(v or {}).get('status', '—')}"
        missing = _missing(case, v)
        blocks.append(
            f"<div class='lk-flip' id='{trace_anchor('flip', cid)}' style='border:1px solid {LINE};border-radius:6px;"
            f"padding:8px 12px;margin:10px 0;break-inside:avoid'>"
            f"<div><code>{id_html(cid, 40)}</code> <strong style='color:{col}'>{html.escape(str(f.get('from')))} → "
            f"{html.escape(str(f.get('to')))}</strong> on {why}</div>"
            + (f"<div style='color:{MUTED_COLOUR}'>{html.escape(shorten(case.question, 200))}</div>" if case else "")
            + f"<div><span style='color:{MUTED_COLOUR}'>status:</span> {html.escape(status)} · "
            f"<span style='color:{MUTED_COLOUR}'>retrieved chunks:</span> {_chunk_diff(b or {}, v or {})}</div>"
            + (f"<div><span style='color:{MUTED_COLOUR}'>must include, missing from the {html.escape(v_label)}'s "
               f"answer:</span> {html.escape('; '.join(missing))}</div>" if missing else "")
            + f"<div style='display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:8px;margin-top:6px'>"
            f"{_side(b_label, b, b_side)}{_side(v_label, v, v_side)}</div></div>"
        )
    more = f"<p><em>{len(flips) - limit} more not shown.</em></p>" if len(flips) > limit else ""
    return Html(f"<div class='lk-flips-diff'>{''.join(blocks)}</div>{more}")
