import json

import pytest

from labkit.cases import (
    KINDS,
    RISKS,
    EvalCase,
    as_cases,
    dataset_stats,
    derive_id,
    fingerprint,
    load_cases,
    parse_lines,
    save_cases,
)
from labkit.errors import DatasetError


def write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_minimal_module_record_is_valid_and_gets_derived_id(tmp_path):
    rec = {"question": "How do I reset an expired API key?", "expected_source": "security-runbook",
           "must_include": ["identity verification", "security portal"]}
    ds = load_cases(write(tmp_path, [json.dumps(rec)]))
    (case,) = ds
    assert case.id == derive_id(rec["question"])
    assert case.id.startswith("q-") and len(case.id) == 14
    assert case.gold == ("security-runbook",) and case.gold_level == "source"


def test_every_bad_line_reported_and_nothing_loaded(tmp_path):
    p = write(tmp_path, [
        '{"id": "a", "question": "fine"}',
        '{"id": "b", "question": ',                       # 2 malformed
        '{"id": "a", "question": "dup"}',                 # 3 duplicate id
        '{"id": "c"}',                                     # 4 missing question
        '{"id": "d", "question": "  "}',                  # 5 empty question
        '{"id": "e", "question": "q", "must_include": "x"}',   # 6 wrong type
        '{"id": "f", "question": "q", "tags": {"kind": "weird", "risk": "extreme"}}',  # 7 enums
        '{"id": "g", "question": "q", "expected_tools": [{"args": {}}]}',  # 8 tool without name
        '{"id": "h", "question": "q", "must_includes": ["typo"]}',  # 9 unknown field
    ])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    err = ei.value
    by_line = {}
    for prob in err.problems:
        by_line.setdefault(prob.line, []).append(prob)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "malformed JSON" in by_line[2][0].reason
    assert by_line[3][0].field == "id" and "duplicate" in by_line[3][0].reason
    assert by_line[4][0].field == "question" and by_line[4][0].reason == "missing"
    assert by_line[5][0].field == "question"
    assert by_line[6][0].field == "must_include"
    assert {p.field for p in by_line[7]} == {"tags.kind", "tags.risk"}
    assert by_line[8][0].field == "expected_tools[0]"
    assert by_line[9][0].field == "must_includes"
    assert str(p) in str(err)


def test_derived_ids_collide_on_same_question():
    with pytest.raises(DatasetError) as ei:
        parse_lines(['{"question": "same"}', '{"question": "same"}'])
    assert ei.value.problems[0].line == 2


def test_roundtrip_and_fingerprint_is_order_free(tmp_path):
    ds = load_cases("data/golden.jsonl")
    out = save_cases(ds, tmp_path / "copy.jsonl")
    again = load_cases(out)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in ds]
    assert again.fingerprint == ds.fingerprint
    assert fingerprint(reversed(ds.cases)) == ds.fingerprint
    changed = [*ds.cases[:-1], EvalCase(ds.cases[-1].id, ds.cases[-1].question + "?")]
    assert fingerprint(changed) != ds.fingerprint


def test_save_refuses_duplicates_and_leaves_no_file(tmp_path):
    target = tmp_path / "x.jsonl"
    with pytest.raises(DatasetError):
        save_cases([EvalCase("a", "q1"), EvalCase("a", "q2")], target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_as_cases_from_dicts_and_stats():
    ds = as_cases([
        {"question": "q1", "tags": {"risk": "high", "kind": "adversarial"}},
        EvalCase("x", "q2", expected_chunks=("doc#1",), tags={"risk": "low"}),
    ])
    st = dataset_stats(ds)
    assert st["n_cases"] == 2
    assert st["by_risk"] == {"high": 1, "low": 1}
    assert st["by_kind"] == {"adversarial": 1, "(none)": 1}
    assert st["with_expected_chunks"] == 1
    assert ds.where(risk="high")[0].question == "q1"


def test_from_dict_raises_without_line():
    with pytest.raises(DatasetError) as ei:
        EvalCase.from_dict({"question": 3})
    assert ei.value.problems[0].line is None
    assert ei.value.problems[0].field == "question"


@pytest.mark.parametrize("line, field, reason", [
    ('{"id": "a", "question": "q", "question": "other"}', "question", "duplicate key"),
    ('{"id": "a", "question": "q", "metadata": {"w": NaN}}', None, "NaN"),
    ('{"id": "a", "question": "q", "metadata": {"w": Infinity}}', None, "Infinity"),
    ('{"id": "a", "question": "q", "metadata": {"w": -Infinity}}', None, "Infinity"),
])
def test_duplicate_keys_and_non_finite_literals_are_errors(tmp_path, line, field, reason):
    p = write(tmp_path, ['{"id": "ok", "question": "fine"}', line])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    (prob,) = ei.value.problems
    assert prob.line == 2 and reason in prob.reason
    if field:
        assert field in prob.reason


def test_deeply_nested_json_is_an_error_not_a_recursion_error(tmp_path):
    deep = '{"id": "a", "question": "q", "metadata": ' + '{"x": ' * 100_000 + "1" + "}" * 100_000 + "}"
    p = write(tmp_path, [deep])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    assert ei.value.problems[0].line == 1 and "nested" in ei.value.problems[0].reason


def test_lone_surrogate_is_an_error_naming_the_field(tmp_path):
    p = write(tmp_path, ['{"id": "a", "question": "broken \\ud800 text"}'])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    (prob,) = ei.value.problems
    assert prob.line == 1 and prob.field == "question" and "surrogate" in prob.reason


def test_empty_dataset_is_an_error(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    assert "no cases" in str(ei.value) and str(p) in str(ei.value)


def test_strict_line_decoder_is_shared_by_results_reviews_and_traces(tmp_path):
    from labkit.gate import load_reviews
    from labkit.runs import read_results
    from labkit.trace.record import load_traces

    dup = '{"case_id": "a", "case_id": "b", "status": "ok", "answer": "x"}\n'
    for reader, text in ((read_results, dup), (load_reviews, dup.replace('"status": "ok", "answer": "x"',
                          '"reviewer": "r", "verdict": "pass", "at": "2026-01-01"')),
                         (load_traces, '{"trace_id": "t", "trace_id": "u"}\n')):
        p = tmp_path / f"{reader.__name__}.jsonl"
        p.write_text(text, encoding="utf-8")
        with pytest.raises(DatasetError) as ei:
            reader(p)
        assert "duplicate key" in str(ei.value) and "line 1" in str(ei.value), reader.__name__


@pytest.mark.parametrize("line", ['{"id": "a", "question": "q", "tags": {"category": "x\\uDBFF"}}',
                                  '{"id": "a", "question": "q", "tags": {"category": "x\ud800"}}'])
def test_a_lone_surrogate_is_found_upper_case_escaped_or_as_a_character(line):
    """The cheap test before the walk (labkit.io.may_hold_surrogate) lets no lone surrogate through."""
    from labkit.cases import parse_lines

    with pytest.raises(DatasetError) as ei:
        parse_lines([line])
    (prob,) = ei.value.problems
    assert prob.field == "tags.category" and "surrogate" in prob.reason


# --- the fingerprint's canonical bytes: orjson where it writes json's bytes -----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_meta = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**66), max_value=2**66) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400)
@given(st.text(min_size=1), st.dictionaries(st.text(), st.text(), max_size=4),
       st.dictionaries(st.text(max_size=5), _meta, max_size=3), st.lists(st.text(min_size=1), max_size=3))
def test_canonical_bytes_are_what_json_writes(question, tags, metadata, phrases):
    import json

    from labkit.cases import canonical_bytes

    obj = {"id": "q", "question": question, "tags": tags, "metadata": metadata, "must_include": phrases,
           "expected_source": None}
    want = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert canonical_bytes(obj) == want


# --- the parse's quick acceptance of a decoded line: the case its exact checks build, or they decide --

_words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)  # no lone surrogate
_blank = st.sampled_from(["", " ", "\t\n", "\u3000", "\x1c", "\x85"])
_other = st.sampled_from([0, 1.5, True, False, [], {}, ["x"], {"x": "y"}])  # not a string
_string = _words | _blank
_maybe_str = st.none() | _string | _other
_str_list = st.none() | st.lists(_string, max_size=3) | st.lists(_string | _other, max_size=3) | _string | _other
_tag_key = st.sampled_from(["kind", "risk", "category"]) | _words
_tag_text = st.sampled_from([*KINDS, *RISKS, "x", "Low", " low", ""]) | _words
_tags = (st.none() | _other | st.dictionaries(_tag_key, _tag_text | _maybe_str, max_size=4)
         | st.fixed_dictionaries({"kind": _tag_text}, optional={"risk": st.sampled_from(RISKS), "category": _words})
         | st.fixed_dictionaries({"risk": _tag_text}, optional={"kind": st.sampled_from(KINDS), "category": _words}))
_json = st.recursive(st.none() | st.booleans() | st.integers() | _words,
                     lambda kids: st.lists(kids, max_size=2) | st.dictionaries(_words, kids, max_size=2), max_leaves=4)
_tool = st.fixed_dictionaries({}, optional={"name": _maybe_str, "args": st.dictionaries(_words, _json, max_size=2) | _json,
                                            "extra": _json}) | _json
_tools = st.none() | st.lists(_tool, max_size=3) | _other | _string
_field_values = {"id": _maybe_str, "question": _maybe_str, "expected_source": _maybe_str,
                 "reference_answer": _maybe_str, "expected_chunks": _str_list, "must_include": _str_list,
                 "must_not_include": _str_list, "expected_tools": _tools, "tags": _tags,
                 "metadata": st.none() | st.dictionaries(_words, _json, max_size=3) | _json}
_text = _words.filter(str.strip)
_valid_values = {"id": st.none() | _text, "expected_source": st.none() | _text, "reference_answer": st.none() | _text,
                 "expected_chunks": st.none() | st.lists(_text, max_size=3), "must_include": st.lists(_text, max_size=3),
                 "must_not_include": st.lists(_text, max_size=3),
                 "expected_tools": st.none() | st.lists(st.fixed_dictionaries(
                     {"name": _text}, optional={"args": st.dictionaries(_words, _json, max_size=2)}), max_size=2),
                 "tags": st.none() | st.fixed_dictionaries({}, optional={
                     "kind": st.sampled_from(KINDS), "risk": st.sampled_from(RISKS), "category": _words, "x": _words}),
                 "metadata": st.none() | st.dictionaries(_words, _json, max_size=3)}


_off_values = {**_field_values, "tag": _json, "Question": _words}  # and two unknown fields


def _one_field_off(key: str):
    """A line valid but for (maybe) the field ``key``, of any value and type."""
    others = {k: v for k, v in _valid_values.items() if k != key}
    return st.fixed_dictionaries({"question": _text, key: _off_values[key]}, optional=others)


_line = (st.fixed_dictionaries({"question": _text}, optional=_valid_values)  # valid: each field of each shape
         | st.sampled_from(sorted(_off_values)).flatmap(_one_field_off)
         | st.sampled_from(["tags", "expected_tools"]).flatmap(_one_field_off)  # (the fields of most rules)
         | st.fixed_dictionaries({}, optional=_off_values)
         | _json)  # no object


def _shape(x):
    """A value with the type of every part in it (a tuple is not a list; dicts keep their order)."""
    if isinstance(x, dict):
        return ("dict", [(_shape(k), _shape(v)) for k, v in x.items()])
    if isinstance(x, list | tuple):
        return (type(x).__name__, [_shape(v) for v in x])
    return ("str" if isinstance(x, _Str) else type(x).__name__, x)  # (a text given as a subclass: the same text)


class _Dict(dict):  # containers a decoder never gives: each field's quick test declines them
    pass


class _List(list):
    pass


class _Str(str):
    pass


def _wrapped(obj):
    """A decoded line whose fields' texts, lists and tags are of a subclass: the parse takes its exact checks."""
    if not isinstance(obj, dict):
        return obj
    out = _Dict(obj)
    for key, val in obj.items():
        if isinstance(val, list) and key in ("expected_chunks", "must_include", "must_not_include", "expected_tools"):
            out[key] = _List(val)
        elif key == "tags" and isinstance(val, dict):
            out[key] = _Dict(val)
        elif key in ("question", "expected_source", "reference_answer") and isinstance(val, str):
            out[key] = _Str(val)
    return out


@settings(max_examples=2000)
@given(_line)
def test_a_plain_line_is_the_case_the_field_by_field_parse_builds(line):
    from labkit.cases import FIELDS, _parse
    from labkit.io import loads_line

    text = json.dumps(line)
    case, problems = _parse(_wrapped(loads_line(text)), 7)  # field by field, the exact checks
    obj = loads_line(text)  # what the loader hands over: a decoded line (its own strings)
    plain, plain_problems = _parse(obj, 7)
    assert plain_problems == problems
    if problems:  # an invalid line: the exact checks name its problems
        assert plain is None
        return
    assert type(plain) is EvalCase and plain == case
    assert [_shape(getattr(plain, f)) for f in FIELDS] == [_shape(getattr(case, f)) for f in FIELDS]
    assert all(plain.tags[k] is v for k, v in case.tags.items())  # both interned
    assert plain.metadata is not obj.get("metadata")


def test_a_plain_case_is_frozen_and_behaves_as_one_built_by_its_init():
    import dataclasses
    import pickle

    from labkit.cases import _parse

    obj = {"id": "a", "question": "q?", "tags": {"kind": "failure"}, "expected_tools": [{"name": "t"}]}
    plain = _parse(obj, 1)[0]
    built = EvalCase("a", "q?", expected_tools=({"name": "t", "args": {}},), tags={"kind": "failure"})
    assert plain == built and repr(plain) == repr(built)
    assert pickle.loads(pickle.dumps(plain)) == built and dataclasses.replace(plain, id="b").id == "b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.id = "b"


def test_duplicate_ids_and_blank_lines_as_before(tmp_path):
    lines = ['{"id": "a", "question": "one"}', " \t", '{"id": "b", "question": "two"}', "\u3000\x1c",
             '{"id": "a", "question": "three"}', '{"question": "two"}', '{"question": "two"}', ""]
    for load in (lambda: parse_lines(lines), lambda: load_cases(write(tmp_path, lines))):
        with pytest.raises(DatasetError) as ei:
            load()
        assert [(p.line, p.field, p.reason) for p in ei.value.problems] == [
            (5, "id", "duplicate id 'a' (first on line 1)"),
            (7, "id", f"duplicate id {derive_id('two')!r} (first on line 6)")]


def test_a_line_that_repeats_the_id_of_an_invalid_line_is_named_too(tmp_path):
    """``dataset validate`` "lists every bad line": a line repeating the id of a line refused for
    another field was named only after that line was fixed."""
    lines = ['{"id": "a1", "question": "one", "must_includes": ["x"]}', '{"id": "a1", "question": "two"}',
             '{"id": "b", "question": ""}', '{"id": "b", "question": "four"}']
    for load in (lambda: parse_lines(lines), lambda: load_cases(write(tmp_path, lines))):
        with pytest.raises(DatasetError) as ei:
            load()
        got = [(p.line, p.field) for p in ei.value.problems]
        assert got == [(1, "must_includes"), (2, "id"), (3, "question"), (4, "id")], got
        assert "duplicate id 'a1' (first on line 1)" in str(ei.value)


def test_a_dataset_line_that_is_not_utf8_is_named_beside_every_other_bad_line(tmp_path):
    p = tmp_path / "ds.jsonl"
    p.write_bytes(b'{"id": "a", "question": "ok?"}\n{bad\n{"id": "b", "question": "caf\xc3?"}\n'
                  b'{"id": "c", "question": ""}\n')
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    assert [(pr.line, pr.field) for pr in ei.value.problems] == [(2, None), (3, None), (4, "question")]
    assert "UTF-8" in ei.value.problems[1].reason


def test_the_fingerprint_is_its_formula_for_numbers_in_expected_tool_args():
    """sha256 over json.dumps(case, sort_keys, compact, ensure_ascii=False) of the cases by id:
    a float in a tool's args (1e-05, 1e-07) too, which a faster writer may spell otherwise."""
    import hashlib

    ds = as_cases([{"id": "a", "question": "q?", "expected_tools": [{"name": "search", "args": {"t": 1e-05}}]},
                   {"id": "b", "question": "q?", "expected_tools": [{"name": "s", "args": {"x": 1e-07, "n": 3}}]}])
    want = hashlib.sha256(b"".join(
        json.dumps(c.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for c in sorted(ds, key=lambda c: c.id))).hexdigest()
    assert fingerprint(ds) == want


def test_a_tag_value_of_a_str_subclass_is_read_as_its_text():
    class Text(str):
        pass

    case = EvalCase.from_dict({"question": "q?", "tags": {"category": Text("billing")}})
    assert case.tags == {"category": "billing"} and type(case.tags["category"]) is str


def test_a_case_built_in_memory_is_refused_with_a_lone_surrogate_as_a_file_line_is():
    with pytest.raises(DatasetError) as ei:
        EvalCase.from_dict({"question": "q\ud800?"})
    assert ei.value.problems[0].field == "question" and "surrogate" in ei.value.problems[0].reason


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"question": "q?", "metadata": {"n": 1e400}}', "metadata.n"),
        ('{"question": "q?", "metadata": {"runs": [1, -1e999]}}', "metadata.runs[1]"),
        ('{"question": "q?", "expected_tools": [{"name": "t", "args": {"limit": 2e308}}]}',
         "expected_tools[0].args.limit"),
    ],
)
def test_a_number_beyond_a_double_is_refused_at_its_line_and_field(tmp_path, line, field):
    """JSON reads 1e400 as infinity, which JSON cannot write back: a dataset holding one would
    save as ``Infinity`` and never load again."""
    p = write(tmp_path, ['{"question": "fine?"}', line])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    (prob,) = ei.value.problems
    assert (prob.line, prob.field) == (2, field) and "finite" in prob.reason, prob


def test_a_case_built_in_memory_with_an_infinite_number_is_refused_and_nothing_is_saved(tmp_path):
    with pytest.raises(DatasetError) as ei:
        EvalCase.from_dict({"question": "q?", "metadata": {"score": float("nan")}})
    assert ei.value.problems[0].field == "metadata.score"
    built = EvalCase(id="c1", question="q?", metadata={"deep": {"x": float("inf")}})
    out = tmp_path / "d.jsonl"
    with pytest.raises(DatasetError) as ei:
        save_cases([EvalCase(id="c0", question="fine?"), built], out)
    prob = ei.value.problems[0]
    assert prob.field == "metadata.deep.x" and "c1" in prob.reason and not out.exists(), prob


def test_an_explicit_null_id_is_a_field_error_not_a_derived_id(tmp_path):
    """``"id": null`` is no id (the format's id is a string; only a case without the field gets
    the derived one): it was read as if the field were absent, so the case silently took an id
    derived from its question, which moves whenever the question is edited."""
    p = write(tmp_path, ['{"id": "a", "question": "fine"}', '{"id": null, "question": "What is up?"}',
                         '{"question": "derived"}'])
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    (prob,) = ei.value.problems
    assert (prob.line, prob.field) == (2, "id") and "got null" in prob.reason, prob
    assert str(p) in str(ei.value) and "line 2 field 'id'" in str(ei.value)
    with pytest.raises(DatasetError, match=r"^id: must be a non-empty string, got null"):
        EvalCase.from_dict({"id": None, "question": "q"})
    assert EvalCase.from_dict({"question": "q"}).id == derive_id("q")  # absent: derived, as documented


def test_an_id_with_whitespace_around_it_is_refused_at_its_line(tmp_path):
    """``"c "`` and ``"c"`` were two cases: a results line, a review or a feedback record for the
    one could not be told from the other by eye. An id is written without whitespace around it."""
    p = tmp_path / "ds.jsonl"
    p.write_text('{"id": "c", "question": "q1?"}\n{"id": "c ", "question": "q2?"}\n{"id": "\\tc2", "question": "q3?"}\n'
                 '{"id": "has space", "question": "q4?"}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        load_cases(p)
    got = [(q.line, q.field, q.reason) for q in e.value.problems]
    assert got == [(2, "id", "must not begin or end with whitespace, got 'c '"),
                   (3, "id", "must not begin or end with whitespace, got '\\tc2'")], got


@pytest.mark.parametrize("bad", ["sec-001\x1b[2Kx", "a\x07b", "a\u202eb", "a\u2066b", "a\x85b", "a\x7fb"])
def test_an_id_with_a_control_or_direction_character_is_refused_at_its_line(bad):
    """An id holding ESC, BEL or a right-to-left override was valid: printed by `labkit gate` it
    erased a FAIL line and wrote a fake PASS in the terminal, and in the JUnit file it made the XML
    not well-formed. Such an id is refused naming its line and field."""
    with pytest.raises(DatasetError) as e:
        parse_lines(['{"id": "fine", "question": "q?"}', json.dumps({"id": bad, "question": "q?"})])
    pr = e.value.problems[0]
    assert (pr.line, pr.field) == (2, "id") and "control" in pr.reason, pr


def _mixed_lines(n: int, seed: int, *, bad: bool) -> list[bytes]:
    """``n`` dataset lines of every shape a case takes (seeded); with ``bad``, lines refused for each
    reason a dataset names, spread over the file: a field off, malformed JSON, bytes that are not
    UTF-8, an id given twice (the first far earlier), a line repeating the id of a refused line."""
    import random

    rnd = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        case: dict = {"id": f"c{i}", "question": f"question {i} {'x' * rnd.randrange(40)}?",
                      "tags": {"category": rnd.choice(["billing", "security"]), "kind": rnd.choice(KINDS)}}
        if i % 3 == 0:
            case["expected_source"] = f"doc{i % 7}"
        if i % 4 == 0:
            case["expected_chunks"] = [f"doc{i % 7}#0", f"doc{i % 7}#1"]
            case["must_include"] = ["reset", "portal"]
        if i % 5 == 0:
            case["metadata"] = {"n": i, "w": i / 7, "nested": {"list": [1, None, True, "s"]}}
            case["expected_tools"] = [{"name": "lookup", "args": {"id": i, "x": 0.5}}]
        if i % 6 == 0:
            del case["id"]  # (a derived id)
        out.append(json.dumps(case, ensure_ascii=i % 2 == 0).encode())
        if bad and i % 37 == 5:
            out.append(([b'{"id": "c1", "question": "again"}', b'{"id": "z%d", "question": ""}' % i,
                        b'{"question": "caf\xc3?"}', b"{bad", b"   ",
                        b'{"id": "c%d", "question": "q", "must_includes": ["x"]}' % (n + i),
                        b'{"id": "c%d", "question": "repeats a refused line"}' % (n + i - 37)])[i // 37 % 7])  # (each kind in turn)
    return out


@pytest.mark.parametrize("bad", [False, True], ids=["valid", "with bad lines"])
@pytest.mark.parametrize("way", ["side by side", "no fork", "process lost"])
def test_a_large_dataset_parsed_side_by_side_is_the_dataset_one_process_parses(tmp_path, monkeypatch, bad, way):
    """A dataset file past PARALLEL_PARSE_BYTES is parsed in parts, about half of them in a forked
    process: the same cases (each field's value and type), the same lines, the same fingerprint,
    and for a file with bad lines the same problems in the same order, as one process gives --
    also when the fork is refused or the forked process is killed."""
    import functools
    import os

    from forks import forked_first, kill_in_child, refuse_forks

    from labkit import cases as cases_mod
    from labkit import forks

    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(_mixed_lines(600, 7, bad=bad)) + b"\n")
    monkeypatch.setattr(cases_mod, "PART_BYTES", 2_000)  # parts of a few lines each

    def loaded():
        try:
            ds = load_cases(path)
        except DatasetError as e:
            return [(p.line, p.field, p.reason) for p in e.problems]
        return ([(c, [type(getattr(c, f)) for f in EvalCase.__slots__]) for c in ds], ds.lines, ds.fingerprint)

    monkeypatch.setattr(forks, "usable_cpus", lambda: 1)
    want = loaded()
    assert bool(bad) == isinstance(want, list) and len(want if bad else want[0]) > (10 if bad else 500)
    monkeypatch.setattr(forks, "usable_cpus", lambda: 2)
    monkeypatch.setattr(cases_mod, "PARALLEL_PARSE_BYTES", 1)  # every file side by side
    pids = tmp_path / "pids"
    real = forks._in_child

    @functools.wraps(real)  # (sent by name: the forked process finds this one)
    def recorded(token):
        got = real(token)
        with pids.open("a") as f:
            f.write(f"{os.getpid()}\n" * len(got))
        return got

    monkeypatch.setattr(forks, "_in_child", recorded)
    if way == "side by side":
        forked_first(monkeypatch)
    elif way == "no fork":
        refuse_forks(monkeypatch)
    elif way == "process lost":
        kill_in_child(monkeypatch, forks, "_in_child")
    assert loaded() == want
    if way == "side by side":
        got = pids.read_text().split()
        assert len(set(got)) == 1 and got[0] != str(os.getpid()) and len(got) >= 3, got  # parts parsed there


@pytest.mark.parametrize("cpus", [2, 1])
def test_the_callers_own_work_is_done_once_while_a_forked_process_parses(tmp_path, monkeypatch, cpus):
    """``load_cases(meanwhile=...)``: the caller's work (scoring's imports) is done once in this
    process while the forked one parses, and not at all when nothing is forked."""
    import os

    from labkit import cases as cases_mod
    from labkit import forks

    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(_mixed_lines(300, 3, bad=False)) + b"\n")
    monkeypatch.setattr(cases_mod, "PART_BYTES", 2_000)
    monkeypatch.setattr(cases_mod, "PARALLEL_PARSE_BYTES", 1)
    monkeypatch.setattr(forks, "usable_cpus", lambda: cpus)
    done: list[int] = []
    ds = load_cases(path, meanwhile=lambda: done.append(os.getpid()))
    assert len(ds) == 300 and done == ([os.getpid()] if cpus == 2 else [])


def test_a_dataset_read_from_a_pipe_loads_as_from_a_file(tmp_path):
    """A dataset given as a pipe (``<(...)``, a FIFO) has no size to cut into parts: it is read as
    it comes, every line, as a file of the same lines is."""
    import os
    import threading

    lines = [json.dumps({"id": f"p{i}", "question": f"question {i}?"}) for i in range(50)]
    fifo = tmp_path / "ds.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("\n".join(lines) + "\n"), daemon=True)
    writer.start()
    ds = load_cases(fifo)
    writer.join(5)
    assert [c.id for c in ds] == [f"p{i}" for i in range(50)] and ds.lines == tuple(range(1, 51))
