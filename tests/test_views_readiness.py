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


def test_slo_caption_explains_its_p95_against_the_metrics_interpolated_one() -> None:
    from types import SimpleNamespace as NS

    slo = dict(target="p95 <= 3500 ms", status="met", budget_remaining=0.5, burn_rate=0.4, n=50)
    lat = views.slo_table(NS(slos=[NS(name="latency", kind="latency", observed=3100.0, **slo)])).html
    assert "inverted-CDF" in lat and "latency_p95_ms" in lat and "interpolates" in lat
    err = views.slo_table(NS(slos=[NS(name="errors", kind="error_rate", observed=0.01, **slo)])).html
    assert "inverted-CDF" not in err  # said only where a latency percentile is shown
