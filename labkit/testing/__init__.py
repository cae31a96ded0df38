"""Gating a team's own test suite on labkit.

:func:`assert_gate` judges a run (a run directory, a :class:`~labkit.runs.RunDir` or
a metrics mapping) against a gate; :func:`assert_case` checks one case's results line
(must_include, must_not_include, expected tools). Both raise ``AssertionError`` listing
each failed check, one per line. The pytest plugin (``labkit.testing.plugin``, loaded
through the ``pytest11`` entry point) turns a dataset into one test per case
(docs/testing.md). Nothing here imports pytest.
"""

from __future__ import annotations

from labkit.testing.asserts import assert_case, assert_gate, case_failures, gate_failure_lines

__all__ = ["assert_case", "assert_gate", "case_failures", "gate_failure_lines"]
