"""The runner's threads and timers: the hand-over lane keeps completion order; the sync pool
bounds abandoned calls and stops pure-Python spins; the attempt deadlines time out the
attempts past theirs and only those."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from labkit.runner.limits import Deadlines
from labkit.runner.pool import HandOver, PipelineAbandoned, PipelineThreadsStuck, SyncPool


def test_hand_over_keeps_order_across_the_loop_and_the_thread() -> None:
    done: list[tuple[str, str]] = []

    def fn(item: str) -> None:
        if item.startswith("heavy"):
            time.sleep(0.1)
        done.append((item, threading.current_thread().name))

    async def go() -> None:
        lane = HandOver(fn, lambda item: item.startswith("heavy"))
        for item in ("a", "heavy1", "b", "c"):
            lane.put(item)
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        lane.put("d")  # the thread is still busy with heavy1: d queues behind it
        await asyncio.sleep(0.3)
        lane.put("e")  # the thread is idle again: back on the loop
        lane.close()

    asyncio.run(go())
    assert [i for i, _ in done] == ["a", "heavy1", "b", "c", "d", "e"]
    where = dict(done)
    assert where["heavy1"] == where["d"] == "labkit-handover"
    assert where["a"] == where["e"] == threading.main_thread().name


def test_hand_over_stops_at_the_first_error() -> None:
    seen: list[int] = []

    def fn(i: int) -> None:
        if i == 2:
            raise OSError("disk full")
        seen.append(i)

    async def go() -> HandOver:
        lane = HandOver(fn, lambda _: False)
        for i in range(5):
            lane.put(i)
        lane.close()
        return lane

    lane = asyncio.run(go())
    assert seen == [0, 1] and isinstance(lane.error, OSError)


def test_sync_pool_stops_a_spinning_call_and_bounds_the_stuck_ones() -> None:
    release = threading.Event()
    ended: list[str] = []

    def spin(_: Any) -> None:
        try:
            while True:  # pure Python, never returns on its own
                pass
        except PipelineAbandoned:
            ended.append("spin")
            raise

    def block(_: Any) -> None:
        release.wait(30)  # inside C: cannot be stopped, holds its place

    async def go() -> None:
        pool = SyncPool(limit=2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.call(spin, None)
        for _ in range(50):
            if ended and pool.abandoned == 0:
                break
            await asyncio.sleep(0.02)
        assert ended == ["spin"] and pool.abandoned == 0  # stopped, and its place is free again
        for _ in range(2):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await pool.call(block, None)
        assert pool.abandoned == 2
        with pytest.raises(PipelineThreadsStuck, match="2 pipeline call"):
            await pool.call(lambda _: "never", None)
        release.set()
        for _ in range(100):
            if pool.abandoned == 0:
                break
            await asyncio.sleep(0.02)
        assert await pool.call(lambda x: x + 1, 41) == 42
        pool.shutdown()

    try:
        asyncio.run(go())
    finally:
        release.set()


def test_hand_over_gives_the_light_items_waiting_as_one_batch_in_order() -> None:
    batches: list[list[str]] = []
    single: list[str] = []
    release = threading.Event()

    def one(item: str) -> None:
        if item.startswith("heavy"):
            release.wait(10)  # the thread stays busy until the loop has handed over what came after
        single.append(item)

    async def go() -> HandOver:
        lane = HandOver(one, lambda item: item.startswith("heavy"), many=batches.append, batch=3)
        for item in ("a", "b", "c", "d", "heavy1", "e"):
            lane.put(item)  # all put before the loop hands any over
        for _ in range(20):  # a loop iteration per hand-over: let all of them run
            await asyncio.sleep(0)
        release.set()
        lane.close()
        return lane

    lane = asyncio.run(go())
    assert lane.error is None
    assert batches == [["a", "b", "c"], ["d"]]  # at most `batch` at once, never past a heavy item
    assert single == ["heavy1", "e"]  # the heavy one in the thread, and what came while it was busy


def test_a_failed_batch_stops_the_hand_over() -> None:
    seen: list[list[int]] = []

    def many(items: list[int]) -> None:
        if 2 in items:
            raise OSError("disk full")
        seen.append(items)

    async def go() -> HandOver:
        lane = HandOver(lambda _: None, lambda _: False, many=many, batch=2)
        for i in range(6):
            lane.put(i)
        lane.close()
        return lane

    lane = asyncio.run(go())
    assert seen == [[0, 1]] and isinstance(lane.error, OSError)


def test_deadlines_time_out_only_the_attempts_past_theirs() -> None:
    async def go() -> list[str]:
        deadlines = Deadlines(0.15)

        async def one(wait: float) -> str:
            try:
                await deadlines.run(asyncio.sleep(wait))
            except TimeoutError:
                return "timeout"
            await asyncio.sleep(0.25)  # past the deadline: an ended attempt is never cancelled
            return "ok"

        async def staggered(delay: float, wait: float) -> str:
            await asyncio.sleep(delay)
            return await one(wait)

        t = time.monotonic()
        got = await asyncio.gather(one(0.01), one(5), staggered(0.05, 0.02), staggered(0.08, 5), one(0.1))
        took = time.monotonic() - t
        assert took < 1.0  # the stuck attempts ended at their deadlines, not after their 5 s
        deadlines.close()
        return list(got)

    assert asyncio.run(go()) == ["ok", "timeout", "ok", "timeout", "ok"]


def test_deadlines_keep_a_cancellation_from_outside_a_cancellation() -> None:
    async def go() -> None:
        deadlines = Deadlines(0.05)
        task = asyncio.create_task(deadlines.run(asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        task.cancel()  # before the deadline
        with pytest.raises(asyncio.CancelledError):
            await task

        async def cancelled_after_its_deadline() -> None:
            me = asyncio.current_task()
            assert me is not None
            asyncio.get_running_loop().call_later(0.05, me.cancel)  # the deadline and an outside cancel
            await deadlines.run(asyncio.sleep(5))

        task = asyncio.create_task(cancelled_after_its_deadline())
        with pytest.raises(asyncio.CancelledError):
            await task
        deadlines.close()

    asyncio.run(go())


def test_deadlines_queue_keeps_few_ended_attempts_also_behind_a_long_one() -> None:
    async def go() -> tuple[int, int]:
        deadlines = Deadlines(30)
        for _ in range(1000):
            await deadlines.run(asyncio.sleep(0))
        alone = len(deadlines._q)
        release = asyncio.Event()
        long = asyncio.create_task(deadlines.run(release.wait()))  # first in the queue, for long
        await asyncio.sleep(0)
        most = 0
        for _ in range(1000):
            await deadlines.run(asyncio.sleep(0))
            most = max(most, len(deadlines._q))
        release.set()
        await long
        deadlines.close()
        return alone, most

    alone, most = asyncio.run(go())
    assert alone <= 1  # an ended attempt is dropped when the next one starts
    assert most <= 20  # not the 1,000 that ended behind the long one


def test_sync_pool_starts_its_threads_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a thread waits for it to run (milliseconds on a busy machine): the loop never
    waits for that, it hands the calls over and goes on; every call still runs."""
    start = threading.Thread.start

    def slow_start(self: threading.Thread) -> None:
        time.sleep(0.05)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    release = threading.Event()

    def call(x: int) -> int:
        release.wait(10)
        return x * 2

    async def go() -> tuple[float, list[int]]:
        pool = SyncPool(limit=8)
        t = time.monotonic()
        calls = [asyncio.create_task(pool.call(call, i)) for i in range(8)]
        await asyncio.sleep(0)  # every task has handed its call over
        handed_over = time.monotonic() - t
        release.set()
        got = await asyncio.gather(*calls)
        pool.shutdown()
        return handed_over, list(got)

    try:
        handed_over, got = asyncio.run(go())
    finally:
        release.set()
    assert got == [i * 2 for i in range(8)]
    assert handed_over < 0.2  # not 8 thread starts one after the other (0.4 s here)
