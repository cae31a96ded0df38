"""The release gate's configuration: the YAML file, its checks, and editing them.

A gate is declared before the change is tested (pre-registration: labkit.gate.lock).
Kinds of checks (format in docs/formats.md):

* ``checks``: absolute thresholds on an aggregate (``statistic``: value,
  ci_low or ci_high) read from a run's metrics.json or a plain dict;
* ``regression``: non-inferiority against another run (the baseline): passes only when
  the paired delta's whole interval lies within ``max_drop`` of no change;
* ``slices``: absolute checks on the aggregates of a tag slice (``risk=high``);
* ``unmeasured``: the budget for cases not measured for a failure reason (a case of the
  dataset with no result counts too, as missing); 0 when not declared;
* ``review``: cases matching ``required_for`` need an approving human review of
  the run's current answer (the reviews JSONL: labkit.gate.reviews).

Evaluation: labkit.gate.evaluate; coverage and min_n: labkit.gate.cases; the
report and its CI outputs: labkit.gate.report.
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, GateFailed
from labkit.gate.cases import default_min_n, parse_min_n

if TYPE_CHECKING:
    from labkit.gate.report import GateReport

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
STATISTICS = ("value", "ci_low", "ci_high")


def known_metrics() -> list[str]:
    from labkit.metrics import METRICS

    return sorted(METRICS)


def direction(metric: str) -> str:
    """``higher`` or ``lower``: which way the metric gets better."""
    from labkit.metrics import METRICS

    return METRICS[metric].direction


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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
    spec = _spec(str(metric))
    if spec.bounded and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{metric} lies in [0, 1]; threshold {threshold:g} can never be met as meant",
                          path=path, field=f"{fld}.threshold")
    if spec.builtin and threshold < 0:  # (latency, cost, tokens; a metric of one's own may go below 0)
        raise ConfigError(f"{metric} is never negative; threshold {threshold:g} can never be met as meant",
                          path=path, field=f"{fld}.threshold")
    return Check(metric=str(metric), op=str(op), threshold=threshold, statistic=str(stat),
                 min_n=parse_min_n(d, path, fld))


def _spec(metric: str) -> Any:
    from labkit.metrics import METRICS

    return METRICS[metric]


def _printed_texts(name: str | None, slices: Sequence[SliceCheck],
                   review: Mapping[str, str] | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The texts of a gate file its reports print as they are, as (field, text): the values (its
    name, each tag value of a slice and of the review) and the tags themselves (a tag's field is
    the mapping that holds it)."""
    values = [("name", name)] if name else []
    values += [(f"slices[{i}].where.{tag}", v) for i, s in enumerate(slices) for tag, v in s.where.items()]
    values += [(f"review.required_for.{tag}", v) for tag, v in (review or {}).items()]
    tags = [(f"slices[{i}].where", tag) for i, s in enumerate(slices) for tag in s.where]
    tags += [("review.required_for", tag) for tag in review or {}]
    return values, tags


def _refuse_printed(name: str | None, slices: Sequence[SliceCheck], review: Mapping[str, str] | None,
                    path: str | None) -> None:
    """A ConfigError for a gate name, a tag or a tag value (of a slice, of the review) that holds a
    control or direction character (a terminal would act on it: ESC, CR and U+202E rewrite what a
    CI log shows of the verdict, as for a case id), or that redaction would change: they are
    written as they are in every report of the gate."""
    from labkit.runs import refuse_secret_names
    from labkit.text import unprintable_at

    values, tags = _printed_texts(name, slices, review)
    for fld, text in [*values, *tags]:
        if (at := unprintable_at(text)) is not None:
            what = "a tag " if (fld, text) in tags else ""
            raise ConfigError(f"{what}must not hold a control or direction character (U+{ord(text[at]):04X} at "
                              f"{at}, in {text!r}): it is printed in the verdict, where a terminal would act on it",
                              path=path, field=fld)
    refuse_secret_names(values, None, path=path, written="gate.md, the JUnit XML, the JSON report, the terminal")


def _check_tag_values(where: Mapping[str, str], path: str | None, fld: str) -> None:
    """risk and kind take known values: a typo is a config error, not a failing slice."""
    from labkit.cases import KINDS, RISKS

    for tag, known in (("risk", RISKS), ("kind", KINDS)):
        if tag in where and where[tag] not in known:
            raise ConfigError(f"unknown {tag} {where[tag]!r}", path=path, field=f"{fld}.{tag}", known=known)


def _locate(text: str, err: ConfigError) -> int | None:
    """The line of a gate file an error is about: its field's, else where its bad value stands."""
    from labkit.config import field_line, line_of

    if err.field and (n := field_line(text, err.field)):
        return n
    quoted = re.search(r"'([^']+)'", err.message)
    return line_of(text, quoted.group(1)) if quoted else None


@dataclass(frozen=True, kw_only=True)
class Gate:
    name: str
    checks: tuple[Check, ...] = ()
    regression: tuple[RegressionCheck, ...] = ()
    slices: tuple[SliceCheck, ...] = ()
    unmeasured_max_rate: float | None = None
    review_required_for: Mapping[str, str] | None = None
    require_lock: bool = False
    #: the judge the checks are measured with, as declared (a name or a config mapping, as
    #: ``labkit score --judge`` takes it); None: the default lexical judge
    judge: str | Mapping[str, Any] | None = None
    #: the retrieval cut-off the checks are measured at; None: the default (5)
    k: int | None = None
    #: the bootstrap the intervals are drawn with (resamples and seed); None: the defaults (2000, 0)
    n_boot: int | None = None
    seed: int | None = None
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
        known_keys = ["version", "name", "checks", "regression", "slices", "unmeasured", "review", "require_lock",
                      "judge", "k", "n_boot", "seed"]
        extra = set(d) - set(known_keys)
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)}", path=path, field=sorted(extra)[0], known=known_keys)
        if d.get("version", 1) != 1:
            raise ConfigError(f"unsupported gate version {d.get('version')!r}", path=path, field="version", known=["1"])
        known = known_metrics()
        checks = tuple(_parse_check(c, path, f"checks[{i}]", known) for i, c in enumerate(_listed(d, "checks", path)))
        regs = tuple(_parse_regression(r, path, f"regression[{i}]", known)
                     for i, r in enumerate(_listed(d, "regression", path)))
        slices = tuple(_parse_slice(s, path, f"slices[{i}]", known) for i, s in enumerate(_listed(d, "slices", path)))
        max_rate = _parse_unmeasured(d.get("unmeasured"), path)
        req = _parse_review(d.get("review"), path)
        require_lock = d.get("require_lock", False)
        if not isinstance(require_lock, bool):
            raise ConfigError("must be true or false", path=path, field="require_lock")
        if not (checks or regs or slices or max_rate is not None or req):
            raise ConfigError("gate has no checks", path=path, field="checks")
        name = d.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"must be a non-empty string, got {name!r}", path=path, field="name")
        _refuse_printed(name, slices, req, path)
        return cls(name=name or (Path(path).stem if path else "gate"), checks=checks, regression=regs,
                   slices=slices, unmeasured_max_rate=max_rate, review_required_for=req, require_lock=require_lock,
                   judge=_parse_judge(d.get("judge"), path), k=_parse_k(d.get("k"), path),
                   n_boot=_parse_bootstrap(d, "n_boot", path), seed=_parse_bootstrap(d, "seed", path),
                   version=1, path=path)

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
        (a reference run, threshold tuning, tables of a run). The verdict of a release needs
        the whole gate; the copy's name says "(thresholds only)" in every report."""
        if not self.regression:
            return self
        return replace(self, regression=(), name=f"{self.name} (thresholds only)")

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
        if self.judge is not None:
            d["judge"] = self.judge if isinstance(self.judge, str) else dict(self.judge)
        if self.k is not None:
            d["k"] = self.k
        d.update({key: v for key, v in (("n_boot", self.n_boot), ("seed", self.seed)) if v is not None})
        return d

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        import yaml

        from labkit.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)

    @property
    def bootstrap(self) -> tuple[int, int]:
        """(n_boot, seed) the gate holds a run's intervals to: the declared ones, else the defaults."""
        from labkit.registry import DEFAULT_N_BOOT, DEFAULT_SEED

        return (self.n_boot if self.n_boot is not None else DEFAULT_N_BOOT,
                self.seed if self.seed is not None else DEFAULT_SEED)

    @property
    def judge_identity(self) -> Any:
        """The declared judge as a scored run's manifest records it (``scoring.judge``)."""
        from labkit.scoring import judge_info

        return judge_info(self.judge)

    @property
    def metrics(self) -> list[str]:
        names = [c.metric for c in self.checks] + [r.metric for r in self.regression]
        names += [c.metric for s in self.slices for c in s.checks]
        return list(dict.fromkeys(names))

    # ---- evaluation (labkit.gate.evaluate) -----------------------------------------------------
    def evaluate(
        self,
        target: Any,
        *,
        baseline: str | os.PathLike[str] | None = None,
        reviews: str | os.PathLike[str] | Mapping[str, Mapping[str, Any]] | None = None,
        dataset: Any = None,
        seed: int | None = None,
    ) -> GateReport:
        """Judge a run directory, a metrics.json mapping or a plain {metric: value} dict."""
        from labkit.gate.evaluate import evaluate_gate

        return evaluate_gate(self, target, baseline=baseline, reviews=reviews, dataset=dataset, seed=seed)

    def pre_registration(self, run: Any) -> dict[str, Any]:
        """Whether this gate's file was locked before ``run`` (None: metrics without a run)."""
        from labkit.gate.lock import pre_registration

        return pre_registration(self.path, run)

    def enforce(self, target: Any, **kw: Any) -> GateReport:
        """Evaluate and raise GateFailed when a check fails."""
        rep = self.evaluate(target, **kw)
        if not rep.passed:
            raise GateFailed(rep)
        return rep


def _listed(d: Mapping[str, Any], key: str, path: str | None) -> list[Any]:
    raw = d.get(key) or []
    if not isinstance(raw, list):
        raise ConfigError("must be a list", path=path, field=key)
    return raw


def _parse_regression(r: Any, path: str | None, fld: str, known: list[str]) -> RegressionCheck:
    if not isinstance(r, dict) or set(r) - {"metric", "max_drop", "min_n"}:
        raise ConfigError("must be {metric, max_drop[, min_n]}", path=path, field=fld)
    if r.get("metric") not in known:
        raise ConfigError(f"unknown metric {r.get('metric')!r}", path=path, field=f"{fld}.metric", known=known)
    drop = _num(r.get("max_drop"), path, f"{fld}.max_drop")
    if drop < 0:
        raise ConfigError("must be >= 0", path=path, field=f"{fld}.max_drop")
    return RegressionCheck(metric=str(r["metric"]), max_drop=drop, min_n=parse_min_n(r, path, fld))


def _parse_slice(s: Any, path: str | None, fld: str, known: list[str]) -> SliceCheck:
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
    return SliceCheck(where=where, checks=tuple(_parse_check(c, path, f"{fld}.checks[{j}]", known)
                                                for j, c in enumerate(sc)))


def _parse_unmeasured(um: Any, path: str | None) -> float | None:
    if um is None:
        return None
    if not isinstance(um, dict) or set(um) != {"max_rate"}:
        raise ConfigError("must be {max_rate: number}", path=path, field="unmeasured")
    max_rate = _num(um["max_rate"], path, "unmeasured.max_rate")
    if not 0.0 <= max_rate <= 1.0:
        raise ConfigError(f"must be a share between 0 and 1, got {max_rate:g}", path=path,
                          field="unmeasured.max_rate")
    return max_rate


def _parse_judge(spec: Any, path: str | None) -> str | dict[str, Any] | None:
    """``judge:``, checked by building the judge it declares (nothing is called)."""
    from labkit.judges import get_judge

    if spec is None:
        return None
    if not isinstance(spec, (str, dict)):
        raise ConfigError(f"must be a judge name or a mapping of its config, got {spec!r}", path=path, field="judge")
    try:
        get_judge(spec)
    except ConfigError as e:
        raise ConfigError(e.message, path=path, field="judge", known=e.known) from None
    return spec


def _parse_k(k: Any, path: str | None) -> int | None:
    """``k:``, the cut-off the thresholds were set at (:func:`labkit.registry.check_k`)."""
    from labkit.registry import check_k

    return None if k is None else check_k(k, path=path)


def _parse_bootstrap(d: Mapping[str, Any], key: str, path: str | None) -> int | None:
    """``n_boot:`` or ``seed:``, the bootstrap the thresholds' intervals are drawn with
    (:func:`labkit.stats.check_options`)."""
    v = d.get(key)
    if v is None:
        return None
    from labkit.stats import check_options  # (only then: a gate that declares none loads no numpy)

    try:
        check_options(**{key: v})
    except ConfigError as e:
        raise ConfigError(e.message, path=path, field=key) from None
    return int(v)


def _parse_review(rv: Any, path: str | None) -> dict[str, str] | None:
    if rv is None:
        return None
    if not isinstance(rv, dict) or not isinstance(rv.get("required_for"), dict) or set(rv) != {"required_for"}:
        raise ConfigError("must be {required_for: {tag: value}}", path=path, field="review")
    req = {str(k): str(v) for k, v in rv["required_for"].items()}
    _check_tag_values(req, path, "review.required_for")
    return req


MODULE_GATE = Gate(
    name="release-gate",
    checks=(
        Check(metric="faithfulness", op=">=", threshold=0.85),
        Check(metric="retrieval_hit_rate", op=">=", threshold=0.80),
        Check(metric="latency_p95_ms", op="<=", threshold=3500.0),
        Check(metric="cost_per_success", op="<=", threshold=0.08),
    ),
)


