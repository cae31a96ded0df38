"""Claim-support and relevance judges.

:class:`LexicalJudge` is the default: deterministic, offline, documented in
docs/metrics.md. The judges behind an endpoint have modules of their own, imported when
first asked for: the LLM judge (:mod:`labkit.llmjudge`, ``labkit.judges.LLMJudge`` as before)
and the embedding judge (:mod:`labkit.embedjudge`); :class:`EndpointWatch` is how either stops
a scoring its endpoint never answers (:data:`FIRST_VERDICTS`).
All satisfy the :class:`Judge` protocol used by ``labkit.metrics.score_cases``.
:func:`judge_many` is how scoring asks a judge about every case of a run at once
(a judge's ``*_many`` batch when it has one; worker processes for a large lexical batch).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from labkit.config import check_options_of
from labkit.errors import ConfigError, JudgeRefused
from labkit.errors import (
    JudgeReplyError as JudgeReplyError,  # (the LLM judge's: importable from here as before)
)
from labkit.text import (
    content_word_set,
    content_words,
    sentence_word_sets,
    sentences,
    strip_citations,
)

if TYPE_CHECKING:  # (the names of _LLM_NAMES, as labkit.llmjudge holds them)
    from labkit.llmjudge import FAITHFULNESS_PROMPT as FAITHFULNESS_PROMPT
    from labkit.llmjudge import RELEVANCE_PROMPT as RELEVANCE_PROMPT
    from labkit.llmjudge import LLMJudge as LLMJudge
    from labkit.llmjudge import PromptTemplate as PromptTemplate
    from labkit.llmjudge import parse_json_reply as parse_json_reply

#: What the LLM judge's module holds that was read from this one before it had a module of its
#: own: still importable from here (the module is imported when one is first read).
_LLM_NAMES = frozenset({"LLMJudge", "PromptTemplate", "FAITHFULNESS_PROMPT", "RELEVANCE_PROMPT", "parse_json_reply"})


def __getattr__(name: str) -> Any:
    """The names of :data:`_LLM_NAMES`, from :mod:`labkit.llmjudge`."""
    if name not in _LLM_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("labkit.llmjudge"), name)


# --- protocol and registry ------------------------------------------------------------


@runtime_checkable
class Judge(Protocol):
    """A judge scores claim support (faithfulness) and answer relevance."""

    @property
    def name(self) -> str: ...

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]: ...

    def relevance(self, question: str, answer: str) -> float | None: ...

    def describe(self) -> dict[str, Any]: ...


JUDGES: dict[str, Callable[..., Judge]] = {}

#: The judges whose module registers them when it is imported, imported when first asked for.
_JUDGE_MODULES = {"llm": "labkit.llmjudge", "embedding": "labkit.embedjudge"}


def register_judge(name: str) -> Callable[[Callable[..., Judge]], Callable[..., Judge]]:
    """Decorator: register a judge factory (class or function taking config keywords)."""

    def deco(factory: Callable[..., Judge]) -> Callable[..., Judge]:
        JUDGES[name] = factory
        return factory

    return deco


def get_judge(spec: str | Mapping[str, Any] | Judge | None = None) -> Judge:
    """A judge from a name, a config mapping (``{"type": "llm", ...}``), a judge (as is) or None (lexical)."""
    if spec is None:
        return LexicalJudge()
    if isinstance(spec, str):
        name, cfg = spec, {}
    elif isinstance(spec, Mapping):
        cfg = dict(spec)
        name = str(cfg.pop("type", cfg.pop("name", "lexical")))
    elif isinstance(spec, Judge):
        return spec
    else:
        raise ConfigError(f"cannot build a judge from {type(spec).__name__}", field="judge")
    if name not in JUDGES and name in _JUDGE_MODULES:
        importlib.import_module(_JUDGE_MODULES[name])  # (it registers its judge)
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}", field="judge", known=sorted({*JUDGES, *_JUDGE_MODULES}))
    check_options_of(JUDGES[name], cfg, what=f"judge {name!r}", field="judge")
    try:
        return JUDGES[name](**cfg)
    except TypeError as e:
        raise ConfigError(f"bad options for judge {name!r}: {e}", field="judge") from None


# --- lexical judge --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim of an answer and the best-matching context sentence."""

    claim: str
    supported: bool
    overlap: float
    evidence: str | None


_APOSTROPHE = "['\u2019\u02bc\u2018\uff07]"  # ASCII, and the typographic (and fullwidth) ones models write
ABSTENTION = re.compile(
    rf"\b(?:i|we)\s+(?:could\s+not|couldn{_APOSTROPHE}t|cannot|can{_APOSTROPHE}t|can\s+not|do\s+not"
    rf"|don{_APOSTROPHE}t|am\s+unable\s+to)\s+"
    r"(?:find|answer|help|know|say|confirm)\b"
    r"|\bno\s+information\s+(?:about|on)\b"
    r"|\bnot\s+(?:covered|mentioned|found)\s+in\s+(?:the\s+)?(?:knowledge\s+base|documentation|docs)\b",
    re.IGNORECASE,
)

def abstains(text: str) -> bool:
    """Whether ``text`` holds an abstention phrase (``ABSTENTION.search``). Every phrase holds
    ``not``, ``n't``, ``unable`` or ``information``: plain ASCII text with none of them (in ASCII
    text, ignoring case is lowercasing) is answered without the search."""
    if text.isascii():
        low = text.lower()
        no_nt = "'" not in low or "n't" not in low  # an apostrophe is looked for faster than n't
        if no_nt and "not" not in low and "unable" not in low and "information" not in low:
            return False
    return ABSTENTION.search(text) is not None


#: clause boundaries inside a sentence that holds an abstention phrase
_CLAUSE = re.compile(r"[,;:()\u2014]|\s-\s|\b(?:but|however|although|though|whereas)\b", re.IGNORECASE)


@register_judge("lexical")
@dataclass(frozen=True)
class LexicalJudge:
    """Deterministic offline judge.

    - A claim is a sentence of the answer (citation markers stripped) with at
      least ``min_content_words`` distinct content words; shorter sentences
      ("Yes.", "I don't know.") are not claims, and neither is an abstention
      (a sentence matching ``ABSTENTION``, e.g. "I could not find this in the
      knowledge base"): declining to answer asserts nothing about the world.
    - A claim is supported when one sentence of the retrieved context contains
      at least ``threshold`` of the claim's distinct content words.
    - faithfulness = supported claims / claims; unmeasured (no_claims) without claims.
    - relevance = share of the question's distinct content words that occur in
      the answer; None when the question has none or the answer is empty.
    """

    threshold: float = 0.6
    min_content_words: int = 2
    name: str = "lexical"

    def __post_init__(self) -> None:
        t, m = self.threshold, self.min_content_words
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 < t <= 1.0:
            raise ConfigError(f"threshold must be a number in (0, 1], got {t!r}", field="threshold")
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(f"min_content_words must be a whole number >= 1, got {m!r}", field="min_content_words")

    def claims(self, answer: str) -> list[str]:
        """The claim sentences of an answer. A sentence with an abstention phrase is split into
        its clauses: the abstaining clause asserts nothing, the others still do ("We cannot
        confirm it, but refunds are approved at once" claims the refunds)."""
        return [c for c, _ in self._claim_words(answer)]

    def _claim_words(self, answer: str) -> list[tuple[str, frozenset[str]]]:
        """Each claim of :meth:`claims` with its distinct content words."""
        out: list[tuple[str, frozenset[str]]] = []
        for s in sentences(strip_citations(answer or "")):
            parts = _CLAUSE.split(s) if abstains(s) else [s]
            for c in parts:
                words = frozenset(content_words(c))
                if len(words) >= self.min_content_words and not abstains(c):
                    out.append((c.strip(), words))
        return out

    def explain(self, answer: str, contexts: Sequence[str]) -> list[ClaimVerdict]:
        """Per-claim verdicts with the best-overlapping context sentence."""
        ctx = [(s, set(content_words(s))) for c in contexts for s in sentences(c or "")]
        out: list[ClaimVerdict] = []
        for claim in self.claims(answer):
            words = set(content_words(claim))
            best, best_s = 0.0, None
            for s, cw in ctx:
                ov = len(words & cw) / len(words)
                if ov > best:
                    best, best_s = ov, s
            out.append(ClaimVerdict(claim, best >= self.threshold - 1e-12, best, best_s))
        return out

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]:
        verdicts = self.explain(answer, contexts)
        if not verdicts:
            return None, "no_claims"
        return sum(v.supported for v in verdicts) / len(verdicts), ""

    def relevance(self, question: str, answer: str) -> float | None:
        q = set(content_words(question or ""))
        a = set(content_words(strip_citations(answer or "")))
        if not q or not a:
            return None
        return len(q & a) / len(q)

    def describe(self) -> dict[str, Any]:
        return {"type": "lexical", "threshold": self.threshold, "min_content_words": self.min_content_words}

    def faithfulness_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[float | None, str]]:
        """:meth:`faithfulness` of every ``(answer, contexts)``, each distinct context's sentences and
        their content words worked out once for the batch (a chunk retrieved by many cases is read once)."""
        batch = _LexicalBatch(self)
        return [batch.faithfulness(batch.answer(answer or ""), [c or "" for c in ctxs]) for answer, ctxs in items]

    def relevance_many(self, items: Sequence[tuple[str, str]]) -> list[float | None]:
        """:meth:`relevance` of every ``(question, answer)``, each distinct question read once."""
        batch = _LexicalBatch(self)
        return [batch.relevance(question or "", batch.answer(answer or "")) for question, answer in items]


#: A case's lexical verdicts: faithfulness (None without context) and relevance.
Verdicts = tuple[tuple[float | None, str] | None, float | None]


#: What the lexical judge reads in an answer (citation markers stripped): the content words of each
#: claim (:meth:`LexicalJudge.claims`) and the distinct content words of the whole answer; a plain
#: pair, built once a case (a named tuple is built by a call into Python)
_Answer = tuple[list[AbstractSet[str]], AbstractSet[str]]


class _Needs(dict[int, int]):
    """The least count of a claim's ``n`` words a sentence must hold for the claim to be supported,
    for each ``n`` (worked out on first sight)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.floor = threshold - 1e-12

    def __missing__(self, n: int) -> int:
        got = self[n] = next(m for m in range(n + 1) if m / n >= self.floor or m == n)
        return got


class _LexicalBatch:
    """The lexical judge's verdicts over a batch, each distinct context and question analysed once.

    The same verdicts as :meth:`LexicalJudge.faithfulness` and :meth:`LexicalJudge.relevance`,
    with fewer passes over each text:

    - an answer is split into sentences once; the abstention pattern is searched in each sentence
      only when it occurs in the answer at all (a match inside a sentence is a match in the answer:
      sentences are separated by whitespace only); an answer without it, and a context, is read as
      the content words of its sentences (:func:`labkit.text.sentence_word_sets`), those without
      any left out: they make no claim and hold none of a claim's words;
    - the answer's content words (for relevance) are the union of its sentences' content words: the
      tokeniser's NFKC, lowercasing and token runs never reach across the whitespace between
      sentences, so the tokens of the whole are the tokens of its sentences;
    - a claim of ``n`` words is supported when one context sentence holds at least ``needs[n]`` of
      them, the least count whose share ``count / n`` passes the threshold (the share grows with the
      count, so that is where the best share passes).
    """

    def __init__(self, judge: LexicalJudge) -> None:
        self.min_words = judge.min_content_words
        self.needs = _Needs(judge.threshold)
        self._contexts: dict[str, list[set[str]]] = {}
        self._questions: dict[str, frozenset[str]] = {}

    def answer(self, answer: str) -> _Answer:
        text = strip_citations(answer)
        if abstains(text):
            return self._abstaining(text)
        sets = sentence_word_sets(text)
        min_words = self.min_words
        words = sets[0] if len(sets) == 1 else set().union(*sets)  # one sentence: its set, never changed
        return [w for w in sets if len(w) >= min_words], words

    def _abstaining(self, text: str) -> _Answer:
        """:meth:`answer` of a text holding an abstention phrase: its clauses are read where one is."""
        claims: list[AbstractSet[str]] = []
        words: set[str] = set()
        min_words = self.min_words
        for s in sentences(text):
            sw = content_word_set(s)
            words.update(sw)
            if abstains(s):
                for c in _CLAUSE.split(s):
                    cw = content_word_set(c)
                    if len(cw) >= min_words and not abstains(c):
                        claims.append(cw)
            elif len(sw) >= min_words:
                claims.append(sw)
        return claims, words

    def context(self, text: str) -> list[set[str]]:
        """The distinct content words of each sentence of a context text that has any (once per text)."""
        got = self._contexts.get(text)
        if got is None:
            got = self._contexts[text] = sentence_word_sets(text)
        return got

    def faithfulness(self, answer: _Answer, contexts: Sequence[str]) -> tuple[float | None, str]:
        claims = answer[0]
        if not claims:
            return None, "no_claims"
        distinct = dict.fromkeys(contexts)  # often one text: the chunks a case retrieved may read alike
        sets = self.context(contexts[0]) if len(distinct) == 1 else [ws for c in distinct for ws in self.context(c)]
        supported = 0
        for cw in claims:  # loops, not any() over a generator: a context has a sentence or two
            need = self.needs[len(cw)]
            for ws in sets:
                if len(cw & ws) >= need:
                    supported += 1
                    break
            else:
                supported += not need  # no sentence holds the words: supported when none is needed
        return supported / len(claims), ""

    def relevance(self, question: str, answer: _Answer) -> float | None:
        q = self._questions.get(question)
        if q is None:
            q = self._questions[question] = content_word_set(question)
        words = answer[1]
        if not q or not words:
            return None
        return len(words & q) / len(q)

    def verdicts(self, items: Sequence[tuple[str, str, Sequence[str]]]) -> list[Verdicts]:
        """(faithfulness, relevance) of each ``(question, answer, contexts)``; faithfulness None when
        there is no context (the caller's ``no_context``)."""
        out: list[Verdicts] = []
        for question, answer, contexts in items:
            got = self.answer(answer)
            out.append((self.faithfulness(got, contexts) if contexts else None, self.relevance(question or "", got)))
        return out


# --- judging many cases at once ------------------------------------------------------------
# (spreading a large run over processes is scoring's job: labkit.scoring scores results.jsonl in
# parts, in worker processes, so a judge works out its verdicts in the process it is called in)


def judge_many(judge: Any, what: str, items: Sequence[tuple[Any, Any]]) -> list[Any]:
    """``judge.faithfulness(answer, contexts)`` or ``judge.relevance(question, answer)`` (``what``)
    for every item, in order. A judge with a ``faithfulness_many`` / ``relevance_many`` method
    gets the whole batch (the lexical judge: every distinct text analysed once)."""
    if what not in ("faithfulness", "relevance"):
        raise ValueError(f"unknown verdict {what!r}")
    many = getattr(judge, f"{what}_many", None)
    if not callable(many) or _overridden_below(type(judge), what, f"{what}_many"):
        one = getattr(judge, what)
        return [one(a, b) for a, b in items]
    return list(many(items))


def _overridden_below(cls: type, one: str, many: str) -> bool:
    """Whether a subclass defines the verdict ``one`` below the class of its batch ``many``."""
    one_owner, many_owner = (next((c for c in cls.__mro__ if n in vars(c)), object) for n in (one, many))
    return not issubclass(many_owner, one_owner)


def lexical_verdicts(judge: LexicalJudge, items: Sequence[tuple[str, str, Sequence[str]]]) -> list[Verdicts]:
    """Both verdicts of the lexical judge for every ``(question, answer, contexts)``, in order:
    ``(faithfulness(answer, contexts), relevance(question, answer))``, faithfulness None when
    ``contexts`` is empty. Each answer is read once for both."""
    return _LexicalBatch(judge).verdicts(items)


# --- a judge behind an endpoint that never answers ------------------------------------------

#: How many verdicts a judge behind an endpoint (the LLM judge, the embedding judge) is asked
#: before it is known to answer at all: when each of its first ``FIRST_VERDICTS`` verdicts fails
#: with an endpoint error (refused connections, 5xx or timeouts after the retries, replies with no
#: verdict in them) and none was obtained (a verdict served from the judge's cache is one), the
#: endpoint is taken to be wrong (a URL, a model, a revoked key) and the scoring stops
#: (:class:`EndpointWatch`) instead of scoring every case ``judge_error``. docs/metrics.md.
FIRST_VERDICTS = 8


class EndpointWatch:
    """Whether a judge's endpoint answers: :meth:`answered` after each verdict obtained,
    :meth:`failed` after each one it failed to give, which raises
    :class:`~labkit.errors.JudgeRefused` (one line naming the endpoint, its credentials masked
    with :func:`labkit.openai_compat.scrub`, and the failure the first or the streak began with)

    - at the ``first``-th failure (:data:`FIRST_VERDICTS`) when no verdict was obtained before it:
      the endpoint never answered;
    - at the ``in_a_row``-th failure in a row, when set (the embedding judge's ``max_failures``):
      the endpoint went down. Without it a failure after an answer is the case's alone.

    ``what`` names the judge in the message (``judge``, ``embedding``)."""

    def __init__(self, what: str, endpoint: str, *, first: int = FIRST_VERDICTS, in_a_row: int | None = None) -> None:
        self.what, self.endpoint, self.first, self.in_a_row = what, endpoint, first, in_a_row
        self.answers = 0
        self.failures = 0
        self.streak: list[str] = []  # the reasons of the failures since the last answer

    def answered(self) -> None:
        self.answers += 1
        self.streak.clear()

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.streak.append(reason)
        if not self.answers and self.failures >= self.first:
            self._stop(f"answered none of the first {self.failures} verdicts asked of it (first failure: "
                       f"{self.streak[0]}): check its base_url, model and key")
        if self.in_a_row is not None and len(self.streak) >= self.in_a_row:
            last = "" if len(self.streak) == 1 else f"; last: {self.streak[-1]}"
            self._stop(f"failed {len(self.streak)} times in a row (first: {self.streak[0]}{last})")

    def _stop(self, why: str) -> None:
        from labkit.openai_compat import scrub

        raise JudgeRefused(scrub(f"{self.what} endpoint {self.endpoint} {why}"))
