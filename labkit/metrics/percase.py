"""Per-case scoring: cases + results lines -> one row per case.

:func:`score_cases` iterates over the registry (labkit.registry.METRICS): each
per-case metric's value (NaN = unmeasured) and ``<metric>_reason`` (a reason
code, ``""`` when measured), then the raw ops columns. A metric function gets
``(case, result)``; ``result`` is a :class:`CaseResult`, the results line as a
dict with the scoring context as attributes (status, answer, judge, corpus, k,
the run-wide batches, the other metrics of the case).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit import patterns
from labkit.cases import EvalCase
from labkit.errors import ConfigError, DatasetError, Problem
from labkit.metrics import columns, ops
from labkit.metrics.columns import normalize_score
from labkit.registry import METRICS, check_k, per_case_metrics

if TYPE_CHECKING:
    import pandas as pd

Score = tuple[float | None, str]


def _pair(cases: Sequence[EvalCase], results: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    by_id: dict[str, Mapping[str, Any]] = {}
    for r in results:
        cid = r.get("case_id")
        if isinstance(cid, str):
            by_id[cid] = r  # the last line for a case wins (resumed runs)
    missing = [c.id for c in cases if c.id not in by_id]
    if missing:
        raise DatasetError(
            None, [Problem(None, "case_id", f"no result line for case {cid!r}") for cid in missing]
        )
    return [by_id[c.id] for c in cases]


class CaseRun:
    """What the cases of one score_cases call share: k, corpus, judge, the placeholders their
    redaction writes, and run-wide batches."""

    def __init__(self, cases: Sequence[EvalCase], results: Sequence[Mapping[str, Any]], *,
                 k: int, corpus: Any, judge: Any, redaction: Any = None,
                 restores: bool | Callable[[], bool] = True) -> None:
        self.cases = list(cases)
        self._restores = restores
        self.k = k
        self.corpus = corpus
        self.judge = judge
        self.placeholders = redaction_placeholders(redaction)
        self._memo: dict[Callable[[CaseRun], Any], Any] = {}
        self.rows = [CaseResult(r, run=self, index=i) for i, r in enumerate(results)]

    def release(self) -> None:
        """Let go of the rows and the batches: each row refers back to its run (a cycle), so
        without this a run's lines stay in memory until a cycle collection, which scoring pauses."""
        self.rows = []
        self._memo.clear()

    def restores(self) -> bool:
        """Whether a line's record of what it measured before redaction is read (labkit.metrics.restore):
        the cases are the run's own (a callable ``restores`` asked once, when a line holds a record)."""
        if callable(self._restores):
            self._restores = bool(self._restores())
        return self._restores

    def batch(self, compute: Callable[[CaseRun], Any]) -> Any:
        """``compute(run)`` over every case at once (e.g. a vectorized matrix), computed once."""
        if compute not in self._memo:
            self._memo[compute] = compute(self)
        return self._memo[compute]


class CaseResult(dict[str, Any]):
    """One case's results line (what a metric function reads as ``result``) and its scoring context."""

    def __init__(self, line: Mapping[str, Any], *, run: CaseRun, index: int) -> None:
        super().__init__(line)
        self.run = run
        self.index = index
        self.case = run.cases[index]
        self._scores: dict[str, Score | None] = {}

    @property
    def status(self) -> str:
        return columns.line_status(self)

    @property
    def answer(self) -> str | None:
        """The answer when the case is ok, else None (an error says nothing)."""
        return columns.line_answer(self, self.status)

    @property
    def retrieved_list(self) -> list[Any]:
        got = self.get("retrieved")
        return list(got) if isinstance(got, list) else []

    @property
    def level(self) -> str:
        """The case's gold granularity (chunk when it has no gold)."""
        return columns.case_level(self.case)

    @property
    def unlogged(self) -> bool:
        """An answered case whose pipeline logs no retrieval says nothing about retrieval."""
        return columns.line_unlogged(self, self.status)

    @property
    def judge(self) -> Any:
        return self.run.judge

    @property
    def corpus(self) -> Any:
        return self.run.corpus

    @property
    def k(self) -> int:
        return self.run.k

    def batch(self, compute: Callable[[CaseRun], Any]) -> Any:
        return self.run.batch(compute)

    def scored(self, name: str) -> Score:
        """(value, reason) of the per-case metric ``name`` for this case, computed once."""
        if name in self._scores:
            got = self._scores[name]
            if got is None:
                raise ConfigError(f"metric {name!r} depends on itself", field="metric")
            return got
        spec = METRICS.get(name)
        if spec is None or spec.fn is None:
            raise ConfigError(f"{name!r} is not a per-case metric", field="metric", known=per_case_metrics())
        self._scores[name] = None  # in progress
        got = normalize_score(spec.fn(self.case, self), name)
        self._scores[name] = got
        return got

    def score(self, name: str) -> float | None:
        """The value of the per-case metric ``name`` for this case (None = unmeasured)."""
        return self.scored(name)[0]


def redaction_placeholders(redaction: Any) -> re.Pattern[str]:
    """The placeholders that may stand for hidden text in results redacted with ``redaction`` (a
    run's ``runner.redaction`` settings, or a Redactor; None: the default redactor's)."""
    if redaction is None:
        return patterns.placeholder_pattern()
    from labkit.trace.redact import Redactor

    placeholders: re.Pattern[str] = Redactor.from_config(redaction).placeholders()
    return placeholders


def score_cases(
    cases: Sequence[EvalCase],
    results: Sequence[Mapping[str, Any]],
    *,
    k: int = 5,
    corpus: Any = None,
    judge: Any = None,
    redaction: Any = None,
    restores: bool | Callable[[], bool] = True,
) -> pd.DataFrame:
    """One row per case (in ``cases`` order) with every per-case metric and its reason.

    ``results`` are results lines (paired by case_id; the last line of a case
    wins; a case without a line raises DatasetError naming it). ``corpus``
    (a labkit Corpus) supplies chunk text for retrieved items without
    ``text``. ``judge`` is a judge, a judge name or config (default lexical).
    ``redaction`` is what the results were redacted with (a run's ``runner.redaction``
    settings or a Redactor; default: the default redactor): a phrase its placeholders may
    hide is unmeasured (``redacted``), bracketed text it never writes is the answer's own.
    ``restores``: a line's record of what it measured before redaction is read (the cases are
    the ones the run was made with: labkit.metrics.restore); a callable is asked when one is.
    """
    import pandas as pd

    return pd.DataFrame(score_columns(cases, results, k=k, corpus=corpus, judge=judge, redaction=redaction,
                                      restores=restores))


def score_columns(
    cases: Sequence[EvalCase],
    results: Sequence[Mapping[str, Any]],
    *,
    k: int = 5,
    corpus: Any = None,
    judge: Any = None,
    redaction: Any = None,
    restores: bool | Callable[[], bool] = True,
) -> dict[str, Any]:
    """The columns of :func:`score_cases`' frame, in its order: each a float array or a list."""
    from labkit.judges import get_judge

    check_k(k)
    run = CaseRun(cases, _pair(cases, results), k=k, corpus=corpus, judge=get_judge(judge), redaction=redaction,
                  restores=restores)
    try:
        return _columns(run, cases)
    finally:
        run.release()


def _columns(run: CaseRun, cases: Sequence[EvalCase]) -> dict[str, Any]:
    cols: dict[str, Any] = {"case_id": [c.id for c in cases]}
    for name in per_case_metrics():
        if not METRICS[name].measured_by(run.judge):
            continue  # a metric only another judge measures: no column (labkit.embedjudge)
        col = columns.column(run, name)
        if col is not None:  # a built-in: its column whole (labkit.metrics.columns)
            cols[name], cols[name + "_reason"] = col.values, col.reasons
            continue
        scored = [res.scored(name) for res in run.rows]  # a user metric: case by case
        cols[name] = [math.nan if val is None else val for val, _ in scored]
        cols[name + "_reason"] = [reason for _, reason in scored]
    return {**cols, **ops.raw_table(run)}
