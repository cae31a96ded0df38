"""How a run executes: :class:`RunnerConfig` (validated) and where its values come from
(:func:`merge_config`: the pipeline's ``runner:`` section < ``config=`` < ``overrides=``)."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.errors import ConfigError
from labkit.runner.limits import DEFAULT_MAX_OUTPUT_CHARS

#: The keys of the ``mlflow:`` run option (labkit.mlflowlog.log_run's options).
MLFLOW_OPTIONS = ("tracking_uri", "experiment", "gate", "baseline", "artifact_location", "traces")

__all__ = ["DEFAULT_COMPACT_TRACES_BYTES", "EXECUTORS", "MAX_CONCURRENCY", "MIN_RATE_LIMIT", "MLFLOW_OPTIONS",
           "RunnerConfig", "merge_config"]

EXECUTORS = ("local", "dask")
#: The most cases in flight a run may ask for (docs/runner.md "Limits").
MAX_CONCURRENCY = 10_000
#: The lowest rate limit, in requests per second: the longest wait for a token is 1/rate,
#: 1,000 s at this rate (docs/runner.md "Limits").
MIN_RATE_LIMIT = 0.001
#: A run's traces.jsonl from this size on is compacted when the run ends: below it, a query
#: reads the JSONL in well under 0.1 s anyway (docs/runner.md "Trace compaction").
DEFAULT_COMPACT_TRACES_BYTES = 32 * 1024 * 1024
#: The most retries a call may be given (past it a failing endpoint is retried for hours).
MAX_RETRIES = 100


@dataclass
class RunnerConfig:
    """How a run executes. Defaults come from the pipeline config's ``runner:`` section,
    then from this object (fields left at their defaults do not override)."""

    concurrency: int = 8
    rate_limit: float | None = None
    timeout_s: float = 60.0
    retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    cache_dir: str | None = None
    progress: bool | None = None
    executor: str = "local"
    scheduler: str | None = None
    batch_size: int = 64
    seed: int = 0
    #: redaction settings (docs/traces.md) for everything the run writes; None = all on
    redaction: dict[str, Any] | None = None
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    #: log the run to MLflow when it ends (docs/mlflow.md): {tracking_uri, experiment, ...}; None = off
    mlflow: dict[str, Any] | None = None
    #: at the end of the run, compact traces.jsonl to traces.parquet (what queries then read) when
    #: it holds at least this many bytes; 0: always; None: never (docs/runner.md "Trace compaction")
    compact_traces_bytes: int | None = DEFAULT_COMPACT_TRACES_BYTES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, path: str | None = None) -> None:
        def bad(name: str, why: str, known: Sequence[str] | None = None) -> ConfigError:
            return ConfigError(why, path=path, field=f"runner.{name}", known=known)

        if not _int(self.concurrency) or not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise bad("concurrency", f"must be an integer from 1 to {MAX_CONCURRENCY:,}, got {self.concurrency!r}")
        if self.rate_limit is not None and (not _num(self.rate_limit) or self.rate_limit < MIN_RATE_LIMIT):
            raise bad("rate_limit", f"must be a number of requests per second >= {MIN_RATE_LIMIT:g} (one request "
                                    f"per {1 / MIN_RATE_LIMIT:,.0f} s), got {self.rate_limit!r}")
        if not _num(self.timeout_s) or self.timeout_s <= 0:
            raise bad("timeout_s", f"must be a positive number of seconds, got {self.timeout_s!r}")
        if not _int(self.retries) or not 0 <= self.retries <= MAX_RETRIES:
            raise bad("retries", f"must be an integer from 0 to {MAX_RETRIES}, got {self.retries!r}")
        for name in ("backoff_base_s", "backoff_max_s"):
            v = getattr(self, name)
            if not _num(v) or v < 0:
                raise bad(name, f"must be a number >= 0, got {v!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise bad("cache_dir", "must be a folder path")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise bad("progress", "must be true, false or null (auto)")
        if self.executor not in EXECUTORS:
            raise bad("executor", f"unknown executor {self.executor!r}", EXECUTORS)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise bad("scheduler", "must be a scheduler address string")
        if not _int(self.batch_size) or self.batch_size < 1:
            raise bad("batch_size", f"must be an integer >= 1, got {self.batch_size!r}")
        if not _int(self.seed):
            raise bad("seed", f"must be an integer, got {self.seed!r}")
        from labkit.runner.redaction import check_redaction

        check_redaction(self.redaction, path)
        m = self.max_output_chars
        if not _int(m) or m < 1:
            raise bad("max_output_chars", f"must be an integer >= 1, got {m!r}")
        _check_mlflow(self.mlflow, path)
        c = self.compact_traces_bytes
        if c is not None and (not _int(c) or c < 0):
            raise bad("compact_traces_bytes", f"must be an integer >= 0 (0: always) or null (never), got {c!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str | None = None) -> RunnerConfig:
        """Build from a mapping (a ``runner:`` section); unknown keys and bad types are
        ConfigErrors naming the field."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError("must be a mapping", path=path, field="runner")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise ConfigError(f"unknown runner option {key!r}", path=path, field=f"runner.{key}", known=names)
        kw = dict(d)
        for key in ("timeout_s", "backoff_base_s", "backoff_max_s", "rate_limit"):
            v = kw.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                kw[key] = float(v)
        if isinstance(kw.get("cache_dir"), os.PathLike):
            kw["cache_dir"] = os.fspath(kw["cache_dir"])
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            setattr(obj, f.name, kw.get(f.name, f.default))
        obj.validate(path)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def explicit(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what overrides a pipeline's section)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def show_progress(self) -> bool:
        """Auto (None): on in a terminal and in a notebook kernel; off under CI and when
        stderr goes to a file or a pipe (a log full of redraws helps nobody)."""
        if self.progress is not None:
            return self.progress
        if os.environ.get("CI"):
            return False
        return "ipykernel" in sys.modules or sys.stderr.isatty()


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def merge_config(
    pipeline_runner: Mapping[str, Any] | None,
    config: RunnerConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    path: str | None = None,
) -> RunnerConfig:
    """Pipeline ``runner:`` section < ``config`` (its non-default fields, or its keys) < ``overrides``."""
    merged: dict[str, Any] = dict(pipeline_runner or {})
    if isinstance(config, RunnerConfig):
        merged.update(config.explicit())
    elif config is not None:
        merged.update(RunnerConfig.from_dict(config).explicit() | dict(config))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    RunnerConfig.from_dict(given)  # (an override is checked as given: its error names no file it is not in)
    merged.update(given)
    return RunnerConfig.from_dict(merged, path=path)


def _check_mlflow(value: Any, path: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping of MLflow options", path=path, field="runner.mlflow", known=MLFLOW_OPTIONS)
    for k, v in value.items():
        if k not in MLFLOW_OPTIONS:
            raise ConfigError(f"unknown MLflow option {k!r}", path=path, field=f"runner.mlflow.{k}", known=MLFLOW_OPTIONS)
        if k == "traces":
            if not isinstance(v, bool):
                raise ConfigError("must be true or false", path=path, field="runner.mlflow.traces")
        elif v is not None and not isinstance(v, str):
            raise ConfigError("must be a string", path=path, field=f"runner.mlflow.{k}")
