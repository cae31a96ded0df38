"""Statistics: intervals, paired tests, Holm; seeded and reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from labkit import stats


def test_wilson_known_values():
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-5)
    lo, hi = stats.wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-5) and hi == pytest.approx(0.94332, abs=1e-5)
    assert stats.wilson_interval(0, 0) == (None, None)


def test_bootstrap_same_seed_same_interval_different_seed_close():
    x = np.random.default_rng(1).normal(10, 2, size=200)
    a = stats.bootstrap_ci(x, rng=5)
    assert a == stats.bootstrap_ci(x, rng=5)
    b = stats.bootstrap_ci(x, rng=6)
    assert a != b
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert abs(a[0] - b[0]) < 0.2 * se * 4 and abs(a[1] - b[1]) < 0.2 * se * 4
    # close to the normal-theory interval
    assert a[0] == pytest.approx(x.mean() - 1.96 * se, abs=0.3 * se)


def test_bootstrap_empty_and_constant():
    assert stats.bootstrap_ci([]) == (None, None)
    assert stats.bootstrap_ci([0.5] * 7) == (0.5, 0.5)


def test_bootstrap_blocks_match_unblocked(monkeypatch):
    x = np.arange(50, dtype=float)
    ref = stats.bootstrap_distribution(x, n_boot=300, rng=2)
    monkeypatch.setattr(stats, "_BLOCK_ELEMS", 50 * 7)  # force several blocks
    got = stats.bootstrap_distribution(x, n_boot=300, rng=2)
    np.testing.assert_allclose(got, ref)


def test_percentile_and_ratio_ci():
    lat = np.random.default_rng(0).lognormal(7, 0.4, size=300)
    lo, hi = stats.percentile_ci(lat, 95, rng=0)
    assert lo < np.percentile(lat, 95) < hi
    cost = np.full(100, 0.02)
    succ = np.r_[np.ones(50), np.zeros(50)]
    lo, hi = stats.ratio_ci(cost, succ, rng=0)
    assert lo < 0.04 < hi
    assert stats.ratio_ci([1.0], [0.0]) == (None, None)


def test_mcnemar_exact_matches_binomial():
    base = np.array([1] * 10 + [0] * 10 + [1] * 5)
    var = np.array([0] * 7 + [1] * 3 + [1] * 1 + [0] * 9 + [1] * 5)
    p, b, c = stats.mcnemar_exact(base, var)
    assert (b, c) == (7, 1)
    assert p == pytest.approx(binomtest(7, 8, 0.5).pvalue)
    assert stats.mcnemar_exact([1, 0], [1, 0]) == (1.0, 0, 0)


def test_sign_flip_exact_small_n():
    d = np.array([1.0, 1.0, 1.0, 1.0])
    # exact: 2 of 16 sign patterns reach |mean| >= 1
    assert stats.sign_flip_pvalue(d) == pytest.approx(2 / 16)
    assert stats.sign_flip_pvalue(np.zeros(5)) == 1.0
    big = np.random.default_rng(0).normal(0.5, 1, size=80)
    p1 = stats.sign_flip_pvalue(big, rng=1)
    assert p1 == stats.sign_flip_pvalue(big, rng=1) and p1 < 0.01
    null = np.random.default_rng(0).normal(0, 1, size=80)
    assert stats.sign_flip_pvalue(null, rng=1) > 0.05


def test_swap_permutation_equals_sign_flip_for_means():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 40)
    b = a + rng.normal(0.3, 1, 40)
    p_swap = stats.swap_permutation_pvalue(a, b, stats.mean_stat, n_perm=4000, rng=0)
    p_flip = stats.sign_flip_pvalue(b - a, n_perm=4000, rng=9, exact_max_n=0)
    assert abs(p_swap - p_flip) < 0.03


def test_paired_bootstrap():
    a = np.linspace(0, 1, 30)
    d, lo, hi = stats.paired_bootstrap(a, a)
    assert (d, lo, hi) == (0.0, 0.0, 0.0)
    d, lo, hi = stats.paired_bootstrap(a, a - 0.1)
    assert d == pytest.approx(-0.1) and lo == pytest.approx(-0.1) and hi == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        stats.paired_bootstrap([1, 2], [1])
    assert stats.paired_bootstrap([], []) == (None, None, None)


def test_holm():
    adj = stats.holm([0.01, 0.04, 0.03, None, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adj[4] == pytest.approx(0.02)
    assert adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06)
    assert adj[1] == pytest.approx(0.06)
    assert adj[3] is None
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]
