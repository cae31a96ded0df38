"""Hybrid retrieval for the reference pipeline: BM25 and dense (embedding) rankings fused.

``retriever: {type: hybrid, embeddings: {base_url: ..., model: ...}, rrf_k: 60, depth: 20}`` in a
``type: rag`` pipeline config selects :class:`HybridRetriever` instead of BM25 alone
(``retriever: {type: bm25}``, the default). For a question it ranks the corpus chunks twice —
BM25 over content words (:class:`labkit.pipelines.rag.Retriever`) and cosine similarity of
embeddings (the question as a query, each chunk as a passage) — keeps the first ``depth`` of
each list and fuses them by reciprocal rank fusion: a chunk scores
``sum over the lists it is in of 1 / (rrf_k + rank)`` (rank from 1); ties are broken by the
BM25 rank, then corpus order. Each item keeps ``bm25_score`` (0 when BM25 did not rank it) and
``dense_score`` beside the fused ``score``; the pipeline's ``min_score`` applies to
``bm25_score``.

The chunk embeddings are computed once per corpus and model: kept in memory for the process
and, with ``cache_dir`` (default ``.labkit-cache/embeddings``, git-ignored; ``null``: none), in a
JSON file named by the corpus fingerprint and the client's fingerprint (model, URL, prefix
convention), written atomically. A cache file that does not match (other chunks, another
dimension, damaged) is ignored and rewritten. docs/embeddings.md.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.io import atomic_write_text

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from labkit.corpus import Corpus
    from labkit.embeddings import EmbeddingsClient
    from labkit.pipelines.rag import Retriever

CACHE_SCHEMA_VERSION = 1
DEFAULT_CACHE_DIR = ".labkit-cache/embeddings"
RETRIEVER_TYPES = ("bm25", "hybrid")
_KEYS = ("type", "embeddings", "rrf_k", "depth", "cache_dir")

#: chunk matrices of this process, by (client fingerprint, corpus fingerprint)
_MEMORY: dict[tuple[str, str], Any] = {}


def check_retriever(spec: Any, path: str | None) -> dict[str, Any]:
    """The ``retriever`` mapping of a rag config, checked (a ConfigError names the field)."""
    if spec is None:
        return {"type": "bm25"}
    if not isinstance(spec, Mapping):
        raise ConfigError("must be a mapping such as {type: hybrid, embeddings: {...}}", path=path, field="retriever")
    out = dict(spec)
    kind = out.get("type", "bm25")
    if kind not in RETRIEVER_TYPES:
        raise ConfigError(f"unknown retriever type {kind!r}", path=path, field="retriever.type", known=RETRIEVER_TYPES)
    for key in out:
        if key not in _KEYS or (kind == "bm25" and key != "type"):
            raise ConfigError(f"unknown key {key!r}", path=path, field=f"retriever.{key}",
                              known=_KEYS if kind == "hybrid" else ("type",))
    if kind == "hybrid":
        if not isinstance(out.get("embeddings"), Mapping):
            raise ConfigError("must be a mapping with base_url and model", path=path, field="retriever.embeddings")
        for key, default in (("rrf_k", 60), ("depth", 20)):
            val = out.setdefault(key, default)
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ConfigError(f"must be an integer >= 1, got {val!r}", path=path, field=f"retriever.{key}")
        cache = out.setdefault("cache_dir", DEFAULT_CACHE_DIR)
        if cache is not None and not isinstance(cache, str):
            raise ConfigError(f"must be a folder path or null, got {cache!r}", path=path, field="retriever.cache_dir")
    return out


class HybridRetriever:
    """BM25 + dense retrieval fused by reciprocal rank fusion (module docstring)."""

    def __init__(self, bm25: Retriever, client: EmbeddingsClient, *, rrf_k: int = 60, depth: int = 20,
                 cache_dir: str | Path | None = DEFAULT_CACHE_DIR) -> None:
        self.bm25 = bm25
        self.corpus: Corpus = bm25.corpus
        self.top_k = bm25.top_k
        self.client = client
        self.rrf_k = rrf_k
        self.depth = depth
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._chunks = list(self.corpus.chunks)
        self._index = {c.id: i for i, c in enumerate(self._chunks)}
        self._matrix: NDArray[np.float32] | None = None
        self._lock = threading.Lock()  # the runner calls a pipeline from several threads

    @property
    def cache_path(self) -> Path | None:
        """The cache file of this corpus and model (None without a cache folder)."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.corpus.fingerprint[:16]}-{self.client.fingerprint()}.json"

    def matrix(self) -> NDArray[np.float32]:
        """The chunk embeddings (one row per chunk, corpus order), computed once."""
        with self._lock:
            return self._matrix_locked()

    def _matrix_locked(self) -> NDArray[np.float32]:
        if self._matrix is None:
            key = (self.client.fingerprint(), self.corpus.fingerprint)
            mat = _MEMORY.get(key)
            if mat is None:
                mat = self._read_cache()
            if mat is None:
                mat = self.client.embed([c.text for c in self._chunks], kind="passage")
                self._write_cache(mat)
            _MEMORY[key] = mat
            self._matrix = mat
        return self._matrix

    def _read_cache(self) -> NDArray[np.float32] | None:
        import numpy as np

        path = self.cache_path
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            ok = (isinstance(doc, dict) and doc.get("schema_version") == CACHE_SCHEMA_VERSION
                  and doc.get("corpus") == self.corpus.fingerprint and doc.get("client") == self.client.describe()
                  and doc.get("chunk_ids") == [c.id for c in self._chunks])
            if not ok:
                return None
            raw = base64.b64decode(doc["vectors"], validate=True)
            mat = np.frombuffer(raw, dtype="<f4").reshape(len(self._chunks), int(doc["dim"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not np.isfinite(mat).all():
            return None
        return mat.astype(np.float32)

    def _write_cache(self, mat: NDArray[np.float32]) -> None:
        path = self.cache_path
        if path is None:
            return
        doc = {"schema_version": CACHE_SCHEMA_VERSION, "corpus": self.corpus.fingerprint,
               "client": self.client.describe(), "chunk_ids": [c.id for c in self._chunks],
               "dim": int(mat.shape[1]), "vectors": base64.b64encode(mat.astype("<f4").tobytes()).decode("ascii")}
        atomic_write_text(path, json.dumps(doc))

    def similarities(self, question: str) -> NDArray[np.float32]:
        """The cosine of the question (as a query) with every chunk, in corpus order."""
        q = self.client.embed([question], kind="query")[0]
        return self.matrix() @ q

    def retrieve(self, question: str, top_k: int | None = None) -> list[dict[str, Any]]:
        import numpy as np

        k = min(top_k or self.top_k, len(self._chunks))
        if not question.strip():
            return []
        lexical = self.bm25.retrieve(question, top_k=self.depth)
        bm25_rank = {self._index[r["id"]]: (rank, r["score"]) for rank, r in enumerate(lexical, 1)}
        sims = self.similarities(question)
        dense = [int(i) for i in np.argsort(-sims, kind="stable")[:self.depth]]
        fused: dict[int, float] = {}
        for i, (rank, _) in bm25_rank.items():
            fused[i] = fused.get(i, 0.0) + 1.0 / (self.rrf_k + rank)
        for rank, i in enumerate(dense, 1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (self.rrf_k + rank)
        nobm25 = len(self._chunks) + 1
        order = sorted(fused, key=lambda i: (-fused[i], bm25_rank.get(i, (nobm25, 0.0))[0], i))[:k]
        out = []
        for i in order:
            c = self._chunks[i]
            out.append({"id": c.id, "source": c.source, "score": round(fused[i], 6),
                        "bm25_score": bm25_rank.get(i, (0, 0.0))[1], "dense_score": round(float(sims[i]), 4),
                        "text": c.text})
        return out


def make_retriever(spec: Mapping[str, Any], bm25: Retriever) -> Retriever | HybridRetriever:
    """The retriever a checked ``retriever`` mapping asks for, over ``bm25``'s corpus."""
    if spec.get("type", "bm25") == "bm25":
        return bm25
    from labkit.embeddings import client_from

    client = client_from(spec["embeddings"], field="retriever.embeddings")
    return HybridRetriever(bm25, client, rrf_k=int(spec["rrf_k"]), depth=int(spec["depth"]),
                           cache_dir=spec.get("cache_dir"))
