"""The thresholds of the automated rules and small helpers the area modules share."""

from __future__ import annotations

from typing import Any

from labkit.readiness.context import rule_name, rule_text

#: Thresholds of the automated rules, stated in docs/readiness.md.
RULES: dict[str, float] = {
    "min_cases": 40,  # golden set size
    "min_high_risk": 5,  # high-risk cases in the golden set
    "max_unmeasured_rate": 0.05,  # share of unmeasured cases per gated metric
    "min_trace_share": 0.95,  # share of traces that must carry a guardrail verdict
    "min_adversarial_success": 0.9,  # adversarial cases handled (task success)
}


def pct(k: int, n: int) -> str:
    """``k/n (share)``, or ``0/0``."""
    return f"{k}/{n} ({k / n:.0%})" if n else "0/0"


def alert_matches(rules: list[dict[str, Any]], *words: str) -> list[str]:
    """Names of the alert rules that mention any of ``words``."""
    return [rule_name(r) for r in rules if any(w in rule_text(r) for w in words)]
