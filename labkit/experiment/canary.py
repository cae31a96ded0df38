"""The SIMULATED canary: two arms of production-like traffic with a planted difference.

Nothing here is real traffic. Each arm is an :class:`ArmModel` (error rate, share of good
answers, how often users rate, latency and cost); requests arrive as a Poisson stream over
``hours``; the canary arm takes ``canary_share`` of them. A served answer is good with the
arm's ``good_rate``; a user rates a request with ``rating_prob`` (good: 4–5, bad or failed:
1–2). :func:`write_simulated_canary` writes the records as a trace directory
(``traces.jsonl`` + ``feedback.jsonl`` + ``canary.json`` saying it is simulated) that
``labkit experiment`` reads like any production traces. The shipped copy is
``data/canary/simulated-canary/``, made by ``scripts/make_simulated_canary.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from labkit.io import atomic_write_text

#: the label on every record and file of the simulated canary
SIMULATED_LABEL = "SIMULATED canary traffic (labkit.experiment.canary): not real users"
CANARY_SCHEMA_VERSION = 1
T0 = 1_790_000_000.0  # the simulated canary's start (unix seconds, a fixed instant)


@dataclass(frozen=True, kw_only=True)
class ArmModel:
    """One arm's simulated behaviour."""

    name: str
    prompt_version: str
    model: str
    config_hash: str
    error_rate: float
    good_rate: float
    rating_prob: float = 0.5
    latency_median_ms: float = 2000.0
    latency_sigma: float = 0.35
    cost_usd: float = 0.01

    @property
    def success_prob(self) -> float:
        """P(status ok and not rated 1–2): what the success rate estimates for this arm."""
        return (1 - self.error_rate) * (1 - self.rating_prob * (1 - self.good_rate))


#: the shipped canary: the production release (rag-v3) and the lean candidate (rag-v4-lean):
#: cheaper and faster, with a planted drop in good answers (0.92 -> 0.80)
CONTROL = ArmModel(name="control", prompt_version="rag-v3", model="sim-gen-large", config_hash="616a19098afeb1e6",
                   error_rate=0.010, good_rate=0.92, latency_median_ms=1800.0, cost_usd=0.0120)
CANDIDATE = ArmModel(name="candidate", prompt_version="rag-v4-lean", model="sim-gen-small",
                     config_hash="63bedab1c11ee723", error_rate=0.012, good_rate=0.80, latency_median_ms=1200.0,
                     cost_usd=0.0050)


@dataclass(frozen=True, kw_only=True)
class CanarySpec:
    """The simulated experiment: arms, traffic, duration, seed."""

    control: ArmModel = CONTROL
    candidate: ArmModel = CANDIDATE
    hours: int = 30
    requests_per_hour: float = 100.0
    canary_share: float = 0.25
    seed: int = 20261202

    def aa(self) -> CanarySpec:
        """The same experiment with no difference: the candidate behaves as the control."""
        return replace(self, candidate=replace(self.control, name="candidate", prompt_version="rag-v3-copy",
                                               config_hash="aa" * 8))


def _arm_records(arm: ArmModel, ts: np.ndarray, rng: np.random.Generator, run_id: str) -> tuple[list[Any], list[Any]]:
    n = len(ts)
    failed = rng.random(n) < arm.error_rate
    good = rng.random(n) < arm.good_rate
    rated = rng.random(n) < arm.rating_prob
    hi = rng.integers(4, 6, n)
    lo = rng.integers(1, 3, n)
    lat = rng.lognormal(np.log(arm.latency_median_ms), arm.latency_sigma, n)
    cost = arm.cost_usd * rng.lognormal(0.0, 0.2, n)
    traces, feedback = [], []
    for i in range(n):
        tid = hashlib.sha256(f"{run_id}:{arm.name}:{i}".encode()).hexdigest()[:32]
        status = "error" if failed[i] else "ok"
        traces.append({
            "schema_version": 1, "trace_id": tid, "run_id": run_id, "case_id": f"{arm.name}-{i:05d}", "attempt": 1,
            "ts_start": round(float(ts[i]), 3), "ts_end": round(float(ts[i]) + float(lat[i]) / 1000, 3),
            "model": arm.model, "prompt_version": arm.prompt_version, "pipeline": arm.name,
            "config_hash": arm.config_hash, "status": status,
            "error_type": "ServerError" if failed[i] else None, "latency_ms": round(float(lat[i]), 1),
            "cost_usd": None if failed[i] else round(float(cost[i]), 6), "environment": "canary",
            "simulated": True,
        })
        if rated[i]:
            rating = int(hi[i]) if good[i] and not failed[i] else int(lo[i])
            feedback.append({"feedback_id": "fb-" + tid[:16], "trace_id": tid, "run_id": run_id,
                             "case_id": f"{arm.name}-{i:05d}", "rating": rating, "comment": None,
                             "user": "simulated", "ts": round(float(ts[i]) + 60.0, 3)})
    return traces, feedback


def simulate_canary(spec: CanarySpec | None = None, *, run_id: str = "simulated-canary") -> tuple[list[Any], list[Any]]:
    """(trace records, feedback lines) of the simulated canary (default: the shipped one's), in time order."""
    spec = spec or CanarySpec()
    rng = np.random.default_rng(spec.seed)
    n = int(rng.poisson(spec.requests_per_hour * spec.hours))
    ts = np.sort(T0 + rng.random(n) * spec.hours * 3600.0)
    to_candidate = rng.random(n) < spec.canary_share
    traces, feedback = [], []
    for arm, mask in ((spec.control, ~to_candidate), (spec.candidate, to_candidate)):
        t, f = _arm_records(arm, ts[mask], rng, run_id)
        traces += t
        feedback += f
    traces.sort(key=lambda r: (r["ts_start"], r["trace_id"]))
    feedback.sort(key=lambda r: (r["ts"], r["trace_id"]))
    return traces, feedback


def _jsonl(rows: Sequence[Any]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)


def write_simulated_canary(out_dir: str | os.PathLike[str], spec: CanarySpec | None = None) -> Path:
    """Write the simulated canary as a trace directory; returns it. Byte-for-byte reproducible."""
    spec = spec or CanarySpec()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    traces, feedback = simulate_canary(spec, run_id=d.name)
    meta = {"schema_version": CANARY_SCHEMA_VERSION, "simulated": True, "label": SIMULATED_LABEL,
            "made_by": "scripts/make_simulated_canary.py (labkit.experiment.canary.write_simulated_canary)",
            "spec": asdict(spec), "planted_difference": {
                "success_rate": round(spec.candidate.success_prob - spec.control.success_prob, 4)},
            "n_traces": len(traces), "n_feedback": len(feedback)}
    atomic_write_text(d / "canary.json", json.dumps(meta, indent=2) + "\n")
    atomic_write_text(d / "traces.jsonl", _jsonl(traces))
    atomic_write_text(d / "feedback.jsonl", _jsonl(feedback))
    return d
