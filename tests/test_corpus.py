import pytest

from labkit.corpus import Corpus, chunk_document, split_sentences
from labkit.errors import ConfigError

DOC = """# Title

Intro text here.

## First

One. Two.

## Second

Three.
"""


def test_chunk_ids_follow_sections():
    chunks = chunk_document("doc", DOC)
    assert [c.id for c in chunks] == ["doc#0", "doc#1", "doc#2"]
    assert chunks[0].title == "Title"
    assert chunks[1].heading == "First" and "One. Two." in chunks[1].text
    assert all(c.source == "doc" for c in chunks)


def test_long_section_splits_into_parts_without_moving_other_ids():
    long = " ".join(f"Sentence number {i} is here." for i in range(40))
    text = f"# T\n\nintro\n\n## A\n\n{long}\n\n## B\n\nshort.\n"
    ids = [c.id for c in chunk_document("d", text, chunk_size=50)]
    assert ids[0] == "d#0" and ids[-1] == "d#2"
    parts = [i for i in ids if i.startswith("d#1.")]
    assert len(parts) >= 3
    joined = " ".join(c.text for c in chunk_document("d", text, chunk_size=50) if c.id.startswith("d#1."))
    assert "Sentence number 0 " in joined and "Sentence number 39 " in joined


def test_shipped_corpus_loads_with_stable_ids():
    c = Corpus.load("data/corpus")
    assert len(c.doc_ids) >= 8
    assert c.chunk("security-runbook#0") is not None
    assert all("." not in ch.id.split("#")[1] for ch in c)  # no section over the default size
    assert c.chunk("nope#1") is None


def test_missing_corpus_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Corpus.load(tmp_path / "none")
    with pytest.raises(ConfigError, match=r"no \.md"):
        Corpus.load(tmp_path)


def test_split_sentences_handles_bullets():
    assert split_sentences("- first item\n- second. Third one.") == ["first item", "second.", "Third one."]


def test_gold_that_names_no_chunk_of_the_corpus_is_a_problem_of_its_case_and_field():
    """A typo in expected_chunks (``billing#99``) scored retrieval_hit_rate 0 with no reason, as a
    real miss does: nothing checked a dataset's gold against its corpus. Each rule of the
    dataset's gold (docs/dataset.md) is a problem naming the case's position and the field."""
    from labkit.cases import EvalCase
    from labkit.corpus import gold_problems

    corpus = Corpus.load("data/corpus")
    good = next(c for c in corpus.chunks if c.source == "billing")
    phrase = " ".join(good.text.split()[:3])
    cases = [
        EvalCase(id="ok", question="q?", expected_source="billing", expected_chunks=(good.id,),
                 must_include=(phrase.upper(),)),
        EvalCase(id="typo", question="q?", expected_source="billing", expected_chunks=(good.id, "billing#99")),
        EvalCase(id="doc", question="q?", expected_source="nosuchdoc"),
        EvalCase(id="first", question="q?", expected_source="security-runbook", expected_chunks=(good.id,)),
        EvalCase(id="phrase", question="q?", expected_source="billing", expected_chunks=(good.id,),
                 must_include=("a phrase no chunk holds",), must_not_include=(phrase,)),
        EvalCase(id="no-gold", question="q?"),
    ]
    got = [(i, field, reason) for i, field, reason in gold_problems(cases, corpus)]
    assert got == [
        (1, "expected_chunks[1]", "no chunk 'billing#99' in the corpus"),
        (2, "expected_source", "no document 'nosuchdoc' in the corpus"),
        (3, "expected_chunks[0]", f"chunk {good.id!r} is not of expected_source 'security-runbook'"),
        (4, "must_include[0]", "'a phrase no chunk holds' is not in the gold text"),
        (4, "must_not_include[0]", f"{phrase!r} is in the gold text: a correct answer would violate it"),
    ], got


def test_dataset_validate_with_a_corpus_lists_each_gold_problem_at_its_line(tmp_path, capsys):
    from labkit.cli import main

    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "a", "question": "What about refunds?", "expected_source": "billing"}\n\n'
                 '{"id": "b", "question": "Refunds?", "expected_source": "billing", '
                 '"expected_chunks": ["billing#99", "nosuchdoc#1"]}\n', encoding="utf-8")
    assert main(["dataset", "validate", str(p)]) == 0  # (alone, the file is a valid dataset)
    capsys.readouterr()
    assert main(["dataset", "validate", str(p), "--corpus", "data/corpus"]) == 2
    err = capsys.readouterr().err
    assert f"{p}: 2 invalid lines" in err or f"{p}" in err, err
    assert "line 3 field 'expected_chunks[0]': no chunk 'billing#99' in the corpus" in err, err
    assert "line 3 field 'expected_chunks[1]': no chunk 'nosuchdoc#1' in the corpus" in err and "Traceback" not in err
    assert main(["dataset", "validate", "data/golden.jsonl", "--corpus", "data/corpus"]) == 0
