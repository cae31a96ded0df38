"""The embedding judge: relevance and similarity as cosines of a real embedding model.

:class:`EmbeddingJudge` (registered as ``"embedding"``, selectable like the LLM judge:
``score_cases(judge={"type": "embedding", "base_url": ..., "model": ...})``) embeds texts
through :class:`labkit.embeddings.EmbeddingsClient` and scores:

- **answer relevance** (the built-in ``answer_relevance`` metric) = cos(question as a query,
  answer as a passage), citation markers stripped from the answer;
- **semantic similarity** to the reference answer (``semantic_similarity``) = cos(answer,
  reference), both embedded as queries (E5's convention for a symmetric comparison);
- **context relevance** (``context_relevance``) = the mean over the retrieved chunks of
  cos(question as a query, chunk as a passage).

Each cosine is clipped at 0 below, so a score is in [0, 1]. Faithfulness (claim support) is
not a similarity: the judge leaves it to a claim judge, the lexical one by default
(``claims``), and says so in :meth:`EmbeddingJudge.describe`.

The two new metrics are declared in the registry with this module (``labkit.metrics`` imports
it, so a gate knows them wherever it runs) with the judge method each needs
(``judge_method``): a run scored by another judge has no such columns. Definitions:
docs/embeddings.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.errors import (
    ClientHTTPError,
    ConfigError,
    EndpointError,
    JudgeRefused,
    MalformedResponse,
)
from labkit.judges import EndpointWatch, Judge, get_judge, register_judge
from labkit.registry import metric
from labkit.text import strip_citations

if TYPE_CHECKING:
    from labkit.cases import EvalCase
    from labkit.embeddings import EmbeddingsClient

__all__ = ["DEFINITIONS_VERSION", "EmbeddingJudge"]

#: bump when a definition below changes (it goes into the manifest through describe())
DEFINITIONS_VERSION = "embedding-v1"


@register_judge("embedding")
class EmbeddingJudge:
    """A judge behind an OpenAI-compatible embeddings endpoint (module docstring).

    ``base_url``, ``model``, ``api_key_env`` and the keyword options (``timeout_s``,
    ``batch_size``, ``retries``, ``send_input_type``, ``query_prefix``, ``passage_prefix`` ...)
    configure the :class:`~labkit.embeddings.EmbeddingsClient`; ``client`` passes a built one
    instead. ``claims`` is the judge of faithfulness (a name or config for
    :func:`labkit.judges.get_judge`; default lexical). An endpoint that fails after its
    retries leaves the case unmeasured (``no_score`` / ``judge_error``, counted in
    ``.errors``); a non-retryable HTTP error (401, 404 ...) raises
    :class:`~labkit.errors.JudgeRefused`, since every call would fail, and so do ``max_failures``
    failed calls in a row, and the first :data:`~labkit.judges.FIRST_VERDICTS` calls failing, none
    answered (``.watch``: :class:`~labkit.judges.EndpointWatch`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str | None = None,
        *,
        client: EmbeddingsClient | None = None,
        claims: str | Mapping[str, Any] | Judge | None = "lexical",
        max_failures: int = 3,
        **client_options: Any,
    ) -> None:
        from labkit.embeddings import client_from

        if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 1:
            raise ConfigError(f"max_failures must be an integer >= 1, got {max_failures!r}", field="judge.max_failures")
        self.max_failures = max_failures

        if client is None:
            if base_url is None or model is None:
                raise ConfigError("the embedding judge needs base_url and model (or a client)", field="judge")
            client = client_from({"base_url": base_url, "model": model, "api_key_env": api_key_env,
                                  **client_options}, field="judge")
        elif base_url is not None or model is not None or client_options:
            raise ConfigError("give either a client or its options, not both", field="judge")
        if isinstance(claims, Mapping) and str(claims.get("type", "")) == "embedding":
            raise ConfigError("the claims judge cannot be an embedding judge", field="claims")
        self.client = client
        self.watch = EndpointWatch("embedding", client.url, in_a_row=max_failures)
        self.claims = get_judge(claims)
        self.errors: list[str] = []

    @property
    def name(self) -> str:
        return f"embedding:{self.client.model}"

    def describe(self) -> dict[str, Any]:
        return {"type": "embedding", **self.client.describe(), "definitions": DEFINITIONS_VERSION,
                "faithfulness": self.claims.describe()}

    def _cosines(self, query: str, others: Sequence[str], kind: str) -> list[float] | None:
        """cos(query as a query, each other as ``kind``) clipped at 0; None when the endpoint failed."""
        try:
            q = self.client.embed([query], kind="query")
            m = self.client.embed(list(others), kind=kind)
            if m.shape[1] != q.shape[1]:  # (two requests, two models behind one endpoint)
                raise MalformedResponse(f"the endpoint's embeddings differ in length between requests "
                                        f"({q.shape[1]} and {m.shape[1]})", url=self.client.url)
            cosines = [float(x) for x in m @ q[0]]
            if not all(math.isfinite(x) for x in cosines):  # (never clipped: min(1.0, nan) is 1.0)
                raise MalformedResponse("an embedding gave no finite cosine", url=self.client.url)
        except ClientHTTPError as e:
            from labkit.openai_compat import scrub

            raise JudgeRefused(scrub(f"embedding endpoint refused the request: {e}")) from None
        except EndpointError as e:  # after the client's retries: 429, 5xx, timeouts, malformed bodies
            reason = f"{type(e).__name__}: {e}"
            self.errors.append(reason)
            self.watch.failed(reason)  # (down, not a blip: it stops the scoring instead of grinding on)
            return None
        self.watch.answered()
        return [max(0.0, min(1.0, x)) for x in cosines]

    def faithfulness(self, answer: str, contexts: Sequence[str]) -> tuple[float | None, str]:
        return self.claims.faithfulness(answer, contexts)

    def relevance(self, question: str, answer: str) -> float | None:
        """cos(question, answer) in [0, 1]; None when either is blank or the endpoint failed."""
        a = strip_citations(answer or "").strip()
        if not (question or "").strip() or not a:
            return None
        got = self._cosines(question, [a], "passage")
        return None if got is None else got[0]

    def similarity(self, answer: str, reference: str) -> float | None:
        """cos(answer, reference), both as queries, in [0, 1]; None when blank or on failure."""
        a = strip_citations(answer or "").strip()
        if not a or not (reference or "").strip():
            return None
        got = self._cosines(a, [reference], "query")
        return None if got is None else got[0]

    def context_relevance(self, question: str, contexts: Sequence[str]) -> float | None:
        """Mean over the non-blank contexts of cos(question, context); None when there are none."""
        texts = [c for c in contexts if c and c.strip()]
        if not (question or "").strip() or not texts:
            return None
        got = self._cosines(question, texts, "passage")
        return None if got is None else sum(got) / len(got)


# --- the metrics only this judge measures -------------------------------------------------


def _semantic_similarity(case: EvalCase, result: Any) -> tuple[float | None, str]:
    similarity = result.judge.similarity
    answer = result.answer
    if answer is None or not answer.strip():
        return None, "not_ok" if result.status != "ok" else "no_answer"
    if not (case.reference_answer or "").strip():
        return None, "no_reference"
    score = similarity(answer, case.reference_answer)
    return (None, "judge_error") if score is None else (float(score), "")


def _context_relevance(case: EvalCase, result: Any) -> tuple[float | None, str]:
    from labkit.metrics.generation import contexts

    context_relevance = result.judge.context_relevance
    if result.status != "ok":
        return None, "not_ok"
    if result.unlogged:
        return None, "no_retrieval"
    texts = contexts(result.retrieved_list, result.corpus)
    if not texts:
        return None, "no_context"
    score = context_relevance(case.question, texts)
    return (None, "judge_error") if score is None else (float(score), "")


metric(name="semantic_similarity", stage="generation", judge_method="similarity",
       description="cos(answer, reference answer) (embedding judge)")(_semantic_similarity)
metric(name="context_relevance", stage="generation", judge_method="context_relevance",
       description="mean cos(question, retrieved chunk) (embedding judge)")(_context_relevance)
