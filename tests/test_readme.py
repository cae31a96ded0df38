"""README.md: the commands it shows write only where git ignores them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _written_paths() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    # the local commands block (the CI section mirrors docs/ci/, whose checkout is thrown away)
    local = text.split("## In CI")[0]
    return re.findall(r"--(?:junit|markdown|out|reviews)[ =](\S+)", local)


def test_readme_review_decisions_name_where_they_are_written() -> None:
    """`labkit review --decide` appends to data/reviews.jsonl unless --reviews says where: a README
    command must not leave an untracked file in data/."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    deciding = [ln for ln in text.splitlines() if "labkit review" in ln and "--decide" in ln]
    assert deciding, "the README shows how to record a review"
    assert all("--reviews" in ln for ln in deciding), deciding


def test_readme_commands_write_only_ignored_paths() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = _written_paths()
    assert any("gate.xml" in p for p in paths) and any("gate.md" in p for p in paths)
    res = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    ignored = set(res.stdout.split())
    assert set(paths) <= ignored, f"not ignored by git: {sorted(set(paths) - ignored)}"
