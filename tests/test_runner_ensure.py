"""Making sure a run exists: one ensure_run for the readiness review and the trace views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.runner import ensure_run, fresh_run_dir
from labkit.runs import RunDir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A 3-case dataset and a pipeline config (the shipped baseline, no fallback)."""
    rows = (REPO / "data" / "quick_lab.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    ds = tmp_path / "cases.jsonl"
    ds.write_text("\n".join(rows) + "\n", encoding="utf-8")
    text = (REPO / "data" / "pipelines" / "baseline.yaml").read_text(encoding="utf-8")
    text = text.replace("corpus: ../corpus", f"corpus: {REPO / 'data' / 'corpus'}")
    text = text.replace("fallback: fallback.yaml", "")
    cfg = tmp_path / "baseline.yaml"
    cfg.write_text(text, encoding="utf-8")
    return ds, cfg


def _made(rd: Path) -> str:
    return str(json.loads((rd / "manifest.json").read_text(encoding="utf-8"))["created_at"])


def test_trace_views_do_not_reuse_a_stale_run(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    """A run of another config or another dataset is made again, not explored as if current."""
    from labkit.runner.ensure import config_file_hash
    from labkit.views import traces as views

    ds, cfg = inputs
    runs = tmp_path / "runs"
    (first,) = views.ensure_runs("", ds, [cfg], runs)
    made = _made(first)
    assert views.ensure_runs("", ds, [cfg], runs) == [first] and _made(first) == made  # current: reused

    cfg.write_text(cfg.read_text(encoding="utf-8").replace("top_k: 5", "top_k: 4"), encoding="utf-8")
    (again,) = views.ensure_runs("", ds, [cfg], runs)
    man = RunDir(again).manifest
    assert man["pipeline"]["config_hash"] == config_file_hash(cfg) and _made(again) != made

    made = _made(again)
    ds.write_text("\n".join(ds.read_text(encoding="utf-8").splitlines()[:2]) + "\n", encoding="utf-8")
    (third,) = views.ensure_runs("", ds, [cfg], runs)
    man = RunDir(third).manifest
    assert man["dataset"]["n_cases"] == 2 and _made(third) != made


def test_an_unscored_or_running_run_is_made_again(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    ds, cfg = inputs
    rd = ensure_run(ds, cfg, tmp_path / "r")
    made = _made(rd.path)
    assert _made(ensure_run(ds, cfg, tmp_path / "r").path) == made
    rd.metrics_path.unlink()
    assert _made(ensure_run(ds, cfg, tmp_path / "r").path) != made
    made = _made(rd.path)
    rd.update_manifest(status="running")
    assert _made(ensure_run(ds, cfg, tmp_path / "r").path) != made


def test_readiness_ensure_run_returns_a_given_run_as_is(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    from labkit.readiness import ensure_run as review_run

    ds, cfg = inputs
    given = tmp_path / "given"
    given.mkdir()
    assert review_run(ds, cfg, tmp_path / "unused", existing=given).path == given
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ConfigError, match="run directory not found"):
        review_run(ds, cfg, tmp_path / "unused", existing=tmp_path / "nope")


def test_fresh_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "a"
    assert fresh_run_dir(run) == run and not run.exists()
    run.mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    fresh_run_dir(run)
    assert not run.exists()
    other = tmp_path / "keep"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(ConfigError, match="does not hold a run"):
        fresh_run_dir(other)
    assert (other / "thesis.txt").exists()


def test_fresh_run_dir_keeps_a_folder_that_holds_a_file_named_as_a_runs_but_no_run(tmp_path: Path) -> None:
    """A folder holding someone's metrics.json beside their own files was removed as a run's: a run
    folder is what the runner writes into (one holding a run, or a run's lock and files only)."""
    other = tmp_path / "analysis"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(ConfigError, match="does not hold a run"):
        fresh_run_dir(other)
    assert sorted(p.name for p in other.iterdir()) == ["metrics.json", "thesis.txt"]
