"""Execute a dataset through a pipeline into a run directory: concurrency, rate limit,
timeouts, retries, fallback, cache, crash-safe resume, progress, and a Dask backend.

The package, one job per module (docs/runner.md):

==================  ==============================================================
``config``          :class:`RunnerConfig` and :func:`merge_config` (where settings come from)
``keys``            :func:`case_key`, the idempotency key of a case
``limits``          the token bucket (``rate_limit``) and the output cap
``pool``            worker threads of sync pipelines, the hand-over lane
``executor``        :class:`CaseExecutor`: attempts, deadlines, retries, fallback
``local``           the asyncio backend (:func:`run_cases`: cases in memory)
``dask``            the Dask backend (``executor: dask``)
``progress``        the progress bar
``writer``          redacted appends to results.jsonl / traces.jsonl, torn-tail repair
``redaction``       the ``redaction`` run option, the manifest and snapshot redaction
``cache``           the opt-in result cache
``lock``            the run lock (one writer per run directory)
``folder``          the folder a fresh run writes into (new, empty, or a run folder)
``manifest``        what manifest.json records of a run
``session``         :func:`run`: a run from start to scored end
``resuming``        :func:`resume`: finishing an interrupted run
``ensure``          :func:`ensure_run`: reuse a current run or make it; :func:`fresh_run_dir`
==================  ==============================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.runner.config import RunnerConfig, merge_config
    from labkit.runner.ensure import ensure_run, fresh_run_dir
    from labkit.runner.keys import case_key
    from labkit.runner.local import run_cases
    from labkit.runner.resuming import resume
    from labkit.runner.session import run

#: name -> the module that defines it, imported on first use: a command that needs one module
#: of the package (``labkit score`` takes the run lock) does not load the rest
_EXPORTS = {
    "RunnerConfig": "labkit.runner.config",
    "merge_config": "labkit.runner.config",
    "ensure_run": "labkit.runner.ensure",
    "fresh_run_dir": "labkit.runner.ensure",
    "case_key": "labkit.runner.keys",
    "run_cases": "labkit.runner.local",
    "resume": "labkit.runner.resuming",
    "run": "labkit.runner.session",
}

__all__ = ["RunnerConfig", "case_key", "ensure_run", "fresh_run_dir", "merge_config", "resume", "run", "run_cases"]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'labkit.runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
