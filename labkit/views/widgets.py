"""Threshold tuning: one slider per gate threshold, a live verdict, and a save button.

:class:`ThresholdTuner` holds a gate and one run's metrics (and its per-case
scores). Its logic is plain methods — ``set_threshold``, ``evaluate``,
``verdict``, ``cases_passing``, ``save`` — testable without a browser or a
kernel; ``widget()`` only wires ipywidgets sliders to those methods, and
``show(interactive=False)`` renders the same views as static HTML for a batch
run (the exported report shows them).

"Cases passing" reads every absolute check case by case: a per-case metric
(faithfulness, retrieval_hit_rate ...) against its threshold, latency
percentiles as the case's own ``latency_ms``, cost checks as the case's own
``cost_usd``; a case passes when every check it is measured on passes
(unmeasured is neither pass nor fail). Aggregate-only checks with no per-case
reading are left out of that count and named.

ipywidgets and pandas are imported inside the methods that use them.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labkit.display import (
    FAIL_BG,
    FAIL_COLOUR,
    MUTED_COLOUR,
    PALETTE,
    PASS_BG,
    PASS_COLOUR,
    VERDICT_MIME,
    Verdict,
    fmt_value,
    no_math,
    unit_of,
)
from labkit.errors import ConfigError

# Per-case column that reads an aggregate check case by case.
CASE_COLUMNS = {"latency_p50_ms": "latency_ms", "latency_p95_ms": "latency_ms", "latency_p99_ms": "latency_ms",
                "cost_per_success": "cost_usd", "total_cost_usd": "cost_usd"}


@dataclass(frozen=True)
class SliderSpec:
    """The range of one threshold's slider."""

    key: str
    metric: str
    statistic: str
    op: str
    minimum: float
    maximum: float
    step: float
    unit: str


def _slider_spec(key: str, check: Any, observed: float | None) -> SliderSpec:
    unit = unit_of(check.metric)
    thr = float(check.threshold)
    if unit == "0–1":
        return SliderSpec(key, check.metric, check.statistic, check.op, 0.0, 1.0, 0.01, unit)
    top = max(thr * 2, (observed or 0.0) * 1.5, 1e-9)
    if unit == "ms":
        top = math.ceil(top / 100) * 100
        step = 10.0
    elif unit == "USD":
        step = 10 ** math.floor(math.log10(top / 200)) if top > 0 else 0.001
        top = math.ceil(top / step) * step
    else:
        step = max(top / 200, 1e-6)
    return SliderSpec(key, check.metric, check.statistic, check.op, 0.0, float(top), float(step), unit)


class TunerView:
    """The static view: banner, per-check table and cases passing; carries the verdict."""

    def __init__(self, html_text: str, verdict: Verdict) -> None:
        self.html = html_text
        self.verdict = verdict

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/html": no_math(self.html), "text/plain": f"[{self.verdict.status.upper()}] {self.verdict.title}",
                VERDICT_MIME: self.verdict.to_dict()}

    def _repr_html_(self) -> str:
        return no_math(self.html)


class ThresholdTuner:
    """Tune a gate's absolute thresholds against one run.

    ``gate`` is a Gate (or a YAML path); ``run`` a RunDir, run path, or a
    metrics.json mapping; ``scores`` the per-case scores (default: the run's
    scores.csv when ``run`` is a run directory).
    """

    def __init__(self, gate: Any, run: Any, *, scores: Any = None,
                 out_path: str | os.PathLike[str] = "outputs/gates/tuned_gate.yaml") -> None:
        from labkit.views.frames import as_gate, metrics_of

        self.gate = as_gate(gate)
        self.metrics = metrics_of(run)
        if scores is None and not isinstance(run, Mapping):
            try:
                scores = run.scores() if hasattr(run, "scores") else None
                if scores is None:
                    from labkit.runs import RunDir

                    scores = RunDir(run).scores()
            except FileNotFoundError:
                scores = None
        self.scores = scores
        self.out_path = Path(out_path)
        if not self.gate.checks:
            raise ConfigError("the gate has no absolute checks to tune", field="checks")
        self.keys: list[str] = []
        for c in self.gate.checks:
            key = c.metric if c.statistic == "value" else f"{c.metric}[{c.statistic}]"
            n = 2
            base = key
            while key in self.keys:
                key, n = f"{base}#{n}", n + 1
            self.keys.append(key)
        self.thresholds: dict[str, float] = {k: float(c.threshold) for k, c in zip(self.keys, self.gate.checks, strict=True)}
        from labkit.gate import observed as _observed

        self.specs = {
            k: _slider_spec(k, c, _observed(self.metrics, c.metric, c.statistic)[0])
            for k, c in zip(self.keys, self.gate.checks, strict=True)
        }
        self.sliders: dict[str, Any] = {}
        self._view_widget: Any = None
        self._status: Any = None

    # ---- logic ---------------------------------------------------------------------------------
    def set_threshold(self, key: str, value: float) -> None:
        """Set one threshold by slider key (metric, or ``metric[ci_low]``)."""
        if key not in self.thresholds:
            raise ConfigError(f"no threshold {key!r} in gate {self.gate.name}", field="threshold", known=self.keys)
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"threshold must be a finite number, got {value!r}", field=key)
        self.thresholds[key] = v
        slider = self.sliders.get(key)
        if slider is not None and slider.value != v:
            slider.value = v  # the observer refreshes the views

    def set_thresholds(self, values: Mapping[str, float]) -> None:
        """Set several thresholds; keys are slider keys or metric names (every check on that metric)."""
        for name, v in values.items():
            if name in self.thresholds:
                self.set_threshold(name, v)
                continue
            hits = [k for k, c in zip(self.keys, self.gate.checks, strict=True) if c.metric == name]
            if not hits:
                raise ConfigError(f"no threshold {name!r} in gate {self.gate.name}", field="threshold",
                                  known=self.keys)
            for k in hits:
                self.set_threshold(k, v)

    def current_gate(self) -> Any:
        """The gate with the thresholds as set now."""
        checks = tuple(replace(c, threshold=self.thresholds[k])
                       for k, c in zip(self.keys, self.gate.checks, strict=True))
        return replace(self.gate, checks=checks)

    def evaluate(self) -> Any:
        """The gate report on the run's metrics with the current thresholds."""
        return self.current_gate().thresholds_only().evaluate(self.metrics)  # regression needs a baseline

    def verdict(self) -> Verdict:
        rep = self.evaluate()
        failed = [c.name for c in rep.checks if not c.passed]
        passing, total = self.cases_passing()
        cases = f" {passing} of {total} cases pass every check they are measured on." if total else ""
        if rep.passed:
            return Verdict("pass", f"gate passes at these thresholds (all {len(rep.checks)} checks pass)",
                           cases.strip())
        return Verdict("fail", f"gate fails at these thresholds ({len(failed)} of {len(rep.checks)} checks fail)",
                       f"Failed: {', '.join(failed)}.{cases}")

    def per_case_columns(self) -> dict[str, str]:
        """Slider key -> the scores column that reads that check case by case."""
        if self.scores is None:
            return {}
        cols = set(self.scores.columns)
        out: dict[str, str] = {}
        for k, c in zip(self.keys, self.gate.checks, strict=True):
            col = c.metric if c.metric in cols else CASE_COLUMNS.get(c.metric)
            if col is not None and col in cols:
                out[k] = col
        return out

    def case_results(self) -> Any:
        """A DataFrame: one row per case, one True/False/None column per check with a per-case reading."""
        import pandas as pd

        from labkit.gate import OPS

        if self.scores is None:
            return pd.DataFrame()
        df = pd.DataFrame({"case_id": self.scores["case_id"].astype(str)})
        for k, col in self.per_case_columns().items():
            op = self.specs[k].op
            thr = self.thresholds[k]
            vals = pd.to_numeric(self.scores[col], errors="coerce")
            df[k] = [None if (v is None or v != v) else bool(OPS[op](float(v), thr)) for v in vals]
        return df

    def cases_passing(self) -> tuple[int, int]:
        """(cases passing every check they are measured on, cases)."""
        df = self.case_results()
        if df.empty:
            return 0, 0
        checks = [c for c in df.columns if c != "case_id"]
        n = 0
        for _, row in df.iterrows():
            if all(row[c] is not False for c in checks if row[c] is not None):
                n += 1
        return n, len(df)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the gate with the current thresholds as YAML."""
        p = Path(path) if path is not None else self.out_path
        p.parent.mkdir(parents=True, exist_ok=True)
        out = self.current_gate().to_yaml(p)
        return Path(out) if out is not None else p

    # ---- views -----------------------------------------------------------------------------------
    def view_html(self) -> str:
        """Banner, per-check table with the case-level pass counts, as HTML (escaped)."""
        rep = self.evaluate()
        verdict = self.verdict()
        cases = self.case_results()
        rows = []
        for k, c in zip(self.keys, rep.checks, strict=False):
            per_case = "—"
            if k in cases.columns:
                col = cases[k]
                measured = [v for v in col if v is not None]
                per_case = f"{sum(1 for v in measured if v)} / {len(measured)}"
            style = (f"background:{PASS_BG};color:{PASS_COLOUR}" if c.passed
                     else f"background:{FAIL_BG};color:{FAIL_COLOUR}")
            rows.append(
                f"<tr><td><code>{html.escape(k)}</code></td>"
                f"<td>{html.escape(str(c.op))} {html.escape(fmt_value(c.metric or '', c.threshold))}</td>"
                f"<td>{html.escape(fmt_value(c.metric or '', c.observed))}</td>"
                f"<td style='{style};font-weight:700'>{'pass' if c.passed else 'FAIL'}</td>"
                f"<td>{html.escape(per_case)}</td></tr>"
            )
        passing, total = self.cases_passing()
        no_case = [k for k in self.keys if k not in self.per_case_columns()]
        note = (f"<p style='color:{MUTED_COLOUR};font-size:.85rem'>No per-case reading for: "
                f"{html.escape(', '.join(no_case))}.</p>") if no_case else ""
        return (
            verdict.to_html()
            + "<table class='lk-tuner'><thead><tr><th>threshold</th><th>must be</th><th>observed</th>"
            "<th>check</th><th>cases meeting it</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + f"<p class='lk-cases-passing'><strong>{passing} of {total}</strong> cases pass every check "
            "they are measured on.</p>" + note
        )

    def static_view(self) -> TunerView:
        return TunerView(self.view_html(), self.verdict())

    def widget(self) -> Any:
        """ipywidgets: one slider per threshold, the live view, and a save button."""
        import ipywidgets as w

        self.sliders = {}
        for k in self.keys:
            sp = self.specs[k]
            slider = w.FloatSlider(
                value=self.thresholds[k], min=min(sp.minimum, self.thresholds[k]),
                max=max(sp.maximum, self.thresholds[k]), step=sp.step,
                description=k, readout_format=".3f" if sp.unit == "0–1" or sp.unit == "USD" else ".0f",
                continuous_update=False, style={"description_width": "180px"},
                layout=w.Layout(width="560px"),
            )
            slider.observe(self._on_slide, names="value")
            self.sliders[k] = slider
        self._view_widget = w.HTML(value=no_math(self.view_html()))
        self._status = w.HTML(value="")
        button = w.Button(description="Save thresholds", icon="save", button_style="primary",
                          tooltip=f"write the gate with these thresholds to {self.out_path}")
        button.on_click(self._on_save)
        return w.VBox([*self.sliders.values(), self._view_widget, w.HBox([button, self._status])])

    def _on_slide(self, change: Mapping[str, Any]) -> None:
        owner = change.get("owner")
        key = getattr(owner, "description", None)
        if key in self.thresholds:
            self.thresholds[key] = float(change["new"])
        self.refresh()

    def _on_save(self, _button: Any = None) -> None:
        p = self.save()
        if self._status is not None:
            self._status.value = f"<span>saved to <code>{html.escape(str(p))}</code></span>"

    def refresh(self) -> None:
        if self._view_widget is not None:
            self._view_widget.value = no_math(self.view_html())

    def show(self, interactive: bool = True) -> Any:
        """The live widget when interactive, else the static view (same content)."""
        return self.widget() if interactive else self.static_view()

    # ---- sweep chart -----------------------------------------------------------------------------
    def sweep_chart(self) -> Any:
        """Share of cases meeting each check as its threshold moves, the chosen threshold marked."""
        import matplotlib
        import numpy as np
        import pandas as pd

        from labkit.gate import OPS
        from labkit.views.elements import RC, Chart, new_figure

        cols = self.per_case_columns()
        keys = [k for k in self.keys if k in cols]
        with matplotlib.rc_context(RC):
            n = max(1, len(keys))
            fig = new_figure(min(4.2 * n, 14), 3.3)
            axes = fig.subplots(1, n, squeeze=False)[0]
            for ax, k in zip(axes, keys, strict=False):
                sp = self.specs[k]
                vals = pd.to_numeric(self.scores[cols[k]], errors="coerce").dropna().to_numpy(dtype=float)
                xs = np.linspace(sp.minimum, max(sp.maximum, self.thresholds[k]), 101)
                share = [float(np.mean([OPS[sp.op](v, x) for v in vals])) if len(vals) else 0.0 for x in xs]
                ax.plot(xs, share, color=PALETTE["baseline"], linewidth=2)
                thr = self.thresholds[k]
                cur = float(np.mean([OPS[sp.op](v, thr) for v in vals])) if len(vals) else 0.0
                ax.axvline(thr, color=FAIL_COLOUR, linestyle="--", linewidth=1.4)
                ax.plot([thr], [cur], "o", color=FAIL_COLOUR)
                ax.annotate(f"{cur:.0%}", (thr, cur), textcoords="offset points", xytext=(6, 6), fontsize=9)
                ax.set_ylim(0, 1.05)
                ax.set_title(k, loc="left")
                ax.set_xlabel(f"threshold on {cols[k]} ({sp.unit})")
                ax.set_ylabel("share of cases meeting it")
            if not keys:
                axes[0].text(0.5, 0.5, "no per-case scores", ha="center", va="center")
                axes[0].set_axis_off()
        return Chart.from_figure(
            fig,
            "Share of measured cases meeting each check, per threshold value; dashed line and dot: "
            "the threshold chosen.",
            alt="share of cases meeting each threshold",
        )
