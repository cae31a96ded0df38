"""The run history: DuckDB index (incremental), series by dataset, regressions flagged, CLI, views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labkit.cases import EvalCase, load_cases, save_cases
from labkit.errors import ConfigError, RunDirError
from labkit.history import build_history, update_index
from labkit.history import index as history_index
from labkit.scoring import score_run

N = 60
CTX = "Expired API keys are reissued in the security portal after identity verification."
GOOD = "Expired API keys are reissued in the security portal. This happens after identity verification."
BAD = "Keys never expire on weekends. The moon is made of green cheese."


def _dataset(tmp: Path, name: str, n: int = N, prefix: str = "c") -> Path:
    cases = [EvalCase(id=f"{prefix}{i:03d}", question="How do I reset an expired API key?", expected_source="sec",
                      must_include=("security portal",)) for i in range(n)]
    return save_cases(cases, tmp / name)


def _run(tmp: Path, name: str, dataset: Path, *, hour: int, prompt: str, bad: frozenset[int] = frozenset(),
         seed: int = 0) -> Path:
    """A hand-written, scored run directory: results.jsonl + manifest.json, then labkit's scoring."""
    d = tmp / "runs" / name
    d.mkdir(parents=True)
    ds = load_cases(dataset)
    rng = np.random.default_rng(seed)
    lines = [{"case_id": c.id, "status": "ok", "answer": BAD if i in bad else GOOD,
              "retrieved": [{"id": "sec#1", "source": "sec", "text": CTX}], "citations": ["sec#1"],
              "latency_ms": float(rng.lognormal(6.5, 0.3)), "cost_usd": 0.001,
              "usage": {"input_tokens": 100, "output_tokens": 20}, "attempts": 1}
             for i, c in enumerate(ds.cases)]
    (d / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    man = {"schema_version": 1, "run_id": name, "created_at": f"2026-11-01T{hour:02d}:00:00+00:00",
           "status": "complete", "dataset": {"path": str(dataset), "fingerprint": ds.fingerprint, "n_cases": len(ds)},
           "pipeline": {"name": "ref", "config_hash": f"hash-{prompt}",
                        "config": {"prompt_version": prompt, "model": {"name": "sim-model"}}}}
    (d / "manifest.json").write_text(json.dumps(man))
    score_run(d, dataset, n_boot=500)
    return d


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A history of five scored runs, made once: r1, r2 (no change), r3 (planted regression), o1 (another
    dataset, between two golden runs), r4 (as r3)."""
    tmp = tmp_path_factory.mktemp("history")
    golden = _dataset(tmp, "golden.jsonl")
    other = _dataset(tmp, "other.jsonl", n=40, prefix="o")
    _run(tmp, "r1", golden, hour=1, prompt="v1")
    _run(tmp, "r2", golden, hour=2, prompt="v2", seed=1)
    _run(tmp, "r3", golden, hour=3, prompt="v3", bad=frozenset(range(0, N, 3)))  # planted
    _run(tmp, "o1", other, hour=4, prompt="v3")
    _run(tmp, "r4", golden, hour=5, prompt="v3", bad=frozenset(range(0, N, 3)))
    return tmp


@pytest.fixture
def runs(pristine: Path, tmp_path: Path) -> dict[str, Path]:
    """A fresh copy of the history for each test (some tests change a run)."""
    import shutil

    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    return {name: tmp_path / "runs" / name for name in ("r1", "r2", "r3", "o1", "r4")}


def test_planted_regression_is_flagged_on_its_run_only(runs: dict[str, Path], tmp_path: Path) -> None:
    h = build_history(list(runs.values()), index=tmp_path / "h.duckdb")
    flagged = {(g.run_id, g.metric) for g in h.regressions}
    assert ("r3", "faithfulness") in flagged
    assert {g.run_id for g in h.regressions} == {"r3"}  # r2 ~ r1 and r4 ~ r3: nothing else regressed
    g = next(g for g in h.regressions if g.run_id == "r3" and g.metric == "faithfulness")
    assert g.baseline_run_id == "r2" and g.delta is not None and g.delta < 0 and g.ci_high is not None
    assert g.ci_high < 0 and g.p_adjusted is not None and g.p_adjusted < 0.05 and g.n == N


def test_regression_flag_is_the_paired_comparison_of_labkit_compare(runs: dict[str, Path], tmp_path: Path) -> None:
    from labkit.compare import compare_runs

    h = build_history(list(runs.values()), index=tmp_path / "h.duckdb", seed=3)
    comp = compare_runs(runs["r2"], runs["r3"], seed=3)
    mine = {g.metric: g for g in h.regressions if g.run_id == "r3"}
    assert set(mine) == set(comp.regressed)
    for m, g in mine.items():
        assert g.delta == comp.metrics[m].delta and g.p_adjusted == comp.metrics[m].p_adjusted


def test_a_time_that_is_no_iso_time_is_no_time_and_the_history_says_so(runs: dict[str, Path], tmp_path: Path) -> None:
    """The planted run's created_at rewritten as ``07/12/2026 14:59:45`` sorted as text before every
    dated run ('0' < '2'): it became the series' first run and its regression was hidden. A time
    that is no ISO time is no time: the run is placed after the dated runs, and a note says so."""
    man = json.loads((runs["r3"] / "manifest.json").read_text())
    man["created_at"] = "07/12/2026 14:59:45"
    (runs["r3"] / "manifest.json").write_text(json.dumps(man))
    h = build_history([runs[n] for n in ("r1", "r2", "r3")], index=tmp_path / "h.duckdb")
    assert h.runs["run_id"].tolist() == ["r1", "r2", "r3"]
    assert [(g.run_id, g.baseline_run_id) for g in h.regressions if g.metric == "faithfulness"] == [("r3", "r2")]
    assert any("r3" in n and "'07/12/2026 14:59:45' is no ISO time" in n for n in h.notes), h.notes


def test_run_on_another_dataset_is_split_off(runs: dict[str, Path], tmp_path: Path) -> None:
    h = build_history(list(runs.values()), index=tmp_path / "h.duckdb")
    by_id = {r["run_id"]: r for r in h.runs.to_dict("records")}
    assert by_id["o1"]["series"] != by_id["r1"]["series"]
    assert len(h.series) == 2 and by_id["o1"]["series"].startswith("other.jsonl@")
    assert by_id["o1"]["new_series"] and by_id["r4"]["new_series"] and not by_id["r2"]["new_series"]
    from labkit.history.table import history_frame

    label = dict(zip(h.runs["run_id"], history_frame(h, ["faithfulness"])["dataset series"], strict=True))
    assert label["o1"].endswith("(new series)") and label["r4"].endswith("(back to this series)")
    # r4 is compared with r3 (the previous run on its dataset), never with o1 in between
    assert all(g.baseline_run_id != "o1" and g.run_id != "o1" for g in h.regressions)
    pairs = history_index.connect(tmp_path / "h.duckdb").execute(
        "SELECT DISTINCT base_path, path FROM comparisons").fetchall()
    assert {(Path(a).name, Path(b).name) for a, b in pairs} == {("r1", "r2"), ("r2", "r3"), ("r3", "r4")}
    assert any("2 datasets" in n for n in h.notes)


def test_index_is_incremental(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "h.duckdb"
    first = update_index(runs.values(), db)
    assert len(first.added) == 5 and not first.updated and not first.unchanged
    reads: list[str] = []
    real = history_index._read_run

    def counting(path: str, gate: Any, key: str) -> Any:
        reads.append(Path(path).name)
        return real(path, gate, key)

    monkeypatch.setattr(history_index, "_read_run", counting)
    again = update_index(runs.values(), db)
    assert len(again.unchanged) == 5 and reads == []  # nothing re-read
    old = json.loads((runs["r2"] / "metrics.json").read_text())["metrics"]["faithfulness"]["value"]
    _rescore_with_bad(runs["r2"])  # its results changed and scored again
    third = update_index(runs.values(), db)
    assert [Path(p).name for p in third.updated] == ["r2"] and reads == ["r2"] and len(third.unchanged) == 4
    con = history_index.connect(db)
    got = con.execute("SELECT value FROM metrics WHERE metric = 'faithfulness' AND path = ?",
                      [str(runs["r2"].resolve())]).fetchone()
    assert got == (json.loads((runs["r2"] / "metrics.json").read_text())["metrics"]["faithfulness"]["value"],)
    assert got != (old,)  # (the rescore changed it: the index holds the new value, not its old row)


def test_changed_run_drops_its_cached_comparisons(runs: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    paths = [runs[k] for k in ("r1", "r2", "r3")]
    build_history(paths, index=db)
    con = history_index.connect(db)
    assert con.execute("SELECT count(DISTINCT pair_key) FROM comparisons").fetchone() == (2,)
    con.close()
    _rescore_with_bad(runs["r2"])
    h = build_history(paths, index=db)
    assert {g.run_id for g in h.regressions} == {"r2"}  # r2 now regressed from r1; r3 no longer from r2


def _rescore_with_bad(d: Path) -> None:
    lines = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]
    for i, x in enumerate(lines):
        if i % 3 == 0:
            x["answer"] = BAD
    (d / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    score_run(d, n_boot=500)


def test_gate_results_are_indexed(runs: dict[str, Path], tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text('version: 1\nname: g\nn_boot: 500\nchecks:\n  - {metric: faithfulness, op: ">=", threshold: 0.9}\n')
    h = build_history([runs["r2"], runs["r3"]], index=tmp_path / "h.duckdb", gate=gate)
    by_id = {r["run_id"]: r for r in h.runs.to_dict("records")}
    assert bool(by_id["r2"]["gate_passed"]) and not bool(by_id["r3"]["gate_passed"])
    assert "faithfulness" in by_id["r3"]["gate_failed"]


def test_non_run_paths_are_skipped_and_missing_ones_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    stray = tmp_path / "runs" / "notes"
    stray.mkdir()
    upd = update_index([runs["r1"], stray], tmp_path / "h.duckdb")
    assert str(stray) in upd.skipped and len(upd.added) == 1
    with pytest.raises(RunDirError, match="no such run directory"):
        update_index([tmp_path / "nope"], tmp_path / "h.duckdb")


def test_index_of_another_version_is_rebuilt(runs: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    update_index([runs["r1"]], db)
    con = history_index.connect(db)
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    assert len(update_index([runs["r1"]], db).added) == 1


def test_cli_prints_the_table(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    db = str(tmp_path / "h.duckdb")
    code = main(["history", *map(str, runs.values()), "--index", db, "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 1
    assert "series golden.jsonl@" in out and "series other.jsonl@" in out
    assert "r3 vs r2: faithfulness delta -" in out
    assert "[" in out and "n=60" in out  # value [interval] n=cases
    assert main(["history", *map(str, runs.values()), "--index", db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1 and len(data["runs"]) == 5
    assert main(["history", str(runs["r1"]), "--index", db, "--metrics", "no_such_metric"]) == 2
    assert "no_such_metric" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["results.jsonl", "metrics.json", "scores.csv", "manifest.json"])
def test_an_index_that_is_a_file_of_a_run_given_is_refused(runs: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str], name: str) -> None:
    """``history r1 --index r1/metrics.json`` ended in a traceback of the database; over results.jsonl it
    said no run was scored. Refused as the input it is, the file unchanged."""
    from labkit.cli import main

    target = runs["r1"] / name
    before = target.read_bytes()
    assert main(["history", str(runs["r1"]), str(runs["r2"]), "--index", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--index {target} would overwrite a file of the input RUNS {runs['r1']}" in err, err
    assert err.count("\n") == 1 and target.read_bytes() == before


def test_an_index_that_is_no_index_is_a_one_line_error(runs: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    for text in ('{"runs": []}\n', "notes\n"):
        other = tmp_path / "notes.json"
        other.write_text(text)
        assert main(["history", str(runs["r1"]), "--index", str(other)]) == 2
        err = capsys.readouterr().err
        assert f"{other}" in err and "history index" in err and err.count("\n") == 1, err
        assert other.read_text() == text


def test_views_render(runs: dict[str, Path], tmp_path: Path) -> None:
    from labkit.views import history as hv

    h = build_history(list(runs.values()), index=tmp_path / "h.duckdb")
    v = hv.history_verdict(h)
    assert v.status == "warn" and "r3" in v.detail and "2 dataset series" in v.title
    chart = hv.trend_chart(h, ["faithfulness", "latency_p95_ms"])
    assert chart.png.startswith(b"\x89PNG") and "not joined" in chart.caption
    html = hv.history_table(h, ["faithfulness"]).to_html()
    assert "r3" in html and "faithfulness" in html
    assert "r3" in hv.regressions_table(h).to_html()


def test_reference_history_plan(tmp_path: Path) -> None:
    from labkit.history.reference import read_plan

    dataset, steps = read_plan("data/history.yaml")
    assert dataset.name == "golden.jsonl" and len(steps) >= 4
    versions = [s["config"]["prompt_version"] for s in steps]
    assert len(set(versions)) >= 4  # several prompt versions
    assert any(s["dataset"].name != "golden.jsonl" for s in steps)  # one run on another dataset
    assert all(Path(s["config"]["corpus"]).is_absolute() for s in steps)
    bad = tmp_path / "plan.yaml"
    _dataset(tmp_path, "golden.jsonl", n=3)
    bad.write_text("steps:\n  - {name: x, config: nope.yaml}\ndataset: golden.jsonl\n")
    with pytest.raises(ConfigError, match="config"):
        read_plan(bad)


def test_a_secret_in_a_manifest_is_redacted_before_it_reaches_the_index(runs: dict[str, Path], tmp_path: Path) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    man = json.loads((runs["r1"] / "manifest.json").read_text())
    man["pipeline"]["config"]["prompt_version"] = f"v1 {key}"
    (runs["r1"] / "manifest.json").write_text(json.dumps(man))
    db = tmp_path / "h.duckdb"
    update_index([runs["r1"]], db)
    con = history_index.connect(db)
    stored = con.execute("SELECT prompt_version, run_id, config_hash FROM runs").fetchone()
    assert stored is not None and key not in stored[0] and "[API_KEY]" in stored[0]
    assert stored[1:] == ("r1", "hash-v1")  # labkit's own fields are kept as they are


def test_a_run_folder_named_by_an_address_stays_off_the_index(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run kept under a folder named by an e-mail address (a home folder): the index keys it by a
    redacted path and a hash of the real one, never the address; the history reads it back by its
    real path, compares its runs and keeps its cached comparisons."""
    import shutil

    home = tmp_path / "ops.lead@example.com"
    moved = [Path(shutil.copytree(runs[name], home / name)) for name in ("r1", "r2", "r3")]
    db = tmp_path / "h.duckdb"
    for _ in range(2):  # the second pass reads the comparisons back from the index
        h = build_history(moved, index=db)
        assert [Path(p) for p in h.runs["path"]] == [p.resolve() for p in moved]
        assert set(h.metrics["path"]) == {str(p.resolve()) for p in moved}
        assert {(g.run_id, g.metric) for g in h.regressions} >= {("r3", "faithfulness")}
        assert h.value(str(moved[0].resolve()), "faithfulness") is not None
    assert h.update is not None and sorted(h.update.unchanged) == sorted(str(p.resolve()) for p in moved)
    con = history_index.connect(db)
    try:
        stored = [str(v) for table in ("runs", "metrics", "comparisons")
                  for row in con.execute(f"SELECT * FROM {table}").fetchall() for v in row]
    finally:
        con.close()
    assert stored and not [v for v in stored if "ops.lead@example.com" in v]
    assert any("[EMAIL]" in v for v in stored)
    assert b"ops.lead@example.com" not in db.read_bytes()


@pytest.mark.slow
def test_shipped_history_is_made_by_the_script_and_flags_the_lean_prompt(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped history as `make report` makes it (data/history.yaml, the reference pipeline), then
    `labkit history` over it: the table, the split dataset, the lean prompt's regression."""
    from labkit.cli import main
    from labkit.history import make_reference_history

    runs = make_reference_history("data/history.yaml", runs_dir=tmp_path / "runs" / "history",
                                  config_dir=tmp_path / "configs")
    assert [p.name for p in runs][:3] == ["01-rag-v1", "02-rag-v2", "03-rag-v3"]
    again = make_reference_history("data/history.yaml", runs_dir=tmp_path / "runs" / "history",
                                   config_dir=tmp_path / "configs")
    assert [(p / "manifest.json").read_bytes() for p in again] == [(p / "manifest.json").read_bytes() for p in runs]
    code = main(["history", *map(str, sorted((tmp_path / "runs").glob("*/*"))), "--index",
                 str(tmp_path / "h.duckdb"), "--gate", "data/gate.yaml"])
    out = capsys.readouterr().out
    assert code == 0
    assert "series golden.jsonl@" in out and "series quick_lab.jsonl@" in out
    assert "05-rag-v4-lean vs 03-rag-v3: faithfulness delta -" in out
    assert "FAIL (faithfulness >= 0.85)" in out


def test_history_tables_number_cells_carry_their_kind(runs: dict[str, Path], tmp_path: Path) -> None:
    from labkit.views import history as hv
    from tests.number_cells import bad_number_cells, kinds_of

    h = build_history(list(runs.values()), index=tmp_path / "h.duckdb")
    table = hv.history_table(h, ["faithfulness", "latency_p95_ms", "cost_per_success"]).to_html()
    assert bad_number_cells(table) == []
    assert {"time", "score", "ms", "usd"} <= kinds_of(table)
    regressions = hv.regressions_table(h).to_html()
    assert bad_number_cells(regressions) == []
    assert {"p", "count"} <= kinds_of(regressions)


def test_no_scored_run_among_the_paths_is_exit_2_not_a_vacuous_pass(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    (tmp_path / "notarun").mkdir()
    code = main(["history", str(tmp_path / "notarun"), "--index", str(tmp_path / "h.duckdb"), "--fail-on-regression"])
    err = capsys.readouterr().err
    assert code == 2 and "no scored run" in err and "notarun" in err and "Traceback" not in err


# --- a history is a verdict over runs: nothing it could not check reads as "no regression" ------------


def _forge_better(run: Path) -> None:
    """scores.csv and metrics.json edited to the best faithfulness they can hold."""
    import pandas as pd

    scores = pd.read_csv(run / "scores.csv", dtype={"case_id": str})
    scores["faithfulness"] = 1.0
    scores.to_csv(run / "scores.csv", index=False)
    m = json.loads((run / "metrics.json").read_text())
    m["metrics"]["faithfulness"].update(value=1.0, ci_low=1.0, ci_high=1.0)
    (run / "metrics.json").write_text(json.dumps(m))


@pytest.mark.parametrize("edit", ["scores and metrics", "scores only, indexed before"])
def test_a_run_whose_files_changed_after_scoring_is_refused_not_judged(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str) -> None:
    """Forged scores made the planted regression of r3 vanish (and an index that held the pair
    before an edit of scores.csv reused its comparison); the run is named, and
    --fail-on-regression fails."""
    from labkit.cli import main

    db = str(tmp_path / "h.duckdb")
    paths = [str(runs[n]) for n in ("r1", "r2", "r3")]
    if edit == "scores only, indexed before":
        assert main(["history", *paths, "--index", db]) == 0
        import pandas as pd

        scores = pd.read_csv(runs["r3"] / "scores.csv", dtype={"case_id": str})
        scores["faithfulness"] = 1.0
        scores.to_csv(runs["r3"] / "scores.csv", index=False)
    else:
        _forge_better(runs["r3"])
    capsys.readouterr()
    assert main(["history", *paths, "--index", db, "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "no metric regressed" not in out
    assert f"{runs['r3']}: run files changed after scoring" in out, out


def test_a_pair_that_cannot_be_compared_is_no_verdict(runs: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """r3 rescored with a lenient judge: its pair with r2 cannot be compared, and the history said
    "no metric regressed" and exited 0 under --fail-on-regression."""
    from labkit.cli import main

    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("type: lexical\nthreshold: 0.01\n")
    assert main(["score", str(runs["r3"]), "--judge", str(lenient), "--n-boot", "200"]) == 0
    capsys.readouterr()
    paths = [str(runs[n]) for n in ("r1", "r2", "r3")]
    assert main(["history", *paths, "--index", str(tmp_path / "h.duckdb"), "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "no metric regressed" not in out
    assert "r3: not compared with r2" in out and "different judges" in out
    from labkit.views import history as hv  # the notebook's verdict: not "no regression" either

    v = hv.history_verdict(build_history(paths, index=tmp_path / "h.duckdb"))
    assert v.status != "pass" and "no verdict" in v.title and "r3: not compared with r2" in v.detail, v


def test_the_gate_column_is_the_gate_on_the_run(runs: dict[str, Path], tmp_path: Path) -> None:
    """The column judged metrics.json alone: a run scored by another judge than the gate declares
    read "pass" where `labkit gate --thresholds-only` fails it."""
    from labkit.cli import main

    gate = tmp_path / "gate.yaml"
    gate.write_text('version: 1\nname: g\nn_boot: 500\nchecks:\n  - {metric: faithfulness, op: ">=", threshold: 0.5}\n')
    assert main(["gate", "--config", str(gate), str(runs["r2"]), "--thresholds-only"]) == 0
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("type: lexical\nthreshold: 0.01\n")
    assert main(["score", str(runs["r2"]), "--judge", str(lenient), "--n-boot", "200"]) == 0
    assert main(["gate", "--config", str(gate), str(runs["r2"]), "--thresholds-only"]) == 1
    h = build_history([runs["r2"]], index=tmp_path / "h.duckdb", gate=gate)
    row = h.runs.to_dict("records")[0]
    assert not bool(row["gate_passed"]) and "judge" in row["gate_failed"]


def test_an_incomplete_run_is_named(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run killed part way (its manifest still says running) and scored on the cases it has was
    read as any other run, its missing cases unsaid."""
    lines = (runs["r2"] / "results.jsonl").read_text().splitlines(keepends=True)
    (runs["r2"] / "results.jsonl").write_text("".join(lines[:20]))
    man = json.loads((runs["r2"] / "manifest.json").read_text())
    man["status"] = "running"
    (runs["r2"] / "manifest.json").write_text(json.dumps(man))
    score_run(runs["r2"], n_boot=200)
    h = build_history([runs["r1"], runs["r2"]], index=tmp_path / "h.duckdb")
    assert any(n.startswith("r2 is incomplete: status running, 40 of 60 cases without a result") for n in h.notes), \
        h.notes


def _undate(run: Path) -> None:
    """A hand-made run: its manifest.json records no created_at."""
    man = json.loads((run / "manifest.json").read_text())
    del man["created_at"]
    (run / "manifest.json").write_text(json.dumps(man))


def test_a_run_without_created_at_is_shown_as_unknown_and_comes_after_the_dated_runs(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest without created_at printed `nan` in the created_at column. Such a run shows
    `—`, as the table shows every unknown value; it comes after every dated run, undated runs by
    run id, whatever order the paths are given in."""
    from labkit.cli import main
    from labkit.history.table import history_frame

    _undate(runs["r2"])
    _undate(runs["r1"])
    given = [runs["r2"], runs["r3"], runs["r1"]]
    for order in (given, given[::-1]):
        h = build_history(order, index=tmp_path / "h.duckdb")
        assert h.runs["run_id"].tolist() == ["r3", "r1", "r2"]
        assert history_frame(h, ["faithfulness"])["created_at (UTC)"].tolist() == ["2026-11-01 03:00:00", "—", "—"]
    assert main(["history", *map(str, given), "--index", str(tmp_path / "h.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "—  r1" in out and "—  r2" in out, out
    assert main(["history", *map(str, given), "--index", str(tmp_path / "h.duckdb"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["created_at"]) for r in data["runs"]] == [
        ("r3", "2026-11-01T03:00:00+00:00"), ("r1", None), ("r2", None)]


def test_the_history_view_shows_unknown_values_as_the_table_does(
        runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 06 builds its table with the same history_frame: a run without created_at is `—`
    there too (it was `nan`, and a time cell that is no time). The trend chart labels a run by its
    prompt version, else its run id (a run that records no prompt version was labelled `nan`)."""
    from labkit.views import elements
    from labkit.views import history as hv
    from tests.number_cells import bad_number_cells

    _undate(runs["r2"])
    man = json.loads((runs["r3"] / "manifest.json").read_text())
    del man["pipeline"]["config"]["prompt_version"]
    (runs["r3"] / "manifest.json").write_text(json.dumps(man))
    h = build_history([runs["r1"], runs["r2"], runs["r3"]], index=tmp_path / "h.duckdb")
    html = hv.history_table(h, ["faithfulness"]).to_html()
    assert "nan" not in html.lower() and bad_number_cells(html) == []
    figures: list[Any] = []
    real = elements.Chart.from_figure

    def keep(fig: Any, *args: Any, **kwargs: Any) -> elements.Chart:
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(elements.Chart, "from_figure", keep)
    assert hv.trend_chart(h, ["faithfulness"]).png.startswith(b"\x89PNG")
    labels = [t.get_text() for t in figures[0].axes[0].get_xticklabels()]
    assert labels == ["v1", "r3", "v2"], labels  # r2 has no created_at: after the dated runs


def test_runs_are_ordered_by_the_instant_they_started_whatever_offset_they_record(
        runs: dict[str, Path], tmp_path: Path) -> None:
    """A created_at written with another UTC offset (03:30+02:00 is 01:30 UTC) was compared as text,
    after 02:00+00:00: history, slo and the scorecard order runs by the instant, and the table's
    created_at (UTC) column shows it in UTC."""
    from labkit.history.table import history_frame
    from labkit.readiness.runview import RunView, chronological

    man = json.loads((runs["r3"] / "manifest.json").read_text())
    man["created_at"] = "2026-11-01T03:30:00+02:00"
    (runs["r3"] / "manifest.json").write_text(json.dumps(man))
    given = [runs["r1"], runs["r2"], runs["r3"]]
    h = build_history(given, index=tmp_path / "h.duckdb")
    assert h.runs["run_id"].tolist() == ["r1", "r3", "r2"]
    assert history_frame(h, ["faithfulness"])["created_at (UTC)"].tolist() == [
        "2026-11-01 01:00:00", "2026-11-01 01:30:00", "2026-11-01 02:00:00"]
    assert [v.run_id for v in chronological(RunView(p) for p in given)] == ["r1", "r3", "r2"]
