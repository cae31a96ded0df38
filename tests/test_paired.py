"""labkit.paired: paired comparisons of two runs, against scipy's exact tests where it has them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from labkit import paired
from labkit.stats import mean_stat


def test_mcnemar_exact_matches_binomial():
    base = np.array([1] * 10 + [0] * 10 + [1] * 5)
    var = np.array([0] * 7 + [1] * 3 + [1] * 1 + [0] * 9 + [1] * 5)
    p, b, c = paired.mcnemar_exact(base, var)
    assert (b, c) == (7, 1)
    assert p == pytest.approx(binomtest(7, 8, 0.5).pvalue)
    assert paired.mcnemar_exact([1, 0], [1, 0]) == (1.0, 0, 0)


def test_mcnemar_p_value_is_the_exact_binomial_of_the_oracle():
    pairs = [(b, c) for b in range(41) for c in range(41)]
    pairs += [(0, 1000), (3, 997), (480, 520), (500, 500), (4_000, 4_400), (24_000, 26_000), (1, 1_074)]
    for b, c in pairs:
        if b + c == 0:
            continue
        got = paired.mcnemar_exact([1] * b + [0] * c, [0] * b + [1] * c)
        want = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert got[1:] == (b, c)
        assert got[0] == pytest.approx(want, rel=1e-12, abs=1e-300), (b, c)
        assert 0.0 < got[0] <= 1.0


def _exact_two_sided_half(k, n):
    """The whole lower tail in integers, no shortcut: 2 * sum_{i <= m} C(n, i) / 2^n."""
    m = min(k, n - k)
    term = total = 1  # C(n, 0)
    for i in range(m):
        term = term * (n - i) // (i + 1)
        total += term
    return min(1.0, 2 * total / 2**n)


@pytest.mark.parametrize("k,n", [(29_000, 60_000), (29_900, 60_000), (29_999, 60_000), (1_500, 60_000),
                                 (48_000, 100_000), (49_700, 100_001)])
def test_binomial_of_many_trials_is_exact_and_quick(k, n):
    import time

    t0 = time.perf_counter()
    got = paired.binomial_half_two_sided(k, n)
    took = time.perf_counter() - t0
    assert got == pytest.approx(_exact_two_sided_half(k, n), rel=1e-13, abs=1e-300)
    assert got == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-11, abs=1e-300)
    assert took < 0.5  # not a sum of a million-digit binomials


def test_binomial_rejects_impossible_counts():
    for k, n in ((-1, 5), (6, 5), (0, 0)):
        with pytest.raises(ValueError):
            paired.binomial_half_two_sided(k, n)


def test_sign_flip_exact_small_n():
    d = np.array([1.0, 1.0, 1.0, 1.0])
    # exact: 2 of 16 sign patterns reach |mean| >= 1
    assert paired.sign_flip_pvalue(d) == pytest.approx(2 / 16)
    assert paired.sign_flip_pvalue(np.zeros(5)) == 1.0
    big = np.random.default_rng(0).normal(0.5, 1, size=80)
    p1 = paired.sign_flip_pvalue(big, rng=1)
    assert p1 == paired.sign_flip_pvalue(big, rng=1) and p1 < 0.01
    null = np.random.default_rng(0).normal(0, 1, size=80)
    assert paired.sign_flip_pvalue(null, rng=1) > 0.05


def test_swap_permutation_equals_sign_flip_for_means():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 40)
    b = a + rng.normal(0.3, 1, 40)
    p_swap = paired.swap_permutation_pvalue(a, b, mean_stat, n_perm=4000, rng=0)
    p_flip = paired.sign_flip_pvalue(b - a, n_perm=4000, rng=9, exact_max_n=0)
    assert abs(p_swap - p_flip) < 0.03


def test_paired_bootstrap():
    a = np.linspace(0, 1, 30)
    d, lo, hi = paired.paired_bootstrap(a, a)
    assert (d, lo, hi) == (0.0, 0.0, 0.0)
    d, lo, hi = paired.paired_bootstrap(a, a - 0.1)
    assert d == pytest.approx(-0.1) and lo == pytest.approx(-0.1) and hi == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        paired.paired_bootstrap([1, 2], [1])
    assert paired.paired_bootstrap([], []) == (None, None, None)


def test_holm():
    adj = paired.holm([0.01, 0.04, 0.03, None, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adj[4] == pytest.approx(0.02)
    assert adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06)
    assert adj[1] == pytest.approx(0.06)
    assert adj[3] is None
    assert paired.holm([0.9, 0.8]) == [1.0, 1.0]
