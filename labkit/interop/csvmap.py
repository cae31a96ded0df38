"""Any CSV with a column mapping: ``--map question=Question,reference_answer=Answer,...`` or
a YAML file ``{labkit_field: column}``. List fields (must_include, must_not_include,
expected_chunks, reference_contexts, retrieved_contexts) read a JSON list or ``;``-separated
text; answer, retrieved_contexts, latency_ms, cost_usd, status and error make a results line.
Unmapped columns are kept in metadata. Field by field: docs/interop.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.interop.core import FieldLog, Record, read_rows
from labkit.interop.values import number, opt_text, text_list, token_count, usage

__all__ = ["TARGETS", "parse_mapping", "read"]

CASE_TEXT = ("id", "question", "expected_source", "reference_answer")
CASE_LISTS = ("expected_chunks", "must_include", "must_not_include")
RESULT_FIELDS = ("answer", "retrieved_contexts", "latency_ms", "cost_usd", "status", "error", "input_tokens",
                 "output_tokens")
TARGETS = (*CASE_TEXT, *CASE_LISTS, "reference_contexts", "category", "risk", "kind", *RESULT_FIELDS)


def parse_mapping(spec: str | dict[str, Any] | None) -> dict[str, str]:
    """``field=Column,...`` or a YAML file path as {labkit field: column}; unknown fields are errors."""
    if spec is None:
        raise ConfigError("csv import needs a column mapping: --map question=COLUMN,...", field="--map",
                          known=TARGETS)
    if isinstance(spec, dict):
        raw = spec
    elif Path(spec).suffix.lower() in (".yaml", ".yml"):
        from labkit.config import read_yaml

        raw = read_yaml(spec)
    else:
        raw = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, col = part.partition("=")
            if not sep or not key.strip() or not col.strip():
                raise ConfigError(f"must be FIELD=COLUMN, got {part!r}", field="--map")
            if key.strip() in raw:
                raise ConfigError(f"maps the field {key.strip()!r} twice", field="--map")
            raw[key.strip()] = col.strip()
    bad = sorted(k for k in raw if k not in TARGETS)
    if bad:
        raise ConfigError(f"unknown labkit field(s) {', '.join(bad)}", field="--map", known=TARGETS)
    if "question" not in raw:
        raise ConfigError("the mapping must name the question column (question=COLUMN)", field="--map")
    if not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("every mapped column must be a column name", field="--map")
    return {str(k): str(v) for k, v in raw.items()}


def _list(cell: str, line: int, col: str, problems: list[Problem]) -> list[str]:
    """A JSON list cell (labkit.interop.values.json_cell), or ``;``-separated text."""
    cell = cell.strip()
    if cell.lstrip("\ufeff").startswith("["):  # (a byte order mark before the list: refused, not text)
        return text_list(cell, line, col, problems, literal=False) or []
    return [x.strip() for x in cell.split(";") if x.strip()]


def _result(row: dict[str, str], m: dict[str, str], line: int, problems: list[Problem]) -> dict[str, Any] | None:
    """The results line of a row: an answer (status ok unless the status column says otherwise),
    or a status other than ok; None for a row with neither (no answer: not judged, as in every
    format)."""
    status = (row.get(m["status"], "").strip() if "status" in m else "") or "ok"
    answer = opt_text(row[m["answer"]], line, m["answer"], problems) if "answer" in m else None
    if answer is None and status == "ok":
        return None
    res: dict[str, Any] = {"status": status, "answer": answer,
                           "latency_ms": number(row.get(m.get("latency_ms", ""), ""), line, m.get("latency_ms", ""),
                                                problems),
                           "cost_usd": number(row.get(m.get("cost_usd", ""), ""), line, m.get("cost_usd", ""), problems)}
    if "error" in m and row[m["error"]].strip():
        res["error"] = row[m["error"]]
    tokens = [token_count(row[m[k]], line, m[k], problems) if k in m else None for k in ("input_tokens", "output_tokens")]
    if (used := usage(*tokens)) is not None:
        res["usage"] = used
    return res


def _record(line: int, row: dict[str, str], m: dict[str, str], log: FieldLog, problems: list[Problem]) -> Record:
    rec = Record(line=line, question=row[m["question"]] or None)
    for f in CASE_TEXT[:1] + CASE_TEXT[2:]:
        if f in m and row[m[f]].strip():
            rec.case[f] = row[m[f]]
    for f in CASE_LISTS:
        if f in m and row[m[f]].strip():
            rec.case[f] = _list(row[m[f]], line, m[f], problems)
    tags = {f: row[m[f]] for f in ("category", "risk", "kind") if f in m and row[m[f]].strip()}
    if tags:
        rec.case["tags"] = tags
    if "reference_contexts" in m:
        rec.reference_contexts = _list(row[m["reference_contexts"]], line, m["reference_contexts"], problems) or None
    used = set(m.values())
    rec.case["metadata"] = {c: v for c, v in row.items() if c not in used and v != ""}
    if "answer" in m or "status" in m:
        rec.result = _result(row, m, line, problems)
    for f in (f for f in RESULT_FIELDS if f in m):  # a results column is mapped only where there is a result
        if rec.result is not None:
            log.map(m[f], f"results.{f}")
        elif row[m[f]].strip():
            log.drop(m[f], "no answer in the row: a result field without an answer is no result")
    if rec.result is not None and "retrieved_contexts" in m:
        rec.retrieved_texts = _list(row[m["retrieved_contexts"]], line, m["retrieved_contexts"], problems)
    return rec


def read(path: str | os.PathLike[str], *, mapping: str | dict[str, Any] | None = None,
         **_: Any) -> tuple[list[Record], FieldLog]:
    """Records of a CSV file read through ``mapping`` (all-or-nothing)."""
    m = parse_mapping(mapping)
    rows = read_rows(path)
    header = set(rows[0][1]) if rows else set()
    missing = sorted(c for c in m.values() if rows and c not in header)
    if missing:
        raise DatasetError(str(path), [Problem(1, c, f"mapped column not in the header (columns: "
                                                     f"{', '.join(sorted(header))})") for c in missing])
    log = FieldLog()
    for f, c in sorted(m.items()):
        for _n in rows if f not in RESULT_FIELDS else ():  # (the results columns: by row, in _record)
            log.map(c, f)
    for c in sorted(header - set(m.values())):
        for _n in rows:
            log.keep(c)
    problems: list[Problem] = []
    records = [_record(n, row, m, log, problems) for n, row in rows]
    if problems:
        raise DatasetError(str(path), problems)
    return records, log
