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
