"""Redaction before any write: typed placeholders for personal data and secrets.

:class:`Redactor` walks a JSON-like value (dicts, lists, tuples, strings) and
replaces, inside every string and every mapping key, what the one secrets
catalogue (:mod:`labkit.patterns`) finds: ``[PRIVATE_KEY]``, ``[API_KEY]``,
``[TOKEN]``, ``[EMAIL]``, ``[IBAN]``, ``[SSN]``, ``[CARD]`` (Luhn-valid only),
``[IP]`` and ``[PHONE]`` (docs/traces.md lists the formats). Context a format
needs is kept (``Bearer [TOKEN]``, ``AccountKey=[API_KEY]``, ``https://[TOKEN]@host``).

Mapping keys steer the walk too: the string value of a key that names a
credential (``OPENAI_API_KEY``, ``client_secret``, ``clientSecret``) becomes
``[API_KEY]`` whatever it looks like (unless empty or an environment reference
such as ``${VAR}``), and the value of a phone key (``phone``, ``mobile``) that
holds 7-15 digits becomes ``[PHONE]``.

labkit's own id fields (``trace_id``, ``run_id``, hashes, timestamps) are
recognised at their own position only — the top level of the record, and
``span_id``/``parent_span_id`` in the items of a top-level ``spans`` list —
and there they skip the numeric formats (an id or hash can look like a card
number) but not the secret ones. A field of the same name anywhere else (a
pipeline output, a tool call, tags) is redacted like any other.

The secret values labkit itself read (the API key of an ``api_key_env``, the header
values and URL credentials of an endpoint config, :func:`labkit.patterns.register_secret`) become ``[API_KEY]``
wherever they appear, whatever their format and whatever the settings.

Extra patterns come from config. With ``capture_content: false`` every string
under a content key (question, answer, text, args, output, comment, ...), and
under any key that is not one of labkit's ids, labels or statuses
(:data:`LABEL_KEYS`), is replaced by ``[CONTENT len=N sha256=XXXXXXXXXXXX]``:
ids, hashes, lengths and scores survive, text does not.

Config (``Redactor.from_config``), every key optional::

    enabled: true              # false: no pattern redaction (content capture still applies)
    capture_content: true      # false: ids, hashes, lengths and scores only
    types: [API_KEY, TOKEN, EMAIL, CARD, IP, PHONE, ...]   # built-ins to apply
    extra_patterns:            # name -> regex, or a list of {name, regex}
      EMPLOYEE_ID: "EMP-\\d{6}"
    content_keys: [...]        # replaces the default content key set
    skip_keys: [...]           # top-level fields treated as labkit's own ids
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit import patterns
from labkit.errors import ConfigError
from labkit.patterns import luhn_ok
from labkit.trace.certified import Certified
from labkit.trace.record import dumps_trace

__all__ = ["BUILTIN_TYPES", "Redactor", "content_placeholder", "luhn_ok"]

BUILTIN_TYPES: tuple[str, ...] = patterns.TYPES

#: Keys whose values are text content (dropped when capture_content is false).
DEFAULT_CONTENT_KEYS: frozenset[str] = frozenset(
    {"question", "answer", "text", "input", "output", "args", "arguments", "result", "comment", "reference_answer",
     "prompt", "completion", "messages", "content", "error", "query"})

#: Top-level fields that hold identifiers labkit generates (hex ids, hashes, timestamps).
DEFAULT_SKIP_KEYS: frozenset[str] = frozenset(
    {"trace_id", "span_id", "parent_span_id", "run_id", "config_hash", "fingerprint", "sha256", "schema_version",
     "ts_start", "ts_end", "created_at"})

#: With capture_content false, the only keys whose strings are kept (redacted as text): the ids,
#: labels, names and statuses of results lines, trace records, cases, feedback and reviews, and
#: the containers of such fields. A string under any other key (a pipeline's own field, a case's
#: metadata, a tag of one's own) is content: labkit cannot know it is none.
LABEL_KEYS: frozenset[str] = frozenset(
    {"case_id", "id", "source", "status", "error_type", "answered_by", "idempotency_key", "trace_id", "span_id",
     "parent_span_id", "run_id", "run_uuid", "session_id", "operation", "provider", "model", "prompt_version",
     "pipeline", "config_hash", "release", "environment", "simulated", "name", "tool_name", "timing", "citations",
     "retrieved_chunks", "documents", "expected_source", "expected_chunks", "category", "risk", "kind",
     "origin_kind", "feedback_id", "reviewer", "user", "decision", "rating", "label", "type", "ts", "time",
     "schema_version", "answer_sha256", "manifest_sha256", "retrieved", "tool_calls", "expected_tools", "usage",
     "guardrails", "spans", "attributes", "tags", "scores", "feedback", "truncated_chars"})

#: labkit's own id fields in each item of a top-level ``spans`` list.
SPAN_ID_KEYS: frozenset[str] = frozenset({"span_id", "parent_span_id", "ts_start", "ts_end"})
_NO_KEYS: frozenset[str] = frozenset()

_CONFIG_KEYS = ("enabled", "capture_content", "types", "extra_patterns", "content_keys", "skip_keys")

#: How many distinct mapping keys and short strings a redactor remembers (then it starts over).
_MEMO_MAX = 8192
def content_placeholder(value: str) -> str:
    """What a content string becomes when content capture is off."""
    h = hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
    return f"[CONTENT len={len(value)} sha256={h}]"


@dataclass
class _Rule:
    tag: str
    pattern: re.Pattern[str]
    check: Callable[[re.Match[str]], bool] | None = None
    #: a cheap test the text must pass before the rule's pattern runs (None: always run)
    gate: re.Pattern[str] | None = None
    numeric: bool = False
    #: the gate on an ASCII text's ``lower()`` as plain words, one of which must be in it ...
    ascii_words: tuple[str, ...] | None = field(init=False, default=None)
    #: ... or as a pattern to search it with (both None: the gate itself, or no gate)
    ascii_rx: re.Pattern[str] | None = field(init=False, default=None)
    #: a character every match of the gate holds, lowered (None: none found): an ASCII text's
    #: ``lower()`` without it passes no gate of a pattern gate (a quick test before the search)
    ascii_need: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.gate is not None:
            self.ascii_words, self.ascii_rx, self.ascii_need = _ascii_forms(self.gate)

    def passes(self, text: str) -> bool:
        """Whether ``text`` passes the gate."""
        return self.gate is None or self.gate.search(text) is not None

    def sub(self, text: str) -> tuple[str, int]:
        hits = 0
        placeholder = f"[{self.tag}]"

        def repl(m: re.Match[str]) -> str:
            nonlocal hits
            if self.check is not None and not self.check(m):
                return m.group(0)
            hits += 1
            start, _ = patterns.secret_part(m)
            return m.group(0)[: start - m.start()] + placeholder

        return self.pattern.sub(repl, text), hits


_META = frozenset(".^$*+?{}[]\\|()")

#: What :data:`labkit.patterns.MAY_MATCH` finds beside :data:`~labkit.patterns.MAY_MATCH_NON_NUMERIC`.
_DIGIT = re.compile(r"\d")


def _split_may_match(rx: re.Pattern[str]) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    """``rx`` (``[chars]|word|word...``, case-insensitive) as its character class, which no case
    folding touches, and its plain lowercase words; None when it is not of that shape."""
    head, *words = rx.pattern.split("|")
    if (not rx.flags & re.IGNORECASE or not (head.startswith("[") and head.endswith("]"))
            or re.search(r"[A-Za-z]", head.replace("\\-", "")) or not all(w.isalpha() and w.islower() for w in words)):
        return None
    return re.compile(head), tuple(words)


_NON_NUMERIC = _split_may_match(patterns.MAY_MATCH_NON_NUMERIC)


@functools.cache
def _ascii_forms(gate: re.Pattern[str]) -> tuple[tuple[str, ...] | None, re.Pattern[str] | None, str | None]:
    """A rule's gate on an ASCII text's ``lower()``, worked out once per gate (each redactor a run
    builds has the catalogue's rules): its plain words (``sk-``, ``a|b``), one of which must be in
    it, or else its lowered pattern to search it with (a case-insensitive search over ASCII text
    finds what the lowered pattern finds in the lowered text; both None when lowering would change
    the pattern: a case-sensitive gate, an escape such as ``\\D``, a group); and
    :func:`_needed_char`."""
    need = _needed_char(gate)
    rx = gate.pattern
    if not gate.flags & re.IGNORECASE or re.search(r"\\[A-Z]|\(\?", rx):
        return None, None, need
    words = rx.lower().split("|")
    if all(w and not (_META & set(w)) for w in words):
        return tuple(words), None, need
    return None, re.compile(rx.lower()), need


#: Letters from the rarest in English text to the most common: a rare one rules more texts out.
_RARE_FIRST = "zqxjkvbpygfwmucldrhsnioate"


def _needed_char(gate: re.Pattern[str]) -> str | None:
    """A character every match of ``gate`` holds, lowered: a literal of the pattern's top-level
    sequence (not under a repeat, a branch or a group), a non-alphanumeric one first, else the
    rarest letter; so it is in the ``lower()`` of every ASCII text the gate finds something in.
    None when there is no such literal or the pattern cannot be read."""
    import importlib

    try:  # (the standard library's own reader of the pattern)
        parser: Any = importlib.import_module("re._parser")
        literal = importlib.import_module("re._constants").LITERAL
        items = list(parser.parse(gate.pattern, gate.flags))
    except Exception:  # (another Python's reader: no quick test, the gate itself runs)
        return None
    chars = {chr(av).lower() for op, av in items if op is literal and isinstance(av, int)}
    chars = {c for c in chars if c.isascii() and len(c) == 1}
    if not chars:
        return None
    symbols = sorted(c for c in chars if not c.isalnum())
    if symbols:
        return symbols[0]
    for c in _RARE_FIRST:
        if c in chars:
            return c
    return sorted(chars)[0]


def _any_gate(rules: list[_Rule]) -> re.Pattern[str] | None:
    """One pattern that matches wherever any of ``rules``' gates does; None when a rule has no
    gate (it must always run, so no single search can rule the text out)."""
    if not rules or any(r.gate is None for r in rules):
        return None
    gates = [r.gate for r in rules if r.gate is not None]
    if any(g.flags != gates[0].flags for g in gates):
        return None
    return re.compile("|".join(f"(?:{g.pattern})" for g in gates), gates[0].flags)


def _builtin_rules(types: Iterable[str]) -> list[_Rule]:
    """The catalogue's patterns of ``types``, in the catalogue's order."""
    return [_Rule(p.type, p.regex, p.check, p.gate, p.type in patterns.NUMERIC_TYPES)
            for p in patterns.patterns_of(types)]


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
        self._memo: tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]] = ({}, {})
        self._memo_version = patterns.secrets_version()
        self._key_kinds: dict[str, tuple[bool, bool]] = {}
        #: per mapping key: (redacted key, replacements, credential key, phone key, content key)
        self._keys: dict[str, tuple[str, int, bool, bool, bool]] = {}
        builtin = _builtin_rules(self.types) if self.enabled else []
        self._rules: list[_Rule] = list(builtin)
        for name, rx in self.extra_patterns.items():
            try:
                pat = re.compile(rx)
            except re.error as e:
                raise ConfigError(f"invalid regex for {name!r}: {e}", field="extra_patterns") from None
            # extra patterns run first: they are the most specific
            self._rules.insert(0, _Rule(patterns.placeholder_tag(name), pat))
        # one search of every gate at once: most strings (ids, statuses, plain prose) pass no gate,
        # and then only the ungated rules need to run (True: an own id field, numeric rules skipped)
        # the extra patterns (first, no gate) run on every string; then the catalogue's rules, which
        # the catalogue's prefilter (MAY_MATCH) and then each rule's gate can rule out
        lead = len(self._rules) - len(builtin)
        self._lead, gated = self._rules[:lead], self._rules[lead:]
        self._prefilter = all(r.gate is not None for r in gated)
        self._gated = {False: gated, True: [r for r in gated if not r.numeric]}  # True: an own id field
        #: the numeric rules, when every one of them comes after every other gated rule (the
        #: catalogue's order): all that can change a text in which no non-numeric format can match
        first_numeric = next((i for i, r in enumerate(gated) if r.numeric), len(gated))
        self._numeric: list[_Rule] | None = (gated[first_numeric:] if all(r.numeric for r in gated[first_numeric:])
                                             else None)
        self._any_gate = {own: _any_gate(self._gated[own]) for own in (False, True)}
        #: strings :meth:`redact_text` leaves as they are, that are no credential or phone key
        #: (the fast path of :meth:`dumps_line`); cleared with the memo when a secret is registered
        self._certified = Certified(self, SPAN_ID_KEYS)
        #: the fast path certifies strings with this redactor's own rules; the extra patterns and
        #: content capture off change records in ways it does not model, so they always walk
        self._fast = self.capture_content and not self._lead

    # ------------------------------------------------------------------ config
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Redactor | None = None) -> Redactor:
        """A redactor from a config mapping (``None`` = defaults: everything on; a Redactor: itself)."""
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
            kwargs["types"] = tuple(str(t).strip().upper() for t in types)
            if not kwargs["types"] or not all(kwargs["types"]):
                raise ConfigError("must name at least one type (`enabled: false` is the way to turn redaction "
                                  "off)", field="types", known=BUILTIN_TYPES)
        if cfg.get("content_keys") is not None:
            kwargs["content_keys"] = frozenset(str(k) for k in cfg["content_keys"])
        if cfg.get("skip_keys") is not None:
            kwargs["skip_keys"] = frozenset(str(k) for k in cfg["skip_keys"])
        return cls(**kwargs)

    # ------------------------------------------------------------------ text
    def redact_text(self, text: str, *, own_id: bool = False) -> tuple[str, int]:
        """One string, redacted, and the number of replacements. ``own_id``: one of labkit's own
        id fields at its own position (the numeric formats, card, phone, IP, IBAN, SSN, are not
        applied). A text is also read as it shows (:func:`labkit.patterns.revealed`): when that
        reading holds a secret, it is what comes out, redacted (a zero-width space inside a key)."""
        out, n = self._redact_written(text, own_id)
        if out.isascii() and "%" not in out and '\\"' not in out:  # (the common case: it shows as written)
            return out, n
        shown = patterns.revealed(out)
        red, k = self._redact_written(shown, own_id) if shown is not None else (out, 0)
        return (red, n + k) if k else (out, n)

    def _redact_written(self, text: str, own_id: bool) -> tuple[str, int]:
        """:meth:`redact_text` of the text as written."""
        # the secrets labkit itself read (an API key): always, whatever the settings
        text, n = patterns.redact_literals(text)
        for rule in self._lead:  # the extra patterns
            text, k = rule.sub(text)
            n += k
        low = text.lower() if text.isascii() else None
        rules = self._gated[own_id]
        if self._prefilter and not self._may_match_non_numeric(text, low):
            if own_id or _DIGIT.search(text) is None:
                return text, n  # no format of the catalogue can match (MAY_MATCH finds nothing)
            if self._numeric is not None:
                # no non-numeric format can match, and they come first: they leave the text as it
                # is, so only the numeric ones can change it
                rules = self._numeric
        if low is None:  # (ASCII text: each rule's gate below is a cheap test of ``low``)
            gate = self._any_gate[own_id]
            if gate is not None and gate.search(text) is None:
                return text, n  # no rule's gate passes, and every rule has one: nothing to replace
        for rule in rules:
            if low is None:
                if not rule.passes(text):
                    continue
            elif (words := rule.ascii_words) is not None:  # (inline: this loop runs per string)
                for w in words:
                    if w in low:
                        break
                else:
                    continue
            elif (need := rule.ascii_need) is not None and need not in low:
                continue
            elif (rx := rule.ascii_rx) is not None:
                if rx.search(low) is None:
                    continue
            elif rule.gate is not None and rule.gate.search(text) is None:
                continue
            new, k = rule.sub(text)
            if new != text:
                text = new
                low = text.lower() if low is not None and text.isascii() else None
            n += k
        return text, n

    @staticmethod
    def _may_match_non_numeric(text: str, low: str | None) -> bool:
        """Whether :data:`labkit.patterns.MAY_MATCH_NON_NUMERIC` finds something in ``text``
        (``low``: its ``lower()`` when it is ASCII, else None): on ASCII text, its character
        class, then its words as substrings of ``low`` (a case-insensitive search of ASCII text
        finds what the lowered words find in the lowered text)."""
        if low is None or _NON_NUMERIC is None:
            return patterns.MAY_MATCH_NON_NUMERIC.search(text) is not None
        chars, words = _NON_NUMERIC
        if chars.search(text) is not None:
            return True
        for w in words:  # noqa: SIM110 (a loop: a generator in any() costs more than these few tests)
            if w in low:
                return True
        return False

    # ------------------------------------------------------------------ deep
    def redact(self, obj: Any) -> Any:
        """A redacted deep copy of ``obj`` (str values and keys in dicts/lists/tuples)."""
        return self.redact_count(obj)[0]

    def redact_count(self, obj: Any) -> tuple[Any, int]:
        """``(redacted copy, number of replacements)``; content drops are not counted."""
        self._check_version()
        counter = [0]
        out = self._walk(obj, counter, False, self.skip_keys)
        return out, counter[0]

    def changed_ids(self, ids: Iterable[str]) -> list[tuple[int, str]]:
        """The position and redacted form of each of ``ids`` (values of one of labkit's own id
        fields, such as case ids) that the treatment of an own id field changes. The ids it leaves
        as they are are certified (:class:`~labkit.trace.certified.Certified`): a trace record
        holding one later asks nothing again."""
        self._check_version()
        unchanged = self._certified.own_id_unchanged
        return [(i, self.redact_text(s, own_id=True)[0]) for i, s in enumerate(ids) if not unchanged(s)]

    def _check_version(self) -> None:
        if self._memo_version != patterns.secrets_version():  # a key was registered since
            for memo in self._memo:
                memo.clear()
            self._key_kinds.clear()
            self._keys.clear()
            self._certified.clear()
            self._memo_version = patterns.secrets_version()

    # ------------------------------------------------------------------ one JSON line
    def unchanged_json(self, obj: Any) -> bytes | None:
        """orjson's compact JSON of ``obj`` when :meth:`redact` would return an equal copy of it
        (then the copy's JSON is these bytes), else None: walk it
        (:class:`labkit.trace.certified.Certified`)."""
        if not self._fast:
            return None
        self._check_version()
        return self._certified.unchanged_json(obj)

    def dumps_line(self, obj: Any) -> str:
        """The JSONL line (with its newline) of the redacted ``obj``: always exactly
        ``dumps_trace(self.redact(obj))``, without the walk when nothing in ``obj`` can change."""
        raw = self.unchanged_json(obj)
        if raw is not None:
            return str(raw, "utf-8") + "\n"
        return dumps_trace(self.redact(obj))

    def _text(self, text: str, own_id: bool = False) -> tuple[str, int]:
        # short strings repeat a lot (statuses, model names, ids): memoize them
        if len(text) <= 64:  # (redact_count clears the memo when a secret was registered since)
            memo = self._memo[own_id]
            hit = memo.get(text)
            if hit is not None:
                return hit
            out = self.redact_text(text, own_id=own_id)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[text] = out
            return out
        return self.redact_text(text, own_id=own_id)

    def _walk(self, obj: Any, counter: list[int], in_content: bool, own: frozenset[str]) -> Any:
        t = type(obj)
        if t is str:
            if in_content and not self.capture_content:
                return content_placeholder(obj)
            red, k = self._text(obj)
            if k:
                counter[0] += k
            return red
        if obj is None or t is int or t is float or t is bool:
            return obj
        if t is dict:
            return self._walk_mapping(obj, counter, in_content, own)
        if t is list or t is tuple or isinstance(obj, list | tuple):
            if not obj:
                return [] if isinstance(obj, list) else ()
            # the items of a top-level ``spans`` list carry labkit's span ids
            item_own = SPAN_ID_KEYS if own is SPAN_ID_KEYS else _NO_KEYS
            items = self._walk_items(obj, counter, in_content, item_own)
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, Mapping):
            return self._walk_mapping(obj, counter, in_content, own)
        if isinstance(obj, str):  # a str subclass (a numpy.str_ from a data frame): the string it is
            return self._walk(str(obj), counter, in_content, own)
        return obj

    def _walk_items(self, obj: Any, counter: list[int], in_content: bool, own: frozenset[str]) -> list[Any]:
        """The items of a list or tuple (strings and scalars inline: lists of ids are common)."""
        memo = self._memo[False]
        strings = not (in_content and not self.capture_content)
        out = []
        for v in obj:
            tv = type(v)
            if tv is str and strings:
                hit = memo.get(v)
                red, k = hit if hit is not None else self._text(v)
                if k:
                    counter[0] += k
                out.append(red)
            elif v is None or tv is int or tv is float or tv is bool:
                out.append(v)
            else:
                out.append(self._walk(v, counter, in_content, own))
        return out

    def _key(self, key: str) -> tuple[str, int, bool, bool, bool]:
        """What a mapping key is: (redacted key, replacements, credential, phone, content); each key
        is classified once (keys repeat in every record)."""
        kk = self._keys.get(key)
        if kk is None:
            new_key, k = self._text(key)
            kinds = self._key_kinds.get(key)
            if kinds is None:
                kinds = self._key_kinds[key] = (patterns.is_credential_key(key), patterns.is_phone_key(key))
            if len(self._keys) >= _MEMO_MAX:
                self._keys.clear()
            content = key in self.content_keys or (not self.capture_content and key not in LABEL_KEYS)
            kk = self._keys[key] = (new_key, k, kinds[0], kinds[1], content)
        return kk

    def _walk_mapping(self, obj: Mapping[Any, Any], counter: list[int], in_content: bool,
                      own: frozenset[str]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        top = own is self.skip_keys
        keys, memo = self._keys, self._memo[False]
        by_keys, keep_content = self.enabled, self.capture_content
        for key, val in obj.items():
            if type(key) is not str and not isinstance(key, str):
                out[key] = self._walk(val, counter, in_content, _NO_KEYS)
                continue
            tv = type(val)
            if tv is not str and isinstance(val, str):  # a str subclass (a numpy.str_): the string it is
                val, tv = str(val), str
            if tv is str and key in own:
                red, k = self._text(val, own_id=True)
                counter[0] += k
                out[key] = red
                continue
            kk = keys.get(key)
            new_key, k, cred, phone, content = kk if kk is not None else self._key(key)
            if k:
                counter[0] += k
            if new_key in out:  # two keys redacted alike: keep both
                base, n = new_key, 2
                while new_key in out:
                    new_key, n = f"{base}#{n}", n + 1
            if tv is str:
                if (cred or phone) and by_keys:
                    by_key = self._by_key(key, val)
                    if by_key is not None:
                        out[new_key] = by_key
                        counter[0] += 1
                        continue
                if not keep_content and (in_content or content):
                    out[new_key] = content_placeholder(val)
                    continue
                hit = memo.get(val)
                red, k = hit if hit is not None else self._text(val)
                if k:
                    counter[0] += k
                out[new_key] = red
            elif (cred or phone) and by_keys and val and tv is not bool and (by_key := self._by_key(key, str(val))):
                out[new_key] = by_key  # (a number, a list or an object under the key: replaced whole)
                counter[0] += 1
            elif val is None or tv is int or tv is float or tv is bool:
                out[new_key] = val
            elif tv is list:
                child_own = SPAN_ID_KEYS if top and key == "spans" else _NO_KEYS
                out[new_key] = self._walk_items(val, counter, in_content or content, child_own) if val else []
            else:
                child_own = SPAN_ID_KEYS if top and key == "spans" else _NO_KEYS
                out[new_key] = self._walk(val, counter, in_content or content, child_own)
        return out

    def _by_key(self, key: str, val: str) -> str | None:
        """What a value becomes because of the key it is under (None: redact it as text)."""
        if not val.strip() or patterns.REFERENCE_VALUE.match(val.strip()):
            return None
        kinds = self._key_kinds.get(key) or self._key_kinds.setdefault(  # (keys repeat: classified once)
            key, (patterns.is_credential_key(key), patterns.is_phone_key(key)))
        if "API_KEY" in self.types and kinds[0]:
            return "[API_KEY]"
        if ("PHONE" in self.types and kinds[1] and re.fullmatch(r"[\d\s+().\-]+", val)
                and 7 <= sum(ch.isdigit() for ch in val) <= 15):
            return "[PHONE]"
        return None

    def placeholders(self) -> re.Pattern[str]:
        """The placeholders this redactor writes (:func:`labkit.patterns.placeholder_pattern`): what
        a phrase check of a text it redacted may find in place of a phrase."""
        tags = tuple(sorted({patterns.placeholder_tag(name) for name in self.extra_patterns}))
        return patterns.placeholder_pattern(tags, catalogue=self.enabled)

    def describe(self) -> dict[str, Any]:
        """The effective settings (for a manifest)."""
        return {
            "enabled": self.enabled,
            "capture_content": self.capture_content,
            "types": list(self.types),
            "extra_patterns": sorted(self.extra_patterns),
        }
