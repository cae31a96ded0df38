"""``assert_gate`` and ``assert_case``: labkit's verdicts as assertions.

The case checks call the metric functions labkit scores with
(``labkit.metrics.generation`` and ``labkit.metrics.agent``), so a case test and
``scores.csv`` can never disagree on what a phrase match or a tool match is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit.cases import EvalCase, as_cases
from labkit.metrics.agent import tool_call_accuracy
from labkit.metrics.generation import (
    REDACTED,
    hidden_by_redaction,
    must_include_coverage,
    must_not_include_violation,
    phrases_found,
)

if TYPE_CHECKING:
    from labkit.gate import Gate, GateReport
    from labkit.gate.report import CheckResult


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _check_line(c: CheckResult) -> str:
    """metric, observed, op, threshold, reason — one failed check on one line."""
    metric = c.metric or c.kind
    where = f" [{c.slice}]" if c.slice else ""
    op = c.op or ("max_drop" if c.kind == "regression" else "")
    thr = "" if c.threshold is None else f" {c.threshold:g}"
    rule = f"{op}{thr}".strip() or "—"
    return f"{metric}{where}: observed {_fmt(c.observed)}, required {rule} — {c.reason}"


def gate_failure_lines(report: GateReport) -> list[str]:
    """The lines of the AssertionError :func:`assert_gate` raises for ``report``."""
    head = (f"gate {report.gate}: FAIL ({len(report.failed)} of {len(report.checks)} checks failed"
            + (f"; run {report.run_id}" if report.run_id else "") + ")")
    return [head] + [f"  {_check_line(c)}" for c in report.failed]


def assert_gate(
    run_or_metrics: Any,
    gate: Gate | str | os.PathLike[str],
    *,
    baseline: str | os.PathLike[str] | None = None,
    **options: Any,
) -> GateReport:
    """Evaluate ``gate`` (a Gate or a gate YAML path) on a run directory path, a RunDir or a
    metrics mapping; raise AssertionError listing each failed check, else return the report.

    ``baseline`` (a run directory) and the other options (``reviews``, ``dataset``,
    ``seed``) go to :meth:`labkit.gate.Gate.evaluate` as they are.
    """
    __tracebackhide__ = True
    from labkit.gate import Gate

    g = gate if isinstance(gate, Gate) else Gate.load(gate)
    report = g.evaluate(run_or_metrics, baseline=baseline, **options)
    if not report.passed:
        raise AssertionError("\n".join(gate_failure_lines(report)))
    return report


def _case(case: EvalCase | Mapping[str, Any]) -> EvalCase:
    if isinstance(case, EvalCase):
        return case
    return as_cases([case])[0]


def _phrase_failures(case: EvalCase, answer: str | None) -> list[str]:
    out = []
    coverage, why = must_include_coverage(answer, case.must_include)
    found = phrases_found(answer, case.must_include)
    missing = [p for p, f in zip(case.must_include, found, strict=True) if not f]
    if why == REDACTED:
        hidden = [p for p in missing if hidden_by_redaction(answer, p)]
        out.append(f"must_include: cannot be checked, a redaction placeholder may hide {hidden!r}")
    elif coverage is not None and coverage < 1.0:
        out.append(f"must_include: missing {missing!r} (coverage {coverage:.2f})")
    violation, why = must_not_include_violation(answer, case.must_not_include)
    if violation:
        present = [p for p, f in zip(case.must_not_include, phrases_found(answer, case.must_not_include),
                                     strict=True) if f]
        out.append(f"must_not_include: found {present!r}")
    elif why == REDACTED:
        out.append("must_not_include: cannot be checked, a redaction placeholder may hide a phrase")
    return out


def _names(calls: Any) -> list[Any]:
    return [c.get("name") for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []


def _tool_failures(case: EvalCase, tool_calls: Any) -> list[str]:
    accuracy, _ = tool_call_accuracy(tool_calls, case.expected_tools)
    if accuracy is None or accuracy >= 1.0:
        return []
    expected = [{"name": e.get("name"), "args": dict(e.get("args") or {})} for e in case.expected_tools]
    called = [{"name": c.get("name"), "args": dict(c.get("args") or {})}
              for c in (tool_calls if isinstance(tool_calls, list) else []) if isinstance(c, Mapping)]
    if _names(tool_calls) != _names(list(case.expected_tools)):
        return [f"expected_tools: expected calls {_names(list(case.expected_tools))!r}, "
                f"called {_names(tool_calls)!r}"]
    return [f"expected_tools: arguments match on {accuracy:.2f} of the calls: "
            f"expected {expected!r}, called {called!r}"]


def case_failures(case: EvalCase | Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    """What fails for one case's results line, one line each ([] when it passes)."""
    c = _case(case)
    rid = result.get("case_id")
    if rid is not None and rid != c.id:
        raise ValueError(f"result is for case {rid!r}, not {c.id!r}")
    status = result.get("status", "ok")
    out: list[str] = []
    if status != "ok":
        err = result.get("error")
        out.append(f"status: {status}" + (f" ({err})" if err else ""))
    answer = result.get("answer")
    out += _phrase_failures(c, answer if isinstance(answer, str) else None)
    out += _tool_failures(c, result.get("tool_calls"))
    return out


def assert_case(case: EvalCase | Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Raise AssertionError listing each failed check of one case: a status other than ok,
    missing must_include phrases, present must_not_include phrases, tool calls that do not
    match expected_tools. A phrase a redaction placeholder may hide fails as uncheckable."""
    __tracebackhide__ = True
    failed = case_failures(case, result)
    if failed:
        cid = _case(case).id
        raise AssertionError(f"case {cid}: {len(failed)} check(s) failed\n" + "\n".join(f"  {f}" for f in failed))
