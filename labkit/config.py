"""Reading YAML config files with errors that name the file and line.

Every config labkit reads (pipelines, gates, alert rules, SLOs, rollout
rules, attestations) goes through :func:`read_yaml_text`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError


def read_yaml_text(path: str | os.PathLike[str], *, what: str = "file") -> tuple[Any, str]:
    """(parsed YAML, raw text); ConfigError naming the file (and line) when unreadable."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", path=str(p)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason}", path=str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"malformed YAML: {getattr(e, 'problem', None) or e}", path=str(p), line=line) from None
    return data, text


def read_yaml(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, Any]:
    """A YAML file that must hold a mapping."""
    data, _ = read_yaml_text(path, what=what)
    if not isinstance(data, dict):
        raise ConfigError("must be a YAML mapping", path=str(path))
    return data


def line_of(text: str, needle: str) -> int | None:
    """The first line (1-based) of ``text`` that contains ``needle``, for error locations."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    return None
