"""Seeded simulations of the sequential test at hourly looks: the A/A error rate and the time
to find a planted difference. The success of each request is drawn with its arm's success
probability (:attr:`ArmModel.success_prob`), so a simulated experiment is the canary of
:mod:`labkit.experiment.canary` reduced to what the test sees; the test and the decision
rule are the ones ``labkit experiment`` applies (:func:`msprt`, :func:`sequential_actions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.experiment.canary import CanarySpec
from labkit.experiment.decision import PROMOTE, ROLL_BACK, first_decision, sequential_actions
from labkit.experiment.sequential import msprt


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    n_experiments: int
    hours: int
    reject_rate: float  # share of experiments whose always-valid interval excluded 0 at some look
    rollback_rate: float  # share decided "roll back"
    promote_rate: float
    median_hours_to_decision: float | None  # over experiments that decided
    decided_rate: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cumulative(rng: np.random.Generator, n_exp: int, hours: int, rate: float, p: float) -> tuple[Any, Any, Any]:
    n = rng.poisson(rate, size=(n_exp, hours))
    k = rng.binomial(n, p)
    cn, ck = n.cumsum(axis=1).astype(float), k.cumsum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(cn > 0, ck / np.maximum(cn, 1), np.nan)
        var = np.where(cn > 1, mean * (1 - mean) * cn / np.maximum(cn - 1, 1), np.nan)
    return mean, var, cn


def simulate_experiments(
    spec: CanarySpec | None = None,
    *,
    n_experiments: int = 1000,
    hours: int | None = None,
    alpha: float = 0.05,
    tau: float = 0.05,
    margin: float = 0.02,
    min_traces: int = 500,
    seed: int = 0,
) -> SimulationResult:
    """``n_experiments`` seeded canaries of ``spec`` (default: the shipped canary's) looked at every
    hour for ``hours`` (the spec's by default); pass ``spec.aa()`` for the A/A case."""
    spec = spec or CanarySpec()
    h = int(hours or spec.hours)
    rng = np.random.default_rng(seed)
    rate_b = spec.requests_per_hour * spec.canary_share
    rate_a = spec.requests_per_hour - rate_b
    ma, va, na = _cumulative(rng, n_experiments, h, rate_a, spec.control.success_prob)
    mb, vb, nb = _cumulative(rng, n_experiments, h, rate_b, spec.candidate.success_prob)
    seq = msprt(ma, va, na, mb, vb, nb, tau=tau, alpha=alpha)
    acts = sequential_actions(seq.ci_low, seq.ci_high, nb, margin=margin, min_traces=min_traces, max_looks=h + 1)
    idx, act = first_decision(acts)
    decided = (act == ROLL_BACK) | (act == PROMOTE)
    return SimulationResult(
        n_experiments=n_experiments, hours=h, reject_rate=float(seq.rejects.any(axis=1).mean()),
        rollback_rate=float((act == ROLL_BACK).mean()), promote_rate=float((act == PROMOTE).mean()),
        median_hours_to_decision=float(np.median(idx[decided] + 1)) if decided.any() else None,
        decided_rate=float(decided.mean()))
