"""labkit.stats: the intervals of one run (plain bootstrap, Wilson, the fast resampling paths); seeded and reproducible."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from forks import forked_first, forks_meet_at, kill_in_child, refuse_forks
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest, norm

from labkit import forks, stats


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


@pytest.mark.parametrize("alpha", [0.5, 0.1, 0.05, 0.01, 1e-3, 1e-6])
def test_wilson_matches_the_normal_quantile_of_the_oracle(alpha):
    z = float(norm.ppf(1 - alpha / 2))
    for n in (1, 2, 3, 10, 57, 1000, 123_457):
        for s in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            p = s / n
            denom = 1 + z * z / n
            center = (p + z * z / (2 * n)) / denom
            half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
            lo, hi = stats.wilson_interval(s, n, alpha)
            assert lo == pytest.approx(max(0.0, center - half), rel=1e-12, abs=1e-15), (s, n)
            assert hi == pytest.approx(min(1.0, center + half), rel=1e-12, abs=1e-15), (s, n)


def test_intervals_and_mcnemar_need_no_scipy():
    code = (
        "import json, sys\n"
        "sys.modules['scipy'] = None  # importing scipy now raises ImportError\n"
        "from labkit import paired, stats\n"
        "print(json.dumps([stats.wilson_interval(8, 10), paired.mcnemar_exact([1, 1, 1, 0], [0, 0, 1, 1])]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (lo, hi), (p, b, c) = json.loads(r.stdout)
    assert lo == pytest.approx(0.49016, abs=1e-5) and hi == pytest.approx(0.94332, abs=1e-5)
    assert (b, c) == (2, 1) and p == pytest.approx(binomtest(2, 3, 0.5).pvalue, rel=1e-12)


# --- fast paths: the same bootstrap distributions as the plain one ---------------------


def _mc_close(fast, plain, tol=0.3):
    """Interval ends within Monte Carlo noise: |difference| <= tol * the plain
    distribution's standard deviation (about 3-4 standard errors of the difference
    of two 95% endpoints estimated from 4,000 resamples each)."""
    sd = float(np.std(plain))
    lo_f, hi_f = stats.interval_from_distribution(fast)
    lo_p, hi_p = stats.interval_from_distribution(plain)
    assert abs(lo_f - lo_p) <= tol * sd + 1e-12, (lo_f, lo_p, sd)
    assert abs(hi_f - hi_p) <= tol * sd + 1e-12, (hi_f, hi_p, sd)


def _ks_p(a, b):
    """Two-sample KS p-value, values rounded to 1e-9 relative first (the same atom
    computed two ways may differ in its last bits)."""
    from scipy.stats import ks_2samp

    scale = max(float(np.max(np.abs(a))), 1e-300)
    return ks_2samp(np.round(a / scale, 9), np.round(b / scale, 9), method="asymp").pvalue


@pytest.mark.parametrize("n", [1, 2, 5, 37, 400])
@pytest.mark.parametrize("q", [0.0, 37.3, 50.0, 95.0, 99.0, 100.0])
def test_percentile_distribution_matches_plain_bootstrap(n, q):
    x = np.random.default_rng(n).lognormal(7, 0.5, size=n)
    plain = stats.bootstrap_distribution(x, stats.percentile_stat(q), n_boot=4000, rng=1)
    fast = stats.percentile_distribution(x, q, n_boot=4000, rng=2)
    assert fast.shape == (4000,) and np.all((fast >= x.min()) & (fast <= x.max()))
    _mc_close(fast, plain)
    if np.std(plain) > 0:
        assert _ks_p(plain, fast) > 1e-3
    # seeded, independent of order, and with ties
    assert np.array_equal(fast, stats.percentile_distribution(x[::-1], q, n_boot=4000, rng=2))
    ties = np.round(x[: max(1, n // 2)].repeat(3), -2)
    fast = stats.percentile_distribution(ties, q, n_boot=4000, rng=3)
    plain = stats.bootstrap_distribution(ties, stats.percentile_stat(q), n_boot=4000, rng=4)
    if np.std(plain) > 0:
        assert _ks_p(plain, fast) > 1e-3
    assert np.isnan(stats.percentile_distribution([], q, n_boot=10)).all()


def test_index_counts_path_is_the_plain_bootstrap():
    rng = np.random.default_rng(0)
    cost = rng.gamma(2.0, 0.01, size=300)  # continuous: resampled by index, W @ x
    succ = (rng.random(300) < 0.7).astype(float)
    sums = stats._index_counts_sums(np.column_stack([cost, succ]), 3000, 7)[:, 0]  # one cell
    assert sums.shape == (3000, 2)
    np.testing.assert_allclose(sums[:, 0] / 300, stats.bootstrap_distribution(cost, n_boot=3000, rng=7), rtol=1e-12)
    xy = np.column_stack([cost, succ])
    np.testing.assert_allclose(sums[:, 0] / sums[:, 1],
                               stats.bootstrap_distribution(xy, stats.ratio_stat, n_boot=3000, rng=7), rtol=1e-12)
    # an odd n and blocks of several rows: still the plain bootstrap's draws
    odd = rng.gamma(2.0, 0.01, size=301)
    (alone,) = stats._index_counts_sums(odd[:, None], 3000, 7)[:, 0].T
    np.testing.assert_allclose(alone / 301, stats.bootstrap_distribution(odd, n_boot=3000, rng=7), rtol=1e-12)


@pytest.mark.parametrize("n", [800, 5000])
def test_multinomial_path_matches_plain_bootstrap(n):
    rng = np.random.default_rng(n)
    v = rng.integers(0, 6, size=n) / 5  # few distinct values (like mrr or coverage)
    rows, counts, _ = stats._distinct_rows(v[:, None], n // stats._DISTINCT_FACTOR)
    fast, size = stats.multinomial_sums(rows, counts, n_boot=4000, seed=1)
    assert size == n
    plain = stats.bootstrap_distribution(v, n_boot=4000, rng=2)
    _mc_close(fast[:, 0] / n, plain)
    assert _ks_p(fast[:, 0] / n, plain) > 1e-3
    again = stats._distinct_rows(rng.permutation(v)[:, None], n // stats._DISTINCT_FACTOR)
    assert np.array_equal(fast, stats.multinomial_sums(again[0], again[1], n_boot=4000, seed=1)[0])
    # a ratio over few distinct (cost, success) pairs, multinomial over the pairs
    xy = np.column_stack([np.where(v > 0.5, 0.02, 0.01), (v > 0.3).astype(float)])
    rows, counts, _ = stats._distinct_rows(xy, n // stats._DISTINCT_FACTOR)
    sums, _ = stats.multinomial_sums(rows, counts, n_boot=4000, seed=1)
    _mc_close(sums[:, 0] / sums[:, 1], stats.bootstrap_distribution(xy, stats.ratio_stat, n_boot=4000, rng=2))


def test_few_distinct_rows_threshold():
    n = 128 * 4
    limit = n // stats._DISTINCT_FACTOR
    assert stats._distinct_rows(np.arange(n, dtype=float)[:, None] % 4, limit) is not None
    assert stats._distinct_rows(np.arange(n, dtype=float)[:, None] % 5, limit) is None
    assert stats._distinct_rows(np.ones((10, 1)), 10 // stats._DISTINCT_FACTOR) is None  # too few rows to bother
    rows, counts, labels = stats._distinct_rows(np.column_stack([np.arange(n) % 2, np.arange(n) % 4]).astype(float),
                                                limit)
    assert rows.shape == (4, 2) and counts.sum() == n
    assert np.array_equal(rows[labels], np.column_stack([np.arange(n) % 2, np.arange(n) % 4]))


@pytest.mark.parametrize("call", [
    lambda s: s.bootstrap_ci([1.0, 2.0, 3.0], s.mean_stat, alpha=2),
    lambda s: s.bootstrap_ci([1.0, 2.0, 3.0], s.mean_stat, alpha=float("nan")),
    lambda s: s.bootstrap_ci([1.0, 2.0, 3.0], s.mean_stat, n_boot=-1),
    lambda s: s.wilson_interval(3, 10, alpha=0),
    lambda s: s.multinomial_sums([[1.0], [2.0]], [1, 1], n_boot=0),
    lambda s: s.percentile_distribution([1.0, 2.0], 95, n_boot=-3),
])
def test_out_of_range_alpha_and_n_boot_are_config_errors(call):
    from labkit import stats
    from labkit.errors import ConfigError

    with pytest.raises(ConfigError) as ei:
        call(stats)
    assert ei.value.field in ("alpha", "n_boot")


# --- resampling the whole run: a sample's size varies, cells share one count matrix -----------


def _whole_run_index(n_total, n_boot, seed):
    return np.random.default_rng(seed).integers(0, n_total, size=(n_boot, n_total))


@pytest.mark.parametrize("q", [5.0, 50.0, 95.0])
def test_percentile_of_a_sample_within_a_resampled_run_matches_the_plain_one(q):
    x = np.random.default_rng(0).lognormal(7, 0.5, size=120)  # the first 120 of 400 cases
    idx = _whole_run_index(400, 4000, 1)
    plain = np.array([np.percentile(x[row[row < 120]], q) if (row < 120).any() else np.nan for row in idx])
    fast = stats.percentile_distribution(x, q, n_boot=4000, rng=2, n_total=400)
    _mc_close(fast, plain)
    assert _ks_p(plain, fast) > 1e-3
    # the whole run: the fixed-size draws, unchanged
    assert np.array_equal(stats.percentile_distribution(x, q, n_boot=50, rng=2, n_total=120),
                          stats.percentile_distribution(x, q, n_boot=50, rng=2))
    assert np.isnan(stats.percentile_distribution([1.0], q, n_boot=4000, rng=0, n_total=10_000)).any()


def test_multinomial_sums_of_a_sample_within_a_resampled_run_match_the_plain_ones():
    v = np.random.default_rng(3).integers(0, 4, size=300).astype(float)  # the first 300 of 1000 cases
    rows, counts = np.unique(v, return_counts=True)
    sums, size = stats.multinomial_sums(rows[:, None], counts, n_total=1000, n_boot=4000, seed=4)
    idx = _whole_run_index(1000, 4000, 5)
    drawn = idx < 300
    plain_size = drawn.sum(axis=1)
    plain_sums = np.array([v[row[row < 300]].sum() for row in idx])
    assert _ks_p(plain_size.astype(float), np.asarray(size, dtype=float)) > 1e-3
    _mc_close(sums[:, 0] / size, plain_sums / plain_size)
    assert _ks_p(plain_sums, sums[:, 0]) > 1e-3
    v = np.random.default_rng(3).integers(0, 4, size=800).astype(float)  # the sample is the run:
    rows, counts = np.unique(v, return_counts=True)  # the fixed-size multinomial, unchanged
    whole, n = stats.multinomial_sums(rows[:, None], counts, n_total=800, n_boot=20, seed=4)
    plain = np.random.default_rng(4).multinomial(800, counts / 800, size=20) @ rows
    assert n == 800 and np.array_equal(whole[:, 0], plain)


def test_cell_sums_are_the_index_matrix_counts_per_cell():
    rng = np.random.default_rng(7)
    x = np.column_stack([rng.gamma(2.0, 0.01, 500), np.ones(500)])
    starts = [0, 120, 121, 400, 500]
    got = stats._index_counts_sums(x, 300, 8, starts)
    w = np.stack([np.bincount(row, minlength=500) for row in _whole_run_index(500, 300, 8)]).astype(float)
    for k in range(4):
        s, e = starts[k], starts[k + 1]
        np.testing.assert_allclose(got[:, k], w[:, s:e] @ x[s:e], rtol=1e-12)
    assert np.array_equal(got[:, :, 1].sum(axis=1), np.full(300, 500.0))  # n draws in every resample


def test_cell_sums_in_chunks_draw_the_same_law(monkeypatch):
    """Past _CHUNK rows the n draws are spread over chunks by a multinomial, then drawn inside:
    the same law as n uniform draws over every row."""
    rng = np.random.default_rng(9)
    x = np.column_stack([rng.gamma(2.0, 0.01, 1000), np.ones(1000)])
    starts = [0, 300, 1000]
    plain = stats._index_counts_sums(x, 4000, 1, starts)
    monkeypatch.setattr(stats, "_CHUNK", 128)
    chunked = stats._index_counts_sums(x, 4000, 2, starts)
    assert np.array_equal(chunked[:, :, 1].sum(axis=1), np.full(4000, 1000.0))
    for k in range(2):
        _mc_close(chunked[:, k, 0], plain[:, k, 0])
        assert _ks_p(plain[:, k, 0], chunked[:, k, 0]) > 1e-3
        assert _ks_p(plain[:, k, 1], chunked[:, k, 1]) > 1e-3
    few = stats._index_counts_sums(x, 30, 2, starts)
    monkeypatch.setattr(stats, "_TILE_MULADDS", 7)  # tiny BLAS tiles: the same sums
    np.testing.assert_allclose(stats._index_counts_sums(x, 30, 2, starts), few, rtol=1e-12)


@given(st.integers(1, 3_000_000))
def test_chunks_are_powers_of_two_that_cover_the_rows(n):
    sizes = stats._chunk_sizes(n)
    assert sum(sizes) == n and sizes == sorted(sizes, reverse=True)
    assert all(s & (s - 1) == 0 and s <= stats._CHUNK for s in sizes)  # (a draw is masked random bits)
    full = sizes.count(sizes[0])
    assert full >= stats._MIN_CHUNKS or sizes[0] == 1 or n < 2 * stats._MIN_CHUNKS  # the threads share them
    assert len(sizes) - full <= sizes[0].bit_length()  # then the rest's binary digits, once each


def test_chunked_draws_are_uniform_over_each_chunks_rows(monkeypatch):
    """Every row of a chunk is drawn as often as any other: the rows at each position inside
    their chunk are drawn, on average, as many times as there are of them."""
    monkeypatch.setattr(stats, "_CHUNK", 128)
    n = 1000
    sizes = stats._chunk_sizes(n)
    first = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    position = np.arange(n) - first  # each row's place inside its chunk
    width = sizes[0]
    x = (position[:, None] == np.arange(width)[None, :]).astype(float)
    sums = stats._index_counts_sums(x, 4000, 11)[:, 0]
    want = x.sum(axis=0)  # rows at each position
    sd = np.sqrt(want * (1 - 1 / n)) / np.sqrt(4000)  # a binomial count's mean over the resamples
    assert np.all(np.abs(sums.mean(axis=0) - want) < 5 * sd)


def test_chunked_sums_do_not_depend_on_how_many_processes_count_them(monkeypatch, tmp_path):
    """Past _CHUNK rows each chunk draws from its own generator (spawned from the seed), so the
    chunks are counted side by side in forked processes: one process or several give the very
    same sums."""
    import functools
    import os

    rng = np.random.default_rng(3)
    x = np.column_stack([rng.gamma(2.0, 0.01, 1000), rng.random(1000) < 0.3, np.ones(1000)])
    starts = [0, 10, 300, 301, 1000]
    monkeypatch.setattr(stats, "_CHUNK", 128)
    pids = tmp_path / "pids"
    real = forks._in_child

    @functools.wraps(real)
    def recorded(token):
        got = real(token)
        with pids.open("a") as f:
            f.write("".join(f"{os.getpid()} {chunk}\n" for chunk, _ in got))
        return got

    monkeypatch.setattr(forks, "_in_child", recorded)
    forked_first(monkeypatch)
    monkeypatch.setattr(forks, "usable_cpus", lambda: 1)
    one = stats._index_counts_sums(x, 500, 4, starts)
    assert not pids.exists()  # counted here
    monkeypatch.setattr(forks, "usable_cpus", lambda: 3)
    three = stats._index_counts_sums(x, 500, 4, starts)
    got = [line.split() for line in pids.read_text().splitlines()]
    assert got and all(pid != str(os.getpid()) for pid, _ in got), got  # (and this process the others)
    assert len({c for _, c in got}) == len(got)  # each chunk counted once
    assert np.array_equal(one, three)
    assert np.array_equal(one[:, :, 2].sum(axis=1), np.full(500, 1000.0))  # n draws in every resample
    assert not np.array_equal(one, stats._index_counts_sums(x, 500, 5, starts))  # the seed still matters


@pytest.mark.parametrize("failure", ["no fork", "process lost"])
def test_chunked_sums_without_their_processes_are_the_same_sums(monkeypatch, failure):
    """A fork refused (no memory for one) or a counting process killed leaves its chunks to this
    process: the sums are the ones every other way gives."""

    rng = np.random.default_rng(5)
    x = np.column_stack([rng.random(1000), np.ones(1000)])
    starts = [0, 400, 1000]
    monkeypatch.setattr(stats, "_CHUNK", 128)
    monkeypatch.setattr(forks, "usable_cpus", lambda: 1)
    want = stats._index_counts_sums(x, 300, 9, starts)
    monkeypatch.setattr(forks, "usable_cpus", lambda: 2)
    if failure == "no fork":
        refuse_forks(monkeypatch)
    else:
        kill_in_child(monkeypatch, forks, "_in_child")
    assert np.array_equal(stats._index_counts_sums(x, 300, 9, starts), want)


def test_two_threads_bootstrapping_at_once_each_get_their_own_sums(monkeypatch):
    import threading

    monkeypatch.setattr(stats, "_CHUNK", 128)
    monkeypatch.setattr(forks, "usable_cpus", lambda: 2)
    rng = np.random.default_rng(0)
    xa = np.column_stack([rng.random(1000), np.ones(1000)])
    xb = xa * 1000.0
    want = [stats._index_counts_sums(x, 50, 1, [0, 1000]) for x in (xa, xb)]
    forks_meet_at(monkeypatch, 2)
    got: dict = {}

    def work(i, x):
        try:
            got[i] = stats._index_counts_sums(x, 50, 1, [0, 1000])
        except Exception as e:  # (shown by the assertion)
            got[i] = e

    threads = [threading.Thread(target=work, args=(i, x)) for i, x in enumerate((xa, xb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert isinstance(got[i], np.ndarray), got[i]
        assert np.array_equal(got[i], want[i]), f"thread {i}: the sums of the other thread's rows"


_REFUSED_SECOND_FORK = """
import os
import numpy as np
from labkit import forks, stats
stats._CHUNK = 128
forks.usable_cpus = lambda: 3  # as on a machine with three usable CPUs
real, calls = os.fork, [0]
def fork():
    calls[0] += 1
    if calls[0] == 2:
        raise OSError(12, "Cannot allocate memory")
    return real()
os.fork = fork
rng = np.random.default_rng(5)
x = np.column_stack([rng.random(1000), np.ones(1000)])
stats._index_counts_sums(x, 300, 9, [0, 400, 1000])
import multiprocessing
print("alive", len(multiprocessing.active_children()))
"""


def test_a_refused_second_fork_leaves_no_process_behind():
    """The first counting process started, the second fork refused: the chunks are counted here,
    the started process is ended, and the interpreter exits."""
    import os
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", _REFUSED_SECOND_FORK], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)  # (its own session: it and a process it left behind)
        out, _ = p.communicate()
        pytest.fail(f"the interpreter did not exit:\n{out}")
    assert p.returncode == 0 and "alive 0" in out, out


def _aggregate_in_daemonic_worker(n):
    import pandas as pd

    from labkit.metrics import aggregate_frame

    df = pd.DataFrame({"case_id": [f"c{i:06d}" for i in range(n)], "faithfulness": np.linspace(0, 1, n)})
    try:
        aggregate_frame(df, n_boot=50)
        return "ok"
    except BaseException as e:  # (shown by the assertion)
        return f"{type(e).__name__}: {e}"


def test_the_bootstrap_past_65536_rows_works_inside_a_daemonic_worker():
    """A daemonic process (a multiprocessing pool's worker) may have no children: counted there."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_aggregate_in_daemonic_worker, (70_000,)) == "ok"
