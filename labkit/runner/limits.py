"""The runner's limits: the request rate (:class:`TokenBucket`) and the output cap.

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
from typing import Any

__all__ = ["DEFAULT_MAX_OUTPUT_CHARS", "LARGE_CHARS", "TokenBucket", "cap_strings", "is_large"]

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
            return v[:limit]
        return v
    if isinstance(v, dict):
        return {k: _cap(x, limit, f"{path}.{k}" if path else str(k), cut) for k, x in v.items()}
    if isinstance(v, list):
        return [_cap(x, limit, f"{path}[{i}]", cut) for i, x in enumerate(v)]
    return v
