"""SIGKILL a real ``labkit run`` mid-run, resume it, and get the uninterrupted results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

ROOT = Path(__file__).resolve().parents[1]
LABKIT = [sys.executable, "-c", "import sys; from labkit.cli import main; sys.exit(main())"]
N = 240

PIPELINE = '''
import asyncio, hashlib

async def slow_echo(case):
    h = hashlib.sha256(case.question.encode()).hexdigest()
    await asyncio.sleep(0.005 + int(h[:2], 16) / 255 * 0.03)   # finishes out of order
    return {"answer": f"echo {case.question} {h[:8]}",
            "retrieved": [{"id": "doc#" + h[0], "source": "doc", "score": 1.0}],
            "usage": {"input_tokens": 5, "output_tokens": 3}, "cost_usd": 0.001}
'''


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{tmp}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["CI"] = "1"  # no progress bar
    return env


def _lines(p: Path) -> int:
    try:
        return p.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]


def _read(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


@pytest.mark.parametrize("kill_after", [30, 150])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, kill_after: int) -> None:
    (tmp_path / "killme_pipe.py").write_text(PIPELINE)
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": f"k{i:04d}", "question": f"question {i}"}) + "\n" for i in range(N)))
    env = _env(tmp_path)
    common = ["--dataset", str(ds), "--pipeline", "killme_pipe:slow_echo", "--concurrency", "8",
              "--run-id", "sigkill-run"]

    # the uninterrupted reference
    ref = tmp_path / "ref"
    subprocess.run([*LABKIT, "run", *common, "--out", str(ref)], env=env, cwd=tmp_path, check=True,
                   timeout=120, capture_output=True)

    # the killed run
    out = tmp_path / "killed"
    proc = subprocess.Popen([*LABKIT, "run", *common, "--out", str(out)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while _lines(out / "results.jsonl") < kill_after:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            assert time.monotonic() < deadline, "run made no progress"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = _lines(out / "results.jsonl")
    assert kill_after <= done_before < N, "the kill did not land mid-run"
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "running"

    # resume through the CLI
    r = subprocess.run([*LABKIT, "run", "--resume", str(out)], env=env, cwd=tmp_path, timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    got, want = _read(out / "results.jsonl"), _read(ref / "results.jsonl")
    ids = [x["case_id"] for x in got]
    assert len(ids) == len(set(ids)) == N  # none lost, none duplicated
    assert _strip(got) == _strip(want)  # identical ignoring timings, in dataset order
    traces = _read(out / "traces.jsonl")
    assert len(traces) == N and len({t["trace_id"] for t in traces}) == N
    assert {t["trace_id"] for t in traces} == {x["trace_id"] for x in got}
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["counts"]["ok"] == N
    assert (out / "metrics.json").is_file() and (out / "scores.csv").is_file()


GATED = '''
import os, time

def gated(case):
    """Cases from k0020 on wait until the file $GO_FILE exists."""
    deadline = time.monotonic() + 60
    while case.id >= "k0020" and not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"answer": "gated " + case.question}
'''


def test_two_resumes_of_a_killed_run_one_writer(tmp_path: Path) -> None:
    """SIGKILL a run, then resume it twice at once: the second is refused naming the first's
    pid, and the run ends with every case once and one trace per case."""
    (tmp_path / "gated_pipe.py").write_text(GATED)
    ds = tmp_path / "ds.jsonl"
    n = 60
    ds.write_text("".join(json.dumps({"id": f"k{i:04d}", "question": f"question {i}"}) + "\n" for i in range(n)))
    go = tmp_path / "go"
    env = _env(tmp_path) | {"GO_FILE": str(go)}
    out = tmp_path / "killed"
    first = subprocess.Popen([*LABKIT, "run", "--dataset", str(ds), "--pipeline", "gated_pipe:gated", "--out", str(out),
                              "--concurrency", "1", "--timeout", "120"], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _lines(out / "results.jsonl") < 10:
        assert first.poll() is None and time.monotonic() < deadline, "run made no progress"
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    a = subprocess.Popen([*LABKIT, "run", "--resume", str(out)], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while (out / ".lock").read_text().strip() != str(a.pid):  # the killed run's lock died with it
            assert a.poll() is None, a.stderr.read().decode() if a.stderr else "exited"
            assert time.monotonic() < deadline + 60, "resume never took the lock"
            time.sleep(0.01)
        b = subprocess.run([*LABKIT, "run", "--resume", str(out)], env=env, cwd=tmp_path, timeout=60,
                           capture_output=True, text=True)
        assert b.returncode == 2, b.stderr
        assert len(b.stderr.strip().splitlines()) == 1 and f"pid {a.pid}" in b.stderr, b.stderr
    finally:
        go.touch()
        a.wait(timeout=60)
    assert a.returncode == 0
    got = _read(out / "results.jsonl")
    assert len(got) == len({x["case_id"] for x in got}) == n
    traces = _read(out / "traces.jsonl")
    assert len(traces) == n and {t["case_id"] for t in traces} == {x["case_id"] for x in got}
