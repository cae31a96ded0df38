"""What the metrics reading the answer measured before redaction, recorded so a rescore gives it.

A run scores the answers its pipeline returned, against the cases as given; results.jsonl holds
the lines redacted, and a run whose dataset is in memory keeps its cases redacted beside it
(cases.jsonl). Read back, a placeholder can hide what a phrase check or a comparison with the
reference answer looks for: rescored from the files, such a case would be unmeasured (or, a
placeholder phrase meeting a placeholder in the answer, found where it was not), and a gate's
unmeasured budget could let a caught leak through. So where redaction changed a line's answer or
its case, the runner records in the line (``scored_unredacted``, labkit.resultline) the value and
reason each of :data:`~labkit.resultline.RESTORABLE` had before it (:func:`measured_before`), and
each of those metrics' columns reads the recorded value for such a line (:func:`restorable`), when
the cases scored are the run's own (``CaseRun.restores``): against another dataset, the record says
nothing, and the line is scored as it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.metrics.columns import Column, ColumnFn
from labkit.resultline import RESTORABLE, SCORED_UNREDACTED

if TYPE_CHECKING:
    from labkit.cases import Dataset, EvalCase
    from labkit.metrics.percase import CaseRun
    from labkit.runs import RunDir

__all__ = ["measured_before", "own_cases", "restorable"]


def restorable(name: str, compute: ColumnFn) -> ColumnFn:
    """``compute`` (the column of the metric ``name``), each line that records its value before
    redaction taking that value and reason, when the run's cases are its own."""

    def restored(run: CaseRun) -> Column:
        col = compute(run)
        recs = [(i, rec[name]) for i, rec in run.batch(_records) if name in rec]
        if not recs or not run.restores():
            return col
        values, reasons = col.values.copy(), list(col.reasons)
        for i, (value, reason) in recs:
            values[i], reasons[i] = (math.nan, reason) if value is None else (float(value), "")
        return Column(values, reasons)

    restored.__name__ = restored.__qualname__ = f"restorable({name})"
    restored.__doc__ = compute.__doc__
    return restored


def _records(run: CaseRun) -> list[tuple[int, Mapping[str, Any]]]:
    """(row, record) of each line of the run that holds one (the lines are read once a run)."""
    return [(i, r[SCORED_UNREDACTED]) for i, r in enumerate(run.rows) if SCORED_UNREDACTED in r]


def measured_before(case: EvalCase, line: Mapping[str, Any], *, redaction: Any) -> dict[str, list[Any]]:
    """The ``scored_unredacted`` record of ``line`` as the pipeline returned it: the value (None:
    unmeasured) and reason of each metric of :data:`RESTORABLE` (``redaction``: the run's settings,
    whose placeholders the answer is read with, as scoring reads it)."""
    from labkit.metrics import columns
    from labkit.metrics.percase import CaseRun

    run = CaseRun([case], [line], k=1, corpus=None, judge=None, redaction=redaction, restores=False)
    try:
        out: dict[str, list[Any]] = {}
        for name in RESTORABLE:
            col = columns.column(run, name)
            assert col is not None  # (each is a built-in column)
            v = float(col.values[0])
            out[name] = [None, col.reasons[0]] if math.isnan(v) else [v, ""]
        return out
    finally:
        run.release()


def own_cases(rd: RunDir, ds: Dataset) -> Callable[[], bool]:
    """Whether ``ds`` holds the cases ``rd`` was run with (its snapshot, or a dataset of the
    fingerprint its manifest records): where the lines' records of what they measured before
    redaction hold (labkit.metrics.restore). Asked only when a line holds one."""

    def own() -> bool:
        rec = rd.manifest.get("dataset")
        if not isinstance(rec, Mapping):
            return False
        snap = rec.get("snapshot")
        if isinstance(snap, str) and ds.path is not None and Path(ds.path).resolve() == (rd.path / snap).resolve():
            return True
        return bool(rec.get("fingerprint")) and rec.get("fingerprint") == ds.fingerprint

    return own
