"""Keys that hold no secret: a text kept as a key (a run's path, a run folder's name) where
redaction would change it."""

from __future__ import annotations

import functools
import hashlib

from labkit.trace.redact import Redactor

__all__ = ["redacted_key"]


def redacted_key(text: str) -> str:
    """``text`` when the catalogue's redaction leaves it as it is; else the redacted text, ``#`` and
    the first 16 hex digits of the text's SHA-256: a key that holds no secret and still tells apart
    two texts that redact alike (a run's path in the history index, a run folder's name in a trace
    archive, when the folder is named by an e-mail address)."""
    red = _catalogue().redact(text)
    if red == text:
        return text
    return f"{red}#{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


@functools.cache
def _catalogue() -> Redactor:
    return Redactor()
