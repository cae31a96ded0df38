"""`make lab`: JupyterLab opens working copies, so editing and saving never dirties notebooks/."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------------------- the quick lab's decision


QUICK = ROOT / "data" / "quick_lab.jsonl"


def _quick_gate(min_faithfulness: float) -> Any:
    from labkit.gate import Gate

    return Gate.from_dict({"name": "quick-lab", "checks": [
        {"metric": "faithfulness", "op": ">=", "threshold": min_faithfulness, "min_n": 9},
        {"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.80, "min_n": 9},
        {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500.0, "min_n": 10}]})


def _quick_runs(runs_dir: Path) -> tuple[Path, Path]:
    """The quick lab's two runs (simulated model), made the way notebook 00 makes them."""
    import labkit

    cases = labkit.load_cases(QUICK)
    out = []
    for name in ("baseline", "variant"):
        rd = labkit.run(cases, ROOT / "data" / "pipelines" / f"{name}.yaml",
                        labkit.fresh_run_dir(runs_dir / name), overrides={"progress": False})
        out.append(Path(rd.path))
    return out[0], out[1]


def test_quick_lab_bar_moved_below_the_observed_value_says_so(tmp_path: Path) -> None:
    from labkit.gate.bar import record_bar
    from labkit.views.decision import honest_decision
    from labkit.views.verdicts import ship_decision

    runs_dir = tmp_path / "00"
    first = record_bar(_quick_gate(0.85), runs_dir)  # the notebook records the bar before the runs
    base, var = _quick_runs(runs_dir)
    assert honest_decision(record_bar(_quick_gate(0.85), runs_dir), _quick_gate(0.85), var, base).title.startswith(
        "NO-SHIP")
    observed = json.loads((var / "metrics.json").read_text())["metrics"]["faithfulness"]["value"]
    assert 0.80 < observed < 0.85  # 0.833: the bar is moved below what was seen
    lowered = _quick_gate(0.80)
    assert ship_decision(lowered.evaluate(var)).title == "SHIP the variant"  # what the lab used to say
    # a re-run from the top with the new parameter: the runs are made again, the record stays
    bar = record_bar(lowered, runs_dir)
    base, var = _quick_runs(runs_dir)
    v = honest_decision(bar, lowered, var, base)
    assert bar.status == "moved" and bar.recorded_at == first.recorded_at
    assert v.status == "fail" and v.title == "NO-SHIP: the variant fails 1 check(s) — bar moved after results"
    assert "faithfulness >= 0.85, now faithfulness >= 0.8" in v.detail and "would SHIP" in v.detail


def test_quick_lab_shows_the_variants_unsupported_sentences(tmp_path: Path) -> None:
    import labkit
    from labkit.views.decision import unsupported_table

    _, var = _quick_runs(tmp_path / "00")
    st = unsupported_table(var)
    df = st.data
    assert len(df) >= 1 and set(df.columns) >= {"case_id", "unsupported sentence", "faithfulness (0–1)"}
    answers = {r["case_id"]: r["answer"] for r in labkit.RunDir(var).results()}
    scores = labkit.RunDir(var).scores().set_index("case_id")["faithfulness"]
    for _, row in df.iterrows():
        assert row["unsupported sentence"].rstrip("…")[:60] in answers[row["case_id"]]
        assert scores[row["case_id"]] < 1.0  # an unsupported sentence lowers that case's faithfulness
    assert "answers (n) hold a sentence the retrieved context does not support" in st.to_html()


@pytest.mark.slow
def test_quick_lab_notebook_rerun_with_a_lower_bar_says_the_bar_moved(tmp_path: Path) -> None:
    """Restart and Run All with min_faithfulness lowered to 0.80 after a first run at 0.85."""
    import nbformat

    from labkit.report.engine import verdict_of

    pm = str(Path(sys.executable).parent / "papermill")
    runs_dir = tmp_path / "runs"
    titles = []
    for i, faith in enumerate(("0.85", "0.8")):
        out = tmp_path / f"run{i}.ipynb"
        proc = subprocess.run([pm, str(ROOT / "notebooks" / "00_quick_lab.ipynb"), str(out), "-p", "runs_dir",
                               str(runs_dir), "-p", "min_faithfulness", faith, "--no-progress-bar"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        v = verdict_of(nbformat.read(str(out), as_version=4))
        assert v is not None
        titles.append(v.title)
    assert titles[0] == "NO-SHIP: the variant fails 1 check(s)"
    assert titles[1] == "NO-SHIP: the variant fails 1 check(s) — bar moved after results"


def test_unsupported_table_number_cells_carry_their_kind(tmp_path: Path) -> None:
    from labkit.views.decision import unsupported_table
    from tests.number_cells import bad_number_cells, kinds_of

    _, var = _quick_runs(tmp_path / "00")
    page = unsupported_table(var).to_html()
    assert bad_number_cells(page) == []
    assert {"score", "count"} <= kinds_of(page)
