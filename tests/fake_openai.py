"""A real OpenAI-compatible chat endpoint on 127.0.0.1 for tests, with injectable faults.

It is a threading ``http.server`` on an ephemeral loopback port that answers
``POST /v1/chat/completions`` (and ``GET /v1/models``). Each request gets the
next *fault* queued for it, or a normal reply when none is queued.

Use it as a context manager or through the ``fake_openai`` fixture::

    from fake_openai import FakeOpenAI, drop, malformed, rate_limited, server_error, slow

    def test_something():
        with FakeOpenAI() as srv:
            srv.on("reset my key", rate_limited(retry_after=0.1), server_error())  # then replies ok
            srv.on(None, slow(5))                    # the next request matching nothing else
            client = ChatClient(srv.base_url, "fake-model")
            ...
            assert srv.calls == 3

or, to use the fixture in another test module, import it there
(``from fake_openai import fake_openai  # noqa: F401``) and take ``fake_openai``
as a test argument; it is a started :class:`FakeOpenAI`, stopped after the test.

API:

- ``FakeOpenAI(reply=None, model="fake-model")``; ``reply(body: dict) -> str`` makes
  the answer text from the request body (default: ``"Answer: " + last user message``).
- ``.base_url`` — ``http://127.0.0.1:<port>/v1``; ``.url`` — the completions URL.
- ``.on(match, *faults)`` — queue faults for the next requests whose last user
  message contains ``match`` (``None``: any request no other rule matches);
  each request pops one fault; an empty queue means a normal reply.
- ``.requests`` — the JSON bodies received (a list, in arrival order); ``.times`` —
  their arrival times (``time.monotonic()``);
  ``.calls`` — how many requests arrived; ``.headers`` — their headers;
  ``.calls_for(text)`` — how many requests had ``text`` in their last user message;
  ``.times_for(text)`` — their arrival times.
- ``.reset()`` — forget queued faults and recorded requests.
- ``.echo_headers = True`` — a normal reply's answer also holds what the request's own headers
  carry (:func:`echoed`: a server that echoes its request), each part on its own.

Faults (module-level constructors): ``ok()``, ``slow(seconds)`` (reply after a
delay), ``rate_limited(retry_after=1.0)`` (429 with Retry-After; ``None`` sends
none), ``server_error(status=500)``, ``status(code, body)``, ``drop()`` (close the
connection without a reply), ``malformed()`` (200 with a body that is not JSON),
``no_choices()`` (200 with valid JSON that is not a completion).

A normal reply has ``usage`` with ``prompt_tokens`` = words in all messages and
``completion_tokens`` = words in the answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Fault:
    """What the server does with one request: ``kind`` plus its parameters."""

    kind: str  # ok | slow | status | drop | malformed | no_choices | gzip_bomb
    delay: float = 0.0
    status: int = 200
    body: str = ""
    retry_after: float | None = None


def ok() -> Fault:
    return Fault("ok")


def slow(seconds: float) -> Fault:
    return Fault("slow", delay=seconds)


def rate_limited(retry_after: float | None = 1.0) -> Fault:
    return Fault("status", status=429, body='{"error": {"message": "rate limited"}}', retry_after=retry_after)


def server_error(status: int = 500) -> Fault:
    return Fault("status", status=status, body='{"error": {"message": "internal error"}}')


def status(code: int, body: str = "") -> Fault:
    return Fault("status", status=code, body=body)


def drop() -> Fault:
    return Fault("drop")


def malformed() -> Fault:
    return Fault("malformed")


def no_choices() -> Fault:
    return Fault("no_choices")


def gzip_bomb(mib: int) -> Fault:
    """A 200 reply of a few kilobytes on the wire that inflates to ``mib`` MiB (``Content-Encoding: gzip``)."""
    return Fault("gzip_bomb", delay=float(mib))


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def default_reply(body: dict[str, Any]) -> str:
    return "Answer: " + _last_user(body)


#: Headers every client sends: not what an echo test is about.
_PLAIN_HEADERS = frozenset({"host", "accept", "accept-encoding", "connection", "user-agent", "content-type",
                            "content-length"})


def echoed(headers: dict[str, str]) -> str:
    """What a server that echoes its request's headers answers: each word of each header value
    alone (a credential without its scheme word, a cookie's ``name=value``) and a Basic
    credential's ``user:password``, decoded, separated by `` | `` (no header format around them)."""
    import base64
    import binascii

    parts: list[str] = []
    for name, value in headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        words = value.replace(";", " ").split()
        parts.extend(words)
        if len(words) == 2 and words[0].lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                parts.append(base64.b64decode(words[1]).decode("utf-8"))
    return " | ".join(parts)


class FakeOpenAI:
    """The server; see the module docstring for its API."""

    def __init__(self, reply: Callable[[dict[str, Any]], str] | None = None, model: str = "fake-model") -> None:
        self.reply = reply or default_reply
        self.usage = True  # False: replies carry no usage (some servers send none)
        self.echo_headers = False  # True: a reply's answer also echoes the request's headers
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self._rules: list[tuple[str | None, deque[Fault]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------
    def on(self, match: str | None, *faults: Fault) -> FakeOpenAI:
        with self._lock:
            for m, q in self._rules:
                if m == match:
                    q.extend(faults)
                    break
            else:
                self._rules.append((match, deque(faults)))
        return self

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self.requests.clear()
            self.headers.clear()
            self.times.clear()

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def calls_for(self, text: str) -> int:
        with self._lock:
            return sum(1 for b in self.requests if text in _last_user(b))

    def times_for(self, text: str) -> list[float]:
        with self._lock:
            return [t for b, t in zip(self.requests, self.times, strict=True) if text in _last_user(b)]

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _next_fault(self, body: dict[str, Any]) -> Fault:
        text = _last_user(body)
        with self._lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            for m, q in self._rules:
                if m is not None and m in text:
                    return q.popleft() if q else Fault("ok")
            for m, q in self._rules:
                if m is None and q:
                    return q.popleft()
        return Fault("ok")

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1  # headers and body leave in one write

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": fake.model}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "bad json"}}')
                    return
                with fake._lock:
                    fake.headers.append(dict(self.headers.items()))
                fault = fake._next_fault(body)
                try:
                    self._serve(fault, body, dict(self.headers.items()))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _serve(self, fault: Fault, body: dict[str, Any], headers: dict[str, str]) -> None:
                if fault.kind == "slow" and fake._stop.wait(fault.delay):
                    return
                if fault.kind == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.kind == "malformed":
                    self._send(200, b'{"id": "x", "choices": [ {"message": ')
                    return
                if fault.kind == "gzip_bomb":
                    import gzip

                    blob = gzip.compress(b'{"id": "x", "pad": "' + b"A" * (int(fault.delay) << 20) + b'"}', 1)
                    self._send(200, blob, {"Content-Encoding": "gzip"})
                    return
                if fault.kind == "no_choices":
                    self._send(200, b'{"id": "x", "object": "chat.completion", "choices": []}')
                    return
                if fault.kind == "status":
                    extra = {}
                    if fault.retry_after is not None:
                        extra["Retry-After"] = f"{fault.retry_after:g}"
                    self._send(fault.status, fault.body.encode(), extra)
                    return
                text = fake.reply(body)
                if fake.echo_headers:
                    text += " | echo: " + echoed(headers)
                words_in = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
                out = {
                    "id": f"chatcmpl-{len(fake.requests)}",
                    "object": "chat.completion",
                    "model": body.get("model", fake.model),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": words_in,
                        "completion_tokens": len(text.split()),
                        "total_tokens": words_in + len(text.split()),
                    },
                }
                if not fake.usage:
                    del out["usage"]
                self._send(200, json.dumps(out).encode())

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI` on an ephemeral loopback port, stopped after the test."""
    with FakeOpenAI() as srv:
        yield srv
