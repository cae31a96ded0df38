"""Columnar scoring: a built-in metric is computed for every case of a run at once.

A built-in per-case metric is declared as :func:`reads_column` of a *column function*
``compute(run) -> Column``: the values of every case of the run (NaN = unmeasured) and
each case's reason. ``score_cases`` takes that column whole; the metric's per-case
function (what ``result.score(name)`` and a user metric read) looks its case up in the
same column, computed once per run (``CaseRun.batch``). So there is one code path for
a notebook's ten cases and a million recorded results: vectorised with numpy where the
definition allows (retrieval, rates from other columns), one tight loop per column
where it stays per case (phrases, citations, the judge: see :func:`per_case`).

No numpy at import (the declarations load without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from labkit.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from labkit.cases import EvalCase
    from labkit.metrics.percase import CaseResult, CaseRun

Score = tuple[float | None, str]


class Column(NamedTuple):
    """One metric over every case of a run: ``values[i]`` (NaN = unmeasured) and ``reasons[i]``
    (``""`` when measured, the reason code when not)."""

    values: NDArray[np.float64]
    reasons: list[str]


ColumnFn = Callable[["CaseRun"], Column]

#: The column function behind each built-in metric function (``reads_column``).
COLUMNS: dict[Callable[..., Any], ColumnFn] = {}


def normalize_score(got: Any, name: str = "") -> Score:
    """A metric function's return (a value, or ``(value, reason)``) as ``(value, reason)``: None or
    NaN (of any number type) is unmeasured (reason kept, default ``unmeasured``), a finite number
    is measured (reason ``""``). Anything else is a ConfigError naming the metric ``name``."""
    val, reason = got if isinstance(got, tuple) and len(got) == 2 else (got, "")
    if not isinstance(reason, str):
        raise ConfigError(f"metric {name!r} gave a reason that is not a string: {reason!r:.60}", field="metric")
    if val is None:
        return None, reason or "unmeasured"
    try:
        v = float(val)
    except (TypeError, ValueError):
        raise ConfigError(f"metric {name!r} gave {type(val).__name__} {val!r:.60}, not a number or None",
                          field="metric") from None
    if math.isnan(v):
        return None, reason or "unmeasured"
    if math.isinf(v):
        raise ConfigError(f"metric {name!r} gave {v}, not a finite number", field="metric")
    return v, ""


def column_of(scores: Iterable[Score], name: str = "") -> Column:
    """A Column from ``(value, reason)`` pairs, each read by :func:`normalize_score`."""
    import numpy as np

    values: list[float] = []
    reasons: list[str] = []
    nan = math.nan
    for got in scores:
        val, reason = normalize_score(got, name)
        values.append(nan if val is None else val)
        reasons.append(reason)
    return Column(np.asarray(values, dtype=np.float64), reasons)


def column_from_array(values: Any, unmeasured: Sequence[str] | None = None) -> Column:
    """A Column from a float array; ``unmeasured[i]`` is the reason where ``values[i]`` is NaN."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    nan = np.isnan(v).tolist()
    reasons = ["" if not m else (unmeasured[i] if unmeasured is not None else "unmeasured") or "unmeasured"
               for i, m in enumerate(nan)] if any(nan) else [""] * len(nan)
    return Column(v, reasons)


def per_case(kernel: Callable[[EvalCase, CaseResult], Score]) -> ColumnFn:
    """The column of a metric that stays per case: ``kernel(case, result)`` for every row, in one loop."""

    def compute(run: CaseRun) -> Column:
        return column_of((kernel(r.case, r) for r in run.rows), getattr(kernel, "__name__", ""))

    compute.__name__ = compute.__qualname__ = f"per_case({getattr(kernel, '__name__', 'kernel')})"
    return compute


def reads_column(compute: ColumnFn, doc: str | None = None) -> Callable[[EvalCase, CaseResult], Score]:
    """The per-case metric function of a column: the case's value and reason in ``compute(run)``."""

    def fn(case: EvalCase, result: CaseResult) -> Score:
        col = result.batch(compute)
        v = float(col.values[result.index])
        return (None, col.reasons[result.index]) if math.isnan(v) else (v, "")

    fn.__doc__ = doc or compute.__doc__
    COLUMNS[fn] = compute
    return fn


def line_status(line: Mapping[str, Any]) -> str:
    """A results line's status (``ok`` when it gives none): ``result.status``."""
    return str(line.get("status") or "ok")


def line_answer(line: Mapping[str, Any], status: str) -> str | None:
    """The answer of a line of that status when the case is ok, else None (an error says
    nothing): ``result.answer``."""
    ans = line.get("answer")
    return ans if isinstance(ans, str) and status == "ok" else None


def line_unlogged(line: Mapping[str, Any], status: str) -> bool:
    """An answered case whose pipeline logs no retrieval (it says nothing about retrieval):
    ``result.unlogged``."""
    return status == "ok" and line.get("retrieval_logged") is False


def case_level(case: EvalCase) -> str:
    """A case's gold granularity (chunk when it has no gold): ``result.level``."""
    return case.gold_level if case.gold else "chunk"


def statuses(run: CaseRun) -> list[str]:
    """Every case's :func:`line_status`, read once per run (use ``run.batch(statuses)``)."""
    return list(map(line_status, run.rows))


def column(run: CaseRun, name: str) -> Column | None:
    """The whole column of the metric ``name`` for ``run`` when it is computed columnar, else None."""
    from labkit.registry import METRICS

    spec = METRICS.get(name)
    compute = COLUMNS.get(spec.fn) if spec is not None and spec.fn is not None else None
    return run.batch(compute) if compute is not None else None


def values(run: CaseRun, name: str) -> list[float | None]:
    """Every case's value of the per-case metric ``name`` (None = unmeasured), from its column when
    it has one, else case by case."""
    col = column(run, name)
    if col is None:
        return [r.score(name) for r in run.rows]
    return [None if math.isnan(v) else v for v in col.values.tolist()]
