"""Claim-support and relevance judges.

:class:`LexicalJudge` is the default: deterministic, offline, documented in
docs/metrics.md. :class:`LLMJudge` asks an OpenAI-compatible chat endpoint
with a versioned prompt template and caches its verdicts on disk.
Both satisfy the :class:`Judge` protocol used by ``labkit.metrics.score_cases``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from labkit.errors import ConfigError, LabkitError

# --- tokenization -------------------------------------------------------------------

_STOP_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves also may might must shall us via
don doesn didn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn cannot ll ve re
"""
STOPWORDS = frozenset(_STOP_TEXT.split())
"""Function words ignored when comparing claims with context (English)."""

_TOKEN = re.compile(r"[^\W_]+")
_CITATION = re.compile(r"\[[^\[\]\n]*\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _stem(tok: str) -> str:
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 3 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")):
        return tok[:-1]
    return tok


def content_words(text: str) -> list[str]:
    """Content words of a text: NFKC, lowercase, runs of letters/digits, stopwords and
    single letters dropped, plural ``-s``/``-ies`` folded (``keys`` -> ``key``)."""
    toks = _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    return [
        _stem(t) for t in toks if t not in STOPWORDS and (len(t) > 1 or t.isdigit())
    ]


def strip_citations(text: str) -> str:
    """Remove citation markers like ``[security-runbook#2]`` or ``[1]``."""
    return _CITATION.sub("", text)


def sentences(text: str) -> list[str]:
    """Split on ., ! or ? followed by whitespace, and on line breaks; empty parts dropped."""
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


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


def register_judge(name: str) -> Callable[[Callable[..., Judge]], Callable[..., Judge]]:
    """Decorator: register a judge factory (class or function taking config keywords)."""

    def deco(factory: Callable[..., Judge]) -> Callable[..., Judge]:
        JUDGES[name] = factory
        return factory

    return deco


def get_judge(spec: str | Mapping[str, Any] | Judge | None = None) -> Judge:
    """A judge from a name (``"lexical"``), a config mapping (``{"type": "llm", ...}``),
    an existing judge (returned as is) or None (the lexical default)."""
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
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}", field="judge", known=sorted(JUDGES))
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


@register_judge("lexical")
@dataclass(frozen=True)
class LexicalJudge:
    """Deterministic offline judge.

    - A claim is a sentence of the answer (citation markers stripped) with at
      least ``min_content_words`` distinct content words; shorter sentences
      ("Yes.", "I don't know.") are not claims.
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
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}", field="threshold")
        if self.min_content_words < 1:
            raise ConfigError("min_content_words must be >= 1", field="min_content_words")

    def claims(self, answer: str) -> list[str]:
        """The claim sentences of an answer."""
        return [
            s
            for s in sentences(strip_citations(answer or ""))
            if len(set(content_words(s))) >= self.min_content_words
        ]

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


# --- LLM judge ------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt; its hash goes into the cache key and the run manifest."""

    name: str
    version: str
    system: str
    user: str

    @property
    def hash(self) -> str:
        blob = json.dumps([self.name, self.version, self.system, self.user], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def render(self, **fields: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(**fields)},
        ]


FAITHFULNESS_PROMPT = PromptTemplate(
    name="faithfulness",
    version="faithfulness-v1",
    system=(
        "You check whether an answer is supported by retrieved context. Split the answer "
        "into factual claims (one per sentence; skip greetings and refusals). A claim is "
        "supported only if the context states it. Reply with one JSON object and nothing "
        'else: {"claims": <number of claims>, "supported": <number supported>}'
    ),
    user="Context:\n{context}\n\nAnswer:\n{answer}",
)

RELEVANCE_PROMPT = PromptTemplate(
    name="relevance",
    version="relevance-v1",
    system=(
        "You rate how directly an answer addresses a question, from 0 (unrelated or "
        "evasive) to 1 (fully addresses it). Reply with one JSON object and nothing else: "
        '{"score": <number between 0 and 1>}'
    ),
    user="Question:\n{question}\n\nAnswer:\n{answer}",
)


class JudgeReplyError(LabkitError):
    """The judge endpoint's reply held no usable JSON object."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def parse_json_reply(text: str) -> dict[str, Any]:
    """The first JSON object in a reply: fenced (```json ... ```), bare, or
    surrounded by chatty text. Raises JudgeReplyError when there is none."""
    candidates = [m.group(1) for m in _FENCE.finditer(text or "")] + [text or ""]
    dec = json.JSONDecoder()
    for cand in candidates:
        s = cand.strip()
        for i, ch in enumerate(s):
            if ch != "{":
                continue
            try:
                obj, _ = dec.raw_decode(s, i)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    snippet = (text or "")[:80].replace("\n", " ")
    raise JudgeReplyError(f"judge reply has no JSON object: {snippet!r}")


def _num(obj: Mapping[str, Any], key: str) -> float:
    val = obj.get(key)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise JudgeReplyError(f"judge reply field {key!r} is not a number: {val!r}")
    return float(val)
