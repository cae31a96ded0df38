"""Retrieval metrics, vectorized over all cases at once.

The core is :func:`retrieval_metrics_from_matrix`: a boolean relevance matrix
``rel[n, k]`` (row = case, column = rank, already deduplicated at the gold
granularity and cut at k) plus the gold-set size per case gives every
retrieval metric for every case with a handful of numpy operations — no
Python loop per case or per metric.

:func:`relevance_matrix` builds that matrix from results lines (the only
per-case Python work: mapping ids to the gold granularity and deduplicating).

Definitions (docs/metrics.md): R = retrieved ids at the gold granularity, an
id kept only at its first rank; v_i = 1 if R_i is gold; k fixed.

- retrieval_hit_rate = 1 if any v_i = 1 for i <= k
- mrr = 1 / first relevant rank within k, else 0
- recall_at_k = hits / |G|
- precision_at_k = hits / k (k, not the list length)
- context_precision = sum_i v_i * (hits up to i / i) / hits; 0 if no hit
- ndcg = sum_i v_i / log2(i+1) / sum_{i <= min(|G|, k)} 1 / log2(i+1)

Rows with ``n_gold == 0`` are unmeasured: NaN in every metric.

Each metric is declared once below (``@metric``): its per-case function reads
its column of the run-wide matrix (computed once per score_cases call). numpy
is imported inside the functions that compute, so the declarations load without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.metrics.columns import Column, ColumnFn, reads_column
from labkit.registry import METRICS, metric

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from labkit.metrics.percase import CaseRun

def retrieval_metrics_from_matrix(
    rel: NDArray[np.bool_], n_gold: NDArray[Any], *, k: int | None = None
) -> dict[str, NDArray[np.float64]]:
    """All six retrieval metrics for every row of ``rel`` (shape ``[n, width]``).

    ``rel[i, j]`` is True when the (j+1)-th distinct retrieved id of case i is
    gold. ``n_gold[i]`` is the size of case i's gold set (0 = unmeasured, NaN
    out). ``k`` defaults to the matrix width; a narrower matrix (fewer
    retrieved than k) is padded with False, a wider one is cut at k.

    Empty input (n = 0) returns empty arrays.
    """
    import numpy as np

    rel = np.asarray(rel, dtype=bool)
    if rel.ndim != 2:
        raise ValueError(f"rel must be 2-D [n, k], got shape {rel.shape}")
    n, width = rel.shape
    k = width if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if width > k:
        rel = rel[:, :k]
    elif width < k:
        rel = np.concatenate([rel, np.zeros((n, k - width), dtype=bool)], axis=1)
    g = np.asarray(n_gold, dtype=np.float64).reshape(-1)
    if g.shape[0] != n:
        raise ValueError(f"n_gold has {g.shape[0]} rows, rel has {n}")

    ranks = np.arange(1, k + 1, dtype=np.float64)
    inv_rank = 1.0 / ranks
    disc = 1.0 / np.log2(ranks + 1.0)
    idcg_table = np.concatenate([[np.nan], np.cumsum(disc)])  # idcg_table[m] for m ideal hits

    relf = rel.astype(np.float64)
    cum = np.cumsum(relf, axis=1)
    hits = cum[:, -1] if k else np.zeros(n)
    has_hit = hits > 0
    first = np.argmax(rel, axis=1)  # 0 when no hit; masked below
    mrr = np.where(has_hit, inv_rank[first], 0.0)
    safe_hits = np.where(has_hit, hits, 1.0)
    cp = ((relf * cum) @ inv_rank) / safe_hits  # zero numerator when no hit
    dcg = relf @ disc
    ideal = np.minimum(g, k).astype(np.int64)
    ideal = np.clip(ideal, 0, k)
    ndcg = dcg / idcg_table[ideal]

    measured = g > 0
    nan = np.nan
    out = {
        "retrieval_hit_rate": np.where(measured, has_hit.astype(np.float64), nan),
        "mrr": np.where(measured, mrr, nan),
        "recall_at_k": np.where(measured, hits / np.where(measured, g, 1.0), nan),
        "precision_at_k": np.where(measured, hits / k, nan),
        "context_precision": np.where(measured, cp, nan),
        "ndcg": np.where(measured, ndcg, nan),
    }
    return out


def to_level(item: Mapping[str, Any] | str, level: str) -> str | None:
    """The id of a retrieved item (or a cited id) at the gold granularity.

    ``level == "chunk"``: the item's ``id``. ``level == "source"``: its
    ``source``, or for a bare chunk id ``doc#n`` the part before ``#``.
    """
    if isinstance(item, str):
        return item.split("#", 1)[0] if level == "source" else item
    if not isinstance(item, Mapping):
        return None
    if level == "source":
        src = item.get("source")
        if isinstance(src, str) and src:
            return src
        cid = item.get("id")
        return cid.split("#", 1)[0] if isinstance(cid, str) and cid else None
    cid = item.get("id")
    return cid if isinstance(cid, str) and cid else None


def dedupe(ids: Sequence[str | None]) -> list[str]:
    """Keep each id at its first (best) rank; drop Nones. Later items move up."""
    seen: set[str] = set()
    out: list[str] = []
    for x in ids:
        if x is None or x in seen:
            continue
        seen.add(x)
        out.append(x)
    return out


def relevance_matrix(
    retrieved_lists: Sequence[Sequence[Any]],
    golds: Sequence[Sequence[str]],
    levels: Sequence[str],
    k: int,
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Build ``rel[n, k]`` and ``n_gold[n]`` from retrieved lists and gold ids."""
    import numpy as np

    n = len(retrieved_lists)
    sizes: list[int] = []
    hits: list[int] = []  # flat indices i * k + j of the True cells, set at once below
    for i, (items, gold, level) in enumerate(zip(retrieved_lists, golds, levels, strict=True)):
        gset = set(gold)
        sizes.append(len(gset))
        if not gset or not items or k < 1:
            continue
        seen: set[str] = set()  # dedupe() inline, stopping at k distinct ids
        for it in items:
            rid = to_level(it, level)
            if rid is None or rid in seen:
                continue
            if rid in gset:
                hits.append(i * k + len(seen))
            seen.add(rid)
            if len(seen) == k:
                break
    rel = np.zeros(n * k, dtype=bool)
    rel[np.asarray(hits, dtype=np.int64)] = True
    return rel.reshape(n, k), np.asarray(sizes, dtype=np.int64).reshape(n)


# --- the declarations --------------------------------------------------------------------


def _matrix(run: CaseRun) -> dict[str, NDArray[np.float64]]:
    """Every retrieval metric for every case of the run, at once."""
    rel, n_gold = relevance_matrix([r.retrieved_list for r in run.rows], [c.gold for c in run.cases],
                                   [c.gold_level for c in run.cases], run.k)
    return retrieval_metrics_from_matrix(rel, n_gold, k=run.k)


def _unlogged(run: CaseRun) -> NDArray[np.bool_]:
    """Answered cases whose pipeline logs no retrieval (their retrieval metrics are unmeasured)."""
    import numpy as np

    return np.array([r.unlogged for r in run.rows], dtype=bool)


def _column(name: str) -> ColumnFn:
    """The column of one retrieval metric: no_gold without gold ids, no_retrieval when not logged."""

    def compute(run: CaseRun) -> Column:
        import numpy as np

        v = run.batch(_matrix)[name]
        unlogged = run.batch(_unlogged)
        no_gold = np.isnan(v)
        out = np.where(unlogged, np.nan, v)
        reasons = np.where(no_gold, "no_gold", np.where(unlogged, "no_retrieval", "")).tolist()
        return Column(out, reasons)

    compute.__name__ = compute.__qualname__ = f"retrieval_column({name})"
    return compute


_DECLARED = (
    ("retrieval_hit_rate", "rate", "1 if a gold id is in the first k retrieved, else 0"),
    ("mrr", "mean", "1 / rank of the first gold id within k, else 0"),
    ("recall_at_k", "mean", "gold ids in the first k / gold ids"),
    ("precision_at_k", "mean", "gold ids in the first k / k"),
    ("context_precision", "mean", "mean precision at each gold rank within k; 0 if no hit"),
    ("ndcg", "mean", "binary-gain nDCG at k"),
)
for _name, _kind, _desc in _DECLARED:
    metric(name=_name, stage="retrieval", kind=_kind, builtin=True, description=_desc)(
        reads_column(_column(_name)))


RETRIEVAL_METRICS = tuple(n for n, s in METRICS.items() if s.stage == "retrieval" and s.builtin)
