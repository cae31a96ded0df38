"""Eval cases: the record, JSONL load/validate/save, fingerprint and stats.

The format is the contract of docs/formats.md. Loading is all-or-nothing: an
invalid file raises :class:`~labkit.errors.DatasetError` listing every bad line
(line number, field, reason) and returns no case.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import marshal
import operator
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson

from labkit.errors import DatasetError, Problem
from labkit.io import (
    SURROGATE_REASON,
    atomic_write_text,
    count_lines,
    iter_jsonl,
    line_spans,
    loads_line,
    non_finite_paths,
    surrogate_field,
    surrogate_problem,
)
from labkit.text import unprintable_at

KINDS = ("representative", "failure", "adversarial", "out_of_scope", "regression")
RISKS = ("low", "medium", "high")
FIELDS = (
    "id",
    "question",
    "expected_source",
    "expected_chunks",
    "must_include",
    "must_not_include",
    "reference_answer",
    "expected_tools",
    "tags",
    "metadata",
)


_FIELD_SET = frozenset(FIELDS)


def derive_id(question: str) -> str:
    """The id of a case that has none: ``q-`` + first 12 hex of sha256(question)."""
    return "q-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class EvalCase:
    """One eval case. ``tags`` holds category, risk, kind and any other string tags."""

    id: str
    question: str
    expected_source: str | None = None
    expected_chunks: tuple[str, ...] = ()
    must_include: tuple[str, ...] = ()
    must_not_include: tuple[str, ...] = ()
    reference_answer: str | None = None
    expected_tools: tuple[Mapping[str, Any], ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str | None:
        return self.tags.get("category")

    @property
    def risk(self) -> str | None:
        return self.tags.get("risk")

    @property
    def kind(self) -> str | None:
        return self.tags.get("kind")

    @property
    def gold(self) -> tuple[str, ...]:
        """The gold ids at the granularity of the labels: chunks if given, else the source."""
        if self.expected_chunks:
            return self.expected_chunks
        if self.expected_source:
            return (self.expected_source,)
        return ()

    @property
    def gold_level(self) -> str:
        """``chunk`` when the case has expected_chunks, else ``source``."""
        return "chunk" if self.expected_chunks else "source"

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form: every field present, in contract order."""
        return {
            "id": self.id,
            "question": self.question,
            "expected_source": self.expected_source,
            "expected_chunks": list(self.expected_chunks),
            "must_include": list(self.must_include),
            "must_not_include": list(self.must_not_include),
            "reference_answer": self.reference_answer,
            "expected_tools": [dict(t) for t in self.expected_tools],
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EvalCase:
        """Build one case from a mapping; raises DatasetError (no line) when invalid."""
        bad = surrogate_field(obj)
        if bad is not None:  # (as for a file's line: no UTF-8 text can hold it)
            raise DatasetError(None, [Problem(None, bad, SURROGATE_REASON)])
        case, problems = _parse(obj, None)
        if case is None:
            raise DatasetError(None, problems)
        return case


_NON_FINITE = "must be a finite number (JSON reads 1e400 as infinity, which it cannot write back)"


def _str_list(obj: Mapping[str, Any], key: str, line: int | None, out: list[Problem]) -> tuple[str, ...]:
    val = obj.get(key)
    if val is None:
        return ()
    if type(val) is list:  # (as a decoder gives it: a list of non-blank strings, checked in C)
        try:
            if all(map(str.strip, val)):  # (a TypeError for an item that is no string)
                return tuple(val)
        except TypeError:
            pass
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        out.append(Problem(line, key, "must be a list of strings"))
        return ()
    if any(not x.strip() for x in val):
        out.append(Problem(line, key, "must not contain empty strings"))
    return tuple(val)


def _opt_str(obj: Mapping[str, Any], key: str, line: int | None, out: list[Problem]) -> str | None:
    val = obj.get(key)
    if val is None or (type(val) is str and val.strip()):
        return val
    if not isinstance(val, str):
        out.append(Problem(line, key, f"must be a string, got {type(val).__name__}"))
        return None
    if not val.strip():
        out.append(Problem(line, key, "must not be empty"))
        return None
    return val


def _question(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> str | None:
    q = obj.get("question")
    if type(q) is str and q.strip():
        return q
    if q is None:
        out.append(Problem(line, "question", "missing"))
    elif not isinstance(q, str):
        out.append(Problem(line, "question", f"must be a string, got {type(q).__name__}"))
    elif not q.strip():
        out.append(Problem(line, "question", "must not be empty"))
    else:
        return q
    return None


def _expected_tools(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> list[Mapping[str, Any]]:
    tools_raw = obj.get("expected_tools")
    tools: list[Mapping[str, Any]] = []
    if tools_raw is None:
        return tools
    if not isinstance(tools_raw, list):
        out.append(Problem(line, "expected_tools", "must be a list of {name, args} objects"))
        return tools
    for i, t in enumerate(tools_raw):
        if (
            not isinstance(t, dict)
            or not isinstance(t.get("name"), str)
            or not t["name"].strip()
            or not isinstance(t.get("args", {}), dict)
            or set(t) - {"name", "args"}
        ):
            out.append(Problem(line, f"expected_tools[{i}]", "must be {name: str, args: object}"))
        else:
            tools.append({"name": t["name"], "args": dict(t.get("args", {}))})
    return tools


def _tags(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> dict[str, str]:
    tags_raw = obj.get("tags")
    tags: dict[str, str] = {}
    if tags_raw is None:
        return tags
    if type(tags_raw) is dict:  # (as a decoder gives it: string values, a known kind and risk)
        try:
            quick = {k: sys.intern(v) for k, v in tags_raw.items()}
        except TypeError:
            pass  # a value that is no string: the checks below name it
        else:
            if quick.get("kind", KINDS[0]) in KINDS and quick.get("risk", RISKS[0]) in RISKS:
                return quick
    if not isinstance(tags_raw, dict):
        out.append(Problem(line, "tags", "must be an object of string values"))
        return tags
    for k, v in tags_raw.items():
        if not isinstance(v, str):
            out.append(Problem(line, f"tags.{k}", "must be a string"))
        else:
            tags[k] = sys.intern(str.__str__(v))  # a handful of values over many cases: held once
    if "kind" in tags and tags["kind"] not in KINDS:
        out.append(Problem(line, "tags.kind", f"unknown kind {tags['kind']!r} (known: {', '.join(KINDS)})"))
    if "risk" in tags and tags["risk"] not in RISKS:
        out.append(Problem(line, "tags.risk", f"unknown risk {tags['risk']!r} (known: {', '.join(RISKS)})"))
    return tags


class _Draft:
    """EvalCase's slots on a mutable class. A draft filled in and retyped to EvalCase is the
    object ``EvalCase(...)`` builds, in 0.2 us against 1.1 us: the frozen ``__init__`` sets
    each field through ``object.__setattr__``."""

    __slots__ = EvalCase.__slots__


def _parse(obj: Any, line: int | None) -> tuple[EvalCase | None, list[Problem]]:
    """One dataset line as a case, or every problem with it (field by field)."""
    out: list[Problem] = []
    if not isinstance(obj, dict):
        return None, [Problem(line, None, f"must be a JSON object, got {type(obj).__name__}")]
    if not _FIELD_SET.issuperset(obj):
        for key in sorted(obj.keys() - _FIELD_SET):
            out.append(Problem(line, key, f"unknown field (known: {', '.join(FIELDS)})"))
    q = _question(obj, line, out)
    cid = obj.get("id")
    if cid is None and "id" in obj:  # (null is no id: only a case without the field gets the derived one)
        out.append(Problem(line, "id", "must be a non-empty string, got null (leave the field out for the id "
                                       "derived from the question)"))
    elif cid is not None and (not isinstance(cid, str) or not cid.strip()):
        out.append(Problem(line, "id", "must be a non-empty string"))
    elif isinstance(cid, str) and cid != cid.strip():  # ("c " and "c" would be two cases no eye tells apart)
        out.append(Problem(line, "id", f"must not begin or end with whitespace, got {cid!r}"))
    elif isinstance(cid, str) and (at := unprintable_at(cid)) is not None:
        out.append(Problem(line, "id", f"must not hold a control or direction character (U+{ord(cid[at]):04X} at "
                                       f"{at}, in {cid!r}): an id is printed in terminals and written in XML"))
    expected_source = _opt_str(obj, "expected_source", line, out)
    reference = _opt_str(obj, "reference_answer", line, out)
    chunks = _str_list(obj, "expected_chunks", line, out)
    must = _str_list(obj, "must_include", line, out)
    must_not = _str_list(obj, "must_not_include", line, out)
    tools = _expected_tools(obj, line, out)
    tags = _tags(obj, line, out)
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        out.append(Problem(line, "metadata", "must be an object"))
    if meta or tools:  # (numbers live only here: the other fields are texts)
        numbers = {"metadata": meta, "expected_tools": obj.get("expected_tools")}  # (as written: its indices)
        out.extend(Problem(line, p, _NON_FINITE) for p in non_finite_paths(numbers))
    if out:
        return None, out
    assert q is not None
    case: Any = _Draft()  # (EvalCase's slots, not its annotations)
    case.id = cid if isinstance(cid, str) else derive_id(q)
    case.question = q
    case.expected_source = expected_source
    case.expected_chunks = chunks
    case.must_include = must
    case.must_not_include = must_not
    case.reference_answer = reference
    case.expected_tools = tuple(tools)
    case.tags = tags
    case.metadata = dict(meta or {})
    case.__class__ = EvalCase
    return case, []


def fingerprint(cases: Iterable[EvalCase]) -> str:
    """sha256 over the canonical form of the cases, sorted by id (order-independent)."""
    h = hashlib.sha256()
    for c in sorted(cases, key=lambda c: c.id):
        h.update(canonical_bytes(c.to_dict()))
        h.update(b"\n")
    return h.hexdigest()


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """``json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` as UTF-8:
    by orjson, which writes the same bytes for every value but a float or an integer beyond
    64 bits (a case holds numbers only in its metadata and its expected tools' args: such a
    case takes json's way)."""
    if all(not obj.get(key) or _plain(obj[key]) for key in ("metadata", "expected_tools")):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate in a case built in memory
            pass
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(x: Any) -> bool:
    """Whether ``x`` holds only strings, booleans, None, 64-bit integers, lists and str-keyed dicts."""
    t = type(x)
    if t is str or t is bool or x is None:
        return True
    if t is int:
        return -(2**63) <= x < 2**63
    if t is list:
        return all(_plain(v) for v in x)
    if t is dict:
        return all(type(k) is str for k in x) and all(_plain(v) for v in x.values())
    return False


@dataclass(frozen=True)
class Dataset(Sequence[EvalCase]):
    """A validated list of cases with its source path and fingerprint."""

    cases: tuple[EvalCase, ...]
    path: str | None = None
    #: the line of its file each case is on (empty for cases not read whole from a file)
    lines: tuple[int, ...] = field(default=(), compare=False)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: Any) -> Any:
        return self.cases[i]

    def __iter__(self) -> Iterator[EvalCase]:
        return iter(self.cases)

    @cached_property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of the cases (worked out once: the cases are immutable)."""
        return fingerprint(self.cases)

    def by_id(self) -> dict[str, EvalCase]:
        return {c.id: c for c in self.cases}

    def where(self, **tags: str) -> Dataset:
        """The cases whose tags match every ``key=value`` given."""
        return Dataset(tuple(c for c in self.cases if all(c.tags.get(k) == v for k, v in tags.items())), self.path)


def parse_lines(lines: Iterable[str], path: str | None = None) -> Dataset:
    """Validate JSONL text lines (blank lines skipped); all-or-nothing."""
    return _matched([_read_lines((n, s) for n, s in enumerate(lines, start=1) if s.strip())], path)


class _Read(NamedTuple):
    """The lines of a stretch of a dataset as read, before their ids are matched across the file:
    each line's number, the id it claims (None: none) and its case (None: refused), and the
    stretch's problems (its reader's and its fields')."""

    lines: list[tuple[int, str | None, EvalCase | None]]
    problems: list[Problem]


def _read_lines(lines: Iterable[tuple[int, str]], problems: list[Problem] | None = None) -> _Read:
    """:class:`_Read` of numbered lines as iter_jsonl gives them, none blank (``problems``: the
    reader's own, such as lines that are not UTF-8, added to as it reads)."""
    problems = [] if problems is None else problems
    read: list[tuple[int, str | None, EvalCase | None]] = []
    for n, raw in lines:
        try:
            obj = loads_line(raw)
        except json.JSONDecodeError as e:
            problems.append(Problem(n, None, f"malformed JSON: {e.msg} at column {e.colno}"))
            continue
        if (bad := surrogate_problem(raw, obj, n)) is not None:
            problems.append(bad)
            continue
        case, probs = _parse(obj, n)
        if case is None:
            problems.extend(probs)
            read.append((n, _claimed_id(obj), None))  # (a later line repeating its id is named now, not after a fix)
        else:
            read.append((n, case.id, case))
    return _Read(read, problems)


def _matched(parts: Iterable[_Read], path: str | None) -> Dataset:
    """The dataset of the stretches read, in file order: each id's first line holds it, a case on a
    later line is a duplicate; every problem in line order."""
    problems: list[Problem] = []
    cases: list[EvalCase] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    first_line = seen.setdefault  # an id's first line: this line's number when the id is new
    for part in parts:
        problems += part.problems
        for n, cid, case in part.lines:
            if cid is None:
                continue
            first = first_line(cid, n)
            if case is None:
                continue
            if first != n:
                problems.append(Problem(n, "id", f"duplicate id {cid!r} (first on line {first})"))
                continue
            cases.append(case)
            lines.append(n)
    if problems:  # (each stretch's in line order, a duplicate after them: a line has one or the other)
        problems.sort(key=lambda p: p.line or 0)
        raise DatasetError(path, problems)
    return Dataset(tuple(cases), path, tuple(lines))


def _claimed_id(obj: Any) -> str | None:
    """The id a line refused for another field claims (its ``id``, or the one derived from its
    question), None when it claims none."""
    if not isinstance(obj, dict):
        return None
    cid, q = obj.get("id"), obj.get("question")
    if "id" in obj:
        return cid if isinstance(cid, str) and cid.strip() else None
    return derive_id(q) if isinstance(q, str) and q.strip() else None


#: A dataset file is read in parts of about this many bytes (each part's text decoded at once)...
PART_BYTES = 1 << 20
#: ... and from this size on (about 17,000 cases) its parts are parsed side by side, about half of
#: them in a forked process when a CPU is spare (:func:`labkit.forks.side_by_side`): parsing is
#: the serial step before scoring (at 100,000 cases about 1.4 s of 10 on a slow day).
PARALLEL_PARSE_BYTES = 4 << 20


def load_cases(path: str | os.PathLike[str], *, meanwhile: Callable[[], object] | None = None) -> Dataset:
    """Load and validate a JSONL dataset. Raises DatasetError listing every bad line; a file
    without a single case is an error too (a gate judged on no case would pass).
    ``meanwhile``: this process's own work, done once while a forked process parses a large
    file (not done when none does), e.g. the imports a caller needs next."""
    if not os.path.isfile(path):  # (a pipe has no size to cut: read as it comes; no file: named as one)
        reader: list[Problem] = []
        streamed = _read_lines(((n, text) for n, text, _ in iter_jsonl(path, strict_tail=True, problems=reader)),
                               reader)
        return _nonempty(_matched([streamed], str(path)), path)
    spans = line_spans(path, PART_BYTES)
    firsts = [0, *itertools.accumulate(count_lines(path, span) for span in spans)]

    def part(i: int) -> _Read:
        reader: list[Problem] = []  # (its lines numbered within the part)
        read = _read_lines(((firsts[i] + n, text) for n, text, _ in
                            iter_jsonl(path, strict_tail=True, span=spans[i], problems=reader)))
        read.problems.extend(Problem(p.line and firsts[i] + p.line, p.field, p.reason) for p in reader)
        return read

    if spans[-1][1] >= PARALLEL_PARSE_BYTES:
        from labkit.forks import side_by_side

        parts = side_by_side(len(spans), part, send=_sent, receive=_received, first=meanwhile)
    else:
        parts = [part(i) for i in range(len(spans))]
    return _nonempty(_matched(parts, str(path)), path)


def _nonempty(ds: Dataset, path: str | os.PathLike[str]) -> Dataset:
    if not ds.cases:
        raise DatasetError(str(path), [Problem(None, None, "no cases (the dataset is empty)")])
    return ds


#: A case's fields in EvalCase's slot order, as one tuple (what a forked parse sends back)
_FIELD_VALUES = operator.attrgetter(*FIELDS)


def _sent(read: _Read) -> Any:
    """A part read in a forked process as it travels back: plain values, marshalled (about three
    times faster both ways than pickling the cases; interned tag values stay interned)."""
    try:
        return marshal.dumps(([(n, cid, None if c is None else _FIELD_VALUES(c)) for n, cid, c in read.lines],
                              [(p.line, p.field, p.reason) for p in read.problems]))
    except ValueError:  # (a value marshal does not know: pickled as it is)
        return read


def _received(sent: Any) -> _Read:
    """:func:`_sent`'s part as it was read."""
    if not isinstance(sent, bytes):
        return cast(_Read, sent)
    lines, problems = marshal.loads(sent)
    return _Read([(n, cid, None if v is None else _built(v)) for n, cid, v in lines],
                 [Problem(*p) for p in problems])


def _built(values: tuple[Any, ...]) -> EvalCase:
    """The case of :data:`_FIELD_VALUES`' tuple (as :func:`_parse` builds one)."""
    case: Any = _Draft()
    (case.id, case.question, case.expected_source, case.expected_chunks, case.must_include, case.must_not_include,
     case.reference_answer, case.expected_tools, case.tags, case.metadata) = values
    case.__class__ = EvalCase
    return case


def as_cases(items: Iterable[EvalCase | Mapping[str, Any]]) -> Dataset:
    """Cases from EvalCase objects or plain dicts (the module's minimal records)."""
    lines = [json.dumps(c.to_dict() if isinstance(c, EvalCase) else dict(c)) for c in items]
    return parse_lines(lines)


def unwritable(cases: Iterable[EvalCase]) -> list[Problem]:
    """What cases built in memory hold that no JSONL line can (each named by its case and field):
    a lone surrogate, an infinite or NaN number (a file's line is refused for them as it is read)."""
    out: list[Problem] = []
    for c in cases:
        bad = surrogate_field(c.to_dict())
        if bad is not None:
            out.append(Problem(None, bad, f"case {c.id!r}: {SURROGATE_REASON}"))
        numbers = {"metadata": c.metadata, "expected_tools": c.expected_tools}
        out.extend(Problem(None, p, f"case {c.id!r}: {_NON_FINITE}") for p in non_finite_paths(numbers))
    return out


def save_cases(cases: Iterable[EvalCase], path: str | os.PathLike[str]) -> Path:
    """Write cases as canonical JSONL, atomically; duplicate ids are refused."""
    items = list(cases)
    dup = [cid for cid, n in Counter(c.id for c in items).items() if n > 1]
    if dup:
        raise DatasetError(str(path), [Problem(None, "id", f"duplicate id {d!r}") for d in dup])
    bad = unwritable(items)
    if bad:  # (json would write Infinity or NaN, and the file would not load again; a surrogate not at all)
        raise DatasetError(str(path), bad)
    text = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in items)
    atomic_write_text(path, text)
    return Path(path)


def dataset_stats(cases: Iterable[EvalCase]) -> dict[str, Any]:
    """Counts by category, risk and kind, and how many cases carry each kind of label."""
    items = list(cases)
    return {
        "n_cases": len(items),
        "fingerprint": fingerprint(items),
        "by_category": dict(Counter(c.category or "(none)" for c in items).most_common()),
        "by_risk": dict(Counter(c.risk or "(none)" for c in items).most_common()),
        "by_kind": dict(Counter(c.kind or "(none)" for c in items).most_common()),
        "with_gold": sum(1 for c in items if c.gold),
        "with_expected_chunks": sum(1 for c in items if c.expected_chunks),
        "with_must_include": sum(1 for c in items if c.must_include),
        "with_must_not_include": sum(1 for c in items if c.must_not_include),
        "with_expected_tools": sum(1 for c in items if c.expected_tools),
    }
