"""Traces exported into a real Arize Phoenix server, read back through Phoenix's own client.

The server runs from its own virtual environment (``make phoenix`` makes
``.venv-phoenix``; ``make test`` depends on it), on 127.0.0.1 and a free port, with
its telemetry off, its gRPC listener off and a temporary working directory (SQLite);
it is stopped by its process id when the module's tests end. Phoenix has no setting
that turns the gRPC listener off, so the launcher below replaces the gRPC server's
start with a no-op before Phoenix starts (only OTLP over HTTP is served).

The runs exported are the reference pipeline's: its LLM is SIMULATED (no network,
no weights). Without the Phoenix environment these tests skip with a message outside
CI; under CI (``CI`` set) a missing environment fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, stop_group

from labkit.trace.otel import export_runs

ROOT = Path(__file__).resolve().parents[1]
PHOENIX_PY = Path(os.environ.get("LABKIT_PHOENIX_PYTHON") or ROOT / ".venv-phoenix" / "bin" / "python")
START_TIMEOUT_S = 180.0
TIME_BOUND_S = 400

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("time_bound")]

_LAUNCH = """
import sys
import phoenix.server.grpc_server as grpc_server

async def _no_grpc(self):  # Phoenix has no switch for its gRPC listener: it is not started
    return None

grpc_server.GrpcServer.__aenter__ = _no_grpc
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""

_READ = """
import json, sys
from phoenix.client import Client
spans = Client(base_url=sys.argv[1]).spans.get_spans(project_identifier=sys.argv[2], limit=100000, timeout=60)
print(json.dumps(spans, default=str))
"""


def _require_phoenix() -> None:
    if PHOENIX_PY.is_file():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {PHOENIX_PY} is missing: `make phoenix` installs Arize Phoenix into .venv-phoenix")
    pytest.skip(f"{PHOENIX_PY} not found: run `make phoenix` to install Arize Phoenix for these tests "
                "(make test does; under CI this is a failure, not a skip)")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"phoenix exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"phoenix not ready after {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Phoenix server of this module's own."""
    _require_phoenix()
    work = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(free_port()),
           "PHOENIX_WORKING_DIR": str(work / "wd"), "PHOENIX_TELEMETRY_ENABLED": "false", "DO_NOT_TRACK": "1"}
    log = work / "phoenix.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PHOENIX_PY), "-c", _LAUNCH], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=work, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        stop_group(proc)


def read_spans(url: str, project: str, *, expect: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every span of ``project``, read with Phoenix's client (in Phoenix's environment);
    waits until ``expect`` spans are there (Phoenix inserts in batches) or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run([str(PHOENIX_PY), "-c", _READ, url, project], capture_output=True, text=True,
                             timeout=120, check=False)
        spans = json.loads(out.stdout) if out.returncode == 0 else []
        if len(spans) >= expect or time.monotonic() > deadline:
            assert out.returncode == 0 or "Not Found" in out.stderr, out.stderr[-2000:]
            return spans
        time.sleep(1.0)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs of the reference pipeline (SIMULATED LLM) in folders of the same name."""
    from labkit.runner import run

    base = tmp_path_factory.mktemp("runs")
    ds = base / "ds.jsonl"
    lines = (ROOT / "data" / "golden.jsonl").read_text().splitlines()
    picked = [x for x in lines if json.loads(x)["expected_tools"]][:2] + lines[:6]
    ds.write_text("\n".join(picked) + "\n")
    return [run(str(ds), str(ROOT / "data/pipelines/baseline.yaml"), base / d / "r1",
                overrides={"progress": False}).path for d in ("a", "b")]


def _attrs(s: dict[str, Any]) -> dict[str, Any]:
    return dict(s.get("attributes") or {})


PROJECT = "labkit-two-runs"


@pytest.fixture(scope="module")
def exported(phoenix: str, two_runs: list[Path]) -> tuple[list[int], list[dict[str, Any]]]:
    """Both runs exported once (content capture on); the span counts sent and the spans read back."""
    res = {"openinference.project.name": PROJECT}
    sent = [export_runs([str(r)], endpoint=phoenix, capture_content=True, resource_attributes=res, timeout_s=30)
            for r in two_runs]
    return sent, read_spans(phoenix, PROJECT, expect=sum(sent))


def test_two_runs_in_folders_of_the_same_name_both_arrive_whole(
        phoenix: str, two_runs: list[Path], exported: tuple[list[int], list[dict[str, Any]]]) -> None:
    sent, spans = exported
    assert len(spans) == sum(sent), (len(spans), sent)  # every span of both runs, none dropped as a duplicate
    by_run = Counter(_attrs(s).get("labkit.run_uuid") for s in spans if s.get("parent_id") is None)
    uuids = [json.loads((r / "manifest.json").read_text())["run_uuid"] for r in two_runs]
    n_cases = len((two_runs[0] / "results.jsonl").read_text().splitlines())
    assert by_run == {uuids[0]: n_cases, uuids[1]: n_cases}
    again = export_runs([str(two_runs[0])], endpoint=phoenix, capture_content=True,
                        resource_attributes={"openinference.project.name": PROJECT}, timeout_s=30)
    assert again == sent[0]
    time.sleep(3)  # give Phoenix's batch inserter time to insert anything it would
    assert len(read_spans(phoenix, PROJECT, expect=sum(sent), timeout_s=0)) == sum(sent)  # re-export: idempotent


def test_kinds_model_tokens_cost_prompt_version_documents_and_answer_show(
        two_runs: list[Path], exported: tuple[list[int], list[dict[str, Any]]]) -> None:
    run = two_runs[0]
    uuid = json.loads((run / "manifest.json").read_text())["run_uuid"]
    _, every = exported
    of_run = {s["context"]["trace_id"] for s in every if _attrs(s).get("labkit.run_uuid") == uuid}
    spans = [s for s in every if s["context"]["trace_id"] in of_run]
    traces = {json.loads(x)["trace_id"]: json.loads(x) for x in (run / "traces.jsonl").read_text().splitlines()}
    kinds = Counter(s["span_kind"] for s in spans)
    n_tools = sum(len(t["tool_calls"]) for t in traces.values())
    assert kinds["CHAIN"] == kinds["LLM"] == len(traces) and kinds["TOOL"] == n_tools > 0
    assert kinds["RETRIEVER"] >= 1 and set(kinds) == {"CHAIN", "LLM", "TOOL", "RETRIEVER"}  # no UNKNOWN
    roots = {s["context"]["trace_id"]: _attrs(s)["labkit.trace_id"] for s in spans if s.get("parent_id") is None}
    for s in spans:
        a = _attrs(s)
        rec = traces[roots[s["context"]["trace_id"]]]
        if s["span_kind"] == "LLM":
            assert a["llm.model_name"] == rec["model"] == "sim-gen-large"
            assert a["llm.token_count.prompt"] == rec["usage"]["input_tokens"] > 0
            assert a["llm.token_count.completion"] == rec["usage"]["output_tokens"]
            assert a["llm.cost.total"] == pytest.approx(rec["cost_usd"]) and rec["cost_usd"] > 0
            assert a["llm.prompt_template.version"] == rec["prompt_version"] == "rag-v3"
            assert a["output.value"] == rec["output"] and a["llm.output_messages.0.message.content"] == rec["output"]
            assert json.loads(a["gen_ai.output.messages"])[0]["finish_reason"] == "stop"
            evals = [e for e in s.get("events") or [] if e["name"] == "gen_ai.evaluation.result"]
            assert {e["attributes"]["gen_ai.evaluation.name"] for e in evals} >= {"faithfulness"}
        elif s["span_kind"] == "RETRIEVER":
            first = rec["retrieved"][0]
            assert a["retrieval.documents.0.document.id"] == first["id"]
            assert a["retrieval.documents.0.document.content"] == first["text"]
        elif s["span_kind"] == "CHAIN":
            assert a["input.value"] == rec["input"] and a["output.value"] == rec["output"]
