"""Planted secrets, end to end: every format of the one catalogue, planted as pipeline outputs,
in questions and metadata, as mapping keys, under id-named fields and in a config description,
must not appear raw in any file a run, a rescore, a trace export or the scorecard writes."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from labkit.cli import main
from labkit.pipelines import register_pipeline

pytestmark = pytest.mark.usefixtures("time_bound")
TIME_BOUND_S = 240

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAplantedPEMbodyAAAA\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n"
       "-----END RSA PRIVATE KEY-----")
# raw value as planted -> the distinctive part that must never be on disk
PLANTED: dict[str, str] = {
    "OPENAI_API_KEY=PLANTEDopenai4242": "PLANTEDopenai4242",
    "DB_PASSWORD=PLANTEDdbpass77": "PLANTEDdbpass77",
    "aws_secret_access_key = PLANTEDawsSecretAccess0123456789": "PLANTEDawsSecretAccess0123456789",
    '{"client_secret": "PLANTEDclientsecret9"}': "PLANTEDclientsecret9",
    PEM: "plantedPEMbody",
    "GB82 WEST 1234 5698 7654 32": "5698 7654",
    "SSN 078-05-1120": "078-05-1120",
    "Authorization: Basic UExBTlRFRDpiYXNpY3Bhc3M=": "UExBTlRFRDpiYXNpY3Bhc3M",
    "https://planteduser:PLANTEDurlpass@db.example.com/app": "PLANTEDurlpass",
    "redis://:PLANTEDredispass@localhost:6379/0": "PLANTEDredispass",  # (a password with no user)
    "https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDslackhook0123": "PLANTEDslackhook",
    "ya29.a0PLANTEDgoogleoauth_token": "PLANTEDgoogleoauth",
    "npm_PLANTEDnpmtoken0123456789abcdefghij": "npm_PLANTED",
    "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=PLANTEDazure0123456789+/key==;EndpointSuffix=x":
        "PLANTEDazure",
    "card 4111.1111.1111.1111": "4111.1111.1111.1111",
    "call 4155550188": "4155550188",
    "jürgen.müller@exämple.de": "müller@exämple",
    "sk-proj-PLANTEDmainkey0123456789abcd": "PLANTEDmainkey",
    "Bearer PLANTEDbearer.token-99": "PLANTEDbearer",
}
MAP_KEY_SECRET = "sk-proj-PLANTEDkeyasmapkey0123456789"
ID_FIELD_SECRET = "AKIAPLANTEDIDFLD0000"
ID_FIELD_CARD = "4111111111111111"
ALL_TEXT = " | ".join(PLANTED)
NEEDLES = [*PLANTED.values(), "PLANTEDkeyasmapkey", ID_FIELD_SECRET, "078051120", "GB82WEST"]


def _planted_factory(config: dict[str, Any], *, base_dir: Path, corpus_dir: str | None = None) -> Any:
    def pipeline(case: Any) -> dict[str, Any]:
        return {
            "answer": f"Here you go: {ALL_TEXT}. You asked: {case.question}",
            "retrieved": [{"id": "security-runbook#2", "source": "security-runbook", "score": 2.0,
                           "text": PEM}],
            "citations": ["security-runbook#2"],
            "tool_calls": [{"name": "lookup", "status": "ok",
                            "args": {MAP_KEY_SECRET: "value", "OPENAI_API_KEY": "PLANTEDopenai4242",
                                     "phone": "4155550188"},
                            "output": {"trace_id": ID_FIELD_SECRET, "case_id": ID_FIELD_CARD,
                                       "run_id": "jürgen.müller@exämple.de", "config_hash": "078-05-1120"}}],
            "debug": {"client_secret": "PLANTEDclientsecret9", "span_id": ID_FIELD_SECRET,
                      MAP_KEY_SECRET: {"nested": "DB_PASSWORD=PLANTEDdbpass77"}},
            "usage": {"input_tokens": 10, "output_tokens": 20}, "cost_usd": 0.001, "latency_ms": 5.0,
        }

    return pipeline


register_pipeline("planted_secrets")(_planted_factory)


def _variants(needle: str) -> list[bytes]:
    """The needle as UTF-8 and as it looks JSON-escaped (non-ASCII as \\u00fc)."""
    forms = {needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]}
    return [f.encode("utf-8") for f in forms]


def leaks(blobs: dict[str, bytes]) -> list[str]:
    out = []
    for name, data in blobs.items():
        squashed = data.replace(b" ", b"").replace(b"-", b"").replace(b".", b"")
        for n in NEEDLES:
            if any(v in data for v in _variants(n)):
                out.append(f"{name}: {n}")
        for digits in (b"4111111111111111", b"4155550188", b"078051120"):
            if digits in squashed and name != "scores.csv":
                out.append(f"{name}: {digits.decode()} (reformatted)")
    return out


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    (root / "data" / "pipelines").mkdir(parents=True)
    ds = root / "data" / "golden.jsonl"
    cases = [
        {"id": "p-001", "question": f"My settings: {ALL_TEXT}", "must_include": ["support"],
         "metadata": {"note": ALL_TEXT, MAP_KEY_SECRET: "x", "OPENAI_API_KEY": "PLANTEDopenai4242"}},
        {"id": "p-002", "question": "Is 4111.1111.1111.1111 my card? Call 4155550188",
         "tags": {"trace_id": ID_FIELD_SECRET, "risk": "high"}, "metadata": {"span_id": ID_FIELD_SECRET}},
        {"id": "p-003", "question": "Where do I reset a key?", "reference_answer": f"Never paste {PEM}"},
    ]
    ds.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    cfg = root / "data" / "pipelines" / "planted.yaml"
    cfg.write_text(
        "name: planted\ntype: planted_secrets\n"
        f"description: {json.dumps('deploy with ' + ALL_TEXT, ensure_ascii=False)}\n"
        "prompt_version: v1\nmodel: {name: sim, provider: labkit-sim}\n",
        encoding="utf-8")
    run_dir = root / "outputs" / "runs" / "planted"
    assert main(["run", "--dataset", str(ds), "--pipeline", str(cfg), "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_run_files_hold_no_raw_secret(planted_run: Path) -> None:
    files = _files(planted_run)
    assert {"results.jsonl", "traces.jsonl", "scores.csv", "metrics.json"} <= set(files)
    checked = {k: v for k, v in files.items() if k in ("results.jsonl", "traces.jsonl", "scores.csv", "metrics.json")}
    assert leaks(checked) == []
    traces = files["traces.jsonl"].decode("utf-8")
    for ph in ("[PRIVATE_KEY]", "[API_KEY]", "[TOKEN]", "[EMAIL]", "[IBAN]", "[SSN]", "[CARD]", "[PHONE]"):
        assert ph in traces, ph


def test_manifest_holds_no_raw_secret(planted_run: Path) -> None:
    assert leaks({"manifest.json": (planted_run / "manifest.json").read_bytes()}) == []


def test_dataset_snapshot_holds_no_raw_secret_and_rescores(planted_run: Path, tmp_path: Path) -> None:
    """An in-memory dataset is kept beside the run as cases.jsonl: redacted like the rest,
    with its case ids intact, so the run rescores from it."""
    import labkit
    from labkit.cases import load_cases

    cases = load_cases(planted_run.parent.parent.parent / "data" / "golden.jsonl")
    pipe = planted_run.parent.parent.parent / "data" / "pipelines" / "planted.yaml"
    rd = labkit.run(list(cases), str(pipe), tmp_path / "mem", score=False)
    snap = rd.path / "cases.jsonl"
    assert snap.exists()
    assert leaks({"cases.jsonl": snap.read_bytes()}) == []
    assert [c.id for c in load_cases(snap)] == [c.id for c in cases]
    assert main(["score", str(rd.path), "--n-boot", "50"]) == 0


def test_rescore_writes_no_raw_secret(planted_run: Path) -> None:
    assert main(["score", str(planted_run), "--n-boot", "50"]) == 0
    files = _files(planted_run)
    assert leaks({k: files[k] for k in ("scores.csv", "metrics.json")}) == []


def test_trace_views_compaction_and_sample_print_no_raw_secret(
        planted_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import duckdb  # the store's own reader of its Parquet (no Parquet engine for pandas is required)

    out = tmp_path / "all.parquet"
    assert main(["traces", "compact", str(planted_run), "--out", str(out)]) == 0
    frame = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(out)]).df()
    assert len(frame) == 3
    for view in ("sample", "summary", "failures", "slowest"):
        assert main(["traces", str(planted_run), "--view", view, "--format", "json"]) == 0
    printed = capsys.readouterr().out
    blobs = {"parquet": frame.to_json(orient="records", force_ascii=False).encode("utf-8"),
             "stdout": printed.encode("utf-8")}
    assert leaks(blobs) == []


class _Collector(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        type(self).bodies.append(data)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


@contextlib.contextmanager
def _collector() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    srv.timeout = 5
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def test_otlp_export_sends_no_raw_secret(planted_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _Collector.bodies = []
    with _collector() as url:
        assert main(["traces", "export", str(planted_run), "--otlp", url, "--capture-content"]) == 0
    assert "exported" in capsys.readouterr().out
    assert _Collector.bodies
    payload = b"".join(_Collector.bodies)
    assert b"[TOKEN]" in payload  # content was sent, redacted
    assert leaks({"otlp": payload}) == []


def test_scorecard_writes_and_prints_no_raw_secret(planted_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = planted_run.parents[2]
    out = tmp_path / "card"
    code = main(["scorecard", "--root", str(root), "--baseline", str(planted_run), "--out", str(out),
                 "--no-html", "--json"])
    assert code in (0, 1)
    printed = capsys.readouterr()
    blobs = {f"scorecard/{k}": v for k, v in _files(out).items()}
    blobs["stdout"] = (printed.out + printed.err).encode("utf-8")
    assert any(k.endswith(".json") for k in blobs)
    assert leaks(blobs) == []
    card = json.loads(printed.out)
    items = [i for group in card["checklists"].values() for i in group]
    item = next(i for i in items if i["id"] == "mw.redaction")
    assert item["status"] == "pass", item


def test_leak_scan_itself_finds_every_planted_value() -> None:
    """The scan is not vacuous: the unredacted texts trip it for every needle."""
    raw = {"raw": (ALL_TEXT + MAP_KEY_SECRET + ID_FIELD_SECRET + " 078051120 GB82WEST").encode("utf-8")}
    found = {hit.split(": ", 1)[1] for hit in leaks(raw)}
    assert set(NEEDLES) <= found
    assert "müller@exämple" in {hit.split(": ", 1)[1] for hit in leaks({"escaped": json.dumps(ALL_TEXT).encode()})}


@pytest.mark.slow
def test_report_files_hold_no_raw_secret(planted_run: Path, tmp_path: Path) -> None:
    """A report whose notebook prints, displays and fails on planted secrets writes none of them:
    not in the HTML, not in the executed notebook kept beside it, not in the index."""
    import nbformat

    from labkit.report.engine import build_reports

    nb_dir = tmp_path / "proj" / "notebooks"
    nb_dir.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"run_dir = {str(planted_run)!r}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("# Planted"),
        nbformat.v4.new_code_cell("import json, pathlib\n"
                                  "rows = [json.loads(x) for x in pathlib.Path(run_dir, 'results.jsonl').open()]\n"
                                  f"text = {ALL_TEXT!r}\nprint(text)"),
        nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'planted': text.split(' | ')})"),
        nbformat.v4.new_code_cell("raise RuntimeError('failed with ' + text)"),
    ]
    nbformat.write(nb, nb_dir / "01_planted.ipynb")
    out = tmp_path / "reports"
    index = build_reports(notebooks_dir=nb_dir, out_dir=out, workers=1, timeout_s=120)
    assert not index.ok  # the last cell fails on purpose: its error text is kept, redacted
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(k.endswith(".html") and k != "index.html" for k in files), files.keys()
    assert leaks(files) == []
    html = next(v for k, v in files.items() if k.endswith("01_planted.html")).decode("utf-8")
    assert "[API_KEY]" in html or "[TOKEN]" in html


def test_a_secret_in_a_tag_value_stays_off_the_metrics(tmp_path: Path) -> None:
    """metrics.json names its slices by tag value: a secret pasted into a tag is redacted there."""
    secret = "sk-proj-PLANTEDtagvalue0123456789abcd"
    ds = tmp_path / "ds.jsonl"
    ds.write_text(json.dumps({"id": "t-1", "question": "Where do I reset a key?", "must_include": ["portal"],
                              "tags": {"category": secret, "risk": "high", "kind": "representative"}}) + "\n",
                  encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--quiet"]) == 0
    text = (run / "metrics.json").read_text(encoding="utf-8")
    assert "PLANTEDtagvalue" not in text and "category=[API_KEY]" in text



def test_a_tag_value_the_runs_own_pattern_matches_stays_off_the_metrics(tmp_path: Path) -> None:
    """The slices of metrics.json went through the catalogue only: a tag value that the run's own
    ``extra_patterns`` matches, masked in every other file the run writes, was in metrics.json raw."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text(json.dumps({"id": "t-1", "question": "Where do I reset a key?", "must_include": ["portal"],
                              "tags": {"category": "acct-55123", "risk": "high", "kind": "representative"}}) + "\n",
                  encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--redact-pattern", r"ACCOUNT=acct-\d{5}", "--quiet"]) == 0
    assert main(["score", str(run)]) == 0  # the rescore too
    text = (run / "metrics.json").read_text(encoding="utf-8")
    assert "acct-55123" not in text and "category=[ACCOUNT]" in text

CASE_ID_SECRET = "sk-proj-PLANTEDcaseid0123456789abcd"


def _files_under(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file())


def test_a_case_id_holding_a_secret_is_refused_before_the_run_writes(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A case id is written as it is (results.jsonl, scores.csv: the join key of scores and traces), so a
    case whose id the run's redaction would change is refused, at its line and field, before anything is
    written; the error shows the id redacted."""
    ds = tmp_path / "ds.jsonl"
    rows = [{"id": "ok-1", "question": "Where do I reset a key?"}, {},
            {"id": CASE_ID_SECRET, "question": "How do I rotate the key?"}]
    ds.write_text("\n".join(json.dumps(r) if r else "" for r in rows) + "\n", encoding="utf-8")  # (a blank line 2)
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "id" in err and "[API_KEY]" in err and "PLANTEDcaseid" not in err
    assert not run.exists() or "PLANTEDcaseid" not in _files_under(run)
    assert not (run / "results.jsonl").exists()


def test_a_recorded_case_id_holding_a_secret_is_refused_by_scoring(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Recorded results scored by `labkit score`: scores.csv would repeat the id; refused at the results
    line (field case_id), nothing written."""
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": cid, "question": "Where do I reset a key?"}) + "\n"
                          for cid in ("ok-1", CASE_ID_SECRET)), encoding="utf-8")
    run = tmp_path / "recorded"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps({"case_id": cid, "status": "ok", "answer": "Use the portal."})
                                               + "\n" for cid in ("ok-1", CASE_ID_SECRET)), encoding="utf-8")
    assert main(["score", str(run), "--dataset", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "case_id" in err and "[API_KEY]" in err and "PLANTEDcaseid" not in err
    assert not (run / "scores.csv").exists() and not (run / "metrics.json").exists()


def test_resuming_a_run_refuses_a_case_id_holding_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A run begun before case ids were checked (simulated: the start's check turned off, and the run
    stopped after its first case) is refused on resume, before it writes another line."""
    import labkit.runner.session as session

    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": cid, "question": "Where do I reset a key?"}) + "\n"
                          for cid in ("ok-1", CASE_ID_SECRET)), encoding="utf-8")
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(session, "refuse_secret_ids", lambda ds, red: None)
        assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                     "--quiet", "--no-score"]) == 0
    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0], encoding="utf-8")  # (stopped after its first case)
    before = (run / "results.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "[API_KEY]" in err and "PLANTEDcaseid" not in err
    assert (run / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize("where", ["--run-id", "--out name", "pipeline name"])
def test_a_run_id_or_pipeline_name_holding_a_secret_is_refused_before_the_run_writes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """The run id (cache_origin.run_id of every later cache hit, the cache's entries) and the
    pipeline's name (each line's answered_by) are written as they are: refused when the run's
    redaction would change them, naming the option, before anything is written."""
    secret = "sk-proj-PLANTEDrunname0123456789abcd"
    pipeline = "data/pipelines/baseline.yaml"
    run = tmp_path / (f"out-{secret}" if where == "--out name" else "run")
    args = ["run", "--dataset", "data/quick_lab.jsonl", "--out", str(run), "--quiet",
            "--cache", str(tmp_path / "cache")]
    if where == "--run-id":
        args += ["--run-id", f"rid-{secret}"]
    if where == "pipeline name":
        text = Path(pipeline).read_text(encoding="utf-8")
        assert text.count("\nname: baseline\n") == 1
        pipeline = str(tmp_path / "p.yaml")
        text = (text.replace("\nname: baseline\n", f"\nname: sneaky-{secret}\n")
                .replace("corpus: ../corpus", f"corpus: {Path('data/corpus').resolve()}"))
        Path(pipeline).write_text("".join(x for x in text.splitlines(keepends=True) if not x.startswith("fallback:")),
                                  encoding="utf-8")
    assert main([*args, "--pipeline", pipeline]) == 2
    err = capsys.readouterr().err
    assert "[API_KEY]" in err and "PLANTEDrunname" not in err
    assert not run.exists() and not (tmp_path / "cache").exists()


def test_a_folder_named_by_an_email_stays_off_the_gate_lock_and_the_reviews(tmp_path: Path) -> None:
    """A gate or a run under a folder named by an e-mail address (a home folder): the gate's lock file
    and a review line record the path redacted (neither is read back by path)."""
    import shutil

    from labkit.gate.lock import lock_gate
    from labkit.gate.reviews import record_review

    home = tmp_path / "jane.planted@example.com"
    home.mkdir()
    gate = home / "gate.yaml"
    shutil.copy("data/gate.yaml", gate)
    lock_gate(gate)
    run = home / "run"
    assert main(["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "data/pipelines/baseline.yaml", "--out",
                 str(run), "--quiet", "--no-score"]) == 0
    record_review(tmp_path / "reviews.jsonl", run, "ql-01", decision="approve", reviewer="qa")
    for written in (home / "gate.yaml.lock.json", tmp_path / "reviews.jsonl"):
        text = written.read_text(encoding="utf-8")
        assert "jane.planted" not in text and "[EMAIL]" in text, written


def test_slices_whose_tag_values_redact_alike_are_kept_apart(tmp_path: Path) -> None:
    """Two categories that redaction writes alike (two e-mail addresses) were one slice of
    metrics.json: the later overwrote the earlier and its cases' figures were lost. Each keeps a
    slice of its own, told apart by a number after its redacted name; nothing of the values is written."""
    rows = [{"id": f"a-{i}", "question": "Where do I reset a key?", "must_include": ["portal"],
             "tags": {"category": "owner alice@a.example.com"}} for i in range(3)]
    rows += [{"id": f"b-{i}", "question": "Where do I reset a key?", "must_include": ["portal"],
              "tags": {"category": "owner bob@b.example.com"}} for i in range(5)]
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", "--dataset", str(ds), "--pipeline", "data/pipelines/baseline.yaml", "--out", str(run),
                 "--quiet"]) == 0
    text = (run / "metrics.json").read_text(encoding="utf-8")
    assert "example.com" not in text
    slices = json.loads(text)["slices"]
    owners = {k: v for k, v in slices.items() if k.startswith("category=owner")}
    assert sorted(owners) == ["category=owner [EMAIL]", "category=owner [EMAIL] (2)"], sorted(slices)
    assert sorted(next(iter(v.values()))["n"] + next(iter(v.values()))["unmeasured"]
                  for v in owners.values()) == [3, 5]
