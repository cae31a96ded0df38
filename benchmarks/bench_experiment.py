"""Benchmark: the sequential test of ``labkit experiment`` under repeated looks.

Seeded simulations of the SIMULATED canary (labkit.experiment.canary) looked at every hour:

* A/A — no difference between the arms, ``--hours`` hourly looks: the share of experiments
  whose always-valid interval ever excludes 0 (the test's error rate; target <= alpha = 0.05),
  beside the same share for a naive fixed-n 95% interval looked at as often (what peeking does);
* planted — the canary's planted drop in success rate: the share rolled back and the median
  time to the decision;
* the analysis of the shipped canary (data/canary/simulated-canary) from its traces, timed.

    .venv/bin/python benchmarks/bench_experiment.py [--n 1000] [--hours 72] [--seed 0]

The last line is one JSON object (README, `make bench`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def naive_reject_rate(n: int, hours: int, seed: int) -> float:
    """A fixed-n 95% interval of the difference, looked at every hour (from MIN_N per arm on)."""
    from statistics import NormalDist

    from labkit.experiment import CanarySpec
    from labkit.experiment.sequential import MIN_N

    spec = CanarySpec().aa()
    rng = np.random.default_rng(seed)
    rb = spec.requests_per_hour * spec.canary_share
    ha, hb = rng.poisson(spec.requests_per_hour - rb, (n, hours)), rng.poisson(rb, (n, hours))
    na, nb = ha.cumsum(1), hb.cumsum(1)
    pa = rng.binomial(ha, spec.control.success_prob).cumsum(1) / np.maximum(na, 1)
    pb = rng.binomial(hb, spec.candidate.success_prob).cumsum(1) / np.maximum(nb, 1)
    se = np.sqrt(pa * (1 - pa) / np.maximum(na, 1) + pb * (1 - pb) / np.maximum(nb, 1))
    z = NormalDist().inv_cdf(0.975)
    hit = (np.abs(pb - pa) > z * se) & (na >= MIN_N) & (nb >= MIN_N)
    return float(hit.any(axis=1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="simulated experiments per case (default: 1000)")
    ap.add_argument("--hours", type=int, default=72, help="hourly looks of the A/A case (default: 72)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from labkit.experiment import CanarySpec, analyse_experiment, simulate_experiments

    t0 = time.perf_counter()
    aa = simulate_experiments(CanarySpec().aa(), n_experiments=args.n, hours=args.hours, seed=args.seed)
    planted = simulate_experiments(CanarySpec(), n_experiments=args.n, seed=args.seed)
    sim_s = time.perf_counter() - t0
    naive = naive_reject_rate(args.n, args.hours, args.seed)
    t0 = time.perf_counter()
    e = analyse_experiment([ROOT / "data" / "canary" / "simulated-canary"], arm_by="prompt_version",
                           rollout=ROOT / "data" / "rollout.yaml", slo=ROOT / "data" / "slo.yaml")
    analyse_s = time.perf_counter() - t0
    print(f"A/A, {aa.n_experiments} experiments x {aa.hours} hourly looks: mSPRT rejects {aa.reject_rate:.3f} "
          f"(target <= 0.05); a fixed-n 95% interval looked at as often rejects {naive:.3f} "
          f"({naive / max(aa.reject_rate, 1e-9):.1f}x)")
    print(f"planted difference, {planted.n_experiments} experiments x {planted.hours} looks: rolled back "
          f"{planted.rollback_rate:.3f}, median time to decision {planted.median_hours_to_decision} h")
    print(f"shipped SIMULATED canary: {e.action} at hour {e.decided_at_hour}; analysis {analyse_s:.2f} s; "
          f"simulations {sim_s:.2f} s")
    print(json.dumps({"bench": "experiment", "n": aa.n_experiments, "hours": aa.hours,
                      "aa_reject_rate": aa.reject_rate, "naive_reject_rate": naive,
                      "planted_rollback_rate": planted.rollback_rate,
                      "planted_median_hours": planted.median_hours_to_decision,
                      "shipped_decision": e.action, "shipped_decided_at_hour": e.decided_at_hour,
                      "analyse_s": round(analyse_s, 3), "simulate_s": round(sim_s, 3)}))


if __name__ == "__main__":
    main()
