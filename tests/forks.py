"""Test helpers for labkit's forked work (the scoring parts, the forked writer, the bootstrap's
counting processes): a fork refused, a forked process killed, forks made to meet."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Any

import pytest


def refuse_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every os.fork refused, as on a machine with no memory for one."""
    def refused() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", refused)


def kill_in_child(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """``module.name``, the function a pool sends by name, kills the forked process that runs it
    (as an out-of-memory kill would); in this process it runs as ever."""
    here, real = os.getpid(), getattr(module, name)

    @functools.wraps(real)  # (sent by name: the forked process finds this one)
    def killed(*args: Any) -> Any:
        if os.getpid() != here:
            os._exit(9)
        return real(*args)

    monkeypatch.setattr(module, name, killed)


def forks_meet_at(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Every os.fork waits until ``parties`` threads are about to fork: the thread switch that may
    come between a call handing its job to its processes and the fork, made certain."""
    barrier, real = threading.Barrier(parties, timeout=10), os.fork

    def fork() -> int:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return real()

    monkeypatch.setattr(os, "fork", fork)


def forked_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """labkit.forks.side_by_side's forked processes take an item before this process takes any of
    a call's (this one waits for them once a call, at most 10 s): what they do is then certain to
    be seen, however fast the items are."""
    import time

    from labkit import forks

    here, real, waited = os.getpid(), forks._claim, set()

    def claim(share: Any, *, front: bool) -> int | None:
        if os.getpid() == here and not front and id(share) not in waited:
            waited.add(id(share))
            end = time.monotonic() + 10
            while share[0] == 0 and time.monotonic() < end:
                time.sleep(0.005)
        return real(share, front=front)

    monkeypatch.setattr(forks, "_claim", claim)
