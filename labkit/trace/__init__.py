"""Traces: the record, redaction, the DuckDB store, guardrails, OpenTelemetry
export, user feedback, alerts and the measured observability checklist.

Importing this package is light: duckdb, pandas and opentelemetry are imported
inside the submodules (and functions) that use them. The submodules are:

- :mod:`labkit.trace.record` — ``make_trace``, ``load_traces``, ``normalize_trace``
- :mod:`labkit.trace.redact` — ``Redactor``
- :mod:`labkit.trace.store` — ``TraceStore`` and the explorer queries
- :mod:`labkit.trace.guardrails` — ``Guardrails`` middleware
- :mod:`labkit.trace.otel` — ``export_traces`` (extra ``otel``)
- :mod:`labkit.trace.feedback` — ``record_feedback``, ``load_feedback``
- :mod:`labkit.trace.alerts` — ``load_rules``, ``evaluate_alerts``
- :mod:`labkit.trace.checklist` — ``observability_checklist``
"""

from __future__ import annotations

from labkit.trace.record import SCHEMA_VERSION, load_traces, make_trace, normalize_trace
from labkit.trace.redact import Redactor

__all__ = ["SCHEMA_VERSION", "Redactor", "load_traces", "make_trace", "normalize_trace"]
