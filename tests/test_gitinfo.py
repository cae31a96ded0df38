"""The git sha: read from the .git folder, one form for manifests and report footers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.gitinfo import git_sha

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def repo(tmp_path: Path, head: str) -> Path:
    root = tmp_path / "repo"
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text(head + "\n")
    (root / "sub" / "dir").mkdir(parents=True)
    return root


def test_branch_ref_loose_and_packed(tmp_path: Path) -> None:
    root = repo(tmp_path, "ref: refs/heads/main")
    (root / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{OTHER} refs/heads/other\n"
                                                f"{SHA} refs/heads/main\n")
    assert git_sha(root / "sub" / "dir") == SHA  # found from a subfolder, through packed-refs
    (root / ".git" / "refs" / "heads" / "main").write_text(OTHER + "\n")
    assert git_sha(root) == OTHER  # a loose ref wins over the packed one


def test_detached_head_and_worktree_file(tmp_path: Path) -> None:
    root = repo(tmp_path, SHA)
    assert git_sha(root) == SHA
    wt_git = root / ".git" / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (wt_git / "commondir").write_text("../..\n")
    (root / ".git" / "refs" / "heads" / "feature").write_text(OTHER + "\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {wt_git}\n")
    assert git_sha(wt) == OTHER


def test_outside_a_repository_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if any((d / ".git").exists() for d in (tmp_path, *tmp_path.parents)):
        pytest.skip("the temporary folder is inside a repository")
    assert git_sha(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    assert git_sha() is None


def test_a_bad_head_is_none_not_garbage(tmp_path: Path) -> None:
    root = repo(tmp_path, "ref: refs/heads/main")
    (root / ".git" / "refs" / "heads" / "main").write_text("not a sha\n")
    assert git_sha(root) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_matches_git_rev_parse_here() -> None:
    here = Path(__file__).resolve().parent
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("tests are not in a git checkout")
    assert git_sha(here) == out.stdout.strip()


def test_report_footer_and_manifest_show_the_same_form(tmp_path: Path) -> None:
    """One form everywhere: the footer of a report made with no run shows the sha a run's
    manifest records (full hex), not a short or "-dirty" variant."""
    from labkit.cases import as_cases
    from labkit.runner import RunnerConfig, run
    from labkit.views import footer as viz

    rd = run(as_cases([{"id": "a", "question": "q"}]), lambda c: {"answer": "x"}, tmp_path / "r",
             config=RunnerConfig(progress=False), score=False)
    here = git_sha()
    assert rd.manifest["git_sha"] == here
    assert viz.run_metadata({})["git_sha"] == (here or "unknown")
    assert viz.run_metadata({}, runs=[rd])["git_sha"] == (here or "unknown")
