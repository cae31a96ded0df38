"""Reading YAML config files with errors that name the file and line.

Every config labkit reads (pipelines, gates, alert rules, SLOs, rollout
rules, attestations) goes through :func:`read_yaml_text`. It is stricter than
plain YAML: a key given twice in one mapping (the last would silently win) and
a NaN (``.nan``: no threshold, rate or price means that) are errors naming the
file, the line and the key. Merge keys (``<<: *base``) may still be overridden.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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
        data = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass: no arbitrary tags
    except _StrictYAMLError as e:
        raise ConfigError(e.reason, path=str(p), line=e.line, field=e.field) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"malformed YAML: {getattr(e, 'problem', None) or e}", path=str(p), line=line) from None
    return data, text


class _StrictYAMLError(Exception):
    def __init__(self, reason: str, line: int, field: str) -> None:
        super().__init__(reason)
        self.reason, self.line, self.field = reason, line, field


_LOADER: Any = None


def _strict_loader() -> Any:
    """A SafeLoader that refuses duplicate keys, NaN, integers beyond 64 bits and lone surrogates (built
    once, on first use)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import math

    import yaml

    from labkit.io import MAX_JSON_DEPTH

    class StrictLoader(yaml.SafeLoader):
        _root: Any = None
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1  # (the composer recurses: a deep document would exhaust the interpreter)
            try:
                if self._depth > MAX_JSON_DEPTH:
                    raise _StrictYAMLError(f"nested more than {MAX_JSON_DEPTH} levels deep",
                                           self.peek_event().start_mark.line + 1, "")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_document(self, node: Any) -> Any:
            self._root = node
            _refuse_expanding_aliases(node)
            return super().construct_document(node)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        first = seen.get(key)
                        seen.setdefault(key, line)
                    except TypeError:  # an unhashable key: the base class reports it
                        continue
                    if first is not None:
                        raise _StrictYAMLError(
                            f"duplicate key {key!r} (first on line {first}); the last one would silently win",
                            line, ".".join((*_path_to(self._root, node), str(key))))
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_float(self, node: Any) -> Any:
            v = super().construct_yaml_float(node)
            if isinstance(v, float) and math.isnan(v):
                raise _StrictYAMLError("NaN is not a value a config may hold", node.start_mark.line + 1,
                                       ".".join(_path_to(self._root, node)))
            return v

        def construct_yaml_int(self, node: Any) -> Any:
            v = super().construct_yaml_int(node)
            if isinstance(v, int) and not -(2**63) <= v < 2**63:  # (no option is that large: a float of it
                # overflows where the option is read, and a count of it means nothing)
                raise _StrictYAMLError("an integer beyond 64 bits (-2**63 to 2**63 - 1) is no value a config may "
                                       "hold", node.start_mark.line + 1, ".".join(_path_to(self._root, node)))
            return v

        def construct_yaml_str(self, node: Any) -> Any:
            from labkit.io import SURROGATE_REASON, holds_surrogate

            v = super().construct_yaml_str(node)
            if isinstance(v, str) and holds_surrogate(v):  # (YAML's "\\ud800": no text)
                raise _StrictYAMLError(SURROGATE_REASON, node.start_mark.line + 1, ".".join(_path_to(self._root, node)))
            return v

    StrictLoader.add_constructor("tag:yaml.org,2002:str", StrictLoader.construct_yaml_str)
    StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
    StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
    _LOADER = StrictLoader
    return _LOADER


#: Values a document's aliases may expand it to beyond what it writes (and past ten times that).
_ALIAS_BUDGET = 100_000


def _refuse_expanding_aliases(root: Any) -> None:
    """Refuse a document whose aliases expand it past :data:`_ALIAS_BUDGET` values and ten times
    the values it writes (nine aliases of nine aliases ... : a few hundred bytes that read as
    millions of values), or that holds an alias inside its own anchor. Each node is sized once."""
    import yaml

    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        kids = ([n for kv in node.value for n in kv] if isinstance(node, yaml.MappingNode)
                else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise _StrictYAMLError("an alias refers to its own anchor (a value holding itself)",
                                   node.start_mark.line + 1, "")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    if size[id(root)] > max(_ALIAS_BUDGET, 10 * len(size)):
        raise _StrictYAMLError(f"aliases expand this document to {size[id(root)]:,} values ({len(size):,} "
                               "written): more than a config or dataset holds", root.start_mark.line + 1, "")


def _path_to(root: Any, target: Any) -> tuple[str, ...]:
    """The keys (``a.b[2].c``) leading from the document node ``root`` to ``target`` (a walk
    with an explicit stack: a deep document cannot exhaust the interpreter's)."""
    import yaml

    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:
        cur, path = stack.pop()
        if cur is target:
            return path
        if isinstance(cur, yaml.MappingNode):
            stack.extend((v, (*path, str(k.value))) for k, v in cur.value)
        elif isinstance(cur, yaml.SequenceNode):
            for i, v in enumerate(cur.value):
                stack.append((v, (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",)))
    return ()


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


def field_line(text: str, fld: str) -> int | None:
    """The line (1-based) of the value at the dotted field ``fld`` (``checks[1].threshold``) of the
    YAML ``text``, as far down the path as the document goes; None when the text holds no mapping."""
    import re

    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    line = None
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", fld):
        if isinstance(node, yaml.MappingNode) and not step.startswith("["):
            found = next((kv for kv in node.value if getattr(kv[0], "value", None) == step), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and step.startswith("[") and int(step[1:-1]) < len(node.value):
            node = node.value[int(step[1:-1])]
            line = node.start_mark.line + 1
        else:
            break
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) or node.flow_style:
            line = node.start_mark.line + 1
    return line


def check_options_of(factory: Callable[..., Any], cfg: Mapping[str, Any], *, what: str, field: str) -> None:
    """A ConfigError naming an option of ``cfg`` that ``factory`` (what builds ``what`` from its
    config) does not take, with the ones it does, or the options it needs that ``cfg`` lacks (field
    ``{field}.{option}``); a factory taking any keyword is left to check its own."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # (no signature to read)
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    known = [p.name for p in named]
    for key in cfg:
        if key not in known:
            raise ConfigError(f"unknown option {key!r} of {what}", field=f"{field}.{key}", known=known)
    needed = [p.name for p in named if p.default is p.empty and p.name not in cfg]
    if needed:
        raise ConfigError(f"{what} needs the options {', '.join(needed)}", field=field)
