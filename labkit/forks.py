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


def _in_child(token: int) -> list[tuple[int, Any]]:
    work, send, share = forked_job(token)
    out: list[tuple[int, Any]] = []
    while (i := _claim(share, front=True)) is not None:
        out.append((i, send(work(i))))
    return out


def _claim(share: Any, *, front: bool) -> int | None:
    """The next item no process has taken, from the front or the back of what is left (``share``:
    a shared pair, the first item left and the end of what is left), or None when none is."""
    with share.get_lock():
        first, end = share[0], share[1]
        if first >= end:
            return None
        if front:
            share[0] = first + 1
            return int(first)
        share[1] = end - 1
        return int(end - 1)


def side_by_side(count: int, work: Callable[[int], T], *, send: Callable[[T], Any] | None = None,
                 receive: Callable[[Any], T] | None = None, first: Callable[[], object] | None = None) -> list[T]:
    """``[work(i) for i in range(count)]``, shared between this process and, with CPUs to spare,
    forked ones, which inherit what ``work`` reads: they take the items from the front, this one
    runs ``first`` (its own work meanwhile, once; not run when nothing is forked), then takes from
    the back what none of them has taken, so the shares follow each side's pace. A forked process
    gives back ``send(work(i))`` and this one takes ``receive`` of it (a compact form of what would
    be slow to send as it is; both default to the value itself). A fork refused (no memory for one)
    or a process lost (killed) leaves its items to this process: ``work`` must give the same value
    for ``i`` wherever it runs."""
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    done: dict[int, T] = {}
    procs = max(1, min(usable_cpus(), count))
    if procs >= 2 and can_fork():
        share = multiprocessing.Array("q", [0, count])  # (shared with the processes forked below)
        try:
            with forked_pool(procs - 1, (work, send or _same, share)) as (pool, token):
                futures = [pool.submit(_in_child, token) for _ in range(procs - 1)]  # (forked here)
                if first is not None:
                    first()
                while (i := _claim(share, front=False)) is not None:
                    done[i] = work(i)
                back = receive or _same
                for fut in futures:
                    done.update((i, back(sent)) for i, sent in fut.result())
        except (OSError, BrokenProcessPool):  # (what a lost process had is worked out below)
            pass
    return [done[i] if i in done else work(i) for i in range(count)]


def _same(value: Any) -> Any:
    return value
