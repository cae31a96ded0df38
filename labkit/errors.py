"""The one exception tree of labkit.

Every error a user can cause derives from :class:`LabkitError` and carries its
context (file, line, field, known names) as attributes, so the CLI can print a
one-line reason and callers can act on the fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class LabkitError(Exception):
    """Root of every error labkit raises on purpose."""


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
