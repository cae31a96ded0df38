"""The release gate: YAML config, evaluation, pre-registration lock, CI outputs.

A gate is declared before the change is tested. ``labkit gate lock GATE``
records the gate file's hash and the time in ``GATE.lock.json``; runs record
that lock in their manifest, and the gate report says whether the gate was
fixed before the run it judges and flags a gate edited afterwards.

Kinds of checks (format in docs/formats.md):

* ``checks``: absolute thresholds on an aggregate (``statistic``: value,
  ci_low or ci_high) read from a run's metrics.json or a plain dict;
* ``regression``: non-inferiority against a baseline run: fails when the
  paired delta's interval lies wholly beyond ``max_drop`` in the bad direction;
* ``slices``: absolute checks on the aggregates of a tag slice (``risk=high``);
* ``unmeasured``: bound on the share of unmeasured cases of the gated metrics;
* ``review``: cases matching ``required_for`` need an approving human review
  record (JSONL: case_id, reviewer, verdict, at).
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError, GateFailed, Problem

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
STATISTICS = ("value", "ci_low", "ci_high")
REVIEW_APPROVED = ("approved", "approve", "pass", "ok")


def known_metrics() -> list[str]:
    from labkit.registry import METRICS

    return sorted(METRICS)


def _direction(metric: str) -> str:
    from labkit.registry import METRICS

    return METRICS[metric].direction


@dataclass(frozen=True)
class Check:
    metric: str
    op: str
    threshold: float
    statistic: str = "value"

    @property
    def name(self) -> str:
        stat = "" if self.statistic == "value" else f"[{self.statistic}]"
        return f"{self.metric}{stat} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class RegressionCheck:
    metric: str
    max_drop: float

    @property
    def name(self) -> str:
        return f"{self.metric} no worse than baseline by {self.max_drop:g}"


@dataclass(frozen=True)
class SliceCheck:
    where: Mapping[str, str]
    checks: tuple[Check, ...]

    @property
    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.where.items()))


@dataclass(frozen=True)
class CheckResult:
    """One line of the gate report."""

    name: str
    kind: str  # absolute | regression | slice | unmeasured | review | pre_registration
    metric: str | None
    op: str | None
    threshold: float | None
    observed: float | None
    passed: bool
    reason: str
    statistic: str | None = None
    slice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(v: Any, path: str | None, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"must be a finite number, got {v!r}", path=path, field=fld)
    return float(v)


def _parse_check(d: Any, path: str | None, fld: str, known: list[str]) -> Check:
    if not isinstance(d, dict):
        raise ConfigError("must be a mapping {metric, op, threshold}", path=path, field=fld)
    extra = set(d) - {"metric", "op", "threshold", "statistic"}
    if extra:
        raise ConfigError(f"unknown key(s) {sorted(extra)}", path=path, field=fld,
                          known=["metric", "op", "threshold", "statistic"])
    metric = d.get("metric")
    if metric not in known:
        raise ConfigError(f"unknown metric {metric!r}", path=path, field=f"{fld}.metric", known=known)
    op = d.get("op")
    if op not in OPS:
        raise ConfigError(f"unknown op {op!r}", path=path, field=f"{fld}.op", known=list(OPS))
    stat = d.get("statistic", "value")
    if stat not in STATISTICS:
        raise ConfigError(f"unknown statistic {stat!r}", path=path, field=f"{fld}.statistic",
                          known=list(STATISTICS))
    threshold = _num(d.get("threshold"), path, f"{fld}.threshold")
    if _bounded(str(metric)) and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{metric} lies in [0, 1]; threshold {threshold:g} can never be met as meant",
                          path=path, field=f"{fld}.threshold")
    return Check(str(metric), str(op), threshold, str(stat))


def _bounded(metric: str) -> bool:
    from labkit.registry import METRICS

    return bool(METRICS[metric].bounded)


def _check_tag_values(where: Mapping[str, str], path: str | None, fld: str) -> None:
    """risk and kind take known values: a typo is a config error, not a failing slice."""
    from labkit.cases import KINDS, RISKS

    for tag, known in (("risk", RISKS), ("kind", KINDS)):
        if tag in where and where[tag] not in known:
            raise ConfigError(f"unknown {tag} {where[tag]!r}", path=path, field=f"{fld}.{tag}", known=known)


def _locate(text: str, err: ConfigError) -> int | None:
    """The line of a gate file an error is about: where its bad value, else its key, stands."""
    from labkit.config import line_of

    quoted = re.search(r"'([^']+)'", err.message)
    if quoted and (n := line_of(text, quoted.group(1))):
        return n
    key = re.split(r"[.\[\]]+", err.field or "")
    key = [k for k in key if k and not k.isdigit()]
    return line_of(text, key[-1] + ":") if key else None


def _utc(stamp: Any) -> datetime:
    """An ISO time as an aware UTC datetime (times without a zone are read as UTC), so stamps
    of different precision compare by time, not as text."""
    try:
        t = datetime.fromisoformat(str(stamp))
    except ValueError:
        raise ConfigError(f"not an ISO time: {stamp!r}", field="locked_at") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def file_hash(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def lock_path(gate_path: str | os.PathLike[str]) -> Path:
    p = Path(gate_path)
    return p.with_name(p.name + ".lock.json")


def lock_gate(gate_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Pre-register a gate: validate it, then record its hash and the UTC time beside it.

    Locking an unchanged, already locked gate keeps the original lock (``already_locked``);
    a changed gate is locked anew, and runs made before that are then flagged.
    """
    from labkit.cases import atomic_write_text

    Gate.load(gate_path)
    current = gate_lock_info(gate_path)
    if current is not None and current["locked_hash"] == current["hash"]:
        # the same gate is already pre-registered: keep its original time
        return {"gate": str(gate_path), "hash": current["hash"], "locked_at": current["locked_at"],
                "already_locked": True}
    info = {
        "gate": str(gate_path),
        "hash": file_hash(gate_path),
        "locked_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    atomic_write_text(lock_path(gate_path), json.dumps(info, indent=2) + "\n")
    return info


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
            info["locked_at"] = lock.get("locked_at")
            info["locked_hash"] = lock.get("hash")
        except json.JSONDecodeError as e:
            raise ConfigError(f"malformed lock file: {e.msg}", path=str(lp), line=e.lineno) from None
    info["edited_after_lock"] = info["locked_hash"] is not None and info["locked_hash"] != info["hash"]
    return info


def load_reviews(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Review records (JSONL: case_id, reviewer, verdict, at); the last record per case wins."""
    from labkit.cases import iter_jsonl

    p = Path(path)
    problems: list[Problem] = []
    out: dict[str, dict[str, Any]] = {}
    for n, line, _ in iter_jsonl(p, strict_tail=True):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(n, None, f"malformed JSON: {e.msg}"))
            continue
        if not isinstance(rec, dict):
            problems.append(Problem(n, None, "must be a JSON object"))
            continue
        bad = [f for f in ("case_id", "reviewer", "verdict", "at")
               if not isinstance(rec.get(f), str) or not rec[f].strip()]
        problems.extend(Problem(n, f, "missing or not a non-empty string") for f in bad)
        if not bad:
            out[rec["case_id"]] = rec
    if problems:
        raise DatasetError(str(p), problems)
    return out


@dataclass
class GateReport:
    gate: str
    passed: bool
    checks: list[CheckResult]
    run_id: str | None = None
    pre_registration: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "run_id": self.run_id,
            "passed": self.passed,
            "verdict": "pass" if self.passed else "fail",
            "n_checks": len(self.checks),
            "n_failed": len(self.failed),
            "checks": [c.to_dict() for c in self.checks],
            "pre_registration": self.pre_registration,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def summary(self) -> str:
        lines = [f"gate {self.gate}: {'PASS' if self.passed else 'FAIL'}"
                 f" ({len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed)"]
        for c in self.checks:
            obs = "—" if c.observed is None else f"{c.observed:.4g}"
            lines.append(f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: observed {obs} — {c.reason}")
        pr = self.pre_registration
        if pr:
            lines.append(f"  pre-registration: {pr.get('status')}: {pr.get('detail')}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        rows = ["| check | observed | threshold | result | reason |", "|---|---|---|---|---|"]
        for c in self.checks:
            obs = "—" if c.observed is None else f"{c.observed:.4g}"
            thr = "—" if c.threshold is None else f"{c.op} {c.threshold:g}"
            rows.append(f"| {c.name} | {obs} | {thr} | {'✅ pass' if c.passed else '❌ fail'} | {c.reason} |")
        pr = self.pre_registration
        tail = f"\n\nPre-registration: **{pr.get('status')}** — {pr.get('detail')}\n" if pr else "\n"
        return f"### Gate `{self.gate}`: **{head}**\n\n" + "\n".join(rows) + tail

    def to_junit(self) -> str:
        from xml.sax.saxutils import quoteattr

        cases = []
        for c in self.checks:
            body = ""
            if not c.passed:
                body = f"<failure message={quoteattr(c.reason)}>{quoteattr(c.reason)[1:-1]}</failure>"
            cases.append(f'  <testcase classname={quoteattr("labkit.gate." + c.kind)} '
                         f'name={quoteattr(c.name)}>{body}</testcase>')
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name={quoteattr(self.gate)} tests="{len(self.checks)}" '
            f'failures="{len(self.failed)}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n"
        )


def _observed(metrics: Mapping[str, Any], metric: str, statistic: str) -> tuple[float | None, str]:
    """Read one aggregate from a metrics.json-shaped mapping or a plain {metric: value} dict."""
    if isinstance(metrics.get("metrics"), dict):
        entry = metrics["metrics"].get(metric)
        if entry is None:
            return None, "metric not computed for this run"
        val = entry.get(statistic)
        if val is None:
            n_un = entry.get("unmeasured", "?")
            return None, f"unmeasured on every case ({n_un} unmeasured)" if statistic == "value" \
                else f"{statistic} not available"
        return float(val), ""
    if statistic != "value":
        return None, f"{statistic} needs a metrics.json with intervals, not a plain dict"
    if metric not in metrics:
        return None, "metric missing from the metrics given"
    val = metrics[metric]
    if val is None or (isinstance(val, float) and math.isnan(val)):
        return None, "unmeasured"
    return float(val), ""


def _check(c: Check, metrics: Mapping[str, Any], kind: str, slice_key: str | None = None) -> CheckResult:
    obs, why = _observed(metrics, c.metric, c.statistic)
    if obs is None:
        return CheckResult(c.name, kind, c.metric, c.op, c.threshold, None, False, why, c.statistic, slice_key)
    ok = OPS[c.op](obs, c.threshold)
    reason = f"{obs:.4g} {c.op} {c.threshold:g}" if ok else f"{obs:.4g} is not {c.op} {c.threshold:g}"
    return CheckResult(c.name, kind, c.metric, c.op, c.threshold, obs, ok, reason, c.statistic, slice_key)


@dataclass(frozen=True)
class Gate:
    name: str
    checks: tuple[Check, ...] = ()
    regression: tuple[RegressionCheck, ...] = ()
    slices: tuple[SliceCheck, ...] = ()
    unmeasured_max_rate: float | None = None
    review_required_for: Mapping[str, str] | None = None
    require_lock: bool = False
    version: int = 1
    path: str | None = None

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Gate:
        from labkit.config import read_yaml_text

        data, text = read_yaml_text(path)
        if not isinstance(data, dict):
            raise ConfigError("must be a YAML mapping", path=str(path))
        try:
            return cls.from_dict(data, path=str(path))
        except ConfigError as e:
            if e.line is not None or e.field is None:
                raise
            raise ConfigError(e.message, path=str(path), line=_locate(text, e), field=e.field,
                              known=e.known) from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | None = None) -> Gate:
        known_keys = ["version", "name", "checks", "regression", "slices", "unmeasured", "review", "require_lock"]
        extra = set(d) - set(known_keys)
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)}", path=path, field=sorted(extra)[0], known=known_keys)
        if d.get("version", 1) != 1:
            raise ConfigError(f"unsupported gate version {d.get('version')!r}", path=path, field="version", known=["1"])
        known = known_metrics()
        def listed(key: str) -> list[Any]:
            raw = d.get(key) or []
            if not isinstance(raw, list):
                raise ConfigError("must be a list", path=path, field=key)
            return raw

        checks = tuple(_parse_check(c, path, f"checks[{i}]", known) for i, c in enumerate(listed("checks")))
        regs = []
        for i, r in enumerate(listed("regression")):
            fld = f"regression[{i}]"
            if not isinstance(r, dict) or set(r) - {"metric", "max_drop"}:
                raise ConfigError("must be {metric, max_drop}", path=path, field=fld)
            if r.get("metric") not in known:
                raise ConfigError(f"unknown metric {r.get('metric')!r}", path=path, field=f"{fld}.metric", known=known)
            drop = _num(r.get("max_drop"), path, f"{fld}.max_drop")
            if drop < 0:
                raise ConfigError("must be >= 0", path=path, field=f"{fld}.max_drop")
            regs.append(RegressionCheck(str(r["metric"]), drop))
        slices = []
        for i, s in enumerate(listed("slices")):
            fld = f"slices[{i}]"
            if not isinstance(s, dict) or not isinstance(s.get("where"), dict) or not s["where"]:
                raise ConfigError("must be {where: {tag: value}, checks: [...]}", path=path, field=fld)
            where = {str(k): str(v) for k, v in s["where"].items()}
            if len(where) != 1:
                raise ConfigError("a slice names one tag (metrics.json aggregates one tag at a time, "
                                  "e.g. {risk: high})", path=path, field=f"{fld}.where")
            _check_tag_values(where, path, f"{fld}.where")
            sc = s.get("checks") or []
            if not isinstance(sc, list) or not sc:
                raise ConfigError("must be a non-empty list", path=path, field=f"{fld}.checks")
            slices.append(SliceCheck(where, tuple(_parse_check(c, path, f"{fld}.checks[{j}]", known)
                                                  for j, c in enumerate(sc))))
        um = d.get("unmeasured")
        max_rate = None
        if um is not None:
            if not isinstance(um, dict) or set(um) != {"max_rate"}:
                raise ConfigError("must be {max_rate: number}", path=path, field="unmeasured")
            max_rate = _num(um["max_rate"], path, "unmeasured.max_rate")
        rv = d.get("review")
        req = None
        if rv is not None:
            if not isinstance(rv, dict) or not isinstance(rv.get("required_for"), dict) or set(rv) != {"required_for"}:
                raise ConfigError("must be {required_for: {tag: value}}", path=path, field="review")
            req = {str(k): str(v) for k, v in rv["required_for"].items()}
            _check_tag_values(req, path, "review.required_for")
        require_lock = d.get("require_lock", False)
        if not isinstance(require_lock, bool):
            raise ConfigError("must be true or false", path=path, field="require_lock")
        if not (checks or regs or slices or max_rate is not None or req):
            raise ConfigError("gate has no checks", path=path, field="checks")
        return cls(str(d.get("name") or (Path(path).stem if path else "gate")), checks, tuple(regs),
                   tuple(slices), max_rate, req, require_lock, 1, path)

    # ---- editing (threshold tuning) -----------------------------------------------------------
    def with_thresholds(self, thresholds: Mapping[str, float]) -> Gate:
        """A copy whose absolute checks take new thresholds, keyed by check name or metric."""
        checks = tuple(
            replace(c, threshold=float(thresholds.get(c.name, thresholds.get(c.metric, c.threshold))))
            for c in self.checks
        )
        return replace(self, checks=checks)

    def to_dict(self) -> dict[str, Any]:
        def chk(c: Check) -> dict[str, Any]:
            out: dict[str, Any] = {"metric": c.metric, "op": c.op, "threshold": c.threshold}
            if c.statistic != "value":
                out["statistic"] = c.statistic
            return out

        d: dict[str, Any] = {"version": 1, "name": self.name, "checks": [chk(c) for c in self.checks]}
        if self.regression:
            d["regression"] = [{"metric": r.metric, "max_drop": r.max_drop} for r in self.regression]
        if self.slices:
            d["slices"] = [{"where": dict(s.where), "checks": [chk(c) for c in s.checks]} for s in self.slices]
        if self.unmeasured_max_rate is not None:
            d["unmeasured"] = {"max_rate": self.unmeasured_max_rate}
        if self.review_required_for:
            d["review"] = {"required_for": dict(self.review_required_for)}
        if self.require_lock:
            d["require_lock"] = True
        return d

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        import yaml

        from labkit.cases import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)

    @property
    def metrics(self) -> list[str]:
        names = [c.metric for c in self.checks] + [r.metric for r in self.regression]
        names += [c.metric for s in self.slices for c in s.checks]
        return list(dict.fromkeys(names))

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(
        self,
        target: Any,
        *,
        baseline: str | os.PathLike[str] | None = None,
        reviews: str | os.PathLike[str] | Mapping[str, Mapping[str, Any]] | None = None,
        dataset: Any = None,
        seed: int = 0,
    ) -> GateReport:
        """Judge a run directory, a metrics.json mapping or a plain {metric: value} dict."""
        from labkit.runs import RunDir

        run: RunDir | None = None
        metrics: Mapping[str, Any]
        if isinstance(target, RunDir):
            run = target
        elif isinstance(target, (str, os.PathLike)):
            run = RunDir(target)
        if run is not None:
            if not run.path.is_dir():
                raise ConfigError("run directory not found", path=str(run.path))
            metrics = run.metrics()
            if not metrics:
                raise ConfigError(f"no metrics.json: score the run first (labkit score {run.path})",
                                  path=str(run.path))
            run_id: str | None = run.run_id
        elif isinstance(target, Mapping):
            metrics, run_id = target, None
        else:
            raise ConfigError(f"cannot evaluate a gate on {type(target).__name__}")

        results = [_check(c, metrics, "absolute") for c in self.checks]
        for s in self.slices:
            sl = (metrics.get("slices") or {}).get(s.key) if isinstance(metrics.get("metrics"), dict) else None
            for c in s.checks:
                if sl is None:
                    results.append(CheckResult(f"{s.key}: {c.name}", "slice", c.metric, c.op, c.threshold, None,
                                               False, f"slice {s.key} not in metrics.json", c.statistic, s.key))
                else:
                    r = _check(c, {"metrics": sl}, "slice", s.key)
                    results.append(replace(r, name=f"{s.key}: {c.name}"))
        if self.unmeasured_max_rate is not None:
            results.extend(self._unmeasured(metrics))
        if self.regression:
            results.extend(self._regressions(run, baseline, seed))
        if self.review_required_for:
            results.append(self._review(run, reviews, dataset))
        pre = self._pre_registration(run)
        if pre.get("status") in ("edited_after_lock", "locked_after_run") or (
            self.require_lock and pre.get("status") != "pre_registered"
        ):
            results.append(CheckResult("gate pre-registered before the run", "pre_registration", None, None,
                                       None, None, False, pre["detail"]))
        return GateReport(self.name, all(r.passed for r in results), results, run_id, pre)

    def enforce(self, target: Any, **kw: Any) -> GateReport:
        """Evaluate and raise GateFailed when a check fails."""
        rep = self.evaluate(target, **kw)
        if not rep.passed:
            raise GateFailed(rep)
        return rep

    def _unmeasured(self, metrics: Mapping[str, Any]) -> list[CheckResult]:
        """The unmeasured budget applies to the metrics of the absolute ``checks``."""
        assert self.unmeasured_max_rate is not None
        limit = self.unmeasured_max_rate
        if not isinstance(metrics.get("metrics"), dict):
            return [CheckResult("unmeasured rate", "unmeasured", None, "<=", limit, None,
                                False, "needs a metrics.json with unmeasured counts")]
        out = []
        for m in dict.fromkeys(c.metric for c in self.checks):
            e = metrics["metrics"].get(m)
            if e is None:
                continue
            n, un = int(e.get("n") or 0), int(e.get("unmeasured") or 0)
            rate = un / (n + un) if n + un else 1.0
            why = ", ".join(f"{k}: {v}" for k, v in (e.get("unmeasured_reasons") or {}).items())
            out.append(CheckResult(f"{m} unmeasured rate <= {limit:g}", "unmeasured", m, "<=", limit, rate,
                                   rate <= limit, f"{un} of {n + un} cases unmeasured ({rate:.1%})"
                                   + (f" — {why}" if why else "")))
        return out

    def _regressions(self, run: Any, baseline: Any, seed: int) -> list[CheckResult]:
        if baseline is None:
            raise ConfigError("the gate has regression checks: give the baseline run (--baseline RUN_DIR)",
                              path=self.path, field="regression")
        if run is None:
            raise ConfigError("regression checks judge a run directory, not a dict of metrics",
                              path=self.path, field="regression")
        from labkit.compare import compare_runs

        comp = compare_runs(baseline, run.path, seed=seed).to_dict()
        out = []
        for r in self.regression:
            m = comp["metrics"].get(r.metric)
            if m is None or m.get("ci_low") is None or m.get("ci_high") is None:
                out.append(CheckResult(r.name, "regression", r.metric, None, r.max_drop, None, False,
                                       "no paired delta for this metric (unmeasured in either run)"))
                continue
            delta = float(m["delta"])
            if _direction(r.metric) == "higher":
                ok = not (float(m["ci_high"]) < -r.max_drop)
                why = (f"delta {delta:+.4g}, 95% CI [{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]; "
                       f"{'within' if ok else 'whole interval below'} −{r.max_drop:g}")
            else:
                ok = not (float(m["ci_low"]) > r.max_drop)
                why = (f"delta {delta:+.4g}, 95% CI [{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]; "
                       f"{'within' if ok else 'whole interval above'} +{r.max_drop:g}")
            out.append(CheckResult(r.name, "regression", r.metric, None, r.max_drop, delta, ok, why))
        return out

    def _review(self, run: Any, reviews: Any, dataset: Any) -> CheckResult:
        from labkit.cases import Dataset, load_cases

        assert self.review_required_for is not None
        where = ",".join(f"{k}={v}" for k, v in self.review_required_for.items())
        name = f"human review of {where} cases"
        ds = dataset
        if ds is None and run is not None:
            ds = run.dataset_path()
        if ds is None:
            return CheckResult(name, "review", None, ">=", 1.0, None, False, "needs the dataset to find the cases")
        cases = ds if isinstance(ds, Dataset) else load_cases(ds)
        need = [c.id for c in cases if all(c.tags.get(k) == v for k, v in self.review_required_for.items())]
        if not need:
            return CheckResult(name, "review", None, ">=", 1.0, 1.0, True, f"no {where} cases")
        recs = load_reviews(reviews) if isinstance(reviews, (str, os.PathLike)) else dict(reviews or {})
        approved = [cid for cid in need if str(recs.get(cid, {}).get("verdict", "")).lower() in REVIEW_APPROVED]
        rejected = [cid for cid in need if cid in recs and cid not in approved]
        missing = [cid for cid in need if cid not in recs]
        cov = len(approved) / len(need)
        parts = [f"{len(approved)}/{len(need)} approved"]
        if missing:
            parts.append(f"missing: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
        if rejected:
            parts.append(f"rejected: {', '.join(rejected[:10])}")
        return CheckResult(name, "review", None, ">=", 1.0, cov, cov >= 1.0, "; ".join(parts))

    def _pre_registration(self, run: Any) -> dict[str, Any]:
        if self.path is None:
            return {"status": "unknown", "detail": "gate not loaded from a file"}
        info = gate_lock_info(self.path)
        if info is None:
            return {"status": "unknown", "detail": "gate file not found"}
        if info.get("edited_after_lock"):
            return {"status": "edited_after_lock", "detail": "the gate file changed after it was locked "
                    f"(locked hash {str(info['locked_hash'])[:12]}, now {info['hash'][:12]})", **info}
        if not info.get("locked_at"):
            return {"status": "not_locked", "detail": f"no lock; run `labkit gate lock {self.path}` "
                    "before testing a change", **info}
        if run is not None:
            rec = run.manifest.get("gate") or {}
            created = run.manifest.get("created_at")
            if not created:
                return {"status": "unverifiable", "detail": f"locked at {info['locked_at']}, but the run "
                        "records no start time (created_at), so nothing shows the gate came first", **info}
            if rec.get("hash") and rec["hash"] != info["hash"]:
                return {"status": "edited_after_lock", "detail": "the run was judged by another version "
                        f"of the gate (run recorded {rec['hash'][:12]}, now {info['hash'][:12]})", **info}
            if created and _utc(info["locked_at"]) > _utc(created):
                return {"status": "locked_after_run", "detail": f"gate locked at {info['locked_at']}, "
                        f"after the run started at {created}", **info}
            return {"status": "pre_registered", "detail": f"locked at {info['locked_at']}, "
                    f"before the run at {created}", **info}
        return {"status": "unverifiable", "detail": f"locked at {info['locked_at']}; metrics given "
                "without a run, so nothing shows the gate came first", **info}


MODULE_GATE = Gate(
    name="release-gate",
    checks=(
        Check("faithfulness", ">=", 0.85),
        Check("retrieval_hit_rate", ">=", 0.80),
        Check("latency_p95_ms", "<=", 3500.0),
        Check("cost_per_success", "<=", 0.08),
    ),
)


def release_gate(metrics: Mapping[str, Any], gate: Gate | str | None = None) -> bool:
    """The module's ``release_gate(metrics) -> bool``: a gate on a plain dict of metric values."""
    g = Gate.load(gate) if isinstance(gate, str) else (gate or MODULE_GATE)
    return g.evaluate(dict(metrics)).passed

