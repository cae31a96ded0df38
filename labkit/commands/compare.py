"""``labkit compare BASELINE_RUN VARIANT_RUN [--json] [--align]``."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from labkit.compare import add_compare_parser, cmd_compare

    add_compare_parser(sub)
    sub.choices["compare"].set_defaults(handler=cmd_compare)
