"""Tests of keras_attn.report.aggregate: the statistics across settings, checked against rliable.

rliable (Agarwal et al. 2021's library, a dev dependency) takes score matrices of
``runs x tasks``; our strata are the matrix's columns. Point estimates must be equal;
the bootstrap intervals come from different random streams, so they must agree within
the Monte Carlo error of the resamples drawn.
"""

import numpy as np
import pytest
from scipy import stats

from keras_attn.report import aggregate as ag
from keras_attn.report.stats import probability_of_improvement

#: Gains (runs x settings) of a gate and the baseline's accuracies: settings differ in level.
RNG = np.random.default_rng(3)
X = RNG.normal(0.01, 0.01, (8, 3)) + np.array([0.0, 0.02, -0.01])
Y = RNG.normal(0.0, 0.01, (8, 3))
TAUS = np.linspace(-0.03, 0.05, 9)


def _columns(matrix):
    return [matrix[:, j] for j in range(matrix.shape[1])]


@pytest.fixture(scope="module")
def rliable():
    pytest.importorskip("rliable")
    from rliable import library, metrics

    return library, metrics


def test_point_estimates_equal_rliables(rliable):
    _, metrics = rliable
    assert ag.interquartile_mean(_columns(X)) == pytest.approx(metrics.aggregate_iqm(X), abs=1e-15)
    assert ag.average_probability_of_improvement(_columns(X), _columns(Y)) == pytest.approx(
        metrics.probability_of_improvement(X, Y), abs=1e-15
    )


def test_stratified_bootstrap_intervals_agree_with_rliables(rliable):
    library, metrics = rliable
    np.random.seed(0)  # rliable's resampling draws from NumPy's global generator
    _, ci = library.get_interval_estimates({"g": X}, metrics.aggregate_iqm, reps=2000)
    point, low, high = ag.stratified_bootstrap(ag.interquartile_mean, _columns(X))
    width = high - low
    assert point == pytest.approx(metrics.aggregate_iqm(X))
    assert ci["g"].ravel() == pytest.approx([low, high], abs=0.1 * width)
    # P(improvement): the gate's and the baseline's runs resampled apart within each setting.
    _, ci = library.get_interval_estimates(
        {"g": [X, Y]}, metrics.probability_of_improvement, reps=300
    )
    _, low, high = ag.stratified_bootstrap(
        ag.average_probability_of_improvement, _columns(X), _columns(Y), n_resamples=2000
    )
    assert ci["g"].ravel() == pytest.approx([low, high], abs=0.04)
    # Performance profiles: the same fractions, and bands within the resampling error.
    profiles, bands = library.create_performance_profile({"g": X}, TAUS, reps=1000)
    point, low, high = ag.stratified_bootstrap(
        lambda s: ag.score_distribution(s, TAUS), _columns(X), n_resamples=1000
    )
    np.testing.assert_allclose(point, profiles["g"], atol=1e-15)
    np.testing.assert_allclose(bands["g"], [low, high], atol=0.05)


def test_the_bootstrap_resamples_within_each_stratum():
    """A stratum of constant runs keeps its value in every resample: its mean has no spread."""
    strata = [np.array([1.0, 1.0, 1.0]), np.array([0.0, 5.0])]
    point, low, high = ag.stratified_bootstrap(lambda s: s[0].mean(-1), strata)
    assert point == low == high == 1.0
    # Unequal strata sizes: each resample keeps both sizes (the pooled IQM is of 5 values).
    _, low, high = ag.stratified_bootstrap(ag.interquartile_mean, strata, n_resamples=500)
    assert 0.0 <= low <= high <= 5.0


def test_ragged_strata_and_the_definitions():
    ragged = [np.array([0.1, 0.5, 0.2]), np.array([0.3, 0.9, -0.4, 0.0, 0.6])]
    pooled = np.concatenate(ragged)
    assert ag.interquartile_mean(ragged) == stats.trim_mean(pooled, 0.25)
    x, y = [np.array([0.7, 0.8]), np.array([0.5])], [np.array([0.7, 0.6, 0.9]), np.array([0.6])]
    expected = np.mean([probability_of_improvement(a, b) for a, b in zip(x, y)])
    assert ag.average_probability_of_improvement(x, y) == expected
    assert ag.score_distribution(ragged, [0.25]).tolist() == [np.mean(pooled > 0.25)]


def test_same_seed_same_interval_and_bad_input():
    gains = _columns(X)
    assert ag.stratified_bootstrap(ag.interquartile_mean, gains) == ag.stratified_bootstrap(
        ag.interquartile_mean, gains
    )
    with pytest.raises(ValueError, match="same strata; got"):
        ag.stratified_bootstrap(ag.average_probability_of_improvement, gains, gains[:2])
    with pytest.raises(ValueError, match="`confidence` must be a float in"):
        ag.stratified_bootstrap(ag.interquartile_mean, gains, confidence=95)
    with pytest.raises(ValueError, match="list of strata"):
        ag.interquartile_mean([])
