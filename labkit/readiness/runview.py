"""A light, read-only view of a run directory (the contract of docs/formats.md).

It reads only what exists, so a run written by hand or by another system
(results.jsonl alone) still gives what evidence it can; what it reads is read strictly
(a bad results or traces line is a DatasetError naming file and line; only a torn last
traces line, a run still appending, is skipped).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError


def _float(v: Any) -> float | None:
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


@dataclass
class RunView:
    """Manifest, results, traces, scores and metrics of one run, read lazily."""

    path: Path
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, run: str | os.PathLike[str] | Any) -> RunView:
        if isinstance(run, RunView):
            return run
        p = Path(getattr(run, "path", run))
        if not p.is_dir():
            raise ConfigError("run directory not found", path=str(p))
        return cls(p)

    @classmethod
    def verified(cls, run: str | os.PathLike[str] | Any) -> RunView:
        """:meth:`of` a run whose scored files are the ones its scoring wrote (labkit.scoring.verify_scored:
        a RunDirError for one whose results, scores or metrics changed since, or that records no
        hashes), so no item reads an edited scores.csv; a run not scored yet is taken as it is."""
        view = cls.of(run)
        if (view.path / "scores.csv").is_file() or (view.path / "metrics.json").is_file():
            from labkit.scoring import verify_scored

            verify_scored(view.path)
        return view

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """manifest.json as :attr:`labkit.runs.RunDir.manifest` reads it (its one reader: a version
        this labkit does not know is a ConfigError naming schema_version)."""
        from labkit.runs import RunDir

        return RunDir(self.path).manifest

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def created_at(self) -> str | None:
        """The manifest's start time in UTC (:func:`labkit.io.utc_time`, as labkit history reads
        it); None when it records none, or no text."""
        from labkit.io import utc_time

        return utc_time(self.manifest.get("created_at"))

    @property
    def pipeline(self) -> Mapping[str, Any]:
        p = self.manifest.get("pipeline")
        return p if isinstance(p, Mapping) else {}

    @property
    def config(self) -> Mapping[str, Any]:
        c = self.pipeline.get("config")
        return c if isinstance(c, Mapping) else {}

    @property
    def config_hash(self) -> str | None:
        h = self.pipeline.get("config_hash")
        return str(h) if h else None

    @property
    def runner(self) -> Mapping[str, Any]:
        r = self.manifest.get("runner")
        return r if isinstance(r, Mapping) else {}

    @property
    def dataset_info(self) -> Mapping[str, Any]:
        d = self.manifest.get("dataset")
        return d if isinstance(d, Mapping) else {}

    @cached_property
    def results(self) -> list[dict[str, Any]]:
        """The validated results lines (labkit.runs.RunDir.results), [] for a run without any."""
        from labkit.runs import RunDir

        rd = RunDir(self.path)
        return rd.results() if rd.results_path.is_file() else []

    @cached_property
    def traces(self) -> list[dict[str, Any]]:
        """The normalized trace records; a torn last line (a run still appending) is skipped."""
        p = self.path / "traces.jsonl"
        if not p.is_file():
            return []
        from labkit.trace.record import load_traces

        return [dict(t) for t in load_traces(p)]

    @cached_property
    def metrics_doc(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        if not p.is_file():
            return {}
        try:
            m = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"malformed metrics.json: {e.msg}", path=str(p), line=e.lineno) from None
        return m if isinstance(m, dict) else {}

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        m = self.metrics_doc.get("metrics")
        return m if isinstance(m, dict) else {}

    def value(self, metric: str) -> float | None:
        e = self.metrics.get(metric)
        return _float(e.get("value")) if isinstance(e, Mapping) else None

    @cached_property
    def scores(self) -> list[dict[str, str]]:
        from labkit.runs import read_scores_rows

        p = self.path / "scores.csv"
        return read_scores_rows(p) if p.is_file() else []

    def score_column(self, metric: str) -> dict[str, float]:
        """case_id -> measured value of a per-case metric (unmeasured cases left out)."""
        out: dict[str, float] = {}
        for row in self.scores:
            v = _float(row.get(metric))
            cid = row.get("case_id")
            if v is not None and cid:
                out[cid] = v
        return out

    def final_outcomes(self) -> list[dict[str, Any]]:
        """One record per case: results.jsonl when present, else the last trace attempt per case."""
        if self.results:
            return self.results
        last: dict[str, dict[str, Any]] = {}
        for t in self.traces:
            cid = str(t.get("case_id") or t.get("trace_id") or len(last))
            prev = last.get(cid)
            if prev is None or int(t.get("attempt") or 1) >= int(prev.get("attempt") or 1):
                last[cid] = t
        return list(last.values())

    def case_success(self) -> dict[str, bool]:
        """case_id -> task success (scores.csv task_success_rate, else status ok)."""
        col = self.score_column("task_success_rate")
        if col:
            return {k: v >= 1.0 for k, v in col.items()}
        return {str(r.get("case_id")): str(r.get("status") or "ok") in ("ok", "pass")
                for r in self.final_outcomes() if r.get("case_id")}


def chronological(runs: Iterable[RunView]) -> list[RunView]:
    """Runs oldest first, as ``labkit history`` orders them (labkit.history.index.RUN_ORDER): by
    the manifest's ``created_at``, ties by run id; runs that record no ``created_at`` come after
    every dated run, by run id; the resolved path last (two runs can share a run id), so the
    order never follows the order the runs are given in."""
    return sorted(runs, key=lambda r: (r.created_at is None, r.created_at or "", r.run_id, str(r.path.resolve())))


def find_runs(runs_dir: str | os.PathLike[str]) -> list[RunView]:
    """Every run directory (one holding a manifest or results) under ``runs_dir``, oldest first."""
    d = Path(runs_dir)
    if not d.is_dir():
        return []
    return chronological(RunView(p) for p in sorted(d.iterdir())
                         if p.is_dir() and ((p / "manifest.json").is_file() or (p / "results.jsonl").is_file()))


def share(records: Iterable[Mapping[str, Any]], pred: Any) -> tuple[int, int]:
    """(matching, total) over records."""
    n = k = 0
    for r in records:
        n += 1
        if pred(r):
            k += 1
    return k, n


def num(v: Any) -> float | None:
    return _float(v)
