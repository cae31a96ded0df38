"""The columnar scorer (labkit.metrics.columns) against a per-case oracle.

The oracle below scores one case at a time straight from the definitions (the pure
functions of labkit.metrics.retrieval / generation / reference / agent / ops and the
judge's own per-case ``faithfulness`` / ``relevance``), the way the per-case scorer did
before scoring went columnar. It lives here only as a test oracle: labkit has one scorer.
Both must give identical per-case values and reasons, and identical aggregates, on the
shipped data (a real run of the shipped pipelines over data/golden.jsonl) and on random data.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cases import EvalCase, load_cases
from labkit.judges import LexicalJudge
from labkit.metrics import agent, aggregate, generation, ops, reference, retrieval, score_cases
from labkit.metrics.percase import CaseRun, _pair
from labkit.registry import METRICS, per_case_metrics
from labkit.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
Score = tuple[float | None, str]


def _retrieval_oracle(res: Any, k: int) -> dict[str, Score]:
    case = res.case
    rel, n_gold = retrieval.relevance_matrix([res.retrieved_list], [case.gold], [case.gold_level], k)
    got = retrieval.retrieval_metrics_from_matrix(rel, n_gold, k=k)
    out: dict[str, Score] = {}
    for name, arr in got.items():
        v = float(arr[0])
        out[name] = (None, "no_gold") if math.isnan(v) else ((None, "no_retrieval") if res.unlogged else (v, ""))
    return out


def _generation_oracle(res: Any, judge: Any, corpus: Any) -> dict[str, Score]:
    case = res.case
    answer = res.answer if res.answer is not None and res.answer.strip() else None
    why: Score = (None, "not_ok" if res.status != "ok" else "no_answer")
    out: dict[str, Score] = {
        "must_include_coverage": generation.must_include_coverage(res.answer, case.must_include),
        "must_not_include_violation": generation.must_not_include_violation(
            res.answer if res.status == "ok" else res.get("answer"), case.must_not_include, ok=res.status == "ok"),
        "citation_accuracy": generation.citation_accuracy(res.get("citations"), case.gold, res.level,
                                                          res.retrieved_list),
    }
    if answer is None:
        out.update(faithfulness=why, citation_validity=why, answer_relevance=why)
    else:
        out["faithfulness"] = generation.faithfulness(judge, answer, generation.contexts(res.retrieved_list, corpus))
        out["citation_validity"] = ((None, "no_retrieval") if res.unlogged else
                                    generation.citation_validity(res.get("citations"), res.retrieved_list, res.level))
        out["answer_relevance"] = generation.answer_relevance(judge, case.question, answer)
    out["exact_match"] = generation.against_reference(case, res, reference.exact_match, exact=True)
    out["token_f1"] = generation.against_reference(case, res, reference.token_f1)
    out["rouge_l"] = generation.against_reference(case, res, reference.rouge_l)
    return out


def oracle(cases: list[EvalCase], results: list[dict[str, Any]], *, k: int = 5, corpus: Any = None) -> pd.DataFrame:
    """The per-case scorer, case by case from the definitions."""
    judge = LexicalJudge()
    run = CaseRun(cases, _pair(cases, results), k=k, corpus=corpus, judge=judge)
    rows = []
    for res in run.rows:
        s = {**_retrieval_oracle(res, k), **_generation_oracle(res, judge, corpus)}
        s["tool_call_accuracy"] = agent.tool_call_accuracy(res.get("tool_calls"), res.case.expected_tools)
        ok = agent.task_success(res.status, s["must_include_coverage"][0], s["must_not_include_violation"][0],
                                s["tool_call_accuracy"][0], redacted=generation.REDACTED in (
                                    s["must_include_coverage"][1], s["must_not_include_violation"][1]),
                                answered=agent.answered(res.get("answer")))
        s["task_success_rate"] = (None, generation.REDACTED) if ok is None else (1.0 if ok else 0.0, "")
        s["retry_rate"] = (1.0 if agent.retried(res.get("attempts")) else 0.0, "")
        s["error_rate"] = (0.0 if res.status == "ok" else 1.0, "")
        raw = ops.raw_ops(res)
        s["tokens_per_case"] = ops.tokens(raw["input_tokens"], raw["output_tokens"])
        row: dict[str, Any] = {"case_id": res.case.id}
        for name in per_case_metrics():
            if not METRICS[name].measured_by(res.judge):
                continue  # a metric only another judge measures (the embedding judge's)
            val, reason = s[name]
            row[name] = math.nan if val is None else float(val)
            row[name + "_reason"] = "" if val is not None else (reason or "unmeasured")
        lat = raw["latency_ms"]
        raw.update(latency_ms_reason="no_latency" if math.isnan(lat) else ("from_cache" if raw["from_cache"] else ""),
                   task_success=ok is True)
        rows.append({**row, **{n: raw[n] for n in ops.RAW_COLUMNS}})
    return pd.DataFrame(rows)


def assert_same(cases: list[EvalCase], results: list[dict[str, Any]], *, k: int = 5, corpus: Any = None) -> None:
    got = score_cases(cases, results, k=k, corpus=corpus)
    want = oracle(cases, results, k=k, corpus=corpus)
    assert list(got.columns) == list(want.columns)
    for col in want.columns:
        a, b = got[col].tolist(), want[col].tolist()
        same = [x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
                for x, y in zip(a, b, strict=True)]
        bad = [i for i, s in enumerate(same) if not s]
        assert not bad, f"{col}: case {want['case_id'][bad[0]]}: columnar {a[bad[0]]!r}, per case {b[bad[0]]!r}"
    assert aggregate(cases, got, k=k, n_boot=200) == aggregate(cases, want, k=k, n_boot=200)


@pytest.mark.slow
def test_columnar_and_per_case_agree_on_the_shipped_data(shipped_run: Path) -> None:
    from labkit.scoring import resolve_corpus

    rd = RunDir(shipped_run)
    cases = list(load_cases(ROOT / "data" / "golden.jsonl"))
    results = rd.results()
    assert len(results) == len(cases) > 20
    corpus = resolve_corpus(None, rd)
    assert corpus is not None  # chunk text comes from the shipped corpus, as in labkit score
    assert_same(cases, results, corpus=corpus)
    assert_same(cases, results, k=1, corpus=corpus)


WORDS = ["refund", "key", "rotate", "portal", "invoice", "owner", "region", "the", "a", "is", "password"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def random_run(seed: int, n: int) -> tuple[list[EvalCase], list[dict[str, Any]]]:
    """Cases and results lines with every branch the metrics have (seeded)."""
    rng = random.Random(seed)
    cases, results = [], []
    for i in range(n):
        docs = [f"d{rng.randrange(6)}" for _ in range(rng.randrange(0, 7))]  # duplicate ids too
        gold = rng.sample(["d0", "d1", "d2", "d3"], rng.randrange(0, 3))
        chunk_level = rng.random() < 0.3
        case = EvalCase(
            id=f"c{i}", question=f"How do I {_text(rng, 4)}?",
            expected_source=gold[0] if gold and not chunk_level else None,
            expected_chunks=tuple(f"{g}#0" for g in gold) if chunk_level else (),
            must_include=tuple(rng.sample(WORDS, rng.randrange(0, 3))),
            must_not_include=("password",) if rng.random() < 0.3 else (),
            reference_answer=_text(rng, rng.randrange(0, 6)) or None,
            expected_tools=({"name": "lookup", "args": {"q": "x"}},) if rng.random() < 0.2 else (),
            tags={"category": rng.choice(["a", "b"])},
        )
        status = rng.choice(["ok"] * 6 + ["error", "timeout"])
        answer = rng.choice([None, "", _text(rng, 8) + ". " + _text(rng, 6) + " [d1#0].",
                             "Write to [EMAIL] about the " + _text(rng, 3), "I could not find this."])
        line: dict[str, Any] = {
            "case_id": case.id, "status": status, "answer": answer if status == "ok" else None,
            "citations": [rng.choice(["d1#0", "d2#1", "x"]) for _ in range(rng.randrange(0, 3))],
            "tool_calls": [{"name": "lookup", "args": {"q": rng.choice(["x", "y"])}}] if rng.random() < 0.3 else [],
            "attempts": rng.choice([1, 1, 2]),
            "latency_ms": rng.choice([None, rng.uniform(1, 900)]),
            "usage": rng.choice([None, {"input_tokens": rng.randrange(9), "output_tokens": rng.randrange(9)}]),
            "cost_usd": rng.choice([None, rng.uniform(0, 0.01)]),
        }
        if rng.random() < 0.85:  # the others log no retrieval
            line["retrieved"] = [{"id": f"{d}#{rng.randrange(2)}", "source": d, "text": _text(rng, 7) + "."}
                                 if rng.random() < 0.8 else f"{d}#0" for d in docs]
        cases.append(case)
        results.append(line)
    return cases, results


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), k=st.integers(1, 6))
def test_columnar_and_per_case_agree_on_random_data(seed: int, n: int, k: int) -> None:
    from labkit.runs import read_results

    cases, lines = random_run(seed, n)
    results = [json.loads(json.dumps(x)) for x in lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in results))
        checked = read_results(path)  # the lines as labkit score reads them (defaults filled in)
    assert_same(cases, checked, k=k)


def test_a_user_metric_reads_the_builtin_columns() -> None:
    """A user metric that reads a built-in through result.score() gets the column's value."""
    from labkit.registry import metric, unregister_metric

    @metric(name="double_mrr", stage="retrieval")
    def double_mrr(case: EvalCase, result: Any) -> float | None:
        v = result.score("mrr")
        return None if v is None else 2 * v

    try:
        cases, results = random_run(7, 30)
        df = score_cases(cases, results, k=3)
        mrr = df["mrr"].to_numpy()
        assert np.allclose(df["double_mrr"].to_numpy(), 2 * mrr, equal_nan=True)
        assert (np.isnan(df["double_mrr"]) == np.isnan(mrr)).all()
    finally:
        unregister_metric("double_mrr")


def test_a_scored_run_is_let_go_without_a_cycle_collection() -> None:
    """Each row refers back to its run: score_cases breaks that cycle, so the lines of a part are
    freed as soon as it is scored while scoring pauses the cycle collector."""
    import gc
    import weakref

    from labkit.registry import metric, unregister_metric

    seen: list[weakref.ref[Any]] = []

    @metric(name="grab_run", stage="generation")
    def grab(case: EvalCase, result: Any) -> float:
        seen.append(weakref.ref(result.run))
        return 1.0

    cases = [EvalCase(id="a", question="How do I rotate a key?")]
    was = gc.isenabled()
    gc.disable()
    try:
        score_cases(cases, [{"case_id": "a", "status": "ok", "answer": "Rotate it."}])
        assert seen and seen[0]() is None
    finally:
        unregister_metric("grab_run")
        if was:
            gc.enable()


def test_no_cases_give_an_empty_frame_with_every_column() -> None:
    """No case at all (a filter that kept none) is a frame of no rows, not a crash in the retrieval columns."""
    empty = score_cases([], [], k=5)
    one = score_cases([EvalCase(id="q1", question="How do I reset a key?", expected_source="doc1")],
                      [{"case_id": "q1", "status": "ok", "answer": "Reset it in the portal.",
                        "retrieved": [{"id": "doc1#0", "source": "doc1", "text": "Reset it in the portal."}]}], k=5)
    assert len(empty) == 0
    assert list(empty.columns) == list(one.columns)
