"""Agent metrics for one case: tool-call accuracy, task success, retries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.registry import METRICS, metric

if TYPE_CHECKING:
    from labkit.cases import EvalCase
    from labkit.metrics.percase import CaseResult


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
) -> bool:
    """Status ok, every must_include phrase present, no must_not_include, tools match when expected."""
    return (
        status == "ok"
        and (coverage is None or coverage >= 1.0)
        and (violation is None or violation == 0.0)
        and (tool_accuracy is None or tool_accuracy >= 1.0)
    )


def retried(attempts: Any) -> bool:
    """True when the case needed more than one attempt (missing attempts = 1)."""
    try:
        return int(attempts or 1) > 1
    except (TypeError, ValueError):
        return False


# --- the declarations --------------------------------------------------------------------


@metric(name="tool_call_accuracy", stage="agent", builtin=True,
        description="tool sequence match, then mean exact args match")
def _tool_call_accuracy(case: EvalCase, result: CaseResult) -> tuple[float | None, str]:
    return tool_call_accuracy(result.get("tool_calls"), case.expected_tools)


@metric(name="task_success_rate", stage="agent", kind="rate", builtin=True,
        description="ok, all must_include, no must_not_include, tools match")
def _task_success_rate(case: EvalCase, result: CaseResult) -> float:
    ok = task_success(result.status, result.score("must_include_coverage"),
                      result.score("must_not_include_violation"), result.score("tool_call_accuracy"))
    return 1.0 if ok else 0.0


@metric(name="retry_rate", stage="agent", direction="lower", kind="rate", builtin=True,
        description="share of cases with more than one attempt")
def _retry_rate(case: EvalCase, result: CaseResult) -> float:
    return 1.0 if retried(result.get("attempts")) else 0.0


AGENT_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "agent" and s.builtin)
