"""Dataset builder: deterministic candidates with gold chunks and tagged failure cases; coverage gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.build import build_candidates, coverage_gaps
from labkit.cases import as_cases, load_cases, save_cases
from labkit.corpus import Corpus
from labkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"


def test_deterministic_under_seed(tmp_path: Path) -> None:
    a = build_candidates(CORPUS, seed=0)
    b = build_candidates(CORPUS, seed=0)
    assert a.fingerprint == b.fingerprint
    save_cases(a, tmp_path / "a.jsonl")
    save_cases(b, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert build_candidates(CORPUS, seed=1).fingerprint != a.fingerprint


def test_representative_cases_have_real_gold_chunks() -> None:
    ds = build_candidates(CORPUS, seed=0, n_per_doc=3)
    corpus = Corpus.load(CORPUS)
    reps = [c for c in ds if c.kind == "representative"]
    assert len(reps) == 3 * len(corpus.doc_ids)
    for c in reps:
        assert c.expected_chunks and c.expected_source
        chunk = corpus.chunk(c.expected_chunks[0])
        assert chunk is not None and chunk.source == c.expected_source
        assert c.tags["risk"] in ("low", "medium", "high")
        assert c.metadata["generated"]["method"] in ("heading", "key_sentence")
        for phrase in c.must_include:  # a key-sentence answer is in its gold chunk
            assert phrase.lower() in chunk.text.lower()
    methods = {c.metadata["generated"]["method"] for c in reps}
    assert methods == {"heading", "key_sentence"}
    assert len({c.question for c in ds}) == len(ds)


def test_failure_cases_are_tagged() -> None:
    ds = build_candidates(CORPUS, seed=0)
    kinds = {c.kind for c in ds}
    assert {"out_of_scope", "adversarial", "failure"} <= kinds
    adv = [c for c in ds if c.kind == "adversarial"]
    assert adv and all(c.risk == "high" and c.must_not_include for c in adv)
    assert all(c.gold for c in adv)  # the real question inside still has an answer
    amb = [c for c in ds if c.tags.get("failure_mode") == "ambiguous"]
    assert amb and all(not c.gold for c in amb)
    oos = [c for c in ds if c.kind == "out_of_scope"]
    assert oos and all(c.metadata["expected_behaviour"] == "abstain" for c in oos)


def test_candidates_validate_and_round_trip(tmp_path: Path) -> None:
    ds = build_candidates(CORPUS, seed=3, n_per_doc=2)
    path = save_cases(ds, tmp_path / "starter.jsonl")
    again = load_cases(path)
    assert again.fingerprint == ds.fingerprint
    assert as_cases(list(ds)).fingerprint == ds.fingerprint


def test_n_per_doc_and_errors(tmp_path: Path) -> None:
    assert not [c for c in build_candidates(CORPUS, n_per_doc=0) if c.kind == "representative"]
    with pytest.raises(ConfigError):
        build_candidates(CORPUS, n_per_doc=-1)
    with pytest.raises(ConfigError):
        build_candidates(tmp_path / "missing")


def test_coverage_gaps() -> None:
    only_reps = as_cases([{"id": f"r{i}", "question": f"q {i}?", "expected_source": "billing",
                           "must_include": ["x"], "tags": {"category": "billing", "risk": "low",
                                                           "kind": "representative"}} for i in range(25)])
    gaps = coverage_gaps(only_reps)
    text = " | ".join(gaps)
    assert "no adversarial cases" in text
    assert "no out_of_scope cases" in text
    assert "too few high-risk cases: 0 of 25" in text
    assert not any("only" in g and "cases:" in g for g in gaps)  # 25 is enough
    small = as_cases([{"question": "q?", "tags": {"kind": "representative"}}])
    small_gaps = " | ".join(coverage_gaps(small))
    assert "only 1 cases" in small_gaps
    assert "no risk tag" in small_gaps
    assert "no expected_source" in small_gaps
    assert "neither must_include nor a reference answer" in small_gaps
    golden = load_cases(ROOT / "data" / "golden.jsonl")
    golden_gaps = coverage_gaps(golden)
    assert not any("adversarial" in g or "high-risk" in g for g in golden_gaps)


def test_build_refuses_to_write_over_a_document_of_its_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``dataset build --corpus c2 --out c2/billing.md`` replaced the document by candidates."""
    import shutil

    from labkit.cli import main

    corpus = tmp_path / "c2"
    corpus.mkdir()
    shutil.copy(CORPUS / "billing.md", corpus / "billing.md")
    assert main(["dataset", "build", "--corpus", str(corpus), "--out", str(corpus / "billing.md")]) == 2
    err = capsys.readouterr().err
    assert f"--out {corpus / 'billing.md'}" in err and f"--corpus {corpus}" in err and "Traceback" not in err
    assert (corpus / "billing.md").read_bytes() == (CORPUS / "billing.md").read_bytes()


BUILD_SECRETS = ("abcdefghijklmnopqrstuvwxyz0123456789", "Tr0ub4dor&3")


def test_no_secret_of_the_corpus_reaches_the_candidates_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bearer token and a password in a corpus section were written as is into the question
    and reference answer of a candidate (and into the adversarial case wrapped around it)."""
    from labkit.cli import main

    corpus = tmp_path / "corp"
    corpus.mkdir()
    (corpus / "sec.md").write_text("# Sec\nIntro line about keys and rotation.\n## Reset\nTo reset, send Bearer "
                                   "abcdefghijklmnopqrstuvwxyz0123456789 and password: Tr0ub4dor&3 to the portal, "
                                   "then wait 10 minutes.\n", encoding="utf-8")
    out = tmp_path / "out"
    for seed in range(4):
        assert main(["dataset", "build", "--corpus", str(corpus), "--out", str(out / f"cand{seed}.jsonl"),
                     "--seed", str(seed)]) == 0
    printed = capsys.readouterr()
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == 4 and any("portal" in p.read_text(encoding="utf-8") for p in written)
    leaks = [(p.name, s) for p in written for s in BUILD_SECRETS if s in p.read_text(encoding="utf-8")]
    leaks += [("stdout", s) for s in BUILD_SECRETS if s in printed.out + printed.err]
    assert not leaks, leaks
    ds = build_candidates(corpus, seed=0)
    assert not [c.id for c in ds if any(s in str(c.to_dict()) for s in BUILD_SECRETS)]
