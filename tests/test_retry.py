"""Retry with backoff: fault classification by attribute, decorrelated jitter, Retry-After."""

from __future__ import annotations

import random

import pytest

from labkit.openai_compat import (
    ClientHTTPError,
    EndpointConnectionError,
    EndpointTimeout,
    MalformedResponse,
    RateLimited,
    ServerError,
)
from labkit.retry import Backoff, is_retryable, is_timeout, retry_after, seeded
from labkit.runner.pool import PipelineThreadsStuck


class Flaky(Exception):
    retryable = True


class Odd(Exception):
    retryable = "yes"  # not a bool: not a claim


@pytest.mark.parametrize(("exc", "retryable", "timeout"), [
    (EndpointTimeout("slow"), True, True),
    (EndpointConnectionError("reset"), True, False),
    (RateLimited("429", retry_after=1.0), True, False),
    (ServerError("503"), True, False),
    (ClientHTTPError("401"), False, False),
    (MalformedResponse("bad body"), False, False),
    (TimeoutError(), True, True),
    (PipelineThreadsStuck("stuck"), True, True),
    (Flaky("transient"), True, False),
    (Odd("?"), False, False),
    (ValueError("a bug"), False, False),
])
def test_classification(exc: BaseException, retryable: bool, timeout: bool) -> None:
    assert (is_retryable(exc), is_timeout(exc)) == (retryable, timeout)


def test_decorrelated_jitter_bounds() -> None:
    b = Backoff(0.5, 20.0, random.Random(1))
    prev = 0.5
    for _ in range(50):
        d = b.next()
        assert 0.5 <= d <= min(20.0, 3 * prev)
        prev = d
    assert Backoff(0.0, 5.0, random.Random(1)).next() == 0.0
    assert Backoff(1.0, 0.2, random.Random(1)).next() == 0.2  # the cap wins over the base


def test_seeded_schedules_repeat_and_differ() -> None:
    def schedule(*seed: object) -> list[float]:
        b = Backoff(0.1, 10.0, seeded(*seed))
        return [b.next() for _ in range(5)]

    assert schedule(0, "c001") == schedule(0, "c001")
    assert schedule(0, "c001") != schedule(0, "c002")
    assert schedule(0, "c001") != schedule(1, "c001")


def test_retry_after_is_a_capped_floor() -> None:
    b = Backoff(0.01, 2.0, random.Random(0))
    assert b.next(RateLimited("429", retry_after=1.5)) == 1.5
    assert b.next(RateLimited("429", retry_after=3600)) == 2.0
    assert b.next(RateLimited("429", retry_after=None)) < 1.0


@pytest.mark.parametrize(("value", "want"), [(2, 2.0), (0.5, 0.5), (True, None), (float("nan"), None),
                                             (float("inf"), None), (-1, None), ("3", None)])
def test_retry_after_reads_only_finite_numbers(value: object, want: float | None) -> None:
    exc = RateLimited("429")
    exc.retry_after = value  # type: ignore[assignment]
    assert retry_after(exc) == want
