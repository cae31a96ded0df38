"""The markdown outputs (gate.md for CI step summaries, incident.md and deployment_checklist.md
for tickets) hold user text: case ids, tag values, names, attestations. Each shows as text: no
tag, image or link of it reaches the markdown or the HTML a summary renderer makes of it, and no
table row gains or loses a column."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import labkit
from labkit.cases import as_cases
from labkit.gate import Gate

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = '<script>alert("tag")</script>'
IMG = "<img src=https://evil.example.com/p.png>"
PIXEL = "![t](https://evil.example.com/n.png)"
HOSTILE = f"x|{SCRIPT}{IMG} {PIXEL} *b* `c"
RAW = ("<script", "<img", "![", "](http")


def _rendered(markdown: str) -> str:
    """The HTML a CI summary renderer makes of the markdown (raw HTML passed through)."""
    import mistune

    return str(mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])(markdown))


def _cells(row: str) -> int:
    """The cells of a markdown table row: its ``|`` not escaped by a backslash, less one."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def _assert_safe(md: str) -> str:
    assert not [s for s in RAW if s in md], md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    tables: list[list[str]] = []
    for i, line in enumerate(md.splitlines()):
        if line.startswith("|"):
            if i == 0 or not md.splitlines()[i - 1].startswith("|"):
                tables.append([])
            tables[-1].append(line)
    assert rows and all(len({_cells(r) for r in t}) == 1 for t in tables), md
    html = _rendered(md)
    assert "<script" not in html and "<img" not in html and "<a " not in html, html
    return html


def test_gate_md_shows_names_tag_values_and_case_ids_as_text() -> None:
    name = f"g` {IMG} `|"
    g = Gate.from_dict({"name": name, "checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.85}],
                        "slices": [{"where": {"category": HOSTILE},
                                    "checks": [{"metric": "faithfulness", "op": ">=", "threshold": 0.8}]}],
                        "review": {"required_for": {"category": HOSTILE}}})
    ds = as_cases([{"id": f"c{i}-{SCRIPT}|{PIXEL}", "question": "q?", "tags": {"category": HOSTILE}}
                   for i in range(2)])
    entry = {"stage": "generation", "value": 0.9, "ci_low": 0.8, "ci_high": 1.0, "n": 2, "unmeasured": 0}
    rep = g.evaluate({"n_cases": 2, "n_missing": 0, "metrics": {"faithfulness": entry},
                      "slices": {f"category={HOSTILE}": {"faithfulness": entry}}}, dataset=ds, reviews={})
    assert any("missing: c0-" in c.reason for c in rep.checks)  # (the case ids are in the review's reason)
    md = rep.to_markdown()
    html = _assert_safe(md)
    assert f"<h3>Gate {name}: <strong>FAIL</strong></h3>" in html.replace("&lt;", "<").replace("&gt;", ">")
    assert md.count("\n| ") == 5  # the header and the four checks: no row broken by a value's "|"


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The quick-lab set with markup in its ids and tag values, run by the baseline and the variant
    into folders whose names (the run ids) are markup."""
    tmp = tmp_path_factory.mktemp("hostile")
    lines = [json.loads(t) for t in (ROOT / "data" / "quick_lab.jsonl").read_text(encoding="utf-8").splitlines()]
    for d in lines:
        d["id"] += f"|{IMG}"
        d["tags"]["category"] = f"security{SCRIPT}|{PIXEL}"
    ds = tmp / "ds.jsonl"
    ds.write_text("".join(json.dumps(d) + "\n" for d in lines), encoding="utf-8")
    cases = labkit.load_cases(ds)
    base = labkit.run(cases, ROOT / "data/pipelines/baseline.yaml", tmp / "runs" / "base![t](https:evil.example.com)",
                      overrides={"progress": False})
    var = labkit.run(cases, ROOT / "data/pipelines/variant.yaml", tmp / "runs" / "var<img src=x>",
                     overrides={"progress": False})
    return Path(base.path), Path(var.path), ds


def test_incident_md_shows_run_ids_tag_values_and_case_ids_as_text(hostile_runs: tuple[Path, Path, Path],
                                                                   tmp_path: Path) -> None:
    from labkit.readiness import incident_review

    base, var, ds = hostile_runs
    rev = incident_review(base, var, tmp_path / "inc", dataset=ds)
    md = rev.note_path.read_text(encoding="utf-8")
    assert "security" in md and "ql-01" in md  # (the tag values and the case ids are in the note)
    html = _assert_safe(md)
    assert "<h1>Incident review: var&lt;img src=x&gt; against base![t](https:evil.example.com)</h1>" in html
    # the note's JSON and CSV siblings keep the text as it is
    doc = json.loads((tmp_path / "inc" / "incident.json").read_text(encoding="utf-8"))
    assert any(f"security{SCRIPT}" in f for f in doc["factors"])


def test_deployment_checklist_md_shows_attestations_slos_and_rollout_as_text(tmp_path: Path) -> None:
    from labkit.readiness import build_scorecard

    root = tmp_path / "p"
    shutil.copytree(ROOT / "data", root / "data")
    att = root / "att.yaml"
    att.write_text(yaml.safe_dump({"version": 1, "attestations": [{
        "item": "dep.secret_manager", "status": "attested", "owner": 'x"><img src=https://evil.example.com/p.png>',
        "evidence": f"https://wiki.example/x) {PIXEL[:-1]}", "date": "2026-11-20",
        "note": f"a | b\n# not a heading {SCRIPT}"}]}), encoding="utf-8")
    rollout = root / "data" / "rollout.yaml"
    rollout.write_text(rollout.read_text(encoding="utf-8").replace("name: shadow", f"name: '*shadow*{IMG}'"),
                       encoding="utf-8")
    sc = build_scorecard(root=root, today=dt.date(2026, 11, 27), attestations=att)
    md = sc.deployment_checklist()
    assert "attested by x" in md and "not a heading" in md and "shadow" in md
    html = _assert_safe(md)
    assert "<h1>" not in html  # (a line break in a note starts no heading)
    assert 'attested by x"&gt;&lt;img src=https://evil.example.com/p.png&gt;' in html.replace("&quot;", '"')
