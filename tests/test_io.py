"""labkit.io.loads_document: a whole JSON file decoded as strictly as a JSONL line, objects
knowing their line (how a peer tool's JSON export is read)."""

from __future__ import annotations

import json

import pytest

from labkit.io import LinedDict, StrictJSONError, loads_document


def test_objects_know_their_line():
    doc = loads_document('[\n {"a": 1,\n  "b": {"c": 2}},\n\n {"x": [{"y": 1}]}\n]\n')
    assert [o.line for o in doc] == [2, 5]
    assert doc[0]["b"].line == 3 and doc[1]["x"][0].line == 5
    assert isinstance(doc[0], LinedDict) and doc == [{"a": 1, "b": {"c": 2}}, {"x": [{"y": 1}]}]


@pytest.mark.parametrize(("text", "line", "what"), [
    ('{"a": 1,\n "a": 2}', 2, "duplicate key"),
    ('[1,\n NaN]', 2, "NaN"),
    ('{"a":\n [1,]}', 2, "Expecting value"),
])
def test_refuses_what_loads_line_refuses_at_its_line(text, line, what):
    with pytest.raises(json.JSONDecodeError) as e:
        loads_document(text)
    assert e.value.lineno == line and what in e.value.msg


def test_deep_nesting_is_refused():
    with pytest.raises(StrictJSONError):
        loads_document("[" * 300 + "]" * 300)


def test_jsonl_objects_names_each_bad_line_and_keeps_the_good_ones(tmp_path):
    from labkit.errors import Problem
    from labkit.io import jsonl_objects

    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n[1, 2]\n{"a": 1, "a": 2}\n{"b": 2}\n{"c": ')
    problems: list[Problem] = []
    rows = jsonl_objects(p, problems)
    assert rows == [(1, {"a": 1}), (4, {"b": 2})]
    assert [pr.line for pr in problems] == [2, 3, 5]
    assert "got list" in problems[0].reason and "truncated last line" in problems[2].reason
