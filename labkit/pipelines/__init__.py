"""The ``Pipeline`` protocol, the registry of pipeline types, and loading.

A pipeline is any callable that takes an :class:`~labkit.cases.EvalCase` and
returns a mapping with the fields of a results line it knows (``answer`` at
least). ``async def`` callables are awaited by the runner. A plain function is
enough::

    def my_pipeline(case):
        return {"answer": call_my_model(case.question)}

YAML configs name a registered ``type`` (``rag`` for the offline reference
pipeline, ``http`` and ``rag+http`` for OpenAI-compatible endpoints) and may
carry a ``runner:`` section (timeouts, retries, concurrency) and a
``fallback:`` (a path to another config, or an inline config).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import inspect
import json
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from labkit.config import read_yaml
from labkit.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from labkit.cases import EvalCase

PipelineOutput = Mapping[str, Any]


@runtime_checkable
class Pipeline(Protocol):
    """What a user's pipeline implements: ``pipeline(case) -> mapping`` (sync or async)."""

    def __call__(self, case: EvalCase) -> PipelineOutput | Awaitable[PipelineOutput]: ...


Factory = Callable[..., Callable[..., Any]]
PIPELINE_TYPES: dict[str, Factory] = {}
_BUILTIN_MODULES = {"rag": "labkit.pipelines.rag", "http": "labkit.pipelines.http", "rag+http": "labkit.pipelines.http"}
# Keys of a pipeline config that do not change what the pipeline answers.
NON_BEHAVIOURAL_KEYS = ("runner", "fallback", "description", "name")


def register_pipeline(type_name: str) -> Callable[[Factory], Factory]:
    """Register a factory ``factory(config, *, base_dir, corpus_dir) -> callable`` under ``type``."""

    def deco(factory: Factory) -> Factory:
        PIPELINE_TYPES[type_name] = factory
        return factory

    return deco


def config_hash(config: Mapping[str, Any], corpus_fingerprint: str | None = None) -> str:
    """sha256 (first 16 hex) of the behavioural part of a config, canonical JSON, and of the
    corpus the pipeline retrieves from (its content, not its path)."""
    core = {k: v for k, v in config.items() if k not in NON_BEHAVIOURAL_KEYS}
    if corpus_fingerprint is not None:
        core = {**core, "corpus": corpus_fingerprint}
    blob = json.dumps(core, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class LoadedPipeline:
    """A pipeline ready to run, with the config and hash the manifest records."""

    name: str
    fn: Callable[..., Any]
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    fallback: LoadedPipeline | None = None
    runner: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def is_async(self) -> bool:
        fn = self.fn
        call = getattr(fn, "__call__", None)  # noqa: B004 - we need the bound __call__ of objects
        return inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))

    def __call__(self, case: EvalCase) -> Any:
        return self.fn(case)


def _factory(type_name: str, path: str | None) -> Factory:
    if type_name not in PIPELINE_TYPES and type_name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[type_name])
    if type_name not in PIPELINE_TYPES:
        known = sorted(set(PIPELINE_TYPES) | set(_BUILTIN_MODULES))
        raise ConfigError(f"unknown pipeline type {type_name!r}", path=path, field="type", known=known)
    return PIPELINE_TYPES[type_name]


def from_config(
    config: Mapping[str, Any],
    *,
    base_dir: str | Path = ".",
    corpus_dir: str | None = None,
    path: str | None = None,
    _chain: tuple[str, ...] = (),
    _inline: bool = False,
) -> LoadedPipeline:
    """Build a pipeline from a config mapping (the parsed YAML). A fallback chain that
    comes back to a config it started from (A→A, A→B→A) is a ConfigError naming the files."""
    me = _chain_id(config, path, _inline)
    if me in _chain:
        names = [c.split("\0", 1)[1] for c in (*_chain, me)]
        raise ConfigError(f"fallback chain loops: {' -> '.join(names)}", path=path, field="fallback")
    _chain = (*_chain, me)
    cfg = dict(config)
    if "redaction" in cfg:
        raise ConfigError("redaction settings are run options: put them under runner: (runner.redaction), "
                          "or pass them to labkit run (docs/runner.md)", path=path, field="redaction")
    type_name = cfg.get("type")
    if not isinstance(type_name, str):
        raise ConfigError("missing pipeline type", path=path, field="type",
                          known=sorted(set(PIPELINE_TYPES) | set(_BUILTIN_MODULES)))
    runner = cfg.get("runner") or {}
    if not isinstance(runner, dict):
        raise ConfigError("must be a mapping", path=path, field="runner")
    base = Path(base_dir)
    factory = _factory(type_name, path)
    extra = {"path": path} if "path" in inspect.signature(factory).parameters else {}
    fn = factory(cfg, base_dir=base, corpus_dir=corpus_dir, **extra)
    fallback = None
    fb = cfg.get("fallback")
    if fb is not None:
        if isinstance(fb, str):
            fb_path = (base / fb) if not Path(fb).is_absolute() else Path(fb)
            if not fb_path.is_file():
                raise ConfigError(f"fallback config {str(fb_path)!r} not found", path=path, field="fallback")
            fallback = from_config(read_yaml(fb_path), base_dir=fb_path.parent, corpus_dir=corpus_dir,
                                   path=str(fb_path), _chain=_chain)
        elif isinstance(fb, dict):
            try:
                fallback = from_config(fb, base_dir=base, corpus_dir=corpus_dir, path=path, _chain=_chain,
                                       _inline=True)
            except ConfigError as e:  # (its fields are under fallback: in this file)
                if e.path != path or not e.field:
                    raise
                raise ConfigError(e.message, path=e.path, line=e.line, field=f"fallback.{e.field}",
                                  known=e.known) from None
        else:
            raise ConfigError("must be a config path or mapping", path=path, field="fallback")
    name = str(cfg.get("name") or (Path(path).stem if path else type_name))
    corpus = getattr(fn, "corpus", None) or getattr(getattr(fn, "retriever", None), "corpus", None)
    fp = getattr(corpus, "fingerprint", None)
    if corpus_dir is not None:  # record the corpus actually used, so a rescore finds it
        cfg["corpus"] = str(Path(corpus_dir).resolve())
    return LoadedPipeline(name, fn, cfg, config_hash(cfg, fp if isinstance(fp, str) else None), fallback,
                          dict(runner), path)


def _located(err: ConfigError) -> ConfigError:
    """``err`` with the line of its field in its config file (``headers.X-Team``), when it names
    a field of a file and no line yet (``err`` as it is otherwise)."""
    from labkit.config import field_line

    if err.line is not None or not err.field or not err.path:
        return err
    try:
        line = field_line(Path(err.path).read_text(encoding="utf-8"), err.field)
    except (OSError, UnicodeDecodeError):
        return err
    if line is None:
        return err
    return ConfigError(err.message, path=err.path, line=line, field=err.field, known=err.known)


def _chain_id(config: Mapping[str, Any], path: str | None, inline: bool) -> str:
    """Identity of a config in a fallback chain: its file, or (inline) the mapping object;
    after a NUL, the name an error shows."""
    if path is not None and not inline:
        return f"{Path(path).resolve()}\0{path}"
    return f"inline:{id(config)}\0{path + ' (inline fallback)' if path else 'inline fallback'}"


def _import_error(mod_name: str, exc: BaseException) -> PipelineError:
    """One line naming the module and what went wrong, secrets redacted."""
    from labkit.trace.redact import Redactor

    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename).name}, line {exc.lineno})" if exc.filename else ""
        what = f"SyntaxError: {exc.msg}{where}"
    else:
        try:
            msg = str(exc)
        except Exception:
            msg = ""
        what = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    what = " ".join(what.split())  # one line
    red = Redactor().redact_text(what)[0]
    return PipelineError(f"cannot import pipeline module {mod_name!r}: {red[:500]}")


def _callable_config(qual: str, fn: Any) -> dict[str, Any]:
    """The config of a callable pipeline: its name and ``source_sha256``, the sha256 of its code
    (:func:`code_sha256`), so that its config hash — what the result cache and resume recognise
    a finished case by — changes when its code is edited. A callable whose source cannot be read
    is hashed by its name only (``source_sha256`` null), with a warning saying so."""
    digest = code_sha256(fn)
    if digest is None:
        warnings.warn(f"pipeline {qual}: the source of its code cannot be read, so its config hash covers its "
                      "name only: the result cache and resume cannot tell an edit of its code (docs/runner.md)",
                      stacklevel=4)
    return {"type": "callable", "callable": qual, "source_sha256": digest}


def code_sha256(fn: Any) -> str | None:
    """sha256 of the code a callable runs: the source file of the module it is defined in (a
    class instance: its class's; a partial: its function's), else (a module without a file, e.g.
    a notebook's) the callable's own source; None when neither can be read."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isroutine(target) or inspect.isclass(target)):
        target = type(target)
    file = getattr(inspect.getmodule(target), "__file__", None)
    if isinstance(file, str):
        with contextlib.suppress(OSError):
            from labkit.io import file_hash

            return file_hash(file)
    try:
        return hashlib.sha256(inspect.getsource(target).encode("utf-8", "surrogatepass")).hexdigest()
    except (OSError, TypeError):
        return None


def load_pipeline(
    spec: str | Path | Callable[..., Any] | LoadedPipeline,
    corpus_dir: str | None = None,
) -> LoadedPipeline:
    """A pipeline from a YAML config path, a ``module:callable`` import path, or a callable."""
    if isinstance(spec, LoadedPipeline):
        return spec
    if callable(spec) and not isinstance(spec, (str, Path)):
        name = getattr(spec, "__name__", type(spec).__name__)
        qual = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', name)}"
        cfg = _callable_config(qual, spec)
        return LoadedPipeline(name, spec, cfg, config_hash(cfg))
    s = str(spec)
    if s.endswith((".yaml", ".yml")) or Path(s).is_file():
        p = Path(s)
        cfg = read_yaml(p)
        try:
            return from_config(cfg, base_dir=p.parent, corpus_dir=corpus_dir, path=str(p))
        except ConfigError as e:
            raise _located(e) from None
    if ":" in s:
        mod_name, _, attr = s.partition(":")
        # like `python -m`: a module in the current folder is importable without PYTHONPATH
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            mod = importlib.import_module(mod_name)
        except (Exception, SystemExit, KeyboardInterrupt) as e:  # ImportError, SyntaxError, a module that exits
            raise _import_error(mod_name, e) from None
        obj: Any = mod
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise PipelineError(f"module {mod_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not callable(obj):
            raise PipelineError(f"{s} is not callable")
        cfg = _callable_config(s, obj)
        return LoadedPipeline(attr, obj, cfg, config_hash(cfg))
    raise ConfigError(
        "pipeline must be a YAML config file or an import path 'package.module:callable'",
        path=s,
    )


__all__ = [
    "PIPELINE_TYPES",
    "LoadedPipeline",
    "Pipeline",
    "code_sha256",
    "config_hash",
    "from_config",
    "load_pipeline",
    "read_yaml",
    "register_pipeline",
]
