"""The online experiment: per-arm figures, the sequential test at hourly looks, the decision."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.experiment.decision import (
    ACTIONS,
    CONTINUE,
    ROLL_BACK,
    RolloutRules,
    first_decision,
    rollout_rules,
    sequential_actions,
    trigger_window_s,
)
from labkit.experiment.sequential import MIN_N, cumulative_moments, msprt
from labkit.experiment.traffic import (
    Rated,
    arm_figures,
    choose_arms,
    read_traffic,
    success_changes,
    window_value,
)

if TYPE_CHECKING:
    import pandas as pd

_OPS = {">": lambda x, y: x > y, ">=": lambda x, y: x >= y, "<": lambda x, y: x < y, "<=": lambda x, y: x <= y}

#: the fewest candidate requests a rollback trigger is evaluated on (its window is extended back to them)
TRIGGER_MIN_N = 20

#: the experiment JSON layout (``labkit experiment --json``)
EXPERIMENT_SCHEMA_VERSION = 1


@dataclass(kw_only=True)
class Experiment:
    """What ``labkit experiment`` reports: the arms, each look, the decision, per-arm figures."""

    arm_by: str
    control: str
    candidate: str
    looks: pd.DataFrame
    action: str
    decided_at_hour: float | None
    reason: str
    rules: RolloutRules
    figures: dict[str, dict[str, Any]]
    alpha: float
    tau: float
    margin: float
    simulated: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        looks = json.loads(self.looks.to_json(orient="records"))
        return {"schema_version": EXPERIMENT_SCHEMA_VERSION, "simulated": self.simulated, "arm_by": self.arm_by,
                "control": self.control, "candidate": self.candidate, "decision": self.action,
                "decided_at_hour": self.decided_at_hour, "reason": self.reason,
                "stage": self.rules.stage, "next_stage": self.rules.next_stage,
                "rollback_to": self.rules.rollback_to, "rollout": self.rules.path,
                "test": {"method": "mSPRT, normal mixture (Johari et al. 2022)", "alpha": self.alpha,
                         "tau": self.tau, "margin": self.margin, "min_n_per_arm": MIN_N},
                "arms": {a: {k: v.to_dict() for k, v in f.items()} for a, f in self.figures.items()},
                "looks": looks, "notes": list(self.notes)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        from labkit.experiment.report import experiment_text

        return experiment_text(self)


def _trigger_states(cand: Rated, t_end: float, t0: float, rules: RolloutRules) -> list[dict[str, Any]]:
    """Each rollback trigger over its window of the candidate's requests before ``t_end``, rated as
    the feedback given by then rates them."""
    ts = cand.rows["ts"].to_numpy(dtype=float)  # in time order
    end = int(np.searchsorted(ts, t_end, side="left"))
    starts = []
    for trig in rules.triggers:
        w = trigger_window_s(trig, rules)
        start = int(np.searchsorted(ts, t0 if w is None else t_end - w, side="left"))
        # too few for a rate or a percentile: the window reaches back to the last TRIGGER_MIN_N requests
        starts.append(min(start, max(0, end - TRIGGER_MIN_N)))
    first = min(starts, default=end)
    seen = cand.at(t_end, first, end)  # (rated once for every window of the look)
    out = []
    for trig, start in zip(rules.triggers, starts, strict=True):
        val, n = window_value(seen.iloc[start - first:], trig.metric, rules.slos)
        out.append({"trigger": trig.text, "observed": val, "n": n,
                    "fires": val is not None and _OPS[trig.op](val, trig.threshold)})
    return out


def _look_frame(df: pd.DataFrame, ratings: pd.DataFrame, control: str, candidate: str, *, look_s: float,
                alpha: float, tau: float, margin: float, max_hours: float, rules: RolloutRules,
                reached: bool) -> pd.DataFrame:
    """The looks at the experiment's traffic, each reading the ratings given by its end; ``reached``:
    requests came after the horizon, so every look up to it is taken (the horizon's stop can be
    reached) whether or not the last held traffic."""
    import pandas as pd

    t0 = float(df["ts"].min())
    look = np.floor((df["ts"].to_numpy(dtype=float) - t0) / look_s).astype(np.int64)
    max_looks = max(1, round(max_hours * 3600 / look_s))
    n_looks = max(int(look.max()) + 1, max_looks if reached else 0)
    arm = df["arm"].astype(str).to_numpy()
    y = (df["status"] == "ok").to_numpy(dtype=float)  # a success until a rating says otherwise
    ids, at, dy = success_changes(df, ratings)
    arm_of = df.set_index("trace_id")["arm"].astype(str)
    rated_arm = arm_of.reindex(ids).to_numpy()
    rated_look = np.floor((at - t0) / look_s).astype(np.int64)
    (ma, va, na), (mb, vb, nb) = (
        cumulative_moments(y[arm == a], look[arm == a], n_looks,
                           changes=(rated_look[rated_arm == a], dy[rated_arm == a], dy[rated_arm == a]))
        for a in (control, candidate))  # (a success is 0 or 1: its square is itself)
    seq = msprt(ma, va, na, mb, vb, nb, tau=tau, alpha=alpha)
    acts = sequential_actions(seq.ci_low, seq.ci_high, nb, margin=margin, min_traces=rules.min_traces,
                              max_looks=max_looks)
    cand = Rated(df[arm == candidate], ratings)
    rows = []
    for k in range(n_looks):
        t_end = t0 + (k + 1) * look_s
        trig = _trigger_states(cand, t_end, t0, rules)
        fired = [t["trigger"] for t in trig if t["fires"]]
        rows.append({"look": k + 1, "hours": (k + 1) * look_s / 3600, "n_control": int(na[k]),
                     "n_candidate": int(nb[k]), "success_control": ma[k], "success_candidate": mb[k],
                     "delta": seq.delta[k], "ci_low": seq.ci_low[k], "ci_high": seq.ci_high[k],
                     "p_value": seq.p_value[k], "triggers_fired": "; ".join(fired),
                     "action": ACTIONS[ROLL_BACK if fired else int(acts[k])]})
    out = pd.DataFrame(rows)
    for c in ("ci_low", "ci_high"):  # no test yet: no bound (NaN here, null in JSON)
        out[c] = out[c].where(np.isfinite(out[c].to_numpy(dtype=float)))
    return out


def _reason(row: Any, rules: RolloutRules, margin: float) -> str:
    act = row["action"]
    ci = f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" if np.isfinite(row["ci_low"]) else "(no test yet)"
    if act == "roll back":
        why = (f"rollback trigger(s) of stage {rules.stage} fired: {row['triggers_fired']}"
               if row["triggers_fired"] else f"the always-valid interval of the success-rate difference {ci} "
               "lies below 0: the candidate is worse")
        return f"{why}; roll back to {rules.rollback_to or 'the control'}"
    if act == "promote":
        return (f"the success-rate difference {ci} lies above -{margin:g} (not worse by more than the margin), "
                f"{row['n_candidate']} candidate requests >= {rules.min_traces} the next stage requires, no "
                f"trigger fired: promote to {rules.next_stage or 'full traffic'}")
    if act == "stop":
        return f"horizon reached with the difference {ci} undecided: stop, keep the control"
    return (f"no conclusion yet: difference {ci}, {row['n_candidate']} candidate requests "
            f"(promotion needs {rules.min_traces}); keep the canary at {rules.traffic_percent:g}%")


#: the most looks an experiment is analysed at (--max-hours / --look-hours): 72 hourly looks is the default
MAX_LOOKS = 10_000


def _check_hours(*, look_hours: float, max_hours: float, margin: float) -> None:
    """Finite positive hours, a finite margin >= 0, and at most :data:`MAX_LOOKS` looks."""
    from labkit.errors import ConfigError

    for name, value in (("--look-hours", look_hours), ("--max-hours", max_hours)):
        if not (isinstance(value, float | int) and 0 < value < math.inf):
            raise ConfigError(f"must be a positive finite number of hours, got {value!r}", field=name)
    if not (isinstance(margin, float | int) and 0 <= margin < math.inf):
        raise ConfigError(f"must be a finite number >= 0, got {margin!r}", field="--margin")
    if max_hours / look_hours > MAX_LOOKS:
        raise ConfigError(f"{max_hours:g} h / {look_hours:g} h is {max_hours / look_hours:.3g} looks, more than "
                          f"{MAX_LOOKS:,}: look less often or set a shorter --max-hours", field="--look-hours")


def analyse_experiment(
    sources: Iterable[str | os.PathLike[str]],
    *,
    arm_by: str = "prompt_version",
    control: str | None = None,
    candidate: str | None = None,
    rollout: str | os.PathLike[str] = "data/rollout.yaml",
    slo: str | os.PathLike[str] | None = "data/slo.yaml",
    stage: str | None = None,
    environment: str | None = None,
    alpha: float = 0.05,
    tau: float = 0.05,
    margin: float = 0.02,
    look_hours: float = 1.0,
    max_hours: float = 72.0,
    seed: int = 0,
) -> Experiment:
    """Analyse a canary from its traces and feedback, looking every ``look_hours``."""
    _check_hours(look_hours=look_hours, max_hours=max_hours, margin=margin)
    rules = rollout_rules(rollout, slo=slo, stage=stage)
    traffic = read_traffic(sources, arm_by=arm_by, environment=environment)
    df = traffic.requests
    control, candidate = choose_arms(df, control, candidate)
    df = df[df["arm"].isin([control, candidate])]
    # the experiment begins with the candidate's first request: the control's traffic before it (the
    # release serving alone, a stray early clock) is no part of the comparison, nor moves its horizon
    begun = df.loc[df["arm"] == candidate, "ts"].min()
    start = float(begun) if begun == begun else float(df["ts"].min())
    early = int((df["ts"] < start).sum())
    df = df[df["ts"] >= start]
    # no look after the horizon: a request later than it (a far-future clock) never stretches the looks
    horizon = start + max(1, round(max_hours / look_hours)) * look_hours * 3600
    late = int((df["ts"] >= horizon).sum())
    df = df[df["ts"] < horizon]
    ratings = traffic.ratings[traffic.ratings["trace_id"].isin(df["trace_id"])]
    looks = _look_frame(df, ratings, control, candidate, look_s=look_hours * 3600, alpha=alpha, tau=tau, margin=margin,
                        max_hours=max_hours, rules=rules, reached=late > 0)
    codes = np.array([ACTIONS.index(a) for a in looks["action"]])
    idx, _ = first_decision(codes)
    at = int(idx) if int(idx) >= 0 else len(looks) - 1
    row = looks.iloc[at]
    t_cut = float(df["ts"].min()) + float(row["hours"]) * 3600
    seen = Rated(df[df["ts"] < t_cut], ratings).at(t_cut)
    figures = {a: arm_figures(seen[seen["arm"] == a], seed=seed) for a in (control, candidate)}
    simulated = bool(df["simulated"].fillna(False).astype(bool).any())
    notes = [f"figures as of look {int(row['look'])} ({row['hours']:g} h)"]
    if early:
        notes.append(f"{early} request(s) before the candidate's first request (the canary's start) not analysed")
    if late:
        notes.append(f"{late} request(s) after the {max_hours:g} h horizon (--max-hours) not analysed")
    untimed = int((~ratings["timed"]).sum())
    if untimed:
        notes.append(f"{untimed} rating(s) record no time (feedback ts): each counted from its request's time")
    cand = Rated(df[df["arm"] == candidate], ratings)
    unseen = [t["trigger"] for t in _trigger_states(cand, t_cut, float(df["ts"].min()), rules) if t["observed"] is None]
    if unseen:
        notes.append(f"rollback trigger(s) the traces do not carry, not observed: {'; '.join(unseen)}")
    if ACTIONS.index(row["action"]) == CONTINUE:
        notes.append("the experiment has not reached a decision: keep looking")
    return Experiment(arm_by=arm_by, control=control, candidate=candidate, looks=looks, action=str(row["action"]),
                      decided_at_hour=float(row["hours"]) if int(idx) >= 0 else None,
                      reason=_reason(row, rules, margin), rules=rules, figures=figures, alpha=alpha, tau=tau,
                      margin=margin, simulated=simulated, notes=notes)
