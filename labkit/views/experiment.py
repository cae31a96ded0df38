"""Views of the online experiment (the canary section of notebook 05): the decision as a callout
(not a verdict: the notebook's verdict stays the scorecard's), the per-arm table, the
always-valid interval by hour, the simulation of the test's error rate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.display import FAIL_COLOUR, PASS_COLOUR, WARN_COLOUR, WHISKER, Html
from labkit.experiment.sequential import MIN_N
from labkit.views.elements import (
    Chart,
    callout,
    chart_style,
    kind_of,
    new_figure,
    styler,
    with_caption,
)

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

_KIND = {"roll back": "fail", "promote": "pass", "stop": "warn", "continue": "info"}


def simulated_canary_notice(e: Any) -> Html:
    """A visible label when the traffic is simulated (every shipped canary record says so); None (no
    canary traces given) says there is no online experiment here."""
    if e is None:
        return callout("No canary traces were given (the canary_traces parameter, or labkit scorecard "
                       "--no-canary): this scorecard shows no online experiment.", kind="info", title="No canary.")
    if not e.simulated:
        return Html("")
    return callout("The canary traffic below is SIMULATED (data/canary/, made by "
                   "scripts/make_simulated_canary.py): two arms with a planted drop in good answers. It shows "
                   "how the analysis works, not how real users behaved.", kind="warn", title="Simulated canary.")


def experiment_decision(e: Any) -> Html:
    """The decision (continue, stop, promote, roll back) with its rule and the look it was made at."""
    when = f" at hour {e.decided_at_hour:g}" if e.decided_at_hour is not None else ""
    sim = "SIMULATED canary: " if e.simulated else ""
    return callout(f"{e.reason}.", kind=_KIND.get(e.action, "info"),
                   title=f"{sim}{e.action.upper()}{when} ({e.candidate} vs {e.control}, stage {e.rules.stage}).")


def arms_table(e: Any) -> Styler:
    """Per-arm figures with their 95% interval and n, as of the decision look."""
    import pandas as pd

    from labkit.experiment.report import FIGURES, _fmt

    rows, kinds = [], []
    for key, name in FIGURES:
        kind = _figure_kind(key)
        row = {"figure": f"{name} (0–1)" if kind == "score" else name}
        for arm, role in ((e.control, "control"), (e.candidate, "candidate")):
            f = e.figures[arm][key]
            row[f"{role}: {arm}"] = f"{_fmt(key, f.value)} [{_fmt(key, f.ci_low)} – {_fmt(key, f.ci_high)}]"
            row[f"n ({role})"] = f"{f.n:,}"
        rows.append(row)
        kinds.append(kind)
    df = pd.DataFrame(rows)
    cols = {c: (kinds if ":" in c else "count") for c in df.columns if c != "figure"}
    note = e.notes[0] if e.notes else ""
    return with_caption(
        styler(df, cols),
        f"Value [95% interval] per arm ({note}); rates: Wilson, rating, latency and cost: bootstrap. These are "
        "fixed-n intervals; the decision uses the always-valid interval of the chart below.")


def _figure_kind(key: str) -> str:
    """The number kind of an experiment figure: the 1–5 user rating, else its metric's unit."""
    return "rating" if key == "user_rating" else kind_of(key)


def looks_chart(e: Any) -> Chart:
    """The success-rate difference (candidate − control) at each hourly look with its always-valid
    95% interval; 0 and −margin as lines; the decision look marked."""
    import numpy as np

    lk = e.looks
    ok = np.isfinite(lk["ci_low"].to_numpy(dtype=float))
    x, d = lk["hours"].to_numpy(dtype=float), lk["delta"].to_numpy(dtype=float)
    lo, hi = lk["ci_low"].to_numpy(dtype=float), lk["ci_high"].to_numpy(dtype=float)
    with chart_style():
        fig = new_figure(8.5, 3.4)
        ax = fig.subplots()
        ax.fill_between(x[ok], lo[ok], hi[ok], color=WARN_COLOUR, alpha=0.18, label="always-valid 95% interval")
        ax.plot(x[ok], d[ok], color=WHISKER, marker="o", markersize=3, label="difference")
        ax.axhline(0, color=PASS_COLOUR, linewidth=1.2)
        ax.axhline(-e.margin, color=FAIL_COLOUR, linestyle="--", linewidth=1.2, label=f"-margin ({e.margin:g})")
        if e.decided_at_hour is not None:
            ax.axvline(e.decided_at_hour, color=FAIL_COLOUR if e.action == "roll back" else PASS_COLOUR,
                       linestyle=":", linewidth=2, label=f"decision: {e.action}")
        ax.set_xlabel("hours since the canary started (one look per hour)")
        ax.set_ylabel("success rate difference (0–1)")
        ax.legend(loc="lower right", frameon=False, fontsize=9)
        ax.set_title(f"{e.candidate} − {e.control}: success rate, mSPRT at alpha {e.alpha:g}", loc="left")
    return Chart.from_figure(fig, f"Each look uses every request so far (n per arm in the table of looks); no "
                             f"test before {MIN_N} requests per arm. The interval holds at every look at once, so "
                             "looking every hour does not inflate the error rate.", alt="canary looks")


def simulation_table(aa: Any, planted: Any) -> Styler:
    """The test's error rate over seeded A/A experiments and its power on the planted difference."""
    import pandas as pd

    def row(what: str, r: Any) -> dict[str, Any]:
        med = "—" if r.median_hours_to_decision is None else f"{r.median_hours_to_decision:g} h"
        return {"simulated experiments": what, "n": f"{r.n_experiments:,}", "hourly looks": f"{r.hours:,}",
                "interval excluded 0 (share, 0–1)": f"{r.reject_rate:.3f}",
                "rolled back (share, 0–1)": f"{r.rollback_rate:.3f}",
                "promoted (share, 0–1)": f"{r.promote_rate:.3f}", "median time to decision": med}

    df = pd.DataFrame([row("A/A (no difference)", aa), row("planted difference", planted)])
    kinds = {c: "count" if c in ("n", "hourly looks") else "h" if c.startswith("median") else "score"
             for c in df.columns if c != "simulated experiments"}
    return with_caption(styler(df, kinds), "Seeded simulations of the same test and rule (labkit.experiment.simulate): "
                        "under A/A the interval excludes 0 in at most alpha of the experiments.")
