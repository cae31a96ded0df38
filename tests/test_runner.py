"""The runner: concurrency, rate limit, timeouts, retries, fallback, cache, resume, files."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.cases import EvalCase, as_cases
from labkit.errors import ConfigError, MissingDependencyError, PipelineError
from labkit.openai_compat import RateLimited, ServerError
from labkit.pipelines import LoadedPipeline, config_hash, load_pipeline
from labkit.runner import RunnerConfig, case_key, merge_config, resume, run
from labkit.runner.limits import TokenBucket
from labkit.runs import RunDir

QUIET = RunnerConfig(progress=False, backoff_base_s=0.01, backoff_max_s=0.05)


def cases(n: int, prefix: str = "c") -> Any:
    return as_cases([{"id": f"{prefix}{i:03d}", "question": f"question number {i}"} for i in range(n)])


def loaded(fn: Any, name: str = "p", fallback: LoadedPipeline | None = None, runner: dict | None = None,
           **cfg: Any) -> LoadedPipeline:
    config = {"type": "callable", "callable": name, **cfg}
    return LoadedPipeline(name, fn, config, config_hash(config), fallback, runner or {})


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    def enter(self) -> None:
        with self.lock:
            self.n += 1
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)

    def leave(self) -> None:
        with self.lock:
            self.inflight -= 1


@pytest.fixture
def release() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()  # let stuck sync pipelines end


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_concurrency_is_bounded_and_reached(tmp_path: Path, kind: str) -> None:
    cnt = Counter()

    async def apipe(case: EvalCase) -> dict:
        cnt.enter()
        await asyncio.sleep(0.02)
        cnt.leave()
        return {"answer": case.question}

    def spipe(case: EvalCase) -> dict:
        cnt.enter()
        time.sleep(0.02)
        cnt.leave()
        return {"answer": case.question}

    fn = apipe if kind == "async" else spipe
    rd = run(cases(60), fn, tmp_path / "r", config=RunnerConfig(concurrency=6, progress=False), score=False)
    assert cnt.max_inflight == 6  # six at once, never more (ran in parallel: not timed, the machine is shared)
    assert cnt.n == 60
    assert [r["status"] for r in rd.results()] == ["ok"] * 60


def test_results_in_dataset_order_whatever_the_finish_order(tmp_path: Path) -> None:
    async def pipe(case: EvalCase) -> dict:
        i = int(case.id[1:])
        await asyncio.sleep(0.002 * (20 - i))  # later cases finish first
        return {"answer": str(i)}

    rd = run(cases(20), pipe, tmp_path / "r", config=RunnerConfig(concurrency=20, progress=False), score=False)
    assert [r["case_id"] for r in rd.results()] == [f"c{i:03d}" for i in range(20)]


def _results_writes(monkeypatch: pytest.MonkeyPatch, rd_path: Path) -> dict[str, int]:
    """How often results.jsonl is replaced whole and flushed to disk during a run into ``rd_path``."""
    import labkit.runner.session as session_mod

    seen = {"rewritten": 0, "synced": 0}
    rewrite, fsync = session_mod.atomic_write_text, os.fsync
    target = rd_path / "results.jsonl"

    def counting_rewrite(path: Any, text: str) -> None:
        seen["rewritten"] += Path(path) == target
        rewrite(path, text)

    def counting_fsync(fd: int) -> None:
        seen["synced"] += target.exists() and os.fstat(fd).st_ino == os.stat(target).st_ino
        fsync(fd)

    monkeypatch.setattr(session_mod, "atomic_write_text", counting_rewrite)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    return seen


def _fixed(case: EvalCase) -> dict[str, Any]:
    return {"answer": case.question.upper(), "latency_ms": 5.0}  # nothing measured: the same bytes every run


def test_results_that_finished_in_order_are_kept_in_place_as_the_rewrite_would_leave_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.runner.writer as writer_mod

    cfg = RunnerConfig(concurrency=1, progress=False)  # one at a time: they finish in dataset order
    seen = _results_writes(monkeypatch, tmp_path / "kept")
    kept = run(cases(30), _fixed, tmp_path / "kept", config=cfg, run_id="same", score=False)
    assert seen == {"rewritten": 0, "synced": 1}  # not rewritten, yet on disk before the manifest says complete
    monkeypatch.setattr(writer_mod.Writer, "holds_exactly", lambda self, ids: False)  # the rewrite, always
    seen = _results_writes(monkeypatch, tmp_path / "rewritten")
    rewritten = run(cases(30), _fixed, tmp_path / "rewritten", config=cfg, run_id="same", score=False)
    assert seen["rewritten"] == 1
    assert kept.results_path.read_bytes() == rewritten.results_path.read_bytes()
    assert [r["case_id"] for r in kept.results()] == [f"c{i:03d}" for i in range(30)]
    mode = {p: os.stat(p.results_path).st_mode & 0o777 for p in (kept, rewritten)}
    assert mode[kept] == mode[rewritten] == 0o600
    assert kept.manifest["counts"] == rewritten.manifest["counts"] == {
        "ok": 30, "error": 0, "timeout": 0, "from_cache": 0, "missing": 0}


def test_results_that_finished_out_of_order_are_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def pipe(case: EvalCase) -> dict:
        await asyncio.sleep(0.01 if case.id == "c000" else 0)  # the first case finishes last
        return {"answer": "x"}

    seen = _results_writes(monkeypatch, tmp_path / "r")
    rd = run(cases(5), pipe, tmp_path / "r", config=RunnerConfig(concurrency=5, progress=False), score=False)
    assert seen["rewritten"] == 1
    assert [r["case_id"] for r in rd.results()] == [f"c{i:03d}" for i in range(5)]


def test_rate_limit_spaces_requests(tmp_path: Path) -> None:
    stamps: list[float] = []

    async def pipe(case: EvalCase) -> dict:
        stamps.append(time.monotonic())
        return {"answer": "x"}

    run(cases(16), pipe, tmp_path / "r", config=RunnerConfig(concurrency=16, rate_limit=40.0, progress=False),
        score=False)
    stamps.sort()
    assert stamps[-1] - stamps[0] >= 15 / 40 * 0.9
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 1 / 40 * 0.5


def test_token_bucket_rate() -> None:
    async def go() -> float:
        tb = TokenBucket(100.0)
        t = time.monotonic()
        for _ in range(21):
            await tb.acquire()
        return time.monotonic() - t

    assert 0.18 <= asyncio.run(go()) < 1.0


# --------------------------------------------------------------------------- faults


def test_timeouts_async_and_stuck_sync_never_hang(tmp_path: Path, release: threading.Event) -> None:
    async def slow_async(case: EvalCase) -> dict:
        if case.id == "c001":
            await asyncio.sleep(60)
        return {"answer": "fine"}

    def stuck_sync(case: EvalCase) -> dict:
        if case.id == "c001":
            release.wait(60)  # ignores the runner entirely
        return {"answer": "fine"}

    cfg = RunnerConfig(concurrency=2, timeout_s=0.2, retries=1, backoff_base_s=0.01, progress=False)
    for name, fn in (("a", slow_async), ("s", stuck_sync)):
        t = time.monotonic()
        rd = run(cases(4), fn, tmp_path / name, config=cfg, score=False)
        assert time.monotonic() - t < 3
        res = {r["case_id"]: r for r in rd.results()}
        assert res["c001"]["status"] == "timeout"
        assert res["c001"]["attempts"] == 2
        assert res["c001"]["answer"] is None and "0.2" in res["c001"]["error"]
        assert all(res[c]["status"] == "ok" for c in ("c000", "c002", "c003"))


def test_pipeline_bugs_are_errors_not_retried(tmp_path: Path) -> None:
    calls: dict[str, int] = {}

    def pipe(case: EvalCase) -> Any:
        calls[case.id] = calls.get(case.id, 0) + 1
        if case.id == "c000":
            raise KeyError("missing_field")
        if case.id == "c001":
            return "not a mapping"
        if case.id == "c002":
            return {"retrieved": []}  # no answer
        if case.id == "c003":
            return {"answer": "x", "blob": object()}  # not JSON
        if case.id == "c004":
            return {"answer": "x", "cost_usd": float("nan")}
        return {"answer": "ok", "retrieved": ("a#1",)}

    rd = run(cases(6), pipe, tmp_path / "r", config=QUIET, score=False)
    res = {r["case_id"]: r for r in rd.results()}
    assert all(calls[c] == 1 for c in calls)
    assert res["c000"]["status"] == "error" and res["c000"]["error_type"] == "KeyError"
    assert "missing_field" in res["c000"]["error"]
    assert res["c001"]["error_type"] == "ResultError" and "str" in res["c001"]["error"]
    assert "answer" in res["c002"]["error"]
    assert "JSON" in res["c003"]["error"]
    assert res["c004"]["status"] == "error"
    assert res["c005"]["status"] == "ok" and res["c005"]["retrieved"] == [{"id": "a#1"}]
    assert all(r["attempts"] == 1 for r in res.values())


def test_retryable_errors_are_retried_with_backoff_and_retry_after(tmp_path: Path) -> None:
    calls: dict[str, list[float]] = {}

    def pipe(case: EvalCase) -> dict:
        seen = calls.setdefault(case.id, [])
        seen.append(time.monotonic())
        if case.id == "c000" and len(seen) < 3:
            raise ServerError("HTTP 503", status=503)
        if case.id == "c001" and len(seen) < 2:
            raise RateLimited("HTTP 429", status=429, retry_after=0.3)
        if case.id == "c002":
            raise ServerError("HTTP 500 always", status=500)
        return {"answer": "ok"}

    cfg = RunnerConfig(retries=2, backoff_base_s=0.05, backoff_max_s=1.0, progress=False)
    rd = run(cases(3), pipe, tmp_path / "r", config=cfg, score=False)
    res = {r["case_id"]: r for r in rd.results()}
    assert (res["c000"]["status"], res["c000"]["attempts"]) == ("ok", 3)
    assert (res["c001"]["status"], res["c001"]["attempts"]) == ("ok", 2)
    assert (res["c002"]["status"], res["c002"]["attempts"], res["c002"]["error_type"]) == ("error", 3, "ServerError")
    assert calls["c001"][1] - calls["c001"][0] >= 0.29  # Retry-After honoured
    g = calls["c000"]
    assert g[1] - g[0] >= 0.025 and g[2] - g[1] >= 0.05  # exponential (equal jitter: >= half)


def test_retry_after_is_capped_by_backoff_max(tmp_path: Path) -> None:
    n = {"k": 0}

    def pipe(case: EvalCase) -> dict:
        n["k"] += 1
        if n["k"] == 1:
            raise RateLimited("HTTP 429", retry_after=3600)
        return {"answer": "ok"}

    t = time.monotonic()
    rd = run(cases(1), pipe, tmp_path / "r", config=RunnerConfig(backoff_max_s=0.2, progress=False), score=False)
    assert time.monotonic() - t < 2
    assert rd.results()[0]["attempts"] == 2


def test_fallback_answers_after_primary_exhausts_retries(tmp_path: Path) -> None:
    seen: list[str] = []

    def primary(case: EvalCase) -> dict:
        seen.append("primary")
        if case.id == "c000":
            raise ServerError("down")
        if case.id == "c002":
            raise ValueError("bug")  # not retryable: no fallback either
        return {"answer": "primary"}

    async def backup(case: EvalCase) -> dict:
        seen.append("backup")
        return {"answer": "backup", "cost_usd": 0.5}

    pipe = loaded(primary, "primary", fallback=loaded(backup, "backup"))
    rd = run(cases(3), pipe, tmp_path / "r", config=QUIET, score=False)
    res = {r["case_id"]: r for r in rd.results()}
    assert (res["c000"]["answer"], res["c000"]["answered_by"], res["c000"]["attempts"]) == ("backup", "backup", 4)
    assert res["c001"]["answered_by"] == "primary" and res["c001"]["attempts"] == 1
    assert res["c002"]["status"] == "error" and res["c002"]["attempts"] == 1
    assert seen.count("backup") == 1
    assert rd.manifest["pipeline"]["fallback"]["name"] == "backup"


# --------------------------------------------------------------------------- cache and keys


def test_cache_rerun_makes_zero_pipeline_calls(tmp_path: Path) -> None:
    n = {"calls": 0}

    def pipe(case: EvalCase) -> dict:
        n["calls"] += 1
        if case.id == "c003":
            raise ValueError("flaky bug")
        return {"answer": f"answer {case.id}", "cost_usd": 0.01, "latency_ms": 123.0}

    cfg = RunnerConfig(cache_dir=str(tmp_path / "cache"), progress=False)
    first = run(cases(8), pipe, tmp_path / "a", config=cfg, score=False)
    assert n["calls"] == 8
    n["calls"] = 0
    ok = [c for c in cases(8) if c.id != "c003"]
    second = run(as_cases(ok), pipe, tmp_path / "b", config=cfg, score=False)
    assert n["calls"] == 0
    r1 = {r["case_id"]: r for r in first.results()}
    for r in second.results():
        assert r["from_cache"] is True and r["attempts"] == 0
        assert r["answer"] == r1[r["case_id"]]["answer"]
        assert r["cost_usd"] == 0.01
    assert second.manifest["pipeline_calls"] == 0
    assert second.manifest["counts"]["from_cache"] == 7
    # the failed case was not cached; a changed config misses the cache
    run(cases(8), pipe, tmp_path / "c", config=cfg, score=False)
    assert n["calls"] == 1
    n["calls"] = 0
    run(cases(8), loaded(pipe, "other", temperature=1), tmp_path / "d", config=cfg, score=False)
    assert n["calls"] == 8


def test_case_key_depends_on_content_and_config() -> None:
    a, b = cases(2)
    assert case_key(a, "h1") != case_key(b, "h1")
    assert case_key(a, "h1") != case_key(a, "h2")
    assert case_key(a, "h1") != case_key(a, "h1", "fb")
    assert case_key(a, "h1") == case_key(as_cases([a.to_dict()])[0], "h1")


@pytest.mark.parametrize("extra", [{}, {"metadata": {"w": 0.1, "big": 2**70, "n": [1, None, True]}},
                                   {"question": "é \u2028 \x01 \"q\"", "tags": {"risk": "low"}}])
def test_a_case_key_is_the_hash_of_the_cases_canonical_json(extra: dict[str, Any]) -> None:
    """The key a cache and a resume find a finished case by: it does not change with how it is computed."""
    import hashlib

    case = as_cases([{"id": "k1", "question": "what?", **extra}])[0]
    text = json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    want = hashlib.sha256(text.encode() + b"\x00h1\x00fb").hexdigest()[:32]
    assert case_key(case, "h1", "fb") == want


# --------------------------------------------------------------------------- resume


def echo(case: EvalCase) -> dict:
    return {"answer": f"echo {case.question}", "usage": {"input_tokens": 3, "output_tokens": 2}}


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("latency_ms",)} for r in rows]


def test_resume_after_partial_write_gives_identical_results(tmp_path: Path) -> None:
    ds = cases(30)
    full = run(ds, echo, tmp_path / "full", config=QUIET, score=False, run_id="same")
    part = run(ds, echo, tmp_path / "part", config=QUIET, score=False, run_id="same")
    # simulate a kill: 12 lines kept (out of order), the 13th torn mid-line, traces of all
    lines = part.results_path.read_text().splitlines(keepends=True)
    kept = lines[12:24]
    part.results_path.write_text("".join(kept) + lines[5][:40])
    n = {"calls": 0}

    def counting(case: EvalCase) -> dict:
        n["calls"] += 1
        return echo(case)

    same = dataclasses.replace(load_pipeline(echo), fn=counting)  # same config hash, counted calls
    rd = resume(part.path, pipeline=same, config=QUIET, score=False)
    assert n["calls"] == 30 - 12
    assert strip(rd.results()) == strip(full.results())
    ids = [json.loads(line)["trace_id"] for line in rd.traces_path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 30
    assert rd.manifest["status"] == "complete" and rd.manifest["resumed_at"]


def test_resume_refuses_a_line_of_a_case_the_dataset_does_not_hold(tmp_path: Path) -> None:
    """A results line whose case is not in the run's dataset was dropped by a resume without a
    word (it cannot be run again): it is refused, naming its line, and the file is left as it was."""
    from labkit.errors import DatasetError

    ds = cases(5)
    rd = run(ds, echo, tmp_path / "r", config=QUIET, score=False)
    lines = rd.results_path.read_text().splitlines(keepends=True)
    alien = json.loads(lines[0])
    alien["case_id"] = "not-in-the-dataset"
    text = "".join(lines[:2]) + json.dumps(alien) + "\n"
    rd.results_path.write_text(text)
    with pytest.raises(DatasetError, match="not-in-the-dataset") as ei:
        resume(rd.path, pipeline=load_pipeline(echo), config=QUIET, score=False)
    assert [p.line for p in ei.value.problems] == [3]
    assert rd.results_path.read_text() == text


def test_resume_refuses_changed_dataset_or_config(tmp_path: Path) -> None:
    ds_path = tmp_path / "ds.jsonl"
    ds_path.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in cases(3)))
    rd = run(str(ds_path), "test_runner:echo", tmp_path / "r", config=QUIET, score=False)
    assert rd.manifest["pipeline"]["spec"] == "test_runner:echo"
    resume(rd.path, config=QUIET, score=False)  # nothing left to do, fine
    with pytest.raises(ConfigError, match="pipeline config changed"):
        resume(rd.path, pipeline=loaded(echo, "different"), score=False)
    ds_path.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in cases(4)))
    with pytest.raises(ConfigError, match="changed since the run started"):
        resume(rd.path, score=False)


def test_in_memory_callable_needs_pipeline_on_resume(tmp_path: Path) -> None:
    rd = run(cases(2), lambda c: {"answer": "x"}, tmp_path / "r", config=QUIET, score=False)
    assert (tmp_path / "r" / "cases.jsonl").is_file()  # in-memory dataset snapshot
    with pytest.raises(PipelineError, match="pass it again"):
        resume(rd.path, score=False)


def test_existing_run_dir_is_refused(tmp_path: Path) -> None:
    run(cases(1), echo, tmp_path / "r", config=QUIET, score=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(cases(1), echo, tmp_path / "r", config=QUIET, score=False)


# --------------------------------------------------------------------------- config


def test_runner_config_from_dict_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as ei:
        RunnerConfig.from_dict({"concurency": 4}, path="p.yaml")
    assert ei.value.field == "runner.concurency" and "concurrency" in (ei.value.known or [])
    assert "p.yaml" in str(ei.value)
    for bad in ({"concurrency": 0}, {"timeout_s": "fast"}, {"retries": 1.5}, {"rate_limit": -1},
                {"executor": "ray"}, {"progress": "yes"}, {"batch_size": 0}):
        with pytest.raises(ConfigError) as ei:
            RunnerConfig.from_dict(bad)
        assert ei.value.field == f"runner.{next(iter(bad))}"
    assert RunnerConfig.from_dict({"timeout_s": 5}).timeout_s == 5.0


def test_pipeline_runner_section_gives_defaults_config_overrides() -> None:
    section = {"concurrency": 3, "retries": 0, "timeout_s": 9}
    cfg = merge_config(section, RunnerConfig(timeout_s=5.0), {"retries": 4, "rate_limit": None})
    assert (cfg.concurrency, cfg.timeout_s, cfg.retries, cfg.rate_limit) == (3, 5.0, 4, None)
    assert merge_config(section, {"concurrency": 7}).concurrency == 7
    with pytest.raises(ConfigError, match=r"runner\.bogus"):
        merge_config({"bogus": 1})


def test_pipeline_runner_section_is_used_by_run(tmp_path: Path) -> None:
    def boom(case: EvalCase) -> dict:
        raise ServerError("down")

    rd = run(cases(1), loaded(boom, runner={"retries": 0, "backoff_base_s": 0.0}), tmp_path / "r",
             config=RunnerConfig(progress=False), score=False)
    assert rd.results()[0]["attempts"] == 1
    assert rd.manifest["runner"]["retries"] == 0


def test_progress_auto_off_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert RunnerConfig().show_progress() is False
    assert RunnerConfig(progress=True).show_progress() is True
    monkeypatch.delenv("CI")

    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty(True))
    assert RunnerConfig().show_progress() is True
    monkeypatch.setattr(sys, "stderr", Tty(False))  # a log file or a pipe
    assert RunnerConfig().show_progress() is False
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # inside a notebook kernel
    assert RunnerConfig().show_progress() is True


def test_progress_bar_shows_errors_and_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def pipe(case: EvalCase) -> dict:
        if case.id == "c000":
            raise ValueError("x")
        return {"answer": "a", "cost_usd": 0.25}

    run(cases(3), pipe, tmp_path / "r", config=RunnerConfig(progress=True), score=False)
    err = capsys.readouterr().err
    assert "3/3" in err and "errors=1" in err and "$0.5000" in err


# --------------------------------------------------------------------------- files


def test_manifest_traces_and_redaction(tmp_path: Path) -> None:
    def pipe(case: EvalCase) -> dict:
        return {"answer": "Write to jane.doe@example.com for help.", "model": "m"}

    gate = tmp_path / "gate.yaml"
    gate.write_text("version: 1\nname: g\nchecks:\n  - {metric: error_rate, op: '<=', threshold: 0.1}\n")
    rd = run(cases(2), loaded(pipe, "mail"), tmp_path / "r", config=QUIET, score=False, gate_path=str(gate),
             run_id="rid-1")
    m = rd.manifest
    assert m["run_id"] == "rid-1" == rd.run_id
    for key in ("created_at", "labkit_version", "git_sha", "dataset", "pipeline", "runner", "gate"):
        assert key in m
    assert m["created_at"].endswith("+00:00")
    assert m["dataset"]["n_cases"] == 2 and len(m["dataset"]["fingerprint"]) == 64
    assert m["pipeline"]["name"] == "mail" and m["pipeline"]["config_hash"]
    assert m["runner"]["concurrency"] == 8
    assert m["gate"]["path"] == str(gate) and m["gate"]["hash"]
    raw = rd.results_path.read_text() + rd.traces_path.read_text()
    assert "jane.doe@example.com" not in raw and "[EMAIL]" in raw
    traces = [json.loads(line) for line in rd.traces_path.read_text().splitlines()]
    assert {t["trace_id"] for t in traces} == {r["trace_id"] for r in rd.results()}
    assert all(t["run_id"] == "rid-1" for t in traces)


def test_run_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def notebook_cell() -> RunDir:
        return run(cases(3), echo, tmp_path / "r", config=QUIET, score=False)

    rd = asyncio.run(notebook_cell())
    assert len(rd.results()) == 3


def test_run_scores_by_default(tmp_path: Path) -> None:
    rd = run(cases(4), echo, tmp_path / "r", config=QUIET)
    m = rd.metrics()
    assert m["n_cases"] == 4 and "error_rate" in m["metrics"]
    assert list(rd.scores()["case_id"]) == [c.id for c in cases(4)]


def test_error_text_is_redacted_too(tmp_path: Path) -> None:
    def pipe(case: EvalCase) -> dict:
        raise ValueError("user bob@example.com not found")

    rd = run(cases(1), pipe, tmp_path / "r", config=QUIET, score=False)
    r = rd.results()[0]
    assert r["status"] == "error" and "[EMAIL]" in r["error"] and "bob@" not in r["error"]
    assert "bob@" not in rd.traces_path.read_text()


# --------------------------------------------------------------------------- trace compaction


def _echo(case: EvalCase) -> dict[str, Any]:
    return {"answer": f"answer to {case.question}"}


def test_a_run_compacts_its_traces_and_queries_read_the_store_by_default(tmp_path: Path) -> None:
    from labkit.trace.store import TraceStore

    cfg = dataclasses.replace(QUIET, compact_traces_bytes=0)  # 0: always
    rd = run(cases(12), loaded(_echo), tmp_path / "big", config=cfg, score=False)
    store = json.loads(rd.manifest_path.read_text())["traces_store"]
    assert store["file"] == "traces.parquet" and store["source_bytes"] == rd.traces_path.stat().st_size
    with TraceStore([rd.path]) as st:
        assert st.parquet_files == [rd.path / "traces.parquet"] and st.jsonl_files == []
        assert st.reading() == "reading 1 run(s) from traces.parquet (compacted, up to date)"
        assert st.count() == 12
    with rd.traces_path.open("a") as f:  # appended after compaction: the store is stale, the JSONL is read
        f.write(rd.traces_path.read_text().splitlines()[0] + "\n")
    with TraceStore([rd.path]) as st:
        assert st.jsonl_files == [rd.traces_path]
        assert st.reading().startswith("reading 1 run(s) from traces.jsonl (big: traces.parquet is stale: made from")
        assert st.count() == 13


def test_a_small_run_is_not_compacted_and_the_store_says_it_reads_the_jsonl(tmp_path: Path) -> None:
    from labkit.trace.store import TraceStore

    rd = run(cases(3), loaded(_echo), tmp_path / "small", config=QUIET, score=False)
    assert "traces_store" not in json.loads(rd.manifest_path.read_text())
    assert not (rd.path / "traces.parquet").exists()
    with TraceStore([rd.path]) as st:
        assert st.reading() == "reading 1 run(s) from traces.jsonl (small: no traces.parquet)"
    with pytest.raises(ConfigError, match="compact_traces_bytes"):
        RunnerConfig(compact_traces_bytes=-1)


def test_a_failed_compaction_leaves_a_complete_run_and_says_why(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.trace.compaction

    def broken(*a: Any, **k: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(labkit.trace.compaction, "compact", broken)
    cfg = dataclasses.replace(QUIET, compact_traces_bytes=0)
    rd = run(cases(4), loaded(_echo), tmp_path / "r", config=cfg, score=False)
    man = json.loads(rd.manifest_path.read_text())
    assert man["status"] == "complete" and man["traces_store"]["file"] is None
    assert man["traces_store"]["error"] == "OSError: disk full"
    assert len(rd.results()) == 4


@pytest.mark.parametrize("at_start", [None, "staging"])
def test_a_runs_trace_environment_is_read_once_when_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            at_start: str | None) -> None:
    """Every trace of a run carries the environment of its start ($LABKIT_ENV then), also when
    there was none: a process environment changed while the run goes is not read again."""
    if at_start is None:
        monkeypatch.delenv("LABKIT_ENV", raising=False)
    else:
        monkeypatch.setenv("LABKIT_ENV", at_start)

    def pipe(case: EvalCase) -> dict:
        os.environ["LABKIT_ENV"] = "changed-mid-run"  # (monkeypatch restores it)
        return {"answer": "ok"}

    rd = run(cases(6), loaded(pipe, "env"), tmp_path / "r", config=RunnerConfig(concurrency=1, progress=False),
             score=False)
    traces = [json.loads(line) for line in rd.traces_path.read_text().splitlines()]
    assert len(traces) == 6 and {t["environment"] for t in traces} == {at_start}


# --------------------------------------------------------------------------- resume: the scoring cut-off


def _cut_to(rd: RunDir, n: int) -> None:
    """Simulate a kill: only the first ``n`` results lines are on disk."""
    lines = rd.results_path.read_text().splitlines(keepends=True)
    rd.results_path.write_text("".join(lines[:n]))


def test_resume_scores_at_the_k_the_run_was_started_with(tmp_path: Path) -> None:
    rd = run(cases(6), echo, tmp_path / "r", config=QUIET, k=1)
    assert rd.manifest["score_k"] == 1 and rd.manifest["scoring"]["k"] == 1
    _cut_to(rd, 2)
    rd = resume(rd.path, pipeline=load_pipeline(echo), config=QUIET)
    assert rd.manifest["scoring"]["k"] == 1 and rd.manifest["score_k"] == 1
    _cut_to(rd, 2)
    with pytest.raises(ConfigError, match="score_k") as ei:
        resume(rd.path, pipeline=load_pipeline(echo), config=QUIET, k=3)
    assert ei.value.field == "score_k"
    assert resume(rd.path, pipeline=load_pipeline(echo), config=QUIET, k=1).manifest["scoring"]["k"] == 1


def test_resume_of_a_manifest_without_score_k_takes_its_scoring_record_else_the_default(tmp_path: Path) -> None:
    rd = run(cases(4), echo, tmp_path / "r", config=QUIET, k=2)
    man = rd.manifest
    del man["score_k"]
    rd.write_manifest(man)
    _cut_to(rd, 1)
    with pytest.raises(ConfigError, match=r"manifest scoring\.k"):
        resume(rd.path, pipeline=load_pipeline(echo), config=QUIET, k=4)
    assert resume(rd.path, pipeline=load_pipeline(echo), config=QUIET).manifest["scoring"]["k"] == 2
    unscored = run(cases(4), echo, tmp_path / "u", config=QUIET, score=False, k=2)
    man = unscored.manifest
    del man["score_k"]
    unscored.write_manifest(man)
    _cut_to(unscored, 1)
    assert resume(unscored.path, pipeline=load_pipeline(echo), config=QUIET).manifest["scoring"]["k"] == 5


def test_an_executor_whose_extra_is_missing_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``labkit run --executor dask`` without the extra said so in one line, but after writing a
    manifest ("running") and empty results: the retry it suggested was refused as "already holds a
    run", and the resume failed the same way. Nothing is written now, and the retry runs."""
    import sys

    from labkit.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # (the extra not installed: its import fails)
    out = tmp_path / "run"
    args = ["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
            "--out", str(out), "--quiet"]
    assert main([*args, "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'labkit[dask]'" in err and err.count("\n") == 1, err
    assert not out.exists() or not any(out.iterdir())
    assert main(args) == 0
    with pytest.raises(MissingDependencyError):
        resume(out, overrides={"executor": "dask"})
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_resume_with_other_settings_keeps_the_earlier_ones_and_says_so(tmp_path: Path, capsys: Any) -> None:
    """A resume with another --timeout ran the rest of the cases under it without a word, and the
    manifest recorded only the last settings: the earlier ones are kept (runner_before, with the
    time they ended) and the CLI says what changed."""
    from labkit.cases import save_cases
    from labkit.cli import main

    ds = tmp_path / "ds.jsonl"
    save_cases(cases(6), ds)
    out = tmp_path / "r"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(out),
                 "--quiet", "--no-score", "--timeout", "60"]) == 0
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:3]))
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet", "--no-score", "--timeout", "30"]) == 0
    err = capsys.readouterr().err
    assert "timeout_s: 60.0 -> 30.0" in err and "runner_before" in err, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["runner"]["timeout_s"] == 30.0 and man["runner_before"][-1]["runner"]["timeout_s"] == 60.0
    assert man["runner_before"][-1]["until"] == man["resumed_at"][-1]
    (out / "results.jsonl").write_text("".join(lines[:3]))
    assert main(["run", "--resume", str(out), "--quiet", "--no-score", "--timeout", "30"]) == 0
    assert "note" not in capsys.readouterr().err  # (the same settings again: nothing to say)


def test_a_fresh_run_writes_only_into_a_new_or_empty_folder_or_a_run_folder(tmp_path: Path) -> None:
    """``run(..., out_dir)`` into a project's folder (src/) wrote the run's files beside the project's:
    a folder that is neither empty nor a run folder of labkit is refused, nothing written in it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print(1)\n")
    (src / "scores.csv").write_text("mine\n")  # (a file named as a run's does not make it a run folder)
    with pytest.raises(ConfigError, match="holds other files and no labkit run") as ei:
        run(cases(1), echo, src, config=QUIET, score=False)
    assert ei.value.path == str(src) and "app.py" in str(ei.value)
    assert sorted(os.listdir(src)) == ["app.py", "scores.csv"] and (src / "scores.csv").read_text() == "mine\n"
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run(cases(1), echo, afile, config=QUIET, score=False)
    # a run folder is refused as before, whatever else was written into it (a gate report)
    held = run(cases(1), echo, tmp_path / "held", config=QUIET, score=False).path
    (held / "gate.md").write_text("### Gate\n")
    with pytest.raises(ConfigError, match="already holds a run"):
        run(cases(1), echo, held, config=QUIET, score=False)
    # an empty folder, and one a run stopped in before it wrote its manifest (its lock, its snapshot), are run into
    empty, stopped = tmp_path / "empty", tmp_path / "stopped"
    empty.mkdir()
    stopped.mkdir()
    (stopped / ".lock").write_text("")
    (stopped / "cases.jsonl").write_text("")
    for out in (empty, stopped):
        assert run(cases(2), echo, out, config=QUIET, score=False).manifest["status"] == "complete"
