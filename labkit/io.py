"""Reading and writing files the way every labkit file is read and written.

- :func:`loads_line` — the one strict JSON decoder of a JSONL line: duplicate keys, NaN and
  Infinity literals and nesting deeper than :data:`MAX_JSON_DEPTH` are refused
  (:class:`StrictJSONError`, a ``json.JSONDecodeError``)
- :func:`iter_jsonl` — the one JSONL line reader (datasets, results, reviews, traces): numbered
  lines, a torn last line of a killed writer tolerated or refused
- :func:`atomic_write_text` — a file written whole or not at all (a symlink followed, a path
  that is no regular file refused: :func:`labkit.paths.output_target`)

Foundation layer: imports nothing from labkit but the error tree and :mod:`labkit.paths`
(where a write goes).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.paths import output_target

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "MAX_JSON_DEPTH",
    "SURROGATE_REASON",
    "LinedDict",
    "StrictJSONError",
    "atomic_path",
    "atomic_write_text",
    "atomic_writer",
    "count_lines",
    "file_hash",
    "holds_surrogate",
    "input_error",
    "iter_jsonl",
    "jsonl_objects",
    "line_spans",
    "loads_document",
    "loads_line",
    "may_hold_surrogate",
    "non_finite_paths",
    "settle",
    "surrogate_field",
    "utc_instant",
    "utc_time",
]


MAX_JSON_DEPTH = 200  # arrays and objects nested deeper than this in one JSONL line are refused
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class StrictJSONError(json.JSONDecodeError):
    """A JSONL line that Python's decoder would take but labkit refuses: a duplicate key, a
    NaN or Infinity literal, or nesting deeper than :data:`MAX_JSON_DEPTH`."""


#: A JSON text's strings (a key: followed by a colon) and braces, and the constants outside strings.
_KEYS_AND_BRACES = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|[{}]')
_CONSTANTS = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')


class _Refused(Exception):
    """A key given twice (``key``) or a constant (``constant``) the strict decoder refused."""

    def __init__(self, msg: str, *, key: str | None = None, constant: str | None = None) -> None:
        super().__init__(msg)
        self.msg, self.key, self.constant = msg, key, constant

    def where(self, text: str) -> int:
        """The offset of the refused text in ``text`` (valid JSON up to it): for a key, its second
        writing in the first object to close that holds it twice (objects are refused as they
        close); for a constant, its first writing outside a string."""
        if self.constant is not None:
            return next((m.start() for m in _CONSTANTS.finditer(text) if m.group() == self.constant), 0)
        objects: list[tuple[set[str], list[int]]] = []  # each open object's keys, and where the key repeats
        for m in _KEYS_AND_BRACES.finditer(text):
            tok = m.group()
            if tok == "{":
                objects.append((set(), []))
            elif tok == "}":
                if objects and (repeat := objects.pop()[1]):
                    return repeat[0]
            elif m.group(1) and objects:
                keys, repeat = objects[-1]
                k = json.loads(tok[:m.start(1) - m.start()])
                if k in keys and k == self.key:
                    repeat.append(m.start())
                keys.add(k)
        return 0


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"duplicate key {k!r} (the last one would silently win)", key=k)
        out[k] = v
    return out


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number", constant=name)


def _too_deep(text: str, limit: int) -> int | None:
    """The offset where nesting first exceeds ``limit`` (brackets inside strings do not count)."""
    depth = 0
    for m in _TOKENS.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > limit:
                return m.start()
        elif ch in "]}":
            depth -= 1
    return None


def loads_line(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode one JSONL line strictly: the one decoder of cases, results, reviews and traces.

    Raises :class:`StrictJSONError` (a ``json.JSONDecodeError``: ``e.msg`` and ``e.colno``
    read as for any malformed line) for a key given twice in one object, for ``NaN``,
    ``Infinity`` and ``-Infinity`` (not JSON), and for nesting deeper than ``max_depth``.

    A line is decoded by orjson (about three times faster) and kept when that value is
    provably what the standard decoder gives (:func:`_proved`) and nested no deeper than
    ``max_depth`` (the value's nesting is the text's); every other line, valid or not, is
    decoded by the standard decoder after the depth check, whose value or error is the answer.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads_checked(text, max_depth)
    try:
        proved = _proved(text, obj, max_depth)
    except (_TooDeep, RecursionError):  # (the walk recurses: a limit raised near the interpreter's)
        proved = False
    return obj if proved else _loads_checked(text, max_depth)


#: What a text starting with U+FEFF is told (an editor's "UTF-8 with BOM"; JSON has no such mark).
BOM_REASON = "starts with a byte order mark (the file was saved as UTF-8 with BOM): save it as plain UTF-8"


def _loads_checked(text: str, max_depth: int) -> Any:
    """The standard decoder's value or error, after :func:`_refuse_undecodable`."""
    _refuse_undecodable(text, max_depth)
    return _loads_stdlib(text)


def _refuse_undecodable(text: str, max_depth: int) -> None:
    """The checks before the standard decoder reads a text (a line or a document): a byte order
    mark, then nesting deeper than ``max_depth`` (which the decoder's recursion would reach)."""
    if text.startswith("\ufeff"):
        raise StrictJSONError(BOM_REASON, text, 0)
    if text.count("[") + text.count("{") > max_depth:
        at = _too_deep(text, max_depth)
        if at is not None:
            raise StrictJSONError(f"nested more than {max_depth} levels deep", text, at)


#: A quote, blanks, then a colon: a key written ``"key" :`` (the key count below reads ``":``).
_SPACED_COLON = re.compile(r'"[ \t\r\n]+:')
#: orjson reads an integer beyond 64 bits as a float of at least this size (json keeps the int).
_BIG = 2.0**63


class _TooDeep(Exception):
    """A decoded value nested deeper than the limit (its text is, too)."""


def _proved(text: str, obj: Any, max_depth: int) -> bool:
    """Whether orjson's value of ``text`` is the standard decoder's and holds no duplicate key.

    orjson and json agree on every JSON text they both accept but two: a key given twice
    (orjson keeps the last one silently; labkit refuses it) and an integer beyond 64 bits
    (orjson reads it as a float): a line holding a float of 2**63 or more is left to json.
    For the keys: every key written in the text is followed by one colon outside strings, and
    orjson's objects hold the number of distinct keys, so when they hold as many keys as the
    text has colons, no key was written twice (a colon inside a string only adds to the
    text's count). Failing that, the keys written are counted as the ``":`` in the text (when
    no key is written ``"key" :``): at least the keys written, equal when no ``":`` stands
    inside a string (a line with one is left to json, which decides).
    Raises :class:`_TooDeep` when the value is nested deeper than ``max_depth``.
    """
    try:
        t = type(obj)
        held = (_keys_in_list(obj.values(), max_depth - 1) + len(obj) if t is dict
                else _keys_in_list(obj, max_depth - 1) if t is list else _scalar_keys(obj))
    except OverflowError:  # a float that may have been a 64-bit-plus integer
        return False
    colons = text.count(":")
    if held == colons:
        return True
    written = text.count('":')  # (when every colon follows a quote, none follows a blank)
    if written and written != colons and _SPACED_COLON.search(text) is not None:
        return False
    return held == written


def _scalar_keys(v: Any) -> int:
    if type(v) is float and not -_BIG < v < _BIG:
        raise OverflowError
    return 0


def _keys_in_list(items: Any, room: int) -> int:
    """The keys held in the containers among ``items`` and below (``room``: the levels of
    nesting left under the limit, one used by the container ``items`` belong to)."""
    if room < 0:
        raise _TooDeep
    n = 0
    for v in items:
        t = type(v)
        if t is dict:
            n += len(v) + _keys_in_list(v.values(), room - 1)
        elif t is list:
            n += _keys_in_list(v, room - 1)
        elif t is float and not -_BIG < v < _BIG:
            raise OverflowError
    return n


def _loads_stdlib(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except _Refused as e:
        raise StrictJSONError(e.msg, text, e.where(text)) from None
    except RecursionError:  # a limit raised past what the decoder's recursion reaches
        raise StrictJSONError("nested too deeply to decode", text, 0) from None
    except ValueError as e:  # an integer of more digits than Python converts
        if isinstance(e, json.JSONDecodeError):
            raise
        raise StrictJSONError(f"unreadable number: an integer of more than {sys.get_int_max_str_digits()} digits",
                              text, 0) from None


class LinedDict(dict[str, Any]):
    """A JSON object of a whole-file JSON document that knows the line its ``{`` is on."""

    line: int = 0


class LinedList(list[Any]):
    """A JSON array of a whole-file JSON document that knows the line each of its items starts on."""

    lines: list[int]


def loads_document(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a whole JSON document (not one line) as strictly as :func:`loads_line`, every
    object a :class:`LinedDict` holding its line number, so a problem inside a peer tool's
    JSON export is reported at its line as in a JSONL file; every array a :class:`LinedList`
    knowing the line of each item (an item that is no object is named at its line too). Raises
    :class:`StrictJSONError`."""
    import bisect
    import json.decoder
    import json.scanner

    json_object: Any = getattr(json.decoder, "JSONObject")  # noqa: B009 - not in the stubs
    json_array: Any = getattr(json.decoder, "JSONArray")  # noqa: B009 - not in the stubs
    make_scanner: Any = getattr(json.scanner, "py_make_scanner")  # noqa: B009 - the pure-Python scanner

    _refuse_undecodable(text, max_depth)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[LinedDict, int]:
        obj, end = json_object(s_and_end, *args)
        out = LinedDict(obj)
        out.line = bisect.bisect_left(newlines, s_and_end[1] - 1) + 1
        return out, end

    def parse_array(s_and_end: tuple[str, int], scan_once: Any, *args: Any) -> tuple[LinedList, int]:
        starts: list[int] = []

        def scan(s: str, idx: int) -> Any:  # (called at each item's first character)
            starts.append(idx)
            return scan_once(s, idx)

        items, end = json_array(s_and_end, scan, *args)
        out = LinedList(items)
        out.lines = [bisect.bisect_left(newlines, i) + 1 for i in starts]
        return out, end

    dec: Any = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)
    dec.parse_object = parse_object
    dec.parse_array = parse_array
    dec.scan_once = make_scanner(dec)
    try:
        return dec.decode(text)
    except _Refused as e:
        raise StrictJSONError(e.msg, text, e.where(text)) from None
    except RecursionError:  # pragma: no cover - the depth check above comes first
        raise StrictJSONError("nested too deeply to decode", text, 0) from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_surrogate(text: str) -> bool:
    """Whether a JSONL line could decode to a lone surrogate: only a ``\\uD8xx``-``\\uDFxx``
    escape or a surrogate character in the text itself can make one (a cheap test before
    :func:`surrogate_field` walks the decoded value)."""
    return "\\ud" in text or "\\uD" in text or holds_surrogate(text)


def holds_surrogate(text: str) -> bool:
    """Whether a decoded string holds a lone surrogate (U+D800-U+DFFF: no UTF-8 text can hold it)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


#: The reason a value holding a lone surrogate is refused (the one wording of every reader).
SURROGATE_REASON = "contains a lone surrogate (\\ud800-\\udfff), which is no text"


def surrogate_field(obj: Any) -> str | None:
    """The dotted field of the first string (key or value) in ``obj`` holding a lone surrogate
    (JSON's ``"\\ud800"``: no UTF-8 text can hold it, so it would fail when written or printed)."""
    return hit[0] if (hit := surrogate_at(obj)) is not None else None


def surrogate_problem(raw: str, obj: Any, line: int | None) -> Problem | None:
    """The problem of a decoded line ``raw`` whose value holds a lone surrogate (the one check of
    every JSONL reader), None when it holds none; :func:`may_hold_surrogate` first."""
    bad = surrogate_field(obj) if may_hold_surrogate(raw) else None
    return Problem(line, bad, SURROGATE_REASON) if bad is not None else None


def surrogate_at(obj: Any) -> tuple[str, int | None] | None:
    """:func:`surrogate_field` and the line it is on in a document (:func:`loads_document`): the
    line of the innermost object or array item holding it (None outside a document)."""
    stack: list[tuple[Any, str, int | None]] = [(obj, "", None)]
    while stack:
        cur, where, line = stack.pop()
        if isinstance(cur, str):
            if where and holds_surrogate(cur):
                return where, line
        elif isinstance(cur, dict):
            line = getattr(cur, "line", line)
            for k, v in cur.items():
                sub = f"{where}.{k}" if where else str(k)
                if holds_surrogate(k):
                    return sub, line
                stack.append((v, sub, line))
        elif isinstance(cur, list):
            lines = getattr(cur, "lines", None) or [line] * len(cur)
            stack.extend((v, f"{where}[{i}]", n) for i, (v, n) in enumerate(zip(cur, lines, strict=True)))
    return None


def non_finite_paths(obj: Any, where: str = "") -> list[str]:
    """The dotted paths of the infinite or NaN numbers in ``obj``: JSON cannot hold them (a
    decoder reads ``1e400`` as infinity, which would be written back as ``Infinity``)."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_paths(v, f"{where}[{i}]")]
    return []


def input_error(path: str | os.PathLike[str], exc: OSError, line: int | None = None) -> DatasetError:
    """The DatasetError for an input file that cannot be read (not found, a folder, ...)."""
    reasons = {FileNotFoundError: "file not found", IsADirectoryError: "is a folder, not a JSONL file",
               PermissionError: "permission denied"}
    reason = next((r for t, r in reasons.items() if isinstance(exc, t)), exc.strerror or str(exc))
    return DatasetError(str(path), [Problem(line, None, reason)])


def iter_jsonl(path: str | os.PathLike[str], *, strict_tail: bool = False,
               span: tuple[int, int] | None = None,
               problems: list[Problem] | None = None) -> Iterator[tuple[int, str, bool]]:
    """``(line number, text, complete)`` for each non-blank line of a JSONL file.

    ``complete`` is False only for a last line without its newline: what a writer
    killed mid-line, or still writing, leaves. Such a tail may end inside a UTF-8
    character: unless ``strict_tail`` (a hand-written file often just lacks its final
    newline), it is then given without that character's bytes (it is no whole record
    anyway). A line that is not UTF-8 otherwise is a problem naming it: added to
    ``problems`` when given (and left out), else a DatasetError, as is a file that cannot
    be read. ``span`` (start, end byte offsets from :func:`line_spans`) reads only the
    lines in that part of the file, numbered from 1 within it.
    """
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed below; open errors become DatasetErrors
    except OSError as e:
        raise input_error(p, e) from None
    with f:
        if span is None:  # (line by line: a file's iterator cuts its lines in C)
            yield from _byte_lines(f, p, strict_tail=strict_tail, problems=problems)
            return
        f.seek(span[0])
        data = f.read(span[1] - span[0])
        try:  # (the common case: a part of UTF-8 text, decoded at once, not line by line)
            yield from _text_lines(data.decode("utf-8"))
        except UnicodeDecodeError:  # read line by line: the line that is not text is named
            yield from _byte_lines(_split_lines(data), p, strict_tail=strict_tail, problems=problems)


def _text_lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """:func:`iter_jsonl`'s lines of ``text`` (cut after each ``\\n`` only, as the bytes are)."""
    parts = text.split("\n")
    last = parts.pop()
    for n, part in enumerate(parts, start=1):
        if part and not part.isspace():
            yield n, part + "\n", True
    if last and not last.isspace():
        yield len(parts) + 1, last, False


def _byte_lines(lines: Iterable[bytes], p: Path, *, strict_tail: bool,
                problems: list[Problem] | None) -> Iterator[tuple[int, str, bool]]:
    """:func:`iter_jsonl`'s lines, each decoded on its own."""
    for n, raw in enumerate(lines, start=1):
        complete = raw.endswith(b"\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if not complete and not strict_tail and e.reason == "unexpected end of data":
                text = raw[:e.start].decode("utf-8")  # cut inside its last character: a torn line
            else:
                problem = Problem(n, None, f"not UTF-8 text: {e.reason}")
                if problems is None:
                    raise DatasetError(str(p), [problem]) from None
                problems.append(problem)
                continue
        if not text.isspace():  # (a blank line skipped: strip() would copy every line)
            yield n, text, complete


def _split_lines(data: bytes) -> Iterator[bytes]:
    """The lines of ``data`` as a binary file yields them (cut after each ``\\n`` only)."""
    parts = data.split(b"\n")
    last = parts.pop()
    for part in parts:
        yield part + b"\n"
    if last:
        yield last


def line_spans(path: str | os.PathLike[str], part_bytes: int) -> list[tuple[int, int]]:
    """The file cut into parts of about ``part_bytes`` bytes that end at a newline (the last
    at the end of the file): ``(start, end)`` byte offsets for :func:`iter_jsonl`'s ``span``."""
    p = Path(path)
    try:
        size = p.stat().st_size
        f = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise input_error(p, e) from None
    cuts = [0]
    with f:
        while cuts[-1] + part_bytes < size:
            f.seek(cuts[-1] + part_bytes)
            f.readline()
            cut = f.tell()
            if cut >= size:
                break
            cuts.append(cut)
    cuts.append(size)
    return list(pairwise(cuts))


def count_lines(path: str | os.PathLike[str], span: tuple[int, int]) -> int:
    """How many lines :func:`iter_jsonl` numbers in ``span`` (the newlines in it, plus a last
    line without one)."""
    with open(path, "rb") as f:
        f.seek(span[0])
        data = f.read(span[1] - span[0])
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def file_hash(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex), read in pieces: a file of any size adds little memory."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def jsonl_objects(path: str | os.PathLike[str], problems: list[Problem], *,
                  torn_tail_ok: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) of every line of a JSONL file that is one JSON object, by the strict decoder;
    a malformed line, a torn last line, a line that is no object or one holding a lone surrogate
    adds a :class:`Problem` instead. ``torn_tail_ok``: a last line without newline that is no JSON
    (a killed writer's, which :func:`append_line` cuts) is left out, no problem."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, raw, complete in iter_jsonl(path, strict_tail=not torn_tail_ok, problems=problems):
        try:
            obj = loads_line(raw)
        except json.JSONDecodeError as e:
            if not complete and torn_tail_ok:
                continue
            cut = "" if complete else " (a truncated last line)"
            problems.append(Problem(n, None, f"malformed JSON: {e.msg} at column {e.colno}{cut}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(n, None, f"must be a JSON object, got {type(obj).__name__}"))
            continue
        if (bad := surrogate_problem(raw, obj, n)) is not None:
            problems.append(bad)
            continue
        rows.append((n, obj))
    return rows


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file whole or not at all (temp file in the same folder, then rename)."""
    with atomic_writer(path) as f:
        f.write(text.encode("utf-8"))


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` whole when the block ends (temp file in the same
    folder, flushed to disk, then renamed), or not at all when the block raises."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def settle(path: str | os.PathLike[str]) -> None:
    """A written file made owner-only and flushed to disk: what an atomic write leaves (the file
    it renames is made by ``tempfile.mkstemp``), for a file that already holds its text."""
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:  # (a handle that may write: some systems flush only through one)
        os.fsync(f.fileno())


def _named(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` (the user's) instead of labkit's temporary file."""
    return OSError(err.errno, err.strerror or str(err), str(path))


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file's path (in the folder of the file written, owner-only) for a writer that
    takes a path: the file becomes ``path`` whole when the block ends (flushed to disk, then
    renamed), or is removed when the block raises. A symlink is followed (:func:`output_target`);
    a path that is no regular file is refused before the block runs. An error of the temporary
    file names ``path``."""
    p = Path(path)
    real = output_target(p)
    real.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, p) from None
    os.close(fd)
    try:
        yield Path(tmp)
        settle(tmp)  # (owner-only as mkstemp made it, should the writer have made the file anew)
        os.replace(tmp, real)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and tmp in (e.filename, e.filename2):
            raise _named(e, p) from None
        raise


def utc_instant(value: Any, *, field: str, path: str | None = None) -> datetime:
    """An ISO time as an aware datetime in UTC (a time without an offset is read as UTC, as labkit
    writes it); a ConfigError naming ``path`` and ``field`` when it is no ISO time."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        t = None
    if t is None:
        raise ConfigError(f"not an ISO time: {value!r}", path=path, field=field)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def utc_time(value: Any) -> str | None:
    """A manifest's time (``created_at``) as the ISO text of its instant in UTC, which sorts as the
    instants do (``03:30:00+02:00`` is ``01:30:00+00:00``: :func:`utc_instant`); None for no time,
    and for a text that is no ISO time (``07/12/2026 14:59:45`` would sort as text among instants)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return utc_instant(value, field="created_at").isoformat()
    except ConfigError:
        return None
