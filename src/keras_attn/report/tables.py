"""The report's text: ``report.md`` (tables, settings, notes) and the CSV files."""

from __future__ import annotations

import csv
import io
import json

from keras_attn.report import _context
from keras_attn.report._format import ci_text, is_missing, p_text, params_text, pct
from keras_attn.report.mask_table import format_mask_table, summarize_masks
from keras_attn.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

__all__ = [
    "CNN3_NOTE",
    "DIVERGED_NOTE",
    "RUN_FIELDS",
    "csv_text",
    "format_markdown",
    "format_section",
    "run_rows",
    "survivors_text",
]

CNN3_NOTE = (
    "`cnn3` is the real three-block network (1,677,130 trainable parameters). The study's "
    "'deeper CNN' declared a third block but never used it in its forward pass: its "
    "3.51M parameters counted 886,272 unused ones, and its results are those of the "
    "two-block network. Do not compare `cnn3` with the study's deeper-CNN row."
)
DIVERGED_NOTE = (
    "A diverged run (loss became NaN or infinite) stops at that epoch; its test accuracy "
    "comes from its best epoch before the divergence and it is counted in n. A run that "
    "diverged before any finite validation epoch has no test accuracy: it is counted under "
    "'diverged' but not in n."
)
STATISTICS_NOTE = (
    f"diff 95% CI: percentile bootstrap of the difference of the means ({BOOTSTRAP_RESAMPLES:,} "
    f"resamples of each model's runs, seed {BOOTSTRAP_SEED}). p (Welch): Welch's t-test; "
    "p (Holm): those p-values adjusted by Holm's method over every model compared with the "
    "baseline in the same table. P(improvement): the probability that a run of the model "
    "beats a run of the baseline, the mean over all pairs of runs of [x > y] + 0.5 [x = y] "
    "(Agarwal et al., 2021); 0.5 is no tendency either way."
)
MASKS_NOTE = (
    "Mean over runs of each attention layer's mask statistics (records of models with "
    "attention carry them: the test images named in the record, best epoch's weights; older "
    "records lack them). mask std: over images, positions and channels; spatial std: over "
    "positions of the channel-mean mask; channel std: over channels of the position-mean mask. "
    "A std near 0 means the gate scales its input almost uniformly, which the BatchNorm after "
    "it undoes: such a gate does not attend."
)
#: Columns of ``runs.csv``, in order.
RUN_FIELDS = (
    "settings_id",
    "model",
    "run",
    "seed",
    "status",
    "best_epoch",
    "best_val_accuracy",
    "test_accuracy",
    "test_loss",
    "trainable_params",
    "wall_time_s",
    "backend",
    "device",
    "host",
)


def survivors_text(group):
    """One sentence naming the differences that survive Holm's correction at 0.05.

    Args:
        group: the `summarize` rows of one settings group.

    Example:
    >>> rows = [{"model": "cnn", "baseline": "cnn", "p_holm": float("nan")},
    ...         {"model": "cnn_eca", "baseline": "cnn", "p_holm": 0.03, "diff_vs_baseline": 0.0128}]
    >>> survivors_text(rows)
    'Differences from `cnn` that survive Holm at 0.05 (of 1 compared): `cnn_eca` (+1.28 points).'
    """
    compared = [r for r in group if not is_missing(r.get("p_holm"))]
    if not compared:
        return ""
    kept = [r for r in compared if r["p_holm"] < 0.05]
    names = ", ".join(
        f"`{r['model']}` ({pct(r['diff_vs_baseline'], signed=True)} points)" for r in kept
    )
    return (
        f"Differences from `{group[0]['baseline']}` that survive Holm at 0.05 "
        f"(of {len(compared)} compared): {names or 'none'}."
    )


def _table(group):
    base = group[0]["baseline"]
    lines = [
        f"| model | runs | diverged | n | mean | std | 95% CI | diff vs {base or 'baseline'} "
        "| diff 95% CI | p (Welch) | p (Holm) | P(improvement) | trainable params |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in group:
        name = f"`{r['model']}`" + (" [1]" if r["model"] == "cnn3" else "")
        is_base = r["model"] == base
        comparison = (
            ["(baseline)", "", "", "", ""]
            if is_base
            else [
                pct(r["diff_vs_baseline"], signed=True),
                ci_text(r["diff_ci95_low"], r["diff_ci95_high"], signed=True),
                p_text(r["p_welch"]),
                p_text(r["p_holm"]),
                "n/a" if is_missing(r["prob_improvement"]) else f"{r['prob_improvement']:.2f}",
            ]
        )
        cells = [
            name,
            f"{r['runs']}/{r['planned_runs']}",
            str(r["diverged"]),
            str(r["n"]),
            pct(r["mean"]),
            pct(r["std"]),
            ci_text(r["ci95_low"], r["ci95_high"]),
            *comparison,
            params_text(r["trainable_params"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def format_section(group, records=(), title=None, level=2):
    """The Markdown section of one settings group: its settings, table, survivors and masks.

    Args:
        group: the `summarize` rows of one settings id.
        records: that group's records (adds the data, training settings,
            machines and the attention-mask table).
        title: the heading's text (default ``Settings `<settings id>```).
        level: the heading's level (2: ``##``); the masks' heading is one below.

    Returns:
        A list of lines.

    Example:
    >>> from keras_attn.report.summary import summarize
    >>> recs = [{"settings_id": "s", "model": "cnn", "test_accuracy": a} for a in (0.70, 0.72)]
    >>> format_section(summarize(recs), title="`cnn` on CIFAR-10", level=3)[0]
    '### `cnn` on CIFAR-10'
    """
    out = ["#" * level + " " + (title or f"Settings `{group[0]['settings_id']}`"), ""]
    if records:
        out += [
            f"- training: {_context.training_text(records)}",
            f"- data: {_context.data_text(records)}",
            f"- ran on: {_context.machines_text(records)}",
        ]
        overrides = records[0].get("settings", {}).get("model_overrides")
        if overrides:
            out.insert(-2, f"- model overrides: `{json.dumps(overrides, sort_keys=True)}`")
        out.append("")
    out += _table(group)
    survivors = survivors_text(group)
    if survivors:
        out += ["", survivors]
    masks = format_mask_table(summarize_masks(records))
    if masks:
        out += ["", "#" * (level + 1) + " Attention masks", "", MASKS_NOTE, "", *masks]
    return out


def format_markdown(rows, records=None):
    """A Markdown report: one table per settings group, its settings, masks and notes.

    Args:
        rows: from `summarize`.
        records: the records; adds each group's data, training settings,
            machines and attention-mask table.

    Example:
    >>> from keras_attn.report.summary import summarize
    >>> recs = [{"settings_id": "s", "model": "cnn", "test_accuracy": a} for a in (0.70, 0.72)]
    >>> print(format_markdown(summarize(recs)).splitlines()[8])
    | `cnn` | 2/0 | 0 | 2 | 71.00 | 1.41 | [58.29, 83.71] | (baseline) |  |  |  |  | n/a |
    """
    out = [
        "# Protocol results",
        "",
        "Test accuracy (%) of each run's best-validation epoch. Mean, sample standard "
        "deviation and t-based 95% confidence interval over the runs; difference to the "
        "baseline in percentage points with its bootstrap 95% CI, the p-value of Welch's "
        "t-test, that p-value adjusted for the number of models compared (Holm) and the "
        "probability of improvement.",
    ]
    sids = list(dict.fromkeys(r["settings_id"] for r in rows))
    for sid in sids:
        group = [r for r in rows if r["settings_id"] == sid]
        recs = [r for r in (records or []) if r["settings_id"] == sid]
        out += ["", *format_section(group, recs)]
    any_cnn3 = any(r["model"] == "cnn3" for r in rows)
    if len(sids) > 1:
        out += [
            "",
            "This folder holds results of several settings (run with --allow-mixed); each "
            "section is computed on its own and they are never pooled.",
        ]
    out += ["", "Notes:", ""]
    if any_cnn3:
        out += [f"[1] {CNN3_NOTE}", ""]
    out.append(f"- {DIVERGED_NOTE}")
    out.append(
        "- runs: records present / runs planned. A p-value and the CI of a difference are "
        "n/a with fewer than two runs in either group."
    )
    out.append(f"- {STATISTICS_NOTE}")
    return "\n".join(out) + "\n"


def csv_text(rows, fields):
    """``rows`` (dicts) as CSV text with the columns ``fields``; ``None`` and NaN are empty.

    Example:
    >>> print(csv_text([{"model": "cnn", "mean": float("nan")}], ["model", "mean"]), end="")
    model,mean
    cnn,
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if is_missing(v) else v for k, v in r.items()})
    return buf.getvalue()


def run_rows(records):
    """One row per run for ``runs.csv`` (the keys of `RUN_FIELDS`).

    Example:
    >>> rec = {"model": "cnn", "run": 0, "test_accuracy": 0.7, "environment": {"backend": "jax"}}
    >>> row = run_rows([rec])[0]
    >>> row["model"], row["test_accuracy"], row["backend"], row["device"]
    ('cnn', 0.7, 'jax', None)
    """
    rows = []
    for r in records:
        env = r.get("environment", {}) or {}
        row = {k: r.get(k) for k in RUN_FIELDS}
        row.update(backend=env.get("backend"), device=env.get("device"), host=env.get("host"))
        rows.append(row)
    return rows
