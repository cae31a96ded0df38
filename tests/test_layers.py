"""The layers of docs/architecture.md are enforced by import-linter (``make lint``): an upward
import breaks the contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=project, capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(ROOT / "labkit", dest / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_package_keeps_its_layers(project: Path) -> None:
    r = _lint(project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("labkit/errors.py", "labkit.gate"),            # a foundation importing the gate
    ("labkit/runs.py", "labkit.scoring"),           # the run directory importing scoring
    ("labkit/runner/manifest.py", "labkit.gate"),   # the runner importing the gate
    ("labkit/gate/evaluate.py", "labkit.views.tables"),  # the gate importing a view
])
def test_an_upward_import_breaks_the_contract(project: Path, module: str, upward: str) -> None:
    target = project / module
    target.write_text(target.read_text(encoding="utf-8") + f"\nimport {upward}  # planted\n", encoding="utf-8")
    r = _lint(project)
    assert r.returncode != 0
    assert "BROKEN" in r.stdout and upward in r.stdout, r.stdout


def test_no_module_over_600_lines_and_no_function_over_80() -> None:
    """Small modules and functions (docs/architecture.md, "Rules every module keeps")."""
    import ast

    big_modules, big_functions = [], []
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 600:
            big_modules.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 80:
                    big_functions.append(f"{path.relative_to(ROOT)}:{node.name} ({size} lines)")
    assert big_modules == [] and big_functions == []


def test_every_module_is_in_a_layer() -> None:
    """A module outside every layer would escape the contract: each one is named (``labkit.trace``
    itself is only the folder of trace modules that sit in two layers)."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = cfg["tool"]["importlinter"]["contracts"][0]["layers"]
    named = [m.strip() for layer in layers for m in layer.replace("|", ":").split(":")]
    outside = []
    for path in (ROOT / "labkit").rglob("*.py"):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if mod not in ("labkit", "labkit.trace") and not any(mod == m or mod.startswith(m + ".") for m in named):
            outside.append(mod)
    assert sorted(outside) == []
