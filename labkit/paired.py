"""Paired comparisons of two runs over the same cases: seeded, numpy and the standard library only.

- :func:`paired_bootstrap` -- a statistic's difference and its paired bootstrap interval;
- :func:`sign_flip_pvalue`, :func:`swap_permutation_pvalue` -- paired permutation tests;
- :func:`mcnemar_exact` -- the exact McNemar test on pass/fail pairs (an exact binomial tail,
  :func:`binomial_half_two_sided`, no scipy);
- :func:`holm` -- Holm's step-down adjustment of several p-values.

labkit.compare is built on them; the intervals of one run are labkit.stats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from labkit.stats import (
    DEFAULT_N_BOOT,
    Stat,
    _blocks,
    _pct_interval,
    check_options,
    make_rng,
    mean_stat,
)

__all__ = ["binomial_half_two_sided", "holm", "mcnemar_exact", "paired_bootstrap", "sign_flip_pvalue",
           "swap_permutation_pvalue"]



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
    check_options(alpha=alpha, n_boot=n_boot)
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
    return binomial_half_two_sided(min(b, c), b + c), b, c


#: :func:`binomial_half_two_sided` sums exact integers while ``C(n, m)`` is cheap to
#: build (it has about ``n * H(m / n)`` bits); past both bounds it uses the saddle point.
_EXACT_MAX_N = 50_000
_EXACT_MAX_M = 1_000


def binomial_half_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of ``k`` successes in ``n`` trials at p = 0.5.

    The law is symmetric, so the p-value is ``min(1, 2 * P(X <= m))`` with
    ``m = min(k, n - k)``. The tail is ``C(n, m) / 2^n`` times ``1 + r_m + r_m r_(m-1) + ...``
    with ``r_i = i / (n - i + 1)``, summed from ``m`` down until what is left is
    below 2^-64 of the sum (``r_i`` shrinks as ``i`` falls, so the rest after a
    term ``t`` is at most ``t * r / (1 - r)``). Up to moderate n (or small m) the
    terms are exact integers divided by ``2^n`` once, correctly rounded; beyond,
    ``C(n, m) / 2^n`` comes from Loader's saddle-point expansion (relative error
    about 1e-14) and the ratios are summed in floating point.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    m = min(k, n - k)
    if 2 * m >= n - 1:  # the tail holds at least half the mass: p = 1
        return 1.0
    if n <= _EXACT_MAX_N or m <= _EXACT_MAX_M:
        return min(1.0, _tail_exact(m, n))
    return min(1.0, _tail_saddle(m, n))


def _tail_exact(m: int, n: int) -> float:
    """``2 * P(X <= m)`` for X ~ Binomial(n, 1/2), summed in integers."""
    term = math.comb(n, m)
    total = term
    for i in range(m, 0, -1):
        term = term * i // (n - i + 1)  # C(n, i - 1), exact
        total += term
        if term * (i - 1) <= (total >> 64) * (n - 2 * i + 3):  # the rest is below 2^-64 of the sum
            break
    return (2 * total) / (1 << n)


def _tail_saddle(m: int, n: int) -> float:
    """``2 * P(X <= m)`` for X ~ Binomial(n, 1/2), for large m and n (both over 15)."""
    half = n / 2
    log_pmf = (_stirlerr(n) - _stirlerr(m) - _stirlerr(n - m) - _bd0(m, half) - _bd0(n - m, half)
               - 0.5 * (math.log(2 * math.pi) + math.log(m) + math.log1p(-m / n)))
    total, term = 1.0, 1.0
    for i in range(m, 0, -1):
        r = i / (n - i + 1)
        term *= r
        total += term
        if term * r <= total * (1.0 - r) * 2.0**-64:
            break
    return math.exp(log_pmf + math.log(2.0 * total))


def _stirlerr(k: int) -> float:
    """``ln k! - ((k + 1/2) ln k - k + ln(2 pi) / 2)`` from its asymptotic series (k > 15)."""
    kk = float(k) * k
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * kk)) / kk) / kk) / kk) / k


def _bd0(x: float, mu: float) -> float:
    """``x ln(x / mu) + mu - x`` without cancellation when x is near mu (Loader)."""
    if abs(x - mu) < 0.1 * (x + mu):
        v = (x - mu) / (x + mu)
        s = (x - mu) * v
        ej = 2 * x * v
        j = 3
        while True:
            ej *= v * v
            s_next = s + ej / j
            if s_next == s:
                return s
            s, j = s_next, j + 2
    return x * math.log(x / mu) + mu - x


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
