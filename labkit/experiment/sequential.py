"""The sequential test: mSPRT with a normal mixture, and its always-valid interval.

For a difference of two means (candidate − control) with estimate ``Δ`` and estimated
variance ``V = s²_a/n_a + s²_b/n_b`` at a look, the mixture sequential probability ratio
test of Johari, Koomen, Pekelis and Walsh ("Always valid inference: continuous monitoring
of A/B tests", Operations Research 70(3), 2022; "Peeking at A/B tests", KDD 2017) with a
normal mixing distribution N(0, τ²) over the effect has the likelihood ratio::

    Λ = sqrt(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))

It is a nonnegative martingale under "no difference", so by Ville's inequality
P(Λ ever reaches 1/α) ≤ α however often one looks. Inverting it gives the always-valid
(1 − α) interval (a confidence sequence, Howard, Ramdas, McAuliffe and Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics
49(2), 2021, the normal-mixture boundary)::

    Δ ± sqrt(V (V + τ²) / τ² · (log((V + τ²) / V) + 2 log(1 / α)))

and the always-valid p-value ``min(1, 1 / max Λ so far)``. The guarantee is asymptotic in
the normal approximation of the means, so no test is made before each arm has
``min_n`` observations. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labkit.errors import ConfigError

#: the fewest observations per arm before a look tests anything: with 30 the normal approximation
#: of a success rate near 0.95 let the A/A rejection rate reach 6.6% over 72 hourly looks; with 100
#: it is 3.3% (benchmarks/bench_experiment.py)
MIN_N = 100


@dataclass(frozen=True, kw_only=True)
class SequentialLooks:
    """The test at each look (arrays, one entry per look): difference, its variance, the
    always-valid interval, the mixture likelihood ratio, the always-valid p-value and
    whether the interval excludes 0."""

    delta: NDArray[np.float64]
    variance: NDArray[np.float64]
    ci_low: NDArray[np.float64]
    ci_high: NDArray[np.float64]
    likelihood_ratio: NDArray[np.float64]
    p_value: NDArray[np.float64]
    rejects: NDArray[np.bool_]


def check_test_options(*, alpha: float, tau: float) -> None:
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):  # NaN fails this too
        raise ConfigError(f"must be between 0 and 1, got {alpha!r}", field="alpha")
    if not (isinstance(tau, float | int) and 0 < tau < float("inf")):
        raise ConfigError(f"must be a positive effect scale, got {tau!r}", field="tau")


def msprt(
    mean_a: ArrayLike, var_a: ArrayLike, n_a: ArrayLike,
    mean_b: ArrayLike, var_b: ArrayLike, n_b: ArrayLike,
    *, tau: float, alpha: float = 0.05, min_n: int = MIN_N,
) -> SequentialLooks:
    """The mSPRT of ``mean_b − mean_a`` at every look (arrays of any equal shape; the last
    axis is the look order, for the running always-valid p-value).

    A look where an arm has fewer than ``min_n`` observations, or the variance is 0, tests
    nothing: its interval is (−inf, inf), its likelihood ratio 1.
    """
    check_test_options(alpha=alpha, tau=tau)
    ma, va, na = (np.asarray(x, dtype=float) for x in (mean_a, var_a, n_a))
    mb, vb, nb = (np.asarray(x, dtype=float) for x in (mean_b, var_b, n_b))
    ok = (na >= min_n) & (nb >= min_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(ok, va / np.maximum(na, 1) + vb / np.maximum(nb, 1), np.nan)
        ok &= np.isfinite(v) & (v > 0)
        v = np.where(ok, v, 1.0)
        d = mb - ma
        t2 = float(tau) ** 2
        log_lr = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
        radius = np.sqrt(v * (v + t2) / t2 * (np.log((v + t2) / v) + 2 * np.log(1 / alpha)))
    log_lr = np.where(ok, log_lr, 0.0)
    radius = np.where(ok, radius, np.inf)
    lr = np.exp(np.minimum(log_lr, 700.0))
    p = np.minimum(1.0, 1.0 / np.maximum.accumulate(np.atleast_1d(lr), axis=-1).reshape(lr.shape))
    return SequentialLooks(delta=np.where(ok, d, np.nan), variance=np.where(ok, v, np.nan),
                           ci_low=np.where(ok, d - radius, -np.inf), ci_high=np.where(ok, d + radius, np.inf), likelihood_ratio=lr, p_value=p,
                           rejects=ok & (log_lr >= np.log(1 / alpha)))


def cumulative_moments(x: NDArray[np.float64], look: NDArray[np.int64], n_looks: int, *,
                       changes: tuple[Any, Any, Any] | None = None) -> tuple[Any, Any, Any]:
    """(mean, variance, n) of the observations ``x`` seen by each look 0..n_looks−1, where
    ``look[i]`` is the first look that sees ``x[i]``. ``changes`` (looks, dx, dx²): later changes
    to observations already seen, each counted from its look on (a value x becoming x + dx adds dx
    to the sum and dx² = (x + dx)² − x² to the sum of squares)."""
    def by_look(at: Any, weights: Any = None) -> Any:
        at = np.minimum(at, n_looks)  # (a change after the last look: counted at none)
        return np.bincount(at, weights=weights, minlength=n_looks + 1)[:n_looks].cumsum()

    n = by_look(look).astype(float)
    s, s2 = by_look(look, x), by_look(look, x * x)
    if changes is not None:
        at, dx, dx2 = changes
        s, s2 = s + by_look(at, dx), s2 + by_look(at, dx2)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        var = np.where(n > 1, (s2 - n * mean * mean) / np.maximum(n - 1, 1), np.nan)
    return mean, np.maximum(var, 0.0), n
