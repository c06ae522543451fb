"""One row of statistics per (settings, model): the numbers behind every table and figure."""

from __future__ import annotations

import math

import numpy as np

from keras_attn.report import stats
from keras_attn.report.reading import accuracies, group_records

__all__ = ["CSV_FIELDS", "summarize"]

#: Columns of ``report.csv``, in order (the comparison columns added later come last).
CSV_FIELDS = (
    "settings_id",
    "model",
    "runs",
    "planned_runs",
    "diverged",
    "n",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "min",
    "max",
    "trainable_params",
    "baseline",
    "diff_vs_baseline",
    "p_welch",
    "mean_best_epoch",
    "mean_epoch_seconds",
    "mean_epoch_cpu_seconds",
    "total_wall_time_s",
    "diff_ci95_low",
    "diff_ci95_high",
    "p_holm",
    "prob_improvement",
)


def _mean(values):
    return float(np.mean(values)) if len(values) else math.nan


def _row(sid, model, recs, a, base):
    """The statistics of one model's runs ``recs`` (accuracies ``a``; baseline's ``base``)."""
    n = len(a)
    low, high = stats.t_ci(a)
    compare = base is not None and n and len(base)
    params = sorted({r.get("trainable_params") for r in recs}, key=lambda p: (p is None, p))
    diff_low, diff_high = stats.bootstrap_diff_ci(a, base) if compare else (math.nan, math.nan)
    return {
        "settings_id": sid,
        "model": model,
        "runs": len(recs),
        "planned_runs": max(r.get("settings", {}).get("runs", 0) for r in recs),
        "diverged": sum(1 for r in recs if r.get("diverged")),
        "n": n,
        "mean": _mean(a),
        "std": float(np.std(a, ddof=1)) if n > 1 else math.nan,
        "ci95_low": low,
        "ci95_high": high,
        "min": float(np.min(a)) if n else math.nan,
        "max": float(np.max(a)) if n else math.nan,
        "trainable_params": params[0] if len(params) == 1 else params,
        "diff_vs_baseline": float(np.mean(a) - np.mean(base)) if compare else math.nan,
        "p_welch": stats.welch_p(a, base) if compare else math.nan,
        "mean_best_epoch": _mean(
            [r["best_epoch"] for r in recs if r.get("best_epoch") is not None]
        ),
        "mean_epoch_seconds": _mean([s for r in recs for s in r.get("epoch_seconds", [])]),
        "mean_epoch_cpu_seconds": _mean([s for r in recs for s in r.get("epoch_cpu_seconds", [])]),
        "total_wall_time_s": float(sum(r.get("wall_time_s", 0.0) for r in recs)),
        "diff_ci95_low": diff_low,
        "diff_ci95_high": diff_high,
        "prob_improvement": stats.probability_of_improvement(a, base) if compare else math.nan,
    }


def summarize(records, baseline="cnn"):
    """One row of statistics per (settings_id, model).

    Per model: runs present, runs planned, diverged runs, n (runs with a test
    accuracy), mean, sample std, t-based 95% CI, min, max, trainable params.
    Against ``baseline``: the difference of the means, its percentile-bootstrap
    95% CI (`stats.bootstrap_diff_ci`), Welch's p, Holm's adjustment of those p
    over every model of the settings group (`stats.holm`) and the probability
    of improvement (`stats.probability_of_improvement`).

    Args:
        records: record dicts (from `load_records`).
        baseline: the model the others are compared with; rows of a settings
            group without it get no comparison.

    Returns:
        A list of dicts with the keys of `CSV_FIELDS`, by settings id, then
        models in the registry's order; accuracies are fractions, missing
        values ``nan``.

    Example:
    >>> recs = [{"settings_id": "s", "model": "cnn", "test_accuracy": a} for a in (0.70, 0.72)]
    >>> recs += [{"settings_id": "s", "model": "cnn_eca", "test_accuracy": a} for a in (0.73, 0.74)]
    >>> base, eca = summarize(recs)
    >>> base["n"], round(base["mean"], 3), round(eca["diff_vs_baseline"], 3)
    (2, 0.71, 0.025)
    >>> eca["prob_improvement"], eca["p_holm"] == eca["p_welch"]
    (1.0, True)
    """
    rows = []
    for sid, by_model in group_records(records).items():
        accs = {m: accuracies(recs) for m, recs in by_model.items()}
        base = accs.get(baseline)
        group = []
        for model, recs in by_model.items():
            row = _row(sid, model, recs, accs[model], None if model == baseline else base)
            row["baseline"] = baseline if base is not None else None
            group.append(row)
        for row, p in zip(group, stats.holm([r["p_welch"] for r in group]), strict=True):
            row["p_holm"] = p
        rows += [{k: row[k] for k in CSV_FIELDS} for row in group]
    return rows
