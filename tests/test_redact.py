"""Redaction: typed placeholders, Luhn, no false positives, content capture off, and an
end-to-end scan: planted secrets never reach any file of a run, the store or an export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from labkit.cases import EvalCase
from labkit.errors import ConfigError
from labkit.trace.redact import Redactor, luhn_ok

pytestmark = pytest.mark.usefixtures("time_bound")


R = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+ops@example.co.uk now", "mail [EMAIL] now"),
        ("call +1 415-555-0133 today", "call [PHONE] today"),
        ("call (415) 555-0133", "call [PHONE]"),
        ("call 415.555.0133.", "call [PHONE]."),
        ("ring +44 20 7946 0958", "ring [PHONE]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("amex 378282246310005", "amex [CARD]"),
        ("key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx123", "key [API_KEY]"),
        ("key sk-ant-api03-abcdefghijklmnopqrstu", "key [API_KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [API_KEY]"),
        ("slack xoxb-123456789012-abcdefghij", "slack [API_KEY]"),
        ("google AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "google [API_KEY]"),
        ("stripe sk_live_abcdefghijklmnop1234", "stripe [API_KEY]"),
        ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEF", "hf [API_KEY]"),
        ('{"api_key": "hunter2secret"}', '{"api_key": "[API_KEY]"}'),
        ("password=correcthorse", "password=[API_KEY]"),
        ("Authorization: Bearer abc.DEF-123_xyz", "Authorization: Bearer [TOKEN]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sflKxwRJSMeKKF2QT4fwpM", "jwt [TOKEN]"),
        ("from 192.168.10.254 and 8.8.8.8", "from [IP] and [IP]"),
        ("v6 2001:db8:85a3::8a2e:370:7334 and fe80::1", "v6 [IP] and [IP]"),
    ],
)
def test_each_type_gets_its_placeholder(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "security-runbook#2", "KD-401-EXPIRED", "2024-01-15", "cost 0.00041 USD", "latency 1840.0 ms",
        "4111 1111 1111 1112",  # fails Luhn
        "0000 0000 0000 0000",  # Luhn-valid but not a card
        "order 1234567", "version 1.2.3", "999.1.1.1", "at 12:30", "sk-short", "trace 0123456789abcdef0123456789abcdef",
        "u-17", "a @ b", "api keys expire after 90 days",
    ],
)
def test_no_false_positives(text: str) -> None:
    assert R.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("OPENAI_API_KEY=sk-live-notakeyformat", "OPENAI_API_KEY=[API_KEY]"),
        ("DB_PASSWORD=hunter2", "DB_PASSWORD=[API_KEY]"),
        ("aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [API_KEY]"),
        ('{"client_secret": "s3cr3t-value"}', '{"client_secret": "[API_KEY]"}'),
        ("key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nend",
         "key:\n[PRIVATE_KEY]\nend"),
        ("pay GB82 WEST 1234 5698 7654 32 now", "pay [IBAN] now"),
        ("iban DE89370400440532013000", "iban [IBAN]"),
        ("ssn 078-05-1120.", "ssn [SSN]."),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [TOKEN]"),
        ("db https://admin:hunter2@db.example.com/x", "db https://[TOKEN]@db.example.com/x"),
        ("cache redis://:hunter2pass@localhost:6379/0", "cache redis://[TOKEN]@localhost:6379/0"),  # no user
        ("tls rediss://:pw@cache:6380", "tls rediss://[TOKEN]@cache:6380"),
        ("x https://:pw@localhost/", "x https://[TOKEN]@localhost/"),
        ("hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX ok",
         "hook [API_KEY] ok"),
        ("g ya29.a0AfH6SMBx-planted_token_value", "g [TOKEN]"),
        ("npm npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm [API_KEY]"),
        ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=abc123+/DEF456ghi789==;EndpointSuffix=x",
         "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=[API_KEY];EndpointSuffix=x"),
        ("card 4111.1111.1111.1111 ok", "card [CARD] ok"),
        ("call 4155550133 today", "call [PHONE] today"),
        ("phone: 4155550133", "phone: [PHONE]"),
        ("mail jürgen.müller@exämple.de", "mail [EMAIL]"),
        ("mail 山田@例え.jp", "mail [EMAIL]"),
    ],
)
def test_formats_missed_before(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["version 1.2.3.4", "v1.2.3.4", "upgrade to release 2.0.0.1", "build 1.2.3.4-rc1", "c::b", "a::b::c",
     "std::vector", "at 12:30:45", "4929 0000 1234 5678", "1.1.1.1.1", "ticket 555-0100", "GB83 WEST 1234 5698 7654 32",
     "000-12-3456", "Reset your password: open the security portal", "tokens: 1840", "secret answer"],
)
def test_no_false_positives_new_formats(text: str) -> None:
    assert R.redact(text) == text


def test_secrets_used_as_mapping_keys_are_redacted() -> None:
    obj = {"sk-proj-PLANTEDabcdefghijklmnop0123": 1, "jane@example.com": {"a@b.io": "x", "c@d.io": "y"}, 7: "z"}
    out = R.redact(obj)
    flat = json.dumps(out)
    assert "PLANTED" not in flat and "jane@" not in flat and "a@b.io" not in flat and "c@d.io" not in flat
    assert "[API_KEY]" in out and out[7] == "z"
    inner = out["[EMAIL]"]
    assert sorted(inner.values()) == ["x", "y"]  # two keys that redact alike are both kept


def test_values_under_credential_keys_are_redacted_whatever_their_form() -> None:
    obj = {"config": {"OPENAI_API_KEY": "plainvalue", "client_secret": "abc", "clientSecret": "q",
                      "api_key_env": "OPENAI_API_KEY", "password": "", "token": "${TOKEN}", "max_tokens": "400",
                      "phone": "4155550133", "mobile_number": "+44 20 7946 0958"}}
    out = R.redact(obj)["config"]
    assert out["OPENAI_API_KEY"] == out["client_secret"] == out["clientSecret"] == "[API_KEY]"
    assert out["api_key_env"] == "OPENAI_API_KEY" and out["password"] == "" and out["token"] == "${TOKEN}"
    assert out["max_tokens"] == "400"
    assert out["phone"] == out["mobile_number"] == "[PHONE]"


def test_id_fields_are_skipped_only_at_labkits_own_position() -> None:
    hexid = "4111111111111111" + "0" * 16  # a hex id whose head looks like a card
    rec = {"trace_id": "4111111111111111", "run_id": "4111-1111-1111-1111", "span_id": "4111111111111111",
           "spans": [{"span_id": "4111111111111111", "parent_span_id": "4111111111111111",
                      "attributes": {"trace_id": "4111111111111111"}}],
           "output": {"trace_id": "sk-proj-PLANTEDabcdefghijklmnop0123", "case_id": "4111 1111 1111 1111",
                      "config_hash": "jane@example.com", "run_id": "4111111111111111"},
           "tags": {"span_id": "4111111111111111"}, "config_hash": hexid}
    out = R.redact(rec)
    assert out["trace_id"] == out["span_id"] == "4111111111111111" and out["run_id"] == "4111-1111-1111-1111"
    assert out["config_hash"] == hexid
    assert out["spans"][0]["span_id"] == out["spans"][0]["parent_span_id"] == "4111111111111111"
    assert out["spans"][0]["attributes"]["trace_id"] == "[CARD]"
    assert out["output"] == {"trace_id": "[API_KEY]", "case_id": "[CARD]", "config_hash": "[EMAIL]", "run_id": "[CARD]"}
    assert out["tags"]["span_id"] == "[CARD]"


def test_own_id_fields_still_lose_secrets() -> None:
    """At their own position id fields skip the numeric formats (an id can look like a card), not secrets."""
    out = R.redact({"trace_id": "sk-proj-PLANTEDabcdefghijklmnop0123", "run_id": "jane@example.com"})
    assert out == {"trace_id": "[API_KEY]", "run_id": "[EMAIL]"}


def _shipped_texts() -> list[tuple[str, str]]:
    root = Path(__file__).resolve().parents[1] / "data"
    texts = [(p.name, p.read_text(encoding="utf-8")) for p in sorted((root / "corpus").glob("*.md"))]
    for name in ("golden.jsonl", "quick_lab.jsonl"):
        for n, line in enumerate((root / name).read_text(encoding="utf-8").splitlines(), 1):
            case = json.loads(line)
            for fld in ("question", "reference_answer"):
                if case.get(fld):
                    texts.append((f"{name}:{n}:{fld}", case[fld]))
            for fld in ("must_include", "must_not_include"):
                texts += [(f"{name}:{n}:{fld}", p) for p in case.get(fld) or []]
    return texts


def test_shipped_corpus_and_golden_data_come_through_redaction_unchanged() -> None:
    texts = _shipped_texts()
    assert len(texts) > 100
    changed = [(where, text, R.redact(text)) for where, text in texts if R.redact(text) != text]
    assert changed == []
    root = Path(__file__).resolve().parents[1] / "data"
    for name in ("golden.jsonl", "quick_lab.jsonl"):  # whole case objects, keys included
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            assert R.redact(case) == case


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_deep_walk_counts_and_leaves_input_alone() -> None:
    obj = {"a": ["x a@b.io", {"b": ("tel 415-555-0133",)}], "n": 3, "trace_id": "4111111111111111", "ok": True}
    out, n = R.redact_count(obj)
    assert out == {"a": ["x [EMAIL]", {"b": ("tel [PHONE]",)}], "n": 3, "trace_id": "4111111111111111", "ok": True}
    assert n == 2
    assert obj["a"][0] == "x a@b.io"  # not mutated


def test_config_extra_patterns_types_and_errors() -> None:
    r = Redactor.from_config({"extra_patterns": {"employee_id": r"EMP-\d{6}"}, "types": ["EMAIL"]})
    assert r.redact("EMP-123456 a@b.io 415-555-0133") == "[EMPLOYEE_ID] [EMAIL] 415-555-0133"
    r2 = Redactor.from_config({"extra_patterns": [{"name": "TICKET", "regex": r"TCK\d+"}]})
    assert r2.redact("see TCK991") == "see [TICKET]"
    with pytest.raises(ConfigError, match="known"):
        Redactor.from_config({"typo": 1})
    with pytest.raises(ConfigError, match="unknown redaction type"):
        Redactor.from_config({"types": ["NOPE"]})
    with pytest.raises(ConfigError, match="invalid regex"):
        Redactor.from_config({"extra_patterns": {"x": "("}})
    assert Redactor.from_config({"enabled": False}).redact("a@b.io") == "a@b.io"


def test_capture_content_off_keeps_ids_hashes_lengths_scores() -> None:
    rec = {"trace_id": "t1", "case_id": "c1", "input": "my email is a@b.io", "output": "secret answer",
           "retrieved": [{"id": "doc#1", "score": 7.1, "text": "chunk"}],
           "tool_calls": [{"name": "lookup", "args": {"user_id": "u-17"}, "output": "x"}],
           "latency_ms": 12.0, "scores": {"faithfulness": 0.9}}
    out = Redactor.from_config({"capture_content": False}).redact(rec)
    assert out["trace_id"] == "t1" and out["case_id"] == "c1" and out["latency_ms"] == 12.0
    assert out["retrieved"][0]["id"] == "doc#1" and out["retrieved"][0]["score"] == 7.1
    assert out["scores"] == {"faithfulness": 0.9} and out["tool_calls"][0]["name"] == "lookup"
    assert out["input"].startswith("[CONTENT len=18 sha256=") and "a@b.io" not in json.dumps(out)
    assert out["retrieved"][0]["text"].startswith("[CONTENT len=5 ")
    assert out["tool_calls"][0]["args"]["user_id"].startswith("[CONTENT len=4 ")


def chatty_pipeline(case: EvalCase) -> dict[str, Any]:
    """A pipeline that returns fields of its own beside the ones labkit knows, all holding text."""
    return {"answer": "PLANTED answer", "model": "demo-model", "prompt_version": "v3",
            "notes": "PLANTED reasoning about the customer", "debug": {"sql": "SELECT PLANTED", "rows": 3},
            "retrieved": [{"id": "doc#1", "source": "doc", "score": 0.5, "text": "PLANTED chunk",
                           "metadata": {"author": "PLANTED author"}}],
            "citations": ["doc#1"],
            "tool_calls": [{"name": "lookup", "args": {"q": "PLANTED"}, "result": "PLANTED", "status": "ok"}],
            "guardrails": {"input": {"flagged": True, "phrases": ["PLANTED phrase"]}},
            "usage": {"input_tokens": 3, "output_tokens": 2}}


def test_capture_content_off_writes_no_text_but_ids_labels_and_statuses(tmp_path: Path) -> None:
    """``capture_content: false`` promises ids, hashes, lengths and scores only: a string under a
    key labkit does not know as an id, a label or a status (a pipeline's own fields, a case's
    metadata, a custom tag) is content too, not only the listed content keys."""
    from labkit.cases import as_cases
    from labkit.runner import RunnerConfig, run

    ds = as_cases([{"id": "c1", "question": "PLANTED question", "must_include": ["PLANTED must"],
                    "expected_source": "doc", "tags": {"category": "billing", "account": "PLANTED tag"},
                    "metadata": {"customer": "PLANTED customer"}}])
    rd = run(ds, chatty_pipeline, tmp_path / "r",
             config=RunnerConfig(progress=False, retries=0, redaction={"capture_content": False}))
    written = {p.name: p.read_text(encoding="utf-8") for p in rd.path.iterdir() if p.is_file()}
    assert {"results.jsonl", "traces.jsonl", "scores.csv", "metrics.json", "manifest.json"} <= set(written)
    leaks = {name: re.findall(r"PLANTED[^\"]*", text) for name, text in written.items() if "PLANTED" in text}
    assert leaks == {}, leaks
    line = json.loads(written["results.jsonl"])
    assert (line["case_id"], line["status"], line["model"], line["prompt_version"]) == ("c1", "ok", "demo-model", "v3")
    assert line["retrieved"][0]["id"] == "doc#1" and line["retrieved"][0]["source"] == "doc"
    assert line["citations"] == ["doc#1"] and line["tool_calls"][0]["name"] == "lookup"
    assert line["notes"].startswith("[CONTENT len=") and line["debug"]["rows"] == 3
    trace = json.loads(written["traces.jsonl"].splitlines()[0])
    assert trace["tags"]["category"] == "billing" and trace["tags"]["account"].startswith("[CONTENT len=")
    assert trace["status"] == "ok" and trace["retrieved_chunks"] == ["doc#1"] and trace["case_id"] == "c1"
    assert rd.metrics()["metrics"]["retrieval_hit_rate"]["value"] == 1.0  # scored on what the pipeline returned


# ---------------------------------------------------------------------------- end to end

PLANTED = [
    "jane.doe@example.com", "ops-team@kestrel.example", "+1 415-555-0133", "415-555-0199",
    "4111 1111 1111 1111", "5555555555554444", "sk-proj-PLANTEDabcdefghijklmnop0123",
    "AKIAPLANTED123456789", "ghp_PLANTEDabcdefghijklmnopqrstuvwxyz0123", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlX3BsYW50ZWQ",
    "10.20.30.40",
]
# what each looks like once separators are gone, to catch reformatting leaks too
DIGITS = ["4155550133", "4155550199", "4111111111111111", "5555555555554444"]


def leaky_pipeline(case: EvalCase) -> dict[str, Any]:
    return {
        "answer": (f"Contact jane.doe@example.com or +1 415-555-0133; card 4111 1111 1111 1111. "
                   f"Use key sk-proj-PLANTEDabcdefghijklmnop0123 from 10.20.30.40. You asked: {case.question}"),
        "retrieved": [{"id": "security-runbook#2", "source": "security-runbook", "score": 3.0,
                       "text": "Escalate to ops-team@kestrel.example with AKIAPLANTED123456789 "
                               "or ghp_PLANTEDabcdefghijklmnopqrstuvwxyz0123."}],
        "citations": ["security-runbook#2"],
        "tool_calls": [{"name": "lookup_account", "args": {"email": "jane.doe@example.com", "phone": "415-555-0199"},
                        "status": "ok", "output": {"header": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlX3BsYW50ZWQ",
                                                   "card": "5555555555554444"}}],
        "usage": {"input_tokens": 10, "output_tokens": 20}, "cost_usd": 0.001,
    }


def _scan(paths: list[Path]) -> list[str]:
    hits = []
    for p in paths:
        data = p.read_bytes()
        text = data.decode("utf-8", errors="replace")
        squashed = "".join(ch for ch in text if ch.isdigit())
        for s in PLANTED:
            if s in text or s.encode() in data:
                hits.append(f"{p.name}: {s}")
        for d in DIGITS:
            if d in squashed and d in text.replace(" ", "").replace("-", "").replace("+1", ""):
                hits.append(f"{p.name}: {d}")
    return hits


def test_planted_secrets_reach_no_file_of_the_run_the_store_or_exports(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from labkit.runner import run
    from labkit.trace.compaction import compact
    from labkit.trace.otel import export_runs
    from labkit.trace.store import TraceStore

    ds = tmp_path / "planted.jsonl"
    cases = [
        {"id": "pii-001", "question": "I am jane.doe@example.com, call +1 415-555-0133, card 4111 1111 1111 1111",
         "expected_source": "security-runbook", "must_include": ["security portal"]},
        {"id": "pii-002", "question": "My key sk-proj-PLANTEDabcdefghijklmnop0123 leaked from 10.20.30.40",
         "expected_source": "security-runbook", "reference_answer": "Rotate it; mail ops-team@kestrel.example"},
        {"id": "pii-003", "question": "Is AKIAPLANTED123456789 valid?", "metadata": {"note": "415-555-0199"}},
    ]
    ds.write_text("".join(json.dumps(c) + "\n" for c in cases))
    run_dir = tmp_path / "runs" / "planted"
    run(str(ds), leaky_pipeline, run_dir)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"results.jsonl", "traces.jsonl", "manifest.json"} <= {p.name for p in files}
    assert _scan(files) == []
    # the placeholders are there, so the content was seen and replaced
    traces = (run_dir / "traces.jsonl").read_text()
    for ph in ("[EMAIL]", "[PHONE]", "[CARD]", "[API_KEY]", "[TOKEN]", "[IP]"):
        assert ph in traces, ph

    # the store: query everything out, compact to Parquet, export HTML and OTel spans
    out = tmp_path / "exports"
    out.mkdir()
    with TraceStore([run_dir]) as st:
        st.query("SELECT * FROM traces").to_csv(out / "traces.csv")
        (out / "traces.html").write_text(st.query("SELECT * FROM traces").to_html())
        (out / "sample.json").write_text(json.dumps(st.sample(5), default=str))
    compact([run_dir], out / "archive.parquet")
    compact([run_dir])
    ex = InMemorySpanExporter()
    export_runs([str(run_dir)], exporter=ex, capture_content=True)
    spans = [{"name": s.name, "attrs": dict(s.attributes or {}),
              "events": [dict(e.attributes or {}) for e in s.events]} for s in ex.get_finished_spans()]
    assert spans
    (out / "spans.json").write_text(json.dumps(spans, default=str))
    produced = [p for p in out.iterdir()] + [run_dir / "traces.parquet"]
    assert _scan(produced) == []


def every_rule(r: Redactor, text: str, own_id: bool) -> tuple[str, int]:
    """Reference: the literals, then every rule in order with no gate, prefilter or memo; then the
    same on the text as it shows (:func:`_shown`), when that holds a secret."""
    out, n = _every_rule_written(r, text, own_id)
    shown = _shown(out)
    if shown != out:
        red, k = _every_rule_written(r, shown, own_id)
        if k:
            return red, n + k
    return out, n


def _every_rule_written(r: Redactor, text: str, own_id: bool) -> tuple[str, int]:
    from labkit import patterns

    text, n = patterns.redact_literals(text)
    for rule in r._rules:
        if not (own_id and rule.numeric):
            text, k = rule.sub(text)
            n += k
    return text, n


@pytest.mark.parametrize("extra", [{}, {"EMP": r"EMP-\d{6}"}])
def test_the_fast_paths_redact_exactly_whatevery_rule_does(extra: dict[str, str]) -> None:
    """The prefilter, the gates tested on the lowered ASCII text and the memo only skip work:
    each string comes out as running every rule on it would make it, ASCII or not, own id or not."""
    import random

    rng = random.Random(11)
    words = ["Bearer", "BASIC", "basic", "sk-", "AKIA", "AIza", "key", "KEY=", "Authorization:", "@", "hf_",
             "ya29.", "://", "eyJ", "İ", "ſ", "K", "é", "4111", "1111", "-", ".", ":", "=", "_", " ", "x", "Q9",
             "EMP-123456", "192.168.1.1", "jane@example.com", "passWord=", "AccountKey=", "token: ",
             "%40", "%3A", "%", "%4", "\u200b", "\ufeff"]
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    texts += ["benchmark question number 0", "fc9687ee2d6224eaab7eb936892d649e", "instant@b147fa9001f7",
              "Bearer goodnews", "BEARER abcdefgh1", "ſecret=abc123XYZ", "ﬁle"]
    r = Redactor(extra_patterns=extra)
    for own_id in (False, True):
        for text in texts:
            assert r.redact_text(text, own_id=own_id) == every_rule(r, text, own_id), (text, own_id)
    for text in texts[:500]:  # the deep walk (with its memo) agrees with one string at a time
        assert r.redact({"v": text, "trace_id": text}) == {"v": every_rule(r, text, False)[0],
                                                           "trace_id": every_rule(r, text, True)[0]}


def test_an_extra_patterns_placeholder_still_goes_through_the_catalogue() -> None:
    """The prefilter looks at the text after the extra patterns ran, as the rules do: a placeholder
    an extra pattern writes is redacted further when the catalogue finds a format in it."""
    r = Redactor(extra_patterns={"AKIA1234567890ABCDEF": r"\bwidget\b"})
    text = "a widget here"
    assert r.redact_text(text) == every_rule(r, text, False)
    assert r.redact_text(text)[0] == "a [[API_KEY]] here"


# --- disguised secrets: an invisible character inside, a URL's percent escapes ---------------

_DISGUISED = [
    ("my key sk-proj-A1\u200bb2C3d4E5f6G7h8I9j0K1l2M3n4O5p6 leaked", "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"),
    ("AKIA\u2060PLANTED123456789 in the log", "AKIAPLANTED123456789"),
    ("mail a\u200b.b@example.com now", "a.b@example.com"),
    ("tok\ufeffen: ghp_\u200dabcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("next=https%3A%2F%2Fu%3Ahunter2pass%40h.example%2Fx", "hunter2pass"),
    ("see https%3A//u:hunter2pass%40h.example", "hunter2pass"),
    ("key%3D sk-proj-%41%31b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6", "b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"),
    ('upstream said {"request": "{\\"user\\": \\"svc\\", \\"password\\": \\"Hunt3rPassw0rd\\"}"}', "Hunt3rPassw0rd"),
    ('log {\\\"client_secret\\\": \\\"cs9f8e7d6c5b4a\\\"}', "cs9f8e7d6c5b4a"),
    ("charged card 4111\u00a01111\u00a01111\u00a01111 today", "4111 1111 1111 1111"),
    ("my key \uff53\uff4b-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6 leaked", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"),  # full width
    ("key \uff41\uff4b\uff49\uff41 AKIA\uff30LANTED123456789", "AKIAPLANTED123456789"),
]


def _shown(text: str) -> str:
    """What a reader of ``text`` sees: percent escapes decoded, invisible characters gone."""
    from urllib.parse import unquote

    shown = re.sub("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]", "", unquote(text))
    shown = re.sub("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]", " ", shown)
    while '\\"' in shown:
        shown = shown.replace('\\"', '"')
    return shown


@pytest.mark.parametrize(("text", "secret"), _DISGUISED)
def test_a_secret_disguised_by_an_invisible_character_or_percent_escapes_is_redacted(text: str, secret: str) -> None:
    out, n = Redactor().redact_text(text)
    assert n >= 1 and secret not in _shown(out), out


@pytest.mark.parametrize("text", ["50% off, 100%% sure", "a%20b plain words", "caf\u00e9 \u200bzero width", "x%41y",
                                  "the \ufb01le \u2116 \u00bd \u2460\u2461 \uff08\uff11\uff09 10\u2079 \u2026"])
def test_escapes_and_invisible_characters_without_a_secret_are_left_as_written(text: str) -> None:
    assert Redactor().redact_text(text) == (text, 0)


def test_a_disguised_secret_reaches_no_file_of_a_run(tmp_path: Path) -> None:
    from labkit.runner import run

    def pipeline(case: Any) -> dict[str, Any]:
        return {"answer": " / ".join(t for t, _ in _DISGUISED), "retrieved": []}

    ds = tmp_path / "d.jsonl"
    ds.write_text(json.dumps({"id": "c1", "question": "which keys leaked?"}) + "\n")
    run(str(ds), pipeline, tmp_path / "run", score=False)
    for p in (tmp_path / "run").rglob("*"):
        if p.is_file():
            shown = _shown(p.read_text(encoding="utf-8", errors="replace"))
            assert not [s for _, s in _DISGUISED if s in shown], p.name


def test_a_number_list_or_object_under_a_credential_key_is_replaced_too() -> None:
    """A credential key's value is replaced whatever it holds: a numeric password or a list of
    keys was written as it was (its strings need not look like a key to the catalogue)."""
    r = Redactor()
    got = r.redact({"password": 918273645, "api_key": ["Tr0ub4dor&3", "x9y8z7"], "client_secret": {"value": "s3cr3t!"},
                    "db": {"PASSWORD": ["Tr0ub4dor&3"]}, "phone": 4155550133, "token": 0, "api_keys_enabled": True,
                    "secret": None, "auth": []})
    assert got == {"password": "[API_KEY]", "api_key": "[API_KEY]", "client_secret": "[API_KEY]",
                   "db": {"PASSWORD": "[API_KEY]"}, "phone": "[PHONE]", "token": 0, "api_keys_enabled": True,
                   "secret": None, "auth": []}, got


def test_labkits_own_verdicts_naming_a_type_are_not_taken_for_a_secret() -> None:
    """A guardrail violation names the type it found (``secret:PRIVATE_KEY``): read as ``secret:
    <value>``, it was written as ``secret:[API_KEY]``, a private key recorded as an API key."""
    r = Redactor()
    for t in ("API_KEY", "PRIVATE_KEY", "TOKEN", "CARD"):
        assert r.redact_text(f"secret:{t}") == (f"secret:{t}", 0)
    assert r.redact_text("secret:Hunt3rPassw0rd")[0] == "secret:[API_KEY]"


def test_changed_ids_names_each_id_the_own_id_treatment_changes() -> None:
    r = Redactor.from_config(None)
    ids = ["case-0001", "sk-proj-PLANTEDchanged0123456789abcd", "4111111111111111", "q-9f2c"]
    changed = r.changed_ids(ids)
    assert changed == [(1, r.redact_text(ids[1], own_id=True)[0])] and "[API_KEY]" in changed[0][1]
    # (a number in an id field is no card there: the numeric formats are not applied to own ids)
    assert Redactor.from_config({"extra_patterns": {"EMP": r"EMP-\d{6}"}}).changed_ids(["EMP-123456"]) == [(0, "[EMP]")]
