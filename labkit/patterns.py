"""The one catalogue of secret and personal-data formats.

Trace redaction (:mod:`labkit.trace.redact`), the readiness secrets scan
(:mod:`labkit.readiness.secrets`) and the redaction checklist item all read
this module, so a format is added or fixed once. It imports nothing from the
rest of labkit.

Each :class:`Pattern` names a ``kind`` (stable, e.g. ``openai_api_key``), the
``type`` of its placeholder (``[API_KEY]`` ...), a regex, and optionally a
validator that sees the match (Luhn for cards, mod-97 for IBANs, the context
of an IPv4 address, ...). A match's ``pre`` group, when the regex has one, is
context that is kept (``Bearer ``, ``AccountKey=``, ``https://``); the rest of
the match is the secret.

:data:`CATALOGUE` is in the order the formats must be applied: secrets first
(they hold digits a card or phone rule could eat), then e-mail, then the
numeric personal-data formats.

Beside the formats, the catalogue holds the secret *values* labkit itself read
(:func:`register_secret`: the API key behind an ``api_key_env``, the header values
and URL credentials of an endpoint config): whatever their format, they are found as ``environment_secret``
and become ``[API_KEY]`` wherever they appear (:func:`redact_literals`).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Placeholder types for secrets (a guardrail blocks an answer that holds one).
SECRET_TYPES: tuple[str, ...] = ("API_KEY", "TOKEN", "PRIVATE_KEY", "CARD", "IBAN")
#: Placeholder types for personal data (a guardrail masks them in an answer).
PII_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "IP", "SSN")
#: Every placeholder type, in the order a redactor applies them.
TYPES: tuple[str, ...] = ("PRIVATE_KEY", "API_KEY", "TOKEN", "EMAIL", "IBAN", "SSN", "CARD", "IP", "PHONE")
#: Types made of digits and separators: an id, hash or timestamp can look like one of them.
NUMERIC_TYPES: frozenset[str] = frozenset({"IBAN", "SSN", "CARD", "IP", "PHONE"})


@dataclass(frozen=True)
class Pattern:
    """One format: where it is found and what it becomes."""

    kind: str
    type: str
    regex: re.Pattern[str]
    #: a validator of the match (None: every match counts)
    check: Callable[[re.Match[str]], bool] | None = None
    #: a cheap test a text must pass before ``regex`` runs (None: always run)
    gate: re.Pattern[str] | None = None

    def valid(self, m: re.Match[str]) -> bool:
        return self.check is None or self.check(m)


@dataclass(frozen=True)
class Finding:
    """One valid match: its kind, type and span (``start`` after any kept context)."""

    kind: str
    type: str
    start: int
    end: int


# ---------------------------------------------------------------------------- validators

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


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _secret(m: re.Match[str]) -> str:
    return m.group(0)[m.end("pre") - m.start(0):] if "pre" in m.re.groupindex and m.group("pre") else m.group(0)


def _card_ok(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


def _iban_ok(m: re.Match[str]) -> bool:
    return iban_ok(m.group(0))


_VERSION_CONTEXT = re.compile(
    r"(?i)(?:\bv|\b(?:version|versions|ver|release|rel|build|rev|revision|update|upgrade|downgrade|patch|tag|"
    r"firmware|sdk|library|package|python|node|java|chrome|ios|android|os)\s*[:=#]?\s*)$"
)


def _ipv4_ok(m: re.Match[str]) -> bool:
    """Valid octets are in the regex; a dotted quad after a version word is a version, not an address."""
    return _VERSION_CONTEXT.search(m.string[max(0, m.start() - 24):m.start()]) is None


def _ipv6_ok(m: re.Match[str]) -> bool:
    """Eight groups, or a ``::`` form with a group of 3+ hex digits (``fe80::1``; not ``c::b``)."""
    groups = [g for g in re.split(r":+", m.group(0)) if g]
    if "::" not in m.group(0):
        return len(groups) == 8
    return bool(groups) and any(len(g) >= 3 for g in groups) and any(ch.isdigit() for ch in m.group(0))


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _key_start(m: re.Match[str]) -> int:
    """Where the whole key of a key-value match starts: after the ``?`` or ``&`` of a URL query
    parameter (group ``qs``), else at the key characters before the matched key word."""
    if m.group("qs") is not None:
        return m.end("qs")
    start = m.start()
    while start > 0 and m.string[start - 1] in _KEY_CHARS:
        start -= 1
    return start


def _assigned_ok(m: re.Match[str]) -> bool:
    """``key=value`` always; ``key: value`` in prose ("Password: open Settings") only when the key is
    code-like (quoted, ``DB_PASSWORD``, ``api-key``) or the value holds a digit or a symbol.

    The regex matches from the credential word on (fast); the whole key is read back from here.
    A value that is a type's name is labkit's own verdict (``secret:PRIVATE_KEY``), not a secret.
    """
    if m.group("v") in TYPES:
        return False
    start = _key_start(m)
    key = m.string[start:m.end("k")]
    quoted = start > 0 and m.string[start - 1] in "\"'"
    if m.group("sep") != ":" or quoted or re.search(r"[_.\-]", key) or key.isupper():
        return True
    value = m.group("v")
    return len(value) >= 6 and not value.isalpha()


_RANDOM = re.compile(r"[A-Za-z0-9+/=_\-.~]{12,}")
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{16,}")


def looks_random(value: str) -> bool:
    """A token that looks generated (a key, not a word): 12+ key characters mixing letters and digits."""
    return bool(_RANDOM.fullmatch(value)) and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


#: Key names whose values are ids, not secrets (labkit's own ``idempotency_key``, database keys).
_ID_KEY = re.compile(r"(?i)(?:idempotency|cache|dedup|sort|primary|partition|foreign|row|hash|range|object|"
                     r"lookup|group|join|index|map|dict|case|trace|run)[_.\-]?key$")


def _keyed_ok(m: re.Match[str]) -> bool:
    """A random-looking value after a key word that does not name an id (``idempotency_key``)."""
    key = m.string[_key_start(m):m.end("k")]
    return not _ID_KEY.search(key) and looks_random(m.group("v"))


def _auth_ok(m: re.Match[str]) -> bool:
    """An HTTP credential holds a digit or a token symbol, or is long (``Authorization: required`` is prose)."""
    v = m.group("v")
    return len(v) >= 16 or any(c.isdigit() or c in "+/=_-.~" for c in v)


def _phone_ok(m: re.Match[str]) -> bool:
    return 7 <= len(re.sub(r"\D", "", _secret(m))) <= 15


# ---------------------------------------------------------------------------- the formats

def _p(kind: str, type_: str, rx: str, check: Callable[[re.Match[str]], bool] | None = None,
       gate: str | None = None, flags: int = 0) -> Pattern:
    return Pattern(kind, type_, re.compile(rx, flags), check, re.compile(gate, re.I) if gate else None)


# Provider formats start with their literal prefix (fast to scan for) and then look behind it:
# ``AIza(?<![A-Za-z0-9]AIza)`` is "AIza not inside a longer word".
#: What a secret's value after a credential key may not start with: a placeholder, a scheme word
#: (``Bearer``, ``Basic``, or any word before a placeholder), an environment reference.
_VALUE_GUARD = r"(?!\[[A-Z_]+\])(?!(?:bearer|basic)\b)(?![A-Za-z][\w.\-]*\s+\[[A-Z_]+\])(?!\$\{?[A-Za-z_])(?!env:)"
#: What opens a parameter of a URL query (``?``, ``&``, HTML's ``&amp;``): kept as the group ``qs``.
_PARAM_START = r"(?P<qs>[?&]|&amp;)[A-Za-z0-9_.\-]*?"
#: The next parameter of a URL query or a form body (``&model=m``): the value before it ends there.
_NEXT_PARAM = r"&(?:amp;)?[A-Za-z0-9_.\-\[\]%]+="
#: A bare value runs to whitespace, a quote, a tag or the next parameter of a query or a form body,
#: whole otherwise (``Tr0ub4dor&3``), but does not end with sentence punctuation (``password=x1y2.``
#: keeps its period).
_BARE = rf"(?:(?!{_NEXT_PARAM})[^\s\"'<>]){{2,}}(?<![.,;:!?)\]}}])"
#: The value of a URL query parameter (a key after ``?`` or ``&``) also ends at any ``&`` and at
#: the fragment's ``#``: each parameter is judged on its own.
_PARAM_VALUE = r"[^\s\"'<>&#]{2,}(?<![.,;:!?)\]}])"
#: A quoted value runs to its closing quote (the group ``q`` holds the opening one).
_QUOTED = r"(?:(?!(?P=q))[^\r\n]){2,}"
#: A secret's value after a credential key and its separator, which may open a quote ``q``.
_VALUE = rf"{_VALUE_GUARD}(?(q){_QUOTED}|(?(qs){_PARAM_VALUE}|{_BARE}))"
#: A separator and an optional opening quote, kept as context.
_SEP = r"[\"']?\s*(?P<sep>[:=]|=>)\s*(?P<q>[\"'])?"
#: An HTTP credential after its scheme word: ``k=v`` parameters (Digest) or one token.
_AUTH_CRED = (r"(?:[\w\-]+=(?:\"[^\"\r\n]*\"|[^\s,\"]+)(?:\s*,\s*[\w\-]+=(?:\"[^\"\r\n]*\"|[^\s,\"]+))*"
              r"|[^\s\"'<>]{3,}[^\s\"'<>.,;:!?)\]}])")

#: Words that make a key name a credential (matched at the end of the key, any case):
#: ``api_key``, ``OPENAI_API_KEY``, ``DB_PASSWORD``, ``aws_secret_access_key``, ``clientSecret``.
CREDENTIAL_WORDS = (
    r"api[_\-]?key|apikey|secret(?:[_\-]?(?:access[_\-]?)?key)?|client[_\-]?secret|passw(?:or)?d|pwd|"
    r"(?:access|auth|refresh|id|session|bearer|api|csrf|oauth)[_\-]?token|token|authorization|"
    r"private[_\-]?key|access[_\-]?key(?:[_\-]?id)?|account[_\-]?key|signing[_\-]?key|master[_\-]?key|"
    r"encryption[_\-]?key|(?:basic[_\-]?)?auth|credentials?|webhook(?:[_\-]?url)?|connection[_\-]?string|dsn"
)
_CRED_KEY = re.compile(rf"(?i)(?:^|[^A-Za-z0-9]|(?<=[a-z])(?=[A-Z])|(?<=[a-z]))(?:{CREDENTIAL_WORDS})$")
_NOT_CRED_KEY = re.compile(r"(?i)(?:_env|-env|_name|_file|_path|_var|_ref|_id_env)$|^(?:max|num|n|input|output)_")
#: A cookie's name and its value (a bare value, not a placeholder, without trailing sentence punctuation).
_COOKIE_NAME = r"[A-Za-z0-9!#$%&*+^`|~_.\-]+"
_COOKIE_VALUE = r"(?!\[[A-Z_]+\])[^\s;,\"'<>]*[^\s;,\"'<>.!?)\]}]"
#: Key names that hold a phone number.
_PHONE_KEY = re.compile(r"(?i)(?:^|[_\-.])(?:phone|tel|telephone|mobile|cell|fax|msisdn)(?:[_\-.]?(?:no|num|number))?$")

CATALOGUE: tuple[Pattern, ...] = (
    _p("pem_private_key", "PRIVATE_KEY",
       r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
       r"(?: BLOCK)?-----|(?:[A-Za-z0-9+/=:\- \t\r\n]|\\n)*)", gate="PRIVATE KEY"),
    _p("slack_webhook", "API_KEY", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{8,}",
       gate="hooks.slack"),
    _p("discord_webhook", "API_KEY",
       r"https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d{5,30}/[A-Za-z0-9_\-]{20,}",
       gate="discord"),
    # an age identity: its prefix, then 58 characters of the bech32 alphabet (no 1, B, I, O)
    _p("age_secret_key", "PRIVATE_KEY",
       r"AGE-SECRET-KEY-1(?<![A-Za-z0-9]AGE-SECRET-KEY-1)[02-9AC-HJ-NP-Z]{58}(?![A-Za-z0-9])",
       gate="age-secret-key-1"),
    _p("anthropic_api_key", "API_KEY", r"sk-ant-(?<![A-Za-z0-9]sk-ant-)[A-Za-z0-9_\-]{20,}", gate="sk-"),
    _p("openai_api_key", "API_KEY", r"sk-(?<![A-Za-z0-9]sk-)(?!ant-)(?:proj-|live-|svcacct-)?[A-Za-z0-9_\-]{20,}", gate="sk-"),
    _p("aws_access_key_id", "API_KEY", r"(?:AKIA|ASIA)(?<![A-Za-z0-9]AKIA)(?<![A-Za-z0-9]ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])", gate="akia|asia"),
    _p("github_token", "API_KEY", r"(?:gh[pousr]_(?<![A-Za-z0-9]gh[pousr]_)[A-Za-z0-9]{30,}|github_pat_(?<![A-Za-z0-9]github_pat_)[A-Za-z0-9_]{22,})",
       gate="gh[pousr]_|github_pat_"),
    _p("google_api_key", "API_KEY", r"AIza(?<![A-Za-z0-9]AIza)[0-9A-Za-z_\-]{35}", gate="aiza"),
    _p("slack_token", "API_KEY", r"xox[abposr]-(?<![A-Za-z0-9]xox[abposr]-)[A-Za-z0-9\-]{10,}", gate="xox"),
    _p("stripe_secret_key", "API_KEY", r"[srp]k_(?:live|test)_(?<![A-Za-z0-9][srp]k_live_)(?<![A-Za-z0-9][srp]k_test_)[A-Za-z0-9]{16,}", gate="_live_|_test_"),
    _p("huggingface_token", "API_KEY", r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{30,}", gate="hf_"),
    _p("gitlab_token", "API_KEY", r"glpat-(?<![A-Za-z0-9]glpat-)[A-Za-z0-9_\-]{20,}", gate="glpat-"),
    _p("npm_token", "API_KEY", r"npm_(?<![A-Za-z0-9]npm_)[A-Za-z0-9]{30,}", gate="npm_"),
    _p("pypi_token", "API_KEY", r"pypi-(?<![A-Za-z0-9]pypi-)AgE[A-Za-z0-9_\-]{50,}", gate="pypi-"),
    _p("groq_api_key", "API_KEY", r"gsk_(?<![A-Za-z0-9]gsk_)[A-Za-z0-9]{48,}", gate="gsk_"),
    _p("xai_api_key", "API_KEY", r"xai-(?<![A-Za-z0-9]xai-)[A-Za-z0-9]{70,}", gate="xai-"),
    _p("replicate_token", "API_KEY", r"r8_(?<![A-Za-z0-9]r8_)[A-Za-z0-9]{32,}", gate="r8_"),
    _p("sendgrid_api_key", "API_KEY",
       r"SG\.(?<![A-Za-z0-9]SG\.)[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])", gate=r"sg\."),
    # formats of hex digits are whole words of their exact length: a longer hex run (a digest) is not one
    _p("twilio_api_key", "API_KEY", r"SK(?<![A-Za-z0-9]SK)[0-9a-fA-F]{32}(?![A-Za-z0-9])", gate="sk"),
    _p("databricks_token", "API_KEY", r"dapi(?<![A-Za-z0-9]dapi)[0-9a-f]{32}(?:-\d)?(?![A-Za-z0-9])", gate="dapi"),
    _p("digitalocean_token", "API_KEY", r"do[opr]_v1_(?<![A-Za-z0-9]do[opr]_v1_)[0-9a-f]{64}(?![A-Za-z0-9])",
       gate="_v1_"),
    _p("shopify_token", "API_KEY",
       r"shp(?:at|ss|ca|pa)_(?<![A-Za-z0-9]shp[a-z]{2}_)[0-9a-fA-F]{32}(?![A-Za-z0-9])", gate="shp"),
    # 32 key characters with a digit and a letter past f (a hex digest after "key-" is not one)
    _p("mailgun_api_key", "API_KEY",
       r"key-(?<![A-Za-z0-9]key-)(?=[0-9a-zA-Z]*[g-zG-Z])(?=[a-zA-Z]*[0-9])[0-9a-zA-Z]{32}(?![A-Za-z0-9])",
       gate="key-"),
    _p("telegram_bot_token", "API_KEY", r"(?<![\w:])\d{5,16}:AA[A-Za-z0-9_\-]{33}(?![\w\-])", gate=":aa"),
    _p("azure_account_key", "API_KEY", r"(?i)(?P<pre>\b(?:Account|Shared)Key\s*=\s*)[A-Za-z0-9+/]{16,}={0,2}",
       gate="key"),
    # the signature of an Azure shared access signature URL (``?sv=...&sig=<base64>``, percent-escaped or not)
    _p("azure_sas_signature", "TOKEN", r"(?P<pre>(?:[?&]|&amp;)sig=)[A-Za-z0-9%+/=]{20,}", gate="sig="),
    _p("google_oauth_token", "TOKEN", r"ya29\.(?<![A-Za-z0-9]ya29\.)[A-Za-z0-9_\-]{10,}", gate="ya29"),
    _p("vault_token", "TOKEN", r"hv[sbr]\.(?<![A-Za-z0-9]hv[sbr]\.)[A-Za-z0-9_\-]{24,}", gate=r"hv[sbr]\."),
    _p("bearer_token", "TOKEN", r"(?i)(?P<pre>\bbearer\s+)(?!\[)[A-Za-z0-9._~+/=\-]{7,}[A-Za-z0-9_~+/=\-]",
       gate="bearer"),
    _p("basic_auth", "TOKEN", r"(?i)(?P<pre>\bbasic\s+)(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}",
       gate="basic"),
    # the user information of a URL, whatever it holds (``user:password``, ``:password``, a token as
    # the user ``TOKEN``): what lies between ``://`` and the ``@`` before the host, inside the authority
    # (no ``/ ? #``, no quote or tag: an ``@`` of the path, the query or the text after is not one)
    _p("url_credentials", "TOKEN", r"(?i)(?P<pre>\b[a-z][a-z0-9+.\-]*://)[^\s/?#@\[\]\"'<>\\]+(?=@)", gate="://"),
    _p("jwt", "TOKEN", r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}", gate="eyj"),
    # any scheme (Token, ApiKey, Digest, Negotiate ...); Bearer and Basic are replaced above
    _p("authorization_header", "TOKEN",
       rf"(?i)(?P<pre>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?>(?:[A-Za-z][\w.\-]{{0,40}}\s+)?))"
       rf"(?!\[[A-Z_]+\])(?P<v>{_AUTH_CRED})", _auth_ok, gate="authorization"),
    # ``Cookie: a=1; b=2``: the first name kept, the rest of the header replaced; ``Set-Cookie:``
    # the cookie's value only (its attributes ``Path=/; HttpOnly`` are kept)
    _p("cookie_header", "TOKEN",
       rf"(?i)(?P<pre>(?<![\w\-])(?P<set>set-)?cookie[\"']?\s*:\s*[\"']?{_COOKIE_NAME}=)"
       rf"(?P<v>{_COOKIE_VALUE}(?(set)|(?:\s*;\s*{_COOKIE_NAME}={_COOKIE_VALUE})*))", _auth_ok, gate="cookie"),
    # (a key that opens a URL query parameter, after ``?`` or ``&``, is matched from there: ``qs``)
    _p("assigned_secret", "API_KEY",
       rf"(?i)(?P<pre>(?:{_PARAM_START})?(?P<k>{CREDENTIAL_WORDS}){_SEP})(?P<v>{_VALUE})", _assigned_ok,
       gate=r"[:=]"),
    # ``key=<random>``, ``licenseKey: <random>``: a bare "key" word needs a value that looks random
    _p("keyed_secret", "API_KEY",
       rf"(?P<pre>(?:{_PARAM_START})?(?P<k>(?<![A-Za-z0-9])(?i:key)|(?<=[a-z])Key){_SEP})(?P<v>{_VALUE})",
       _keyed_ok, gate=r"key[\"']?\s*(?:[:=])"),
    _p("email", "EMAIL", r"(?<![\w.+\-])[\w.%+\-]+@[^\W_][\w\-]*(?:\.[^\W_][\w\-]*)*\.[^\W\d_]{2,}(?![\w\-])",
       gate="@"),
    _p("iban", "IBAN", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _iban_ok, gate=r"[A-Z]{2}\d\d"),
    _p("us_ssn", "SSN", r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])", gate=r"\d-\d"),
    _p("card", "CARD",
       r"(?<![\w.\-])(?:\d{13,19}|\d{4}(?P<s>[ .\-])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
       r"|\d{4}(?P<t>[ .\-])\d{6}(?P=t)\d{4,5}|\d(?:[ \-]?\d){12,18})(?![\w\-]|\.\d)", _card_ok,
       gate=r"\d(?:[ .\-]?\d){12}"),  # (13 digits at least, one separator at most between two)
    _p("ipv4", "IP", r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
       r"(?![\w\-+]|\.\d)", _ipv4_ok, gate=r"\d\.\d"),
    _p("ipv6", "IP", r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
       r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?"
       r"|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![\w:])", _ipv6_ok, gate=r"[0-9a-f]?:[0-9a-f]{0,4}:"),
    _p("phone", "PHONE",
       r"(?<![\w.\-+])(?:"
       r"\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}"  # +44 20 7946 0958
       r"|\(\d{2,4}\)[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}"  # (555) 123-4567
       r"|\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"  # 555-123-4567, 555.123.4567
       r")(?![\w\-]|\.\d)"
       r"|(?i:(?P<pre>\b(?:phone|tel|telephone|mobile|cell|call|fax|sms|text|whatsapp|ring|dial)"
       r"(?:\s*(?:no\.?|number|#))?\s*[:=]?\s*))\d{7,15}(?![\w\-]|\.\d)", _phone_ok,
       gate=r"\d(?:\D{0,3}\d){6}"),  # (a valid number has 7 digits at least, 3 characters at most between two)
)

#: A necessary condition for any format of the catalogue to match a text, as one cheap search: every
#: format holds a digit or one of ``@ : = _ - .``, or starts ``AKIA``/``ASIA``/``AIza``/``SK``/
#: ``dapi``, or follows ``Bearer``/``Basic``. A text it does not find (most keys, words, hex ids)
#: skips the whole catalogue.
#: A new format that needs none of these must be added here (tests/test_patterns.py checks each sample).
MAY_MATCH = re.compile(r"[\d@:=_\-.]|akia|asia|aiza|sk|dapi|bearer|basic", re.I)
#: The same for the formats that are not numeric (:data:`NUMERIC_TYPES`): none needs a digit.
MAY_MATCH_NON_NUMERIC = re.compile(r"[@:=_\-.]|akia|asia|aiza|sk|dapi|bearer|basic", re.I)

KINDS: tuple[str, ...] = tuple(p.kind for p in CATALOGUE)
#: Names of the placeholders ``[TYPE]`` the catalogue writes.
PLACEHOLDERS: tuple[str, ...] = tuple(f"[{t}]" for t in TYPES)
def placeholder_tag(name: str) -> str:
    """The tag of the placeholder ``[TAG]`` an extra redaction pattern called ``name`` writes: the
    name in capitals, every character but A-Z, 0-9 and _ as _."""
    return re.sub(r"[^A-Z0-9_]", "_", str(name).upper())


@functools.lru_cache(maxsize=64)
def placeholder_pattern(extra_tags: tuple[str, ...] = (), *, catalogue: bool = True) -> re.Pattern[str]:
    """The placeholders a redactor writes in place of what it hides (group 1: what is inside the
    brackets): ``[CONTENT len=… sha256=…]`` (a content field left out), each catalogue type's
    ``[TYPE]`` (``catalogue``: redaction on) and ``[TAG]`` of each extra pattern's tag. Bracketed
    capitals it never writes (``[DOC1]``, ``[NOTE]``) are text."""
    tags = sorted({*(TYPES if catalogue else ()), *extra_tags})
    return re.compile(r"\[(CONTENT len=\d+ sha256=[0-9a-f]{12}" + "".join("|" + re.escape(t) for t in tags) + r")\]")


#: What each placeholder type may have replaced (for "could this phrase hide behind it").
TYPE_CHARS: dict[str, str] = {
    "PRIVATE_KEY": r"[\s\S]", "API_KEY": r"[^\s]", "TOKEN": r"[^\s]", "EMAIL": r"[\w.%+\-@]",
    "IBAN": r"[A-Za-z0-9 ]", "SSN": r"[\d\-]", "CARD": r"[\d .\-]", "IP": r"[0-9A-Fa-f.:]",
    "PHONE": r"[\d\s+().\-]",
}


def patterns_of(types: Iterable[str]) -> list[Pattern]:
    """The catalogue's patterns of the given types, in application order."""
    wanted = set(types)
    return [p for p in CATALOGUE if p.type in wanted]


def secret_part(m: re.Match[str]) -> tuple[int, int]:
    """The span of a match without its kept context (``pre`` group)."""
    if "pre" in m.re.groupindex and m.group("pre") is not None:
        return m.end("pre"), m.end()
    return m.start(), m.end()


#: Characters that show nothing (the soft hyphen, zero-width spaces and joiners, direction marks,
#: word joiners, the byte order mark): a secret written with one inside reads as the secret.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
#: Spaces other than the ASCII one (no-break, thin, ideographic ...): a card grouped by them reads as grouped.
_WIDE_SPACE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_PERCENT_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")
#: The full-width forms of ASCII ``!`` to ``~`` (U+FF01 to U+FF5E), as those characters. (Not all of
#: NFKC: it also reads ``…`` as ``...`` and ``²`` as ``2``, which a reader does not take for them.)
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}


def revealed(text: str) -> str | None:
    """``text`` as a reader takes it: percent escapes decoded (as in a URL), full-width forms read as
    the ASCII characters they are wide forms of (``ｓｋ-`` reads ``sk-``), invisible characters left
    out, other spaces read as spaces, and the quotes of JSON written inside a string (``\\"``,
    an HTTP body logged in a message, at any depth of escaping) read as quotes; None when that is
    ``text`` itself."""
    shown = text
    if "%" in shown and _PERCENT_ESCAPE.search(shown) is not None:
        from urllib.parse import unquote

        shown = unquote(shown)
    if not shown.isascii():
        shown = _WIDE_SPACE.sub(" ", _INVISIBLE.sub("", shown.translate(_FULL_WIDTH)))
    while '\\"' in shown:  # (each pass takes one backslash off each escaped quote)
        shown = shown.replace('\\"', '"')
    return None if shown == text else shown


def find(text: str, types: Iterable[str] = TYPES) -> list[Finding]:
    """Every valid match of the catalogue in ``text`` (overlaps allowed; no replacement),
    the registered environment secrets included (as ``API_KEY``)."""
    out: list[Finding] = []
    types = tuple(types)
    rx = _literals.regex
    if rx is not None and "API_KEY" in types:
        out.extend(Finding("environment_secret", "API_KEY", m.start(), m.end()) for m in rx.finditer(text))
    for p in patterns_of(types):
        if p.gate is not None and p.gate.search(text) is None:
            continue
        for m in p.regex.finditer(text):
            if p.valid(m):
                s, e = secret_part(m)
                out.append(Finding(p.kind, p.type, s, e))
    return out


def find_shown(text: str, types: Iterable[str] = TYPES) -> list[Finding]:
    """:func:`find` in ``text`` as it shows (:func:`revealed`; the positions are in that reading):
    what a scan of a file finds, as redaction would."""
    return find(revealed(text) or text, types)


#: How far either side of a cut :func:`safe_cut` looks for a value the cut would go through: far
#: longer than any value of the catalogue (a PEM private key of 4,096 bits is about 3,300).
CUT_WINDOW = 1 << 16


def safe_cut(text: str, limit: int) -> int:
    """Where to cut ``text`` to at most ``limit`` characters without cutting through a value of the
    catalogue (a cut through a key would leave its first characters, too few to be matched
    again, to be written as they are): ``limit``, or the start of the value it falls in. Only
    :data:`CUT_WINDOW` characters either side of the limit are searched (a value through the cut
    lies there), so a runaway text costs what its cut does, not its length."""
    if len(text) <= limit:
        return len(text)
    lo = max(0, limit - CUT_WINDOW)
    cut = limit
    for f in find(text[lo:limit + CUT_WINDOW]):  # (only texts long enough to be cut pay for the search)
        if f.start + lo < cut < f.end + lo:
            cut = f.start + lo
    return cut


def is_credential_key(key: str) -> bool:
    """Whether a mapping key or config key names a credential (``DB_PASSWORD``, ``clientSecret``)."""
    return bool(_CRED_KEY.search(key)) and not _NOT_CRED_KEY.search(key)


def is_phone_key(key: str) -> bool:
    """Whether a mapping key names a phone number (``phone``, ``mobile_number``)."""
    return bool(_PHONE_KEY.search(key))


#: A value that names where a secret is rather than holding it: env references, placeholders.
REFERENCE_VALUE = re.compile(
    r"""^["']?(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|env:[A-Za-z_][A-Za-z0-9_]*|<[^>]*>|\*+|\[[A-Z_]+\]|)["']?$"""
)


# ---------------------------------------------------------------------------- secrets labkit read

#: A value shorter than this is not registered (it would erase common words, and no key is that short).
MIN_SECRET_CHARS = 8
#: What a registered secret becomes.
LITERAL_PLACEHOLDER = "[API_KEY]"


class _Literals:
    """The registered secret values and one regex over them (longest first), swapped whole."""

    def __init__(self) -> None:
        self.values: frozenset[str] = frozenset()
        self.regex: re.Pattern[str] | None = None
        self.version = 0
        self.lock = threading.Lock()

    def add(self, value: str) -> None:
        with self.lock:
            if value in self.values:
                return
            values = self.values | {value}
            self.regex = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
            self.values = values
            self.version += 1


_literals = _Literals()


def register_secret(value: object) -> None:
    """Record a secret value labkit read (an API key from the environment): from now on every
    redactor of this process replaces it with ``[API_KEY]`` wherever it appears, whatever its
    format. Values shorter than :data:`MIN_SECRET_CHARS` are ignored."""
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_CHARS:
        _literals.add(value.strip())


def secrets_version() -> int:
    """Changes each time a secret is registered (lets a redactor drop what it memoised)."""
    return _literals.version


def redact_literals(text: str) -> tuple[str, int]:
    """``text`` with every registered secret replaced by ``[API_KEY]``, and how many were."""
    rx = _literals.regex
    if rx is None:
        return text, 0
    return rx.subn(LITERAL_PLACEHOLDER, text)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def looks_like_env_name(name: object) -> bool:
    """Whether ``name`` looks like the NAME of an environment variable (``OPENAI_API_KEY``,
    ``LEAK_KEY``) rather than a key pasted in its place: an identifier, no known secret format,
    and not a long run mixing letters and digits without an underscore."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        return False
    if find(name, SECRET_TYPES):
        return False
    return "_" in name or len(name) < 16 or not looks_random(name)


def safe_to_echo(value: object) -> bool:
    """Whether a configured value may be quoted in an error message: short, no known secret
    format, no registered secret, no generated-looking token."""
    if not isinstance(value, str) or len(value) > 200 or find(value, SECRET_TYPES):
        return False
    return not any(looks_random(m.group(0)) for m in _RANDOM_RUN.finditer(value))
