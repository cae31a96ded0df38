"""The one tokeniser: the lexical judge and the reference RAG pipeline read text the same way."""

from __future__ import annotations

from labkit import judges, text
from labkit.pipelines import rag


def test_judge_and_rag_pipeline_share_one_tokeniser():
    assert rag.content_words is text.content_words
    assert judges.content_words is text.content_words
    assert judges.sentences is text.sentences


def test_plural_folding_keeps_words_apart():
    # a suffix stripper that also cut -es/-ed/-ing merged these with other words (rat, not, cod)
    assert text.content_words("rates notes codes keys policies") == ["rate", "note", "code", "key", "policy"]
    assert text.stem("class") == "class" and text.stem("status") == "status" and text.stem("analysis") == "analysis"


def test_tokens_are_unicode_letter_and_digit_runs():
    assert text.content_words("Café résumé naïve") == ["café", "résumé", "naïve"]
    assert text.content_words("user u-17 self-serve don't") == ["user", "17", "self", "serve"]
    assert text.content_words("ﬁle Ｆｕｌｌ") == ["file", "full"]  # NFKC: ligature and full-width letters
