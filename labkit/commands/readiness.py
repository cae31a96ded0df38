"""``labkit scorecard``, ``labkit incident`` and ``labkit slo`` (the readiness review)."""

from __future__ import annotations

import argparse
from typing import Any

from labkit.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("scorecard", help="readiness scorecard with gaps (work in progress)")
    p.set_defaults(handler=_todo)
    p = subparsers.add_parser("incident", help="incident review note from a failing run (work in progress)")
    p.set_defaults(handler=_todo)


def _todo(args: argparse.Namespace) -> int:
    raise ConfigError("not implemented yet")
