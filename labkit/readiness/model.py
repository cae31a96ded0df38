"""Checklist items, statuses, severities and attestations.

Every readiness item has a stable id (``rel.fallback``), an area of the
scorecard, a severity, a status and its evidence. Statuses:

* ``pass`` — the artifacts show it (evidence says what was read, with numbers);
* ``fail`` — the artifacts show it is missing or wrong;
* ``attested`` — it cannot be read from artifacts, and a person vouched for it
  in the attestation file (owner, evidence link, date);
* ``unknown`` — neither artifacts nor an attestation settle it.

An attestation never overrides an automated ``pass`` or ``fail``: it only
settles an item whose automated status is ``unknown`` (or that has no
automated check at all).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labkit.config import field_line
from labkit.errors import ConfigError

STATUSES = ("pass", "fail", "attested", "unknown")
SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_WEIGHT = {"critical": 4, "high": 3, "medium": 2, "low": 1}
#: credit an item earns towards its area score
STATUS_CREDIT = {"pass": 1.0, "attested": 0.75, "fail": 0.0, "unknown": 0.0}

AREAS = (
    "evaluation coverage",
    "release gate",
    "observability",
    "safety",
    "reliability",
    "SLOs and rollout",
    "incident readiness",
)

#: attestations older than this many days no longer count
ATTESTATION_MAX_AGE_DAYS = 180


@dataclass(frozen=True, kw_only=True)
class CheckItem:
    """One readiness item with its status and the evidence behind it."""

    id: str
    area: str
    checklist: str
    title: str
    status: str
    evidence: str
    action: str | None = None
    severity: str = "medium"
    source: str = "automated"  # automated | attestation | manual
    refs: tuple[str, ...] = ()  # a composite item summarises these items
    attestation: Mapping[str, Any] | None = None

    @property
    def passing(self) -> bool:
        return self.status in ("pass", "attested")

    @property
    def is_gap(self) -> bool:
        return not self.passing and not self.refs

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "area": self.area,
            "checklist": self.checklist,
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "source": self.source,
            "evidence": self.evidence,
            "action": self.action,
        }
        if self.refs:
            d["refs"] = list(self.refs)
        if self.attestation is not None:
            d["attestation"] = dict(self.attestation)
        return d


def item(
    id: str,
    *,
    area: str,
    checklist: str,
    title: str,
    status: str,
    evidence: str,
    action: str | None = None,
    severity: str,
    **kw: Any,
) -> CheckItem:
    """Build an item; the action is dropped when it passes."""
    if status not in STATUSES:
        raise ValueError(f"bad status {status!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"bad severity {severity!r}")
    return CheckItem(id=id, area=area, checklist=checklist, title=title, status=status, evidence=evidence,
                     action=None if status in ("pass", "attested") else action, severity=severity, **kw)


def composite(id: str, *, area: str, checklist: str, title: str, parts: Iterable[CheckItem],
              severity: str = "high") -> CheckItem:
    """An item summarising others: the worst status of its parts, their evidence and actions.

    Its severity, when it is not passing, is that of its most severe part that is not
    passing (a composite never looks graver, or milder, than the gaps it summarises;
    the verdict counts those parts, not the composite)."""
    ps = list(parts)
    order = {"fail": 0, "unknown": 1, "attested": 2, "pass": 3}
    status = min((p.status for p in ps), key=lambda s: order[s]) if ps else "unknown"
    open_parts = [p.severity for p in ps if p.status in ("fail", "unknown")]
    if open_parts:
        severity = min(open_parts, key=SEVERITIES.index)
    evidence = "; ".join(f"{p.id}: {p.status}" for p in ps)
    actions = [f"{p.id}: {p.action}" for p in ps if p.action]
    return item(id, area=area, checklist=checklist, title=title, status=status, evidence=evidence,
                action=" ".join(actions) or None, severity=severity, refs=tuple(p.id for p in ps))


# ---- attestations -----------------------------------------------------------------------------

ATTESTATION_FIELDS = ("item", "status", "owner", "evidence", "date")


@dataclass(frozen=True, kw_only=True)
class Attestation:
    item: str
    status: str  # attested | fail
    owner: str
    evidence: str
    date: dt.date
    note: str = ""
    expires: dt.date | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"item": self.item, "status": self.status, "owner": self.owner, "evidence": self.evidence,
             "date": self.date.isoformat()}
        if self.note:
            d["note"] = self.note
        if self.expires:
            d["expires"] = self.expires.isoformat()
        return d


def _as_date(v: Any, path: str, fld: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ConfigError(f"must be a date YYYY-MM-DD, got {v!r}", path=path, field=fld)




def load_attestations(path: str | Path, known: Iterable[str] | None = None) -> list[Attestation]:
    """Read the attestation file (YAML ``attestations: [{item, status, owner, evidence, date}]``).

    A missing file is no attestations. Malformed entries and unknown item ids
    are config errors naming the file, line and field.
    """
    from labkit.config import read_yaml_text

    p = Path(path)
    if not p.is_file():
        return []
    data, text = read_yaml_text(p)
    data = data or {}
    entries = data.get("attestations") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("must hold a list under 'attestations'", path=str(p), field="attestations")
    known_set = set(known) if known is not None else None
    out: list[Attestation] = []
    for i, entry in enumerate(entries):
        e: Any = entry
        fld = f"attestations[{i}]"
        if not isinstance(e, dict):
            raise ConfigError("must be a mapping", path=str(p), field=fld)
        iid = e.get("item")
        line = field_line(text, f"{fld}.item")  # the entry's own line (an id can recur or be a prefix)
        for f in ATTESTATION_FIELDS:
            if e.get(f) in (None, ""):
                raise ConfigError("missing", path=str(p), line=line, field=f"{fld}.{f}")
        if known_set is not None and iid not in known_set:
            raise ConfigError(f"unknown item {iid!r}", path=str(p), line=line, field=f"{fld}.item",
                              known=sorted(known_set))
        status = str(e["status"])
        if status not in ("attested", "fail"):
            raise ConfigError(f"unknown status {status!r}", path=str(p), line=line, field=f"{fld}.status",
                              known=["attested", "fail"])
        ev = str(e["evidence"]).strip()
        if not ev.startswith(("http://", "https://", "file:", "docs/", "data/", "./", "/")):
            raise ConfigError("must be a link (URL or repository path) to the evidence", path=str(p),
                              line=line, field=f"{fld}.evidence")
        date = _as_date(e["date"], str(p), f"{fld}.date")
        expires = _as_date(e["expires"], str(p), f"{fld}.expires") if e.get("expires") else None
        out.append(Attestation(item=str(iid), status=status, owner=str(e["owner"]), evidence=ev, date=date,
                               note=str(e.get("note") or ""), expires=expires, line=line))
    return out


def apply_attestations(
    items: list[CheckItem], attestations: Iterable[Attestation], today: dt.date | None = None
) -> list[CheckItem]:
    """Settle unknown items with their attestation; never override an automated pass or fail."""
    today = today or dt.date.today()
    by_item: dict[str, Attestation] = {}
    for att in attestations:
        prev = by_item.get(att.item)
        if prev is None or att.date >= prev.date:
            by_item[att.item] = att
    out: list[CheckItem] = []
    for it in items:
        a = by_item.get(it.id)
        if a is None or it.refs:
            out.append(it)
            continue
        where = f"{a.owner}, {a.date.isoformat()}, {a.evidence}"
        if it.status in ("pass", "fail"):
            note = f" (attestation by {where} not applied: an attestation never overrides an automated result)"
            out.append(replace(it, evidence=it.evidence + note))
            continue
        stale = None
        if a.date > today:
            stale = f"dated in the future ({a.date.isoformat()})"
        elif a.expires is not None and a.expires < today:
            stale = f"expired on {a.expires.isoformat()}"
        elif (today - a.date).days > ATTESTATION_MAX_AGE_DAYS:
            stale = f"older than {ATTESTATION_MAX_AGE_DAYS} days ({a.date.isoformat()})"
        if stale:
            out.append(replace(it, evidence=f"{it.evidence} (attestation by {a.owner} ignored: {stale})",
                               action=(it.action or "") + " Renew the attestation."))
            continue
        status = "attested" if a.status == "attested" else "fail"
        evidence = f"attested by {where}" + (f" — {a.note}" if a.note else "")
        out.append(replace(it, status=status, evidence=evidence, source="attestation",
                           action=None if status == "attested" else it.action, attestation=a.to_dict()))
    return out


def worst(statuses: Iterable[str]) -> str:
    order = {"fail": 0, "unknown": 1, "attested": 2, "pass": 3}
    ss = list(statuses)
    return min(ss, key=lambda s: order[s]) if ss else "unknown"


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


@dataclass
class Paths:
    """Where the evidence lives; every path defaults to the shipped layout under ``root``."""

    root: Path = field(default_factory=lambda: Path("."))
    pipelines_dir: Path | None = None
    gate: Path | None = None
    slo: Path | None = None
    rollout: Path | None = None
    alerts: Path | None = None
    attestations: Path | None = None
    dataset: Path | None = None
    reviews: Path | None = None
    runs_dir: Path | None = None

    def __post_init__(self) -> None:
        r = Path(self.root)
        self.root = r
        d = r / "data"
        self.pipelines_dir = Path(self.pipelines_dir) if self.pipelines_dir else d / "pipelines"
        self.gate = Path(self.gate) if self.gate else d / "gate.yaml"
        self.slo = Path(self.slo) if self.slo else d / "slo.yaml"
        self.rollout = Path(self.rollout) if self.rollout else d / "rollout.yaml"
        self.alerts = Path(self.alerts) if self.alerts else d / "alerts.yaml"
        self.attestations = Path(self.attestations) if self.attestations else d / "attestations.yaml"
        self.dataset = Path(self.dataset) if self.dataset else d / "golden.jsonl"
        self.reviews = Path(self.reviews) if self.reviews else d / "reviews.jsonl"
        self.runs_dir = Path(self.runs_dir) if self.runs_dir else r / "outputs" / "runs"

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def as_mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}
