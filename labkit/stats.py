"""Intervals and paired tests: seeded, vectorized, numpy-only except the exact binomial.

Every function that draws random numbers takes ``seed`` (an int) or ``rng``
(a ``numpy.random.Generator``); the same seed gives the same result.

Bootstraps draw one resample index matrix ``[n_boot, n]`` and evaluate the
statistic on all resamples at once (in row blocks, so memory stays bounded
for large n). Intervals are percentile intervals at ``1 - alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Stat = Callable[[NDArray[Any]], NDArray[np.float64]]
"""A statistic evaluated along axis 1 of a ``[B, n, ...]`` array, returning ``[B]``."""

DEFAULT_N_BOOT = 2000
_BLOCK_ELEMS = 4_000_000


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
    arr = np.asarray(x)
    n = arr.shape[0]
    if n == 0:
        return np.full(n_boot, np.nan)
    g = make_rng(rng)
    out = np.empty(n_boot, dtype=np.float64)
    for a, b in _blocks(n_boot, n):
        idx = g.integers(0, n, size=(b - a, n))
        out[a:b] = stat(arr[idx])
    return out


def _pct_interval(dist: NDArray[np.float64], alpha: float) -> tuple[float | None, float | None]:
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
    if n <= 0:
        return None, None
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


# --- paired comparisons -----------------------------------------------------------


def paired_bootstrap(
    base: ArrayLike,
    variant: ArrayLike,
    stat: Stat = mean_stat,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float | None, float | None, float | None]:
    """Delta = stat(variant) - stat(base) and its paired bootstrap interval.

    Rows of ``base`` and ``variant`` are the same cases in the same order; each
    resample draws case indices once and applies them to both runs.
    Returns ``(delta, ci_low, ci_high)``; all None when there are no pairs.
    """
    a = np.asarray(base, dtype=float)
    b = np.asarray(variant, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    n = a.shape[0]
    if n == 0:
        return None, None, None
    delta = float(stat(b[None, ...])[0] - stat(a[None, ...])[0])
    g = make_rng(rng)
    dist = np.empty(n_boot, dtype=np.float64)
    for s, e in _blocks(n_boot, n):
        idx = g.integers(0, n, size=(e - s, n))
        dist[s:e] = stat(b[idx]) - stat(a[idx])
    lo, hi = _pct_interval(dist, alpha)
    return (delta if math.isfinite(delta) else None), lo, hi


def sign_flip_pvalue(
    diffs: ArrayLike,
    *,
    n_perm: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    exact_max_n: int = 16,
) -> float:
    """Two-sided sign-flip permutation p-value for the mean of paired differences.

    Exact (all 2^n sign patterns) when n <= ``exact_max_n``, else Monte Carlo
    with ``n_perm`` draws and the (count + 1) / (n_perm + 1) correction.
    All-zero differences give p = 1.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0 or not np.any(d != 0):
        return 1.0
    obs = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= exact_max_n:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        stats_ = np.abs(signs @ d) / n
        return float(np.mean(stats_ >= obs - tol))
    g = make_rng(rng)
    count = 0
    for s, e in _blocks(n_perm, n):
        signs = 1.0 - 2.0 * g.integers(0, 2, size=(e - s, n))
        count += int(np.sum(np.abs(signs @ d) / n >= obs - tol))
    return (count + 1) / (n_perm + 1)


def swap_permutation_pvalue(
    base: ArrayLike,
    variant: ArrayLike,
    stat: Stat,
    *,
    n_perm: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> float:
    """Two-sided paired permutation p-value for any statistic: randomly swap the
    two runs' values within each case (the sign flip, generalized to medians,
    percentiles and ratios). Monte Carlo with the (count + 1) / (n_perm + 1) correction.
    """
    a = np.asarray(base, dtype=float)
    b = np.asarray(variant, dtype=float)
    n = a.shape[0]
    if n == 0:
        return 1.0
    obs = float(stat(b[None, ...])[0] - stat(a[None, ...])[0])
    if not math.isfinite(obs) or obs == 0.0:
        return 1.0
    tol = 1e-12 * max(1.0, abs(obs))
    g = make_rng(rng)
    count = 0
    extra = (1,) * (a.ndim - 1)
    for s, e in _blocks(n_perm, n):
        swap = g.integers(0, 2, size=(e - s, n)).astype(bool).reshape((e - s, n, *extra))
        x = np.where(swap, b[None, ...], a[None, ...])
        y = np.where(swap, a[None, ...], b[None, ...])
        d = stat(y) - stat(x)
        count += int(np.sum(np.abs(np.nan_to_num(d, nan=0.0)) >= abs(obs) - tol))
    return (count + 1) / (n_perm + 1)


def mcnemar_exact(base: ArrayLike, variant: ArrayLike) -> tuple[float, int, int]:
    """Exact McNemar test on paired pass/fail (0/1) outcomes.

    Returns ``(p_value, b, c)`` where b = pass->fail and c = fail->pass counts;
    the p-value is the two-sided exact binomial test of b against b + c at 0.5
    (1.0 when no case changed).
    """
    a = np.asarray(base, dtype=float) > 0.5
    v = np.asarray(variant, dtype=float) > 0.5
    b = int(np.sum(a & ~v))
    c = int(np.sum(~a & v))
    if b + c == 0:
        return 1.0, b, c
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue), b, c


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (None entries are skipped and stay None)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    order = sorted(idx, key=lambda i: float(pvalues[i]))  # type: ignore[arg-type]
    running = 0.0
    for rank, i in enumerate(order):
        p = float(pvalues[i])  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
