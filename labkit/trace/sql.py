"""The SQL side of the trace store: the column types of the files it reads, quoting, the
confinement of a store's connection to its runs' folders, and running a query with its
errors turned into :class:`~labkit.errors.QueryError`.

duckdb is imported inside the functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, QueryError
from labkit.runs import FEEDBACK, PARQUET, SCORES, TRACES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Explicit column types of a trace record (nested values stay JSON).
TRACE_COLUMNS: dict[str, str] = {
    "schema_version": "INTEGER",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "run_id": "VARCHAR",
    "case_id": "VARCHAR",
    "attempt": "INTEGER",
    "session_id": "VARCHAR",
    "ts_start": "DOUBLE",
    "ts_end": "DOUBLE",
    "operation": "VARCHAR",
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "prompt_version": "VARCHAR",
    "pipeline": "VARCHAR",
    "config_hash": "VARCHAR",
    "status": "VARCHAR",
    "error": "JSON",
    "error_type": "VARCHAR",
    "latency_ms": "DOUBLE",
    "input": "VARCHAR",
    "output": "VARCHAR",
    "retrieved_chunks": "VARCHAR[]",
    "retrieved": "JSON",
    "citations": "VARCHAR[]",
    "tool_calls": "JSON",
    "usage": "STRUCT(input_tokens BIGINT, output_tokens BIGINT)",
    "cost_usd": "DOUBLE",
    "faithfulness": "DOUBLE",
    "scores": "JSON",
    "guardrails": "JSON",
    "feedback": "JSON",
    "environment": "VARCHAR",
    "release": "VARCHAR",
    "tags": "JSON",
    "from_cache": "BOOLEAN",
    "answered_by": "VARCHAR",
    "simulated": "BOOLEAN",
    "spans": "JSON",
}

FEEDBACK_COLUMNS: dict[str, str] = {
    "feedback_id": "VARCHAR",
    "trace_id": "VARCHAR",
    "run_id": "VARCHAR",
    "case_id": "VARCHAR",
    "rating": "DOUBLE",
    "comment": "VARCHAR",
    "user": "VARCHAR",
    "ts": "DOUBLE",
}

TRACES_FILE, PARQUET_FILE, FEEDBACK_FILE, SCORES_FILE = TRACES, PARQUET, FEEDBACK, SCORES  # (labkit.runs)


def duckdb_module() -> Any:
    import duckdb

    return duckdb


def sql_literal(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def sql_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def sql_struct(cols: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in cols.items()) + "}"


def parquet_kv(con: Any, path: Path, key: str) -> str | None:
    """The value of ``key`` in a Parquet file's key-value metadata (None: none, or no such file)."""
    try:
        rows = con.execute("SELECT value FROM parquet_kv_metadata(?) WHERE key = ?", [str(path), key]).fetchall()
    except Exception:
        return None
    if not rows:
        return None
    val = rows[0][0]
    return val.decode(errors="replace") if isinstance(val, bytes | bytearray) else str(val)


def parquet_source_bytes(con: Any, path: Path) -> int | None:
    """The size of the traces.jsonl a run's traces.parquet was made from (None: it records none)."""
    val = parquet_kv(con, path, "labkit_source_bytes")
    try:
        return int(val) if val is not None else None
    except ValueError:
        return None


def confine(con: Any, folders: Iterable[Path]) -> None:
    """From here on a query on ``con`` reads only the given folders: no other file, no
    network, no extension, and no SET that would give any of it back."""
    dirs = sorted({str(d.resolve()) for d in folders})
    con.execute(f"SET allowed_directories = [{', '.join(sql_literal(d + os.sep) for d in dirs)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(con: Any, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """``sql`` on ``con`` as a DataFrame; a refused file access or a bad statement is a QueryError."""
    duckdb = duckdb_module()
    try:
        return con.execute(sql, list(params) if params else None).df()
    except duckdb.PermissionException as e:
        m = re.search(r'Cannot access \w+ "([^"]*)"', str(e))
        what = m.group(1) if m else "a file"
        raise QueryError(f"{what} is outside the runs given: a query reads only their traces, "
                         "feedback, scores and runs", sql) from None
    except duckdb.Error as e:
        raise QueryError(str(e).splitlines()[0], sql) from None


#: The statements a read-only query may start with (the one list: the check and its error name it).
READ_STATEMENTS = ("SELECT", "WITH", "DESCRIBE", "SUMMARIZE", "SHOW", "PIVOT", "UNPIVOT", "FROM")
#: What the database parses them as: a SELECT, or a PIVOT of values it finds (several steps).
_READ_KINDS = ("SELECT", "MULTI")
_WORD = re.compile(r"\w+")


def check_read_only(sql: str) -> None:
    """Refuse ``sql`` unless the database parses it as one statement that reads: of a read kind,
    its first word (after any comments, which nest) one of :data:`READ_STATEMENTS`. A ConfigError
    naming the field ``sql``; a QueryError with the parser's message for a text it cannot parse.

    The database's own parser and tokenizer decide, not a pattern: they read comments, quotes and
    statement breaks as the query will be run."""
    duckdb = duckdb_module()
    con = duckdb.connect()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(str(e).splitlines()[0], sql) from None
    finally:
        con.close()
    at = next((at for at, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment), None)
    word = _WORD.match(sql, at) if at is not None else None
    first = word.group() if word else ""
    if not (len(statements) == 1 and statements[0].type.name in _READ_KINDS and first.upper() in READ_STATEMENTS):
        raise ConfigError(f"only one read-only statement ({', '.join(READ_STATEMENTS)})", field="sql")
