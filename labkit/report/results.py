"""What a report build returns: one entry per notebook, its failure if any, and the index."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labkit.display import Verdict
from labkit.errors import ReportFailed


@dataclass(frozen=True)
class NotebookFailure:
    """Where and why a notebook failed."""

    notebook: str
    error: str
    message: str
    cell_index: int | None = None
    execution_count: int | None = None
    cell_source: str = ""

    def __str__(self) -> str:
        where = ""
        if self.cell_index is not None:
            where = f" in cell {self.cell_index}"
            if self.execution_count is not None:
                where += f" [{self.execution_count}]"
            head = self.cell_source.strip().splitlines()[0] if self.cell_source.strip() else ""
            if head:
                where += f" ({head[:80]})"
        return f"{self.notebook}{where}: {self.error}: {self.message}"


@dataclass
class ReportEntry:
    """One notebook's outcome."""

    name: str
    notebook: Path
    status: str  # ok | failed
    seconds: float
    attempts: int
    title: str = ""
    executed: Path | None = None
    html: Path | None = None
    verdict: Verdict | None = None
    failure: NotebookFailure | None = None


@dataclass
class ReportIndex:
    """What ``build_reports`` produced."""

    out_dir: Path
    index_html: Path
    entries: list[ReportEntry] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(e.status == "ok" for e in self.entries)

    @property
    def failures(self) -> list[NotebookFailure]:
        return [e.failure for e in self.entries if e.failure is not None]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ReportFailed(self.failures)

    def summary(self) -> str:
        lines = []
        for e in self.entries:
            v = f"{e.verdict.status.upper()}: {e.verdict.title}" if e.verdict else "-"
            state = "ok" if e.status == "ok" else "FAILED"
            lines.append(f"  {e.name:<32} {state:<7} {e.seconds:6.1f}s  {v}")
        lines.append(f"{len(self.entries)} notebook(s), {len(self.failures)} failed, wall time {self.wall_s:.1f} s")
        lines.append(f"index: {self.index_html}")
        return "\n".join(lines)

