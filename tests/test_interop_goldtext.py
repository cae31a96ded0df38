"""Gold from text: reference passages given as text mapped onto the corpus's chunk ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.corpus import Corpus
from labkit.interop.goldtext import ChunkMatcher, normalise, text_id

CORPUS = Corpus.load(Path(__file__).parents[1] / "data" / "corpus")


def _body(cid: str) -> str:
    chunk = CORPUS.chunk(cid)
    assert chunk is not None
    return "\n".join(line for line in chunk.text.splitlines() if not line.startswith("#")).strip()


def test_normalise_folds_case_punctuation_and_whitespace():
    assert normalise("  ## Account\tLOCKOUT:\n  30 minutes…  ") == "account lockout 30 minutes"
    assert normalise("ﬁle") == "file"  # NFKC


def test_exact_and_contained_texts_match_with_full_confidence():
    m = ChunkMatcher(CORPUS)
    whole = CORPUS.chunk("billing#4")
    assert whole is not None
    assert m.match(whole.text.upper()).chunk_ids == ("billing#4",)
    assert m.match(whole.text).method == "exact"
    got = m.match(_body("account-management#3"))  # the section without its heading
    assert (got.chunk_ids, got.confidence, got.method) == (("account-management#3",), 1.0, "contained")
    sentence = m.match("an account is locked for 30 MINUTES after 5 failed sign-in attempts")
    assert sentence.chunk_ids == ("account-management#3",)


def test_a_passage_spanning_two_sections_maps_to_both():
    m = ChunkMatcher(CORPUS)
    a, b = CORPUS.chunk("billing#4"), CORPUS.chunk("billing#5")
    assert a is not None and b is not None
    got = m.match(a.text + "\n\n" + b.text)
    assert got.chunk_ids == ("billing#4", "billing#5") and got.method == "contained"


def test_a_paraphrase_matches_by_token_overlap_above_the_threshold_only():
    text = _body("data-retention#4").replace("every 24 hours", "each day").replace("encrypted", "ciphered")
    loose = ChunkMatcher(CORPUS, threshold=0.8).match(text)
    assert loose.chunk_ids == ("data-retention#4",) and loose.method == "overlap"
    assert 0.8 <= loose.confidence < 1.0
    strict = ChunkMatcher(CORPUS, threshold=0.999).match(text)
    assert strict.chunk_ids == () and strict.method == "none"


def test_a_case_with_any_unmatched_text_gets_no_gold_and_a_reason():
    m = ChunkMatcher(CORPUS)
    g = m.gold([_body("billing#4"), "Backups are kept on tape in a salt mine for nine hundred years."])
    assert g["chunk_ids"] == [] and g["reason"] == "no_gold_match"
    assert [t["method"] for t in g["texts"]] == ["contained", "none"]
    ok = m.gold([_body("billing#4"), _body("billing#6")])
    assert ok["chunk_ids"] == ["billing#4", "billing#6"] and ok["confidence"] == 1.0


def test_retrieved_texts_become_chunk_ids_or_text_ids():
    m = ChunkMatcher(CORPUS)
    items = m.retrieved([_body("api-limits#1"), "Our office is in Lisbon."])
    assert items[0]["id"] == "api-limits#1" and items[0]["source"] == "api-limits"
    assert items[1]["id"] == text_id("our office is in lisbon") and items[1]["text"] == "Our office is in Lisbon."


def test_threshold_must_be_a_share():
    with pytest.raises(ValueError):
        ChunkMatcher(CORPUS, threshold=0.0)
