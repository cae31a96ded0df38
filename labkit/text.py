"""Text analysis shared by the lexical judge and the reference RAG pipeline: one tokeniser.

- :func:`content_words`: Unicode NFKC, lowercase, tokens are runs of letters,
  digits and combining marks (a vowel sign is part of its word; punctuation, hyphens,
  apostrophes and underscores split words);
  English :data:`STOPWORDS` and single letters dropped (digits kept); plural
  folding by :func:`stem` (``-ies`` -> ``-y``, a trailing ``-s`` dropped).
- :func:`sentences`: split after ``.``, ``!`` or ``?`` followed by whitespace, and at line breaks;
  :func:`sentence_word_sets`: the distinct content words of each.
- :func:`strip_citations`: remove citation markers ``[...]``.
- :func:`terminal_safe` and :func:`md_text`: user text as a terminal prints it and as markdown
  inserts it (labkit's gate.md, incident.md and deployment_checklist.md), showing as itself.

Documented rules: docs/metrics.md ("Lexical judge"). Pure Python, no dependency.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable

__all__ = [
    "STOPWORDS", "content_word_set", "content_words", "md_text", "sentence_word_sets", "sentences", "stem",
    "strip_citations",
]

_STOP_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves also may might must shall us via
don doesn didn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn cannot ll ve re
"""
STOPWORDS = frozenset(_STOP_TEXT.split())
"""Function words ignored when comparing texts by their content words (English)."""

_TOKEN = re.compile(r"[^\W_]+")
#: a citation marker: ids without spaces (``[security-runbook#2]``, ``[1]``, ``[a#1, b#2]``); a bracketed
#: note with words (``[Refunds are approved at once]``) is text, not a citation, and stays
_CITATION = re.compile(r"\[\s*[\w.:/-]+(?:#\d+)?(?:\s*[,;]\s*[\w.:/-]+(?:#\d+)?)*\s*\]")
_ENDS = ".!?"
#: the line breaks (where ``str.splitlines`` cuts): each ends a sentence
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SENTENCE = re.compile(rf"(?<=[{_ENDS}])\s+|[{_BREAKS}]+")
#: where a text without line breaks has a sentence break (the lookbehind above is slow to search for)
_END_SPACE = re.compile(rf"[{_ENDS}]\s")
_SPACE = re.compile(r"\s")


def _ascii_table(byte: Callable[[str], str]) -> bytes:
    """A ``bytes.translate`` table for ASCII text: each ASCII character's replacement."""
    return "".join(map(byte, map(chr, range(128)))).encode("ascii") + bytes(range(128, 256))


def _token_byte(c: str) -> str:
    return c.lower() if _TOKEN.match(c) else " "


#: ASCII text lowercased with every character outside a token a space: its words are its tokens
_ASCII_TOKENS = _ascii_table(_token_byte)
#: ASCII text with each sentence end a ``.``, each line break a newline and each other whitespace a space: a
#: sentence break is then a line break or ``". "``
_ASCII_ENDS = _ascii_table(lambda c: "." if c in _ENDS else "\n" if c in _BREAKS else " " if _SPACE.match(c) else c)
#: :data:`_ASCII_TOKENS` keeping line breaks
_ASCII_TOKEN_LINES = _ascii_table(lambda c: c if c == "\n" else _token_byte(c))


def stem(tok: str) -> str:
    """Plural folding: ``-ies`` -> ``-y`` (words over 4 letters); a trailing ``-s`` dropped
    (words over 3 letters, not ``-ss``, ``-us``, ``-is``). Nothing else: no word loses a
    syllable, so ``rates`` stays apart from ``rat`` and ``notes`` from ``not``."""
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 3 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")):
        return tok[:-1]
    return tok


def _content_word(tok: str) -> str:
    """A token's content word (:func:`stem`), or ``""`` for a stopword or a single letter."""
    return stem(tok) if tok not in STOPWORDS and (len(tok) > 1 or tok.isdigit()) else ""


class _ContentWords(dict[str, str]):
    """Each token's :func:`_content_word`, worked out on first sight (texts repeat words)."""

    def __missing__(self, tok: str) -> str:
        out = _content_word(tok)
        if len(self) < _MEMO_MAX:
            self[tok] = out
        return out


_MEMO_MAX = 1 << 18
_WORD = _ContentWords()
_word = _WORD.__getitem__  # bound once, not at every call


def _tokens(text: str) -> list[str]:
    """The lowercase runs of letters, digits and combining marks of a text after NFKC (NFKC leaves
    ASCII text as it is, which holds no mark)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_TOKENS).decode("ascii").split()
    folded = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    return _marked_token(_ASTRAL.search(folded) is not None).findall(folded)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _marked_token(astral: bool) -> re.Pattern[str]:
    """A run of word characters and combining marks (Unicode category M: an Indic vowel sign, an
    accent NFKC does not compose), the underscore apart (the text has none left); ``astral``: with
    the marks beyond U+FFFF, for a text holding such characters (a class of the 16-bit ones only is
    searched about twice as fast). Built on first use from the Unicode database (about 10 ms, which
    no ASCII text pays); no mark lies beyond the code points read (tests/test_text.py)."""
    points = itertools.chain(range(0x20000), range(0xE0000, 0xE1000)) if astral else range(0x10000)
    runs: list[list[int]] = []
    for c in points:
        if unicodedata.category(chr(c))[0] != "M":
            continue
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return re.compile("[\\w" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in runs) + "]+")


def content_words(text: str) -> list[str]:
    """Content words of a text: NFKC, lowercase, runs of letters/digits, stopwords and
    single letters dropped, plurals folded (``keys`` -> ``key``)."""
    return list(filter(None, map(_word, _tokens(text))))


def content_word_set(text: str) -> frozenset[str]:
    """The distinct :func:`content_words` of a text."""
    return frozenset(_word_set(_tokens(text)))


def _word_set(tokens: list[str]) -> set[str]:
    """The distinct content words of some tokens."""
    out = set(map(_word, tokens))
    out.discard("")
    return out


def normalize_phrase(text: str) -> str:
    """Lowercase and collapse whitespace runs to one space: how a must_include phrase is found in
    an answer, and in a case's gold text (what str.split splits at is what \\s matches in a str)."""
    return " ".join(text.lower().split())


def strip_citations(text: str) -> str:
    """Remove citation markers like ``[security-runbook#2]``, ``[1]`` or ``[a#1, b#2]``; brackets
    around words are kept (a claim does not stop being one inside brackets)."""
    return _CITATION.sub("", text) if "[" in text else text


def sentences(text: str) -> list[str]:
    """Split on ., ! or ? followed by whitespace, and on line breaks; empty parts dropped."""
    if "\n" in text or _END_SPACE.search(text) or not text.isprintable():  # (every other break is unprintable)
        return [s for s in map(str.strip, _SENTENCE.split(text)) if s]
    one = text.strip()  # no break: one sentence
    return [one] if one else []


def sentence_word_sets(text: str) -> list[set[str]]:
    """The distinct content words of each of the :func:`sentences` of a text (as
    :func:`content_word_set`, in a set), those with none left out.

    ASCII text is cut at its sentence breaks without the sentences themselves: the marks and spaces
    of a break hold no token character, so the tokens between two breaks are a sentence's tokens."""
    if text.isascii():
        # every break now holds a line break, and nothing else does
        marked = text.encode("ascii").translate(_ASCII_ENDS).replace(b". ", b"\n").translate(_ASCII_TOKEN_LINES)
        parts = map(str.split, marked.decode("ascii").split("\n"))
    else:
        parts = map(_tokens, sentences(text))
    return list(filter(None, map(_word_set, parts)))


#: characters no id may hold: C0 and C1 controls, DEL, and the marks and overrides that reorder text
#: (an id is printed in terminals, where ESC or CR rewrite what was printed, and written in XML)
_DIRECTION = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_DIRECTION}]")


def unprintable_at(text: str) -> int | None:
    """The position of the first control or direction character of ``text`` (None: there is none)."""
    m = _UNPRINTABLE.search(text)
    return None if m is None else m.start()


#: what a terminal would act on rather than show: the controls but tab and line feed, and direction marks
_TERMINAL_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_DIRECTION}]")


def terminal_safe(text: str) -> str:
    """``text`` with every control and direction character but tab and line feed written as its
    escape (``\\x1b``): a question or answer printed raw could erase lines, retitle the terminal or
    reorder what is shown."""
    return escaped(text, _TERMINAL_UNSAFE)


def escaped(text: str, chars: re.Pattern[str]) -> str:
    """``text`` with each character ``chars`` matches written as its escape (``\\x1b``, ``\\u202e``)."""
    return chars.sub(lambda m: ascii(m.group())[1:-1], text)



#: what CommonMark (and the tables, strikethrough and math of a summary's renderer) reads as markup
#: anywhere in a line, backslash-escaped: the backslash, code, emphasis (an ``_`` inside a word is
#: none), links and images (brackets, and a ``(`` after a ``]``, so no ``](`` is left), strikethrough,
#: math, table cells, and an ``&`` that would start an entity
_MD_INLINE = re.compile(r"[\\`*~\[\]|$]|(?<![^\W_])_|_(?![^\W_])|(?<=\])\(|&(?=#?\w+;)")
#: a ``<`` that could open a tag, a comment or an autolink (one before a space, as in ``<= 3500``, cannot)
_MD_TAG_OPEN = re.compile(r"<(?!=?\s)")
#: what starts a block at the start of a line: a heading, a quote, a list item (``-``, ``+``,
#: ``1.``, ``1)``), a thematic break or a setext underline
_MD_BLOCK_START = re.compile(r"^(\s*)(?:([#>]|[-+=](?=\s|[-=\s]*$))|(\d{1,9})(?=[.)](?:\s|$)))")
_MD_BREAKS = re.compile(f"[{_BREAKS}]+")


def md_text(text: str) -> str:
    """``text`` to insert into markdown (a paragraph, a heading, a list item or a table cell),
    showing as itself: line breaks folded to spaces; a ``<`` that could open a tag or an autolink
    written ``&lt;`` (no tag is left in the markdown, even for a reader that ignores backslashes);
    the characters of inline markup, ``|`` and a block marker at the start backslash-escaped, as
    CommonMark allows; controls written as their escapes (:func:`terminal_safe`: a CI log shows the
    file raw). Words, numbers, ``.``, ``-``, ``>=``, ``<=`` and brackets ``()`` read as they are."""
    out = _MD_INLINE.sub(r"\\\g<0>", _MD_BREAKS.sub(" ", text))
    out = _MD_BLOCK_START.sub(_escaped_block_start, _MD_TAG_OPEN.sub("&lt;", out), count=1)
    return terminal_safe(out)


def _escaped_block_start(m: re.Match[str]) -> str:
    """A block marker with a backslash before it (``\\#``), a list number with one after it (``1\\.``)."""
    return f"{m.group(1)}\\{m.group(2)}" if m.group(2) else f"{m.group(1)}{m.group(3)}\\"
