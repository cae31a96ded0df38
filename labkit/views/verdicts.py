"""The verdict banners of the notebooks: ship decision, gate banner, coverage gaps, and the
simulated-model notice, and the one-paragraph "why" under a banner. A notebook shows its
verdict first, then :func:`why` (or a ``*_why`` of its kind), then the evidence; the last
:class:`~labkit.display.Verdict` it displays is its published verdict (the report index shows it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from labkit.display import Html, Verdict
from labkit.gate.report import failure_text, too_few_text
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
    """SHIP when the candidate's gate report passes, else NO-SHIP naming each failed check with
    why it failed (:func:`labkit.gate.report.failure_text`: too few cases is not a threshold missed)."""
    failed = [c for c in candidate.checks if not c.passed]
    base = ""
    if baseline is not None:
        n_pass = sum(c.passed for c in baseline.checks)
        base = (f" The {baseline_label} {'passes' if baseline.passed else 'fails'} the same gate:"
                f" passes {n_pass} of {len(baseline.checks)} checks.")
    if candidate.passed:
        return Verdict("pass", f"SHIP the {candidate_label}",
                       f"The {candidate_label} meets every check of gate {candidate.gate}.{base}")
    few = sum(bool(too_few_text(c)) for c in failed)
    return Verdict("fail", f"NO-SHIP: the {candidate_label} fails {len(failed)} check(s)"
                   + (f", {few} of them on too few cases" if few else ""),
                   f"Failed: {'; '.join(failure_text(c) for c in failed)}.{base}")


def _made_by_text(made: Sequence[Any], limit: int = 6) -> str:
    """'run baseline by baseline.yaml (model sim-gen-large), run variant by ...'."""
    parts = [f"run {m.run_id} by {m.config}" + (f" (model {m.model})" if m.model else "") for m in made[:limit]]
    return ", ".join(parts) + (f" and {len(made) - limit} more" if len(made) > limit else "")


def simulated_notice(*runs: Any) -> Html:
    """Whether the model behind ``runs`` is simulated, as their manifests record it
    (:func:`labkit.rundata.made_by`), naming the config each run was made from: a SIMULATED
    notice for the runs of a simulated model only, and a plain note for runs that record none."""
    from labkit.rundata import made_by

    made = [made_by(r) for r in runs]
    sim, other = [m for m in made if m.simulated], [m for m in made if not m.simulated]
    rest = (f" The manifest of {_made_by_text(other)} records no simulated model: its numbers are that "
            "pipeline's own." if other else "")
    if not sim:
        return callout(rest.strip(), kind="info", title="Pipelines of these runs.")
    return callout(
        f"The {_made_by_text(sim)} used the reference pipeline's SIMULATED model: answers are extracted from "
        "retrieved chunks, token counts are counted, cost comes from a price table and latency is modelled "
        "from tokens by a seeded distribution. Those numbers show how the kit works, not how a real LLM "
        f"performs.{rest}",
        kind="warn",
        title="Simulated model.",
    )


def why(text: str) -> Html:
    """The one-paragraph summary of why, shown right under the verdict banner (text escaped)."""
    return Html(f'<p class="lk-why" style="font-size:1.02rem;margin:6px 0 14px">'
                f"<strong>Why.</strong> {html.escape(text)}</p>")


def ship_why(candidate: Any, baseline: Any = None, comparison: Any = None, *,
             candidate_label: str = "variant") -> Html:
    """Why SHIP or NO-SHIP: each failed check and why it failed (:func:`labkit.gate.report.failure_text`); how
    many pass; and, given the paired comparison, what improved, regressed and flipped."""
    failed = [c for c in candidate.checks if not c.passed]
    n = len(candidate.checks)
    if failed:
        text = (f"The {candidate_label} fails {len(failed)} of {n} checks of gate {candidate.gate}: "
                + "; ".join(failure_text(c) for c in failed) + f". The other {n - len(failed)} pass.")
    else:
        text = f"The {candidate_label} passes all {n} checks of gate {candidate.gate}."
    if baseline is not None:
        text += f" The baseline passes {sum(c.passed for c in baseline.checks)} of {len(baseline.checks)} on its thresholds."
    if comparison is not None:
        d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
        verdicts = [str(m.get("verdict")) for m in (d.get("metrics") or {}).values()]
        regressed = [k for k, m in (d.get("metrics") or {}).items() if m.get("verdict") == "regressed"]
        flips = list(d.get("flipped") or [])
        to_fail = sum(1 for f in flips if f.get("to") == "fail")
        text += (f" Paired over {d.get('n_paired', '?')} cases, {verdicts.count('improved')} metric(s) improved and "
                 f"{len(regressed)} regressed" + (f" ({', '.join(regressed)})" if regressed else "")
                 + f"; {len(flips)} case(s) flipped, {to_fail} of them from pass to fail.")
    return why(text)


def gaps_why(dataset: Any, gaps: Sequence[str], subject: str = "dataset") -> Html:
    """Why the coverage verdict: the set's size and mix, and each gap."""
    from labkit.cases import dataset_stats

    st = dataset_stats(dataset)
    kinds = ", ".join(f"{v} {k}" for k, v in st["by_kind"].items())
    text = f"The {subject} has {st['n_cases']} cases ({kinds}); {st['with_gold']} carry a gold chunk."
    text += (f" {len(gaps)} gap(s) stand between it and gating a release: " + "; ".join(gaps) + "."
             if gaps else " No coverage gap is flagged.")
    return why(text)
