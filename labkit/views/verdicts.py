"""The verdict banners of the notebooks: ship decision, gate banner, coverage gaps, and the
simulated-model notice. A :class:`~labkit.display.Verdict` displayed last is the notebook's
published verdict (the report index shows it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.display import Html, Verdict
from labkit.views.elements import callout


def gaps_verdict(gaps: Sequence[str], subject: str = "dataset") -> Verdict:
    """WARN listing the coverage gaps, or PASS when none is flagged."""
    if not gaps:
        return Verdict("pass", f"{subject}: no coverage gap flagged", "")
    return Verdict("warn", f"{subject}: {len(gaps)} coverage gap(s) to close", "; ".join(gaps))


def gate_banner(report: Any, subject: str = "") -> Verdict:
    """PASS/FAIL banner for one gate report (published as the notebook's verdict if last)."""
    failed = [c.name for c in report.checks if not c.passed]
    who = f"{subject}: " if subject else ""
    if report.passed:
        return Verdict("pass", f"{who}gate {report.gate} passed",
                       f"All {len(report.checks)} checks pass.")
    return Verdict("fail", f"{who}gate {report.gate} failed",
                   f"{len(failed)} of {len(report.checks)} checks fail: {', '.join(failed)}.")


def ship_decision(candidate: Any, baseline: Any = None, *, candidate_label: str = "variant",
                  baseline_label: str = "baseline") -> Verdict:
    """SHIP when the candidate's gate report passes, else NO-SHIP naming the failed checks."""
    failed = [c.name for c in candidate.checks if not c.passed]
    base = ""
    if baseline is not None:
        n_pass = sum(c.passed for c in baseline.checks)
        base = (f" The {baseline_label} {'passes' if baseline.passed else 'fails'} the same gate:"
                f" passes {n_pass} of {len(baseline.checks)} checks.")
    if candidate.passed:
        return Verdict("pass", f"SHIP the {candidate_label}",
                       f"The {candidate_label} meets every check of gate {candidate.gate}.{base}")
    return Verdict("fail", f"NO-SHIP: the {candidate_label} fails {len(failed)} check(s)",
                   f"Failed: {', '.join(failed)}.{base}")


def simulated_notice(*configs: str | os.PathLike[str]) -> Html:
    """A visible notice that the reference pipeline is a simulated model (no LLM behind it)."""
    names = ", ".join(Path(c).name for c in configs)
    return callout(
        "The reference pipeline is a SIMULATED model: answers are extracted from retrieved "
        "chunks, token counts are counted, cost comes from a price table and latency is "
        "modelled from tokens by a seeded distribution. Numbers show how the kit works, not "
        f"how a real LLM performs. Configs: {names}.",
        kind="warn",
        title="Simulated model.",
    )

