"""The parameters of a report build: the parameters file, each notebook's share of it, and the
checks (unknown names, wrong types) that fail before any kernel starts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameters file (YAML or JSON): ``{all: {...}, <notebook stem>: {...}}``.

    A mapping without notebook-looking keys is taken as parameters for all notebooks.
    """
    from labkit.config import read_yaml_text

    p = Path(path)
    data, text = read_yaml_text(p, what="parameters file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of notebook name to parameters", path=str(p))
    check_sections(data, path=str(p), lines=_key_lines(text, len(data)))
    return data


def _key_lines(text: str, n_keys: int) -> list[int] | None:
    """The line of each top-level key of a parameters file, in order (None when not known)."""
    import yaml

    try:
        node = yaml.SafeLoader(text).get_single_node()
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode) or len(node.value) != n_keys:
        return None  # (a merge key, say: the keys read are not the keys written)
    return [k.start_mark.line + 1 for k, _ in node.value]


def _is_sectioned(params: Mapping[str, Any]) -> bool:
    """A file with sections (``all``, ``*`` or a notebook's ``NN`` name), else one flat mapping."""
    return any(k in ("all", "*") or k[:2].isdigit() for k in params)


def check_sections(params: Mapping[Any, Any], *, path: str | None = None, lines: list[int] | None = None) -> None:
    """Every top-level key is a name; in a file with sections, every section is a mapping (or empty).

    YAML reads an unquoted ``02:`` as the number 2, which names no notebook: the key must be
    quoted (``'02':``). A section that is no mapping (``00_quick_lab: [1]``) gives no parameter.
    """
    keys = list(params)
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            hint = f"{key:02d}" if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 100 else key
            what = ("a boolean" if isinstance(key, bool) else "a number" if isinstance(key, int | float)
                    else "null" if key is None else f"a {type(key).__name__}")
            raise ConfigError(f"section key {key!r} is {what}, not a notebook name (YAML reads an unquoted "
                              f"02 as the number 2): quote it, '{hint}'",
                              path=path, line=lines[i] if lines else None, field=str(key))
    if not _is_sectioned(params):
        return
    for i, (key, section) in enumerate(params.items()):
        if section is not None and not isinstance(section, Mapping):
            beside = "" if key in ("all", "*") or key[:2].isdigit() else (
                " (a file with sections, 'all' or a notebook's name, takes parameters only inside them)")
            raise ConfigError(f"section {key!r} must be a mapping of parameter name to value, got "
                              f"{type(section).__name__} {section!r}{beside}", path=path,
                              line=lines[i] if lines else None, field=key)


BATCH_DEFAULTS: dict[str, Any] = {"interactive": False}


def params_for(nb_path: Path, params: Mapping[str, Any] | None, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The batch defaults a notebook declares (``interactive=False``), then the given parameters."""
    base = {k: v for k, v in BATCH_DEFAULTS.items() if k in declared}
    return {**base, **_given_params_for(nb_path, params, declared)}


def _given_params_for(nb_path: Path, params: Mapping[str, Any] | None, declared: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the parameters of one notebook from the ``all`` section and its own section."""
    if not params:
        return {}
    check_sections(params)
    sectioned = _is_sectioned(params)
    out: dict[str, Any] = {}
    if not sectioned:
        # One flat mapping for every notebook: each takes the names it declares.
        return {k: v for k, v in params.items() if k in declared}
    for key in ("all", "*"):
        section = params.get(key) or {}
        out.update({k: v for k, v in section.items() if k in declared})
    for key, section in params.items():
        if key in ("all", "*") or section is None:
            continue
        if key == nb_path.stem or key == nb_path.stem.split("_", 1)[0]:
            unknown = sorted(set(section) - set(declared))
            if unknown:
                raise ConfigError(
                    f"{nb_path.name} declares no parameter {', '.join(map(repr, unknown))}",
                    field=key,
                    known=sorted(declared),
                )
            out.update(section)
    return out


_TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}


def check_types(nb_path: Path, given: Mapping[str, Any], declared: Mapping[str, Any]) -> None:
    """A value of the wrong type (a quoted number, say) fails before any kernel starts."""
    for name, value in given.items():
        want = str((declared.get(name) or {}).get("inferred_type_name") or "")
        types = _TYPES.get(want)
        if types is None or value is None:
            continue
        if (isinstance(value, bool) and want != "bool") or not isinstance(value, types):
            raise ConfigError(f"{nb_path.name} declares {name}: {want}, got {value!r}", field=name)


def check_section_names(params: Mapping[Any, Any] | None, notebooks: Sequence[Path]) -> None:
    """A section named for no notebook there is (by stem or ``NN`` prefix) is a typo: a ConfigError
    naming it, not parameters dropped without a word (a notebook left out by ``only`` still counts)."""
    if not params or not _is_sectioned(params):
        return
    names = {n for p in notebooks for n in (p.stem, p.stem.split("_", 1)[0])}
    for key in params:
        if key not in ("all", "*") and key not in names:
            raise ConfigError(f"section {key!r} names no notebook", field=str(key),
                              known=sorted(p.stem for p in notebooks))


def check_shared_names(params: Mapping[str, Any] | None, declared_by: Mapping[Path, Mapping[str, Any]]) -> None:
    """A name in the ``all`` section (or a flat mapping) that no notebook declares is a typo."""
    if not params:
        return
    check_sections(params)
    sectioned = _is_sectioned(params)
    shared: dict[str, Any] = {}
    for key in ("all", "*") if sectioned else ():
        shared.update(params.get(key) or {})
    if not sectioned:
        shared = dict(params)
    known = sorted({n for d in declared_by.values() for n in d})
    unknown = sorted(set(shared) - set(known))
    if unknown:
        raise ConfigError(f"no notebook declares {', '.join(map(repr, unknown))}", field="all", known=known)

