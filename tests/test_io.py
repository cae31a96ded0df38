"""labkit.io.loads_document: a whole JSON file decoded as strictly as a JSONL line, objects
knowing their line (how a peer tool's JSON export is read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.io import LinedDict, StrictJSONError, loads_document


def test_objects_know_their_line():
    doc = loads_document('[\n {"a": 1,\n  "b": {"c": 2}},\n\n {"x": [{"y": 1}]}\n]\n')
    assert [o.line for o in doc] == [2, 5]
    assert doc[0]["b"].line == 3 and doc[1]["x"][0].line == 5
    assert isinstance(doc[0], LinedDict) and doc == [{"a": 1, "b": {"c": 2}}, {"x": [{"y": 1}]}]


def test_items_of_a_list_know_their_line():
    doc = loads_document('[\n 1,\n "x",\n {"a": [2,\n 3]}, [\n\n null]\n]\n')
    assert doc.lines == [2, 3, 4, 5] and doc[2]["a"].lines == [4, 5] and doc[3].lines == [7]
    assert doc == [1, "x", {"a": [2, 3]}, [None]] and loads_document("[]").lines == []


def test_a_byte_order_mark_is_named_as_one():
    """A file saved "UTF-8 with BOM": the error says so in words (not the decoder's advice to
    decode with utf-8-sig), the same for a JSONL line and a whole document."""
    from labkit.io import loads_line

    for load in (loads_line, loads_document):
        with pytest.raises(StrictJSONError) as e:
            load('\ufeff{"id": "c1"}')
        assert "byte order mark" in e.value.msg and "utf-8-sig" not in e.value.msg and e.value.colno == 1


def test_an_integer_too_long_to_read_is_named_in_whole_words():
    import sys

    from labkit.io import loads_line

    with pytest.raises(StrictJSONError) as e:
        loads_line('{"n": 1' + "0" * 5000 + "}")
    assert e.value.msg == f"unreadable number: an integer of more than {sys.get_int_max_str_digits()} digits", e.value.msg


def test_a_dataset_saved_with_a_byte_order_mark_is_refused_at_line_one(tmp_path):
    from labkit.cases import load_cases
    from labkit.errors import DatasetError

    p = tmp_path / "ds.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"id": "c1", "question": "q"}\n{"id": "c2", "question": "q"}\n')
    with pytest.raises(DatasetError) as e:
        load_cases(p)
    assert [(pr.line, "byte order mark" in pr.reason) for pr in e.value.problems] == [(1, True)]


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


# --- loads_line: orjson where it provably gives the standard decoder's value -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from labkit.io import BOM_REASON, MAX_JSON_DEPTH, _loads_stdlib, _too_deep, loads_line  # noqa: E402


def _standard(text, max_depth=MAX_JSON_DEPTH):
    """The decoder as it was before orjson: the depth check, then json with the strict hooks (a
    byte order mark, which json refuses too, named in labkit's words)."""
    if text.startswith("\ufeff"):
        raise StrictJSONError(BOM_REASON, text, 0)
    at = _too_deep(text, max_depth)
    if at is not None:
        raise StrictJSONError(f"nested more than {max_depth} levels deep", text, at)
    return _loads_stdlib(text)


def _outcome(fn, text):
    try:
        val = fn(text)
    except json.JSONDecodeError as e:
        return ("error", type(e).__name__, e.msg, e.pos)
    except (ValueError, RecursionError) as e:
        return ("error", type(e).__name__)
    return ("ok", json.dumps(val, sort_keys=False, allow_nan=True), repr(val))


def _same_as_stdlib(text):
    assert _outcome(loads_line, text) == _outcome(_standard, text), text


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values, st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : ")]))
def test_a_valid_line_decodes_as_the_standard_decoder_decodes_it(value, seps):
    _same_as_stdlib(json.dumps(value, separators=seps, ensure_ascii=False))
    _same_as_stdlib(json.dumps(value, separators=seps, ensure_ascii=True))


_pieces = st.sampled_from(['{', '}', '[', ']', '"a"', '"b"', '"a":', '"\\u0061"', ':', ',', ' ', '1', '-0',
                           '1e999', '9223372036854775808', '-9223372036854775809', '18446744073709551616',
                           'NaN', 'Infinity', 'true', 'null', '"\\":"', '"\\ud800"', '"\x01"', '\ufeff', '"x" :',
                           '0.1', '1.', '01', '"\\\\":'])


@settings(max_examples=1500)
@given(st.lists(_pieces, max_size=14).map("".join))
def test_any_text_gets_the_standard_decoders_value_or_error(text):
    _same_as_stdlib(text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}', '{"a":1,"\\u0061":2}', '{"x": {"k": 1, "k": 1}}', '[{"a": 1}, {"b": 2, "b": 3}]',
    '{"a" : 1, "a" : 2}', '{"t": "say \\":\\"", "a": 1, "a": 2}', '{"v": NaN}', '[' * 201 + ']' * 201,
])
def test_a_line_orjson_alone_would_take_is_refused(text):
    _same_as_stdlib(text)
    with pytest.raises(StrictJSONError):
        loads_line(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values, st.integers(0, 6), st.text(":\"\\ ab", max_size=6), st.booleans(), st.integers(0, 8))
def test_the_depth_limit_and_the_key_proof_hold_for_any_nesting(value, wrap, key, twice, max_depth):
    """The value's own nesting decides the depth limit (no bracket count before decoding), and a
    key count that meets the colons proves no key repeated: wrapped values at and around the limit,
    keys holding colons and quotes, decode as the standard decoder decodes them (or fail alike)."""
    for w in range(wrap + 1):
        inner = json.dumps(value)
        text = "[" * w + "{" + json.dumps(key) + ": " + inner + ", " + json.dumps(key if twice else key + ":") + ": 1}" + "]" * w
        got = _outcome(lambda t: loads_line(t, max_depth=max_depth), text)
        assert got == _outcome(lambda t: _standard(t, max_depth), text), (text, max_depth)


@pytest.mark.parametrize("text", ['{"n": 18446744073709551616}', '{"n": -9223372036854775809}'])
def test_an_integer_beyond_64_bits_stays_an_integer(text):
    _same_as_stdlib(text)
    assert type(loads_line(text)["n"]) is int


def test_a_file_is_hashed_without_being_held_whole_in_memory(tmp_path):
    """Scoring hashes the results.jsonl it read (1.3 GB at a million results): in pieces, so the
    hash adds nothing to the run's peak memory (reading it whole was the peak of a million)."""
    import hashlib
    import os
    import tracemalloc

    from labkit.io import file_hash

    big = tmp_path / "results.jsonl"
    big.write_bytes(os.urandom(1 << 20) * 24)
    tracemalloc.start()
    try:
        got = file_hash(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == hashlib.sha256(big.read_bytes()).hexdigest()
    assert peak < 2 << 20, f"hashing a 24 MiB file held {peak / 2**20:.1f} MiB"


# --- atomic_path: what a writer that takes a path leaves -------------------------------------


@pytest.mark.parametrize("anew", [False, True], ids=["writes-in-place", "makes-the-file-anew"])
def test_atomic_path_leaves_an_owner_only_file_whole(tmp_path, anew):
    """A writer that removes the temporary file and makes it again (as a library writing to a
    path may) still leaves an owner-only file: the mode is set after the writer, not only by
    the temporary file's creation."""
    import os
    import stat

    from labkit.io import atomic_path

    target = tmp_path / "out" / "scores.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        if anew:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o644)
            os.fchmod(fd, 0o644)  # (whatever the umask)
            os.write(fd, b"a,b\n")
            os.close(fd)
        else:
            tmp.write_bytes(b"a,b\n")
    assert target.read_bytes() == b"a,b\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["scores.csv"]


def test_atomic_path_keeps_the_old_file_when_the_writer_raises(tmp_path):
    from labkit.io import atomic_path

    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@settings(max_examples=300)
@given(st.lists(st.text(" \t\r\x0b\x0c\x1c\x1d\x85\u2028\u3000\xa0a{}", max_size=4), max_size=8))
def test_a_blank_line_is_one_strip_leaves_empty(lines):
    """iter_jsonl skips exactly the lines that hold only whitespace (any kind), numbering the rest."""
    import tempfile
    from pathlib import Path

    from labkit.io import iter_jsonl

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jsonl"
        p.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
        got = [(n, text) for n, text, _ in iter_jsonl(p)]
    assert got == [(i, line + "\n") for i, line in enumerate(lines, 1) if line.strip()]


def test_an_integer_too_long_to_read_is_a_malformed_line_not_a_crash(tmp_path):
    """An integer of more digits than Python converts is a JSONDecodeError naming where it is,
    and a dataset line holding one is a problem at its line."""
    import json as _json

    from labkit.cases import load_cases
    from labkit.errors import DatasetError
    from labkit.io import loads_line

    text = '{"id": "a", "question": "q?", "metadata": {"n": ' + "1" * 5000 + "}}"
    with pytest.raises(_json.JSONDecodeError):
        loads_line(text)
    p = tmp_path / "ds.jsonl"
    p.write_text('{"id": "b", "question": "ok?"}\n' + text + "\n")
    with pytest.raises(DatasetError) as ei:
        load_cases(p)
    assert [pr.line for pr in ei.value.problems] == [2]


def test_nesting_within_a_raised_limit_decodes_or_fails_as_malformed():
    """A limit above the default lets deep lines through to the decoder: no RecursionError."""
    import json as _json

    from labkit.io import loads_line

    for depth in (900, 1000, 1023):
        text = "[" * depth + "]" * depth
        try:
            got = loads_line(text, max_depth=1024)
        except _json.JSONDecodeError as e:
            assert "deep" in e.msg
        else:
            assert isinstance(got, list)


_LINE_BITS = st.sampled_from([b'{"a": 1}', b"  ", b"", b"\r", "é".encode(), "\u2028".encode(), "\x85".encode(),
                              b'"x"', b"\t", b"{}", b"\xff", b"\xe2\x82", b"\x80", b"z" * 40])


def _lines_one_by_one(data: bytes) -> tuple[list[tuple[int, str, bool]], list[tuple[int, str]]]:
    """The oracle: iter_jsonl's lines and problems as its contract reads, one line at a time."""
    out, problems = [], []
    pieces = data.split(b"\n")  # (cut after each newline only)
    for n, raw in enumerate([piece + b"\n" for piece in pieces[:-1]] + [pieces[-1]], start=1):
        if not raw:
            continue
        complete = raw.endswith(b"\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if not complete and e.reason == "unexpected end of data":
                text = raw[:e.start].decode("utf-8")
            else:
                problems.append((n, f"not UTF-8 text: {e.reason}"))
                continue
        if not text.isspace():
            out.append((n, text, complete))
    return out, problems


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_LINE_BITS, max_size=4).map(b"".join), max_size=8),
       st.booleans(), st.integers(min_value=1, max_value=64))
def test_a_file_read_whole_or_in_spans_is_the_file_read_line_by_line(tmp_path, lines, final_newline, part_bytes):
    """Every line, its number (from 1 in each span), completeness and each problem, whether the
    file is read whole or in spans (each decoded at once when it is all text), as reading it
    line by line gives them; bytes that are not UTF-8 included."""
    from labkit.io import count_lines, iter_jsonl, line_spans

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    p = tmp_path / "f.jsonl"
    p.write_bytes(data)
    want, want_problems = _lines_one_by_one(data)
    problems: list = []
    assert list(iter_jsonl(p, problems=problems)) == want
    assert [(pr.line, pr.reason) for pr in problems] == want_problems
    got, got_problems, offset = [], [], 0
    for span in line_spans(p, part_bytes):
        found: list = []
        got += [(n + offset, text, complete) for n, text, complete in iter_jsonl(p, span=span, problems=found)]
        got_problems += [(pr.line + offset, pr.reason) for pr in found]
        offset += count_lines(p, span)
    assert got == want
    assert got_problems == want_problems


# --- where a refused key or number is: the column of the refused text, not of a look-alike ---

@pytest.mark.parametrize(("text", "at"), [
    ('{"x": "a", "a": 1, "a": 2}', '"a": 2'),  # the key's text first appears as a value
    ('{"a": 1, "\\u0061": 2}', '"\\u0061"'),  # the key written again in another spelling
    ('{"c": 1, "c": 2, "x": {"c": 1, "c": 2}}', '"c": 2}'),  # the inner object is refused first
    ('[{"k": 1}, {"k": 1, "k": 2}]', '"k": 2'),  # a key of an earlier object is no repeat
    ('{"t": "NaN", "v": NaN}', "NaN}"),  # the constant's text first appears in a string
    ('{"t": "-Infinity", "v": -Infinity}', "-Infinity}"),
])
@pytest.mark.parametrize("decode", [loads_line, loads_document])
def test_a_refused_key_or_number_is_located_where_it_is_written(decode, text, at):
    with pytest.raises(StrictJSONError) as e:
        decode(text)
    assert e.value.pos == text.rindex(at), (e.value.msg, e.value.pos, text.rindex(at))


def test_a_symlinked_output_is_followed_and_the_link_kept(tmp_path):
    """An output path that is a symlink: its target is written whole (the temporary file in the
    target's folder), the link stays a link."""
    from labkit.io import atomic_path, atomic_write_text

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.jsonl"
    target.write_text("keep\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(Path("real") / "target.jsonl")
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    with atomic_path(link) as tmp:
        assert tmp.parent == target.parent
        tmp.write_text("again\n")
    assert link.is_symlink() and target.read_text() == "again\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "real"]
    assert [p.name for p in target.parent.iterdir()] == ["target.jsonl"]
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to("real/made.jsonl")
    atomic_write_text(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "real" / "made.jsonl").read_text() == "made\n"


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-fifo"])
def test_an_output_that_is_no_regular_file_is_refused_before_anything_is_written(tmp_path, kind):
    """A FIFO, a device, a socket or a folder at the output path: an OutputError naming the path,
    the writer never called, the path left as it was (it was replaced by a regular file)."""
    import os
    import stat

    from labkit.errors import LabkitError, OutputError
    from labkit.io import atomic_path, atomic_write_text

    special = tmp_path / "special"
    if kind == "folder":
        special.mkdir()
    else:
        os.mkfifo(special)
    out = special if kind != "link-to-fifo" else tmp_path / "out.jsonl"
    if kind == "link-to-fifo":
        out.symlink_to(special)
    with pytest.raises(OutputError) as e:
        atomic_write_text(out, "x\n")
    assert str(out) in str(e.value) and "not a regular file" in str(e.value)
    assert isinstance(e.value, LabkitError)
    called = False
    with pytest.raises(OutputError), atomic_path(out):
        called = True
    assert not called
    mode = os.lstat(special).st_mode
    assert stat.S_ISDIR(mode) if kind == "folder" else stat.S_ISFIFO(mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"special", out.name})


def test_the_cli_refuses_a_fifo_output_with_exit_2(tmp_path, capsys):
    import os
    import stat

    from labkit.cli import main

    ds = tmp_path / "d.jsonl"
    ds.write_text('{"id":"a","question":"q1"}\n')
    pipe = tmp_path / "pipe.jsonl"
    os.mkfifo(pipe)
    assert main(["export", "ragas", "--dataset", str(ds), "--out", str(pipe)]) == 2
    err = capsys.readouterr().err
    assert f"{pipe}" in err and "not a regular file" in err and "Traceback" not in err
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_write_error_names_the_users_path_not_the_temporary_file(tmp_path, monkeypatch, capsys):
    """A folder the temporary file cannot be made in: the error names the path the user gave."""
    import errno
    import tempfile

    from labkit.cli import main
    from labkit.io import atomic_write_text

    def refuse(*, dir: str, prefix: str, suffix: str) -> tuple[int, str]:
        name = f"{dir}/{prefix}gghjgo8y{suffix}"
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "x.jsonl"
    with pytest.raises(OSError) as e:
        atomic_write_text(out, "x\n")
    assert e.value.filename == str(out) and e.value.errno == errno.ENOENT
    ds = tmp_path / "d.jsonl"
    ds.write_text('{"id":"a","question":"q1"}\n')
    assert main(["export", "ragas", "--dataset", str(ds), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"labkit: error: {out}: No such file or directory" in err and ".tmp" not in err


def test_a_failed_rename_names_the_users_path(tmp_path, monkeypatch):
    import errno
    import os

    from labkit.io import atomic_write_text

    real = os.replace

    def refuse(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link", src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    out = tmp_path / "x.jsonl"
    with pytest.raises(OSError) as e:
        atomic_write_text(out, "x\n")
    monkeypatch.setattr(os, "replace", real)
    assert e.value.filename == str(out) and ".tmp" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
