"""The gate report: one :class:`CheckResult` per check, and its CI outputs (JSON, JUnit, markdown).

Every output says how many cases of the dataset the verdict judged (``cases``:
n_judged, n_dataset, n_missing) when the metrics say so, and each check the n
its statistic was computed on beside the minimum it needed (``n``, ``min_n``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: the characters XML 1.0 cannot hold, even escaped (C0 controls but tab and line ends, lone surrogates, U+FFFE/F)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One line of the gate report."""

    name: str
    kind: str  # absolute | regression | slice | unmeasured | coverage | review | pre_registration
    metric: str | None
    op: str | None
    threshold: float | None
    observed: float | None
    passed: bool
    reason: str
    statistic: str | None = None
    slice: str | None = None
    n: int | None = None  # cases the statistic was computed on (paired cases for a regression)
    min_n: int | None = None  # the fewest cases the check accepts as a measurement

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cases_line(cases: dict[str, int] | None) -> str:
    """'judged 45 of 70 cases (25 missing)', or '' when the counts are not known."""
    if not cases:
        return ""
    miss = cases["n_missing"]
    return f"judged {cases['n_judged']} of {cases['n_dataset']} cases" + (f" ({miss} missing)" if miss else "")


def observed_text(c: Any) -> str:
    """A check's observed value in its metric's unit (a regression check's delta signed)."""
    from labkit.display import fmt_signed, fmt_value

    metric = c.metric or ""
    if getattr(c, "kind", None) == "coverage" and c.observed is not None:  # (a share of the cases: never a bare 0)
        return f"{c.observed:.1%} missing"
    if not metric:
        return "—" if c.observed is None else f"{c.observed:g}"
    return fmt_signed(metric, c.observed) if c.op is None and c.observed is not None else fmt_value(metric, c.observed)


def too_few_text(c: Any) -> str:
    """The gate's reason when check ``c``'s value was computed on fewer cases than its ``min_n``,
    else '' (a check with no value fails as unmeasured, its own reason)."""
    from labkit.gate.cases import too_few

    n, min_n = getattr(c, "n", None), getattr(c, "min_n", None)
    return too_few(n, min_n) if c.observed is not None and n is not None and min_n is not None else ""


def _missed(c: Any) -> bool:
    """The check's observed value misses its threshold (a regression check has none: its reason
    gives the delta and the interval against the margin)."""
    from labkit.gate.config import OPS

    op = getattr(c, "op", None)
    return c.observed is not None and op in OPS and c.threshold is not None and not OPS[op](c.observed, c.threshold)


def failure_text(c: Any) -> str:
    """Why failed check ``c`` failed, in the gate's own terms: a value computed on too few cases
    (``faithfulness >= 0.85: computed on 2 cases; min_n is 9: too few cases to judge``), a
    threshold missed (``faithfulness >= 0.85: observed 0.798 (n=62)``, in the metric's unit),
    else the gate's reason (unmeasured, failed cases beyond the budget, a regression's delta
    and interval against its margin, ...)."""
    if few := too_few_text(c):
        return f"{c.name}: {few}"
    if _missed(c):
        n = f" (n={c.n})" if getattr(c, "n", None) is not None else ""
        return f"{c.name}: observed {observed_text(c)}{n}"
    return f"{c.name}: {getattr(c, 'reason', '') or 'unmeasured'}"


def _observed_short(c: Any) -> str:
    """A check's observed value as the summary and the markdown table show it: the coverage check's
    is the share of the dataset's cases with no result (``0.0% missing``, never a bare 0)."""
    if c.observed is None:
        return "—"
    return observed_text(c) if c.kind == "coverage" else f"{c.observed:.4g}"


@dataclass(kw_only=True)
class GateReport:
    gate: str
    passed: bool
    checks: list[CheckResult]
    run_id: str | None = None
    pre_registration: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, int] | None = None  # n_judged, n_dataset, n_missing (None: not known)
    notes: list[str] = field(default_factory=list)
    #: the metrics.json layout read (0: a first-landing file without schema_version; None: a plain dict)
    metrics_schema_version: int | None = None

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "run_id": self.run_id,
            "passed": self.passed,
            "verdict": "pass" if self.passed else "fail",
            "n_checks": len(self.checks),
            "n_failed": len(self.failed),
            "cases": self.cases,
            "checks": [c.to_dict() for c in self.checks],
            "pre_registration": self.pre_registration,
            "notes": list(self.notes),
            "metrics_schema_version": self.metrics_schema_version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def summary(self) -> str:
        """The text verdict, as the terminal shows it: a control or direction character (of a path
        the gate names, of a file's name) written as its escape (:func:`~labkit.text.terminal_safe`;
        the gate's own texts hold none: labkit.gate.config refuses them)."""
        from labkit.text import terminal_safe

        judged = cases_line(self.cases)
        lines = [f"gate {self.gate}: {'PASS' if self.passed else 'FAIL'}"
                 f" ({len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed"
                 + (f"; {judged}" if judged else "") + ")"]
        for c in self.checks:
            obs = _observed_short(c)
            lines.append(f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: observed {obs} — {c.reason}")
        pr = self.pre_registration
        if pr:
            lines.append(f"  pre-registration: {pr.get('status')}: {pr.get('detail')}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return terminal_safe("\n".join(lines))

    def to_markdown(self) -> str:
        """The markdown summary (a CI step summary): every name, reason and note written by
        :func:`~labkit.text.md_text`, so a case id, a tag value or a gate's name shows as text."""
        from labkit.text import md_text

        head = "PASS" if self.passed else "FAIL"
        rows = ["| check | observed | threshold | n | result | reason |", "|---|---|---|---|---|---|"]
        for c in self.checks:
            obs = _observed_short(c)
            thr = "—" if c.threshold is None else f"{c.op or 'margin'} {c.threshold:g}"
            n = "—" if c.n is None else (f"{c.n}" if c.min_n is None else f"{c.n} (min {c.min_n})")
            rows.append(f"| {md_text(c.name)} | {obs} | {thr} | {n} | "
                        f"{'✅ pass' if c.passed else '❌ fail'} | {md_text(c.reason)} |")
        judged = cases_line(self.cases)
        top = f"### Gate {md_text(self.gate)}: **{head}**\n\n" + (f"Cases: {judged}.\n\n" if judged else "")
        pr = self.pre_registration
        tail = (f"\n\nPre-registration: **{md_text(str(pr.get('status')))}** — {md_text(str(pr.get('detail')))}\n"
                if pr else "\n")
        tail += "".join(f"\nNote: {md_text(n)}\n" for n in self.notes)
        return top + "\n".join(rows) + tail

    def to_junit(self) -> str:
        from xml.sax.saxutils import quoteattr as _quoteattr

        from labkit.text import escaped

        def quoteattr(text: str) -> str:  # (what XML 1.0 cannot hold, as its escape: the file stays well-formed)
            return _quoteattr(escaped(text, _XML_ILLEGAL))

        cases = []
        for c in self.checks:
            body = ""
            if not c.passed:
                body = f"<failure message={quoteattr(c.reason)}>{quoteattr(c.reason)[1:-1]}</failure>"
            cases.append(f'  <testcase classname={quoteattr("labkit.gate." + c.kind)} '
                         f'name={quoteattr(c.name)}>{body}</testcase>')
        props = ""
        if self.cases:
            props = ("  <properties>\n"
                     + "".join(f"    <property name={quoteattr(k)} value=\"{v}\"/>\n" for k, v in self.cases.items())
                     + f"    <property name=\"cases_judged\" value={quoteattr(cases_line(self.cases))}/>\n"
                     + "  </properties>\n")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name={quoteattr(self.gate)} tests="{len(self.checks)}" '
            f'failures="{len(self.failed)}" errors="0">\n' + props + "\n".join(cases) + "\n</testsuite>\n"
        )
