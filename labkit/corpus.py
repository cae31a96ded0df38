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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import ConfigError
from labkit.paths import FolderInput

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
