"""labkit.mlflowlog and ``labkit mlflow log`` against a real local MLflow tracking store
(SQLite), read back through ``mlflow.MlflowClient``. The runs logged are the reference
pipeline's, whose LLM is SIMULATED (no network, no weights)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from labkit.cli import main

try:
    from mlflow import MlflowClient
except ImportError:  # under CI (make setup installs the extra) a missing mlflow fails
    if os.environ.get("CI"):
        raise
    pytest.skip("the mlflow extra is not installed: pip install 'labkit[mlflow]' (make setup does)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
TIME_BOUND_S = 300
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("time_bound")]


def small_dataset(folder: Path, n: int = 6) -> Path:
    lines = (ROOT / "data" / "golden.jsonl").read_text().splitlines()
    picked = [x for x in lines if json.loads(x)["expected_tools"]][:1] + lines[:n - 1]
    ds = folder / "ds.jsonl"
    ds.write_text("\n".join(picked) + "\n")
    return ds


def reference_run(folder: Path, name: str = "r1", **kw: Any) -> Path:
    """A scored run of the reference pipeline (SIMULATED LLM) under data/gate.yaml."""
    from labkit.runner import run

    folder.mkdir(parents=True, exist_ok=True)
    ds = small_dataset(folder)
    return run(str(ds), str(ROOT / "data/pipelines/baseline.yaml"), folder / name, gate_path=str(ROOT / "data/gate.yaml"),
               overrides={"progress": False}, **kw).path


def pipeline_text() -> str:
    """The baseline pipeline YAML with its relative paths made absolute (to copy it elsewhere)."""
    d = ROOT / "data" / "pipelines"
    return ((d / "baseline.yaml").read_text().replace("../corpus", str(ROOT / "data/corpus"))
            .replace("fallback: fallback.yaml", f"fallback: {d / 'fallback.yaml'}"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("mlflow")
    return {"tracking_uri": f"sqlite:///{base}/mlflow.db", "artifact_location": str(base / "artifacts")}


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(tmp_path_factory.mktemp("runs"))


def check_logged(client: MlflowClient, run: Path, mlflow_run_id: str) -> None:
    """Everything the history issue lists, read back with MLflow's own client."""
    from labkit.gate import Gate

    got = client.get_run(mlflow_run_id)
    man = json.loads((run / "manifest.json").read_text())
    met = json.loads((run / "metrics.json").read_text())["metrics"]
    p, m, tags = got.data.params, got.data.metrics, got.data.tags
    assert p["dataset.fingerprint"] == man["dataset"]["fingerprint"]
    assert p["pipeline.prompt_version"] == "rag-v3" and p["pipeline.model.name"] == "sim-gen-large"
    assert p["runner.concurrency"] == str(man["runner"]["concurrency"])
    assert p["gate.hash"] == man["gate"]["hash"] and p["gate.path"] == man["gate"]["path"]
    assert p["gate.locked_at"] == man["gate"]["locked_at"]
    for name, e in met.items():
        if e["value"] is None:
            assert name not in m and name in tags["labkit.unmeasured"].split(",")
            continue
        assert m[name] == pytest.approx(e["value"])
        assert m[f"{name}.ci_low"] == pytest.approx(e["ci_low"]) and m[f"{name}.ci_high"] == pytest.approx(e["ci_high"])
        assert m[f"{name}.n"] == e["n"]
    assert not any(math.isnan(v) for v in m.values())
    verdict = Gate.load(ROOT / "data/gate.yaml").thresholds_only().evaluate(str(run)).passed
    assert tags["labkit.gate.verdict"] == ("pass" if verdict else "fail")
    assert tags["labkit.gate.mode"] == "thresholds_only"  # no baseline given
    assert tags["labkit.run_uuid"] == man["run_uuid"]
    table = load_table(client, got.info.experiment_id, mlflow_run_id)
    with open(run / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(table["case_id"]) == sorted(r["case_id"] for r in rows)
    by_case = {r["case_id"]: r for r in rows}
    for _, row in table.iterrows():
        want = by_case[row["case_id"]]["faithfulness"]
        assert (row["faithfulness"] is None or math.isnan(row["faithfulness"])) if want == "" \
            else row["faithfulness"] == pytest.approx(float(want))
    arts = {a.path for a in client.list_artifacts(mlflow_run_id, "run")}
    assert {f"run/{n}" for n in ("manifest.json", "results.jsonl", "traces.jsonl", "scores.csv", "metrics.json")} <= arts
    assert {a.path for a in client.list_artifacts(mlflow_run_id, "gate")} == {"gate/gate.md", "gate/gate.json"}
    assert "run/.lock" not in arts


def load_table(client: MlflowClient, experiment_id: str, run_id: str) -> Any:
    """The run's ``scores.json`` table through ``MlflowClient.load_table`` (which searches runs
    through MLflow's global tracking URI: pointed at the client's for the call)."""
    import mlflow

    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        return client.load_table(experiment_id, "scores.json", run_ids=[run_id])
    finally:
        mlflow.set_tracking_uri(saved)


def active_runs(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id])) if exp else []


def test_log_run_to_a_sqlite_store_and_read_it_back(store: dict[str, str], scored_run: Path) -> None:
    from labkit.mlflowlog import log_run

    logged = log_run(scored_run, experiment="e-api", **store)
    assert logged.created
    check_logged(MlflowClient(store["tracking_uri"]), scored_run, logged.mlflow_run_id)


def test_logging_twice_leaves_one_mlflow_run_and_a_rescored_run_replaces_it(
        store: dict[str, str], tmp_path: Path) -> None:
    from labkit.mlflowlog import log_run
    from labkit.scoring import score_run

    run = reference_run(tmp_path)
    first = log_run(run, experiment="e-twice", **store)
    again = log_run(run, experiment="e-twice", **store)
    client = MlflowClient(store["tracking_uri"])
    assert not again.created and again.mlflow_run_id == first.mlflow_run_id
    assert [r.info.run_id for r in active_runs(client, "e-twice")] == [first.mlflow_run_id]
    score_run(run, n_boot=300)  # other intervals: the logged run is stale
    third = log_run(run, experiment="e-twice", **store)
    assert third.created and third.replaced == first.mlflow_run_id
    assert [r.info.run_id for r in active_runs(client, "e-twice")] == [third.mlflow_run_id]


def test_cli_logs_each_run_once(store: dict[str, str], scored_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["mlflow", "log", str(scored_run), "--tracking-uri", store["tracking_uri"], "--experiment", "e-cli",
            "--artifact-location", store["artifact_location"], "--report", str(scored_run / "metrics.json")]
    assert main(argv) == 0
    assert "logged MLflow run" in capsys.readouterr().out
    assert main(argv) == 0
    assert "already logged" in capsys.readouterr().out
    client = MlflowClient(store["tracking_uri"])
    runs = active_runs(client, "e-cli")
    assert len(runs) == 1
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "reports")} == {"reports/metrics.json"}


def test_the_mlflow_run_option_logs_as_the_run_ends(store: dict[str, str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = pipeline_text()
    opt = (f"  mlflow: {{tracking_uri: '{store['tracking_uri']}', experiment: e-option,"
           f" artifact_location: '{store['artifact_location']}'}}\n")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(base.replace("runner:                      # reliability policy, explicit\n",
                                 "runner:\n" + opt))
    ds = small_dataset(tmp_path)
    out = tmp_path / "r1"
    code = main(["run", "--dataset", str(ds), "--pipeline", str(pipe), "--out", str(out), "--quiet",
                 "--gate", str(ROOT / "data/gate.yaml")])
    assert code == 0, capsys.readouterr().err
    assert "logged MLflow run" in capsys.readouterr().out
    client = MlflowClient(store["tracking_uri"])
    runs = active_runs(client, "e-option")
    assert len(runs) == 1
    check_logged(client, out, runs[0].info.run_id)


def test_an_unknown_mlflow_option_fails_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = pipeline_text()
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(base.replace("runner:                      # reliability policy, explicit\n",
                                 "runner:\n  mlflow: {tracking_url: x}\n"))
    code = main(["run", "--dataset", str(small_dataset(tmp_path)), "--pipeline", str(pipe), "--out",
                 str(tmp_path / "r1"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "runner.mlflow.tracking_url" in err and "tracking_uri" in err, err
    assert not (tmp_path / "r1" / "manifest.json").exists()


def test_an_unscored_run_is_refused_in_one_line(store: dict[str, str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = reference_run(tmp_path, score=False)
    code = main(["mlflow", "log", str(run), "--tracking-uri", store["tracking_uri"]])
    err = capsys.readouterr().err
    assert code == 2 and "not scored" in err and len(err.strip().splitlines()) == 1, err


def _refusing_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A loopback port nothing listens on (connection refused), MLflow told to try it once, briefly."""
    from servers import free_port

    for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(k, "0" if "RETRIES" in k else "1")
    return free_port()


def test_an_unreachable_tracking_server_is_one_line_and_exit_1(
        scored_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = _refusing_port(monkeypatch)
    code = main(["mlflow", "log", str(scored_run), "--tracking-uri", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1 and f"127.0.0.1:{port}" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("userinfo", ["tokMlflowAsUser73", "mlflowuser:MlflowPassw0rd73"])
def test_the_tracking_uri_an_error_names_has_its_credentials_masked(
        scored_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, userinfo: str) -> None:
    """``MLflow at http://user:password@host failed ...: API request to http://user:password@host/api/...``:
    the tracking URI was printed as given, credentials included (twice: labkit's text and MLflow's).
    It is printed masked, a token alone as the user as well as a password."""
    port = _refusing_port(monkeypatch)
    code = main(["mlflow", "log", str(scored_run), "--tracking-uri", f"http://{userinfo}@127.0.0.1:{port}"])
    cap = capsys.readouterr()
    assert code == 1 and len(cap.err.strip().splitlines()) == 1, cap.err
    secret = userinfo.rpartition(":")[2]
    assert secret not in cap.err + cap.out and f"MLflow at http://[TOKEN]@127.0.0.1:{port} failed" in cap.err, cap.err

def test_a_sqlite_store_in_a_folder_that_is_not_there_is_refused_and_makes_none(
        scored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--tracking-uri sqlite:////nonexistent/x.db` made the folder /nonexistent (its artifacts'
    mlruns/ beside it): a store whose folder is not there is a usage error naming it, and nothing
    is made."""
    where = tmp_path / "no" / "such"
    code = main(["mlflow", "log", str(scored_run), "--tracking-uri", f"sqlite:///{where / 'x.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and str(where) in err and "Traceback" not in err, err
    assert not (tmp_path / "no").exists()

def test_artifacts_of_a_sqlite_store_go_beside_it_not_into_the_working_folder(
        scored_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = tmp_path / "store" / "m.db"
    db.parent.mkdir()
    assert main(["mlflow", "log", str(scored_run), "--tracking-uri", f"sqlite:///{db}",
                 "--experiment", "beside"]) == 0
    assert list(work.iterdir()) == []  # no ./mlruns (nor anything else) where the command ran
    assert any((db.parent / "mlruns").rglob("manifest.json"))


@pytest.mark.parametrize("args, needle", [
    (["--tracking-uri", "bogus://x"], "tracking URI scheme 'bogus'"),
    (["--gate", "GATE"], "malformed YAML"),
])
def test_a_users_mistake_is_exit_2_before_the_store_is_touched(
        scored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    gate = tmp_path / "bad.yaml"
    gate.write_text("checks: [\n")
    db = tmp_path / "never.db"
    argv = ["mlflow", "log", str(scored_run), *[str(gate) if a == "GATE" else a for a in args]]
    if "--tracking-uri" not in argv:
        argv += ["--tracking-uri", f"sqlite:///{db}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not db.exists()  # the store was not created for a command that could not run
