"""Look and feel of the notebooks and reports: one plot style, styled tables, banners, footer.

Every function takes plain data (metrics.json mappings, run directories or
their paths, gate reports, datasets) and returns an object that displays
itself in Jupyter and in the exported HTML: a :class:`Chart` (a PNG inline as
a data URI, with a caption), a pandas ``Styler`` (units, pass/fail colours), an
:class:`Html` fragment, or a :class:`~labkit.report.Verdict` banner.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas: no
pyplot state, no GUI backend, safe in threads and headless runs. Every piece
of user text (questions, answers, tags, ids) is HTML-escaped.

matplotlib and pandas are imported inside the functions that use them.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.gate_report import cases_line
from labkit.report import Verdict

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

# ---------------------------------------------------------------------------
# The style

PALETTE: dict[str, str] = {"baseline": "#4C72B0", "variant": "#DD8452"}
EXTRA_COLOURS = ("#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
PASS_COLOUR = "#1a7f37"
FAIL_COLOUR = "#cf222e"
WARN_COLOUR = "#9a6700"
MUTED_COLOUR = "#59636e"
PASS_BG = "#dafbe1"
FAIL_BG = "#ffebe9"
STAGES = ("retrieval", "generation", "agent", "ops")
RC: Any = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
    "figure.dpi": 100,
    "savefig.dpi": 110,
}


QUICK_LAB_METRICS = (
    "retrieval_hit_rate", "mrr", "context_precision",
    "faithfulness", "must_include_coverage", "citation_accuracy",
    "latency_p95_ms", "error_rate", "cost_per_success",
)


def colour_for(label: str, i: int = 0) -> str:
    """The run colour: baseline blue, variant orange (also for labels containing them)."""
    low = label.lower()
    for key, col in PALETTE.items():
        if key in low:
            return col
    return EXTRA_COLOURS[i % len(EXTRA_COLOURS)]


def unit_of(metric: str) -> str:
    """The unit a metric is shown in: ms, USD, tokens, or 'share' for 0–1 scores and rates."""
    if metric.endswith("_ms"):
        return "ms"
    if "cost" in metric or metric.endswith("_usd"):
        return "USD"
    if "tokens" in metric:
        return "tokens"
    return "0–1"


def fmt_value(metric: str, value: Any) -> str:
    """A metric value formatted with its unit; '—' for unmeasured."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    v = float(value)
    unit = unit_of(metric)
    if unit == "ms":
        return f"{v:,.0f} ms"
    if unit == "USD":
        return f"${v:,.4f}" if abs(v) < 1 else f"${v:,.2f}"
    if unit == "tokens":
        return f"{v:,.0f}"
    return f"{v:.3f}"


def _spec(metric: str) -> tuple[str, str, bool]:
    """(stage, direction, bounded) from the metric registry, with a safe fallback."""
    try:
        from labkit.metrics import METRICS

        s = METRICS.get(metric)
        if s is not None:
            return s.stage, s.direction, s.bounded
    except ImportError:  # pragma: no cover - registry always present in the package
        pass
    lower = metric.endswith("_ms") or "cost" in metric or "error" in metric or "violation" in metric
    return "ops" if unit_of(metric) != "0–1" else "generation", "lower" if lower else "higher", (
        unit_of(metric) == "0–1"
    )


# ---------------------------------------------------------------------------
# Display objects


@dataclass(frozen=True)
class Html:
    """An HTML fragment that displays itself (content is trusted: built by labkit with escaping)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the notebook's text/plain fallback: short, not the markup again
        return f"<HTML fragment, {len(self.html)} characters>"

    def __str__(self) -> str:
        return self.html


@dataclass(repr=False)
class Chart:
    """A rendered figure: PNG bytes shown inline as a data URI, with a caption."""

    png: bytes
    caption: str
    alt: str
    width_px: int
    height_px: int

    @classmethod
    def from_figure(cls, fig: Figure, caption: str, alt: str = "") -> Chart:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        buf = io.BytesIO()
        # No Software/URL text chunk in the PNG: the file carries nothing but pixels.
        canvas.print_png(buf, metadata={"Software": None})
        w, h = canvas.get_width_height()
        return cls(buf.getvalue(), caption, alt or caption, int(w), int(h))

    def __repr__(self) -> str:  # the notebook's text/plain fallback: never the PNG bytes
        return f"<Chart {self.alt!r}, {self.width_px}x{self.height_px} px>"

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def _repr_html_(self) -> str:
        return (
            '<figure class="lk-chart" style="margin:12px 0">'
            f'<img src="{self.data_uri}" alt="{html.escape(self.alt, quote=True)}" '
            f'style="max-width:100%;height:auto">'
            f'<figcaption style="color:{MUTED_COLOUR};font-size:.9rem;margin-top:4px">'
            f"{html.escape(self.caption)}</figcaption></figure>"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.png)
        return p


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def callout(text: str, kind: str = "warn", title: str = "") -> Html:
    """A boxed note (kind: warn, info, pass, fail); text is escaped."""
    colours = {"warn": (WARN_COLOUR, "#fff8c5"), "info": ("#0550ae", "#ddf4ff"),
               "pass": (PASS_COLOUR, PASS_BG), "fail": (FAIL_COLOUR, FAIL_BG)}
    fg, bg = colours.get(kind, colours["info"])
    head = f"<strong>{html.escape(title)}</strong> " if title else ""
    return Html(
        f'<div class="lk-callout lk-callout-{html.escape(kind)}" style="border-left:5px solid {fg};'
        f'background:{bg};padding:10px 14px;margin:10px 0;border-radius:4px">{head}{html.escape(text)}</div>'
    )


def bullet_list(items: Iterable[str], empty: str = "none") -> Html:
    """An escaped bullet list (for gaps, actions, notes)."""
    lis = "".join(f"<li>{html.escape(str(i))}</li>" for i in items)
    return Html(f"<ul>{lis}</ul>" if lis else f"<p><em>{html.escape(empty)}</em></p>")


# ---------------------------------------------------------------------------
# Reading runs


RunLike = Any  # RunDir | str | PathLike | metrics.json mapping


def metrics_of(run: RunLike) -> dict[str, Any]:
    """The metrics.json mapping of a run directory (object or path) or a mapping as is."""
    if isinstance(run, Mapping):
        return dict(run)
    if hasattr(run, "metrics") and callable(run.metrics):
        return dict(run.metrics())
    from labkit.runs import RunDir

    return dict(RunDir(run).metrics())


def _entries(m: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = m.get("metrics")
    if isinstance(inner, Mapping):
        return inner
    # a plain {metric: value} dict
    return {k: {"value": v} for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def metrics_frame(runs: Mapping[str, RunLike], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table: one row per (run, metric) with stage, unit, value, interval, n, unmeasured."""
    import pandas as pd

    rows = []
    for label, run in runs.items():
        ent = _entries(metrics_of(run))
        for name in metrics or list(ent):
            e = ent.get(name) or {}
            stage, direction, bounded = _spec(name)
            rows.append({
                "run": label, "metric": name, "stage": e.get("stage", stage), "direction": direction,
                "bounded": bounded, "unit": unit_of(name), "value": e.get("value"),
                "ci_low": e.get("ci_low"), "ci_high": e.get("ci_high"), "n": e.get("n"),
                "unmeasured": e.get("unmeasured", 0),
            })
    df = pd.DataFrame(rows, columns=["run", "metric", "stage", "direction", "bounded", "unit", "value",
                                     "ci_low", "ci_high", "n", "unmeasured"])
    order = {s: i for i, s in enumerate(STAGES)}
    df["_o"] = df["stage"].map(lambda s: order.get(s, 99))
    return df.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _gate_results(gate: Any, runs: Mapping[str, RunLike]) -> dict[str, dict[str, bool]]:
    """{run label: {metric: passed}} for the gate's absolute checks."""
    if gate is None:
        return {}
    g = _as_gate(gate).thresholds_only()
    out: dict[str, dict[str, bool]] = {}
    for label, run in runs.items():
        rep = g.evaluate(metrics_of(run))
        res: dict[str, bool] = {}
        for c in rep.checks:
            if getattr(c, "kind", "absolute") == "absolute" and c.metric:
                res[c.metric] = res.get(c.metric, True) and bool(c.passed)
        out[label] = res
    return out


def _as_gate(gate: Any) -> Any:
    if isinstance(gate, str | os.PathLike):
        from labkit.gate import Gate

        return Gate.load(gate)
    return gate


def _thresholds(gate: Any) -> dict[str, tuple[str, float]]:
    if gate is None:
        return {}
    g = _as_gate(gate)
    return {c.metric: (c.op, float(c.threshold)) for c in g.checks if c.statistic == "value"}


# ---------------------------------------------------------------------------
# Tables


def _styler(df: pd.DataFrame) -> Styler:
    """A Styler with every cell and label HTML-escaped and labkit's table look."""
    st = df.style.format(escape="html", na_rep="—")
    st = st.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    st = st.hide(axis="index")
    st = st.set_table_styles([
        {"selector": "", "props": "border-collapse:collapse;font-size:.9rem;margin:6px 0 14px"},
        {"selector": "th", "props": "background:#f6f8fa;border:1px solid #d1d9e0;padding:4px 10px;text-align:left"},
        {"selector": "td", "props": "border:1px solid #d1d9e0;padding:4px 10px;font-variant-numeric:tabular-nums"},
        {"selector": "caption", "props": f"caption-side:bottom;color:{MUTED_COLOUR};text-align:left;padding-top:4px"},
    ])
    return st


def _fmt_interval(metric: str, e: Mapping[str, Any]) -> str:
    v = e.get("value")
    if v is None:
        return "— (unmeasured)"
    lo, hi = e.get("ci_low"), e.get("ci_high")
    s = fmt_value(metric, v)
    if lo is not None and hi is not None:
        s += f"  [{fmt_value(metric, lo)} – {fmt_value(metric, hi)}]"
    return s


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
    gate_res = _gate_results(gate, runs)
    thresholds = _thresholds(gate)
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
            row[label] = _fmt_interval(name, {k: (None if _isnan(v) else v) for k, v in e.items()})
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

    def colour(data: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=data.index, columns=data.columns)
        for i, st in enumerate(status):
            for label, s in st.items():
                css.at[data.index[i], label] = (
                    f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:600" if s == "pass"
                    else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:600"
                )
        return css

    return _styler(df).apply(colour, axis=None).set_caption(caption)


def _short_value(metric: str, v: float) -> str:
    unit = unit_of(metric)
    if unit == "ms":
        return f"{v:,.0f}"
    if unit == "USD":
        return f"{v:.4f}"
    if unit == "tokens":
        return f"{v:,.0f}"
    return f"{v:.2f}"


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _n_cell(c: Any) -> str:
    n, min_n = getattr(c, "n", None), getattr(c, "min_n", None)
    if n is None:
        return "—"
    return f"{n} (min {min_n})" if min_n is not None else str(n)


def gate_table(report: Any, caption: str = "") -> Styler:
    """One row per gate check: check, observed, threshold, n (with its minimum), result, reason —
    failed rows in red; the caption says how many cases of the dataset were judged."""
    import pandas as pd

    rows = []
    for c in report.checks:
        metric = c.metric or ""
        rows.append({
            "check": c.name,
            "observed": fmt_value(metric, c.observed) if metric else ("—" if c.observed is None else f"{c.observed:g}"),
            "threshold": "" if c.threshold is None else f"{c.op} {fmt_value(metric, c.threshold) if metric else c.threshold}",
            "n": _n_cell(c),
            "result": "pass" if c.passed else "FAIL",
            "reason": c.reason,
        })
    df = pd.DataFrame(rows, columns=["check", "observed", "threshold", "n", "result", "reason"])

    def colour(v: Any) -> str:
        return (f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:700" if v == "pass"
                else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:700")

    n_fail = sum(1 for c in report.checks if not c.passed)
    cap = caption or f"Gate {report.gate}: {len(report.checks) - n_fail}/{len(report.checks)} checks passed."
    judged = cases_line(getattr(report, "cases", None))
    cap = f"{cap} {judged[0].upper()}{judged[1:]}." if judged else cap
    return _styler(df).map(colour, subset=["result"]).set_caption(cap)


def thresholds_table(gate: Any) -> Styler:
    """The gate's checks as declared: metric, statistic, operator, threshold with its unit."""
    import pandas as pd

    g = _as_gate(gate)
    rows = [{"metric": c.metric, "statistic": c.statistic, "must be": f"{c.op} {fmt_value(c.metric, c.threshold)}",
             "unit": unit_of(c.metric), "stage": _spec(c.metric)[0]} for c in g.checks]
    for r in getattr(g, "regression", ()):
        rows.append({"metric": r.metric, "statistic": "paired delta vs baseline",
                     "must be": f"no worse than −{fmt_value(r.metric, r.max_drop)}",
                     "unit": unit_of(r.metric), "stage": _spec(r.metric)[0]})
    df = pd.DataFrame(rows, columns=["stage", "metric", "statistic", "must be", "unit"])
    return _styler(df).set_caption(f"Gate {g.name}: {len(rows)} threshold(s), declared before the runs.")


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
        base = (f" The {baseline_label} {'passes' if baseline.passed else 'fails'} the same gate"
                f" ({sum(c.passed for c in baseline.checks)}/{len(baseline.checks)} checks).")
    if candidate.passed:
        return Verdict("pass", f"SHIP the {candidate_label}",
                       f"The {candidate_label} meets every check of gate {candidate.gate}.{base}")
    return Verdict("fail", f"NO-SHIP: the {candidate_label} fails {len(failed)} check(s)",
                   f"Failed: {', '.join(failed)}.{base}")


def compare_table(comparison: Any, caption: str = "") -> Styler:
    """Baseline vs variant per metric: delta with its paired interval, adjusted p-value, verdict."""
    import pandas as pd

    d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    rows = []
    for name, m in (d.get("metrics") or {}).items():
        stage, _, _ = _spec(name)
        delta = m.get("delta")
        rows.append({
            "stage": stage, "metric": name, "unit": unit_of(name),
            "baseline": fmt_value(name, m.get("baseline")), "variant": fmt_value(name, m.get("variant")),
            "delta [95% CI]": "—" if delta is None else
            f"{_signed(name, delta)}  [{_signed(name, m.get('ci_low'))} – {_signed(name, m.get('ci_high'))}]",
            "p (Holm)": "—" if m.get("p_adjusted") is None else f"{m['p_adjusted']:.3g}",
            "verdict": str(m.get("verdict", "")),
        })
    order = {s: i for i, s in enumerate(STAGES)}
    rows.sort(key=lambda r: order.get(r["stage"], 99))
    df = pd.DataFrame(rows, columns=["stage", "metric", "unit", "baseline", "variant", "delta [95% CI]",
                                     "p (Holm)", "verdict"])

    def colour(v: Any) -> str:
        return {"improved": f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:700",
                "regressed": f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:700"}.get(v, f"color:{MUTED_COLOUR}")

    cap = caption or (f"Paired by case id over {d.get('n_paired', '?')} cases. 'no_change' means no "
                      "detectable change at this sample size, not proof of equality.")
    return _styler(df).map(colour, subset=["verdict"]).set_caption(cap)


def _signed(metric: str, v: Any) -> str:
    if v is None:
        return "—"
    s = fmt_value(metric, abs(float(v)))
    return ("+" if float(v) >= 0 else "−") + s


# ---------------------------------------------------------------------------
# Charts


def stage_chart(
    runs: Mapping[str, RunLike],
    *,
    gate: Any = None,
    metrics: Sequence[str] | None = None,
    title: str = "Metrics by stage",
    caption: str = "",
) -> Chart:
    """Runs side by side per metric, grouped by stage, with 95% interval error bars.

    0–1 metrics share a panel per stage; metrics with units (ms, USD, tokens)
    get a panel each. A gate threshold is drawn as a dashed line.
    """
    import matplotlib
    import numpy as np

    long = metrics_frame(runs, metrics)
    long = long[long["value"].notna()]
    labels = list(runs)
    thresholds = _thresholds(gate)
    panels: list[tuple[str, list[str], str]] = []
    for stage in [*STAGES, *sorted(set(long["stage"]) - set(STAGES))]:
        sub = long[(long["stage"] == stage)]
        bounded = [m for m in dict.fromkeys(sub["metric"]) if unit_of(m) == "0–1"]
        if bounded:
            panels.append((f"{stage}", bounded, "0–1"))
        for m in dict.fromkeys(sub["metric"]):
            if unit_of(m) != "0–1":
                panels.append((f"{stage}: {m}", [m], unit_of(m)))
    if not panels:
        panels = [("no measured metrics", [], "")]
    with matplotlib.rc_context(RC):
        ncols = min(3, len(panels))
        nrows = (len(panels) + ncols - 1) // ncols
        heights = [max(1.6, 0.42 * max(len(p[1]) for p in panels[r * ncols:(r + 1) * ncols]) * len(labels) + 1.0)
                   for r in range(nrows)]
        fig = _new_figure(4.1 * ncols, sum(heights) + 0.6)
        axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"height_ratios": heights})
        bar_h = 0.8 / max(1, len(labels))
        for k, (ptitle, names, unit) in enumerate(panels):
            ax = axes[k // ncols][k % ncols]
            y = np.arange(len(names))
            for j, label in enumerate(labels):
                pos = y - 0.4 + bar_h * (j + 0.5)
                vals, hi = _interval_bars(ax, pos, bar_h, label, j,
                                          [long[(long["run"] == label) & (long["metric"] == n)] for n in names])
                for yy, v, up, name in zip(pos, vals, hi, names, strict=True):
                    if v == v:
                        ax.annotate(_short_value(name, v), (v + up, yy), xytext=(4, 0), textcoords="offset points",
                                    va="center", fontsize=8, color="#1f2328", clip_on=False)
            for i, name in enumerate(names):
                if name in thresholds:
                    thr = thresholds[name][1]
                    ax.plot([thr, thr], [i - 0.45, i + 0.45], linestyle="--", color=FAIL_COLOUR, linewidth=1.6)
            ax.set_yticks(y, names)
            ax.invert_yaxis()
            ax.set_title(ptitle, loc="left")
            ax.set_xlabel(unit)
            if unit == "0–1":
                ax.set_xlim(0, 1.12)
                ax.set_xlabel("score or rate (0–1)")
        for k in range(len(panels), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles, leg_labels = axes[0][0].get_legend_handles_labels()
        if thresholds:
            from matplotlib.lines import Line2D

            handles.append(Line2D([0], [0], linestyle="--", color=FAIL_COLOUR))
            leg_labels.append("gate threshold")
        fig.legend(handles, leg_labels, loc="outside upper right", ncols=len(leg_labels), frameon=False)
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold")
    cap = caption or ("Bars: aggregate per run; whiskers: 95% interval (bootstrap, or Wilson for rates); "
                      "dashed red: gate threshold. Units on each axis.")
    return Chart.from_figure(fig, cap, alt=f"{title}: " + ", ".join(labels))


def slices_frame(runs: Mapping[str, RunLike], metric: str, tag: str | None = None) -> pd.DataFrame:
    """Per-slice values of one metric: rows slice, columns run (value, interval, n)."""
    import pandas as pd

    rows = []
    for label, run in runs.items():
        for key, ms in (metrics_of(run).get("slices") or {}).items():
            if tag and not key.startswith(f"{tag}="):
                continue
            e = (ms or {}).get(metric)
            if not e:
                continue
            rows.append({"slice": key, "run": label, "value": e.get("value"), "ci_low": e.get("ci_low"),
                         "ci_high": e.get("ci_high"), "n": e.get("n")})
    return pd.DataFrame(rows, columns=["slice", "run", "value", "ci_low", "ci_high", "n"])


def slice_table(runs: Mapping[str, RunLike], metric: str, *, tag: str | None = None, gate: Any = None) -> Styler:
    """One row per slice (category=…, risk=…, kind=…), runs side by side; misses of the gate threshold in red."""
    import pandas as pd

    df = slices_frame(runs, metric, tag)
    labels = list(runs)
    thr = _thresholds(gate).get(metric)
    rows = []
    flags: list[dict[str, bool]] = []
    for key in dict.fromkeys(df["slice"]):
        row: dict[str, Any] = {"slice": key}
        fl: dict[str, bool] = {}
        for label in labels:
            r = df[(df["slice"] == key) & (df["run"] == label)]
            if len(r):
                e = {k: (None if _isnan(v) else v) for k, v in r.iloc[0].to_dict().items()}
                row[label] = _fmt_interval(metric, e) + f"  (n={e.get('n') if e.get('n') is not None else '?'})"
                if thr is not None and e.get("value") is not None:
                    from labkit.gate import OPS

                    fl[label] = bool(OPS[thr[0]](float(e["value"] or 0.0), thr[1]))
            else:
                row[label] = "—"
        rows.append(row)
        flags.append(fl)
    out = pd.DataFrame(rows, columns=["slice", *labels])

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
    return _styler(out).apply(colour, axis=None).set_caption(cap)


def _interval_bars(ax: Any, pos: Any, bar_h: float, label: str, j: int,
                   rows: Sequence[pd.DataFrame]) -> tuple[list[float], list[float]]:
    """One run's horizontal bars with 95% interval whiskers; each row frame holds one
    aggregate (value, ci_low, ci_high) or none. Returns the values and upper whiskers."""
    vals, lo, hi = [], [], []
    for r in rows:
        v = float(r["value"].iloc[0]) if len(r) else math.nan
        cl = r["ci_low"].iloc[0] if len(r) else None
        ch = r["ci_high"].iloc[0] if len(r) else None
        vals.append(v)
        lo.append(0.0 if cl is None or _isnan(cl) else max(0.0, v - float(cl)))
        hi.append(0.0 if ch is None or _isnan(ch) else max(0.0, float(ch) - v))
    ax.barh(pos, vals, height=bar_h * 0.9, color=colour_for(label, j), label=label,
            xerr=[lo, hi], error_kw={"ecolor": "#333333", "capsize": 3, "elinewidth": 1})
    return vals, hi


def slice_chart(runs: Mapping[str, RunLike], metric: str, *, tag: str | None = None, gate: Any = None) -> Chart:
    """Per-slice bars of one metric with 95% intervals, runs side by side."""
    import matplotlib
    import numpy as np

    df = slices_frame(runs, metric, tag)
    df = df[df["value"].notna()]
    keys = list(dict.fromkeys(df["slice"]))
    labels = list(runs)
    thr = _thresholds(gate).get(metric)
    with matplotlib.rc_context(RC):
        fig = _new_figure(9.5, max(2.2, 0.17 * len(keys) * len(labels) + 1.2))
        ax = fig.add_subplot()
        y = np.arange(len(keys))
        bar_h = 0.8 / max(1, len(labels))
        for j, label in enumerate(labels):
            _interval_bars(ax, y - 0.4 + bar_h * (j + 0.5), bar_h, label, j,
                           [df[(df["slice"] == key) & (df["run"] == label)] for key in keys])
        if thr is not None:
            ax.axvline(thr[1], linestyle="--", color=FAIL_COLOUR, linewidth=1.4, label="gate threshold")
        ax.set_yticks(y, keys)
        ax.invert_yaxis()
        ax.set_xlabel(unit_of(metric))
        if unit_of(metric) == "0–1":
            ax.set_xlim(0, 1.05)
        ax.set_title(f"{metric} by slice", loc="left")
        ax.legend(loc="lower right", frameon=True)
    return Chart.from_figure(
        fig, f"{metric} per slice with 95% intervals; a slice of few cases has a wide interval.",
        alt=f"{metric} by slice")


def coverage_chart(dataset: Any, tags: Sequence[str] = ("category", "risk", "kind")) -> Chart:
    """Case counts by category, risk and kind (one panel each)."""
    from collections import Counter

    import matplotlib

    with matplotlib.rc_context(RC):
        fig = _new_figure(4.0 * len(tags), 3.4)
        axes = fig.subplots(1, len(tags), squeeze=False)[0]
        for ax, tag in zip(axes, tags, strict=True):
            counts = Counter(str(c.tags.get(tag) or "(none)") for c in dataset)
            names = sorted(counts, key=lambda k: (-counts[k], k))
            ax.barh(names, [counts[n] for n in names], color="#4C72B0")
            ax.invert_yaxis()
            ax.set_title(f"by {tag}", loc="left")
            ax.set_xlabel("cases")
            for i, n in enumerate(names):
                ax.text(counts[n], i, f" {counts[n]}", va="center", fontsize=9)
        fig.suptitle(f"Coverage of {len(dataset)} cases", x=0.01, ha="left", fontweight="bold")
    return Chart.from_figure(fig, "Number of cases per tag value. Thin bars are where the set needs more cases.",
                             alt="dataset coverage by category, risk and kind")


# ---------------------------------------------------------------------------
# Cases, flips and traces


def _short(text: Any, n: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def cases_table(dataset: Any, *, limit: int | None = None, caption: str = "") -> Styler:
    """The cases: id, question, gold, must_include and tags (all text escaped)."""
    import pandas as pd

    rows = []
    for c in list(dataset)[: limit or None]:
        rows.append({
            "id": c.id, "question": _short(c.question, 140),
            "gold": ", ".join(c.gold) or "—",
            "must_include": "; ".join(c.must_include) or "—",
            "category": c.tags.get("category", ""), "risk": c.tags.get("risk", ""), "kind": c.tags.get("kind", ""),
        })
    df = pd.DataFrame(rows, columns=["id", "question", "gold", "must_include", "category", "risk", "kind"])

    def risk(v: Any) -> str:
        return f"color:{FAIL_COLOUR};font-weight:600" if v == "high" else ""

    n = len(list(dataset))
    cap = caption or (f"{len(rows)} of {n} cases." if limit and n > limit else f"{n} cases.")
    return _styler(df).map(risk, subset=["risk"]).set_caption(cap)


def _trace_anchor(run_label: str, case_id: str) -> str:
    import hashlib

    return "trace-" + hashlib.sha256(f"{run_label}\x00{case_id}".encode()).hexdigest()[:12]


def flipped_table(comparison: Any, dataset: Any = None, *, limit: int = 30) -> Html:
    """The cases whose pass/fail flipped between runs, each linking to its traces below."""
    d = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    flips = list(d.get("flipped") or [])
    by_id = dataset.by_id() if dataset is not None and hasattr(dataset, "by_id") else {}
    if not flips:
        return Html("<p><em>No case changed from pass to fail or back.</em></p>")
    rows = []
    for f in flips[:limit]:
        cid = str(f.get("case_id"))
        case = by_id.get(cid)
        q = _short(case.question, 120) if case is not None else ""
        direction = f"{f.get('from')} → {f.get('to')}"
        col = FAIL_COLOUR if f.get("to") == "fail" else PASS_COLOUR
        metric = f.get("metric") or ""
        if f.get("cause"):
            metric = f"{metric} ({f['cause']})" if metric else str(f["cause"])
        rows.append(
            f"<tr><td><code>{html.escape(cid)}</code></td><td>{html.escape(q)}</td>"
            f"<td>{html.escape(str(metric))}</td>"
            f"<td style='color:{col};font-weight:700'>{html.escape(direction)}</td>"
            f"<td><a href='#{_trace_anchor('baseline', cid)}'>baseline</a> · "
            f"<a href='#{_trace_anchor('variant', cid)}'>variant</a></td></tr>"
        )
    more = f"<p><em>{len(flips) - limit} more not shown.</em></p>" if len(flips) > limit else ""
    return Html(
        "<table class='lk-flips'><thead><tr><th>case</th><th>question</th><th>metric</th>"
        "<th>change</th><th>traces</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + more
    )


def trace_details(runs: Mapping[str, RunLike], cases_or_comparison: Any, dataset: Any = None,
                  *, limit: int = 30) -> Html:
    """What each run did on the given cases: answer, retrieved ids, citations, status, latency.

    ``cases_or_comparison`` is a list of case ids or a comparison (its flipped
    cases). Each block has the anchor ``flipped_table`` links to. Text is escaped.
    """
    from labkit.runs import RunDir

    if isinstance(cases_or_comparison, str):
        case_ids: list[str] = [cases_or_comparison]
    elif hasattr(cases_or_comparison, "to_dict") or isinstance(cases_or_comparison, Mapping):
        d = cases_or_comparison.to_dict() if hasattr(cases_or_comparison, "to_dict") else cases_or_comparison
        case_ids = list(dict.fromkeys(str(f.get("case_id")) for f in d.get("flipped") or []))
    else:
        case_ids = [str(c) for c in cases_or_comparison]
    case_ids = case_ids[:limit]

    by_id = dataset.by_id() if dataset is not None and hasattr(dataset, "by_id") else {}
    results: dict[str, dict[str, Any]] = {}
    for label, run in runs.items():
        rd = run if isinstance(run, RunDir) else RunDir(run)
        results[label] = {r["case_id"]: r for r in rd.results()}
    blocks = []
    for cid in case_ids:
        case = by_id.get(cid)
        head = f"<h4 style='margin:.8rem 0 .2rem'><code>{html.escape(cid)}</code>"
        if case is not None:
            head += f" — {html.escape(_short(case.question, 160))}"
        head += "</h4>"
        parts = [head]
        for label, res in results.items():
            r = res.get(cid)
            anchor = _trace_anchor(label, cid)
            if r is None:
                parts.append(f"<div id='{anchor}'><strong>{html.escape(label)}</strong>: no result</div>")
                continue
            retrieved = ", ".join(str(x.get("id")) for x in (r.get("retrieved") or [])[:5]) or "—"
            cites = ", ".join(map(str, r.get("citations") or [])) or "—"
            lat = r.get("latency_ms")
            parts.append(
                f"<div id='{anchor}' class='lk-trace' style='border-left:4px solid {colour_for(label)};"
                f"padding:4px 10px;margin:4px 0;background:#f6f8fa'>"
                f"<strong>{html.escape(label)}</strong> · status {html.escape(str(r.get('status')))} · "
                f"latency {html.escape(fmt_value('latency_ms', lat))} · trace "
                f"<code>{html.escape(str(r.get('trace_id') or '—'))}</code><br>"
                f"<span style='color:{MUTED_COLOUR}'>retrieved:</span> {html.escape(retrieved)}<br>"
                f"<span style='color:{MUTED_COLOUR}'>cited:</span> {html.escape(cites)}<br>"
                f"<span style='color:{MUTED_COLOUR}'>answer:</span> {html.escape(_short(r.get('answer'), 600))}</div>"
            )
        blocks.append("".join(parts))
    if not blocks:
        return Html("<p><em>No traces to show.</em></p>")
    return Html("<div class='lk-traces'>" + "".join(blocks) + "</div>")


def answers_table(run: RunLike, dataset: Any, *, limit: int | None = None) -> Styler:
    """Question, answer, status and citations per case of one run (escaped)."""
    import pandas as pd

    from labkit.runs import RunDir

    rd = run if isinstance(run, RunDir) else RunDir(run)
    res = {r["case_id"]: r for r in rd.results()}
    rows = []
    for c in list(dataset)[: limit or None]:
        r = res.get(c.id, {})
        rows.append({"id": c.id, "question": _short(c.question, 120), "status": r.get("status", "—"),
                     "answer": _short(r.get("answer"), 220), "cited": ", ".join(r.get("citations") or []) or "—"})
    df = pd.DataFrame(rows, columns=["id", "question", "status", "answer", "cited"])
    return _styler(df).set_caption(f"Answers of run {rd.run_id} (first {len(rows)} cases).")


# ---------------------------------------------------------------------------
# Simulated-model notice and the run-metadata footer


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


def _git_sha(cwd: str | os.PathLike[str] | None = None) -> str:
    from labkit.gitinfo import git_sha

    return git_sha(cwd) or "unknown"


def run_metadata(params: Mapping[str, Any] | None = None, *, dataset: Any = None,
                 runs: Sequence[RunLike] = ()) -> dict[str, Any]:
    """The facts of the footer: parameters, dataset fingerprint(s), git sha, labkit version, UTC time."""
    import labkit

    fps: dict[str, str] = {}
    if dataset is not None:
        if hasattr(dataset, "fingerprint"):
            fps[str(getattr(dataset, "path", None) or "dataset")] = str(dataset.fingerprint)
        else:
            from labkit.cases import load_cases

            ds = load_cases(dataset)
            fps[str(dataset)] = ds.fingerprint
    run_ids = []
    git_sha = ""
    for run in runs:
        man: Mapping[str, Any] = {}
        if hasattr(run, "manifest"):
            man = run.manifest
        elif isinstance(run, str | os.PathLike):
            from labkit.runs import RunDir

            man = RunDir(run).manifest
        if man:
            run_ids.append(str(man.get("run_id", "")))
            mds = man.get("dataset") or {}
            if isinstance(mds, Mapping) and mds.get("fingerprint") and str(mds["fingerprint"]) not in fps.values():
                fps[str(mds.get("path") or "dataset")] = str(mds["fingerprint"])
            git_sha = git_sha or str(man.get("git_sha") or "")
    return {
        "parameters": dict(params or {}),
        "dataset_fingerprints": fps,
        "runs": run_ids,
        "git_sha": git_sha or _git_sha(),
        "labkit_version": labkit.__version__,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def run_footer(params: Mapping[str, Any] | None = None, *, dataset: Any = None,
               runs: Sequence[RunLike] = ()) -> Html:
    """The run-metadata footer: parameters, dataset fingerprint, git sha, labkit version, UTC time."""
    meta = run_metadata(params, dataset=dataset, runs=runs)
    prm = "".join(
        f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(repr(v))}</code></td></tr>"
        for k, v in meta["parameters"].items()
    ) or "<tr><td colspan='2'><em>none</em></td></tr>"
    fps = "<br>".join(
        f"{html.escape(p)}: <code>{html.escape(fp[:16])}…</code>" for p, fp in meta["dataset_fingerprints"].items()
    ) or "—"
    runs_txt = ", ".join(html.escape(r) for r in meta["runs"]) or "—"
    return Html(
        f"<footer class='lk-footer' style='margin-top:28px;border-top:1px solid #d1d9e0;padding-top:10px;"
        f"color:{MUTED_COLOUR};font-size:.85rem'>"
        "<strong>Run metadata</strong>"
        "<table style='font-size:.85rem'><tbody>"
        f"<tr><td>generated</td><td>{html.escape(meta['generated_at'])}</td></tr>"
        f"<tr><td>labkit version</td><td>{html.escape(meta['labkit_version'])}</td></tr>"
        f"<tr><td>git sha</td><td><code>{html.escape(meta['git_sha'])}</code></td></tr>"
        f"<tr><td>dataset fingerprint</td><td>{fps}</td></tr>"
        f"<tr><td>runs</td><td>{runs_txt}</td></tr>"
        "</tbody></table>"
        "<strong>Parameters</strong>"
        f"<table style='font-size:.85rem'><tbody>{prm}</tbody></table></footer>"
    )
