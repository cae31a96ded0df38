"""The literal secrets of an endpoint config: the configured header values and the credentials of
a ``base_url`` (``http://user:password@host``, and the Basic header httpx builds from them) are
registered with the run's redactor, so a server that echoes its request puts none of them in any
file of the run. The servers are real, on 127.0.0.1 (tests/fake_openai.py, tests/fake_embeddings.py),
and each test uses values of its own (a registered value stays registered in the process)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_embeddings import FakeEmbeddings
from fake_openai import FakeOpenAI

from labkit.cases import as_cases
from labkit.openai_compat import config_secrets
from labkit.runner import RunnerConfig, run
from labkit.trace.redact import Redactor

pytestmark = pytest.mark.usefixtures("time_bound")
TIME_BOUND_S = 120


@pytest.fixture
def echo() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as s:
        s.echo_headers = True
        yield s


def _run(tmp_path: Path, cfg: dict[str, object]) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(json.dumps(cfg))  # JSON is YAML
    ds = as_cases([{"id": "c1", "question": "how do I reset a key"}])
    out = tmp_path / "run"
    run(ds, str(p), out, config=RunnerConfig(concurrency=1, timeout_s=10, retries=0, progress=False), score=False)
    return out


def _leaks(folder: Path, needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for each needle found in any file under ``folder`` (as written or JSON-escaped)."""
    out = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = f.read_bytes()
        out.extend((f.name, n) for n in needles if n.encode() in data or json.dumps(n)[1:-1].encode() in data)
    return out


def test_configured_header_values_a_server_echoes_reach_no_file_of_the_run(tmp_path: Path, echo: FakeOpenAI) -> None:
    headers = {"Cookie": "session=Zx81kq0PqLm3Nv7Ty2Rb", "X-Plain": "plainheadervalue99",
               "Authorization": "Token tok3nValueForHdr42"}
    rd = _run(tmp_path, {"type": "http", "name": "ep", "base_url": echo.base_url, "model": "m", "headers": headers})
    assert echo.headers[0]["X-Plain"] == "plainheadervalue99"  # the server did get them ...
    answer = json.loads((rd / "results.jsonl").read_text().splitlines()[0])["answer"]
    assert "echo:" in answer and "[API_KEY]" in answer  # ... and echoed them
    assert _leaks(rd, ["Zx81kq0PqLm3Nv7Ty2Rb", "plainheadervalue99", "tok3nValueForHdr42"]) == []


def test_the_credentials_of_a_base_url_a_server_echoes_reach_no_file_of_the_run(tmp_path: Path,
                                                                                  echo: FakeOpenAI) -> None:
    basic = base64.b64encode(b"proxyuser:ProxyPassw0rd99").decode()
    rd = _run(tmp_path, {"type": "http", "name": "ep", "model": "m",
                         "base_url": f"http://proxyuser:ProxyPassw0rd99@127.0.0.1:{echo.port}/v1"})
    assert echo.headers[0]["Authorization"] == f"Basic {basic}"  # httpx sent them
    assert _leaks(rd, ["ProxyPassw0rd99", basic, basic.rstrip("=")]) == []


def test_a_secret_in_the_query_of_a_base_url_stays_off_the_manifest(tmp_path: Path, echo: FakeOpenAI) -> None:
    rd = _run(tmp_path, {"type": "http", "name": "ep", "model": "m",
                         "base_url": f"http://alice:S3cretPassw0rd@127.0.0.1:{echo.port}/v1"
                                     "?key=Qrs123Tuv456Wxy789&token=plainTok2"})
    manifest = (rd / "manifest.json").read_text()
    assert "Qrs123Tuv456Wxy789" not in manifest and "plainTok2" not in manifest and "S3cretPassw0rd" not in manifest
    assert _leaks(rd, ["Qrs123Tuv456Wxy789", "plainTok2", "S3cretPassw0rd"]) == []


def test_the_literal_secrets_of_a_config() -> None:
    got = config_secrets(
        "https://u%40corp:p%2Fss@h/v1?api_key=QueryKey77&model=m&cache_key=abc123def456",
        {"Authorization": "Basic " + base64.b64encode(b"bob:B0bsPassword").decode(), "Cookie": "a=1; sid=C00kieVal",
         "X-Plain": "plain"})
    basic = base64.b64encode(b"u@corp:p/ss").decode()
    for value in ("p%2Fss", "p/ss", "u%40corp:p%2Fss", "u@corp:p/ss", basic, basic.rstrip("="),  # the URL's
                  "QueryKey77",  # a credential query parameter
                  "bob:B0bsPassword", "B0bsPassword",  # a Basic header, decoded
                  "a=1; sid=C00kieVal", "sid=C00kieVal", "C00kieVal", "plain"):  # (short ones are not registered)
        assert value in got, value
    assert "abc123def456" not in got and "m" not in got and "h" not in got  # an id key, the model, the host
    assert config_secrets("http://127.0.0.1:8000/v1", None) == []


def test_the_values_of_headers_that_describe_the_request_are_not_secrets() -> None:
    """A configured Accept: application/json made every application/json of every answer [API_KEY]:
    the headers that say what a request is and wants (not who sends it) give no secret."""
    got = config_secrets(None, {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8",
                                "User-Agent": "labkit-probe/1.0", "X-Plain": "plainheadervalue99"})
    assert got == ["plainheadervalue99"], got


def test_a_token_as_the_user_of_a_url_is_its_secret() -> None:
    assert "ghTokenAsUser0123" in config_secrets("https://ghTokenAsUser0123@git.example/v1")


def test_the_llm_judge_registers_the_credentials_of_its_url() -> None:
    from labkit.judges import LLMJudge

    judge = LLMJudge("http://judgeuser:JudgePassw0rd77@127.0.0.1:9/v1", "m", cache_dir=None)
    basic = base64.b64encode(b"judgeuser:JudgePassw0rd77").decode()
    assert Redactor().redact(f"seen JudgePassw0rd77 and {basic}") == "seen [API_KEY] and [API_KEY]"
    assert "JudgePassw0rd77" not in json.dumps(Redactor().redact(judge.describe()))


def test_the_embedding_cache_holds_no_credential_of_the_url(tmp_path: Path) -> None:
    from labkit.corpus import Corpus
    from labkit.embeddings import EmbeddingsClient
    from labkit.pipelines import hybrid as hybrid_mod
    from labkit.pipelines.hybrid import HybridRetriever
    from labkit.pipelines.rag import Retriever

    root = tmp_path / "corpus"
    root.mkdir()
    (root / "keys.md").write_text("# Keys\n\n## Reset\n\nReset an expired API key in the portal.\n", encoding="utf-8")
    hybrid_mod._MEMORY.clear()
    with FakeEmbeddings() as srv:
        client = EmbeddingsClient(srv.base_url.replace("://", "://embuser:EmbPassw0rd55@"), "sim-embed")
        hybrid = HybridRetriever(Retriever(Corpus.load(root), top_k=1), client, cache_dir=tmp_path / "cache")
        hybrid.retrieve("reset a key")
        assert srv.requests  # the chunks were embedded ...
    hybrid_mod._MEMORY.clear()
    assert hybrid.cache_path is not None and hybrid.cache_path.is_file()  # ... and cached
    basic = base64.b64encode(b"embuser:EmbPassw0rd55").decode()
    assert _leaks(tmp_path / "cache", ["EmbPassw0rd55", basic]) == []
    assert Redactor().redact(f"echo {basic}") == "echo [API_KEY]"
