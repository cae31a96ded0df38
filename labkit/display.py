"""What every view and report shares: the verdict, the one palette, and number formatting.

- :class:`Verdict` — what a notebook concludes: a banner in the notebook and the
  report, carried as ``application/vnd.labkit.verdict+json`` so the report engine
  reads it back from the executed notebook (:data:`VERDICT_MIME`).
- The palette — status colours (pass, fail, warn, info) with their backgrounds,
  severity colours, the page's ink, line and muted greys, and the run colours of
  charts. Views, the report template and the report index take their colours
  from here (the template through :func:`css_variables`); no other module writes
  a colour.
- :func:`unit_of`, :func:`fmt_value` and their short, signed and interval forms.
- :class:`Html` — an HTML fragment that displays itself.

Pure Python: no pandas, no matplotlib.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import ConfigError

VERDICT_MIME = "application/vnd.labkit.verdict+json"
STATUSES = ("pass", "fail", "warn", "info")

# ---------------------------------------------------------------------------
# The palette

#: Foreground of each status (text, borders, badges).
STATUS_COLOURS: dict[str, str] = {"pass": "#1a7f37", "fail": "#cf222e", "warn": "#9a6700", "info": "#0550ae"}
#: Background of each status (banners, table cells).
STATUS_BACKGROUNDS: dict[str, str] = {"pass": "#dafbe1", "fail": "#ffebe9", "warn": "#fff8c5", "info": "#ddf4ff"}
STATUS_LABELS: dict[str, str] = {"pass": "PASS", "fail": "FAIL", "warn": "WARNING", "info": "NOTE"}

PASS_COLOUR = STATUS_COLOURS["pass"]
FAIL_COLOUR = STATUS_COLOURS["fail"]
WARN_COLOUR = STATUS_COLOURS["warn"]
INFO_COLOUR = STATUS_COLOURS["info"]
PASS_BG = STATUS_BACKGROUNDS["pass"]
FAIL_BG = STATUS_BACKGROUNDS["fail"]
WARN_BG = STATUS_BACKGROUNDS["warn"]
INFO_BG = STATUS_BACKGROUNDS["info"]

INK = "#1f2328"  # body text
MUTED_COLOUR = "#59636e"  # captions, secondary text
LINE = "#d1d9e0"  # table and box borders
FAINT_LINE = "#eaeef2"  # row separators, empty bars
SOFT = "#f6f8fa"  # page and header background
PAPER = "#ffffff"  # the report's sheet; text on a status badge
FAIL_SOFT = "#fff1f0"  # a failed row, stderr output
WHISKER = "#333333"  # interval whiskers on charts

#: Severity of a readiness item or alert.
SEVERITY_COLOURS: dict[str, str] = {"critical": FAIL_COLOUR, "high": "#bc4c00", "medium": WARN_COLOUR,
                                    "low": MUTED_COLOUR}

#: Run colours: baseline blue, variant orange; other runs and series take EXTRA_COLOURS in turn.
PALETTE: dict[str, str] = {"baseline": "#4C72B0", "variant": "#DD8452"}
EXTRA_COLOURS = ("#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")

#: CSS custom properties of the report template and the report index.
CSS_VARIABLES: dict[str, str] = {
    "--lk-ink": INK, "--lk-muted": MUTED_COLOUR, "--lk-line": LINE, "--lk-bg": PAPER, "--lk-soft": SOFT,
    "--lk-pass": PASS_COLOUR, "--lk-fail": FAIL_COLOUR, "--lk-warn": WARN_COLOUR, "--lk-accent": INFO_COLOUR,
    "--lk-warn-bg": WARN_BG, "--lk-fail-soft": FAIL_SOFT,
}


def css_variables() -> str:
    """The palette as a CSS ``:root`` rule (the report template and index include it)."""
    body = " ".join(f"{k}: {v};" for k, v in CSS_VARIABLES.items())
    return f":root {{ {body} }}"


def colour_for(label: str, i: int = 0) -> str:
    """The run colour: baseline blue, variant orange (also for labels containing them)."""
    low = label.lower()
    for key, col in PALETTE.items():
        if key in low:
            return col
    return EXTRA_COLOURS[i % len(EXTRA_COLOURS)]


# ---------------------------------------------------------------------------
# Verdicts


#: The classes MathJax (JupyterLab 4: ``mathjax_ignore``; classic notebook:
#: ``tex2jax_ignore``) does not typeset: every HTML output labkit emits carries them,
#: because a cost such as ``$0.0142 [$0.0079 – $0.0389]`` would read as math. Entity
#: escapes (``&#36;``) do not help: MathJax scans the decoded text.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def no_math(fragment: str) -> str:
    """``fragment`` inside a container MathJax skips."""
    return f'<div class="{NO_MATH}">{fragment}</div>'


@dataclass(frozen=True)
class Verdict:
    """What a notebook concludes, shown as a banner and read back by the report engine.

    ``status`` is one of pass, fail, warn, info; ``title`` is the one-line
    verdict ("SHIP", "NO-SHIP: 2 checks failed"), ``detail`` a sentence.
    """

    status: str
    title: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"unknown verdict status {self.status!r}", field="status", known=STATUSES)

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "title": self.title, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        return cls(str(d.get("status", "info")), str(d.get("title", "")), str(d.get("detail", "")))

    def to_html(self) -> str:
        """The verdict banner, every user text HTML-escaped."""
        fg, bg = STATUS_COLOURS[self.status], STATUS_BACKGROUNDS[self.status]
        label = STATUS_LABELS[self.status]
        detail = f'<div style="margin-top:4px">{html.escape(self.detail)}</div>' if self.detail else ""
        return (
            f'<div class="lk-verdict lk-verdict-{self.status} {NO_MATH}" role="status" '
            f'style="border:2px solid {fg};background:{bg};color:{INK};border-radius:6px;'
            f'padding:12px 16px;margin:10px 0;">'
            f'<span style="background:{fg};color:{PAPER};font-weight:700;border-radius:4px;'
            f'padding:2px 8px;margin-right:10px;letter-spacing:.05em">{label}</span>'
            f'<strong class="lk-verdict-title" style="font-size:1.15rem">{html.escape(self.title)}</strong>'
            f"{detail}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/html": self.to_html(),
            "text/plain": f"[{self.status.upper()}] {self.title}" + (f" — {self.detail}" if self.detail else ""),
            VERDICT_MIME: self.to_dict(),
        }


@dataclass(frozen=True)
class Html:
    """An HTML fragment that displays itself (content is trusted: built by labkit with escaping).

    Displayed inside a container that MathJax skips, so ``$0.0142 [$0.0079 – $0.0389]``
    stays money in JupyterLab instead of becoming math."""

    html: str

    def _repr_html_(self) -> str:
        return no_math(self.html)

    def __repr__(self) -> str:  # the notebook's text/plain fallback: short, not the markup again
        return f"<HTML fragment, {len(self.html)} characters>"

    def __str__(self) -> str:
        return self.html


# ---------------------------------------------------------------------------
# Units and numbers


def unit_of(metric: str) -> str:
    """The unit a metric is shown in: ms, USD, tokens, or '0–1' for scores and rates."""
    if metric.endswith("_ms"):
        return "ms"
    if "cost" in metric or metric.endswith("_usd"):
        return "USD"
    if "tokens" in metric:
        return "tokens"
    return "0–1"


def is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def fmt_value(metric: str, value: Any) -> str:
    """A metric value formatted with its unit; '—' for unmeasured."""
    if value is None or is_nan(value):
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


def fmt_short(metric: str, v: float) -> str:
    """A value without its unit, for a bar label."""
    unit = unit_of(metric)
    if unit in ("ms", "tokens"):
        return f"{v:,.0f}"
    if unit == "USD":
        return f"{v:.4f}"
    return f"{v:.2f}"


def fmt_signed(metric: str, v: Any) -> str:
    """A difference with its sign (+ or −) and unit; '—' for none."""
    if v is None:
        return "—"
    s = fmt_value(metric, abs(float(v)))
    return ("+" if float(v) >= 0 else "−") + s


def fmt_interval(metric: str, e: Mapping[str, Any]) -> str:
    """``value  [low – high]`` of a metrics.json entry; '— (unmeasured)' without a value."""
    v = e.get("value")
    if v is None:
        return "— (unmeasured)"
    lo, hi = e.get("ci_low"), e.get("ci_high")
    s = fmt_value(metric, v)
    if lo is not None and hi is not None:
        s += f"  [{fmt_value(metric, lo)} – {fmt_value(metric, hi)}]"
    return s


def fmt_number(x: Any) -> str:
    """Four significant digits; '—' for none."""
    return "—" if x is None else f"{float(x):.4g}"


def shorten(text: Any, n: int) -> str:
    """``text`` cut to ``n`` characters with an ellipsis ('' for None)."""
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[: n - 1] + "…"
