"""The redactor's fast path: ``Redactor.dumps_line(obj)`` is always exactly
``dumps_trace(Redactor.redact(obj))``, and ``unchanged_json`` says "unchanged" only for a
value the walk returns as it is; on shipped data, planted secrets and random records."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit import patterns
from labkit.trace.record import dumps_trace
from labkit.trace.redact import DEFAULT_SKIP_KEYS, SPAN_ID_KEYS, Redactor
from labkit.trace.synth import synthetic_traces
from tests.test_redact import every_rule

#: A secret registered the way labkit registers the API key it read (whatever its format).
LITERAL = "PLANTEDliteralvalue0042"
patterns.register_secret(LITERAL)

#: Pieces strings are made of: a sample of every format of the catalogue, the words and
#: separators the formats and the key rules start from, labkit's own id keys, characters JSON
#: escapes, characters case-insensitive matching folds to ASCII, Unicode digits and spaces.
FRAGMENTS = [
    "sk-proj-PLANTEDabcdefghijklmnop0123", "sk-ant-api03-abcdefghijklmnopqrstuv", "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1" * 18, "github_pat_" + "b2" * 12, "AIza" + "c" * 35, "xoxb-1234567890-abcdef",
    "sk_live_" + "d4" * 9, "hf_" + "e5" * 16, "glpat-" + "f6" * 11, "npm_" + "g7" * 16,
    "AccountKey=" + "h8" * 10, "ya29.abcdefghijkl", "Bearer abcdefghijkl", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    "https://user:pw@host.example", "eyJhbGciOiJI.eyJzdWIiOiIx.abcdefghij", "Authorization: Token abc123def",
    "password=hunter22x", "DB_PASSWORD: s3cr3t!", "licenseKey: ab12cd34ef56gh78", "key=Zx9Yw8Vu7Ts6Rq5P",
    "jane@example.com", "GB82 WEST 1234 5698 7654 32", "123-45-6789", "4111 1111 1111 1111", "4111111111111111",
    "192.168.1.20", "fe80::1ff:fe23:4567:890a", "+44 20 7946 0958", "(555) 123-4567", "555.123.4567",
    "phone: 5551234567", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
    "https://hooks.slack.com/services/T000/B000/XXXXXXXX", LITERAL,
    "api_key", "client_secret", "token", "phone", "mobile_number", "tel", "key", "auth", "secret\n",
    *sorted(DEFAULT_SKIP_KEYS), "spans", "15a12711751408298c80e8bca85ca385", "2121212121212121", "1234567890123",
    "case-0000123", "How do I handle request 123?", "ok", "doc-3#1", "v1.2.3.4", "std::vector",
    "\n", '"', "\\", "\t", "\x0b", "\x00", "\x1f", "ſ", "K", "ı", "٣٤٥", "\u00a0", "\u2028", " ", ":", "=", "-",
    ".", "@", "_", "+", "(", ")",
]

pieces = st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet="ab1290 -_.:@=+()\nA", max_size=6))
strings = st.lists(pieces, max_size=4).map("".join)
keys = st.one_of(st.sampled_from(FRAGMENTS[-70:]), strings)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                   st.floats(allow_nan=False, allow_infinity=False), strings)
values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
span = st.dictionaries(st.one_of(st.sampled_from(sorted(SPAN_ID_KEYS)), keys), values, max_size=5)
records = st.dictionaries(keys, values, max_size=6).flatmap(
    lambda d: st.one_of(st.just(d), st.lists(span, max_size=3).map(lambda s: {**d, "spans": s})))

CONFIGS: list[dict[str, Any] | None] = [
    None,
    {"types": ["CARD", "PHONE"]},
    {"types": ["API_KEY", "EMAIL"]},
    {"enabled": False},
    {"capture_content": False},
    {"extra_patterns": {"EMPLOYEE_ID": r"EMP-\d{6}"}},
    {"skip_keys": ["case_id", "trace_id"]},
]


def _reference(cfg: dict[str, Any] | None, obj: Any) -> str:
    return dumps_trace(Redactor.from_config(cfg).redact(obj))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=records, which=st.integers(0, len(CONFIGS) - 1))
def test_dumps_line_is_the_redacted_line(obj: dict[str, Any], which: int) -> None:
    cfg = CONFIGS[which]
    red = Redactor.from_config(cfg)
    for _ in range(2):  # the second time from what the first certified
        assert red.dumps_line(obj) == _reference(cfg, obj)


@settings(max_examples=300, deadline=None)
@given(obj=records)
def test_unchanged_only_when_the_walk_changes_nothing(obj: dict[str, Any]) -> None:
    red = Redactor()
    raw = red.unchanged_json(obj)
    if raw is not None:
        assert json.loads(raw) == json.loads(dumps_trace(Redactor().redact(obj)))
        assert raw.decode() + "\n" == dumps_trace(obj)


@settings(max_examples=300, deadline=None)
@given(text=strings, key=keys)
def test_a_string_anywhere_is_redacted_as_the_walk_does(text: str, key: str) -> None:
    """Each string alone, as a value of any key, inside a list, and as a key."""
    red = Redactor()
    for obj in ({key: text}, {"x": [text, {key: text}]}, {text: 1}, {"spans": [{key: text}]}):
        assert red.dumps_line(obj) == _reference(None, obj)


any_keys = st.one_of(keys, st.integers(-5, 5), st.booleans(), st.none(), st.floats(allow_nan=False))
any_values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(any_keys, inner, max_size=4)), max_leaves=12)
records_any_keys = st.dictionaries(any_keys, any_values, max_size=6).flatmap(
    lambda d: st.one_of(st.just(d), st.lists(st.dictionaries(any_keys, any_values, max_size=4), max_size=3)
                        .map(lambda s: {**d, "spans": s})))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=records_any_keys)
def test_keys_that_are_not_strings_walk_and_match(obj: dict[Any, Any]) -> None:
    red = Redactor()
    assert red.dumps_line(obj) == _reference(None, obj)
    if red.unchanged_json(obj) is not None:  # (only a record of string keys at every depth is certified)
        assert json.loads(red.unchanged_json(obj)) == json.loads(_reference(None, obj))
        assert _all_str_keys(obj)


def _all_str_keys(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(type(k) is str and _all_str_keys(v) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return all(_all_str_keys(v) for v in obj)
    return True


def test_a_key_that_is_not_a_string_walks_at_every_depth() -> None:
    red = Redactor()
    for obj in ({1: "x"}, {"a": {None: "x"}}, {"spans": [{2.5: "x"}]}, {"a": [{True: "x"}]}):
        assert red.unchanged_json(obj) is None, obj
        assert red.dumps_line(obj) == _reference(None, obj)


def test_synthetic_traces_take_the_fast_path_and_match() -> None:
    red = Redactor()
    recs = list(synthetic_traces(300, seed=3))
    assert [red.dumps_line(r) for r in recs] == [_reference(None, r) for r in recs]
    assert sum(red.unchanged_json(r) is not None for r in recs) >= 290


def test_every_planted_secret_is_replaced_in_a_record() -> None:
    red = Redactor()
    base = next(synthetic_traces(1))
    for frag in FRAGMENTS[:36]:
        for field in ("output", "input", "trace_id", "tags"):
            rec = dict(base)
            rec[field] = {"note": f"see {frag} now"} if field == "tags" else f"see {frag} now"
            ref = _reference(None, rec)
            assert red.dumps_line(rec) == ref, (frag, field)
            if field != "trace_id":  # (an own id field is not redacted with the numeric formats)
                assert ref != dumps_trace(rec), (frag, field)
            if ref != dumps_trace(rec):
                assert red.unchanged_json(rec) is None, (frag, field)


def test_a_key_that_steers_its_value_is_never_certified() -> None:
    red = Redactor()
    for key in ("api_key", "OPENAI_API_KEY", "clientSecret", "mobile_number", "phone", "x-auth\n", "paſsword"):
        rec = {"attrs": {key: "555 123 4567"}}
        assert red.unchanged_json(rec) is None, key
        assert red.dumps_line(rec) == _reference(None, rec)


def test_what_the_walk_would_convert_walks() -> None:
    class Sub(str):
        pass

    red = Redactor()
    for obj in ({"a": Sub("x")}, {"a": (1, "b")}, {"a": {1: "x"}}, {"a": "line\nbreak"}, [1, "a"], "text"):
        assert red.dumps_line(obj) == dumps_trace(Redactor().redact(obj))
    assert red.unchanged_json({"a": "line\nbreak"}) is None  # an escape in the JSON: walked


def test_a_secret_registered_later_is_found_in_a_certified_string() -> None:
    red = Redactor()
    rec = {"output": "the value PLANTEDlatevalue0099 here"}
    assert red.unchanged_json(rec) is not None
    patterns.register_secret("PLANTEDlatevalue0099")
    assert red.unchanged_json(rec) is None
    assert "[API_KEY]" in red.dumps_line(rec)


numberish = st.lists(st.one_of(st.sampled_from(["phone ", "tel: ", "call", "+", "(", ")", " ", "-", ".", "٣", "x", "\n"]),
                               st.text(alphabet="0123456789", min_size=1, max_size=5)), max_size=12).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(numberish, strings))
def test_a_gate_never_rules_out_a_valid_match(text: str) -> None:
    """Every format's gate (the cheap test before its pattern runs) finds something in each text
    in which the pattern has a valid match: digits and separators, formats and fragments mixed."""
    for p in patterns.CATALOGUE:
        if p.gate is not None and any(p.valid(m) for m in p.regex.finditer(text)):
            assert p.gate.search(text) is not None, (p.kind, text)


def test_the_number_gates_on_the_catalogue_samples() -> None:
    for text in ("4111 1111 1111 1111", "4111-1111-1111-1111", "4222222222222", "378282246310005",
                 "3782-822463-10005", "+44 20 7946 0958", "+1 (555) 123-4567", "(555) 123-4567",
                 "555.123.4567", "phone: 5551234567", "tel 0201234567"):
        kinds = {f.kind for f in patterns.find(text)}
        assert kinds & {"card", "phone"}, text
        for p in patterns.CATALOGUE:
            if p.kind in kinds and p.gate is not None:
                assert p.gate.search(text), (p.kind, text)


def _old_redact_result(red: Redactor, res: dict[str, Any]) -> dict[str, Any]:
    """The results line as the writer wrote it before the fast path: the pipeline's fields
    walked, the runner's ids and states put back as they are, in the line's order."""
    from labkit.runner.writer import _KEPT

    redacted = iter(red.redact({k: v for k, v in res.items() if k not in _KEPT}).items())
    return _merge(res, redacted, _KEPT)


def _merge(res: dict[str, Any], redacted: Any, kept: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in res.items():
        if k in kept:
            out[k] = v
        else:
            nk, nv = next(redacted)
            out[nk] = nv
    return out


@settings(max_examples=300, deadline=None)
@given(extra=st.dictionaries(keys, values, max_size=5), answer=strings, which=st.integers(0, len(CONFIGS) - 1))
def test_a_results_line_is_redacted_as_before(extra: dict[str, Any], answer: str, which: int) -> None:
    from types import SimpleNamespace

    from labkit.runner.writer import Writer

    res = {"case_id": "c-1", "status": "ok", "answer": answer, **extra, "attempts": 1, "error": None,
           "trace_id": "4111111111111111", "idempotency_key": "41111111111111114111111111111111"}
    red = Redactor.from_config(CONFIGS[which])
    got = Writer.redact_result(SimpleNamespace(redactor=red), res)  # type: ignore[arg-type]
    want = _old_redact_result(Redactor.from_config(CONFIGS[which]), res)
    assert list(got.items()) == list(want.items())


# ---------------------------------------------------------------------------- one redactor, many records

def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``obj`` a string can be planted: each string value, and each key (as
    ``(..., ("key", k))``)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*path, ("key", k)))
            out.extend(_paths(v, (*path, k)) if isinstance(v, dict | list) else [(*path, k)] if isinstance(v, str) else [])
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, (*path, i)) if isinstance(v, dict | list) else [(*path, i)] if isinstance(v, str) else [])
    return out


def _planted(rec: dict[str, Any], path: tuple[Any, ...], text: str) -> dict[str, Any]:
    """A deep copy of ``rec`` with ``text`` at ``path`` (a value replaced, or a key renamed)."""
    out: dict[str, Any] = json.loads(json.dumps(rec))
    *head, last = path
    node: Any = out
    for p in head:
        node = node[p]
    if isinstance(last, tuple):  # a key: renamed in place, the order kept
        items = [(text if k == last[1] else k, v) for k, v in node.items()]
        node.clear()
        node.update(items)
    else:
        node[last] = text
    return out


#: A hex-looking secret registered the way labkit registers the API key it read: it must go
#: wherever it is, an own id field (where hex values are otherwise taken as they are) included.
HEX_LITERAL = "deadbeefcafe00420042"
patterns.register_secret(HEX_LITERAL)
PLANTS = [*FRAGMENTS[:36], HEX_LITERAL, f"x{HEX_LITERAL}y", "4111111111111111", "run-4111 1111 1111 1111"]
BASES = list(synthetic_traces(40, run_id="run-20260102-0930", seed=9))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_secrets_planted_in_random_fields_of_records_in_a_row(data: st.DataObject) -> None:
    """One redactor writes records in a row, as a run does (what it certified from one record
    serves the next): each line is the walk's line, whatever field (a value, a key, an own id
    field of the record or of a span, a nested tool argument) a planted secret or a plain
    string is in, and a line that differs from the record's own JSON never came from the fast path."""
    red = Redactor()
    for _ in range(data.draw(st.integers(1, 6))):
        base = data.draw(st.sampled_from(BASES))
        rec = base
        for _ in range(data.draw(st.integers(0, 3))):
            path = data.draw(st.sampled_from(_paths(rec)))
            rec = _planted(rec, path, data.draw(st.one_of(st.sampled_from(PLANTS), strings)))
        want = _reference(None, rec)
        assert red.dumps_line(rec) == want
        if want != dumps_trace(rec):
            assert red.unchanged_json(rec) is None


def test_a_string_certified_at_an_own_id_position_is_redacted_anywhere_else() -> None:
    """An own id value is certified with the lesser treatment (no numeric formats); the same
    string elsewhere in a later record gets the full one."""
    red = Redactor()
    for value in ("4111111111111111", "4111-1111-1111-1111", "555-123-4567"):
        first = {"trace_id": value, "spans": [{"span_id": value}]}
        assert red.unchanged_json(first) is not None  # (certified as an own id)
        for later in ({"output": value}, {"spans": [{"name": value}]}, {"tags": {"trace_id": value}},
                      {"spans": [{"attributes": {"span_id": value}}]}, {value: 1}):
            assert red.unchanged_json(later) is None, (value, later)
            assert red.dumps_line(later) == _reference(None, later) != dumps_trace(later)


def test_hex_own_ids_holding_a_registered_secret_are_redacted() -> None:
    red = Redactor()
    rec = dict(BASES[0], trace_id=HEX_LITERAL, spans=[dict(BASES[0]["spans"][0], span_id=f"ab{HEX_LITERAL}")])
    assert red.unchanged_json(rec) is None
    line = red.dumps_line(rec)
    assert line == _reference(None, rec) and HEX_LITERAL not in line



@settings(max_examples=600, deadline=None)
@given(text=st.one_of(numberish, strings, st.lists(st.one_of(numberish, strings), max_size=3).map(" ".join)),
       which=st.integers(0, 2))
def test_redact_text_is_every_rule_run_ungated(text: str, which: int) -> None:
    """The prefilter split in two (the numeric formats alone on a text in which no other format
    can match), the gates and the ASCII shortcuts only skip work: each text comes out as
    running every rule on it makes it, with the full treatment and an own id field's."""
    red = Redactor.from_config([None, {"types": ["CARD", "PHONE", "EMAIL"]}, {"types": ["API_KEY", "IBAN"]}][which])
    for own_id in (False, True):
        assert red.redact_text(text, own_id=own_id) == every_rule(red, text, own_id), (text, own_id)


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(numberish, strings).filter(str.isascii))
def test_the_character_a_gate_needs_is_in_every_text_it_finds(text: str) -> None:
    """The quick test before a pattern gate (``_Rule.ascii_need``): the character is in the
    lowered ASCII text whenever the gate finds something in it."""
    red = Redactor()
    needs = [r for r in red._rules if r.ascii_need is not None and r.gate is not None]
    assert {r.tag for r in needs} >= {"SSN", "IP"}  # (the numeric gates with a separator have one)
    for r in needs:
        if r.gate is not None and r.gate.search(text):
            assert r.ascii_need in text.lower(), (r.tag, r.gate.pattern, text)


def test_a_string_of_a_str_subclass_is_redacted_as_the_string_it_is() -> None:
    """A pipeline's answer read from a data frame is a ``numpy.str_`` (a str subclass): it is
    redacted like any string — a value, an item of a list, under a credential key, alone — and
    the line is the one its plain string gives."""
    import numpy as np

    red = Redactor()
    for obj in ({"output": np.str_("mail jane@example.com")}, {"xs": [np.str_("key sk-proj-PLANTEDabcdefghijklmnop0123")]},
                {"attrs": {"api_key": np.str_("hunter2hunter2")}}, {"trace_id": np.str_("4111111111111111 jane@example.com")}):
        plain = json.loads(json.dumps(obj))
        assert red.dumps_line(obj) == _reference(None, plain) != dumps_trace(plain), obj
    assert red.redact(np.str_("jane@example.com")) == "[EMAIL]"
    assert red.dumps_line({"output": np.str_("plain text")}) == dumps_trace({"output": "plain text"})
