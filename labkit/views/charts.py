"""Charts of runs and datasets: metrics by stage, a metric by slice, dataset coverage.

Each returns a :class:`~labkit.views.elements.Chart` (a PNG inline, with a caption).
Bars carry 95% interval whiskers; a gate threshold is a dashed line.
matplotlib and numpy are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_COLOUR,
    INK,
    PALETTE,
    WHISKER,
    colour_for,
    fmt_short,
    is_nan,
    unit_of,
)
from labkit.views.elements import RC, Chart, new_figure
from labkit.views.frames import STAGES, RunLike, gate_thresholds, metrics_frame, slices_frame

if TYPE_CHECKING:
    import pandas as pd


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
    thresholds = gate_thresholds(gate)
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
        fig = new_figure(4.1 * ncols, sum(heights) + 0.6)
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
                        ax.annotate(f"{fmt_short(name, v)}{_n_label(long, label, name)}", (v + up, yy),
                                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8, color=INK,
                                    clip_on=False)
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
    cap = caption or ("Bars: aggregate per run, labelled with its value and the n cases it rests on; whiskers: "
                      "95% interval (bootstrap, or Wilson for rates); dashed red: gate threshold. Units on each axis.")
    return Chart.from_figure(fig, cap, alt=f"{title}: " + ", ".join(labels))


def _n_label(long: pd.DataFrame, run: str, metric: str) -> str:
    """`` n=62`` for a bar's label: the cases its aggregate rests on ('' when unknown)."""
    n = long[(long["run"] == run) & (long["metric"] == metric)]["n"]
    return "" if not len(n) or n.iloc[0] is None or is_nan(n.iloc[0]) else f" n={int(n.iloc[0])}"


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
        lo.append(0.0 if cl is None or is_nan(cl) else max(0.0, v - float(cl)))
        hi.append(0.0 if ch is None or is_nan(ch) else max(0.0, float(ch) - v))
    ax.barh(pos, vals, height=bar_h * 0.9, color=colour_for(label, j), label=label,
            xerr=[lo, hi], error_kw={"ecolor": WHISKER, "capsize": 3, "elinewidth": 1})
    return vals, hi


def slice_chart(runs: Mapping[str, RunLike], metric: str, *, tag: str | None = None, gate: Any = None) -> Chart:
    """Per-slice bars of one metric with 95% intervals, runs side by side."""
    import matplotlib
    import numpy as np

    df = slices_frame(runs, metric, tag)
    df = df[df["value"].notna()]
    keys = list(dict.fromkeys(df["slice"]))
    labels = list(runs)
    thr = gate_thresholds(gate).get(metric)
    with matplotlib.rc_context(RC):
        fig = new_figure(9.5, max(2.2, 0.17 * len(keys) * len(labels) + 1.2))
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
        handles, leg = ax.get_legend_handles_labels()
        fig.legend(handles, leg, loc="outside upper right", ncols=len(leg), frameon=False)
    return Chart.from_figure(
        fig, f"{metric} per slice with 95% intervals; a slice of few cases has a wide interval.",
        alt=f"{metric} by slice")


def coverage_chart(dataset: Any, tags: Sequence[str] = ("category", "risk", "kind")) -> Chart:
    """Case counts by category, risk and kind (one panel each)."""
    from collections import Counter

    import matplotlib

    with matplotlib.rc_context(RC):
        fig = new_figure(4.0 * len(tags), 3.4)
        axes = fig.subplots(1, len(tags), squeeze=False)[0]
        for ax, tag in zip(axes, tags, strict=True):
            counts = Counter(str(c.tags.get(tag) or "(none)") for c in dataset)
            names = sorted(counts, key=lambda k: (-counts[k], k))
            ax.barh(names, [counts[n] for n in names], color=PALETTE["baseline"])
            ax.invert_yaxis()
            ax.set_title(f"by {tag}", loc="left")
            ax.set_xlabel("cases")
            for i, n in enumerate(names):
                ax.text(counts[n], i, f" {counts[n]}", va="center", fontsize=9)
        fig.suptitle(f"Coverage of {len(dataset)} cases", x=0.01, ha="left", fontweight="bold")
    return Chart.from_figure(fig, "Number of cases per tag value. Thin bars are where the set needs more cases.",
                             alt="dataset coverage by category, risk and kind")

