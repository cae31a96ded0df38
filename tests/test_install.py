"""A clean virtual environment with only the core install (``pip install .``) runs,
scores, gates and compares the shipped data, without JupyterLab or scipy.

pip reads the package index (or its cache); the package is built from a copy
of the sources so the checkout gets no build folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
NOT_IN_CORE = ("jupyterlab", "papermill", "nbconvert", "nbformat", "ipykernel", "ipywidgets", "matplotlib",
               "mistune", "scipy")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv holding the core install only."""
    tmp = tmp_path_factory.mktemp("core")
    src = tmp / "src"
    shutil.copytree(ROOT / "labkit", src / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=180, env=_env())
    py = tmp / "venv" / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True,
                       timeout=900, env=_env(), cwd=tmp)
    assert r.returncode == 0, r.stderr[-4000:]
    return py.parent


def _labkit(core: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(core / "labkit"), *argv], capture_output=True, text=True, timeout=300,
                          env=_env(), cwd=cwd)


def test_core_install_has_neither_the_lab_nor_scipy(core: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, labkit\n"
        f"print(json.dumps([labkit.__file__, [m for m in {NOT_IN_CORE!r} if importlib.util.find_spec(m)]]))"
    )
    r = subprocess.run([str(core / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                       env=_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    where, present = json.loads(r.stdout)
    assert Path(where).is_relative_to(core.parent), where  # the installed copy, not the checkout
    assert present == []


def test_core_runs_scores_gates_and_compares_the_shipped_data(core: Path, tmp_path: Path) -> None:
    runs = {}
    for name in ("baseline", "variant"):
        runs[name] = tmp_path / name
        r = _labkit(core, "run", "--dataset", str(DATA / "golden.jsonl"), "--pipeline",
                    str(DATA / "pipelines" / f"{name}.yaml"), "--out", str(runs[name]), "--quiet", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "70 cases (ok 70" in r.stdout
        assert (runs[name] / "scores.csv").is_file() and (runs[name] / "metrics.json").is_file()

    r = _labkit(core, "score", str(runs["baseline"]), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("scored 70 of 70 cases") and "faithfulness" in r.stdout

    gate = str(DATA / "gate.yaml")
    base = ["--baseline", str(runs["baseline"])]  # the shipped gate's non-inferiority checks
    # the reference itself is judged on its thresholds (it cannot be its own baseline)
    r = _labkit(core, "gate", "--config", gate, str(runs["baseline"]), "--thresholds-only", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout
    r = _labkit(core, "gate", "--config", gate, str(runs["variant"]), *base, "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [c["metric"] for c in json.loads(r.stdout)["checks"] if not c["passed"]]
    assert set(failed) == {"faithfulness"}  # its threshold and its non-inferiority check

    r = _labkit(core, "compare", str(runs["baseline"]), str(runs["variant"]), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cmp = json.loads(r.stdout)
    assert cmp["n_paired"] == 70
    rate = cmp["metrics"]["task_success_rate"]
    assert rate["test"] == "mcnemar_exact" and 0.0 < rate["p_value"] <= 1.0  # the exact binomial, no scipy
    assert {f["from"] for f in cmp["flipped"]} <= {"pass", "fail"} and cmp["flipped"]


def test_core_report_names_the_lab_extra(core: Path, tmp_path: Path) -> None:
    r = _labkit(core, "report", "--notebooks", str(ROOT / "notebooks"), "--out", str(tmp_path / "reports"),
                cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "labkit: error: jupyterlab is required for labkit report: pip install 'labkit[lab]'"
    ]
    assert not (tmp_path / "reports").exists()
