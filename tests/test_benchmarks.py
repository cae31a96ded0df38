"""The benchmark scripts run (on tiny sizes) and end with one JSON line, so `make bench` cannot
rot while the package moves. Their figures are measured by `make bench`, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMALL = {
    "bench_experiment.py": ["--n", "50", "--hours", "12"],
    "bench_intervals.py": ["--n", "300", "--old-n", "300"],
    "bench_metrics.py": ["--n", "2000", "--repeat", "1", "--agg-n", "300", "--agg-repeat", "1"],
    "bench_percase.py": ["--n", "300", "--repeat", "1"],
    "bench_embeddings.py": ["--n", "4"],
    "bench_runner.py": ["--cases", "100", "--repeat", "1"],
    "bench_score.py": ["--sizes", "300", "--repeat", "2"],
    "bench_startup.py": ["--rounds", "2"],
    "bench_traces.py": ["--n", "500", "--workers", "1", "--repeat", "1"],
}


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts - {"bench_report.py"} == set(SMALL)  # bench_report runs the notebooks: test_notebooks


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL))
def test_benchmark_runs_and_ends_with_its_json_line(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *SMALL[script]], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["bench"] == script.removeprefix("bench_").removesuffix(".py")
