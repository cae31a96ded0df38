"""Styled tables of runs, gates, comparisons, slices and datasets (pandas Stylers).

Units on every value, 95% intervals beside them, pass/fail colours from the
palette of :mod:`labkit.display`; every cell and label HTML-escaped.
pandas is imported inside the functions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_BG,
    FAIL_COLOUR,
    MUTED_COLOUR,
    PASS_BG,
    PASS_COLOUR,
    Html,
    fmt_interval,
    fmt_signed,
    fmt_value,
    is_nan,
    shorten,
    unit_of,
)
from labkit.gate import cases_line
from labkit.gate.report import observed_text as check_observed
from labkit.views.elements import kind_of, styler, with_caption
from labkit.views.frames import (
    STAGES,
    RunLike,
    as_gate,
    gate_results,
    gate_thresholds,
    metric_spec,
    metrics_frame,
    slices_frame,
)

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler


QUICK_LAB_METRICS = (
    "retrieval_hit_rate", "mrr", "context_precision",
    "faithfulness", "must_include_coverage", "citation_accuracy",
    "latency_p95_ms", "error_rate", "cost_per_success",
)


def metrics_table(
    runs: Mapping[str, RunLike],
    *,
    gate: Any = None,
    metrics: Sequence[str] | None = None,
    caption: str = "Value [95% interval] per run. Green: meets the gate threshold; red: misses it.",
) -> Styler:
    """Metrics by stage, runs side by side, with units, intervals and pass/fail highlighting."""
    import pandas as pd

    long = metrics_frame(runs, metrics)
    labels = list(runs)
    gate_res = gate_results(gate, runs)
    thresholds = gate_thresholds(gate)
    rows = []
    status: list[dict[str, str]] = []
    for name in dict.fromkeys(long["metric"]):
        sub = long[long["metric"] == name]
        first = sub.iloc[0]
        row: dict[str, Any] = {"stage": first["stage"], "metric": name, "unit": first["unit"],
                               "better": "higher" if first["direction"] == "higher" else "lower"}
        st: dict[str, str] = {}
        for label in labels:
            r = sub[sub["run"] == label]
            e = r.iloc[0].to_dict() if len(r) else {}
            row[label] = with_n(fmt_interval(name, {k: (None if is_nan(v) else v) for k, v in e.items()}),
                                e.get("n"))
            if name in gate_res.get(label, {}):
                st[label] = "pass" if gate_res[label][name] else "fail"
        if name in thresholds:
            op, thr = thresholds[name]
            row["gate"] = f"{op} {fmt_value(name, thr)}"
        else:
            row["gate"] = ""
        rows.append(row)
        status.append(st)
    df = pd.DataFrame(rows, columns=["stage", "metric", "unit", "better", *labels, "gate"])
    per_row = [kind_of(r["metric"]) for r in rows]
    kinds = {c: per_row for c in [*labels, "gate"]}

    def colour(data: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=data.index, columns=data.columns)
        for i, st in enumerate(status):
            for label, s in st.items():
                css.at[data.index[i], label] = (
                    f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:600" if s == "pass"
                    else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:600"
                )
        return css

    return with_caption(styler(df, kinds).apply(colour, axis=None), caption)


def with_n(text: str, n: Any) -> str:
    """An aggregate with its sample size beside it: ``0.853 [0.80 – 0.90]  (n=40)``."""
    return text if n is None or is_nan(n) else f"{text}  (n={int(n)})"


_BARE_REASON = re.compile(r"^(-?[\d.]+) (is not )?(<=|>=|<|>|==) (-?[\d.]+)$")


def _reason(metric: str, reason: str) -> str:
    """A gate reason of the bare form ``2756 <= 3500`` (or ``0.79 is not >= 0.85``) with the
    metric's unit on both sides."""
    m = _BARE_REASON.match(reason or "")
    if not m or not metric:
        return reason
    op = {"<=": "≤", ">=": "≥"}.get(m.group(3), m.group(3))
    return f"{fmt_value(metric, float(m.group(1)))} {m.group(2) or ''}{op} {fmt_value(metric, float(m.group(4)))}"


def _threshold(c: Any) -> str:
    metric = c.metric or ""
    if c.threshold is None:
        return ""
    if c.op is None:  # a regression check: the largest drop its interval may reach
        return f"max drop {fmt_value(metric, c.threshold)}" if metric else f"max drop {c.threshold:g}"
    if c.kind == "coverage":  # (a share of the cases, as its observed value)
        return f"{c.op} {c.threshold:.1%}"
    return f"{c.op} {fmt_value(metric, c.threshold) if metric else f'{c.threshold:g}'}"


def _n_cell(c: Any) -> str:
    n, min_n = getattr(c, "n", None), getattr(c, "min_n", None)
    if n is None:
        return "—"
    return f"{n} (min {min_n})" if min_n is not None else str(n)


def gate_table(report: Any, caption: str = "") -> Styler:
    """One row per gate check: check, unit, observed, threshold, n (with its minimum), result, reason —
    failed rows in red; the caption says how many cases of the dataset were judged."""
    import pandas as pd

    rows = []
    value_kinds: list[str] = []
    reason_kinds: list[str] = []
    for c in report.checks:
        metric = c.metric or ""
        reason = _reason(metric, c.reason)
        rows.append({
            "check": c.name,
            "unit": unit_of(metric) if metric else "share of cases" if c.kind == "coverage" else "cases",
            "observed": check_observed(c),
            "threshold": _threshold(c),
            "n": _n_cell(c),
            "result": "pass" if c.passed else "FAIL",
            "reason": reason,
        })
        value_kinds.append(kind_of(metric) if metric else "pct" if c.kind == "coverage" else "count")
        reason_kinds.append(value_kinds[-1] if reason != c.reason else "")
    df = pd.DataFrame(rows, columns=["check", "unit", "observed", "threshold", "n", "result", "reason"])
    kinds: dict[str, Any] = {"observed": value_kinds, "threshold": value_kinds, "n": "count", "reason": reason_kinds}

    def colour(v: Any) -> str:
        return (f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:700" if v == "pass"
                else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:700")

    n_fail = sum(1 for c in report.checks if not c.passed)
    cap = caption or f"Gate {report.gate}: {len(report.checks) - n_fail}/{len(report.checks)} checks passed."
    judged = cases_line(getattr(report, "cases", None))
    cap = f"{cap} {judged[0].upper()}{judged[1:]}." if judged else cap
    return with_caption(styler(df, kinds).map(colour, subset=["result"]), cap)


def thresholds_table(gate: Any) -> Styler:
    """The gate's checks as declared: metric, statistic, operator, threshold with its unit."""
    import pandas as pd

    g = as_gate(gate)
    rows = [{"metric": c.metric, "statistic": c.statistic, "must be": f"{c.op} {fmt_value(c.metric, c.threshold)}",
             "unit": unit_of(c.metric), "stage": metric_spec(c.metric)[0]} for c in g.checks]
    for r in getattr(g, "regression", ()):
        rows.append({"metric": r.metric, "statistic": "paired delta vs baseline",
                     "must be": f"no worse than −{fmt_value(r.metric, r.max_drop)}",
                     "unit": unit_of(r.metric), "stage": metric_spec(r.metric)[0]})
    df = pd.DataFrame(rows, columns=["stage", "metric", "statistic", "must be", "unit"])
    return with_caption(styler(df, {"must be": [kind_of(r["metric"]) for r in rows]}),
                        f"Gate {g.name}: {len(rows)} threshold(s), declared before the runs.")


def compare_table(comparison: Any, caption: str = "") -> Styler:
    """Baseline vs variant per metric: delta with its paired interval, adjusted p-value, verdict."""
    import pandas as pd

    d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    rows = []
    for name, m in (d.get("metrics") or {}).items():
        stage, _, _ = metric_spec(name)
        delta = m.get("delta")
        rows.append({
            "stage": stage, "metric": name, "unit": unit_of(name),
            "baseline": fmt_value(name, m.get("baseline")), "variant": fmt_value(name, m.get("variant")),
            "delta [95% CI]": "—" if delta is None else
            f"{fmt_signed(name, delta)}  [{fmt_signed(name, m.get('ci_low'))} – {fmt_signed(name, m.get('ci_high'))}]",
            "n": m.get("n", d.get("n_paired")),
            "p (Holm)": "—" if m.get("p_adjusted") is None else f"{m['p_adjusted']:.3g}",
            "verdict": str(m.get("verdict", "")),
        })
    order = {s: i for i, s in enumerate(STAGES)}
    rows.sort(key=lambda r: order.get(r["stage"], 99))
    df = pd.DataFrame(rows, columns=["stage", "metric", "unit", "baseline", "variant", "delta [95% CI]", "n",
                                     "p (Holm)", "verdict"])
    df["n"] = ["—" if n is None else str(int(n)) for n in df["n"]]
    per_row = [kind_of(r["metric"]) for r in rows]
    kinds: dict[str, Any] = {"baseline": per_row, "variant": per_row, "delta [95% CI]": per_row,
                             "n": "count", "p (Holm)": "p"}

    def colour(v: Any) -> str:
        return {"improved": f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:700",
                "regressed": f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:700"}.get(v, f"color:{MUTED_COLOUR}")

    cap = caption or (f"Paired by case id over {d.get('n_paired', '?')} cases. 'no_change' means no "
                      "detectable change at this sample size, not proof of equality.")
    return with_caption(styler(df, kinds).map(colour, subset=["verdict"]), cap)


def slice_table(runs: Mapping[str, RunLike], metric: str, *, tag: str | None = None, gate: Any = None) -> Styler:
    """One row per slice (category=…, risk=…, kind=…), runs side by side; misses of the gate threshold in red."""
    import pandas as pd

    df = slices_frame(runs, metric, tag)
    labels = list(runs)
    thr = gate_thresholds(gate).get(metric)
    rows = []
    flags: list[dict[str, bool]] = []
    for key in dict.fromkeys(df["slice"]):
        row: dict[str, Any] = {"slice": key}
        fl: dict[str, bool] = {}
        for label in labels:
            r = df[(df["slice"] == key) & (df["run"] == label)]
            if len(r):
                e = {k: (None if is_nan(v) else v) for k, v in r.iloc[0].to_dict().items()}
                row[label] = with_n(fmt_interval(metric, e), e.get("n"))
                if thr is not None and e.get("value") is not None:
                    from labkit.gate import OPS

                    fl[label] = bool(OPS[thr[0]](float(e["value"] or 0.0), thr[1]))
            else:
                row[label] = "—"
        rows.append(row)
        flags.append(fl)
    out = pd.DataFrame(rows, columns=["slice", *labels])
    out.insert(1, "unit", unit_of(metric))

    def colour(data: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=data.index, columns=data.columns)
        for i, fl in enumerate(flags):
            for label, ok in fl.items():
                css.at[data.index[i], label] = (
                    f"color:{PASS_COLOUR}" if ok else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:600")
        return css

    cap = f"{metric} ({unit_of(metric)}) per slice; small slices have wide intervals."
    if thr is not None:
        cap += f" Red: misses the gate threshold {thr[0]} {fmt_value(metric, thr[1])}."
    return with_caption(styler(out, dict.fromkeys(labels, kind_of(metric))).apply(colour, axis=None), cap)


def dataset_summary(dataset: Any) -> Html:
    """Size, fingerprint and label coverage of a dataset, in one line of badges."""
    from labkit.cases import dataset_stats

    st = dataset_stats(dataset)
    parts = [
        f"<strong>{st['n_cases']}</strong> cases",
        f"fingerprint <code>{html.escape(st['fingerprint'][:16])}…</code>",
        f"kinds: {html.escape(', '.join(f'{k} {v}' for k, v in st['by_kind'].items()))}",
        f"risk: {html.escape(', '.join(f'{k} {v}' for k, v in st['by_risk'].items()))}",
        f"{st['with_gold']} with gold, {st['with_must_include']} with must_include",
    ]
    return Html("<p class='lk-dataset'>" + " · ".join(parts) + "</p>")


def cases_table(dataset: Any, *, limit: int | None = None, caption: str = "") -> Styler:
    """The cases: id, question, gold, must_include and tags (all text escaped)."""
    import pandas as pd

    rows = []
    for c in list(dataset)[: limit or None]:
        rows.append({
            "id": c.id, "question": shorten(c.question, 140),
            "gold": ", ".join(c.gold) or "—",
            "must_include": "; ".join(c.must_include) or "—",
            "category": c.tags.get("category", ""), "risk": c.tags.get("risk", ""), "kind": c.tags.get("kind", ""),
        })
    df = pd.DataFrame(rows, columns=["id", "question", "gold", "must_include", "category", "risk", "kind"])

    def risk(v: Any) -> str:
        return f"color:{FAIL_COLOUR};font-weight:600" if v == "high" else ""

    n = len(list(dataset))
    cap = caption or (f"{len(rows)} of {n} cases." if limit and n > limit else f"{n} cases.")
    return with_caption(styler(df).map(risk, subset=["risk"]), cap)

