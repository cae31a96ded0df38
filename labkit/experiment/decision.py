"""The decision at each look, tied to the rollout rules of data/rollout.yaml.

At every look, in this order:

* **roll back** — a rollback trigger of the canary stage fires on the candidate's requests
  over the trigger's window, or the always-valid interval of the success-rate difference
  (candidate − control) lies wholly below 0;
* **promote** — the interval lies wholly above −``margin`` (the candidate is not worse by
  more than the margin), the candidate has served at least the traces the next stage
  requires (its ``traces`` requirement), and no trigger fires;
* **stop** — the horizon (``max_hours``) is reached with neither: inconclusive, the
  control stays;
* **continue** — otherwise.

The first look that is not *continue* is the experiment's decision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labkit.errors import ConfigError

ACTIONS = ("continue", "stop", "promote", "roll back")
CONTINUE, STOP, PROMOTE, ROLL_BACK = range(4)


@dataclass(frozen=True, kw_only=True)
class RolloutRules:
    """The canary stage of the rollout plan, what the next stage requires, and the SLOs its
    burn-rate triggers refer to."""

    stage: str
    traffic_percent: float
    next_stage: str | None
    min_traces: int
    triggers: tuple[Any, ...]
    slos: dict[str, Any] = field(default_factory=dict)
    rollback_to: str | None = None
    path: str | None = None


def _window_s(window: str, *, path: str | None) -> float | None:
    """Seconds of a trigger window such as ``15m``, ``1h``, ``3d``; None: the whole experiment."""
    if not window:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    num, unit = window[:-1], window[-1:]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ConfigError(f"unknown window {window!r} (e.g. 15m, 1h, 3d)", path=path, field="rollback_triggers.window")
    return value * units[unit]


def trigger_window_s(trigger: Any, rules: RolloutRules) -> float | None:
    return _window_s(str(trigger.window or ""), path=rules.path)


def rollout_rules(
    rollout: str | os.PathLike[str] = "data/rollout.yaml",
    *,
    slo: str | os.PathLike[str] | None = "data/slo.yaml",
    stage: str | None = None,
) -> RolloutRules:
    """The rules of ``stage`` (default: the first stage serving users, 0 < traffic < 100)."""
    from labkit.readiness.slo import load_rollout, load_slos

    slos = {s.name: s for s in load_slos(slo).slos} if slo is not None and Path(slo).is_file() else {}
    plan = load_rollout(rollout, list(slos))
    names = [s.name for s in plan.stages]
    if stage is None:
        found = [i for i, s in enumerate(plan.stages) if 0 < s.traffic_percent < 100]
        if not found:
            raise ConfigError("no canary stage (0 < traffic_percent < 100)", path=str(rollout), field="stages")
        i = found[0]
    elif stage in names:
        i = names.index(stage)
    else:
        raise ConfigError(f"unknown stage {stage!r}", path=str(rollout), field="--stage", known=names)
    st = plan.stages[i]
    nxt = plan.stages[i + 1] if i + 1 < len(plan.stages) else None
    mins = [int(r.get("min", 0)) for r in (nxt.requires if nxt else ()) if r.get("require") == "traces"]
    rules = RolloutRules(stage=st.name, traffic_percent=st.traffic_percent, next_stage=nxt.name if nxt else None,
                         min_traces=max(mins, default=0), triggers=st.rollback_triggers, slos=slos,
                         rollback_to=plan.rollback_to, path=str(rollout))
    for t in rules.triggers:
        trigger_window_s(t, rules)  # a bad window is a config error before any look
    return rules


def sequential_actions(
    ci_low: NDArray[np.float64], ci_high: NDArray[np.float64], n_candidate: NDArray[np.float64], *,
    margin: float, min_traces: int, max_looks: int,
) -> NDArray[np.int64]:
    """The action the sequential test alone supports at each look (any leading shape; last axis:
    looks): roll back, promote, stop (at the horizon), continue. Triggers are added by the caller."""
    looks = np.arange(ci_low.shape[-1])
    act = np.full(ci_low.shape, CONTINUE, dtype=np.int64)
    act = np.where(looks + 1 >= max_looks, STOP, act)
    act = np.where((ci_low > -margin) & (n_candidate >= min_traces), PROMOTE, act)
    return np.where(ci_high < 0, ROLL_BACK, act)


def first_decision(actions: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(index of the first look that is not continue, or -1; its action) along the last axis."""
    decided = actions != CONTINUE
    any_ = decided.any(axis=-1)
    idx = np.where(any_, decided.argmax(axis=-1), -1)
    act = np.where(any_, np.take_along_axis(actions, np.maximum(idx, 0)[..., None], axis=-1)[..., 0], CONTINUE)
    return idx, act
