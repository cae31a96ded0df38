"""Generation metrics: phrase checks, citations, faithfulness and relevance through score_cases."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase
from labkit.metrics import generation, score_cases


@dataclass
class Chunk:
    id: str
    source: str
    text: str


class FakeCorpus:
    def __init__(self, chunks: list[Chunk]) -> None:
        self._by = {c.id: c for c in chunks}

    def chunk(self, cid: str) -> Chunk | None:
        return self._by.get(cid)


CTX = "Expired API keys are reissued in the security portal. Identity verification is required first."


def test_must_include_case_and_whitespace_insensitive():
    assert generation.must_include_coverage("Use the  SECURITY\nportal now", ["security portal", "two-factor"]) == (0.5, "")
    assert generation.must_include_coverage("x", []) == (None, "no_must_include")
    assert generation.must_include_coverage(None, ["a"]) == (0.0, "")


def test_must_not_include():
    assert generation.must_not_include_violation("Please Share your  password", ["share your password"]) == (1.0, "")
    assert generation.must_not_include_violation("fine", ["share your password"]) == (0.0, "")
    assert generation.must_not_include_violation("x", []) == (None, "no_must_not_include")


def test_phrase_hidden_by_a_redaction_placeholder_is_unmeasured_not_zero():
    """Rescoring a redacted results file: a phrase a placeholder may have replaced cannot be judged."""
    answer = "Call support at [PHONE] or write to [EMAIL]."
    assert generation.must_include_coverage(answer, ["555-0100"]) == (None, "redacted")
    assert generation.must_include_coverage(answer, ["at +1 415 555-0100", "support"]) == (None, "redacted")
    assert generation.must_include_coverage(answer, ["help@example.com"]) == (None, "redacted")
    assert generation.must_not_include_violation(answer, ["4111 1111 1111 1111"]) == (None, "redacted")
    # a phrase the placeholder could not have held is judged as usual
    assert generation.must_include_coverage(answer, ["security portal"]) == (0.0, "")
    assert generation.must_include_coverage(answer, ["support at"]) == (1.0, "")
    assert generation.must_not_include_violation(answer, ["share your password"]) == (0.0, "")
    assert generation.must_not_include_violation(answer, ["write to"]) == (1.0, "")
    # a phone placeholder cannot hide letters; an e-mail one cannot hide spaces
    assert generation.must_include_coverage(answer, ["call support at hotline"]) == (0.0, "")
    assert generation.must_include_coverage("write to [EMAIL] now", ["a b@c.io"]) == (0.0, "")
    # content capture off: anything may be hidden
    assert generation.must_include_coverage("[CONTENT len=40 sha256=0123456789ab]", ["portal"]) == (None, "redacted")


def test_redacted_answer_rescored_through_score_cases():
    case = EvalCase(id="c1", question="How do I reach support?", must_include=["555-0100"])
    res = {"case_id": "c1", "status": "ok", "answer": "Call [PHONE].", "retrieved": [], "citations": []}
    row = score_cases([case], [res], k=5).iloc[0]
    assert math.isnan(row["must_include_coverage"]) and row["must_include_coverage_reason"] == "redacted"


def test_bracketed_capitals_the_redactor_never_writes_are_answer_text():
    """``[DOC1]``-style citations, ``[NOTE]`` or ``[B]`` are not redaction placeholders: the phrase
    checks and the reference metrics measure the answer, and a case missing its must_include
    phrase fails task success instead of passing unseen."""
    assert generation.must_include_coverage("Reset it from the portal [DOC1].", ["identity check"]) == (0.0, "")
    assert generation.must_not_include_violation("Pick option [B].", ["option c"]) == (0.0, "")
    assert not generation.hidden_by_redaction("Call [NOTE] now", "call support now")
    case = EvalCase(id="c1", question="How do I reset?", must_include=["identity check"],
                    reference_answer="Open the portal and reset it.")
    res = {"case_id": "c1", "status": "ok", "answer": "Open the portal and reset it [DOC1].",
           "retrieved": [], "citations": []}
    row = score_cases([case], [res], k=5).iloc[0]
    assert row["must_include_coverage"] == 0.0 and row["must_include_coverage_reason"] == ""
    assert row["token_f1"] > 0 and row["token_f1_reason"] == ""
    assert row["task_success_rate"] == 0.0


def test_a_check_a_placeholder_may_hide_leaves_task_success_unmeasured():
    """A must_include phrase a real placeholder may hide is unknown, not found: task success is
    unmeasured (``redacted``) unless another check already fails it."""
    case = EvalCase(id="c1", question="How do I reach support?", must_include=["555-0100"])
    hidden = {"case_id": "c1", "status": "ok", "answer": "Call [PHONE].", "retrieved": [], "citations": []}
    row = score_cases([case], [hidden], k=5).iloc[0]
    assert math.isnan(row["task_success_rate"]) and row["task_success_rate_reason"] == "redacted"
    case2 = EvalCase(id="c2", question="q", must_include=["555-0100"], must_not_include=["call"])
    failed = dict(hidden, case_id="c2")  # says "call": fails whatever the placeholder hides
    assert score_cases([case2], [failed], k=5).iloc[0]["task_success_rate"] == 0.0


def test_the_placeholders_of_a_runs_extra_patterns_are_read_from_its_redaction_settings():
    case = EvalCase(id="c1", question="Which ticket?", must_include=["ticket TK-1234"])
    res = {"case_id": "c1", "status": "ok", "answer": "See ticket [TICKET_ID].", "retrieved": [], "citations": []}
    plain = score_cases([case], [res], k=5).iloc[0]  # no such pattern: the text is the answer's
    assert plain["must_include_coverage"] == 0.0
    redacted = score_cases([case], [res], k=5, redaction={"extra_patterns": {"ticket-id": r"TK-\d+"}}).iloc[0]
    assert math.isnan(redacted["must_include_coverage"]) and redacted["must_include_coverage_reason"] == "redacted"
    off = score_cases([case], [{**res, "answer": "Call [PHONE]."}], k=5, redaction={"enabled": False}).iloc[0]
    assert off["must_include_coverage"] == 0.0  # redaction off: no catalogue placeholder is one


def test_citations_validity_and_accuracy():
    retrieved = [{"id": "a#1", "source": "a"}, {"id": "b#0", "source": "b"}]
    assert generation.citation_validity(["a#1", "c#0"], retrieved, "chunk") == (0.5, "")
    assert generation.citation_validity([], retrieved, "chunk") == (0.0, "")
    # source-level: a cited chunk counts for its source; duplicates count once
    assert generation.citation_accuracy(["a#1", "a#2"], ["a"], "source") == (1.0, "")
    assert generation.citation_accuracy(["a#1", "b#0"], ["a#1"], "chunk") == (0.5, "")
    assert generation.citation_accuracy(["a#1"], [], "chunk") == (None, "no_gold")
    assert generation.citation_accuracy([], ["a"], "source") == (0.0, "")


def _case(**kw):
    base = dict(id="c1", question="How do I reset an expired API key?", expected_source="security-runbook")
    base.update(kw)
    return EvalCase(**base)


def _res(**kw):
    base = {
        "case_id": "c1",
        "status": "ok",
        "answer": "Expired API keys are reissued in the security portal. [security-runbook#2] "
        "The moon is made of green cheese.",
        "retrieved": [{"id": "security-runbook#2", "source": "security-runbook"}],
        "citations": ["security-runbook#2"],
    }
    base.update(kw)
    return base


def test_faithfulness_with_corpus_lookup():
    corpus = FakeCorpus([Chunk("security-runbook#2", "security-runbook", CTX)])
    df = score_cases([_case()], [_res()], corpus=corpus)
    assert df.loc[0, "faithfulness"] == pytest.approx(0.5)  # one of two claims supported
    assert df.loc[0, "citation_validity"] == 1.0
    assert df.loc[0, "citation_accuracy"] == 1.0  # chunk cited, gold is the source


def test_inline_text_preferred_and_no_context():
    items = [{"id": "security-runbook#2", "source": "security-runbook", "text": CTX}]
    df = score_cases([_case()], [_res(retrieved=items)])
    assert df.loc[0, "faithfulness"] == pytest.approx(0.5)
    df2 = score_cases([_case()], [_res()])  # no text, no corpus
    assert math.isnan(df2.loc[0, "faithfulness"]) and df2.loc[0, "faithfulness_reason"] == "no_context"
    df3 = score_cases([_case()], [_res(retrieved=[])])
    assert df3.loc[0, "faithfulness_reason"] == "no_context"


def test_not_ok_and_no_answer_and_no_claims():
    case = _case(must_include=("security portal",))
    df = score_cases([case], [_res(status="timeout", answer=None)])
    for m in ("faithfulness", "answer_relevance", "citation_validity"):
        assert math.isnan(df.loc[0, m]) and df.loc[0, m + "_reason"] == "not_ok"
    assert df.loc[0, "must_include_coverage"] == 0.0  # scores what it did
    assert df.loc[0, "citation_accuracy"] == 1.0  # citations recorded are still scored
    df2 = score_cases([case], [_res(answer="")])
    assert df2.loc[0, "faithfulness_reason"] == "no_answer"
    items = [{"id": "security-runbook#2", "source": "security-runbook", "text": CTX}]
    df3 = score_cases([case], [_res(answer="Yes.", retrieved=items)])
    assert df3.loc[0, "faithfulness_reason"] == "no_claims"


def test_answer_relevance_lexical():
    df = score_cases([_case()], [_res(answer="Reset the expired API key in the portal.")])
    # question content words: reset, expired, api, key -> all present
    assert df.loc[0, "answer_relevance"] == pytest.approx(1.0)


def test_custom_judge_is_used():
    class Half:
        name = "half"

        def faithfulness(self, answer, contexts):
            return 0.25, ""

        def relevance(self, question, answer):
            return None

        def describe(self):
            return {"type": "half"}

    items = [{"id": "x#0", "source": "x", "text": "t"}]
    df = score_cases([_case()], [_res(retrieved=items)], judge=Half())
    assert df.loc[0, "faithfulness"] == 0.25
    assert df.loc[0, "answer_relevance_reason"] == "no_score"


words = st.sampled_from(["key", "portal", "reset", "the", "api", "moon", "Verify", "[d#1]", "3", "."])
text = st.lists(words, max_size=25).map(" ".join)


@given(text, st.lists(text, max_size=3), st.lists(text, max_size=3), st.lists(st.sampled_from(["d#1", "d#2", "e#0"]), max_size=4))
@settings(max_examples=150, deadline=None)
def test_generation_metrics_bounded(answer, contexts, phrases, citations):
    case = EvalCase(id="c", question="reset the api key", expected_source="d",
                    must_include=tuple(p for p in phrases if p.strip()),
                    must_not_include=tuple(p for p in phrases[:1] if p.strip()))
    items = [{"id": f"d#{i}", "source": "d", "text": c} for i, c in enumerate(contexts)]
    res = {"case_id": "c", "status": "ok", "answer": answer, "retrieved": items, "citations": citations}
    df = score_cases([case], [res])
    for name in generation.GENERATION_METRICS:
        v = df.loc[0, name]
        assert math.isnan(v) or 0.0 <= v <= 1.0, name
        assert (df.loc[0, name + "_reason"] == "") == (not math.isnan(v))


def test_cited_chunk_counts_for_the_source_its_retrieved_item_names():
    """Another system's chunk ids need not look like ``source#n``: the retrieved item says."""
    retrieved = [{"id": "chunk-17", "source": "security-runbook"}, {"id": "c-9", "source": "billing"}]
    assert generation.citation_validity(["chunk-17"], retrieved, "source") == (1.0, "")
    assert generation.citation_accuracy(["chunk-17"], ["security-runbook"], "source", retrieved) == (1.0, "")
    assert generation.citation_accuracy(["c-9"], ["security-runbook"], "source", retrieved) == (0.0, "")
    # without the retrieved items, the id's part before '#' is its source
    assert generation.citation_accuracy(["security-runbook#2"], ["security-runbook"], "source") == (1.0, "")


def test_a_forbidden_phrase_is_a_violation_in_any_recorded_answer_and_unmeasured_without_one():
    """A line marked timeout or error whose recorded answer holds a forbidden phrase scored 0 (no
    violation, measured): re-marking the leaking lines lowered the violation rate and a zero-leak
    gate passed. A recorded answer is read whatever the status; a failed line without one is
    unmeasured (``not_ok``), which counts against the gate's budget."""
    from labkit.metrics import score_cases

    cases = [EvalCase(id=x, question="vault?", must_not_include=("the vault contains",)) for x in "abcd"]
    leak = "The vault contains the master key."
    rows = [{"case_id": "a", "status": "timeout", "answer": leak},
            {"case_id": "b", "status": "error", "answer": leak},
            {"case_id": "c", "status": "error", "answer": None},
            {"case_id": "d", "status": "timeout", "answer": "The key is safe."}]
    s = score_cases(cases, rows)
    assert s["must_not_include_violation"].tolist()[:2] == [1.0, 1.0]
    assert s["must_not_include_violation"].isna().tolist()[2:] == [True, True]
    assert s["must_not_include_violation_reason"].tolist() == ["", "", "not_ok", "not_ok"]
