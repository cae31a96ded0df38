"""What a command reads beside a run, checked against the run: the dataset its scores were
measured on (:func:`scored_cases`), the dataset it reads, for the check that an output is no
input (:func:`dataset_input`, for :func:`labkit.paths.refuse_overwriting_inputs`), and what
made the run as its manifest records it (:func:`made_by`: config, model, simulated or not)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.cases import Dataset
from labkit.errors import ConfigError, LabkitError
from labkit.runs import RunDir, load_dataset

__all__ = ["MadeBy", "dataset_input", "made_by", "not_judged", "scored_cases", "unjudged_reasons"]


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


@dataclass(frozen=True)
class MadeBy:
    """What made a run, as its manifest records it."""

    run_id: str
    config: str  # the pipeline config's file name, else its import path or name ("unknown": none recorded)
    model: str | None  # the model its config names, if any
    simulated: bool  # its config's model (or its fallback's) says ``simulated: true``


def _model(pipeline: Mapping[str, Any]) -> Mapping[str, Any]:
    cfg = pipeline.get("config")
    model = cfg.get("model") if isinstance(cfg, Mapping) else None
    return model if isinstance(model, Mapping) else {}


def made_by(run: RunDir | str | os.PathLike[str]) -> MadeBy:
    """The pipeline that made ``run``, from its manifest's ``pipeline``: the config it was made
    from and whether its model is simulated (the reference RAG pipeline's ``model.simulated:
    true``, or its fallback's). A run whose manifest records no simulated model (a callable, an
    HTTP endpoint, an imported file) is not called simulated."""
    rd = run if isinstance(run, RunDir) else RunDir(run)
    pipe = rd.manifest.get("pipeline")
    pipe = pipe if isinstance(pipe, Mapping) else {}
    fb = pipe.get("fallback")
    models = [_model(pipe)] + ([_model(fb)] if isinstance(fb, Mapping) else [])
    where = pipe.get("path") or pipe.get("spec") or pipe.get("name")
    config = Path(str(where)).name if pipe.get("path") else str(where or "unknown")
    name = models[0].get("name")
    return MadeBy(run_id=rd.run_id, config=config, model=str(name) if name else None,
                  simulated=any(m.get("simulated") is True for m in models))


def unjudged_reasons(rd: RunDir) -> dict[str, str] | None:
    """Case id -> why the case's faithfulness is unmeasured (scores.csv's ``faithfulness_reason``:
    ``no_context``, ``no_claims`` ...), for each scored case whose answer the judge did not judge;
    None when the run has no scores to say."""
    if not rd.scores_path.is_file():
        return None
    sc = rd.scores()
    if "faithfulness" not in sc or "faithfulness_reason" not in sc:
        return None
    rows = zip(sc["case_id"].astype(str), sc["faithfulness"], sc["faithfulness_reason"], strict=True)
    return {cid: why for cid, v, why in rows if (v is None or v != v) and isinstance(why, str) and why}


def not_judged(reason: str) -> str:
    """``not judged (no context)``: how an answer whose faithfulness is unmeasured (its reason code, or
    codes joined) is named wherever it shows -- never as holding unsupported sentences."""
    return f"not judged ({reason.replace('_', ' ')})"
