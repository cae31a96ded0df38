"""The run lock: one writer per run directory at a time.

Every process that writes into a run directory — a fresh run, a resume,
``labkit score`` — first takes an exclusive, non-blocking lock on the file
``<run_dir>/.lock`` (``flock`` on POSIX, ``msvcrt.locking`` on Windows) and
writes its pid into it. A second writer does not wait: it gets
:class:`RunLocked`, naming the holder's pid. The operating system drops the
lock when the holder's file is closed, also when the process is killed
(SIGKILL included), so a crashed run never leaves a stale lock: the file may
stay behind, the lock does not. See docs/runner.md "The run lock".
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import TracebackType

from labkit.errors import RunLocked

__all__ = ["LOCK_NAME", "RunLock", "RunLocked"]

LOCK_NAME = ".lock"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when someone holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """Exclusive lock of one run directory, held from :meth:`acquire` to :meth:`release`
    (or as a context manager). Not re-entrant: a second lock of the same directory,
    even in the same process, is refused."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd):
            os.close(fd)
            raise RunLocked(self.run_dir, _holder_pid(self.path))
        self._fd = fd
        with contextlib.suppress(OSError):  # the pid is for the message; the lock is what counts
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no pid of a process that no longer holds it
        os.close(fd)  # closing drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
