"""The pre-registration lock FILE of a gate: its hash, where it lives, what it says.

``labkit gate lock GATE`` writes ``GATE.lock.json`` (:mod:`labkit.gate_lock`); a run
records :func:`gate_lock_info` of its gate in manifest.json, and the gate report compares
the two (docs/formats.md, "Pre-registration"). This module only reads files, so the
runner can record a gate without importing the gate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError
from labkit.io import file_hash, utc_instant

__all__ = ["gate_lock_info", "lock_path", "locked_after"]


def lock_path(gate_path: str | os.PathLike[str]) -> Path:
    p = Path(gate_path)
    return p.with_name(p.name + ".lock.json")


def gate_lock_info(gate_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a run records in its manifest: path, current hash, and the lock if there is one."""
    p = Path(gate_path)
    if not p.is_file():
        return None
    info: dict[str, Any] = {"path": str(p), "hash": file_hash(p), "locked_at": None, "locked_hash": None}
    lp = lock_path(p)
    if lp.is_file():
        try:
            lock = json.loads(lp.read_text(encoding="utf-8"))
            if not isinstance(lock, dict):
                raise ConfigError(f"malformed lock file: must be a JSON object, got {type(lock).__name__}",
                                  path=str(lp))
            info["locked_at"] = lock.get("locked_at")
            info["locked_hash"] = lock.get("hash")
        except json.JSONDecodeError as e:
            raise ConfigError(f"malformed lock file: {e.msg}", path=str(lp), line=e.lineno) from None
    info["edited_after_lock"] = info["locked_hash"] is not None and info["locked_hash"] != info["hash"]
    return info


def locked_after(locked_at: Any, created_at: Any, *, lock_from: str | None, run_from: str | None,
                 lock_field: str = "locked_at") -> bool:
    """Whether a gate locked at ``locked_at`` was locked after a run started at ``created_at``, the
    two compared as instants in UTC (:func:`labkit.io.utc_instant`: stamps of other offsets and
    precisions compare by time, not as text). The one rule of ``labkit gate`` and the readiness
    review; a stamp that is no ISO time is a ConfigError naming the file it came from (``lock_from``,
    ``run_from``) and its field (``lock_field``: ``gate.locked_at`` for the lock a manifest records)."""
    return (utc_instant(locked_at, field=lock_field, path=lock_from)
            > utc_instant(created_at, field="created_at", path=run_from))
