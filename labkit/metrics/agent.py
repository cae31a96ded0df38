"""Agent metrics for one case: tool-call accuracy, task success, retries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.metrics.columns import Column, column, column_from_array, reads_column, values
from labkit.metrics.generation import REDACTED, _answers
from labkit.registry import METRICS, metric

if TYPE_CHECKING:
    from labkit.metrics.percase import CaseRun


def _calls(tool_calls: Any) -> list[Mapping[str, Any]]:
    if not isinstance(tool_calls, list):
        return []
    return [c for c in tool_calls if isinstance(c, Mapping)]


def tool_call_accuracy(
    tool_calls: Any, expected: Sequence[Mapping[str, Any]]
) -> tuple[float | None, str]:
    """0 unless the called tool-name sequence equals the expected one; else the
    share of expected calls whose args match exactly (missing args = ``{}``).

    Unmeasured (no_expected_tools) when the case expects no tools.
    """
    if not expected:
        return None, "no_expected_tools"
    calls = _calls(tool_calls)
    if [c.get("name") for c in calls] != [e.get("name") for e in expected]:
        return 0.0, ""
    matched = sum(
        1 for c, e in zip(calls, expected, strict=True) if dict(c.get("args") or {}) == dict(e.get("args") or {})
    )
    return matched / len(expected), ""


def task_success(
    status: str,
    coverage: float | None,
    violation: float | None,
    tool_accuracy: float | None,
    *,
    redacted: bool = False,
    answered: bool = True,
) -> bool | None:
    """Status ok with an answer (``answered``: not blank), every must_include phrase present, no
    must_not_include, tools match when expected (None: a check with nothing to check). None (not
    known) when nothing fails the case but ``redacted``: a phrase check is unmeasured because a
    redaction placeholder may hide its phrase."""
    ok = (
        status == "ok"
        and answered
        and (coverage is None or coverage >= 1.0)
        and (violation is None or violation == 0.0)
        and (tool_accuracy is None or tool_accuracy >= 1.0)
    )
    return None if ok and redacted else ok


def answered(answer: Any) -> bool:
    """Whether a line's answer says anything (a text that is not blank)."""
    return isinstance(answer, str) and bool(answer.strip())  # (as the judges read it: _answers)


def retried(attempts: Any) -> bool:
    """True when the case needed more than one attempt (missing attempts = 1)."""
    try:
        return int(attempts or 1) > 1
    except (TypeError, ValueError):
        return False


# --- the declarations --------------------------------------------------------------------


def _tool_call_accuracy(run: CaseRun) -> Column:
    """Tool sequence match, then the share of exact args matches (no_expected_tools without any)."""
    import numpy as np

    vals: list[float] = []
    reasons: list[str] = []
    for r in run.rows:
        expected = r.case.expected_tools
        if not expected:
            vals.append(np.nan)
            reasons.append("no_expected_tools")
            continue
        val, _ = tool_call_accuracy(r.get("tool_calls"), expected)
        vals.append(float(val))  # type: ignore[arg-type]
        reasons.append("")
    return Column(np.asarray(vals, dtype=np.float64), reasons)


def _task_success_rate(run: CaseRun) -> Column:
    """1 when :func:`task_success` holds for the case (from the other columns), 0 when it does not,
    unmeasured (``redacted``) when it is not known."""
    import numpy as np

    ok = np.asarray([j is not None for j in run.batch(_answers).judged], dtype=bool)  # (status ok, answered)
    unknown = np.zeros(len(run.rows), dtype=bool)
    for name, passes in (("must_include_coverage", lambda v: v >= 1.0),
                         ("must_not_include_violation", lambda v: v == 0.0),
                         ("tool_call_accuracy", lambda v: v >= 1.0)):
        col = column(run, name)
        got = col.values if col is not None else np.asarray(
            [np.nan if v is None else v for v in values(run, name)], dtype=np.float64)
        ok &= np.isnan(got) | passes(got)  # (unmeasured: nothing to check, or not known)
        if col is not None:
            unknown |= np.asarray([why == REDACTED for why in col.reasons], dtype=bool)
    return column_from_array(np.where(ok & unknown, np.nan, ok.astype(np.float64)), [REDACTED] * len(run.rows))


def _retry_rate(run: CaseRun) -> Column:
    """1 when the case needed more than one attempt, else 0."""
    return column_from_array([(1.0 if a > 1 else 0.0) if type(a) is int else (1.0 if retried(a) else 0.0)
                              for a in (r.get("attempts") for r in run.rows)])


metric(name="tool_call_accuracy", stage="agent", builtin=True,
       description="tool sequence match, then mean exact args match")(reads_column(_tool_call_accuracy))
metric(name="task_success_rate", stage="agent", kind="rate", builtin=True,
       description="ok, all must_include, no must_not_include, tools match")(reads_column(_task_success_rate))
metric(name="retry_rate", stage="agent", direction="lower", kind="rate", builtin=True,
       description="share of cases with more than one attempt")(reads_column(_retry_rate))


AGENT_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "agent" and s.builtin)
