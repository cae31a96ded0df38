"""What a run records of itself in manifest.json (docs/formats.md "manifest.json")."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.cases import Dataset
from labkit.errors import ConfigError
from labkit.gitinfo import git_sha
from labkit.prereg import gate_lock_info
from labkit.runner.config import RunnerConfig
from labkit.runs import MANIFEST_SCHEMA_VERSION
from labkit.scoring import DEFAULT_K

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["build_manifest", "gate_info", "resume_k", "spec_of"]

def build_manifest(
    ds: Dataset, pipe: LoadedPipeline, cfg: RunnerConfig, run_id: str, *,
    spec: str | None, corpus_dir: str | None, gate: dict[str, Any] | None, k: int,
) -> dict[str, Any]:
    """The manifest of a run that starts now (status ``running``), not yet redacted; ``k``: the
    cut-off the run is scored at (``score_k``: a resume scores at it too)."""
    from labkit import __version__

    ds_path = str(Path(ds.path).resolve()) if ds.path else None
    fb = pipe.fallback
    m: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        "run_uuid": str(uuid.uuid4()),  # tells this run from any other of the same run_id
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "finished_at": None,
        "status": "running",
        "labkit_version": __version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "dataset": {"path": ds_path, "fingerprint": ds.fingerprint, "n_cases": len(ds)},
        "pipeline": {
            "name": pipe.name,
            "config": pipe.config,
            "config_hash": pipe.config_hash,
            "path": str(Path(pipe.path).resolve()) if pipe.path else None,
            "spec": spec,
            "corpus_dir": corpus_dir,
            "fallback": {"name": fb.name, "config_hash": fb.config_hash, "config": fb.config} if fb else None,
        },
        "runner": cfg.to_dict(),
        "score_k": k,
    }
    if gate is not None:
        m["gate"] = gate
    return m


def gate_info(gate_path: str | None) -> dict[str, Any] | None:
    """The gate a run is started under (``--gate``): its path, hash and pre-registration lock."""
    if gate_path is None:
        return None
    info = gate_lock_info(gate_path)
    if info is None:
        raise ConfigError("gate config not found", path=str(Path(gate_path)), field="gate")
    # the absolute path: the gate report tells an edit of this file from another gate wherever it runs
    return {**info, "path": str(Path(gate_path).resolve())}


def spec_of(spec: Any, p: LoadedPipeline) -> str | None:
    """A string that reloads the pipeline on resume (YAML path or module:callable), if any."""
    if p.path:
        return str(Path(p.path).resolve())
    if isinstance(spec, (str, Path)):
        return str(spec)
    cfg_call = p.config.get("callable") if isinstance(p.config, dict) else None
    if isinstance(cfg_call, str) and "<" not in cfg_call and not cfg_call.startswith(("__main__:", "?:")):
        return cfg_call
    return None


def resume_k(man: dict[str, Any], k: int | None, *, flag: str, where: str | None) -> int:
    """The cut-off a resumed run is scored at: the manifest's ``score_k``; for a manifest written
    before that field, the k of its scoring record, else :data:`DEFAULT_K`. A ``k`` (given as
    ``flag``) other than the recorded one is a ConfigError naming the flag and the field."""
    recorded, fld = man.get("score_k"), "score_k"
    if recorded is None:
        recorded, fld = (man.get("scoring") or {}).get("k"), "scoring.k"
    if recorded is None:
        return DEFAULT_K if k is None else k
    if k is not None and k != recorded:
        raise ConfigError(f"{flag} {k} is not the run's cut-off {recorded} (manifest {fld}); a resumed run is "
                          f"scored at the k it was started with (leave {flag} out)", path=where, field=fld)
    return int(recorded)
