"""Answer correctness against the reference answer: exact match, token F1, ROUGE-L.

Hand-computed examples with their edge cases, properties, agreement with an independent
implementation (the SQuAD evaluation script's normalisation and F1, and an LCS written as a
memoised recursion), the unmeasured rules through score_cases, and the paired comparison.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase
from labkit.compare import compare_runs
from labkit.metrics import METRICS, aggregate, reference, score_cases
from labkit.metrics.reference import (
    exact_match,
    lcs_length,
    normalize_answer,
    rouge_l,
    token_f1,
    tokens,
)

REF_METRICS = ("exact_match", "token_f1", "rouge_l")


# --- the normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "norm"), [
    ("The Security Portal.", "security portal"),
    ("  a   key,\tan  API key  ", "key api key"),
    ("Theory of the anthem", "theory of anthem"),             # articles only as whole words
    ("1,000 dollars; 3.5%", "1000 dollars 35"),               # punctuation deleted, not spaced
    ("don't re-issue", "dont reissue"),
    ("don\u2019t \u00abquote\u00bb", "dont quote"),           # Unicode punctuation (Pf, Pi)
    ("\uff21\uff30\uff29 \ufb01le", "api file"),              # NFKC: full-width letters, ligature
    ("Reissue it [security-runbook#2].", "reissue it"),       # citation markers removed
    ("\u00c9T\u00c9 caf\u00e9", "\u00e9t\u00e9 caf\u00e9"),  # accents kept, lowercased
    ("...!?", ""),
    ("", ""),
])
def test_normalisation(text, norm):
    assert normalize_answer(text) == norm
    assert tokens(text) == (norm.split(" ") if norm else [])


# --- hand-computed examples ----------------------------------------------------------------


def test_exact_match_examples():
    assert exact_match("The security portal!", "security  portal") == 1.0
    assert exact_match("security portal", "the security portal, then Keys") == 0.0
    assert exact_match("90 days", "ninety days") == 0.0                     # numbers are not spelled out
    assert exact_match("1,000", "1000") == 1.0
    assert exact_match("...", "!!") == 1.0                                  # both empty after normalisation


def test_token_f1_examples():
    # answer: security portal keys (3), reference: open security portal (3): common 2 -> P = R = 2/3
    assert token_f1("The security portal keys", "Open the security portal") == pytest.approx(2 / 3)
    # multiset: 'key' twice in the answer, once in the reference -> common 1; P = 1/2, R = 1 -> 2/3
    assert token_f1("key key", "key") == pytest.approx(2 / 3)
    # 'key' twice on both sides counts twice: answer key key portal (3), reference key key (2)
    # common 2, P = 2/3, R = 1 -> F1 = 0.8
    assert token_f1("key key portal", "key key") == pytest.approx(0.8)
    assert token_f1("nothing alike", "security portal") == 0.0
    assert token_f1("", "security portal") == 0.0 and token_f1("?!", "security portal") == 0.0
    assert token_f1("security portal", "") == 0.0
    assert token_f1("12 characters", "at least 12 characters") == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_rouge_l_examples():
    # answer: police killed gunman (3); reference: police kill gunman (3)... classic example from the
    # ROUGE paper: reference "police killed the gunman", candidates "police kill the gunman" and
    # "the gunman kill police" score alike on ROUGE-L (LCS 2 of 3 tokens after articles go).
    ref = "police killed the gunman"
    assert rouge_l("police kill the gunman", ref) == pytest.approx(2 / 3)
    assert rouge_l("the gunman kill police", ref) == pytest.approx(1 / 3)   # LCS 'police' or 'gunman': 1
    # order matters for ROUGE-L, not for F1
    assert token_f1("gunman killed police", ref) == 1.0
    assert rouge_l("gunman killed police", ref) == pytest.approx(1 / 3)
    # P = 3/4, R = 3/3 -> F = 2 * 0.75 / 1.75
    assert rouge_l("reset key in portal", "reset key portal") == pytest.approx(1.5 / 1.75)
    # ties: several LCS of length 2 ('a b' and 'a c' style) -> the length is what counts
    assert lcs_length(["x", "y", "z"], ["x", "z", "y"]) == 2
    assert rouge_l("", ref) == 0.0 and rouge_l(ref, "") == 0.0 and rouge_l("...", ref) == 0.0
    # repeated tokens: LCS of 'key key key' and 'key key' is 2; P = 2/3, R = 1 -> 0.8
    assert rouge_l("key key key", "key key") == pytest.approx(0.8)


def test_rouge_l_beta_weighs_recall():
    # P = 3/4, R = 1: beta = 2 -> 5 * 0.75 / (1 + 4 * 0.75) = 3.75 / 4
    assert rouge_l("reset key in portal", "reset key portal", beta=2.0) == pytest.approx(3.75 / 4)
    assert reference.ROUGE_BETA == 1.0


# --- an independent implementation ---------------------------------------------------------


def _squad_normalize(s: str) -> str:
    """The SQuAD v1.1 evaluation script's normalize_answer (ASCII punctuation), as published."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _squad_f1(prediction: str, ground_truth: str) -> float:
    p, g = _squad_normalize(prediction).split(), _squad_normalize(ground_truth).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _lcs_recursive(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """LCS length as a memoised recursion over suffixes (not the iterative table)."""

    @functools.cache
    def go(i: int, j: int) -> int:
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + go(i + 1, j + 1)
        return max(go(i + 1, j), go(i, j + 1))

    return go(0, 0)


def _rouge_l_independent(pred: str, ref: str) -> float:
    p, g = tuple(_squad_normalize(pred).split()), tuple(_squad_normalize(ref).split())
    if not p or not g:
        return 0.0
    lcs = _lcs_recursive(p, g)
    if lcs == 0:
        return 0.0
    prec, rec = lcs / len(p), lcs / len(g)
    return 2 * prec * rec / (prec + rec)


_VOCAB = ["the", "a", "an", "key", "Key", "portal,", "reset", "90", "days.", "it's", "e-mail", "(now)", "x", "?"]
ascii_text = st.lists(st.sampled_from(_VOCAB), max_size=14).map(" ".join)


@given(ascii_text, ascii_text)
@settings(max_examples=400, deadline=None)
def test_agrees_with_the_squad_script_and_a_recursive_lcs(a, b):
    assert normalize_answer(a) == _squad_normalize(a)
    assert exact_match(a, b) == float(_squad_normalize(a) == _squad_normalize(b))
    assert token_f1(a, b) == pytest.approx(_squad_f1(a, b), abs=1e-12)
    assert rouge_l(a, b) == pytest.approx(_rouge_l_independent(a, b), abs=1e-12)


def test_lcs_agrees_with_the_recursion_on_random_token_lists():
    rng = np.random.default_rng(14)
    for _ in range(300):
        a = tuple(rng.choice(list("abcde"), size=int(rng.integers(0, 25))))
        b = tuple(rng.choice(list("abcde"), size=int(rng.integers(0, 25))))
        assert lcs_length(a, b) == _lcs_recursive(a, b)


# --- properties ----------------------------------------------------------------------------

_PIECES = [*"ab c.,'-\u00e9\uff21\u2019 ", "the ", "an ", "[x#1]", "\ufb01", "7"]
any_text = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@given(any_text, any_text)
@settings(max_examples=300, deadline=None)
def test_bounded_symmetric_and_exact_match_implies_one(a, b):
    for fn in (exact_match, token_f1, rouge_l):
        assert 0.0 <= fn(a, b) <= 1.0
        assert fn(a, b) == pytest.approx(fn(b, a))  # F1 is symmetric in precision and recall
    if exact_match(a, b) == 1.0 and tokens(a):
        assert token_f1(a, b) == 1.0 and rouge_l(a, b) == 1.0
    if tokens(a):
        assert exact_match(a, a) == token_f1(a, a) == rouge_l(a, a) == 1.0
    assert rouge_l(a, b) <= token_f1(a, b) + 1e-12   # an LCS is a common sub-multiset


# --- through score_cases: the unmeasured rules ----------------------------------------------


def _case(cid: str, ref: str | None) -> EvalCase:
    return EvalCase(id=cid, question="How do I reset an expired API key?", reference_answer=ref)


def test_declared_in_the_registry():
    for name in REF_METRICS:
        spec = METRICS[name]
        assert (spec.stage, spec.direction, spec.bounded, spec.builtin) == ("generation", "higher", True, True)
        assert callable(spec.fn)
    assert METRICS["exact_match"].kind == "rate"  # 0/1 per case: Wilson interval, McNemar
    assert METRICS["token_f1"].kind == METRICS["rouge_l"].kind == "mean"


def test_score_cases_unmeasured_reasons():
    ref = "Reissue it in the security portal."
    cases = [_case("ok", ref), _case("noref", None), _case("blankref", "  "), _case("punctref", "..."),
             _case("err", ref), _case("empty", ref), _case("dots", ref), _case("phone", "Call 555-0100."),
             _case("phone_off", "Call 555-0100."), _case("exact", ref)]
    results = [
        {"case_id": "ok", "status": "ok", "answer": "Reissue the key in the security portal [sec#2]."},
        {"case_id": "noref", "status": "ok", "answer": "x"},
        {"case_id": "blankref", "status": "ok", "answer": "x"},
        {"case_id": "punctref", "status": "error", "answer": None},
        {"case_id": "err", "status": "timeout", "answer": None},
        {"case_id": "empty", "status": "ok", "answer": "   "},
        {"case_id": "dots", "status": "ok", "answer": "..."},
        {"case_id": "phone", "status": "ok", "answer": "Call [PHONE]."},
        {"case_id": "phone_off", "status": "ok", "answer": "Write to [EMAIL]."},
        {"case_id": "exact", "status": "ok", "answer": "reissue it in security portal"},
    ]
    df = score_cases(cases, results).set_index("case_id")
    # reissue key in security portal (5) vs reissue it in security portal (5): common 4
    assert df.loc["ok", "token_f1"] == pytest.approx(0.8) and df.loc["ok", "rouge_l"] == pytest.approx(0.8)
    assert df.loc["ok", "exact_match"] == 0.0
    want = {"noref": "no_reference", "blankref": "no_reference", "punctref": "no_reference",
            "err": "not_ok", "empty": "no_answer", "phone": "redacted"}
    for cid, reason in want.items():
        for name in REF_METRICS:
            assert math.isnan(df.loc[cid, name]) and df.loc[cid, name + "_reason"] == reason, (cid, name)
    for name in REF_METRICS:   # an answer of punctuation only is an answer with no token: 0
        assert df.loc["dots", name] == 0.0 and df.loc["exact", name] == 1.0
    # exact match on a redacted answer is judged when the visible text already rules a match out
    assert df.loc["phone_off", "exact_match"] == 0.0
    assert df.loc["phone_off", "token_f1_reason"] == df.loc["phone_off", "rouge_l_reason"] == "redacted"


def test_aggregate_reports_the_not_applicable_reason():
    cases = [_case(f"c{i}", "security portal" if i % 2 else None) for i in range(20)]
    results = [{"case_id": c.id, "status": "ok", "answer": "the security portal"} for c in cases]
    m = aggregate(cases, score_cases(cases, results), n_boot=100)["metrics"]
    for name in REF_METRICS:
        assert (m[name]["value"], m[name]["n"], m[name]["unmeasured_reasons"]) == (1.0, 10, {"no_reference": 10})
    assert m["exact_match"]["interval"] == "wilson" and m["token_f1"]["interval"] == "bootstrap"


def test_no_reference_is_not_applicable_for_readiness_and_incident_review():
    from labkit.readiness import incident
    from labkit.readiness.checks import evaluation
    from labkit.registry import NOT_APPLICABLE_REASONS as NOT_APPLICABLE
    from labkit.registry import not_applicable

    entry = {"n": 58, "unmeasured": 12, "unmeasured_reasons": {"no_reference": 12}}
    assert evaluation._unmeasured_share(entry) == (0.0, 12)
    assert not_applicable("no_reference") and not not_applicable("redacted") and not not_applicable("not_ok")
    assert "no_reference" in NOT_APPLICABLE
    # one list: both read it, neither keeps a copy
    assert incident.not_applicable is evaluation.not_applicable is not_applicable
    assert not hasattr(incident, "_NOT_APPLICABLE") and not hasattr(evaluation, "NOT_APPLICABLE")


# --- compare picks them up from their declarations -----------------------------------------


def _write_run(path, run_id, cases, results):
    """Recorded results beside their dataset, scored by labkit score (the record compare verifies)."""
    from labkit.cases import save_cases
    from labkit.scoring import score_run

    path.mkdir(parents=True)
    ds = save_cases(cases, path.parent / f"{path.name}-dataset.jsonl")
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (path / "manifest.json").write_text(json.dumps({"run_id": run_id}))
    score_run(path, str(ds), n_boot=100)
    return path


def test_compare_pairs_the_reference_metrics(tmp_path):
    ref = "Sign in to the security portal, open Keys, choose Reissue."
    cases = [_case(f"c{i:02d}", ref) for i in range(40)]
    good = [{"case_id": c.id, "status": "ok", "answer": ref} for c in cases]
    worse = [{"case_id": c.id, "status": "ok",
              "answer": ref if i % 2 else "Open the security portal and choose Reissue."}
             for i, c in enumerate(cases)]
    d = compare_runs(_write_run(tmp_path / "a", "a", cases, good),
                     _write_run(tmp_path / "b", "b", cases, worse)).to_dict()["metrics"]
    for name in REF_METRICS:
        assert d[name]["verdict"] == "regressed" and d[name]["n"] == 40, name
        assert d[name]["ci_high"] < 0
    assert d["token_f1"]["test"] == d["rouge_l"]["test"] == "sign_flip"
    assert d["exact_match"]["test"] == "mcnemar_exact"
    assert d["exact_match"]["delta"] == pytest.approx(-0.5)
    # 'open security portal and choose reissue' (6 tokens) vs the reference 'sign in to security
    # portal open keys choose reissue' (9): LCS 'security portal choose reissue' = 4, P = 4/6,
    # R = 4/9, F = 16/30; common bag 5 ('open' too), P = 5/6, R = 5/9, F1 = 2/3
    assert d["rouge_l"]["delta"] == pytest.approx(0.5 * (16 / 30 - 1))
    assert d["token_f1"]["delta"] == pytest.approx(0.5 * (2 / 3 - 1))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_punctuation_is_deleted_as_character_by_character(text: str) -> None:
    """The translate table deletes exactly the characters the definition names (any Unicode P*
    category and ASCII string.punctuation), as a character-by-character filter does."""
    import unicodedata

    from labkit.text import strip_citations

    s = unicodedata.normalize("NFKC", strip_citations(text)).lower()
    by_char = "".join(ch for ch in s if not (ch in string.punctuation or unicodedata.category(ch).startswith("P")))
    by_char = re.sub(r"\s+", " ", re.sub(r"\b(?:a|an|the)\b", " ", by_char)).strip()
    assert reference.normalize_answer(text) == by_char
