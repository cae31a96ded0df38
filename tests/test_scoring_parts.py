"""labkit.scoring.score_results: results.jsonl read, validated and scored part by part.

Scoring a file in many small parts (in this process, or in forked worker processes) must
write byte for byte the scores.csv and metrics.json that one part gives, on the shipped
data and on seeded random recorded traffic; and a bad line in any part is named at its
line in the whole file, with nothing scored.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from forks import forks_meet_at, kill_in_child, refuse_forks

from labkit import scoring
from labkit.errors import DatasetError
from labkit.runs import RunDir
from labkit.scoring import score_run

ROOT = Path(__file__).resolve().parents[1]
_WRITE_SCORES = scoring._write_scores


def _recorded(tmp_path: Path, n: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_score
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench_score.write_data(n, tmp_path)


def _scored(run: Path, ds: Path | None, where: Path, monkeypatch: pytest.MonkeyPatch, *,
            part_bytes: int, min_parts: int) -> tuple[bytes, bytes]:
    copy = where / f"{run.name}-{part_bytes}-{min_parts}"
    shutil.copytree(run, copy)
    monkeypatch.setattr(scoring, "PART_BYTES", part_bytes)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_PARTS", min_parts)
    score_run(copy, ds, n_boot=300)
    return (copy / "scores.csv").read_bytes(), (copy / "metrics.json").read_bytes()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _recorded(tmp_path_factory.mktemp("recorded"), 3000)


@pytest.mark.parametrize("min_parts", [10**9, 1], ids=["in-process", "workers"])
def test_many_parts_write_what_one_part_writes(recorded: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, min_parts: int) -> None:
    ds, run = recorded
    whole = _scored(run, ds, tmp_path, monkeypatch, part_bytes=2**40, min_parts=10**9)
    parts = _scored(run, ds, tmp_path, monkeypatch, part_bytes=50_000, min_parts=min_parts)
    assert (run / "results.jsonl").stat().st_size > 60 * 50_000  # sixty parts and more
    assert parts == whole
    assert json.loads(whole[1])["n_cases"] == 3000


@pytest.mark.slow
def test_many_parts_on_the_shipped_data(shipped_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _scored(shipped_run, None, tmp_path, monkeypatch, part_bytes=2**40, min_parts=10**9)
    parts = _scored(shipped_run, None, tmp_path, monkeypatch, part_bytes=2_000, min_parts=1)
    assert parts == whole


@pytest.mark.parametrize("min_parts", [10**9, 1], ids=["in-process", "workers"])
def test_results_in_any_order_write_what_results_in_dataset_order_write(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_parts: int) -> None:
    """scores.csv is in dataset order and metrics.json does not depend on the order of the lines."""
    ds, run = recorded
    in_order = _scored(run, ds, tmp_path, monkeypatch, part_bytes=50_000, min_parts=min_parts)
    shuffled = tmp_path / "shuffled"
    shutil.copytree(run, shuffled)
    lines = _lines(run)
    order = list(range(len(lines)))
    random.Random(7).shuffle(order)
    (shuffled / "results.jsonl").write_text("".join(lines[i] for i in order))
    assert _scored(shuffled, ds, tmp_path, monkeypatch, part_bytes=50_000, min_parts=min_parts) == in_order


def _lines(run: Path) -> list[str]:
    return (run / "results.jsonl").read_text().splitlines(keepends=True)


def _broken(recorded: tuple[Path, Path], tmp_path: Path, edit: dict[int, str]) -> Path:
    _ds, run = recorded
    copy = tmp_path / "broken"
    shutil.copytree(run, copy)
    lines = _lines(copy)
    for i, text in edit.items():
        lines[i - 1] = text
    (copy / "results.jsonl").write_text("".join(lines))
    return copy


@pytest.mark.parametrize("min_parts", [10**9, 1], ids=["in-process", "workers"])
def test_a_bad_line_in_a_late_part_is_named_at_its_line_in_the_file(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_parts: int) -> None:
    ds, run = recorded
    first = _lines(run)[0]
    other = json.loads(_lines(run)[2000])
    other["case_id"] = "case-9999999"
    broken = _broken(recorded, tmp_path, {
        1700: '{"case_id": "x", "latency_ms": -1}\n',
        2001: json.dumps(other) + "\n",  # not in the dataset
        2500: first,  # repeats line 1's case
        2900: "{not json\n",
    })
    monkeypatch.setattr(scoring, "PART_BYTES", 50_000)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_PARTS", min_parts)
    with pytest.raises(DatasetError) as e:
        score_run(broken, ds, n_boot=50)
    got = [(p.line, p.field) for p in e.value.problems]
    assert got == [(1700, "latency_ms"), (2500, "case_id"), (2900, None)], got
    assert "first on line 1)" in e.value.problems[1].reason
    assert not (broken / "scores.csv").exists() and not (broken / "metrics.json").exists()
    fixed = _broken(recorded, tmp_path / "2", {2001: json.dumps(other) + "\n"})
    with pytest.raises(DatasetError) as e:
        score_run(fixed, ds, n_boot=50)
    assert [(p.line, p.field) for p in e.value.problems] == [(2001, "case_id")]
    assert "not in dataset" in e.value.problems[0].reason


def test_a_torn_last_line_is_skipped_and_a_cache_claim_beyond_the_count_is_named(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds, run = recorded
    monkeypatch.setattr(scoring, "PART_BYTES", 50_000)
    lines = _lines(run)
    torn = _broken(recorded, tmp_path, {3000: lines[2999][:40]})
    m = score_run(torn, ds, n_boot=50)
    assert m["n_cases"] == 2999 and m["n_missing"] == 1
    claims = [i for i, t in enumerate(lines, 1) if '"from_cache": true' in t]
    rd = RunDir(torn)
    rd.update_manifest(status="complete", counts={"from_cache": 2})
    with pytest.raises(DatasetError) as e:
        score_run(torn, ds, n_boot=50)
    assert [(p.line, p.field) for p in e.value.problems] == [(claims[2], "from_cache")]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_reasons = st.lists(st.sampled_from(["", "", "no_gold", "not_ok", "no_claims", "unmeasured"]), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_reasons, st.booleans()), min_size=1, max_size=5))
def test_parts_travel_as_compact_frames_and_join_to_the_plain_frame(parts: list[tuple[list[str], bool]]) -> None:
    """A part's reason columns travel back as categoricals (codes and the few distinct reasons):
    the joined frame is the plain frame of the parts' columns, cell for cell and dtype for dtype."""
    import numpy as np
    import pandas as pd

    cols = [{"case_id": [f"c{i}" for i in range(len(r))], "m": np.arange(len(r), dtype=np.float64),
             "m_reason": list(r), "x_reason": [""] * len(r) if blank else list(reversed(r))} for r, blank in parts]
    frames = [scoring._Part([], [], [], scoring._compact(c), [], [], 0) for c in cols]
    got = scoring._frame(frames)
    want = pd.concat([pd.DataFrame(c) for c in cols], ignore_index=True)
    want = want.astype({"m_reason": object, "x_reason": object})
    assert got is not None
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("tail", ["\n\n", '{"case_id": "c-torn", "ans'], ids=["blank-lines", "torn-line"])
@pytest.mark.parametrize("min_parts", [10**9, 1], ids=["in-process", "workers"])
def test_a_part_with_no_line_to_score_changes_nothing(recorded: tuple[Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, tail: str, min_parts: int) -> None:
    """Blank lines, or a writer's torn last line, alone in a part of their own (a part boundary just
    before them): the part scores nothing and the files are what one part writes."""
    ds, run = recorded
    lines = _lines(run)[:40]
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "results.jsonl").write_text("\n\n" + "".join(lines) + tail)
    whole = _scored(edited, ds, tmp_path, monkeypatch, part_bytes=2**40, min_parts=10**9)
    parts = _scored(edited, ds, tmp_path, monkeypatch, part_bytes=1, min_parts=min_parts)  # a part a line
    assert parts == whole
    assert json.loads(whole[1])["n_cases"] == 40


@pytest.mark.parametrize("min_parts", [10**9, 1], ids=["in-process", "workers"])
def test_a_line_that_is_not_utf8_is_named_at_its_line_in_the_file(recorded: tuple[Path, Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   min_parts: int) -> None:
    ds, run = recorded
    copy = tmp_path / "bad-bytes"
    shutil.copytree(run, copy)
    data = (copy / "results.jsonl").read_bytes().splitlines(keepends=True)
    data[1999] = b'{"case_id": "x", "answer": "\xff"}\n'
    data[2499] = b"{not json\n"
    (copy / "results.jsonl").write_bytes(b"".join(data))
    monkeypatch.setattr(scoring, "PART_BYTES", 50_000)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_PARTS", min_parts)
    with pytest.raises(DatasetError) as e:
        score_run(copy, ds, n_boot=50)
    assert [p.line for p in e.value.problems] == [2000, 2500] and "UTF-8" in e.value.problems[0].reason


def _written(run: Path, ds: Path, where: Path, monkeypatch: pytest.MonkeyPatch, *, forked: tuple[int, int],
             pids: Path) -> tuple[bytes, bytes, dict[str, object]]:
    """scores.csv, metrics.json and the manifest's scoring record (less its time) of ``run``
    scored with scores.csv written in a forked process for ``forked`` (least, most) cases;
    each writer's process id appended to ``pids``."""
    import os

    copy = where / f"{run.name}-write-{pids.stem}"
    shutil.copytree(run, copy)
    monkeypatch.setattr(scoring, "FORKED_WRITE_MIN", forked[0])
    monkeypatch.setattr(scoring, "FORKED_WRITE_MAX", forked[1])

    def recorded(*args: object) -> object:
        with pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return _WRITE_SCORES(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "_write_scores", recorded)
    score_run(copy, ds, n_boot=300)
    record = dict(RunDir(copy).manifest["scoring"])
    record.pop("scored_at")
    return (copy / "scores.csv").read_bytes(), (copy / "metrics.json").read_bytes(), record


def test_scores_written_by_a_forked_process_are_what_a_thread_writes(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large run's scores.csv is written by a forked process beside the draws (the fingerprint
    for the manifest with it): the same bytes and manifest as the writer in a thread."""
    import os

    ds, run = recorded
    small, large, fork_pids = tmp_path / "small.pids", tmp_path / "large.pids", tmp_path / "fork.pids"
    in_thread = _written(run, ds, tmp_path, monkeypatch, forked=(3001, 10**9), pids=small)
    past_bound = _written(run, ds, tmp_path, monkeypatch, forked=(1, 2999), pids=large)
    forked = _written(run, ds, tmp_path, monkeypatch, forked=(3000, 3000), pids=fork_pids)
    assert small.read_text().split() == large.read_text().split() == [str(os.getpid())]
    assert len(fork_pids.read_text().split()) == 1 and fork_pids.read_text().split() != [str(os.getpid())]
    assert forked == in_thread == past_bound
    from labkit.cases import load_cases

    assert forked[2]["dataset"]["fingerprint"] == load_cases(ds).fingerprint  # type: ignore[index]


@pytest.mark.parametrize("forked_min", [10**9, 1], ids=["thread", "forked"])
def test_a_writer_that_fails_raises_its_error_and_writes_no_metrics(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked_min: int) -> None:
    """The writer's error, raised in a thread or in the forked process, ends scoring there."""
    from labkit.errors import RunDirError

    ds, run = recorded
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.json").unlink(missing_ok=True)
    before = (copy / "manifest.json").read_bytes()
    monkeypatch.setattr(scoring, "FORKED_WRITE_MIN", forked_min)

    def refused(*args: object) -> None:
        raise RunDirError("scores.csv: no room on the disk")

    monkeypatch.setattr(scoring, "write_scores_csv", refused)
    with pytest.raises(RunDirError, match="no room on the disk"):
        score_run(copy, ds, n_boot=300)
    assert not (copy / "metrics.json").exists()
    assert (copy / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("failure", ["no fork", "writer lost"])
def test_a_forked_writer_that_cannot_write_leaves_the_writing_to_this_process(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A fork refused (no memory for one) or the writer killed: scores.csv is written here, the
    same bytes and manifest as ever."""
    import os

    ds, run = recorded
    want = _written(run, ds, tmp_path, monkeypatch, forked=(3001, 10**9), pids=tmp_path / "thread.pids")
    if failure == "no fork":
        refuse_forks(monkeypatch)
    else:
        kill_in_child(monkeypatch, scoring, "_forked_write")
    got = _written(run, ds, tmp_path, monkeypatch, forked=(1, 10**9), pids=tmp_path / "fallback.pids")
    assert got == want
    assert (tmp_path / "fallback.pids").read_text().split() == [str(os.getpid())]  # written here


@pytest.mark.parametrize("failure", ["no fork", "worker lost"])
def test_parts_whose_workers_cannot_score_them_are_scored_here(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:

    ds, run = recorded
    want = _scored(run, ds, tmp_path, monkeypatch, part_bytes=50_000, min_parts=10**9)
    if failure == "no fork":
        refuse_forks(monkeypatch)
    else:
        kill_in_child(monkeypatch, scoring, "_score_part")
    monkeypatch.setattr(scoring, "FORKED_WRITE_MIN", 10**9)  # (the writer's own fork is tested above)
    copy = tmp_path / "fallback"
    shutil.copytree(run, copy)
    monkeypatch.setattr(scoring, "PART_BYTES", 50_000)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_PARTS", 1)
    score_run(copy, ds, n_boot=300)
    assert ((copy / "scores.csv").read_bytes(), (copy / "metrics.json").read_bytes()) == want


def test_two_threads_scoring_two_runs_at_once_each_write_their_own_scores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """score_run of two runs from two threads at once, scores.csv written by forked writers (every
    fork made to wait for both threads): each run gets its own scores.csv and its own hashes."""
    import hashlib
    import threading

    import labkit

    runs = {}
    for name, n in (("a", 300), ("b", 200)):
        cases = labkit.as_cases([{"id": f"{name}{i:04d}", "question": f"What is {name} {i}?"} for i in range(n)])
        rd = labkit.run(cases, lambda c: {"answer": f"It is {c.id}.", "retrieved": [{"id": "d#0", "text": f"It is {c.id}."}]},
                        tmp_path / name, config=labkit.RunnerConfig(progress=False), score=False)
        labkit.score_run(rd.path, n_boot=20)
        runs[name] = (rd.path, RunDir(rd.path).results(), (rd.path / "scores.csv").read_bytes())
    monkeypatch.setattr(scoring, "FORKED_WRITE_MIN", 1)
    forks_meet_at(monkeypatch, 2)
    errors: dict[str, BaseException] = {}

    def work(name: str) -> None:
        path, rows, _ = runs[name]
        (path / "scores.csv").unlink()
        try:
            labkit.score_run(path, n_boot=20, results=rows)
        except BaseException as e:  # (shown by the assertion)
            errors[name] = e

    threads = [threading.Thread(target=work, args=(name,)) for name in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name, (path, _, want) in runs.items():
        assert (path / "scores.csv").read_bytes() == want, name
        assert RunDir(path).manifest["scoring"]["sha256"]["scores.csv"] == hashlib.sha256(want).hexdigest(), name
