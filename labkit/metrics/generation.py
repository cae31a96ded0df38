"""Generation metrics for one case: phrase checks, citations, and the judge-backed scores.

Every function returns ``(value, reason)``: a float in [0, 1] and ``""`` when
measured, or ``(None, code)`` when unmeasured. Phrase matching is case- and
whitespace-insensitive (both sides lowercased, runs of whitespace collapsed to
one space) and is a substring test.

A results file on disk holds redacted text. When a phrase is missing from an
answer and a redaction placeholder (``[PHONE]``, ``[EMAIL]``, ...,
``[CONTENT len=… sha256=…]``) could have replaced it — the phrase fits around
the placeholder, and the hidden part is made of characters that placeholder's
type replaces — the check is unmeasured with reason ``redacted``, not 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from labkit import patterns
from labkit.metrics import reference
from labkit.metrics.retrieval import dedupe, to_level
from labkit.registry import METRICS, metric

if TYPE_CHECKING:
    from labkit.cases import EvalCase
    from labkit.metrics.percase import CaseResult

Score = tuple[float | None, str]

_WS = re.compile(r"\s+")
#: a placeholder the redactor writes: a catalogue type, an extra pattern's tag, or dropped content
_PLACEHOLDER = re.compile(r"\[(CONTENT len=\d+ sha256=[0-9a-f]{12}|[A-Z][A-Z0-9_]*)\]")
REDACTED = "redacted"


class ClaimJudge(Protocol):
    """What score_cases needs from a judge (see labkit.judges)."""

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]: ...

    def relevance(self, question: str, answer: str) -> float | None: ...


def normalize(text: str) -> str:
    """Lowercase and collapse whitespace runs to one space (for phrase matching)."""
    return _WS.sub(" ", text.lower()).strip()


def phrases_found(answer: str | None, phrases: Iterable[str]) -> list[bool]:
    """Whether each phrase occurs in the answer (case/whitespace-insensitive)."""
    a = normalize(answer or "")
    return [normalize(p) in a for p in phrases]


def _placeholders(answer: str) -> list[tuple[int, int, re.Pattern[str]]]:
    """(start, end, hidden-character pattern) of each placeholder in the normalized answer."""
    a = normalize(answer)
    out = []
    for tag in dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(answer)):
        chars = patterns.TYPE_CHARS.get(tag, r"[\s\S]")
        hidden = re.compile(f"(?:{chars})+", re.IGNORECASE)
        low = f"[{normalize(tag)}]"
        start = a.find(low)
        while start >= 0:
            out.append((start, start + len(low), hidden))
            start = a.find(low, start + 1)
    return out


def hidden_by_redaction(answer: str | None, phrase: str) -> bool:
    """Whether a redaction placeholder in the answer may hide the phrase (or a part of it)."""
    if not answer or "[" not in answer:
        return False
    a, p = normalize(answer), normalize(phrase)
    for start, end, hidden in _placeholders(answer):
        left, right = a[:start], a[end:]
        for i in range(len(p)):
            if not left.endswith(p[:i]):
                continue
            for j in range(len(p), i, -1):
                if right.startswith(p[j:]) and hidden.fullmatch(p[i:j]):
                    return True
    return False


def must_include_coverage(answer: str | None, phrases: Sequence[str]) -> Score:
    """Share of must_include phrases found; unmeasured (no_must_include) when none listed.

    A case with no answer (error, timeout) scores what it said: 0. A missing phrase a
    redaction placeholder may hide makes the check unmeasured (``redacted``).
    """
    if not phrases:
        return None, "no_must_include"
    found = phrases_found(answer, phrases)
    if any(not f and hidden_by_redaction(answer, p) for f, p in zip(found, phrases, strict=True)):
        return None, REDACTED
    return sum(found) / len(found), ""


def must_not_include_violation(answer: str | None, phrases: Sequence[str]) -> Score:
    """1 if any must_not_include phrase occurs in the answer; unmeasured when none listed, or
    when none occurs but a redaction placeholder may hide one (``redacted``)."""
    if not phrases:
        return None, "no_must_not_include"
    if any(phrases_found(answer, phrases)):
        return 1.0, ""
    if any(hidden_by_redaction(answer, p) for p in phrases):
        return None, REDACTED
    return 0.0, ""


def _cited(citations: Any, level: str, retrieved: Sequence[Any] = ()) -> list[str]:
    """Distinct cited ids at ``level``. At source level a cited chunk counts for its source:
    the source its retrieved item names, else the part of its id before ``#``."""
    if not isinstance(citations, list):
        return []
    sources: dict[str, str] = {}
    if level == "source":
        for it in retrieved:
            if isinstance(it, Mapping) and isinstance(it.get("id"), str) and isinstance(it.get("source"), str):
                sources.setdefault(it["id"], it["source"])
    return dedupe([(sources.get(c) or to_level(c, level)) if isinstance(c, str) else None for c in citations])


def citation_validity(citations: Any, retrieved: Sequence[Any], level: str) -> Score:
    """Distinct cited ids that were retrieved / distinct cited ids; 0 with no citations.

    Ids are compared at ``level`` (the case's gold granularity; chunk when the
    case has no gold). The caller makes it unmeasured when there is no answer.
    """
    cited = _cited(citations, level, retrieved)
    if not cited:
        return 0.0, ""
    got = {to_level(it, level) for it in retrieved}
    return sum(1 for c in cited if c in got) / len(cited), ""


def citation_accuracy(citations: Any, gold: Sequence[str], level: str, retrieved: Sequence[Any] = ()) -> Score:
    """Distinct cited ids that are gold / distinct cited ids; 0 with no citations; needs gold."""
    if not gold:
        return None, "no_gold"
    cited = _cited(citations, level, retrieved)
    if not cited:
        return 0.0, ""
    g = set(gold)
    return sum(1 for c in cited if c in g) / len(cited), ""


def faithfulness(judge: ClaimJudge, answer: str, contexts: Sequence[str]) -> Score:
    """Supported claims / claims, as the judge decides; no_context when no context text."""
    if not contexts:
        return None, "no_context"
    score, reason = judge.faithfulness(answer, contexts)
    if score is None:
        return None, reason or "no_claims"
    return float(score), ""


def answer_relevance(judge: ClaimJudge, question: str, answer: str) -> Score:
    """The judge's relevance score of the answer to the question, in [0, 1]."""
    score = judge.relevance(question, answer)
    if score is None:
        return None, "no_score"
    return float(score), ""


# --- the declarations --------------------------------------------------------------------


def contexts(items: Sequence[Any], corpus: Any) -> list[str]:
    """The text of each retrieved item: its own ``text``, else its chunk's in the corpus."""
    out: list[str] = []
    for it in items:
        if not isinstance(it, Mapping):
            it = {"id": it} if isinstance(it, str) else {}
        text = it.get("text")
        if isinstance(text, str) and text.strip():
            out.append(text)
            continue
        cid = it.get("id")
        if corpus is not None and isinstance(cid, str):
            ch = corpus.chunk(cid)
            if ch is not None and isinstance(getattr(ch, "text", None), str):
                out.append(ch.text)
    return out


def _answered(result: CaseResult) -> str | None:
    """The answer to judge: the case is ok and its answer is not blank; else None."""
    answer = result.answer
    return answer if answer is not None and answer.strip() else None


def _unanswered(result: CaseResult) -> Score:
    """Unmeasured for want of an answer: not_ok (the case failed) or no_answer."""
    return None, "not_ok" if result.status != "ok" else "no_answer"


@metric(name="faithfulness", stage="generation", builtin=True, description="supported claims / claims (judge)")
def _faithfulness(case: EvalCase, result: CaseResult) -> Score:
    answer = _answered(result)
    if answer is None:
        return _unanswered(result)
    return faithfulness(result.judge, answer, contexts(result.retrieved_list, result.corpus))


@metric(name="must_include_coverage", stage="generation", builtin=True,
        description="must_include phrases found / phrases")
def _must_include(case: EvalCase, result: CaseResult) -> Score:
    return must_include_coverage(result.answer, case.must_include)


@metric(name="must_not_include_violation", stage="generation", direction="lower", kind="rate", builtin=True,
        description="1 if any must_not_include phrase is in the answer")
def _must_not_include(case: EvalCase, result: CaseResult) -> Score:
    return must_not_include_violation(result.answer, case.must_not_include)


@metric(name="citation_validity", stage="generation", builtin=True,
        description="cited ids that were retrieved / cited ids")
def _citation_validity(case: EvalCase, result: CaseResult) -> Score:
    if _answered(result) is None:
        return _unanswered(result)
    if result.unlogged:
        return None, "no_retrieval"
    return citation_validity(result.get("citations"), result.retrieved_list, result.level)


@metric(name="citation_accuracy", stage="generation", builtin=True, description="cited ids that are gold / cited ids")
def _citation_accuracy(case: EvalCase, result: CaseResult) -> Score:
    return citation_accuracy(result.get("citations"), case.gold, result.level, result.retrieved_list)


@metric(name="answer_relevance", stage="generation", builtin=True,
        description="judge score of the answer to the question")
def _answer_relevance(case: EvalCase, result: CaseResult) -> Score:
    answer = _answered(result)
    if answer is None:
        return _unanswered(result)
    return answer_relevance(result.judge, case.question, answer)




# --- answer correctness against the reference answer (definitions: labkit.metrics.reference) ----


def _match_ruled_out(answer: str, ref: str) -> bool:
    """Whether the text outside the answer's placeholders already rules out an exact match:
    its normalised pieces do not occur, in order, in the normalised reference."""
    norm_ref, pos, start = reference.normalize_answer(ref), 0, 0
    pieces = []
    for m in _PLACEHOLDER.finditer(answer):
        pieces.append(answer[start:m.start()])
        start = m.end()
    pieces.append(answer[start:])
    for piece in pieces:
        s = reference.normalize_answer(piece)
        if not s:
            continue
        at = norm_ref.find(s, pos)
        if at < 0:
            return True
        pos = at + len(s)
    return False


def against_reference(case: EvalCase, result: CaseResult, compare: Callable[[str, str], float], *,
                      exact: bool = False) -> Score:
    """``compare(answer, reference_answer)``, or why not: ``no_reference`` (none, or no token
    after normalisation), ``not_ok`` / ``no_answer`` (as faithfulness), ``redacted`` (a
    placeholder in the answer hides text whose tokens are unknown; for exact match only when
    the text around it does not already rule a match out)."""
    ref = case.reference_answer
    if ref is None or not reference.tokens(ref):
        return None, "no_reference"
    answer = _answered(result)
    if answer is None:
        return _unanswered(result)
    if _PLACEHOLDER.search(answer) and not (exact and _match_ruled_out(answer, ref)):
        return None, REDACTED
    return compare(answer, ref), ""


@metric(name="exact_match", stage="generation", kind="rate", builtin=True,
        description="1 if the normalised answer equals the normalised reference answer")
def _exact_match(case: EvalCase, result: CaseResult) -> Score:
    return against_reference(case, result, reference.exact_match, exact=True)


@metric(name="token_f1", stage="generation", builtin=True,
        description="F1 of the answer's and the reference answer's normalised tokens (multisets)")
def _token_f1(case: EvalCase, result: CaseResult) -> Score:
    return against_reference(case, result, reference.token_f1)


@metric(name="rouge_l", stage="generation", builtin=True,
        description="ROUGE-L F1 (longest common subsequence) of answer and reference answer tokens")
def _rouge_l(case: EvalCase, result: CaseResult) -> Score:
    return against_reference(case, result, reference.rouge_l)


GENERATION_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "generation" and s.builtin)
