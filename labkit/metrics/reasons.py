"""Unmeasured reason codes that mean "not applicable": the case carries no label for the metric.

A metric unmeasured for one of these reasons was never asked of the case (no gold chunks, no
phrases, no expected tools, no reference answer, an answer that makes no claim), as opposed to
a measurement that failed (``not_ok``, ``judge_error``, ``redacted``, ...). The readiness
checklist and the incident review count them apart. Every reason code: docs/metrics.md.
"""

from __future__ import annotations

#: prefixes of the not-applicable reason codes (``no_must`` covers ``no_must_include`` and
#: ``no_must_not_include``; ``no_expected`` covers ``no_expected_tools``)
NOT_APPLICABLE = ("no_gold", "no_must", "no_expected", "no_label", "no_claims", "no_reference")


def not_applicable(reason: str) -> bool:
    """Whether an unmeasured reason code means the metric does not apply to the case."""
    return reason.startswith(NOT_APPLICABLE)
