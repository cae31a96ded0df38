"""Intervals of one run: seeded, vectorized, numpy and the standard library only (paired
comparisons of two runs: labkit.paired).

Every function that draws random numbers takes ``seed`` (an int) or ``rng``
(a ``numpy.random.Generator``); the same seed gives the same result.

Bootstraps draw one resample index matrix ``[n_boot, n]`` and evaluate the
statistic on all resamples at once (in row blocks, so memory stays bounded
for large n). Intervals are percentile intervals at ``1 - alpha``.

:func:`bootstrap_distribution` and the ``*_ci`` functions built on it are the
plain reference. The fast paths below draw from the same bootstrap laws at a fraction
of the cost, for many statistics at once (``labkit.metrics.aggregate`` uses them on
resamples of a whole run, where a sample -- a slice, a metric's measured cases -- holds
``Binomial(n_total, n / n_total)`` draws, :func:`resample_sizes`):

- sums, means and ratios of sums need only the resample's count of each row,
  ``W[b, i]``; ``W @ x`` per cell of rows is then a narrow matrix product for every
  column (:func:`_index_counts_sums`). Up to ``_CHUNK`` rows ``W`` counts the very
  index matrix :func:`bootstrap_distribution` draws for that seed and ``n``;
- a sample with few distinct rows (``d``) is resampled as multinomial counts
  over its distinct rows (:func:`multinomial_sums`): the same law as drawing
  that many indices, in ``O(d)`` per resample instead of ``O(n)``;
- a percentile of a resample depends only on two of its order statistics;
  resampling is ``sorted_x[floor(n * U)]`` with ``U`` uniform, a monotone map,
  so they are ``sorted_x[floor(n * U_(k))]`` with ``U_(k) ~ Beta(k, m - k + 1)``
  for ``m`` draws and the next one ``U_(k) + (1 - U_(k)) * Beta(1, m - k)``: two
  draws per resample instead of ``m`` draws and a sort (:func:`percentile_distribution`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labkit.registry import DEFAULT_N_BOOT

Stat = Callable[[NDArray[Any]], NDArray[np.float64]]
"""A statistic evaluated along axis 1 of a ``[B, n, ...]`` array, returning ``[B]``."""

_BLOCK_ELEMS = 4_000_000
#: Elements of the count matrix ``W`` held per block by :func:`_index_counts_sums`: the
#: plain bootstrap's blocks (so its draws are the same), enough rows for BLAS to run at speed.
_W_BLOCK_ELEMS = _BLOCK_ELEMS
#: Rows counted together by :func:`_index_counts_sums` (their counts stay in cache), at most: a
#: power of two of at most 2**16 (a chunk's draws are 16 random bits each, masked).
_CHUNK = 1 << 16
#: Past _CHUNK rows, the rows are cut into chunks of equal power-of-two sizes, at least this many
#: (then a few smaller ones): enough for the threads to share them evenly.
_MIN_CHUNKS = 8
#: Multiply-adds per BLAS call in :func:`_cell_sums`.
_TILE_MULADDS = (1 << 18) - 1
#: ``labkit.metrics.aggregate`` uses multinomial counts over distinct rows when
#: ``distinct * blocks * _DISTINCT_FACTOR <= n``: a binomial draw costs about as much
#: as a hundred cases of one more column of the shared count matrix.
_DISTINCT_FACTOR = 128


#: The most resamples an interval is drawn from (2,000 by default; past this the draws' memory,
#: not their precision, is what grows).
MAX_N_BOOT = 100_000


def check_options(*, alpha: float | None = None, n_boot: int | None = None, seed: Any = None) -> None:
    """ConfigError naming the option when ``alpha`` is not in (0, 1), ``n_boot`` not an int from 1
    to :data:`MAX_N_BOOT`, or ``seed`` (an int; a Generator is taken as it is) negative."""
    from labkit.errors import ConfigError

    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                              or not 0.0 < float(alpha) < 1.0):
        raise ConfigError(f"must be a number between 0 and 1 (exclusive), got {alpha!r}", field="alpha")
    if n_boot is not None and (isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer))
                               or not 1 <= n_boot <= MAX_N_BOOT):
        raise ConfigError(f"must be a whole number of resamples from 1 to {MAX_N_BOOT:,}, got {n_boot!r}",
                          field="n_boot")
    if seed is not None and not isinstance(seed, np.random.Generator) and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ConfigError(f"must be a whole number >= 0, got {seed!r}", field="seed")


def make_rng(seed: int | np.random.Generator | None = 0) -> np.random.Generator:
    """A Generator from an int seed (or the Generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def mean_stat(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x.mean(axis=1), dtype=np.float64)


def sum_stat(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x.sum(axis=1), dtype=np.float64)


def percentile_stat(q: float) -> Stat:
    """Statistic: the q-th percentile (linear interpolation) along axis 1."""

    def stat(x: NDArray[Any]) -> NDArray[np.float64]:
        return np.asarray(np.percentile(x, q, axis=1), dtype=np.float64)

    return stat


def ratio_stat(x: NDArray[Any]) -> NDArray[np.float64]:
    """Statistic on ``[B, n, 2]``: sum of column 0 / sum of column 1 (NaN when 0)."""
    num = x[..., 0].sum(axis=1)
    den = x[..., 1].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _indices(g: np.random.Generator, n: int, rows: int) -> NDArray[np.integer[Any]]:
    """``[rows, n]`` resample indices into ``n`` rows, as 32-bit integers while ``n`` fits: the
    same values as 64-bit draws (numpy draws bounded integers below 2**32 from one 32-bit
    stream either way) in half the memory, so counting them is cheaper; every bootstrap here
    draws them this way, so the shared-count path resamples what :func:`bootstrap_distribution` does."""
    return g.integers(0, n, size=(rows, n), dtype=np.int32 if n < 2**31 else np.int64)


def _blocks(n_boot: int, n: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_ELEMS // max(n, 1))
    return [(s, min(s + step, n_boot)) for s in range(0, n_boot, step)]


def bootstrap_distribution(
    x: ArrayLike,
    stat: Stat = mean_stat,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator | int | None = 0,
) -> NDArray[np.float64]:
    """The statistic on ``n_boot`` resamples of the rows of ``x`` (shape ``[n]`` or ``[n, m]``)."""
    check_options(n_boot=n_boot)
    arr = np.asarray(x)
    n = arr.shape[0]
    if n == 0:
        return np.full(n_boot, np.nan)
    g = make_rng(rng)
    out = np.empty(n_boot, dtype=np.float64)
    for a, b in _blocks(n_boot, n):
        out[a:b] = stat(arr[_indices(g, n, b - a)])
    return out


def interval_from_distribution(dist: ArrayLike, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Percentile interval at ``1 - alpha`` of a bootstrap distribution (non-finite
    resamples left out); (None, None) when nothing is left."""
    return _pct_interval(np.asarray(dist, dtype=np.float64), alpha)


def _pct_interval(dist: NDArray[np.float64], alpha: float) -> tuple[float | None, float | None]:
    check_options(alpha=alpha)
    d = dist[np.isfinite(dist)]
    if d.size == 0:
        return None, None
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    x: ArrayLike,
    stat: Stat = mean_stat,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``stat`` over the rows of ``x``; (None, None) if empty."""
    arr = np.asarray(x)
    if arr.shape[0] == 0:
        return None, None
    return _pct_interval(bootstrap_distribution(arr, stat, n_boot=n_boot, rng=rng), alpha)


def percentile_ci(
    x: ArrayLike,
    q: float,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float | None, float | None]:
    """Bootstrap percentile interval for the q-th percentile of ``x`` (e.g. latency p95)."""
    return bootstrap_ci(x, percentile_stat(q), n_boot=n_boot, alpha=alpha, rng=rng)


def ratio_ci(
    num: ArrayLike,
    den: ArrayLike,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float | None, float | None]:
    """Bootstrap interval for sum(num) / sum(den), resampling cases (pairs) together.

    Resamples whose denominator is 0 are left out of the interval.
    """
    xy = np.column_stack([np.asarray(num, dtype=float), np.asarray(den, dtype=float)])
    return bootstrap_ci(xy, ratio_stat, n_boot=n_boot, alpha=alpha, rng=rng)


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval for a binomial proportion; (None, None) when n = 0."""
    check_options(alpha=alpha)
    if n <= 0:
        return None, None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 (or n) successes the bound is exactly 0 (or 1): center and half are equal in exact arithmetic
    lo = 0.0 if successes <= 0 else max(0.0, center - half)
    hi = 1.0 if successes >= n else min(1.0, center + half)
    return lo, hi


# --- fast paths: the same distributions, shared across statistics ------------------


def _index_counts_sums(x: NDArray[np.float64], n_boot: int, seed: int,
                       starts: Sequence[int] | NDArray[np.integer[Any]] | None = None) -> NDArray[np.float64]:
    """``W @ x`` for ``n_boot`` resamples of the ``n`` rows of ``x`` (``W[b, i]``: how often row i
    is drawn in resample b), per cell.

    ``starts`` are the first rows of the cells of ``x`` (its rows sorted by cell) and ``n``;
    ``None`` is one cell. Result ``[n_boot, cells, m]``: each cell's column sums in every resample
    (the cell's count varies from resample to resample, as when cases are resampled). Up to
    ``_CHUNK`` rows, ``W`` counts the seeded index matrix :func:`bootstrap_distribution` draws;
    beyond, the rows are cut into chunks of power-of-two sizes (:func:`_chunk_sizes`), each
    resample's n draws are spread over the chunks as ``Multinomial(n, chunk sizes / n)`` and drawn
    uniformly inside each chunk, from a generator of the chunk's own (spawned from the seed's):
    16 of its random bits a draw, masked to the chunk's size (uniform, as the size is a power of
    two; about half the cost of a bounded integer draw). The same law (n uniform draws over the
    rows), counted in cache, the chunks side by side in forked processes (:func:`labkit.forks.side_by_side`),
    with the same sums whatever the number of processes. Cost: 16 random
    bits and one count per row and resample, then a narrow BLAS product per cell.
    """
    n, m = x.shape
    bounds = [0, n] if starts is None else [int(v) for v in starts]
    g = make_rng(seed)
    parts: list[tuple[int, NDArray[np.float64]]] = []
    if 0 < n <= _CHUNK:
        def plain(w: NDArray[np.float64], a: int, rows: int) -> None:
            idx = _indices(g, n, rows)  # the plain bootstrap's block of draws
            for j in range(rows):
                w[j] = np.bincount(idx[j].astype(np.intp), minlength=n)

        parts.append(_block_sums(x, 0, n, bounds, n_boot, plain))
    elif n > _CHUNK:
        sizes = np.asarray(_chunk_sizes(n), dtype=np.int64)
        edges = [0, *np.cumsum(sizes).tolist()]
        per_chunk = g.multinomial(n, sizes / n, size=n_boot)
        gens = g.spawn(len(sizes))

        def chunk(c: int) -> tuple[int, NDArray[np.float64]]:
            size, draws, bits = int(sizes[c]), per_chunk[:, c], gens[c].bit_generator

            def fill(w: NDArray[np.float64], a: int, rows: int) -> None:
                counts = draws[a:a + rows].tolist()
                idx = bits.random_raw(-(-sum(counts) // 4)).view(np.uint16)  # four draws a raw word
                if size < 1 << 16:
                    idx &= np.uint16(size - 1)
                at = 0
                for j, d in enumerate(counts):
                    w[j] = np.bincount(idx[at:at + d], minlength=size)
                    at += d

            return _block_sums(x, edges[c], edges[c + 1], bounds, n_boot, fill)

        from labkit.forks import side_by_side

        parts = side_by_side(len(sizes), chunk)
    out = np.zeros((n_boot, len(bounds) - 1, m), dtype=np.float64)
    for first, sums in parts:  # in chunk order: the same sums whatever the processes
        out[:, first:first + sums.shape[1]] += sums
    return out


def _chunk_sizes(n: int) -> list[int]:
    """The chunks :func:`_index_counts_sums` cuts ``n`` rows into: as many as fit of the largest
    power of two (at most ``_CHUNK``) that makes at least ``_MIN_CHUNKS`` of them, then the rest as
    the powers of two its binary digits give, largest first (each size a power of two)."""
    size = min(_CHUNK, 1 << max(0, (n // _MIN_CHUNKS).bit_length() - 1))
    full, rest = divmod(n, size)
    return [size] * full + [1 << b for b in range(rest.bit_length() - 1, -1, -1) if rest >> b & 1]


def _block_sums(x: NDArray[np.float64], s0: int, e0: int, bounds: list[int], n_boot: int,
                fill: Callable[[NDArray[np.float64], int, int], None]) -> tuple[int, NDArray[np.float64]]:
    """The cell sums of rows ``s0:e0`` of ``x`` in every resample, the resamples counted a block
    at a time (``fill(w, a, rows)`` puts the counts of resamples ``a .. a + rows - 1`` of these
    rows in ``w[:rows]``): the first cell the rows reach, and ``[n_boot, cells reached, m]``."""
    import bisect

    size = e0 - s0
    first = bisect.bisect_right(bounds, s0) - 1
    last = bisect.bisect_left(bounds, e0)  # the cells first .. last - 1 hold rows of the block
    out = np.zeros((n_boot, last - first, x.shape[1]), dtype=np.float64)
    step = max(1, min(n_boot, _W_BLOCK_ELEMS // size))
    w = np.empty((step, size), dtype=np.float64)
    rows_x = x[s0:e0]
    for a in range(0, n_boot, step):
        rows = min(a + step, n_boot) - a
        fill(w, a, rows)
        for k in range(first, last):
            s, e = max(bounds[k], s0) - s0, min(bounds[k + 1], e0) - s0
            if e > s:
                _cell_sums(w[:rows], rows_x, s, e, out[a:a + rows, k - first])
    return first, out


def _cell_sums(w: NDArray[np.float64], x: NDArray[np.float64], s: int, e: int,
               out: NDArray[np.float64]) -> None:
    """``out = w[:, s:e] @ x[s:e]``, in tiles small enough for BLAS to multiply on this thread
    (below OpenBLAS's 2**18 multiply-adds per call): its worker threads would otherwise wake for
    every product and spin between them, against the index draws on a busy machine."""
    rows, m = w.shape[0], x.shape[1]
    span = max(1, min(e - s, _TILE_MULADDS // (m * min(rows, 8))))
    step = max(1, min(rows, _TILE_MULADDS // (m * span)))
    out[:] = 0.0
    for c in range(s, e, span):
        d = min(c + span, e)
        for a in range(0, rows, step):
            out[a:a + step] += w[a:a + step, c:d] @ x[c:d]


def _distinct_rows(x: NDArray[np.float64], limit: int) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                                NDArray[np.intp]] | None:
    """The distinct rows of ``x``, their counts and each row's label among them, when there are at
    most ``limit`` of them; else None."""
    n = x.shape[0]
    if limit < 1 or n == 0:
        return None
    for j in range(x.shape[1]):  # a column with too many values rules the rows out, cheaply
        for part in (x[: 4 * limit, j], x[:, j]):  # a prefix first: continuous values fail fast
            col = np.sort(part)
            if 1 + int(np.count_nonzero(col[1:] != col[:-1])) > limit:
                return None
            if part.shape[0] == n:
                break
    if x.shape[1] == 1:
        rows, inv, counts = np.unique(x[:, 0], return_inverse=True, return_counts=True)
        return rows[:, None], counts, inv.reshape(-1)
    rows, inv, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    return (rows, counts, inv.reshape(-1)) if rows.shape[0] <= limit else None


def resample_sizes(n_sample: int, n_total: int, n_boot: int,
                   g: np.random.Generator) -> int | NDArray[np.int64]:
    """How many of the ``n_total`` cases drawn in each resample of a whole run fall in a sample of
    ``n_sample`` of its cases: ``Binomial(n_total, n_sample / n_total)`` per resample, or
    ``n_total`` itself (nothing drawn) when the sample is the whole run."""
    if n_sample >= n_total:
        return int(n_total)
    return g.binomial(n_total, n_sample / n_total, size=n_boot).astype(np.int64)


def multinomial_sums(rows: ArrayLike, counts: ArrayLike, *, n_total: int | None = None,
                     n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> tuple[NDArray[np.float64],
                                                                            int | NDArray[np.int64]]:
    """Column sums of ``n_boot`` resamples of a sample given as distinct ``rows`` ``[d, m]`` and
    their ``counts``, and each resample's size.

    The sample is part of a run of ``n_total`` cases (default: the sample is the run) whose cases
    are resampled: a resample holds ``Binomial(n_total, n / n_total)`` of the sample's draws
    (:func:`resample_sizes`), spread over the rows as ``Multinomial(size, counts / n)`` -- the law of
    drawing that many rows with replacement, in ``O(d)`` per resample.
    """
    check_options(n_boot=n_boot)
    r = np.asarray(rows, dtype=np.float64)
    c = np.asarray(counts, dtype=np.int64)
    n = int(c.sum())
    if n == 0:
        return np.full((n_boot, r.shape[1]), np.nan), 0
    g = make_rng(seed)
    size = resample_sizes(n, n if n_total is None else n_total, n_boot, g)
    if isinstance(size, int):
        w = g.multinomial(size, c / n, size=n_boot)
    else:
        w = g.multinomial(size, c / n)
    return w.astype(np.float64) @ r, size


def percentile_distribution(
    x: ArrayLike,
    q: float,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator | int | None = 0,
    n_total: int | None = None,
) -> NDArray[np.float64]:
    """The q-th percentile (linear interpolation) of ``n_boot`` bootstrap resamples of ``x``.

    Same distribution as ``bootstrap_distribution(x, percentile_stat(q))``,
    drawn through the two order statistics the percentile interpolates between
    (module docstring): two Beta draws per resample, whatever n is. When ``x``
    is part of a run of ``n_total`` cases that are resampled, each resample holds
    ``Binomial(n_total, n / n_total)`` draws from ``x`` (:func:`resample_sizes`;
    NaN when none), and the ranks follow that size.
    """
    check_options(n_boot=n_boot)
    xs = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = xs.size
    if n == 0:
        return np.full(n_boot, np.nan)
    g = make_rng(rng)
    size = resample_sizes(n, n if n_total is None else n_total, n_boot, g)
    if not isinstance(size, int):
        return _percentile_of_sizes(xs, float(q) / 100.0, size, g)
    qf = float(q) / 100.0
    n = size
    h = n * qf + (1.0 - qf) - 1.0  # numpy's virtual index for the linear method, as numpy computes it
    lo = 0 if h < 0 else min(math.floor(h), n - 1)
    frac = h - lo if 0 <= h < n - 1 else 0.0
    k = lo + 1  # 1-based rank of the lower order statistic
    u = g.beta(k, n - k + 1, size=n_boot)
    y_lo = xs[np.minimum((u * n).astype(np.int64), n - 1)]
    if frac <= 0.0 or k >= n:
        return y_lo
    u_next = u + (1.0 - u) * g.beta(1.0, n - k, size=n_boot)
    y_hi = xs[np.minimum((u_next * n).astype(np.int64), n - 1)]
    d = y_hi - y_lo  # numpy's lerp, so equal resamples give bit-equal percentiles
    return y_hi - d * (1.0 - frac) if frac >= 0.5 else y_lo + d * frac


def _percentile_of_sizes(xs: NDArray[np.float64], qf: float, size: NDArray[np.int64],
                         g: np.random.Generator) -> NDArray[np.float64]:
    """:func:`percentile_distribution` for resamples of ``size[b]`` draws from the sorted ``xs``."""
    n = xs.size
    out = np.full(size.shape[0], np.nan)
    ok = size > 0
    m = size[ok].astype(np.float64)
    h = m * qf + (1.0 - qf) - 1.0  # the rank of the percentile in a resample of m draws
    lo = np.where(h < 0, 0.0, np.minimum(np.floor(h), m - 1))
    frac = np.where((h >= 0) & (h < m - 1), h - lo, 0.0)
    k = lo + 1
    u = g.beta(k, m - k + 1)
    y_lo = xs[np.minimum((u * n).astype(np.int64), n - 1)]
    hi = (frac > 0.0) & (k < m)
    y = y_lo.copy()
    if hi.any():
        uh = u[hi] + (1.0 - u[hi]) * g.beta(1.0, m[hi] - k[hi])
        y_hi = xs[np.minimum((uh * n).astype(np.int64), n - 1)]
        d, f = y_hi - y_lo[hi], frac[hi]
        y[hi] = np.where(f >= 0.5, y_hi - d * (1.0 - f), y_lo[hi] + d * f)
    out[ok] = y
    return out
