"""The public API and the light-import rule of the design."""

import subprocess
import sys

import labkit

HEAVY = ("pandas", "matplotlib", "seaborn", "duckdb", "httpx", "papermill", "nbconvert", "ipywidgets",
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
