"""Agent metrics for one case: tool-call accuracy, task success, retries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

AGENT_METRICS = ("tool_call_accuracy", "task_success_rate", "retry_rate")


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
