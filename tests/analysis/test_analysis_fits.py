"""The two fits against hand computations and against the paper's notebook algorithm."""

import math

import numpy as np
import pytest
from scipy import stats

from letitwag.analysis.fits import (BinningOptions, EdgeRule, binned_fit, regression_fit, segmented_lines, zipf_fit)
from letitwag.errors import UserInputError


def paper_notebook_binning(counts, scores, num, low, high):
    """The notebook's steps, written out: np.log of counts (0 -> 1), linspace edges, digitize
    right=True, per-bin means, slice [low:len-high], pearsonr(log(exp(edges)), means)."""
    x = np.log([c if c > 0 else 1 for c in counts])
    bins = np.linspace(x.min(), x.max(), num=num)
    assigned = np.digitize(x, bins, right=True)
    means = np.array([np.mean(np.asarray(scores)[assigned == b]) for b in range(num)])
    sl = slice(low, num - high)
    return stats.pearsonr(np.log(np.exp(bins))[sl], means[sl])


def test_binned_fit_equals_the_paper_notebook_on_random_data():
    rng = np.random.default_rng(3)
    counts = np.concatenate([[0, 0, 1], np.floor(10 ** rng.uniform(0, 6, size=3000)).astype(int)])
    scores = 10 * np.log10(counts + 1) + rng.normal(0, 5, size=len(counts))
    for low, high in ((1, 1), (2, 1), (0, 4)):
        ours = binned_fit(counts, scores, BinningOptions(12, EdgeRule(low, high)))
        ref = paper_notebook_binning(counts, scores, 12, low, high)
        assert ours.pearson_r == pytest.approx(ref.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert ours.kept == list(range(low, 12 - high))


def test_binned_fit_by_hand():
    # log10 counts 0, 1, 2, 3, 4 with 5 edges: each count is exactly on an edge, so concept i is in bin i
    counts = [1, 10, 100, 1000, 10000, 10000]
    scores = [0.0, 1.0, 2.0, 4.0, 5.0, 7.0]
    fit = binned_fit(counts, scores, BinningOptions(5, EdgeRule(1, 0)))
    assert [b["n"] for b in fit.bins] == [1, 1, 1, 1, 2]
    assert [b["mean"] for b in fit.bins] == [0.0, 1.0, 2.0, 4.0, 6.0]
    assert [b["log10_position"] for b in fit.bins] == pytest.approx([0, 1, 2, 3, 4])
    assert fit.kept == [1, 2, 3, 4]
    expected = stats.pearsonr([1, 2, 3, 4], [1.0, 2.0, 4.0, 6.0])
    assert fit.pearson_r == pytest.approx(expected.statistic)
    assert fit.p_value == pytest.approx(expected.pvalue)
    assert fit.slope_per_decade == pytest.approx(stats.linregress([1, 2, 3, 4], [1.0, 2.0, 4.0, 6.0]).slope)


def test_zero_counts_are_one_and_bin_positions():
    counts = [0, 1, 10, 100]
    scores = [1.0, 3.0, 5.0, 7.0]
    upper = binned_fit(counts, scores, BinningOptions(3, EdgeRule(0, 0), "upper"))
    # 0 and 1 both have log 0: the minimum bin holds both
    assert upper.bins[0]["n"] == 2 and upper.bins[0]["mean"] == 2.0
    centre = binned_fit(counts, scores, BinningOptions(3, EdgeRule(0, 0), "centre"))
    left = binned_fit(counts, scores, BinningOptions(3, EdgeRule(0, 0), "left"))
    assert [b["log10_position"] for b in upper.bins] == pytest.approx([0, 1, 2])
    assert [b["log10_position"] for b in centre.bins] == pytest.approx([0, 0.5, 1.5])
    assert [b["log10_position"] for b in left.bins] == pytest.approx([0, 0, 1])
    assert centre.options == {"bins": 3, "edge_rule": "0,0", "position": "centre"}


def test_empty_bins_are_never_correlated_and_sparse_rule():
    counts = [1] * 5 + [10 ** 6] * 5 + [10 ** 3] * 1
    scores = [1.0] * 5 + [9.0] * 5 + [4.0]
    fit = binned_fit(counts, scores, BinningOptions(7, EdgeRule(0, 0)))
    assert [b["n"] for b in fit.bins] == [5, 0, 0, 1, 0, 0, 5]
    assert fit.kept == [0, 3, 6]
    sparse = binned_fit(counts, scores, BinningOptions(7, EdgeRule.parse("sparse:3")))
    assert sparse.kept == [0, 3, 6]  # the end bins hold 5 concepts each: kept
    sparse6 = binned_fit(counts, scores, BinningOptions(7, EdgeRule.parse("sparse:6")))
    assert sparse6.kept == [] and sparse6.pearson_r is None and "bin(s) kept" in sparse6.note


def test_edge_rule_parsing():
    assert EdgeRule.parse("1,1") == EdgeRule(1, 1)
    assert EdgeRule.parse("none") == EdgeRule(0, 0)
    assert EdgeRule.parse("sparse:5").min_concepts == 5
    assert EdgeRule.parse("2,1").describe() == "2,1"
    for bad in ("1", "a,b", "sparse:0", "sparse:x", "1,2,3"):
        with pytest.raises(UserInputError, match="edge rule"):
            EdgeRule.parse(bad)
    with pytest.raises(UserInputError):
        BinningOptions(bins=1)
    with pytest.raises(UserInputError):
        BinningOptions(position="middle")


def test_degenerate_inputs_give_notes_not_crashes():
    same = binned_fit([5, 5, 5], [1.0, 2.0, 3.0], BinningOptions())
    assert same.pearson_r is None and "same count" in same.note
    assert binned_fit([], [], BinningOptions()).note == "no concepts"
    reg = regression_fit([1, 1], [0.5, 0.7])
    assert reg.slope_per_decade is None and reg.note


def test_regression_matches_scipy_and_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 10 ** 5, size=400)
    x = np.log10(counts + 1)
    y = 3.0 * x + 2 + rng.normal(0, 1, size=400)
    fit = regression_fit(counts, y, bootstrap=500, seed=7)
    line = stats.linregress(x, y)
    assert fit.slope_per_decade == pytest.approx(line.slope)
    assert fit.intercept == pytest.approx(line.intercept)
    assert fit.pearson_r == pytest.approx(stats.pearsonr(x, y).statistic)
    assert fit.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert fit.n == 400
    low, high = fit.slope_ci95
    assert low < line.slope < high and high - low < 0.5
    # the percentile CI agrees with a plain (slow) bootstrap to within Monte-Carlo noise
    plain = []
    r = np.random.default_rng(1)
    for _ in range(500):
        i = r.integers(0, 400, 400)
        plain.append(stats.linregress(x[i], y[i]).slope)
    assert low == pytest.approx(np.percentile(plain, 2.5), abs=0.08)
    assert high == pytest.approx(np.percentile(plain, 97.5), abs=0.08)
    again = regression_fit(counts, y, bootstrap=500, seed=7)
    assert again.slope_ci95 == fit.slope_ci95 and again.intercept_ci95 == fit.intercept_ci95
    other = regression_fit(counts, y, bootstrap=500, seed=8)
    assert other.slope_ci95 != fit.slope_ci95
    assert "replicate_slopes" not in fit.to_json()


def test_segmented_lines_and_zipf():
    x = [10, 20, 30, 50, 60, 70, 80]
    y = [1, 2, 3, 99, 10, 20, 30]
    lines = segmented_lines(x, y, 50)
    assert lines["below"]["slope"] == pytest.approx(0.1) and lines["below"]["n"] == 3
    assert lines["above"]["slope"] == pytest.approx(1.0) and lines["above"]["n"] == 3  # 50 is in neither
    counts = [1000 / r for r in range(1, 101)] + [0, 0]
    z = zipf_fit(counts)
    assert z["exponent"] == pytest.approx(1.0, abs=1e-9)
    assert z["n_zero"] == 2 and z["n_nonzero"] == 100 and z["n_fitted"] == 50 and z["r_squared"] > 0.999
    cut_off = [1000 / r for r in range(1, 51)] + [1e-3] * 50  # a finite cut-off after rank 50 is not fitted
    assert zipf_fit(cut_off)["exponent"] == pytest.approx(1.0, abs=1e-9)
    assert math.isclose(z["max_count"], 1000)
