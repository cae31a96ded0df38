"""The number-cell rule of the browser's layout check (tests/test_browser.py LAYOUT_JS), on a
view's HTML without a browser: every ``<td>`` that reads as a number carries ``lk-num lk-k-<kind>``
and its text (or its column header, or its row) matches that kind's pattern in NUMBER_KINDS."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from labkit.views.elements import NUMBER_KINDS

NUMBER = re.compile(r"^[\s$+\u2212\-]*\d")


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict[str, list[list[tuple[str, str]]]]] = []
        self._cell: list[str] | None = None
        self._cls = ""
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self.tables:
            self.tables[-1]["head" if self._in_head else "rows"].append([])
        elif tag in ("td", "th"):
            self._cell, self._cls = [], dict(attrs).get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self.tables:
            part = "head" if self._in_head else "rows"
            if self.tables[-1][part]:
                cls = self._cls if tag == "td" else "th"
                self.tables[-1][part][-1].append((cls, " ".join("".join(self._cell).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def bad_number_cells(html_: str) -> list[str]:
    """The number cells of ``html_`` the layout check fails, as ``kind: text``."""
    p = _Cells()
    p.feed(html_)
    bad = []
    for table in p.tables:
        head = [t for _, t in table["head"][-1]] if table["head"] else []
        for row in table["rows"]:
            row_text = " ".join(t for _, t in row)
            for i, (cls, t) in enumerate(row):
                if cls == "th" or t == "0–1":
                    continue
                kind = next((c[5:] for c in cls.split() if c.startswith("lk-k-")), None)
                if "lk-num" not in cls.split() or kind is None:
                    rest = re.sub(r"\b(ms|tokens|USD|min|n)\b", "", t)
                    if NUMBER.search(t) and not re.search(r"[A-Za-z]", rest):
                        bad.append(f"no unit class: {t}")
                    continue
                if t in ("—", ""):
                    continue
                cell, context = NUMBER_KINDS[kind]
                ctx = (head[i] if i < len(head) else "") + " " + row_text
                if not re.search(cell, t) and not (context and re.search(context, ctx)):
                    bad.append(f"{kind}: {t}")
    return bad


def kinds_of(html_: str) -> set[str]:
    """The number kinds the cells of ``html_`` carry."""
    return set(re.findall(r"lk-num lk-k-(\w+)", html_))
