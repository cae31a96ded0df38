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

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from labkit import patterns
from labkit.metrics import reference
from labkit.metrics.columns import Column, ColumnFn, line_answer, reads_column, statuses
from labkit.metrics.restore import restorable
from labkit.metrics.retrieval import dedupe, run_items, to_level, unlogged_mask
from labkit.registry import METRICS, metric
from labkit.text import normalize_phrase as normalize

if TYPE_CHECKING:
    from labkit.cases import EvalCase
    from labkit.judges import Verdicts
    from labkit.metrics.percase import CaseResult, CaseRun

Score = tuple[float | None, str]

#: the placeholders the default redactor writes (every catalogue type, dropped content): what an
#: answer is read with when nothing says how it was redacted (``redaction`` of score_cases)
PLACEHOLDERS = patterns.placeholder_pattern()
REDACTED = "redacted"


class ClaimJudge(Protocol):
    """What score_cases needs from a judge (see labkit.judges)."""

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]: ...

    def relevance(self, question: str, answer: str) -> float | None: ...


def phrases_found(answer: str | None, phrases: Iterable[str]) -> list[bool]:
    """Whether each phrase occurs in the answer (case/whitespace-insensitive)."""
    a = normalize(answer or "")
    return [normalize(p) in a for p in phrases]


def _placeholders(answer: str, placeholders: re.Pattern[str]) -> list[tuple[int, int, re.Pattern[str]]]:
    """(start, end, hidden-character pattern) of each placeholder in the normalized answer."""
    a = normalize(answer)
    out = []
    for tag in dict.fromkeys(m.group(1) for m in placeholders.finditer(answer)):
        chars = patterns.TYPE_CHARS.get(tag, r"[\s\S]")
        hidden = re.compile(f"(?:{chars})+", re.IGNORECASE)
        low = f"[{normalize(tag)}]"
        start = a.find(low)
        while start >= 0:
            out.append((start, start + len(low), hidden))
            start = a.find(low, start + 1)
    return out


def hidden_by_redaction(answer: str | None, phrase: str, *, placeholders: re.Pattern[str] = PLACEHOLDERS) -> bool:
    """Whether a redaction placeholder in the answer may hide the phrase (or a part of it);
    ``placeholders``: what the redactor of the answer writes (``Redactor.placeholders()``)."""
    if not answer or "[" not in answer:
        return False
    a, p = normalize(answer), normalize(phrase)
    for start, end, hidden in _placeholders(answer, placeholders):
        left, right = a[:start], a[end:]
        for i in range(len(p)):
            if not left.endswith(p[:i]):
                continue
            for j in range(len(p), i, -1):
                if right.startswith(p[j:]) and hidden.fullmatch(p[i:j]):
                    return True
    return False


def must_include_coverage(answer: str | None, phrases: Sequence[str], *,
                          placeholders: re.Pattern[str] = PLACEHOLDERS) -> Score:
    """Share of must_include phrases found; unmeasured (no_must_include) when none listed.

    A case with no answer (error, timeout) scores what it said: 0. A missing phrase a
    redaction placeholder may hide makes the check unmeasured (``redacted``).
    """
    if not phrases:
        return None, "no_must_include"
    found = phrases_found(answer, phrases)
    if any(not f and hidden_by_redaction(answer, p, placeholders=placeholders)
           for f, p in zip(found, phrases, strict=True)):
        return None, REDACTED
    return sum(found) / len(found), ""


def must_not_include_violation(answer: str | None, phrases: Sequence[str], *,
                               placeholders: re.Pattern[str] = PLACEHOLDERS, ok: bool = True) -> Score:
    """1 if any must_not_include phrase occurs in the answer; unmeasured when none listed, or
    when none occurs but a redaction placeholder may hide one (``redacted``). For a line that is
    not ok (``ok`` False; ``answer`` the text it recorded, if any: a timeout's partial text,
    recorded traffic), 1 when a phrase occurs in it, else unmeasured (``not_ok``: what it would
    have said is not known), which counts against the gate's budget."""
    if not phrases:
        return None, "no_must_not_include"
    if any(phrases_found(answer if isinstance(answer, str) else None, phrases)):
        return 1.0, ""
    if not ok:
        return None, "not_ok"
    if any(hidden_by_redaction(answer, p, placeholders=placeholders) for p in phrases):
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


class _Answers(NamedTuple):
    """Every case's answer, read once per run: ``answer[i]`` (``result.answer``), ``judged[i]`` (the
    answer to judge, :func:`_answered`) and ``why[i]``, the reason when it is None (:func:`_unanswered`)."""

    answer: list[str | None]
    judged: list[str | None]
    why: list[str]


def _answers(run: CaseRun) -> _Answers:
    status = run.batch(statuses)
    answer = list(map(line_answer, run.rows, status))
    judged = [a if a is not None and a.strip() else None for a in answer]
    why = ["" if j is not None else ("not_ok" if s != "ok" else "no_answer") for s, j in zip(status, judged, strict=True)]
    return _Answers(answer, judged, why)


class _Builder:
    """A Column built case by case, normalised as :func:`labkit.metrics.columns.column_of` does."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.reasons: list[str] = []

    def unmeasured(self, reason: str) -> None:
        self.values.append(math.nan)
        self.reasons.append(reason or "unmeasured")

    def measured(self, value: float) -> None:
        if value != value and isinstance(value, float):  # NaN: unmeasured
            self.unmeasured("")
            return
        self.values.append(float(value))
        self.reasons.append("")

    def score(self, got: Score) -> None:
        val, reason = got
        if val is None:
            self.unmeasured(reason)
        else:
            self.measured(val)

    def column(self) -> Column:
        import numpy as np

        return Column(np.asarray(self.values, dtype=np.float64), self.reasons)


def _scores_column(scores: list[Score]) -> Column:
    """A Column from ``(value, reason)`` pairs (a value a float or None), normalised as
    :func:`labkit.metrics.columns.column_of` does, with one pass per list instead of a loop."""
    import numpy as np

    values = np.asarray([math.nan if v is None else v for v, _ in scores], dtype=np.float64)
    reasons = ["" if v is not None else r for v, r in scores]
    for i in np.flatnonzero(np.isnan(values)).tolist():
        reasons[i] = reasons[i] or "unmeasured"
    return Column(values, reasons)


_ZERO: Score = (0.0, "")
_ONE: Score = (1.0, "")


def _judge_inputs(run: CaseRun) -> list[tuple[str, str, list[str]] | Score]:
    """Per case what the judge gets (question, answer, contexts), or why it is not judged."""
    ans = run.batch(_answers)
    items = run.batch(run_items)
    return [(None, why) if a is None else (case.question, a, texts)
            for case, a, why, texts in zip(run.cases, ans.judged, ans.why, items.texts_by_case(), strict=True)]


def _lexical(run: CaseRun) -> list[Verdicts | None]:
    """The lexical judge's two verdicts of each answered case, both from one reading of the answer."""
    from labkit.judges import lexical_verdicts

    inputs = run.batch(_judge_inputs)
    todo = [x for x in inputs if len(x) == 3]
    got = iter(lexical_verdicts(run.judge, todo))
    return [next(got) if len(x) == 3 else None for x in inputs]


def _is_lexical(judge: Any) -> bool:
    from labkit.judges import LexicalJudge

    return type(judge) is LexicalJudge


def _faithfulness(run: CaseRun) -> Column:
    """Supported claims / claims as the judge decides, every case's claims judged in one batch."""
    from labkit.judges import judge_many

    inputs = run.batch(_judge_inputs)
    out = _Builder()
    if _is_lexical(run.judge):
        no_context: Score = (None, "no_context")
        scores: list[Score] = []
        add = scores.append
        for x, v in zip(inputs, run.batch(_lexical), strict=True):
            if v is None:
                add(x)
            elif v[0] is None:
                add(no_context)
            else:
                val, reason = v[0]
                add((None, reason or "no_claims") if val is None else (val, ""))
        return _scores_column(scores)
    todo = [i for i, x in enumerate(inputs) if len(x) == 3 and x[2]]
    verdicts = judge_many(run.judge, "faithfulness", [(inputs[i][1], inputs[i][2]) for i in todo])
    got: dict[int, Score] = dict(zip(todo, verdicts, strict=True))
    for i, x in enumerate(inputs):
        if len(x) != 3:
            out.score(x)
        elif i not in got:
            out.unmeasured("no_context")
        else:
            val, reason = got[i]
            out.unmeasured(reason or "no_claims") if val is None else out.measured(float(val))
    return out.column()


def _answer_relevance(run: CaseRun) -> Column:
    """The judge's relevance score of each answered case, judged in one batch."""
    from labkit.judges import judge_many

    inputs = run.batch(_judge_inputs)
    out = _Builder()
    if _is_lexical(run.judge):
        no_score: Score = (None, "no_score")
        return _scores_column([x if v is None else (no_score if v[1] is None else (v[1], ""))
                               for x, v in zip(inputs, run.batch(_lexical), strict=True)])
    todo = [i for i, x in enumerate(inputs) if len(x) == 3]
    got = iter(judge_many(run.judge, "relevance", [(inputs[i][0], inputs[i][1]) for i in todo]))
    verdicts = [next(got) if len(x) == 3 else None for x in inputs]
    for x, v in zip(inputs, verdicts, strict=True):
        if len(x) != 3:
            out.score(x)
        elif v is None:
            out.unmeasured("no_score")
        else:
            out.measured(float(v))
    return out.column()


def _phrases(kind: str) -> ColumnFn:
    """The column of must_include_coverage (``kind`` ``include``) or must_not_include_violation
    (``exclude``): each answer and each distinct phrase normalised once per run, and the redaction
    check only for an answer with a placeholder in it."""

    def compute(run: CaseRun) -> Column:
        answers = run.batch(_answers).answer
        norm = run.batch(_normalized)
        phrase = _PhraseNorm()
        ph = run.placeholders
        include = kind == "include"
        none: Score = (None, "no_must_include" if include else "no_must_not_include")
        scores: list[Score] = []
        add = scores.append
        for r, answer, a, status in zip(run.rows, answers, norm, run.batch(statuses), strict=True):
            phrases = r.case.must_include if include else r.case.must_not_include
            if not phrases:
                add(none)
                continue
            if not include and status != "ok":  # a leak in what was recorded is a leak; without it, unknown
                add(must_not_include_violation(r.get("answer"), phrases, ok=False))
                continue
            found = [phrase[p] in a for p in phrases]
            if include:  # a placeholder looked for only when a phrase is missing
                if not all(found) and _has_placeholder(answer, ph) and any(
                        not f and hidden_by_redaction(answer, p, placeholders=ph)
                        for f, p in zip(found, phrases, strict=True)):
                    add((None, REDACTED))
                else:
                    add((sum(found) / len(found), ""))
            elif any(found):
                add(_ONE)
            elif _has_placeholder(answer, ph) and any(hidden_by_redaction(answer, p, placeholders=ph) for p in phrases):
                add((None, REDACTED))
            else:
                add(_ZERO)
        return _scores_column(scores)

    compute.__name__ = compute.__qualname__ = f"phrases({kind})"
    compute.__doc__ = (must_include_coverage if kind == "include" else must_not_include_violation).__doc__
    return compute


def _has_placeholder(answer: str | None, placeholders: re.Pattern[str]) -> bool:
    """Whether a redaction placeholder is in the answer."""
    return answer is not None and "[" in answer and placeholders.search(answer) is not None


class _PhraseNorm(dict[str, str]):
    """Each phrase's :func:`normalize`, worked out on first sight."""

    def __missing__(self, phrase: str) -> str:
        out = self[phrase] = normalize(phrase)
        return out


def _normalized(run: CaseRun) -> list[str]:
    """Every case's answer as phrase matching reads it (:func:`normalize`; ``""`` without an answer),
    only for cases with phrases to look for."""
    return [normalize(a or "") if r.case.must_include or r.case.must_not_include else ""
            for r, a in zip(run.rows, run.batch(_answers).answer, strict=True)]


def _cited_ids(run: CaseRun) -> list[tuple[str, ...]]:
    """Every case's distinct cited ids at its level (:func:`_cited`), from the run's items."""
    items = run.batch(run_items)
    start, levels, named, sources = items.start, items.levels, items.ids, items.sources

    def source_of(c: str, i: int) -> str:
        """A chunk cited by case i counts for its source: the one its retrieved item names, else its id's."""
        a = start[i]
        got = named[a:start[i + 1]]
        return (sources[a + got.index(c)] if c in got else None) or c.split("#", 1)[0]

    out: list[tuple[str, ...]] = []
    for i, r in enumerate(run.rows):
        cits = r.get("citations")
        if not isinstance(cits, list) or not cits:
            out.append(())
        elif len(cits) == 1:  # one citation: no duplicate to drop
            c = cits[0]
            out.append(((source_of(c, i) if levels[i] == "source" else c),) if isinstance(c, str) else ())
        elif levels[i] != "source":
            out.append(tuple(dedupe([c if isinstance(c, str) else None for c in cits])))
        else:
            out.append(tuple(dedupe([source_of(c, i) if isinstance(c, str) else None for c in cits])))
    return out


def _citation_validity(run: CaseRun) -> Column:
    """Distinct cited ids that were retrieved / distinct cited ids (:func:`citation_validity`) of each
    answered case that logs its retrieval."""
    items = run.batch(run_items)
    ans = run.batch(_answers)
    unlogged = run.batch(unlogged_mask).tolist()
    start, level_ids = items.start, items.level_ids
    scores: list[Score] = []
    add = scores.append
    for i, cited in enumerate(run.batch(_cited_ids)):
        if ans.judged[i] is None:
            add((None, ans.why[i]))
        elif unlogged[i]:
            add((None, "no_retrieval"))
        elif not cited:
            add(_ZERO)
        elif len(cited) == 1:  # one cited id: 1 / 1 or 0 / 1
            add(_ONE if cited[0] in level_ids[start[i]:start[i + 1]] else _ZERO)
        else:
            got = level_ids[start[i]:start[i + 1]]
            add((sum(1 for c in cited if c in got) / len(cited), ""))
    return _scores_column(scores)


def _citation_accuracy(run: CaseRun) -> Column:
    """Distinct cited ids that are gold / distinct cited ids (:func:`citation_accuracy`)."""
    no_gold: Score = (None, "no_gold")
    scores: list[Score] = []
    add = scores.append
    for gold, cited in zip(run.batch(run_items).golds, run.batch(_cited_ids), strict=True):
        if not gold:
            add(no_gold)
        elif not cited:
            add(_ZERO)
        elif len(cited) == 1:
            add(_ONE if cited[0] in gold else _ZERO)
        else:
            g = set(gold)
            add((sum(1 for c in cited if c in g) / len(cited), ""))
    return _scores_column(scores)


metric(name="faithfulness", stage="generation", builtin=True, description="supported claims / claims (judge)")(
    reads_column(_faithfulness))
metric(name="must_include_coverage", stage="generation", builtin=True,
       description="must_include phrases found / phrases")(
    reads_column(restorable("must_include_coverage", _phrases("include")),
                 "must_include phrases found / phrases"))
metric(name="must_not_include_violation", stage="generation", direction="lower", kind="rate", builtin=True,
       description="1 if any must_not_include phrase is in the answer")(
    reads_column(restorable("must_not_include_violation", _phrases("exclude")),
                 "1 if any must_not_include phrase is in the answer"))
metric(name="citation_validity", stage="generation", builtin=True,
       description="cited ids that were retrieved / cited ids")(reads_column(_citation_validity))
metric(name="citation_accuracy", stage="generation", builtin=True, description="cited ids that are gold / cited ids")(
    reads_column(_citation_accuracy, "cited ids that are gold / cited ids"))
metric(name="answer_relevance", stage="generation", builtin=True,
       description="judge score of the answer to the question")(reads_column(_answer_relevance))


# --- answer correctness against the reference answer (definitions: labkit.metrics.reference) ----


def _match_ruled_out(answer: str, ref: str, placeholders: re.Pattern[str]) -> bool:
    """Whether the text outside the answer's placeholders already rules out an exact match:
    its normalised pieces do not occur, in order, in the normalised reference."""
    norm_ref, pos, start = reference.normalize_answer(ref), 0, 0
    pieces = []
    for m in placeholders.finditer(answer):
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
    ph = result.run.placeholders
    if ph.search(answer) and not (exact and _match_ruled_out(answer, ref, ph)):
        return None, REDACTED
    return compare(answer, ref), ""


def _reference_inputs(run: CaseRun) -> list[Score | tuple[list[str] | None, list[str], str, str]]:
    """Per case either why it is not compared with its reference answer, or (answer tokens —
    None when a placeholder is in the answer —, reference tokens, answer, reference): each text
    normalised once for the three metrics."""
    ans = run.batch(_answers)
    out: list[Score | tuple[list[str] | None, list[str], str, str]] = []
    for r, answer, why in zip(run.rows, ans.judged, ans.why, strict=True):
        ref = r.case.reference_answer
        ref_tokens = reference.tokens(ref) if ref is not None else []
        if not ref_tokens:
            out.append((None, "no_reference"))
        elif answer is None:
            out.append((None, why))
        else:
            out.append((None if _has_placeholder(answer, run.placeholders) else reference.tokens(answer),
                        ref_tokens, answer, ref))  # type: ignore[arg-type]
    return out


def _against_reference(compare: Callable[[list[str], list[str]], float], *, exact: bool = False) -> ColumnFn:
    """The column of :func:`against_reference` for one comparison, from the shared tokens."""

    def compute(run: CaseRun) -> Column:
        scores: list[Score] = []
        add = scores.append
        for x in run.batch(_reference_inputs):
            if len(x) == 2:
                add(x)
                continue
            toks, ref_toks, answer, ref = x
            if toks is None and not (exact and _match_ruled_out(answer, ref, run.placeholders)):
                add((None, REDACTED))
            else:
                add((compare(reference.tokens(answer) if toks is None else toks, ref_toks), ""))
        return _scores_column(scores)

    compute.__doc__ = against_reference.__doc__
    return compute


def _same_tokens(a: list[str], b: list[str]) -> float:
    """exact_match on tokens: the normalised texts are equal exactly when their tokens are."""
    return float(a == b)


metric(name="exact_match", stage="generation", kind="rate", builtin=True,
       description="1 if the normalised answer equals the normalised reference answer")(
    reads_column(restorable("exact_match", _against_reference(_same_tokens, exact=True))))
metric(name="token_f1", stage="generation", builtin=True,
       description="F1 of the answer's and the reference answer's normalised tokens (multisets)")(
    reads_column(restorable("token_f1", _against_reference(reference.token_f1))))
metric(name="rouge_l", stage="generation", builtin=True,
       description="ROUGE-L F1 (longest common subsequence) of answer and reference answer tokens")(
    reads_column(restorable("rouge_l", _against_reference(reference.rouge_l))))


GENERATION_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "generation" and s.builtin)
