"""The commit a run or a report was made from: one form everywhere.

:func:`git_sha` is the full hex sha of ``HEAD`` (40 characters; 64 in a SHA-256
repository) of the repository holding a folder, or ``None`` outside a repository. It is
read from the ``.git`` folder (worktrees, detached heads and packed refs included) with no
subprocess; only a repository it cannot read that way costs one ``git rev-parse HEAD``.
Whether the working copy is dirty is not recorded: knowing it means a ``git status`` that
stats every tracked file, too slow for every run and every report.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["git_sha"]

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def git_sha(start: str | os.PathLike[str] | None = None) -> str | None:
    """HEAD's commit of the repository holding ``start`` (default: the working directory)."""
    where = Path(start) if start is not None else Path.cwd()
    try:
        sha = _sha_from_files(where)
    except (OSError, UnicodeDecodeError):
        sha = None
    if sha is not None:
        return sha or None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and _SHA.fullmatch(sha) else None


def _git_dir(d: Path) -> Path | None:
    """The git directory of a ``.git`` folder or ``.git`` file (a worktree) in ``d``."""
    dot = d / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():
        text = dot.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            return (d / text.split(":", 1)[1].strip()).resolve()
    return None


def _sha_from_files(start: Path) -> str | None:
    """HEAD's commit read from the git directory: "" when there is no repository, None
    when the repository could not be read this way."""
    for d in (start, *start.parents):
        if not (d / ".git").exists():
            continue
        gitdir = _git_dir(d)
        if gitdir is None:
            return None
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head if _SHA.fullmatch(head) else None
        return _ref_sha(head.split(":", 1)[1].strip(), gitdir, common)
    return ""


def _ref_sha(ref: str, gitdir: Path, common: Path) -> str | None:
    for base in (gitdir, common):
        f = base / ref
        if f.is_file():
            sha = f.read_text(encoding="utf-8").strip()
            return sha if _SHA.fullmatch(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and _SHA.fullmatch(parts[0]):
                return parts[0]
    return None
