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


class _Store:
    def __init__(self, recs: list[dict]) -> None:
        self.recs = recs

    def sample(self, n: int = 1) -> list[dict]:
        return self.recs[:n]


def test_log_sample_says_a_number_failing_the_card_checksum_is_kept() -> None:
    # the shipped golden set's made-up card number fails Luhn, so redaction keeps it;
    # the sample must say so instead of implying every card-like number was masked
    kept = views.log_sample(_Store([{"question": "save my card number 4929 0000 1234 5678 please"}]))
    text = str(kept)
    assert "4929 0000 1234 5678" in text
    assert "card checksum" in text and "not redacted" in text
    clean = str(views.log_sample(_Store([{"question": "reset my key"}])))
    assert "card checksum" not in clean
