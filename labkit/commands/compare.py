"""``labkit compare BASELINE_RUN VARIANT_RUN``."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from labkit.compare import add_compare_parser

    add_compare_parser(sub)
