"""The report's figures: test accuracy per run with mean and CI, and learning curves.

PNG files come out byte-identical for the same records and the same
matplotlib: no software version or date is written into them.
"""

from __future__ import annotations

import io
import math

import numpy as np

from keras_attn import _files as files
from keras_attn.report._format import p_text, pct
from keras_attn.report.reading import accuracies, group_records

__all__ = [
    "MATPLOTLIB_MISSING",
    "have_matplotlib",
    "model_colors",
    "plot_learning_curves",
    "plot_summary",
]

MATPLOTLIB_MISSING = (
    "report.png and learning_curves.png need matplotlib (pip install matplotlib): not written."
)
_BASELINE_COLOR = "0.35"
_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_PALETTE += ("tab:pink", "tab:olive", "tab:cyan", "navy", "darkgoldenrod", "teal")


def have_matplotlib():
    """Whether matplotlib can be imported (the report's tables need it not)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def model_colors(models, baseline="cnn"):
    """A colour per model, the same in every figure: grey for the baseline.

    Example:
    >>> model_colors(["cnn", "cnn_eca", "cnn_conv_ae"])
    {'cnn': '0.35', 'cnn_eca': 'tab:blue', 'cnn_conv_ae': 'tab:orange'}
    """
    others = [m for m in models if m != baseline]
    colors = {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(others)}
    return {m: _BASELINE_COLOR if m == baseline else colors[m] for m in models}


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig, path):
    """Write ``fig`` as PNG to ``path`` (local or ``tf.io.gfile``), atomically, reproducibly."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "keras_attn"}):
        fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
    files.write_atomic(str(path), buf.getvalue())


def _label(row):
    text = f"{row['model']}\nn={row['n']}"
    if row["diverged"]:
        text += f", {row['diverged']} diverged"
    if row["model"] != row["baseline"] and not math.isnan(row["diff_vs_baseline"]):
        text += f"\n{pct(row['diff_vs_baseline'], signed=True)} pts"
        text += f"\np(Holm) {p_text(row['p_holm'])}"
    return text


def plot_summary(rows, path, records=None):
    """Test accuracy per model: each run as a dot, the mean with its 95% CI beside them (PNG).

    One panel per settings group. The interval is drawn as it is (no bar
    from 0), the baseline is grey and its mean a dashed line across the panel;
    each label gives n, diverged runs, and the difference to the baseline with
    its Holm-adjusted p.

    Args:
        rows: from `summarize`.
        path: the ``.png`` file to write (local or ``tf.io.gfile`` path).
        records: the records, for the per-run dots (``None``: means and CIs only).

    Example:
    >>> import os, tempfile
    >>> from keras_attn.report.summary import summarize
    >>> recs = [{"settings_id": "s", "model": m, "run": i, "test_accuracy": a}
    ...         for m, accs in {"cnn": (0.70, 0.72), "cnn_eca": (0.73, 0.75)}.items()
    ...         for i, a in enumerate(accs)]
    >>> path = os.path.join(tempfile.mkdtemp(), "report.png")
    >>> plot_summary(summarize(recs), path, recs)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    sids = list(dict.fromkeys(r["settings_id"] for r in rows))
    by_sid = group_records(records or [])
    width = max(6.0, 1.45 * max(sum(r["settings_id"] == s for r in rows) for s in sids) + 1.5)
    fig = _figure(width, 4.6 * len(sids))
    for k, sid in enumerate(sids):
        ax = fig.add_subplot(len(sids), 1, k + 1)
        group = [r for r in rows if r["settings_id"] == sid]
        colors = model_colors([r["model"] for r in group], group[0]["baseline"])
        for x, r in enumerate(group):
            color = colors[r["model"]]
            recs = [
                q
                for q in by_sid.get(sid, {}).get(r["model"], [])
                if q.get("test_accuracy") is not None
            ]
            if recs:
                accs = 100 * accuracies(recs)
                offsets = np.linspace(-0.22, 0.02, len(accs)) if len(accs) > 1 else [-0.1]
                diverged = np.array([bool(q.get("diverged")) for q in recs])
                ax.scatter(
                    np.asarray(offsets)[~diverged] + x,
                    accs[~diverged],
                    s=16,
                    color=color,
                    alpha=0.7,
                    linewidths=0,
                    zorder=2,
                )
                if diverged.any():
                    ax.scatter(
                        np.asarray(offsets)[diverged] + x,
                        accs[diverged],
                        s=24,
                        marker="x",
                        color="tab:red",
                        zorder=2,
                        label="diverged run",
                    )
            if not math.isnan(r["mean"]):
                ax.plot([x + 0.18], [100 * r["mean"]], "D", color=color, ms=6, zorder=3)
            if not math.isnan(r["ci95_low"]):
                ax.plot(
                    [x + 0.18] * 2,
                    [100 * r["ci95_low"], 100 * r["ci95_high"]],
                    "-",
                    color=color,
                    lw=2,
                    solid_capstyle="butt",
                    zorder=3,
                )
                for y in (r["ci95_low"], r["ci95_high"]):
                    ax.plot([x + 0.12, x + 0.24], [100 * y] * 2, "-", color=color, lw=1.5)
        base = next((r for r in group if r["model"] == r["baseline"]), None)
        if base is not None and not math.isnan(base["mean"]):
            ax.axhline(100 * base["mean"], color=_BASELINE_COLOR, ls="--", lw=0.8, zorder=1)
        ax.set_xticks(range(len(group)), [_label(r) for r in group], fontsize=8)
        ax.set_xlim(-0.6, len(group) - 0.4)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(
            f"Test accuracy (settings {sid})\nruns (dots), mean (diamond) and its 95% CI; "
            "dashed: the baseline's mean",
            fontsize=10,
        )
        ax.grid(axis="y", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles[:1], labels[:1], fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def _curve(recs):
    """Epochs, and the mean, min and max over runs of the validation accuracy (%) per epoch.

    A run that stopped early counts only in the epochs it reached.
    """
    curves = [r.get("val_accuracy") or [] for r in recs]
    values = np.full((len(curves), max((len(c) for c in curves), default=0)), np.nan)
    for i, c in enumerate(curves):
        values[i, : len(c)] = [np.nan if v is None else 100 * v for v in c]
    seen = ~np.isnan(values)
    reached = seen.any(axis=0)
    mean = np.where(
        reached, np.where(seen, values, 0.0).sum(0) / np.maximum(seen.sum(0), 1), np.nan
    )
    low = np.where(reached, np.where(seen, values, np.inf).min(0), np.nan)
    high = np.where(reached, np.where(seen, values, -np.inf).max(0), np.nan)
    return np.arange(1, values.shape[1] + 1), mean, low, high


def _panels(groups, baseline):
    """(settings id, models drawn together) per panel: each other model beside the baseline."""
    panels = []
    for sid, by_model in groups.items():
        others = [m for m in by_model if m != baseline]
        base = [baseline] if baseline in by_model else []
        panels += [(sid, base + [m]) for m in others] or [(sid, base)]
    return panels


def plot_learning_curves(records, path, baseline="cnn"):
    """Validation accuracy per epoch: the mean over runs and its min-max band, per model (PNG).

    One panel per model, each beside the baseline (grey), all on one scale
    (small multiples read better than every curve in one panel). A run that
    stopped early (diverged) counts only in the epochs it reached; titles give
    each model's run count.

    Args:
        records: record dicts with ``val_accuracy`` lists.
        path: the ``.png`` file to write (local or ``tf.io.gfile`` path).
        baseline: the model every panel shows for reference.

    Example:
    >>> import os, tempfile
    >>> recs = [{"settings_id": "s", "model": m, "run": i, "val_accuracy": [0.4 + i / 50, 0.6]}
    ...         for m in ("cnn", "cnn_eca") for i in range(2)]
    >>> path = os.path.join(tempfile.mkdtemp(), "learning_curves.png")
    >>> plot_learning_curves(recs, path)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    groups = group_records(records)
    panels = _panels(groups, baseline)
    cols = min(3, max(len(panels), 1))
    rows = max(1, math.ceil(len(panels) / cols))
    fig = _figure(4.3 * cols, 3.3 * rows + 0.4)
    axes, first = [], None
    for k, (sid, models) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1, sharex=first, sharey=first)
        first = first or ax
        axes.append(ax)
        colors = model_colors(list(groups[sid]), baseline)
        for model in models:
            epochs, mean, low, high = _curve(groups[sid][model])
            if not len(epochs):
                continue
            label = f"{model} (n={len(groups[sid][model])})"
            ax.fill_between(epochs, low, high, color=colors[model], alpha=0.2, linewidth=0)
            ax.plot(epochs, mean, "-o", color=colors[model], ms=2.5, lw=1.4, label=label)
        title = models[-1] if models else ""
        ax.set_title(title + (f" (settings {sid})" if len(groups) > 1 else ""), fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
        if k % cols == 0:
            ax.set_ylabel("validation accuracy (%)")
        if k >= len(panels) - cols:
            ax.set_xlabel("epoch")
    if first is not None:
        first.xaxis.get_major_locator().set_params(integer=True)
    sids = " ".join(groups) if len(groups) == 1 else "several, see titles"
    fig.suptitle(
        f"Validation accuracy per epoch (settings {sids})\n"
        "lines: the mean over runs; bands: from the lowest to the highest run",
        fontsize=10,
    )
    fig.tight_layout()
    _save(fig, path)
