"""The provider, URL and header secret kinds of the catalogue: each is found as its kind and
redacted in a sentence with its placeholder, and none fires on ordinary text, hex digests, ids or
labkit's own shipped data and docs."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from labkit import patterns
from labkit.trace.redact import Redactor

pytestmark = pytest.mark.usefixtures("time_bound")

ROOT = Path(__file__).resolve().parents[1]
R = Redactor()

_HEX32 = "0123456789abcdef" * 2
_HEX64 = _HEX32 * 2
_B64 = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"  # (40 mixed key characters)

#: kind: (placeholder, the text, what it reads redacted). All values are synthetic.
CASES: dict[str, tuple[str, str, str]] = {
    "groq_api_key": ("API_KEY", f"use gsk_{_B64}{_B64[:12]} for the lab", "use [API_KEY] for the lab"),
    "xai_api_key": ("API_KEY", f"use xai-{_B64 * 2} for the lab", "use [API_KEY] for the lab"),
    "replicate_token": ("API_KEY", f"use r8_{_B64[:37]} for the lab", "use [API_KEY] for the lab"),
    "sendgrid_api_key": ("API_KEY", f"use SG.{_B64[:22]}.{_B64}_-a for mail", "use [API_KEY] for mail"),
    "twilio_api_key": ("API_KEY", f"sid SK{_HEX32} in the log", "sid [API_KEY] in the log"),
    "databricks_token": ("API_KEY", f"token dapi{_HEX32} in the log", "token [API_KEY] in the log"),
    "digitalocean_token": ("API_KEY", f"do dop_v1_{_HEX64}, doo_v1_{_HEX64} and dor_v1_{_HEX64}.",
                           "do [API_KEY], [API_KEY] and [API_KEY]."),
    "pypi_token": ("API_KEY", f"upload with pypi-AgEIcHlwaS5vcmc{_B64}{_B64} now", "upload with [API_KEY] now"),
    "shopify_token": ("API_KEY", f"shop shpat_{_HEX32} shpss_{_HEX32} shpca_{_HEX32} shppa_{_HEX32} ok",
                      "shop [API_KEY] [API_KEY] [API_KEY] [API_KEY] ok"),
    "mailgun_api_key": ("API_KEY", "mail key-3ax6xnjp29jd6fds4gc373sgvjxteol0 here", "mail [API_KEY] here"),
    "telegram_bot_token": ("API_KEY", f"bot 123456789:AA{_B64[:33]} answers", "bot [API_KEY] answers"),
    "vault_token": ("TOKEN", f"vault hvs.{_B64[:24]}, hvb.{_B64}{_B64} and hvr.{_B64[:26]}.",
                    "vault [TOKEN], [TOKEN] and [TOKEN]."),
    "age_secret_key": ("PRIVATE_KEY", "age AGE-SECRET-KEY-1" + ("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L" * 2)[:58]
                       + " kept", "age [PRIVATE_KEY] kept"),
    "azure_sas_signature": (
        "TOKEN", "GET https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sp=r&sig=Z%2FRHIX5Xcg0Mq2rqI3Ol"
                 "WTjEg2tYkboXr1P9ZUXDtkk%3D then",
        "GET https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sp=r&sig=[TOKEN] then"),
    "discord_webhook": ("API_KEY", f"post to https://discord.com/api/webhooks/123456789012345678/{_B64}{_B64[:28]} "
                                   f"or https://discordapp.com/api/webhooks/1234567/{_B64} now",
                        "post to [API_KEY] or [API_KEY] now"),
    "cookie_header": ("TOKEN", f"Cookie: session={_HEX32}; theme=dark", "Cookie: session=[TOKEN]"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_is_found_and_redacted_in_a_sentence(kind: str) -> None:
    typ, text, expected = CASES[kind]
    assert (kind, typ) in {(f.kind, f.type) for f in patterns.find(text)}, text
    assert R.redact(text) == expected
    assert R.redact(expected) == expected  # (its placeholder is not taken for a value again)
    assert kind in patterns.KINDS


def test_set_cookie_keeps_the_cookie_name_and_its_attributes() -> None:
    text = f"Set-Cookie: sid={_B64}; Path=/; Max-Age=3600; HttpOnly"
    assert R.redact(text) == "Set-Cookie: sid=[TOKEN]; Path=/; Max-Age=3600; HttpOnly"
    assert R.redact(json.dumps({"Cookie": f"sid={_HEX32}"})) == '{"Cookie": "sid=[TOKEN]"}'
    assert R.redact(f"Cookie: _ga=GA1.2.3; sid={_HEX32}") == "Cookie: _ga=[TOKEN]"  # (every cookie of it)


def test_a_sas_signature_in_html_is_found_too() -> None:
    text = f'<a href="https://a.blob.core.windows.net/c?sv=2022-11-02&amp;sig={_B64}%3D">x</a>'
    assert R.redact(text) == '<a href="https://a.blob.core.windows.net/c?sv=2022-11-02&amp;sig=[TOKEN]">x</a>'


def test_the_readiness_secrets_scan_reads_the_new_kinds() -> None:
    from labkit.readiness import secrets

    scanned = {p.kind for p in secrets.PROVIDER_PATTERNS}
    assert set(CASES) <= scanned


_DIGEST = hashlib.sha256(b"labkit").hexdigest()
_COMMIT = hashlib.sha1(b"labkit").hexdigest()
_MD5 = hashlib.md5(b"labkit").hexdigest()


@pytest.mark.parametrize("text", [
    f"sha256:{_DIGEST}", f"commit {_COMMIT}", f"md5 {_MD5}", f"id {uuid.UUID(int=12345678901234567890)}",
    f"cache key-{_MD5}", f"key-{uuid.UUID(int=99)}", f"SK{_DIGEST}", f"DISK{_HEX32}", f"dapi{_DIGEST}",
    f"xdapi{_HEX32}", f"shpat_{_DIGEST}", "skipped 3 cases", "the keyboard and the key-value store",
    "asked about risk and tasks", "set sig= to the signature", "a short ?sig=abc&x=1 link",
    "gsk_test and r8_model", "xai-grok-2-latest", "pypi-simple index", "SG.Hello world", "hvs.short",
    "see https://discord.com/api/webhooks/<id>/<token>", "Cookie: required", "cookies: accept them",
    "Set-Cookie: theme=dark", "at 123456:AAshort", "akiaiosfodnn7example1 in lower case",
    "AGE-SECRET-KEY-1 is how an age key starts",
])
def test_no_false_positive_on_ordinary_text(text: str) -> None:
    assert patterns.find(text, patterns.SECRET_TYPES) == [], text
    assert R.redact(text) == text


def _shipped_lines() -> list[tuple[str, str]]:
    files = [*ROOT.glob("data/**/*.jsonl"), *ROOT.glob("data/**/*.md"), *ROOT.glob("docs/**/*.md")]
    return [(f"{f.relative_to(ROOT)}:{n}", line) for f in sorted(files)
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)]


def test_the_new_kinds_find_nothing_in_labkits_shipped_data_and_docs() -> None:
    lines = _shipped_lines()
    assert len(lines) > 1000
    hits = [(where, f.kind) for where, line in lines for f in patterns.find_shown(line) if f.kind in CASES]
    assert hits == []


# --- a keyed value in a URL query or a form body ends at the next parameter -------------------

_RAND = "Abc123Def456Ghi789"


@pytest.mark.parametrize(("text", "expected"), [
    # a random value under a bare "key" is found with more parameters after it ...
    (f"https://x/v1?key={_RAND}&model=m", "https://x/v1?key=[API_KEY]&model=m"),
    (f"http://127.0.0.1:8000/v1?key={_RAND}&token=plainTok",
     "http://[IP]:8000/v1?key=[API_KEY]&token=[API_KEY]"),
    (f"GET /v1?model=m&licenseKey={_RAND}&page=2 HTTP/1.1", "GET /v1?model=m&licenseKey=[API_KEY]&page=2 HTTP/1.1"),
    (f"https://x/v1?key={_RAND}#top", "https://x/v1?key=[API_KEY]#top"),
    (f'<a href="https://x/v1?key={_RAND}&amp;model=m">x</a>', '<a href="https://x/v1?key=[API_KEY]&amp;model=m">x</a>'),
    # ... and a credential's value does not take the parameters after it
    ("https://x/v1?access_key=abc&x=1", "https://x/v1?access_key=[API_KEY]&x=1"),
    ("https://x/v1?api_key=short1&x=1#frag", "https://x/v1?api_key=[API_KEY]&x=1#frag"),
    ("https://x/cb?code=1&password=hunter2&state=ok", "https://x/cb?code=1&password=[API_KEY]&state=ok"),
    # a form body: its first parameter has no "?" before it
    (f"api_key={_RAND}&model=m", "api_key=[API_KEY]&model=m"),
    (f"body: key={_RAND}&model=m", "body: key=[API_KEY]&model=m"),
    ("grant_type=password&password=hunter2xyz&scope=read", "grant_type=password&password=[API_KEY]&scope=read"),
    # outside a query a value is still whole: "&" and "#" may be part of a password
    ("password=Tr0ub4dor&3", "password=[API_KEY]"),
    ("DB_PASSWORD=abc#123 done", "DB_PASSWORD=[API_KEY] done"),
])
def test_a_keyed_value_in_a_url_query_ends_at_the_next_parameter(text: str, expected: str) -> None:
    assert R.redact(text) == expected
    if "&" in expected:  # the scan finds the same values, no parameter after them
        assert all("&" not in text[f.start:f.end] for f in patterns.find(text)), text


@pytest.mark.parametrize("text", [
    "https://example.com/search?q=keyboard&page=2#results",
    f"https://x/v1?cache_key={_RAND}&x=1",  # an id key
    "https://x/v1?key=value&model=m",  # not a generated value
    f"https://x/v1?monkey={_RAND}&a=1",  # not a key word
    "https://x/docs?section=api-keys&lang=en#key",
])
def test_an_ordinary_url_query_is_left_alone(text: str) -> None:
    assert R.redact(text) == text
