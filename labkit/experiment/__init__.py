"""The online experiment after deploy: a canary analysed from production traces and feedback.

* :func:`analyse_experiment` — per-arm success rate, user rating, error rate, latency and cost
  with intervals; the mSPRT (always valid however often one looks) on the success-rate
  difference at every look; the continue / stop / promote / roll back decision tied to the
  canary stage of data/rollout.yaml.
* :func:`simulate_experiments` — seeded A/A and planted-difference simulations of the test.
* :func:`write_simulated_canary` — the SIMULATED canary dataset (data/canary/).

docs/experiment.md describes the method and the rules.
"""

from __future__ import annotations

from labkit.experiment.analysis import Experiment, analyse_experiment
from labkit.experiment.canary import CanarySpec, simulate_canary, write_simulated_canary
from labkit.experiment.simulate import SimulationResult, simulate_experiments

__all__ = [
    "CanarySpec",
    "Experiment",
    "SimulationResult",
    "analyse_experiment",
    "simulate_canary",
    "simulate_experiments",
    "write_simulated_canary",
]
