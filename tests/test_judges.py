"""Judges: the lexical default, JSON reply parsing, and the LLM judge against a loopback endpoint."""

from __future__ import annotations

import contextlib
import json

import pytest
from fake_openai import FakeOpenAI, drop, malformed, rate_limited, server_error, status
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import ConfigError, LabkitError
from labkit.judges import (
    FAITHFULNESS_PROMPT,
    RELEVANCE_PROMPT,
    JudgeReplyError,
    LexicalJudge,
    LLMJudge,
    get_judge,
    parse_json_reply,
)
from labkit.text import content_words, sentences, strip_citations

CTX = ["Expired API keys are reissued in the security portal. Identity verification is required first."]


# --- lexical ----------------------------------------------------------------------------


def test_tokenization_documented_rules():
    assert content_words("The API Keys, and the key's owner!") == ["api", "key", "key", "owner"]
    assert content_words("Policies: 30 days") == ["policy", "30", "day"]
    assert strip_citations("Use the portal [security-runbook#2] now [1].") == "Use the portal  now ."
    assert sentences("One. Two!\nThree? four") == ["One.", "Two!", "Three?", "four"]


def test_lexical_faithfulness_threshold_and_claims():
    j = LexicalJudge()
    ans = "Expired API keys are reissued in the security portal [sec#2]. Yes. The moon is cheese today."
    assert j.claims(ans) == ["Expired API keys are reissued in the security portal .", "The moon is cheese today."]
    assert j.faithfulness(ans, CTX) == (0.5, "")
    assert j.faithfulness("Yes. OK.", CTX) == (None, "no_claims")
    # partial overlap: 2 of 3 content words (0.67) passes at 0.6, fails at 0.7
    claim = "Identity verification happens."
    assert LexicalJudge(threshold=0.6).faithfulness(claim, CTX) == (1.0, "")
    assert LexicalJudge(threshold=0.7).faithfulness(claim, CTX) == (0.0, "")
    assert LexicalJudge(min_content_words=4).faithfulness(claim, CTX) == (None, "no_claims")


def test_lexical_is_deterministic_and_validated():
    j = LexicalJudge()
    a = j.faithfulness("Expired keys are reissued in the portal.", CTX)
    assert all(j.faithfulness("Expired keys are reissued in the portal.", CTX) == a for _ in range(5))
    with pytest.raises(ConfigError):
        LexicalJudge(threshold=0)
    with pytest.raises(ConfigError):
        LexicalJudge(min_content_words=0)



@pytest.mark.parametrize("opts", [{"threshold": "x"}, {"threshold": True}, {"min_content_words": 2.5},
                                  {"min_content_words": "2"}])
def test_lexical_options_of_the_wrong_type_are_named(opts):
    """`threshold: "x"` gave "'<' not supported between instances of 'float' and 'str'"."""
    with pytest.raises(ConfigError) as e:
        LexicalJudge(**opts)
    (name,) = opts
    assert e.value.field == name and "must be" in str(e.value), str(e.value)


def test_lexical_relevance():
    j = LexicalJudge()
    assert j.relevance("How do I reset an expired API key?", "Reset the expired key in the portal.") == 0.75
    assert j.relevance("How do I?", "anything") is None
    assert j.relevance("reset key", "") is None


def test_registry():
    assert isinstance(get_judge(None), LexicalJudge)
    assert get_judge({"type": "lexical", "threshold": 0.8}).threshold == 0.8  # type: ignore[attr-defined]
    j = LexicalJudge()
    assert get_judge(j) is j
    with pytest.raises(ConfigError, match="known: embedding, lexical, llm"):
        get_judge("gpt-judge")
    with pytest.raises(ConfigError, match=r"unknown option .nope. of judge .lexical."):
        get_judge({"type": "lexical", "nope": 1})


# --- JSON reply parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"score": 0.5}',
        '```json\n{"score": 0.5}\n```',
        'Sure! Here is my verdict:\n```\n{"score": 0.5}\n```\nHope that helps.',
        'I think {"score": 0.5} is right, {"other": 1}',
        'The answer {is good}. {"score": 0.5}',
    ],
)
def test_parse_json_reply_tolerant(text):
    assert parse_json_reply(text)["score"] == 0.5


@pytest.mark.parametrize("text", ["", "no json here", "[1, 2]", '{"score": 0.5'])
def test_parse_json_reply_fails_cleanly(text):
    with pytest.raises(JudgeReplyError):
        parse_json_reply(text)


# --- LLM judge against a real loopback server -------------------------------------------


def _verdicts(body: dict) -> str:
    user = body["messages"][-1]["content"]
    if user.startswith("Question:"):
        return 'Score: ```json\n{"score": 0.8}\n```'
    n = user.count(".")  # crude: a "claim" per period in context+answer
    return f'Here you go: {{"claims": 4, "supported": {min(3, n)}}} -- done'


@pytest.fixture
def srv():
    with FakeOpenAI(reply=_verdicts) as s:
        yield s


def _judge(srv, tmp_path, **kw):
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return LLMJudge(srv.base_url, "judge-model", **kw)


def test_llm_judge_scores_and_sends_versioned_prompt(srv, tmp_path):
    j = _judge(srv, tmp_path)
    assert j.faithfulness("A. B.", ["C."]) == (0.75, "")
    assert j.relevance("q?", "a") == pytest.approx(0.8)
    body = srv.requests[0]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0
    assert body["messages"][0]["content"] == FAITHFULNESS_PROMPT.system
    d = j.describe()
    assert d["templates"]["faithfulness"] == {"version": "faithfulness-v1", "hash": FAITHFULNESS_PROMPT.hash}
    assert d["templates"]["relevance"]["hash"] == RELEVANCE_PROMPT.hash


def test_a_verdict_is_cached_redacted_and_scored_as_it_came(tmp_path):
    """A judge whose reply quoted a key put it raw into its verdict cache file: the record is
    redacted before it is written; the verdict itself (its numbers) is what the judge said."""
    key = "sk-proj-JUDGEechoedKEY0123456789abcd"

    def reply(body):
        return f'{{"claims": 2, "supported": 1, "note": "saw {key}"}}'

    with FakeOpenAI(reply=reply) as s:
        j = LLMJudge(s.base_url, "judge-model", backoff_s=0.001, cache_dir=tmp_path / "cache")
        assert j.faithfulness("A. B.", ["C."]) == (0.5, "")
        again = LLMJudge(s.base_url, "judge-model", backoff_s=0.001, cache_dir=tmp_path / "cache")
        assert again.faithfulness("A. B.", ["C."]) == (0.5, "") and again.cache_hits == 1
    files = list((tmp_path / "cache").rglob("*.json"))
    assert files and not any("JUDGEechoedKEY" in f.read_text(encoding="utf-8") for f in files)


def test_llm_judge_cache_keyed_by_model_template_inputs(srv, tmp_path):
    j = _judge(srv, tmp_path)
    j.faithfulness("A. B.", ["C."])
    j2 = _judge(srv, tmp_path)  # a new judge, same cache dir: no call
    assert j2.faithfulness("A. B.", ["C."]) == (0.75, "")
    assert srv.calls == 1 and j2.cache_hits == 1
    j2.faithfulness("A. B. X.", ["C."])  # different input -> call
    assert srv.calls == 2
    other_model = LLMJudge(srv.base_url, "other-model", cache_dir=tmp_path / "cache")
    other_model.faithfulness("A. B.", ["C."])
    assert srv.calls == 3
    from dataclasses import replace

    v2 = replace(FAITHFULNESS_PROMPT, version="faithfulness-v2", system=FAITHFULNESS_PROMPT.system + " Be strict.")
    assert v2.hash != FAITHFULNESS_PROMPT.hash
    _judge(srv, tmp_path, faithfulness_prompt=v2).faithfulness("A. B.", ["C."])
    assert srv.calls == 4


def test_llm_judge_retries_429_500_and_drops(srv, tmp_path):
    srv.on(None, rate_limited(retry_after=0.01), server_error(503), drop())
    slept: list[float] = []
    j = _judge(srv, tmp_path, sleep=slept.append, retries=3)
    assert j.relevance("q?", "a") == pytest.approx(0.8)
    assert srv.calls == 4 and len(slept) == 3
    assert slept[0] >= 0.01  # Retry-After honoured


def test_llm_judge_backoff_is_jittered_seeded_and_bounded(srv, tmp_path):
    """The judge waits like the runner (labkit.retry: decorrelated jitter between backoff_s and
    max_backoff_s), seeded by the request: two requests do not retry in lockstep, the same
    request waits the same again."""

    def waits(question: str) -> list[float]:
        srv.on(None, server_error(503), server_error(503), server_error(503))
        slept: list[float] = []
        j = _judge(srv, tmp_path, sleep=slept.append, retries=3, backoff_s=1.0, max_backoff_s=8.0, cache_dir=None)
        assert j.relevance(question, "a") == pytest.approx(0.8)
        return slept

    first, other, again = waits("q one?"), waits("q two?"), waits("q one?")
    assert len(first) == 3 and first == again
    assert first != other
    assert all(1.0 <= w <= 8.0 for w in first + other)


def test_llm_judge_malformed_then_chatty_reply(srv, tmp_path):
    srv.on(None, malformed())
    j = _judge(srv, tmp_path)
    assert j.faithfulness("A.", ["B."]) == (0.5, "")  # 2 of 4 claims, parsed from chatty text
    assert srv.calls == 2


def test_llm_judge_unparseable_reply_is_unmeasured(tmp_path):
    with FakeOpenAI(reply=lambda body: "I cannot judge this.") as s:
        j = _judge(s, tmp_path, retries=1, cache_dir=None)
        assert j.faithfulness("A.", ["B."]) == (None, "judge_error")
        assert j.relevance("q", "a") is None
        assert s.calls == 4 and len(j.errors) == 2


def test_llm_judge_exhausted_retries_is_unmeasured(srv, tmp_path):
    srv.on(None, server_error(), server_error(), server_error())
    j = _judge(srv, tmp_path, retries=2)
    assert j.faithfulness("A.", ["B."]) == (None, "judge_error")
    assert "ServerError" in j.errors[0]
    assert not list((tmp_path / "cache").rglob("*.json"))  # failures are not cached


def test_llm_judge_client_error_raises(srv, tmp_path):
    srv.on(None, status(401, '{"error": "bad key"}'))
    j = _judge(srv, tmp_path)
    with pytest.raises(LabkitError, match="401"):
        j.relevance("q", "a")


def test_llm_judge_key_from_env_only(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_TEST_JUDGE_KEY", "sk-test-123")
    j = _judge(srv, tmp_path, api_key_env="LABKIT_TEST_JUDGE_KEY")
    j.relevance("q", "a")
    assert srv.headers[-1].get("Authorization") == "Bearer sk-test-123"
    assert "sk-test-123" not in json.dumps(j.describe())
    cached = next((tmp_path / "cache").rglob("*.json")).read_text()
    assert "sk-test-123" not in cached
    monkeypatch.delenv("LABKIT_TEST_JUDGE_KEY")
    j2 = _judge(srv, tmp_path, api_key_env="LABKIT_TEST_JUDGE_KEY", cache_dir=None)
    with pytest.raises(ConfigError, match="LABKIT_TEST_JUDGE_KEY"):
        j2.relevance("q", "a")


def test_llm_judge_via_registry_and_score_cases(srv, tmp_path):
    from labkit.cases import EvalCase
    from labkit.metrics import score_cases

    j = get_judge({"type": "llm", "base_url": srv.base_url, "model": "m", "cache_dir": str(tmp_path / "c")})
    assert isinstance(j, LLMJudge) and j.name == "llm:m"
    case = EvalCase(id="a", question="How?")
    res = {"case_id": "a", "status": "ok", "answer": "Do it. Then more.",
           "retrieved": [{"id": "d#0", "source": "d", "text": "Do it."}]}
    df = score_cases([case], [res], judge=j)
    assert df.loc[0, "faithfulness"] == 0.75 and df.loc[0, "answer_relevance"] == pytest.approx(0.8)


def test_abstention_is_not_a_claim():
    from labkit.judges import LexicalJudge

    j = LexicalJudge()
    refusal = "I could not find this in the knowledge base, so I cannot answer it."
    assert j.claims(refusal) == []
    assert j.faithfulness(refusal, ["unrelated context"]) == (None, "no_claims")
    mixed = "API keys expire after 90 days. We cannot confirm anything else."
    assert j.faithfulness(mixed, ["API keys expire 90 days after they are created."]) == (1.0, "")
    # an unsupported statement is still a claim
    assert j.faithfulness("Refunds are always instant.", ["API keys expire."])[0] == 0.0


# ---- a claim cannot hide in brackets or behind a hedge -------------------------------------------

_CTX = ["Refunds are reviewed by the billing team within five business days."]
_INVENTED = "Refunds of any amount are approved automatically within one hour"


@pytest.mark.parametrize("answer", [
    f"[{_INVENTED}.]",                                              # a bracketed note is no citation
    f"We cannot confirm it, but {_INVENTED[0].lower()}{_INVENTED[1:]}.",  # a hedge before a claim
    f"{_INVENTED} (I cannot say more).",                            # a hedge after it
    f"{_INVENTED}, which is not covered in the documentation.",
])
def test_a_claim_in_brackets_or_beside_a_hedge_is_still_judged(answer):
    j = LexicalJudge()
    assert j.claims(answer), answer
    assert j.faithfulness(answer, _CTX)[0] == 0.0


@pytest.mark.parametrize("answer", [
    "I could not find this in the knowledge base.",
    "I could not find information about SSO pricing in the knowledge base.",
    "Refunds take five business days [billing#2]. They are reviewed by the billing team [billing#2, support-policy#1].",
])
def test_abstentions_and_citation_markers_stay_out_of_the_claims(answer):
    j = LexicalJudge()
    claims = j.claims(answer)
    assert all("[" not in c for c in claims)
    if answer.startswith("I could not"):
        assert claims == [] and j.faithfulness(answer, _CTX)[0] is None


# --- judging many cases at once --------------------------------------------------------------

_JUDGE_WORDS = ["refund", "refunds", "key", "rotate", "portal", "owner", "the", "we", "cannot", "confirm",
                "it", "but", "is", "approved", "at", "once", "[d1#0]", "I", "could", "not", "find", "this",
                "Keys", "policies", "9", "x_y", "[a#1, b#2]", "[Refunds are approved]", "I cannot find",
                "no information about", "not covered in the docs", "ﬁle", "café", "Ｋｅｙ"]
#: what follows a word: mostly a space, else sentence marks, line breaks, clause marks, odd whitespace
_JUDGE_MARKS = [" "] * 12 + ["  ", ", ", "; ", " - ", "(", ") ", "_", "\u2014", ". ", "! ", "? ", "\n", ".\n", "\r\n",
                              "\t", ".\t", ".\x1c", "\x1c", ".\x85", "?\u2028", ".\u00a0", "\uff0e ", "\u3002", "..."]


def _batch_items(seed: int, n: int) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    import random

    rng = random.Random(seed)

    def text(m: int) -> str:
        return ("".join(rng.choice(_JUDGE_WORDS) + rng.choice(_JUDGE_MARKS) for _ in range(m)).rstrip(" ")
                + rng.choice([".", "!", "?", ""]))

    def contexts() -> list[str]:
        if rng.random() < 0.3:  # copies of one text, as a case that retrieved one chunk's text many times
            return [rng.choice(shared)] * rng.randrange(1, 9)
        return [rng.choice(shared) if rng.random() < 0.5 else text(6) for _ in range(rng.randrange(0, 4))]

    shared = [text(7) for _ in range(4)]  # chunks many cases retrieve
    faith = [(" ".join(text(rng.randrange(1, 9)) for _ in range(rng.randrange(0, 4))), contexts()) for _ in range(n)]
    rel = [(text(rng.randrange(0, 6)), text(rng.randrange(0, 9))) for _ in range(n)]
    return faith, rel


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([1e-13, 0.3, 0.6, 1.0]),
       min_words=st.integers(1, 3))
def test_the_lexical_batch_gives_each_case_its_own_verdict(seed: int, threshold: float, min_words: int) -> None:
    """The batch against the per-case judge, on answers, contexts and questions of ASCII and other
    text: sentence marks, line breaks, citation markers, abstention phrases, odd whitespace."""
    from labkit.judges import lexical_verdicts

    judge = LexicalJudge(threshold=threshold, min_content_words=min_words)
    faith, rel = _batch_items(seed, 30)
    want_faith = [judge.faithfulness(a, c) for a, c in faith]
    want_rel = [judge.relevance(q, a) for q, a in rel]
    assert judge.faithfulness_many(faith) == want_faith
    assert judge.relevance_many(rel) == want_rel
    both = lexical_verdicts(judge, [(q, a, c) for (a, c), (q, _) in zip(faith, rel, strict=True)])
    assert [f for f, _ in both] == [f if c else None for f, (_, c) in zip(want_faith, faith, strict=True)]
    assert [r for _, r in both] == [judge.relevance(q, a) for (a, _), (q, _) in zip(faith, rel, strict=True)]


def test_a_judge_without_a_batch_is_asked_case_by_case() -> None:
    from labkit.judges import judge_many

    class Counting:
        name = "counting"

        def __init__(self) -> None:
            self.seen: list[str] = []

        def faithfulness(self, answer: str, contexts: list[str]) -> tuple[float | None, str]:
            self.seen.append(answer)
            return 0.5, ""

        def relevance(self, question: str, answer: str) -> float | None:
            return None

    j = Counting()
    assert judge_many(j, "faithfulness", [("a", ["x"]), ("b", ["y"])]) == [(0.5, ""), (0.5, "")]
    assert j.seen == ["a", "b"]
    assert judge_many(j, "relevance", [("q", "a")]) == [None]
    with pytest.raises(ValueError):
        judge_many(j, "kindness", [])


# --- the abstention test without the search -------------------------------------------------

_ABSTAIN_BITS = st.sampled_from([
    "I", "we", "We", " ", "  ", "\n", "\t", "could", "not", "NOT", "couldn't", "cannot", "can't", "can", "do",
    "don't", "am", "unable", "to", "find", "answer", "help", "know", "say", "confirm", "no", "information",
    "about", "on", "covered", "mentioned", "found", "in", "the", "knowledge", "base", "documentation", "docs",
    "ſay", "\u212aNOW", "İ", "x", ".", ",", "n’t", "informatio", "unabl", "no",
])


@settings(max_examples=600)
@given(st.lists(_ABSTAIN_BITS, max_size=12).map("".join))
def test_abstains_is_the_abstention_search(text):
    from labkit.judges import ABSTENTION, abstains

    assert abstains(text) == (ABSTENTION.search(text) is not None), text


@pytest.mark.parametrize("text, expected", [
    ("I cannot find that in the documentation.", True), ("We DON'T KNOW yet", True),
    ("There is no information about refunds.", True), ("That is Not covered in the knowledge base", True),
    ("we am unable to help", True), ("I cannot \u017fay", True), ("I cannot confirm", True),
    ("Refunds are approved at once.", False), ("I can find it", False), ("informational note", False),
    # the typographic apostrophes models write as often as the ASCII one
    ("I don\u2019t know.", True), ("We can\u2019t confirm that", True), ("I COULDN\u2019T FIND it", True),
    ("I don\u02bct know", True), ("I won\u2019t know", False),
])
def test_abstains_on_known_phrases(text, expected):
    from labkit.judges import ABSTENTION, abstains

    assert abstains(text) is expected is (ABSTENTION.search(text) is not None)


@pytest.mark.parametrize("apostrophe", ["\u2019", "\u02bc", "\u2018", "\uff07"])
def test_an_abstention_with_a_typographic_apostrophe_is_judged_as_with_the_ascii_one(apostrophe):
    from labkit.judges import LexicalJudge

    judge = LexicalJudge()
    contexts = ["Refunds are approved within five business days of the request."]
    plain = "I don't know how refunds for damaged parcels are processed by the billing team."
    typographic = plain.replace("'", apostrophe)
    assert judge.faithfulness(typographic, contexts) == judge.faithfulness(plain, contexts)
    assert judge.faithfulness(plain, contexts)[0] is None  # an abstention asserts nothing to support
    assert judge.relevance("How do refunds work?", typographic) == judge.relevance("How do refunds work?", plain)


def test_a_lexical_judge_subclass_that_decides_otherwise_is_asked_case_by_case():
    """A subclass overriding faithfulness or relevance is what scoring asks: the inherited batch
    methods would decide as the base class does."""
    from labkit.cases import EvalCase
    from labkit.judges import LexicalJudge
    from labkit.metrics import score_cases

    class AllOrNothing(LexicalJudge):
        def faithfulness(self, answer, contexts):
            got, why = super().faithfulness(answer, contexts)
            return (None, why) if got is None else (float(got == 1.0), "")

        def relevance(self, question, answer):
            return 0.0

    case = EvalCase(id="c1", question="How long do refunds take?")
    res = {"case_id": "c1", "status": "ok", "answer": "Refunds take five days. The moon is made of cheese.",
           "retrieved": [{"id": "d#1", "text": "Refunds take five days to process."}], "citations": []}
    judge = AllOrNothing()
    row = score_cases([case], [res], judge=judge).iloc[0]
    assert judge.faithfulness(res["answer"], [res["retrieved"][0]["text"]]) == (0.0, "")
    assert row["faithfulness"] == 0.0 and row["answer_relevance"] == 0.0


def test_a_judge_option_misspelt_or_missing_is_named_with_the_known_ones(tmp_path, capsys):
    """``score --judge FILE`` with ``threshhold: 0.01`` said "LexicalJudge.__init__() got an unexpected
    keyword argument": no file, no option the judge takes; ``--judge llm`` "missing 2 required positional
    arguments"."""
    from labkit.cli import main
    from labkit.errors import ConfigError
    from labkit.judges import get_judge

    with pytest.raises(ConfigError) as ei:
        get_judge({"type": "lexical", "threshhold": 0.01})
    assert ei.value.field == "judge.threshhold" and "threshold" in (ei.value.known or []), ei.value
    with pytest.raises(ConfigError) as ei:
        get_judge("llm")
    assert "needs" in str(ei.value) and "base_url" in str(ei.value) and "model" in str(ei.value), ei.value
    spec = tmp_path / "judge.yaml"
    spec.write_text("type: lexical\nthreshhold: 0.01\n")
    assert main(["score", "no-such-run", "--judge", str(spec)]) == 2
    err = capsys.readouterr().err
    assert str(spec) in err and "judge.threshhold" in err and "threshold" in err and "__init__" not in err, err


# --- the judge's timeout_s is a total deadline -------------------------------------------


def _score_cli(args: list[str], *, timeout_s: float):
    """``labkit ARGS`` in a child process, killed by its pid (subprocess.run) past ``timeout_s``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True,
                              timeout=timeout_s, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"labkit {' '.join(args)} did not end within {timeout_s:g} s")


def test_score_with_a_judge_that_drips_its_reply_ends_by_the_judges_timeout(tmp_path):
    """``timeout_s: 2`` was each read's: a judge sending a 200 reply a byte per 0.5 s kept ``labkit
    score`` going (still running at 40 s for 3 cases). It is each verdict's whole deadline."""
    import time

    from drip_server import dripping

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"case_id": f"c{i}", "status": "ok", "answer": "Keys are reissued in the portal.",
              "retrieved": [{"id": "d#1", "text": CTX[0]}]} for i in range(3)]
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = tmp_path / "cases.jsonl"
    ds.write_text("".join(json.dumps({"id": f"c{i}", "question": "Where are keys reissued?"}) + "\n"
                          for i in range(3)))
    with dripping(interval_s=0.5, n_bytes=120) as base:  # a minute of drip per request
        cfg = tmp_path / "judge.yaml"
        cfg.write_text(f"type: llm\nbase_url: {base}/v1\nmodel: m\ntimeout_s: 1\nretries: 0\ncache_dir: null\n")
        t0 = time.monotonic()
        r = _score_cli(["score", str(run), "--dataset", str(ds), "--judge", str(cfg)], timeout_s=90)
        took = time.monotonic() - t0
    assert took < 45, took  # 6 verdicts of at most 1 s each, and the start of a process
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    scores = (run / "scores.csv").read_text()
    assert scores.count("judge_error") >= 3, scores


def test_a_judge_call_ends_by_its_deadline_retries_included_whatever_the_server_drips(tmp_path):
    """The headers dripped, or the body: either way one verdict (two retries included) ends
    within about ``timeout_s``, unmeasured, the timeout named."""
    import time

    from drip_server import dripping

    for phase in ("headers", "body"):
        with dripping(interval_s=0.5, n_bytes=120, phase=phase) as base:
            j = LLMJudge(f"{base}/v1", "m", timeout_s=1, retries=2, backoff_s=0.01, cache_dir=None)
            t0 = time.monotonic()
            assert j.relevance("Where are keys reissued?", "In the portal.") is None
            took = time.monotonic() - t0
        assert took < 15, (phase, took)
        assert len(j.errors) == 1 and "EndpointTimeout" in j.errors[0] and "within 1s" in j.errors[0], j.errors


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "2", True])
def test_a_judge_timeout_of_no_time_or_not_a_number_is_a_config_error(bad):
    with pytest.raises(ConfigError) as ei:
        LLMJudge("http://127.0.0.1:9/v1", "m", timeout_s=bad)
    assert ei.value.field == "timeout_s"


# --- a judge endpoint that never answers --------------------------------------------------

_PASSWORD = "JudgePassw0rdNever42"


def _scored_run(tmp_path, n: int):
    """A run of ``n`` answered cases with context, scored once by the default judge, and its dataset."""
    from labkit.cli import main

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"case_id": f"c{i}", "status": "ok", "answer": f"Keys are reissued in the portal {i}.",
              "retrieved": [{"id": "d#1", "text": CTX[0]}]} for i in range(n)]
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = tmp_path / "cases.jsonl"
    ds.write_text("".join(json.dumps({"id": f"c{i}", "question": "Where are keys reissued?"}) + "\n"
                          for i in range(n)))
    assert main(["score", str(run), "--dataset", str(ds)]) == 0
    return run, ds


def _never_answering(kind: str):
    """A server that fails every request as ``kind`` says (None for a port nothing listens on), the
    requests one verdict costs at ``retries: 1``, and a word of the failure's reason."""
    if kind == "refused":
        return None, 2, "EndpointConnectionError"
    if kind == "500":
        return FakeOpenAI().on(None, *[server_error()] * 200), 2, "ServerError"
    if kind == "no JSON":
        return FakeOpenAI(reply=lambda body: "I cannot judge this."), 2, "no JSON object"
    return FakeOpenAI(reply=lambda body: '{"verdict": "fine"}'), 1, "not a number"  # JSON, no verdict in it


@pytest.mark.parametrize("kind", ["refused", "500", "no JSON", "no numbers"])
def test_score_with_a_judge_that_never_answers_stops_after_its_first_verdicts(tmp_path, capsys, kind):
    """A judge at a closed port, or one failing every request (a 500, a reply with no verdict),
    was asked about every case and `labkit score` exited 0 with every verdict `judge_error`. The
    first FIRST_VERDICTS verdicts all failing, none answered, stop the scoring in one line naming
    the endpoint (its credentials masked) and the first failure; the run's files stay as they were."""
    from servers import free_port

    from labkit.cli import main
    from labkit.judges import FIRST_VERDICTS

    run, ds = _scored_run(tmp_path, FIRST_VERDICTS + 4)
    before = {name: (run / name).read_bytes() for name in ("scores.csv", "metrics.json", "manifest.json")}
    srv, per_verdict, reason = _never_answering(kind)
    with srv if srv is not None else contextlib.nullcontext():
        port = srv.port if srv is not None else free_port()
        cfg = tmp_path / "judge.yaml"
        cfg.write_text(f"type: llm\nbase_url: http://judge:{_PASSWORD}@127.0.0.1:{port}/v1\nmodel: m\n"
                       "retries: 1\nbackoff_s: 0.001\nmax_backoff_s: 0.002\ncache_dir: null\n")
        capsys.readouterr()
        assert main(["score", str(run), "--dataset", str(ds), "--judge", str(cfg)]) == 2
        if srv is not None:
            assert srv.calls == FIRST_VERDICTS * per_verdict  # stopped there, not after every case
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("labkit: error:"), err
    assert f"127.0.0.1:{port}/v1" in err and _PASSWORD not in err and reason in err, err
    assert f"first {FIRST_VERDICTS} verdicts" in err, err
    assert {name: (run / name).read_bytes() for name in before} == before


def test_the_stop_names_the_endpoint_masked_and_the_first_failure(tmp_path):
    """The error itself (not only the terminal's copy of it) holds no credential of the URL."""
    from servers import free_port

    from labkit.errors import JudgeRefused
    from labkit.judges import FIRST_VERDICTS

    port = free_port()
    j = LLMJudge(f"http://judge:{_PASSWORD}@127.0.0.1:{port}/v1", "m", retries=0, cache_dir=None)
    for i in range(FIRST_VERDICTS - 1):
        assert j.relevance(f"q{i}?", "a") is None
    with pytest.raises(JudgeRefused) as ei:
        j.relevance("the last one?", "a")
    msg = str(ei.value)
    assert _PASSWORD not in msg and f"127.0.0.1:{port}/v1" in msg and "EndpointConnectionError" in msg, msg
    assert len(j.errors) == FIRST_VERDICTS


def test_a_refusal_names_the_endpoint_with_its_credentials_masked(srv, tmp_path):
    srv.on(None, status(401, '{"error": "bad key"}'))
    j = LLMJudge(srv.base_url.replace("://", f"://judge:{_PASSWORD}@"), "m", cache_dir=None)
    with pytest.raises(LabkitError, match="401") as ei:
        j.relevance("q", "a")
    assert _PASSWORD not in str(ei.value), ei.value


def test_once_a_verdict_came_later_failures_are_each_cases_own(srv, tmp_path):
    """Fewer failures than FIRST_VERDICTS before the first answer stop nothing, and after an
    answer a failing endpoint leaves each case unmeasured (`judge_error`) as before."""
    from labkit.judges import FIRST_VERDICTS

    srv.on(None, *[server_error()] * (FIRST_VERDICTS - 1))
    j = _judge(srv, tmp_path, retries=0, cache_dir=None)
    got = [j.faithfulness(f"A{i}. B.", ["C."]) for i in range(FIRST_VERDICTS)]
    assert got == [(None, "judge_error")] * (FIRST_VERDICTS - 1) + [(0.75, "")]
    srv.on(None, *[server_error()] * 30)
    assert [j.faithfulness(f"Later {i}.", ["C."]) for i in range(20)] == [(None, "judge_error")] * 20
    assert len(j.errors) == FIRST_VERDICTS - 1 + 20


def test_a_verdict_from_the_cache_is_an_answer(srv, tmp_path):
    """A rerun whose first verdict is cached and whose endpoint is now gone is not stopped: the
    judge has answered (the other cases stay unmeasured)."""
    from servers import free_port

    from labkit.judges import FIRST_VERDICTS

    assert _judge(srv, tmp_path).faithfulness("A. B.", ["C."]) == (0.75, "")
    gone = LLMJudge(f"http://127.0.0.1:{free_port()}/v1", "judge-model", retries=0, cache_dir=tmp_path / "cache")
    assert gone.faithfulness("A. B.", ["C."]) == (0.75, "") and gone.cache_hits == 1
    later = [gone.faithfulness(f"New claim {i}.", ["C."]) for i in range(FIRST_VERDICTS + 4)]
    assert later == [(None, "judge_error")] * (FIRST_VERDICTS + 4)
