"""Views of the run history (notebook 06): the verdict, the table, trend charts by run time.

Each dataset series is drawn on its own panel row: runs on different datasets are never
joined by a line. A run where a metric regressed from the previous run of its series (the
paired test of labkit compare) is a red marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labkit.display import FAIL_COLOUR, Html, Verdict, colour_for, unit_of
from labkit.views.elements import (
    NOWRAP,
    Chart,
    bullet_list,
    chart_style,
    kind_of,
    new_figure,
    styler,
    with_caption,
)

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from labkit.history import History


def history_verdict(h: Any) -> Verdict:
    """WARN naming the regressions between consecutive runs, or what could not be checked (a run
    refused, a pair not compared: no verdict, as ``labkit history`` says), else PASS; INFO with
    fewer than two runs."""
    n = len(h.runs)
    if n < 2 and not h.unchecked:
        return Verdict("info", f"history: {n} run(s), nothing to compare", "")
    split = f" on {len(h.series)} dataset series (never drawn as one line)" if len(h.series) > 1 else ""
    if h.unchecked and not h.regressions:
        return Verdict("warn", f"history: no verdict: {len(h.unchecked)} run(s) or pair(s) could not be checked{split}",
                       "; ".join(h.unchecked))
    if not h.regressions:
        return Verdict("pass", f"history: no regression across {n} runs{split}",
                       "No metric regressed between consecutive runs on the same dataset (paired tests, "
                       "Holm-adjusted, as labkit compare).")
    runs = list(dict.fromkeys(r.run_id for r in h.regressions))
    what = "; ".join(f"{rid}: {', '.join(g.metric for g in h.regressions if g.run_id == rid)}" for rid in runs)
    return Verdict("warn", f"history: {len(h.regressions)} metric regression(s) in {len(runs)} of {n} runs{split}",
                   what)


def history_table(h: History, metrics: Sequence[str] | None = None, caption: str = "") -> Styler:
    """One row per run in time order: each metric as value [95% interval] n=cases and the metrics
    flagged as regressed, then the run's dataset series, prompt version, model, config hash, gate."""
    from labkit.history import DEFAULT_METRICS
    from labkit.history.table import history_frame

    names = list(metrics or DEFAULT_METRICS)
    df = history_frame(h, names)
    kinds: dict[str, Any] = {"created_at (UTC)": "time"}
    for m in names:  # a metric not recorded in a run is text, not a number of the metric's kind
        kinds[_with_unit(m)] = ["" if str(v).startswith("—") else kind_of(m) for v in df.get(m, [])]
    # the metrics next to the run they belong to; what the run was made of after them
    first = [c for c in ("created_at (UTC)", "run", *names, "regressed vs previous run") if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first]]
    st = styler(df.rename(columns={m: _with_unit(m) for m in names}), kinds)

    def flag(v: Any) -> str:
        return f"color:{FAIL_COLOUR};font-weight:600" if v not in ("—", "", None) else ""

    st = st.map(flag, subset=["regressed vs previous run"])
    whole: list[Any] = [c for c in ("run", "prompt_version", "model") if c in df.columns]
    if whole:  # names never break at their hyphens; the table scrolls inside its card instead
        st = st.map(lambda _: NOWRAP, subset=whole)
    return with_caption(st, caption or "Runs in time order; each metric is value [95% interval] n=cases. "
                        "A new dataset series starts where the dataset fingerprint changes.")


def _with_unit(column: str) -> str:
    """A metric column's header with its unit where its values do not carry one (scores, rates)."""
    return f"{column} (0–1)" if unit_of(column) == "0–1" else column


def regressions_table(h: History) -> Html | Styler:
    """The flagged regressions: run, the run it is compared with, metric, paired delta with its 95%
    interval, Holm-adjusted p-value and the n of paired cases."""
    import pandas as pd

    from labkit.display import fmt_signed, fmt_value

    if not h.regressions:
        return bullet_list([], empty="No metric regressed between consecutive runs of a series.")
    df = pd.DataFrame([{"run": g.run_id, "compared with": g.baseline_run_id, "metric": g.metric,
                        "unit": unit_of(g.metric), "delta": fmt_signed(g.metric, g.delta),
                        "95% interval": f"[{fmt_value(g.metric, g.ci_low)} – {fmt_value(g.metric, g.ci_high)}]",
                        "p (Holm)": "—" if g.p_adjusted is None else f"{g.p_adjusted:.3g}", "n paired": g.n}
                       for g in h.regressions])
    per_row = [kind_of(g.metric) for g in h.regressions]
    kinds = {"delta": per_row, "95% interval": per_row, "p (Holm)": "p", "n paired": "count"}
    return with_caption(styler(df, kinds), "Regressed between consecutive runs on the same dataset (paired by case id).")


def series_notes(h: History) -> Html:
    """The dataset series and the notes (skipped paths, comparisons not made)."""
    counts = h.runs["series"].value_counts()
    items = [f"series {s}: {int(counts[s])} run(s)" for s in h.series] + [*h.notes, *h.unchecked]
    return bullet_list(items)


def _panel(ax: Any, h: History, series: str, metric: str, colour: str) -> None:
    import numpy as np

    from labkit.history.table import clean

    order = {p: i for i, p in enumerate(h.runs["path"], 1)}  # the run's place in time across all series
    runs = h.runs[h.runs["series"] == series]
    xs, vals, lo, hi, labels, bad = [], [], [], [], [], []
    for r in runs.to_dict("records"):
        x = order[r["path"]]
        e = h.value(r["path"], metric)
        if e is None or e.get("value") is None:
            continue
        v = float(e["value"])
        xs.append(x)
        vals.append(v)
        lo.append(v - float(e["ci_low"]) if e.get("ci_low") is not None else 0.0)
        hi.append(float(e["ci_high"]) - v if e.get("ci_high") is not None else 0.0)
        labels.append(str(clean(r["prompt_version"]) or r["run"]))  # (pandas gives an unrecorded one as NaN)
        bad.append(metric in h.regressed(r["path"]))
    if not xs:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        return
    ax.errorbar(xs, vals, yerr=[lo, hi], color=colour, marker="o", capsize=3, linewidth=1.5)
    flagged = np.array(bad)
    if flagged.any():
        ax.scatter(np.array(xs)[flagged], np.array(vals)[flagged], s=110, facecolors="none",
                   edgecolors=FAIL_COLOUR, linewidths=2.2, zorder=5, label="regressed vs previous run")
    ax.set_xticks(xs, labels, rotation=20, ha="right")
    ax.set_ylabel(unit_of(metric))


def trend_chart(h: History, metrics: Sequence[str] | None = None) -> Chart:
    """Each metric (columns) by run time for each dataset series (rows), with 95% interval
    whiskers; regressions circled in red. Series are separate rows: never one line."""
    from labkit.history import DEFAULT_METRICS

    names = list(metrics or DEFAULT_METRICS)
    series = h.series or ["no runs"]
    with chart_style():
        fig = new_figure(3.3 * len(names), 2.8 * len(series) + 0.6)
        axes = fig.subplots(len(series), len(names), squeeze=False)
        for i, s in enumerate(series):
            for j, m in enumerate(names):
                ax = axes[i][j]
                if len(h.runs):
                    _panel(ax, h, s, m, colour_for(s, i))
                ax.set_title(f"{m}\n{s}" if j == 0 else m, loc="left", fontsize=10)
        fig.suptitle("Metrics by run time, one row per dataset series", x=0.01, ha="left", fontweight="bold")
    cap = ("x: runs in time order (labelled by prompt version); y: the run's aggregate with its 95% interval; "
           "red circle: regressed from the previous run of the same series (paired test). Each row is one "
           "dataset fingerprint: runs on different datasets are not joined.")
    return Chart.from_figure(fig, cap, alt="history trends: " + ", ".join(names))
