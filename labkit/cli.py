"""The ``labkit`` command: a thin layer over the functions the notebooks call.

Each command group lives in ``labkit/commands/<group>.py`` and exposes
``register(subparsers)``; handlers return the exit code. Exit codes: 0 success
or gate pass, 1 gate fail (or a run in which every case failed), 2 usage,
config or input error (one-line reason on stderr, never a traceback for a user
error).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit import __version__
from labkit.errors import DatasetError, GateFailed, LabkitError, missing_dependency

COMMAND_MODULES = (
    "dataset", "run", "gate", "compare", "traces", "readiness", "report", "history", "experiment",
    "review", "interop", "mlflow",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="Evals, traces, gates and readiness reports for LLM/RAG pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"labkit.commands.{name}").register(sub)
    return parser


def _print_error(err: LabkitError) -> None:
    """The error on stderr, its secrets and personal data redacted: it quotes the value it names,
    and a CI log is a file too (an address is kept: an endpoint's is what the user must see)."""
    from labkit import patterns
    from labkit.trace.redact import Redactor

    red = Redactor(types=tuple(t for t in (*patterns.SECRET_TYPES, *patterns.PII_TYPES) if t != "IP"))
    lines = [f"labkit: error: {err}"]
    if isinstance(err, DatasetError) and len(err.problems) > 1:
        head = f"{err.path}: " if err.path else ""
        lines = [f"labkit: error: {head}{err.summary}", *(f"  {p}" for p in err.problems)]
    for line in lines:
        print(red.redact_text(line)[0], file=sys.stderr)


class _ClosedPipeGuard:
    """stdout, where a write to a reader that is gone (``labkit gate ... | head``) is dropped: the
    command goes on to its end and its exit code (a FAIL stays 1), with nothing more printed."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return int(self.stream.write(text))
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        # what is left in the stream's buffer goes nowhere when it is flushed at exit (a stream of
        # no file, a test's capture, has no descriptor to point elsewhere)
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """The labkit command on ``argv``: its exit code (see the module's docstring)."""
    guard = sys.stdout = _ClosedPipeGuard(sys.stdout)
    try:
        code = _main(argv)
        guard.flush()
        return code
    finally:
        sys.stdout = guard.stream


def _resume_hint(args: argparse.Namespace) -> str:
    """How to finish a run that Ctrl-C stopped (its cases done so far are kept)."""
    run = (getattr(args, "resume", None) or getattr(args, "out", None)) if args.command == "run" else None
    if run and (Path(run) / "manifest.json").is_file():
        return f": the cases done are kept; finish the run with labkit run --resume {run}"
    return ""


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help exits 0, usage errors exit 2
        return int(e.code or 0)
    try:
        code: int = args.handler(args)
    except GateFailed as e:
        print(f"labkit: {e}", file=sys.stderr)
        return 1
    except LabkitError as e:
        _print_error(e)
        return 2
    except ImportError as e:  # a module of an extra that is not installed
        dep = missing_dependency(e, feature=f"labkit {args.command}")
        if dep is None:
            raise
        _print_error(dep)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130
    except OSError as e:  # a path that is a folder, a file where a folder must go, no permission ...
        where = f"{e.filename}: " if e.filename else ""
        print(f"labkit: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    return code


def command() -> int:
    """The labkit command as a process (the console script, ``python -m labkit``): :func:`main`'s
    exit code, with the objects left frozen out of the cycle collector's reach (``gc.freeze``):
    the collections of an ending interpreter would walk every object of the imported libraries
    again, about 0.2 s of each command, to free what the process exit frees anyway (every file
    labkit writes is closed before main returns: each is written whole or not at all, labkit.io)."""
    import gc

    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(command())
