"""The public API and the light-import rule of the design."""

import json
import subprocess
import sys
from pathlib import Path

import labkit

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "matplotlib", "duckdb", "httpx", "papermill", "nbconvert", "ipywidgets",
         "opentelemetry", "scipy", "dask", "IPython")


def test_every_public_name_resolves():
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name
    assert labkit.release_gate({"faithfulness": 0.9, "retrieval_hit_rate": 0.9, "latency_p95_ms": 100,
                                "cost_per_success": 0.01})


def test_import_loads_no_heavy_library():
    code = (
        "import sys, labkit, labkit.cases, labkit.gate, labkit.runner, labkit.runs, labkit.trace, "
        "labkit.readiness, labkit.pipelines, labkit.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_cli_help_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "labkit.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("dataset", "run", "score", "gate", "compare", "traces", "feedback", "alerts",
                "scorecard", "incident", "report"):
        assert cmd in r.stdout, cmd


def _cli_modules(*argv: str) -> tuple[int, list[str], str]:
    """Run ``labkit ARGV`` in a fresh interpreter: exit code, numeric libraries loaded, stdout."""
    code = (
        "import contextlib, io, json, sys\n"
        "from labkit.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main({list(argv)!r})\n"
        "print(json.dumps([rc, sorted(m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules), out.getvalue()]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    rc, loaded, out = json.loads(r.stdout.splitlines()[-1])
    return rc, loaded, out


def test_help_starts_without_numpy_or_pandas():
    rc, loaded, out = _cli_modules("--help")
    assert rc == 0 and "compare" in out
    assert loaded == []


def test_gate_on_a_metrics_file_starts_without_numpy_or_pandas(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    values = {"faithfulness": 0.9, "retrieval_hit_rate": 0.95, "latency_p95_ms": 1200.0, "cost_per_success": 0.01}
    metrics = {name: {"value": v, "n": 10, "unmeasured": 0, "unmeasured_reasons": {}} for name, v in values.items()}
    (run / "metrics.json").write_text(json.dumps({"n_cases": 10, "metrics": metrics}), encoding="utf-8")
    rc, loaded, out = _cli_modules("gate", "--config", "data/gate.yaml", str(run), "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert report["passed"] is True and len(report["checks"]) == 4
    assert loaded == []
    values["faithfulness"] = 0.5
    metrics["faithfulness"]["value"] = 0.5
    (run / "metrics.json").write_text(json.dumps({"n_cases": 10, "metrics": metrics}), encoding="utf-8")
    rc, loaded, out = _cli_modules("gate", "--config", "data/gate.yaml", str(run))
    assert rc == 1 and "faithfulness" in out
    assert loaded == []
