"""labkit.views.traces: the observability verdict and the checklist table's colours."""

from __future__ import annotations

from labkit import display
from labkit.views import traces as views


def test_observability_verdict_pass_warn_fail() -> None:
    ok = [{"item": "a", "status": "pass"}, {"item": "b", "status": "pass"}]
    assert views.observability_verdict(ok).status == "pass"
    unknown = [*ok, {"item": "c", "status": "unknown"}]
    v = views.observability_verdict(unknown)
    assert v.status == "warn" and "not measurable: c" in v.detail
    assert views.observability_verdict(ok, [{"rule": "p95", "severity": "page"}]).status == "fail"
    assert views.observability_verdict([*ok, {"item": "d", "status": "fail"}]).status == "fail"


def test_checklist_table_colours_come_from_the_palette() -> None:
    items = [{"item": "x", "status": s, "evidence": "e", "action": "a"} for s in ("pass", "fail", "unknown")]
    html = views.checklist_table(items).to_html()
    for colour in (display.PASS_COLOUR, display.FAIL_COLOUR, display.WARN_COLOUR):
        assert colour in html
