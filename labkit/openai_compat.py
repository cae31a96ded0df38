"""One small client for OpenAI-compatible chat-completions endpoints.

Used by the HTTP pipeline adapter (:mod:`labkit.pipelines.http`) and the LLM
judge. It speaks ``POST {base_url}/chat/completions`` to any server that
implements it (a local vLLM, llama.cpp or Ollama server, or a hosted one) and
turns every failure into a typed exception, so that callers (the runner) can
retry exactly the faults worth retrying:

==========================  =========  ===========================================
exception                   retryable  raised on
==========================  =========  ===========================================
:class:`EndpointTimeout`    yes        a wait past ``timeout_s``; a request past its deadline
:class:`EndpointConnectionError` yes   refused, reset or dropped connection
:class:`RateLimited`        yes        HTTP 429; ``retry_after`` from Retry-After
:class:`ServerError`        yes        HTTP 5xx
:class:`ClientHTTPError`    no         any other non-2xx status (400, 401, 404 ...)
:class:`MalformedResponse`  no         a 2xx body that is not a chat completion
==========================  =========  ===========================================

All derive from :class:`EndpointError` (a :class:`~labkit.errors.LabkitError`, declared in
:mod:`labkit.errors`); the retryable ones from
:class:`RetryableError`, which carries ``retry_after`` (seconds or ``None``).
Each class says what it is with two attributes, ``retryable`` and ``timed_out``
(:class:`EndpointTimeout` only), which :mod:`labkit.retry` reads: a caller classifies
a fault without importing this module.
A pipeline's own bugs (``KeyError``, ``ValueError`` ...) are none of these and
are never retried.

The API key is read from the environment variable named by ``api_key_env``;
a key is never part of a config. The key read is registered with the secrets
catalogue, so every redactor replaces it with ``[API_KEY]`` (a server that
echoes it cannot put it on disk), and so are the literal secrets of the rest of a
client's config, its header values and the credentials of its URL
(:func:`config_secrets`); error texts built here are redacted. httpx is imported when a client is built.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import os
import re
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit import patterns
from labkit.deadline import Deadline
from labkit.errors import (
    ClientHTTPError,
    ConfigError,
    EndpointConnectionError,
    EndpointError,
    EndpointTimeout,
    MalformedResponse,
    RateLimited,
    RetryableError,
    ServerError,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ChatClient",
    "ChatReply",
    "ClientHTTPError",
    "EndpointConnectionError",
    "EndpointError",
    "EndpointTimeout",
    "MalformedResponse",
    "RateLimited",
    "RetryableError",
    "ServerError",
    "checked_headers",
    "config_secrets",
    "decode_reply",
    "parse_retry_after",
    "post_bounded",
    "read_api_key",
    "register_config_secrets",
    "reply_error",
    "scrub",
    "transport_error",
]




#: A header name: an HTTP token (RFC 9110 section 5.6.2).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def checked_headers(headers: object) -> dict[str, str]:
    """Extra request headers as a config gives them: a mapping of header names (HTTP tokens:
    letters, digits and ``!#$%&'*+-.^_`|~``) to string values of printable ASCII (space to
    ``~``; a value is sent as ASCII, so ``café`` or a line break cannot be). A ConfigError naming
    the header (``headers.X-Team``) otherwise; the value is never quoted (it may be a key)."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigError("must be a mapping of header names to string values", field="headers")
    out: dict[str, str] = {}
    for name, value in headers.items():
        fld = f"headers.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError("is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)", field=fld)
        if not isinstance(value, str):
            raise ConfigError(f"must be a string (quote it in YAML), got {type(value).__name__}", field=fld)
        if not all(" " <= c <= "~" for c in value):
            raise ConfigError("must be printable ASCII (space to ~): a header value is sent as ASCII, so no "
                              "accented letter, line break or control character", field=fld)
        out[name] = value
    return out


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


@dataclass(frozen=True)
class ChatReply:
    """A parsed chat completion: the text of the first choice, usage in labkit's names, the raw body."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    finish_reason: str | None = None


def transport_error(e: Exception, *, url: str, timeout_s: float) -> EndpointError:
    """What an httpx failure of a request to ``url`` is: a timeout, a connection failure or a bad reply
    (its text through :func:`scrub`: the URL's credentials masked)."""
    import httpx

    if isinstance(e, httpx.TimeoutException):
        return EndpointTimeout(scrub(f"no reply from {url} within {timeout_s:g}s ({type(e).__name__})"), url=url)
    if isinstance(e, httpx.TransportError):
        return EndpointConnectionError(scrub(f"connection to {url} failed: {type(e).__name__}: {e}"), url=url)
    return MalformedResponse(scrub(f"bad reply from {url}: {type(e).__name__}: {e}"), url=url)


def decode_reply(body: bytes | str, *, url: str | None = None) -> Any:
    """An endpoint's JSON reply; :class:`MalformedResponse` (with a scrubbed snippet) when it is none."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        snippet = scrub(body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace"))
        raise MalformedResponse(f"reply is not JSON ({e}): {snippet!r}", status=200, url=url) from None


def parse_completion(body: bytes | str, *, url: str | None = None) -> ChatReply:
    """Parse a chat-completions body; raises :class:`MalformedResponse` when it is not one."""
    data = decode_reply(body, url=url)
    if not isinstance(data, dict):
        raise MalformedResponse("reply is not a JSON object", status=200, url=url)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("reply has no choices", status=200, url=url)
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is None and isinstance(choices[0].get("text"), str):  # legacy completions shape
        content = choices[0]["text"]
    if not isinstance(content, str):
        raise MalformedResponse("reply's first choice has no message content", status=200, url=url)
    usage: dict[str, int] = {}
    raw_usage = data.get("usage")
    if isinstance(raw_usage, dict):
        for src, dst in (
            ("prompt_tokens", "input_tokens"),
            ("completion_tokens", "output_tokens"),
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
        ):
            v = raw_usage.get(src)
            if isinstance(v, float) and math.isfinite(v) and v.is_integer():  # (812.0 is 812, as in a results line)
                v = int(v)
            if isinstance(v, int) and not isinstance(v, bool) and dst not in usage:
                usage[dst] = v
    model = data.get("model") if isinstance(data.get("model"), str) else None
    finish = choices[0].get("finish_reason")
    return ChatReply(content, usage, data, model, finish if isinstance(finish, str) else None)


def read_api_key(api_key_env: object) -> str:
    """The API key held by the environment variable named ``api_key_env``, registered with the
    secrets catalogue (:func:`labkit.patterns.register_secret`) before anything can echo it, so
    every redactor replaces it with ``[API_KEY]``. A ConfigError when it is not set; the
    message names the variable only when ``api_key_env`` looks like a variable name."""
    if not patterns.looks_like_env_name(api_key_env):
        patterns.register_secret(api_key_env)  # a key pasted in its place: never written either
        raise ConfigError("api_key_env does not look like a variable name (a key pasted by mistake?); it must "
                          "be the NAME of an environment variable that holds the key", field="api_key_env")
    assert isinstance(api_key_env, str)
    key = os.environ.get(api_key_env, "")
    if not key.strip():
        raise ConfigError(f"environment variable {api_key_env} is not set (it should hold the API key)",
                          field="api_key_env")
    patterns.register_secret(key)
    return key.strip()


def config_secrets(base_url: object = None, headers: Mapping[str, object] | None = None) -> list[str]:
    """The literal secrets of an endpoint config, in the forms a server may echo them: each header
    value but those of :data:`_DESCRIPTIVE_HEADERS` (for an Authorization-like header also its credential without the scheme word, and a
    Basic one decoded as ``user:password`` and the password; each ``name=value`` of a Cookie
    header and its value); the credentials of the URL (``user:password@``, raw and
    percent-decoded, the password, the Basic credential httpx sends for them, with and without its
    padding; a user without a password is the secret itself) and the values of the query
    parameters the catalogue finds as secrets (``?api_key=...``)."""
    out = _url_secrets(base_url) if isinstance(base_url, str) else []
    for name, value in (headers or {}).items():
        if isinstance(value, str) and str(name).lower() not in _DESCRIPTIVE_HEADERS:
            out += _header_secrets(str(name), value.strip())
    return list(dict.fromkeys(v.strip() for v in out if v.strip()))


#: Headers that say what a request is and wants, not who sends it: their values are no secret (a
#: configured Accept: application/json would otherwise hide every "application/json" of every answer).
_DESCRIPTIVE_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "content-type", "user-agent",
                                  "cache-control", "connection"})


def register_config_secrets(base_url: object = None, headers: Mapping[str, object] | None = None) -> None:
    """Register each of :func:`config_secrets` with the catalogue (:func:`labkit.patterns.register_secret`),
    as :func:`read_api_key` does the key it reads: every redactor then replaces them wherever they appear."""
    for value in config_secrets(base_url, headers):
        patterns.register_secret(value)


def _basic_secrets(credential: str) -> list[str]:
    """``user:password`` and the password of a Basic credential (none when it is not base64 text)."""
    import base64
    import binascii

    try:
        plain = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return []
    return [plain, plain.partition(":")[2]]


def _header_secrets(name: str, value: str) -> list[str]:
    out = [value]
    words = value.split(None, 1)
    if patterns.is_credential_key(name) and len(words) == 2:  # (Authorization, Proxy-Authorization, X-Api-Key ...)
        out.append(words[1])
        if words[0].lower() == "basic":
            out += _basic_secrets(words[1].strip())
    if name.lower() == "cookie":
        for pair in value.split(";"):
            out += [pair, pair.partition("=")[2]]
    return out


def _url_secrets(url: str) -> list[str]:
    import base64
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        for raw in (password if has_password else user, userinfo):
            out += [raw, unquote(raw)]
        basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
        out += [basic, basic.rstrip("=")]
    for key, value in parse_qsl(parts.query):
        if patterns.find(f"?{key}={value}", patterns.SECRET_TYPES):
            out.append(value)
    return out


def scrub(text: str) -> str:
    """A text to print or raise with the secrets it may hold replaced: what a server echoes of its
    request, the registered secrets, and the user information of every URL in it, whatever it
    holds (``http://user:password@host`` and ``http://TOKEN@host`` are both
    ``http://[TOKEN]@host``). The one helper every URL a message names goes through."""
    out: str = _scrubber().redact(text)
    return out


@functools.cache
def _scrubber() -> Any:
    from labkit.trace.redact import Redactor

    return Redactor(types=patterns.SECRET_TYPES)


def reply_error(status: int, text: str, headers: Mapping[str, str], url: str) -> EndpointError:
    snippet = " ".join(text.split())[:200]
    msg = scrub(f"HTTP {status} from {url}" + (f": {snippet}" if snippet else ""))
    if status == 429:
        return RateLimited(msg, status=status, url=url, retry_after=parse_retry_after(headers.get("retry-after")))
    if status >= 500:
        return ServerError(msg, status=status, url=url, retry_after=parse_retry_after(headers.get("retry-after")))
    return ClientHTTPError(msg, status=status, url=url)


#: The most a chat reply may hold, decoded (a compressed reply is read as it inflates): far above
#: any answer (the runner cuts one to max_output_chars after), far below what fills the memory.
MAX_REPLY_BYTES = 64 << 20


def _bounded(content: bytearray, chunk: bytes, url: str) -> None:
    """``chunk`` added to the reply read so far, or a MalformedResponse past :data:`MAX_REPLY_BYTES`."""
    content += chunk
    if len(content) > MAX_REPLY_BYTES:
        raise MalformedResponse(f"reply larger than {MAX_REPLY_BYTES:,} bytes (decoded): no endpoint's reply is",
                                url=url)


def post_bounded(client: httpx.Client, url: str, body: Any,
                 deadline: Deadline | None = None) -> tuple[int, bytes, Any]:
    """(status, body, headers) of a JSON POST, its body read up to :data:`MAX_REPLY_BYTES` decoded (a
    compressed reply is bounded as it inflates): the one reader of the chat and embeddings clients.

    ``deadline``: the whole request (connect, upload, headers, body) ends by it, or raises
    :class:`EndpointTimeout` then, however the server drips its reply (:mod:`labkit.deadline`);
    without one only each wait is bounded, by the client's timeouts."""
    if deadline is None:
        return _post(client, url, body, None)
    try:
        return deadline.call(lambda: _post(client, url, body, deadline), name="labkit-http")
    except TimeoutError:
        raise EndpointTimeout(scrub(f"no complete reply from {url} within {deadline.seconds:g}s"), url=url) from None


def _post(client: httpx.Client, url: str, body: Any, deadline: Deadline | None) -> tuple[int, bytes, Any]:
    timeout: Any = client.timeout
    if deadline is not None:  # no single wait past the deadline, so an abandoned request ends soon after it
        import httpx

        left = max(deadline.remaining(), 0.001)
        timeout = httpx.Timeout(**{k: left if v is None else min(v, left) for k, v in timeout.as_dict().items()})
    with client.stream("POST", url, json=body, timeout=timeout) as r:
        content = bytearray()
        for chunk in r.iter_bytes():
            _bounded(content, chunk, url)
            if deadline is not None:
                deadline.check()
        return r.status_code, bytes(content), r.headers


async def apost_bounded(client: httpx.AsyncClient, url: str, body: Any) -> tuple[int, bytes, Any]:
    """:func:`post_bounded` on an async client."""
    async with client.stream("POST", url, json=body) as r:
        content = bytearray()
        async for chunk in r.aiter_bytes():
            _bounded(content, chunk, url)
        return r.status_code, bytes(content), r.headers


class ChatClient:
    """A client for ``{base_url}/chat/completions``, sync (:meth:`chat`) and async (:meth:`achat`).

    ``base_url`` is the API root including ``/v1`` (``http://127.0.0.1:8000/v1``).
    ``api_key_env`` names the environment variable holding the key (read when
    the client is built; a missing variable is a :class:`~labkit.errors.ConfigError`);
    ``None`` sends no Authorization header, as local servers expect.
    ``params`` are default request parameters (temperature, max_tokens, seed ...);
    ``headers`` extra request headers (:func:`checked_headers`).
    ``timeout_s`` bounds each wait (the connect, each read), not the request: a server that
    drips its reply is bounded by a deadline, the caller's (the runner's per attempt around
    :meth:`achat`; ``deadline=`` of :meth:`chat`).
    The client never retries: it raises a typed error and leaves the policy to
    the caller.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        extra = checked_headers(headers)
        register_config_secrets(base_url, extra)  # (before anything can echo them)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            got = f", got {base_url!r}" if patterns.safe_to_echo(base_url) else " (the value is not shown: it looks like a key)"
            raise ConfigError(f"must be an http(s) URL such as http://127.0.0.1:8000/v1{got}", field="base_url")
        if not isinstance(model, str) or not model:
            raise ConfigError("must be a non-empty string", field="model")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.params = dict(params or {})
        self._headers = {"Content-Type": "application/json", **extra}
        if api_key_env is not None and api_key_env != "":
            self._headers["Authorization"] = f"Bearer {read_api_key(api_key_env)}"
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"ChatClient(base_url={scrub(self.base_url)!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def payload(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        """The JSON body sent for ``messages`` with default params overridden by ``params``."""
        return {"model": self.model, "messages": [dict(m) for m in messages], **self.params, **params}

    def _timeout(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0))

    def _reply(self, status: int, content: bytes, headers: Mapping[str, str]) -> ChatReply:
        if not 200 <= status < 300:
            raise reply_error(status, content.decode("utf-8", "replace"), headers, self.url)
        return parse_completion(content, url=self.url)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, deadline: Deadline | None = None,
             **params: Any) -> ChatReply:
        """Send one chat request (blocking) and return the parsed reply, or raise an EndpointError;
        with a ``deadline`` (:class:`labkit.deadline.Deadline`) the request ends by it, whatever
        the server does (an :class:`EndpointTimeout` then): the LLM judge's ``timeout_s``."""
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout(), headers=self._headers)
        try:
            return self._reply(*post_bounded(self._client, self.url, self.payload(messages, **params), deadline))
        except httpx.HTTPError as e:
            raise transport_error(e, url=self.url, timeout_s=self.timeout_s) from None

    async def achat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> ChatReply:
        """Send one chat request (async) and return the parsed reply, or raise an EndpointError."""
        import httpx

        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = httpx.AsyncClient(timeout=self._timeout(), headers=self._headers)
            self._aclients[loop] = client
        try:
            return self._reply(*await apost_bounded(client, self.url, self.payload(messages, **params)))
        except httpx.HTTPError as e:
            raise transport_error(e, url=self.url, timeout_s=self.timeout_s) from None

    async def aclose(self) -> None:
        """Close the async connection pool of the running loop (if any)."""
        loop = asyncio.get_running_loop()
        client = self._aclients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Close the blocking connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
