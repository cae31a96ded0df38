"""Redaction before any write: typed placeholders for personal data and secrets.

:class:`Redactor` walks a JSON-like value (dicts, lists, tuples, strings) and
replaces, inside every string:

==============  ==========================================================
placeholder     what
==============  ==========================================================
``[API_KEY]``   provider key formats (``sk-…``, ``sk-ant-…``, ``sk-proj-…``,
                ``AKIA…``, ``ghp_…``/``github_pat_…``, ``xox?-…``, ``AIza…``,
                ``glpat-…``, ``hf_…``, ``sk_live_…``/``rk_live_…``), and values
                assigned to ``api_key=``/``password=``/``secret=`` style keys
``[TOKEN]``     bearer tokens (``Bearer xxx`` keeps the word ``Bearer``), JWTs
``[EMAIL]``     e-mail addresses
``[CARD]``      13–19 digit card numbers (spaces/dashes allowed) passing Luhn
``[IP]``        IPv4 addresses (valid octets) and IPv6 addresses
``[PHONE]``     phone numbers with separators or a leading ``+`` country code
==============  ==========================================================

Extra patterns come from config. With ``capture_content: false`` every value
under a content key (question, answer, text, args, output, comment, ...) is
replaced by ``[CONTENT len=N sha256=XXXXXXXXXXXX]``: ids, hashes, lengths and
scores survive, text does not.

Config (``Redactor.from_config``), every key optional::

    enabled: true              # false: no pattern redaction (content capture still applies)
    capture_content: true      # false: ids, hashes, lengths and scores only
    types: [API_KEY, TOKEN, EMAIL, CARD, IP, PHONE]   # built-ins to apply
    extra_patterns:            # name -> regex, or a list of {name, regex}
      EMPLOYEE_ID: "EMP-\\d{6}"
    content_keys: [...]        # replaces the default content key set
    skip_keys: [...]           # keys whose string values are never touched
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ConfigError

BUILTIN_TYPES: tuple[str, ...] = ("API_KEY", "TOKEN", "EMAIL", "CARD", "IP", "PHONE")

#: Keys whose values are text content (dropped when capture_content is false).
DEFAULT_CONTENT_KEYS: frozenset[str] = frozenset(
    {
        "question",
        "answer",
        "text",
        "input",
        "output",
        "args",
        "arguments",
        "result",
        "comment",
        "reference_answer",
        "prompt",
        "completion",
        "messages",
        "content",
        "error",
        "query",
    }
)

#: Keys that hold identifiers labkit generates (hex ids, hashes): never rewritten.
DEFAULT_SKIP_KEYS: frozenset[str] = frozenset(
    {
        "trace_id",
        "span_id",
        "parent_span_id",
        "run_id",
        "config_hash",
        "fingerprint",
        "sha256",
        "schema_version",
        "ts_start",
        "ts_end",
        "created_at",
    }
)

_CONFIG_KEYS = ("enabled", "capture_content", "types", "extra_patterns", "content_keys", "skip_keys")

_API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-(?:ant-|proj-|live-|svcacct-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r")"
)
# api_key=..., "password": "...", secret: ... (the value only)
_ASSIGNED_SECRET_RE = re.compile(
    r"(?i)\b((?:api[_-]?key|apikey|secret(?:[_-]?key)?|password|passwd|access[_-]?token|auth[_-]?token)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{6,})"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=\-]{8,})")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
_CARD_RE = re.compile(r"(?<![\w-])\d(?:[ \-]?\d){12,18}(?![\w-])")
_IPV4_RE = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
)
_IPV6_RE = re.compile(
    r"(?<![\w:])(?:"
    r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?"
    r"|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}"
    r")(?![\w:])"
)
_PHONE_RE = re.compile(
    r"(?<![\w.\-+])(?:"
    r"\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}"  # +44 20 7946 0958, +15551234567
    r"|\(\d{2,4}\)[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}"  # (555) 123-4567
    r"|\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"  # 555-123-4567, 555.123.4567
    r")(?![\w\-]|\.\d)"
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (no separators)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_sub(m: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", m.group(0))
    if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
        return "[CARD]"
    return m.group(0)


def _phone_sub(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "[PHONE]" if 7 <= len(digits) <= 15 else m.group(0)


def content_placeholder(value: str) -> str:
    """What a content string becomes when content capture is off."""
    h = hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
    return f"[CONTENT len={len(value)} sha256={h}]"


@dataclass
class _Rule:
    name: str
    pattern: re.Pattern[str]
    repl: str | Callable[[re.Match[str]], str]
    #: a cheap test the text must pass before the rule's pattern runs (None: always run)
    gate: re.Pattern[str] | None = None


# Cheap pre-checks: a rule only runs on text that could hold a match.
_G_DIGIT = re.compile(r"\d")
_G_KEY = re.compile(r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox|AIza|glpat-|hf_|_live_|_test_")
_G_ASSIGN = re.compile(r"(?i)(key|secret|passw(?:or)?d|token)[\"']?\s*[:=]")
_G_BEARER = re.compile(r"(?i)bearer")
_G_JWT = re.compile(r"eyJ")
_G_AT = re.compile(r"@")
_G_IPV6 = re.compile(r"[0-9A-Fa-f]?:[0-9A-Fa-f]{0,4}:")
_G_ANY = re.compile(r"(?i)\d|@|:|=|sk-|akia|asia|gh[pousr]_|github_pat_|xox|aiza|glpat-|hf_|bearer|eyj")


def _builtin_rules(types: Iterable[str]) -> list[_Rule]:
    wanted = set(types)
    rules: list[_Rule] = []
    # Order matters: secrets first (they contain digits a phone/card rule could eat),
    # then e-mail (before IP/phone), card (Luhn) before phone.
    if "API_KEY" in wanted:
        rules.append(_Rule("API_KEY", _API_KEY_RE, "[API_KEY]", _G_KEY))
        rules.append(_Rule("API_KEY", _ASSIGNED_SECRET_RE, lambda m: m.group(1) + "[API_KEY]", _G_ASSIGN))
    if "TOKEN" in wanted:
        rules.append(_Rule("TOKEN", _BEARER_RE, lambda m: m.group(1) + "[TOKEN]", _G_BEARER))
        rules.append(_Rule("TOKEN", _JWT_RE, "[TOKEN]", _G_JWT))
    if "EMAIL" in wanted:
        rules.append(_Rule("EMAIL", _EMAIL_RE, "[EMAIL]", _G_AT))
    if "CARD" in wanted:
        rules.append(_Rule("CARD", _CARD_RE, _card_sub, _G_DIGIT))
    if "IP" in wanted:
        rules.append(_Rule("IP", _IPV4_RE, "[IP]", _G_DIGIT))
        rules.append(_Rule("IP", _IPV6_RE, "[IP]", _G_IPV6))
    if "PHONE" in wanted:
        rules.append(_Rule("PHONE", _PHONE_RE, _phone_sub, _G_DIGIT))
    return rules


@dataclass
class Redactor:
    """Deep redaction of JSON-like values. Build with :meth:`from_config`.

    ``redact(obj)`` returns a redacted copy (the input is not modified);
    ``redact_count(obj)`` also returns how many replacements were made.
    """

    enabled: bool = True
    capture_content: bool = True
    types: tuple[str, ...] = BUILTIN_TYPES
    extra_patterns: Mapping[str, str] = field(default_factory=dict)
    content_keys: frozenset[str] = DEFAULT_CONTENT_KEYS
    skip_keys: frozenset[str] = DEFAULT_SKIP_KEYS

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in BUILTIN_TYPES]
        if unknown:
            raise ConfigError(f"unknown redaction type {unknown[0]!r}", field="types", known=BUILTIN_TYPES)
        self._memo: dict[str, tuple[str, int]] = {}
        self._rules: list[_Rule] = _builtin_rules(self.types) if self.enabled else []
        for name, rx in self.extra_patterns.items():
            try:
                pat = re.compile(rx)
            except re.error as e:
                raise ConfigError(f"invalid regex for {name!r}: {e}", field="extra_patterns") from None
            tag = re.sub(r"[^A-Z0-9_]", "_", str(name).upper())
            # extra patterns run first: they are the most specific
            self._rules.insert(0, _Rule(tag, pat, f"[{tag}]"))

    # ------------------------------------------------------------------ config
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None = None) -> Redactor:
        """A redactor from a config mapping (``None`` = defaults: everything on)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, Redactor):
            return cfg
        if not isinstance(cfg, Mapping):
            raise ConfigError("redaction config must be a mapping", field="redaction")
        for key in cfg:
            if key not in _CONFIG_KEYS:
                raise ConfigError(f"unknown redaction key {key!r}", field=str(key), known=_CONFIG_KEYS)
        extra_raw = cfg.get("extra_patterns") or {}
        extra: dict[str, str] = {}
        if isinstance(extra_raw, Mapping):
            extra = {str(k): str(v) for k, v in extra_raw.items()}
        elif isinstance(extra_raw, list):
            for i, item in enumerate(extra_raw):
                if not isinstance(item, Mapping) or "name" not in item or "regex" not in item:
                    raise ConfigError("must be {name, regex}", field=f"extra_patterns[{i}]")
                extra[str(item["name"])] = str(item["regex"])
        else:
            raise ConfigError("must be a mapping name -> regex or a list", field="extra_patterns")
        types = cfg.get("types")
        kwargs: dict[str, Any] = {
            "enabled": bool(cfg.get("enabled", True)),
            "capture_content": bool(cfg.get("capture_content", True)),
            "extra_patterns": extra,
        }
        if types is not None:
            if not isinstance(types, list | tuple):
                raise ConfigError("must be a list", field="types", known=BUILTIN_TYPES)
            kwargs["types"] = tuple(str(t).upper() for t in types)
        if cfg.get("content_keys") is not None:
            kwargs["content_keys"] = frozenset(str(k) for k in cfg["content_keys"])
        if cfg.get("skip_keys") is not None:
            kwargs["skip_keys"] = frozenset(str(k) for k in cfg["skip_keys"])
        return cls(**kwargs)

    # ------------------------------------------------------------------ text
    def redact_text(self, text: str) -> tuple[str, int]:
        """One string, redacted, and the number of replacements."""
        n = 0
        if not self.extra_patterns and _G_ANY.search(text) is None:
            return text, 0
        for rule in self._rules:
            if rule.gate is not None and rule.gate.search(text) is None:
                continue
            if isinstance(rule.repl, str):
                text, k = rule.pattern.subn(rule.repl, text)
                n += k
            else:
                fn = rule.repl
                hits = 0

                def counting(m: re.Match[str], fn: Callable[[re.Match[str]], str] = fn) -> str:
                    nonlocal hits
                    out = fn(m)
                    if out != m.group(0):
                        hits += 1
                    return out

                text = rule.pattern.sub(counting, text)
                n += hits
        return text, n

    # ------------------------------------------------------------------ deep
    def redact(self, obj: Any) -> Any:
        """A redacted deep copy of ``obj`` (str values in dicts/lists/tuples)."""
        return self.redact_count(obj)[0]

    def redact_count(self, obj: Any) -> tuple[Any, int]:
        """``(redacted copy, number of replacements)``; content drops are not counted."""
        counter = [0]
        out = self._walk(obj, counter, in_content=False)
        return out, counter[0]

    def _text(self, text: str) -> tuple[str, int]:
        # short strings repeat a lot (statuses, model names, ids): memoize them
        if len(text) <= 64:
            hit = self._memo.get(text)
            if hit is not None:
                return hit
            out = self.redact_text(text)
            if len(self._memo) >= 8192:
                self._memo.clear()
            self._memo[text] = out
            return out
        return self.redact_text(text)

    def _walk(self, obj: Any, counter: list[int], in_content: bool) -> Any:
        t = type(obj)
        if t is str:
            if in_content and not self.capture_content:
                return content_placeholder(obj)
            red, k = self._text(obj)
            counter[0] += k
            return red
        if obj is None or t is int or t is float or t is bool:
            return obj
        if t is dict or isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, val in obj.items():
                if key in self.skip_keys and not isinstance(val, Mapping | list | tuple):
                    out[key] = val
                    continue
                child_content = in_content or (isinstance(key, str) and key in self.content_keys)
                out[key] = self._walk(val, counter, child_content)
            return out
        if t is list or t is tuple or isinstance(obj, list | tuple):
            items = [self._walk(v, counter, in_content) for v in obj]
            return items if isinstance(obj, list) else tuple(items)
        return obj

    def describe(self) -> dict[str, Any]:
        """The effective settings (for a manifest)."""
        return {
            "enabled": self.enabled,
            "capture_content": self.capture_content,
            "types": list(self.types),
            "extra_patterns": sorted(self.extra_patterns),
        }
