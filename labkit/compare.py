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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import LabkitError

if TYPE_CHECKING:
    import pandas as pd

#: ``unmeasured``: no case measured on both sides, so nothing can be said (not "no change")
VERDICTS = ("improved", "regressed", "no_change", "unmeasured")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        def f(x: float | None, digits: int = 4) -> str:
            if x is None:
                return "-"
            return f"{x:.{digits}g}"

        lines = [f"baseline {self.baseline}  vs  variant {self.variant}: {self.n_paired} paired cases"]
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
    """A scores.csv as a frame: empty cells are NaN (unmeasured), case ids stay strings."""
    import pandas as pd

    return pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False, na_values=[""])


def _load_run(run_dir: str | Path) -> tuple[str, str | None, pd.DataFrame]:
    d = Path(run_dir)
    if not d.is_dir():
        raise LabkitError(f"{d}: not a run directory")
    scores = d / "scores.csv"
    if not scores.exists():
        raise LabkitError(f"{d}: no scores.csv; run `labkit score {d}` first")
    run_id, fp = d.name, None
    man = d / "manifest.json"
    if man.exists():
        try:
            m = json.loads(man.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LabkitError(f"{man}: malformed JSON at line {e.lineno}: {e.msg}") from None
        if isinstance(m, dict):
            run_id = str(m.get("run_id") or run_id)
            ds = m.get("dataset")
            if isinstance(ds, dict) and isinstance(ds.get("fingerprint"), str):
                fp = ds["fingerprint"]
    df = read_scores(scores)
    if "case_id" not in df.columns:
        raise LabkitError(f"{scores}: no case_id column")
    dup = df["case_id"][df["case_id"].duplicated()].astype(str).unique().tolist()
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise LabkitError(f"{scores}: duplicate case_id {', '.join(map(repr, dup[:5]))}{more}: "
                          f"one row per case; rescore with labkit score {d}")
    return run_id, fp, df


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
    from labkit import stats
    from labkit.registry import LATENCY_PERCENTILES, METRICS

    stats.check_options(alpha=alpha, n_boot=n_boot)

    for side, frame in (("baseline", base), ("variant", variant)):
        if frame["case_id"].duplicated().any():
            raise LabkitError(f"{side} scores hold a case_id twice: one row per case")
    b = base.set_index("case_id")
    v = variant.set_index("case_id")
    b.index, v.index = b.index.astype(str), v.index.astype(str)
    lost = {spec.name: _lost(spec, b, v, count_absent) for spec in METRICS.values()}
    shared = sorted(set(b.index.astype(str)) & set(v.index.astype(str)))
    b = b.loc[shared].reset_index()
    v = v.loc[shared].reset_index()
    n = len(shared)

    rows: list[dict[str, Any]] = []
    for spec in METRICS.values():
        test = ""
        a_x: np.ndarray
        b_x: np.ndarray
        stat: stats.Stat
        if spec.per_case:
            if spec.name not in b.columns and spec.name not in v.columns:
                continue
            xa, xb = _arr(b, spec.name), _arr(v, spec.name)
            m = np.isfinite(xa) & np.isfinite(xb)
            a_x, b_x, stat = xa[m], xb[m], stats.mean_stat
            test = "mcnemar_exact" if spec.kind == "rate" else "sign_flip"
        elif spec.kind == "percentile":
            la, lb = _arr(b, "latency_ms"), _arr(v, "latency_ms")
            m = np.isfinite(la) & np.isfinite(lb) & ~_bool(b, "from_cache") & ~_bool(v, "from_cache")
            a_x, b_x = la[m], lb[m]
            stat = stats.percentile_stat(LATENCY_PERCENTILES[spec.name])
            test = "swap_permutation"
        else:
            ca, cb = _arr(b, "cost_usd"), _arr(v, "cost_usd")
            if not (np.isfinite(ca).any() and np.isfinite(cb).any()):  # a side recorded no cost
                rows.append({"spec": spec, "n": 0, "test": "swap_permutation", "p": None,
                             "base": None, "var": None, "delta": None, "lo": None, "hi": None})
                continue
            if spec.kind == "ratio":
                sa = (_arr(b, "task_success_rate") > 0.5).astype(float)
                sb = (_arr(v, "task_success_rate") > 0.5).astype(float)
                a_x = np.column_stack([np.nan_to_num(ca), sa])
                b_x = np.column_stack([np.nan_to_num(cb), sb])
                stat = stats.ratio_stat
            else:
                a_x, b_x, stat = np.nan_to_num(ca), np.nan_to_num(cb), stats.sum_stat
            test = "swap_permutation"
        npair = int(a_x.shape[0])
        row: dict[str, Any] = {"spec": spec, "n": npair, "test": test, "p": None}
        if npair == 0:
            # nothing to pair: show each side's own mean where it measured anything
            own = {}
            if spec.per_case:
                own = {"base": _num(np.mean(xa[np.isfinite(xa)])) if np.isfinite(xa).any() else None,
                       "var": _num(np.mean(xb[np.isfinite(xb)])) if np.isfinite(xb).any() else None}
            row.update(base=own.get("base"), var=own.get("var"), delta=None, lo=None, hi=None)
            rows.append(row)
            continue
        bv = _num(stat(a_x[None, ...])[0])
        vv = _num(stat(b_x[None, ...])[0])
        delta, lo, hi = stats.paired_bootstrap(a_x, b_x, stat, n_boot=n_boot, rng=seed)
        if test == "mcnemar_exact":
            p = stats.mcnemar_exact(a_x, b_x)[0]
        elif test == "sign_flip":
            p = stats.sign_flip_pvalue(b_x - a_x, n_perm=n_perm, rng=seed)
        else:
            p = stats.swap_permutation_pvalue(a_x, b_x, stat, n_perm=n_perm, rng=seed)
        row.update(base=bv, var=vv, delta=_num(delta) if bv is not None and vv is not None else None,
                   lo=_num(lo), hi=_num(hi), p=p)
        rows.append(row)

    adjusted = stats.holm([r["p"] for r in rows])
    metrics: dict[str, MetricDelta] = {}
    for r, p_adj in zip(rows, adjusted, strict=True):
        spec = r["spec"]
        verdict = "no_change" if r["n"] else "unmeasured"
        lo, hi = r["lo"], r["hi"]
        if p_adj is not None and p_adj < alpha and lo is not None and hi is not None:
            better_up = spec.direction == "higher"
            if lo > 0:
                verdict = "improved" if better_up else "regressed"
            elif hi < 0:
                verdict = "regressed" if better_up else "improved"
        n_base, why = lost[spec.name]
        metrics[spec.name] = MetricDelta(
            spec.name, spec.stage, spec.direction, r["base"], r["var"], r["delta"], lo, hi,
            r["p"], p_adj, verdict, r["n"], r["test"], n_base, why,
        )

    flipped = _flipped(b, v, shared)
    return Comparison(baseline_id, variant_id, n, metrics, flipped, dropped, seed, n_boot, alpha)


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
    bid, bfp, bdf = _load_run(baseline)
    vid, vfp, vdf = _load_run(variant)
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
        raise LabkitError(
            f"cannot compare {baseline} and {variant}: {what}; use --align (align=True) to "
            f"compare the {len(shared)} shared case ids ({dropped} would be dropped)"
        )
    if not shared:
        raise LabkitError(f"cannot compare {baseline} and {variant}: no shared case ids")
    return compare_frames(
        bdf, vdf, baseline_id=bid, variant_id=vid, seed=seed, n_boot=n_boot, alpha=alpha,
        dropped=dropped if align else None, count_absent=not align,
    )


__all__: Sequence[str] = ["Comparison", "MetricDelta", "compare_frames", "compare_runs", "read_scores"]
