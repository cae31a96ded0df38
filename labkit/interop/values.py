"""The values of a peer file's fields, read one way by every importer: a CSV cell holding a list
(:func:`json_cell`, the one cell parser, on labkit's one strict decoder), a list of strings, an
optional text, a number (:func:`number`, the one numeric reader), a token count, and a time
(ISO 8601, or a numeric epoch by its magnitude). A value that is none of what its field holds
adds a :class:`~labkit.errors.Problem` naming the line and field; nothing is guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from labkit.errors import Problem
from labkit.io import (
    SURROGATE_REASON,
    StrictJSONError,
    loads_line,
    may_hold_surrogate,
    surrogate_field,
)

__all__ = ["epoch_seconds", "iso_seconds", "json_cell", "number", "opt_text", "text_list", "token_count",
           "token_total", "usage"]


def json_cell(cell: str, line: int | None, column: str, problems: list[Problem], *,
              literal: bool = False) -> list[Any] | None:
    """The list a CSV cell holds as JSON text (``["a", "b"]``): the one cell parser of every
    importer. It is decoded by labkit's one strict decoder, :func:`labkit.io.loads_line` (a key
    given twice, NaN or Infinity, a byte order mark, nesting deeper than its limit, a number of
    more digits than Python reads are refused, as in any labkit file), and may hold no lone
    surrogate. ``literal``: a cell that is no JSON at all may be a Python list literal (what
    Ragas's ``to_csv`` writes); a cell the strict decoder refuses is never read as one.
    A cell that is none of these adds a Problem naming the row's line and the column (the
    importer's DatasetError names the file) and gives None."""
    escaped = may_hold_surrogate(cell)  # (JSON writes a surrogate "\\ud800" only)
    try:
        value = loads_line(cell)
    except json.JSONDecodeError as e:
        value = _literal(cell) if literal and not isinstance(e, StrictJSONError) else None
        if not isinstance(value, (list, tuple)):
            problems.append(Problem(line, column, f"malformed JSON list: {e.msg}, at character {e.pos + 1} of the cell"))
            return None
        escaped = True  # (a literal writes one in more ways: "\\U0000d800", "\\N{...}")
    if not isinstance(value, (list, tuple)):
        problems.append(Problem(line, column, f"must be a JSON list, got {type(value).__name__}"))
        return None
    if escaped and surrogate_field(list(value)) is not None:
        problems.append(Problem(line, column, SURROGATE_REASON))
        return None
    return list(value)


def _literal(cell: str) -> Any:
    """A Python literal's value (None when the cell is none, or one too deep to read)."""
    import ast

    try:
        return ast.literal_eval(cell)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # (a set of lists ...)
        return None


def text_list(value: Any, line: int | None, fld: str, problems: list[Problem], *,
              literal: bool = True) -> list[str] | None:
    """A list of strings from a JSON list or a CSV cell (:func:`json_cell`: a JSON list, or with
    ``literal`` a Python list literal); None when absent. Blank strings are left out."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json_cell(value, line, fld, problems, literal=literal)
        if value is None:
            return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        problems.append(Problem(line, fld, "must be a list of strings"))
        return None
    return [x for x in value if x.strip()]


def opt_text(value: Any, line: int | None, fld: str, problems: list[Problem]) -> str | None:
    """A string field (None or empty = absent); anything else is a problem naming the field."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(Problem(line, fld, f"must be a string, got {type(value).__name__}"))
        return None
    return value


def number(value: Any, line: int | None, fld: str, problems: list[Problem], *, scale: float = 1.0,
           signed: bool = False) -> float | None:
    """A finite number ≥ 0 (any sign with ``signed``: a retrieval score), CSV text read as a number,
    times ``scale``; None when absent. The one numeric reader of every importer: a bool, an
    integer past a float's range or a text that is no number is a problem naming the field."""
    import math

    if value is None or value == "":
        return None
    try:
        x = float(value) if isinstance(value, str) else value
        x = float(x) if isinstance(x, int) and not isinstance(x, bool) else x  # (an integer past a float's range)
    except (ValueError, OverflowError):
        x = None
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or (x < 0 and not signed):
        problems.append(Problem(line, fld, f"must be a finite number{'' if signed else ' >= 0'}, got {value!r}"))
        return None
    return float(x) * scale


def iso_seconds(text: str) -> float:
    """An ISO 8601 time as epoch seconds; one without an offset is UTC, as labkit writes times (never
    the machine's zone). ValueError when it is no ISO time."""
    t = datetime.fromisoformat(text)
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t).timestamp()


#: A numeric epoch's unit by its size (to 1e11 s is the year 5138; as ms, 1e11 is March 1973).
EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


def epoch_seconds(x: int | float) -> float:
    """A numeric epoch time in seconds, its unit read by its magnitude: seconds below 1e11 ≤
    milliseconds below 1e14 ≤ microseconds below 1e17 ≤ nanoseconds below 1e20. ValueError for a
    negative one or one past nanoseconds (no unit known: never an invented time)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x < EPOCH_UNITS[-1][0]:
        raise ValueError(x)
    per = next(per for limit, per in EPOCH_UNITS if x < limit)
    return x / per if isinstance(x, int) else float(x) / per


def token_count(value: Any, line: int | None, fld: str, problems: list[Problem]) -> int | None:
    """A token count: a whole number >= 0 (CSV text read as a number); None when absent. Every
    importer reads token counts here: 12.7 tokens is a problem naming the field, never 12."""
    x = number(value, line, fld, problems)
    if x is not None and not x.is_integer():
        problems.append(Problem(line, fld, f"must be a whole number of tokens, got {x:g}"))
        return None
    return int(x) if x is not None else None



def token_total(counts: Iterable[int | None]) -> int | None:
    """The sum of the token counts recorded (spans, generations); None when none is (unknown, never 0)."""
    known = [n for n in counts if n is not None]
    return sum(known) if known else None


def usage(input_tokens: int | None, output_tokens: int | None) -> dict[str, int] | None:
    """A results line's ``usage`` of the counts the source records: one it does not record is left
    out (unknown, never 0 tokens); None when it records neither."""
    known = {k: v for k, v in (("input_tokens", input_tokens), ("output_tokens", output_tokens)) if v is not None}
    return known or None
