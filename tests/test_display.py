"""labkit.display: the verdict, the one palette and the number formats every view shares."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import display
from labkit.display import VERDICT_MIME, Verdict
from labkit.errors import ConfigError

PACKAGE = Path(display.__file__).parent
COLOUR = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def test_display_imports_no_pandas_or_matplotlib() -> None:
    code = ("import sys, labkit.display\n"
            "heavy = [m for m in ('pandas', 'matplotlib', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_module_but_display_writes_a_colour() -> None:
    """One palette: views, the report index and the report template take their colours from
    labkit.display (the template through CSS variables)."""
    hits = []
    for path in sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.j2"), *PACKAGE.rglob("*.css")]):
        if path == Path(display.__file__):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(PACKAGE)}:{i}: {m}" for m in COLOUR.findall(line)]
    assert hits == []


def test_css_variables_carry_the_status_palette() -> None:
    css = display.css_variables()
    for name, value in (("--lk-pass", display.PASS_COLOUR), ("--lk-fail", display.FAIL_COLOUR),
                        ("--lk-warn", display.WARN_COLOUR), ("--lk-accent", display.INFO_COLOUR)):
        assert f"{name}: {value};" in css
    assert css.startswith(":root {")


def test_verdict_banner_uses_the_palette_and_escapes() -> None:
    v = Verdict("fail", "NO-SHIP <b>", "2 checks & more")
    h = v.to_html()
    assert display.FAIL_COLOUR in h and display.FAIL_BG in h
    assert "<b>" not in h and "&lt;b&gt;" in h and "&amp; more" in h
    bundle = v._repr_mimebundle_()
    assert bundle[VERDICT_MIME] == {"status": "fail", "title": "NO-SHIP <b>", "detail": "2 checks & more"}
    assert Verdict.from_dict(bundle[VERDICT_MIME]) == v


def test_unknown_verdict_status_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown verdict status"):
        Verdict("green", "x")


def test_units_and_formatting() -> None:
    assert display.unit_of("latency_p95_ms") == "ms"
    assert display.unit_of("cost_per_success") == "USD"
    assert display.unit_of("tokens_per_case") == "tokens"
    assert display.unit_of("faithfulness") == "0–1"
    assert display.fmt_value("latency_p95_ms", 3100.4) == "3,100 ms"
    assert display.fmt_value("cost_per_success", 0.06) == "$0.0600"
    assert display.fmt_value("faithfulness", 0.8766) == "0.877"
    assert display.fmt_value("faithfulness", None) == "—"
    assert display.fmt_value("faithfulness", float("nan")) == "—"


def test_short_signed_and_interval_forms() -> None:
    assert display.fmt_short("latency_p95_ms", 1234.5) == "1,234"
    assert display.fmt_short("faithfulness", 0.876) == "0.88"
    assert display.fmt_signed("faithfulness", -0.05) == "−0.050"
    assert display.fmt_signed("latency_p95_ms", 12.0) == "+12 ms"
    assert display.fmt_signed("faithfulness", None) == "—"
    assert display.fmt_interval("faithfulness", {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95}) == (
        "0.900  [0.800 – 0.950]")
    assert display.fmt_interval("faithfulness", {"value": None}) == "— (unmeasured)"
    assert display.shorten("abcdef", 4) == "abc…" and display.shorten(None, 3) == ""


def test_palette_is_fixed_for_baseline_and_variant() -> None:
    assert display.colour_for("baseline") == display.PALETTE["baseline"]
    assert display.colour_for("variant (v2)") == display.PALETTE["variant"]
    assert display.colour_for("other", 1) not in display.PALETTE.values()
