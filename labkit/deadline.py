"""A total deadline for a blocking call, which a per-read timeout is not.

A socket timeout bounds each wait (the connect, each read): a server that sends one byte
before every timeout keeps a call going for as long as it likes. :class:`Deadline` is a
point in monotonic time, ``seconds`` from when it is made; :meth:`Deadline.call` runs a
blocking function in a daemon thread and returns what it returns (or raises what it
raises), or raises ``TimeoutError`` when it has not returned by the deadline.

A thread cannot be stopped, so a call past its deadline is *abandoned*: the caller goes on
at once, and the function, which is given the same deadline, ends by itself at its next step
(:meth:`Deadline.check` between two chunks of a reply; its socket timeouts capped by
:meth:`Deadline.remaining`). Being a daemon, an abandoned thread never holds up the exit of
the process.

The runner bounds each attempt of a case its own way, on its event loop
(:mod:`labkit.runner.limits`); this is the one deadline of the blocking calls made outside
it: the LLM judge's and the embeddings client's requests (:func:`labkit.openai_compat.post_bounded`)
and the OTLP export (:mod:`labkit.trace.otel`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Deadline"]


class Deadline:
    """``seconds`` from now (monotonic clock)."""

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.at = time.monotonic() + self.seconds

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g}s, {self.remaining():.3f}s left)"

    def remaining(self) -> float:
        """Seconds left, 0 once it has passed."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self) -> None:
        """Raise ``TimeoutError`` once the deadline has passed."""
        if self.expired:
            raise TimeoutError(f"not done within {self.seconds:g}s")

    def call(self, fn: Callable[[], T], *, name: str = "labkit-deadline") -> T:
        """``fn()`` run in a daemon thread: its result, its exception, or ``TimeoutError`` when it
        has not returned by the deadline (the thread is abandoned; see the module docstring)."""
        self.check()
        box: list[tuple[bool, Any]] = []
        done = threading.Event()

        def work() -> None:
            try:
                box.append((True, fn()))
            except BaseException as e:  # (handed to the caller, whatever it is)
                box.append((False, e))
            finally:
                done.set()

        threading.Thread(target=work, name=name, daemon=True).start()
        if not done.wait(self.remaining()):
            raise TimeoutError(f"not done within {self.seconds:g}s")
        ok, value = box[0]
        if not ok:
            raise value
        return value
