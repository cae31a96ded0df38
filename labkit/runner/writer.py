"""Writing a run's line files: redacted appends flushed per batch of cases, and their repair.

:class:`Writer` appends the cases handed over together to ``results.jsonl`` (one write
call, flushed) after their trace records to ``traces.jsonl`` (one write, flushed), all
redacted first, so a process killed at any moment leaves whole lines and at most a torn
last line, which :func:`truncate_torn_tail` cuts; a case counts as done only after.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from labkit.paths import owner_only, truncate_torn_tail
from labkit.resultline import RUNNER_FIELDS, SCORED_UNREDACTED
from labkit.runs import RunDir
from labkit.trace.record import dumps_trace

__all__ = ["LINES_IN_MEMORY_BYTES", "Writer", "line_head", "truncate_torn_tail"]

LINES_IN_MEMORY_BYTES = 64 * 1024 * 1024
#: Runner fields kept as they are through redaction (``error`` text and ``error_type``, the name of
#: an exception class the pipeline's code chose, are redacted like content).
_IDS_AND_STATES = tuple(k for k in RUNNER_FIELDS if k not in ("error", "error_type"))
_KEPT = frozenset(_IDS_AND_STATES)
_encode_result = json.JSONEncoder(ensure_ascii=False).encode
#: What a line records of its scores before redaction, from the line as returned and as written.
Restore = Callable[[Mapping[str, Any], Mapping[str, Any]], "dict[str, Any] | None"]


class Writer:
    """Appends redacted lines to results.jsonl and traces.jsonl, flushed per case."""

    def __init__(self, rd: RunDir, redactor: Any, *, restore: Restore | None = None) -> None:
        """``redactor``: the run's redactor; ``restore(line, written)``: what a line records of its
        scores before redaction (``scored_unredacted``), None for nothing."""
        self.rd = rd
        self.redactor = redactor
        self.restore = restore
        self._res: IO[str] = open(rd.results_path, "a", encoding="utf-8", opener=owner_only)  # noqa: SIM115
        self._tr: IO[str] = open(rd.traces_path, "a", encoding="utf-8", opener=owner_only)  # noqa: SIM115
        # lines written by this session, kept (within a memory budget) so the final
        # reordering need not read the file back
        self.lines: dict[str, tuple[str, str, bool]] | None = {}
        self._budget = LINES_IN_MEMORY_BYTES
        self._fresh = os.fstat(self._res.fileno()).st_size == 0  # results.jsonl held no line before
        self._appended = 0  # result lines this writer appended

    def redact_result(self, res: Mapping[str, Any]) -> dict[str, Any]:
        """The line as written: the pipeline's fields redacted, the ids and states the runner set
        (not content) as they are, in the line's order."""
        fields = {k: v for k, v in res.items() if k not in _KEPT}
        unchanged = getattr(self.redactor, "unchanged_json", None)
        if unchanged is not None and unchanged(fields) is not None:
            return dict(res)  # nothing in the pipeline's fields can change: the line as it is
        redacted = iter(self.redactor.redact(fields).items())  # every key kept, in order (maybe renamed)
        out: dict[str, Any] = {}
        for k, v in res.items():
            if k in _KEPT:
                out[k] = v
            else:
                nk, nv = next(redacted)
                out[nk] = nv
        return out

    def write(self, result: Mapping[str, Any], traces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.write_many([(result, traces)])[0]

    def write_many(self, items: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
        """Append the cases' trace lines (one write, flushed), then their result lines (one write,
        flushed): a case's result line is on disk only after its traces, and both are before the
        caller counts the case as done. Returns the redacted result lines."""
        dumps = getattr(self.redactor, "dumps_line", None) or (lambda t: dumps_trace(self.redactor.redact(t)))
        traces = "".join(dumps(t) for _, ts in items for t in ts)
        if traces:
            self._tr.write(traces)
            self._tr.flush()
        reds = [self.redact_result(result) for result, _ in items]
        if self.restore is not None:
            for (result, _), red in zip(items, reds, strict=True):
                if (rec := self.restore(result, red)) is not None:
                    red[SCORED_UNREDACTED] = rec
        lines = [_encode_result(red) + "\n" for red in reds]
        self._res.write("".join(lines))
        self._res.flush()
        self._appended += len(lines)
        if self.lines is not None:
            for red, line in zip(reds, lines, strict=True):
                self._budget -= len(line)
                if self._budget < 0:
                    self.lines = None
                    break
                self.lines[red["case_id"]] = (line, red["status"], bool(red.get("from_cache")))
        return reds

    def holds_exactly(self, case_ids: Sequence[str]) -> bool:
        """Whether results.jsonl is the lines of ``case_ids``, in that order, and nothing else: it
        was empty when this writer opened it, and this writer appended those lines, in that order."""
        lines = self.lines
        return (lines is not None and self._fresh and self._appended == len(lines) == len(case_ids)
                and list(lines) == list(case_ids))

    def close(self) -> None:
        self._res.close()
        self._tr.close()


_HEAD = re.compile(r'^\{"case_id": ("(?:[^"\\]|\\.)*"), "status": "(ok|error|timeout|blocked)"')


def line_head(raw: str) -> tuple[str, str, bool]:
    """(case_id, status, from_cache) of a results line, without parsing all of it when it
    starts the way the runner writes it."""
    m = _HEAD.match(raw)
    if m is None:
        obj = json.loads(raw)
        return str(obj["case_id"]), str(obj.get("status", "ok")), bool(obj.get("from_cache"))
    # inside JSON strings every quote is escaped, so this key/value pair cannot be content
    return json.loads(m.group(1)), m.group(2), '"from_cache": true' in raw
