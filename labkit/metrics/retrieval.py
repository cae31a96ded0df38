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
from typing import TYPE_CHECKING, Any, NamedTuple

from labkit.metrics.columns import (
    Column,
    ColumnFn,
    case_level,
    line_unlogged,
    reads_column,
    statuses,
)
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
    ids = [to_level(it, level) for items, level in zip(retrieved_lists, levels, strict=True) for it in items]
    return matrix_from_ids(ids, [len(items) for items in retrieved_lists], golds, k)


def matrix_from_ids(
    ids: Sequence[str | None], sizes: Sequence[int], golds: Sequence[Sequence[str]], k: int
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """``rel[n, k]`` and ``n_gold[n]`` from every case's retrieved ids at its gold granularity, laid end to
    end (``sizes[i]`` ids for case i; None where an item has no id): an id counts at its first rank in
    its case, and only the first ``k`` distinct ids of a case count."""
    from itertools import accumulate

    import numpy as np

    n = len(sizes)
    rel = np.zeros(n * k, dtype=bool)
    n_gold = np.asarray([len(g) if len(g) < 2 else len(set(g)) for g in golds], dtype=np.int64).reshape(n)
    hits: list[int] = []  # flat indices i * k + rank of the True cells, set at once below
    if k >= 1:
        start = [0, *accumulate(sizes)]
        for i, gold in enumerate(golds):
            if not gold or sizes[i] == 0:
                continue
            got = ids[start[i]:start[i + 1]]
            if len(gold) == 1:  # one gold id: its rank is the number of distinct ids before it
                g = gold[0]
                if g in got:
                    before = got[:got.index(g)]
                    rank = len(set(before)) - (None in before) if before else 0
                    if rank < k:
                        hits.append(i * k + rank)
                continue
            gset = set(gold)
            seen: set[str] = set()  # dedupe() inline, stopping at k distinct ids
            for rid in got:
                if rid is None or rid in seen:
                    continue
                if rid in gset:
                    hits.append(i * k + len(seen))
                seen.add(rid)
                if len(seen) == k:
                    break
    rel[np.asarray(hits, dtype=np.int64)] = True
    return rel.reshape(n, k), n_gold


# --- every case's retrieved items, read once per run -----------------------------------


class RunItems(NamedTuple):
    """The retrieved items of every case of a run, laid end to end (case i owns the items
    ``start[i]:start[i + 1]``), each read once for every metric that needs it.

    - ``levels[i]`` / ``golds[i]``: case i's ``result.level`` and ``case.gold``;
    - ``level_ids[j]``: :func:`to_level` of item j at its case's level;
    - ``ids[j]`` / ``sources[j]``: the item's ``id`` and ``source`` when it is a mapping with a
      string ``id`` and a string ``source`` (what a citation of the chunk counts for), else None;
    - ``texts[j]``: the item's context text (:func:`labkit.metrics.generation.contexts`), None when
      it has none.
    """

    start: list[int]
    levels: list[str]
    golds: list[tuple[str, ...]]
    level_ids: list[str | None]
    ids: list[Any]
    sources: list[Any]
    texts: list[str | None]

    def texts_by_case(self) -> list[list[str]]:
        """Each case's context texts, in rank order (what ``contexts(result.retrieved_list, corpus)`` gives)."""
        texts: list[Any] = self.texts
        return [got if None not in (got := texts[a:b]) else [t for t in got if t is not None]
                for a, b in zip(self.start, self.start[1:], strict=False)]


def retrieved_items(result: Mapping[str, Any]) -> Sequence[Any]:
    """A results line's retrieved items (``result.retrieved_list``, without copying the list)."""
    got = result.get("retrieved")
    return got if isinstance(got, list) else ()


def run_items(run: CaseRun) -> RunItems:
    """:class:`RunItems` of a run (one ``run.batch``)."""
    from itertools import accumulate, chain

    lists = [retrieved_items(r) for r in run.rows]
    start = [0, *accumulate(map(len, lists))]
    flat = list(chain.from_iterable(lists))
    golds = [c.gold for c in run.cases]
    levels = list(map(case_level, run.cases))
    if set(map(type, flat)) <= {dict}:
        ids, sources, texts = _fields(flat)
        plain_ids, plain_sources = _all_str(ids), _all_str(sources)
        level_ids = _level_ids(ids, sources, levels, start, clean=(plain_ids and "" not in ids,
                                                                  plain_sources and "" not in sources))
        cite_ids = ids if plain_ids and plain_sources else [
            c if isinstance(c, str) and isinstance(s, str) else None for c, s in zip(ids, sources, strict=True)]
    else:  # bare ids or other values among the items: each item as to_level and contexts read it
        level_ids = [to_level(it, level) for i, level in enumerate(levels) for it in flat[start[i]:start[i + 1]]]
        as_maps = [it if isinstance(it, Mapping) else ({"id": it} if isinstance(it, str) else {}) for it in flat]
        ids, sources, texts = ([m.get(key) for m in as_maps] for key in ("id", "source", "text"))
        cite_ids = [c if isinstance(it, Mapping) and isinstance(c, str) and isinstance(s, str) else None
                    for it, c, s in zip(flat, ids, sources, strict=True)]
    return RunItems(start, levels, golds, level_ids, cite_ids, sources,
                    _texts(texts, ids, run.corpus))


def _fields(flat: list[dict[str, Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    """Each item's ``id``, ``source`` and ``text`` (None when absent)."""
    from operator import itemgetter

    out: list[list[Any]] = []
    for key in ("id", "source", "text"):
        try:
            out.append(list(map(itemgetter(key), flat)))
        except KeyError:
            out.append([it.get(key) for it in flat])
    return out[0], out[1], out[2]


def _all_str(values: list[Any]) -> bool:
    """Every value is a str (exactly)."""
    return set(map(type, values)) <= {str}


def _level_ids(ids: list[Any], sources: list[Any], levels: list[str], start: list[int], *,
               clean: tuple[bool, bool]) -> list[str | None]:
    """to_level of each (mapping) item at its case's level, from its id and source (``clean``: every id,
    every source is a non-empty str, so each is its own level id)."""
    at_source = [lv == "source" for lv in levels]
    n_source = sum(at_source)
    chunk = (ids if clean[0] else [c if isinstance(c, str) and c else None for c in ids]) \
        if n_source < len(levels) else None
    source = (sources if clean[1] else [
        s if isinstance(s, str) and s else (c.split("#", 1)[0] if isinstance(c, str) and c else None)
        for s, c in zip(sources, ids, strict=True)]) if n_source else None
    if chunk is None or source is None:  # every case at one level (or no case at all)
        only = chunk if chunk is not None else source
        return list(only) if only is not None else []
    most, fewer, fewer_is_source = (source, chunk, False) if n_source * 2 >= len(levels) else (chunk, source, True)
    out = list(most)
    for i, s in enumerate(at_source):
        if s is fewer_is_source:  # a case of the fewer level: its slice
            out[start[i]:start[i + 1]] = fewer[start[i]:start[i + 1]]
    return out


def _texts(texts: list[Any], ids: list[Any], corpus: Any) -> list[str | None]:
    """Each item's context text: its own ``text`` when not blank, else its chunk's in the corpus."""
    if _all_str(texts) and all(map(str.strip, texts)):
        return texts
    out: list[str | None] = []
    for text, cid in zip(texts, ids, strict=True):
        if isinstance(text, str) and text.strip():
            out.append(text)
        elif corpus is not None and isinstance(cid, str):
            ch = corpus.chunk(cid)
            out.append(ch.text if ch is not None and isinstance(getattr(ch, "text", None), str) else None)
        else:
            out.append(None)
    return out


# --- the declarations --------------------------------------------------------------------


def _matrix(run: CaseRun) -> dict[str, NDArray[np.float64]]:
    """Every retrieval metric for every case of the run, at once."""
    items = run.batch(run_items)  # at each case's level: its gold level when it has gold
    sizes = [b - a for a, b in zip(items.start, items.start[1:], strict=False)]
    rel, n_gold = matrix_from_ids(items.level_ids, sizes, items.golds, run.k)
    return retrieval_metrics_from_matrix(rel, n_gold, k=run.k)


def unlogged_mask(run: CaseRun) -> NDArray[np.bool_]:
    """Answered cases whose pipeline logs no retrieval (their retrieval metrics are unmeasured)."""
    import numpy as np

    return np.array(list(map(line_unlogged, run.rows, run.batch(statuses))), dtype=bool)


def _column(name: str) -> ColumnFn:
    """The column of one retrieval metric: no_gold without gold ids, no_retrieval when not logged."""

    def compute(run: CaseRun) -> Column:
        import numpy as np

        v = run.batch(_matrix)[name]
        unlogged = run.batch(unlogged_mask)
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
