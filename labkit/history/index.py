"""The run-history index: one embedded DuckDB file over many run directories.

For every run directory given, the index keeps what its manifest says (run id, time,
dataset fingerprint, prompt version, model, config hash), every metric of its
metrics.json with the interval, and the result of the release gate's absolute checks.
It is updated incrementally: a run whose manifest.json and metrics.json (and the gate
file) hash as they did when it was indexed is not read again; a changed one is replaced.

A run is held under its resolved path (``path``), or, when redaction would change the path (a
folder named by an e-mail address), under the redacted path and a hash of the real one
(:func:`labkit.trace.keys.redacted_key`): nothing secret reaches the file, and the history
reads each run back by the path it was given.

Tables (``schema_version`` in ``meta``)::

    runs(path, run_id, created_at, dataset_fingerprint, dataset_path, n_cases, pipeline,
         prompt_version, model, config_hash, metrics_schema_version, gate, gate_passed,
         gate_failed, files_hash, indexed_at)
    metrics(path, metric, stage, direction, value, ci_low, ci_high, n, interval)
    comparisons(pair_key, base_path, path, metric, verdict, delta, ci_low, ci_high,
                p_adjusted, n)      -- cached paired comparisons of consecutive runs
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, RunDirError
from labkit.trace.keys import redacted_key
from labkit.trace.redact import Redactor

#: the layout of the index file; a file of another version is rebuilt, not misread
INDEX_SCHEMA_VERSION = 5

#: the history's time order: by the manifest's created_at (its instant in UTC: io.utc_time),
#: ties by run id; runs that record no created_at after every dated run, by run id; the path (its key) last
#: (two runs can share a run id), so the order never depends on the order the paths are given in
RUN_ORDER = "created_at ASC NULLS LAST, run_id, path"

_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS runs (path VARCHAR PRIMARY KEY, run_id VARCHAR, created_at VARCHAR, "
    "dataset_fingerprint VARCHAR, dataset_path VARCHAR, n_cases INTEGER, pipeline VARCHAR, "
    "prompt_version VARCHAR, model VARCHAR, config_hash VARCHAR, metrics_schema_version INTEGER, "
    "gate VARCHAR, gate_passed BOOLEAN, gate_failed VARCHAR, status VARCHAR, n_missing INTEGER, "
    "files_hash VARCHAR, indexed_at VARCHAR, created_at_given VARCHAR)",
    "CREATE TABLE IF NOT EXISTS metrics (path VARCHAR, metric VARCHAR, stage VARCHAR, direction VARCHAR, "
    "value DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n INTEGER, interval VARCHAR)",
    "CREATE TABLE IF NOT EXISTS comparisons (pair_key VARCHAR, base_path VARCHAR, path VARCHAR, "
    "metric VARCHAR, verdict VARCHAR, delta DOUBLE, ci_low DOUBLE, ci_high DOUBLE, p_adjusted DOUBLE, "
    "n INTEGER)",
)


@dataclass(kw_only=True)
class IndexUpdate:
    """What one update did: run paths added, updated (changed files), unchanged (not re-read),
    the paths skipped with the reason (not a scored run directory), and the scored runs refused
    with the reason (files that are not what their scoring wrote: never in the index)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [*self.added, *self.updated, *self.unchanged]

    def summary(self) -> str:
        s = (f"index: {len(self.added)} run(s) added, {len(self.updated)} updated, "
             f"{len(self.unchanged)} unchanged")
        s += f", {len(self.skipped)} path(s) skipped (not a scored run)" if self.skipped else ""
        return s + (f", {len(self.refused)} run(s) refused (not verified)" if self.refused else "")


def connect(db_path: str | os.PathLike[str]) -> Any:
    """Open (or create) the index file; an index of another layout version is emptied first."""
    from labkit.trace.sql import duckdb_module

    p = Path(db_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    duckdb = duckdb_module()
    made = not p.exists()
    try:
        con = duckdb.connect(str(p), config={"autoinstall_known_extensions": False})
    except duckdb.Error as e:
        raise ConfigError(f"cannot open the history index: {str(e).splitlines()[0]}", path=str(p)) from None
    if con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0] is None:
        con.close()  # (a .json, .csv or .parquet path opens an in-memory database over that file: nothing kept)
        raise ConfigError("not a history index: the index is a DuckDB file of its own (e.g. history.duckdb)",
                          path=str(p), field="--index")
    if made:  # (the database makes its file as the umask says: owner-only, as every file labkit writes)
        os.chmod(p, 0o600)
    for ddl in _DDL:
        con.execute(ddl)
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or row[0] != str(INDEX_SCHEMA_VERSION):
        for t in ("runs", "metrics", "comparisons"):
            con.execute(f"DELETE FROM {t}")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(INDEX_SCHEMA_VERSION)])
    return con


def files_hash(run_dir: Path, gate_hash: str | None) -> str:
    """sha256 over manifest.json, the files scoring read and wrote (results.jsonl, scores.csv,
    metrics.json) and the gate file's hash: what the index key covers, so that a run whose scores
    change is read (and verified) again, and its cached comparisons are not reused."""
    from labkit.io import file_hash
    from labkit.scoring import SCORED_FILES

    h = hashlib.sha256()
    for name in ("manifest.json", *SCORED_FILES):
        f = run_dir / name
        h.update(name.encode() + b"\0" + (file_hash(f).encode() if f.is_file() else b"") + b"\0")
    h.update((gate_hash or "").encode())
    return h.hexdigest()


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _num(x: Any) -> float | None:
    import math

    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(float(x)) else None


def _mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _run_row(path: str, rd: Any, man: Mapping[str, Any], version: int) -> dict[str, Any]:
    from labkit.io import utc_time

    scoring = _mapping(man.get("scoring"))
    ds = rd.scored_dataset
    pipe = _mapping(man.get("pipeline"))
    cfg = _mapping(pipe.get("config"))
    model = _mapping(cfg.get("model"))
    given = man.get("created_at")
    created = utc_time(given)
    return {
        "path": path, "run_id": rd.run_id, "created_at": created,
        "created_at_given": given if isinstance(given, str) and given and created is None else None,
        "dataset_fingerprint": _str(ds.get("fingerprint")), "dataset_path": _str(ds.get("path")),
        "n_cases": ds.get("n_cases") if isinstance(ds.get("n_cases"), int) else None,
        "pipeline": _str(pipe.get("name")), "prompt_version": _str(cfg.get("prompt_version")),
        "model": _str(model.get("name")) or _str(cfg.get("model")), "config_hash": _str(pipe.get("config_hash")),
        "metrics_schema_version": version, "status": _str(man.get("status")),
        "n_missing": scoring.get("n_missing") if isinstance(scoring.get("n_missing"), int) else None,
    }


def _read_run(path: str, gate: Any, key: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The runs row and the metrics rows of the scored run directory at ``path``, under ``key``
    (its :func:`labkit.trace.keys.redacted_key`; parsed: the costly part); a RunDirError when its
    files are not what its scoring wrote."""
    from labkit.metrics.schema import metrics_schema_version
    from labkit.runs import RunDir
    from labkit.scoring import verify_scored

    rd = RunDir(path)
    verify_scored(rd)
    man = rd.manifest
    metrics = rd.metrics()
    version = metrics_schema_version(metrics, path=str(rd.metrics_path))
    row = _run_row(key, rd, man, version)
    entries = _mapping(metrics.get("metrics"))
    mrows = []
    for name, e in entries.items():
        if isinstance(e, Mapping):
            mrows.append((key, str(name), _str(e.get("stage")), _str(e.get("direction")), _num(e.get("value")),
                          _num(e.get("ci_low")), _num(e.get("ci_high")),
                          e.get("n") if isinstance(e.get("n"), int) else None, _str(e.get("interval"))))
    row.update(gate=None, gate_passed=None, gate_failed=None)
    if gate is not None:
        rep = gate.thresholds_only().evaluate(rd)  # (as labkit gate --thresholds-only: the judge checked too)
        row.update(gate=gate.name, gate_passed=bool(rep.passed), gate_failed="; ".join(c.name for c in rep.failed))
    row = Redactor().redact(row)  # a secret pasted into a manifest field stays off the index
    return {**row, "path": key}, mrows  # (the key as it is: it joins the metrics rows)


def _skip_reason(p: Path) -> str | None:
    if not p.is_dir():
        return "not a directory"
    if not (p / "metrics.json").is_file():
        return "no metrics.json (not scored)"
    if not (p / "manifest.json").is_file():
        return "no manifest.json"
    return None


def update_index(
    run_dirs: Iterable[str | os.PathLike[str]],
    db_path: str | os.PathLike[str],
    *,
    gate: str | os.PathLike[str] | None = None,
) -> IndexUpdate:
    """Bring the index at ``db_path`` up to date with ``run_dirs``; returns what changed.

    A path that does not exist is a RunDirError; a directory that is not a scored run
    (a glob such as ``outputs/runs/*/*`` also matches other folders) is skipped and named.
    """
    from labkit.gate import Gate
    from labkit.io import file_hash

    g = Gate.load(gate) if gate is not None else None
    gate_hash = file_hash(gate) if gate is not None else None
    out = IndexUpdate()
    con = connect(db_path)
    try:
        for raw in run_dirs:
            p = Path(raw)
            if not p.exists():
                raise RunDirError(f"{p}: no such run directory")
            why = _skip_reason(p)
            path = str(p.resolve())
            if why:
                out.skipped[str(p)] = why
                continue
            key, files = redacted_key(path), files_hash(p, gate_hash)
            old = con.execute("SELECT files_hash FROM runs WHERE path = ?", [key]).fetchone()
            if old is not None and old[0] == files:
                out.unchanged.append(path)
                continue
            try:
                row, mrows = _read_run(path, g, key)
            except RunDirError as e:
                out.refused[str(p)] = str(e)
                _forget(con, key)
                continue
            row.update(files_hash=files, indexed_at=datetime.now(UTC).isoformat(timespec="seconds"))
            _replace(con, row, mrows)
            (out.added if old is None else out.updated).append(path)
    finally:
        con.close()
    return out


def _forget(con: Any, key: str) -> None:
    """A run's rows and the comparisons it is in, out of the index (a run refused now)."""
    for sql in ("DELETE FROM runs WHERE path = ?", "DELETE FROM metrics WHERE path = ?",
                "DELETE FROM comparisons WHERE path = ? OR base_path = ?"):
        con.execute(sql, [key] * sql.count("?"))


def _replace(con: Any, row: Mapping[str, Any], mrows: list[tuple[Any, ...]]) -> None:
    path = row["path"]
    con.execute("BEGIN TRANSACTION")
    try:
        _forget(con, path)
        cols = list(row)
        con.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols])
        if mrows:
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", mrows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def read_index(db_path: str | os.PathLike[str], paths: Iterable[str]) -> tuple[Any, Any]:
    """(runs frame, metrics frame) of the given resolved run paths, from the index (``path``: the
    path given, whatever key the index holds it under)."""
    con = connect(db_path)
    try:
        wanted = {redacted_key(p): p for p in dict.fromkeys(paths)}
        con.execute("CREATE TEMP TABLE wanted (path VARCHAR)")
        if wanted:
            con.executemany("INSERT INTO wanted VALUES (?)", [[k] for k in wanted])
        runs = con.execute(f"SELECT r.* FROM runs r JOIN wanted USING (path) ORDER BY {RUN_ORDER}").df()
        metrics = con.execute("SELECT m.* FROM metrics m JOIN wanted USING (path)").df()
    finally:
        con.close()
    for frame in (runs, metrics):
        frame["path"] = frame["path"].map(wanted)
    return runs, metrics


def cached_comparison(db_path: str | os.PathLike[str], pair_key: str) -> list[dict[str, Any]] | None:
    """The metric rows of a cached comparison, or None when it was never made."""
    con = connect(db_path)
    try:
        df = con.execute("SELECT * FROM comparisons WHERE pair_key = ?", [pair_key]).df()
    finally:
        con.close()
    if df.empty:
        return None
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in df.to_dict("records")]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def store_comparison(db_path: str | os.PathLike[str], pair_key: str, rows: list[dict[str, Any]]) -> None:
    con = connect(db_path)
    try:
        con.execute("DELETE FROM comparisons WHERE pair_key = ?", [pair_key])
        cols = ("pair_key", "base_path", "path", "metric", "verdict", "delta", "ci_low", "ci_high",
                "p_adjusted", "n")
        keyed = [{**r, "base_path": redacted_key(str(r.get("base_path"))), "path": redacted_key(str(r.get("path")))}
                 for r in rows]
        con.executemany(f"INSERT INTO comparisons VALUES ({', '.join('?' * len(cols))})",
                        [[pair_key, *(r.get(c) for c in cols[1:])] for r in keyed])
    finally:
        con.close()


def pair_key(base_hash: str, hash_: str, seed: int) -> str:
    return hashlib.sha256(json.dumps([base_hash, hash_, seed]).encode()).hexdigest()
