"""What a pipeline may return: odd values and exceptions become error results, the cache is
validated, scoring sees the values in memory, redaction options work for every pipeline."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase, as_cases, save_cases
from labkit.cli import main
from labkit.errors import ConfigError
from labkit.pipelines import LoadedPipeline, config_hash
from labkit.runner import RunnerConfig, resume, run
from labkit.runs import RunDir

QUIET = RunnerConfig(progress=False, backoff_base_s=0.01, backoff_max_s=0.05, retries=0)
ROOT = Path(__file__).resolve().parents[1]


def cases(n: int) -> Any:
    return as_cases([{"id": f"c{i:03d}", "question": f"question number {i}"} for i in range(n)])


def loaded(fn: Any, name: str = "p", **cfg: Any) -> LoadedPipeline:
    config = {"type": "callable", "callable": name, **cfg}
    return LoadedPipeline(name, fn, config, config_hash(config))


class Boom(BaseException):
    """A BaseException that is neither Exception, SystemExit nor KeyboardInterrupt."""


def _self_ref() -> dict[str, Any]:
    d: dict[str, Any] = {"answer": "loop"}
    d["me"] = d
    return d


def _deep(n: int) -> Any:
    v: Any = "leaf"
    for _ in range(n):
        v = {"x": v}
    return v


ODD: list[tuple[str, Any]] = [
    ("huge int latency", lambda: {"answer": "x", "latency_ms": 10**400}),
    ("int too long to print", lambda: {"answer": "x", "meta": 10**5000}),
    ("huge int cost", lambda: {"answer": "x", "cost_usd": -(10**400)}),
    ("self reference", _self_ref),
    ("deep nesting", lambda: {"answer": "x", "meta": _deep(5000)}),
    ("lone surrogate", lambda: {"answer": "bad \ud800 text"}),
    ("infinite tokens", lambda: {"answer": "x", "usage": {"input_tokens": math.inf}}),
    ("SystemExit", SystemExit(3)),
    ("KeyboardInterrupt", KeyboardInterrupt()),
    ("BaseException subclass", Boom("odd")),
    ("RecursionError", RecursionError("too deep")),
]


def _behave(spec: Any) -> Any:
    if isinstance(spec, BaseException):
        raise spec
    return spec()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_whatever_a_pipeline_returns_or_raises_is_one_error_result(tmp_path: Path, kind: str) -> None:
    ds = cases(len(ODD) + 1)
    by_id = {c.id: spec for c, (_, spec) in zip(ds, ODD, strict=False)}

    def sync_pipe(case: EvalCase) -> Any:
        spec = by_id.get(case.id)
        return {"answer": "fine"} if spec is None else _behave(spec)

    async def async_pipe(case: EvalCase) -> Any:
        await asyncio.sleep(0)
        return sync_pipe(case)

    fn = sync_pipe if kind == "sync" else async_pipe
    rd = run(ds, loaded(fn), tmp_path / "r", config=QUIET, score=True)
    res = {r["case_id"]: r for r in rd.results()}
    assert list(res) == [c.id for c in ds]
    for c, (what, _) in zip(ds, ODD, strict=False):
        r = res[c.id]
        assert r["status"] == "error", (what, r)
        assert r["answer"] is None and r["error"], what
    assert res[ds[-1].id]["status"] == "ok"
    assert "SystemExit" in res[ds[7].id]["error"] and "KeyboardInterrupt" in res[ds[8].id]["error"]
    assert "cycle" in res[ds[3].id]["error"] and "deep" in res[ds[4].id]["error"]
    # resume reads the run back without crashing on any of it
    again = resume(rd, pipeline=loaded(fn), config=QUIET)
    assert len(again.results()) == len(ds)


# --------------------------------------------------------------------------- the cache


def _echo_counter() -> tuple[dict[str, int], Any]:
    n = {"calls": 0}

    def pipe(case: EvalCase) -> dict[str, Any]:
        n["calls"] += 1
        return {"answer": f"answer {case.id}", "latency_ms": 50.0}

    return n, pipe


def _entries(cache: Path) -> dict[str, Path]:
    return {p.stem: p for p in cache.rglob("*.json")}


def test_a_cache_entry_that_does_not_validate_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    n, pipe = _echo_counter()
    cfg = RunnerConfig(cache_dir=str(tmp_path / "cache"), progress=False)
    run(cases(5), loaded(pipe), tmp_path / "a", config=cfg, score=False)
    entries = sorted(_entries(tmp_path / "cache").values())
    assert len(entries) == 5
    edits = [
        lambda d: {**d, "latency_ms": -40.0},
        lambda d: {**d, "answer": ["not", "text"]},
        lambda d: {**d, "status": "error"},
        lambda d: {**d, "usage": {"input_tokens": -1}},
    ]
    for path, edit in zip(entries, edits, strict=False):
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    entries[4].write_bytes(b"\xff\xfe not json")
    n["calls"] = 0
    rd = run(cases(5), loaded(pipe), tmp_path / "b", config=cfg)  # scoring reads it back: no poison
    assert n["calls"] == 5
    assert all(r["status"] == "ok" and not r["from_cache"] for r in rd.results())
    assert rd.manifest["cache"] == {"hits": 0, "misses": 5, "invalid": 5, "write_failed": 0}
    n["calls"] = 0
    third = run(cases(5), loaded(pipe), tmp_path / "c", config=cfg)  # replaced: hits now
    assert n["calls"] == 0 and all(r["from_cache"] for r in third.results())
    origin = third.results()[0]["cache_origin"]
    assert origin["run_id"] == "b" and len(origin["trace_id"]) == 32
    assert third.metrics()["metrics"]["latency_p95_ms"]["unmeasured_reasons"] == {"from_cache": 5}


def test_a_folder_where_a_cache_file_should_be_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    n, pipe = _echo_counter()
    cfg = RunnerConfig(cache_dir=str(tmp_path / "cache"), progress=False)
    run(cases(2), loaded(pipe), tmp_path / "a", config=cfg, score=False)
    for path in _entries(tmp_path / "cache").values():
        path.unlink()
        (path / "sub").mkdir(parents=True)
    n["calls"] = 0
    rd = run(cases(2), loaded(pipe), tmp_path / "b", config=cfg, score=False)
    assert n["calls"] == 2 and all(r["status"] == "ok" for r in rd.results())
    assert all(p.is_file() for p in _entries(tmp_path / "cache").values())


# --------------------------------------------------------------------------- scoring in memory


def test_the_run_scores_the_answers_the_pipeline_returned_not_the_redacted_ones(tmp_path: Path) -> None:
    ds = as_cases([{"id": "ph", "question": "What is the support line?", "must_include": ["415-555-0133"]}])

    def pipe(case: EvalCase) -> dict[str, Any]:
        return {"answer": "Call 415-555-0133 any time.", "retrieved": []}

    rd = run(ds, loaded(pipe), tmp_path / "r", config=QUIET)
    assert "415-555-0133" not in rd.results_path.read_text()  # on disk: redacted
    row = rd.scores().iloc[0]
    assert row["must_include_coverage"] == 1.0


# --------------------------------------------------------------------------- redaction options


def test_a_run_not_scored_keeps_no_results_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only scoring reads the results as the pipeline returned them; a run with score=False
    does not hold them until its end (nor frees them all there, after the last case)."""
    import labkit.runner.session as session_mod

    made: list[session_mod.Session] = []
    init = session_mod.Session.__init__

    def spy(self: session_mod.Session, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        made.append(self)

    monkeypatch.setattr(session_mod.Session, "__init__", spy)
    plain = run(cases(3), echo_pipeline, tmp_path / "plain", config=QUIET, score=False)
    scored = run(cases(3), echo_pipeline, tmp_path / "scored", config=QUIET)
    assert made[0].unredacted is None
    with pytest.raises(RuntimeError, match="keeps no results"):
        made[0].scored_results()
    assert made[1].unredacted is not None and sorted(made[1].unredacted) == ["c000", "c001", "c002"]
    assert [r["answer"] for r in plain.results()] == [r["answer"] for r in scored.results()]
    assert scored.scores_path.is_file() and not plain.scores_path.exists()


def test_redaction_is_a_run_option_for_a_callable(tmp_path: Path) -> None:
    def pipe(case: EvalCase) -> dict[str, Any]:
        return {"answer": "employee EMP-123456 at jane@example.com"}

    cfg = RunnerConfig(progress=False, redaction={"types": ["API_KEY"], "extra_patterns": {"EMP": r"EMP-\d{6}"}})
    rd = run(cases(1), loaded(pipe), tmp_path / "r", config=cfg, score=False)
    text = rd.results_path.read_text()
    assert "[EMP]" in text and "EMP-123456" not in text
    assert "jane@example.com" in text  # EMAIL was not among the chosen types
    with pytest.raises(ConfigError, match=r"runner\.redaction"):
        RunnerConfig(redaction={"typos": []})


def test_redaction_in_the_runner_section_of_a_rag_config(tmp_path: Path) -> None:
    cfg = tmp_path / "rag.yaml"
    cfg.write_text(f"name: rag-redacted\ntype: rag\ncorpus: {ROOT / 'data' / 'corpus'}\n"
                   "runner:\n  retries: 0\n  redaction: {capture_content: false}\n")
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": "a", "question": "How do I reset an API key?"}]), ds)
    rd = run(str(ds), str(cfg), tmp_path / "r", config=RunnerConfig(progress=False), score=False)
    line = json.loads(rd.results_path.read_text())
    assert line["status"] == "ok" and line["answer"].startswith("[CONTENT len=")


def test_redaction_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds.jsonl"
    save_cases(as_cases([{"id": "a", "question": "employee EMP-654321 asks"}]), ds)
    code = main(["run", "--dataset", str(ds), "--pipeline", f"{__name__}:echo_pipeline", "--out",
                 str(tmp_path / "r"), "--quiet", "--no-score", "--redact-pattern", r"EMP=EMP-\d{6}"])
    assert code == 0, capsys.readouterr().err
    rd = RunDir(tmp_path / "r")
    assert "EMP-654321" not in rd.results_path.read_text() + rd.traces_path.read_text()
    assert rd.manifest["runner"]["redaction"] == {"extra_patterns": {"EMP": r"EMP-\d{6}"}}
    code = main(["run", "--dataset", str(ds), "--pipeline", f"{__name__}:echo_pipeline", "--out",
                 str(tmp_path / "r2"), "--quiet", "--no-score", "--redact-pattern", "no-equals-sign"])
    assert code == 2 and "--redact-pattern" in capsys.readouterr().err


def echo_pipeline(case: EvalCase) -> dict[str, Any]:
    return {"answer": case.question}


# --------------------------------------------------------------------------- manifest


def test_manifest_is_redacted(tmp_path: Path) -> None:
    p = loaded(echo_pipeline, "hdr", description="uses key sk-proj-abcdefghijklmnopqrstuvwx",
               model="gpt-small", headers={"X-Api-Key": "plainvalue123456", "Authorization": "Bearer abcdefgh12345"})
    rd = run(cases(1), p, tmp_path / "r", config=QUIET, score=False)
    text = rd.manifest_path.read_text()
    for secret in ("sk-proj-abcdefghijklmnopqrstuvwx", "plainvalue123456", "abcdefgh12345"):
        assert secret not in text
    man = rd.manifest
    assert man["pipeline"]["config"]["model"] == "gpt-small"
    assert man["pipeline"]["config_hash"] == p.config_hash  # the hash is of the real config
    assert set(man["pipeline"]["config"]["headers"]) == {"X-Api-Key", "Authorization"}


@pytest.mark.parametrize("dataset", ["in memory", "file"])
def test_a_run_builds_its_redactor_once_and_off_its_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          dataset: str) -> None:
    """The snapshot (of a dataset in memory), the case-id check and the lines share the run's
    redactor, built before the first case (it checks the case ids before anything is written); the
    manifest's own, with its skip keys, is the other, built once for every write of the manifest
    (each build compiles the catalogue's gates)."""
    from labkit.runs import _catalogue_redactor
    from labkit.trace.redact import DEFAULT_SKIP_KEYS, Redactor

    _catalogue_redactor.cache_clear()  # (built once a process: an earlier test may have built it)
    built: list[Redactor] = []
    init = Redactor.__post_init__

    def counting(self: Redactor) -> None:
        built.append(self)
        init(self)

    seen_at_start: list[int] = []

    async def pipe(case: EvalCase) -> dict[str, Any]:
        seen_at_start.append(len(built))
        await asyncio.sleep(0.01)
        return {"answer": "mail jane@example.com"}

    ds: Any = cases(3)
    if dataset == "file":
        ds = save_cases(ds, tmp_path / "cases.jsonl")
    monkeypatch.setattr(Redactor, "__post_init__", counting)
    rd = run(ds, pipe, tmp_path / "r", config=RunnerConfig(progress=False, concurrency=3), score=False)
    assert [r.skip_keys > DEFAULT_SKIP_KEYS for r in built] == [False, True]
    assert seen_at_start == [2] * 3
    assert [r["answer"] for r in rd.results()] == ["mail [EMAIL]"] * 3


@pytest.mark.parametrize("settings", [
    {"extra_patterns": {"TICKET": r"TCK-\d{6}"}, "types": ["API_KEY"], "capture_content": False},
    {"extra_patterns": [{"name": "TICKET", "regex": r"TCK-\d{6}"}], "enabled": False},
])
def test_the_manifest_takes_only_the_extra_patterns_of_the_runs_settings(settings: dict[str, Any]) -> None:
    """From the settings or from the run's redactor: the full catalogue, the run's extra patterns."""
    from labkit.runner.redaction import redactor
    from labkit.runs import _MANIFEST_IDS, _headers_masked, redact_manifest
    from labkit.trace.redact import DEFAULT_SKIP_KEYS, Redactor

    manifest = {"git_sha": "4111111111111111", "run_id": "r",
                "pipeline": {"config": {"note": "TCK-123456 for jane@example.com", "headers": {"A": "b"}},
                             "config_hash": "4111111111111111"}}
    full = Redactor(extra_patterns={"TICKET": r"TCK-\d{6}"}, skip_keys=DEFAULT_SKIP_KEYS | _MANIFEST_IDS)
    expected = full.redact(_headers_masked(manifest))
    assert expected["pipeline"]["config"]["note"] == "[TICKET] for [EMAIL]"
    assert redact_manifest(manifest, settings) == expected == redact_manifest(manifest, redactor(settings))


# --------------------------------------------------------------------------- property-based

_BEHAVIOUR: dict[str, Any] = {}


def hyp_pipeline(case: EvalCase) -> Any:
    return _behave(_BEHAVIOUR[case.id])


async def hyp_async_pipeline(case: EvalCase) -> Any:
    return _behave(_BEHAVIOUR[case.id])


_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from([400, -400, 64]).map(lambda e: (-1 if e < 0 else 1) * 10 ** abs(e))
            | st.text(alphabet=st.characters(codec=None, categories=None), max_size=20))
_json_like = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=20)


@st.composite
def _outputs(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["mapping", "value", "raise", "self", "deep", "big", "long-int"]))
    if shape == "long-int":  # built inside the pipeline: such an int cannot even be printed
        return lambda: {"answer": "x", "n": 10**5000}
    if shape == "raise":
        exc = draw(st.sampled_from([ValueError("v"), SystemExit(2), SystemExit(None), KeyboardInterrupt(),
                                    Boom("b"), GeneratorExit(), MemoryError(), TimeoutError("t")]))
        return exc
    if shape == "value":
        v = draw(_json_like)
        return lambda: v
    if shape == "self":
        return _self_ref
    if shape == "deep":
        depth = draw(st.integers(0, 3000))
        return lambda: {"answer": "x", "meta": _deep(depth)}
    if shape == "big":
        size = draw(st.integers(0, 300_000))
        return lambda: {"answer": "a" * size}
    extra = draw(st.dictionaries(st.sampled_from(["answer", "latency_ms", "cost_usd", "usage", "retrieved",
                                                  "citations", "tool_calls", "from_cache", "status", "meta"]),
                                 _json_like, max_size=5))
    answer = draw(st.text(alphabet=st.characters(codec=None, categories=None), max_size=30))
    out = {"answer": answer, **extra}
    return lambda: out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(outputs=st.lists(_outputs(), min_size=1, max_size=4), use_async=st.booleans(), score=st.booleans())
def test_any_output_gives_one_result_per_case_and_no_traceback(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
    outputs: list[Any], use_async: bool, score: bool,
) -> None:
    base = tmp_path_factory.mktemp("hyp")
    ds_cases = cases(len(outputs))
    _BEHAVIOUR.clear()
    _BEHAVIOUR.update({c.id: o for c, o in zip(ds_cases, outputs, strict=True)})
    ds = base / "ds.jsonl"
    save_cases(ds_cases, ds)
    fn = "hyp_async_pipeline" if use_async else "hyp_pipeline"
    argv = ["run", "--dataset", str(ds), "--pipeline", f"{__name__}:{fn}", "--out", str(base / "r"),
            "--quiet", "--retries", "0", "--timeout", "20"]
    code = main([*argv, *([] if score else ["--no-score"])])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err
    rows = RunDir(base / "r").results()
    assert [r["case_id"] for r in rows] == [c.id for c in ds_cases]



# --------------------------------------------------------------------------- a real Ctrl-C


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_real_sigint_stops_the_run(tmp_path: Path, kind: str) -> None:
    """Guard: catching what a pipeline raises must not swallow a real Ctrl-C."""
    import os
    import signal
    import subprocess
    import time

    body = ("import time\ndef pipe(case):\n    time.sleep(0.2)\n    return {'answer': 'x'}\n" if kind == "sync"
            else "import asyncio\nasync def pipe(case):\n    await asyncio.sleep(0.2)\n    return {'answer': 'x'}\n")
    (tmp_path / "slowpipe.py").write_text(body)
    ds = tmp_path / "ds.jsonl"
    save_cases(cases(60), ds)
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    proc = subprocess.Popen([sys.executable, "-m", "labkit.cli", "run", "--dataset", str(ds), "--pipeline",
                             "slowpipe:pipe", "--out", str(out), "--quiet", "--concurrency", "2", "--no-score"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (out / "results.jsonl").is_file() and (out / "results.jsonl").read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert f"labkit run --resume {out}" in err, err  # (how to finish it)
    assert (out / "results.jsonl").read_text().count("\n") < 60


def test_a_result_line_is_redacted_as_a_whole_with_the_runners_fields_kept(tmp_path: Path) -> None:
    """Writer.redact_result redacts only the pipeline's fields: the line is what redacting it whole
    and putting the runner's ids and states back gives, key order and renamed keys included."""
    from labkit.runner.writer import _IDS_AND_STATES, Writer
    from labkit.runs import RunDir
    from labkit.trace.redact import Redactor

    res = {"case_id": "4111 1111 1111 1111", "status": "ok", "answer": "mail jane@example.com",
           "jane@example.com": "a key that is an address", "usage": {"api_key": "sk-proj-PLANTEDabcdefghijklmnop0123"},
           "latency_ms": 1.0, "attempts": 1, "error": "token=PLANTEDvalue42", "error_type": None,
           "trace_id": "4111111111111111", "from_cache": False, "answered_by": "p",
           "idempotency_key": "41111111111111114111111111111111"}
    red = Redactor()
    whole = dict(red.redact(res))
    whole.update((k, res[k]) for k in _IDS_AND_STATES if k in res)
    (tmp_path / "r").mkdir()
    w = Writer(RunDir(tmp_path / "r"), red)
    try:
        got = w.redact_result(res)
    finally:
        w.close()
    assert list(got.items()) == list(whole.items())
    assert got["answer"] == "mail [EMAIL]" and "[EMAIL]" in got and got["error"] != res["error"]


def test_an_exception_message_with_a_lone_surrogate_is_its_cases_error_and_the_run_goes_on(tmp_path: Path) -> None:
    """No UTF-8 text holds a lone surrogate: the message is written with it escaped
    (``\\udcff``), and every other case of the run is written too."""
    def pipe(case: EvalCase) -> dict[str, Any]:
        if case.id == "exc":
            raise ValueError("bad \udcff byte")
        return {"answer": "fine"}

    rd = run(as_cases([{"id": "exc", "question": "q?"}, {"id": "ok", "question": "q2?"}]), pipe, tmp_path / "r",
             score=False)
    rows = {r["case_id"]: r for r in rd.results()}
    assert rows["exc"]["status"] == "error" and rows["exc"]["error"] == "ValueError: bad \\udcff byte"
    assert rows["ok"]["status"] == "ok" and "\\udcff" in (tmp_path / "r" / "traces.jsonl").read_text("utf-8")


@pytest.mark.parametrize("where", ["error", "answer"])
def test_a_cut_never_leaves_part_of_a_secret_on_disk(tmp_path: Path, where: str) -> None:
    """An exception message is cut at 2,000 characters and an output at ``max_output_chars``: a cut
    through a key would leave its first characters, too few to be matched again, in the files."""
    key = "AKIAQWERTYUIOPASDF12"

    def pipe(case: EvalCase) -> dict[str, Any]:
        if where == "error":
            raise RuntimeError("x " * 993 + " " + key + " tail")
        return {"answer": "a " * 47 + "id " + key + " more text"}

    run(as_cases([{"id": "c1", "question": "q?"}]), pipe, tmp_path / "r", score=False,
        overrides={"max_output_chars": 110})
    for p in (tmp_path / "r").iterdir():
        if p.is_file():
            assert "AKIAQWERTY" not in p.read_text("utf-8"), p.name


def test_cases_built_in_memory_that_no_file_can_hold_are_refused_before_the_run(tmp_path: Path) -> None:
    from labkit.errors import DatasetError

    cases = [EvalCase(id="fine", question="q?"), EvalCase(id="odd", question="q?", metadata={"m": "x\ud800"}),
             EvalCase(id="inf", question="q?", metadata={"n": math.inf})]
    with pytest.raises(DatasetError) as ei:
        run(cases, lambda c: {"answer": "a"}, tmp_path / "r", score=False)
    got = [(p.field, "odd" in p.reason or "inf" in p.reason) for p in ei.value.problems]
    assert got == [("metadata.m", True), ("metadata.n", True)] and not (tmp_path / "r").exists()
    with pytest.raises(DatasetError):
        save_cases(cases, tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists()


def _edited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> str:
    """The ``editedpipe:answer`` import path, its module file now answering ``version``."""
    (tmp_path / "editedpipe.py").write_text(f'def answer(case):\n    return {{"answer": "{version} " + case.id}}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "editedpipe", raising=False)
    return "editedpipe:answer"


def test_the_cache_misses_and_resume_refuses_after_the_code_of_a_callable_pipeline_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunnerConfig(cache_dir=str(tmp_path / "cache"), progress=False)
    run(cases(3), _edited(tmp_path, monkeypatch, "OLD"), tmp_path / "a", config=cfg, score=False)
    rd = run(cases(3), _edited(tmp_path, monkeypatch, "NEW"), tmp_path / "b", config=cfg, score=False)
    assert [r["answer"].split()[0] for r in rd.results()] == ["NEW"] * 3
    assert not any(r["from_cache"] for r in rd.results()) and rd.manifest["pipeline_calls"] == 3
    part = run(cases(3), _edited(tmp_path, monkeypatch, "NEW"), tmp_path / "c", config=QUIET, score=False)
    part.results_path.write_text(part.results_path.read_text().splitlines(keepends=True)[0])  # killed
    _edited(tmp_path, monkeypatch, "NEWER")
    monkeypatch.delitem(sys.modules, "editedpipe", raising=False)
    with pytest.raises(ConfigError, match="pipeline config changed since the run started"):
        resume(part.path, config=QUIET, score=False)


def test_a_cached_result_cut_at_another_output_cap_is_not_served(tmp_path: Path) -> None:
    n, pipe = _echo_counter()
    cfg = RunnerConfig(cache_dir=str(tmp_path / "cache"), progress=False)
    cut = run(cases(2), loaded(pipe), tmp_path / "a", config=cfg, overrides={"max_output_chars": 3}, score=False)
    assert all(r["truncated"] and r["answer"] == "ans" for r in cut.results())
    n["calls"] = 0
    rd = run(cases(2), loaded(pipe), tmp_path / "b", config=cfg, score=False)
    assert n["calls"] == 2
    assert [(r["answer"], r.get("truncated", False), r["from_cache"]) for r in rd.results()] == [
        (f"answer {c.id}", False, False) for c in cases(2)]
    n["calls"] = 0
    again = run(cases(2), loaded(pipe), tmp_path / "c", config=cfg, score=False)  # the same cap: served
    assert n["calls"] == 0 and all(r["from_cache"] for r in again.results())


def test_two_runs_of_one_name_are_queried_together_and_a_copy_is_refused(tmp_path: Path, capsys) -> None:
    """Trace ids derive from the run id (the --out folder's name): two different runs into
    mon/nightly and tue/nightly share them, and the trace store took the second for a copy of
    the first (exit 2). Their run_uuids tell them apart; a copy keeps its run's uuid."""
    import shutil

    ds = save_cases(cases(4), tmp_path / "ds.jsonl")
    for day in ("mon", "tue"):
        run(str(ds), echo_pipeline, tmp_path / day / "nightly", config=QUIET, score=False)
    mon, tue = (str(tmp_path / day / "nightly") for day in ("mon", "tue"))
    capsys.readouterr()
    assert main(["traces", mon, tue, "--sql", "select count(*) as n from traces", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "8"]
    shutil.copytree(tue, tmp_path / "copy")
    assert main(["traces", mon, tue, str(tmp_path / "copy"), "--sql", "select 1"]) == 2
    err = capsys.readouterr().err
    assert f"the same run as {tue}" in err and "run_uuid" in err, err


def test_a_rescore_of_the_redacted_lines_gives_what_the_run_gave(tmp_path: Path) -> None:
    """The run scores the answers the pipeline returned; results.jsonl holds them redacted. A
    rescore of the file gives the same per-case scores and metrics (the values the run measured
    where a placeholder now hides text are recorded in the line): a leak caught by
    must_not_include is not turned into an unmeasured case that a gate's budget lets through."""
    from labkit.scoring import score_run

    leak = "alice@example.com"
    ds = as_cases([
        {"id": "leak", "question": "Who owns it?", "must_not_include": [leak]},
        {"id": "phone", "question": "What is the support line?", "must_include": ["415-555-0133"]},
        {"id": "ref", "question": "Who to write to?", "reference_answer": f"Write to {leak} today."},
        {"id": "miss", "question": "Who to call?", "must_include": ["415-555-0199"],
         "reference_answer": "Call the desk."},
        {"id": "plain", "question": "What is the limit?", "must_include": ["ten"]},
    ])
    answers = {"leak": f"The owner is {leak}.", "phone": "Call 415-555-0133 any time.",
               "ref": f"Write to {leak} today.", "miss": "Call 415-555-0100 now.", "plain": "The limit is ten."}

    def pipe(case: EvalCase) -> dict[str, Any]:
        return {"answer": answers[case.id], "retrieved": []}

    rd = run(ds, loaded(pipe), tmp_path / "r", config=QUIET)
    on_disk = rd.results_path.read_text()
    assert leak not in on_disk and "415-555-01" not in on_disk
    before, metrics_before = rd.scores(), rd.metrics()
    row = before.set_index("case_id")
    assert row.loc["leak", "must_not_include_violation"] == 1.0 and row.loc["leak", "task_success_rate"] == 0.0
    assert row.loc["miss", "must_include_coverage"] == 0.0 and row.loc["ref", "exact_match"] == 1.0
    score_run(rd)
    after, metrics_after = rd.scores(), rd.metrics()
    pd.testing.assert_frame_equal(after, before)
    assert metrics_after == metrics_before


def test_a_lines_record_of_its_scores_before_redaction_holds_only_for_the_runs_own_cases(tmp_path: Path) -> None:
    """Rescored against the cases it was run with (its snapshot, or a file of the same cases) a
    line takes what it recorded; against other cases the record says nothing, and a phrase a
    placeholder may hide is unmeasured. A pipeline cannot write the record itself."""
    from labkit.scoring import score_run

    ds = as_cases([{"id": "leak", "question": "Who owns it?", "must_not_include": ["alice@example.com"]},
                   {"id": "other", "question": "Who else?", "must_include": ["bob"]}])

    def pipe(case: EvalCase) -> dict[str, Any]:
        return {"answer": "The owner is alice@example.com." if case.id == "leak" else "It is bob.",
                "scored_unredacted": {"must_include_coverage": [0.0, ""]}}

    rd = run(ds, loaded(pipe), tmp_path / "r", config=QUIET)
    lines = {r["case_id"]: r for r in rd.results()}
    assert lines["leak"]["scored_unredacted"]["must_not_include_violation"] == [1.0, ""]
    assert "scored_unredacted" not in lines["other"]  # (what the pipeline returned under that name is dropped)
    same = tmp_path / "same.jsonl"
    save_cases(ds, same)
    score_run(rd, same)
    assert rd.scores().set_index("case_id").loc["leak", "must_not_include_violation"] == 1.0
    changed = tmp_path / "changed.jsonl"
    save_cases(as_cases([{"id": "leak", "question": "Who owns it?", "must_not_include": ["carol@example.com"]},
                         {"id": "other", "question": "Who else?", "must_include": ["bob"]}]), changed)
    score_run(rd, changed)
    row = rd.scores().set_index("case_id").loc["leak"]
    assert math.isnan(row["must_not_include_violation"]) and row["must_not_include_violation_reason"] == "redacted"


@pytest.mark.parametrize(("record", "field"), [
    ([1.0, ""], "scored_unredacted"),
    ({"faithfulness": [1.0, ""]}, "scored_unredacted.faithfulness"),
    ({"exact_match": [1.5, ""]}, "scored_unredacted.exact_match"),
    ({"exact_match": [None, ""]}, "scored_unredacted.exact_match"),
    ({"exact_match": [1.0, "redacted"]}, "scored_unredacted.exact_match"),
    ({"exact_match": [True, ""]}, "scored_unredacted.exact_match"),
])
def test_a_bad_record_of_scores_before_redaction_is_named_at_its_field(record: Any, field: str) -> None:
    from labkit.resultline import check_line

    problems: list[Any] = []
    assert check_line({"case_id": "c", "status": "ok", "answer": "a", "scored_unredacted": record}, 7, problems) is None
    assert [(p.line, p.field) for p in problems] == [(7, field)]


@pytest.mark.parametrize("rid", ["", "  ", "../../etc", "a/b", "a\\\\b", "..", "."])
def test_a_run_id_that_is_no_name_is_refused_before_anything_is_written(tmp_path: Path, rid: str, capsys: Any) -> None:
    """`--run-id ../../etc` and `--run-id ''` were accepted: a run id names the run in traces,
    caches, history and exports, and is a name, not a path."""
    out = tmp_path / "r"
    assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml",
                 "--out", str(out), "--run-id", rid, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--run-id" in err and "Traceback" not in err, err
    assert not (out / "results.jsonl").exists() and not (out / "manifest.json").exists()
