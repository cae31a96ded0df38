"""The strings a redactor has certified it leaves as they are, and the fast path they allow:
:meth:`labkit.trace.redact.Redactor.dumps_line` writes a record whose every string is
certified from its one JSON serialisation, without walking it (docs/traces.md "Cheap when
nothing is secret"). Certifying is the redactor's own :meth:`~labkit.trace.redact.Redactor.redact_text`
on the string, so no second set of rules decides what is secret."""

from __future__ import annotations

import functools
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
    None; keys of any type orjson writes as strings): a subclass of them, a dataclass or a
    datetime raises TypeError instead of being written."""
    global _STRICT
    if _STRICT is None:
        try:
            import orjson
        except ImportError:  # (a core dependency): without it every record walks
            _STRICT = False
            raise TypeError("orjson is not installed") from None
        _STRICT = functools.partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
                                    | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME)
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
        self.strings: set[str] = set()

    def clear(self) -> None:
        self.strings.clear()

    def unchanged_json(self, obj: Any) -> bytes | None:
        """orjson's compact JSON of ``obj`` when :meth:`redact` would return an equal copy of it
        (then the copy's JSON is these bytes), else None ("it may change": walk it).

        The check, one serialisation and a few set operations per record: ``obj`` is a dict
        of plain JSON types (str, int, float, bool, None, dict, list, tuple: anything else
        fails orjson's strict options); every string in it, every key and every value at
        any depth, is one this redactor has certified with :meth:`redact_text` to come out
        as it went in and to be no credential or phone key (so no key steers a value); the
        values of labkit's own id fields at their own position, which the walk redacts
        without the numeric formats, are certified with that lesser treatment or the full
        one. Certified strings are remembered (:data:`_CLEAN_MAX`). The strings are read
        from the JSON text split at its quotes, which holds when it has no escape at all; a
        text with one (a quote, a backslash, a control character in a string) walks.
        """
        if type(obj) is not dict:
            return None
        view, own = self._gate_view(obj)
        try:
            raw = _strict_json(obj)
            text = str(_strict_json(view), "utf-8") if view is not obj else str(raw, "utf-8")
        except TypeError:  # a type the walk may treat otherwise (a subclass, a dataclass, ...)
            return None
        if "\\" in text:
            return None
        clean = self.strings
        strings = set(text.split('"')[1::2])
        strings.difference_update(clean)
        for s in strings:
            if not self._certify(s, own_id=False):
                return None
        rest = set(own).difference(clean)
        if rest and not self._plain_ids("\x00".join(rest)):
            for s in rest:
                if not self._certify(s, own_id=True):
                    return None
        return raw

    def _plain_ids(self, joined: str) -> bool:
        """Whether own id values (joined by NULs) hold neither a registered secret nor anything
        the formats an own id field is redacted with need (:data:`labkit.patterns.MAY_MATCH_NON_NUMERIC`,
        which finds in the joined text whatever it finds in one of them): then
        :meth:`redact_text` returns each as it is, at its first step."""
        return (self.red._prefilter and patterns.redact_literals(joined)[1] == 0
                and patterns.MAY_MATCH_NON_NUMERIC.search(joined) is None)

    def _gate_view(self, obj: dict[Any, Any]) -> tuple[dict[Any, Any], list[str]]:
        """``obj`` with the string values of its own id fields (top level, and the items of a
        top-level ``spans`` list) blanked, and those values: they are certified apart."""
        own: list[str] = []
        view = _blanked(obj, self.red.skip_keys, own)
        spans = obj.get("spans")
        if type(spans) is list and spans:
            if view is obj:
                view = dict(obj)
            view["spans"] = [_blanked(item, self.span_keys, own) if type(item) is dict else item
                             for item in spans]
        return view, own

    def _certify(self, s: str, *, own_id: bool) -> bool:
        """Whether ``s`` comes out of :meth:`redact_text` as it went in (``own_id``: with the
        treatment of an own id field) and, as a key, would steer no value. A string certified
        with the full treatment is remembered: the lesser one applies a subset of its rules."""
        text, n = self.red.redact_text(s, own_id=own_id)
        if n or text != s:
            return False
        if own_id:
            return True
        if self.red.enabled and _may_steer(s):
            return False
        if len(s) <= _CLEAN_CHARS:  # (a long text rarely repeats: certified again when it does)
            if len(self.strings) >= _CLEAN_MAX:
                self.strings.clear()
            self.strings.add(s)
        return True


def _blanked(obj: dict[Any, Any], keys: Any, own: list[str]) -> dict[Any, Any]:
    """``obj`` (a copy only when something changes) with the non-empty string value of each of
    ``keys`` blanked; those values are appended to ``own``."""
    out = obj
    for k in keys:
        v = obj.get(k)
        if type(v) is str and v:
            if out is obj:
                out = dict(obj)
            own.append(v)
            out[k] = ""
    return out
