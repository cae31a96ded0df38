"""Ragas and labkit on the same imported data: where the definitions coincide they agree.

The fixture tests/data/peer/ragas.jsonl was written by Ragas 0.4.3 itself
(``EvaluationDataset.from_list(...).to_jsonl``); this test reads it with Ragas, computes
Ragas's non-LLM metrics, imports the same file into labkit, scores it, and compares case by
case. The definitions coincide when every retrieved and reference context is a whole chunk's
text (Ragas's string similarity is then 1 for the same passage and below its 0.5 threshold for
any other), k covers every retrieved context and no context repeats:

- ``NonLLMContextPrecisionWithReference`` = labkit ``context_precision``
  (average precision of the relevant ranks);
- ``NonLLMContextRecall`` = labkit ``recall_at_k`` (share of the reference contexts retrieved);
- ``ExactMatch`` = labkit ``exact_match`` where the two answers are equal or differ beyond case,
  punctuation and articles (labkit normalises as SQuAD does, Ragas compares the raw strings).

Where they differ by design: a reference context that matches no chunk leaves labkit's retrieval
metrics unmeasured (``no_gold``, reason ``no_gold_match`` in the case's metadata), where Ragas
scores the string similarity of that text anyway (0 here).
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path

import pytest

from labkit.cli import main

PEER = Path(__file__).parent / "data" / "peer"
CORPUS = str(Path(__file__).parents[1] / "data" / "corpus")


@pytest.fixture(scope="module")
def ragas_metrics():
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"  # no usage telemetry from the oracle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ragas import EvaluationDataset
        from ragas.metrics import (
            ExactMatch,
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
        )

        ds = EvaluationDataset.from_jsonl(str(PEER / "ragas.jsonl"))
        metrics = {"context_precision": NonLLMContextPrecisionWithReference(),
                   "recall_at_k": NonLLMContextRecall(), "exact_match": ExactMatch()}

        async def score(sample):
            return {name: float(await m.single_turn_ascore(sample)) for name, m in metrics.items()}

        return [asyncio.run(score(s)) for s in ds.samples]


def _labkit_scores(tmp: Path, source: Path) -> list[dict]:
    import pandas as pd

    out = tmp / "imp"
    assert main(["import", "ragas", str(source), "--out", str(out), "--corpus", CORPUS]) == 0
    assert main(["score", str(out / "run"), "--k", "5"]) == 0
    order = [json.loads(x)["id"] for x in (out / "dataset.jsonl").read_text().splitlines()]
    df = pd.read_csv(out / "run" / "scores.csv", dtype={"case_id": str}).set_index("case_id").loc[order]
    return df.to_dict("records")


def test_ragas_non_llm_metrics_agree_with_labkit_on_the_imported_file(tmp_path, ragas_metrics):
    labkit = _labkit_scores(tmp_path, PEER / "ragas.jsonl")
    assert len(labkit) == len(ragas_metrics) == 6
    compared = 0
    for ours, theirs in zip(labkit, ragas_metrics, strict=True):
        for name in ("context_precision", "recall_at_k"):
            if ours[f"{name}_reason"] == "no_gold":  # no chunk matched the reference text: by design
                assert theirs[name] == 0.0
                continue
            assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name
            compared += 1
        assert ours["exact_match"] == theirs["exact_match"]
    assert compared == 10  # five cases with gold, two metrics each
    assert sorted({round(r["recall_at_k"], 2) for r in ragas_metrics}) == [0.0, 0.5, 1.0]  # not all alike


def test_a_labkit_export_read_back_by_ragas_scores_the_same(tmp_path, ragas_metrics):
    """The cross-check path: labkit's dataset and run exported as Ragas JSONL, loaded by Ragas."""
    out = tmp_path / "imp"
    assert main(["import", "ragas", str(PEER / "ragas.jsonl"), "--out", str(out), "--corpus", CORPUS]) == 0
    exported = tmp_path / "back.jsonl"
    assert main(["export", "ragas", "--dataset", str(out / "dataset.jsonl"), "--run", str(out / "run"),
                 "--corpus", CORPUS, "--out", str(exported)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ragas import EvaluationDataset
        from ragas.metrics import NonLLMContextRecall

        back = EvaluationDataset.from_jsonl(str(exported))
        metric = NonLLMContextRecall()
        got = [float(asyncio.run(metric.single_turn_ascore(s))) for s in back.samples]
    # the reference contexts travel in the case metadata, so Ragas sees exactly what it saw before
    assert got == [r["recall_at_k"] for r in ragas_metrics]
