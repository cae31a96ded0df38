"""OpenAI-compatible endpoint adapters: pipeline types ``http`` and ``rag+http``.

``http`` sends the case's question to a chat-completions endpoint and returns
its reply as the answer (the whole pipeline lives behind the endpoint).
``rag+http`` retrieves with labkit's BM25 retriever over a corpus and uses the
endpoint as the generator: the prompt carries the retrieved chunks, each
labelled with its chunk id, and asks for ``[chunk-id]`` citations.

Config (YAML)::

    name: local-llm
    type: rag+http                  # or http
    base_url: http://127.0.0.1:8000/v1   # API root of any OpenAI-compatible server
    model: my-model                 # sent as "model"
    provider: vllm                  # optional, for traces
    api_key_env: OPENAI_API_KEY     # optional: NAME of the env var holding the key
    timeout_s: 60                   # > 0: each wait on the endpoint (connect, each read); the runner's bounds the case
    params: {temperature: 0, max_tokens: 512}    # extra request fields
    system_prompt: "You answer support questions ..."   # optional
    prompt_template: "..."          # optional; {question} and (rag+http) {context}, by plain name only
    headers: {X-Team: evals}        # optional extra request headers: names to printable-ASCII strings
    prompt_version: http-v1
    price_per_1k_input: 0.00015     # USD per 1,000 tokens; cost_usd = usage x prices
    price_per_1k_output: 0.0006
    prices:                         # optional table by the model the reply names
      my-model-large: {price_per_1k_input: 0.001, price_per_1k_output: 0.002}
    corpus: ../corpus               # rag+http: relative to this file; --corpus overrides
    top_k: 5                        # rag+http
    chunk_size: 200                 # rag+http

The adapter never retries: endpoint faults surface as the typed errors of
:mod:`labkit.openai_compat` (timeouts, connection errors, 429 with Retry-After,
5xx are retryable) and the runner applies its retry policy. Usage comes from the
reply's ``usage``; without prices ``cost_usd`` is null.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.openai_compat import ChatClient, ChatReply
from labkit.pipelines import register_pipeline

if TYPE_CHECKING:
    from labkit.cases import EvalCase

__all__ = ["HttpPipeline", "RagHttpPipeline", "parse_citations"]

HTTP_KEYS = (
    "name", "type", "description", "base_url", "model", "provider", "api_key_env", "timeout_s", "params",
    "system_prompt", "prompt_template", "prompt_version", "price_per_1k_input", "price_per_1k_output",
    "prices", "headers", "runner", "fallback", "redaction", "environment", "release",
)
RAG_KEYS = (*HTTP_KEYS, "corpus", "top_k", "chunk_size")

DEFAULT_SYSTEM = (
    "You are a support assistant. Answer the question accurately and concisely."
)
DEFAULT_RAG_SYSTEM = (
    "You are a support assistant. Answer only from the context below. Cite every sentence with "
    "the id of the chunk it comes from in square brackets, like [doc-id#2]. If the context does "
    "not contain the answer, say that you cannot find it in the knowledge base."
)
DEFAULT_TEMPLATE = "{question}"
DEFAULT_RAG_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"

_CITE = re.compile(r"\[([^\[\]\s]+#\d+)\]")


def parse_citations(answer: str) -> list[str]:
    """Chunk ids cited as ``[doc-id#n]`` in ``answer``, first occurrence order, no repeats."""
    return list(dict.fromkeys(_CITE.findall(answer)))


def _check(config: Mapping[str, Any], known: tuple[str, ...], path: str | None) -> None:
    for key in config:
        if key not in known:
            raise ConfigError(f"unknown key {key!r} for pipeline type {config.get('type')!r}", path=path,
                              field=str(key), known=known)
    for key in ("base_url", "model"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise ConfigError("required: a non-empty string", path=path, field=key)
    for key in ("price_per_1k_input", "price_per_1k_output", "timeout_s"):
        v = config.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0
                              or (key == "timeout_s" and v == 0)):  # (a timeout of 0 times every request out)
            raise ConfigError("must be a number above 0" if key == "timeout_s" else "must be a non-negative number",
                              path=path, field=key)
    if config.get("params") is not None and not isinstance(config["params"], dict):
        raise ConfigError("must be a mapping of request fields", path=path, field="params")
    if config.get("prices") is not None and not isinstance(config["prices"], dict):
        raise ConfigError("must be a mapping model -> {price_per_1k_input, price_per_1k_output}",
                          path=path, field="prices")


def checked_template(template: object, fields: tuple[str, ...]) -> str:
    """A ``prompt_template`` whose every placeholder is one of ``fields`` by plain name
    (``{question}``; no attribute, index, conversion or format spec, no positional ``{}``; a
    literal brace is doubled, ``{{``); a ConfigError naming the field otherwise."""
    known = ", ".join(f"{{{f}}}" for f in fields)
    if not isinstance(template, str):
        raise ConfigError(f"must be a string using {known}", field="prompt_template")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"is not a template ({e}); a literal brace is written {{{{ or }}}}",
                          field="prompt_template") from None
    for _text, name, spec, conversion in parts:
        if name is not None and (name not in fields or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(f"placeholder {shown[:60]!r} is not one of {known} by plain name (no attribute, "
                              "index, conversion or format spec; a literal brace is written {{ or }})",
                              field="prompt_template")
    return template


class HttpPipeline:
    """The ``http`` type: the question to the endpoint, its reply as the answer (async)."""

    system_default = DEFAULT_SYSTEM
    template_default = DEFAULT_TEMPLATE
    template_fields: tuple[str, ...] = ("question",)

    def __init__(self, config: Mapping[str, Any], *, path: str | None = None) -> None:
        self.config = dict(config)
        try:
            self.client = ChatClient(
                str(config["base_url"]),
                str(config["model"]),
                config.get("api_key_env"),
                float(config.get("timeout_s", 60.0)),
                params=config.get("params") or {},
                headers=config.get("headers"),
            )
            self.template = checked_template(config.get("prompt_template", self.template_default),
                                             self.template_fields)
        except ConfigError as e:  # (api_key_env: read_api_key; headers: checked_headers)
            raise ConfigError(e.message, path=path, field=e.field) from None
        self.system = config.get("system_prompt", self.system_default)
        self.prompt_version = config.get("prompt_version")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    def messages(self, question: str, context: str = "") -> list[dict[str, str]]:
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": str(self.system)})
        fields = {"question": question, "context": context}  # (the template names only its own: checked_template)
        msgs.append({"role": "user", "content": self.template.format(**fields)})
        return msgs

    def cost(self, reply: ChatReply) -> float | None:
        prices: Mapping[str, Any] = self.config
        table = self.config.get("prices") or {}
        if reply.model and isinstance(table.get(reply.model), Mapping):
            prices = table[reply.model]
        pin, pout = prices.get("price_per_1k_input"), prices.get("price_per_1k_output")
        if pin is None and pout is None:
            return None
        usage = reply.usage or {}
        total = 0.0
        for count, price in ((usage.get("input_tokens"), pin), (usage.get("output_tokens"), pout)):
            if price is None:
                continue  # (that side is not priced)
            if count is None:
                return None  # a priced count the reply does not give: the cost is unknown, never 0
            total += count / 1000 * float(price)
        return round(total, 10)

    def result(self, reply: ChatReply, retrieved: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "answer": reply.text,
            "retrieved": retrieved or [],
            "citations": parse_citations(reply.text),
            "usage": dict(reply.usage) or None,
            "cost_usd": self.cost(reply),
            "model": reply.model or self.client.model,
        }
        if self.prompt_version is not None:
            out["prompt_version"] = str(self.prompt_version)
        if reply.finish_reason:
            out["finish_reason"] = reply.finish_reason
        return out

    async def __call__(self, case: EvalCase) -> dict[str, Any]:
        reply = await self.client.achat(self.messages(case.question))
        return self.result(reply)


class RagHttpPipeline(HttpPipeline):
    """The ``rag+http`` type: labkit's BM25 retriever, the endpoint as generator (async)."""

    system_default = DEFAULT_RAG_SYSTEM
    template_default = DEFAULT_RAG_TEMPLATE
    template_fields = ("question", "context")

    def __init__(self, config: Mapping[str, Any], retriever: Any, *, path: str | None = None) -> None:
        super().__init__(config, path=path)
        self.retriever = retriever

    @staticmethod
    def context(retrieved: list[dict[str, Any]]) -> str:
        return "\n\n".join(f"[{r['id']}] {r.get('text', '')}" for r in retrieved)

    async def __call__(self, case: EvalCase) -> dict[str, Any]:
        retrieved = self.retriever.retrieve(case.question)
        reply = await self.client.achat(self.messages(case.question, self.context(retrieved)))
        return self.result(reply, retrieved)


@register_pipeline("http")
def make_http(
    config: Mapping[str, Any], *, base_dir: Path, corpus_dir: str | None = None, path: str | None = None
) -> HttpPipeline:
    _check(config, HTTP_KEYS, path)
    return HttpPipeline(config, path=path)


@register_pipeline("rag+http")
def make_rag_http(
    config: Mapping[str, Any], *, base_dir: Path, corpus_dir: str | None = None, path: str | None = None
) -> RagHttpPipeline:
    from labkit.pipelines.rag import Retriever, load_corpus_for

    _check(config, RAG_KEYS, path)
    top_k = config.get("top_k", 5)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ConfigError("must be an integer >= 1", path=path, field="top_k")
    corpus = load_corpus_for(config, base_dir, corpus_dir)
    return RagHttpPipeline(config, Retriever(corpus, top_k), path=path)
