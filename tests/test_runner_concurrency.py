"""The runner under contention: the run lock, large outputs, stuck sync pipelines, failed runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.cases import EvalCase, as_cases, save_cases
from labkit.cli import main
from labkit.runner import RunnerConfig, resume, run

TIME_BOUND_S = 120
pytestmark = pytest.mark.usefixtures("time_bound")

ROOT = Path(__file__).resolve().parents[1]
LABKIT = [sys.executable, "-c", "import sys; from labkit.cli import main; sys.exit(main())"]

SLOW_PIPE = '''
import os, time

def slow(case):
    time.sleep(0.01)
    return {"answer": "slow " + case.question}

def gated(case):
    """Cases after the first three wait until the file $GO_FILE exists."""
    deadline = time.monotonic() + 60
    while case.id >= "c003" and not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"answer": "gated " + case.question}

def fast(case):
    return {"answer": "fast " + case.question}

def broken(case):
    raise ValueError("upstream said no")
'''


def cases(n: int, prefix: str = "c") -> Any:
    return as_cases([{"id": f"{prefix}{i:03d}", "question": f"question number {i}"} for i in range(n)])


@pytest.fixture
def release() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()  # let the spinning pipelines end


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lockpipe.py").write_text(SLOW_PIPE)
    save_cases(cases(60), tmp_path / "ds.jsonl")
    save_cases(cases(5, "other"), tmp_path / "other.jsonl")
    return tmp_path


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{tmp}{os.pathsep}{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["CI"] = "1"
    return env


def _lines(p: Path) -> int:
    try:
        return p.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- the run lock


def test_second_writer_of_a_running_run_is_refused_naming_the_pid(project: Path) -> None:
    out = project / "run"
    go = project / "go"
    env = _env(project) | {"GO_FILE": str(go)}
    proc = subprocess.Popen([*LABKIT, "run", "--dataset", str(project / "ds.jsonl"), "--pipeline", "lockpipe:gated",
                             "--out", str(out), "--concurrency", "1", "--timeout", "120", "--no-score"],
                            env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _lines(out / "results.jsonl") < 3:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            assert time.monotonic() < deadline, "first run made no progress"
            time.sleep(0.01)
        for argv in (["run", "--resume", str(out)], ["score", str(out)],
                     ["run", "--dataset", str(project / "ds.jsonl"), "--pipeline", "lockpipe:gated",
                      "--out", str(out)]):
            r = subprocess.run([*LABKIT, *argv], env=env, cwd=project, capture_output=True, text=True, timeout=60)
            assert r.returncode == 2, (argv, r.stderr)
            err = r.stderr.strip().splitlines()
            assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
            assert f"pid {proc.pid}" in err[0] and str(out) in err[0], err[0]
        assert proc.poll() is None, "the first run must still be running when the others were refused"
    finally:
        go.touch()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["case_id"] for r in rows}) == 60  # nobody else wrote into it
    assert _lines(out / "traces.jsonl") == 60
    assert not (out / "scores.csv").exists()  # the refused `labkit score` wrote nothing


def test_resume_while_a_run_is_in_progress_in_process(tmp_path: Path) -> None:
    started = threading.Event()
    go_on = threading.Event()

    def pipe(case: EvalCase) -> dict:
        started.set()
        go_on.wait(30)
        return {"answer": "x"}

    out = tmp_path / "r"
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("rd", run(cases(4), pipe, out, config=RunnerConfig(
        progress=False, concurrency=1), score=False)))
    t.start()
    try:
        assert started.wait(30)
        from labkit.runner.lock import RunLocked

        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            resume(out, pipeline=pipe, score=False)
    finally:
        go_on.set()
        t.join(30)
    assert [r["status"] for r in box["rd"].results()] == ["ok"] * 4
    # once the first writer is done the lock is free again
    assert len(resume(out, pipeline=pipe, score=False).results()) == 4


def test_resume_with_another_dataset_or_pipeline_is_an_error(project: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    out = project / "r"
    ds = str(project / "ds.jsonl")
    assert main(["run", "--dataset", ds, "--pipeline", "lockpipe:fast", "--out", str(out), "--quiet",
                 "--no-score"]) == 0
    capsys.readouterr()
    for flag, value, field in (("--dataset", str(project / "other.jsonl"), "dataset"),
                               ("--pipeline", "lockpipe:slow", "pipeline")):
        assert main(["run", "--resume", str(out), flag, value, "--quiet", "--no-score"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and field in err and value in err, err
    # the same dataset and pipeline, spelled as on the first run, are fine
    assert main(["run", "--resume", str(out), "--dataset", "ds.jsonl", "--pipeline", "lockpipe:fast", "--quiet",
                 "--no-score"]) == 0


# --------------------------------------------------------------------------- large outputs


def test_a_huge_answer_is_capped_and_does_not_stall_the_other_cases(tmp_path: Path) -> None:
    big = ("the quick brown fox 12 jumps. " * 1_400_000)[:40_000_000]

    async def pipe(case: EvalCase) -> dict:
        if case.id == "c000":
            return {"answer": big}
        await asyncio.sleep(0.3)
        return {"answer": "short"}

    cfg = RunnerConfig(concurrency=9, timeout_s=1.5, retries=0, progress=False)
    rd = run(cases(9), pipe, tmp_path / "r", config=cfg, score=False)
    res = {r["case_id"]: r for r in rd.results()}
    assert [res[f"c{i:03d}"]["status"] for i in range(1, 9)] == ["ok"] * 8, [r["error"] for r in res.values()]
    huge = res["c000"]
    assert huge["status"] == "ok" and huge["truncated"] is True
    assert huge["truncated_chars"] == {"answer": 40_000_000}
    assert len(huge["answer"]) == cfg.max_output_chars and big.startswith(huge["answer"])
    assert "truncated" not in res["c001"]


def test_output_cap_applies_to_every_string_and_is_a_setting(tmp_path: Path) -> None:
    def pipe(case: EvalCase) -> dict:
        return {"answer": "a" * 50, "retrieved": [{"id": "d1", "text": "t" * 80}], "note": "n" * 10,
                "truncated": False}

    cfg = RunnerConfig(max_output_chars=20, progress=False)
    row = run(cases(1), pipe, tmp_path / "r", config=cfg, score=False).results()[0]
    assert row["answer"] == "a" * 20 and row["retrieved"][0]["text"] == "t" * 20 and row["note"] == "n" * 10
    assert row["truncated"] is True
    assert row["truncated_chars"] == {"answer": 50, "retrieved[0].text": 80}
    with pytest.raises(Exception, match="max_output_chars"):
        RunnerConfig(max_output_chars=0)

    def claims(case: EvalCase) -> dict:  # a pipeline cannot flag itself
        return {"answer": "short", "truncated": True, "truncated_chars": {"answer": 10**9}}

    row = run(cases(1), claims, tmp_path / "c", config=cfg, score=False).results()[0]
    assert "truncated" not in row and "truncated_chars" not in row


# --------------------------------------------------------------------------- stuck sync pipelines


class Inflight:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.now -= 1


def test_spinning_sync_pipeline_threads_stay_bounded_and_the_run_ends(tmp_path: Path,
                                                                      release: threading.Event) -> None:
    calls = Inflight()

    def pipe(case: EvalCase) -> dict:
        with calls:
            if case.id in ("c003", "c011"):
                n = 0
                while not release.is_set():  # pure Python: holds the GIL, ignores every deadline
                    n += 1
            else:
                time.sleep(0.01)
        return {"answer": "fine"}

    cfg = RunnerConfig(concurrency=6, timeout_s=0.3, retries=1, backoff_base_s=0.01, backoff_max_s=0.05,
                       progress=False)
    t = time.monotonic()
    rd = run(cases(40), pipe, tmp_path / "r", config=cfg)  # scored too: scoring must not starve
    took = time.monotonic() - t
    res = {r["case_id"]: r for r in rd.results()}
    assert len(res) == 40
    assert res["c003"]["status"] == res["c011"]["status"] == "timeout"
    assert res["c003"]["attempts"] == res["c011"]["attempts"] == 2
    assert sum(r["status"] == "ok" for r in res.values()) == 38
    assert calls.peak <= 2 * cfg.concurrency, f"{calls.peak} pipeline calls at once (abandoned ones included)"
    assert took < 45, f"run and scoring took {took:.1f}s"
    # the abandoned spinning calls were stopped, though nothing released them
    deadline = time.monotonic() + 5
    while calls.now and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls.now == 0 and not release.is_set(), f"{calls.now} abandoned calls still spinning"


def test_all_threads_stuck_the_remaining_cases_end_as_timeouts(tmp_path: Path, release: threading.Event) -> None:
    calls = Inflight()

    def pipe(case: EvalCase) -> dict:
        with calls:
            if case.id < "c004":
                release.wait(120)  # stuck for good
        return {"answer": "fine"}

    cfg = RunnerConfig(concurrency=2, timeout_s=0.2, retries=1, backoff_base_s=0.01, backoff_max_s=0.05,
                       progress=False)
    t = time.monotonic()
    rd = run(cases(30), pipe, tmp_path / "r", config=cfg, score=False)
    took = time.monotonic() - t
    res = rd.results()
    assert took < 15, f"run took {took:.1f}s"
    assert calls.peak <= 2
    assert len(res) == 30 and all(r["status"] == "timeout" for r in res)
    stuck = [r for r in res if r["error_type"] == "PipelineThreadsStuck"]
    assert stuck and all("stuck" in r["error"] for r in stuck)


# --------------------------------------------------------------------------- exit codes


def test_a_run_where_every_case_failed_exits_1(project: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    code = main(["run", "--dataset", str(project / "other.jsonl"), "--pipeline", "lockpipe:broken",
                 "--out", str(project / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and "every case failed" in err and "upstream said no" in err, err
    first = json.loads((project / "r" / "results.jsonl").read_text().splitlines()[0])["case_id"]
    assert f"first error (case {first}): " in err, err  # (which case to look at, in results.jsonl)
    assert main(["run", "--dataset", str(project / "other.jsonl"), "--pipeline", "lockpipe:fast",
                 "--out", str(project / "ok"), "--quiet"]) == 0
