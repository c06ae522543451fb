"""Write every report file of a protocol output folder from its records."""

from __future__ import annotations

import logging

from keras_attn import _files as files
from keras_attn.report.plots import (
    MATPLOTLIB_MISSING,
    have_matplotlib,
    plot_learning_curves,
    plot_summary,
)
from keras_attn.report.reading import load_records
from keras_attn.report.summary import CSV_FIELDS, summarize
from keras_attn.report.tables import RUN_FIELDS, csv_text, format_markdown, run_rows

__all__ = ["write_report"]

log = logging.getLogger(__name__)


def write_report(out_dir, records=None, *, baseline="cnn", plot=True):
    """Write the report files into ``out_dir`` from its records.

    Files: ``report.md`` (tables and notes), ``report.csv`` (one row per model
    and settings group), ``runs.csv`` (one row per run), ``results.jsonl`` (all
    records, one per line), and with matplotlib ``report.png`` (test accuracy
    per run, mean and CI) and ``learning_curves.png``. Each file is written
    atomically; the same records give the same bytes. Without matplotlib the
    PNGs are skipped with one logged warning line (`MATPLOTLIB_MISSING`).

    Args:
        out_dir: the protocol output folder (local or ``tf.io.gfile`` path).
        records: records to use (``None``: `load_records` of ``out_dir``).
        baseline: model compared with the others.
        plot: write the PNG figures.

    Returns:
        Dict of file kind (``markdown``, ``csv``, ``runs_csv``, ``jsonl``,
        ``png``, ``curves_png``) -> path, for the files written.

    Example:
    >>> import os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": 0, "test_accuracy": 0.7}]
    >>> paths = write_report(out, recs, plot=False)
    >>> sorted(os.path.basename(p) for p in paths.values())
    ['report.csv', 'report.md', 'results.jsonl', 'runs.csv']
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
    files.write_atomic(paths["csv"], csv_text(rows, CSV_FIELDS).encode())
    files.write_atomic(paths["runs_csv"], csv_text(run_rows(records), RUN_FIELDS).encode())
    files.write_atomic(paths["jsonl"], b"".join(files.json_line(r) for r in records))
    if plot and not have_matplotlib():
        log.warning(MATPLOTLIB_MISSING)
    elif plot:
        paths["png"] = files.join(out_dir, "report.png")
        plot_summary(rows, paths["png"], records)
        paths["curves_png"] = files.join(out_dir, "learning_curves.png")
        plot_learning_curves(records, paths["curves_png"], baseline=baseline)
    return paths
