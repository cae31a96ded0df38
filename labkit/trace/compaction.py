"""Compaction: a run's traces.jsonl to traces.parquet beside it (read by the store while it is
up to date with the JSONL), or many runs into one Parquet archive."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from labkit.errors import ConfigError
from labkit.io import atomic_path
from labkit.trace.sql import PARQUET_FILE, TRACES_FILE, sql_literal
from labkit.trace.store import TraceStore


def compact(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    compression: str = "zstd",
) -> list[Path]:
    """Compact traces to Parquet.

    Without ``out``: each run directory's ``traces.jsonl`` becomes
    ``traces.parquet`` beside it (the JSONL stays; the store reads the Parquet
    while it is up to date — its metadata records the JSONL size it was made
    from). With ``out``: every source goes into that one Parquet file (an
    archive of a long history). Returns the files written.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    srcs = [Path(s) for s in sources]
    if compression not in ("zstd", "snappy", "gzip", "uncompressed"):
        raise ConfigError(f"unknown compression {compression!r}", field="compression",
                          known=["zstd", "snappy", "gzip", "uncompressed"])
    written: list[Path] = []
    if out is not None:
        with TraceStore(srcs, confine=False) as st:  # writes the archive; runs no user SQL
            _copy(st, Path(out), compression, None)
        written.append(Path(out))
        return written
    for src in srcs:
        run = src if src.is_dir() else src.parent
        jl = run / TRACES_FILE
        if not jl.exists():
            raise ConfigError(f"{run}: no {TRACES_FILE} to compact", field="run_dirs")
        size = jl.stat().st_size
        with TraceStore([jl], confine=False) as st:
            _copy(st, run / PARQUET_FILE, compression, size)
        written.append(run / PARQUET_FILE)
    return written


def _copy(st: TraceStore, dest: Path, compression: str, source_bytes: int | None) -> None:
    meta = f", KV_METADATA {{labkit_source_bytes: '{source_bytes}'}}" if source_bytes is not None else ""
    with atomic_path(dest) as tmp:
        st.con.execute(
            f"COPY (SELECT * FROM traces_raw ORDER BY run_dir, ts_start) TO {sql_literal(str(tmp))} "
            f"(FORMAT parquet, COMPRESSION {compression}{meta})"
        )
