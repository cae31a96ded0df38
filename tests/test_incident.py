"""Incident review on the shipped baseline and variant: the stage named is the one that regressed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from labkit.cases import load_cases
from labkit.compare import compare_runs
from labkit.errors import LabkitError
from labkit.metrics import METRICS
from labkit.readiness import incident_review

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from labkit.runner import run

    root = tmp_path_factory.mktemp("inc")
    shutil.copytree(REPO / "data", root / "data")
    out = []
    for name in ("baseline", "variant"):
        rd = run(root / "data" / "golden.jsonl", str(root / "data" / "pipelines" / f"{name}.yaml"),
                 root / "runs" / name, overrides={"progress": False}, gate_path=str(root / "data" / "gate.yaml"))
        out.append(Path(rd.path))
    return out[0], out[1]


def _stage_deltas_by_hand(base: Path, var: Path) -> dict[str, tuple[float, list[str]]]:
    """Per stage: mean of direction-adjusted deltas (bounded as is, others relative), regressed metrics.

    task_success_rate is the end-to-end outcome: it drops whichever stage failed, so it locates nothing.
    """
    comp = compare_runs(base, var).to_dict()
    acc: dict[str, list[float]] = {}
    reg: dict[str, list[str]] = {}
    for name, d in comp["metrics"].items():
        if d["delta"] is None or name == "task_success_rate":  # end-to-end outcome, not a stage's own
            continue
        spec = METRICS[name]
        sign = 1 if spec.direction == "higher" else -1
        if spec.bounded:
            v = sign * d["delta"]
        elif d["baseline"]:
            v = sign * d["delta"] / abs(d["baseline"])
        else:
            continue
        acc.setdefault(spec.stage, []).append(v)
        if d["verdict"] == "regressed":
            reg.setdefault(spec.stage, []).append(name)
    return {s: (sum(v) / len(v), reg.get(s, [])) for s, v in acc.items()}


def test_note_names_the_stage_that_regressed(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, var = runs
    rev = incident_review(base, var, tmp_path)
    by_hand = _stage_deltas_by_hand(base, var)
    regressed = {s: v for s, v in by_hand.items() if v[1]}
    assert regressed, "the shipped variant regresses at least one stage"
    expected = min(regressed, key=lambda s: (regressed[s][0], ("retrieval", "generation", "agent", "ops").index(s)))
    assert rev.stage == expected
    assert rev.stage_deltas[expected]["delta"] == pytest.approx(by_hand[expected][0], abs=1e-6)
    # the named stage really moved the wrong way, with an interval that excludes no change
    comp = compare_runs(base, var).to_dict()
    for m in regressed[expected][1]:
        d = comp["metrics"][m]
        bad_side = d["ci_high"] < 0 if METRICS[m].direction == "higher" else d["ci_low"] > 0
        assert bad_side, m
    note = rev.note_path.read_text(encoding="utf-8")
    label = {"agent": "tool use", "ops": "operations"}.get(expected, expected)
    assert f"**Stage: {label}" in note
    for section in ("## Summary", "## Impact", "## Timeline", "## Where quality moved", "## Contributing factors",
                    "## Action items"):
        assert section in note
    assert f"Paired cases: {comp['n_paired']}" in note
    assert "first trace" in note  # the timeline comes from the traces


def test_regression_cases_validate_as_a_dataset(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, var = runs
    rev = incident_review(base, var, tmp_path)
    ds = load_cases(rev.cases_path)
    assert len(ds) == len(rev.regression_cases) > 0
    assert all(c.kind == "regression" for c in ds)
    from labkit.readiness.runview import RunView

    failing = {cid for cid, ok in RunView(var).case_success().items() if not ok}
    assert {c.metadata["source_case"] for c in ds} == failing
    flipped = {f["case_id"] for f in compare_runs(base, var).to_dict()["flipped"] if f["to"] == "fail"}
    assert {c.metadata["source_case"] for c in ds if c.metadata["regressed"]} == flipped
    golden = load_cases(REPO / "data" / "golden.jsonl").by_id()
    for c in ds:  # the proposal keeps the labels of the case it came from
        src = golden[c.metadata["source_case"]]
        assert c.question == src.question and c.must_include == src.must_include


def test_backlog_has_owner_and_due_date_to_fill(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, var = runs
    rev = incident_review(base, var, tmp_path)
    with rev.backlog_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(rev.actions) > 0
    assert {"owner", "due_date", "action", "stage"} <= set(rows[0])
    assert all(r["owner"] == "" and r["due_date"] == "" for r in rows)
    assert any(r["stage"] == rev.stage for r in rows)


def test_the_same_run_twice_is_refused(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A run reviewed against itself named no stage and wrote a note that nothing regressed: the
    review compares two runs, and one given twice is refused as compare refuses it."""
    base, _ = runs
    with pytest.raises(LabkitError, match="the same run"):
        incident_review(base, base, tmp_path)
    assert not (tmp_path / "incident.md").exists()


def test_incident_cli(runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    base, var = runs
    assert main(["incident", str(base), str(var), "--out", str(tmp_path / "o")]) == 0
    assert "stage:" in capsys.readouterr().out
    for name in ("incident.md", "regression_cases.jsonl", "backlog.csv"):
        assert (tmp_path / "o" / name).is_file()
    assert main(["incident", str(base), str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_no_secret_of_the_dataset_reaches_the_proposed_cases(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """The proposed cases copy the dataset's: they go through redaction like every file labkit
    writes (a secret pasted into a question, a tag or a metadata key stays off disk)."""
    import json

    from labkit.readiness.runview import RunView

    base, var = runs
    failing = sorted(cid for cid, ok in RunView(var).case_success().items() if not ok)
    planted = ["sk-proj-PLANTEDabcdefghijklmnop0123", "AKIAPLANTED123456789", "jane.doe@example.com", "Hunt3rPassw0rd"]
    lines = []
    for line in (REPO / "data" / "golden.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["id"] == failing[0]:
            case["question"] += f" (my key {planted[0]}, mail {planted[2]})"
            case["tags"] = {**case.get("tags", {}), "note": planted[1]}
            case["metadata"] = {"api_key": planted[3], f"k {planted[1]}": "v"}
        lines.append(json.dumps(case))
    ds = tmp_path / "planted.jsonl"
    ds.write_text("\n".join(lines) + "\n")
    rev = incident_review(base, var, tmp_path / "inc", dataset=ds)
    assert any(c.metadata["source_case"] == failing[0] for c in rev.regression_cases)
    for p in (tmp_path / "inc").iterdir():
        text = p.read_text("utf-8")
        assert not [s for s in planted if s in text], p.name
    assert "[API_KEY]" in rev.cases_path.read_text("utf-8")


def test_the_proposed_cases_are_redacted_with_the_failing_runs_own_patterns(runs: tuple[Path, Path],
                                                                             tmp_path: Path) -> None:
    """The proposed cases went through the catalogue only: a question holding what the failing
    run's own ``extra_patterns`` mask was proposed raw."""
    import json

    from labkit.readiness.runview import RunView

    base, var = runs
    mine = tmp_path / "variant"
    shutil.copytree(var, mine)
    man = json.loads((mine / "manifest.json").read_text("utf-8"))
    man["runner"]["redaction"] = {"extra_patterns": {"TICKET": r"TCK-\d{6}"}}
    (mine / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    failing = sorted(cid for cid, ok in RunView(var).case_success().items() if not ok)
    lines = []
    for line in (REPO / "data" / "golden.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["id"] == failing[0]:
            case["question"] += " (ticket TCK-123456)"
        lines.append(json.dumps(case))
    ds = tmp_path / "planted.jsonl"
    ds.write_text("\n".join(lines) + "\n")
    rev = incident_review(base, mine, tmp_path / "inc", dataset=ds)
    assert any(c.metadata["source_case"] == failing[0] for c in rev.regression_cases)
    text = rev.cases_path.read_text("utf-8")
    assert "TCK-123456" not in text and "[TICKET]" in text


def test_a_gate_given_that_cannot_be_read_is_an_input_error(runs: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A gate named on the command line that does not load is the user's mistake (exit 2, the file
    and field named), not a note at the bottom of incident.md."""
    from labkit.cli import main

    base, var = runs
    bad = tmp_path / "nan_gate.yaml"
    bad.write_text("checks:\n  - {metric: faithfulness, op: '>=', threshold: .nan}\n")
    assert main(["incident", str(base), str(var), "--out", str(tmp_path / "inc"), "--gate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "nan_gate.yaml" in err and "Traceback" not in err and not (tmp_path / "inc").exists()


def test_incident_out_that_would_overwrite_an_input_is_refused_before_anything_is_written(
        runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out over the dataset given: exit 2, nothing written. --out inside the failing run
    directory replaces no file of the run: the same review twice writes both times (the second
    was refused, its backlog.csv taken for a file of FAILING_RUN)."""
    from labkit.cli import main

    base, var = runs
    run_copy = tmp_path / "failing"
    shutil.copytree(var, run_copy)
    own = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    for _ in range(2):
        assert main(["incident", str(base), str(run_copy), "--out", str(run_copy / "incident")]) == 0, \
            capsys.readouterr().err
        assert (run_copy / "incident" / "backlog.csv").is_file()
    assert main(["incident", str(base), str(run_copy), "--out", str(run_copy)]) == 0
    assert {n: (run_copy / n).read_bytes() for n in own} == own
    capsys.readouterr()

    out = tmp_path / "o"
    out.mkdir()
    ds = out / "regression_cases.jsonl"
    shutil.copy(REPO / "data" / "golden.jsonl", ds)
    assert main(["incident", str(base), str(var), "--out", str(out), "--dataset", str(ds)]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["regression_cases.jsonl"]
    assert ds.read_bytes() == (REPO / "data" / "golden.jsonl").read_bytes()


def _failing(var: Path) -> list[str]:
    from labkit.readiness.runview import RunView

    return sorted(cid for cid, ok in RunView(var).case_success().items() if not ok)


def _golden_with(tmp_path: Path, edit: dict[str, dict[str, object]]) -> Path:
    """The golden set with fields of some cases replaced (``edit``: case id -> fields)."""
    import json

    lines = []
    for line in (REPO / "data" / "golden.jsonl").read_text().splitlines():
        case = json.loads(line)
        case.update(edit.get(case["id"], {}))
        lines.append(json.dumps(case))
    ds = tmp_path / "edited.jsonl"
    ds.write_text("\n".join(lines) + "\n")
    return ds


def test_a_case_whose_labels_redaction_would_change_is_named_not_proposed_altered(
        runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Redaction never changes what is scored: a failing case whose must_include, must_not_include
    or expected_tools hold what redaction hides is not proposed with masked labels (it no longer
    tested what it did), nor with the raw label (a secret on disk): it is left out and named, its
    field said, in the note and the backlog. Its free text alone would only be masked."""
    base, var = runs
    failing = _failing(var)
    assert len(failing) >= 4
    golden = load_cases(REPO / "data" / "golden.jsonl").by_id()
    email, card = "support@kestrel.example", "4111 1111 1111 1111"
    held = {failing[0]: "must_include", failing[1]: "must_not_include", failing[2]: "expected_tools"}
    ds = _golden_with(tmp_path, {
        failing[0]: {"must_include": [*golden[failing[0]].must_include, email]},
        failing[1]: {"must_not_include": [*golden[failing[1]].must_not_include, card]},
        failing[2]: {"expected_tools": [{"name": "escalate_ticket", "args": {"contact": email}}]},
        failing[3]: {"question": f"{golden[failing[3]].question} (write to {email})"},
    })
    rev = incident_review(base, var, tmp_path / "inc", dataset=ds)
    proposed = {c.metadata["source_case"]: c for c in load_cases(rev.cases_path)}
    assert not set(held) & set(proposed)
    assert set(proposed) == set(failing) - set(held)
    assert "[EMAIL]" in proposed[failing[3]].question  # free text: masked, the case still proposed
    edited = load_cases(ds).by_id()
    for cid, c in proposed.items():  # what is scored is the dataset's, unchanged
        src = edited[cid]
        assert (c.must_include, c.must_not_include, c.expected_source, c.expected_chunks,
                [dict(t) for t in c.expected_tools]) == (src.must_include, src.must_not_include,
                                                         src.expected_source, src.expected_chunks,
                                                         [dict(t) for t in src.expected_tools]), cid
    note = rev.note_path.read_text("utf-8")
    backlog = rev.backlog_path.read_text("utf-8")
    for cid, fld in held.items():
        assert any(cid in n and fld in n and "not proposed" in n for n in rev.notes), (cid, rev.notes)
        assert f"case {cid} not proposed: its {fld}" in note
        assert cid in backlog
    for p in (tmp_path / "inc").iterdir():
        text = p.read_text("utf-8")
        assert email not in text and card not in text, p.name


def test_following_the_regression_loop_proposes_no_case_twice(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Merge regression_cases.jsonl into the golden set, run again, review again: a failing case
    that is a regression case is not proposed as reg-reg-<id>, a reg-<id> already in the dataset
    is not proposed again, the notes count both, and the merged set stays a valid dataset."""
    from labkit.runner import run

    base, var = runs
    data = base.parents[1] / "data"
    first = incident_review(base, var, tmp_path / "i1")
    assert first.regression_cases
    merged = tmp_path / "golden2.jsonl"
    merged.write_text((data / "golden.jsonl").read_text() + first.cases_path.read_text())
    again = [Path(run(merged, str(data / "pipelines" / f"{name}.yaml"), tmp_path / f"{name}2",
                      overrides={"progress": False}).path) for name in ("baseline", "variant")]
    rev = incident_review(again[0], again[1], tmp_path / "i2", dataset=merged)
    in_dataset = set(load_cases(merged).by_id())
    ids = [c.id for c in rev.regression_cases]
    assert not [i for i in ids if i.startswith("reg-reg-")]
    assert not set(ids) & in_dataset
    load_cases_text = merged.read_text() + rev.cases_path.read_text()
    (tmp_path / "golden3.jsonl").write_text(load_cases_text)
    load_cases(tmp_path / "golden3.jsonl")  # no duplicate id
    failing = _failing(again[1])
    reg_failing = [c for c in failing if c.startswith("reg-")]
    orig_failing = [c for c in failing if f"reg-{c}" in in_dataset]
    assert reg_failing and orig_failing
    assert any(f"{len(reg_failing)} failing case(s) not proposed again" in n and "already regression" in n
               for n in rev.notes), rev.notes
    assert any(f"{len(orig_failing)} failing case(s) not proposed" in n and "already in the dataset" in n
               for n in rev.notes), rev.notes


def test_failing_cases_without_a_result_are_named_in_the_impact_and_the_backlog(
        runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Recorded traffic scored against the dataset may lack cases (the gate counts them missing):
    the review names them in its impact and adds a backlog action, not silence."""
    import json

    from labkit.cli import main

    base, var = runs
    gone = _failing(var)[:3]
    rec = tmp_path / "rec"
    rec.mkdir()
    kept = [line for line in (var / "results.jsonl").read_text().splitlines()
            if json.loads(line)["case_id"] not in gone]
    (rec / "results.jsonl").write_text("\n".join(kept) + "\n")
    data = base.parents[1] / "data"
    assert main(["score", str(rec), "--dataset", str(data / "golden.jsonl"), "--corpus", str(data / "corpus")]) == 0
    rev = incident_review(base, rec, tmp_path / "inc", dataset=data / "golden.jsonl")
    assert rev.impact["no_result_cases"] == gone
    note = rev.note_path.read_text("utf-8")
    impact = note.split("## Impact", 1)[1].split("\n## ", 1)[0]
    assert f"no result in the failing run: {len(gone)}" in impact and all(c in impact for c in gone)
    with rev.backlog_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    row = [r for r in rows if r["action"].startswith(f"{len(gone)} case(s) have no result")]
    assert len(row) == 1 and all(c in row[0]["action"] for c in gone)
    whole = incident_review(base, var, tmp_path / "inc2")  # every case has its result: nothing said
    assert whole.impact["no_result_cases"] == []
    assert "no result" not in whole.note_path.read_text("utf-8")
