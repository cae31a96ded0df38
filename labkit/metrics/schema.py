"""The version of the metrics.json layout, and reading it back (docs/formats.md, "metrics.json").

:func:`labkit.metrics.aggregate` writes ``schema_version``; a reader calls
:func:`metrics_schema_version`: a file of the first landing has no key and is
read as version 0 (the same layout, without the key); a newer version than
this labkit knows is a ConfigError naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.errors import ConfigError

#: The layout :func:`labkit.metrics.aggregate` writes.
SCHEMA_VERSION = 1
#: The version a metrics.json without ``schema_version`` is read as (the first landing's files).
FIRST_LANDING = 0


def metrics_schema_version(metrics: Mapping[str, Any], *, path: str | None = None) -> int:
    """The layout version of a metrics.json mapping (FIRST_LANDING when it carries none)."""
    v = metrics.get("schema_version", FIRST_LANDING)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"schema_version must be a non-negative integer, got {v!r}", path=path,
                          field="schema_version")
    if v > SCHEMA_VERSION:
        raise ConfigError(f"metrics.json schema_version {v} is newer than this labkit reads "
                          f"(up to {SCHEMA_VERSION}): upgrade labkit", path=path, field="schema_version")
    return v
