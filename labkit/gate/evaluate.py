"""Evaluating a gate: a run directory, a metrics.json mapping or a plain dict -> a GateReport.

Each check of the gate (labkit.gate.config) becomes one CheckResult: absolute
and slice thresholds (with their min_n and their failed cases), coverage of the
dataset, the unmeasured budget, non-inferiority against a baseline run, human
review and pre-registration. A run directory is judged only when its files are
what its scoring wrote (labkit.scoring.verify_scored), and never against itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labkit.errors import ConfigError
from labkit.gate.cases import case_counts, coverage_check, failed_cases, over_budget, too_few
from labkit.gate.config import MODULE_GATE, OPS, Check, Gate, RegressionCheck, direction
from labkit.gate.lock import pre_registration
from labkit.gate.report import CheckResult, GateReport
from labkit.metrics.schema import metrics_schema_version


def observed(metrics: Mapping[str, Any], metric: str, statistic: str) -> tuple[float | None, str]:
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


def _check(c: Check, metrics: Mapping[str, Any], kind: str, slice_key: str | None = None, *,
           budget: float = 0.0) -> CheckResult:
    """One threshold check; on a metrics.json it also needs ``min_n`` measured cases and no more
    cases not measured for a failure reason than ``budget`` allows (a plain dict of values
    carries no n, so there these rules cannot apply)."""
    obs, why = observed(metrics, c.metric, c.statistic)
    has_n = isinstance(metrics.get("metrics"), dict)
    n = _entry_n(metrics, c.metric) if has_n else None
    min_n = c.needed_n if has_n else None
    ok = False
    if obs is not None:
        ok = OPS[c.op](obs, c.threshold)
        why = f"{obs:.4g} {c.op} {c.threshold:g}" if ok else f"{obs:.4g} is not {c.op} {c.threshold:g}"
        few = too_few(n, min_n) if min_n is not None else ""
        failed = over_budget(metrics["metrics"].get(c.metric) or {}, budget) if has_n else ""
        if few or failed:
            ok, why = False, f"{few or failed} ({why})"
    return CheckResult(name=c.name, kind=kind, metric=c.metric, op=c.op, threshold=c.threshold, observed=obs,
                       passed=ok, reason=why, statistic=c.statistic, slice=slice_key, n=n, min_n=min_n)


def _target(target: Any) -> tuple[Mapping[str, Any], Any, str | None]:
    """(metrics, run directory or None, run id) of what a gate judges; a run's files are checked
    against its scoring record first (refused when they differ or it records none)."""
    from labkit.runs import RunDir
    from labkit.scoring import verify_scored

    run: RunDir | None = None
    if isinstance(target, RunDir):
        run = target
    elif isinstance(target, (str, os.PathLike)):
        run = RunDir(target)
    if run is None:
        if isinstance(target, Mapping):
            return target, None, None
        raise ConfigError(f"cannot evaluate a gate on {type(target).__name__}")
    if not run.path.is_dir():
        raise ConfigError("run directory not found", path=str(run.path))
    if not run.metrics_path.is_file():
        raise ConfigError(f"no metrics.json: score the run first ({run.score_command})", path=str(run.path))
    verify_scored(run)
    metrics = run.metrics()
    if not metrics:
        raise ConfigError(f"no metrics.json: score the run first ({run.score_command})", path=str(run.path))
    return metrics, run, run.run_id


def _imported_note(run: Any) -> list[str]:
    """A run imported from a peer tool's file (labkit import) says so in every gate output."""
    imp = run.manifest.get("imported") if run is not None else None
    if not isinstance(imp, Mapping):
        return []
    rec: Mapping[str, Any] = imp["recorded"] if isinstance(imp.get("recorded"), Mapping) else {}
    n = imp.get("n_records")
    unrec = [k for k in ("latency_ms", "cost_usd", "usage") if rec.get(k) == 0]
    tail = f"; the file records no {', '.join(unrec)} (unmeasured, not invented)" if unrec else ""
    return [f"imported from the {imp.get('format')} file {imp.get('file')} (sha256 {str(imp.get('sha256'))[:12]}): "
            f"its {n} answers were produced outside labkit, not by labkit run{tail}"]


def _slices(gate: Gate, metrics: Mapping[str, Any], budget: float) -> list[CheckResult]:
    results = []
    for s in gate.slices:
        sl = (metrics.get("slices") or {}).get(s.key) if isinstance(metrics.get("metrics"), dict) else None
        for c in s.checks:
            if sl is None:
                results.append(CheckResult(name=f"{s.key}: {c.name}", kind="slice", metric=c.metric, op=c.op,
                                           threshold=c.threshold, observed=None, passed=False,
                                           reason=f"slice {s.key} not in metrics.json", statistic=c.statistic,
                                           slice=s.key))
            else:
                r = _check(c, {"metrics": sl}, "slice", s.key, budget=budget)
                results.append(replace(r, name=f"{s.key}: {c.name}"))
    return results


def evaluate_gate(
    gate: Gate,
    target: Any,
    *,
    baseline: str | os.PathLike[str] | None = None,
    reviews: str | os.PathLike[str] | Mapping[str, Mapping[str, Any]] | None = None,
    dataset: Any = None,
    seed: int | None = None,
) -> GateReport:
    """Judge a run directory, a metrics.json mapping or a plain {metric: value} dict. ``seed``: of
    the regression checks' paired bootstrap, the gate's (``seed:``, 0) when None; another fails."""
    metrics, run, run_id = _target(target)
    version = metrics_schema_version(metrics) if isinstance(metrics.get("metrics"), dict) else None
    budget = gate.unmeasured_max_rate or 0.0
    results = [_check(c, metrics, "absolute", budget=budget) for c in gate.checks] + _slices(gate, metrics, budget)
    cov = coverage_check(metrics, run, gate.unmeasured_max_rate) if isinstance(metrics.get("metrics"), dict) \
        else None
    if cov is not None:
        results.append(cov)
    if gate.unmeasured_max_rate is not None:
        results.extend(_unmeasured(gate, metrics))
    notes = _imported_note(run)
    if gate.regression:
        results.extend(_regressions(gate, run, baseline, gate.bootstrap[1]))
        if seed is not None and seed != gate.bootstrap[1]:
            results.append(_intervals_check(gate, f"regression intervals drawn with seed={seed}",
                                            "draw them with its seed (labkit gate without --seed)"))
    elif baseline is not None:
        notes.append(f"a baseline ({baseline}) was given, but the gate has no regression checks: "
                     "nothing was compared with it")
    if gate.review_required_for:
        results.append(_review(gate, run, reviews, dataset))
    if run is not None:
        from labkit.scoring import scored_with

        rec = scored_with(run, metrics)  # (metrics.json as read above: one read)
        results += _scoring_checks(gate, run, rec) + _drawn_checks(gate, run, metrics) + _completed(run)
        notes += _unhashed_judge_note(run, rec)
    pre = pre_registration(gate.path, run)
    if pre.get("status") in ("edited_after_run", "other_gate", "edited_after_lock", "locked_after_run") or (
        gate.require_lock and pre.get("status") != "pre_registered"
    ):
        results.append(CheckResult(name="gate pre-registered before the run", kind="pre_registration", metric=None,
                                   op=None, threshold=None, observed=None, passed=False, reason=pre["detail"]))
    counts = case_counts(metrics, run) if isinstance(metrics.get("metrics"), dict) else None
    return GateReport(gate=gate.name, passed=all(r.passed for r in results), checks=results, run_id=run_id,
                      pre_registration=pre, cases=counts, notes=notes, metrics_schema_version=version)


def _scoring_checks(gate: Gate, run: Any, rec: Any) -> list[CheckResult]:
    """A failing check for what the run was scored with otherwise than the gate declares, or
    records not: its judge (``judge:``, the default lexical judge when the gate names none: a
    threshold measured by a more lenient judge is not the threshold declared) and its retrieval
    cut-off (``k:``, 5 when it names none: a hit rate at k=5 is not the threshold set at k=1).
    ``rec``: read off metrics.json, which the scoring record's hash covers
    (:func:`labkit.scoring.scored_with`)."""
    import json

    from labkit.scoring import DEFAULT_K

    k = gate.k or DEFAULT_K
    out = []
    for kind, name, got, want, declared, shown, fix, field in (
            ("judge", "scored by the judge the gate declares", rec.judge, gate.judge_identity, gate.judge,
             lambda v: json.dumps(v, sort_keys=True), "--judge ...", "judge"),
            ("cut_off", "scored at the cut-off the gate declares", rec.k, k, gate.k, lambda v: f"k={v}",
             f"--k {k}", "k")):
        if got == want:
            continue
        what = f"records no {field} it was scored with" if got is None else f"was scored with {shown(got)}"
        declares = "declares" if declared is not None else f"declares no {field}: the default,"
        out.append(CheckResult(
            name=name, kind=kind, metric=None, op=None, threshold=None, observed=None, passed=False,
            reason=(f"the run {what}; the gate {declares} {shown(want)}: rescore it so ({run.score_command} {fix}) "
                    f"or declare it in the gate ({field}: ...) and lock it again")))
    return out


def _completed(run: Any) -> list[CheckResult]:
    """A failing check when the run's manifest says it did not complete (a run cut short is not the
    evidence of a release); recorded traffic written by hand, with no status, is judged as it is."""
    status = run.manifest.get("status")
    if status is None or status == "complete":
        return []
    return [CheckResult(name="the run completed", kind="run_complete", metric=None, op=None, threshold=None,
                        observed=None, passed=False,
                        reason=f"the run's manifest says status {status!r}, not 'complete': finish it (labkit run "
                               f"--resume {run.path}) and judge it then")]


def _intervals_check(gate: Gate, what: str, fix: str) -> CheckResult:
    n_boot, seed = gate.bootstrap
    declares = "declares" if gate.n_boot is not None or gate.seed is not None else "declares none: the defaults,"
    return CheckResult(name="scored with the intervals the gate declares", kind="intervals", metric=None, op=None,
                       threshold=None, observed=None, passed=False,
                       reason=f"{what}; the gate {declares} n_boot={n_boot}, seed={seed}: {fix}, or declare them "
                              "in the gate (n_boot: ..., seed: ...) and lock it again")


def _drawn_checks(gate: Gate, run: Any, metrics: Mapping[str, Any]) -> list[CheckResult]:
    """A failing check when a check of the gate reads an interval (``ci_low``, ``ci_high``) and the
    run's intervals were drawn with other resamples or another seed than the gate declares (an
    interval of one resample, or of a seed chosen among many, is not the interval the threshold
    was set on), and when the run was scored with another corpus than
    it was made with (retrieved ids are judged on their chunks' text). Read off metrics.json,
    which the scoring record's hash covers."""
    out = []
    n_boot, seed = metrics.get("n_boot"), metrics.get("seed")
    reads = any(c.statistic in ("ci_low", "ci_high") for c in (*gate.checks, *(c for s in gate.slices for c in s.checks)))
    want = gate.bootstrap
    if reads and (n_boot, seed) != want:
        out.append(_intervals_check(gate, f"the run was scored with n_boot={n_boot}, seed={seed}",
                                    f"rescore it so ({run.score_command} --n-boot {want[0]} --seed {want[1]})"))
    pipe = run.manifest.get("pipeline")
    made = pipe.get("corpus_fingerprint") if isinstance(pipe, Mapping) else None
    if isinstance(made, str) and metrics.get("corpus") != made:
        scored = metrics.get("corpus")
        what = "without its corpus (not found)" if scored is None and "corpus" in metrics else \
            "by a labkit that did not record its corpus" if "corpus" not in metrics else \
            f"with another corpus (fingerprint {str(scored)[:12]})"
        out.append(CheckResult(
            name="scored with the corpus the run was made with", kind="corpus", metric=None, op=None, threshold=None,
            observed=None, passed=False,
            reason=f"the run was scored {what}; it was made with the corpus of fingerprint {made[:12]}: rescore it "
                   f"with that corpus ({run.score_command} --corpus DIR)"))
    return out


def _unhashed_judge_note(run: Any, rec: Any) -> list[str]:
    """A note when the judge check read the manifest's record (a metrics.json written before it
    recorded its judge): no hash covers it, so an edit there would pass unseen."""
    if not rec.judge_unhashed:
        return []
    return [f"the judge was read from the manifest's scoring record (this metrics.json does not record it, and no "
            f"hash covers the manifest): rescore the run to record it ({run.score_command})"]


def _unmeasured(gate: Gate, metrics: Mapping[str, Any]) -> list[CheckResult]:
    """The unmeasured budget applies to the metrics of the absolute ``checks``."""
    assert gate.unmeasured_max_rate is not None
    limit = gate.unmeasured_max_rate
    if not isinstance(metrics.get("metrics"), dict):
        return [CheckResult(name="unmeasured rate", kind="unmeasured", metric=None, op="<=", threshold=limit,
                            observed=None, passed=False, reason="needs a metrics.json with unmeasured counts")]
    out = []
    for m in dict.fromkeys(c.metric for c in gate.checks):
        e = metrics["metrics"].get(m)
        if e is None:
            continue
        n, un = int(e.get("n") or 0), int(e.get("unmeasured") or 0)
        miss = int(e.get("n_missing", metrics.get("n_missing")) or 0)  # no result: unmeasured too
        total = n + un + miss
        failed = failed_cases(e)
        k = sum(failed.values()) + miss
        rate = k / total if total else 1.0
        reasons = {**failed, **({"no_result": miss} if miss else {})}
        why = ", ".join(f"{code}: {v}" for code, v in sorted(reasons.items()))
        na = un - sum(failed.values())
        out.append(CheckResult(name=f"{m} unmeasured rate <= {limit:g}", kind="unmeasured", metric=m, op="<=",
                               threshold=limit, observed=rate, passed=rate <= limit,
                               reason=f"{k} of {total} cases not measured for a failure reason ({rate:.1%})"
                               + (f" — {why}" if why else "") + (f"; {na} not applicable" if na > 0 else ""),
                               n=n))
    return out


def _lost(m: Mapping[str, Any], budget: float) -> str:
    """Why a regression check fails for the cases the candidate lost ('' within ``budget``)."""
    raw = m.get("lost_reasons")
    lost: dict[str, int] = {str(c): v for c, v in raw.items() if isinstance(v, int)} if isinstance(raw, Mapping) else {}
    k = sum(lost.values())
    n_base = m.get("n_baseline_measured")
    base = n_base if isinstance(n_base, int) else 0
    if not k or (base and k / base <= budget):
        return ""
    why = ", ".join(f"{code}: {v}" for code, v in sorted(lost.items()))
    return (f"{k} of {base} cases measured in the baseline are unmeasured in the candidate ({why}): "
            f"beyond the unmeasured budget {budget:g}")


def _regression(r: RegressionCheck, m: Mapping[str, Any] | None, budget: float = 0.0) -> CheckResult:
    """One non-inferiority check from the paired comparison entry of its metric: it passes only
    when the whole 95% interval of the delta lies within the margin, on enough paired cases,
    and the candidate lost no more of the baseline's measured cases than the budget allows."""
    lost = _lost(m, budget) if m is not None else ""
    if m is None or m.get("ci_low") is None or m.get("ci_high") is None:
        why = "no paired delta for this metric (unmeasured in either run)"
        return CheckResult(name=r.name, kind="regression", metric=r.metric, op=None, threshold=r.max_drop,
                           observed=None, passed=False, reason=f"{lost} ({why})" if lost else why)
    delta, lo, hi = float(m["delta"]), float(m["ci_low"]), float(m["ci_high"])
    n_pair = m.get("n") if isinstance(m.get("n"), int) else None
    if direction(r.metric) == "higher":
        ok, margin = lo >= -r.max_drop, f"−{r.max_drop:g}"
    else:
        ok, margin = hi <= r.max_drop, f"+{r.max_drop:g}"
    why = (f"delta {delta:+.4g}, 95% CI [{lo:+.4g}, {hi:+.4g}]; "
           + (f"whole interval within {margin}" if ok else
              f"interval not wholly within {margin}: non-inferiority not shown"))
    few = too_few(n_pair, r.needed_n)
    if few or lost:
        ok, why = False, f"{few or lost} ({why})"
    return CheckResult(name=r.name, kind="regression", metric=r.metric, op=None, threshold=r.max_drop,
                       observed=delta, passed=ok, reason=why, n=n_pair, min_n=r.needed_n)


def _regressions(gate: Gate, run: Any, baseline: Any, seed: int) -> list[CheckResult]:
    if baseline is None:
        raise ConfigError("the gate has regression checks: give the baseline run (baseline=RUN_DIR; labkit gate "
                          "--baseline RUN_DIR)",
                          path=gate.path, field="regression")
    if run is None:
        raise ConfigError("regression checks judge a run directory, not a dict of metrics",
                          path=gate.path, field="regression")
    from labkit.compare import compare_runs

    _not_itself(gate, run, baseline)
    comp = compare_runs(baseline, run.path, seed=seed).to_dict()
    budget = gate.unmeasured_max_rate or 0.0
    return [_regression(r, comp["metrics"].get(r.metric), budget) for r in gate.regression]


def _not_itself(gate: Gate, run: Any, baseline: Any) -> None:
    """The baseline must be another run: judged against itself every regression check passes."""
    from labkit.compare import same_run
    from labkit.io import file_hash
    from labkit.runs import RunDir

    base = RunDir(baseline)
    if not base.path.is_dir():
        return  # compare names the missing directory
    why = same_run(base, run)
    if not why and base.results_path.is_file() and run.results_path.is_file() and \
            file_hash(base.results_path) == file_hash(run.results_path):
        why = "the same results.jsonl"  # (no regression can show: a baseline of the candidate's own lines)
    if why:
        raise ConfigError(f"the baseline {base.path} is the same run as the candidate {run.path} ({why}): "
                          "regression checks need another run as the baseline; judge a reference run on its "
                          "thresholds alone with --thresholds-only", path=gate.path, field="regression")


def _review(gate: Gate, run: Any, reviews: Any, dataset: Any) -> CheckResult:
    """Every case ``review.required_for`` selects needs an approving review of the run's current
    answer (labkit.gate.reviews); without a run, a review of any answer counts."""
    from labkit.cases import Dataset, load_cases
    from labkit.gate.reviews import read_reviews, review_coverage, run_answers, selected_cases
    from labkit.rundata import scored_cases

    assert gate.review_required_for is not None
    where = ",".join(f"{k}={v}" for k, v in gate.review_required_for.items())

    def result(observed: float | None, passed: bool, reason: str) -> CheckResult:
        return CheckResult(name=f"human review of {where} cases", kind="review", metric=None, op=">=",
                           threshold=1.0, observed=observed, passed=passed, reason=reason)

    if dataset is None and (run is None or run.dataset_path() is None):
        return result(None, False, "needs the dataset to find the cases")
    if run is not None:  # the cases the run was scored on, or a ConfigError
        cases = scored_cases(run, dataset)
    else:  # metrics without a run: the dataset as given
        cases = dataset if isinstance(dataset, Dataset) else load_cases(dataset)
    need = [c.id for c in selected_cases(cases, gate.review_required_for)]
    if not need:
        return result(1.0, True, f"no {where} cases")
    # a reviews file named but not there is an error, not "none reviewed"
    recs = read_reviews(reviews, missing_ok=False) if isinstance(reviews, (str, os.PathLike)) else dict(reviews or {})
    cov = review_coverage(need, recs, run_answers(run) if run is not None else None)
    return result(cov.share, cov.share >= 1.0, cov.reason())


def release_gate(metrics: Mapping[str, Any], gate: Gate | str | None = None) -> bool:
    """The module's ``release_gate(metrics) -> bool``: a gate on a plain dict of metric values."""
    g = Gate.load(gate) if isinstance(gate, str) else (gate or MODULE_GATE)
    return evaluate_gate(g, dict(metrics)).passed
