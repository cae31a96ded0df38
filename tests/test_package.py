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


def test_the_run_lock_loads_no_other_runner_module_and_the_runner_names_resolve():
    """``labkit score`` takes the run lock: that loads the lock, not the runner's other modules."""
    import labkit.runner

    code = ("import sys\nfrom labkit.runner.lock import RunLock\n"
            "print(','.join(sorted(m for m in sys.modules if m.startswith('labkit.runner.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "labkit.runner.lock"
    for name in labkit.runner.__all__:
        assert getattr(labkit.runner, name) is not None, name
    assert sorted(dir(labkit.runner)) == sorted(labkit.runner.__all__)


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


def _recorded(run: Path) -> None:
    """The scoring record a gate verifies (sha256 of the scored files), for metrics written here:
    the gate's light path is what is tested, not scoring."""
    import hashlib

    names = ("results.jsonl", "scores.csv", "metrics.json")
    for name in names[:2]:
        (run / name).touch()
    sha = {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in names}
    judge = {"type": "lexical", "threshold": 0.6, "min_content_words": 2}  # (the default judge's record)
    (run / "manifest.json").write_text(json.dumps({"run_id": "run", "scoring": {"sha256": sha, "k": 5, "judge": judge}}),
                                       encoding="utf-8")


def test_gate_on_a_metrics_file_starts_without_numpy_or_pandas(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    values = {"faithfulness": 0.9, "retrieval_hit_rate": 0.95, "latency_p95_ms": 1200.0, "cost_per_success": 0.01}
    metrics = {name: {"value": v, "n": 20, "unmeasured": 0, "unmeasured_reasons": {}} for name, v in values.items()}
    (run / "metrics.json").write_text(json.dumps({"n_cases": 20, "n_missing": 0, "metrics": metrics}), encoding="utf-8")
    _recorded(run)
    gate = tmp_path / "gate.yaml"  # the shipped gate's thresholds (its regression checks need a baseline's scores)
    gate.write_text(Path("data/gate.yaml").read_text(encoding="utf-8").split("\nregression:")[0] + "\n", encoding="utf-8")
    rc, loaded, out = _cli_modules("gate", "--config", str(gate), str(run), "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert report["passed"] is True and len(report["checks"]) == 5  # the four thresholds and coverage
    assert loaded == []
    values["faithfulness"] = 0.5
    metrics["faithfulness"]["value"] = 0.5
    (run / "metrics.json").write_text(json.dumps({"n_cases": 20, "n_missing": 0, "metrics": metrics}), encoding="utf-8")
    _recorded(run)
    rc, loaded, out = _cli_modules("gate", "--config", str(gate), str(run))
    assert rc == 1 and "faithfulness" in out
    assert loaded == []


def _cli_without(modules: tuple[str, ...], *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``labkit ARGV`` in an interpreter where importing any of ``modules`` fails (an install without them)."""
    code = (
        "import sys\n"
        f"for m in {modules!r}:\n"
        "    sys.modules[m] = None\n"
        "from labkit.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


LAB_MODULES = ("papermill", "nbconvert", "nbformat", "nbclient", "jupyter_client", "ipykernel", "IPython",
               "ipywidgets", "matplotlib", "mistune", "jupyterlab")


def test_report_without_the_lab_extra_names_the_extra(tmp_path: Path):
    r = _cli_without(LAB_MODULES, "report", "--only", "00", "--out", str(tmp_path / "reports"),
                     "--notebooks", str(ROOT / "notebooks"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "labkit[lab]" in r.stderr and "labkit report" in r.stderr
    assert not (tmp_path / "reports").exists()  # refused before anything is written


def test_scorecard_html_without_the_lab_extra_names_the_extra_before_writing(tmp_path: Path):
    out = tmp_path / "readiness"
    r = _cli_without(LAB_MODULES, "scorecard", "--baseline", str(tmp_path / "no-such-run"), "--out", str(out),
                     "--root", str(ROOT), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "labkit[lab]" in r.stderr and "--no-html" in r.stderr
    assert not out.exists()


def test_an_extra_missing_deep_in_a_command_is_a_one_line_error(monkeypatch, capsys):
    import pytest

    import labkit.cases
    from labkit.cli import main

    def needs(name: str):
        def load_cases(*_a: object, **_k: object) -> None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return load_cases

    import labkit.runs  # (imported now, it binds the real load_cases: a module first imported
    # under the patch would keep the patched one after the test, and fail every later run of this process)

    monkeypatch.setattr(labkit.cases, "load_cases", needs("matplotlib.pyplot"))
    assert main(["dataset", "validate", "data/golden.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("labkit: error: matplotlib is required for labkit dataset: "
                           "pip install 'labkit[lab]'")
    monkeypatch.setattr(labkit.cases, "load_cases", needs("not_an_extra"))  # a real bug stays a traceback
    with pytest.raises(ModuleNotFoundError):
        main(["dataset", "validate", "data/golden.jsonl"])
