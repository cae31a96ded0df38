"""The folder a fresh run writes into: a new one, an empty one, or a run folder of labkit.

A run folder holds a run (its manifest.json or its results.jsonl: a resume finishes it, a fresh
run refuses it, :func:`labkit.runner.fresh_run_dir` clears it) or is one a run stopped in before it
wrote its manifest (the run lock ``.lock`` and nothing but a run's files). Any other folder (a
project's ``src/``) is no place for a run's files: :func:`refuse_other_folder` refuses it before
anything is written, and ``fresh_run_dir`` leaves it alone. See docs/runner.md "The run folder".
"""

from __future__ import annotations

import os
from pathlib import Path

from labkit.errors import ConfigError
from labkit.runner.lock import LOCK_NAME
from labkit.runs import MANIFEST, RESULTS, RUN_FILES

__all__ = ["is_run_folder", "refuse_existing_run", "refuse_other_folder"]

#: the names of what a run writes into its folder, its lock among them
_RUN_NAMES = frozenset((*RUN_FILES, LOCK_NAME))


def _holds_run(folder: Path) -> bool:
    return (folder / MANIFEST).exists() or (folder / RESULTS).exists()


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether the existing folder ``folder`` is a run folder of labkit: it holds a run, or the run
    lock and nothing but a run's files (a file named as a run's does not make a folder one)."""
    p = Path(folder)
    if _holds_run(p):
        return True
    names = set(os.listdir(p))
    return LOCK_NAME in names and names <= _RUN_NAMES


def refuse_existing_run(folder: str | os.PathLike[str]) -> None:
    """A ConfigError when ``folder`` holds a run: a fresh run does not write over one."""
    if _holds_run(Path(folder)):
        raise ConfigError(
            "run directory already holds a run: resume it (labkit run --resume DIR) or choose another --out",
            path=str(folder),
        )


def refuse_other_folder(folder: str | os.PathLike[str]) -> None:
    """A ConfigError when ``folder`` is no place for a fresh run: a file, or a folder that is
    neither empty nor a run folder (its files are someone's, not a run's). Nothing is written
    before: a new folder is made after this check. A run folder is left to the run lock (a
    running run is named by its pid) and to :func:`refuse_existing_run`, under it."""
    p = Path(folder)
    if not p.exists():
        return
    if not p.is_dir():
        raise ConfigError("is a file, not a folder: a run writes a folder of files; choose another --out",
                          path=str(p))
    names = sorted(os.listdir(p))
    if names and not is_run_folder(p):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(f"the folder holds other files and no labkit run ({shown}): a run writes into a new or "
                          "an empty folder; choose another --out", path=str(p))
