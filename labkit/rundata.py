"""What a command reads beside a run, checked against the run: the dataset its scores were
measured on (:func:`scored_cases`) and the dataset it reads, for the check that an output is no
input (:func:`dataset_input`, for :func:`labkit.paths.refuse_overwriting_inputs`)."""

from __future__ import annotations

import os

from labkit.cases import Dataset
from labkit.errors import ConfigError, LabkitError
from labkit.runs import RunDir, load_dataset

__all__ = ["dataset_input", "scored_cases"]


def dataset_input(run_dir: str | os.PathLike[str], given: str | None = None) -> str | None:
    """The dataset a command reads for a run, for :func:`labkit.paths.refuse_overwriting_inputs`:
    ``given`` (its --dataset), else the run's own (:meth:`RunDir.dataset_path`; None when its
    manifest cannot be read: the command names that when it reads the run)."""
    if given is not None:
        return given
    try:
        return RunDir(run_dir).dataset_path()
    except LabkitError:
        return None


def scored_cases(rd: RunDir, dataset: Dataset | str | os.PathLike[str] | None = None) -> Dataset:
    """The cases a run was scored on, for what reads them beside its scores (the review queue, the
    gate's review check): ``dataset`` (a --dataset), else the run's own (:meth:`RunDir.dataset_path`).
    A dataset whose fingerprint is not the one scoring recorded (another file, relabelled tags,
    the run's file edited since) is a ConfigError: the cases a check selects would not be the
    run's. A run that records no fingerprint (written by hand) takes the dataset as given."""
    given = dataset
    if given is None:
        given = rd.dataset_path()
        if given is None:
            raise ConfigError("the run names no dataset: give it (--dataset)", path=str(rd.path), field="dataset")
    ds = load_dataset(given, rd)
    want = rd.scored_dataset.get("fingerprint")
    if isinstance(want, str) and want and ds.fingerprint != want:
        name = "--dataset " + str(given) if dataset is not None else f"{given} (the run's dataset)"
        raise ConfigError(f"{name} is not the dataset the run was scored on (fingerprint {ds.fingerprint[:12]}, "
                          f"the run's {want[:12]}): give that dataset, or rescore the run on this one "
                          f"({rd.score_command} --dataset {given})", path=str(rd.manifest_path),
                          field="dataset.fingerprint")
    return ds
