"""Aggregates over several settings (Agarwal et al. 2021, rliable) on NumPy and SciPy.

A score sample is a list of strata (one per setting, the "tasks" of rliable), each a
1-D array of run scores; strata may hold different numbers of runs. Every function
also takes arrays with leading axes (the resamples of `stratified_bootstrap`).

Example:
>>> gains = [[0.01, 0.02, -0.01, 0.03], [0.00, 0.01, 0.02, 0.05]]
>>> round(float(interquartile_mean(gains)), 4)
0.015
"""

from __future__ import annotations

import math

import numpy as np

from keras_attn._checks import check_positive_int
from keras_attn.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

__all__ = [
    "average_probability_of_improvement",
    "interquartile_mean",
    "score_distribution",
    "stratified_bootstrap",
]


def _strata(name, strata):
    """``strata`` as a list of float64 arrays whose last axis holds the runs."""
    if isinstance(strata, np.ndarray) and strata.ndim == 1:
        strata = [strata]
    out = [np.asarray(s, dtype=np.float64) for s in strata]
    if not out or any(s.ndim < 1 for s in out):
        raise ValueError(
            f"`{name}` must be a list of strata (one 1-D array of run scores per setting), "
            f"got {strata!r}."
        )
    return out


def _pooled(name, strata):
    return np.concatenate(_strata(name, strata), axis=-1)


def interquartile_mean(strata):
    """The interquartile mean (IQM) of every run of every stratum, pooled.

    The mean of the middle half of the scores: `scipy.stats.trim_mean` cutting
    25% at each end, as rliable's ``metrics.aggregate_iqm``. More robust than
    the mean to an outlying run, less wasteful than the median.

    Args:
        strata: a list of 1-D arrays (one per setting), or arrays with leading
            axes and the runs last; a plain 1-D array is one stratum.

    Returns:
        A float (an array over the leading axes); NaN with no scores.

    Example:
    >>> float(interquartile_mean([[1.0, 2.0, 3.0, 100.0], [2.0, 3.0, 4.0, -50.0]]))
    2.5
    """
    from scipy import stats

    pooled = _pooled("strata", strata)
    if pooled.shape[-1] == 0:
        return np.full(pooled.shape[:-1], math.nan)[()]
    return stats.trim_mean(pooled, 0.25, axis=-1)


def _improvement(x, y):
    """P(a run of x beats a run of y) over the last axes: [x > y] + 0.5 [x = y], averaged."""
    a, b = x[..., :, None], y[..., None, :]
    return np.mean((a > b) + 0.5 * (a == b), axis=(-2, -1))


def average_probability_of_improvement(x_strata, y_strata):
    """P(X > Y) within each stratum, averaged over the strata (rliable's pooled P(improvement)).

    Within a stratum it is the probability that a run of ``x`` beats a run of
    ``y``, the mean over all pairs of [x > y] + 0.5 [x = y]
    (`keras_attn.report.stats.probability_of_improvement`); each stratum
    (setting) counts the same. Strata where either sample is empty are left out.

    Args:
        x_strata: list of 1-D arrays (or arrays with leading axes), one per stratum.
        y_strata: the same strata of the other sample, in the same order.

    Returns:
        A float in [0, 1] (an array over the leading axes); NaN with no stratum.

    Example:
    >>> average_probability_of_improvement([[0.72, 0.70], [0.5]], [[0.70, 0.69], [0.6]])
    0.4375
    """
    xs, ys = _strata("x_strata", x_strata), _strata("y_strata", y_strata)
    if len(xs) != len(ys):
        raise ValueError(f"x and y need the same strata; got {len(xs)} and {len(ys)} strata.")
    probs = [_improvement(x, y) for x, y in zip(xs, ys) if x.shape[-1] and y.shape[-1]]
    if not probs:
        return math.nan
    return np.mean(probs, axis=0)[()] if np.ndim(probs[0]) else float(np.mean(probs))


def score_distribution(strata, taus):
    """The performance profile: the fraction of runs (all strata pooled) scoring above each tau.

    As rliable's score distributions (``create_performance_profile``): for each
    threshold ``tau``, the share of runs with a score ``> tau``.

    Args:
        strata: list of 1-D arrays of scores (or arrays with leading axes).
        taus: 1-D thresholds.

    Returns:
        An array of the fractions, one per tau (leading axes first).

    Example:
    >>> score_distribution([[0.0, 1.0], [2.0, 3.0]], [0.5, 2.5]).tolist()
    [0.75, 0.25]
    """
    pooled = _pooled("strata", strata)
    taus = np.asarray(taus, dtype=np.float64)
    return np.mean(pooled[..., :, None] > taus, axis=-2)


def _check_confidence(confidence):
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise ValueError(f"`confidence` must be a float in (0, 1), e.g. 0.95, got {confidence!r}.")


def stratified_bootstrap(
    statistic,
    *samples,
    confidence=0.95,
    n_resamples=BOOTSTRAP_RESAMPLES,
    seed=BOOTSTRAP_SEED,
):
    """A statistic of stratified samples and its percentile-bootstrap confidence interval.

    Each resample draws, within every stratum, as many runs as it holds, with
    replacement, each sample on its own (rliable's ``StratifiedBootstrap`` for
    one sample, ``StratifiedIndependentBootstrap`` for several); the bounds are
    percentiles of the statistic over the resamples. The settings stay fixed:
    the interval is the uncertainty from the runs (seeds), not from the choice
    of settings. Seeded, so the same samples give the same interval.

    Args:
        statistic: a function of one list of strata per sample that accepts
            arrays with a leading resample axis (every function of this module
            does) and returns a float or a 1-D array per resample.
        *samples: one or more lists of strata (1-D arrays of run scores), the
            strata of every sample in the same order.
        confidence: float in (0, 1), default 0.95.
        n_resamples: positive int, default `BOOTSTRAP_RESAMPLES`.
        seed: int seed of the resampling, default `BOOTSTRAP_SEED`.

    Returns:
        ``(point, low, high)``: the statistic of the samples as given and the
        interval's bounds (floats, or arrays for a vector statistic).

    Example:
    >>> gains = [[0.01, 0.02, -0.01, 0.03], [0.00, 0.01, 0.02, 0.05]]
    >>> point, low, high = stratified_bootstrap(interquartile_mean, gains)
    >>> bool(low < point < high), round(float(point), 4)
    (True, 0.015)
    """
    _check_confidence(confidence)
    check_positive_int("n_resamples", n_resamples)
    if not samples:
        raise ValueError("stratified_bootstrap needs at least one sample (a list of strata).")
    samples = [_strata(f"samples[{i}]", s) for i, s in enumerate(samples)]
    if any(s.ndim != 1 for strata in samples for s in strata):
        raise ValueError("stratified_bootstrap resamples 1-D strata (one score per run).")
    if len({len(s) for s in samples}) > 1:
        raise ValueError(
            f"Every sample needs the same strata; got {[len(s) for s in samples]} strata."
        )
    point = statistic(*samples)
    rng = np.random.default_rng(seed)
    resampled = []
    for strata in samples:
        drawn = []
        for s in strata:
            n = s.shape[-1]
            idx = rng.integers(0, n, size=(n_resamples, n)) if n else np.zeros((n_resamples, 0))
            drawn.append(s[idx.astype(np.intp)])
        resampled.append(drawn)
    values = np.asarray(statistic(*resampled), dtype=np.float64)
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [alpha, 100 - alpha], axis=0)
    as_out = float if np.ndim(point) == 0 else np.asarray
    return as_out(point), as_out(low), as_out(high)
