"""The display objects and styles of the views: :class:`Chart`, callouts, lists, the table look.

A :class:`Chart` is a PNG inline as a data URI, with a caption; figures are built on
``matplotlib.figure.Figure`` with the Agg canvas (no pyplot state, no GUI backend,
safe in threads and headless runs). Every piece of user text is HTML-escaped.
matplotlib and pandas are imported inside the functions that use them.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.display import (
    FAIL_BG,
    FAIL_COLOUR,
    INFO_BG,
    INFO_COLOUR,
    LINE,
    MUTED_COLOUR,
    NO_MATH,
    PASS_BG,
    PASS_COLOUR,
    SOFT,
    WARN_BG,
    WARN_COLOUR,
    Html,
    no_math,
    unit_of,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler


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


#: columns holding an id: never broken mid-id (the report tables and JupyterLab alike)
ID_COLUMNS = frozenset({"id", "case_id", "trace_id", "run_id"})
NOWRAP = "white-space:nowrap"
#: an id longer than this shows its start, an ellipsis and its end; the full id is its hover title
ID_CHARS = 22

#: Number cells. Every ``<td>`` holding a number carries ``class="lk-num lk-k-<kind>"``
#: (:func:`styler` writes it from its ``kinds``; :func:`num_td` in hand-built tables). Each
#: kind maps to (a pattern the cell text must match, a pattern its column header or row may
#: match instead, or ""). The browser test checks every number cell of every report against
#: this table, and fails a number in a cell with no kind, so a table cannot pass by omission.
NUMBER_KINDS: dict[str, tuple[str, str]] = {
    "ms": (r"\bms\b", ""),
    "s": (r"\d\s?s\b", ""),
    "usd": (r"\$", ""),
    "tokens": (r"\btokens?\b", r"\btokens\b"),
    "pct": (r"%", ""),
    "ratio": (r"×", ""),
    "points": (r"/ ?100\b", ""),
    "norm": (r"normalised", r"normalised"),
    "score": (r"0–1", r"0–1"),
    "count": (r"^([<>=≤≥]+\s?)?[\d,]+(\s\(min\s[\d,]+\))?$", ""),
    "p": (r"^p\s?[=<]", r"\bp\b"),
    "time": (r"^\d{4}-\d\d-\d\d", ""),
    "h": (r"\d\s?h\b", ""),
    "rating": (r"/ ?5\b", r"\b1[-–]5\b"),
}
#: the number kind of each unit of :func:`labkit.display.unit_of`
UNIT_KINDS = {"ms": "ms", "USD": "usd", "tokens": "tokens", "0–1": "score"}


def kind_of(metric: str) -> str:
    """The number kind (:data:`NUMBER_KINDS`) of a metric's values."""
    return UNIT_KINDS[unit_of(metric)]


def num_class(kind: str) -> str:
    """The class of a number cell of ``kind`` (a key of :data:`NUMBER_KINDS`)."""
    if kind not in NUMBER_KINDS:
        raise ValueError(f"unknown number kind {kind!r}")
    return f"lk-num lk-k-{kind}"


_UNIT_SPACE = re.compile(r"(?<=\d) (?=ms\b|tokens?\b|s\b|h\b|UTC\b|\(min )|(?<=\(min) (?=\d)|(?<=[\d\]]) (?=\(n=)"
                         r"|(?<=[<>=≤≥]) (?=[\d$−+-])")


def unbreakable(text: str) -> str:
    """``text`` with no line break between a number and its unit, nor in ``9 (min 10)``: a
    wrapped cell breaks between values (``0.853  [0.80 – 0.90]``), never inside one."""
    return _UNIT_SPACE.sub("\u00a0", text)


_UNIT_NOTE = re.compile(r"\([^()]{0,12}\d[^()]{0,12}\)")


def header_html(label: Any) -> str:
    """A column header, escaped, whose unit in brackets never breaks: ``faithfulness (0–1)``
    wraps before ``(0–1)``, not after its dash."""
    return _UNIT_NOTE.sub(lambda m: f'<span style="{NOWRAP}">{m.group(0)}</span>', html.escape(str(label)))


def num_td(text: str, kind: str, style: str = "") -> str:
    """A hand-built table's number cell: ``text`` escaped, its kind as the class."""
    st = f' style="{style}"' if style else ""
    return f'<td class="{num_class(kind)}"{st}>{html.escape(unbreakable(text))}</td>'


def id_html(value: Any, limit: int = ID_CHARS) -> str:
    """An id that never breaks: cut to ``limit`` characters by an ellipsis in the middle (the end
    of ``gen-account-management-01`` tells it from ``…-02``), the full id as its hover title
    (escaped)."""
    s = "" if value is None else str(value)
    full = html.escape(s, quote=True)
    tail = (limit - 1) // 2
    shown = s if len(s) <= limit else s[: limit - 1 - tail] + "…" + s[len(s) - tail:]
    return f'<span class="lk-id" title="{full}" style="{NOWRAP}">{html.escape(shown)}</span>'


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
        return no_math(
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


def chart_style() -> Any:
    """The one chart style of every view (:data:`RC`), as a context to build a figure in."""
    import matplotlib

    return matplotlib.rc_context(RC)


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def callout(text: str, kind: str = "warn", title: str = "") -> Html:
    """A boxed note (kind: warn, info, pass, fail); text is escaped."""
    colours = {"warn": (WARN_COLOUR, WARN_BG), "info": (INFO_COLOUR, INFO_BG),
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


def styler(df: pd.DataFrame, kinds: Mapping[str, Any] | None = None) -> Styler:
    """A Styler with every cell and label HTML-escaped and labkit's table look.

    ``kinds`` names the number kind (:data:`NUMBER_KINDS`) of each number column; a
    column of ``kinds`` may also be a per-row sequence of kinds. Id columns never
    break and long ids are cut with the full id on hover.
    """
    st = df.style.format(escape="html", na_rep="—")
    st = st.format_index(escape="html", axis=0).format_index(header_html, axis=1)
    st = st.hide(axis="index").set_table_attributes(f'class="lk-table {NO_MATH}"')
    ids = [c for c in df.columns if c in ID_COLUMNS]
    if ids:
        st = st.map(lambda _: NOWRAP, subset=list[Any](ids))
        st = st.format(id_html, subset=list[Any](ids), escape=None, na_rep="—")
    if kinds:
        st = st.set_td_classes(kind_classes(df, kinds))
        cols: list[Any] = [c for c in kinds if c in df.columns]
        st = st.format(lambda v: "—" if v is None else unbreakable(str(v)), subset=cols, escape="html")
    st = st.set_table_styles([
        {"selector": "", "props": "border-collapse:collapse;font-size:.9rem;margin:6px 0 14px"},
        {"selector": "th", "props": f"background:{SOFT};border:1px solid {LINE};padding:4px 10px;text-align:left"},
        {"selector": "td", "props": f"border:1px solid {LINE};padding:4px 10px;font-variant-numeric:tabular-nums"},
        {"selector": "caption", "props": f"caption-side:bottom;color:{MUTED_COLOUR};text-align:left;padding-top:4px"},
    ])
    return st


def with_caption(st: Styler, text: str) -> Styler:
    """``st`` with ``text`` as its caption, escaped: pandas writes a caption into the HTML as it
    is, and captions name a gate, a run or a review's selection. Every table's caption is set here."""
    return st.set_caption(html.escape(text, quote=False))


def kind_classes(df: pd.DataFrame, kinds: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    classes = pd.DataFrame("", index=df.index, columns=df.columns)
    for col, kind in kinds.items():
        if col not in df.columns:
            continue
        per_row = [kind] * len(df) if isinstance(kind, str) else list(kind)
        classes[col] = [num_class(k) if k else "" for k in per_row]
    return classes

