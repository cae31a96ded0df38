"""Running single cases: attempts under a deadline, retries with backoff, the fallback.

:class:`CaseExecutor` is the core both backends share (:mod:`labkit.runner.local`,
:mod:`labkit.runner.dask`). For each case:

1. the optional rate limiter (:class:`~labkit.runner.limits.TokenBucket`) grants the attempt;
2. the attempt runs under a ``timeout_s`` deadline (:class:`~labkit.runner.limits.Deadlines`:
   one timer for all the attempts in flight): ``async def`` pipelines on the loop, plain
   callables in :class:`~labkit.runner.pool.SyncPool`;
3. a *retryable* failure (:func:`labkit.retry.is_retryable`: a timeout, or an exception
   whose ``retryable`` attribute is true, such as the endpoint client's connection errors,
   HTTP 429 and 5xx) is retried up to ``retries`` times after a :class:`labkit.retry.Backoff`
   wait; any other exception (a pipeline's own bug) ends the case at once with ``error``;
4. when the primary exhausts its retries and a fallback is configured, the fallback gets
   the same treatment; ``answered_by`` records which pipeline answered, ``attempts``
   counts every attempt made.

The hot path only records each :class:`Attempt`; :meth:`CaseExecutor.materialize` builds
the result line (cut to the output cap) and the trace records off it, in the hand-over
(:class:`~labkit.runner.pool.HandOver`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit import patterns
from labkit.cases import EvalCase
from labkit.resultline import ResultError, checked, make_line, pipeline_fields
from labkit.retry import Backoff, is_retryable, is_timeout, seeded
from labkit.runner.config import RunnerConfig
from labkit.runner.keys import case_key, pipeline_key_hashes
from labkit.runner.limits import Deadlines, TokenBucket, cap_strings, is_large
from labkit.runner.pool import HandOver, SyncPool

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["Attempt", "CaseExecutor", "CaseOutcome"]

TraceFn = Callable[..., dict[str, Any]]


class _Raised(Exception):
    """Carries what a sync pipeline raised that is not an ``Exception`` (SystemExit,
    KeyboardInterrupt, other BaseExceptions) or StopIteration, so that no event-loop
    machinery treats it specially: it is the case's error like any other."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _call_guarded(fn: Callable[..., Any], case: EvalCase) -> Any:
    try:
        return fn(case)
    except StopIteration as e:
        raise _Raised(e) from None
    except Exception:
        raise
    except BaseException as e:  # raised by the pipeline itself in a worker thread: not a Ctrl-C
        raise _Raised(e) from None


def _describe(exc: BaseException, timeout_s: float) -> tuple[str, str, str]:
    """(status, error text, error type) of a failed attempt."""
    if is_timeout(exc):
        text = str(exc) or f"no result within {timeout_s:g}s"
        if not str(exc):
            return "timeout", text, "TimeoutError"
        return "timeout", text, type(exc).__name__
    if isinstance(exc, _Raised):
        exc = exc.exc
    msg = _safe_str(exc)
    name = type(exc).__name__
    if not isinstance(exc, Exception):
        return "error", f"pipeline raised {name}: {msg}" if msg else f"pipeline raised {name}", name
    return "error", f"{name}: {msg}" if msg else name, name


def _safe_str(exc: BaseException) -> str:
    """An exception's message as its case's error: a lone surrogate written escaped (no UTF-8 text
    holds one: ``\\udcff``), cut at 2,000 characters, never through a secret."""
    try:
        text = str(exc)
    except BaseException:  # an exception whose __str__ fails is still the case's error
        return f"<{type(exc).__name__} with an unprintable message>"
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 2000 else text[:patterns.safe_cut(text, 2000)] + "…"


@dataclass
class Attempt:
    """One call of a pipeline on a case: what came back (``out``) or what was raised (``exc``)."""

    pipeline: str
    attempt: int
    ts_start: float
    ts_end: float
    latency_ms: float
    out: Any
    exc: BaseException | None


@dataclass
class CaseOutcome:
    """What one case produced: its result line and one trace record per attempt (unredacted).

    ``attempt_log`` holds the raw attempts; the result line and the trace records
    are built from it off the hot path (:meth:`CaseExecutor.materialize`).
    """

    case_id: str
    result: dict[str, Any]
    traces: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    case: EvalCase | None = None
    attempt_log: list[Attempt] = field(default_factory=list)


class CaseExecutor:
    """Runs single cases with timeout, retries and fallback (used by both backends)."""

    def __init__(self, pipeline: LoadedPipeline, cfg: RunnerConfig, run_id: str) -> None:
        from labkit.trace.record import make_trace, trace_environment, trace_id_for

        self.pipeline = pipeline
        self.cfg = cfg
        self.run_id = run_id
        self._make_trace: TraceFn = make_trace
        self.trace_id_for = trace_id_for
        self._pool: SyncPool | None = None
        self._deadlines: Deadlines | None = None
        self._limiter: TokenBucket | None = TokenBucket(cfg.rate_limit) if cfg.rate_limit else None
        self._hashes = pipeline_key_hashes(pipeline)
        self.calls = 0
        #: (position, pipeline, whether it is ``async def``, what an attempt calls): the primary,
        #: then the fallback if any
        steps = []
        for n, p in enumerate(self._chain()):
            is_async = _is_async(p.fn)
            steps.append((n, p, is_async, p.fn if is_async else functools.partial(_call_guarded, p.fn)))
        self._steps = tuple(steps)
        # the traces' environment, read once for the run (make_trace would read the process
        # environment for every record): the pipeline config's, else $LABKIT_ENV
        config = pipeline.config if isinstance(pipeline.config, Mapping) else {}
        self._environment = trace_environment(config)

    def _chain(self) -> list[LoadedPipeline]:
        chain = [self.pipeline]
        if self.pipeline.fallback is not None:
            chain.append(self.pipeline.fallback)
        return chain

    def key(self, case: EvalCase) -> str:
        return case_key(case, *self._hashes)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._deadlines is not None:
            self._deadlines.close()
            self._deadlines = None

    def backoff(self, case: EvalCase, pipeline_index: int) -> Backoff:
        """The waits between the retries of one pipeline on one case (docs/runner.md "Backoff"):
        seeded by the run's ``seed``, the case and the pipeline, so they do not depend on
        which cases happen to be in flight."""
        rng = seeded(self.cfg.seed, case.id, pipeline_index)
        return Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s, rng)

    async def _call(self, fn: Callable[[EvalCase], Any], is_async: bool, case: EvalCase) -> Any:
        """One attempt, ``fn(case)``, under the ``timeout_s`` deadline (a ``TimeoutError`` past it);
        a sync ``fn`` in the pool."""
        self.calls += 1
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(self.cfg.timeout_s)
        return await deadlines.run(self._attempt(fn, is_async, case))

    async def _attempt(self, fn: Callable[[EvalCase], Any], is_async: bool, case: EvalCase) -> Any:
        if is_async:
            out = await fn(case)
        else:
            if self._pool is None:
                self._pool = SyncPool(self.cfg.concurrency)
            out = await self._pool.call(fn, case)
        if inspect.isawaitable(out):
            out = await out
        return out

    async def run_case(self, case: EvalCase) -> CaseOutcome:
        """Run one case: attempts, retries, fallback. The hot path only records what
        happened; :meth:`materialize` turns it into the result line and traces."""
        log: list[Attempt] = []
        attempt = 0
        for n, p, is_async, fn in self._steps:
            backoff: Backoff | None = None
            for i in range(1, self.cfg.retries + 2):
                if self._limiter is not None:
                    await self._limiter.acquire()
                attempt += 1
                ts0 = time.time()
                t0 = time.perf_counter()
                try:
                    out = await self._call(fn, is_async, case)
                except asyncio.CancelledError:
                    raise
                except BaseException as e:  # whatever the pipeline raises is the case's error; a real
                    # Ctrl-C reaches the run as a cancellation (asyncio.run's SIGINT handler), not here
                    log.append(Attempt(p.name, attempt, ts0, time.time(), (time.perf_counter() - t0) * 1000.0,
                                       None, e))
                    if not is_retryable(e):
                        return CaseOutcome(case.id, {}, [], attempt, case, log)
                    if i <= self.cfg.retries:
                        backoff = backoff or self.backoff(case, n)
                        await asyncio.sleep(backoff.next(e))
                    continue
                lat = (time.perf_counter() - t0) * 1000.0
                out, bad = _snapshot(out)
                log.append(Attempt(p.name, attempt, ts0, time.time(), lat, out, bad))
                return CaseOutcome(case.id, {}, [], attempt, case, log)
        return CaseOutcome(case.id, {}, [], attempt, case, log)

    def materialize(self, o: CaseOutcome) -> CaseOutcome:
        """Build the result line and the trace records of an outcome from its attempt log
        (idempotent). A success whose output is not a valid result becomes an error."""
        if not o.attempt_log or o.case is None:
            return o
        case = o.case
        key = self.key(case)
        traces = []
        res: dict[str, Any] = {}
        for a in o.attempt_log:
            trace_id = self.trace_id_for(self.run_id, case.id, a.attempt)
            try:
                res = self._line(case, a, key, trace_id)
            except Exception as e:  # never lose a case to what it returned
                res = make_line(case.id, "error", None, latency_ms=a.latency_ms, attempts=a.attempt,
                                error=f"result could not be recorded: {type(e).__name__}: {_safe_str(e)}",
                                error_type="ResultError", trace_id=trace_id, answered_by=None, key=key)
            traces.append(self._trace(case, res, a.attempt, a.ts_start, a.ts_end))
        o.result = res
        o.traces = traces
        o.attempt_log = []
        return o

    def _line(self, case: EvalCase, a: Attempt, key: str, trace_id: str) -> dict[str, Any]:
        """The validated results line of one attempt (an invalid output is a ResultError line)."""
        exc = a.exc
        if exc is None:
            try:
                data, cut = cap_strings(pipeline_fields(a.out), self.cfg.max_output_chars)
                # a guardrail's block is the pipeline's own verdict: keep it, with its reason
                blocked = data.get("status") == "blocked"
                err = data.get("error") if blocked else None
                line = make_line(
                    case.id, "blocked" if blocked else "ok", data, latency_ms=a.latency_ms, attempts=a.attempt,
                    error=err if isinstance(err, str) or err is None else str(err),
                    error_type="blocked" if blocked else None, trace_id=trace_id, answered_by=a.pipeline, key=key)
                if cut:  # kept, cut to the output cap, and flagged (docs/runner.md "Output cap")
                    line.update(truncated=True, truncated_chars=cut)
                return checked(line)
            except ResultError as e:
                exc = e
        status, text, etype = _describe(exc, self.cfg.timeout_s)
        return make_line(case.id, status, None, latency_ms=a.latency_ms, attempts=a.attempt, error=text,
                         error_type=etype, trace_id=trace_id, answered_by=None, key=key)

    def _trace(self, case: EvalCase, res: Mapping[str, Any], attempt: int, ts0: float, ts1: float) -> dict[str, Any]:
        try:
            return self._make_trace(run_id=self.run_id, case=case, result=res, pipeline=self.pipeline,
                                    attempt=attempt, ts_start=ts0, ts_end=ts1, environment=self._environment)
        except Exception as e:  # a trace must never cost a case
            return {"trace_id": res.get("trace_id"), "run_id": self.run_id, "case_id": case.id,
                    "attempt": attempt, "ts_start": ts0, "ts_end": ts1, "status": res.get("status"),
                    "error": f"trace record failed: {type(e).__name__}: {e}"}

    def cached_trace(self, case: EvalCase, res: Mapping[str, Any]) -> dict[str, Any]:
        now = time.time()
        return self._trace(case, res, 0, now, now)

    async def run_many(self, cases: Iterable[EvalCase], on_done: Callable[[CaseOutcome], None], *,
                       on_done_many: Callable[[list[CaseOutcome]], None] | None = None) -> None:
        """Run cases with at most ``concurrency`` in flight, calling ``on_done`` as each finishes;
        one worker task per case at most (:func:`workers_for`).

        A worker hands a finished case over and takes the next one at once; the
        hand-over (result line, trace records, ``on_done``: redaction, append +
        flush) runs in the order the cases finished, one case per loop iteration,
        and in a thread of its own for a large result
        (:class:`labkit.runner.pool.HandOver`), so it never holds back the cases in
        flight. Every finished case is handed over before this returns, also on
        error or cancellation; the first hand-over error stops the run and is
        raised. ``on_done_many``, when given, takes the light cases that finished
        meanwhile as one list (one write and one flush for them all).
        """
        todo = list(cases)
        it = iter(todo)
        many = None
        if on_done_many is not None:
            def many(items: list[CaseOutcome]) -> None:
                on_done_many([self.materialize(o) for o in items])
        lane = HandOver(lambda o: on_done(self.materialize(o)), _large_outcome, many=many)

        async def worker() -> None:
            for case in it:  # a shared iterator: each case is taken by exactly one worker
                if lane.error is not None:
                    return
                lane.put(await self.run_case(case))

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(workers_for(self.cfg.concurrency, len(todo))):
                    tg.create_task(worker())
        finally:
            self.close()
            lane.close()  # every finished case handed over, also on error or cancellation
        if lane.error is not None:
            raise lane.error


def workers_for(concurrency: int, n_cases: int) -> int:
    """How many worker tasks run ``n_cases``: never more than the cases (a worker costs memory
    whether or not it gets a case), never more than ``concurrency``."""
    return max(0, min(concurrency, n_cases))


def _large_outcome(o: CaseOutcome) -> bool:
    """A pipeline output too large to redact and write on the event loop."""
    return bool(o.attempt_log) and o.attempt_log[-1].out is not None and is_large(o.attempt_log[-1].out)


def _snapshot(out: Any) -> tuple[Any, BaseException | None]:
    """A shallow copy of a returned mapping (the pipeline may reuse its object), or the
    error of a mapping that cannot even be copied."""
    try:
        if type(out) is dict or isinstance(out, Mapping):
            return dict(out), None
    except Exception as e:
        return None, ResultError(f"result mapping could not be read: {type(e).__name__}: {_safe_str(e)}")
    return out, None


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)
