"""The fast per-case kernels against the straightforward code they replaced.

The oracle below is the previous implementation, kept here only as a test oracle: the per-case
tokeniser, the reference-answer normalisation, the dynamic-programming LCS, the Counter F1, the
per-case relevance matrix and the lexical judge's per-case verdicts. ``score_cases`` (the
columnar kernels: the run's retrieved items read once, the bit-parallel LCS, the lexical judge's
shared reading of each answer, the vectorised ops columns) must give the same values bit for bit
and the same reasons, on the shipped data, on the benchmark's recorded results and on random data.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import judges, text
from labkit.cases import EvalCase, load_cases
from labkit.corpus import Chunk
from labkit.judges import LexicalJudge, lexical_verdicts
from labkit.metrics import agent, generation, ops, reference, retrieval, score_cases
from labkit.metrics.percase import CaseRun, _pair
from labkit.registry import METRICS, per_case_metrics
from tests.test_text import exact_tokens

ROOT = Path(__file__).resolve().parents[1]
Score = tuple[float | None, str]

# --- the previous kernels (the oracle) -------------------------------------------------------


def old_content_words(s: str) -> list[str]:
    toks = exact_tokens(s)  # (runs of letters, digits and combining marks: tests/test_text.py)
    out = []
    for t in toks:
        if t in text.STOPWORDS or not (len(t) > 1 or t.isdigit()):
            continue
        out.append(text.stem(t))
    return out


_PUNCT = frozenset(string.punctuation)


def old_normalize_answer(s: str) -> str:
    s = unicodedata.normalize("NFKC", text.strip_citations(s)).lower()
    s = "".join(ch for ch in s if not (ch in _PUNCT or unicodedata.category(ch).startswith("P")))
    s = re.sub(r"\b(?:a|an|the)\b", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def old_tokens(s: str) -> list[str]:
    norm = old_normalize_answer(s)
    return norm.split(" ") if norm else []


def old_lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def _f(p: float, r: float) -> float:
    return 0.0 if p == 0.0 or r == 0.0 else (1.0 + 1.0) * p * r / (r + 1.0 * p)


def old_token_f1(answer: str | Sequence[str], ref: str | Sequence[str]) -> float:
    a = old_tokens(answer) if isinstance(answer, str) else list(answer)
    g = old_tokens(ref) if isinstance(ref, str) else list(ref)
    if not a or not g:
        return 0.0
    common = sum((Counter(a) & Counter(g)).values())
    return _f(common / len(a), common / len(g))


def old_rouge_l(answer: str | Sequence[str], ref: str | Sequence[str]) -> float:
    a = old_tokens(answer) if isinstance(answer, str) else list(answer)
    g = old_tokens(ref) if isinstance(ref, str) else list(ref)
    if not a or not g:
        return 0.0
    lcs = old_lcs(a, g)
    return _f(lcs / len(a), lcs / len(g))


def old_exact_match(answer: str, ref: str) -> float:
    return float(old_normalize_answer(answer) == old_normalize_answer(ref))


def old_relevance_matrix(retrieved_lists: Sequence[Sequence[Any]], golds: Sequence[Sequence[str]],
                         levels: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(retrieved_lists)
    rel = np.zeros((n, k), dtype=bool)
    sizes = []
    for i, (items, gold, level) in enumerate(zip(retrieved_lists, golds, levels, strict=True)):
        gset = set(gold)
        sizes.append(len(gset))
        ids = retrieval.dedupe([retrieval.to_level(it, level) for it in items])[:k]
        for j, rid in enumerate(ids):
            rel[i, j] = rid in gset
    return rel, np.asarray(sizes, dtype=np.int64)


@contextmanager
def old_kernels() -> Iterator[None]:
    """The public per-case functions, running on the previous kernels."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(judges, "content_words", old_content_words)
        mp.setattr(reference, "tokens", old_tokens)
        mp.setattr(reference, "normalize_answer", old_normalize_answer)
        mp.setattr(retrieval, "relevance_matrix", old_relevance_matrix)
        yield


def _case_scores(res: Any, judge: LexicalJudge, corpus: Any, k: int) -> dict[str, Score]:
    """One case, straight from the definitions (the per-case scorer)."""
    case = res.case
    s: dict[str, Score] = {}
    rel, n_gold = old_relevance_matrix([res.retrieved_list], [case.gold], [case.gold_level], k)
    for name, arr in retrieval.retrieval_metrics_from_matrix(rel, n_gold, k=k).items():
        v = float(arr[0])
        s[name] = (None, "no_gold") if math.isnan(v) else ((None, "no_retrieval") if res.unlogged else (v, ""))
    answer = res.answer if res.answer is not None and res.answer.strip() else None
    why: Score = (None, "not_ok" if res.status != "ok" else "no_answer")
    s["must_include_coverage"] = generation.must_include_coverage(res.answer, case.must_include)
    s["must_not_include_violation"] = generation.must_not_include_violation(
        res.answer if res.status == "ok" else res.get("answer"), case.must_not_include, ok=res.status == "ok")
    s["citation_accuracy"] = generation.citation_accuracy(res.get("citations"), case.gold, res.level,
                                                          res.retrieved_list)
    if answer is None:
        s.update(faithfulness=why, citation_validity=why, answer_relevance=why)
    else:
        s["faithfulness"] = generation.faithfulness(judge, answer, generation.contexts(res.retrieved_list, corpus))
        s["citation_validity"] = ((None, "no_retrieval") if res.unlogged else
                                  generation.citation_validity(res.get("citations"), res.retrieved_list, res.level))
        s["answer_relevance"] = generation.answer_relevance(judge, case.question, answer)
    s["exact_match"] = generation.against_reference(case, res, old_exact_match, exact=True)
    s["token_f1"] = generation.against_reference(case, res, old_token_f1)
    s["rouge_l"] = generation.against_reference(case, res, old_rouge_l)
    s["tool_call_accuracy"] = agent.tool_call_accuracy(res.get("tool_calls"), case.expected_tools)
    ok = agent.task_success(res.status, s["must_include_coverage"][0], s["must_not_include_violation"][0],
                            s["tool_call_accuracy"][0], redacted=generation.REDACTED in (
                                s["must_include_coverage"][1], s["must_not_include_violation"][1]),
                            answered=agent.answered(res.get("answer")))
    s["task_success_rate"] = (None, generation.REDACTED) if ok is None else (1.0 if ok else 0.0, "")
    s["retry_rate"] = (1.0 if agent.retried(res.get("attempts")) else 0.0, "")
    s["error_rate"] = (0.0 if res.status == "ok" else 1.0, "")
    raw = ops.raw_ops(res)
    s["tokens_per_case"] = ops.tokens(raw["input_tokens"], raw["output_tokens"])
    return s


def oracle(cases: list[EvalCase], results: list[dict[str, Any]], *, k: int, corpus: Any = None) -> pd.DataFrame:
    judge = LexicalJudge()
    run = CaseRun(cases, _pair(cases, results), k=k, corpus=corpus, judge=judge)
    rows = []
    with old_kernels():
        for res in run.rows:
            s = _case_scores(res, judge, corpus, k)
            row: dict[str, Any] = {"case_id": res.case.id}
            for name in per_case_metrics():
                if not METRICS[name].measured_by(judge):
                    continue
                val, reason = s[name]
                row[name] = math.nan if val is None else float(val)
                row[name + "_reason"] = "" if val is not None else (reason or "unmeasured")
            raw = ops.raw_ops(res)
            lat = raw["latency_ms"]
            raw.update(latency_ms_reason="no_latency" if math.isnan(lat) else
                       ("from_cache" if raw["from_cache"] else ""), task_success=s["task_success_rate"][0] == 1.0)
            rows.append({**row, **{n: raw[n] for n in ops.RAW_COLUMNS}})
    return pd.DataFrame(rows)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
    return type(x) is type(y) and x == y


def assert_identical(cases: list[EvalCase], results: list[dict[str, Any]], *, k: int = 5,
                     corpus: Any = None) -> None:
    got = score_cases(cases, results, k=k, corpus=corpus)
    want = oracle(cases, results, k=k, corpus=corpus)
    assert list(got.columns) == list(want.columns)
    for col in want.columns:
        a, b = got[col].tolist(), want[col].tolist()
        bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not _same(x, y)]
        assert not bad, f"{col}: case {want['case_id'][bad[0]]}: fast {a[bad[0]]!r}, oracle {b[bad[0]]!r}"


# --- the kernels one by one, on random input -------------------------------------------------

_TRICKY = ["a", "an", "the", "The", "keys", "Σ", "ΣΑΣ", "é", "e\u0301", "\u0301x", "ﬁle", "Ⅻ", "İ", "ß", "x_y",
           "don't", "1,000", "e-mail", "[1]", "[d1#0]", "[EMAIL]", "[Refunds are approved]", "!", "?", ".", ",",
           "\u00a0", "\u3000", "\n", "\t", " ", "  ", "—", "(", ")", ";", ":", "-", " - ", "but", "however",
           "I", "could", "not", "find", "we", "cannot", "confirm", "no", "information", "about", "refund",
           "refunds", "rotate", "key", "portal", "owner", "9", "42", "x", "is", "ＡＢＣ", "\x00", "\u2028"]

tricky_text = st.lists(st.sampled_from(_TRICKY), max_size=30).map("".join) | st.text(max_size=60)


@settings(max_examples=400, deadline=None)
@given(s=tricky_text)
def test_the_tokeniser_gives_the_previous_content_words(s: str) -> None:
    assert text.content_words(s) == old_content_words(s)
    assert text.content_word_set(s) == frozenset(old_content_words(s))


@settings(max_examples=400, deadline=None)
@given(s=tricky_text)
def test_an_answers_words_are_the_union_of_its_sentences_words(s: str) -> None:
    """What the lexical judge's relevance reads from its sentences: the words of the whole answer."""
    stripped = text.strip_citations(s)
    union = set().union(*(old_content_words(x) for x in text.sentences(stripped)))
    assert union == set(old_content_words(stripped))


#: ASCII text of words, punctuation, whitespace and control characters (the byte-translated tokens, and
#: the texts a control character or a citation sends back to the translation of each character)
ascii_text = st.lists(st.sampled_from(["a", "an", "the", "The", "A", "x", "Key", "9", "don't", "1,000", "e-mail",
                                       "x_y", "[d1#0]", "[1]", "[EMAIL]", " ", "  ", "\t", "\n", "\x1c", "\x0b",
                                       "\x00", "\x7f", "!", ".", "~", "$", "|"]), max_size=30).map("".join) \
    | st.text(st.characters(max_codepoint=127), max_size=60)


@settings(max_examples=800, deadline=None)
@given(s=ascii_text | tricky_text)
def test_reference_tokens_are_the_previous_normalisation(s: str) -> None:
    assert reference.normalize_answer(s) == old_normalize_answer(s)
    assert reference.tokens(s) == old_tokens(s)


def old_phrase_normalize(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower()).strip()


@settings(max_examples=600, deadline=None)
@given(s=ascii_text | tricky_text | st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000ab"),
                                            max_size=20))
def test_phrase_normalisation_is_the_whitespace_regex(s: str) -> None:
    assert generation.normalize(s) == old_phrase_normalize(s)


@settings(max_examples=600, deadline=None)
@given(a=st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True) | st.lists(st.sampled_from("abcd"), max_size=9),
       b=st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True) | st.lists(st.sampled_from("abcd"), max_size=9))
def test_token_f1_with_and_without_repeated_tokens_is_the_counter_one(a: list[str], b: list[str]) -> None:
    assert reference.token_f1(a, b) == old_token_f1(a, b)


_long_distinct = st.lists(st.integers(0, 150).map(str), min_size=60, max_size=90, unique=True)


@settings(max_examples=400, deadline=None)
@given(a=st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True) | st.lists(st.sampled_from("abcd"), max_size=9)
       | _long_distinct,
       b=st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True) | st.lists(st.sampled_from("abcd"), max_size=9)
       | _long_distinct)
def test_the_lcs_of_distinct_and_of_repeated_tokens_is_the_dynamic_programme(a: list[str], b: list[str]) -> None:
    assert reference.lcs_length(a, b) == old_lcs(a, b)
    assert reference.rouge_l(a, b) == old_rouge_l(a, b)


@settings(max_examples=300, deadline=None)
@given(a=st.lists(st.sampled_from("abcde"), max_size=90), b=st.lists(st.sampled_from("abcdef"), max_size=70))
def test_the_bit_parallel_lcs_is_the_dynamic_programme(a: list[str], b: list[str]) -> None:
    assert reference.lcs_length(a, b) == old_lcs(a, b) == reference.lcs_length(b, a)
    assert reference.token_f1(a, b) == old_token_f1(a, b)
    assert reference.rouge_l(a, b) == old_rouge_l(a, b)


_item = st.one_of(
    st.fixed_dictionaries({"id": st.sampled_from(["d1#0", "d1#1", "d2#0", "d3", "", None, 7]),
                           "source": st.sampled_from(["d1", "d2", "", None, 3])}),
    st.fixed_dictionaries({"id": st.sampled_from(["d1#0", "d2#1", "d4#0"])}),
    st.sampled_from(["d1#0", "d2#0", "d2", "", "d5#1"]),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(lists=st.lists(st.lists(_item, max_size=9), min_size=0, max_size=8),
       golds=st.data(), k=st.integers(1, 6))
def test_the_relevance_matrix_is_the_per_case_one(lists: list[list[Any]], golds: st.DataObject, k: int) -> None:
    gold = [golds.draw(st.lists(st.sampled_from(["d1", "d2", "d1#0", "d2#1", "d3"]), max_size=3)) for _ in lists]
    levels = [golds.draw(st.sampled_from(["chunk", "source"])) for _ in lists]
    rel, ng = retrieval.relevance_matrix(lists, gold, levels, k)
    want_rel, want_ng = old_relevance_matrix(lists, gold, levels, k)
    assert rel.tolist() == want_rel.tolist() and ng.tolist() == want_ng.tolist()


_WORDS = ["refund", "refunds", "key", "keys", "rotate", "portal", "owner", "the", "we", "cannot", "confirm",
          "it", "but", "is", "approved", "at", "once", "[d1#0]", "I", "could", "not", "find", "this", "however",
          "no", "information", "about", "Σύστημα", "ﬁle", "e\u0301te", "—", ",", "(", "in", "the", "docs", "covered"]


def _texts(rng: random.Random) -> str:
    def sentence() -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(0, 9))) + rng.choice([".", "!", "?", ""])

    return rng.choice([" ", "\n", "  ", "\u00a0"]).join(sentence() for _ in range(rng.randrange(0, 4)))


def _old_faithfulness_many(judge: LexicalJudge, items: Sequence[tuple[str, Sequence[str]]]) -> list[Score]:
    with old_kernels():
        return [judge.faithfulness(a, c) for a, c in items]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([1e-13, 0.3, 0.5, 0.6, 2 / 3, 1.0]),
       min_words=st.integers(1, 3))
def test_the_lexical_batches_give_the_per_case_verdicts(seed: int, threshold: float, min_words: int) -> None:
    rng = random.Random(seed)
    judge = LexicalJudge(threshold=threshold, min_content_words=min_words)
    shared = [_texts(rng) for _ in range(3)]  # chunks many cases retrieve
    items = [(_texts(rng), _texts(rng), [rng.choice(shared) if rng.random() < 0.5 else _texts(rng)
                                         for _ in range(rng.randrange(0, 4))]) for _ in range(40)]
    want_faith = _old_faithfulness_many(judge, [(a, c) for _, a, c in items])
    with old_kernels():
        want_rel = [judge.relevance(q, a) for q, a, _ in items]
    assert judge.faithfulness_many([(a, c) for _, a, c in items]) == want_faith
    assert judge.relevance_many([(q, a) for q, a, _ in items]) == want_rel
    both = lexical_verdicts(judge, items)
    assert [f for f, _ in both] == [f if c else None for f, (_, _, c) in zip(want_faith, items, strict=True)]
    assert [r for _, r in both] == want_rel


# --- whole runs ------------------------------------------------------------------------------


def random_run(seed: int, n: int, *, plain: bool) -> tuple[list[EvalCase], list[dict[str, Any]]]:
    """Cases and results lines with every branch the metrics have (seeded). ``plain``: every
    retrieved item is a mapping (the fast reading of the items); else bare ids and other values too."""
    rng = random.Random(seed)
    cases, results = [], []
    for i in range(n):
        docs = [f"d{rng.randrange(6)}" for _ in range(rng.randrange(0, 8))]
        gold = rng.sample(["d0", "d1", "d2", "d3"], rng.randrange(0, 3))
        chunk_level = rng.random() < 0.3
        case = EvalCase(
            id=f"c{i}", question=rng.choice([f"How do I {_texts(rng)}?", "the a an", "Why?"]),
            expected_source=gold[0] if gold and not chunk_level else None,
            expected_chunks=tuple(f"{g}#{rng.randrange(2)}" for g in gold) if chunk_level else (),
            must_include=tuple(rng.sample(_WORDS, rng.randrange(0, 3))),
            must_not_include=tuple(rng.sample(["password", "[EMAIL]", "refund"], rng.randrange(0, 2))),
            reference_answer=rng.choice([None, "", "The a.", _texts(rng), "Refund the key [d1#0]."]),
            expected_tools=({"name": "lookup", "args": {"q": "x"}},) if rng.random() < 0.2 else (),
        )
        status = rng.choice(["ok"] * 6 + ["error", "timeout", None])
        answer = rng.choice([None, "", "  ", _texts(rng) + " [d1#0].", "Write to [EMAIL] about the " + _texts(rng),
                             "I could not find this.", "We cannot confirm it, but refunds are approved at once.",
                             "Call [PHONE] to rotate the key.", 42])
        items: list[Any] = []
        for d in docs:
            r = rng.random()
            if plain or r < 0.7:
                it: dict[str, Any] = {"id": rng.choice([f"{d}#{rng.randrange(2)}", f"{d}#0", "", None]),
                                      "source": rng.choice([d, d, "", None, 5]),
                                      "text": rng.choice([_texts(rng), "", "   ", None, 3])}
                for key in ("source", "text"):
                    if rng.random() < 0.1:
                        del it[key]
                items.append(it)
            else:
                items.append(rng.choice([f"{d}#0", d, None, 5, ["x"]]))
        line: dict[str, Any] = {
            "case_id": case.id, "status": status, "answer": answer,
            "citations": rng.choice([[], None, "d1#0", [rng.choice(["d1#0", "d2#1", "d0", "x", None, 3, "d1#0"])
                                                         for _ in range(rng.randrange(0, 4))]]),
            "tool_calls": [{"name": "lookup", "args": {"q": rng.choice(["x", "y"])}}] if rng.random() < 0.3 else [],
            "attempts": rng.choice([1, 1, 2, 0, None, True, "3", 2.0]),
            "latency_ms": rng.choice([None, rng.uniform(1, 900), 12, True, "9"]),
            "usage": rng.choice([None, {"input_tokens": rng.randrange(9), "output_tokens": rng.randrange(9)},
                                 {"input_tokens": 3.5}, {"output_tokens": False}, "x"]),
            "cost_usd": rng.choice([None, rng.uniform(0, 0.01), 0]),
            "from_cache": rng.choice([None, False, True, 1]),
        }
        if rng.random() < 0.1:
            line["retrieval_logged"] = False
        if rng.random() < 0.9:
            line["retrieved"] = items if rng.random() < 0.95 else "not a list"
        cases.append(case)
        results.append(line)
    return cases, results


class _Corpus:
    """Chunk text for items without their own: every id of the random runs."""

    def chunk(self, cid: str) -> Chunk | None:
        if cid.endswith("#1"):
            return None
        return Chunk(id=cid, source=cid.split("#")[0], title="t", heading="", text=f"Rotate the {cid} key owner.")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), k=st.integers(1, 6), plain=st.booleans(),
       corpus=st.booleans())
def test_score_cases_is_the_per_case_scorer_on_random_runs(seed: int, n: int, k: int, plain: bool,
                                                           corpus: bool) -> None:
    cases, results = random_run(seed, n, plain=plain)
    assert_identical(cases, results, k=k, corpus=_Corpus() if corpus else None)


def test_score_cases_is_the_per_case_scorer_on_recorded_benchmark_results(tmp_path: Path) -> None:
    """The benchmark's recorded results (every item a mapping with its text: the fast reading)."""
    from labkit.runs import read_results

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_score
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    ds, run = bench_score.write_data(400, tmp_path)
    cases = list(load_cases(ds))
    results = read_results(run / "results.jsonl")
    assert_identical(cases, results, k=5)
    assert_identical(cases, results, k=2)


@pytest.mark.slow
def test_score_cases_is_the_per_case_scorer_on_the_shipped_data(shipped_run: Path) -> None:
    from labkit.runs import RunDir
    from labkit.scoring import resolve_corpus

    rd = RunDir(shipped_run)
    cases = list(load_cases(ROOT / "data" / "golden.jsonl"))
    results = rd.results()
    corpus = resolve_corpus(None, rd)
    assert corpus is not None and len(results) == len(cases) > 20
    assert_identical(cases, results, corpus=corpus)
    assert_identical(cases, results, k=1, corpus=corpus)
    stripped = [{**r, "retrieved": [{"id": it["id"]} for it in r.get("retrieved") or []]} for r in results]
    assert_identical(cases, stripped, corpus=corpus)  # every context text from the corpus
    assert_identical(cases, [json.loads(json.dumps(r)) for r in results], k=3)


_cited = st.sampled_from(["d1#0", "d1#1", "d2#0", "d2", "d3", "", "#0", None, 3, "d1#0"])
_line_item = st.one_of(
    st.fixed_dictionaries({"id": st.sampled_from(["d1#0", "d1#1", "d2#0", "d3", "", None, 7]),
                           "source": st.sampled_from(["d1", "d2", "d9", "", None, 3])},
                          optional={"text": st.sampled_from(["Rotate the key.", "", None])}),
    st.sampled_from(["d1#0", "d2#0", "d2", "", None, 5]),
)


@st.composite
def citing_runs(draw: st.DrawFn) -> tuple[list[EvalCase], list[dict[str, Any]]]:
    """Cases with gold at chunk and at source level (or none) and lines citing one id, several
    (repeated, odd values) or none, with retrieved items as mappings and as bare ids."""
    cases, lines = [], []
    for i in range(draw(st.integers(1, 12))):
        gold = draw(st.lists(st.sampled_from(["d1", "d2", "d3"]), max_size=2, unique=True))
        chunks = draw(st.booleans())
        cases.append(EvalCase(id=f"c{i}", question="Rotate the key?",
                              expected_source=gold[0] if gold and not chunks else None,
                              expected_chunks=tuple(f"{g}#0" for g in gold) if chunks else ()))
        lines.append({"case_id": f"c{i}", "status": draw(st.sampled_from(["ok", "ok", "error"])),
                      "answer": draw(st.sampled_from(["Rotate it [d1#0].", "Ünïcode — ok [d2].", "", None])),
                      "retrieved": draw(st.lists(_line_item, max_size=5)),
                      "citations": draw(st.one_of(st.lists(_cited, max_size=1), st.lists(_cited, max_size=4),
                                                  st.sampled_from([None, "d1#0", ["d1#0"]])))})
        if draw(st.integers(0, 9)) == 0:
            lines[-1]["retrieval_logged"] = False
    return cases, lines


@settings(max_examples=150, deadline=None)
@given(run=citing_runs())
def test_the_citation_columns_with_one_and_several_citations_are_the_per_case_ones(
        run: tuple[list[EvalCase], list[dict[str, Any]]]) -> None:
    assert_identical(*run)
