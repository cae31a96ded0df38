"""The quick lab's honest decision: how to change a threshold, the decision against the bar
recorded before the runs (labkit.gate.bar), and the variant's unsupported sentences.

* :func:`threshold_howto` — where to change a threshold, said where the reader needs it;
* :func:`honest_decision` — SHIP / NO-SHIP judged on the thresholds recorded before the
  runs; when the thresholds in use differ from them the banner says "bar moved after
  results" and a SHIP that only the moved bar allows is not given;
* :func:`unsupported_table` — each answer sentence of a run its retrieved context does not
  support (the lexical judge), to stand beside the gate result.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from labkit.display import Html, Verdict, fmt_value, shorten
from labkit.gate.report import failure_text
from labkit.rundata import not_judged, unjudged_reasons
from labkit.views.answers import unjudged_reason
from labkit.views.elements import callout, styler, with_caption
from labkit.views.verdicts import ship_decision

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from labkit.gate.bar import BarStatus


def threshold_howto(runs_dir: str) -> Html:
    """How to change a threshold, and what doing so after the runs costs."""
    return callout(
        "To change a threshold, edit the parameters cell at the top (min_faithfulness, "
        "min_retrieval_hit_rate, max_latency_p95_ms), then Kernel > Restart Kernel and Run All Cells. "
        f"The thresholds are recorded in {runs_dir}/bar.json before the first runs; a bar changed once "
        "results exist is judged against that record and the decision says \"bar moved after results\". "
        f"To start over with a new bar before looking at any result, delete {runs_dir}.",
        kind="info", title="Changing a threshold.")


def honest_decision(bar: BarStatus, gate: Any, variant: Any, baseline: Any = None, *,
                    variant_label: str = "variant", baseline_label: str = "baseline") -> Verdict:
    """The ship decision of ``variant`` on the thresholds recorded before the runs."""
    now = ship_decision(gate.evaluate(variant), gate.evaluate(baseline) if baseline is not None else None,
                        candidate_label=variant_label, baseline_label=baseline_label)
    if bar.honest:
        return Verdict(now.status, now.title, f"{now.detail} Thresholds recorded before the runs "
                                              f"({bar.recorded_at}).")
    if bar.status == "recorded_after_runs":
        status = "fail" if now.status == "fail" else "warn"
        return Verdict(status, f"{now.title} (bar recorded after results)", f"{now.detail} {bar.sentence()}: "
                       "nothing shows the thresholds came first; delete the runs folder and run again.")
    rec_gate = bar.recorded_gate()
    rec = ship_decision(rec_gate.evaluate(variant),
                        rec_gate.evaluate(baseline) if baseline is not None else None,
                        candidate_label=variant_label, baseline_label=baseline_label)
    moved_says = "would SHIP" if now.status == "pass" else "would not ship either"
    detail = (f"{bar.sentence()}. Judged on the recorded bar: {rec.detail} With the thresholds in use now the "
              f"{variant_label} {moved_says}; a bar chosen after seeing the result cannot decide the release.")
    status = "fail" if rec.status == "fail" else "warn"
    return Verdict(status, f"{rec.title} — bar moved after results", detail)


def _not_judged_sentence(skipped: dict[str, int], n_answers: int) -> str:
    """' 10 of 10 answers not judged (no context): their faithfulness is unmeasured, not 0.'"""
    if not skipped:
        return ""
    return (f" {sum(skipped.values())} of {n_answers} answers {not_judged(', '.join(sorted(skipped)))}: their "
            "faithfulness is unmeasured, not 0.")


def unsupported_table(run: Any, *, limit: int = 20) -> Styler:
    """The answer sentences of ``run`` that its retrieved context does not support, one per row,
    with the case's faithfulness score; an answer whose faithfulness is unmeasured (no context,
    ...) is counted as not judged, never as holding an unsupported sentence."""
    import pandas as pd

    from labkit.gate.review_queue import answer_claims, claim_judge
    from labkit.runs import RunDir
    from labkit.scoring import resolve_corpus

    rd = RunDir(run)
    corpus = resolve_corpus(None, rd)
    judge, judged_by = claim_judge(rd)  # the judge the run's faithfulness was scored with
    faith: dict[str, Any] = {}
    if rd.scores_path.is_file():
        sc = rd.scores()
        faith = dict(zip(sc["case_id"].astype(str), sc["faithfulness"], strict=True)) if "faithfulness" in sc else {}
    reasons = unjudged_reasons(rd)
    rows: list[dict[str, Any]] = []
    n_answers, n_flagged, skipped = 0, 0, dict[str, int]()
    for r in rd.results():
        if r.get("status") != "ok" or not r.get("answer"):
            continue
        n_answers += 1
        claims, ctx = answer_claims(r, corpus, judge=judge)
        if why := unjudged_reason(reasons, str(r["case_id"]), [t for _, t in ctx]):
            skipped[why] = skipped.get(why, 0) + 1
            continue
        bad = [s for s, ok in claims if not ok]
        n_flagged += bool(bad)
        rows += [{"case_id": str(r["case_id"]), "faithfulness (0–1)": fmt_value("faithfulness",
                                                                              faith.get(str(r["case_id"]))),
                  "unsupported sentence": shorten(s, 220), "claims in the answer (n)": len(claims)} for s in bad]
    df = pd.DataFrame(rows[:limit], columns=["case_id", "faithfulness (0–1)", "unsupported sentence",
                                             "claims in the answer (n)"])
    more = f" {len(rows) - limit} more not shown." if len(rows) > limit else ""
    n_judged = n_answers - sum(skipped.values())
    cap = (f"Run {rd.run_id}: {n_flagged} of {n_judged} judged answers (n) hold a sentence the retrieved context "
           f"does not support (lexical judge: under {judge.threshold:.0%} of its content words in one context "
           f"sentence{'; ' + judged_by if judged_by else ''}).{_not_judged_sentence(skipped, n_answers)}{more}")
    return with_caption(styler(df, {"faithfulness (0–1)": "score", "claims in the answer (n)": "count"}), cap)


def bar_callout(bar: BarStatus) -> Html:
    """Where the thresholds were recorded, and whether the ones in use are still those."""
    kind = "pass" if bar.honest else "fail"
    title = "Bar recorded before the runs." if bar.honest else "Bar moved after results."
    return callout(bar.sentence() + ".", kind=kind, title=title)


def _sample_size(report: Any, run: Any) -> str:
    """'the variant was judged on 2 cases (faithfulness 95% interval 0.50–1.00)': the real count
    and how wide it leaves the faithfulness figure ('' when the report does not say)."""
    from labkit.runs import RunDir

    cases = getattr(report, "cases", None)
    n = cases.get("n_judged") if isinstance(cases, dict) else None
    if n is None:
        return ""
    entry = ((RunDir(run).metrics() or {}).get("metrics") or {}).get("faithfulness") or {} if run is not None else {}
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    ci = (f" (faithfulness 95% interval {fmt_value('faithfulness', lo)}–{fmt_value('faithfulness', hi)})"
          if lo is not None and hi is not None else "")
    return f"the variant was judged on {n} case{'s' if n != 1 else ''}{ci}"


def _caveat(size: str, runs: dict[str, Any]) -> str:
    """The closing sentence: the sample size, and 'simulated' only of the runs whose manifests say
    their model is (:func:`labkit.rundata.made_by`)."""
    from labkit.rundata import made_by

    given = {label: run for label, run in runs.items() if run is not None}
    sim = [label for label, run in given.items() if made_by(run).simulated]
    if not sim:
        return f"{size[0].upper()}{size[1:]}." if size else ""
    who = "The model is" if len(sim) == len(given) else f"The {' and '.join(sim)}'s model is"
    return f"{who} simulated{', and ' + size if size else ''}: the lab shows the method, not a real model's quality."


def decision_summary(variant_report: Any, baseline_report: Any, bar: BarStatus, variant: Any,
                     baseline: Any = None) -> Html:
    """The one-paragraph summary under the decision banner: why each run fails (the gate's own
    reason: a threshold missed or too few measured cases), how many cases the variant was
    judged on, with the interval that leaves its faithfulness, and whether the runs' model is
    simulated as their manifests record it."""
    def fails(rep: Any) -> str:
        bad = [failure_text(c) for c in rep.checks if not c.passed]
        return "fails " + "; ".join(bad) if bad else "meets every check"

    text = (f"The variant {fails(variant_report)}; the baseline {fails(baseline_report)}. "
            f"{bar.sentence()[0].upper()}{bar.sentence()[1:]}. The table in section 5 lists the variant's answer "
            "sentences that its retrieved context does not support, the cases behind its faithfulness. "
            + _caveat(_sample_size(variant_report, variant), {"variant": variant, "baseline": baseline}))
    return Html(f"<p class='lk-summary'>{html.escape(text.strip())}</p>")
