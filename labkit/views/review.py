"""The review workbench of notebooks/07_review.ipynb: the human review queue of a run's high-risk
cases, each shown with question, answer (unsupported sentences marked), retrieved context,
metrics and trace; approve / reject / needs-fix with a note.

:class:`ReviewWorkbench` keeps its logic in plain methods (``decide``, ``coverage``,
``static_view``) so pytest drives it without a browser; ``widget()`` wires ipywidgets to
them. Decisions go to the reviews JSONL the gate reads (labkit.gate.reviews); a rejected
case is proposed as a regression case. Every user text is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_BG,
    FAIL_COLOUR,
    MUTED_COLOUR,
    PASS_COLOUR,
    WARN_COLOUR,
    Html,
    Verdict,
    fmt_value,
    no_math,
    shorten,
    unit_of,
)
from labkit.errors import LabkitError
from labkit.views.elements import NOWRAP, kind_of, num_td, styler, with_caption

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from labkit.gate.review_queue import ReviewItem, ReviewQueue

DECISION_LABELS = {"approve": "Approve", "reject": "Reject", "needs_fix": "Needs fix"}
DECISION_COLOURS = {"approve": PASS_COLOUR, "reject": FAIL_COLOUR, "needs_fix": WARN_COLOUR}


def coverage_verdict(queue: ReviewQueue) -> Verdict:
    """PASS when every selected case has an approving review of the run's current answer."""
    cov = queue.coverage
    n, ok = len(cov.need), len(cov.approved)
    if not cov.need:
        return Verdict("pass", f"no {queue.where} case to review in run {queue.run_id}", "")
    if ok == n:
        return Verdict("pass", f"review coverage {ok}/{n}: every {queue.where} case approved",
                       f"Run {queue.run_id}; the gate's review check passes.")
    return Verdict("fail", f"review coverage {ok}/{n} ({ok / n:.0%}): the gate's review check fails",
                   cov.reason() + ".")


def summary(queue: ReviewQueue) -> Html:
    """The one-paragraph summary under the banner."""
    cov = queue.coverage
    flagged = sum(1 for it in queue.items if it.unsupported)
    unjudged = Counter(it.judgement for it in queue.items if it.unjudged)
    not_judged = "".join(f" {n} {why}: their faithfulness is unmeasured, not 0." for why, n in sorted(unjudged.items()))
    text = (f"The gate asks a human to review every {queue.where} case. Run {queue.run_id} has "
            f"{len(queue.items)} such case(s); {flagged} of the answers hold at least one sentence the "
            f"retrieved context does not support (marked below).{not_judged} {len(cov.approved)} approved, "
            f"{len(cov.with_decision('reject'))} rejected, {len(cov.with_decision('needs_fix'))} need a fix, "
            f"{len(cov.missing)} not reviewed; a review counts only for the answer it judged. "
            f"Records: {queue.reviews_path}.")
    return Html(f"<p class='lk-summary'>{html.escape(text)}</p>")


def queue_table(queue: ReviewQueue) -> Styler:
    """One row per case of the queue: decision, unsupported sentences, faithfulness, latency."""
    import pandas as pd

    rows = [{"case_id": it.case_id, "question": shorten(it.case.question, 90), "decision": it.decision,
             "unsupported sentences (n of claims)": it.judgement if it.unjudged else
             f"{len(it.unsupported)} of {len(it.claims)}",
             "faithfulness (0–1)": fmt_value("faithfulness", it.metrics.get("faithfulness")),
             "latency (ms)": fmt_value("latency_ms", it.metrics.get("latency_ms"))} for it in queue.items]
    df = pd.DataFrame(rows, columns=["case_id", "question", "decision", "unsupported sentences (n of claims)",
                                     "faithfulness (0–1)", "latency (ms)"])

    def colour(v: Any) -> str:
        key = {"approve": "approve", "reject": "reject", "needs_fix": "needs_fix"}.get(str(v))
        look = f"color:{DECISION_COLOURS[key]};font-weight:700" if key else f"color:{MUTED_COLOUR}"
        return f"{look};{NOWRAP}"  # "not reviewed" on one line

    cap = (f"Review queue of run {queue.run_id}: n = {len(queue.items)} {queue.where} case(s), "
           f"{len(queue.coverage.approved)} approved.")
    kinds = {"faithfulness (0–1)": "score", "latency (ms)": "ms"}
    return with_caption(styler(df, kinds).map(colour, subset=["decision"]), cap)


def coverage_counts(queue: ReviewQueue) -> list[tuple[str, int]]:
    """How many cases of the queue stand in each decision state (the coverage chart's bars)."""
    cov = queue.coverage
    return [("approved", len(cov.approved)), ("rejected", len(cov.with_decision("reject"))),
            ("needs fix", len(cov.with_decision("needs_fix"))), ("reviewed for another answer", len(cov.stale)),
            ("not reviewed", len(cov.missing) - len(cov.stale))]


def coverage_chart(queue: ReviewQueue) -> Any:
    """One bar per decision state of the queue's cases: how far the review is from complete."""
    from labkit.views.elements import Chart, chart_style, new_figure

    cov = queue.coverage
    colours = (PASS_COLOUR, FAIL_COLOUR, WARN_COLOUR, MUTED_COLOUR, MUTED_COLOUR)
    states = [(s, n, c) for (s, n), c in zip(coverage_counts(queue), colours, strict=True)]
    with chart_style():
        fig = new_figure(7.5, 2.6)
        ax = fig.subplots()
        names = [s for s, _, _ in states][::-1]
        counts = [n for _, n, _ in states][::-1]
        ax.barh(names, counts, color=[c for _, _, c in states][::-1])
        for y, n in enumerate(counts):
            ax.annotate(str(n), (n, y), textcoords="offset points", xytext=(4, -3), fontsize=9)
        ax.set_xlim(0, max(1, len(cov.need)) * 1.1)
        ax.set_xlabel(f"cases (n = {len(cov.need)} {queue.where})")
    return Chart.from_figure(fig, f"Review coverage of run {queue.run_id}: {len(cov.approved)} of {len(cov.need)} "
                                  f"{queue.where} cases approved for the answer the run gives now.",
                             alt="review coverage by decision")


def _marked_answer(item: ReviewItem) -> str:
    text = html.escape(item.answer) if item.answer else "<em>no answer</em>"
    for s in item.unsupported:
        esc = html.escape(s)
        text = text.replace(esc, f"<mark class='lk-unsupported' style='background:{FAIL_BG};color:{FAIL_COLOUR}'"
                                 f" title='not supported by the retrieved context'>{esc}</mark>", 1)
    return text


def _metric_cells(metrics: Mapping[str, float | None]) -> str:
    return "".join(f"<tr><td><code>{html.escape(k)}</code> ({html.escape(unit_of(k))})</td>"
                   f"{num_td(fmt_value(k, v), kind_of(k))}</tr>" for k, v in metrics.items())


def _trace_rows(trace: Any) -> str:
    cells = []
    for t in trace:
        lat = t.get("latency_ms")
        cells.append(f"<tr><td>{html.escape(str(t.get('operation') or ''))}</td>"
                     f"<td>{html.escape(str(t.get('model') or ''))}</td><td>{html.escape(str(t.get('status')))}</td>"
                     f"{num_td(fmt_value('latency_ms', lat), 'ms')}"
                     f"<td><code class='lk-id'>{html.escape(str(t.get('trace_id') or ''))}</code></td></tr>")
    return "".join(cells) or "<tr><td colspan='5'><em>no trace recorded</em></td></tr>"


def item_html(item: ReviewItem, *, context_chars: int = 400) -> str:
    """One case as a reviewer sees it."""
    unsupported = "".join(f"<li>{html.escape(s)}</li>" for s in item.unsupported)
    unsup = (f"<p><strong>{html.escape(item.judgement.capitalize())}</strong>: the run's faithfulness of this "
             "answer is unmeasured, not 0.</p>" if item.unjudged else
             f"<p><strong style='color:{FAIL_COLOUR}'>{len(item.unsupported)} of {len(item.claims)} "
             f"sentence(s) not supported by the retrieved context</strong> (lexical judge):</p><ul>{unsupported}</ul>"
             if item.unsupported else f"<p style='color:{PASS_COLOUR}'>Every claim of the answer "
             f"({len(item.claims)}) is supported by the retrieved context (lexical judge).</p>")
    ctx = "".join(f"<li><code class='lk-id'>{html.escape(cid)}</code> {html.escape(shorten(t, context_chars))}</li>"
                  for cid, t in item.contexts) or "<li><em>nothing retrieved</em></li>"
    return (f"<div class='lk-review-item' id='review-{html.escape(item.case_id)}'>"
            f"<h4><code class='lk-id'>{html.escape(item.case_id)}</code> — {html.escape(item.decision)}</h4>"
            f"<p><strong>Question.</strong> {html.escape(item.case.question)}</p>"
            f"<p><strong>Answer</strong> (status {html.escape(item.status)}, sha256 "
            f"{html.escape(item.answer_sha256[:12])}). {_marked_answer(item)}</p>{unsup}"
            f"<p><strong>Retrieved context</strong> ({len(item.contexts)} chunk(s)):</p><ol>{ctx}</ol>"
            f"<table class='lk-review-metrics'><thead><tr><th>metric (unit)</th><th>value</th></tr></thead>"
            f"<tbody>{_metric_cells(item.metrics)}</tbody></table>"
            f"<table class='lk-review-trace'><thead><tr><th>operation</th><th>model</th><th>status</th>"
            f"<th>latency</th><th>trace</th></tr></thead><tbody>{_trace_rows(item.trace)}</tbody></table></div>")


class ReviewWorkbench:
    """The review queue of ``run`` under ``gate``, and the decisions on it."""

    def __init__(self, run: Any, gate: Any, *, reviews: str | os.PathLike[str] = "data/reviews.jsonl",
                 proposals: str | os.PathLike[str] | None = None, dataset: Any = None,
                 reviewer: str = "") -> None:
        from labkit.gate.reviews import proposals_path

        self.run, self.gate, self.dataset, self.reviewer = run, gate, dataset, reviewer
        self.reviews = Path(reviews)
        self.proposals = proposals_path(self.reviews, proposals)
        self.queue = self._build()
        self.proposed: list[str] = []
        self.last_proposed = False
        self._w: dict[str, Any] = {}

    def _build(self) -> ReviewQueue:
        from labkit.gate.review_queue import build_queue

        return build_queue(self.run, self.gate, reviews=self.reviews, dataset=self.dataset)

    # ---- logic -----------------------------------------------------------------------------
    @property
    def coverage(self) -> Any:
        return self.queue.coverage

    def decide(self, case_id: str, decision: str, *, note: str = "", reviewer: str | None = None) -> dict[str, Any]:
        """Record one decision on the run's current answer to ``case_id``; a rejection is also
        proposed as a regression case. Returns the review line written."""
        from labkit.gate.reviews import propose_regression_case, record_review
        from labkit.runs import RunDir

        item = self.queue.item(case_id)
        rec = record_review(self.reviews, self.run, item.case_id, decision=decision,
                            reviewer=self.reviewer if reviewer is None else reviewer, note=note)
        self.last_proposed = decision == "reject" and propose_regression_case(
            self.proposals, item.case, rec, redactor=RunDir(self.run).redaction)  # (the run's own patterns too)
        if self.last_proposed:
            self.proposed.append(f"reg-review-{item.case_id}")
        self.queue = self._build()
        return rec

    # ---- views -----------------------------------------------------------------------------
    def coverage_html(self) -> str:
        return coverage_verdict(self.queue).to_html() + summary(self.queue).html + queue_table(self.queue).to_html()

    def verdict(self) -> Verdict:
        """The coverage banner (the notebook's published verdict)."""
        return coverage_verdict(self.queue)

    def summary(self) -> Html:
        return summary(self.queue)

    def coverage_chart(self) -> Any:
        return coverage_chart(self.queue)

    def static_view(self) -> Html:
        """The queue and every case of it: what a batch run shows under the banner and summary."""
        items = "".join(item_html(it) for it in self.queue.items)
        return Html(queue_table(self.queue).to_html() + items)

    def show(self, interactive: bool = True) -> Any:
        return self.widget() if interactive else self.static_view()

    def widget(self) -> Any:
        """ipywidgets: a case picker, the case, note and reviewer, three decision buttons."""
        import ipywidgets as w

        pick = w.Dropdown(options=self._options(), description="case", layout=w.Layout(width="560px"))
        self._w = {"case": pick, "item": w.HTML(), "note": w.Textarea(placeholder="why (redacted before saving)",
                                                                      layout=w.Layout(width="560px")),
                   "reviewer": w.Text(value=self.reviewer, description="reviewer"), "status": w.HTML(),
                   "coverage": w.HTML(value=no_math(self.coverage_html()))}
        pick.observe(lambda _change: self._show_item(), names="value")
        buttons = []
        for decision, label in DECISION_LABELS.items():
            b = w.Button(description=label, button_style={"approve": "success", "reject": "danger"}.get(decision, "warning"))
            b.on_click(lambda _b, d=decision: self._on_decide(d))
            self._w[f"button_{decision}"] = b
            buttons.append(b)
        self._show_item()
        return w.VBox([self._w["coverage"], pick, self._w["item"], self._w["reviewer"], self._w["note"],
                       w.HBox(buttons), self._w["status"]])

    def _options(self) -> list[tuple[str, str]]:
        return [(f"{it.case_id} — {it.decision}", it.case_id) for it in self.queue.items]

    def _show_item(self) -> None:
        cid = self._w["case"].value
        self._w["item"].value = no_math(item_html(self.queue.item(cid))) if cid else "<em>nothing to review</em>"

    def _on_decide(self, decision: str) -> None:
        cid = self._w["case"].value
        try:
            rec = self.decide(cid, decision, note=self._w["note"].value, reviewer=self._w["reviewer"].value)
        except LabkitError as e:
            self._w["status"].value = f"<span style='color:{FAIL_COLOUR}'>{html.escape(str(e))}</span>"
            return
        msg = f"recorded {rec['decision']} of {cid} by {rec['reviewer']} in {self.reviews}"
        if self.last_proposed:
            msg += f"; proposed as regression case reg-review-{cid} in {self.proposals}"
        self._w["status"].value = f"<span>{html.escape(msg)}</span>"
        self._w["note"].value = ""
        self._w["coverage"].value = no_math(self.coverage_html())
        self._w["case"].options = self._options()
        self._w["case"].value = cid
        self._show_item()
