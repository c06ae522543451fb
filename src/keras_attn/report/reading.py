"""Protocol records: read them from an output folder and group them for the report."""

from __future__ import annotations

import numpy as np

from keras_attn import _files as files

__all__ = ["accuracies", "group_records", "load_records", "model_order"]


def load_records(out_dir):
    """All records under ``OUT/records/<settings_id>/<model>/run-*.json``, sorted.

    Args:
        out_dir: a protocol output folder (local or ``tf.io.gfile`` path).

    Returns:
        A list of record dicts sorted by (settings_id, model, run).

    Raises:
        FileNotFoundError: ``out_dir`` does not exist or has no records.
        ValueError: two records claim the same (settings_id, model, run).

    Example:
    >>> import json, os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(out, "records", "s1", "cnn"))
    >>> with open(os.path.join(out, "records", "s1", "cnn", "run-0000.json"), "w") as f:
    ...     json.dump({"settings_id": "s1", "model": "cnn", "run": 0, "test_accuracy": 0.7}, f)
    >>> [(r["model"], r["test_accuracy"]) for r in load_records(out)]
    [('cnn', 0.7)]
    """
    out_dir = str(out_dir)
    if not files.exists(out_dir):
        raise FileNotFoundError(f"Output folder {out_dir!r} does not exist.")
    paths = files.glob_paths(files.join(out_dir, "records", "*", "*", "run-*.json"))
    if not paths:
        raise FileNotFoundError(
            f"No records in {out_dir!r} (expected {out_dir}/records/<settings_id>/<model>/"
            "run-NNNN.json, written by keras-attn protocol)."
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


def model_order(models):
    """``models`` in the registry's order (``cnn`` first), unregistered ones after, by name.

    Example:
    >>> model_order(["my_config", "cnn_eca", "cnn"])
    ['cnn', 'cnn_eca', 'my_config']
    """
    try:
        import keras_attn

        known = list(keras_attn.list_models())
    except Exception:  # pragma: no cover - the report also works without the zoo
        known = []
    return sorted(models, key=lambda m: (known.index(m) if m in known else len(known), m))


def group_records(records):
    """Records as ``{settings_id: {model: [records]}}``: ids sorted, models in `model_order`.

    Each model's records are in run order, so the statistics (a seeded
    bootstrap resamples them by position) do not depend on the order given.

    Records of different settings (a folder run with ``allow_mixed``) are
    never pooled: each settings id is its own group.

    Example:
    >>> recs = [{"settings_id": "s", "model": m, "run": 0} for m in ("cnn_eca", "cnn")]
    >>> {sid: list(models) for sid, models in group_records(recs).items()}
    {'s': ['cnn', 'cnn_eca']}
    """
    groups = {}
    for rec in sorted(records, key=lambda r: r.get("run") or 0):
        groups.setdefault(rec["settings_id"], {}).setdefault(rec["model"], []).append(rec)
    return {sid: {m: groups[sid][m] for m in model_order(groups[sid])} for sid in sorted(groups)}


def accuracies(records):
    """The test accuracies of ``records`` that have one, as a float64 array.

    A run that diverged before any finite validation epoch has none.

    Example:
    >>> accuracies([{"test_accuracy": 0.7}, {"test_accuracy": None}, {}])
    array([0.7])
    """
    return np.array(
        [r["test_accuracy"] for r in records if r.get("test_accuracy") is not None],
        dtype=np.float64,
    )
