"""Make sure a run exists: reuse a complete, current run directory, else (re)make it.

One implementation for every caller that needs "the run of this config on this dataset"
(the readiness review, the trace views, notebooks): a run is reused only when it is
complete and scored, and was made from the same pipeline config (config hash, which
covers the corpus content) on the same dataset (fingerprint). Anything else is
cleared (only if it holds a run) and run again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from labkit.cases import Dataset, load_cases
from labkit.errors import ConfigError
from labkit.runs import RunDir

__all__ = ["RUN_FILES", "config_file_hash", "ensure_run", "fresh_run_dir", "is_current"]

#: The files of a complete, scored run directory.
RUN_FILES = ("manifest.json", "results.jsonl", "traces.jsonl", "scores.csv", "metrics.json")


def config_file_hash(path: str | os.PathLike[str], *, corpus_dir: str | None = None) -> str:
    """The config hash a run of the pipeline config at ``path`` records now.

    The hash covers the config and the content of the corpus it retrieves from, so it is
    taken from the pipeline loaded as a run loads it (:func:`labkit.pipelines.load_pipeline`),
    never from the YAML alone: a review and the runner cannot disagree on it.
    """
    from labkit.pipelines import load_pipeline

    return load_pipeline(str(path), corpus_dir=corpus_dir).config_hash


def is_current(rd: RunDir, pipeline_config: str | os.PathLike[str], ds: Dataset) -> bool:
    """Whether ``rd`` holds a complete, scored run of ``pipeline_config`` on ``ds``."""
    if not all((rd.path / name).is_file() for name in RUN_FILES):
        return False
    man = rd.manifest
    return (man.get("status", "complete") == "complete"
            and (man.get("pipeline") or {}).get("config_hash") == config_file_hash(pipeline_config)
            and (man.get("dataset") or {}).get("fingerprint") == ds.fingerprint)


def ensure_run(
    dataset: str | os.PathLike[str],
    pipeline_config: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    gate: str | os.PathLike[str] | None = None,
) -> RunDir:
    """The scored run of ``pipeline_config`` on ``dataset`` in ``run_dir``: the one there when
    :func:`is_current`, else made again with :func:`labkit.runner.run` (progress off)."""
    from labkit.runner.session import run

    rd = RunDir(run_dir)
    ds = load_cases(dataset)
    if is_current(rd, pipeline_config, ds):
        return rd
    fresh_run_dir(run_dir)
    return run(ds, str(pipeline_config), run_dir, overrides={"progress": False},
               gate_path=str(gate) if gate is not None else None)


def fresh_run_dir(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` ready for a new run: remove a previous run there, refuse anything else.

    Notebooks re-run from the top write the same run directories each time; the
    runner refuses a folder that already holds a run, so the notebook clears its
    own previous run first. A folder that is not a run folder
    (:func:`labkit.runner.folder.is_run_folder`: someone's files, even beside one named as a
    run's) is left alone and reported as a ConfigError.
    """
    from labkit.runner.folder import is_run_folder

    p = Path(path)
    if p.exists():
        if any(p.iterdir()) and not is_run_folder(p):
            raise ConfigError("folder exists and does not hold a run; not removing it", path=str(p))
        shutil.rmtree(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p
