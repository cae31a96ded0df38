"""Shared test fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def time_bound(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that runs longer than its module's ``TIME_BOUND_S`` (default 60 s)."""
    limit = int(getattr(request.module, "TIME_BOUND_S", 60))

    def boom(*_: object) -> None:
        raise TimeoutError(f"test exceeded {limit} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def shipped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the shipped baseline pipeline over data/golden.jsonl, not scored (read it,
    or copy it before scoring: it is shared by every test of the session)."""
    from labkit.cli import main

    out = tmp_path_factory.mktemp("shipped") / "baseline"
    assert main(["run", "--dataset", "data/golden.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(out), "--quiet", "--no-score"]) == 0
    return out
