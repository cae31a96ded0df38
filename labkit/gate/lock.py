"""Pre-registration: ``labkit gate lock GATE`` records the gate file's hash and the time in
``GATE.lock.json``; a run records that lock in its manifest, and the gate report says
whether the gate was fixed before the run it judges (docs/formats.md, "Pre-registration").
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError
from labkit.io import file_hash
from labkit.prereg import gate_lock_info, lock_path, locked_after

__all__ = ["file_hash", "gate_lock_info", "lock_gate", "lock_path", "pre_registration"]


def lock_gate(gate_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Pre-register a gate: validate it, then record its hash and the UTC time beside it.

    Locking an unchanged, already locked gate keeps the original lock (``already_locked``);
    a changed gate is locked anew, and runs made before that are then flagged.
    """
    from labkit.gate.config import Gate
    from labkit.io import atomic_write_text

    Gate.load(gate_path)
    current = gate_lock_info(gate_path)
    if current is not None and current["locked_hash"] == current["hash"]:
        # the same gate is already pre-registered: keep its original time
        from labkit.io import utc_time

        if utc_time(current["locked_at"]) is None:
            raise ConfigError(f"not an ISO time: {current['locked_at']!r}, so the lock pre-registers nothing; delete "
                              "the lock file to lock the gate anew (after any run made before it)",
                              path=str(lock_path(gate_path)), field="locked_at")
        return {"gate": str(gate_path), "hash": current["hash"], "locked_at": current["locked_at"],
                "already_locked": True}
    from labkit.trace.redact import Redactor

    info = {
        "gate": Redactor().redact_text(str(gate_path))[0],  # (informational: a lock is found beside its gate)
        "hash": file_hash(gate_path),
        "locked_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    atomic_write_text(lock_path(gate_path), json.dumps(info, indent=2) + "\n")
    return info


def _same_file(rec: dict[str, Any], gate_path: str) -> bool:
    """Whether a run's gate record names this gate file (a record without a path is taken to)."""
    recorded = rec.get("path")
    if not isinstance(recorded, str) or not recorded:
        return True
    try:
        return Path(recorded).resolve() == Path(gate_path).resolve() or os.path.samefile(recorded, gate_path)
    except OSError:
        return False


def pre_registration(gate_path: str | None, run: Any) -> dict[str, Any]:
    """The pre-registration status of a gate file for a run (None: metrics without a run)."""
    if gate_path is None:
        return {"status": "unknown", "detail": "gate not loaded from a file"}
    info = gate_lock_info(gate_path)
    if info is None:
        return {"status": "unknown", "detail": "gate file not found"}
    rec = (run.manifest.get("gate") or {}) if run is not None else {}
    if isinstance(rec, dict) and rec.get("hash") and rec["hash"] != info["hash"]:
        if _same_file(rec, gate_path):  # the run recorded this gate file as it was: an edit since shows
            return {"status": "edited_after_run", "detail": "the gate file changed after the run recorded it "
                    f"(run recorded {str(rec['hash'])[:12]}, now {info['hash'][:12]})", **info}
        # another file than the one the run recorded, and not the same gate: not the one declared
        # (a loosened copy kept elsewhere, with or without a lock)
        return {"status": "other_gate", "detail": f"the run was made under another gate ({rec.get('path')}, "
                f"{str(rec['hash'])[:12]}); this one ({info['hash'][:12]}) is not the gate it declared", **info}
    if info.get("edited_after_lock"):
        return {"status": "edited_after_lock", "detail": "the gate file changed after it was locked "
                f"(locked hash {str(info['locked_hash'])[:12]}, now {info['hash'][:12]})", **info}
    if not info.get("locked_at"):
        return {"status": "not_locked", "detail": f"no lock; run `labkit gate lock {gate_path}` "
                "before testing a change", **info}
    if run is not None:
        rec = run.manifest.get("gate") or {}
        if not isinstance(rec, dict):
            raise ConfigError("must be a mapping (the gate the run recorded)", path=str(run.manifest_path),
                              field="gate")
        created = run.manifest.get("created_at")
        if not created:
            return {"status": "unverifiable", "detail": f"locked at {info['locked_at']}, but the run "
                    "records no start time (created_at), so nothing shows the gate came first", **info}
        if rec.get("hash") and rec["hash"] != info["hash"]:
            return {"status": "edited_after_lock", "detail": "the run was judged by another version "
                    f"of the gate (run recorded {rec['hash'][:12]}, now {info['hash'][:12]})", **info}
        if rec.get("hash") and (rec.get("edited_after_lock") or rec.get("locked_hash") not in (None, rec["hash"])):
            # the run started under a version the lock did not cover: a lock made since does not count
            return {"status": "locked_after_run", "detail": "the gate had changed since its lock when the run "
                    f"started (lock of {str(rec.get('locked_hash'))[:12]}, the run's gate {rec['hash'][:12]}); "
                    f"the lock at {info['locked_at']} came after", **info}
        if rec.get("hash") and "locked_at" in rec and rec["locked_at"] is None:  # (recorded as the run
            # started, unlocked: a lock made since does not count, whatever time the lock file now gives)
            return {"status": "locked_after_run", "detail": f"the gate was not locked when the run started "
                    f"(its manifest records gate.locked_at null); the lock at {info['locked_at']} came after", **info}
        if rec.get("hash") and rec.get("locked_at") is not None:  # the lock the run recorded counts (not a lock
            # file rewritten since); a hand-written record without one leaves it to the lock file
            locked, lock_from, lock_field = rec["locked_at"], str(run.manifest_path), "gate.locked_at"
        else:
            locked, lock_from, lock_field = info["locked_at"], str(lock_path(gate_path)), "locked_at"
        info = {**info, "locked_at": locked}
        if locked_after(locked, created, lock_from=lock_from, run_from=str(run.manifest_path), lock_field=lock_field):
            return {"status": "locked_after_run", "detail": f"gate locked at {info['locked_at']}, "
                    f"after the run started at {created}", **info}
        return {"status": "pre_registered", "detail": f"locked at {info['locked_at']}, "
                f"before the run at {created}", **info}
    return {"status": "unverifiable", "detail": f"locked at {info['locked_at']}; metrics given "
            "without a run, so nothing shows the gate came first", **info}
