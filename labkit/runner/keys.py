"""The idempotency key of a case: what resume and the cache recognise a finished case by."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from labkit.cases import EvalCase, canonical_bytes

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["case_key", "pipeline_key_hashes"]

def case_key(case: EvalCase, config_hash: str, fallback_hash: str | None = None) -> str:
    """Idempotency key: sha256 of the case's canonical content and the pipeline config hash(es)."""
    h = hashlib.sha256()
    h.update(canonical_bytes(case.to_dict()))
    h.update(b"\x00" + config_hash.encode() + b"\x00" + (fallback_hash or "").encode())
    return h.hexdigest()[:32]


def pipeline_key_hashes(p: LoadedPipeline) -> tuple[str, str | None]:
    """The config hashes a case key covers: the pipeline's and its fallback's."""
    return p.config_hash, (p.fallback.config_hash if p.fallback is not None else None)
