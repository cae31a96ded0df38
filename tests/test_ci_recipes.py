"""docs/ci/: the GitHub Actions and GitLab CI recipes are valid YAML, every `labkit ...`
command in them parses with labkit's own argument parser (without running it), and every
path they read exists in the repository or is written by an earlier command of the job."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "docs/ci"
#: the options whose value a command writes (the rest of its path-like values it reads)
WRITES = {"out", "junit", "markdown"}
PATHLIKE = re.compile(r"/|\.(ya?ml|jsonl|json|xml|md|csv)$")
#: folders a checkout has only after commands ran (ignored by git): a recipe must write what it reads there
GENERATED = {"outputs", ".venv"}
GITLAB_KEYWORDS = {"stages", "default", "variables", "include", "workflow", "image", "services", "cache"}


def _lines(script: str) -> list[str]:
    """Shell lines of a script, backslash continuations joined."""
    return [ln.strip() for ln in script.replace("\\\n", " ").splitlines() if ln.strip()]


def github_jobs(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """job -> its steps, each {"run": [lines]} or {"uses": ..., "paths": [...]}."""
    out = {}
    for name, job in doc["jobs"].items():
        steps = []
        for st in job["steps"]:
            if "run" in st:
                steps.append({"run": _lines(st["run"])})
            else:
                paths = _lines(str((st.get("with") or {}).get("path", "")))
                steps.append({"uses": st["uses"], "paths": paths})
        out[name] = steps
    return out


def gitlab_jobs(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, job in doc.items():
        if name in GITLAB_KEYWORDS or name.startswith("."):
            continue
        steps = [{"run": _lines("\n".join(job.get(key) or []))}
                 for key in ("before_script", "script", "after_script")]
        art = job.get("artifacts") or {}
        junit = (art.get("reports") or {}).get("junit") or []
        steps.append({"uses": "artifacts", "paths": list(art.get("paths") or []) + (
            [junit] if isinstance(junit, str) else list(junit))})
        out[name] = steps
    return out


def _path_values(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    for key, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and PATHLIKE.search(v):
                yield key, v


def _known(path: str, written: set[str]) -> bool:
    """In the repository, written, inside what was written, or a folder holding what was."""
    p = path.rstrip("/")
    shipped = (ROOT / p).exists() and p.split("/")[0] not in GENERATED
    return shipped or any(p == w or p.startswith(w + "/") or w.startswith(p + "/")
                                      for w in written)


def check_job(steps: list[dict[str, Any]], extras: set[str]) -> tuple[list[str], list[str]]:
    """(problems, the labkit commands seen) of one job, its steps in order."""
    parser, problems, commands = build_parser(), [], []
    written: set[str] = set()
    for st in steps:
        for line in st.get("run", []):
            m = re.match(r"pip install (\S+)$", line)
            if m:
                wanted = re.findall(r"\[(.*)\]", m.group(1))
                unknown = {e for w in wanted for e in w.split(",")} - extras
                if unknown:
                    problems.append(f"{line!r}: no such extra {sorted(unknown)}")
            if not line.startswith("labkit "):
                continue
            commands.append(line)
            try:
                args = parser.parse_args(shlex.split(line)[1:])
            except SystemExit:
                problems.append(f"{line!r}: labkit's parser refuses it")
                continue
            for key, path in _path_values(args):
                if key in WRITES:
                    written.add(path.rstrip("/"))
                elif not _known(path, written):
                    problems.append(f"{line!r}: reads {path}, which neither exists nor was written before")
        problems += [f"{st['uses']}: keeps {p}, which no step wrote" for p in st.get("paths", [])
                     if not _known(p, written)]
    return problems, commands


def extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


RECIPES = {"github-actions.yml": github_jobs, "gitlab-ci.yml": gitlab_jobs}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_is_valid_yaml_and_every_labkit_command_parses(name: str) -> None:
    doc = yaml.safe_load((CI / name).read_text())
    jobs = RECIPES[name](doc)
    seen = []
    for job, steps in jobs.items():
        problems, commands = check_job(steps, extras())
        assert problems == [], f"{name} job {job}: {problems}"
        seen += commands
    gates = [c for c in seen if c.startswith("labkit gate ")]
    assert gates and all("--junit gate.xml" in g and "--markdown gate.md" in g and "--baseline" in g
                         for g in gates)
    assert any(c.startswith("labkit report") for c in seen)


def test_the_recipes_publish_the_junit_the_summary_and_the_reports() -> None:
    gh = (CI / "github-actions.yml").read_text()
    assert 'cat gate.md >> "$GITHUB_STEP_SUMMARY"' in gh
    kept = [p for steps in github_jobs(yaml.safe_load(gh)).values() for st in steps for p in st.get("paths", [])]
    assert {"gate.xml", "gate.md", "outputs/reports/"} <= set(kept)
    gl = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert gl["labkit-gate"]["artifacts"]["reports"]["junit"] == "gate.xml"
    assert gl["labkit-gate"]["artifacts"]["when"] == "always"
    assert "outputs/reports/" in gl["labkit-reports"]["artifacts"]["paths"]


def test_the_checker_catches_a_bad_flag_a_missing_file_and_an_unwritten_artifact() -> None:
    steps = [{"run": ["pip install '.[nosuch]'",
                      "labkit gate --config data/gate.yaml outputs/runs/candidate --no-such-flag",
                      "labkit run --dataset data/missing.jsonl --pipeline data/pipelines/baseline.yaml --out out/r",
                      "labkit gate --config data/gate.yaml out/r --baseline outputs/runs/never --junit g.xml"]},
             {"uses": "upload", "paths": ["g.xml", "h.md"]}]
    problems, _ = check_job(steps, extras())
    assert problems == [
        "\"pip install '.[nosuch]'\": no such extra ['nosuch']",
        "'labkit gate --config data/gate.yaml outputs/runs/candidate --no-such-flag': labkit's parser refuses it",
        "'labkit run --dataset data/missing.jsonl --pipeline data/pipelines/baseline.yaml --out out/r': "
        "reads data/missing.jsonl, which neither exists nor was written before",
        "'labkit gate --config data/gate.yaml out/r --baseline outputs/runs/never --junit g.xml': "
        "reads outputs/runs/never, which neither exists nor was written before",
        "upload: keeps h.md, which no step wrote",
    ]
