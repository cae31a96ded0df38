"""``labkit mlflow log`` and the OTLP trace export against a real ``mlflow server`` started
here on 127.0.0.1 and a free port (SQLite backend, artifacts in a temporary folder), read
back through ``mlflow.MlflowClient``; the server is stopped by its process id when the
module ends. The runs are the reference pipeline's (SIMULATED LLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.cli import main

try:
    from mlflow import MlflowClient
except ImportError:  # under CI (make setup installs the extra) a missing mlflow fails
    if os.environ.get("CI"):
        raise
    pytest.skip("the mlflow extra is not installed: pip install 'labkit[mlflow]' (make setup does)",
                allow_module_level=True)

from servers import free_port, stop_group
from test_mlflow import active_runs, check_logged, reference_run

TIME_BOUND_S = 400
START_TIMEOUT_S = 180.0
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("time_bound")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--artifacts-destination", str(work / "artifacts")]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    log = work / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready after {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)


def test_log_to_a_real_server_twice_leaves_one_run_with_everything(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = reference_run(tmp_path)
    argv = ["mlflow", "log", str(run), "--tracking-uri", server, "--experiment", "labkit-server"]
    assert main(argv) == 0, capsys.readouterr().err
    assert main(argv) == 0, capsys.readouterr().err
    assert "already logged" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=server)
    runs = active_runs(client, "labkit-server")
    assert len(runs) == 1
    check_logged(client, run, runs[0].info.run_id)


def test_traces_into_the_servers_otlp_endpoint(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = reference_run(tmp_path / "a"), reference_run(tmp_path / "b")  # two runs in folders named r1
    for run in (a, b):
        code = main(["mlflow", "log", str(run), "--tracking-uri", server, "--experiment", "labkit-traces",
                     "--traces", "--capture-content"])
        assert code == 0, capsys.readouterr().err
    assert "exported" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("labkit-traces")
    n_cases = sum(len((r / "results.jsonl").read_text().splitlines()) for r in (a, b))
    traces = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        traces = list(client.search_traces(locations=[exp.experiment_id], max_results=500))
        if len(traces) >= n_cases:
            break
        time.sleep(1)
    assert len(traces) == n_cases  # both runs whole
    lines = [json.loads(x) for r in (a, b) for x in (r / "traces.jsonl").read_text().splitlines()]
    n_spans = sum(len(t["spans"]) + 1 for t in lines)
    recs = {t["trace_id"]: t for t in lines}  # the same labkit ids in both runs (same run_id, same cases)
    assert len(recs) == n_cases // 2 and len({t.info.trace_id for t in traces}) == n_cases
    assert sum(len(t.data.spans) for t in traces) == n_spans
    for t in traces:
        root = next(s for s in t.data.spans if s.parent_id is None)
        rec = recs[root.attributes["labkit.trace_id"]]
        assert root.attributes["openinference.span.kind"] == "CHAIN"
        chat = next(s for s in t.data.spans if s.attributes.get("gen_ai.operation.name") == "chat")
        assert chat.attributes["gen_ai.request.model"] == rec["model"]
        assert chat.attributes["llm.cost.total"] == pytest.approx(rec["cost_usd"])
        assert chat.attributes["llm.prompt_template.version"] == rec["prompt_version"]
        out = chat.attributes["gen_ai.output.messages"]  # MLflow parses a JSON attribute value
        assert (json.loads(out) if isinstance(out, str) else out)[0]["finish_reason"] == "stop"


def test_a_tracking_uri_with_credentials_is_printed_masked(server: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``exported N spans to http://TOKEN@host/v1/traces``: the tracking URI of ``--traces`` was
    printed as given, a token in its user part included. The server takes the request (it asks
    for no credentials) and the lines printed name the URI masked."""
    run = reference_run(tmp_path)
    uri = server.replace("://", "://tokMlflowTraces29@")
    code = main(["mlflow", "log", str(run), "--tracking-uri", uri, "--experiment", "labkit-masked", "--traces"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "tokMlflowTraces29" not in cap.out + cap.err, cap.out + cap.err
    assert f"spans to {server.replace('://', '://[TOKEN]@')}/v1/traces" in cap.out, cap.out
