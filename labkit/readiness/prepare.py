"""Make sure the runs a review needs exist: reuse a complete, current run, else run it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def config_file_hash(path: str | os.PathLike[str], *, corpus_dir: str | None = None) -> str:
    """The config hash a run of the pipeline config at ``path`` records now.

    The hash covers the config and the content of the corpus it retrieves from, so it is
    taken from the pipeline loaded as a run loads it (:func:`labkit.pipelines.load_pipeline`),
    never from the YAML alone: the review and the runner cannot disagree on it.
    """
    from labkit.pipelines import load_pipeline

    return load_pipeline(str(path), corpus_dir=corpus_dir).config_hash


def ensure_run(
    dataset: str | os.PathLike[str],
    pipeline_config: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    gate: str | os.PathLike[str] | None = None,
    existing: str | os.PathLike[str] | None = None,
) -> Any:
    """The scored run of ``pipeline_config`` on ``dataset`` in ``run_dir``.

    A run already there is reused when it is complete (scored) and was made
    from the same config (config hash) on the same dataset (fingerprint);
    otherwise the folder is cleared (only if it holds a run) and the run made
    again with :func:`labkit.runner.run`. ``existing`` (a run directory given by
    the user) is returned as is, never re-run. Returns a :class:`labkit.runs.RunDir`.
    """
    from labkit.cases import load_cases
    from labkit.report import fresh_run_dir
    from labkit.runner import run
    from labkit.runs import RunDir

    if existing:
        if not Path(existing).is_dir():
            from labkit.errors import ConfigError

            raise ConfigError("run directory not found", path=str(existing))
        return RunDir(existing)
    rd = RunDir(run_dir)
    ds = load_cases(dataset)
    man = rd.manifest
    if (rd.metrics_path.is_file() and man.get("status", "complete") == "complete"
            and (man.get("pipeline") or {}).get("config_hash") == config_file_hash(pipeline_config)
            and (man.get("dataset") or {}).get("fingerprint") == ds.fingerprint):
        return rd
    fresh_run_dir(Path(run_dir))
    return run(ds, str(pipeline_config), run_dir, overrides={"progress": False},
               gate_path=str(gate) if gate is not None else None)
