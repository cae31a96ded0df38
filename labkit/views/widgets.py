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
    NO_MATH,
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


def _meets(op: str, observed: float, threshold: float) -> bool:
    from labkit.gate import OPS

    return bool(OPS[op](observed, threshold))


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


class _LiveView:
    """The tuner's widget, displayed with the static view's verdict and HTML beside its own view."""

    def __init__(self, widget: Any, view: TunerView) -> None:
        self.widget = widget
        self.view = view

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {**self.view._repr_mimebundle_(), **self.widget._repr_mimebundle_(include=include, exclude=exclude)}


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
        self._readouts: dict[str, Any] = {}
        self._view_widget: Any = None
        self._chart_widget: Any = None
        self._status: Any = None
        self.last_figure: Any = None

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

    def set_thresholds(self, values: Mapping[str, float], *, unchecked: str = "raise") -> list[str]:
        """Set several thresholds; keys are slider keys or metric names (every check on that metric).
        A name the gate has no check on is a ConfigError, or (``unchecked="skip"``) left out:
        returns the names left out."""
        if unchecked not in ("raise", "skip"):
            raise ConfigError(f"unchecked must be 'raise' or 'skip', got {unchecked!r}", field="unchecked")
        left: list[str] = []
        for name, v in values.items():
            if name in self.thresholds:
                self.set_threshold(name, v)
                continue
            hits = [k for k, c in zip(self.keys, self.gate.checks, strict=True) if c.metric == name]
            if not hits and unchecked == "skip":
                left.append(name)
            elif not hits:
                raise ConfigError(f"no threshold {name!r} in gate {self.gate.name}", field="threshold",
                                  known=self.keys)
            for k in hits:
                self.set_threshold(k, v)
        return left

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

    def failing_checks(self) -> list[str]:
        """Each check the current release (the tuned run) fails at these thresholds, with by how
        much its observed value misses the threshold (or why it fails without missing it)."""
        out = []
        for c in self.evaluate().checks:
            if c.passed:
                continue
            metric = c.metric or ""
            if c.observed is None or c.threshold is None or not metric:
                out.append(f"{c.name}: {c.reason}")
                continue
            gap = abs(float(c.observed) - float(c.threshold))
            if not _meets(str(c.op), float(c.observed), float(c.threshold)):
                out.append(f"{c.name}: observed {fmt_value(metric, c.observed)}, short by {fmt_value(metric, gap)}")
            else:
                out.append(f"{c.name}: observed {fmt_value(metric, c.observed)} meets it, but {c.reason}")
        return out

    def save_message(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        """(kind, text) to show once the gate is saved: a warning when the current release fails it."""
        failing = self.failing_checks()
        if not failing:
            return "info", (f"Thresholds written to {path}; the current release passes them. Lock the gate before "
                            f"testing a change: labkit gate lock {path}")
        return "warn", (f"Thresholds written to {path}, but the current release FAILS this gate on "
                        f"{len(failing)} check(s): {'; '.join(failing)}. A gate the release in production already "
                        "fails blocks every change; move the bar or fix the release before locking it.")

    def save_callout(self, path: str | os.PathLike[str]) -> Any:
        """The message of :meth:`save_message` as a boxed note."""
        from labkit.views.elements import callout

        kind, text = self.save_message(path)
        return callout(text, kind=kind, title="Saved." if kind == "info" else "Warning.")

    # ---- views -----------------------------------------------------------------------------------
    def readout(self, key: str) -> str:
        """A threshold as its slider reads it, with its unit."""
        sp = self.specs[key]
        v = fmt_value(sp.metric, self.thresholds[key])
        return f"{v} (share, 0–1)" if sp.unit == "0–1" else v

    def table(self) -> Any:
        """The per-check table (a Styler in labkit's table look): threshold and observed value with
        their units, the n behind each check, the result, and the cases meeting it one by one."""
        import pandas as pd

        from labkit.views.elements import kind_of, styler, with_caption

        rep, cases = self.evaluate(), self.case_results()
        rows, per_row = [], []
        for k, c in zip(self.keys, rep.checks, strict=False):
            per_row.append(kind_of(c.metric or ""))
            per_case = "—"
            if k in cases.columns:
                measured = [v for v in cases[k] if v is not None]
                per_case = f"{sum(1 for v in measured if v)} of {len(measured)}"
            rows.append({"threshold": k, "unit": self.specs[k].unit,
                         "must be": f"{c.op} {fmt_value(c.metric or '', c.threshold)}",
                         "observed": fmt_value(c.metric or "", c.observed),
                         "n": "—" if c.n is None else f"{c.n} (min {c.min_n})" if c.min_n is not None else str(c.n),
                         "check": "pass" if c.passed else "FAIL", "cases meeting it (n)": per_case})
        df = pd.DataFrame(rows, columns=["threshold", "unit", "must be", "observed", "n", "check",
                                         "cases meeting it (n)"])

        def colour(v: Any) -> str:
            return (f"background:{PASS_BG};color:{PASS_COLOUR};font-weight:700" if v == "pass"
                    else f"background:{FAIL_BG};color:{FAIL_COLOUR};font-weight:700")

        n_fail = sum(1 for c in rep.checks if not c.passed)
        cap = f"Gate {rep.gate} at these thresholds: {len(rep.checks) - n_fail} of {len(rep.checks)} checks pass."
        kinds = {"must be": per_row, "observed": per_row, "n": "count"}
        return with_caption(styler(df, kinds).map(colour, subset=["check"]), cap).set_table_attributes(
            f'class="lk-tuner {NO_MATH}"')

    def view_html(self) -> str:
        """Banner, the per-check table and the cases passing, as HTML (escaped)."""
        verdict = self.verdict()
        passing, total = self.cases_passing()
        no_case = [k for k in self.keys if k not in self.per_case_columns()]
        note = (f"<p style='color:{MUTED_COLOUR};font-size:.85rem'>No per-case reading for: "
                f"{html.escape(', '.join(no_case))}.</p>") if no_case else ""
        return (
            verdict.to_html() + self.table().to_html()
            + f"<p class='lk-cases-passing'><strong>{passing} of {total}</strong> cases pass every check "
            "they are measured on.</p>" + note
        )

    def summary(self) -> Any:
        """The one-paragraph summary under the banner."""
        from labkit.display import Html

        rep = self.evaluate()
        passing, total = self.cases_passing()
        failing = self.failing_checks()
        state = (f"fails {len(failing)} of {len(rep.checks)} checks ({'; '.join(failing)})" if failing
                 else f"passes all {len(rep.checks)} checks")
        text = (f"At these thresholds the current release {state}. {passing} of {total} cases pass every check "
                f"they are measured on. Saving writes gate {self.gate.name} with these thresholds to "
                f"{self.out_path}; lock it before testing a change, and do not move it after seeing the change.")
        return Html(f"<p class='lk-summary'>{html.escape(text)}</p>")

    def static_view(self) -> TunerView:
        return TunerView(self.view_html(), self.verdict())

    def widget(self) -> Any:
        """ipywidgets: one slider per threshold with its readout in its unit, the live view, the
        sweep chart (its markers follow the sliders), and a save button."""
        import ipywidgets as w

        self.sliders, self._readouts, rows = {}, {}, []
        for k in self.keys:
            sp = self.specs[k]
            slider = w.FloatSlider(
                value=self.thresholds[k], min=min(sp.minimum, self.thresholds[k]),
                max=max(sp.maximum, self.thresholds[k]), step=sp.step, description=k, readout=False,
                continuous_update=False, style={"description_width": "180px"}, layout=w.Layout(width="480px"),
            )
            slider.observe(lambda change, key=k: self._on_slide(key, change), names="value")
            self.sliders[k] = slider
            self._readouts[k] = w.HTML(value=html.escape(self.readout(k)))
            rows.append(w.HBox([slider, self._readouts[k]]))
        self._view_widget = w.HTML(value=no_math(self.view_html()))
        self._chart_widget = w.HTML(value=self.sweep_chart()._repr_html_())
        self._status = w.HTML(value="")
        button = w.Button(description="Save thresholds", icon="save", button_style="primary",
                          tooltip=f"write the gate with these thresholds to {self.out_path}")
        button.on_click(self._on_save)
        return w.VBox([*rows, self._view_widget, self._chart_widget, w.HBox([button, self._status])])

    def _on_slide(self, key: str, change: Mapping[str, Any]) -> None:
        self.thresholds[key] = float(change["new"])
        if key in self._readouts:
            self._readouts[key].value = html.escape(self.readout(key))
        self.refresh()

    def _on_save(self, _button: Any = None) -> None:
        p = self.save()
        if self._status is not None:
            self._status.value = self.save_callout(p).html

    def refresh(self) -> None:
        if self._view_widget is not None:
            self._view_widget.value = no_math(self.view_html())
        if self._chart_widget is not None:
            self._chart_widget.value = self.sweep_chart()._repr_html_()

    def show(self, interactive: bool = True) -> Any:
        """The live widget when interactive, else the static view (same content). Either publishes
        the verdict at the thresholds it starts from (the report index and ``--fail-on-verdict``
        read it); the live one carries the static view too, for a reader with no widget state."""
        view = self.static_view()
        return _LiveView(self.widget(), view) if interactive else view

    # ---- sweep chart -----------------------------------------------------------------------------
    def sweep_markers(self) -> dict[str, tuple[float, float]]:
        """Slider key -> (threshold, share of measured cases meeting it): the chart's markers."""
        import numpy as np
        import pandas as pd

        from labkit.gate import OPS

        cols, out = self.per_case_columns(), {}
        for k in (k for k in self.keys if k in cols):
            vals = pd.to_numeric(self.scores[cols[k]], errors="coerce").dropna().to_numpy(dtype=float)
            thr = self.thresholds[k]
            out[k] = (thr, float(np.mean([OPS[self.specs[k].op](v, thr) for v in vals])) if len(vals) else 0.0)
        return out

    def sweep_chart(self) -> Any:
        """Share of cases meeting each check as its threshold moves, the current threshold marked
        (re-drawn by the widget whenever a slider moves; the figure is kept as ``last_figure``)."""
        import numpy as np
        import pandas as pd

        from labkit.gate import OPS
        from labkit.views.elements import Chart, chart_style, new_figure

        cols = self.per_case_columns()
        markers = self.sweep_markers()
        with chart_style():
            n = max(1, len(markers))
            fig = new_figure(min(4.2 * n, 14), 3.3)
            axes = fig.subplots(1, n, squeeze=False)[0]
            for ax, (k, (thr, cur)) in zip(axes, markers.items(), strict=False):
                sp = self.specs[k]
                vals = pd.to_numeric(self.scores[cols[k]], errors="coerce").dropna().to_numpy(dtype=float)
                xs = np.linspace(sp.minimum, max(sp.maximum, thr), 101)
                share = [float(np.mean([OPS[sp.op](v, x) for v in vals])) if len(vals) else 0.0 for x in xs]
                ax.plot(xs, share, color=PALETTE["baseline"], linewidth=2)
                ax.axvline(thr, color=FAIL_COLOUR, linestyle="--", linewidth=1.4, gid="threshold")
                ax.plot([thr], [cur], "o", color=FAIL_COLOUR, gid="marker")
                # the label stays inside the panel: left of a marker in the right half, under one near the top
                right = thr > (xs[0] + xs[-1]) / 2
                ax.annotate(f"{cur:.0%} at {fmt_value(sp.metric, thr)}", (thr, cur), textcoords="offset points",
                            xytext=(-6 if right else 6, -14 if cur > 0.85 else 6), ha="right" if right else "left",
                            fontsize=9)
                ax.set_ylim(0, 1.05)
                ax.set_title(k, loc="left")
                ax.set_xlabel(f"threshold on {cols[k]} ({sp.unit})")
                ax.set_ylabel("share of measured cases meeting it")
            if not markers:
                axes[0].text(0.5, 0.5, "no per-case scores", ha="center", va="center")
                axes[0].set_axis_off()
        self.last_figure = fig
        n_cases = 0 if self.scores is None else len(self.scores)
        return Chart.from_figure(
            fig,
            f"Share of measured cases (n = {n_cases} cases) meeting each check, per threshold value; dashed "
            "line and dot: the threshold set now.",
            alt="share of cases meeting each threshold",
        )
