"""The LLM judge: claim support and relevance asked of an OpenAI-compatible chat endpoint.

:class:`LLMJudge` (registered as ``"llm"``: ``labkit.judges.get_judge({"type": "llm", ...})``)
sends a versioned :class:`PromptTemplate`, reads the first JSON object of the reply
(:func:`parse_json_reply`) and caches its verdicts on disk. A scoring whose first verdicts
(:data:`labkit.judges.FIRST_VERDICTS`) all fail, none answered, stops
(:class:`labkit.judges.EndpointWatch`). docs/metrics.md, "LLM judge".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from labkit.errors import ClientHTTPError, ConfigError, EndpointError, JudgeRefused, JudgeReplyError
from labkit.judges import EndpointWatch, register_judge

__all__ = ["FAITHFULNESS_PROMPT", "RELEVANCE_PROMPT", "LLMJudge", "PromptTemplate", "parse_json_reply"]

_T = TypeVar("_T")


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
    ``.errors``), unless none was obtained yet and it is the :data:`~labkit.judges.FIRST_VERDICTS`-th
    to fail: then the endpoint has never answered (a wrong URL, a revoked key, a server down) and
    :class:`~labkit.errors.JudgeRefused` stops the scoring (``.watch``, a verdict from the cache is an
    answer); a non-retryable HTTP error (401, 404 ...) raises at once, since every call would fail.

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
        self.watch = EndpointWatch("judge", base_url)
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
                from labkit.openai_compat import scrub

                raise JudgeRefused(scrub(f"judge endpoint refused the request: {e}")) from None
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

    def _verdict(self, template: PromptTemplate, read: Callable[[dict[str, Any]], _T], **fields: str) -> _T | None:
        """``read`` of the verdict for ``template`` and its fields; None when it could not be obtained
        or read (the reason in ``.errors``), told to ``.watch`` either way."""
        try:
            got = read(self.ask(template, **fields))
        except (EndpointError, JudgeReplyError, TimeoutError) as e:
            reason = f"{type(e).__name__}: {e}"
            self.errors.append(reason)
            self.watch.failed(reason)  # (raises when the endpoint has answered none of the first verdicts)
            return None
        self.watch.answered()
        return got

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]:
        got = self._verdict(self.faithfulness_prompt, _support, context="\n\n".join(contexts), answer=answer)
        if got is None:
            return None, "judge_error"
        claims, supported = got
        if claims <= 0:
            return None, "no_claims"
        return _clamp01(supported / claims), ""

    def relevance(self, question: str, answer: str) -> float | None:
        got = self._verdict(self.relevance_prompt, _score, question=question, answer=answer)
        return None if got is None else _clamp01(got)


def _support(verdict: Mapping[str, Any]) -> tuple[float, float]:
    """The claims and supported claims of a faithfulness verdict."""
    return _num(verdict, "claims"), _num(verdict, "supported")


def _score(verdict: Mapping[str, Any]) -> float:
    """The score of a relevance verdict."""
    return _num(verdict, "score")
