"""A real HTTP server on 127.0.0.1 that answers every request one byte at a time, for the
tests of total deadlines (a per-read timeout never fires against it: a byte always comes).

Run as a script it listens on a port of its own choosing and prints that port on its first
line of stdout; :func:`dripping` starts it in a process group of its own, reads the port and
stops the group by its id when the test ends (``servers.stop_group``)::

    with dripping(interval_s=0.5, n_bytes=120) as base:   # http://127.0.0.1:PORT
        ...

``phase="body"`` (default): the status line and headers at once (200, a Content-Length of
``n_bytes``), then the body a byte per ``interval_s``. ``phase="headers"``: the status line
and headers themselves a byte per ``interval_s`` (then nothing more). Every request is read
fully first (Content-Length), so the client is waiting on the reply, not on its upload.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: How long the script itself may live: it ends by itself even if nobody stops it.
LIFETIME_S = 300.0


def _handler(interval_s: float, n_bytes: int, phase: str) -> type[BaseHTTPRequestHandler]:
    class Drip(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _drip(self, data: bytes) -> None:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(interval_s)

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {n_bytes}\r\n\r\n").encode()
            try:
                if phase == "headers":
                    self._drip(head)
                    return
                self.wfile.write(head)
                self.wfile.flush()
                self._drip(b" " * n_bytes)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        do_POST = do_GET = _answer

    return Drip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--bytes", type=int, default=120)
    ap.add_argument("--phase", choices=("body", "headers"), default="body")
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(a.interval, a.bytes, a.phase))
    server.daemon_threads = True
    print(server.server_port, flush=True)
    server.timeout = 0.2
    end = time.monotonic() + LIFETIME_S
    while time.monotonic() < end:
        server.handle_request()


@contextlib.contextmanager
def dripping(interval_s: float = 0.5, n_bytes: int = 120, phase: str = "body") -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of a started drip server, stopped after the block."""
    from servers import stop_group

    proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--interval", str(interval_s),
                             "--bytes", str(n_bytes), "--phase", phase],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # the port, once it listens
        if not line.isdigit():
            raise RuntimeError(f"the drip server did not start (exit code {proc.poll()})")
        yield f"http://127.0.0.1:{line}"
    finally:
        stop_group(proc, grace_s=5.0)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
