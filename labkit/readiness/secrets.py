"""Scan config files for literal secrets, reporting file, line and kind only.

A finding never carries the secret: not its value, not a prefix, not a hash.
What counts as a literal secret (the formats come from the one catalogue,
:mod:`labkit.patterns`, shared with trace redaction):

* a value in a secret format of the catalogue (provider keys such as
  ``sk-...``, ``AKIA...``, ``ghp_...``, ``npm_...``, Slack webhooks, Azure
  ``AccountKey=``; bearer, Basic and ``ya29.`` tokens, JWTs, credentials in a
  URL; a private key block), anywhere in the file;
* a key named like a credential (``api_key``, ``OPENAI_API_KEY``, ``secret``,
  ``password``, ``token``, ``client_secret``, ``authorization`` ...) given a literal value —
  not null, not empty, not a reference to the environment (``${VAR}``,
  ``env:VAR``) and not a ``<placeholder>``. Keys ending in ``_env`` name an
  environment variable and are the recommended form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labkit import patterns

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".ini", ".cfg", ".env", ".json")

#: The catalogue's secret formats (labkit.patterns), by kind; credential-key assignments are
#: judged line by line below so environment references and placeholders can be told apart.
#: Each with its validator: a match counts only when the catalogue says it does.
PROVIDER_PATTERNS: tuple[patterns.Pattern, ...] = tuple(
    p for p in patterns.patterns_of(patterns.SECRET_TYPES)
    if p.kind != "assigned_secret" and p.type not in patterns.NUMERIC_TYPES
)

CREDENTIAL_KEY = re.compile(
    rf"""^\s*(?:-\s*)?["']?(?P<key>[A-Za-z0-9_.\-]*?(?:{patterns.CREDENTIAL_WORDS}))["']?\s*[:=]\s*(?P<value>.*?)\s*$""",
    re.IGNORECASE,
)
_NOT_SECRET_VALUES = {"null", "none", "~", "''", '""', "false", "true", "[]", "{}", "|", ">"}


@dataclass(frozen=True)
class SecretFinding:
    """Where a literal secret is, and what kind; never the secret itself."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "kind": self.kind}


def _strip_comment(line: str) -> str:
    out = []
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out)


def scan_text(text: str, path: str) -> list[SecretFinding]:
    """Findings in one file's text (each line reported once, with its first kind)."""
    out: list[SecretFinding] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(patterns.revealed(raw) or raw)  # (as it shows: as redaction reads it)
        kind = None
        for pat in PROVIDER_PATTERNS:
            if any(pat.valid(m) for m in pat.regex.finditer(line)):
                kind = pat.kind
                break
        if kind is None:
            m = CREDENTIAL_KEY.match(line)
            if m:
                key = m.group("key")
                value = m.group("value").rstrip(",").strip()
                if patterns.is_credential_key(key) and (
                    value.lower() not in _NOT_SECRET_VALUES and not patterns.REFERENCE_VALUE.match(value)
                ) and not re.fullmatch(r"-?\d+(\.\d+)?", value):
                    kind = f"literal value for credential key '{m.group('key')}'"
        if kind:
            out.append(SecretFinding(path, n, kind))
    return out


def config_files(roots: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Config-like files under the given files or folders (datasets and documents left out)."""
    files: list[Path] = []
    for r in roots:
        p = Path(r)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and (
                f.suffix.lower() in CONFIG_SUFFIXES or f.name == ".env")))
    return list(dict.fromkeys(files))


def scan_files(files: Iterable[str | os.PathLike[str]], relative_to: str | os.PathLike[str] | None = None,
               ) -> tuple[list[SecretFinding], int]:
    """Scan files; returns (findings, number of files read)."""
    out: list[SecretFinding] = []
    n = 0
    base = Path(relative_to).resolve() if relative_to else None
    for f in files:
        p = Path(f)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        n += 1
        shown = str(p)
        if base is not None:
            try:
                shown = str(p.resolve().relative_to(base))
            except ValueError:
                shown = str(p)
        out.extend(scan_text(text, shown))
    return out, n
