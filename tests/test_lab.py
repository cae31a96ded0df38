"""`make lab`: JupyterLab opens working copies, so editing and saving never dirties notebooks/."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEED = shutil.which("git") and shutil.which("make")


def _repo(tmp: Path) -> Path:
    """A throwaway clone-like copy: Makefile, notebooks, data marker, .gitignore, committed."""
    repo = tmp / "repo"
    for name in ("Makefile", "pyproject.toml", ".gitignore"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, repo / name)
    shutil.copytree(ROOT / "notebooks", repo / "notebooks")
    (repo / "data").mkdir()
    (repo / "outputs").mkdir()
    (repo / "outputs" / ".keep").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def _lab_recipe(repo: Path) -> list[str]:
    """The command lines `make lab` would run (after setup), as make prints them."""
    stamp = repo.parent / "installed-stamp"  # set-up counts as done, outside the tree
    stamp.write_text("")
    out = subprocess.run(["make", "-n", "-s", "lab", "BIN=/nonexistent/bin", f"STAMP={stamp}"],
                         cwd=repo, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("/nonexistent/bin/")]


@pytest.mark.skipif(not NEED, reason="needs git and make")
def test_lab_edits_and_saves_leave_notebooks_clean(tmp_path: Path) -> None:
    from jupyter_server.services.contents.filemanager import FileContentsManager

    repo = _repo(tmp_path)
    recipe = _lab_recipe(repo)
    jupyter = [line for line in recipe if "/jupyter lab" in line]
    steps = [line for line in recipe if line not in jupyter]
    assert jupyter and steps, recipe
    for line in steps:  # the working-copy step, run the way make runs it
        argv = shlex.split(line.replace("/nonexistent/bin/python", shlex.quote(sys.executable)))
        subprocess.run(argv, cwd=repo, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    nb_dir = re.search(r"--notebook-dir=(\S+)", jupyter[0])
    assert nb_dir, jupyter[0]
    lab_dir = (repo / nb_dir.group(1)).resolve()
    assert lab_dir != (repo / "notebooks").resolve() and (lab_dir / "00_quick_lab.ipynb").is_file()

    # edit and save the quick lab as JupyterLab's file manager does (autosave included)
    cm = FileContentsManager(root_dir=str(lab_dir))
    model = cm.get("00_quick_lab.ipynb", content=True)
    nb = model["content"]
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace("0.85", "0.7777")
    params.outputs = [{"output_type": "stream", "name": "stdout", "text": "edited\n"}]
    params.execution_count = 1
    cm.save({"type": "notebook", "format": "json", "content": nb}, "00_quick_lab.ipynb")

    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "notebooks/"],
                            cwd=repo, capture_output=True, text=True, check=True).stdout
    assert status == ""
    assert "edited" in (lab_dir / "00_quick_lab.ipynb").read_text()
    assert "0.7777" in (lab_dir / "00_quick_lab.ipynb").read_text()
    assert "0.7777" not in (repo / "notebooks/00_quick_lab.ipynb").read_text()
    # the whole tree stays clean: working copies and settings live in git-ignored outputs/
    assert subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout == ""

    # running the step again keeps the edit
    for line in steps:
        argv = shlex.split(line.replace("/nonexistent/bin/python", shlex.quote(sys.executable)))
        subprocess.run(argv, cwd=repo, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert "edited" in (lab_dir / "00_quick_lab.ipynb").read_text()


@pytest.mark.skipif(not NEED, reason="needs git and make")
def test_lab_turns_the_news_prompt_off(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    recipe = _lab_recipe(repo)
    jupyter = next(line for line in recipe if "/jupyter lab" in line)
    assert "--LabApp.news_url=None" in jupyter
    settings = re.search(r"--LabApp\.app_settings_dir=(\S+)", jupyter)
    assert settings, jupyter
    for line in recipe:
        if line is not jupyter:
            argv = shlex.split(line.replace("/nonexistent/bin/python", shlex.quote(sys.executable)))
            subprocess.run(argv, cwd=repo, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    overrides = json.loads((repo / settings.group(1) / "overrides.json").read_text())
    # JupyterLab 4 shows the news prompt while this setting is "none", whatever news_url says
    note = overrides["@jupyterlab/apputils-extension:notification"]
    assert note["fetchNews"] == "false" and note["checkForUpdates"] is False


def test_changed_committed_notebook_is_named(tmp_path: Path) -> None:
    from labkit.commands import lab

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.ipynb").write_text("{}")
    _, notes = lab.prepare(tmp_path)
    assert notes == ["copied notebooks/a.ipynb -> outputs/lab/a.ipynb"]
    (tmp_path / "outputs/lab/a.ipynb").write_text('{"edited": 1}')
    assert lab.prepare(tmp_path)[1] == []
    (tmp_path / "notebooks" / "a.ipynb").write_text('{"new": 1}')
    notes = lab.prepare(tmp_path)[1]
    assert len(notes) == 1 and "changed since" in notes[0] and "delete the copy" in notes[0]
    assert (tmp_path / "outputs/lab/a.ipynb").read_text() == '{"edited": 1}'
