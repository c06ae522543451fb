"""Statistics for comparing variants with a baseline over a few seeds (SciPy).

Example:
>>> cnn, eca = [0.70, 0.71, 0.69, 0.72], [0.73, 0.74, 0.72, 0.75]
>>> round(probability_of_improvement(eca, cnn), 4), [round(p, 3) for p in holm([0.01, 0.04])]
(0.9688, [0.02, 0.04])
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from keras_attn._checks import check_positive_int

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "bootstrap_diff_ci",
    "holm",
    "probability_of_improvement",
    "t_ci",
    "welch_p",
]

#: Resamples of the percentile bootstrap (Monte Carlo error of a 95% bound: ~0.1% of its width).
BOOTSTRAP_RESAMPLES = 10_000
#: Seed of every bootstrap, so a report made twice from the same records is the same.
BOOTSTRAP_SEED = 0


def _sample(name, values):
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of numbers, got shape {a.shape}.")
    return a


def _check_confidence(confidence):
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise ValueError(f"`confidence` must be a float in (0, 1), e.g. 0.95, got {confidence!r}.")


def t_ci(values, confidence=0.95):
    """The t-based confidence interval of the mean of ``values``; NaNs with fewer than two.

    Args:
        values: 1-D sequence of numbers (one per run).
        confidence: float in (0, 1), default 0.95.

    Returns:
        ``(low, high)``.

    Example:
    >>> [round(x, 4) for x in t_ci([0.70, 0.72])]
    [0.5829, 0.8371]
    """
    from scipy import stats

    _check_confidence(confidence)
    a = _sample("values", values)
    n = len(a)
    if n < 2:
        return (math.nan, math.nan)
    mean = float(np.mean(a))
    sem = float(np.std(a, ddof=1)) / math.sqrt(n)
    if sem == 0:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return (mean - half, mean + half)


def welch_p(a, b):
    """Two-sided p-value of Welch's t-test (unequal variances) of ``a`` against ``b``.

    NaN when either sample has fewer than two values; with no variance in
    either sample, 1 for equal means and 0 otherwise.

    Example:
    >>> round(welch_p([0.73, 0.74, 0.72, 0.75], [0.70, 0.71, 0.69, 0.72]), 4)
    0.0167
    """
    from scipy import stats

    a, b = _sample("a", a), _sample("b", b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values):
    """Holm's step-down adjustment of p-values for the comparisons made together.

    The ``m`` finite p-values sorted ascending get ``(m - i) * p`` (``i`` from
    0), made non-decreasing and capped at 1. A difference "survives" at level
    0.05 when its adjusted p-value is below 0.05; Holm keeps the chance of any
    false positive among the ``m`` below 0.05. NaNs stay NaN and do not count.

    Args:
        p_values: sequence of p-values in [0, 1] or NaN.

    Returns:
        A list of adjusted p-values in the order given.

    Raises:
        ValueError: a p-value outside [0, 1].

    Example:
    >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03, float("nan")])]
    [0.03, 0.06, 0.06, nan]
    """
    p = _sample("p_values", p_values)
    bad = p[~np.isnan(p) & ((p < 0) | (p > 1))]
    if bad.size:
        raise ValueError(f"p-values must be in [0, 1] (or NaN), got {bad.tolist()}.")
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * float(p[i])))
        adjusted[i] = running
    return adjusted


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def bootstrap_diff_ci(
    a, b, *, confidence=0.95, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED
):
    """Percentile-bootstrap confidence interval of ``mean(a) - mean(b)`` (seeded).

    Each sample is resampled with replacement on its own (the runs are not
    paired), ``n_resamples`` times, with `scipy.stats.bootstrap`; the bounds
    are percentiles of the resampled differences. With a few runs per group the
    percentile interval is somewhat too narrow: read it with the t-test's p.

    Args:
        a: the variant's values (1-D).
        b: the baseline's values (1-D).
        confidence: float in (0, 1), default 0.95.
        n_resamples: positive int, default `BOOTSTRAP_RESAMPLES`.
        seed: int seed of the resampling, default `BOOTSTRAP_SEED`.

    Returns:
        ``(low, high)``; NaNs when either sample has fewer than two values.

    Example:
    >>> low, high = bootstrap_diff_ci([0.73, 0.74, 0.72, 0.75], [0.70, 0.71, 0.69, 0.72])
    >>> 0.0 < low < 0.03 < high < 0.06
    True
    """
    from scipy import stats

    _check_confidence(confidence)
    check_positive_int("n_resamples", n_resamples)
    a, b = _sample("a", a), _sample("b", b)
    if len(a) < 2 or len(b) < 2:
        return (math.nan, math.nan)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        diff = float(a[0] - b[0])
        return (diff, diff)
    # `rng` replaced `random_state` in SciPy 1.15; both take a Generator.
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    result = stats.bootstrap(
        (a, b),
        _mean_difference,
        n_resamples=n_resamples,
        vectorized=True,
        method="percentile",
        confidence_level=confidence,
        **{key: np.random.default_rng(seed)},
    )
    ci = result.confidence_interval
    return (float(ci.low), float(ci.high))


def probability_of_improvement(a, b):
    """P(a run of ``a`` beats a run of ``b``): the mean over all pairs of [x > y] + 0.5 [x = y].

    The probability of improvement of Agarwal et al. (2021), "Deep
    Reinforcement Learning at the Edge of the Statistical Precipice": 0.5 means
    no tendency either way, 1 that every run of ``a`` beats every run of ``b``.
    It equals the Mann-Whitney U of ``a`` divided by ``len(a) * len(b)``.

    Returns:
        A float in [0, 1]; NaN when either sample is empty.

    Example:
    >>> probability_of_improvement([0.72, 0.70], [0.70, 0.69])
    0.875
    """
    a, b = _sample("a", a), _sample("b", b)
    if not len(a) or not len(b):
        return math.nan
    x, y = a[:, None], b[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))
