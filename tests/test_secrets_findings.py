"""Secrets that reached disk or stderr: the key labkit itself reads, catalogue gaps, an empty
``--redact-types`` that turned redaction off, and a key pasted into ``api_key_env``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, server_error, status

from labkit.cli import main
from labkit.errors import ConfigError, LabkitError
from labkit.judges import LLMJudge
from labkit.openai_compat import ChatClient
from labkit.trace.redact import Redactor

pytestmark = pytest.mark.usefixtures("time_bound")

#: Keys no catalogue format knows: only the literal of the environment can catch them.
UNKNOWN_FORMAT_KEYS = ("3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d", "Zq9mX4TpL2vR8nW1bK7yH3cJ6fD0sG5a")


def _dataset(tmp_path: Path, n: int = 2) -> Path:
    ds = tmp_path / "cases.jsonl"
    ds.write_text("".join(json.dumps({"id": f"c{i}", "question": f"question number {i}?"}) + "\n"
                          for i in range(n)), encoding="utf-8")
    return ds


def _every_file(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(root.rglob("*")) if p.is_file()}


def _http_config(tmp_path: Path, base_url: str, key_env: str) -> Path:
    cfg = tmp_path / "http.yaml"
    cfg.write_text(f"name: echo\ntype: http\nbase_url: {base_url}\nmodel: fake-model\napi_key_env: {key_env}\n"
                   "runner: {retries: 0, timeout_s: 10}\n", encoding="utf-8")
    return cfg


@pytest.fixture
def echo_server() -> Iterator[FakeOpenAI]:
    """A loopback endpoint whose answer echoes the Authorization header it received, and
    the key without its scheme (what a careless proxy or a debug endpoint does)."""
    box: dict[str, FakeOpenAI] = {}

    def reply(body: dict[str, Any]) -> str:
        auth = box["srv"].headers[-1].get("Authorization", "")
        return f"I saw Authorization: {auth} and the key {auth.partition(' ')[2]} (that is all)"

    with FakeOpenAI(reply=reply) as srv:
        box["srv"] = srv
        yield srv


# ---------------------------------------------------------------------------- S1


@pytest.mark.parametrize("key", UNKNOWN_FORMAT_KEYS)
def test_the_api_key_labkit_reads_never_reaches_the_run_directory(
    tmp_path: Path, echo_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, key: str,
) -> None:
    monkeypatch.setenv("LEAK_KEY", key)
    out = tmp_path / "run"
    code = main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline",
                 str(_http_config(tmp_path, echo_server.base_url, "LEAK_KEY")), "--out", str(out), "--quiet"])
    assert code == 0
    assert echo_server.headers and all(h["Authorization"] == f"Bearer {key}" for h in echo_server.headers)
    files = _every_file(out)
    assert {"results.jsonl", "traces.jsonl", "manifest.json"} <= set(files)
    leaked = [name for name, text in files.items() if key in text]
    assert leaked == []
    answers = [json.loads(ln)["answer"] for ln in files["results.jsonl"].splitlines()]
    assert all("the key [API_KEY] (that is all)" in a for a in answers), answers


@pytest.mark.parametrize("key", UNKNOWN_FORMAT_KEYS)
def test_the_judge_key_is_redacted_from_its_errors(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("LEAK_JUDGE_KEY", key)
    with FakeOpenAI() as srv:
        srv.on(None, server_error(), status(401, json.dumps({"error": f"bad key {key}"})))
        srv.on("echo", *(status(500, f"upstream saw {key}") for _ in range(3)))
        judge = LLMJudge(srv.base_url, "judge-model", "LEAK_JUDGE_KEY", retries=0, cache_dir=None,
                         sleep=lambda s: None)
        assert judge.relevance("q", "a") is None  # 500: retryable, recorded in errors
        with pytest.raises(LabkitError) as refused:  # 401: raised with the server's body
            judge.relevance("q", "a")
        assert judge.faithfulness("echo", ["ctx"]) == (None, "judge_error")
        assert srv.headers[0]["Authorization"] == f"Bearer {key}"
    assert key not in str(refused.value) and "[API_KEY]" in str(refused.value)
    assert judge.errors and not [e for e in judge.errors if key in e]
    # and every redactor built afterwards knows the key labkit read
    assert Redactor().redact({"note": f"x {key} y"}) == {"note": "x [API_KEY] y"}


# ---------------------------------------------------------------------------- S2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key=3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d", "key=[API_KEY]"),
        ("upstream refused key=Zq9mX4TpL2vR8nW1bK7yH3cJ6fD0sG5a (401)", "upstream refused key=[API_KEY] (401)"),
        ('{"key": "3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d"}', '{"key": "[API_KEY]"}'),
        ("licenseKey: 3f2a9c0d8e7b6a5f4e3d", "licenseKey: [API_KEY]"),
        ("Authorization: Token abcdef0123456789abcdef", "Authorization: Token [TOKEN]"),
        ("authorization: ApiKey abcdef0123456789abcdef", "authorization: ApiKey [TOKEN]"),
        ("Authorization: Bearer abcdef0123456789abcdef", "Authorization: Bearer [TOKEN]"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [TOKEN]"),
        ('Authorization: Digest username="bob", realm="api", nonce="dcd98b7102dd2f0e", response="6629fae4"',
         "Authorization: Digest [TOKEN]"),
        ('{"headers": "Authorization: Token abcdef0123456789abcdef"}', '{"headers": "Authorization: Token [TOKEN]"}'),
        ("Proxy-Authorization: Negotiate YIIJvwYGKwYBBQUCoIIJszCCCa", "Proxy-Authorization: Negotiate [TOKEN]"),
        ("password: Tr0ub4dor&3", "password: [API_KEY]"),
        ("password=Tr0ub4dor&3 then", "password=[API_KEY] then"),
        ('"password": "Tr0ub4dor&3"', '"password": "[API_KEY]"'),
        ("db_password='corr;ect,horse'", "db_password='[API_KEY]'"),
        ("Use Bearer abcdef0123456789.", "Use Bearer [TOKEN]."),
        ("It was password=hunter2secret, then nothing.", "It was password=[API_KEY], then nothing."),
        ("Set api_key=abc123def456; restart.", "Set api_key=[API_KEY]; restart."),
    ],
)
def test_catalogue_gaps_are_closed(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["primary key=id", "key: value", "the key=name field", "sort key = created_at", "Password: open Settings",
     "Authorization: required", "a monkey=banana2024 joke"],
)
def test_catalogue_fixes_keep_plain_words(text: str) -> None:
    assert Redactor().redact(text) == text


def _module_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    name = f"findings_pipe_{uuid.uuid4().hex}"  # a fresh module per test (sys.modules keeps imports)
    (tmp_path / f"{name}.py").write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:pipe"


def _run_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str,
              *flags: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """``labkit run`` of the module pipeline ``code`` (no retries), and its results lines by case id."""
    spec = _module_pipeline(tmp_path, monkeypatch, code)
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline", spec, "--out", str(out),
                 "--quiet", "--retries", "0", *flags]) == 0
    return out, {r["case_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_an_exception_message_and_an_output_field_are_redacted_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, rows = _run_rows(tmp_path, monkeypatch, (
        "def pipe(case):\n"
        "    if case.id == 'c0':\n"
        "        raise ValueError('upstream refused key=3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d')\n"
        "    return {'answer': 'ok', 'debug': 'Authorization: Token abcdef0123456789abcdef',\n"
        "            'login': 'password: Tr0ub4dor&3'}\n"))
    assert rows["c0"]["error"] == "ValueError: upstream refused key=[API_KEY]"
    assert rows["c1"]["debug"] == "Authorization: Token [TOKEN]"
    assert rows["c1"]["login"] == "password: [API_KEY]"
    for name, text in _every_file(out).items():
        for raw in ("3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d", "abcdef0123456789abcdef", "Tr0ub4dor", "&3"):
            assert raw not in text, (name, raw)


@pytest.mark.parametrize("no_content", [False, True])
def test_an_exception_class_named_like_a_secret_stays_off_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_content: bool,
) -> None:
    """``error_type`` (the exception's class name, chosen by the pipeline's code) was written to
    results.jsonl as it was, with or without --no-content, while traces.jsonl redacted it."""
    out, rows = _run_rows(tmp_path, monkeypatch, (
        "AKIAIOSFODNN7EXAMPLQ = type('AKIAIOSFODNN7EXAMPLQ', (Exception,), {})\n"
        "def pipe(case):\n"
        "    if case.id == 'c0':\n"
        "        raise AKIAIOSFODNN7EXAMPLQ('boom')\n"
        "    return {'answer': 'ok'}\n"), *(["--no-content"] if no_content else []))
    assert [r["error_type"] for r in rows.values() if r["status"] == "error"] == ["[API_KEY]"], rows
    for name, text in _every_file(out).items():
        assert "AKIAIOSFODNN7EXAMPLQ" not in text, name


# ---------------------------------------------------------------------------- S3


@pytest.mark.parametrize("types", [" , ", ",", ""])
def test_an_empty_redact_types_list_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], types: str,
) -> None:
    spec = _module_pipeline(tmp_path, monkeypatch, "def pipe(case):\n    return {'answer': 'a@b.io'}\n")
    out = tmp_path / "run"
    code = main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline", spec, "--out", str(out),
                 "--quiet", "--redact-types", types])
    err = capsys.readouterr().err
    assert code == 2
    assert "--redact-types" in err and "--no-redaction" in err
    assert not (out / "manifest.json").exists() and not (out / "results.jsonl").exists()


def test_no_redaction_is_still_the_way_to_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _module_pipeline(tmp_path, monkeypatch, "def pipe(case):\n    return {'answer': 'mail a@b.io'}\n")
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline", spec, "--out", str(out),
                 "--quiet", "--no-redaction"]) == 0
    assert json.loads((out / "manifest.json").read_text())["runner"]["redaction"]["enabled"] is False
    assert "mail a@b.io" in (out / "results.jsonl").read_text()


# ---------------------------------------------------------------------------- S4

PASTED = "Zq9mX4TpL2vR8nW1bK7yH3cJ6fD0sG5a"


@pytest.mark.parametrize("pasted", [PASTED, "3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d", "AKIAIOSFODNN7EXAMPLE",
                                    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx123"])
def test_a_key_pasted_into_api_key_env_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pasted: str,
) -> None:
    out = tmp_path / "run"
    code = main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline",
                 str(_http_config(tmp_path, "http://127.0.0.1:9/v1", pasted)), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "api_key_env does not look like a variable name (a key pasted by mistake?)" in err
    assert pasted[:6] not in err and "Traceback" not in err
    assert not (out / "results.jsonl").exists()


def test_a_variable_name_that_is_not_set_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LABKIT_TEST_UNSET_KEY", raising=False)
    code = main(["run", "--dataset", str(_dataset(tmp_path)), "--pipeline",
                 str(_http_config(tmp_path, "http://127.0.0.1:9/v1", "LABKIT_TEST_UNSET_KEY")),
                 "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "environment variable LABKIT_TEST_UNSET_KEY is not set" in capsys.readouterr().err


@pytest.mark.parametrize("pasted", [PASTED, "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx123"])
def test_the_judge_and_the_client_do_not_echo_a_pasted_key(pasted: str) -> None:
    with pytest.raises(ConfigError) as judge_err:
        LLMJudge("http://127.0.0.1:9/v1", "m", pasted, cache_dir=None).client()
    with pytest.raises(ConfigError) as url_err:  # a key pasted where the URL goes
        ChatClient(pasted, "m")
    for e in (judge_err.value, url_err.value):
        assert pasted[:6] not in str(e)
    assert "does not look like a variable name" in str(judge_err.value)


# --- a dataset kept under a path that holds a secret (a home folder named by an e-mail) ------------

ADDRESS = "jo.tester@example.com"


def _run_under_address(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / ADDRESS
    folder.mkdir()
    ds = _dataset(folder, 3)
    out = tmp_path / "run"
    pipe = Path(__file__).resolve().parents[1] / "data" / "pipelines" / "baseline.yaml"
    assert main(["run", "--dataset", str(ds), "--pipeline", str(pipe), "--out", str(out), "--quiet"]) == 0
    return ds, out


def test_a_dataset_path_holding_an_address_stays_off_every_file_the_run_and_its_scoring_write(
        tmp_path: Path) -> None:
    """The runner's manifest redacted the path, and scoring wrote it again, as given, in its record."""
    _, out = _run_under_address(tmp_path)
    assert main(["score", str(out), "--dataset", str(tmp_path / ADDRESS / "cases.jsonl"), "--n-boot", "50"]) == 0
    files = _every_file(out)
    assert "manifest.json" in files
    assert [name for name, text in files.items() if ADDRESS in text] == []
    assert json.loads(files["manifest.json"])["scoring"]["dataset"]["path"].count("[EMAIL]") == 1


def test_a_run_whose_dataset_path_was_redacted_keeps_its_cases_and_rescores_and_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its manifest can name the dataset only redacted: the run keeps its cases beside it (as a
    run of an in-memory dataset does), so `labkit score RUN` and `labkit run --resume RUN` find
    them; before, both failed with "file not found" for the redacted path."""
    ds, out = _run_under_address(tmp_path)
    assert [line["id"] for line in map(json.loads, (out / "cases.jsonl").read_text().splitlines())] == [
        json.loads(line)["id"] for line in ds.read_text().splitlines()]
    assert main(["score", str(out), "--n-boot", "50"]) == 0
    full = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text(full[0])  # interrupted after the first case
    man = json.loads((out / "manifest.json").read_text())
    man.update(status="running", finished_at=None)
    (out / "manifest.json").write_text(json.dumps(man))
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert [json.loads(line)["case_id"] for line in (out / "results.jsonl").read_text().splitlines()] == [
        "c0", "c1", "c2"]
    assert [name for name, text in _every_file(out).items() if ADDRESS in text] == []
