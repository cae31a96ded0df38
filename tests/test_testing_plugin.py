"""The pytest plugin end to end: pytest in a subprocess on a team's test file over a small
dataset with one case planted to fail (a must_include the shipped baseline cannot meet).

How the plugin is found: through the ``pytest11`` entry point pyproject.toml declares. The
shared virtualenv has labkit installed (editable) from another checkout, whose installed
metadata may not carry this checkout's entry point, so the test writes the entry point it
reads from this checkout's pyproject.toml into a metadata-only ``.dist-info`` folder on
PYTHONPATH: pytest discovers it exactly as it discovers an installed package's, with no
``-p`` flag (a ``-p labkit.testing.plugin`` on top of an installed entry point would
register the module twice).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("sec-001", "sec-002", "bil-001", "acc-006")  # acc-006 expects a tool call
PLANTED = "sec-001"
TEAM_TESTS = '''\
from labkit.testing import assert_case, assert_gate

def test_case(labkit_case, labkit_result):
    assert_case(labkit_case, labkit_result)

def test_gate(labkit_run, labkit_gate):
    assert_gate(labkit_run, labkit_gate)
'''
GATE = "version: 1\nname: team-gate\nchecks:\n  - {metric: retrieval_hit_rate, op: '>=', threshold: 0.5, min_n: 1}\n"

pytestmark = pytest.mark.slow


def entry_points_dist(where: Path) -> Path:
    """A metadata-only distribution declaring this checkout's pytest11 entry points."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    info = where / "labkit_checkout_entry_points-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labkit-checkout-entry-points\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return where


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("team")
    lines = [json.loads(ln) for ln in (ROOT / "data/golden.jsonl").read_text().splitlines()]
    cases = [c for c in lines if c["id"] in KEEP]
    for c in cases:
        if c["id"] == PLANTED:
            c["must_include"] = ["security portal", "carrier pigeon"]
    (root / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (root / "gate.yaml").write_text(GATE)
    (root / "test_quality.py").write_text(TEAM_TESTS)
    entry_points_dist(root / "meta")
    return root


def pytest_in(suite: Path, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(suite / "meta")])
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
           f"--labkit-dataset={suite / 'cases.jsonl'}", f"--labkit-gate={suite / 'gate.yaml'}",
           f"--labkit-pipeline={ROOT / 'data/pipelines/baseline.yaml'}", "test_quality.py", *args]
    return subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=240)


def test_one_test_per_case_the_planted_case_fails_with_its_check(suite: Path) -> None:
    proc = pytest_in(suite, "--junitxml=junit.xml", "-rf")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 4 passed" in out
    assert f"FAILED test_quality.py::test_case[{PLANTED}]" in out
    assert f"case {PLANTED}: 1 check(s) failed" in out
    assert "must_include: missing ['carrier pigeon'] (coverage 0.50)" in out

    suite_el = ET.parse(suite / "junit.xml").getroot().find("testsuite")
    assert suite_el is not None
    cases = {tc.get("name"): tc for tc in suite_el.iter("testcase")}
    assert set(cases) == {f"test_case[{c}]" for c in KEEP} | {"test_gate"}
    assert {tc.get("classname") for tc in cases.values()} == {"test_quality"}
    failed = {n for n, tc in cases.items() if tc.find("failure") is not None}
    assert failed == {f"test_case[{PLANTED}]"}
    failure = cases[f"test_case[{PLANTED}]"].find("failure")
    assert failure is not None and "carrier pigeon" in (failure.get("message") or "")
    props = {p.get("name"): p.get("value") for p in cases["test_case[acc-006]"].iter("property")}
    assert props == {"labkit_case_id": "acc-006", "labkit_status": "ok"}


def test_k_selects_cases_by_id(suite: Path) -> None:
    proc = pytest_in(suite, "-k", "sec-", "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chosen = sorted(ln for ln in proc.stdout.splitlines() if "::" in ln)
    assert chosen == [f"test_quality.py::test_case[{c}]" for c in ("sec-001", "sec-002")]
    proc = pytest_in(suite, "-k", "bil- or acc-")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 3 deselected" in proc.stdout


def test_the_plugin_is_loaded_by_the_entry_point(suite: Path) -> None:
    proc = pytest_in(suite, "--collect-only", autoload=False)  # no entry points: the options are unknown
    assert proc.returncode == 4
    assert "unrecognized arguments: --labkit-dataset" in proc.stderr


def test_a_bad_dataset_is_a_usage_error_naming_the_line(suite: Path, tmp_path: Path) -> None:
    bad = suite / "bad.jsonl"
    bad.write_text('{"id": "x-1", "question": "q?"}\n{"id": "x-2", "question": "q?", "must_includes": []}\n')
    proc = pytest_in(suite, f"--labkit-dataset={bad}", "--collect-only")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--labkit-dataset:" in proc.stderr and "line 2" in proc.stderr and "must_includes" in proc.stderr
