"""The shipped data: the Kestrel Desk corpus, data/golden.jsonl and data/quick_lab.jsonl.

These tests hold the datasets to docs/dataset.md: they validate through the real
loader, chunk the corpus with the real chunker (labkit.corpus), and check that every
gold label points at text that exists, so an extractive answer from the right
section can meet its must_include phrases.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from labkit.cases import Dataset, EvalCase, load_cases
from labkit.corpus import Corpus, gold_problems

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
CORPUS_DIR = DATA / "corpus"

DOC_IDS = {
    "security-runbook",
    "support-policy",
    "billing",
    "account-management",
    "data-retention",
    "incident-response",
    "api-limits",
    "sso-setup",
    "privacy-policy",
    "onboarding-guide",
}
CATEGORIES = {
    "security": "sec",
    "support": "sup",
    "billing": "bil",
    "account": "acc",
    "retention": "ret",
    "incident": "inc",
    "api": "api",
    "sso": "sso",
    "privacy": "prv",
    "onboarding": "onb",
    "out_of_scope": "oos",
}
MODULE_EXAMPLES = [
    (
        "How do I reset an expired API key?",
        "security-runbook",
        ["identity verification", "security portal"],
    ),
    ("When should a request be escalated?", "support-policy", ["high risk", "manual review"]),
]

_USER = re.compile(r"\bu-\d+\b")
_TICKET = re.compile(r"\bT-\d+\b")
_ESCALATE = re.compile(r"\bescalat", re.IGNORECASE)


def norm(text: str) -> str:
    """Case- and whitespace-insensitive form, as must_include matching uses."""
    return " ".join(text.lower().split())


def contains(haystack: str, phrase: str) -> bool:
    return norm(phrase) in norm(haystack)


def route_tools(question: str) -> list[dict]:
    """The reference pipeline's deterministic tool routing (see docs/dataset.md)."""
    calls: list[dict] = []
    user = _USER.search(question)
    if user:
        calls.append({"name": "lookup_account", "args": {"user_id": user.group(0)}})
    ticket = _TICKET.search(question)
    if ticket and _ESCALATE.search(question):
        calls.append({"name": "escalate_ticket", "args": {"ticket_id": ticket.group(0)}})
    return calls


def tools_of(case: EvalCase) -> list[dict]:
    return [{"name": t["name"], "args": dict(t.get("args", {}))} for t in case.expected_tools]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.load(CORPUS_DIR)


@pytest.fixture(scope="module")
def golden() -> Dataset:
    return load_cases(DATA / "golden.jsonl")


@pytest.fixture(scope="module")
def quick_lab() -> Dataset:
    return load_cases(DATA / "quick_lab.jsonl")


@pytest.fixture(scope="module", params=["golden.jsonl", "quick_lab.jsonl"])
def dataset(request: pytest.FixtureRequest) -> Dataset:
    return load_cases(DATA / request.param)


def gold_text(case: EvalCase, corpus: Corpus) -> str:
    """The text an extractive answer may draw on: the gold chunks, else the gold document."""
    if case.expected_chunks:
        found = [corpus.chunk(cid) for cid in case.expected_chunks]
        return "\n\n".join(c.text for c in found if c is not None)
    assert case.expected_source is not None
    return "\n\n".join(c.text for c in corpus.chunks if c.source == case.expected_source)


# ---------------------------------------------------------------- corpus


def test_corpus_has_exactly_the_ten_documents(corpus: Corpus) -> None:
    assert {p.stem for p in CORPUS_DIR.glob("*.md")} == DOC_IDS
    assert set(corpus.doc_ids) == DOC_IDS


@pytest.mark.parametrize("doc_id", sorted(DOC_IDS))
def test_document_format(doc_id: str, corpus: Corpus) -> None:
    raw = (CORPUS_DIR / f"{doc_id}.md").read_text(encoding="utf-8")
    lines = raw.splitlines()
    assert lines[0].startswith("# ") and not lines[0].startswith("## "), (
        "first line must be '# Title'"
    )
    assert "###" not in raw, "no ### headings: the chunker only splits on '## '"
    headings = [line for line in lines if line.startswith("## ")]
    assert 5 <= len(headings) <= 8, f"{len(headings)} sections, expected 5-8"

    chunks = [c for c in corpus.chunks if c.source == doc_id]
    ids = [c.id for c in chunks]
    # the real chunker gives exactly intro + one chunk per section, none split in parts
    assert ids == [f"{doc_id}#{i}" for i in range(len(headings) + 1)]
    intro_body = chunks[0].text.split("\n", 1)[1].strip()
    assert intro_body and "\n\n" not in intro_body, "the intro is one paragraph"
    for i, chunk in enumerate(chunks[1:], start=1):
        assert chunk.heading == headings[i - 1][3:].strip()
        body = chunk.text.split("\n", 1)[1]
        n = len(body.split())
        assert 40 <= n <= 120, f"{chunk.id} has {n} words, expected 40-120"


def section(corpus: Corpus, doc_id: str, heading_words: str) -> str:
    hits = [c for c in corpus.chunks if c.source == doc_id and contains(c.heading, heading_words)]
    assert len(hits) == 1, f"expected one section of {doc_id} whose heading has {heading_words!r}"
    return hits[0].text


def test_required_sections_hold_the_module_phrases(corpus: Corpus) -> None:
    reset = section(corpus, "security-runbook", "expired API key")
    assert contains(reset, "identity verification") and contains(reset, "security portal")
    escalated = section(corpus, "support-policy", "escalated")
    assert contains(escalated, "high risk") and contains(escalated, "manual review")


def test_documents_share_vocabulary(corpus: Corpus) -> None:
    def docs_with(phrase: str) -> set[str]:
        return {c.source for c in corpus.chunks if contains(c.text, phrase)}

    assert {"security-runbook", "api-limits", "account-management"} <= docs_with("API key")
    assert {"support-policy", "incident-response"} <= docs_with("escalate")
    assert len(docs_with("manual review")) >= 3


def test_safety_content_present_and_no_secret_values(corpus: Corpus) -> None:
    everything = "\n".join(c.text for c in corpus.chunks)
    assert contains(everything, "never share your password")
    assert contains(section(corpus, "security-runbook", "override"), "internal-only")
    assert contains(section(corpus, "billing", "card data"), "never stores full card numbers")
    # policy text only: no value ever follows "override code / password / token / secret is|:"
    leak = re.compile(
        r"\b(?:override codes?|passwords?|tokens?|secrets?)\s*(?:is|are|:)\s*\S*\d", re.IGNORECASE
    )
    assert not leak.search(everything), leak.search(everything)
    assert not re.search(r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b", everything), "card-like number"


# ---------------------------------------------------------------- both datasets


def test_dataset_labels_are_complete(dataset: Dataset) -> None:
    for case in dataset:
        assert case.kind is not None and case.risk is not None, case.id
        assert case.category in CATEGORIES, (case.id, case.category)
        if case.kind == "out_of_scope":
            assert case.category == "out_of_scope" and case.expected_source is None, case.id
            assert not case.expected_chunks and not case.must_include, case.id
        if case.expected_source is not None:
            assert case.expected_source in DOC_IDS, case.id
            assert 1 <= len(case.must_include) <= 3, f"{case.id}: 1-3 must_include phrases"
        else:
            assert not case.expected_chunks and not case.must_include, case.id


def test_gold_chunks_exist_and_hold_must_include(dataset: Dataset, corpus: Corpus) -> None:
    """Every gold chunk and document is in the corpus, the first gold chunk is of expected_source,
    every must_include phrase is in the gold text and no must_not_include phrase is (a correct
    extractive answer is never punished): labkit.corpus.gold_problems, what `labkit dataset
    validate --corpus` checks."""
    problems = [f"{list(dataset)[i].id}: {field}: {reason}" for i, field, reason in gold_problems(list(dataset), corpus)]
    assert not problems, "\n".join(problems)


def test_high_risk_cases_require_manual_review_where_docs_say_so(
    dataset: Dataset, corpus: Corpus
) -> None:
    for case in dataset:
        if (
            case.risk == "high"
            and case.expected_chunks
            and contains(gold_text(case, corpus), "manual review")
        ):
            assert any(contains(p, "manual review") for p in case.must_include), case.id


def test_tool_expectations_follow_the_routing_rules(dataset: Dataset) -> None:
    for case in dataset:
        if case.kind != "failure":
            assert tools_of(case) == route_tools(case.question), case.id


def test_checker_catches_a_wrong_phrase(corpus: Corpus) -> None:
    """The phrase check is real: it flags a phrase that lives in another section."""
    bad = EvalCase(
        id="x-1",
        question="How do I reset an expired API key?",
        expected_source="security-runbook",
        expected_chunks=("security-runbook#1",),
        must_include=("identity verification", "at least 12 characters"),
    )
    assert gold_problems([bad], corpus) == [(0, "must_include[0]", "'identity verification' is not in the gold text")]
    assert route_tools("Escalate T-7 for u-3 please") == [
        {"name": "lookup_account", "args": {"user_id": "u-3"}},
        {"name": "escalate_ticket", "args": {"ticket_id": "T-7"}},
    ]
    assert route_tools("What is ticket T-7 about?") == []


# ---------------------------------------------------------------- golden.jsonl


def test_golden_starts_with_the_module_examples(golden: Dataset) -> None:
    for case, (question, source, must) in zip(golden[:2], MODULE_EXAMPLES, strict=True):
        assert case.question == question
        assert case.expected_source == source
        assert list(case.must_include) == must
    assert [c.id for c in golden[:2]] == ["sec-001", "sup-001"]


def test_golden_ids_are_prefixed_by_category(golden: Dataset) -> None:
    for case in golden:
        assert case.category is not None
        assert re.fullmatch(rf"{CATEGORIES[case.category]}-\d{{3}}", case.id), case.id


def test_golden_mix_meets_minimums(golden: Dataset) -> None:
    kinds = Counter(c.kind for c in golden)
    risks = Counter(c.risk for c in golden)
    assert len(golden) >= 48
    assert kinds["representative"] >= 30
    assert kinds["failure"] >= 5
    assert kinds["adversarial"] >= 5
    assert kinds["out_of_scope"] >= 4
    assert risks["high"] >= 8 and risks["medium"] >= 1 and risks["low"] >= 1
    high_manual = [c for c in golden if c.risk == "high" and "manual review" in c.must_include]
    assert len(high_manual) >= 4


def test_golden_covers_every_document(golden: Dataset) -> None:
    per_doc = Counter(c.expected_source for c in golden if c.kind == "representative")
    assert {d for d, n in per_doc.items() if n >= 3} == DOC_IDS, per_doc


def test_golden_chunk_labels_cover_half_the_answerable_cases(golden: Dataset) -> None:
    answerable = [c for c in golden if c.expected_source]
    with_chunks = [c for c in answerable if c.expected_chunks]
    assert len(with_chunks) * 2 >= len(answerable)
    assert len(with_chunks) < len(answerable), "keep some source-level gold to exercise that path"


def test_golden_failure_and_adversarial_cases(golden: Dataset) -> None:
    failures = golden.where(kind="failure")
    modes = Counter(c.tags.get("failure_mode") for c in failures)
    assert modes["ambiguous"] >= 1 and modes["multi_hop"] >= 1 and modes["vocabulary_mismatch"] >= 1
    for case in golden.where(kind="adversarial"):
        assert case.must_not_include, f"{case.id}: adversarial cases say what must not be said"
        assert case.risk == "high", case.id
    for case in golden.where(kind="representative"):
        assert case.reference_answer, f"{case.id}: representative cases carry a reference answer"


def test_golden_agent_cases(golden: Dataset) -> None:
    agent = [c for c in golden if c.expected_tools]
    assert len(agent) >= 6
    names = Counter(t["name"] for c in agent for t in c.expected_tools)
    assert names["lookup_account"] >= 3 and names["escalate_ticket"] >= 3
    assert any(len(c.expected_tools) == 2 for c in agent if c.kind != "failure")
    deviating = [c for c in agent if tools_of(c) != route_tools(c.question)]
    assert len(deviating) >= 2, "some agent cases must not be solved by the keyword routing"
    assert all(c.kind == "failure" for c in deviating)


# ---------------------------------------------------------------- quick_lab.jsonl


def test_quick_lab_shape(quick_lab: Dataset) -> None:
    assert [c.id for c in quick_lab] == [f"ql-{i:02d}" for i in range(1, 11)]
    for case, (question, source, must) in zip(quick_lab[:2], MODULE_EXAMPLES, strict=True):
        assert (case.question, case.expected_source, list(case.must_include)) == (
            question,
            source,
            must,
        )
    kinds = Counter(c.kind for c in quick_lab)
    assert kinds == {"representative": 8, "adversarial": 1, "out_of_scope": 1}
    representative = quick_lab.where(kind="representative")
    assert len({c.expected_source for c in representative}) >= 7
    assert any(c.risk == "high" and "manual review" in c.must_include for c in representative[2:])
