"""The bar recorded before the runs: a small record in the runs folder of a notebook.

A gate file can be locked (labkit.gate.lock); a notebook that builds its gate from its
parameters (the quick lab) records the thresholds instead, in ``<runs_dir>/bar.json``,
before its first runs::

    {"schema_version": 1, "gate": {...Gate.to_dict()...}, "sha256": "…",
     "recorded_at": "2026-12-02T01:50:00Z", "runs_existed": false}

The record is written once and never overwritten while it exists, so a re-run of the
notebook from the top with new parameters compares its thresholds with those recorded
when the runs were first made: :func:`record_bar` returns ``moved`` with what changed.
Recording when runs already sit in the folder (and no record does) says so
(``runs_existed``: the bar came after results). Starting over means deleting the runs folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

__all__ = ["BAR_FILE", "BAR_SCHEMA_VERSION", "BarStatus", "record_bar"]

BAR_FILE = "bar.json"
BAR_SCHEMA_VERSION = 1


def _canonical(gate_dict: Any) -> str:
    return json.dumps(gate_dict, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class BarStatus:
    """How the thresholds in use compare with the ones recorded before the runs."""

    status: str  # "recorded" (just now, before any run), "unchanged", "moved", "recorded_after_runs"
    path: str
    recorded_at: str
    recorded: dict[str, Any]  # the recorded gate (Gate.to_dict())
    changes: tuple[str, ...] = ()

    @property
    def honest(self) -> bool:
        """The thresholds in use were fixed before any result existed."""
        return self.status in ("recorded", "unchanged")

    def recorded_gate(self) -> Any:
        from labkit.gate.config import Gate

        return Gate.from_dict(self.recorded, path=None)

    def sentence(self) -> str:
        if self.status == "moved":
            return (f"bar moved after results: the thresholds recorded before the runs ({self.recorded_at}, "
                    f"{self.path}) were {'; '.join(self.changes)}")
        if self.status == "recorded_after_runs":
            return (f"bar recorded after results: runs already existed in {Path(self.path).parent} when the "
                    f"thresholds were recorded ({self.recorded_at})")
        return f"thresholds recorded before the runs ({self.recorded_at}, {self.path})"


def _changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from labkit.gate.config import Gate

    old, new = Gate.from_dict(recorded), Gate.from_dict(current)
    out = []
    olds = {(c.metric, c.statistic, c.op): c for c in old.checks}
    news = {(c.metric, c.statistic, c.op): c for c in new.checks}
    for key, c in olds.items():
        n = news.get(key)
        if n is None:
            out.append(f"{c.name}, now removed")
        elif n.threshold != c.threshold or n.min_n != c.min_n:
            out.append(f"{c.name}, now {n.name}" + (f" (min_n {n.min_n})" if n.min_n != c.min_n else ""))
    out += [f"no {c.name}, now added" for key, c in news.items() if key not in olds]
    if not out and _canonical(old.to_dict()) != _canonical(new.to_dict()):
        out.append("another gate (regression, slices, unmeasured or review sections differ)")
    return out


def _read(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"malformed JSON: {e.msg}", path=str(p), line=e.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("gate"), dict):
        raise ConfigError("must be a JSON object with the recorded gate", path=str(p), field="gate")
    if data.get("schema_version") != BAR_SCHEMA_VERSION:
        raise ConfigError(f"unsupported version {data.get('schema_version')!r}", path=str(p), field="schema_version",
                          known=[str(BAR_SCHEMA_VERSION)])
    digest = hashlib.sha256(_canonical(data["gate"]).encode()).hexdigest()
    if data.get("sha256") != digest:
        raise ConfigError("the recorded gate does not match its sha256: the record was edited; delete the runs "
                          "folder to start over", path=str(p), field="sha256")
    return data


def _runs_exist(folder: Path, runs: Sequence[str]) -> bool:
    return any((folder / r / "results.jsonl").is_file() for r in runs)


def record_bar(gate: Any, runs_dir: str | os.PathLike[str], *, runs: Sequence[str] = ("baseline", "variant"),
               now: str | None = None) -> BarStatus:
    """Record ``gate``'s thresholds in ``runs_dir`` before the runs (``runs``: the run folders
    inside it), or compare them with the record already there."""
    from labkit.io import atomic_write_text

    folder = Path(runs_dir)
    p = folder / BAR_FILE
    current = gate.to_dict()
    if p.is_file():
        data = _read(p)
        changes = _changes(data["gate"], current)
        status = "moved" if changes else ("recorded_after_runs" if data.get("runs_existed") else "unchanged")
        return BarStatus(status, str(p), str(data.get("recorded_at")), data["gate"], tuple(changes))
    existed = _runs_exist(folder, runs)
    when = now or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"schema_version": BAR_SCHEMA_VERSION, "gate": current,
              "sha256": hashlib.sha256(_canonical(current).encode()).hexdigest(), "recorded_at": when,
              "runs_existed": existed}
    atomic_write_text(p, json.dumps(record, indent=2) + "\n")
    return BarStatus("recorded_after_runs" if existed else "recorded", str(p), when, current)
