"""What a results line may claim: the one validator used by the reader, the runner and the cache."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from labkit.cases import as_cases, save_cases
from labkit.cli import main
from labkit.errors import DatasetError, Problem
from labkit.resultline import ResultError, check_line, problems_text, to_json_value
from labkit.runs import RunDir, read_results

ORIGIN = {"run_id": "base-1", "trace_id": "0" * 32}


def problems_of(obj: Any) -> list[Problem]:
    out: list[Problem] = []
    check_line(obj, 7, out)
    return out


def fields(obj: Any) -> set[str | None]:
    return {p.field for p in problems_of(obj)}


@pytest.mark.parametrize(("field", "value"), [
    ("latency_ms", -1.0), ("latency_ms", math.inf), ("latency_ms", math.nan), ("latency_ms", "12"),
    ("cost_usd", -0.01), ("cost_usd", math.inf), ("cost_usd", True),
])
def test_latency_and_cost_must_be_finite_and_non_negative(field: str, value: Any) -> None:
    assert fields({"case_id": "a", "answer": "x", field: value}) == {field}


@pytest.mark.parametrize("value", [-3, math.inf, math.nan, 1.5, "10", True])
def test_token_counts_are_non_negative_integers(value: Any) -> None:
    line = {"case_id": "a", "answer": "x", "usage": {"input_tokens": value, "output_tokens": 3}}
    assert fields(line) == {"usage.input_tokens"}
    alias = {"case_id": "a", "answer": "x", "usage": {"completion_tokens": value}}
    assert fields(alias) == {"usage.output_tokens"}


def test_valid_numbers_pass_and_integral_float_tokens_are_read() -> None:
    out: list[Problem] = []
    res = check_line({"case_id": "a", "answer": "x", "latency_ms": 0, "cost_usd": 0.0,
                      "usage": {"input_tokens": 812.0, "output_tokens": 64}}, 1, out)
    assert out == [] and res is not None and res["usage"]["input_tokens"] == 812


@pytest.mark.parametrize("score", [math.inf, -math.inf, math.nan, True, "1", 2**63, [1.0]])
def test_retrieved_score_must_be_finite(score: Any) -> None:
    assert fields({"case_id": "a", "retrieved": [{"id": "d#1", "score": score}]}) == {"retrieved[0].score"}


@pytest.mark.parametrize("score", [0.0, -0.0, 1.5, -1e308, 5e-324, 3, -(2**63), 2**63 - 1, None])
def test_a_finite_retrieved_score_is_taken(score: Any) -> None:
    assert fields({"case_id": "a", "retrieved": [{"id": "d#1", "score": score}]}) == set()


def test_a_cache_hit_must_carry_its_provenance() -> None:
    hit = {"case_id": "a", "answer": "x", "from_cache": True, "attempts": 0, "cache_origin": ORIGIN}
    assert problems_of(hit) == []
    assert fields({**hit, "cache_origin": None}) == {"cache_origin"}
    assert fields({k: v for k, v in hit.items() if k != "cache_origin"}) == {"cache_origin"}
    assert fields({**hit, "cache_origin": {"run_id": "r"}}) == {"cache_origin.trace_id"}
    assert fields({**hit, "attempts": 2}) == {"attempts"}  # a hit made no call
    assert fields({**hit, "status": "error", "error": "boom"}) == {"status"}  # errors are never cached
    assert fields({**hit, "latency_ms": 5.0}) == set()  # the original call's latency is kept


def test_problems_name_the_line() -> None:
    (p,) = problems_of({"case_id": "a", "latency_ms": -2})
    assert p.line == 7 and p.field == "latency_ms" and "non-negative" in p.reason


def test_reader_rejects_infinity_literal_naming_file_line_field(tmp_path: Path) -> None:
    p = tmp_path / "results.jsonl"
    p.write_text('{"case_id": "a", "answer": "x"}\n{"case_id": "b", "answer": "y", "latency_ms": Infinity}\n')
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    (prob,) = ei.value.problems
    assert prob.line == 2 and prob.field in ("latency_ms", None)  # the field, or the literal itself
    assert str(p) in str(ei.value)


def _run_dir(tmp_path: Path, rows: list[dict[str, Any]], counts: dict[str, int] | None) -> tuple[RunDir, Path]:
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": r["case_id"], "question": f"q {r['case_id']}"} for r in rows]), ds)
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.results_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    man: dict[str, Any] = {"run_id": "run", "dataset": {"path": str(ds)}}
    if counts is not None:
        man.update(status="complete", counts=counts)
    rd.write_manifest(man)
    return rd, ds


def _forged(n: int, cached: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        r: dict[str, Any] = {"case_id": f"c{i}", "answer": "x", "latency_ms": 100.0 + i, "attempts": 1}
        if i < cached:
            r.update(from_cache=True, attempts=0, cache_origin=ORIGIN)
        rows.append(r)
    return rows


def test_more_cache_hits_than_the_run_recorded_is_an_input_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rd, _ = _run_dir(tmp_path, _forged(10, 9), {"ok": 10, "from_cache": 1})
    code = main(["score", str(rd.path), "--n-boot", "50"])
    err = capsys.readouterr().err
    assert code == 2
    assert "results.jsonl" in err and "line 2" in err and "from_cache" in err and "Traceback" not in err


def test_cache_hits_the_run_recorded_are_read(tmp_path: Path) -> None:
    rd, _ = _run_dir(tmp_path, _forged(10, 9), {"ok": 10, "from_cache": 9})
    assert sum(r["from_cache"] for r in rd.results()) == 9
    rd2, _ = _run_dir(tmp_path / "hand", _forged(4, 2), None)  # no run recorded counts: line rules only
    assert len(rd2.results()) == 4


def test_score_cli_names_file_line_field_for_a_negative_cost(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = _forged(3, 0)
    rows[2]["cost_usd"] = -5
    rd, _ = _run_dir(tmp_path, rows, None)
    assert main(["score", str(rd.path), "--n-boot", "50"]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl" in err and "line 3" in err and "cost_usd" in err


# --------------------------------------------------------------------------- to_json_value


def test_json_value_rejects_what_json_cannot_hold_naming_the_path() -> None:
    d: dict[str, Any] = {"answer": "x"}
    d["me"] = d
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    cases: list[tuple[Any, str]] = [
        ({"answer": "x", "n": 10**400}, "$.n"),
        ({"answer": "x", "f": math.inf}, "$.f"),
        ({"answer": "x", "a": [1, math.nan]}, "$.a[1]"),
        (d, "$.me"),
        ({"answer": "x", "deep": deep}, "$.deep"),
        ({"answer": "\ud800"}, "$.answer"),
        ({"answer": "x", 3: "int key"}, "$"),
        ({"answer": "x", "o": object()}, "$.o"),
    ]
    for value, where in cases:
        with pytest.raises(ResultError) as ei:
            to_json_value(value)
        assert where in str(ei.value), (where, str(ei.value))


def test_json_value_converts_tuples_dataclasses_and_numpy_scalars() -> None:
    import dataclasses

    import numpy as np

    @dataclasses.dataclass
    class Hit:
        id: str
        score: float

    shared = ["same", "list"]  # the same object twice is not a cycle
    out = to_json_value({"answer": "x", "r": (Hit("d#1", np.float64(1.5)),), "k": np.int64(3),
                         "a": shared, "b": shared, "big": 2**62})
    assert out == {"answer": "x", "r": [{"id": "d#1", "score": 1.5}], "k": 3, "a": shared, "b": shared,
                   "big": 2**62}
    assert type(out["k"]) is int


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from labkit.resultline import RESULT_DEFAULTS  # noqa: E402

_GIVEN = {"status": "error", "answer": "x", "retrieved": [{"id": "d#1"}], "citations": ["d#1"], "tool_calls": [],
          "usage": {"input_tokens": 1}, "cost_usd": 0.5, "latency_ms": 3.0, "attempts": 2, "error": "e",
          "trace_id": "t", "from_cache": False}


@given(st.permutations(list(_GIVEN)), st.lists(st.sampled_from(["value", "null", "absent"]), min_size=12, max_size=12))
def test_a_line_gets_every_field_in_place_and_the_missing_ones_in_order(order: list[str], how: list[str]) -> None:
    """Each field given keeps its place (a null one takes its default where the field has one), and
    each missing field is added after them, in RESULT_DEFAULTS' order, with its default."""
    obj: dict[str, Any] = {"case_id": "a"}
    for key, h in zip(order, how, strict=True):
        if h != "absent":  # (a null status is refused: the status is given or left out)
            obj[key] = _GIVEN[key] if h == "value" or key == "status" else None
    res = check_line(obj, 1, [])
    assert res is not None
    want = dict(obj)
    for key, default in RESULT_DEFAULTS.items():  # the rule, spelled out
        if want.get(key) is None and default is not None:
            want[key] = list(default) if isinstance(default, list) else default
        else:
            want.setdefault(key, default)
    want["retrieved"] = [{"id": "d#1"}] if obj.get("retrieved") else []
    if "retrieved" not in obj:
        want["retrieval_logged"] = False
    if obj.get("usage"):
        want["usage"] = {"input_tokens": 1}
    assert list(res.items()) == list(want.items())


def test_an_explicit_null_id_in_a_results_line_is_refused_naming_file_line_field(tmp_path: Path) -> None:
    """``"case_id": null`` and a retrieved item ``{"id": null}``: the results format requires both
    ids, and the reader refuses a null one as it refuses a missing one (never read as absent)."""
    p = tmp_path / "results.jsonl"
    p.write_text('{"case_id": "a", "answer": "x", "retrieved": [{"id": "doc#1"}]}\n'
                 '{"case_id": null, "answer": "y"}\n'
                 '{"case_id": "c", "answer": "z", "retrieved": [{"id": "doc#1"}, {"id": null, "text": "t"}]}\n')
    with pytest.raises(DatasetError) as ei:
        read_results(p)
    assert [(q.line, q.field) for q in ei.value.problems] == [(2, "case_id"), (3, "retrieved[1].id")]
    assert ei.value.problems[1].reason == "must be a non-empty string, got null"
    assert str(p) in str(ei.value)


def test_a_retrieved_id_that_is_no_string_is_named_at_its_field() -> None:
    """``{"id": 3, "source": "billing"}`` was told "must be an id string or an object with an
    'id'" -- it is an object with an 'id' -- once per item, until the one stderr line was cut."""
    out: list[Problem] = []
    line = {"case_id": "c1", "answer": "x", "retrieved": [{"id": i, "source": "billing"} for i in range(5)]
            + [{"source": "billing"}, {"id": ""}, 7]}
    assert check_line(line, 4, out) is None
    assert [(p.field, p.reason) for p in out][:1] == [("retrieved[0].id", "must be a non-empty string, got int")]
    assert ("retrieved[5]", "an object without an 'id'") in [(p.field, p.reason) for p in out]
    assert ("retrieved[6].id", "must be a non-empty string, got an empty one") in [(p.field, p.reason) for p in out]
    assert ("retrieved[7]", "must be an id string or an object with an 'id'") in [(p.field, p.reason) for p in out]
    text = problems_text(out)
    assert text.startswith("result field 'retrieved[0].id': must be a non-empty string, got int; ")
    assert text.endswith("(and 5 more)") and text.count("result field") == 3, text
