"""Readiness review: checklists as evidence, SLOs and rollout, incident review, scorecard with gaps.

* :func:`build_scorecard` — every checklist, SLOs and rollout, area scores,
  verdict and ranked gaps (:class:`Scorecard`, ``.to_dict()``);
* :func:`incident_review` — incident.md, regression_cases.jsonl, backlog.csv;
* :func:`scan_files` / :func:`scan_text` — literal secrets in configs (file, line, kind; never the value);
* :func:`load_slos`, :func:`evaluate_slos`, :func:`load_rollout`, :func:`evaluate_rollout`;
* :func:`load_attestations` — the attestation file for what artifacts cannot show;
* :func:`ensure_run` — reuse a current scored run or make it.

Importing this package loads no pandas, duckdb or plotting library.
"""

from __future__ import annotations

from labkit.readiness.incident import IncidentReview, incident_review, regressed_stage, stage_deltas
from labkit.readiness.model import AREAS, STATUSES, Attestation, CheckItem, load_attestations
from labkit.readiness.prepare import ensure_run
from labkit.readiness.scorecard import (
    VERDICT_RULE,
    VERDICTS,
    Scorecard,
    build_scorecard,
    render_deployment_checklist,
)
from labkit.readiness.secrets import SecretFinding, scan_files, scan_text
from labkit.readiness.slo import evaluate_rollout, evaluate_slos, load_rollout, load_slos

__all__ = [
    "AREAS",
    "STATUSES",
    "VERDICTS",
    "VERDICT_RULE",
    "Attestation",
    "CheckItem",
    "IncidentReview",
    "Scorecard",
    "SecretFinding",
    "build_scorecard",
    "ensure_run",
    "evaluate_rollout",
    "evaluate_slos",
    "incident_review",
    "load_attestations",
    "load_rollout",
    "load_slos",
    "regressed_stage",
    "render_deployment_checklist",
    "scan_files",
    "scan_text",
    "stage_deltas",
]
