"""The release gate: configuration, evaluation, pre-registration lock, report and CI outputs.

- :mod:`labkit.gate.config`: the gate YAML and its checks (:class:`Gate`, :data:`MODULE_GATE`);
- :mod:`labkit.gate.evaluate`: judging a run or a dict of metrics (:func:`release_gate`);
- :mod:`labkit.gate.cases`: what a verdict stands on (coverage of the dataset, minimum n);
- :mod:`labkit.gate.lock`: pre-registration (``labkit gate lock GATE``);
- :mod:`labkit.gate.report`: :class:`GateReport` and its JSON, JUnit and markdown outputs.
"""

from __future__ import annotations

from labkit.gate.cases import default_min_n
from labkit.gate.config import MODULE_GATE, OPS, Check, Gate, RegressionCheck, SliceCheck
from labkit.gate.evaluate import observed, release_gate
from labkit.gate.lock import file_hash, gate_lock_info, lock_gate, lock_path
from labkit.gate.report import CheckResult, GateReport, cases_line
from labkit.gate.reviews import load_reviews

__all__ = ["MODULE_GATE", "OPS", "Check", "CheckResult", "Gate", "GateReport", "RegressionCheck", "SliceCheck",
           "cases_line", "default_min_n", "file_hash", "gate_lock_info", "load_reviews", "lock_gate", "lock_path",
           "observed", "release_gate"]
