"""Work spread over forked processes: the one place labkit forks (the scoring parts, the forked
scores.csv writer, the bootstrap's counting processes, a large dataset's parse).

A forked process inherits what its parent holds, so a job is handed over by a token, not sent
(:func:`forked_pool`, :func:`forked_job`); only what it gives back travels. Standard library only:
the dataset's parse forks before anything heavy is imported.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: Each :func:`forked_pool` call's job, under its own token: what its forked processes inherit.
_FORKED: dict[int, Any] = {}
_TOKENS = itertools.count()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells it)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether work may go to forked processes here: a CPU to spare, a fork, and not a daemonic
    process (which may have no children)."""
    import multiprocessing
    import os

    return usable_cpus() >= 2 and hasattr(os, "fork") and not multiprocessing.current_process().daemon


@contextmanager
def forked_pool(workers: int, job: Any) -> Iterator[tuple[Any, int]]:
    """A pool of ``workers`` forked processes and the token under which they find ``job``
    (:func:`forked_job`): each call's own, so calls from several threads at once do not mix.
    Processes started before a fork was refused are ended, not left behind; the OSError is raised."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    token = next(_TOKENS)
    _FORKED[token] = job  # (before any fork: the processes inherit it)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    try:
        yield pool, token
    except OSError:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
            proc.join()
        raise
    finally:
        pool.shutdown(wait=True)
        _FORKED.pop(token, None)


def forked_job(token: int) -> Any:
    """In a process of :func:`forked_pool`: the job it was forked for."""
    return _FORKED[token]


def _in_child(token: int, items: list[int]) -> list[Any]:
    work, send = forked_job(token)
    return [send(work(i)) for i in items]


def side_by_side(count: int, work: Callable[[int], T], *, send: Callable[[T], Any] | None = None,
                 receive: Callable[[Any], T] | None = None) -> list[T]:
    """``[work(i) for i in range(count)]``, the items dealt out in turn to this process and, with
    CPUs to spare, forked ones, which inherit what ``work`` reads. A forked process gives back
    ``send(work(i))`` and this one takes ``receive`` of it (a compact form of what would be slow
    to send as it is; both default to the value itself). A fork refused (no memory for one) or a
    process lost (killed) leaves its items to this process: ``work`` must give the same value
    for ``i`` wherever it runs."""
    from concurrent.futures.process import BrokenProcessPool

    procs = max(1, min(usable_cpus(), count))
    if procs < 2 or not can_fork():
        return [work(i) for i in range(count)]
    dealt = [list(range(p, count, procs)) for p in range(procs)]
    done: dict[int, T] = {}
    try:
        with forked_pool(procs - 1, (work, send or _same)) as (pool, token):
            theirs = [pool.submit(_in_child, token, items) for items in dealt[1:]]  # (forked here)
            done.update((i, work(i)) for i in dealt[0])
            back = receive or _same
            for items, fut in zip(dealt[1:], theirs, strict=True):
                done.update(zip(items, map(back, fut.result()), strict=True))
    except (OSError, BrokenProcessPool):
        pass
    return [done[i] if i in done else work(i) for i in range(count)]


def _same(value: Any) -> Any:
    return value
