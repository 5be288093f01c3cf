"""Paired tests, bootstrap CI and mean ± std over seeds (recpipe.eval.significance)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recpipe.eval.significance import bootstrap_ci, fmt_mean_std, over_seeds, paired


def _frame(uids, values, metric="recall@20", domain="all", part="test"):
    return pl.DataFrame({"uid": np.asarray(uids, dtype=np.int32), "domain": [domain] * len(uids),
                         "part": [part] * len(uids), metric: np.asarray(values, dtype=np.float64)})


def test_ttest_matches_the_formula_by_hand():
    # d = b - a = [1, 2, 3, 4, 5]: mean 3, sd = sqrt(10/4) = sqrt(2.5),
    # t = 3 / (sqrt(2.5) / sqrt(5)) = 3 * sqrt(2) = 4.2426..., df = 4
    a = np.array([0.5, 0.0, 1.0, 2.0, 0.0])
    b = a + np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = paired(a, b)
    t = 3.0 * math.sqrt(2.0)
    assert r.diff == pytest.approx(3.0)
    assert r.mean_a == pytest.approx(0.7) and r.mean_b == pytest.approx(3.7)
    assert r.t_p == pytest.approx(2.0 * stats.t.sf(t, df=4), rel=1e-12)
    assert r.t_p == pytest.approx(0.0132356, abs=1e-6)
    # the sign of the difference does not change a two-sided p
    assert paired(b, a).t_p == pytest.approx(r.t_p) and paired(b, a).diff == pytest.approx(-3.0)


def test_wilcoxon_small_exact_case():
    # d = [1, -2, 3, 4, 5]: |d| ranks 1..5, W- = 2. Under H0 each of the 2^5 = 32 sign patterns
    # is equally likely; subsets of {1..5} summing to <= 2 are {}, {1}, {2}: p = 2 * 3/32
    d = np.array([1.0, -2.0, 3.0, 4.0, 5.0])
    r = paired(np.zeros(5), d)
    assert r.wilcoxon_p == pytest.approx(2 * 3 / 32)


def test_identical_runs_give_p_one_and_a_zero_ci():
    a = np.array([0.0, 0.5, 1.0, 0.25])
    r = paired(a, a.copy())
    assert r.diff == 0.0 and r.t_p == 1.0 and r.wilcoxon_p == 1.0
    assert r.ci_low == 0.0 and r.ci_high == 0.0


def test_constant_nonzero_difference_is_significant():
    a = np.arange(10) / 4.0  # exact binary fractions, so b - a is exactly 0.5 everywhere
    r = paired(a, a + 0.5)
    assert r.t_p == 0.0  # sd = 0, mean != 0: t is infinite
    assert r.wilcoxon_p < 0.01


def test_bootstrap_ci_contains_the_true_difference_and_is_seeded():
    rng = np.random.default_rng(7)
    n, true_diff, sd = 3000, 0.05, 0.2
    a = rng.random(n)
    b = a + rng.normal(true_diff, sd, size=n)
    r = paired(a, b, seed=11)
    assert r.ci_low < true_diff < r.ci_high
    assert r.ci_low < r.diff < r.ci_high
    # width of a 95 % CI of a mean ~ 2 * 1.96 * sd / sqrt(n)
    assert r.ci_high - r.ci_low == pytest.approx(2 * 1.96 * sd / math.sqrt(n), rel=0.15)
    again = paired(a, b, seed=11)
    assert (again.ci_low, again.ci_high) == (r.ci_low, r.ci_high)
    other = paired(a, b, seed=12)
    assert (other.ci_low, other.ci_high) != (r.ci_low, r.ci_high)
    # a narrower confidence level gives a narrower interval inside the wider one
    lo90, hi90 = bootstrap_ci(b - a, confidence=0.90, seed=11)
    assert r.ci_low < lo90 < hi90 < r.ci_high


def test_frames_are_aligned_on_units_not_row_order():
    rng = np.random.default_rng(0)
    uids = np.arange(50)
    va, vb = rng.random(50), rng.random(50)
    a = _frame(uids, va)
    b = _frame(uids, vb).sample(fraction=1.0, shuffle=True, seed=3)  # rows in another order
    assert not np.array_equal(b["uid"].to_numpy(), uids)
    r = paired(a, b, "recall@20")
    assert r.diff == pytest.approx(float((vb - va).mean()))
    assert r.t_p == pytest.approx(stats.ttest_rel(vb, va).pvalue)


def test_misaligned_units_raise():
    a = _frame([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="different units"):
        paired(a, _frame([0, 1, 2, 4], [0.1, 0.2, 0.3, 0.4]), "recall@20")
    with pytest.raises(ValueError, match="different units"):
        paired(a, _frame([0, 1, 2], [0.1, 0.2, 0.3]), "recall@20")
    with pytest.raises(ValueError, match="different units"):  # same users, another part
        paired(a, _frame([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4], part="valid"), "recall@20")
    with pytest.raises(ValueError, match="duplicate units"):
        paired(a, _frame([0, 1, 1, 3], [0.1, 0.2, 0.3, 0.4]), "recall@20")
    with pytest.raises(ValueError, match="lacks column"):
        paired(a, a, "ndcg@20")
    with pytest.raises(ValueError, match="equally long"):
        paired(np.zeros(3), np.zeros(4))


def test_over_seeds_and_format():
    mean, std = over_seeds([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and std == pytest.approx(0.1)  # sample std, ddof = 1
    assert fmt_mean_std(mean, std) == "0.2000 ± 0.1000"
    one = over_seeds([0.12344])
    assert one[0] == pytest.approx(0.12344) and math.isnan(one[1])
    assert fmt_mean_std(*one) == "0.1234"
    assert fmt_mean_std(math.nan, math.nan) == "–"
    with pytest.raises(ValueError):
        over_seeds([])
