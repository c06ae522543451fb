"""The gate leaderboard's report: per gate across settings, and each setting's protocol table.

A setting is one protocol output folder (a backbone, a data set, a recipe) holding runs
of the backbone without a gate (the baseline) and with each gate; a record's gate is
its ``model_config["attention"]``. Across settings each gate gets the interquartile
mean of its gains over the baseline, P(improvement), both with stratified bootstrap
intervals (`keras_attn.report.aggregate`), a performance profile, and its cost.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from keras_attn import _files as files
from keras_attn.report._format import ci_text, is_missing, pct
from keras_attn.report.aggregate import (
    average_probability_of_improvement,
    interquartile_mean,
    score_distribution,
    stratified_bootstrap,
)
from keras_attn.report.plots import _figure, _save, have_matplotlib, model_colors
from keras_attn.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from keras_attn.report.summary import summarize
from keras_attn.report.tables import DIVERGED_NOTE, STATISTICS_NOTE, csv_text, format_section

__all__ = [
    "GATE_FIELDS",
    "format_leaderboard",
    "gate_name",
    "performance_profiles",
    "plot_performance_profiles",
    "summarize_gates",
    "write_gates_report",
]

#: Columns of ``leaderboard.csv``: gains and intervals as fractions (0.01 = 1 point).
GATE_FIELDS = (
    "gate",
    "settings",
    "pairs",
    "iqm_gain",
    "iqm_ci95_low",
    "iqm_ci95_high",
    "prob_improvement",
    "poi_ci95_low",
    "poi_ci95_high",
    "extra_params",
    "epoch_time_ratio",
)
#: Resamples of the performance profiles' bands (rliable's default for profiles).
PROFILE_RESAMPLES = 2000
#: Thresholds at which a profile is evaluated.
PROFILE_POINTS = 101
#: The gate name of a model without a gate.
NO_GATE = "none"
MATPLOTLIB_MISSING = "leaderboard.png needs matplotlib (pip install matplotlib): not written."

log = logging.getLogger(__name__)

AGGREGATE_NOTE = (
    "Gain: a run's test accuracy with the gate minus that of the baseline's run with the "
    "same run index (both trained with seed base_seed + run), in percentage points; pairs: "
    "such pairs over all settings. IQM: the interquartile mean (the mean of the middle half) "
    "of every pair's gain, all settings pooled. P(improvement): in each setting, the "
    "probability that a run with the gate beats a run without it (every pair of runs, ties "
    "counted half), averaged over the settings. 95% CIs: stratified percentile bootstrap "
    f"({BOOTSTRAP_RESAMPLES:,} resamples of the runs within each setting, seed "
    f"{BOOTSTRAP_SEED}; the settings stay fixed), after Agarwal et al. (2021, rliable). A gate "
    "helps reliably where the IQM's CI lies above 0 and P(improvement)'s above 0.5. Extra "
    "parameters: the gated model's trainable parameters minus the baseline's, per backbone. "
    "Epoch time: the median epoch time of the gate's runs over the baseline's in each "
    "setting, geometric mean over the settings (measured where each setting ran)."
)
PROFILE_NOTE = (
    "Performance profiles (figure): for every threshold tau, the fraction of pairs whose gain "
    "exceeds tau; a curve above another is better at every threshold, and the height at 0 is "
    f"the share of pairs the gate won. Bands: 95% stratified bootstrap ({PROFILE_RESAMPLES:,} "
    "resamples)."
)


def gate_name(record):
    """The gate of a record's model: ``"none"`` without one, else the gates joined by ``+``.

    Example:
    >>> gate_name({"model_config": {"attention": ["se"]}}), gate_name({"model_config": {}})
    ('se', 'none')
    """
    attention = (record.get("model_config") or {}).get("attention") or []
    attention = [attention] if isinstance(attention, str) else attention
    return "+".join(attention) or NO_GATE


def _by_run(records):
    return {r["run"]: r["test_accuracy"] for r in records if r.get("test_accuracy") is not None}


def _median_epoch(records):
    seconds = [s for r in records for s in r.get("epoch_seconds") or []]
    return float(np.median(seconds)) if seconds else math.nan


def _samples(records_by_setting):
    """Per gate: its strata (one per setting with a baseline) of gains and of accuracies."""
    out = {}
    for setting in sorted(records_by_setting):
        by_gate = {}
        for rec in records_by_setting[setting]:
            by_gate.setdefault(gate_name(rec), []).append(rec)
        base = by_gate.pop(NO_GATE, [])
        backbones = sorted({r["model"] for r in base})
        if len(backbones) > 1:
            raise ValueError(
                f"Setting {setting!r} has several models without a gate ({backbones}); a "
                "setting compares one backbone with its gates."
            )
        if not backbones:
            continue
        base_acc, base_params = _by_run(base), base[0].get("trainable_params")
        for gate, recs in by_gate.items():
            acc = _by_run(recs)
            pairs = sorted(set(acc) & set(base_acc))
            s = out.setdefault(gate, {"gains": [], "x": [], "y": [], "params": {}, "ratio": []})
            s["gains"].append(np.array([acc[r] - base_acc[r] for r in pairs], dtype=float))
            s["x"].append(np.array([acc[r] for r in sorted(acc)], dtype=float))
            s["y"].append(np.array([base_acc[r] for r in sorted(base_acc)], dtype=float))
            params = recs[0].get("trainable_params")
            if isinstance(params, int) and isinstance(base_params, int):
                s["params"].setdefault(backbones[0], set()).add(params - base_params)
            base_epoch = _median_epoch(base)
            if base_epoch > 0:  # NaN (no timings) is not
                s["ratio"].append(_median_epoch(recs) / base_epoch)
    return out


def _extra_params(by_backbone):
    return "; ".join(
        f"{b} " + ", ".join(f"{p:+,}" for p in sorted(v)) for b, v in sorted(by_backbone.items())
    )


def _geometric_mean(ratios):
    finite = [r for r in ratios if math.isfinite(r) and r > 0]
    return float(np.exp(np.mean(np.log(finite)))) if finite else math.nan


def summarize_gates(
    records_by_setting, *, confidence=0.95, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED
):
    """One row per gate across settings: IQM gain, P(improvement), their CIs, and cost.

    Args:
        records_by_setting: ``{setting name: [records]}``; each setting holds runs
            of one backbone without a gate and with gates.
        confidence, n_resamples, seed: of `keras_attn.report.aggregate.stratified_bootstrap`.

    Returns:
        A list of dicts with the keys of `GATE_FIELDS`, best IQM gain first.

    Example:
    >>> def rec(run, acc, gate):
    ...     return {"model": "cnn_" + (gate or "x"), "run": run, "test_accuracy": acc,
    ...             "model_config": {"attention": [gate] if gate else []}}
    >>> recs = [rec(r, 0.70 + r / 100, None) for r in range(4)]
    >>> recs += [rec(r, 0.72 + r / 100, "se") for r in range(4)]
    >>> [row] = summarize_gates({"cnn-a-study": recs})
    >>> row["gate"], row["pairs"], round(row["iqm_gain"], 4), row["prob_improvement"]
    ('se', 4, 0.02, 0.875)
    """
    kw = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    rows = []
    for gate, s in _samples(records_by_setting).items():
        pairs = sum(len(g) for g in s["gains"])
        iqm = (
            stratified_bootstrap(interquartile_mean, s["gains"], **kw) if pairs else [math.nan] * 3
        )
        compared = any(len(x) and len(y) for x, y in zip(s["x"], s["y"]))
        poi = (
            stratified_bootstrap(average_probability_of_improvement, s["x"], s["y"], **kw)
            if compared
            else [math.nan] * 3
        )
        rows.append(
            dict(
                zip(GATE_FIELDS, (gate, len(s["gains"]), pairs, *iqm, *poi)),
                extra_params=_extra_params(s["params"]),
                epoch_time_ratio=_geometric_mean(s["ratio"]),
            )
        )
    return sorted(rows, key=lambda r: (is_missing(r["iqm_gain"]), -(r["iqm_gain"] or 0), r["gate"]))


def performance_profiles(records_by_setting, *, n_resamples=PROFILE_RESAMPLES, seed=BOOTSTRAP_SEED):
    """Each gate's performance profile of gains: thresholds, fractions above them, 95% bands.

    Returns:
        ``(taus, {gate: (fractions, low, high)})``: ``taus`` span every gain and 0.

    Example:
    >>> recs = [{"model": m, "run": r, "test_accuracy": a, "model_config": {"attention": g}}
    ...         for m, g, accs in (("cnn", [], (0.70, 0.71)), ("cnn_se", ["se"], (0.72, 0.70)))
    ...         for r, a in enumerate(accs)]
    >>> taus, profiles = performance_profiles({"s": recs})
    >>> float(profiles["se"][0][list(taus).index(0.0)])  # the share of pairs with a gain
    0.5
    """
    samples = {g: s["gains"] for g, s in _samples(records_by_setting).items()}
    gains = np.concatenate([g for strata in samples.values() for g in strata] + [np.zeros(1)])
    low, high = float(np.min(gains)), float(np.max(gains))
    if low == high:
        low, high = low - 0.01, high + 0.01
    taus = np.unique(np.append(np.linspace(low, high, PROFILE_POINTS), 0.0))
    out = {}
    for gate, strata in samples.items():
        if sum(len(s) for s in strata):
            out[gate] = stratified_bootstrap(
                lambda st: score_distribution(st, taus), strata, n_resamples=n_resamples, seed=seed
            )
    return taus, out


def plot_performance_profiles(taus, profiles, path):
    """Draw `performance_profiles` (gain in points on x, fraction of pairs above on y) as PNG.

    Example:
    >>> import os, tempfile
    >>> taus = np.array([-0.01, 0.0, 0.01])
    >>> band = (np.array([1.0, 0.5, 0.0]), np.array([0.8, 0.2, 0.0]), np.array([1.0, 0.8, 0.2]))
    >>> path = os.path.join(tempfile.mkdtemp(), "leaderboard.png")
    >>> plot_performance_profiles(taus, {"se": band}, path)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    colors = model_colors(list(profiles), NO_GATE)
    x = 100 * np.asarray(taus)
    for gate, (point, low, high) in profiles.items():
        ax.fill_between(x, low, high, color=colors[gate], alpha=0.15, linewidth=0)
        ax.plot(x, point, "-", color=colors[gate], lw=1.6, label=gate)
    ax.axvline(0.0, color="0.35", ls="--", lw=0.8)
    ax.set_xlabel("gain over the baseline without a gate, tau (percentage points)")
    ax.set_ylabel("fraction of pairs with gain > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if profiles:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Performance profiles of the gates over every setting (95% bands)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _aggregate_table(rows):
    lines = [
        "| gate | settings | pairs | IQM gain (points) | 95% CI | P(improvement) | 95% CI "
        "| extra parameters | epoch time vs no gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        poi = "n/a" if is_missing(r["prob_improvement"]) else f"{r['prob_improvement']:.2f}"
        poi_ci = (
            "n/a"
            if is_missing(r["poi_ci95_low"])
            else f"[{r['poi_ci95_low']:.2f}, {r['poi_ci95_high']:.2f}]"
        )
        ratio = "n/a" if is_missing(r["epoch_time_ratio"]) else f"{r['epoch_time_ratio']:.2f}x"
        cells = [
            f"`{r['gate']}`",
            str(r["settings"]),
            str(r["pairs"]),
            pct(r["iqm_gain"], signed=True),
            ci_text(r["iqm_ci95_low"], r["iqm_ci95_high"], signed=True),
            poi,
            poi_ci,
            r["extra_params"] or "n/a",
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _setting_sections(records_by_setting):
    out = []
    for setting in sorted(records_by_setting):
        recs = records_by_setting[setting]
        base = sorted({r["model"] for r in recs if gate_name(r) == NO_GATE})
        rows = summarize(recs, baseline=base[0] if base else None)
        sids = list(dict.fromkeys(r["settings_id"] for r in rows))
        for sid in sids:
            title = f"`{setting}`" + (f" (settings `{sid}`)" if len(sids) > 1 else "")
            group = [r for r in rows if r["settings_id"] == sid]
            mine = [r for r in recs if r["settings_id"] == sid]
            out += ["", *format_section(group, mine, title=title, level=3)]
    return out


def format_leaderboard(rows, records_by_setting, figure=None):
    """The leaderboard's Markdown: the gates across settings, then each setting's table.

    Args:
        rows: from `summarize_gates`.
        records_by_setting: ``{setting name: [records]}``.
        figure: the profiles' PNG file name to link (``None``: no figure).

    Example:
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": 0, "test_accuracy": 0.7,
    ...          "model_config": {"attention": []}}]
    >>> format_leaderboard([], {"cnn-a-study": recs}).splitlines()[0]
    '# Gate leaderboard'
    """
    out = [
        "# Gate leaderboard",
        "",
        "Each setting (a backbone, a data set, a training recipe) trains the backbone without "
        "a gate (the baseline) and with each gate at every site, several runs (seeds) each; a "
        "run's score is the test accuracy of its best-validation epoch.",
        "",
        "## Across settings",
        "",
        *(_aggregate_table(rows) if rows else ["No gate has runs beside a baseline yet."]),
        "",
    ]
    if figure:
        out += [f"![Performance profiles of the gates]({figure})", ""]
    out += [AGGREGATE_NOTE, "", PROFILE_NOTE, "", "## Per setting"]
    out += _setting_sections(records_by_setting)
    out += [
        "",
        "Notes on the per-setting tables:",
        "",
        f"- {DIVERGED_NOTE}",
        "- runs: records present / runs planned.",
        f"- {STATISTICS_NOTE}",
    ]
    return "\n".join(out) + "\n"


def write_gates_report(out_dir, records_by_setting, *, plot=True):
    """Write ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` into ``out_dir``.

    Each file is written atomically; the same records give the same bytes
    (seeded bootstraps, a PNG without a date).

    Args:
        out_dir: the leaderboard's folder (local or ``tf.io.gfile`` path).
        records_by_setting: ``{setting name: [records]}``.
        plot: write the PNG (without matplotlib: skipped, with one logged warning line).

    Returns:
        Dict of file kind (``markdown``, ``csv``, ``png``) -> path, for the files written.

    Example:
    >>> import os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": 0, "test_accuracy": 0.7}]
    >>> paths = write_gates_report(out, {"cnn-a-study": recs}, plot=False)
    >>> sorted(os.path.basename(p) for p in paths.values())
    ['leaderboard.csv', 'leaderboard.md']
    """
    out_dir = str(out_dir)
    rows = summarize_gates(records_by_setting)
    paths = {
        "markdown": files.join(out_dir, "leaderboard.md"),
        "csv": files.join(out_dir, "leaderboard.csv"),
    }
    if plot and not have_matplotlib():
        log.warning(MATPLOTLIB_MISSING)
        plot = False
    if plot:
        paths["png"] = files.join(out_dir, "leaderboard.png")
        taus, profiles = performance_profiles(records_by_setting)
        ranked = {r["gate"]: profiles[r["gate"]] for r in rows if r["gate"] in profiles}
        plot_performance_profiles(taus, ranked, paths["png"])  # the legend in the table's order
    figure = "leaderboard.png" if plot else None
    text = format_leaderboard(rows, records_by_setting, figure)
    files.write_atomic(paths["markdown"], text.encode())
    files.write_atomic(paths["csv"], csv_text(rows, GATE_FIELDS).encode())
    return paths
