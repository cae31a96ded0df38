"""OpenInference attributes of an exported span, beside the GenAI semantic conventions.

Arize Phoenix (and other OpenInference readers) know a span by
``openinference.span.kind`` and read the model, tokens, cost, prompt template
version, input and output values, messages and retrieved documents under the
names of the OpenInference semantic conventions. :mod:`labkit.trace.otel` adds
these attributes to every span it builds; docs/traces.md tables the mapping.
Content (input and output values, messages, tool arguments, document text)
goes out only with ``capture_content`` and is whatever the (redacted) record
holds. Plain Python: no OpenTelemetry import here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: OpenInference span kind of each labkit operation (the root is the workflow: a CHAIN).
SPAN_KINDS: dict[str, str] = {
    "invoke_workflow": "CHAIN",
    "invoke_agent": "AGENT",
    "retrieval": "RETRIEVER",
    "execute_tool": "TOOL",
    "chat": "LLM",
}

TEXT = "text/plain"
JSON_MIME = "application/json"


def span_kind(operation: Any) -> str:
    return SPAN_KINDS.get(str(operation or ""), "CHAIN")


def finish_reason(rec: Mapping[str, Any]) -> str:
    """Why the generation ended: the record's own ``finish_reason`` when it has one, else
    from its status (``ok`` → ``stop``, ``blocked`` → ``content_filter``, else ``error``)."""
    own = rec.get("finish_reason")
    if isinstance(own, str) and own:
        return own
    status = str(rec.get("status") or "ok")
    if status in ("ok", "pass"):
        return "stop"
    return "content_filter" if status == "blocked" else "error"


def _value(prefix: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {f"{prefix}.value": value, f"{prefix}.mime_type": TEXT}
    return {f"{prefix}.value": json.dumps(value, default=str), f"{prefix}.mime_type": JSON_MIME}


def root_attrs(rec: Mapping[str, Any], capture_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {"openinference.span.kind": span_kind(rec.get("operation") or "invoke_workflow"),
                             "session.id": rec.get("session_id"),
                             "metadata": json.dumps({k: rec.get(k) for k in ("run_id", "case_id", "attempt", "pipeline")
                                                     if rec.get(k) is not None}, default=str)}
    tags = rec.get("tags")
    if isinstance(tags, Mapping) and tags:
        attrs["tag.tags"] = [f"{k}={v}" for k, v in sorted(tags.items())]
    if capture_content:
        attrs |= _value("input", rec.get("input")) | _value("output", rec.get("output"))
    return attrs


def retrieval_attrs(rec: Mapping[str, Any], docs: Sequence[Any], scores: Sequence[Any],
                    query: Any, capture_content: bool) -> dict[str, Any]:
    texts = {str(r.get("id")): r for r in (rec.get("retrieved") or []) if isinstance(r, Mapping)}
    attrs: dict[str, Any] = {"openinference.span.kind": "RETRIEVER"}
    for i, d in enumerate(docs):
        p = f"retrieval.documents.{i}.document"
        attrs[f"{p}.id"] = str(d)
        if i < len(scores) and isinstance(scores[i], int | float):
            attrs[f"{p}.score"] = float(scores[i])
        meta = texts.get(str(d)) or {}
        if meta.get("source") is not None:
            attrs[f"{p}.metadata"] = json.dumps({"source": meta.get("source")})
        if capture_content and isinstance(meta.get("text"), str):
            attrs[f"{p}.content"] = meta["text"]
    if capture_content:
        attrs |= _value("input", query)
    return attrs


def tool_attrs(tc: Mapping[str, Any], name: Any, capture_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {"openinference.span.kind": "TOOL", "tool.name": name}
    if capture_content:
        args = tc.get("args") or {}
        attrs["tool.parameters"] = json.dumps(args, default=str)
        attrs |= _value("input", args)
        if "output" in tc:
            attrs |= _value("output", tc.get("output"))
    return attrs


def token_counts(rec: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """A trace's (input, output) token counts, None for a count it does not record (unknown, never 0:
    an imported trace may record one, or none)."""
    usage = rec.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    n_in, n_out = usage.get("input_tokens"), usage.get("output_tokens")
    return (None if n_in is None else int(n_in)), (None if n_out is None else int(n_out))


def llm_attrs(rec: Mapping[str, Any], capture_content: bool) -> dict[str, Any]:
    n_in, n_out = token_counts(rec)
    attrs: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": rec.get("model"),
        "llm.provider": rec.get("provider"),
        "llm.token_count.prompt": n_in,
        "llm.token_count.completion": n_out,
        "llm.token_count.total": None if n_in is None or n_out is None else n_in + n_out,
        "llm.prompt_template.version": rec.get("prompt_version"),
    }
    cost = rec.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        attrs["llm.cost.total"] = float(cost)
    if capture_content:
        attrs |= _value("input", rec.get("input")) | _value("output", rec.get("output"))
        if rec.get("input") is not None:
            attrs |= {"llm.input_messages.0.message.role": "user",
                      "llm.input_messages.0.message.content": str(rec.get("input"))}
        if rec.get("output") is not None:
            attrs |= {"llm.output_messages.0.message.role": "assistant",
                      "llm.output_messages.0.message.content": str(rec.get("output"))}
    return attrs
