"""Documents, chunking and stable chunk ids.

A corpus is a folder of markdown files; the document id is the file name
without ``.md``. Chunking follows the document's own structure so ids are
stable across runs and configs:

* ``<doc-id>#0`` is the title and the text before the first ``## `` heading;
* ``<doc-id>#i`` is the i-th ``## `` section (1-based), heading included.

A section longer than ``chunk_size`` words is split at sentence boundaries
into parts ``<doc-id>#i.1``, ``<doc-id>#i.2`` ... so the ids of the other
sections never move; the shipped corpus keeps every section under the default
size, so its chunk ids are plain ``<doc-id>#i``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.paths import FolderInput
from labkit.text import normalize_phrase

if TYPE_CHECKING:
    from labkit.cases import EvalCase

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[*-])")


def corpus_files(root: str | os.PathLike[str]) -> FolderInput:
    """The documents :meth:`Corpus.load` reads from the folder ``root``: its ``*.md`` files (the
    top level only), for :func:`labkit.paths.refuse_overwriting_inputs`."""
    return FolderInput(root, tuple(sorted(Path(root).glob("*.md"))))


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (markdown bullets and lines count as breaks)."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s)", text):
        block = " ".join(block.split())
        block = re.sub(r"^(?:[-*]|\d+\.)\s+", "", block)
        if not block:
            continue
        out.extend(s.strip() for s in _SENT.split(block) if s.strip())
    return out


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    title: str
    heading: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Chunks of every markdown document under ``root``, in file then section order."""

    root: str
    chunks: tuple[Chunk, ...]
    chunk_size: int = 200

    @classmethod
    def load(cls, root: str | os.PathLike[str], chunk_size: int = 200) -> Corpus:
        p = Path(root)
        if not p.is_dir():
            raise ConfigError("corpus folder not found", path=str(p), field="corpus")
        if chunk_size < 20:
            raise ConfigError("chunk_size must be at least 20 words", field="chunk_size")
        files = list(corpus_files(p).files)
        if not files:
            raise ConfigError("corpus folder has no .md documents", path=str(p), field="corpus")
        chunks: list[Chunk] = []
        for f in files:
            chunks.extend(chunk_document(f.stem, f.read_text(encoding="utf-8"), chunk_size))
        return cls(str(p), tuple(chunks), chunk_size)

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self._index.get(chunk_id)

    @property
    def _index(self) -> dict[str, Chunk]:
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {c.id: c for c in self.chunks}
            object.__setattr__(self, "_idx", idx)
        return idx

    @property
    def fingerprint(self) -> str:
        """sha256 over the chunks (ids and text): what a retriever over this corpus can return."""
        import hashlib

        h = hashlib.sha256(f"chunk_size={self.chunk_size}\n".encode())
        for c in self.chunks:
            h.update(f"{c.id}\x1f{c.text}\x1e".encode())
        return h.hexdigest()

    @property
    def doc_ids(self) -> list[str]:
        return list(dict.fromkeys(c.source for c in self.chunks))

    def document_text(self, doc_id: str) -> str:
        return "\n\n".join(c.text for c in self.chunks if c.source == doc_id)


def chunk_document(doc_id: str, text: str, chunk_size: int = 200) -> list[Chunk]:
    """Chunk one markdown document by ``## `` sections (see module docstring)."""
    lines = text.splitlines()
    title = doc_id
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in lines:
        if line.startswith("# ") and title == doc_id and not sections[0][1]:
            title = line[2:].strip()
            sections[0][1].append(line)
        elif line.startswith("## "):
            sections.append((line[3:].strip(), [line]))
        else:
            sections[-1][1].append(line)
    out: list[Chunk] = []
    for i, (heading, body) in enumerate(sections):
        body_text = "\n".join(body).strip()
        if i == 0 and not body_text:
            continue
        base = f"{doc_id}#{i}"
        if len(body_text.split()) <= chunk_size:
            out.append(Chunk(base, doc_id, title, heading or title, body_text))
            continue
        part: list[str] = []
        n = 0
        for sent in split_sentences(body_text):
            if part and len(" ".join([*part, sent]).split()) > chunk_size:
                n += 1
                out.append(Chunk(f"{base}.{n}", doc_id, title, heading or title, " ".join(part)))
                part = []
            part.append(sent)
        if part:
            n += 1
            out.append(Chunk(f"{base}.{n}", doc_id, title, heading or title, " ".join(part)))
    return out


def gold_problems(cases: Sequence[EvalCase], corpus: Corpus) -> list[tuple[int, str, str]]:
    """(position of the case, field, reason) for each rule of a dataset's gold (docs/dataset.md)
    that ``corpus`` shows broken: a gold chunk or document the corpus does not hold (a typo
    scores as a retrieval miss), a first gold chunk not of ``expected_source``, a must_include
    phrase not in the gold text, a must_not_include phrase in it (a correct answer would violate
    it). Phrases are found as the metrics find them (:func:`labkit.text.normalize_phrase`)."""
    docs = set(corpus.doc_ids)
    out: list[tuple[int, str, str]] = []
    for i, case in enumerate(cases):
        n0 = len(out)
        found = [corpus.chunk(cid) for cid in case.expected_chunks]
        out += [(i, f"expected_chunks[{j}]", f"no chunk {cid!r} in the corpus")
                for j, (cid, ch) in enumerate(zip(case.expected_chunks, found, strict=True)) if ch is None]
        if case.expected_source is not None and case.expected_source not in docs:
            out.append((i, "expected_source", f"no document {case.expected_source!r} in the corpus"))
        elif found and found[0] is not None and case.expected_source and found[0].source != case.expected_source:
            out.append((i, "expected_chunks[0]",
                        f"chunk {found[0].id!r} is not of expected_source {case.expected_source!r}"))
        if len(out) > n0 or not case.gold:
            continue  # (no gold text to read the phrases in)
        text = normalize_phrase("\n".join(ch.text for ch in found if ch is not None) if found
                                else corpus.document_text(str(case.expected_source)))
        out += [(i, f"must_include[{j}]", f"{p!r} is not in the gold text")
                for j, p in enumerate(case.must_include) if normalize_phrase(p) not in text]
        out += [(i, f"must_not_include[{j}]", f"{p!r} is in the gold text: a correct answer would violate it")
                for j, p in enumerate(case.must_not_include) if normalize_phrase(p) in text]
    return out


def named_corpus(man: Mapping[str, Any]) -> tuple[Corpus | None, str | None]:
    """The Corpus a run's manifest names (its pipeline's ``corpus_dir``, else its config's
    ``corpus``, found beside the pipeline file or here), or None, and the name it gives (None:
    it names none)."""
    pipe = man.get("pipeline") or {}
    cfg = pipe.get("config") if isinstance(pipe, dict) else None
    explicit = pipe.get("corpus_dir") if isinstance(pipe, dict) else None
    cand = explicit or (cfg.get("corpus") if isinstance(cfg, dict) else None)
    if not isinstance(cand, str):
        return None, None
    bases: list[Path] = []
    spec_path = pipe.get("path") if isinstance(pipe, dict) else None
    if isinstance(spec_path, str):
        bases.append(Path(spec_path).parent)
    bases.append(Path.cwd())
    tries = [Path(cand)] if Path(cand).is_absolute() else [b / cand for b in bases]
    for p in tries:
        if p.is_dir():
            size = cfg.get("chunk_size") if isinstance(cfg, dict) else None
            return (Corpus.load(p, chunk_size=size) if isinstance(size, int) else Corpus.load(p)), cand
    return None, cand
