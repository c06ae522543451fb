"""keras_attn.report.stats against independent computations on fixed numbers."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from keras_attn.report import stats

CNN = [0.7452, 0.7501, 0.7322, 0.7481, 0.7521, 0.7435, 0.7514, 0.7382]
ECA = [0.7577, 0.7500, 0.7657, 0.7585]
AE = [0.7523, 0.7374, 0.7510, 0.7496, 0.7513, 0.7475, 0.7385, 0.7487]


def _holm_by_hand(p):
    """Holm's adjusted p-values, written the textbook way: p_(i) * (m - i + 1), cumulative max."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, best = [0.0] * m, 0.0
    for i, idx in enumerate(order, start=1):
        best = max(best, (m - i + 1) * p[idx])
        adjusted[idx] = min(1.0, best)
    return adjusted


def test_holm_matches_the_textbook_procedure():
    p = [0.008, 0.04, 0.03, 0.005, 0.20, 0.04]
    assert stats.holm(p) == pytest.approx(_holm_by_hand(p))
    # the step-down decisions at 0.05: reject while p_(i) <= 0.05 / (m - i + 1)
    order = np.argsort(p)
    rejected = set()
    for i, idx in enumerate(order):
        if p[idx] > 0.05 / (len(p) - i):
            break
        rejected.add(int(idx))
    assert {i for i, q in enumerate(stats.holm(p)) if q < 0.05} == rejected == {0, 3}


def test_holm_keeps_nan_out_and_checks_range():
    adjusted = stats.holm([0.02, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert stats.holm([]) == []
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # 2 * 0.8 capped at 1, then monotone
    with pytest.raises(ValueError, match=r"in \[0, 1\].*1.5"):
        stats.holm([0.1, 1.5])


def test_probability_of_improvement_is_mann_whitney_u_over_pairs():
    for a, b in ((ECA, CNN), (AE, CNN), (CNN, CNN), ([0.7, 0.7], [0.7, 0.6, 0.8])):
        u = sp.mannwhitneyu(a, b, alternative="two-sided").statistic
        assert stats.probability_of_improvement(a, b) == pytest.approx(u / (len(a) * len(b)))
    assert stats.probability_of_improvement(CNN, CNN) == 0.5
    assert math.isnan(stats.probability_of_improvement([], CNN))


def test_bootstrap_ci_matches_a_numpy_percentile_bootstrap():
    low, high = stats.bootstrap_diff_ci(ECA, CNN)
    rng = np.random.default_rng(123)  # another seed and another implementation
    a, b = np.array(ECA), np.array(CNN)
    ia = rng.integers(0, len(a), (200_000, len(a)))
    ib = rng.integers(0, len(b), (200_000, len(b)))
    diffs = a[ia].mean(1) - b[ib].mean(1)
    ref_low, ref_high = np.percentile(diffs, [2.5, 97.5])
    width = ref_high - ref_low
    assert abs(low - ref_low) < 0.03 * width and abs(high - ref_high) < 0.03 * width
    assert low < np.mean(a) - np.mean(b) < high


def test_bootstrap_is_seeded_and_checks_its_arguments():
    assert stats.bootstrap_diff_ci(AE, CNN) == stats.bootstrap_diff_ci(AE, CNN)
    assert stats.bootstrap_diff_ci(AE, CNN, seed=1) != stats.bootstrap_diff_ci(AE, CNN)
    assert all(math.isnan(x) for x in stats.bootstrap_diff_ci([0.7], CNN))
    assert stats.bootstrap_diff_ci([0.7, 0.7], [0.6, 0.6]) == pytest.approx((0.1, 0.1))
    with pytest.raises(ValueError, match="n_resamples"):
        stats.bootstrap_diff_ci(AE, CNN, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_diff_ci(AE, CNN, confidence=95)
    with pytest.raises(ValueError, match="1-D"):
        stats.bootstrap_diff_ci([[0.7, 0.7]], CNN)


def test_welch_and_t_ci_match_scipy():
    assert stats.welch_p(ECA, CNN) == pytest.approx(sp.ttest_ind(ECA, CNN, equal_var=False).pvalue)
    low, high = stats.t_ci(CNN)
    half = sp.t.ppf(0.975, len(CNN) - 1) * np.std(CNN, ddof=1) / math.sqrt(len(CNN))
    assert (low, high) == pytest.approx((np.mean(CNN) - half, np.mean(CNN) + half))
    assert math.isnan(stats.welch_p([0.7], CNN)) and math.isnan(stats.t_ci([0.7])[0])
    assert stats.welch_p([0.7, 0.7], [0.7, 0.7]) == 1.0
