"""The runner's opt-in result cache: one JSON file per idempotency key, validated on read.

An entry is the (redacted) results line of an ``ok`` call plus ``cache_origin``
(the run and trace of that call, and the output cap ``max_output_chars`` it was
cut to). Reading never trusts it: an entry that is unreadable, is not a valid
results line of an ok, non-cached call under its own key, or a folder where the
file should be, is a miss; so is an entry cut to another output cap than the
run's (or one that records none) — the case runs and its
new result replaces the entry. Writing never fails a run: an entry that cannot
be written is counted (``write_failed``) and the run goes on.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.io import atomic_write_text
from labkit.resultline import cache_entry

__all__ = ["ResultCache"]


class ResultCache:
    """Results on disk under ``root/<key[:2]>/<key>.json`` of a run whose strings are cut to
    ``max_output_chars``; ``stats`` counts what happened."""

    def __init__(self, root: str | os.PathLike[str], *, max_output_chars: int) -> None:
        self.root = Path(root)
        self.max_output_chars = max_output_chars
        self.stats = {"hits": 0, "misses": 0, "invalid": 0, "write_failed": 0}

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The validated entry for ``key`` cut to this run's output cap, or None (a miss)."""
        entry = self._read(key)
        if entry is not None and (entry.get("cache_origin") or {}).get("max_output_chars") != self.max_output_chars:
            entry = None  # another cap: its strings may be cut where this run's are not, or not where they are
        if entry is None:
            self.stats["misses"] += 1
        else:
            self.stats["hits"] += 1
        return entry

    def _read(self, key: str) -> dict[str, Any] | None:
        try:
            text = self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):  # a folder, no permission, not text
            self.stats["invalid"] += 1
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        entry = cache_entry(data, key)
        if entry is None:
            self.stats["invalid"] += 1
        return entry

    def put(self, key: str, result: Mapping[str, Any], *, run_id: str) -> None:
        """Store an ok result (already redacted) with the run and trace that produced it."""
        origin = {"run_id": run_id, "trace_id": result.get("trace_id"), "max_output_chars": self.max_output_chars}
        entry = {**result, "from_cache": False, "cache_origin": origin}
        path = self._path(key)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            atomic_write_text(path, json.dumps(entry, ensure_ascii=False))
        except (OSError, ValueError):
            self.stats["write_failed"] += 1
