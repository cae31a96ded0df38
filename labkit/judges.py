"""Claim-support and relevance judges.

:class:`LexicalJudge` is the default: deterministic, offline, documented in
docs/metrics.md. :class:`LLMJudge` asks an OpenAI-compatible chat endpoint
with a versioned prompt template and caches its verdicts on disk.
Both satisfy the :class:`Judge` protocol used by ``labkit.metrics.score_cases``.
:func:`judge_many` is how scoring asks a judge about every case of a run at once
(a judge's ``*_many`` batch when it has one; worker processes for a large lexical batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from labkit.config import check_options_of
from labkit.errors import ClientHTTPError, ConfigError, EndpointError, JudgeRefused, JudgeReplyError
from labkit.text import (
    content_word_set,
    content_words,
    sentence_word_sets,
    sentences,
    strip_citations,
)

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
    if name not in JUDGES:
        raise ConfigError(f"unknown judge {name!r}", field="judge", known=sorted(JUDGES))
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
    name="faithfulness", version="faithfulness-v1",
    system=(
        "You check whether an answer is supported by retrieved context. Split the answer "
        "into factual claims (one per sentence; skip greetings and refusals). A claim is "
        "supported only if the context states it. Reply with one JSON object and nothing "
        'else: {"claims": <number of claims>, "supported": <number supported>}'
    ),
    user="Context:\n{context}\n\nAnswer:\n{answer}",
)

RELEVANCE_PROMPT = PromptTemplate(
    name="relevance", version="relevance-v1",
    system=(
        "You rate how directly an answer addresses a question, from 0 (unrelated or "
        "evasive) to 1 (fully addresses it). Reply with one JSON object and nothing else: "
        '{"score": <number between 0 and 1>}'
    ),
    user="Question:\n{question}\n\nAnswer:\n{answer}",
)


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


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


@register_judge("llm")
class LLMJudge:
    """A judge behind an OpenAI-compatible chat endpoint.

    ``base_url`` (API root with ``/v1``), ``model`` and ``api_key_env`` (the *name* of the
    environment variable holding the key; None for local servers) configure the endpoint
    through :class:`labkit.openai_compat.ChatClient`. Retryable faults (429, 5xx, timeouts,
    dropped connections) and replies with no JSON object are retried up to ``retries`` times
    with the backoff of :mod:`labkit.retry` (decorrelated jitter between ``backoff_s`` and
    ``max_backoff_s``, seeded by the request; Retry-After is a floor). ``timeout_s`` is the
    total deadline of one verdict, its retries and waits included (:mod:`labkit.deadline`: a
    server that drips its reply holds no call past it; no retry waits past it). A case whose
    verdict cannot be obtained is unmeasured with reason ``judge_error`` (counted in
    ``.errors``); a non-retryable HTTP error (401, 404 ...) raises, since every call would fail.

    Verdicts are cached on disk under ``cache_dir`` (None: no cache), keyed by
    model, prompt template hash, request params and the inputs, so a rerun
    gives the same scores without calling the endpoint.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        cache_dir: str | os.PathLike[str] | None = ".labkit-cache/judge",
        params: Mapping[str, Any] | None = None,
        faithfulness_prompt: PromptTemplate = FAITHFULNESS_PROMPT,
        relevance_prompt: PromptTemplate = RELEVANCE_PROMPT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError("retries must be an integer >= 0", field="retries")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s < float("inf"):
            raise ConfigError(f"must be a number of seconds above 0, got {timeout_s!r}", field="timeout_s")
        from labkit.openai_compat import register_config_secrets

        register_config_secrets(base_url)  # (the credentials of its URL, before the manifest records it)
        self.base_url, self.model, self.api_key_env, self.timeout_s = base_url, model, api_key_env, timeout_s
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.params: dict[str, Any] = {"temperature": 0.0, **dict(params or {})}
        self.faithfulness_prompt = faithfulness_prompt
        self.relevance_prompt = relevance_prompt
        self._sleep = sleep
        self._client: Any = None
        self.calls = 0
        self.cache_hits = 0
        self.errors: list[str] = []

    @property
    def name(self) -> str:
        return f"llm:{self.model}"

    def describe(self) -> dict[str, Any]:
        templates = (self.faithfulness_prompt, self.relevance_prompt)
        return {"type": "llm", "base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "params": self.params, "templates": {t.name: {"version": t.version, "hash": t.hash} for t in templates}}

    def client(self) -> Any:
        if self._client is None:
            from labkit.openai_compat import ChatClient

            self._client = ChatClient(self.base_url, self.model, self.api_key_env, self.timeout_s)
        return self._client

    def cache_key(self, template: PromptTemplate, fields: Mapping[str, str]) -> str:
        blob = json.dumps(
            {"model": self.model, "template": template.hash, "params": self.params, "inputs": dict(fields)},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def ask(self, template: PromptTemplate, **fields: str) -> dict[str, Any]:
        """The parsed JSON verdict for a template and its fields (cached); raises
        JudgeReplyError or the endpoint's error when retries are exhausted."""
        from labkit.deadline import Deadline
        from labkit.io import atomic_write_text
        from labkit.retry import Backoff, seeded

        key = self.cache_key(template, fields)
        path = self._cache_path(key)
        if path is not None and path.exists():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(cached, dict) and isinstance(cached.get("verdict"), dict):
                    self.cache_hits += 1
                    return dict(cached["verdict"])
            except (OSError, json.JSONDecodeError):
                pass
        messages = template.render(**fields)
        last: Exception | None = None
        backoff = Backoff(self.backoff_s, self.max_backoff_s, seeded(key))  # one schedule per request
        deadline = Deadline(self.timeout_s)  # the verdict's, retries included
        for attempt in range(self.retries + 1):
            if attempt and (wait := backoff.next(last)) >= deadline.remaining():
                break  # (no time left for another attempt: the last fault is the verdict's)
            if attempt:
                self._sleep(wait)
            self.calls += 1
            try:
                reply = self.client().chat(messages, deadline=deadline, **self.params)
                verdict = parse_json_reply(reply.text)
            except ClientHTTPError as e:
                raise JudgeRefused(f"judge endpoint refused the request: {e}") from None
            except (EndpointError, JudgeReplyError, TimeoutError) as e:  # 429, 5xx, timeouts, bad bodies
                last = e
                continue
            if path is not None:
                from labkit.trace.redact import Redactor

                record = {"model": self.model, "template": template.name, "version": template.version,
                          "hash": template.hash, "verdict": verdict}  # (on disk redacted: a reply may quote a key)
                atomic_write_text(path, json.dumps(Redactor().redact(record), ensure_ascii=False))
            return verdict
        assert last is not None
        raise last

    def _safe(self, template: PromptTemplate, **fields: str) -> dict[str, Any] | None:
        try:
            return self.ask(template, **fields)
        except (EndpointError, JudgeReplyError, TimeoutError) as e:
            self.errors.append(f"{type(e).__name__}: {e}")
        return None

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]:
        v = self._safe(self.faithfulness_prompt, context="\n\n".join(contexts), answer=answer)
        if v is None:
            return None, "judge_error"
        try:
            claims, supported = _num(v, "claims"), _num(v, "supported")
        except JudgeReplyError as e:
            self.errors.append(str(e))
            return None, "judge_error"
        if claims <= 0:
            return None, "no_claims"
        return _clamp01(supported / claims), ""

    def relevance(self, question: str, answer: str) -> float | None:
        v = self._safe(self.relevance_prompt, question=question, answer=answer)
        if v is None:
            return None
        try:
            return _clamp01(_num(v, "score"))
        except JudgeReplyError as e:
            self.errors.append(str(e))
            return None


JUDGES.setdefault("embedding", lambda **cfg: __import__("labkit.embedjudge").embedjudge.EmbeddingJudge(**cfg))
