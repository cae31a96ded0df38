"""SLOs with error budgets and burn rates, and rollout stages with their gates and rollback triggers.

Every SLO is read as a *bad ratio* against an *allowance*:

==================  ============================================  ===========================
kind                bad ratio over a set of cases                 allowance
==================  ============================================  ===========================
error_rate          cases with status error/timeout / cases      1 − objective
latency             cases slower than threshold_ms / timed cases  1 − percentile/100
cost_per_success    total cost / successful cases (USD)           max_usd
quality_floor       1 − mean of the metric over measured cases    1 − floor
==================  ============================================  ===========================

budget consumed = bad ratio over the whole history / allowance; budget
remaining = 1 − consumed (negative when overspent); burn rate = bad ratio over
the recent window / allowance (1.0 spends the budget exactly over the period;
above 1 spends it early). An SLO is *met* when consumed ≤ 1, *at risk* when met
but burning faster than 1 in the recent window, *violated* when consumed > 1,
and *no data* when nothing was measured. For latency, the observed statistic is the
inverted-CDF p-th percentile (an observed latency), so "consumed ≤ 1" is exactly
"that percentile ≤ threshold".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.config import line_of
from labkit.errors import ConfigError
from labkit.readiness.model import as_mapping
from labkit.readiness.runview import RunView, chronological, num

SLO_KINDS = ("error_rate", "latency", "cost_per_success", "quality_floor")
BAD_STATUSES = ("error", "timeout")


@dataclass(frozen=True, kw_only=True)
class SLO:
    name: str
    kind: str
    allowance: float
    target: str  # human statement of the objective
    metric: str | None = None
    threshold_ms: float | None = None
    severity: str = "high"
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class SLOConfig:
    slos: tuple[SLO, ...]
    recent_runs: int = 1
    path: str | None = None


def _yaml(path: Path) -> tuple[dict[str, Any], str]:
    from labkit.config import read_yaml_text

    data, text = read_yaml_text(path)
    if not isinstance(data, dict):
        raise ConfigError("must be a YAML mapping", path=str(path))
    return data, text




def _line_of_nth(text: str, needle: str, nth: int) -> int | None:
    """The line of the ``nth`` (from 0) line of ``text`` holding ``needle``, else of the first."""
    hits = [n for n, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return hits[nth] if nth < len(hits) else (hits[0] if hits else None)


def _need_num(d: Mapping[str, Any], key: str, *, path: str, fld: str, line: int | None,
              lo: float | None = None, hi: float | None = None) -> float:
    v = d.get(key)
    f = num(v)
    if f is None:
        raise ConfigError(f"must be a number, got {v!r}", path=path, line=line, field=f"{fld}.{key}")
    if not math.isfinite(f):
        raise ConfigError(f"must be a finite number, got {f:g}", path=path, line=line, field=f"{fld}.{key}")
    if (lo is not None and f <= lo) or (hi is not None and f >= hi):
        where = f"between {lo:g} and {hi:g} (exclusive)" if lo is not None and hi is not None else \
            f"above {lo:g}" if lo is not None else f"below {hi:g}"
        raise ConfigError(f"must be {where}, got {f:g}", path=path, line=line, field=f"{fld}.{key}")
    return f


def load_slos(path: str | os.PathLike[str]) -> SLOConfig:
    """Parse the SLO file (format in docs/readiness.md); config errors name file, line and field."""
    p = Path(path)
    data, text = _yaml(p)
    raw = data.get("slos")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("must be a non-empty list", path=str(p), field="slos")
    out = []
    names: set[str] = set()
    ok_names: list[str] = []
    from labkit.metrics import METRICS

    for i, d in enumerate(raw):
        fld = f"slos[{i}]"
        if not isinstance(d, dict):
            raise ConfigError("must be a mapping", path=str(p), field=fld)
        name = d.get("name")
        line = _line_of_nth(text, f"name: {name}", sum(1 for m in ok_names if m == name)) if name else None
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("missing", path=str(p), field=f"{fld}.name")
        if name in names:
            raise ConfigError(f"duplicate SLO name {name!r}", path=str(p), line=line, field=f"{fld}.name")
        names.add(name)
        ok_names.append(name)
        kind = d.get("kind")
        if kind not in SLO_KINDS:
            raise ConfigError(f"unknown kind {kind!r}", path=str(p), line=line, field=f"{fld}.kind", known=SLO_KINDS)
        sev = str(d.get("severity") or "high")
        desc = str(d.get("description") or "")
        if kind == "error_rate":
            obj = _need_num(d, "objective", path=str(p), fld=fld, line=line, lo=0.0, hi=1.0)
            out.append(SLO(name=name, kind=kind, allowance=1 - obj,
                           target=f"≥ {obj:.2%} of requests answered without error", metric="error_rate",
                           severity=sev, description=desc))
        elif kind == "latency":
            thr = _need_num(d, "threshold_ms", path=str(p), fld=fld, line=line, lo=0.0)
            pct = _need_num(d, "percentile", path=str(p), fld=fld, line=line, lo=0.0, hi=100.0)
            out.append(SLO(name=name, kind=kind, allowance=1 - pct / 100, target=f"p{pct:g} latency ≤ {thr:g} ms",
                           metric=f"latency_p{pct:g}_ms", threshold_ms=thr, severity=sev, description=desc))
        elif kind == "cost_per_success":
            mx = _need_num(d, "max_usd", path=str(p), fld=fld, line=line, lo=0.0)
            out.append(SLO(name=name, kind=kind, allowance=mx, target=f"cost per successful task ≤ ${mx:g}",
                           metric="cost_per_success", severity=sev, description=desc))
        else:
            metric = d.get("metric")
            if metric not in METRICS or not METRICS[str(metric)].bounded or METRICS[str(metric)].direction != "higher":
                known = sorted(m for m, s in METRICS.items() if s.bounded and s.direction == "higher")
                raise ConfigError(f"quality floors need a bounded higher-is-better metric, got {metric!r}",
                                  path=str(p), line=line, field=f"{fld}.metric", known=known)
            floor = _need_num(d, "floor", path=str(p), fld=fld, line=line, lo=0.0, hi=1.0)
            out.append(SLO(name=name, kind=kind, allowance=1 - floor, target=f"{metric} ≥ {floor:g}", metric=str(metric),
                           severity=sev, description=desc))
    window = as_mapping(data.get("window"))
    recent = window.get("recent_runs", 1)
    if not isinstance(recent, int) or isinstance(recent, bool) or recent < 1:
        raise ConfigError("must be a positive integer", path=str(p), field="window.recent_runs")
    return SLOConfig(slos=tuple(out), recent_runs=recent, path=str(p))


@dataclass(kw_only=True)
class SLOStatus:
    name: str
    kind: str
    target: str
    status: str  # met | at_risk | violated | no_data
    observed: float | None  # the SLO's own statistic over the history (error rate, pN, cost/success, mean)
    bad_ratio: float | None
    allowance: float
    budget_consumed: float | None
    budget_remaining: float | None
    burn_rate: float | None
    n: int
    runs: list[str]
    evidence: str
    severity: str = "high"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _bad_ratio(slo: SLO, runs: Sequence[RunView]) -> tuple[float | None, float | None, int]:
    """(bad ratio, observed statistic, n) pooled over runs."""
    if slo.kind == "error_rate":
        rows = [r for run in runs for r in run.final_outcomes()]
        if not rows:
            return None, None, 0
        bad = sum(1 for r in rows if str(r.get("status")) in BAD_STATUSES)
        return bad / len(rows), bad / len(rows), len(rows)
    if slo.kind == "latency":
        lat = [num(r.get("latency_ms")) for run in runs for r in run.final_outcomes() if not r.get("from_cache")]
        xs = [x for x in lat if x is not None]
        if not xs:
            return None, None, 0
        assert slo.threshold_ms is not None
        import numpy as np

        pct = 100 * (1 - slo.allowance)
        # the percentile as an observed value (inverted CDF): "pN <= threshold" is then exactly
        # "at most the allowed share of cases is slower", the budget the status is judged on
        observed = float(np.percentile(xs, pct, method="inverted_cdf"))
        return sum(1 for x in xs if x > slo.threshold_ms) / len(xs), observed, len(xs)
    if slo.kind == "cost_per_success":
        cost, succ, n, recorded = 0.0, 0, 0, 0
        for run in runs:
            rows = run.final_outcomes()
            costs = [num(r.get("cost_usd")) for r in rows]
            cost += sum(c or 0.0 for c in costs)
            recorded += sum(1 for c in costs if c is not None)
            succ += sum(run.case_success().values())
            n += len(rows)
        if n == 0 or succ == 0 or recorded == 0:  # no cost recorded at all: no data, not $0
            return None, None, n
        return cost / succ, cost / succ, n
    assert slo.metric is not None
    vals = [v for run in runs for v in run.score_column(slo.metric).values()]
    if not vals:
        return None, None, 0
    mean = sum(vals) / len(vals)
    return 1 - mean, mean, len(vals)


def slo_history(runs: Sequence[str | os.PathLike[str]]) -> list[RunView]:
    """The runs ``labkit slo`` is given (:func:`evaluate_slos` orders them), each verified
    against its scoring record (labkit.scoring.verify_scored: RunDirError for a run whose
    results.jsonl, scores.csv or metrics.json changed after scoring, or that has no record);
    a run given twice (the same :attr:`labkit.runs.RunDir.run_uuid`: the same directory, or a copy
    of it) is a ConfigError naming both paths."""
    from labkit.runs import RunDir
    from labkit.scoring import verify_scored

    seen: dict[str, str] = {}
    views = []
    for arg in runs:
        view = RunView.of(arg)
        key = RunDir(view.path).run_uuid
        if key in seen:
            raise ConfigError(f"run {os.fspath(arg)} given twice: the same run as {seen[key]} (run_uuid {key}), "
                              "a copy or the same directory: each run once, or its cases are counted twice")
        seen[key] = os.fspath(arg)
        verify_scored(view.path)
        views.append(view)
    return views  # (evaluate_slos orders them)


def evaluate_slos(config: SLOConfig, history: Sequence[RunView]) -> list[SLOStatus]:
    """Each SLO over the history, ordered oldest first (:func:`chronological`, whatever order it
    is given in); the recent window is the last ``recent_runs`` runs."""
    history = chronological(history)
    recent = history[-config.recent_runs:]
    ids = [r.run_id for r in history]
    out = []
    for slo in config.slos:
        bad, obs, n = _bad_ratio(slo, history)
        rbad, _, _ = _bad_ratio(slo, recent)
        if bad is None:
            out.append(SLOStatus(name=slo.name, kind=slo.kind, target=slo.target, status="no_data", observed=None,
                                 bad_ratio=None, allowance=slo.allowance, budget_consumed=None,
                                 budget_remaining=None, burn_rate=None, n=n, runs=ids,
                                 evidence=f"nothing measured for {slo.metric or slo.kind} in {len(ids)} run(s)",
                                 severity=slo.severity))
            continue
        consumed = bad / slo.allowance
        burn = rbad / slo.allowance if rbad is not None else None
        eps = 1e-9  # float noise: an allowance of 1 - 0.9 is 0.09999999999999998
        status = "violated" if consumed > 1 + eps else ("at_risk" if burn is not None and burn > 1 + eps else "met")
        unit = {"error_rate": "error rate", "latency": f"p{100 * (1 - slo.allowance):g}",
                "cost_per_success": "cost per success $", "quality_floor": f"mean {slo.metric}"}[slo.kind]
        ev = (f"{unit} {obs:.4g} over {n} case(s) in {len(ids)} run(s) ({slo.target}); budget consumed "
              f"{consumed:.0%}, remaining {1 - consumed:.0%}; burn rate {burn:.2f} over the last "
              f"{len(recent)} run(s)") if obs is not None and burn is not None else ""
        out.append(SLOStatus(name=slo.name, kind=slo.kind, target=slo.target, status=status, observed=obs,
                             bad_ratio=bad, allowance=slo.allowance, budget_consumed=consumed,
                             budget_remaining=1 - consumed, burn_rate=burn, n=n, runs=ids, evidence=ev,
                             severity=slo.severity))
    return out


# ---- rollout ----------------------------------------------------------------------------------

REQUIREMENTS = ("gate_passed", "gate_locked", "items", "no_critical_gaps", "slos_met", "budget_remaining",
                "traces")
TRIGGER_OPS = (">", ">=", "<", "<=")


@dataclass(frozen=True, kw_only=True)
class Trigger:
    metric: str  # a metrics.json name, or burn_rate:<slo>
    op: str
    threshold: float
    window: str = ""

    @property
    def text(self) -> str:
        w = f" over {self.window}" if self.window else ""
        return f"{self.metric} {self.op} {self.threshold:g}{w}"


@dataclass(frozen=True, kw_only=True)
class Stage:
    name: str
    traffic_percent: float
    requires: tuple[Mapping[str, Any], ...]
    rollback_triggers: tuple[Trigger, ...]
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class RolloutPlan:
    stages: tuple[Stage, ...]
    rollback_to: str | None
    path: str | None = None


def _check_requirement_min(r: Mapping[str, Any], *, path: str, line: int | None, fld: str) -> None:
    """``budget_remaining`` needs a share in [0, 1]; ``traces`` a whole count >= 0."""
    if "min" not in r or r["require"] not in ("budget_remaining", "traces"):
        return
    v = r["min"]
    if r["require"] == "budget_remaining":
        f = num(v)
        if f is None or not 0.0 <= f <= 1.0:
            raise ConfigError(f"must be a share of the error budget between 0 and 1, got {v!r}", path=path,
                              line=line, field=f"{fld}.min")
    elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"must be a whole number of traces >= 0, got {v!r}", path=path, line=line,
                          field=f"{fld}.min")


def load_rollout(path: str | os.PathLike[str], slo_names: Sequence[str] = ()) -> RolloutPlan:
    """Parse the rollout file: ordered stages, each with requirements and rollback triggers."""
    from labkit.metrics import METRICS

    p = Path(path)
    data, text = _yaml(p)
    raw = data.get("stages")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("must be a non-empty list", path=str(p), field="stages")
    stages = []
    for i, d in enumerate(raw):
        fld = f"stages[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ConfigError("must be a mapping with a name", path=str(p), field=fld)
        line = line_of(text, d["name"])
        traffic = _need_num(d, "traffic_percent", path=str(p), fld=fld, line=line, lo=-1e-9, hi=100.0 + 1e-9)
        reqs = d.get("requires") or []
        if not isinstance(reqs, list):
            raise ConfigError("must be a list", path=str(p), line=line, field=f"{fld}.requires")
        for j, r in enumerate(reqs):
            if not isinstance(r, dict) or r.get("require") not in REQUIREMENTS:
                got = r.get("require") if isinstance(r, dict) else r
                raise ConfigError(f"unknown requirement {got!r}", path=str(p), line=line,
                                  field=f"{fld}.requires[{j}].require", known=REQUIREMENTS)
            _check_requirement_min(r, path=str(p), line=line, fld=f"{fld}.requires[{j}]")
        trig = []
        raw_t = d.get("rollback_triggers")
        if not isinstance(raw_t, list):
            raise ConfigError("every stage needs a list of rollback triggers", path=str(p), line=line,
                              field=f"{fld}.rollback_triggers")
        known = sorted(METRICS) + [f"burn_rate:{n}" for n in slo_names]
        for j, t in enumerate(raw_t):
            tf = f"{fld}.rollback_triggers[{j}]"
            if not isinstance(t, dict):
                raise ConfigError("must be {metric, op, threshold, window}", path=str(p), line=line, field=tf)
            if t.get("metric") not in known:
                raise ConfigError(f"unknown metric {t.get('metric')!r}", path=str(p), line=line,
                                  field=f"{tf}.metric", known=known)
            if t.get("op") not in TRIGGER_OPS:
                raise ConfigError(f"unknown op {t.get('op')!r}", path=str(p), line=line, field=f"{tf}.op",
                                  known=TRIGGER_OPS)
            thr = _need_num(t, "threshold", path=str(p), fld=tf, line=line)
            trig.append(Trigger(metric=str(t["metric"]), op=str(t["op"]), threshold=thr, window=str(t.get("window") or "")))
        stages.append(Stage(name=d["name"], traffic_percent=traffic, requires=tuple(reqs), rollback_triggers=tuple(trig),
                            description=str(d.get("description") or "")))
    rb = as_mapping(data.get("rollback"))
    to = rb.get("to")
    return RolloutPlan(stages=tuple(stages), rollback_to=str(to) if to else None, path=str(p))


@dataclass(kw_only=True)
class StageStatus:
    name: str
    traffic_percent: float
    supported: bool
    requirements: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class RolloutStatus:
    stages: list[StageStatus]
    supported_stage: str | None
    rollback_to: str | None
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"supported_stage": self.supported_stage, "rollback_to": self.rollback_to, "path": self.path,
                "stages": [s.to_dict() for s in self.stages]}


def _cmp(x: float, op: str, y: float) -> bool:
    return {">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y}[op]


def evaluate_rollout(
    plan: RolloutPlan,
    *,
    items: Mapping[str, Any],
    slos: Sequence[SLOStatus],
    metrics: Mapping[str, Any],
    history: Sequence[RunView],
) -> RolloutStatus:
    """Which stage the evidence supports: every requirement of it and of each earlier stage holds,
    and none of its rollback triggers would already fire on the evidence."""
    by_slo = {s.name: s for s in slos}
    statuses: list[StageStatus] = []
    supported: str | None = None
    prev_ok = True
    for st in plan.stages:
        reqs = []
        for r in st.requires:
            kind = r["require"]
            ok, ev = _requirement(kind, r, items=items, slos=slos, history=history)
            reqs.append({"require": kind, "passed": ok, "evidence": ev})
        trigs = []
        for t in st.rollback_triggers:
            val: float | None
            if t.metric.startswith("burn_rate:"):
                s = by_slo.get(t.metric.split(":", 1)[1])
                val = s.burn_rate if s else None
            else:
                e = metrics.get(t.metric)
                val = num(e.get("value")) if isinstance(e, Mapping) else None
            fires = val is not None and _cmp(val, t.op, t.threshold)
            trigs.append({"trigger": t.text, "observed": val, "would_fire": fires})
        ok = prev_ok and all(r["passed"] for r in reqs) and not any(t["would_fire"] for t in trigs)
        statuses.append(StageStatus(name=st.name, traffic_percent=st.traffic_percent, supported=ok, requirements=reqs,
                                    triggers=trigs, description=st.description))
        if ok:
            supported = st.name
        prev_ok = ok
    return RolloutStatus(stages=statuses, supported_stage=supported, rollback_to=plan.rollback_to, path=plan.path)


def _requirement(kind: str, r: Mapping[str, Any], *, items: Mapping[str, Any], slos: Sequence[SLOStatus],
                 history: Sequence[RunView]) -> tuple[bool, str]:
    def st(iid: str) -> str:
        it = items.get(iid)
        return str(getattr(it, "status", "unknown")) if it is not None else "missing"

    if kind == "gate_passed":
        return st("gate.passes") == "pass", f"gate.passes: {st('gate.passes')}"
    if kind == "gate_locked":
        return st("gate.locked") == "pass", f"gate.locked: {st('gate.locked')}"
    if kind == "items":
        ids = [str(x) for x in r.get("items") or []]
        bad = [f"{i}: {st(i)}" for i in ids if st(i) not in ("pass", "attested")]
        return not bad, ("; ".join(bad) if bad else f"{len(ids)} item(s) pass or attested")
    if kind == "no_critical_gaps":
        crit = [i for i, it in items.items() if getattr(it, "severity", "") == "critical"
                and getattr(it, "is_gap", False)]
        return not crit, (f"critical gaps: {', '.join(crit)}" if crit else "no critical gap")
    if kind == "slos_met":
        bad = [f"{s.name}: {s.status}" for s in slos if s.status != "met"]
        return (not bad and bool(slos)), ("; ".join(bad) if bad else f"{len(slos)} SLO(s) met")
    if kind == "budget_remaining":
        need = float(r.get("min", 0.5))
        low = [f"{s.name}: {s.budget_remaining:.0%}" if s.budget_remaining is not None else f"{s.name}: no data"
               for s in slos if s.budget_remaining is None or s.budget_remaining < need]
        return not low, ("budget below " + f"{need:.0%}: " + "; ".join(low)) if low else \
            f"every SLO keeps at least {need:.0%} of its error budget"
    # traces served to real traffic in an environment
    env = str(r.get("environment") or "production")
    need_n = int(r.get("min") or 1)
    n = sum(1 for run in history for t in run.traces if str(t.get("environment") or "") == env)
    return n >= need_n, f"{n} trace(s) with environment={env} in the history (need {need_n})"
