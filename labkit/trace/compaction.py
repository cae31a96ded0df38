"""Compaction: a run's traces.jsonl to traces.parquet beside it (read by the store while it is
up to date with the JSONL), or many runs into one Parquet archive."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from labkit.errors import ConfigError
from labkit.io import atomic_path
from labkit.trace.fields import SCHEMA_DIGEST
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

    A run's own Parquet holds no ``run_dir`` (the store takes it from the folder, as for the
    JSONL); an archive holds each run folder's name, or, when redaction would change the name
    (a folder named by an e-mail address), :func:`labkit.trace.keys.redacted_key` of it.
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
    """traces_raw into ``dest``: a run's own file (``source_bytes`` given) without run_dir, an
    archive with each run_dir as :func:`_run_dir_names` writes it."""
    size = f", labkit_source_bytes: '{source_bytes}'" if source_bytes is not None else ""
    meta = f", KV_METADATA {{labkit_trace_schema: '{SCHEMA_DIGEST}'{size}}}"  # (read through this schema)
    run_dir = "CAST(NULL AS VARCHAR)" if source_bytes is not None else _run_dir_names(st)
    with atomic_path(dest) as tmp:
        st.con.execute(
            f"COPY (SELECT * REPLACE ({run_dir} AS run_dir) FROM traces_raw ORDER BY traces_raw.run_dir, ts_start) "
            f"TO {sql_literal(str(tmp))} (FORMAT parquet, COMPRESSION {compression}{meta})"
        )


def _run_dir_names(st: TraceStore) -> str:
    """The SQL of run_dir as an archive holds it: the folder's name, or its redacted key when
    redaction would change the name."""
    from labkit.trace.keys import redacted_key

    names = [r[0] for r in st.con.execute("SELECT DISTINCT run_dir FROM traces_raw").fetchall() if r[0] is not None]
    changed = [(n, k) for n, k in ((n, redacted_key(n)) for n in names) if k != n]
    if not changed:
        return "run_dir"
    whens = " ".join(f"WHEN {sql_literal(n)} THEN {sql_literal(k)}" for n, k in changed)
    return f"CASE run_dir {whens} ELSE run_dir END"
