"""The OpenAI-compatible client and pipeline adapters against a real loopback endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import (
    FakeOpenAI,
    Fault,
    drop,
    malformed,
    no_choices,
    rate_limited,
    server_error,
    slow,
    status,
)

from labkit.cases import as_cases
from labkit.errors import ConfigError
from labkit.openai_compat import (
    ChatClient,
    ClientHTTPError,
    EndpointConnectionError,
    EndpointTimeout,
    MalformedResponse,
    RateLimited,
    RetryableError,
    ServerError,
    parse_retry_after,
)
from labkit.pipelines import load_pipeline
from labkit.runner import RunnerConfig, run

ROOT = Path(__file__).resolve().parents[1]
MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def srv() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as s:
        yield s


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


# --------------------------------------------------------------------------- client


def test_client_ok_maps_usage_and_text(srv: FakeOpenAI) -> None:
    c = ChatClient(srv.base_url, "m1", timeout_s=5, params={"temperature": 0})
    r = c.chat(MSG)
    assert r.text == "Answer: hello there"
    assert r.usage == {"input_tokens": 2, "output_tokens": 3}
    assert r.model == "m1"
    assert srv.requests[0]["temperature"] == 0 and srv.requests[0]["model"] == "m1"
    c.close()


@pytest.mark.parametrize(
    ("fault", "exc", "retryable"),
    [
        (rate_limited(0.25), RateLimited, True),
        (server_error(503), ServerError, True),
        (drop(), EndpointConnectionError, True),
        (malformed(), MalformedResponse, False),
        (no_choices(), MalformedResponse, False),
        (status(401, '{"error": "bad key"}'), ClientHTTPError, False),
    ],
)
def test_client_faults_are_typed(srv: FakeOpenAI, fault: Fault, exc: type[Exception], retryable: bool) -> None:
    srv.on(None, fault)
    c = ChatClient(srv.base_url, "m", timeout_s=5)
    with pytest.raises(exc) as ei:
        c.chat(MSG)
    assert isinstance(ei.value, RetryableError) is retryable
    if isinstance(ei.value, RateLimited):
        assert ei.value.retry_after == pytest.approx(0.25)
        assert ei.value.status == 429
    assert c.chat(MSG).text.startswith("Answer")  # the next request is fine again
    c.close()


def test_a_reply_that_inflates_past_the_bound_is_refused_not_held(srv: FakeOpenAI,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100 KB gzip reply inflated to 100 MB in memory (400 MiB: 1.27 GB of RSS for one case). A
    reply is read up to a bound (decoded), then refused as the malformed reply it is."""
    from fake_openai import gzip_bomb

    import labkit.openai_compat as oc

    monkeypatch.setattr(oc, "MAX_REPLY_BYTES", 1 << 20)
    srv.on(None, gzip_bomb(4), gzip_bomb(4))
    c = ChatClient(srv.base_url, "m", timeout_s=5)
    with pytest.raises(MalformedResponse, match="larger than 1,048,576 bytes"):
        c.chat(MSG)

    async def go() -> None:
        with pytest.raises(MalformedResponse, match="larger than"):
            await c.achat(MSG)
        await c.aclose()

    asyncio.run(go())
    assert c.chat(MSG).text.startswith("Answer")  # the next request is fine again
    c.close()


def test_client_timeout_sync_and_async(srv: FakeOpenAI) -> None:
    srv.on(None, slow(3), slow(3))
    c = ChatClient(srv.base_url, "m", timeout_s=0.3)
    t = time.monotonic()
    with pytest.raises(EndpointTimeout):
        c.chat(MSG)

    async def go() -> None:
        with pytest.raises(EndpointTimeout):
            await c.achat(MSG)
        await c.aclose()

    asyncio.run(go())
    assert time.monotonic() - t < 2.5
    c.close()


def test_connection_refused_is_retryable() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = ChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2)
    with pytest.raises(EndpointConnectionError):
        c.chat(MSG)


def test_api_key_from_named_env_var(srv: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_TEST_KEY", "sk-test-123")
    c = ChatClient(srv.base_url, "m", api_key_env="LABKIT_TEST_KEY")
    c.chat(MSG)
    assert srv.headers[0]["Authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("LABKIT_TEST_KEY")
    with pytest.raises(ConfigError, match="LABKIT_TEST_KEY"):
        ChatClient(srv.base_url, "m", api_key_env="LABKIT_TEST_KEY")


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


# --------------------------------------------------------------------------- adapter configs


def test_http_config_errors(tmp_path: Path, srv: FakeOpenAI) -> None:
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "model": "m"})
    with pytest.raises(ConfigError, match="base_url"):
        load_pipeline(p)
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "base_url": srv.base_url, "model": "m", "api_kye_env": "X"})
    with pytest.raises(ConfigError, match="api_kye_env") as ei:
        load_pipeline(p)
    assert ei.value.known is not None and "api_key_env" in ei.value.known
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "base_url": srv.base_url, "model": "m",
                                         "api_key_env": "sk-live-abc def"})
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        load_pipeline(p)


def test_http_pipeline_usage_cost_and_citations(tmp_path: Path, srv: FakeOpenAI) -> None:
    srv.reply = lambda body: "Use the security portal. [security-runbook#2]"
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "name": "ep", "base_url": srv.base_url, "model": "m",
                                         "price_per_1k_input": 1.0, "price_per_1k_output": 2.0,
                                         "prompt_version": "http-v1", "params": {"max_tokens": 50}})
    pipe = load_pipeline(p)
    case = as_cases([{"id": "c1", "question": "how do I reset a key"}])[0]
    out = asyncio.run(pipe.fn(case))
    assert out["answer"] == "Use the security portal. [security-runbook#2]"
    assert out["citations"] == ["security-runbook#2"]
    n_in = sum(len(m["content"].split()) for m in srv.requests[0]["messages"])
    assert n_in == len(DEFAULT_SYS_WORDS) + 6
    assert out["usage"] == {"input_tokens": n_in, "output_tokens": 5}
    assert out["cost_usd"] == pytest.approx(n_in / 1000 * 1.0 + 5 / 1000 * 2.0)
    assert out["prompt_version"] == "http-v1"
    assert srv.requests[0]["max_tokens"] == 50


def test_a_reply_without_usage_has_no_cost_not_a_cost_of_zero(tmp_path: Path, srv: FakeOpenAI) -> None:
    """A server that sends no usage: tokens were unmeasured, but cost_usd was a measured 0.0 on
    every case, so a cost gate passed on nothing. A price needs its token count; without it the
    cost is unknown (null), and cost_per_success and total_cost_usd count the case unmeasured."""
    srv.usage = False
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "name": "ep", "base_url": srv.base_url, "model": "m",
                                         "price_per_1k_input": 1.0, "price_per_1k_output": 2.0})
    pipe = load_pipeline(p)
    out = asyncio.run(pipe.fn(as_cases([{"id": "c1", "question": "how do I reset a key"}])[0]))
    assert out["answer"] and not out.get("usage") and out["cost_usd"] is None, out
    only_output = write_yaml(tmp_path / "o.yaml", {"type": "http", "name": "ep", "base_url": srv.base_url,
                                                   "model": "m", "price_per_1k_output": 2.0})
    srv.usage = True
    out = asyncio.run(load_pipeline(only_output).fn(as_cases([{"id": "c1", "question": "how do I reset a key"}])[0]))
    assert out["cost_usd"] == pytest.approx(out["usage"]["output_tokens"] / 1000 * 2.0)


def test_a_token_count_written_as_an_integral_float_is_read_and_a_non_finite_one_is_unknown() -> None:
    """``"prompt_tokens": 12.0`` was dropped (a results line reads 812.0 as 812); NaN stays unknown."""
    from labkit.openai_compat import parse_completion

    def usage(u: dict[str, Any]) -> dict[str, int]:
        return parse_completion(json.dumps({"choices": [{"message": {"content": "x"}}], "usage": u}),
                                url="http://x").usage

    assert usage({"prompt_tokens": 12.0, "completion_tokens": 3}) == {"input_tokens": 12, "output_tokens": 3}
    assert usage({"prompt_tokens": float("nan"), "completion_tokens": 2.5}) == {}


@pytest.mark.parametrize(("value", "says"), [(0, "above 0"), (-1, "above 0"), (float("inf"), "above 0")])
def test_a_timeout_of_no_time_is_a_config_error(tmp_path: Path, value: float, says: str) -> None:
    """``timeout_s: 0`` loaded, and every request of the run timed out ("within 0s")."""
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "name": "ep", "base_url": "http://127.0.0.1:9/v1",
                                         "model": "m", "timeout_s": value})
    with pytest.raises(ConfigError, match=says) as e:
        load_pipeline(p)
    assert e.value.field == "timeout_s"


from labkit.pipelines.http import DEFAULT_SYSTEM  # noqa: E402

DEFAULT_SYS_WORDS = DEFAULT_SYSTEM.split()


def test_rag_http_sends_context_and_keeps_retrieved(tmp_path: Path, srv: FakeOpenAI) -> None:
    def reply(body: dict) -> str:
        user = body["messages"][-1]["content"]
        first = user.split("[", 1)[1].split("]", 1)[0]
        return f"Here is the answer. [{first}]"

    srv.reply = reply
    p = write_yaml(tmp_path / "p.yaml", {"type": "rag+http", "name": "rh", "base_url": srv.base_url,
                                         "model": "m", "corpus": str(ROOT / "data" / "corpus"), "top_k": 3})
    pipe = load_pipeline(p)
    case = as_cases([{"id": "c1", "question": "How do I rotate an API key?"}])[0]
    out = asyncio.run(pipe.fn(case))
    assert 1 <= len(out["retrieved"]) <= 3
    assert out["citations"] == [out["retrieved"][0]["id"]]
    user = srv.requests[0]["messages"][-1]["content"]
    assert "Question: How do I rotate an API key?" in user
    assert all(f"[{r['id']}]" in user for r in out["retrieved"])


# --------------------------------------------------------------------------- every fault through the runner


def test_every_fault_accounted_for(tmp_path: Path, srv: FakeOpenAI) -> None:
    """Each case meets one fault script; every case ends with the right status and attempts."""
    scripts = {
        "plain": ([], "ok", 1, None),
        "limited": ([rate_limited(0.3)], "ok", 2, None),
        "flaky": ([server_error(500), server_error(502)], "ok", 3, None),
        "dropped": ([drop()], "ok", 2, None),
        "broken": ([server_error(500)] * 3, "error", 3, "ServerError"),
        "garbled": ([malformed()], "error", 1, "MalformedResponse"),
        "denied": ([status(401, "no")], "error", 1, "ClientHTTPError"),
        "sluggish": ([slow(5)] * 3, "timeout", 3, "TimeoutError"),
        "rescued": ([server_error(503)] * 3, "ok", 4, None),  # the fallback answers
    }
    for name, (faults, *_rest) in scripts.items():
        srv.on(f"case {name}", *faults)
    cfg = {"type": "http", "name": "primary", "base_url": srv.base_url, "model": "big", "timeout_s": 30,
           "fallback": {"type": "http", "name": "backup", "base_url": srv.base_url, "model": "small"}}
    p = write_yaml(tmp_path / "p.yaml", cfg)
    ds = as_cases([{"id": n, "question": f"case {n} please"} for n in scripts])
    # the fallback only answers "rescued": for the other exhausted cases give it the same fault again
    srv.on("case broken", *[server_error(500)] * 3)
    srv.on("case sluggish", *[slow(5)] * 3)
    t = time.monotonic()
    rd = run(ds, str(p), tmp_path / "run", config=RunnerConfig(concurrency=4, timeout_s=0.4, retries=2,
                                                                  backoff_base_s=0.01, backoff_max_s=1.0,
                                                                  progress=False), score=False)
    elapsed = time.monotonic() - t
    assert elapsed < 15
    res = {r["case_id"]: r for r in rd.results()}
    assert [r["case_id"] for r in rd.results()] == list(scripts)  # dataset order
    for name, (_faults, st, attempts, etype) in scripts.items():
        r = res[name]
        want_attempts = attempts if name not in ("broken", "sluggish") else 6  # primary 3 + fallback 3
        assert (r["status"], r["attempts"], r["error_type"]) == (st, want_attempts, etype), (name, r)
        if st == "ok":
            assert r["error"] is None and r["answer"] == f"Answer: case {name} please"
            assert r["answered_by"] == ("backup" if name == "rescued" else "primary")
        else:
            assert r["answer"] is None and r["error"] and r["answered_by"] is None
    assert srv.calls_for("case garbled") == 1 and srv.calls_for("case denied") == 1  # never retried
    # the 429 was honoured: the retry came no sooner than Retry-After
    t429 = srv.times_for("case limited")
    assert t429[1] - t429[0] >= 0.29
    # the fallback request used the fallback's model
    rescued = [b for b in srv.requests if "case rescued" in b["messages"][-1]["content"]]
    assert [b["model"] for b in rescued] == ["big"] * 3 + ["small"]
    # one trace per attempt, each result links to its last trace
    traces = [json.loads(line) for line in rd.traces_path.read_text().splitlines()]
    assert len(traces) == sum(r["attempts"] for r in res.values())
    by_id = {t["trace_id"]: t for t in traces}
    for r in res.values():
        assert by_id[r["trace_id"]]["attempt"] == r["attempts"]
        assert by_id[r["trace_id"]]["case_id"] == r["case_id"]


# --------------------------------------------------------------------------- headers and prompt_template


@pytest.mark.parametrize(("entry", "field"), [
    ("headers: [a, b]", "headers"),                        # a traceback (dictionary update sequence ...)
    ("headers: {X-N: 5}", "headers.X-N"),                  # every case: Header value must be str or bytes
    ('headers: {X-N: "café"}', "headers.X-N"),            # every case: UnicodeEncodeError
    ('headers: {X-N: "a\\r\\nX-Evil: 1"}', "headers.X-N"),  # a line break in a value
    ('headers: {"X N": "a"}', "headers.X N"),              # not a header name
    ('prompt_template: "{question} {nope}"', "prompt_template"),   # every case: a ConfigError, exit 1
    ('prompt_template: "{question.__class__}"', "prompt_template"),  # accepted: sent "<class 'str'>"
    ('prompt_template: "{question[0]}"', "prompt_template"),
    ('prompt_template: "{question!r}"', "prompt_template"),
    ('prompt_template: "{}"', "prompt_template"),
    ('prompt_template: "{question"', "prompt_template"),
    ('prompt_template: "{context}"', "prompt_template"),  # an http pipeline has no context
    ("prompt_template: 5", "prompt_template"),
])
def test_a_bad_header_or_prompt_template_is_a_config_error_before_the_run(
    tmp_path: Path, srv: FakeOpenAI, capsys: pytest.CaptureFixture[str], entry: str, field: str,
) -> None:
    """Each was found per case (exit 1: the run wrote every case failed) or not at all; each is the
    config error it is: exit 2, one line naming the file, the line and the field, no run written."""
    from labkit.cli import main

    cfg = tmp_path / "ep.yaml"
    cfg.write_text(f"type: http\nname: ep\nbase_url: {srv.base_url}\nmodel: m\n{entry}\n", encoding="utf-8")
    ds = tmp_path / "cases.jsonl"
    ds.write_text('{"id": "c1", "question": "How do I reset a key?"}\n', encoding="utf-8")
    out = tmp_path / "run"
    code = main(["run", "--dataset", str(ds), "--pipeline", str(cfg), "--out", str(out), "--quiet", "--no-score"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{cfg}:5" in err and f"field '{field}'" in err, err
    assert not (out / "results.jsonl").exists() and srv.calls == 0


def test_headers_and_a_template_of_known_fields_are_sent(tmp_path: Path, srv: FakeOpenAI) -> None:
    p = write_yaml(tmp_path / "p.yaml", {"type": "http", "name": "ep", "base_url": srv.base_url, "model": "m",
                                         "headers": {"X-Team": "evals 2", "X-Empty": ""},
                                         "prompt_template": "Q: {question} {{literal}}"})
    out = asyncio.run(load_pipeline(p).fn(as_cases([{"id": "c1", "question": "why?"}])[0]))
    assert out["answer"] == "Answer: Q: why? {literal}"
    assert srv.headers[0]["X-Team"] == "evals 2" and srv.headers[0]["X-Empty"] == ""
    rag = write_yaml(tmp_path / "r.yaml", {"type": "rag+http", "base_url": srv.base_url, "model": "m",
                                           "corpus": str(ROOT / "data" / "corpus"), "prompt_template": "{context}"})
    assert load_pipeline(rag).fn.template == "{context}"


# --------------------------------------------------------------------------- the URL an error names


@pytest.mark.parametrize(("fault", "exc"), [
    (status(401, "no"), ClientHTTPError),
    (server_error(503), ServerError),
    (rate_limited(0.1), RateLimited),
    (slow(3), EndpointTimeout),
    (drop(), EndpointConnectionError),
])
def test_an_endpoint_error_names_its_url_with_the_credentials_masked(srv: FakeOpenAI, fault: Fault,
                                                                     exc: type[Exception]) -> None:
    """``HTTP 401 from http://user:password@host/v1/chat/completions``: the status and timeout errors
    named the URL as given, credentials included, on the terminal. They name it masked now (the
    host, port and path kept), sync and async, a token alone as the user as well as a password;
    so does the client's repr (an http pipeline's)."""
    where = f"@127.0.0.1:{srv.port}/v1"
    for i, base in enumerate((f"http://tokAsUser{exc.__name__}Q7{where}",
                              f"http://epuser:pw{exc.__name__}Q7{where}")):
        secret = f"tokAsUser{exc.__name__}Q7" if i == 0 else f"pw{exc.__name__}Q7"
        srv.on(None, fault, fault)
        c = ChatClient(base, "m", timeout_s=0.5)
        with pytest.raises(exc) as ei:
            c.chat(MSG)

        async def go(c: ChatClient = c) -> BaseException:
            with pytest.raises(exc) as ai:
                await c.achat(MSG)
            await c.aclose()
            return ai.value

        for e in (ei.value, asyncio.run(go())):
            assert secret not in str(e), str(e)
            if exc is not EndpointConnectionError:  # (a dropped connection's text names no URL of its own)
                assert f"{where}/chat/completions" in str(e), str(e)
        assert secret not in repr(c) and where in repr(c)
        c.close()


def test_the_error_texts_built_for_an_endpoint_mask_its_url_by_the_catalogue_alone() -> None:
    """The texts are masked by the one helper, not only because a client registered its URL's
    secrets: an embeddings or judge client's URL, or a caller's, is masked the same way."""
    import httpx

    from labkit.openai_compat import reply_error, transport_error

    url = "http://tokNeverRegistered42@127.0.0.1:9/v1/chat/completions"
    errors = [reply_error(code, "no", {}, url) for code in (401, 429, 503)]
    errors += [transport_error(e, url=url, timeout_s=1) for e in
               (httpx.ReadTimeout("timed out"), httpx.ConnectError("refused"), httpx.DecodingError("bad gzip"))]
    for e in errors:
        assert "http://[TOKEN]@127.0.0.1:9/v1/chat/completions" in str(e), str(e)
