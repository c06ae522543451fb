"""The protocol's output folder: where records, checkpoints and weights live, and the best run.

Layout (a local path or any ``tf.io.gfile`` path such as ``gs://...``)::

    OUT/settings/<settings_id>.json                       the settings of each id
    OUT/records/<settings_id>/<model>/run-0003.json      one record per finished run
    OUT/checkpoints/<settings_id>/<model>/run-0003.npz   an unfinished run (or group-0000-0001.npz)
    OUT/weights/<settings_id>/<model>/run-0003.weights.h5

Every file is written under a temporary name and renamed (`keras_attn._files`).
"""

from __future__ import annotations

import datetime
import io
import json
import os

import numpy as np

from keras_attn import _files as files

__all__ = ["best_run", "check_settings_folder", "record_path", "weights_path"]


def now():
    """The current UTC time, ISO 8601 to the second (as records store it)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def record_path(out_dir, settings_id, model, run):
    """Where the record of one run lives.

    Example:
        >>> record_path("results/x", "ab12", "cnn", 3)
        'results/x/records/ab12/cnn/run-0003.json'
    """
    return files.join(out_dir, "records", settings_id, model, f"run-{run:04d}.json")


def weights_path(out_dir, settings_id, model, run):
    """Where the best-validation weights of one run live.

    Example:
        >>> weights_path("results/x", "ab12", "cnn", 3)
        'results/x/weights/ab12/cnn/run-0003.weights.h5'
    """
    return files.join(out_dir, "weights", settings_id, model, f"run-{run:04d}.weights.h5")


def checkpoint_path(out_dir, settings_id, model, runs):
    """Where the checkpoint of a run (``runs`` of one) or a group's lives.

    Example:
        >>> checkpoint_path("o", "ab12", "cnn", [3]), checkpoint_path("o", "ab12", "cnn", [0, 1])
        ('o/checkpoints/ab12/cnn/run-0003.npz', 'o/checkpoints/ab12/cnn/group-0000-0001.npz')
    """
    runs = list(runs)
    name = f"run-{runs[0]:04d}" if len(runs) == 1 else "group-" + "-".join(f"{r:04d}" for r in runs)
    return files.join(out_dir, "checkpoints", settings_id, model, f"{name}.npz")


def checkpoints(out_dir, settings_id, model):
    """``{runs tuple: path}`` of every checkpoint of ``model`` (single runs and groups)."""
    found = {}
    for path in files.glob_paths(files.join(out_dir, "checkpoints", settings_id, model, "*.npz")):
        stem = os.path.basename(path)[: -len(".npz")]
        kind, _, rest = stem.partition("-")
        parts = rest.split("-")
        if kind in ("run", "group") and parts and all(p.isdigit() for p in parts):
            found[tuple(int(p) for p in parts)] = path
    return found


def values(variables):
    """The variables' values as NumPy arrays."""
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def assign(variables, arrays, what):
    """Assign ``arrays`` to ``variables``; a count or shape mismatch raises ``ValueError``."""
    if len(variables) != len(arrays):
        raise ValueError(
            f"Checkpoint holds {len(arrays)} {what} variables but the model has "
            f"{len(variables)}: it belongs to another model or Keras version."
        )
    for v, a in zip(variables, arrays):
        if tuple(v.shape) != tuple(a.shape):
            raise ValueError(
                f"Checkpoint {what} variable {v.path} has shape {a.shape}, the model "
                f"expects {tuple(v.shape)}."
            )
        v.assign(a)


def save_checkpoint(path, model, bests, group):
    """One ``.npz``: the group's JSON state, the model's and optimizer's variables, each
    run's best-validation values (``bests[i]``, or ``None`` before its first epoch)."""
    save_checkpoint_values(
        path, values(model.variables), values(model.optimizer.variables), bests, group
    )


def save_checkpoint_values(path, model_values, optimizer_values, bests, group):
    """`save_checkpoint` from the values themselves (NumPy arrays), in the model's order."""
    arrays = {"state": np.frombuffer(files.json_line(group), dtype=np.uint8)}
    for i, a in enumerate(model_values):
        arrays[f"model_{i:04d}"] = a
    for i, a in enumerate(optimizer_values):
        arrays[f"optimizer_{i:04d}"] = a
    for k, best in enumerate(bests):
        for i, a in enumerate(best or []):
            arrays[f"best{k}_{i:04d}"] = a
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files.write_atomic(path, buf.getvalue())


def load_checkpoint(path):
    """``(group, arrays)`` from `save_checkpoint`'s file, or from an older single run's.

    ``group`` is ``{"runs", "epochs_done", "states"}``; ``arrays`` maps
    ``"model"``, ``"optimizer"`` and ``"best0"``, ``"best1"``... to lists of arrays.
    Checkpoints of single runs written before groups of one existed (their state
    is the run's own, their best values ``best_NNNN``) load as a group of one.
    """
    with np.load(io.BytesIO(files.read_bytes(path)), allow_pickle=False) as z:
        group = json.loads(bytes(z["state"]).decode("utf-8"))
        arrays = {"model": [], "optimizer": []}
        for key in sorted(k for k in z.files if k != "state"):
            arrays.setdefault(key.rsplit("_", 1)[0], []).append(z[key])
    if "states" not in group:  # an older single-run checkpoint
        run = int(os.path.basename(path)[len("run-") : -len(".npz")])
        group = {"runs": [run], "epochs_done": group["epochs_done"], "states": [group]}
        arrays["best0"] = arrays.pop("best", [])
    return group, arrays


def check_settings_folder(out_dir, settings, sid, fingerprint, allow_mixed):
    """Write OUT/settings/<sid>.json; refuse a folder holding other settings' work.

    Args:
        out_dir: the protocol's output folder.
        settings: the run's `keras_attn.protocol.ProtocolSettings`.
        sid: its settings id (``settings.settings_id(fingerprint)``).
        fingerprint: str, the data fingerprint.
        allow_mixed: bool; keep records of other settings in the same folder.

    Raises:
        ValueError: the folder holds records (or checkpoints) of other settings
            and ``allow_mixed`` is False; the message lists the differences.

    Example:
        >>> import tempfile
        >>> from keras_attn.protocol.settings import ProtocolSettings
        >>> out, settings = tempfile.mkdtemp(), ProtocolSettings(epochs=1)
        >>> sid = settings.settings_id("ab")
        >>> check_settings_folder(out, settings, sid, "ab", allow_mixed=False)
        >>> files.exists(files.join(out, "settings", f"{sid}.json"))
        True
    """
    mine = settings.comparable(fingerprint)
    for path in files.glob_paths(files.join(out_dir, "settings", "*.json")):
        other_id = os.path.basename(path)[: -len(".json")]
        if other_id == sid or allow_mixed:
            continue
        has_work = files.glob_paths(files.join(out_dir, "records", other_id, "*", "*.json")) or (
            files.glob_paths(files.join(out_dir, "checkpoints", other_id, "*", "*.npz"))
        )
        if not has_work:
            continue
        other = files.read_json(path).get("comparable_settings", {})
        diff = {
            k: (other.get(k), mine.get(k))
            for k in sorted(set(other) | set(mine))
            if other.get(k) != mine.get(k)
        }
        diff_text = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(
            f"Output folder {out_dir} holds results of other settings (id {other_id}); "
            f"differences: {diff_text}. Use another output folder, or pass "
            f"allow_mixed=True (--allow-mixed) to keep both (the report then shows them "
            f"as separate groups)."
        )
    path = files.join(out_dir, "settings", f"{sid}.json")
    if not files.exists(path):
        doc = {
            "settings_id": sid,
            "comparable_settings": mine,
            "settings": settings.to_dict(),
            "created_at": now(),
        }
        files.write_json(path, doc)


def best_run(out_dir, model_name, settings_id=None):
    """The best run of a model in a protocol folder: highest validation accuracy.

    The choice never looks at test accuracy. Ties go to the lowest run number.
    Only finished runs that saved weights count.

    Args:
        out_dir: the protocol's output folder.
        model_name: a model with records there.
        settings_id: which settings' records, when the folder holds several.

    Returns:
        ``(record, weights_path)``: the run's record and the full path of its
        best-validation weights (``.weights.h5``).

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> for run, val in [(0, 0.70), (1, 0.72)]:
        ...     files.write_json(record_path(out, "ab12", "cnn", run), {
        ...         "run": run, "best_val_accuracy": val,
        ...         "weights": f"weights/ab12/cnn/run-{run:04d}.weights.h5"})
        >>> record, weights = best_run(out, "cnn")
        >>> record["run"], weights.endswith("weights/ab12/cnn/run-0001.weights.h5")
        (1, True)
    """
    ids = sorted(
        os.path.basename(p.rstrip("/"))
        for p in files.glob_paths(files.join(out_dir, "records", "*"))
    )
    if not ids:
        raise ValueError(f"No protocol records in {out_dir!r} (expected {out_dir}/records/...).")
    if settings_id is None:
        if len(ids) > 1:
            raise ValueError(
                f"{out_dir!r} holds records of several settings {ids}; pass settings_id."
            )
        settings_id = ids[0]
    elif settings_id not in ids:
        raise ValueError(f"No records of settings {settings_id!r} in {out_dir!r}; found {ids}.")
    paths = files.glob_paths(files.join(out_dir, "records", settings_id, model_name, "run-*.json"))
    if not paths:
        have = sorted(
            os.path.basename(p.rstrip("/"))
            for p in files.glob_paths(files.join(out_dir, "records", settings_id, "*"))
        )
        raise ValueError(
            f"No records of model {model_name!r} in {out_dir!r}; models with records: {have}."
        )
    records = [files.read_json(p) for p in paths]
    usable = [r for r in records if r.get("weights") and r.get("best_val_accuracy") is not None]
    if not usable:
        raise ValueError(
            f"None of the {len(records)} runs of {model_name!r} in {out_dir!r} saved weights "
            "(trained with save_weights=False / --no-weights, or all diverged); rerun them "
            "with weights to export."
        )
    best = max(usable, key=lambda r: (r["best_val_accuracy"], -r["run"]))
    return best, files.join(out_dir, *best["weights"].split("/"))
