"""Limits a run and a results line must keep: concurrency (workers never outnumber the
cases; a documented maximum), the rate limit (a documented minimum: no endless wait for a
token) and the numbers a results line may claim (sums that cannot overflow)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.errors import ConfigError
from labkit.runner import RunnerConfig

pytestmark = pytest.mark.usefixtures("time_bound")
TIME_BOUND_S = 120

ROOT = Path(__file__).resolve().parents[1]
#: Documented in docs/runner.md ("Limits").
MAX_CONCURRENCY = 10_000
MIN_RATE_LIMIT = 0.001
#: Documented in docs/formats.md ("What a results line may claim").
MAX_COST_USD = 1e9
MAX_LATENCY_MS = 1e10
MAX_TOKENS = 10**12


def _dataset(tmp_path: Path, n: int) -> Path:
    ds = tmp_path / "cases.jsonl"
    ds.write_text("".join(json.dumps({"id": f"c{i}", "question": f"question number {i}?"}) + "\n"
                          for i in range(n)), encoding="utf-8")
    return ds


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    name = f"limits_pipe_{uuid.uuid4().hex}"  # a fresh module per test (sys.modules keeps imports)
    (tmp_path / f"{name}.py").write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:pipe"


def _labkit(args: list[str], *, timeout_s: float, mem_bytes: int = 3 * 2**30,
            path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``labkit ARGS`` in a child process with an address-space cap and a deadline: a run that
    would eat the machine or wait forever fails this test instead (the child is killed)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, path) if p is not None)}
    try:
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True,
                              timeout=timeout_s, preexec_fn=cap, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:  # subprocess.run killed the child by its pid
        pytest.fail(f"labkit {' '.join(args)} did not end within {timeout_s:g} s")


# ---------------------------------------------------------------------------- C1


def test_concurrency_above_the_documented_maximum_is_a_config_error(tmp_path: Path) -> None:
    r = _labkit(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(tmp_path / "run"), "--concurrency", "1000000", "--quiet", "--no-score"],
                timeout_s=90)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "concurrency" in r.stderr and f"{MAX_CONCURRENCY:,}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "results.jsonl").exists()
    with pytest.raises(ConfigError, match="concurrency"):
        RunnerConfig(concurrency=MAX_CONCURRENCY + 1)
    assert RunnerConfig(concurrency=MAX_CONCURRENCY).concurrency == MAX_CONCURRENCY


def test_workers_never_outnumber_the_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _module(tmp_path, monkeypatch, (
        "import asyncio\n"
        "async def pipe(case):\n"
        "    alive = len(asyncio.all_tasks())  # counted as the case starts\n"
        "    await asyncio.sleep(0.01)\n"
        "    return {'answer': str(alive)}\n"))
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(_dataset(tmp_path, 3)), "--pipeline", spec, "--out", str(out),
                 "--concurrency", str(MAX_CONCURRENCY), "--quiet", "--no-score"]) == 0
    tasks = [int(json.loads(ln)["answer"]) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert len(tasks) == 3
    assert max(tasks) <= 3 + 2, tasks  # one worker per case, plus the run's own task(s)


# ---------------------------------------------------------------------------- C2


@pytest.mark.parametrize("rate", ["1e-300", "0.0009", "0"])
def test_a_rate_limit_below_the_documented_minimum_is_a_config_error(tmp_path: Path, rate: str) -> None:
    spec_dir = tmp_path / "mod"
    spec_dir.mkdir()
    (spec_dir / "rate_pipe.py").write_text("def pipe(case):\n    return {'answer': 'a'}\n", encoding="utf-8")
    t0 = time.monotonic()
    r = _labkit(["run", "--dataset", str(_dataset(tmp_path, 3)), "--pipeline", "rate_pipe:pipe", "--out",
                 str(tmp_path / "run"), "--rate-limit", rate, "--quiet", "--no-score"], timeout_s=40, path=spec_dir)
    assert time.monotonic() - t0 < 60
    assert r.returncode == 2, r.stderr[-2000:]
    assert "field '--rate-limit'" in r.stderr and f"{MIN_RATE_LIMIT:g}" in r.stderr and "Traceback" not in r.stderr


def test_the_minimum_rate_limit_is_accepted_and_a_run_at_a_modest_rate_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RunnerConfig(rate_limit=MIN_RATE_LIMIT).rate_limit == MIN_RATE_LIMIT
    with pytest.raises(ConfigError, match="rate_limit"):
        RunnerConfig(rate_limit=MIN_RATE_LIMIT / 2)
    spec = _module(tmp_path, monkeypatch, "def pipe(case):\n    return {'answer': 'a'}\n")
    t0 = time.monotonic()
    assert main(["run", "--dataset", str(_dataset(tmp_path, 3)), "--pipeline", spec, "--out",
                 str(tmp_path / "run"), "--rate-limit", "20", "--quiet", "--no-score"]) == 0
    assert time.monotonic() - t0 < 30


# ---------------------------------------------------------------------------- D


def _score_hand_written(tmp_path: Path, lines: list[dict[str, object]], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    run = tmp_path / "recorded"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    code = main(["score", str(run), "--dataset", str(_dataset(tmp_path, len(lines))), "--corpus", "data/corpus"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("cost_usd", 1.7e308, "cost_usd"),
        ("latency_ms", 1.7e308, "latency_ms"),
        ("cost_usd", MAX_COST_USD * 1.5, "cost_usd"),
        ("latency_ms", MAX_LATENCY_MS * 2, "latency_ms"),
        ("usage", {"input_tokens": 2**62}, "usage.input_tokens"),
        ("usage", {"completion_tokens": MAX_TOKENS + 1}, "usage.output_tokens"),
    ],
)
def test_a_results_line_claiming_more_than_the_bounds_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, shown: str,
) -> None:
    lines = [{"case_id": f"c{i}", "status": "ok", "answer": "a", field: value} for i in range(3)]
    with _no_warnings():
        code, err = _score_hand_written(tmp_path, lines, capsys)
    assert code == 2, err
    assert "line 1" in err and shown in err and "Traceback" not in err
    assert "RuntimeWarning" not in err and "overflow" not in err


class _no_warnings:
    """A block in which a warning is an error (numpy's overflow RuntimeWarning included)."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def test_values_at_the_bounds_are_accepted_and_summed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [{"case_id": f"c{i}", "status": "ok", "answer": "a", "cost_usd": MAX_COST_USD,
              "latency_ms": MAX_LATENCY_MS, "usage": {"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}}
             for i in range(3)]
    with _no_warnings():
        code, err = _score_hand_written(tmp_path, lines, capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "recorded" / "metrics.json").read_text())["metrics"]
    measured = {k: v for k, v in m.items() if k.startswith(("cost", "latency")) and v["value"] is not None}
    assert measured and all(v["n"] == 3 for v in measured.values()), m


def test_a_pipeline_claiming_a_cost_beyond_the_bound_is_an_error_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _module(tmp_path, monkeypatch, "def pipe(case):\n    return {'answer': 'a', 'cost_usd': 1e300}\n")
    out = tmp_path / "run"
    main(["run", "--dataset", str(_dataset(tmp_path, 2)), "--pipeline", spec, "--out", str(out), "--quiet",
          "--no-score"])
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["error", "error"]
    assert all(r["error_type"] == "ResultError" and "cost_usd" in r["error"] for r in rows)


@pytest.mark.parametrize("retries", [101, 10**18])
def test_a_retry_count_past_the_documented_bound_is_a_config_error(retries: int) -> None:
    """``runner.retries: 1000000000000000000`` was accepted: a failing call retried without end."""
    from labkit.runner.config import MAX_RETRIES, RunnerConfig

    with pytest.raises(ConfigError) as ei:
        RunnerConfig.from_dict({"retries": retries}, path="pipe.yaml")
    assert ei.value.field == "runner.retries" and f"{MAX_RETRIES}" in str(ei.value), ei.value
    assert RunnerConfig.from_dict({"retries": MAX_RETRIES}).retries == MAX_RETRIES
