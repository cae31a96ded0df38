"""The strings a redactor has certified it leaves as they are, and the fast path they allow:
:meth:`labkit.trace.redact.Redactor.dumps_line` writes a record whose every string (read from
the record once, each with the treatment its position gets) is certified as its one JSON
serialisation, without the walk's copy (docs/traces.md "Cheap when nothing is secret"). Certifying is the redactor's own :meth:`~labkit.trace.redact.Redactor.redact_text`
on the string, so no second set of rules decides what is secret."""

from __future__ import annotations

import functools
from collections.abc import Container
from typing import Any

from labkit import patterns

__all__ = ["Certified"]

#: How many distinct strings are remembered as certified unchanged (then it starts over).
_CLEAN_MAX = 16384
#: ... each of at most this many characters (so that together they hold a few MB at most).
_CLEAN_CHARS = 256

_STRICT: Any = None

#: Every credential key (:func:`labkit.patterns.is_credential_key`) and phone key ends with a
#: credential or phone word, which holds one of these (the words are ASCII; a key that is not
#: ASCII is asked the catalogue's own questions).
_STEER_PARTS = ("key", "secret", "passw", "pwd", "token", "auth", "credential", "webhook", "connection",
                "dsn", "phone", "tel", "mobile", "cell", "fax", "msisdn")
#: The longest credential or phone word, with its separators, and a margin.
_STEER_TAIL = 48


def _may_steer(key: str) -> bool:
    """Whether ``key`` may be a credential or phone key, whose string value is replaced whatever
    it holds (False only when it is neither; cheap on the common, plain ASCII key)."""
    if key.isascii():
        tail = key[-_STEER_TAIL:].lower()
        if not any(w in tail for w in _STEER_PARTS):
            return False
    return patterns.is_credential_key(key) or patterns.is_phone_key(key)


def _strict_json(obj: Any) -> bytes:
    """orjson's compact JSON of plain JSON types only (dict, list, tuple, str, int, float, bool,
    None; string keys): a subclass of them, a dataclass, a datetime or a key that is not a
    string raises TypeError instead of being written. (Without ``OPT_NON_STR_KEYS``, about 1 us
    of a trace record's 5: a record with a key that is not a string walks whatever this says,
    and with string keys only both write the same bytes.)"""
    global _STRICT
    if _STRICT is None:
        try:
            import orjson
        except ImportError:  # (a core dependency): without it every record walks
            _STRICT = False
            raise TypeError("orjson is not installed") from None
        _STRICT = functools.partial(orjson.dumps, option=orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
                                    | orjson.OPT_PASSTHROUGH_DATETIME)
    if _STRICT is False:
        raise TypeError("orjson is not installed")
    out: bytes = _STRICT(obj)
    return out


class Certified:
    """The strings ``red`` (a :class:`~labkit.trace.redact.Redactor`) certified: they come out of
    its :meth:`redact_text` as they went in and, as keys, steer no value."""

    def __init__(self, red: Any, span_keys: frozenset[str]) -> None:
        self.red = red
        #: labkit's own id fields in each item of a top-level ``spans`` list
        self.span_keys = span_keys
        #: values certified with the full treatment (any position)
        self.strings: set[str] = set()
        #: mapping keys certified with the full treatment that are no credential or phone key
        self.keys: set[str] = set()
        #: values certified with the treatment of an own id field only (at their own position)
        self.own_strings: set[str] = set()

    def clear(self) -> None:
        self.strings.clear()
        self.keys.clear()
        self.own_strings.clear()

    def unchanged_json(self, obj: Any) -> bytes | None:
        """orjson's compact JSON of ``obj`` when :meth:`redact` would return an equal copy of it
        (then the copy's JSON is these bytes), else None ("it may change": walk it).

        The check, one serialisation and one read of the record: ``obj`` is a dict of plain
        JSON types (exactly str, int, float, bool, None, dict, list, tuple, with string
        keys: anything else walks); every string in it, every key and every value at any
        depth, is one this redactor has certified with :meth:`redact_text` to come out as it
        went in, and every key is no credential or phone key (so no key steers a value); the
        string values of labkit's own id fields at their own position (the top level, and
        the dict items of a top-level ``spans`` list), which the walk redacts without the
        numeric formats, are certified with that lesser treatment or the full one. Certified
        strings are remembered (:data:`_CLEAN_MAX`). A record whose JSON has an escape (a
        quote, a backslash, a control character in a string) walks.
        """
        if type(obj) is not dict:
            return None
        try:  # (first: it refuses what nests past 255 levels before the read below recurses into it)
            raw = _strict_json(obj)
        except TypeError:  # (a subclass, an integer past 64 bits, a key or string orjson refuses: the walk decides)
            return None
        if b"\\" in raw:  # an escape (a quote, a backslash, a control character in a string): walked
            return None
        new = _New()
        if not _read_top(obj, self, new):
            return None
        keys, clean = self.keys, self.strings
        for k in new.keys:
            if k not in keys and not self._certify_key(k):
                return None
        for s in new.values:
            if s not in clean and not self._certify(s, own_id=False):
                return None
        if new.own and not self._own_ids_unchanged(new.own):
            return None
        return raw

    def _own_ids_unchanged(self, own: list[str]) -> bool:
        """Whether each own id value comes out of :meth:`redact_text` with the treatment of an
        own id field as it went in. A lowercase hex value (a trace or span id, a hash) holding
        no registered secret does, at the first step: no format that treatment applies can
        match it (:data:`labkit.patterns.MAY_MATCH_NON_NUMERIC` needs one of ``@:=_-.`` or a
        word with a letter past ``f``); any other value is asked :meth:`redact_text`."""
        clean, mine = self.strings, self.own_strings
        pending = [s for s in own if s not in mine and s not in clean]
        if not pending:
            return True
        red = self.red
        if patterns.redact_literals("\x00".join(pending))[1]:
            return False  # (a registered secret in one of them: it changes)
        plain = red._prefilter and not red._lead
        for s in pending:
            if plain and not s.strip(_HEX):
                continue
            if not self._certify(s, own_id=True):
                return False
        return True

    def own_id_unchanged(self, s: str) -> bool:
        """Whether ``s``, the value of one of labkit's own id fields, comes out of :meth:`redact_text`
        with that field's treatment as it went in (remembered when it does)."""
        return s in self.own_strings or s in self.strings or self._certify(s, own_id=True)

    def _certify_key(self, key: str) -> bool:
        """Whether ``key`` comes out of :meth:`redact_text` as it went in and steers no value
        (it is no credential or phone key); remembered when it does."""
        if self.red.enabled and _may_steer(key):
            return False
        if key not in self.strings and not self._certify(key, own_id=False):
            return False
        if len(key) <= _CLEAN_CHARS:
            if len(self.keys) >= _CLEAN_MAX:
                self.keys.clear()
            self.keys.add(key)
        return True

    def _certify(self, s: str, *, own_id: bool) -> bool:
        """Whether ``s`` comes out of :meth:`redact_text` as it went in (``own_id``: with the
        treatment of an own id field). Certified strings are remembered, each with its
        treatment: the lesser one applies a subset of the full one's rules, so a string
        certified with the full one is certified for both."""
        text, n = self.red.redact_text(s, own_id=own_id)
        if n or text != s:
            return False
        if len(s) <= _CLEAN_CHARS:  # (a long text rarely repeats: certified again when it does)
            kept = self.own_strings if own_id else self.strings
            if len(kept) >= _CLEAN_MAX:
                kept.clear()
            kept.add(s)
        return True


#: The characters of a lowercase hex id or hash.
_HEX = "0123456789abcdef"


class _New:
    """What a read of a record found not yet certified."""

    __slots__ = ("keys", "own", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        #: string values of own id fields at their own position
        self.own: list[str] = []
        self.values: list[str] = []


def _read_top(obj: dict[Any, Any], cert: Certified, new: _New) -> bool:
    """Read a record as the walk does: the keys and values not yet certified go to ``new``,
    the string values of its own id fields (the redactor's ``skip_keys`` at the top level,
    ``span_keys`` in the dict items of a top-level ``spans`` list) to ``new.own``. False when
    a value or key is not of a plain JSON type (the walk may treat it otherwise)."""
    return _read_fields(obj, cert.red.skip_keys, cert, new, top=True)


def _read_spans(spans: Any, cert: Certified, new: _New) -> bool:
    """The top-level ``spans`` list: in each dict item, ``span_keys`` are own id fields."""
    for item in spans:
        if type(item) is not dict:
            if not _read_items((item,), cert.keys, cert.strings, new):
                return False
        elif not _read_fields(item, cert.span_keys, cert, new, top=False):
            return False
    return True


def _read_fields(obj: dict[Any, Any], own_keys: Container[str], cert: Certified, new: _New, *, top: bool) -> bool:
    """One object's fields (``own_keys``: its own id fields; ``top``: the record itself, whose
    ``spans`` list holds span objects)."""
    keys, clean = cert.keys, cert.strings
    if not obj.keys() <= keys and not _new_keys(obj, keys, new):
        return False
    for k, v in obj.items():
        t = type(v)
        if t is str:
            if v in clean:
                continue
            if k in own_keys:
                new.own.append(v)
            else:
                new.values.append(v)
        elif v is None or t is int or t is float or t is bool:
            continue
        elif t is dict:  # (containers dispatched here, not as a one-item _read_items: the hot path)
            if not _read(v, keys, clean, new):
                return False
        elif t is list or t is tuple:
            if not (_read_spans(v, cert, new) if top and k == "spans" else _read_items(v, keys, clean, new)):
                return False
        else:
            return False
    return True


def _new_keys(obj: dict[Any, Any], keys: set[str], new: _New) -> bool:
    """The keys of ``obj`` not yet certified, to ``new.keys``; False when one is not a string."""
    for k in obj:
        if type(k) is not str:
            return False
        if k not in keys:
            new.keys.append(k)
    return True


def _read(obj: dict[Any, Any], keys: set[str], clean: set[str], new: _New) -> bool:
    """A dict below the top level: every key and string value is redacted alike."""
    # (the common case, every key certified, in one set operation)
    if not obj.keys() <= keys and not _new_keys(obj, keys, new):
        return False
    return _read_items(obj.values(), keys, clean, new)


def _read_items(items: Any, keys: set[str], clean: set[str], new: _New) -> bool:
    """The items of a list or tuple, or the values of a dict, below the top level."""
    for v in items:
        t = type(v)
        if t is str:
            if v not in clean:
                new.values.append(v)
        elif v is None or t is int or t is float or t is bool:
            continue
        elif t is dict:
            if not _read(v, keys, clean, new):
                return False
        elif t is list or t is tuple:
            if not _read_items(v, keys, clean, new):
                return False
        else:
            return False
    return True
