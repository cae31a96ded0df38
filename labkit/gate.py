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
* ``unmeasured``: bound on the share of unmeasured cases of the gated metrics (a case
  of the dataset with no result counts as unmeasured, and as missing);
* ``review``: cases matching ``required_for`` need an approving human review
  record (JSONL: case_id, reviewer, verdict, at).

On a metrics.json every run also gets a ``coverage`` check (every case of the
dataset judged, labkit/gate_cases.py), and a check whose statistic stands on
fewer than its ``min_n`` cases fails. Lock files: labkit/gate_lock.py; the
report and its CI outputs: labkit/gate_report.py.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError, GateFailed, Problem
from labkit.gate_cases import case_counts, coverage_check, default_min_n, parse_min_n, too_few
from labkit.gate_lock import file_hash, gate_lock_info, lock_gate, lock_path, pre_registration
from labkit.gate_report import CheckResult, GateReport

__all__ = ["MODULE_GATE", "Check", "CheckResult", "Gate", "GateReport", "RegressionCheck", "SliceCheck",
           "default_min_n", "file_hash", "gate_lock_info", "load_reviews", "lock_gate", "lock_path",
           "release_gate"]

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
    min_n: int | None = None  # None: default_min_n(metric)

    @property
    def needed_n(self) -> int:
        return default_min_n(self.metric) if self.min_n is None else self.min_n

    @property
    def name(self) -> str:
        stat = "" if self.statistic == "value" else f"[{self.statistic}]"
        return f"{self.metric}{stat} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class RegressionCheck:
    metric: str
    max_drop: float
    min_n: int | None = None  # paired cases; None: default_min_n(metric)

    @property
    def needed_n(self) -> int:
        return default_min_n(self.metric) if self.min_n is None else self.min_n

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


def _num(v: Any, path: str | None, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"must be a finite number, got {v!r}", path=path, field=fld)
    return float(v)


def _parse_check(d: Any, path: str | None, fld: str, known: list[str]) -> Check:
    if not isinstance(d, dict):
        raise ConfigError("must be a mapping {metric, op, threshold}", path=path, field=fld)
    extra = set(d) - {"metric", "op", "threshold", "statistic", "min_n"}
    if extra:
        raise ConfigError(f"unknown key(s) {sorted(extra)}", path=path, field=fld,
                          known=["metric", "op", "threshold", "statistic", "min_n"])
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
    return Check(str(metric), str(op), threshold, str(stat), parse_min_n(d, path, fld))


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


def load_reviews(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Review records (JSONL: case_id, reviewer, verdict, at); the last record per case wins."""
    from labkit.cases import iter_jsonl, loads_line

    p = Path(path)
    problems: list[Problem] = []
    out: dict[str, dict[str, Any]] = {}
    for n, line, _ in iter_jsonl(p, strict_tail=True):
        try:
            rec = loads_line(line)
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


def _entry_n(metrics: Mapping[str, Any], metric: str) -> int | None:
    entry = metrics["metrics"].get(metric) or {}
    n = entry.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _check(c: Check, metrics: Mapping[str, Any], kind: str, slice_key: str | None = None) -> CheckResult:
    """One threshold check; on a metrics.json it also needs ``min_n`` measured cases (a plain
    dict of values carries no n, so there the rule cannot apply)."""
    obs, why = _observed(metrics, c.metric, c.statistic)
    has_n = isinstance(metrics.get("metrics"), dict)
    n = _entry_n(metrics, c.metric) if has_n else None
    min_n = c.needed_n if has_n else None
    if obs is None:
        return CheckResult(c.name, kind, c.metric, c.op, c.threshold, None, False, why, c.statistic, slice_key,
                           n, min_n)
    ok = OPS[c.op](obs, c.threshold)
    reason = f"{obs:.4g} {c.op} {c.threshold:g}" if ok else f"{obs:.4g} is not {c.op} {c.threshold:g}"
    few = too_few(n, min_n) if min_n is not None else ""
    if few:
        ok, reason = False, f"{few} ({reason})"
    return CheckResult(c.name, kind, c.metric, c.op, c.threshold, obs, ok, reason, c.statistic, slice_key,
                       n, min_n)


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
            if not isinstance(r, dict) or set(r) - {"metric", "max_drop", "min_n"}:
                raise ConfigError("must be {metric, max_drop[, min_n]}", path=path, field=fld)
            if r.get("metric") not in known:
                raise ConfigError(f"unknown metric {r.get('metric')!r}", path=path, field=f"{fld}.metric", known=known)
            drop = _num(r.get("max_drop"), path, f"{fld}.max_drop")
            if drop < 0:
                raise ConfigError("must be >= 0", path=path, field=f"{fld}.max_drop")
            regs.append(RegressionCheck(str(r["metric"]), drop, parse_min_n(r, path, fld)))
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
            if not 0.0 <= max_rate <= 1.0:
                raise ConfigError(f"must be a share between 0 and 1, got {max_rate:g}", path=path,
                                  field="unmeasured.max_rate")
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

    def thresholds_only(self) -> Gate:
        """A copy without the regression checks: what one run's metrics can judge on their own
        (threshold tuning, tables of a run). The verdict of a release needs the whole gate."""
        return replace(self, regression=())

    def to_dict(self) -> dict[str, Any]:
        def chk(c: Check) -> dict[str, Any]:
            out: dict[str, Any] = {"metric": c.metric, "op": c.op, "threshold": c.threshold}
            if c.statistic != "value":
                out["statistic"] = c.statistic
            if c.min_n is not None:
                out["min_n"] = c.min_n
            return out

        def reg(r: RegressionCheck) -> dict[str, Any]:
            out: dict[str, Any] = {"metric": r.metric, "max_drop": r.max_drop}
            return {**out, "min_n": r.min_n} if r.min_n is not None else out

        d: dict[str, Any] = {"version": 1, "name": self.name, "checks": [chk(c) for c in self.checks]}
        if self.regression:
            d["regression"] = [reg(r) for r in self.regression]
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
        cov = coverage_check(metrics, run, self.unmeasured_max_rate) if isinstance(metrics.get("metrics"), dict) \
            else None
        if cov is not None:
            results.append(cov)
        if self.unmeasured_max_rate is not None:
            results.extend(self._unmeasured(metrics))
        notes = []
        if self.regression:
            results.extend(self._regressions(run, baseline, seed))
        elif baseline is not None:
            notes.append(f"a baseline ({baseline}) was given, but the gate has no regression checks: "
                         "nothing was compared with it")
        if self.review_required_for:
            results.append(self._review(run, reviews, dataset))
        pre = self._pre_registration(run)
        if pre.get("status") in ("edited_after_lock", "locked_after_run") or (
            self.require_lock and pre.get("status") != "pre_registered"
        ):
            results.append(CheckResult("gate pre-registered before the run", "pre_registration", None, None,
                                       None, None, False, pre["detail"]))
        counts = case_counts(metrics, run) if isinstance(metrics.get("metrics"), dict) else None
        return GateReport(self.name, all(r.passed for r in results), results, run_id, pre, counts, notes)

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
            miss = int(e.get("n_missing", metrics.get("n_missing")) or 0)  # no result: unmeasured too
            total = n + un + miss
            rate = (un + miss) / total if total else 1.0
            reasons = {**(e.get("unmeasured_reasons") or {}), **({"no_result": miss} if miss else {})}
            why = ", ".join(f"{k}: {v}" for k, v in reasons.items())
            out.append(CheckResult(f"{m} unmeasured rate <= {limit:g}", "unmeasured", m, "<=", limit, rate,
                                   rate <= limit, f"{un + miss} of {total} cases unmeasured ({rate:.1%})"
                                   + (f" — {why}" if why else ""), n=n))
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
            n_pair = m.get("n") if isinstance(m.get("n"), int) else None
            if _direction(r.metric) == "higher":
                ok = not (float(m["ci_high"]) < -r.max_drop)
                why = (f"delta {delta:+.4g}, 95% CI [{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]; "
                       f"{'within' if ok else 'whole interval below'} −{r.max_drop:g}")
            else:
                ok = not (float(m["ci_low"]) > r.max_drop)
                why = (f"delta {delta:+.4g}, 95% CI [{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]; "
                       f"{'within' if ok else 'whole interval above'} +{r.max_drop:g}")
            few = too_few(n_pair, r.needed_n)
            if few:
                ok, why = False, f"{few} ({why})"
            out.append(CheckResult(r.name, "regression", r.metric, None, r.max_drop, delta, ok, why,
                                   n=n_pair, min_n=r.needed_n))
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
        return pre_registration(self.path, run)


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

