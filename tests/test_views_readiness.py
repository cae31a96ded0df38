"""labkit.views.readiness: status badges and severities in the palette's colours, text escaped."""

from __future__ import annotations

from labkit import display
from labkit.views import readiness as views


def test_status_badges_take_the_palette() -> None:
    for status, (tone, label) in views.STATUS_STYLE.items():
        html = views._badge(status)
        assert display.STATUS_COLOURS[tone] in html and display.STATUS_BACKGROUNDS[tone] in html
        assert f">{label}</span>" in html
    odd = views._badge("<odd>")
    assert display.MUTED_COLOUR in odd and "&lt;odd&gt;" in odd and "<odd>" not in odd


def test_severity_colours_and_tables_escape() -> None:
    assert display.SEVERITY_COLOURS["critical"] in views._sev("critical")
    assert display.MUTED_COLOUR in views._sev("unheard-of")
    t = views._table(["a<b>"], [["cell"]], caption="c & d")
    assert "a&lt;b&gt;" in t.html and "c &amp; d" in t.html and display.LINE in t.html
