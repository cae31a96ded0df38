"""The offline reference RAG pipeline: BM25 retrieval and a SIMULATED generator.

Nothing here calls a model. The generator stands in for an LLM so the lab runs
with no network and no weights:

* the answer is extractive: the best-matching sentences of the retrieved chunks,
  each followed by a citation marker ``[<chunk-id>]``;
* token counts are counted (a word-piece estimate of the prompt and answer),
  cost comes from the price table of the config's model profile;
* latency is MODELLED from the token counts by a seeded log-normal
  distribution, not measured: results say so with ``latency_source: modelled``
  and ``simulated: true``;
* ``unsupported_claim_rate`` makes the simulated model add, on a seeded share
  of cases, one sentence no retrieved context supports, so faithfulness has
  something to find;
* two tools are routed by rules on the question: ``lookup_account`` for a user
  id ``u-<n>``, ``escalate_ticket`` for a ticket id ``T-<n>`` when the question
  asks to escalate. Their outputs come from a simulated account table.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.pipelines import register_pipeline
from labkit.pipelines.hybrid import check_retriever, make_retriever
from labkit.text import content_words

if TYPE_CHECKING:
    from labkit.cases import EvalCase
    from labkit.corpus import Chunk, Corpus

_TOKEN = re.compile(r"\w+|[^\w\s]")
_USER = re.compile(r"\bu-\d+\b")
_TICKET = re.compile(r"\bT-\d+\b")
_ESCALATE = re.compile(r"\bescalat", re.IGNORECASE)
ABSTAIN = "I could not find this in the knowledge base, so I cannot answer it."
_FABRICATIONS = (
    "Refunds of any amount are approved automatically within one hour.",
    "Support agents may share account passwords over chat when the customer is in a hurry.",
    "Every plan includes unlimited API requests with no rate limits.",
    "Deleted workspaces can be restored at any time, even years later.",
)


def count_tokens(text: str) -> int:
    """A deterministic estimate of model tokens: words and punctuation, long words counted twice."""
    return sum(1 + len(t) // 8 for t in _TOKEN.findall(text))


def _unit(*parts: str) -> float:
    """A uniform number in [0, 1) from a hash of ``parts`` (seeded, order-free of runs)."""
    h = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class Retriever:
    """BM25 over the corpus chunks (bm25s), on the content words of labkit.text (the judge's tokeniser)."""

    def __init__(self, corpus: Corpus, top_k: int = 5) -> None:
        import bm25s

        self.corpus = corpus
        self.top_k = top_k
        self._chunks: list[Chunk] = list(corpus.chunks)
        self._bm25 = bm25s.BM25()
        self._bm25.index([content_words(c.text) or ["_"] for c in self._chunks], show_progress=False)

    def retrieve(self, question: str, top_k: int | None = None) -> list[dict[str, Any]]:
        k = min(top_k or self.top_k, len(self._chunks))
        words = [w for w in content_words(question) if w in self._bm25.vocab_dict] or ["_"]
        if words == ["_"] and "_" not in self._bm25.vocab_dict:
            return []
        docs, scores = self._bm25.retrieve([words], k=k, show_progress=False)
        out = []
        for idx, score in zip(docs[0], scores[0], strict=True):
            if float(score) <= 0.0:
                continue
            c = self._chunks[int(idx)]
            out.append({"id": c.id, "source": c.source, "score": round(float(score), 4), "text": c.text})
        return out


@dataclass(frozen=True)
class ModelProfile:
    """The simulated model: price table, latency model and failure behaviour."""

    name: str = "sim-gen-large"
    provider: str = "labkit-sim"
    price_per_1k_input: float = 0.01
    price_per_1k_output: float = 0.03
    base_latency_ms: float = 450.0
    per_input_token_ms: float = 0.9
    per_output_token_ms: float = 14.0
    latency_sigma: float = 0.3
    unsupported_claim_rate: float = 0.05


@dataclass(frozen=True)
class RagConfig:
    prompt_version: str = "rag-v1"
    corpus: str = "data/corpus"
    chunk_size: int = 200
    top_k: int = 5
    answer_sentences: int = 3
    min_score: float = 3.0
    min_coverage: float = 0.5
    seed: int = 0
    tools: bool = True
    model: ModelProfile = field(default_factory=ModelProfile)
    retriever: Mapping[str, Any] = field(default_factory=lambda: {"type": "bm25"})  # labkit.pipelines.hybrid

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | None = None) -> RagConfig:
        m = d.get("model") or {}
        if not isinstance(m, dict):
            raise ConfigError("must be a mapping", path=path, field="model")
        kwargs = _typed_fields(cls, d, {"type", "name", "description", "runner", "fallback", "model",
                                        "retriever"}, path, "")
        model = ModelProfile(**_typed_fields(ModelProfile, m, {"simulated"}, path, "model."))
        cfg = cls(**kwargs, model=model, retriever=check_retriever(d.get("retriever"), path))
        if cfg.top_k < 1 or cfg.answer_sentences < 1:
            raise ConfigError("top_k and answer_sentences must be at least 1", path=path, field="top_k")
        if not 0.0 <= cfg.model.unsupported_claim_rate <= 1.0:
            raise ConfigError("must be in [0, 1]", path=path, field="model.unsupported_claim_rate")
        for key in ("price_per_1k_input", "price_per_1k_output"):
            price = getattr(cfg.model, key)
            if not math.isfinite(price) or price < 0:
                raise ConfigError(f"must be a finite price >= 0 (USD per 1k tokens), got {price!r}", path=path,
                                  field=f"model.{key}")
        return cfg


def _typed_fields(
    cls: Any, d: Mapping[str, Any], other_keys: set[str], path: str | None, prefix: str
) -> dict[str, Any]:
    """The dataclass fields given in ``d``, each of its default's type (an int passes for a
    float); an unknown key or a wrong type is a ConfigError naming the field."""
    fields = cls.__dataclass_fields__
    known = sorted(set(fields) | other_keys)
    out: dict[str, Any] = {}
    for key, val in d.items():
        if key in other_keys:
            continue
        if key not in fields:
            raise ConfigError(f"unknown key {key!r}", path=path, field=prefix + key, known=known)
        want = type(fields[key].default)
        if want is float and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        if not isinstance(val, want) or isinstance(val, bool) != (want is bool):
            raise ConfigError(f"must be {want.__name__}, got {val!r}", path=path, field=prefix + key)
        out[key] = val
    return out


def _account(user_id: str) -> dict[str, Any]:
    """The simulated account table: deterministic fake records keyed by user id."""
    n = int(user_id.split("-")[1])
    plans = ("Starter", "Team", "Business", "Enterprise")
    return {"user_id": user_id, "plan": plans[n % 4], "status": "locked" if n % 3 == 2 else "active",
            "seats": 5 + (n * 7) % 50}


class RagPipeline:
    """Callable reference pipeline; see the module docstring. Deterministic per case."""

    def __init__(self, config: RagConfig, corpus: Corpus) -> None:
        self.config = config
        self.corpus = corpus
        self.retriever = make_retriever(config.retriever, Retriever(corpus, config.top_k))

    def tools_for(self, question: str, case_id: str = "") -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for uid in _USER.findall(question):
            calls.append({"name": "lookup_account", "args": {"user_id": uid}, "status": "ok",
                          "output": _account(uid)})
        if _ESCALATE.search(question):
            for tid in _TICKET.findall(question):
                key = hashlib.sha256(f"{case_id}|escalate_ticket|{tid}".encode()).hexdigest()[:16]
                calls.append({"name": "escalate_ticket", "args": {"ticket_id": tid}, "status": "ok",
                              "side_effect": True, "idempotency_key": key,
                              "output": {"ticket_id": tid, "queue": "tier-2", "sla_hours": 4}})
        return calls

    def compose(self, question: str, retrieved: list[dict[str, Any]]) -> tuple[str, list[str]]:
        """Pick the best sentences of the retrieved chunks; cite each one."""
        from labkit.corpus import split_sentences

        q = set(content_words(question))
        scored: list[tuple[float, int, str, str]] = []
        for rank, item in enumerate(retrieved):
            for j, sent in enumerate(split_sentences(item["text"])):
                if sent.startswith("#"):
                    continue
                words = set(content_words(sent))
                if not words:
                    continue
                overlap = len(q & words)
                if overlap == 0:
                    continue
                score = overlap / math.sqrt(len(words)) + 0.5 / (rank + 1) - 0.01 * j
                scored.append((score, rank, item["id"], sent))
        scored.sort(key=lambda t: (-t[0], t[1]))
        chosen = scored[: self.config.answer_sentences]
        parts = [f"{sent} [{cid}]" for _, _, cid, sent in chosen]
        citations = list(dict.fromkeys(cid for _, _, cid, _ in chosen))
        return " ".join(parts), citations

    def __call__(self, case: EvalCase) -> dict[str, Any]:
        cfg, model = self.config, self.config.model
        question = case.question
        retrieved = self.retriever.retrieve(question)
        q = set(content_words(question))
        relevant = [
            r for r in retrieved
            if r.get("bm25_score", r["score"]) >= cfg.min_score
            or (q and len(q & set(content_words(r["text"]))) / len(q) >= cfg.min_coverage)
        ]
        tool_calls = self.tools_for(question, case.id) if cfg.tools else []
        if relevant:
            answer, citations = self.compose(question, relevant)
        else:
            answer, citations = "", []
        if not answer:
            answer, citations = ABSTAIN, []
        elif _unit(str(cfg.seed), model.name, case.id, "fabricate") < model.unsupported_claim_rate:
            pick = int(_unit(str(cfg.seed), case.id, "which") * len(_FABRICATIONS))
            answer = f"{answer} {_FABRICATIONS[pick]}"
        prompt = " ".join([cfg.prompt_version, question, *(r["text"] for r in retrieved)])
        tin = count_tokens(prompt) + 40 * len(tool_calls)
        tout = count_tokens(answer)
        cost = tin / 1000 * model.price_per_1k_input + tout / 1000 * model.price_per_1k_output
        # Modelled latency: deterministic log-normal noise around a token-linear mean.
        u1 = max(_unit(str(cfg.seed), model.name, case.id, "lat1"), 1e-12)
        u2 = _unit(str(cfg.seed), model.name, case.id, "lat2")
        z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        mean = model.base_latency_ms + model.per_input_token_ms * tin + model.per_output_token_ms * tout
        latency = mean * math.exp(model.latency_sigma * z - model.latency_sigma**2 / 2)
        return {
            "answer": answer,
            "retrieved": retrieved,
            "citations": citations,
            "tool_calls": tool_calls,
            "usage": {"input_tokens": tin, "output_tokens": tout},
            "cost_usd": round(cost, 8),
            "latency_ms": round(latency + 250.0 * len(tool_calls), 1),
            "latency_source": "modelled",
            "model": model.name,
            "provider": model.provider,
            "prompt_version": cfg.prompt_version,
            "simulated": True,
        }


def load_corpus_for(config: Mapping[str, Any], base_dir: Path, corpus_dir: str | None) -> Corpus:
    from labkit.corpus import Corpus

    chunk_size = config.get("chunk_size", 200)
    if corpus_dir is not None:
        root = Path(corpus_dir)
    else:
        raw = config.get("corpus", "data/corpus")
        root = Path(raw) if Path(raw).is_absolute() else base_dir / str(raw)
    return Corpus.load(root, chunk_size=int(chunk_size))


@register_pipeline("rag")
def make_rag(
    config: Mapping[str, Any], *, base_dir: Path, corpus_dir: str | None = None, path: str | None = None
) -> RagPipeline:
    cfg = RagConfig.from_dict(config, path=path)
    return RagPipeline(cfg, load_corpus_for(config, base_dir, corpus_dir))
