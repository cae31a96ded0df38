"""Baseline vs variant: paired by case id, with intervals, tests and a verdict.

For every metric both runs measured on the same cases: the baseline and
variant values over the paired cases, the delta (variant - baseline) with a
paired bootstrap interval, a p-value (exact McNemar for pass/fail metrics, a
sign-flip permutation test for per-case means, a within-case swap permutation
test for percentiles, ratios and sums), Holm-adjusted across metrics, and a
verdict: ``improved`` / ``regressed`` when the adjusted p-value is below
``alpha`` and the interval excludes 0 on that side (judged by the metric's
direction), else ``no_change`` (no detectable change).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from labkit.errors import CompareError, RunDirError

if TYPE_CHECKING:
    import pandas as pd

    from labkit.registry import MetricSpec

#: ``unmeasured``: no case measured on both sides, so nothing can be said (not "no change")
VERDICTS = ("improved", "regressed", "no_change", "unmeasured")


@dataclass(frozen=True, kw_only=True)
class MetricDelta:
    """One metric's paired comparison."""

    name: str
    stage: str
    direction: str
    baseline: float | None
    variant: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str
    n: int
    test: str
    #: cases the baseline measured; of those, the ones the variant did not measure for a failure
    #: reason or has no result for (docs/metrics.md, "Failed, not applicable"), by reason
    n_baseline_measured: int = 0
    lost_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def n_lost(self) -> int:
        return sum(self.lost_reasons.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "variant": self.variant,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "verdict": self.verdict,
            "n": self.n,
            "test": self.test,
            "stage": self.stage,
            "direction": self.direction,
            "n_baseline_measured": self.n_baseline_measured,
            "n_lost": self.n_lost,
            "lost_reasons": dict(self.lost_reasons),
        }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The result of :func:`compare_runs`; ``to_dict()`` is the compare JSON contract."""

    baseline: str
    variant: str
    n_paired: int
    metrics: dict[str, MetricDelta]
    flipped: list[dict[str, str]]
    dropped: int | None = None
    seed: int = 0
    n_boot: int = 2000
    alpha: float = 0.05
    notes: list[str] = field(default_factory=list)
    #: the metrics.json layout of each run ({"baseline": v, "variant": v}; 0 = first landing, None = no file)
    metrics_schema_version: dict[str, int | None] | None = None

    @property
    def regressed(self) -> list[str]:
        return [n for n, m in self.metrics.items() if m.verdict == "regressed"]

    @property
    def improved(self) -> list[str]:
        return [n for n, m in self.metrics.items() if m.verdict == "improved"]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "baseline": self.baseline,
            "variant": self.variant,
            "n_paired": self.n_paired,
            "metrics": {n: m.to_dict() for n, m in self.metrics.items()},
            "flipped": list(self.flipped),
        }
        if self.dropped is not None:
            out["dropped"] = self.dropped
        out["seed"] = self.seed
        out["n_boot"] = self.n_boot
        out["alpha"] = self.alpha
        if self.metrics_schema_version is not None:
            out["metrics_schema_version"] = dict(self.metrics_schema_version)
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        def f(x: float | None, digits: int = 4) -> str:
            if x is None:
                return "-"
            return f"{x:.{digits}g}"

        def side(label: str, run_id: str) -> str:
            return label if run_id == label else f"{label} ({run_id})"

        lines = [f"{side('baseline', self.baseline)} vs {side('variant', self.variant)}: "
                 f"{self.n_paired} paired cases"]
        if self.dropped:
            lines.append(f"aligned on shared case ids: {self.dropped} case(s) dropped")
        head = f"{'metric':<28}{'baseline':>10}{'variant':>10}{'delta':>10}  {'95% CI':<22}{'p_adj':>8}  verdict"
        lines += [head, "-" * len(head)]
        for name, m in self.metrics.items():
            ci = f"[{f(m.ci_low)}, {f(m.ci_high)}]" if m.ci_low is not None else "-"
            lines.append(
                f"{name:<28}{f(m.baseline):>10}{f(m.variant):>10}{f(m.delta):>10}  {ci:<22}"
                f"{f(m.p_adjusted, 2):>8}  {m.verdict.replace('_', ' ')}"
            )
        pf = [x["case_id"] for x in self.flipped if x["from"] == "pass"]
        fp = [x["case_id"] for x in self.flipped if x["from"] == "fail"]
        lines.append(f"flipped pass -> fail ({len(pf)}): {', '.join(pf) if pf else '-'}")
        lines.append(f"flipped fail -> pass ({len(fp)}): {', '.join(fp) if fp else '-'}")
        lost = [f"{n} {m.n_lost}/{m.n_baseline_measured} ({', '.join(f'{k} {v}' for k, v in m.lost_reasons.items())})"
                for n, m in self.metrics.items() if m.n_lost]
        if lost:
            lines.append("measured in the baseline, not in the variant (failure reasons): " + "; ".join(lost))
        lines += self.notes
        return "\n".join(lines)


# --- reading runs ----------------------------------------------------------------------


def read_scores(path: str | Path) -> pd.DataFrame:
    """A scores.csv as a frame (:func:`labkit.runs.read_scores_csv`: as it was scored)."""
    from labkit.runs import read_scores_csv

    return read_scores_csv(path)


class _Scored(NamedTuple):
    """What a scored run brings to a comparison: its id, what its scoring record says it was
    scored on (dataset fingerprint, judge, cut-off k; None when not recorded) and its scores."""

    run_id: str
    fingerprint: str | None
    judge: Any
    k: Any
    scores: pd.DataFrame


def _load_run(run_dir: str | Path) -> _Scored:
    """A scored run (its manifest read once): the dataset it was *scored* on (``scoring.dataset``,
    which ``labkit score --dataset`` may change; else the run's), its judge and k, its scores."""
    from labkit.runs import RunDir
    from labkit.scoring import scored_with

    d = Path(run_dir)
    if not d.is_dir():
        raise RunDirError(f"{d}: not a run directory")
    scores = d / "scores.csv"
    if not scores.exists():
        raise RunDirError(f"{d}: no scores.csv; run `{RunDir(d).score_command}` first")
    rd = RunDir(d)
    fp = rd.scored_dataset.get("fingerprint")
    judge, k, _ = scored_with(rd)  # (off metrics.json, which the scoring record's hash covers)
    df = read_scores(scores)
    if "case_id" not in df.columns:
        raise RunDirError(f"{scores}: no case_id column")
    dup = df["case_id"][df["case_id"].duplicated()].astype(str).unique().tolist()
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise RunDirError(f"{scores}: duplicate case_id {', '.join(map(repr, dup[:5]))}{more}: "
                          f"one row per case; rescore with {RunDir(d).score_command}")
    return _Scored(rd.run_id, fp if isinstance(fp, str) else None, judge, k, df)


def _schema_version(run_dir: str | Path) -> int | None:
    """The layout version of a run's metrics.json (0: first landing, without the key), None without one."""
    from labkit.metrics.schema import metrics_schema_version
    from labkit.runs import RunDir

    metrics = RunDir(run_dir).metrics()
    return metrics_schema_version(metrics, path=str(Path(run_dir) / "metrics.json")) if metrics else None


# --- the comparison --------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


#: What task success needs of a case, as (metric, passes(value)): the parts a flip is explained by.
SUCCESS_PARTS: tuple[tuple[str, Any], ...] = (
    ("error_rate", lambda x: x < 0.5),
    ("must_include_coverage", lambda x: x >= 1.0),
    ("must_not_include_violation", lambda x: x < 0.5),
    ("tool_call_accuracy", lambda x: x >= 1.0),
)


def _flipped(b: pd.DataFrame, v: pd.DataFrame, shared: Sequence[str]) -> list[dict[str, str]]:
    """Cases whose task success flipped: ``metric`` is the flipped metric (task_success_rate),
    ``cause`` the parts of task success that changed side, e.g. ``must_include_coverage 1 → 0.5``."""
    out: list[dict[str, str]] = []
    if "task_success_rate" not in b.columns or "task_success_rate" not in v.columns:
        return out
    ta, tb = _arr(b, "task_success_rate"), _arr(v, "task_success_rate")
    parts = [(m, ok, _arr(b, m), _arr(v, m)) for m, ok in SUCCESS_PARTS]
    for i, (cid, x, y) in enumerate(zip(shared, ta, tb, strict=True)):
        if np.isfinite(x) and np.isfinite(y) and (x > 0.5) != (y > 0.5):
            why = [f"{m} {pa[i]:.3g} → {pb[i]:.3g}" for m, ok, pa, pb in parts
                   if np.isfinite(pa[i]) and np.isfinite(pb[i]) and bool(ok(pa[i])) != bool(ok(pb[i]))]
            out.append({"case_id": cid, "from": "pass" if x > 0.5 else "fail", "to": "pass" if y > 0.5 else "fail",
                        "metric": "task_success_rate", "cause": "; ".join(why)})
    return out


def _measured(spec: Any, df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Which rows measure ``spec`` (the cases its statistic stands on), and each row's reason
    when it does not."""
    if spec.per_case:
        x = _arr(df, spec.name)
        col = spec.name + "_reason"
        raw = df[col].tolist() if col in df.columns else [""] * len(df)
        return np.isfinite(x), [r if isinstance(r, str) and r else "unmeasured" for r in raw]
    if spec.kind == "percentile":
        lat, cached = _arr(df, "latency_ms"), _bool(df, "from_cache")
        why = ["no_latency" if not np.isfinite(a) else "from_cache" if c else "" for a, c in zip(lat, cached,
                                                                                                 strict=True)]
        return np.isfinite(lat) & ~cached, why
    cost = _arr(df, "cost_usd")
    return np.isfinite(cost), ["no_cost"] * len(df)


def _lost(spec: Any, b: pd.DataFrame, v: pd.DataFrame, count_absent: bool) -> tuple[int, dict[str, int]]:
    """(cases the baseline measured, {reason: count} of those the variant lost)."""
    from labkit.registry import is_failure_reason

    if spec.per_case and spec.name not in b.columns and spec.name not in v.columns:
        return 0, {}
    b_ok, _ = _measured(spec, b)
    v_ok, v_why = _measured(spec, v)
    v_row = {cid: i for i, cid in enumerate(v.index.tolist())}
    out: dict[str, int] = {}
    for cid in b.index[b_ok].tolist():
        i = v_row.get(cid)
        absent = "no_result" if count_absent else ""
        why = absent if i is None else ("" if v_ok[i] else v_why[i])
        if why and is_failure_reason(why):
            out[why] = out.get(why, 0) + 1
    return int(b_ok.sum()), dict(sorted(out.items()))


def _arr(df: pd.DataFrame, col: str) -> np.ndarray:
    import pandas as pd

    if col not in df.columns:
        return np.full(len(df), np.nan)
    return np.asarray(pd.to_numeric(df[col], errors="coerce"), dtype=float)


def _bool(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.zeros(len(df), dtype=bool)
    c = df[col]
    if c.dtype == bool:
        return c.to_numpy(dtype=bool)
    return np.array([str(v).strip().lower() in ("true", "1", "1.0") for v in c], dtype=bool)


def _pair_samples(spec: MetricSpec, b: pd.DataFrame, v: pd.DataFrame) -> tuple[Any, Any, Any, str] | None:
    """(baseline sample, variant sample, statistic, test) of a metric over the paired cases, as its
    declaration says: a per-case column, or the raw column of a percentile, ratio or sum. None
    when a run-level metric's raw column is recorded on neither side's cases at all."""
    from labkit import stats

    if spec.per_case:
        xa, xb = _arr(b, spec.name), _arr(v, spec.name)
        m = np.isfinite(xa) & np.isfinite(xb)
        return xa[m], xb[m], stats.mean_stat, "mcnemar_exact" if spec.kind == "rate" else "sign_flip"
    assert spec.raw is not None
    ra, rb = _arr(b, spec.raw), _arr(v, spec.raw)
    if spec.kind == "percentile":
        assert spec.q is not None
        m = np.isfinite(ra) & np.isfinite(rb)
        if spec.exclude:
            m &= ~_bool(b, spec.exclude) & ~_bool(v, spec.exclude)
        return ra[m], rb[m], stats.percentile_stat(spec.q), "swap_permutation"
    if not (np.isfinite(ra).any() and np.isfinite(rb).any()):  # a side recorded nothing
        return None
    if spec.kind == "ratio":
        assert spec.per is not None
        sa = (_arr(b, spec.per) > 0.5).astype(float)
        sb = (_arr(v, spec.per) > 0.5).astype(float)
        return (np.column_stack([np.nan_to_num(ra), sa]), np.column_stack([np.nan_to_num(rb), sb]),
                stats.ratio_stat, "swap_permutation")
    return np.nan_to_num(ra), np.nan_to_num(rb), stats.sum_stat, "swap_permutation"


def _compare_metric(spec: MetricSpec, b: pd.DataFrame, v: pd.DataFrame, *, seed: int, n_boot: int,
                    n_perm: int) -> dict[str, Any]:
    """One metric's paired row: each side's value, the delta with its interval, the raw p-value."""
    from labkit import paired

    got = _pair_samples(spec, b, v)
    if got is None:
        return {"spec": spec, "n": 0, "test": "swap_permutation", "p": None,
                "base": None, "var": None, "delta": None, "lo": None, "hi": None}
    a_x, b_x, stat, test = got
    row: dict[str, Any] = {"spec": spec, "n": int(a_x.shape[0]), "test": test, "p": None}
    if row["n"] == 0:
        # nothing to pair: show each side's own mean where it measured anything
        own: dict[str, float | None] = {}
        if spec.per_case:
            xa, xb = _arr(b, spec.name), _arr(v, spec.name)
            own = {"base": _num(np.mean(xa[np.isfinite(xa)])) if np.isfinite(xa).any() else None,
                   "var": _num(np.mean(xb[np.isfinite(xb)])) if np.isfinite(xb).any() else None}
        row.update(base=own.get("base"), var=own.get("var"), delta=None, lo=None, hi=None)
        return row
    bv = _num(stat(a_x[None, ...])[0])
    vv = _num(stat(b_x[None, ...])[0])
    delta, lo, hi = paired.paired_bootstrap(a_x, b_x, stat, n_boot=n_boot, rng=seed)
    if test == "mcnemar_exact":
        p = paired.mcnemar_exact(a_x, b_x)[0]
    elif test == "sign_flip":
        p = paired.sign_flip_pvalue(b_x - a_x, n_perm=n_perm, rng=seed)
    else:
        p = paired.swap_permutation_pvalue(a_x, b_x, stat, n_perm=n_perm, rng=seed)
    row.update(base=bv, var=vv, delta=_num(delta) if bv is not None and vv is not None else None,
               lo=_num(lo), hi=_num(hi), p=p)
    return row


def _verdict(row: Mapping[str, Any], p_adj: float | None, alpha: float) -> str:
    """improved / regressed when the adjusted p-value is below alpha and the interval excludes 0
    on that side (by the metric's direction); no_change; unmeasured when nothing was paired."""
    verdict = "no_change" if row["n"] else "unmeasured"
    lo, hi = row["lo"], row["hi"]
    if p_adj is not None and p_adj < alpha and lo is not None and hi is not None:
        better_up = row["spec"].direction == "higher"
        if lo > 0:
            verdict = "improved" if better_up else "regressed"
        elif hi < 0:
            verdict = "regressed" if better_up else "improved"
    return verdict


def compare_frames(
    base: pd.DataFrame,
    variant: pd.DataFrame,
    *,
    baseline_id: str = "baseline",
    variant_id: str = "variant",
    seed: int = 0,
    n_boot: int = 2000,
    n_perm: int = 5000,
    alpha: float = 0.05,
    dropped: int | None = None,
    count_absent: bool = True,
) -> Comparison:
    """Compare two score frames on the case ids they share (rows paired by case_id).

    Each metric also counts the cases the baseline measured that the variant lost: not
    measured for a failure reason, or (``count_absent``) with no row at all.
    """
    from labkit import paired, stats
    from labkit.metrics import METRICS

    stats.check_options(alpha=alpha, n_boot=n_boot, seed=seed)

    for side, frame in (("baseline", base), ("variant", variant)):
        if frame["case_id"].duplicated().any():
            raise CompareError(f"{side} scores hold a case_id twice: one row per case")
    b = base.set_index("case_id")
    v = variant.set_index("case_id")
    b.index, v.index = b.index.astype(str), v.index.astype(str)
    lost = {spec.name: _lost(spec, b, v, count_absent) for spec in METRICS.values()}
    shared = sorted(set(b.index.astype(str)) & set(v.index.astype(str)))
    b = b.loc[shared].reset_index()
    v = v.loc[shared].reset_index()
    rows = [_compare_metric(spec, b, v, seed=seed, n_boot=n_boot, n_perm=n_perm) for spec in METRICS.values()
            if not spec.per_case or spec.name in b.columns or spec.name in v.columns]
    adjusted = paired.holm([r["p"] for r in rows])
    metrics: dict[str, MetricDelta] = {}
    for r, p_adj in zip(rows, adjusted, strict=True):
        spec = r["spec"]
        n_base, why = lost[spec.name]
        metrics[spec.name] = MetricDelta(
            name=spec.name, stage=spec.stage, direction=spec.direction, baseline=r["base"], variant=r["var"],
            delta=r["delta"], ci_low=r["lo"], ci_high=r["hi"], p_value=r["p"], p_adjusted=p_adj,
            verdict=_verdict(r, p_adj, alpha), n=r["n"], test=r["test"], n_baseline_measured=n_base,
            lost_reasons=why,
        )
    return Comparison(baseline=baseline_id, variant=variant_id, n_paired=len(shared), metrics=metrics,
                      flipped=_flipped(b, v, shared), dropped=dropped, seed=seed, n_boot=n_boot, alpha=alpha)


def same_run(a: Any, b: Any) -> str:
    """Why two run directories are one run ("" when they are two): the same directory, or a copy
    of it (a copy keeps its run_uuid; two hand-made runs of one name do not)."""
    if a.path.resolve() == b.path.resolve():
        return "the same directory"
    if a.run_uuid == b.run_uuid:
        return f"run_uuid {a.run_uuid}"
    return ""


def compare_runs(
    baseline: str | Path,
    variant: str | Path,
    *,
    align: bool = False,
    seed: int = 0,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> Comparison:
    """Compare two scored run directories (``scores.csv`` + ``manifest.json``).

    Runs on different dataset fingerprints (or, without fingerprints, on
    different case ids) are refused unless ``align`` is true, which pairs the
    shared case ids and reports how many were dropped.
    """
    from labkit.runs import RunDir
    from labkit.scoring import verify_scored

    # both runs' files must be what their scoring wrote (docs/formats.md, "The scoring record")
    verify_scored(baseline)
    verify_scored(variant)
    b, v = _load_run(baseline), _load_run(variant)
    _refuse_unlike(baseline, variant, b, v)
    bid, bfp, bdf = b.run_id, b.fingerprint, b.scores
    vid, vfp, vdf = v.run_id, v.fingerprint, v.scores
    bids, vids = set(bdf["case_id"].astype(str)), set(vdf["case_id"].astype(str))
    shared = bids & vids
    dropped = len(bids | vids) - len(shared)
    differ = (bfp != vfp) if (bfp is not None and vfp is not None) else bool(dropped)
    if differ and not align:
        what = (
            f"different dataset fingerprints ({bfp[:12]}... vs {vfp[:12]}...)"
            if bfp is not None and vfp is not None
            else "different case ids"
        )
        raise CompareError(
            f"cannot compare {baseline} and {variant}: {what}; use --align (align=True) to "
            f"compare the {len(shared)} shared case ids ({dropped} would be dropped)"
        )
    why = same_run(RunDir(baseline), RunDir(variant))  # (after the refusals that say more: another k, judge ...)
    if why:
        raise CompareError(f"cannot compare {baseline} and {variant}: the same run ({why}); a comparison needs two "
                           "runs")
    notes: list[str] = []
    if differ and shared:  # (aligned) an id both datasets hold may name another case in each
        other, note = _other_cases(baseline, variant, shared)
        notes += [note] if note else []
        if other:
            shared -= other
            dropped += len(other)
            bdf, vdf = bdf[~bdf["case_id"].astype(str).isin(other)], vdf[~vdf["case_id"].astype(str).isin(other)]
    if not shared:
        raise CompareError(f"cannot compare {baseline} and {variant}: no shared case ids")
    comp = compare_frames(
        bdf, vdf, baseline_id=bid, variant_id=vid, seed=seed, n_boot=n_boot, alpha=alpha,
        dropped=dropped if align else None, count_absent=not align,
    )
    versions = {"baseline": _schema_version(baseline), "variant": _schema_version(variant)}
    return replace(comp, metrics_schema_version=versions, notes=[*comp.notes, *notes])


def _other_cases(baseline: str | Path, variant: str | Path, shared: set[str]) -> tuple[set[str], str]:
    """The shared case ids whose cases differ between the datasets the two runs were scored on
    (left out of the pairing), and a note saying so, or that it could not be checked."""
    from labkit.cases import load_cases
    from labkit.errors import LabkitError
    from labkit.runs import RunDir

    try:
        b, v = ({c.id: c.to_dict() for c in load_cases(_scored_on(RunDir(d)))} for d in (baseline, variant))
    except (LabkitError, OSError) as e:
        return set(), f"not checked that the shared case ids hold the same cases in both datasets: {e}"
    other = {cid for cid in shared if b.get(cid) != v.get(cid)}
    if not other:
        return other, ""
    shown = ", ".join(sorted(other)[:5]) + (" ..." if len(other) > 5 else "")
    return other, (f"{len(other)} shared case ids hold different cases in the two datasets (another question, "
                   f"gold or labels: {shown}): left out of the pairing")


def _scored_on(rd: Any) -> str:
    """The dataset file a run was scored on (its scoring record's, else its own, else its snapshot)."""
    path = rd.scored_dataset.get("path")
    if isinstance(path, str) and Path(path).is_file():
        return path
    got = rd.dataset_path()
    if got is None or not Path(got).is_file():
        raise RunDirError(f"{rd.path}: its dataset file is not there ({path or got})")
    return got


def _refuse_unlike(baseline: str | Path, variant: str | Path, b: _Scored, v: _Scored) -> None:
    """A CompareError for runs scored by different judges or at different cut-offs: the delta
    would measure the scoring, not the pipeline."""
    if b.judge is not None and v.judge is not None and b.judge != v.judge:
        raise CompareError(f"cannot compare {baseline} and {variant}: scored by different judges "
                           f"({json.dumps(b.judge, sort_keys=True)} vs {json.dumps(v.judge, sort_keys=True)}); "
                           f"rescore both with the same judge (labkit score RUN --judge ...)")
    if b.k is not None and v.k is not None and b.k != v.k:
        raise CompareError(f"cannot compare {baseline} and {variant}: scored at different cut-offs (k={b.k} vs "
                           f"k={v.k}); rescore both at the same one (labkit score RUN --k K)")


__all__: Sequence[str] = ["Comparison", "MetricDelta", "compare_frames", "compare_runs", "read_scores"]
