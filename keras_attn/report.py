"""Tables, statistics and a chart from protocol records (the study's Table 1).

Everything here is re-created from the records alone (``OUT/records/...``,
written by `keras_attn.protocol`), so shards merged into one folder, or records
copied from several machines, give one report::

    python scripts/report.py results/protocol

Per model: runs finished (of those planned), diverged runs, n (runs with a test
accuracy), mean, standard deviation and t-based 95% confidence interval of the
test accuracy, trainable parameters, and the difference to the baseline (``cnn``)
with the p-value of Welch's t-test. Records of different settings (an output
folder run with ``allow_mixed``) are reported as separate sections, never pooled.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from keras_attn import _files as files

__all__ = [
    "format_markdown",
    "load_records",
    "plot_summary",
    "summarize",
    "write_report",
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
)
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


# --------------------------------------------------------------------------- records


def load_records(out_dir):
    """All records under ``OUT/records/<settings_id>/<model>/run-*.json``, sorted.

    Args:
        out_dir: a protocol output folder (local or ``tf.io.gfile`` path).

    Returns:
        A list of record dicts sorted by (settings_id, model, run).

    Raises:
        FileNotFoundError: ``out_dir`` has no records.
        ValueError: two records claim the same (settings_id, model, run).

    Example:
        >>> records = load_records("results/protocol")  # doctest: +SKIP
        >>> records[0]["test_accuracy"]  # doctest: +SKIP
        0.7012
    """

    out_dir = str(out_dir)
    if not files.exists(out_dir):
        raise FileNotFoundError(f"Output folder {out_dir!r} does not exist.")
    paths = files.glob_paths(files.join(out_dir, "records", "*", "*", "run-*.json"))
    if not paths:
        raise FileNotFoundError(
            f"No records in {out_dir!r} (expected {out_dir}/records/<settings_id>/<model>/"
            "run-NNNN.json, written by scripts/protocol.py)."
        )
    records, seen = [], {}
    for p in paths:
        rec = files.read_json(p)
        key = (rec["settings_id"], rec["model"], rec["run"])
        if key in seen:
            raise ValueError(f"Records {seen[key]} and {p} are both {key}.")
        seen[key] = p
        records.append(rec)
    records.sort(key=lambda r: (r["settings_id"], r["model"], r["run"]))
    return records


# --------------------------------------------------------------------------- statistics


def _model_order(models):
    try:
        import keras_attn

        known = list(keras_attn.list_models())
    except Exception:  # pragma: no cover - the report also works without the zoo
        known = []
    return sorted(models, key=lambda m: (known.index(m) if m in known else len(known), m))


def _t_ci(values, confidence=0.95):
    from scipy import stats

    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    mean = float(np.mean(values))
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    if sem == 0:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return (mean - half, mean + half)


def _welch_p(a, b):
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(records, baseline="cnn"):
    """One row of statistics per (settings_id, model).

    Args:
        records: record dicts (from `load_records`).
        baseline: the model the others are compared with (Welch's t-test);
            rows of a settings group without it get no comparison.

    Returns:
        A list of dicts with the keys of ``CSV_FIELDS``; accuracies are
        fractions, missing values ``nan``.

    Example:
        >>> recs = [{"settings_id": "s", "model": "cnn", "test_accuracy": a} for a in (0.70, 0.72)]
        >>> row = summarize(recs)[0]
        >>> row["model"], row["n"], round(row["mean"], 3), round(row["std"], 4)
        ('cnn', 2, 0.71, 0.0141)
    """
    groups = {}
    for rec in records:
        groups.setdefault(rec["settings_id"], {}).setdefault(rec["model"], []).append(rec)
    rows = []
    for sid in sorted(groups):
        by_model = groups[sid]
        accs = {
            m: np.array(
                [r["test_accuracy"] for r in recs if r.get("test_accuracy") is not None],
                dtype=np.float64,
            )
            for m, recs in by_model.items()
        }
        for model in _model_order(by_model):
            recs = by_model[model]
            a = accs[model]
            n = len(a)
            low, high = _t_ci(a)
            if baseline in accs and model != baseline and n and len(accs[baseline]):
                diff = float(np.mean(a) - np.mean(accs[baseline]))
                p = _welch_p(a, accs[baseline])
            else:
                diff = p = math.nan
            params = sorted({r.get("trainable_params") for r in recs})
            best_epochs = [r["best_epoch"] for r in recs if r.get("best_epoch") is not None]
            epoch_secs = [s for r in recs for s in r.get("epoch_seconds", [])]
            cpu_secs = [s for r in recs for s in r.get("epoch_cpu_seconds", [])]
            rows.append(
                {
                    "settings_id": sid,
                    "model": model,
                    "runs": len(recs),
                    "planned_runs": max(r.get("settings", {}).get("runs", 0) for r in recs),
                    "diverged": sum(1 for r in recs if r.get("diverged")),
                    "n": n,
                    "mean": float(np.mean(a)) if n else math.nan,
                    "std": float(np.std(a, ddof=1)) if n > 1 else math.nan,
                    "ci95_low": low,
                    "ci95_high": high,
                    "min": float(np.min(a)) if n else math.nan,
                    "max": float(np.max(a)) if n else math.nan,
                    "trainable_params": params[0] if len(params) == 1 else params,
                    "baseline": baseline if baseline in accs else None,
                    "diff_vs_baseline": diff,
                    "p_welch": p,
                    "mean_best_epoch": float(np.mean(best_epochs)) if best_epochs else math.nan,
                    "mean_epoch_seconds": float(np.mean(epoch_secs)) if epoch_secs else math.nan,
                    "mean_epoch_cpu_seconds": float(np.mean(cpu_secs)) if cpu_secs else math.nan,
                    "total_wall_time_s": float(sum(r.get("wall_time_s", 0.0) for r in recs)),
                }
            )
    return rows


# --------------------------------------------------------------------------- formatting


def _pct(x, digits=2, signed=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:+.{digits}f}" if signed else f"{100 * x:.{digits}f}"


def _p_text(p):
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _params_text(p):
    return f"{p:,}" if isinstance(p, int) else ", ".join(f"{v:,}" for v in p if v is not None)


def _settings_text(records):
    rec = records[0]
    s, d = rec.get("settings", {}), rec.get("data", {})
    src = d.get("source", {})
    envs = sorted({(r["environment"]["backend"], r["environment"]["device"]) for r in records})
    counts = d.get("counts", {})
    lines = [
        f"- training: optimizer {s.get('optimizer')}, learning rate {s.get('learning_rate')}, "
        f"momentum {s.get('momentum')}, batch size {s.get('batch_size')}, "
        f"{s.get('epochs')} epochs, seeds {s.get('base_seed')} + run; "
        f"preprocessing: {rec.get('preprocessing')}; augmentation: {rec.get('augmentation')}",
        f"- data: {src.get('kind')} `{src.get('location')}`, {counts.get('train')} train / "
        f"{counts.get('val')} val / {counts.get('test')} test images "
        f"(val split seed {d.get('split', {}).get('split_seed')}, subset {d.get('subset')}), "
        f"fingerprint `{str(d.get('fingerprint'))[:16]}`",
        "- ran on: " + "; ".join(f"{b} backend, {dev}" for b, dev in envs),
    ]
    if s.get("model_overrides"):
        lines.insert(1, f"- model overrides: `{json.dumps(s['model_overrides'])}`")
    return "\n".join(lines)


def format_markdown(rows, records=None):
    """A Markdown report: one table per settings group, settings and footnotes.

    Args:
        rows: from `summarize`.
        records: the records (adds each group's settings and environment).

    Example:
        >>> print(format_markdown(summarize(records), records))  # doctest: +SKIP
    """
    out = ["# Protocol results", ""]
    out.append(
        "Test accuracy (%) of each run's best-validation epoch. Mean, sample standard "
        "deviation and t-based 95% confidence interval over the runs; difference to the "
        "baseline in percentage points with the p-value of Welch's t-test."
    )
    sids = list(dict.fromkeys(r["settings_id"] for r in rows))
    any_cnn3 = False
    for sid in sids:
        group = [r for r in rows if r["settings_id"] == sid]
        base = group[0]["baseline"]
        out += ["", f"## Settings `{sid}`", ""]
        if records:
            out += [_settings_text([r for r in records if r["settings_id"] == sid]), ""]
        out.append(
            f"| model | runs | diverged | n | mean | std | 95% CI | diff vs {base or 'baseline'}"
            " | p (Welch) | trainable params |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in group:
            name = f"`{r['model']}`"
            if r["model"] == "cnn3":
                name += " [1]"
                any_cnn3 = True
            ci = (
                f"[{_pct(r['ci95_low'])}, {_pct(r['ci95_high'])}]"
                if not math.isnan(r["ci95_low"])
                else "n/a"
            )
            is_base = r["model"] == base
            out.append(
                f"| {name} | {r['runs']}/{r['planned_runs']} | {r['diverged']} | {r['n']} "
                f"| {_pct(r['mean'])} | {_pct(r['std'])} | {ci} "
                f"| {'(baseline)' if is_base else _pct(r['diff_vs_baseline'], signed=True)} "
                f"| {'' if is_base else _p_text(r['p_welch'])} "
                f"| {_params_text(r['trainable_params'])} |"
            )
    if len(sids) > 1:
        out += [
            "",
            "This folder holds results of several settings (run with --allow-mixed); each "
            "section is computed on its own and they are never pooled.",
        ]
    out += ["", "Notes:", ""]
    if any_cnn3:
        out.append(f"[1] {CNN3_NOTE}")
        out.append("")
    out.append(f"- {DIVERGED_NOTE}")
    out.append(
        "- runs: records present / runs planned. A p-value is n/a with fewer than two "
        "runs in either group."
    )
    return "\n".join(out) + "\n"


def _csv_text(rows, fields):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {
                k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                for k, v in r.items()
            }
        )
    return buf.getvalue()


def plot_summary(rows, path):
    """Bar chart of mean test accuracy per model with 95% CI error bars (PNG).

    One panel per settings group; the baseline bar is grey, diverged runs are
    noted under their bar.

    Args:
        rows: from `summarize`.
        path: the ``.png`` file to write (local path).

    Example:
        >>> plot_summary(summarize(records), "results/protocol/report.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sids = list(dict.fromkeys(r["settings_id"] for r in rows))
    fig, axes = plt.subplots(
        len(sids), 1, figsize=(max(6, 1.1 * max(len(rows), 4)), 4.2 * len(sids)), squeeze=False
    )
    for ax, sid in zip(axes[:, 0], sids):
        group = [r for r in rows if r["settings_id"] == sid]
        names = [r["model"] for r in group]
        means = np.array([100 * r["mean"] for r in group], dtype=float)
        low = np.array([100 * r["ci95_low"] for r in group], dtype=float)
        high = np.array([100 * r["ci95_high"] for r in group], dtype=float)
        err = np.vstack([np.nan_to_num(means - low), np.nan_to_num(high - means)])
        colors = ["0.6" if r["model"] == r["baseline"] else "tab:blue" for r in group]
        x = np.arange(len(group))
        ax.bar(x, np.nan_to_num(means), yerr=err, capsize=4, color=colors)
        labels = [
            f"{n}\nn={r['n']}" + (f"\n{r['diverged']} diverged" if r["diverged"] else "")
            for n, r in zip(names, group)
        ]
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        finite = np.concatenate([means[np.isfinite(means)], low[np.isfinite(low)]])
        if finite.size:
            top = np.nanmax(
                np.concatenate([means, high])[np.isfinite(np.concatenate([means, high]))]
            )
            ax.set_ylim(max(0.0, finite.min() - 5), min(100.0, top + 2))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"mean test accuracy, 95% CI (settings {sid})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out_dir, records=None, *, baseline="cnn", plot=True):
    """Write the report files into ``out_dir`` from its records.

    Files: ``report.md`` (tables and notes), ``report.csv`` (one row per model and
    settings group), ``runs.csv`` (one row per run), ``results.jsonl`` (all records,
    one per line) and ``report.png`` (bar chart). Each file is written atomically.

    Args:
        out_dir: the protocol output folder.
        records: records to use (``None``: `load_records` of ``out_dir``).
        baseline: model compared with the others.
        plot: write the PNG chart.

    Returns:
        Dict of file kind -> path.

    Example:
        >>> paths = write_report("results/protocol")  # doctest: +SKIP
        >>> print(open(paths["markdown"]).read())  # doctest: +SKIP
    """

    out_dir = str(out_dir)
    records = load_records(out_dir) if records is None else records
    rows = summarize(records, baseline=baseline)
    paths = {
        "markdown": files.join(out_dir, "report.md"),
        "csv": files.join(out_dir, "report.csv"),
        "runs_csv": files.join(out_dir, "runs.csv"),
        "jsonl": files.join(out_dir, "results.jsonl"),
    }
    files.write_atomic(paths["markdown"], format_markdown(rows, records).encode())
    files.write_atomic(paths["csv"], _csv_text(rows, CSV_FIELDS).encode())
    run_rows = [
        {
            **{k: r.get(k) for k in RUN_FIELDS},
            "backend": r.get("environment", {}).get("backend"),
            "device": r.get("environment", {}).get("device"),
            "host": r.get("environment", {}).get("host"),
        }
        for r in records
    ]
    files.write_atomic(paths["runs_csv"], _csv_text(run_rows, RUN_FIELDS).encode())
    files.write_atomic(paths["jsonl"], b"".join(files.json_line(r) for r in records))
    if plot:
        png = files.join(out_dir, "report.png")
        if files.remote(out_dir):
            local = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"report-{os.getpid()}.png")
            plot_summary(rows, local)
            with open(local, "rb") as f:
                files.write_atomic(png, f.read())
            os.remove(local)
        else:
            tmp = png + f".tmp-{os.getpid()}.png"
            plot_summary(rows, tmp)
            os.replace(tmp, png)
        paths["png"] = png
    return paths
