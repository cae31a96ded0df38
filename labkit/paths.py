"""An output must not be one of the command's inputs: the one check of every command that
writes a file it may also have been given to read.

Foundation layer: imports nothing from labkit but the error tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from labkit.errors import OutputError

__all__ = ["refuse_overwriting_inputs"]

PathLike = str | os.PathLike[str]


def refuse_overwriting_inputs(out: PathLike, inputs: Mapping[str, PathLike | Iterable[PathLike] | None], *,
                              flag: str) -> None:
    """Raise :class:`OutputError` naming ``flag`` and the input when the file ``out`` would
    replace one of ``inputs`` (by the flag or argument that gave each; None: not given): the
    same file (a symlink or a hard link followed), or for an input that is a folder (a corpus,
    a run directory) a file it holds. A file that is not there yet overwrites nothing. Called
    before anything is read or written."""
    if not os.path.lexists(out):
        return
    target = Path(os.path.realpath(out))
    for name, given in inputs.items():
        many = [given] if given is None or isinstance(given, str | os.PathLike) else list(given)
        for src in many:
            if src is None or not os.path.exists(src):
                continue
            if os.path.samefile(target, src) if target.exists() else target == Path(os.path.realpath(src)):
                raise OutputError(f"{flag} {out} would overwrite the input {name} {src}: write it to another path",
                                  path=str(out), flag=flag)
            if os.path.isdir(src) and target.is_relative_to(os.path.realpath(src)):
                raise OutputError(f"{flag} {out} would overwrite a file of the input {name} {src}: write it "
                                  "outside that folder", path=str(out), flag=flag)
