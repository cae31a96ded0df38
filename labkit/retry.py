"""Retry with backoff: which faults are worth retrying, and how long to wait before the next try.

One implementation for every caller that retries (the runner's attempts, the LLM judge).

Classification (attributes, not classes, so this module imports nothing of labkit):

- :func:`is_retryable`: a ``TimeoutError`` (``asyncio.TimeoutError`` included), or any
  exception whose ``retryable`` attribute is ``True`` (the transient endpoint faults of
  :mod:`labkit.openai_compat` set it: timeouts, dropped connections, HTTP 429, 5xx);
- :func:`is_timeout`: an exception whose ``timed_out`` attribute is ``True``, or, when it
  has no such attribute, a ``TimeoutError`` that does not call itself ``retryable``.

Waiting: :class:`Backoff`, *decorrelated jitter*. The first wait is drawn uniformly from
``[base, 3·base]``, each later one from ``[base, 3·previous]``, every one capped at
``cap``; a server's Retry-After (capped at ``cap``) is a floor. The draws come from a
``random.Random`` the caller seeds, so a retry schedule is reproducible. Why this jitter
and not "full" jitter (uniform in ``[0, base·2^n]``): both spread retrying clients about
equally well, but full jitter may retry at once after a 429 or a 5xx, while decorrelated
jitter never waits less than ``base``. See docs/runner.md "Backoff".
"""

from __future__ import annotations

import math
import random
from typing import Any

__all__ = ["Backoff", "is_retryable", "is_timeout", "retry_after", "seeded"]


def is_retryable(exc: BaseException) -> bool:
    """True for faults worth retrying: timeouts and exceptions with ``retryable = True``."""
    return isinstance(exc, TimeoutError) or getattr(exc, "retryable", False) is True


def is_timeout(exc: BaseException) -> bool:
    """True when ``exc`` says no reply came in time (see the module docstring)."""
    flag = getattr(exc, "timed_out", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(exc, TimeoutError) and getattr(exc, "retryable", False) is not True


def retry_after(exc: BaseException | None) -> float | None:
    """The ``retry_after`` seconds an exception carries (a server's Retry-After), if it is a
    finite number >= 0."""
    ra = getattr(exc, "retry_after", None)
    if isinstance(ra, (int, float)) and not isinstance(ra, bool) and math.isfinite(ra) and ra >= 0:
        return float(ra)
    return None


class Backoff:
    """The waits of one retry sequence (one case, one judge request): decorrelated jitter
    between ``base`` and ``cap`` seconds, drawn from ``rng``."""

    __slots__ = ("_prev", "base", "cap", "rng")

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base = float(base)
        self.cap = float(cap)
        self.rng = rng
        self._prev: float | None = None

    def next(self, exc: BaseException | None = None) -> float:
        """Seconds to wait before the next attempt after ``exc`` failed."""
        prev = self.base if self._prev is None else self._prev
        delay = min(self.cap, self.rng.uniform(self.base, max(self.base, 3.0 * prev)))
        self._prev = delay
        ra = retry_after(exc)
        if ra is not None:
            delay = max(delay, min(ra, self.cap))
        return delay


def seeded(*parts: Any) -> random.Random:
    """A ``random.Random`` seeded by ``parts`` (e.g. the run's seed and a case id): the same
    parts give the same draws in any process."""
    return random.Random(":".join(str(p) for p in parts))
