"""The review queue of a run: the cases a gate's ``review.required_for`` selects, each with what
a reviewer needs to judge it — question, answer with its unsupported sentences marked,
retrieved context, per-case metrics and trace — and the review that counts for it now.

Read by ``labkit review`` (text) and labkit.views.review (the workbench); the records
themselves are read and written by labkit.gate.reviews only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.gate.reviews import (
    ReviewCoverage,
    answer_sha256,
    read_reviews,
    review_coverage,
    selected_cases,
)

if TYPE_CHECKING:
    from labkit.judges import LexicalJudge

__all__ = ["ReviewItem", "ReviewQueue", "answer_claims", "build_queue", "claim_judge"]

#: Per-case columns of scores.csv every queue item shows (when the run has them).
CASE_METRICS = ("faithfulness", "retrieval_hit_rate", "must_include_coverage", "must_not_include_violation",
                "citation_accuracy", "latency_ms", "cost_usd")


@dataclass(frozen=True)
class ReviewItem:
    """One case to review, as the run answered it."""

    case: Any
    status: str
    answer: str
    answer_sha256: str
    claims: tuple[tuple[str, bool], ...]  # (claim sentence, supported by the retrieved context)
    contexts: tuple[tuple[str, str], ...]  # (chunk id, text)
    metrics: Mapping[str, float | None]
    trace: tuple[Mapping[str, Any], ...]
    review: Mapping[str, Any] | None = None  # the review of this answer that counts
    stale: bool = False  # reviewed only for another answer
    unjudged: str = ""  # why the run's faithfulness of it is unmeasured (no_context ...): nothing is unsupported

    @property
    def case_id(self) -> str:
        return str(self.case.id)

    @property
    def unsupported(self) -> list[str]:
        """The claim sentences the retrieved context does not support (none when not judged)."""
        return [] if self.unjudged else [s for s, ok in self.claims if not ok]

    @property
    def judgement(self) -> str:
        """``2 unsupported sentence(s)``, ``every sentence supported`` or ``not judged (no context)``."""
        if self.unjudged:
            from labkit.rundata import not_judged

            return not_judged(self.unjudged)
        n = len(self.unsupported)
        return f"{n} unsupported sentence(s)" if n else "every sentence supported"

    @property
    def decision(self) -> str:
        if self.review is not None:
            return str(self.review.get("decision"))
        return "reviewed for another answer" if self.stale else "not reviewed"


@dataclass(frozen=True)
class ReviewQueue:
    run_id: str
    run_path: str
    where: str
    items: tuple[ReviewItem, ...]
    coverage: ReviewCoverage
    reviews_path: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def item(self, case_id: str) -> ReviewItem:
        for it in self.items:
            if it.case_id == case_id:
                return it
        raise ConfigError(f"case {case_id!r} is not in the review queue ({self.where} cases of run "
                          f"{self.run_id})", field="case", known=[it.case_id for it in self.items])


def claim_judge(rd: Any) -> tuple[LexicalJudge, str | None]:
    """The lexical judge that marks an answer's claims in run ``rd``: the one the run was scored
    with (its manifest's ``scoring.judge``), so the sentences marked are the ones its faithfulness
    counted; for a run scored by a judge of another kind, the default lexical judge and a note
    saying so."""
    from labkit.judges import LexicalJudge, get_judge

    sc = rd.manifest.get("scoring")
    spec = sc.get("judge") if isinstance(sc, Mapping) else None
    if spec is None or isinstance(spec, (str, Mapping)):
        try:  # (read as scoring read it: a name, or a mapping by its type or name, lexical by default)
            judge = get_judge(spec)
        except ConfigError:  # options this labkit does not know
            judge = None
        if isinstance(judge, LexicalJudge):
            return judge, None
    kind = spec.get("type", spec.get("name", "lexical")) if isinstance(spec, Mapping) else spec
    return LexicalJudge(), (f"the answers' claims are marked by the default lexical judge; the run was scored "
                            f"by the {kind} judge, whose verdicts may differ")


def answer_claims(result: Mapping[str, Any], corpus: Any = None, *,
                  judge: LexicalJudge | None = None) -> tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, str], ...]]:
    """(claims, contexts) of one results line: each claim sentence of the answer with whether the
    retrieved context supports it (``judge``, the default lexical judge unless given: see
    :func:`claim_judge`), and each retrieved (chunk id, text)."""
    from labkit.judges import LexicalJudge
    from labkit.metrics.generation import contexts

    ctx = []
    for it in result.get("retrieved") or []:
        cid = it.get("id") if isinstance(it, Mapping) else it
        text = contexts([it], corpus)
        ctx.append((str(cid), text[0] if text else ""))
    answer = str(result.get("answer") or "")
    marks = (judge or LexicalJudge()).explain(answer, [t for _, t in ctx])
    claims = tuple((v.claim, bool(v.supported)) for v in marks)
    return claims, tuple(ctx)


def _traces(rd: Any) -> dict[str, list[dict[str, Any]]]:
    from labkit.trace.record import iter_trace_lines

    out: dict[str, list[dict[str, Any]]] = {}
    if not rd.traces_path.is_file():
        return out
    for _, raw in iter_trace_lines(rd.traces_path):
        try:
            t = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(t, dict) and t.get("case_id") is not None:
            keep = {k: t.get(k) for k in ("trace_id", "operation", "model", "status", "latency_ms", "attempt",
                                          "input_tokens", "output_tokens", "error")}
            out.setdefault(str(t["case_id"]), []).append(keep)
    return out


def _scores(rd: Any) -> dict[str, dict[str, float | None]]:
    if not rd.scores_path.is_file():
        return {}
    df = rd.scores()
    cols = [c for c in CASE_METRICS if c in df.columns]
    out: dict[str, dict[str, float | None]] = {}
    for rec in df[["case_id", *cols]].to_dict("records"):
        out[str(rec["case_id"])] = {c: (None if rec[c] != rec[c] else float(rec[c])) for c in cols}
    return out


def build_queue(run: Any, gate: Any, *, reviews: str | os.PathLike[str], dataset: Any = None) -> ReviewQueue:
    """The review queue of ``run`` under ``gate`` (a Gate or its YAML path)."""
    from labkit.gate.config import Gate
    from labkit.rundata import scored_cases, unjudged_reasons
    from labkit.runs import RunDir
    from labkit.scoring import resolve_corpus

    g = gate if isinstance(gate, Gate) else Gate.load(gate)
    if not g.review_required_for:
        raise ConfigError("the gate has no review section: add `review: {required_for: {risk: high}}`",
                          path=g.path, field="review")
    rd = RunDir(run)
    if not rd.results_path.is_file():
        raise ConfigError("no results.jsonl: not a run directory", path=str(rd.path))
    cases = scored_cases(rd, dataset)
    need = selected_cases(cases, g.review_required_for)
    results = {str(r["case_id"]): r for r in rd.results()}
    cov = review_coverage([c.id for c in need], read_reviews(reviews),
                          {cid: answer_sha256(r.get("answer")) for cid, r in results.items()})
    corpus, scores, traces = resolve_corpus(None, rd), _scores(rd), _traces(rd)
    unjudged = unjudged_reasons(rd) or {}
    judge, judged_by = claim_judge(rd)
    items, notes = [], [judged_by] if judged_by else []
    for c in need:
        r = results.get(c.id)
        if r is None:
            notes.append(f"{c.id}: no result in this run")
        answer = str((r or {}).get("answer") or "")
        claims, ctx = answer_claims(r or {}, corpus, judge=judge)
        items.append(ReviewItem(case=c, status=str((r or {}).get("status", "missing")), answer=answer,
                                answer_sha256=answer_sha256(answer), claims=claims, contexts=ctx,
                                metrics=scores.get(c.id, {}), trace=tuple(traces.get(c.id, [])),
                                review=cov.current.get(c.id), stale=c.id in cov.stale,
                                unjudged=unjudged.get(c.id, "")))
    where = ",".join(f"{k}={v}" for k, v in g.review_required_for.items())
    return ReviewQueue(run_id=rd.run_id, run_path=str(rd.path), where=where, items=tuple(items), coverage=cov,
                       reviews_path=str(reviews), notes=tuple(notes))
