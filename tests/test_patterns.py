"""The one secrets catalogue: every format it names, its validators, and that the trace
redactor, the readiness secrets scan and the redaction checklist all read it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from labkit import patterns

ROOT = Path(__file__).resolve().parents[1]

# One sample per format (all synthetic; the IBAN, card and SSN are the published test values).
SAMPLES: dict[str, tuple[str, str]] = {
    "pem_private_key": ("PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplanted\n"
                                       "-----END RSA PRIVATE KEY-----"),
    "openai_api_key": ("API_KEY", "sk-proj-PLANTEDabcdefghijklmnop0123"),
    "anthropic_api_key": ("API_KEY", "sk-ant-api03-PLANTEDabcdefghijklmnop"),
    "aws_access_key_id": ("API_KEY", "AKIAPLANTED123456789"),
    "github_token": ("API_KEY", "ghp_PLANTEDabcdefghijklmnopqrstuvwxyz0123"),
    "google_api_key": ("API_KEY", "AIzaSyA-PLANTEDabcdefghijklmnopqrstuvwx"),
    "slack_token": ("API_KEY", "xoxb-123456789012-PLANTEDabc"),
    "slack_webhook": ("API_KEY", "https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDabcdefghijklmnopq"),
    "stripe_secret_key": ("API_KEY", "sk_live_PLANTEDabcdefghij1234"),
    "huggingface_token": ("API_KEY", "hf_PLANTEDabcdefghijklmnopqrstuvwxyz"),
    "gitlab_token": ("API_KEY", "glpat-PLANTEDabcdefghijklmn"),
    "npm_token": ("API_KEY", "npm_PLANTEDabcdefghijklmnopqrstuvwxyz01"),
    "pypi_token": ("API_KEY", "pypi-AgEIcHlwaS5vcmcPLANTEDabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"),
    "groq_api_key": ("API_KEY", "gsk_PLANTEDabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHI"),
    "xai_api_key": ("API_KEY", "xai-PLANTED" + "abcdefghijklmnopqrstuvwxyz0123456789" * 2),
    "replicate_token": ("API_KEY", "r8_PLANTEDabcdefghijklmnopqrstuvwxyz01"),
    "sendgrid_api_key": ("API_KEY", "SG.PLANTEDabcdefghijklmno.PLANTEDabcdefghijklmnopqrstuvwxyz0123456789"),
    "twilio_api_key": ("API_KEY", "SK0123456789abcdef0123456789abcdef"),
    "databricks_token": ("API_KEY", "dapi0123456789abcdef0123456789abcdef"),
    "digitalocean_token": ("API_KEY", "dop_v1_" + "0123456789abcdef" * 4),
    "shopify_token": ("API_KEY", "shpat_0123456789abcdef0123456789abcdef"),
    "mailgun_api_key": ("API_KEY", "key-PLANTEDabcdefghijklmnopqrstu0123"),
    "telegram_bot_token": ("API_KEY", "123456789:AAPLANTEDabcdefghijklmnopqrstuvwxyz"),
    "discord_webhook": ("API_KEY", "https://discord.com/api/webhooks/123456789012345678/PLANTEDabcdefghijklmnopq"),
    "age_secret_key": ("PRIVATE_KEY", ("AGE-SECRET-KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L" * 2)[:74]),
    "azure_sas_signature": ("TOKEN", "https://a.blob.core.windows.net/c?sv=2022-11-02&sig=PLANTEDabcdefghij0123%3D"),
    "vault_token": ("TOKEN", "hvs.PLANTEDabcdefghijklmnopqrstuvwxyz"),
    "cookie_header": ("TOKEN", "Cookie: session=PLANTED0123456789abcdef"),
    "azure_account_key": ("API_KEY", "AccountKey=PLANTEDabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJ=="),
    "google_oauth_token": ("TOKEN", "ya29.a0PLANTEDabcdefghijklmnopqrstuvwxyz"),
    "bearer_token": ("TOKEN", "Bearer PLANTEDabcdef.123-xyz"),
    "basic_auth": ("TOKEN", "Authorization: Basic dXNlcjpQTEFOVEVEcGFzcw=="),
    "url_credentials": ("TOKEN", "https://planted_user:PLANTEDpass@db.example.com/x"),
    "jwt": ("TOKEN", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlX3BsYW50ZWQ"),
    "assigned_secret": ("API_KEY", "OPENAI_API_KEY=PLANTEDvalue42"),
    "keyed_secret": ("API_KEY", "key=PLANTED3f2a9c0d8e7b6a5f"),
    "authorization_header": ("TOKEN", "Authorization: Token PLANTEDabcdef0123456789"),
    "email": ("EMAIL", "jürgen.müller@exämple.de"),
    "iban": ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    "us_ssn": ("SSN", "SSN 078-05-1120"),
    "card": ("CARD", "4111.1111.1111.1111"),
    "ipv4": ("IP", "from 192.168.10.254"),
    "ipv6": ("IP", "2001:db8:85a3::8a2e:370:7334"),
    "phone": ("PHONE", "call 4155550133"),
}


def test_every_kind_has_a_sample_and_each_sample_is_found_as_its_kind() -> None:
    kinds = {p.kind for p in patterns.CATALOGUE}
    assert kinds == set(SAMPLES)
    for kind, (typ, text) in SAMPLES.items():
        found = {(f.kind, f.type) for f in patterns.find(text)}
        assert (kind, typ) in found, (kind, text, found)


def test_types_are_split_into_secrets_and_personal_data() -> None:
    assert set(patterns.TYPES) == set(patterns.SECRET_TYPES) | set(patterns.PII_TYPES)
    assert not set(patterns.SECRET_TYPES) & set(patterns.PII_TYPES)
    assert {p.type for p in patterns.CATALOGUE} == set(patterns.TYPES)


@pytest.mark.parametrize(
    "key",
    ["api_key", "OPENAI_API_KEY", "DB_PASSWORD", "aws_secret_access_key", "client_secret", "clientSecret",
     "apiKey", "X-Api-Key", "access_token", "refresh_token", "private_key", "AccountKey", "authorization",
     "passwd", "slack.webhook_url"],
)
def test_credential_key_names(key: str) -> None:
    assert patterns.is_credential_key(key)


@pytest.mark.parametrize("key", ["idempotency_key", "input_tokens", "max_tokens", "api_key_env", "password_policy",
                                 "key", "keys", "token_count", "monkey", "secretary", "question"])
def test_not_credential_key_names(key: str) -> None:
    assert not patterns.is_credential_key(key)


def test_validators() -> None:
    assert patterns.luhn_ok("4111111111111111") and not patterns.luhn_ok("4111111111111112")
    assert patterns.iban_ok("GB82WEST12345698765432") and not patterns.iban_ok("GB83WEST12345698765432")
    assert not patterns.find("GB83 WEST 1234 5698 7654 32")
    assert not patterns.find("SSN 000-12-3456") and not patterns.find("666-12-3456")


@pytest.mark.parametrize("text", ["version 1.2.3.4", "v1.2.3.4", "release 10.0.0.1", "c::b", "std::map",
                                  "a::b", "at 12:30:45", "1.2.3.4-beta", "4929 0000 1234 5678"])
def test_not_found(text: str) -> None:
    assert patterns.find(text) == []


def test_foundation_module_imports_nothing_from_labkit() -> None:
    tree = ast.parse((ROOT / "labkit" / "patterns.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("labkit"), node.module
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("labkit") for a in node.names)


def _compiled_regexes(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def test_one_catalogue_no_copies() -> None:
    """No other module compiles a secret or PII regex of its own: they all use labkit.patterns."""
    markers = re.compile(r"sk-|AKIA|gh\[pousr\]|xox|AIza|PRIVATE KEY|[Bb]earer|ya29|npm_|AccountKey|"
                         r"api\[_|passwd|@\[A-Za-z|\[A-Za-z0-9._%\+\\-\]\+@")
    offenders = []
    for f in (ROOT / "labkit").rglob("*.py"):
        if f.name == "patterns.py":
            continue
        offenders += [f"{f.relative_to(ROOT)}:{n}" for n, rx in _compiled_regexes(f) if markers.search(rx)]
    assert offenders == []
    for mod in ("trace/redact.py", "readiness/secrets.py", "readiness/checks/safety.py"):
        assert "labkit.patterns" in (ROOT / "labkit" / mod).read_text(encoding="utf-8"), mod


def test_may_match_finds_every_sample_and_every_gate_hit() -> None:
    """MAY_MATCH is a prefilter: a text it does not find must be one no format matches. Each sample
    (all kinds), and each sample with its digits and punctuation taken out where a format still
    matches it, is found; non-numeric formats are found by MAY_MATCH_NON_NUMERIC too."""
    import random

    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 @:=_-./+'\"\nİſK"
    texts = [t for _, t in SAMPLES.values()]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(4000)]
    texts += ["Bearer abcdefghij", "basic abcdefg+h", "AKIAABCDEFGHIJKLMNOP", "AIza" + "b" * 35, "BASİC abc12345"]
    matched = 0
    for text in texts:
        for p in patterns.CATALOGUE:
            if any(p.valid(m) for m in p.regex.finditer(text)):
                matched += 1
                assert patterns.MAY_MATCH.search(text), (p.kind, text)
                if p.type not in patterns.NUMERIC_TYPES:
                    assert patterns.MAY_MATCH_NON_NUMERIC.search(text), (p.kind, text)
    assert matched >= len(SAMPLES)
    for text in ("benchmark question", "invoke_workflow", "fc9687ee2d6224eaab7eb936892d649e", "chat"):
        assert (patterns.MAY_MATCH_NON_NUMERIC.search(text) is None) == ("_" not in text)


def test_a_cut_reads_the_text_around_the_limit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The output cap cut a 100-million-character answer after searching the whole of it for
    secrets (13.5 s for 50 M characters, while the case's deadline ran): only a value that
    crosses the limit matters, so only the text around it is searched, and the cut is the same."""
    from labkit import patterns

    key = "sk-proj-" + "A1b2C3d4" * 5
    text = "word " * 400_000 + "my key " + key + " and more" + " filler" * 400_000
    limit = text.index(key) + 10  # (through the key)
    seen: list[int] = []
    find = patterns.find
    monkeypatch.setattr(patterns, "find", lambda t, *a, **k: seen.append(len(t)) or find(t, *a, **k))
    assert patterns.safe_cut(text, limit) == text.index(key)
    assert max(seen) <= 2 * patterns.CUT_WINDOW, seen
    assert patterns.safe_cut(text, 1000) == 1000 and patterns.safe_cut("short", 1000) == 5


@pytest.mark.parametrize(("text", "shown"), [
    # a token put in the user part, as some services issue them: the user information is the secret
    ("connection to http://tokOnlyUser5Rq81@127.0.0.1:8000/v1 failed",
     "connection to http://[TOKEN]@127.0.0.1:8000/v1 failed"),
    ("https://x-oauth-basic@git.example/org/repo.git", "https://[TOKEN]@git.example/org/repo.git"),
    ("mysql://root@db:3306/app", "mysql://[TOKEN]@db:3306/app"),
    ("http://u%40corp@h/v1", "http://[TOKEN]@h/v1"),  # (a percent-escaped @ inside it)
    ("http://user@[::1]:8080/v1", "http://[TOKEN]@[::1]:8080/v1"),
    # user and password, or a password alone, as before
    ("db https://admin:hunter2@db.example.com/x", "db https://[TOKEN]@db.example.com/x"),
    ("x https://:pw@localhost/", "x https://[TOKEN]@localhost/"),
    # an @ past the authority (the path, the query, the fragment) is no user information
    ("see http://127.0.0.1:8000/v1/u@x", "see http://127.0.0.1:8000/v1/u@x"),
    ("see http://h:8000?to=me@x", "see http://h:8000?to=me@x"),
    ("see http://h#me@x", "see http://h#me@x"),
    ('<a href="http://h:80">me@x</a>', '<a href="http://h:80">me@x</a>'),
    ("masked http://[TOKEN]@h/v1 already", "masked http://[TOKEN]@h/v1 already"),
])
def test_the_user_information_of_a_url_is_masked_whatever_it_holds(text: str, shown: str) -> None:
    """``http://TOKEN@host`` (a token as the user, no password) was printed as it was given: the
    catalogue took ``user:password@`` only. The whole user information is masked now, by the one
    helper every printed URL goes through."""
    from labkit.openai_compat import scrub

    assert scrub(text) == shown
    kinds = {f.kind for f in patterns.find(text)}
    assert ("url_credentials" in kinds) == (shown != text and "[TOKEN]@" not in text), kinds
