"""The experiment as text (``labkit experiment``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.display import fmt_value
from labkit.experiment.sequential import MIN_N

if TYPE_CHECKING:
    from labkit.experiment.analysis import Experiment

#: per-arm figures in display order, with the unit each is shown in
FIGURES = (("success_rate", "success rate"), ("user_rating", "user rating (1-5)"), ("error_rate", "error rate"),
           ("latency_p50_ms", "latency p50"), ("latency_p95_ms", "latency p95"),
           ("cost_per_request_usd", "cost per request"))


def _fmt(metric: str, v: float | None) -> str:
    if metric == "user_rating":
        return "—" if v is None else f"{v:.2f}"
    return fmt_value(metric, v)


def experiment_text(e: Experiment) -> str:
    label = "SIMULATED canary traffic: " if e.simulated else ""
    lines = [f"{label}experiment {e.control} (control) vs {e.candidate} (candidate), arms by {e.arm_by}, "
             f"stage {e.rules.stage} of {e.rules.path}",
             f"decision: {e.action.upper()}" + (f" at hour {e.decided_at_hour:g}" if e.decided_at_hour else "")
             + f": {e.reason}", ""]
    head = f"{'figure':<20}" + "".join(f"{a[:38]:>40}" for a in (e.control, e.candidate))
    lines += [head + "   (value [95% interval], n)", "-" * len(head)]
    for key, name in FIGURES:
        cells = []
        for arm in (e.control, e.candidate):
            f = e.figures[arm][key]
            cells.append(f"{_fmt(key, f.value)} [{_fmt(key, f.ci_low)} – {_fmt(key, f.ci_high)}] n={f.n}")
        lines.append(f"{name:<20}" + "".join(f"{c:>40}" for c in cells))
    lines += ["", f"sequential test: mSPRT (normal mixture, tau={e.tau:g}), alpha={e.alpha:g}, always-valid "
              f"interval of the success-rate difference (candidate - control), looked at every hour:"]
    lines.append(f"{'look':>5}{'hours':>7}{'n_ctl':>7}{'n_cand':>7}{'delta':>9}  {'always-valid 95% CI':<20}"
                 f"{'p':>7}  action")
    records = e.looks.to_dict("records")
    shown = records if e.decided_at_hour is None else [r for r in records if r["hours"] <= e.decided_at_hour]
    for r in shown:
        ci = (f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if r["ci_low"] == r["ci_low"]
              else f"(n < {MIN_N} per arm)")
        d = f"{r['delta']:+.3f}" if r["delta"] == r["delta"] else "—"
        trig = f" ({r['triggers_fired']})" if r["triggers_fired"] else ""
        lines.append(f"{r['look']:>5}{r['hours']:>7g}{r['n_control']:>7}{r['n_candidate']:>7}{d:>9}  {ci:<20}"
                     f"{r['p_value']:>7.3f}  {r['action']}{trig}")
    if len(shown) < len(records):
        lines.append(f"({len(records) - len(shown)} later look(s) after the decision: --json lists them)")
    return "\n".join([*lines, *e.notes])
