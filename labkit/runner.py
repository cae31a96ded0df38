"""Execute a dataset through a pipeline: concurrency, rate limit, timeouts, retries,
fallback, cache, crash-safe resume, progress, and an optional Dask executor.

The core is asyncio. ``async def`` pipelines are awaited on the loop; plain
callables run in a pool of worker threads (:class:`labkit.runpool.SyncPool`:
abandoned calls are stopped where possible and bounded), so at most
``concurrency`` cases are in flight either way. For each case:

1. the optional rate limiter (token bucket, ``rate_limit`` requests/s) grants the
   attempt;
2. the attempt runs under a ``timeout_s`` deadline;
3. a *retryable* failure — a timeout, or a
   :class:`~labkit.openai_compat.RetryableError` (connection error, HTTP 429
   honouring Retry-After, 5xx) — is retried up to ``retries`` times with
   exponential backoff and jitter; any other exception (a pipeline's own bug) ends
   the case at once with status ``error``;
4. when the primary pipeline exhausts its retries and a fallback is configured,
   the fallback gets the same treatment; ``answered_by`` records which pipeline
   answered and ``attempts`` counts every attempt made;
5. the case's result line is appended to results.jsonl and flushed, its trace
   records (one per attempt) to traces.jsonl, both cut to the output cap
   (:mod:`labkit.runlimits`) and redacted first; a large result is handed over
   in a thread of its own (:class:`labkit.runpool.HandOver`).

A failed case is a result with status ``error`` or ``timeout`` and its reason;
the run never crashes on a case and always ends. When every case is done,
results.jsonl is rewritten in dataset order (atomically) and the run is scored.

Every writer of a run directory holds its lock (:mod:`labkit.runlock`).
``resume(run_dir)`` skips the cases already in results.jsonl and runs the rest,
so a run killed at any moment (SIGKILL included) resumes to the same results.
The idempotency key of a case is sha256 of its canonical content plus the
pipeline's (and fallback's) config hash; the opt-in cache (``cache_dir``) is
keyed the same way, and results served from it carry ``from_cache: true``.

See docs/runner.md for the configuration and the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from labkit.cases import Dataset, EvalCase, atomic_write_text, load_cases
from labkit.errors import ConfigError, PipelineError
from labkit.openai_compat import EndpointTimeout, RetryableError
from labkit.resultline import (
    RUNNER_FIELDS,
    ResultError,
    check_line,
    checked,
    make_line,
    pipeline_fields,
)
from labkit.runcache import ResultCache
from labkit.runlimits import DEFAULT_MAX_OUTPUT_CHARS, cap_strings, is_large
from labkit.runlock import RunLock
from labkit.runpool import HandOver, SyncPool
from labkit.runredact import redact_manifest
from labkit.runs import SNAPSHOT, RunDir, iter_jsonl, read_results
from labkit.scoring import score_run

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["RunnerConfig", "case_key", "resume", "run", "run_cases"]

EXECUTORS = ("local", "dask")


# --------------------------------------------------------------------------- config


@dataclass
class RunnerConfig:
    """How a run executes. Defaults come from the pipeline config's ``runner:`` section,
    then from this object (fields left at their defaults do not override)."""

    concurrency: int = 8
    rate_limit: float | None = None
    timeout_s: float = 60.0
    retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    cache_dir: str | None = None
    progress: bool | None = None
    executor: str = "local"
    scheduler: str | None = None
    batch_size: int = 64
    seed: int = 0
    #: redaction settings (docs/traces.md) for everything the run writes; None = all on
    redaction: dict[str, Any] | None = None
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, path: str | None = None) -> None:
        def bad(name: str, why: str, known: Sequence[str] | None = None) -> ConfigError:
            return ConfigError(why, path=path, field=f"runner.{name}", known=known)

        if not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise bad("concurrency", f"must be an integer >= 1, got {self.concurrency!r}")
        if self.rate_limit is not None and (not _num(self.rate_limit) or self.rate_limit <= 0):
            raise bad("rate_limit", f"must be a positive number of requests per second, got {self.rate_limit!r}")
        if not _num(self.timeout_s) or self.timeout_s <= 0:
            raise bad("timeout_s", f"must be a positive number of seconds, got {self.timeout_s!r}")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise bad("retries", f"must be an integer >= 0, got {self.retries!r}")
        for name in ("backoff_base_s", "backoff_max_s"):
            v = getattr(self, name)
            if not _num(v) or v < 0:
                raise bad(name, f"must be a number >= 0, got {v!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise bad("cache_dir", "must be a folder path")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise bad("progress", "must be true, false or null (auto)")
        if self.executor not in EXECUTORS:
            raise bad("executor", f"unknown executor {self.executor!r}", EXECUTORS)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise bad("scheduler", "must be a scheduler address string")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise bad("batch_size", f"must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", f"must be an integer, got {self.seed!r}")
        from labkit.runredact import check_redaction

        check_redaction(self.redaction, path)
        m = self.max_output_chars
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise bad("max_output_chars", f"must be an integer >= 1, got {m!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str | None = None) -> RunnerConfig:
        """Build from a mapping (a ``runner:`` section); unknown keys and bad types are
        ConfigErrors naming the field."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError("must be a mapping", path=path, field="runner")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise ConfigError(f"unknown runner option {key!r}", path=path, field=f"runner.{key}", known=names)
        kw = dict(d)
        for key in ("timeout_s", "backoff_base_s", "backoff_max_s", "rate_limit"):
            v = kw.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                kw[key] = float(v)
        if isinstance(kw.get("cache_dir"), os.PathLike):
            kw["cache_dir"] = os.fspath(kw["cache_dir"])
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            default = f.default
            setattr(obj, f.name, kw.get(f.name, default))
        obj.validate(path)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def explicit(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what overrides a pipeline's section)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def show_progress(self) -> bool:
        """Auto (None): on in a terminal and in a notebook kernel; off under CI and when
        stderr goes to a file or a pipe (a log full of redraws helps nobody)."""
        if self.progress is not None:
            return self.progress
        if os.environ.get("CI"):
            return False
        return "ipykernel" in sys.modules or sys.stderr.isatty()


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def merge_config(
    pipeline_runner: Mapping[str, Any] | None,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    path: str | None = None,
) -> RunnerConfig:
    """Pipeline ``runner:`` section < ``config`` (its non-default fields, or its keys) < ``overrides``."""
    merged: dict[str, Any] = dict(pipeline_runner or {})
    if isinstance(config, RunnerConfig):
        merged.update(config.explicit())
    elif config is not None:
        merged.update(RunnerConfig.from_dict(config).explicit() | dict(config))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return RunnerConfig.from_dict(merged, path=path)


# --------------------------------------------------------------------------- keys


def case_key(case: EvalCase, config_hash: str, fallback_hash: str | None = None) -> str:
    """Idempotency key: sha256 of the case's canonical content and the pipeline config hash(es)."""
    h = hashlib.sha256()
    h.update(json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    h.update(b"\x00" + config_hash.encode() + b"\x00" + (fallback_hash or "").encode())
    return h.hexdigest()[:32]


def _pipeline_key_hashes(p: LoadedPipeline) -> tuple[str, str | None]:
    return p.config_hash, (p.fallback.config_hash if p.fallback is not None else None)


# --------------------------------------------------------------------------- building blocks


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
    if isinstance(exc, EndpointTimeout) or (isinstance(exc, TimeoutError) and not isinstance(exc, RetryableError)):
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
    try:
        text = str(exc)
    except BaseException:  # an exception whose __str__ fails is still the case's error
        return f"<{type(exc).__name__} with an unprintable message>"
    return text if len(text) <= 2000 else text[:2000] + "…"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (RetryableError, TimeoutError))


# --------------------------------------------------------------------------- executing cases


TraceFn = Callable[..., dict[str, Any]]


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
    """Runs single cases with timeout, retries and fallback (used by both executors)."""

    def __init__(self, pipeline: LoadedPipeline, cfg: RunnerConfig, run_id: str, *, rng_seed: int | None = None) -> None:
        from labkit.trace.record import make_trace, trace_id_for

        self.pipeline = pipeline
        self.cfg = cfg
        self.run_id = run_id
        self._make_trace: TraceFn = make_trace
        self._trace_id_for = trace_id_for
        self._rng = random.Random(cfg.seed if rng_seed is None else rng_seed)
        self._pool: SyncPool | None = None
        self._limiter: TokenBucket | None = TokenBucket(cfg.rate_limit) if cfg.rate_limit else None
        self._hashes = _pipeline_key_hashes(pipeline)
        self.calls = 0
        self._async = {id(p): _is_async(p.fn) for p in self._chain()}

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

    def backoff(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait before retry ``attempt + 1``: exponential with equal jitter;
        a server's Retry-After (capped at backoff_max_s) is a floor."""
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2 ** (attempt - 1)))
        delay = base / 2 + self._rng.uniform(0, base / 2)
        ra = getattr(exc, "retry_after", None)
        if isinstance(ra, (int, float)) and _num(ra):
            delay = max(delay, min(float(ra), self.cfg.backoff_max_s))
        return delay

    async def _call(self, p: LoadedPipeline, case: EvalCase) -> Any:
        self.calls += 1
        async with asyncio.timeout(self.cfg.timeout_s):
            if self._async.get(id(p), False):
                out = await p.fn(case)
            else:
                if self._pool is None:
                    self._pool = SyncPool(self.cfg.concurrency)
                out = await self._pool.call(functools.partial(_call_guarded, p.fn), case)
            if inspect.isawaitable(out):
                out = await out
        return out

    async def run_case(self, case: EvalCase) -> CaseOutcome:
        """Run one case: attempts, retries, fallback. The hot path only records what
        happened; :meth:`materialize` turns it into the result line and traces."""
        log: list[Attempt] = []
        attempt = 0
        for p in self._chain():
            for i in range(1, self.cfg.retries + 2):
                if self._limiter is not None:
                    await self._limiter.acquire()
                attempt += 1
                ts0 = time.time()
                t0 = time.perf_counter()
                try:
                    out = await self._call(p, case)
                except asyncio.CancelledError:
                    raise
                except BaseException as e:  # whatever the pipeline raises is the case's error; a real
                    # Ctrl-C reaches the run as a cancellation (asyncio.run's SIGINT handler), not here
                    log.append(Attempt(p.name, attempt, ts0, time.time(), (time.perf_counter() - t0) * 1000.0,
                                       None, e))
                    if not _retryable(e):
                        return CaseOutcome(case.id, {}, [], attempt, case, log)
                    if i <= self.cfg.retries:
                        await asyncio.sleep(self.backoff(i, e))
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
            trace_id = self._trace_id_for(self.run_id, case.id, a.attempt)
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
                                    attempt=attempt, ts_start=ts0, ts_end=ts1)
        except Exception as e:  # a trace must never cost a case
            return {"trace_id": res.get("trace_id"), "run_id": self.run_id, "case_id": case.id,
                    "attempt": attempt, "ts_start": ts0, "ts_end": ts1, "status": res.get("status"),
                    "error": f"trace record failed: {type(e).__name__}: {e}"}

    def cached_trace(self, case: EvalCase, res: Mapping[str, Any]) -> dict[str, Any]:
        now = time.time()
        return self._trace(case, res, 0, now, now)

    async def run_many(
        self,
        cases: Iterable[EvalCase],
        on_done: Callable[[CaseOutcome], None],
    ) -> None:
        """Run cases with at most ``concurrency`` in flight, calling ``on_done`` as each finishes.

        A worker hands a finished case over and takes the next one at once; the
        hand-over (result line, trace records, ``on_done``: redaction, append +
        flush) runs in the order the cases finished, one case per loop iteration,
        and in a thread of its own for a large result
        (:class:`labkit.runpool.HandOver`), so it never holds back the cases in
        flight. Every finished case is handed over before this returns, also on
        error or cancellation; the first hand-over error stops the run and is
        raised.
        """
        it = iter(cases)
        lane = HandOver(lambda o: on_done(self.materialize(o)), _large_outcome)

        async def worker() -> None:
            for case in it:  # a shared iterator: each case is taken by exactly one worker
                if lane.error is not None:
                    return
                lane.put(await self.run_case(case))

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(self.cfg.concurrency):
                    tg.create_task(worker())
        finally:
            self.close()
            lane.close()  # every finished case handed over, also on error or cancellation
        if lane.error is not None:
            raise lane.error


def _large_outcome(o: CaseOutcome) -> bool:
    """A pipeline output too large to redact and write on the event loop."""
    return bool(o.attempt_log) and o.attempt_log[-1].out is not None and is_large(o.attempt_log[-1].out)


def _snapshot(out: Any) -> tuple[Any, BaseException | None]:
    """A shallow copy of a returned mapping (the pipeline may reuse its object), or the
    error of a mapping that cannot even be copied."""
    try:
        if isinstance(out, Mapping):
            return dict(out), None
    except Exception as e:
        return None, ResultError(f"result mapping could not be read: {type(e).__name__}: {_safe_str(e)}")
    return out, None


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


def run_cases(
    cases: Sequence[EvalCase],
    pipeline: LoadedPipeline,
    config: RunnerConfig | None = None,
    *,
    run_id: str = "adhoc",
) -> list[CaseOutcome]:
    """Run cases in memory (no files): the outcomes in the order of ``cases``."""
    ex = CaseExecutor(pipeline, config or RunnerConfig(progress=False), run_id)
    got: dict[str, CaseOutcome] = {}

    def done(o: CaseOutcome) -> None:
        o.case = None  # keep outcomes small to ship (Dask)
        got[o.case_id] = o

    _run_coro(ex.run_many(cases, done))
    return [got[c.id] for c in cases]


def _run_coro(coro: Any) -> Any:
    """asyncio.run, also from inside a running loop (Jupyter): then in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = asyncio.run(coro)
        except BaseException as e:
            box["e"] = e

    t = threading.Thread(target=target, name="labkit-run", daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")


# --------------------------------------------------------------------------- Dask executor


def _dask_batch(pipeline: LoadedPipeline, cfg: dict[str, Any], run_id: str, cases: list[EvalCase]) -> list[CaseOutcome]:
    """One batch on a Dask worker: the same asyncio core, outcomes back to the driver."""
    local = RunnerConfig.from_dict({**cfg, "executor": "local", "progress": False, "cache_dir": None})
    return run_cases(cases, pipeline, local, run_id=run_id)


def _run_dask(
    todo: Sequence[EvalCase],
    pipe: LoadedPipeline,
    cfg: RunnerConfig,
    run_id: str,
    done: Callable[[CaseOutcome], None],
) -> None:
    """Run ``todo`` in batches of ``batch_size`` on a Dask cluster; ``done`` is called on the
    driver for each case as its batch completes (the driver writes every file)."""
    try:
        import distributed
    except ImportError:
        from labkit.errors import MissingDependencyError

        raise MissingDependencyError("dask[distributed]", extra="dask", feature="executor: dask") from None
    owned: list[Any] = []
    if cfg.scheduler:
        try:
            client = distributed.Client(cfg.scheduler, timeout=30)
        except OSError as e:
            raise ConfigError(f"cannot reach Dask scheduler {cfg.scheduler!r}: {e}", field="runner.scheduler") from None
        owned.append(client)
    else:
        try:
            client = distributed.get_client()
        except ValueError:
            cluster = distributed.LocalCluster(processes=False, dashboard_address=None)
            client = distributed.Client(cluster)
            owned += [client, cluster]
    try:
        pfut = client.scatter(pipe, broadcast=True, hash=False)
        cfg_d = cfg.to_dict()
        batches = [list(todo[i : i + cfg.batch_size]) for i in range(0, len(todo), cfg.batch_size)]
        futs = {client.submit(_dask_batch, pfut, cfg_d, run_id, b, pure=False): b for b in batches}
        for fut in distributed.as_completed(list(futs)):
            batch = futs[fut]
            try:
                outs: list[CaseOutcome] = fut.result()
            except Exception as e:  # the batch itself failed: its cases are errors, the run goes on
                from labkit.trace.record import trace_id_for

                outs = []
                for c in batch:
                    key = case_key(c, *_pipeline_key_hashes(pipe))
                    res = make_line(c.id, "error", None, latency_ms=None, attempts=0,
                                       error=f"dask batch failed: {type(e).__name__}: {e}",
                                       error_type=type(e).__name__, trace_id=trace_id_for(run_id, c.id, 0),
                                       answered_by=None, key=key)
                    outs.append(CaseOutcome(c.id, res, [], 0))
            for o in outs:
                done(o)
    finally:
        for obj in owned:
            with contextlib.suppress(Exception):
                obj.close()


# --------------------------------------------------------------------------- the run directory


class _Progress:
    def __init__(self, total: int, initial: int, enabled: bool, desc: str) -> None:
        self.errors = 0
        self.cost = 0.0
        self.cached = 0
        self._bar: Any = None
        self._last = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="case", dynamic_ncols=True,
                             mininterval=0.2)

    def update(self, res: Mapping[str, Any], n: int = 1) -> None:
        if res.get("status") != "ok":
            self.errors += 1
        if res.get("from_cache"):
            self.cached += 1
        elif _num(res.get("cost_usd")):
            self.cost += float(res["cost_usd"])
        if self._bar is not None:
            self._bar.update(n)
            now = time.monotonic()
            if now - self._last > 0.25:
                self._last = now
                self._postfix()

    def _postfix(self) -> None:
        post = {"errors": self.errors, "cost": f"${self.cost:.4f}"}
        if self.cached:
            post["cached"] = self.cached
        self._bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._postfix()
            self._bar.refresh()
            self._bar.close()


LINES_IN_MEMORY_BYTES = 64 * 1024 * 1024
#: Runner fields kept as they are through redaction (``error`` text is redacted like content).
_IDS_AND_STATES = tuple(k for k in RUNNER_FIELDS if k != "error")
_encode_result = json.JSONEncoder(ensure_ascii=False).encode
_encode_trace = json.JSONEncoder(ensure_ascii=False, default=str).encode


class _Writer:
    """Appends redacted lines to results.jsonl and traces.jsonl, flushed per case."""

    def __init__(self, rd: RunDir, redactor: Any) -> None:
        self.rd = rd
        self.redactor = redactor
        self._res: IO[str] = open(rd.results_path, "a", encoding="utf-8")  # noqa: SIM115
        self._tr: IO[str] = open(rd.traces_path, "a", encoding="utf-8")  # noqa: SIM115
        # lines written by this session, kept (within a memory budget) so the final
        # reordering need not read the file back
        self.lines: dict[str, tuple[str, str, bool]] | None = {}
        self._budget = LINES_IN_MEMORY_BYTES

    def redact_result(self, res: Mapping[str, Any]) -> dict[str, Any]:
        red = dict(self.redactor.redact(res))
        for k in _IDS_AND_STATES:  # ids and states the runner set are not content
            if k in res:
                red[k] = res[k]
        return red

    def write(self, result: Mapping[str, Any], traces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if traces:
            self._tr.write("".join(_encode_trace(self.redactor.redact(t)) + "\n" for t in traces))
            self._tr.flush()
        red = self.redact_result(result)
        line = _encode_result(red) + "\n"
        self._res.write(line)
        self._res.flush()
        if self.lines is not None:
            self._budget -= len(line)
            if self._budget < 0:
                self.lines = None
            else:
                self.lines[red["case_id"]] = (line, red["status"], bool(red.get("from_cache")))
        return red

    def close(self) -> None:
        self._res.close()
        self._tr.close()


_HEAD = re.compile(r'^\{"case_id": ("(?:[^"\\]|\\.)*"), "status": "(ok|error|timeout|blocked)"')


def _line_head(raw: str) -> tuple[str, str, bool]:
    """(case_id, status, from_cache) of a results line, without parsing all of it when it
    starts the way the runner writes it."""
    m = _HEAD.match(raw)
    if m is None:
        obj = json.loads(raw)
        return str(obj["case_id"]), str(obj.get("status", "ok")), bool(obj.get("from_cache"))
    # inside JSON strings every quote is escaped, so this key/value pair cannot be content
    return json.loads(m.group(1)), m.group(2), '"from_cache": true' in raw


def _git_sha_from_files(start: Path) -> str | None:
    """HEAD's commit read from the .git folder (no subprocess): "" when there is no
    repository, None when the repository could not be read this way."""
    for d in (start, *start.parents):
        dot = d / ".git"
        if dot.is_dir():
            gitdir = dot
        elif dot.is_file():
            text = dot.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = (d / text.split(":", 1)[1].strip()).resolve()
        else:
            continue
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
        ref = head.split(":", 1)[1].strip()
        for base in (gitdir, common):
            f = base / ref
            if f.is_file():
                sha = f.read_text(encoding="utf-8").strip()
                return sha if re.fullmatch(r"[0-9a-f]{40,64}", sha) else None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
        return None
    return ""


def _git_sha() -> str | None:
    """The commit checked out in the working directory's repository (None outside one)."""
    try:
        sha = _git_sha_from_files(Path.cwd())
    except OSError:
        sha = None
    if sha is not None:
        return sha or None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def _gate_info(gate_path: str | None) -> dict[str, Any] | None:
    if gate_path is None:
        return None
    from labkit.gate import gate_lock_info

    info = gate_lock_info(gate_path)
    if info is None:
        p = Path(gate_path)
        if not p.is_file():
            raise ConfigError("gate config not found", path=str(p), field="gate")
        info = {"path": str(p), "hash": hashlib.sha256(p.read_bytes()).hexdigest(), "locked_at": None}
    return dict(info)


def _spec_of(spec: Any, p: LoadedPipeline) -> str | None:
    """A string that reloads the pipeline on resume (YAML path or module:callable), if any."""
    if p.path:
        return str(Path(p.path).resolve())
    if isinstance(spec, (str, Path)):
        return str(spec)
    cfg_call = p.config.get("callable") if isinstance(p.config, dict) else None
    if isinstance(cfg_call, str) and "<" not in cfg_call and not cfg_call.startswith(("__main__:", "?:")):
        return cfg_call
    return None


def _load_dataset(dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str]) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        return load_cases(dataset)
    return Dataset(tuple(dataset), None)


def _load_pipeline(spec: Any, corpus_dir: str | None) -> LoadedPipeline:
    from labkit.pipelines import LoadedPipeline, load_pipeline

    if isinstance(spec, LoadedPipeline):
        return spec
    return load_pipeline(spec, corpus_dir=corpus_dir)


def _default_run_id(out_dir: Path) -> str:
    return out_dir.name


def _truncate_torn_tail(path: Path) -> None:
    """Cut a last line without newline (a write interrupted by a kill)."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        # find the last newline
        pos = size
        chunk = 65536
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            i = buf.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


class _Session:
    """One execution of (part of) a run into a run directory."""

    def __init__(
        self,
        rd: RunDir,
        ds: Dataset,
        pipe: LoadedPipeline,
        cfg: RunnerConfig,
        run_id: str,
    ) -> None:
        from labkit.runredact import redactor

        self.rd = rd
        self.ds = ds
        self.pipe = pipe
        self.cfg = cfg
        self.run_id = run_id
        self.redactor = redactor(cfg.redaction)
        self.cache = ResultCache(cfg.cache_dir) if cfg.cache_dir else None
        #: this session's results as the pipeline returned them (before redaction): what is scored
        self.unredacted: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.writer: _Writer | None = None
        self.resumed = False

    def execute(self, finished: set[str]) -> None:
        todo = [c for c in self.ds if c.id not in finished]
        progress = _Progress(len(self.ds), len(self.ds) - len(todo), self.cfg.show_progress(),
                             desc=f"run {self.run_id}")
        writer = _Writer(self.rd, self.redactor)
        self.writer = writer
        self.resumed = bool(finished)
        ex = CaseExecutor(self.pipe, self.cfg, self.run_id)
        try:
            if self.cache is not None:
                todo = self._serve_cached(todo, ex, writer, progress)

            def done(o: CaseOutcome) -> None:
                self.calls += o.calls
                red = writer.write(o.result, o.traces)
                self.unredacted[o.case_id] = o.result
                if self.cache is not None and o.result["status"] == "ok":
                    self.cache.put(o.result["idempotency_key"], red, run_id=self.run_id)
                progress.update(o.result)

            if todo:
                if self.cfg.executor == "dask":
                    _run_dask(todo, self.pipe, self.cfg, self.run_id, done)
                else:
                    _run_coro(ex.run_many(todo, done))
        finally:
            writer.close()
            progress.close()

    def _serve_cached(self, todo: list[EvalCase], ex: CaseExecutor, writer: _Writer, progress: _Progress) -> list[EvalCase]:
        assert self.cache is not None
        rest: list[EvalCase] = []
        for c in todo:
            key = ex.key(c)
            hit = self.cache.get(key)
            if hit is None:
                rest.append(c)
                continue
            res = dict(hit)
            res.update(case_id=c.id, from_cache=True, attempts=0, error=None, error_type=None,
                       trace_id=ex._trace_id_for(self.run_id, c.id, 0), idempotency_key=key)
            if check_line(res, None, []) is None:  # cannot happen for a validated entry; a miss if it does
                rest.append(c)
                continue
            writer.write(res, [ex.cached_trace(c, res)])
            self.unredacted[c.id] = res
            progress.update(res)
        return rest

    def scored_results(self) -> list[dict[str, Any]]:
        """What the run scores: this session's results as the pipeline returned them, and the
        lines of earlier sessions (a resumed run) as they are on disk."""
        rows: dict[str, dict[str, Any]] = {}
        if self.resumed:
            rows = {r["case_id"]: r for r in read_results(self.rd.results_path)}
        for cid, res in self.unredacted.items():
            line = check_line(res, None, [])
            if line is not None:
                rows[cid] = line
        return [rows[c.id] for c in self.ds if c.id in rows]

    def finish(self) -> dict[str, int]:
        """Put results.jsonl in dataset order, atomically; return status counts."""
        rows: dict[str, tuple[str, str, bool]] = {}
        mem = self.writer.lines if self.writer is not None else None
        if mem is not None and not self.resumed:
            rows = mem  # every line of the file was written by this session
        else:
            for _, raw, complete in iter_jsonl(self.rd.results_path):
                if complete:
                    cid, status, cached = _line_head(raw)
                    rows[cid] = (raw, status, cached)
        ordered = [rows[c.id] for c in self.ds if c.id in rows]
        atomic_write_text(self.rd.results_path, "".join(raw for raw, _, _ in ordered))
        counts = {"ok": 0, "error": 0, "timeout": 0, "from_cache": 0}
        for _, status, cached in ordered:
            counts[status] = counts.get(status, 0) + 1
            counts["from_cache"] += cached
        counts["missing"] = len(self.ds) - len(ordered)
        return counts


def _manifest(
    rd: RunDir, ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, run_id: str, *,
    spec: str | None, corpus_dir: str | None, gate: dict[str, Any] | None,
) -> dict[str, Any]:
    from labkit import __version__

    ds_path = str(Path(ds.path).resolve()) if ds.path else None
    fb = pipe.fallback
    m: dict[str, Any] = {
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "finished_at": None,
        "status": "running",
        "labkit_version": __version__,
        "git_sha": _git_sha(),
        "python": sys.version.split()[0],
        "dataset": {"path": ds_path, "fingerprint": ds.fingerprint, "n_cases": len(ds)},
        "pipeline": {
            "name": pipe.name,
            "config": pipe.config,
            "config_hash": pipe.config_hash,
            "path": str(Path(pipe.path).resolve()) if pipe.path else None,
            "spec": spec,
            "corpus_dir": corpus_dir,
            "fallback": {"name": fb.name, "config_hash": fb.config_hash, "config": fb.config} if fb else None,
        },
        "runner": cfg.to_dict(),
    }
    if ds_path is None:
        m["dataset"]["snapshot"] = SNAPSHOT
    if gate is not None:
        m["gate"] = gate
    return m


def run(
    dataset: Dataset | Sequence[EvalCase] | str | os.PathLike[str],
    pipeline: LoadedPipeline | str | os.PathLike[str] | Callable[..., Any],
    out_dir: str | os.PathLike[str],
    *,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    corpus_dir: str | None = None,
    gate_path: str | None = None,
    score: bool = True,
    k: int = 5,
) -> RunDir:
    """Run ``dataset`` through ``pipeline`` into the run directory ``out_dir``.

    ``pipeline`` is a LoadedPipeline, a YAML config path, a ``module:callable``
    import path or a callable. Runner settings: the pipeline config's ``runner:``
    section, overridden by ``config`` (its non-default fields) and ``overrides``.
    ``out_dir`` must not already hold a run (use :func:`resume`). Returns the
    RunDir, scored (scores.csv, metrics.json) unless ``score=False``.
    """
    ds = _load_dataset(dataset)
    pipe = _load_pipeline(pipeline, corpus_dir)
    cfg = merge_config(pipe.runner, config, overrides, path=pipe.path)
    out = Path(out_dir)
    rd = RunDir(out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):  # held until the run is written and scored (docs/runner.md "The run lock")
        _refuse_existing(rd)  # under the lock: two fresh runs into one folder cannot both pass
        return _start(rd, ds, pipe, cfg, run_id=run_id, spec=_spec_of(pipeline, pipe), corpus_dir=corpus_dir,
                      gate_path=gate_path, score=score, k=k)


def _refuse_existing(rd: RunDir) -> None:
    if rd.results_path.exists() or rd.manifest_path.exists():
        raise ConfigError(
            "run directory already holds a run: resume it (labkit run --resume DIR) or choose another --out",
            path=str(rd.path),
        )


def _start(
    rd: RunDir, ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, *, run_id: str | None, spec: str | None,
    corpus_dir: str | None, gate_path: str | None, score: bool, k: int,
) -> RunDir:
    out = rd.path
    rid = run_id or _default_run_id(out)
    gate = _gate_info(gate_path)
    if ds.path is None:  # an in-memory dataset is kept beside the run, redacted like every file it writes
        from labkit.runredact import redact_snapshot

        atomic_write_text(out / SNAPSHOT, redact_snapshot([c.to_dict() for c in ds], cfg.redaction))
    manifest = _manifest(rd, ds, pipe, cfg, rid, spec=spec, corpus_dir=corpus_dir, gate=gate)
    rd.write_manifest(redact_manifest(manifest, cfg.redaction))
    rd.results_path.touch()
    rd.traces_path.touch()
    return _complete(rd, ds, pipe, cfg, rid, finished=set(), score=score, k=k, corpus_dir=corpus_dir)


def _complete(
    rd: RunDir, ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, rid: str, *,
    finished: set[str], score: bool, k: int, corpus_dir: str | None,
) -> RunDir:
    sess = _Session(rd, ds, pipe, cfg, rid)
    sess.execute(finished)
    counts = sess.finish()
    extra = {"cache": dict(sess.cache.stats)} if sess.cache is not None else {}
    rd.update_manifest(finished_at=datetime.now(UTC).isoformat(timespec="seconds"), status="complete",
                       counts=counts, pipeline_calls=sess.calls, **extra)
    if score:
        score_run(rd, ds, corpus=corpus_dir, k=k, results=sess.scored_results())
    return rd


def resume(
    run_dir: str | os.PathLike[str] | RunDir,
    *,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    pipeline: LoadedPipeline | str | Callable[..., Any] | None = None,
    score: bool = True,
    k: int = 5,
) -> RunDir:
    """Finish an interrupted run: keep its finished cases, run the rest, then order and score.

    The dataset, pipeline and runner settings come from the manifest (``config``
    and ``overrides`` may change execution settings such as concurrency; they
    never change what a case computes). A changed dataset or pipeline config is
    refused. ``pipeline`` is needed only when the run was started with an
    in-memory callable that cannot be re-imported. The run lock is held from
    before the manifest is read until the run is scored.
    """
    rd = RunDir(run_dir)
    if not rd.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", path=str(rd.path))
    with RunLock(rd.path):
        return _resume_locked(rd, config=config, overrides=overrides, pipeline=pipeline, score=score, k=k)


def _resume_locked(
    rd: RunDir, *, config: RunnerConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any] | None,
    pipeline: LoadedPipeline | str | Callable[..., Any] | None, score: bool, k: int,
) -> RunDir:
    man = rd.manifest
    if not man:
        raise ConfigError("not a run directory (no manifest.json)", path=str(rd.path))
    ds_path = rd.dataset_path()
    if ds_path is None:
        raise ConfigError("the manifest names no dataset to resume", path=str(rd.manifest_path), field="dataset")
    ds = load_cases(ds_path)
    want_fp = (man.get("dataset") or {}).get("fingerprint")
    if want_fp and ds.fingerprint != want_fp:
        raise ConfigError(
            f"dataset {ds_path} changed since the run started (fingerprint {want_fp[:12]} -> {ds.fingerprint[:12]})",
            path=str(rd.manifest_path), field="dataset.fingerprint",
        )
    pm = man.get("pipeline") or {}
    corpus_dir = pm.get("corpus_dir")
    spec = pipeline if pipeline is not None else (pm.get("spec") or pm.get("path"))
    if spec is None:
        raise PipelineError(
            f"{rd.path}: the run's pipeline was an in-memory callable; pass it again: resume(..., pipeline=fn)"
        )
    pipe = _load_pipeline(spec, corpus_dir)
    if pm.get("config_hash") and pipe.config_hash != pm["config_hash"]:
        raise ConfigError(
            f"pipeline config changed since the run started (hash {pm['config_hash']} -> {pipe.config_hash})",
            path=str(rd.manifest_path), field="pipeline.config_hash",
        )
    base = dict(pipe.runner)
    base.update(man.get("runner") or {})
    cfg = merge_config(base, config, overrides, path=str(rd.manifest_path))
    rid = str(man.get("run_id") or rd.path.name)

    _truncate_torn_tail(rd.results_path)
    _truncate_torn_tail(rd.traces_path)
    rd.results_path.touch()
    rows = read_results(rd.results_path)
    keys = {c.id: case_key(c, *_pipeline_key_hashes(pipe)) for c in ds}
    finished = {r["case_id"] for r in rows if keys.get(r["case_id"]) == r.get("idempotency_key")}
    stale = [r["case_id"] for r in rows if r["case_id"] not in finished]
    if stale:  # lines of another config or dataset version: run those cases again
        atomic_write_text(rd.results_path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                   for r in rows if r["case_id"] in finished))
    _keep_traces(rd, finished)
    rd.update_manifest(runner=cfg.to_dict(), status="running", finished_at=None,
                       resumed_at=[*(man.get("resumed_at") or []), datetime.now(UTC).isoformat(timespec="seconds")])
    return _complete(rd, ds, pipe, cfg, rid, finished=finished, score=score, k=k, corpus_dir=corpus_dir)


def _keep_traces(rd: RunDir, finished: set[str]) -> None:
    """Drop the traces of cases that will run again (their attempts are re-recorded)."""
    if not rd.traces_path.is_file():
        return
    keep: list[str] = []
    dropped = 0
    for _, raw, complete in iter_jsonl(rd.traces_path):
        try:
            cid = json.loads(raw).get("case_id") if complete else None
        except json.JSONDecodeError:
            cid = None
        if cid in finished:
            keep.append(raw)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(rd.traces_path, "".join(keep))
