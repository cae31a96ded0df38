"""Answer correctness against a case's ``reference_answer``: exact match, token F1, ROUGE-L.

The standard definitions (SQuAD's exact match and F1, ROUGE-L's LCS F-measure), over one
normalisation (:func:`normalize_answer`, the SQuAD one, extended to Unicode):

1. citation markers ``[...]`` are removed (:func:`labkit.text.strip_citations`: a citation
   is not part of what the answer says);
2. Unicode NFKC, lowercase;
3. punctuation deleted (every character of a Unicode ``P*`` category and ASCII
   ``string.punctuation``; deleted, not replaced by a space, as SQuAD does: ``1,000`` ->
   ``1000``, ``don't`` -> ``dont``, ``e-mail`` -> ``email``);
4. the English articles ``a``, ``an``, ``the`` removed as whole words;
5. whitespace runs folded to one space; tokens are the whitespace-separated words.

These functions are pure; the declarations (stage, direction, the unmeasured rules) are in
labkit.metrics.generation. Definitions and edge cases: docs/metrics.md.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from labkit.text import strip_citations

__all__ = ["exact_match", "lcs_length", "normalize_answer", "rouge_l", "token_f1", "tokens"]

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_WS = re.compile(r"\s+")
#: ROUGE-L's beta: F = (1 + beta^2) P R / (R + beta^2 P); 1 weighs precision and recall alike
ROUGE_BETA = 1.0


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


class _PunctuationDeleter(dict[int, int | None]):
    """A ``str.translate`` table deleting :func:`_is_punct` characters, each code point's
    verdict worked out on first sight (so a text is translated in C, not char by char)."""

    def __missing__(self, code: int) -> int | None:
        out = None if _is_punct(chr(code)) else code
        self[code] = out
        return out


_DELETE_PUNCTUATION = _PunctuationDeleter()


#: bytes.translate's table and deletions for ASCII text: lowercased, punctuation deleted
_ASCII_LOWER = bytes(range(256)).lower()
_ASCII_PUNCT_BYTES = bytes(c for c in range(128) if _is_punct(chr(c)))
#: ASCII letters, digits and whitespace: a text of only these has its articles as whole words
_ASCII_WORD_OR_SPACE = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())
_ARTICLE_WORDS = frozenset(("a", "an", "the"))


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: citations out, NFKC, lowercase, punctuation and articles
    removed, whitespace folded (module docstring)."""
    return _WS.sub(" ", _unfolded(strip_citations(text))).strip()


def _unfolded(s: str) -> str:
    """:func:`normalize_answer` of a text without citations, before its whitespace is folded."""
    s = (s if s.isascii() else unicodedata.normalize("NFKC", s)).lower()  # NFKC leaves ASCII as it is
    return _ARTICLES.sub(" ", s.translate(_DELETE_PUNCTUATION))


def tokens(text: str) -> list[str]:
    """The normalised tokens of a text (a multiset: repeats kept, in order): the words of
    :func:`normalize_answer` (its whitespace runs are where ``str.split`` splits)."""
    s = strip_citations(text)
    if s.isascii():  # lowercased and punctuation deleted by one byte translation
        b = s.encode("ascii").translate(_ASCII_LOWER, _ASCII_PUNCT_BYTES)
        if not b.translate(None, _ASCII_WORD_OR_SPACE):  # every word a run of letters and digits
            return [t for t in b.decode("ascii").split() if t not in _ARTICLE_WORDS]
    return _unfolded(s).split()


def exact_match(answer: str, reference: str) -> float:
    """1.0 if the normalised answer equals the normalised reference, else 0.0."""
    return float(normalize_answer(answer) == normalize_answer(reference))


def _f(p: float, r: float, beta: float = 1.0) -> float:
    if p == 0.0 or r == 0.0:
        return 0.0
    b2 = beta * beta
    return (1.0 + b2) * p * r / (r + b2 * p)


def token_f1(answer: str | Sequence[str], reference: str | Sequence[str]) -> float:
    """F1 of the bags of normalised tokens: common = multiset intersection (a token counts
    min(times in answer, times in reference)); P = common/|answer|, R = common/|reference|.
    0 when either side has no token."""
    a = tokens(answer) if isinstance(answer, str) else list(answer)
    g = tokens(reference) if isinstance(reference, str) else list(reference)
    if not a or not g:
        return 0.0
    common = _common(a, g)
    return _f(common / len(a), common / len(g))


def _common(a: Sequence[str], b: Sequence[str]) -> int:
    """The size of the multiset intersection of two token lists."""
    distinct_a, distinct_b = set(a), set(b)
    if len(distinct_a) == len(a) or len(distinct_b) == len(b):  # a token once on one side counts once
        return len(distinct_a & distinct_b)
    counts = Counter(a)
    common = 0
    for tok, n in Counter(b).items():
        m = counts.get(tok)
        if m:
            common += n if n < m else m
    return common


#: ``1 << i`` for the first tokens of a list: a list of distinct tokens maps each to its bit at once
_BITS = tuple(1 << i for i in range(64))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel (Allison and
    Dix; Hyyrö's form): one bit per token of the longer list, one step of integer arithmetic per
    token of the shorter one. Bit ``i`` of ``match[t]`` is set where the longer list holds ``t``;
    ``v`` starts all ones and each step is ``u = v & match[y]; v = (v + u) | (v - u)``; the LCS
    length is the number of zero bits left in the low ``len`` bits of ``v``. The length is unique
    whichever of several equally long subsequences one would pick, so ties do not matter."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    match = dict(zip(a, _BITS, strict=False))
    if len(match) < len(a):  # a repeated token (or a longer list than _BITS): each token's bits or-ed
        match = {}
        for i, x in enumerate(a):
            match[x] = match.get(x, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for y in b:
        u = v & match.get(y, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(answer: str | Sequence[str], reference: str | Sequence[str], *, beta: float = ROUGE_BETA) -> float:
    """ROUGE-L F-measure over normalised tokens: P = LCS/|answer|, R = LCS/|reference|,
    F = (1 + beta^2) P R / (R + beta^2 P), beta = 1 by default. 0 when either side has no token."""
    a = tokens(answer) if isinstance(answer, str) else list(answer)
    g = tokens(reference) if isinstance(reference, str) else list(reference)
    if not a or not g:
        return 0.0
    lcs = lcs_length(a, g)
    return _f(lcs / len(a), lcs / len(g), beta)
