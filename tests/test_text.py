"""The one tokeniser: the lexical judge and the reference RAG pipeline read text the same way."""

from __future__ import annotations

import itertools
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the ASCII readings against the exact patterns --------------------------------------------

_WORDS = ["हिंदी", "மொழி", "n\u0303", "\u0301", "key", "Keys", "policies", "portal", "9", "42", "x_y", "don't", "e-mail", "the", "a", "not", "[d1#0]",
          "ﬁle", "café", "Ｋｅｙ", "İd"]
_MARKS = ["", " ", "  ", ".", "!", "?", "...", "?!", ". .", ". ", "! ", "? ", "\n", "\n\n", ".\n", "\r\n", "\t", ".\t",
          "!\r", "?\x0b", ".\x0c", ".\x1c", "!\x1f", "\x1c", ",", ";", "(", ")", "_", "\x00", "\x7f",
          ".\x85", "?\u2028", ".\u00a0", ".\u3000", "\uff0e ", "\uff01 ", "\u3002", "\u2014",
          "\r", "\x0b", "\x0c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
#: words and the marks after them (ASCII and not), any ASCII text, any text
texts = (st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_MARKS)), max_size=10)
         .map(lambda parts: "".join(w + m for w, m in parts))
         | st.text(st.characters(max_codepoint=127), max_size=40) | st.text(max_size=40))


def exact_tokens(s: str) -> list[str]:
    """Runs of letters, digits and combining marks (every character str.isalnum or of category M)."""
    s = unicodedata.normalize("NFKC", s).lower()
    keep = [ch.isalnum() or unicodedata.category(ch).startswith("M") for ch in s]
    return ["".join(ch for ch, _ in run) for k, run in itertools.groupby(zip(s, keep, strict=True), key=lambda p: p[1]) if k]


def test_a_vowel_sign_or_other_mark_is_part_of_its_word():
    """Indic scripts write vowels as combining signs: a word is its letters and their marks."""
    assert text.content_words("हिंदी भाषा में सहायता") == ["हिंदी", "भाषा", "में", "सहायता"]
    assert text.content_words("தமிழ் மொழி") == ["தமிழ்", "மொழி"]
    assert text.content_words("q\u0303a\u20dd_x") == ["q\u0303a\u20dd"]  # marks no NFKC composes; _ splits
    judge = judges.LexicalJudge()
    assert judge.faithfulness("रिफंड पांच दिनों में मिलता है", ["रिफंड पांच दिनों में मिलता है।"])[0] == 1.0
    assert judge.faithfulness("रिफंड पांच दिनों में मिलता है", ["शिपिंग मुफ्त है"])[0] == 0.0


#: the line breaks (those str.splitlines cuts at)
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def exact_sentences(s: str) -> list[str]:
    return [x for x in map(str.strip, re.split(rf"(?<=[.!?])\s+|[{LINE_BREAKS}]+", s)) if x]


def test_every_line_break_ends_a_sentence():
    """A text whose lines are cut by a carriage return, a form feed or a line separator has as
    many sentences as lines, as with a newline (the claims of a two-line answer are two)."""
    assert {ch for ch in map(chr, range(0x3000)) if len(f"a{ch}b".splitlines()) == 2} == set(LINE_BREAKS)
    for brk in LINE_BREAKS:
        for t in (f"Refunds take five days{brk}Shipping costs nothing", f"Refunds take five days{brk}Livraison gratuite é"):
            assert text.sentences(t) == t.splitlines(), repr(brk)
            assert text.sentence_word_sets(t) == [set(text.content_words(x)) for x in t.splitlines()], repr(brk)


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_the_tokens_are_the_letter_and_digit_runs(s: str) -> None:
    assert text._tokens(s) == exact_tokens(s)
    if s.isascii():  # what the ASCII reading rests on: lowercased, a token character is a-z or 0-9
        assert exact_tokens(s) == re.findall(r"[a-z0-9]+", s.lower())


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_sentences_are_the_split_at_the_breaks(s: str) -> None:
    assert text.sentences(s) == exact_sentences(s)


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_sentence_word_sets_are_the_word_sets_of_the_sentences(s: str) -> None:
    want = [w for x in exact_sentences(s) if (w := set(text.content_words(x)))]
    assert text.sentence_word_sets(s) == want


def test_no_combining_mark_lies_beyond_the_code_points_the_tokeniser_reads():
    import sys

    scanned = set(itertools.chain(range(0x20000), range(0xE0000, 0xE1000)))
    beyond = [c for c in range(sys.maxunicode + 1) if c not in scanned and unicodedata.category(chr(c))[0] == "M"]
    assert beyond == []


# ---- text inserted into markdown --------------------------------------------------------------

_MARKUP = st.text(alphabet=st.sampled_from(list("ab1 _*`[]()!<>&|#+-=.~$\\\n:/x\"'")), max_size=40)


def _rendered(markdown: str) -> str:
    import mistune

    return str(mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])(markdown))


def _shown(s: str) -> str:
    """What a reader should see of ``s``: line breaks as spaces, controls as their escapes."""
    return text.terminal_safe(re.sub("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+", " ", s))


def test_markdown_text_shows_markup_as_text_and_leaves_no_tag_in_the_markdown():
    import html

    for hostile in ('<script>alert("tag")</script>', 'x"><img src=https://evil.example.com/p.png>',
                    "![t](https://evil.example.com/n.png)", "a | b\n# heading\n---",
                    "`code` **bold** _it_ ~~gone~~ $x$ <https://evil.example.com> &lt;img&gt;"):
        md = text.md_text(hostile)
        assert not any(s in md for s in ("<script", "<img", "![", "](http", "\n")), md
        rendered = _rendered(f"x {md}")
        assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered, rendered
        assert html.unescape(rendered) == f"<p>x {_shown(hostile)}</p>\n", md


def test_markdown_text_keeps_numbers_ids_and_plain_wording_as_they_are():
    for plain in ("faithfulness >= 0.85: observed 0.798 (n=62)", "sec-001, gen_account_01", "1 of 70 cases",
                  "0.7 is not >= 0.85", "latency_p95_ms <= 3500", "-0.05 (min 10)", "R&D a < b", "ids (a, b)"):
        assert text.md_text(plain) == plain
    assert [text.md_text(s) for s in ("# x", "1. x", "2)", "- x", "---", "> x", "<x", "&amp;")] == [
        "\\# x", "1\\. x", "2\\)", "\\- x", "\\---", "\\> x", "&lt;x", "\\&amp;"]
    assert text.md_text("a\x1b[2Kb") == "a\\x1b\\[2Kb"  # (a terminal showing the file raw acts on no control)


@settings(max_examples=300, deadline=None)
@given(_MARKUP)
def test_markdown_text_reads_as_the_text_in_a_paragraph_and_in_a_table_cell(s: str) -> None:
    import html

    md = text.md_text(s)
    assert not re.search(r"<(?!=?\s)", md) and "\n" not in md  # (a "<" before a space opens nothing)
    shown = _shown(s).strip()
    if shown:
        assert html.unescape(_rendered(f"x {md}")) == f"<p>{('x ' + _shown(s)).rstrip()}</p>\n", md
    table = _rendered(f"| a | b |\n|---|---|\n| {md} | z |\n")
    cells = re.findall(r"<td>(.*?)</td>", table, flags=re.S)
    assert len(cells) == 2 and cells[1] == "z" and html.unescape(cells[0]) == shown, (md, table)
