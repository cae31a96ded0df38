"""labkit: evals, traces, gates and readiness reports for LLM/RAG pipelines.

``import labkit`` is light: it loads no plotting, notebook, database or HTTP
library. The names below are resolved on first use from their modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    # errors
    "LabkitError": "labkit.errors",
    "ConfigError": "labkit.errors",
    "DatasetError": "labkit.errors",
    "PipelineError": "labkit.errors",
    "GateFailed": "labkit.errors",
    "MissingDependencyError": "labkit.errors",
    # datasets
    "EvalCase": "labkit.cases",
    "Dataset": "labkit.cases",
    "load_cases": "labkit.cases",
    "save_cases": "labkit.cases",
    "as_cases": "labkit.cases",
    "dataset_stats": "labkit.cases",
    "Corpus": "labkit.corpus",
    # pipelines and runs
    "Pipeline": "labkit.pipelines",
    "load_pipeline": "labkit.pipelines",
    "register_pipeline": "labkit.pipelines",
    "RunnerConfig": "labkit.runner",
    "run": "labkit.runner",
    "resume": "labkit.runner",
    "ensure_run": "labkit.runner",
    "fresh_run_dir": "labkit.runner",
    "RunDir": "labkit.runs",
    "score_run": "labkit.scoring",
    # metrics, stats, gates
    "METRICS": "labkit.metrics",
    "score_cases": "labkit.metrics",
    "aggregate": "labkit.metrics",
    "compare_runs": "labkit.compare",
    "Gate": "labkit.gate",
    "GateReport": "labkit.gate",
    "release_gate": "labkit.gate",
    "lock_gate": "labkit.gate",
}

__all__ = [
    "METRICS",
    "ConfigError",
    "Corpus",
    "Dataset",
    "DatasetError",
    "EvalCase",
    "Gate",
    "GateFailed",
    "GateReport",
    "LabkitError",
    "MissingDependencyError",
    "Pipeline",
    "PipelineError",
    "RunDir",
    "RunnerConfig",
    "__version__",
    "aggregate",
    "as_cases",
    "compare_runs",
    "dataset_stats",
    "ensure_run",
    "fresh_run_dir",
    "load_cases",
    "load_pipeline",
    "lock_gate",
    "register_pipeline",
    "release_gate",
    "resume",
    "run",
    "save_cases",
    "score_cases",
    "score_run",
]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from labkit.cases import Dataset, EvalCase, as_cases, dataset_stats, load_cases, save_cases
    from labkit.compare import compare_runs
    from labkit.corpus import Corpus
    from labkit.errors import (
        ConfigError,
        DatasetError,
        GateFailed,
        LabkitError,
        MissingDependencyError,
        PipelineError,
    )
    from labkit.gate import Gate, GateReport, lock_gate, release_gate
    from labkit.metrics import METRICS, aggregate, score_cases
    from labkit.pipelines import Pipeline, load_pipeline, register_pipeline
    from labkit.runner import RunnerConfig, ensure_run, fresh_run_dir, resume, run
    from labkit.runs import RunDir
    from labkit.scoring import score_run
