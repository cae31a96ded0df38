"""Make sure the runs a review needs exist: a run directory the user gave, as is, or
:func:`labkit.runner.ensure_run` (reuse a complete, current run, else run it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def ensure_run(
    dataset: str | os.PathLike[str],
    pipeline_config: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    gate: str | os.PathLike[str] | None = None,
    existing: str | os.PathLike[str] | None = None,
) -> Any:
    """The scored run of ``pipeline_config`` on ``dataset`` in ``run_dir``.

    ``existing`` (a run directory given by the user) is returned as is, never re-run;
    otherwise :func:`labkit.runner.ensure_run`: a run already in ``run_dir`` is reused when
    it is complete (scored) and was made from the same config (config hash) on the same
    dataset (fingerprint), else made again. Returns a :class:`labkit.runs.RunDir`.
    """
    from labkit.runs import RunDir

    if existing:
        if not Path(existing).is_dir():
            from labkit.errors import ConfigError

            raise ConfigError("run directory not found", path=str(existing))
        return RunDir(existing)
    from labkit.runner import ensure_run as make_sure

    return make_sure(dataset, pipeline_config, run_dir, gate=gate)
