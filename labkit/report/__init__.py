"""The report engine: execute the notebooks with papermill, export offline HTML, write an index.

- :mod:`labkit.report.engine` — ``build_reports``: runs every ``notebooks/NN_*.ipynb`` (or the
  ones asked for) two at a time in kernels started from the running interpreter, keeps each
  executed notebook under ``<out>/executed/`` and reads back the verdict each published
- :mod:`labkit.report.params` — the parameters file and its checks before any kernel starts
- :mod:`labkit.report.kernel` — the kernel manager (the running interpreter, no kernelspec)
- :mod:`labkit.report.export` — one self-contained HTML file per notebook through labkit's own
  nbconvert template (no code, no prompts, images inline, no script, font, stylesheet or
  MathJax reference), after masking secrets and PII in every output
- :mod:`labkit.report.index` — ``index.html`` linking every report with its verdict, and the
  per-report records a later partial build lists
- :mod:`labkit.report.results` — what a build returns (entries, failures)

A notebook publishes its verdict by displaying a :class:`~labkit.display.Verdict`: the object
carries a ``application/vnd.labkit.verdict+json`` representation that the engine reads back
from the executed notebook, so the verdict travels with the notebook and needs no side file.

This module holds what notebooks call to find their footing: :func:`project_root`
(a fresh run folder is :func:`labkit.runner.fresh_run_dir`). papermill, nbconvert and nbformat are imported inside the functions
that use them; ``import labkit.report`` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

from labkit.errors import ConfigError


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding pyproject.toml and data/."""
    here = Path(start or os.getcwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "data").is_dir():
            return p
    raise ConfigError(
        f"no labkit project (a folder with pyproject.toml and data/) at or above {here}"
    )


def project_root(chdir: bool = True) -> Path:
    """Find the project root and, by default, make it the working directory.

    Notebooks call this first so the same relative paths (``data/...``,
    ``outputs/...``) work in JupyterLab (started in notebooks/), under
    papermill from the repository root, and in the report engine.
    """
    root = find_project_root()
    if chdir:
        os.chdir(root)
    return root
