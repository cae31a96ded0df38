"""The readiness scorecard end to end on the shipped data, and evidence removed one piece at a time."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from labkit.readiness import VERDICTS, build_scorecard
from labkit.readiness.model import AREAS, SEVERITIES

REPO = Path(__file__).resolve().parents[1]
TODAY = __import__("datetime").date(2026, 11, 27)  # the shipped attestations are dated in November 2026

ALERTS_FALLBACK = """version: 1
rules:
  - {name: latency-p95-spike, kind: latency, stat: p95, window: 5m, threshold: 3500}
  - {name: cost-spike, kind: cost, stat: sum, window: 1h, threshold: 5.0}
  - name: error-budget-burn
    kind: burn_rate
    slo: 0.99
    windows: [{long: 1h, short: 5m, burn_rate: 14.4}]
"""


def _project(dst: Path) -> Path:
    """A copy of the shipped evidence (data/) with baseline and variant runs made from it."""
    from labkit.runner import run

    shutil.copytree(REPO / "data", dst / "data")
    if not (dst / "data" / "alerts.yaml").is_file():  # until the trace module ships its rules file
        (dst / "data" / "alerts.yaml").write_text(ALERTS_FALLBACK, encoding="utf-8")
    for name in ("baseline", "variant"):
        run(dst / "data" / "golden.jsonl", str(dst / "data" / "pipelines" / f"{name}.yaml"),
            dst / "outputs" / "runs" / name, overrides={"progress": False}, gate_path=str(dst / "data" / "gate.yaml"))
    return dst


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("shipped"))


@pytest.fixture
def project(shipped: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "p"
    shutil.copytree(shipped, dst)
    return dst


def _runs(root: Path) -> tuple[Path, Path]:
    return root / "outputs" / "runs" / "baseline", root / "outputs" / "runs" / "variant"


def _card(root: Path, candidate: str = "baseline") -> object:
    base, var = _runs(root)
    if candidate == "baseline":
        return build_scorecard(base, root=root, today=TODAY)
    return build_scorecard(base, var, root=root, today=TODAY)


def test_end_to_end_verdict_follows_its_rule(shipped: Path) -> None:
    sc = _card(shipped, "variant")
    d = sc.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["verdict"] in VERDICTS
    assert set(d["areas"]) == set(AREAS)
    for a, v in d["areas"].items():
        assert v["score"] is not None and 0 <= v["score"] <= 100, a
    # every gap is an item that does not pass, with an action, ranked by severity
    items = {i["id"]: i for c in d["checklists"].values() for i in c}
    assert d["gaps"], "the shipped evidence has known gaps (e.g. an unrehearsed rollback)"
    for g in d["gaps"]:
        assert items[g["item"]]["status"] in ("fail", "unknown")
        assert g["action"]
    ranks = [SEVERITIES.index(g["severity"]) for g in d["gaps"]]
    assert ranks == sorted(ranks)
    # and every non-passing primary item is a gap
    gap_ids = {g["item"] for g in d["gaps"]}
    for i in items.values():
        if i["status"] in ("fail", "unknown") and not i.get("refs"):
            assert i["id"] in gap_ids
    # the verdict is the stated rule applied to the gaps and areas
    crit = any(g["severity"] == "critical" for g in d["gaps"])
    low = any(v["score"] < 50 for v in d["areas"].values())
    expected = "not ready" if crit or low else ("ready with conditions" if d["gaps"] else "ready")
    assert d["verdict"] == expected
    # the gate item agrees with the gate itself
    from labkit.gate import Gate

    base, var = _runs(shipped)
    rep = Gate.load(shipped / "data" / "gate.yaml").evaluate(str(var), baseline=str(base))
    assert (items["gate.passes"]["status"] == "pass") == all(c.passed for c in rep.checks if c.kind not in ("review", "pre_registration"))
    # the scorecard says how many cases of the dataset the gate judged
    assert d["gate"]["cases"] == rep.cases and rep.cases is not None
    assert f"gate judged {rep.cases['n_judged']} of {rep.cases['n_dataset']} cases" in d["headline"]
    # the rollout stage named is supported, and no later stage is
    stages = d["rollout"]["stages"]
    sup = [s["name"] for s in stages if s["supported"]]
    assert d["rollout"]["supported_stage"] == (sup[-1] if sup else None)
    assert sup == [s["name"] for s in stages[: len(sup)]]


def test_attestations_settle_only_manual_items(shipped: Path) -> None:
    sc = _card(shipped)
    by = sc.by_id
    assert by["dep.secret_manager"].status == "attested"
    assert by["dep.secret_manager"].attestation is not None
    assert by["inc.rollback_drill"].status == "fail"  # the team attested it is not done yet
    for i in sc.items:
        if i.status == "attested" and not i.refs:
            assert i.source == "attestation"


REMOVALS = {
    "fallback config": ("rel.fallback", lambda root: _drop_lines(root / "data/pipelines/baseline.yaml", r"^fallback:")),
    "gate lock": ("gate.locked", lambda root: (root / "data/gate.yaml.lock.json").unlink()),
    "prompt version in traces": ("obs.prompt_version_logged",
                                 lambda root: _strip_trace_field(_runs(root)[0] / "traces.jsonl", "prompt_version")),
    "alert rules": ("rel.alert_thresholds", lambda root: (root / "data/alerts.yaml").unlink()),
}


def _drop_lines(path: Path, pattern: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if not re.match(pattern, ln)]
    assert len(kept) < len(lines)
    path.write_text("".join(kept), encoding="utf-8")


def _strip_trace_field(path: Path, field: str) -> None:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        rec.pop(field, None)
        out.append(json.dumps(rec))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


@pytest.mark.parametrize("what", sorted(REMOVALS))
def test_removing_evidence_fails_its_item_and_opens_its_gap(project: Path, what: str) -> None:
    item_id, remove = REMOVALS[what]
    before = _card(project).by_id[item_id]
    assert before.status == "pass", f"{item_id} should pass on the shipped evidence: {before.evidence}"
    remove(project)
    sc = _card(project)
    after = sc.by_id[item_id]
    assert after.status == "fail", after.evidence
    assert after.action
    gap = [g for g in sc.gaps if g["item"] == item_id]
    assert gap and gap[0]["action"] == after.action
    if what == "alert rules":  # the observability checklist sees it too
        assert sc.by_id["obs.alerting_for_latency_cost_spikes"].status == "fail"


def test_removing_the_fallback_file_fails_the_item(project: Path) -> None:
    (project / "data/pipelines/fallback.yaml").unlink()
    it = _card(project).by_id["rel.fallback"]
    assert it.status == "fail" and "fallback.yaml" in it.evidence


def test_fallback_on_the_same_model_and_provider_is_not_a_fallback(project: Path) -> None:
    import yaml

    p = project / "data/pipelines/baseline.yaml"
    fb = yaml.safe_load((project / "data/pipelines/fallback.yaml").read_text())
    text = p.read_text().replace("name: sim-gen-large", f"name: {fb['model']['name']}")
    p.write_text(text)
    it = _card(project).by_id["rel.fallback"]
    assert it.status == "fail" and "same model and provider" in it.evidence


PLANTED = "sk-proj-" + "Zq7" * 12  # a provider key format, planted in a copy of the shipped config


def test_planted_api_key_fails_secrets_and_is_never_printed(project: Path, tmp_path: Path) -> None:
    from labkit.cli import main

    p = project / "data/pipelines/baseline.yaml"
    lines = p.read_text().splitlines()
    lines.insert(3, f"api_key: {PLANTED}")
    p.write_text("\n".join(lines) + "\n")
    sc = _card(project)
    it = sc.by_id["rel.secrets"]
    assert it.status == "fail"
    assert "baseline.yaml:4" in it.evidence and "openai_api_key" in it.evidence
    assert sc.verdict == "not ready"
    assert any(g["item"] == "rel.secrets" and g["severity"] == "critical" for g in sc.gaps)
    assert PLANTED not in sc.to_json()
    assert PLANTED[:12] not in sc.to_json()
    out = tmp_path / "out"
    base, _ = _runs(project)
    code = main(["scorecard", "--root", str(project), "--baseline", str(base), "--out", str(out)])
    assert code == 1  # not ready
    html = (out / "05_readiness_scorecard.html").read_text(encoding="utf-8")
    assert "rel.secrets" in html and "baseline.yaml:4" in html
    for f in out.rglob("*"):
        if f.is_file():
            assert PLANTED[:12] not in f.read_text(encoding="utf-8", errors="replace"), f


def test_a_project_without_a_gate_gets_its_scorecard_with_the_gap(project: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """No data/gate.yaml under --root is a finding (gate.defined fails), and the HTML scorecard says
    so (its gate cell loaded the file and the export failed, exit 2, after the JSON was written)."""
    from labkit.cli import main

    base, _ = _runs(project)
    (project / "data/gate.yaml").unlink()
    out = tmp_path / "out"
    code = main(["scorecard", "--root", str(project), "--baseline", str(base), "--out", str(out)])
    assert code == 1, capsys.readouterr().err  # not ready, reported whole
    html = (out / "05_readiness_scorecard.html").read_text(encoding="utf-8")
    assert "gate.defined" in html and "No release gate at" in html


def test_literal_credential_values_and_env_references() -> None:
    from labkit.readiness import scan_text

    text = "\n".join([
        "api_key_env: OPENAI_API_KEY",          # 1 the recommended form
        "api_key: ${OPENAI_API_KEY}",           # 2 env reference
        "api_key: null",                        # 3
        "password: hunter2hunter2",             # 4 literal
        "headers: {Authorization: 'Bearer abcdefghijklmnop1234'}",  # 5 bearer token
        "max_tokens: 512",                      # 6 not a credential
        "token: <set-me>",                      # 7 placeholder
        "aws: AKIAABCDEFGHIJKLMNOP",           # 8 provider format
        "# api_key: sk-" + "a" * 30,           # 9 commented out
    ])
    found = {f.line: f.kind for f in scan_text(text, "x.yaml")}
    assert set(found) == {4, 5, 8}
    assert found[5] == "bearer_token" and found[8] == "aws_access_key_id"
    for f in scan_text(text, "x.yaml"):
        assert "hunter2" not in str(f) and "AKIA" not in str(f)


def test_a_disguised_credential_in_a_config_or_run_file_is_found() -> None:
    """The scans read a line as it shows, as redaction does (labkit.patterns.revealed): a key with a
    zero-width space inside, or a URL's escaped credentials, is found."""
    from labkit import patterns
    from labkit.readiness import scan_text

    text = "aws: AKIA\u200bABCDEFGHIJKLMNOP\nnote: plain words, 50% done\nurl: x%3A%2F%2Fu%3Ap%40ss"
    assert {f.line for f in scan_text(text, "x.yaml")} == {1, 3}
    assert [f.type for f in patterns.find_shown("mail a\u200b.b@example.com")] == ["EMAIL"]


def test_scorecard_cli_json_and_exit_code(shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    base, var = _runs(shipped)
    code = main(["scorecard", "--root", str(shipped), "--baseline", str(base), "--variant", str(var),
                 "--out", str(tmp_path), "--no-html", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == (1 if d["verdict"] == "not ready" else 0)
    assert (tmp_path / "scorecard.json").is_file() and (tmp_path / "deployment_checklist.md").is_file()
    assert "The evidence supports" in (tmp_path / "deployment_checklist.md").read_text()
    assert main(["scorecard", "--out", str(tmp_path)]) == 2  # no run given: usage error


@pytest.mark.parametrize("flag", ["--gate", "--slo", "--dataset", "--runs-dir", "--baseline"])
def test_a_path_given_that_is_not_there_is_a_usage_error_before_anything_is_written(
        shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    """A path the user names and mistyped is an error naming it (it was scored as a missing gate,
    written to scorecard.json, and then the HTML report failed at a notebook cell); a file of
    the shipped layout that is missing is still a finding of the scorecard."""
    from labkit.cli import main

    base, _ = _runs(shipped)
    missing = tmp_path / "nope"
    args = {"--baseline": str(base), flag: str(missing)}
    out = tmp_path / "out"
    code = main(["scorecard", "--root", str(shipped), *[x for kv in args.items() for x in kv], "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and str(missing) in err and "not found" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


# The gaps the shipped review reports on a clean checkout, each one real:
SHIPPED_GAPS = sorted([
    # the candidate's faithfulness (~0.80) is below the locked floor of 0.85: the variant's
    # simulated model adds an unsupported claim in 35% of cases (data/pipelines/variant.yaml)
    "gate.passes",
    # data/gate.yaml has no `review:` section, so nothing makes a human look at high-risk cases
    "gate.human_review",
    # the simulated pipeline follows most prompt-injection cases of the golden set (2/6 handled)
    "mw.adversarial",
    # fallback.yaml runs the same simulated model on the same provider as the primary: it covers
    # neither a model nor a provider outage
    "rel.fallback",
    # the same faithfulness shortfall, seen through data/slo.yaml's faithfulness floor
    "slo.faithfulness-floor",
    # a fresh offline run has no user feedback on any trace
    "obs.user_feedback_captured",
    # data/golden.jsonl holds no case of kind `regression` yet
    "inc.regression_loop",
    # data/attestations.yaml states that no rollback has been rehearsed yet
    "inc.rollback_drill",
])


def test_shipped_review_from_a_clean_state_reports_only_real_gaps(tmp_path: Path) -> None:
    """Notebook 05's path (ensure_run, then build_scorecard) on the shipped data, nothing run before."""
    from labkit.readiness import ensure_run

    ds, gate = REPO / "data" / "golden.jsonl", REPO / "data" / "gate.yaml"
    base = ensure_run(ds, REPO / "data" / "pipelines" / "baseline.yaml", tmp_path / "baseline", gate=gate)
    var = ensure_run(ds, REPO / "data" / "pipelines" / "variant.yaml", tmp_path / "variant", gate=gate)
    sc = build_scorecard(base.path, var.path, root=REPO, gate=gate, dataset=ds, incident_dir=tmp_path / "incident",
                         today=TODAY)
    gaps = [g["item"] for g in sc.to_dict()["gaps"]]
    assert sorted(gaps) == SHIPPED_GAPS
    assert sc.by_id["dep.config_separate"].status == "pass", sc.by_id["dep.config_separate"].evidence
    # a second review reuses both runs: their recorded config hash is the one recomputed from the files
    assert ensure_run(ds, REPO / "data" / "pipelines" / "variant.yaml", tmp_path / "variant", gate=gate).manifest[
        "run_id"] == var.manifest["run_id"]


@pytest.mark.parametrize("change", ["config", "corpus"])
def test_config_separate_fails_when_config_or_corpus_changed_after_the_run(project: Path, change: str) -> None:
    assert _card(project, "variant").by_id["dep.config_separate"].status == "pass"
    if change == "config":
        f = project / "data" / "pipelines" / "variant.yaml"
        f.write_text(f.read_text(encoding="utf-8").replace("top_k: 5", "top_k: 4"), encoding="utf-8")
    else:
        f = project / "data" / "corpus" / "billing.md"
        f.write_text(f.read_text(encoding="utf-8") + "\n## New\n\nA new section.\n", encoding="utf-8")
    it = _card(project, "variant").by_id["dep.config_separate"]
    assert it.status == "fail" and "changed after run" in it.action


def test_scorecard_out_that_would_overwrite_an_input_is_refused_before_anything_is_written(
        shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An attestations file where the checklist would go (the second file written): exit 2,
    nothing written. --out inside the candidate run directory where an earlier scorecard lies
    replaces no file of the run: written (it was refused)."""
    from labkit.cli import main

    base, _ = _runs(shipped)
    out = tmp_path / "sc"
    out.mkdir()
    att = out / "deployment_checklist.md"
    shutil.copy(shipped / "data" / "attestations.yaml", att)
    code = main(["scorecard", "--root", str(shipped), "--baseline", str(base), "--attestations", str(att),
                 "--no-html", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--attestations" in err and "--out" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["deployment_checklist.md"]
    assert att.read_bytes() == (shipped / "data" / "attestations.yaml").read_bytes()

    run_copy = tmp_path / "run"
    shutil.copytree(base, run_copy)
    (run_copy / "scorecard.json").write_text("{}\n", encoding="utf-8")  # an earlier scorecard: no file of the run
    own = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file() and p.name != "scorecard.json"}
    code = main(["scorecard", "--root", str(shipped), "--baseline", str(run_copy), "--no-html",
                 "--out", str(run_copy)])
    assert code in (0, 1), capsys.readouterr().err
    assert json.loads((run_copy / "scorecard.json").read_text(encoding="utf-8")) != {}
    assert {n: (run_copy / n).read_bytes() for n in own} == own


ATTESTED_SECRETS = ("alice@example.com", "hunter2pass", "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234abcd",
                    "AKIAIOSFODNN7EXAMPLE")


def test_no_secret_of_an_attestation_reaches_any_file_the_scorecard_writes(
        shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An owner's address, a password in an evidence URL and keys in a note were written as is to
    scorecard.json and deployment_checklist.md (and printed by --json)."""
    from labkit.cli import main

    base, _ = _runs(shipped)
    att = tmp_path / "att.yaml"
    att.write_text('version: 1\nattestations:\n  - {item: dep.secret_manager, status: attested, owner: '
                   '"alice@example.com", evidence: "https://u:hunter2pass@wiki.example/x", date: 2026-11-20, '
                   'note: "key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234abcd AKIAIOSFODNN7EXAMPLE"}\n', encoding="utf-8")
    out = tmp_path / "sc"
    main(["scorecard", "--root", str(shipped), "--baseline", str(base), "--attestations", str(att),
          "--no-html", "--json", "--out", str(out)])
    printed = capsys.readouterr()
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"scorecard.json", "deployment_checklist.md"}
    assert "dep.secret_manager" in (out / "scorecard.json").read_text(encoding="utf-8")
    leaks = [(p.name, s) for p in written for s in ATTESTED_SECRETS if s in p.read_text(encoding="utf-8")]
    leaks += [("stdout", s) for s in ATTESTED_SECRETS if s in printed.out + printed.err]
    assert not leaks, leaks


def test_the_html_scorecard_is_built_from_the_evidence_the_command_was_given(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The notebook built its own scorecard from the files under --root: with --attestations
    given, scorecard.json held the attestations given and the HTML the shipped ones."""
    from labkit.cli import main

    base, _ = _runs(project)
    att = tmp_path / "attested.yaml"
    text = (project / "data/attestations.yaml").read_text(encoding="utf-8")
    given = text.replace("owner: support engineering lead", "owner: drill owner named on the command line")
    assert given != text
    att.write_text(given, encoding="utf-8")
    out = tmp_path / "out"
    main(["scorecard", "--root", str(project), "--baseline", str(base), "--attestations", str(att),
          "--out", str(out)])
    assert "drill owner named on the command line" in (out / "scorecard.json").read_text(encoding="utf-8"), \
        capsys.readouterr().err
    html = (out / "05_readiness_scorecard.html").read_text(encoding="utf-8")
    assert "drill owner named on the command line" in html and "support engineering lead" not in html
    assert "SIMULATED canary" in html  # (the shipped canary, labelled so, unless --canary or --no-canary)


def test_the_html_scorecard_shows_no_canary_it_was_not_given(project: Path, tmp_path: Path) -> None:
    """The online-experiment section was always the shipped simulated canary, whatever runs the
    scorecard reviewed (a roll-back decision on prompt versions none of them had): --no-canary
    leaves it out and says so, --canary DIR reads those traces."""
    from labkit.cli import main

    base, _ = _runs(project)
    out = tmp_path / "out"
    assert main(["scorecard", "--root", str(project), "--baseline", str(base), "--no-canary",
                 "--out", str(out)]) in (0, 1)
    html = (out / "05_readiness_scorecard.html").read_text(encoding="utf-8")
    assert "No canary traces were given" in html and "SIMULATED canary" not in html
    assert "rag-v4-lean" not in html


def test_an_attestation_of_an_unknown_item_is_a_config_error(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelled item id in the attestation file was a note on the scorecard ("attestations
    ignored") and every attestation of the file was dropped: the docs name it a config error.
    It is one, naming the file, the line of the entry, the field and the known ids; labkit
    scorecard exits 2 with one line and no traceback, before it writes anything."""
    from labkit.cli import main
    from labkit.errors import ConfigError

    base, _ = _runs(project)
    att = tmp_path / "att.yaml"
    att.write_text("version: 1\nattestations:\n"
                   "  - {item: dep.secret_manager, status: attested, owner: platform team,\n"
                   "     evidence: https://wiki.example/secrets, date: 2026-11-20}\n"
                   "  - {item: dep.secret, status: attested, owner: platform team,\n"  # a truncated id
                   "     evidence: https://wiki.example/secrets, date: 2026-11-20}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        build_scorecard(base, root=project, today=TODAY, attestations=att)
    assert (e.value.path, e.value.line, e.value.field) == (str(att), 5, "attestations[1].item")
    assert e.value.known is not None and "dep.secret_manager" in e.value.known
    out = tmp_path / "out"
    code = main(["scorecard", "--root", str(project), "--baseline", str(base), "--attestations", str(att),
                 "--no-html", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{att}:5: field 'attestations[1].item': unknown item 'dep.secret'" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


def test_runs_that_record_no_start_time_are_reviewed_without_a_made_up_one(project: Path) -> None:
    """The baseline and the candidate record no created_at (hand-made): the review runs and no
    unknown reads as a value (the order of such runs: the test of chronological). gate.preregistered passed
    with "run variant at None recorded gate ...": nothing shows the gate was locked before a run
    whose start is not recorded, so it is unknown, as labkit gate's own check says (unverifiable)."""
    base, var = _runs(project)
    for run in (base, var):
        man = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        del man["created_at"]
        (run / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    sc = build_scorecard(base, var, root=project, today=TODAY)
    text = sc.to_json() + sc.deployment_checklist()
    assert not re.search(r"\b(None|nan|NaN)\b", text), re.findall(r".{0,60}\b(?:None|nan|NaN)\b.{0,20}", text)
    it = sc.by_id["gate.preregistered"]
    assert it.status == "unknown" and "records no start time (created_at)" in it.evidence, it.evidence
    assert it.action and sc.to_dict()["candidate"]["created_at"] is None


def test_a_lock_recorded_with_another_utc_offset_is_compared_by_its_instant(project: Path) -> None:
    """gate.preregistered compared the recorded lock time with the run's start as text: a lock at
    03:30+02:00 (01:30 UTC) came "after" a run started at 02:00+00:00. It is before it."""
    _, var = _runs(project)
    base, _ = _runs(project)
    man = json.loads((var / "manifest.json").read_text(encoding="utf-8"))
    assert isinstance(man.get("gate"), dict) and man["gate"].get("locked_at"), man.get("gate")
    man["created_at"] = "2026-11-01T02:00:00+00:00"
    man["gate"]["locked_at"] = "2026-11-01T03:30:00+02:00"
    (var / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    it = build_scorecard(base, var, root=project, today=TODAY).by_id["gate.preregistered"]
    assert "after the run started" not in it.evidence, it.evidence
    man["gate"]["locked_at"] = "2026-11-01T04:30:00+02:00"  # 02:30 UTC: after it
    (var / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    it = build_scorecard(base, var, root=project, today=TODAY).by_id["gate.preregistered"]
    assert it.status == "fail" and "after the run started" in it.evidence, it.evidence



def test_a_gate_loosened_after_the_run_fails_gate_passes_as_it_fails_the_gate(project: Path) -> None:
    """The gate loosened to what the variant scored after the results existed, and locked again:
    `labkit gate` failed it (edited_after_run), while the scorecard's critical item gate.passes
    left the pre-registration check out and passed 8/8, so the verdict was READY WITH CONDITIONS
    (exit 0). gate.passes fails on every check the gate fails but the human review (its own item)."""
    from labkit.cli import main

    base, var = _runs(project)
    gate = project / "data" / "gate.yaml"
    gate.write_text(gate.read_text(encoding="utf-8").replace("threshold: 0.85", "threshold: 0.70")
                    .replace("{metric: faithfulness,       max_drop: 0.02}", "{metric: faithfulness,       max_drop: 0.5}"),
                    encoding="utf-8")
    assert main(["gate", "lock", str(gate)]) == 0
    assert main(["gate", "--config", str(gate), str(var), "--baseline", str(base)]) == 1
    sc = build_scorecard(base, var, root=project, today=TODAY)
    it = sc.by_id["gate.passes"]
    assert it.status == "fail" and "pre-registered" in it.evidence, it.evidence
    assert sc.verdict == "not ready", sc.verdict

def test_a_recorded_lock_time_that_is_no_time_fails_the_item_naming_it(project: Path) -> None:
    """A lock time that is no ISO time was compared as text with the run's start ("locked at soon,
    after the run started"): the item fails naming the manifest and its field."""
    base, var = _runs(project)
    man = json.loads((var / "manifest.json").read_text(encoding="utf-8"))
    man["gate"]["locked_at"] = "soon"
    (var / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    it = build_scorecard(base, var, root=project, today=TODAY).by_id["gate.preregistered"]
    assert it.status == "fail" and "not an ISO time: 'soon'" in it.evidence, it.evidence
    assert "gate.locked_at" in it.evidence and "manifest.json" in it.evidence, it.evidence
    assert "after the run started" not in it.evidence, it.evidence


@pytest.mark.parametrize("which", ["variant", "baseline"])
def test_a_run_whose_scores_changed_after_scoring_is_refused_not_reviewed(
        project: Path, capsys: pytest.CaptureFixture[str], which: str) -> None:
    """The variant's scores.csv edited to make every adversarial case succeed: the release gate item
    said "run files changed after scoring", yet the adversarial item read the edited file and passed
    (6/6, the safety area at 100). The review refuses such a run, as ``labkit slo`` does."""
    from labkit.cli import main

    base, var = _runs(project)
    target = var if which == "variant" else base
    scores = target / "scores.csv"
    scores.write_text(scores.read_text(encoding="utf-8").replace(",0.0,", ",1.0,"), encoding="utf-8")
    out = project / "sc"
    code = main(["scorecard", "--root", str(project), "--baseline", str(base), "--variant", str(var),
                 "--runs-dir", str(project / "outputs" / "runs"), "--no-html", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "changed after scoring" in err and str(target) in err and err.count("\n") == 1, err
    assert not out.exists()


def test_runs_scored_on_a_subset_of_the_golden_set_do_not_stand_for_it(project: Path) -> None:
    """Both runs made on the 37 golden cases the variant answered faithfully: the gate judged 37 of 37,
    ``eval.dataset`` reported the full golden set as evidence, and the verdict was READY WITH
    CONDITIONS. The candidate's metrics stand for the golden set only when it was scored on it."""
    import csv

    from labkit.runner import run

    _, var = _runs(project)
    ok = {r["case_id"] for r in csv.DictReader((var / "scores.csv").open(encoding="utf-8")) if r["faithfulness"] == "1.0"}
    golden = project / "data" / "golden.jsonl"
    picked = project / "picked.jsonl"
    picked.write_text("".join(ln for ln in golden.read_text(encoding="utf-8").splitlines(keepends=True)
                              if json.loads(ln)["id"] in ok), encoding="utf-8")
    runs = {}
    for name in ("baseline", "variant"):
        runs[name] = run(picked, str(project / "data" / "pipelines" / f"{name}.yaml"), project / "sub" / name,
                         overrides={"progress": False}, gate_path=str(project / "data" / "gate.yaml")).path
    card = build_scorecard(runs["baseline"], runs["variant"], root=project, today=TODAY)
    item = next(i for i in card.items if i.id == "eval.dataset")
    assert item.status == "fail" and "not the golden set" in item.evidence, item
    assert card.verdict == "not ready"
