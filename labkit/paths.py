"""Where labkit writes, and what a write may not do:

- :func:`output_target` — the file a write to a path makes or replaces (a symlink followed, a
  path that is no regular file refused), for every atomic write of :mod:`labkit.io`
- :func:`refuse_overwriting_inputs` — an output must not be one of the command's inputs: the one
  check of every command that writes a file it may also have been given to read (for a folder
  input, a :class:`FolderInput`: the files read from it)
- :func:`append_line` — one JSON line appended whole, after a torn tail of a killed writer is cut
  (a last line without newline that parses is kept: :func:`truncate_torn_tail` cuts any)

Foundation layer: imports nothing from labkit but the error tree.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from labkit.errors import OutputError

__all__ = ["FolderInput", "append_line", "has_torn_tail", "output_target", "owner_only",
           "refuse_overwriting_inputs", "truncate_torn_tail"]

PathLike = str | os.PathLike[str]


class FolderInput(NamedTuple):
    """A folder a command reads (a corpus, a run directory) and the files it reads from it,
    listed by the module that knows that folder's layout (:func:`labkit.runs.run_files`,
    :func:`labkit.corpus.corpus_files`)."""

    folder: PathLike
    files: tuple[Path, ...]


Input = PathLike | FolderInput


def refuse_overwriting_inputs(out: PathLike, inputs: Mapping[str, Input | Iterable[Input] | None], *,
                              flag: str, verb: str = "overwrite") -> None:
    """Raise :class:`OutputError` naming ``flag`` and the input when the file ``out`` would
    replace one of ``inputs`` (``verb``: what the write would do to it, ``"write into"`` for an
    append; by the flag or argument that gave each input; None: not given): the
    same file (a symlink or a hard link followed) as an input file, or as one of the files a
    command reads from a folder input (a :class:`FolderInput`). Other files of that folder (an
    output an earlier call wrote there) are no input. A file that is not there yet overwrites
    nothing. Called before anything is read or written."""
    if not os.path.exists(out):
        return
    for name, given in inputs.items():
        many = [given] if given is None or isinstance(given, str | os.PathLike | FolderInput) else list(given)
        for src in many:
            if isinstance(src, FolderInput):
                if any(_same_file(out, f) for f in src.files):
                    raise OutputError(f"{flag} {out} would {verb} a file of the input {name} {src.folder}: "
                                      "write it to another path", path=str(out), flag=flag)
            elif src is not None and _same_file(out, src):
                raise OutputError(f"{flag} {out} would {verb} the input {name} {src}: write it to another path",
                                  path=str(out), flag=flag)


def refuse_shared_outputs(outputs: Mapping[str, PathLike | None]) -> None:
    """Raise :class:`OutputError` when two of ``outputs`` (by the flag that gave each; None: not
    given) are one file (the same path, or a link to it): the second write would replace the first."""
    seen: list[tuple[str, PathLike]] = []
    for flag, out in outputs.items():
        if out is None:
            continue
        for first, earlier in seen:
            if same_output(out, earlier):
                raise OutputError(f"{flag} {out} is the {first} file too: write each to its own path",
                                  path=str(out), flag=flag)
        seen.append((flag, out))


def same_output(a: PathLike, b: PathLike) -> bool:
    """Whether writing ``a`` writes ``b``: the same path once links are followed (neither need
    be there yet), or one file under two names (a hard link)."""
    return os.path.realpath(a) == os.path.realpath(b) or _same_file(a, b)


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # (one of them is not there: nothing replaced)
        return False


def output_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` makes or replaces: ``path`` itself, or for a symlink the file
    it points to (followed to its end: the link is kept, its target written). Raises
    :class:`OutputError` naming ``path`` when that exists and is not a regular file (a FIFO, a
    device, a socket or a folder, which a rename would replace by a regular file)."""
    p = Path(path)
    real = Path(os.path.realpath(p)) if p.is_symlink() else p
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):  # (made anew; a file where a folder must go fails below)
        return real
    if not stat.S_ISREG(mode):
        raise OutputError(f"{p}: not a regular file ({_file_kind(mode)}): give the path of a file to write",
                          path=str(p))
    return real


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


def has_torn_tail(path: str | os.PathLike[str]) -> bool:
    """Whether a file's last line lacks its newline (a line still being written)."""
    with open(path, "rb") as f:
        return _tail_start(f) is not None


def _tail_start(f: Any) -> int | None:
    """Where the last line of the open file ``f`` (binary) starts when it lacks its newline;
    None when the file is empty or ends with one."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size == 0:
        return None
    f.seek(-1, os.SEEK_END)
    if f.read(1) == b"\n":
        return None
    pos = size  # find the last newline
    chunk = 65536
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        buf = f.read(pos - start)
        i = buf.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def truncate_torn_tail(path: str | os.PathLike[str]) -> None:
    """Cut a last line without newline (a write interrupted by a kill)."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        start = _tail_start(f)
        if start is not None:
            f.truncate(start)


def owner_only(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener`` for :func:`open` that makes a new file owner-only (0600) whatever the umask,
    as every file labkit writes (an atomic write's temporary file is, by ``tempfile.mkstemp``)."""
    return os.open(path, flags, 0o600)


def append_line(path: str | os.PathLike[str], obj: Any) -> None:
    """Append one JSON line whole (the one appender of reviews, proposals, feedback): a last
    line without newline that parses as JSON (a file written by hand) is kept and gets its
    newline; one that does not (a torn tail left by a killed writer) is cut first. The line is
    encoded before the file is touched (a value that is no UTF-8 text writes nothing), written
    in one call, flushed and fsynced."""
    data = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "ab+", opener=owner_only) as f:
        start = _tail_start(f)
        if start is not None:
            f.seek(start)
            try:
                json.loads(f.read())
                data = b"\n" + data
            except (ValueError, RecursionError):  # a fragment (or no UTF-8): torn
                f.truncate(start)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
