"""The leaderboard's report from its folder: every setting's records, then one report.

``OUT/<setting>/`` are protocol output folders; `write_leaderboard` writes
``OUT/leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` from their records
alone (`keras_attn.report.write_gates_report`), byte for byte the same for the same records.
"""

from __future__ import annotations

from keras_attn import _files as files
from keras_attn.report import load_records, write_gates_report

__all__ = ["load_leaderboard", "write_leaderboard"]


def load_leaderboard(out_dir):
    """The records of every setting under ``out_dir``: ``{setting name: [records]}``.

    A setting is a sub-folder holding protocol records (``OUT/S/records/...``).

    Raises:
        FileNotFoundError: no setting folder with records.

    Example:
    >>> import json, os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(out, "cnn-cifar10-study", "records", "s1", "cnn"))
    >>> rec = {"settings_id": "s1", "model": "cnn", "run": 0, "test_accuracy": 0.7}
    >>> with open(os.path.join(out, "cnn-cifar10-study/records/s1/cnn/run-0000.json"), "w") as f:
    ...     json.dump(rec, f)
    >>> {s: len(r) for s, r in load_leaderboard(out).items()}
    {'cnn-cifar10-study': 1}
    """
    out_dir = str(out_dir)
    pattern = files.join(out_dir, "*", "records", "*", "*", "run-*.json")
    settings = sorted(
        {p[len(out_dir) :].strip("/").split("/")[0] for p in files.glob_paths(pattern)}
    )
    if not settings:
        raise FileNotFoundError(
            f"No leaderboard records in {out_dir!r} (expected {out_dir}/<backbone>-<data>-"
            "<recipe>/records/..., written by keras-attn leaderboard)."
        )
    return {s: load_records(files.join(out_dir, s)) for s in settings}


def write_leaderboard(out_dir, records=None, *, plot=True):
    """Write the leaderboard's report files into ``out_dir`` from its settings' records.

    Args:
        out_dir: the leaderboard's folder.
        records: ``{setting name: [records]}`` (``None``: `load_leaderboard`).
        plot: write ``leaderboard.png`` (needs matplotlib).

    Returns:
        Dict of file kind (``markdown``, ``csv``, ``png``) -> path.

    Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": 0, "test_accuracy": 0.7}]
    >>> sorted(write_leaderboard(out, {"cnn-cifar10-study": recs}, plot=False))
    ['csv', 'markdown']
    """
    records = load_leaderboard(out_dir) if records is None else records
    return write_gates_report(str(out_dir), records, plot=plot)
