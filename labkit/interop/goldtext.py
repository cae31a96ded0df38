"""Gold from text: reference contexts given as text mapped onto the corpus's chunk ids.

Peer datasets (Ragas ``reference_contexts``, DeepEval ``context``) name the passages an
answer needs by their text, not by an id. Each text is normalised (Unicode NFKC, case,
punctuation and whitespace folded) and matched to the chunks of the corpus:

1. ``exact``: the normalised text equals a chunk's (confidence 1.0);
2. ``contained``: the text lies inside one chunk, or whole chunks lie inside the text
   (a passage spanning several sections maps to each of them) (confidence 1.0);
3. ``overlap``: else the chunk sharing the largest share of the text's distinct tokens,
   when that share reaches the threshold (confidence = that share).

A case's gold is the union of its texts' chunks and its confidence the lowest of theirs.
When any of its texts matches no chunk, the gold stays empty (a partial gold would make
recall look better than it is): the retrieval metrics are then unmeasured (``no_gold``)
and the case's metadata says why (``gold_from_text.reason: no_gold_match``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_THRESHOLD", "ChunkMatcher", "TextMatch", "normalise", "text_id"]

#: the least share of a reference text's distinct tokens a chunk must hold to match it
DEFAULT_THRESHOLD = 0.8

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalise(text: str) -> str:
    """NFKC, lower case, punctuation replaced by spaces, whitespace runs folded; markdown
    heading marks go with the punctuation, so a chunk's ``## Heading`` matches ``Heading``."""
    t = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", t).split())


def text_id(text: str) -> str:
    """The id of a retrieved text that matches no chunk: ``text:`` + 12 hex of its normalised sha256."""
    return "text:" + hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class TextMatch:
    """What one text matched: chunk ids (empty when none), confidence in [0, 1], method."""

    chunk_ids: tuple[str, ...]
    confidence: float
    method: str  # exact | contained | overlap | none


class ChunkMatcher:
    """Matches texts to the chunks of a :class:`~labkit.corpus.Corpus` (see module docstring)."""

    def __init__(self, corpus: Any, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._chunks = [(c.id, normalise(c.text)) for c in corpus]
        self._tokens = [set(t.split()) for _, t in self._chunks]
        self._memo: dict[str, TextMatch] = {}
        self.chunk_ids = tuple(cid for cid, _ in self._chunks)

    def match(self, text: str) -> TextMatch:
        """The chunks ``text`` stands for."""
        norm = normalise(text)
        if norm not in self._memo:
            self._memo[norm] = self._match(norm)
        return self._memo[norm]

    def _match(self, norm: str) -> TextMatch:
        if not norm:
            return TextMatch((), 0.0, "none")
        exact = [cid for cid, t in self._chunks if t == norm]
        if exact:
            return TextMatch((exact[0],), 1.0, "exact")
        inside = [cid for cid, t in self._chunks if norm in t]
        if len(inside) == 1:
            return TextMatch((inside[0],), 1.0, "contained")
        spans = [cid for cid, t in self._chunks if t and t in norm]
        if spans and not inside:
            return TextMatch(tuple(spans), 1.0, "contained")
        toks = set(norm.split())
        best, share = None, 0.0
        for (cid, _), ctoks in zip(self._chunks, self._tokens, strict=True):
            s = len(toks & ctoks) / len(toks)
            if s > share:
                best, share = cid, s
        if best is not None and share >= self.threshold:
            return TextMatch((best,), round(share, 4), "overlap")
        return TextMatch((), round(share, 4), "none")

    def gold(self, texts: Sequence[str]) -> dict[str, Any]:
        """A case's ``gold_from_text`` record: chunk_ids, confidence, and per text what matched.

        ``chunk_ids`` is empty, with ``reason: no_gold_match``, when any text matches no chunk."""
        matches = [self.match(t) for t in texts]
        per_text = [{"chunk_ids": list(m.chunk_ids), "confidence": m.confidence, "method": m.method}
                    for m in matches]
        if not matches:
            return {"chunk_ids": [], "confidence": None, "reason": "no_reference_contexts", "texts": []}
        if any(not m.chunk_ids for m in matches):
            return {"chunk_ids": [], "confidence": 0.0, "reason": "no_gold_match", "texts": per_text}
        ids = list(dict.fromkeys(cid for m in matches for cid in m.chunk_ids))
        return {"chunk_ids": ids, "confidence": min(m.confidence for m in matches), "texts": per_text}

    def retrieved(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Retrieved texts as results-line items in rank order: the chunk a text is (its id and
        source), or ``text:<sha>`` when it is none; the text is kept for faithfulness."""
        out: list[dict[str, Any]] = []
        for t in texts:
            m = self.match(t)
            if m.chunk_ids and (m.method == "exact" or len(m.chunk_ids) == 1):
                cid = m.chunk_ids[0]
                out.append({"id": cid, "source": cid.split("#", 1)[0], "score": None, "text": t,
                            "match": {"method": m.method, "confidence": m.confidence}})
            else:
                out.append({"id": text_id(t), "source": "text", "score": None, "text": t,
                            "match": {"method": "none", "confidence": m.confidence}})
        return out
