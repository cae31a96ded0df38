"""Shared test fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator

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
