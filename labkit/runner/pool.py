"""Threads of the runner: the pool for sync pipelines and the hand-over lane.

:class:`SyncPool` runs plain-callable pipelines in daemon worker threads, started
on demand by a thread of its own (starting a thread waits until it runs, which
can take milliseconds: the event loop never waits for it; a call handed over
meanwhile is taken by whichever pool thread is free first). A thread cannot be
killed, so a call past its deadline is *abandoned*: the case gets its timeout at
once, and the pool

- asks the thread to stop: :data:`PipelineAbandoned` (a ``BaseException``) is
  raised inside it at its next Python bytecode (``PyThreadState_SetAsyncExc``),
  which ends a pipeline spinning in pure Python; a thread blocked inside C (a
  socket read, ``time.sleep``) gets it when the call returns to Python;
- counts it until its thread really returns. While as many calls are abandoned
  as the run's concurrency, no new sync attempt starts: it fails at once with
  :class:`PipelineThreadsStuck` (a timeout, so it is retried with backoff like
  any timeout). Pipeline threads alive at once: at most twice the concurrency.

:class:`HandOver` hands finished cases over (result line, trace records,
redaction, append + flush) in the order they finished: a light one on the event
loop between two steps of the cases in flight, a large one (and those after it
while it is being handled) in a thread of its own, so a large result never
holds back the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["HandOver", "PipelineAbandoned", "PipelineThreadsStuck", "SyncPool"]


class PipelineThreadsStuck(TimeoutError):
    """A sync attempt not started: the pool's abandoned calls have reached the limit."""


class PipelineAbandoned(BaseException):
    """Raised inside a pipeline thread whose call passed its deadline."""


_ASYNC_EXC: dict[str, Any] = {}


def _set_async_exc(tid: int, exc: type[BaseException] | None) -> bool:
    """Schedule ``exc`` in thread ``tid`` (None: clear a scheduled one). CPython only."""
    if "set" not in _ASYNC_EXC:
        try:
            import ctypes

            api = ctypes.pythonapi
            _ASYNC_EXC["set"] = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
                ("PyThreadState_SetAsyncExc", api))
            _ASYNC_EXC["clear"] = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
                ("PyThreadState_SetAsyncExc", api))
        except (ImportError, AttributeError, OSError):
            _ASYNC_EXC["set"] = _ASYNC_EXC["clear"] = None
    fn = _ASYNC_EXC["set" if exc is not None else "clear"]
    if fn is None:
        return False
    return bool(fn(tid, exc) if exc is not None else fn(tid, None))


class _Call:
    """One call handed to the pool: what it runs, and (set by its thread) how it ended."""

    __slots__ = ("abandoned", "arg", "fn", "fut", "ok", "settled", "token", "value")

    def __init__(self, token: int, fn: Callable[[Any], Any], arg: Any, fut: asyncio.Future[Any]) -> None:
        self.token = token
        self.fn = fn
        self.arg = arg
        self.fut = fut
        self.ok = False
        self.value: Any = None
        self.settled = False  # on the loop: the future got the call's outcome
        self.abandoned = False  # on the loop: the awaiting task gave up on it (its deadline)


class SyncPool:
    """Daemon worker threads for sync pipeline calls, reused when idle, with the
    abandoned calls bounded by ``limit`` (see the module docstring)."""

    def __init__(self, limit: int, name: str = "labkit-runner") -> None:
        self.limit = limit
        self.abandoned = 0  # touched on the event loop only
        self._name = name
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # threads started or asked for, minus the calls handed over and not ended: a call
        # handed over when none is idle asks for one more thread
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._starts: queue.SimpleQueue[bool] = queue.SimpleQueue()  # threads asked for (False: stop)
        self._starter: threading.Thread | None = None
        self._running: dict[int, int] = {}  # call token -> thread ident, while the call runs
        self._interrupted: set[int] = set()
        self._seq = itertools.count()
        self._closed = False
        self._done: deque[_Call] = deque()  # ended calls to settle on the loop
        self._wake_pending = False

    async def call(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """``fn(arg)`` in a worker thread. Cancelling the awaiting task (a timeout)
        abandons the call and asks its thread to stop."""
        if self.abandoned >= self.limit:
            raise PipelineThreadsStuck(
                f"not started: {self.abandoned} pipeline call(s) are stuck past their deadline "
                f"(at most {self.limit}, the concurrency)")
        c = _Call(next(self._seq), fn, arg, asyncio.get_running_loop().create_future())
        self._submit(c)
        try:
            return await c.fut
        except asyncio.CancelledError:
            if not c.settled:
                c.abandoned = True
                self.abandoned += 1
                self.interrupt(c.token)
            raise

    def _settle_done(self) -> None:
        """On the loop: settle every call that ended since the last wake-up."""
        self._wake_pending = False  # first: a call ending from now on wakes the loop again
        done = self._done
        while done:
            self._settle(done.popleft())

    def _settle(self, c: _Call) -> None:
        c.settled = True
        if c.abandoned:
            self.abandoned -= 1
        fut = c.fut
        if fut.done():
            return
        if c.ok:
            fut.set_result(c.value)
        else:
            try:
                fut.set_exception(c.value)
            except TypeError:  # StopIteration cannot travel through a future
                fut.set_exception(RuntimeError(f"pipeline raised {type(c.value).__name__}: {c.value}"))

    def _deliver(self, c: _Call) -> None:
        """In the worker thread: hand an ended call back, one wake-up of the loop for the
        calls that end meanwhile."""
        self._done.append(c)
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this call any more
                c.fut.get_loop().call_soon_threadsafe(self._settle_done)

    def _submit(self, item: _Call) -> None:
        starter = None
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is shut down")
            more = self._idle == 0
            if not more:
                self._idle -= 1
            elif self._starter is None:
                starter = self._starter = threading.Thread(target=self._start_threads, name=f"{self._name}-starter",
                                                           daemon=True)
        self._q.put(item)
        if more:
            self._starts.put(True)
            if starter is not None:
                starter.start()

    def _start_threads(self) -> None:
        """The thread that starts the pool's threads as they are asked for."""
        while self._starts.get():
            with self._lock:
                if self._closed:
                    return
                if self._idle > 0:  # a call ended meanwhile: its thread takes the call this one was for
                    self._idle -= 1
                    continue
                t = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)  # under the lock: shutdown() stops every thread it starts
            t.start()

    def interrupt(self, token: int) -> None:
        """Raise :class:`PipelineAbandoned` in the thread running call ``token``, if it still runs."""
        with self._lock:
            tid = self._running.get(token)
            if tid is not None and token not in self._interrupted and _set_async_exc(tid, PipelineAbandoned):
                self._interrupted.add(token)

    def _work(self) -> None:
        tid = threading.get_ident()
        while True:
            c = self._q.get()
            if c is None:
                return
            c.ok, c.value = self._run_one(tid, c.token, c.fn, c.arg)
            self._deliver(c)
            with self._lock:
                self._idle += 1

    def _run_one(self, tid: int, token: int, fn: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
        ok, value = False, None
        try:
            with self._lock:
                self._running[token] = tid
            try:
                value, ok = fn(arg), True
            except BaseException as e:  # the pipeline's own failure, or the stop request
                value = e
            finally:
                with self._lock:
                    self._running.pop(token, None)
                    if token in self._interrupted:  # the request may still be pending: clear it
                        self._interrupted.discard(token)
                        _set_async_exc(tid, None)
        except PipelineAbandoned as e:  # landed after the call returned, before it was cleared
            with self._lock:
                self._running.pop(token, None)
                self._interrupted.discard(token)
            ok, value = False, e
        return ok, value

    def shutdown(self) -> None:
        """Let idle threads end; busy and abandoned ones end when their call returns."""
        with self._lock:
            self._closed = True
            n = len(self._threads)
        self._starts.put(False)
        for _ in range(n):
            self._q.put(None)


_STOP = object()


class HandOver:
    """Calls ``fn`` on each finished case put, one at a time, in the order put.

    Light items are handed over on the event loop, one per loop iteration (the
    cheapest way, and never more than one item's work between two steps of the
    cases in flight; with ``many``, the light items waiting, up to ``batch``, go
    to ``many`` as one list: one write and one flush for them all). An item
    ``heavy(item)`` says is large goes to a thread of
    its own, and so does every item after it while that thread is busy, which
    keeps the order and one writer at a time. After ``fn`` raised, later items
    are not handed over and :attr:`error` holds the exception. Create and use it
    on the event loop; :meth:`close` hands over what is left and waits.
    """

    def __init__(self, fn: Callable[[Any], None], heavy: Callable[[Any], bool], name: str = "labkit-handover",
                 *, many: Callable[[list[Any]], None] | None = None, batch: int = 16) -> None:
        self._fn = fn
        self._many = many
        self._batch = batch
        self._heavy = heavy
        self._name = name
        self._loop = asyncio.get_running_loop()
        self._pending: deque[Any] = deque()
        self._scheduled = False
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._in_thread = 0  # items given to the thread and not finished yet
        self.error: BaseException | None = None

    def put(self, item: Any) -> None:
        self._pending.append(item)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain_one)

    def _drain_one(self) -> None:
        if self._pending and self.error is None:
            self._hand_next()
        if self._pending and self.error is None:
            self._loop.call_soon(self._drain_one)
        else:
            self._scheduled = False

    def _hand_next(self) -> None:
        """Hand over the next item, or (with ``many``) the next light items, up to ``batch``, at once."""
        if self._many is None or self._in_thread:
            self._hand(self._pending.popleft())
            return
        items: list[Any] = []
        while self._pending and len(items) < self._batch and not self._heavy(self._pending[0]):
            items.append(self._pending.popleft())
        if not items:
            self._hand(self._pending.popleft())
            return
        try:
            self._many(items)
        except BaseException as e:  # surfaced by the runner
            self.error = e

    def _hand(self, item: Any) -> None:
        if self._in_thread or self._heavy(item):
            with self._lock:
                self._in_thread += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._q.put(item)
            return
        try:
            self._fn(item)
        except BaseException as e:  # surfaced by the runner
            self.error = e

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            try:
                if self.error is None:
                    self._fn(item)
            except BaseException as e:  # surfaced by the runner
                self.error = e
            finally:
                with self._lock:
                    self._in_thread -= 1

    def close(self) -> None:
        """Hand over every item put (unless one failed) and wait for the thread."""
        while self._pending and self.error is None:
            self._hand_next()
        self._pending.clear()
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join()
