"""The runner's limits: the request rate (:class:`TokenBucket`), the attempt deadline
(:class:`Deadlines`) and the output cap.

The rate limit: every attempt (retries and fallback included) takes a token from a
bucket refilled at ``rate_limit`` tokens per second, capacity 1.

The output cap, how much text of one pipeline result reaches the run directory:
every string in what a pipeline returned (the answer, a retrieved chunk's text, a
tool's output, any extra field) is cut to ``max_output_chars`` characters (runner
setting, default :data:`DEFAULT_MAX_OUTPUT_CHARS`) before it is redacted, traced
and written. A cut result is kept, never dropped: its
results line says ``truncated: true`` and ``truncated_chars`` maps the path of
each cut string (``answer``, ``retrieved[0].text``) to its original length.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

from labkit import patterns

T = TypeVar("T")

__all__ = ["DEFAULT_MAX_OUTPUT_CHARS", "LARGE_CHARS", "Deadline", "Deadlines", "TokenBucket", "cap_strings",
           "is_large"]

DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
#: A result with more characters than this (or more than LARGE_NODES values) is handed
#: over off the event loop.
LARGE_CHARS = 64 * 1024
LARGE_NODES = 5_000


class TokenBucket:
    """Async token bucket: ``rate`` tokens per second, capacity ``burst`` (default 1)."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._tokens = self.burst
        self._t = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
                self._t = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


class Deadline:
    """The deadline of one attempt in flight (see :class:`Deadlines`)."""

    __slots__ = ("armed", "cancelling", "expired", "task", "when")

    def __init__(self, when: float, task: asyncio.Task[Any]) -> None:
        self.when = when
        self.task = task
        self.cancelling = task.cancelling()  # cancellations already asked for, not by this deadline
        self.armed = True  # the attempt runs and its deadline has not passed
        self.expired = False


class Deadlines:
    """The deadlines of the attempts in flight on one event loop, all ``seconds`` long.

    What ``asyncio.timeout(seconds)`` around each attempt does (the attempt's task is
    cancelled at its deadline and that cancellation leaves the attempt as a
    ``TimeoutError``; a cancellation from outside stays one), for the cost of one
    queue entry per attempt instead of a timer of its own: the attempts start in
    deadline order (one length for all, a monotonic clock), so one timer, armed for
    the oldest attempt still running, serves them all. The queue holds the attempts
    in flight and never many more ended ones. Use it on its loop only.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._loop = asyncio.get_running_loop()
        self._resolution = time.get_clock_info("monotonic").resolution  # as the loop's own timers
        self._q: deque[Deadline] = deque()  # in start order, hence in deadline order
        self._armed = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """The deadline of an attempt the current task starts now."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        d = Deadline(self._loop.time() + self.seconds, task)
        q = self._q
        while q and not q[0].armed:  # ended attempts at the front: no timer needs them
            q.popleft()
        if len(q) > 2 * self._armed + 16:  # ended ones behind a long attempt: drop them all (amortised O(1))
            q = self._q = deque(e for e in q if e.armed)
        q.append(d)
        self._armed += 1
        if self._timer is None:
            self._timer = self._loop.call_at(q[0].when, self._expire)
        return d

    async def run(self, attempt: Awaitable[T]) -> T:
        """``await attempt`` under a deadline: a ``TimeoutError`` when it is still running
        ``seconds`` after it started (the current task is cancelled then)."""
        d = self.start()
        try:
            out = await attempt
        except BaseException as e:
            self.end(d, e)
            raise
        self.end(d, None)
        return out

    def end(self, d: Deadline, exc: BaseException | None) -> None:
        """The attempt of ``d`` ended (``exc``: what it raised, None when it returned).
        Raises ``TimeoutError`` (from ``exc``) when its own deadline cancelled it."""
        if d.armed:
            d.armed = False
            self._armed -= 1
        if d.expired and d.task.uncancel() <= d.cancelling and isinstance(exc, asyncio.CancelledError):
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._timer = None
        q = self._q
        due = self._loop.time() + self._resolution
        while q:
            d = q[0]
            if d.armed:
                if d.when > due:
                    self._timer = self._loop.call_at(d.when, self._expire)
                    return
                d.expired = True
                d.armed = False
                self._armed -= 1
                d.task.cancel()
            q.popleft()

    def close(self) -> None:
        """Stop the timer (the attempts still running keep no deadline)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._q.clear()
        self._armed = 0


def is_large(value: Any, *, chars: int = LARGE_CHARS, nodes: int = LARGE_NODES) -> bool:
    """Whether a pipeline's output holds more than ``chars`` characters of strings or
    more than ``nodes`` values; stops as soon as it knows (cheap on small results,
    bounded on huge or self-containing ones)."""
    stack = [value]
    n = total = 0
    while stack:
        v = stack.pop()
        n += 1
        if n > nodes:
            return True
        if isinstance(v, str):
            total += len(v)
            if total > chars:
                return True
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def cap_strings(value: Any, limit: int) -> tuple[Any, dict[str, int]]:
    """``value`` (plain JSON types) with every string longer than ``limit`` cut to
    ``limit`` characters, and ``{path: original length}`` of the strings cut. The
    value is returned as is (not copied) when nothing was cut."""
    cut: dict[str, int] = {}
    if not _too_long(value, limit):
        return value, cut
    return _cap(value, limit, "", cut), cut


def _too_long(v: Any, limit: int) -> bool:
    if isinstance(v, str):
        return len(v) > limit
    if isinstance(v, dict):
        return any(_too_long(x, limit) for x in v.values())
    if isinstance(v, list):
        return any(_too_long(x, limit) for x in v)
    return False


def _cap(v: Any, limit: int, path: str, cut: dict[str, int]) -> Any:
    if isinstance(v, str):
        if len(v) > limit:
            cut[path or "."] = len(v)
            return v[:patterns.safe_cut(v, limit)]  # (never through a secret: its start would be written)
        return v
    if isinstance(v, dict):
        return {k: _cap(x, limit, f"{path}.{k}" if path else str(k), cut) for k, x in v.items()}
    if isinstance(v, list):
        return [_cap(x, limit, f"{path}[{i}]", cut) for i, x in enumerate(v)]
    return v
