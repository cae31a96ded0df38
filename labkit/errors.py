"""The one exception tree of labkit.

Every error a user can cause derives from :class:`LabkitError` and carries its
context (file, line, field, known names) as attributes, so the CLI can print a
one-line reason and callers can act on the fields. Every exception class labkit
raises on purpose is declared here; the modules that raise them import them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class LabkitError(Exception):
    """Root of every error labkit raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its message and fields, without calling ``__init__`` again (whose arguments
        differ from class to class): an error raised in a worker process reaches the parent whole."""
        return _rebuilt, (type(self), self.args, dict(vars(self)))


def _rebuilt(cls: type[LabkitError], args: tuple[Any, ...], fields: dict[str, Any]) -> LabkitError:
    err = cls.__new__(cls)
    err.args = args
    vars(err).update(fields)
    return err


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line of an input file."""

    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        fld = f" field {self.field!r}" if self.field else ""
        return f"{where}{fld}: {self.reason}"


class ConfigError(LabkitError):
    """A config file (gate, pipeline, runner, alert, SLO ...) is malformed."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        known: Sequence[str] | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        self.known = list(known) if known is not None else None
        parts = []
        if path:
            parts.append(str(path) + (f":{line}" if line is not None else ""))
        if field:
            parts.append(f"field {field!r}")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if self.known is not None:
            text += f" (known: {', '.join(self.known)})"
        super().__init__(text)


class DatasetError(LabkitError):
    """An eval dataset (or a results file) failed validation; lists every bad line."""

    def __init__(self, path: str | None, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        head = f"{path}: " if path else ""
        n = len(self.problems)
        if n == 1 and self.problems[0].line is None:  # a file-level problem: not found, a folder ...
            p = self.problems[0]
            super().__init__(f"{head}{p.field + ': ' if p.field else ''}{p.reason}")
            return
        lines = "; ".join(str(p) for p in self.problems[:50])
        more = f"; ... and {n - 50} more" if n > 50 else ""
        super().__init__(f"{head}{self.summary}: {lines}{more}")

    @property
    def summary(self) -> str:
        """``N invalid line(s)`` counting lines, with the count of problems when it differs."""
        n_lines = len({p.line for p in self.problems})
        n = len(self.problems)
        s = f"{n_lines} invalid line{'s' if n_lines != 1 else ''}"
        return s if n == n_lines else f"{s} ({n} problems)"


class PipelineError(LabkitError):
    """A pipeline could not be built or loaded (not: a pipeline failing on a case)."""


class GateFailed(LabkitError):
    """Raised by ``Gate.enforce`` when at least one check fails."""

    def __init__(self, report: Any) -> None:
        self.report = report
        failed = [c for c in getattr(report, "checks", []) if not getattr(c, "passed", True)]
        names = ", ".join(getattr(c, "name", "?") for c in failed)
        super().__init__(f"gate failed: {len(failed)} check(s) failed: {names}")


class MissingDependencyError(LabkitError):
    """An optional dependency is needed for the feature asked for."""

    def __init__(self, package: str, extra: str | None = None, feature: str = "") -> None:
        self.package = package
        self.extra = extra
        hint = f"pip install 'labkit[{extra}]'" if extra else f"pip install {package}"
        what = f" for {feature}" if feature else ""
        super().__init__(f"{package} is required{what}: {hint}")


class RunDirError(LabkitError):
    """A run directory is missing, or lacks a file the step needs (scores.csv, manifest.json)."""


class OutputError(LabkitError):
    """An output path labkit will not write: not a regular file (a FIFO, a device, a socket, a
    folder), or one of the command's own inputs."""

    def __init__(self, message: str, *, path: str, flag: str | None = None) -> None:
        self.path = path
        self.flag = flag
        super().__init__(message)


class CompareError(LabkitError):
    """Two runs cannot be compared (different datasets, no shared case ids)."""


class RunLocked(LabkitError):
    """Another process holds the run directory's lock."""

    def __init__(self, run_dir: str | os.PathLike[str], pid: int | None) -> None:
        self.run_dir = str(run_dir)
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{self.run_dir}: run directory is in use by another labkit process ({who}); "
                         "wait for it to end, then resume or score it")


class ResultError(LabkitError):
    """A pipeline returned something that is not a valid result (never retried)."""


class JudgeReplyError(LabkitError):
    """The judge endpoint's reply held no usable JSON object."""


class JudgeRefused(LabkitError):
    """The judge endpoint refused the request (a 4xx that retrying will not fix), or failed every
    one of the first verdicts asked of it (``labkit.judges.FIRST_VERDICTS``): the whole scoring
    stops rather than scoring every case as unjudged."""


class QueryError(LabkitError):
    """A trace query failed (bad SQL, unknown column, a file outside the runs given)."""

    def __init__(self, message: str, sql: str) -> None:
        self.sql = sql
        super().__init__(f"trace query failed: {message}")


class ExportFailed(LabkitError):
    """Some spans did not reach the exporter's endpoint (refused, an error status, no answer)."""

    def __init__(self, target: str, *, delivered: int, total: int, reason: str) -> None:
        self.target, self.delivered, self.total, self.failed = target, delivered, total, total - delivered
        self.reason = reason
        super().__init__(f"{self.failed} of {total} spans not delivered to {target}: {reason}")


class ReportFailed(LabkitError):
    """One or more notebooks failed; ``failures`` names each notebook, cell and error."""

    def __init__(self, failures: Sequence[Any]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(str(f) for f in self.failures))


# --- a model endpoint (labkit.openai_compat raises these) -------------------------------


class EndpointError(LabkitError):
    """A call to a model endpoint failed. ``status`` is the HTTP status when there was one."""

    retryable = False
    timed_out = False

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        self.status = status
        self.url = url
        super().__init__(message)


class RetryableError(EndpointError):
    """A transient fault: the same request may succeed later (after ``retry_after`` s when set)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.retry_after = retry_after


class EndpointTimeout(RetryableError):
    """No (complete) reply within the client's timeout."""

    timed_out = True


class EndpointConnectionError(RetryableError):
    """The connection could not be made, or was reset or dropped before a reply."""


class RateLimited(RetryableError):
    """HTTP 429. ``retry_after`` holds the server's Retry-After in seconds when it sent one."""


class ServerError(RetryableError):
    """HTTP 5xx."""


class ClientHTTPError(EndpointError):
    """A non-2xx status that retrying will not fix (400, 401, 403, 404, 422 ...)."""


class MalformedResponse(EndpointError):
    """A 2xx reply whose body is not a chat completion (bad JSON, no choices, no content)."""


#: Top-level modules that only an extra installs: module -> (distribution, extra).
#: The core install (``pip install labkit``) runs every command but the notebook ones.
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "jupyterlab": ("jupyterlab", "lab"),
    "ipykernel": ("ipykernel", "lab"),
    "IPython": ("ipykernel", "lab"),
    "ipywidgets": ("ipywidgets", "lab"),
    "papermill": ("papermill", "lab"),
    "nbclient": ("papermill", "lab"),
    "jupyter_client": ("ipykernel", "lab"),
    "traitlets": ("ipykernel", "lab"),
    "nbconvert": ("nbconvert", "lab"),
    "nbformat": ("nbformat", "lab"),
    "mistune": ("mistune", "lab"),
    "matplotlib": ("matplotlib", "lab"),
    "opentelemetry": ("opentelemetry-sdk", "otel"),
    "dask": ("dask[distributed]", "dask"),
    "distributed": ("dask[distributed]", "dask"),
    "mlflow": ("mlflow", "mlflow"),
}


def missing_dependency(err: ImportError, feature: str = "") -> MissingDependencyError | None:
    """The :class:`MissingDependencyError` for a failed import of an extra's module, else None."""
    found = OPTIONAL_MODULES.get((err.name or "").partition(".")[0])
    return MissingDependencyError(found[0], found[1], feature) if found else None


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingDependencyError` unless every module of ``extra`` can be
    imported (looked up only: nothing is imported)."""
    import importlib.util

    for module, (package, of) in OPTIONAL_MODULES.items():
        if of == extra and importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, extra, feature)
